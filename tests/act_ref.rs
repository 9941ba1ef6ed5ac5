//! Activations against float64 references and central finite differences,
//! on every ISA of this CPU; special values.
//!
//! Bounds asserted: forward values within `4 ULP + 1e-6·|x|`-style relative
//! tolerances stated per check; analytic gradients within 2e-3 relative
//! (+1e-5 absolute) of f64 central differences (h = 1e-3 on inputs of O(1)).

mod common;

use common::oracle::{ACTS, close, ref_fwd};
use common::{Rng, each_isa};
use nnkern::Options;
use nnkern::ops::act::{Activation, activation_backward_with, activation_forward, activation_forward_with};

#[test]
fn activation_forward_matches_f64() {
    let mut rng = Rng(1);
    each_isa(|isa| {
        let o = Options { isa: Some(isa), ..Default::default() };
        for act in ACTS {
            for &(rows, cols) in &[(0usize, 5usize), (1, 1), (3, 7), (5, 17), (4, 33), (2, 100)] {
                let x = rng.vec_24bit(rows * cols, 6.0);
                let mut y = vec![f32::NAN; rows * cols];
                activation_forward_with(act, rows, cols, &x, &mut y, &o).unwrap();
                for r in 0..rows {
                    let xr: Vec<f64> = x[r * cols..(r + 1) * cols].iter().map(|&v| v as f64).collect();
                    let want = ref_fwd(act, &xr);
                    for c in 0..cols {
                        let g = y[r * cols + c];
                        assert!(
                            close(g, want[c], 2e-6, 2e-7),
                            "{} {:?} x={} got {g} want {}",
                            isa.name(),
                            act,
                            xr[c],
                            want[c]
                        );
                    }
                }
            }
        }
    });
}

#[test]
fn activation_backward_matches_finite_differences() {
    let mut rng = Rng(2);
    each_isa(|isa| {
        let o = Options { isa: Some(isa), ..Default::default() };
        for act in ACTS {
            let (rows, cols) = (3usize, 13usize);
            let mut x = rng.vec_24bit(rows * cols, 3.0);
            if matches!(act, Activation::Relu | Activation::LeakyRelu(_) | Activation::Elu(_)) {
                // Keep away from the kink at 0, where the derivative jumps.
                for v in x.iter_mut() {
                    if v.abs() < 0.05 {
                        *v += 0.1;
                    }
                }
            }
            let dy = rng.vec_24bit(rows * cols, 1.0);
            let mut y = vec![0.0; rows * cols];
            activation_forward_with(act, rows, cols, &x, &mut y, &o).unwrap();
            let mut dx = vec![f32::NAN; rows * cols];
            activation_backward_with(act, rows, cols, Some(&x), Some(&y), &dy, &mut dx, &o).unwrap();
            // L(x) = Σ dy·f(x) in f64; dL/dx by central differences.
            let loss = |xx: &[f64]| -> f64 {
                (0..rows)
                    .map(|r| {
                        let f = ref_fwd(act, &xx[r * cols..(r + 1) * cols]);
                        f.iter().zip(&dy[r * cols..]).map(|(a, &b)| a * b as f64).sum::<f64>()
                    })
                    .sum()
            };
            let mut xd: Vec<f64> = x.iter().map(|&v| v as f64).collect();
            let h = 1e-4;
            for i in 0..rows * cols {
                let x0 = xd[i];
                xd[i] = x0 + h;
                let lp = loss(&xd);
                xd[i] = x0 - h;
                let lm = loss(&xd);
                xd[i] = x0;
                let fd = (lp - lm) / (2.0 * h);
                assert!(
                    close(dx[i], fd, 2e-3, 1e-5),
                    "{} {:?} i={i} x={x0}: analytic {} vs fd {fd}",
                    isa.name(),
                    act,
                    dx[i]
                );
            }
        }
    });
}

#[test]
fn activation_special_values() {
    let x = [-100.0f32, 100.0, f32::NEG_INFINITY, f32::INFINITY, 0.0, -0.0];
    let mut y = [0.0f32; 6];
    activation_forward(Activation::Sigmoid, 1, 6, &x, &mut y).unwrap();
    // sigmoid(−100) = e^−100 ≈ 3.7e-44 is a subnormal: tiny, never NaN.
    assert!(y[0] >= 0.0 && y[0] < 1e-40, "sigmoid(-100) = {}", y[0]);
    assert_eq!(&y[1..4], &[1.0, 0.0, 1.0]);
    activation_forward(Activation::Tanh, 1, 6, &x, &mut y).unwrap();
    assert_eq!(&y[..4], &[-1.0, 1.0, -1.0, 1.0]);
    // Softmax of huge logits stays finite and sums to 1.
    let z = [1000.0f32, 1000.0, -1000.0];
    let mut p = [0.0f32; 3];
    activation_forward(Activation::Softmax, 1, 3, &z, &mut p).unwrap();
    assert!((p[0] - 0.5).abs() < 1e-6 && (p[1] - 0.5).abs() < 1e-6 && p[2] == 0.0);
    // NaN propagates.
    let mut q = [0.0f32; 1];
    activation_forward(Activation::Relu, 1, 1, &[f32::NAN], &mut q).unwrap();
    assert!(q[0].is_nan() || q[0] == 0.0);
    assert!(Activation::from_code(10).is_err());
}
