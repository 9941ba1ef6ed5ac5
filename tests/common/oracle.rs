//! References shared by the operator tests (`act_ref`, `loss_ref`,
//! `fused_ref`, `optim_ref`): the activations under test, the f64 forward of
//! each, and the tolerance check.

use nnkern::ops::act::Activation;

pub const ACTS: [Activation; 10] = [
    Activation::Identity,
    Activation::Relu,
    Activation::Sigmoid,
    Activation::Tanh,
    Activation::Softmax,
    Activation::LeakyRelu(0.01),
    Activation::Elu(1.0),
    Activation::Softplus,
    Activation::Gelu,
    Activation::LogSoftmax,
];

/// f64 reference forward of a whole row.
pub fn ref_fwd(act: Activation, x: &[f64]) -> Vec<f64> {
    let e = |v: f64| match act {
        Activation::Identity => v,
        Activation::Relu => v.max(0.0),
        Activation::Sigmoid => 1.0 / (1.0 + (-v).exp()),
        Activation::Tanh => v.tanh(),
        Activation::LeakyRelu(a) => {
            if v > 0.0 {
                v
            } else {
                a as f64 * v
            }
        }
        Activation::Elu(a) => {
            if v > 0.0 {
                v
            } else {
                a as f64 * (v.exp() - 1.0)
            }
        }
        Activation::Softplus => v.max(0.0) + (-v.abs()).exp().ln_1p(),
        Activation::Gelu => 0.5 * v * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (v + 0.044715 * v * v * v)).tanh()),
        _ => unreachable!(),
    };
    match act {
        Activation::Softmax | Activation::LogSoftmax => {
            let m = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let s: f64 = x.iter().map(|v| (v - m).exp()).sum();
            x.iter().map(|v| if act == Activation::Softmax { (v - m).exp() / s } else { v - m - s.ln() }).collect()
        }
        _ => x.iter().map(|&v| e(v)).collect(),
    }
}

pub fn close(got: f32, want: f64, rel: f64, abs: f64) -> bool {
    (got as f64 - want).abs() <= rel * want.abs() + abs
}

pub fn f64v(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}
