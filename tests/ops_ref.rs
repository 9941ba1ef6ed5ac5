//! Activations, losses, fused dense steps and optimizers against float64
//! references and central finite differences; fused vs unfused; thread
//! invariance.
//!
//! Bounds asserted: forward values within `4 ULP + 1e-6·|x|`-style relative
//! tolerances stated per check; analytic gradients within 2e-3 relative
//! (+1e-5 absolute) of f64 central differences (h = 1e-3 on inputs of O(1)).

mod common;

use common::{Rng, each_isa};
use nnkern::gemm::{GemmOptions, MatMut, MatRef, gemm_with};
use nnkern::ops::act::{Activation, activation_backward_isa, activation_forward_isa};
use nnkern::ops::fused::{DenseGrads, DenseShape, dense_backward, dense_forward};
use nnkern::ops::loss::{Loss, elementwise_loss, softmax_cross_entropy, softmax_cross_entropy_sparse};
use nnkern::optim::{AdamParams, adam_step, adamw_step, clip_grad_norm, rmsprop_step, sgd_step};
use nnkern::par::Par;
use nnkern::simd::Isa;

const ACTS: [Activation; 10] = [
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
fn ref_fwd(act: Activation, x: &[f64]) -> Vec<f64> {
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

fn close(got: f32, want: f64, rel: f64, abs: f64) -> bool {
    (got as f64 - want).abs() <= rel * want.abs() + abs
}

#[test]
fn activation_forward_matches_f64() {
    let mut rng = Rng(1);
    each_isa(|isa| {
        for act in ACTS {
            for &(rows, cols) in &[(0usize, 5usize), (1, 1), (3, 7), (5, 17), (4, 33), (2, 100)] {
                let x = rng.vec_24bit(rows * cols, 6.0);
                let mut y = vec![f32::NAN; rows * cols];
                activation_forward_isa(isa, act, rows, cols, &x, &mut y).unwrap();
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
            activation_forward_isa(isa, act, rows, cols, &x, &mut y).unwrap();
            let mut dx = vec![f32::NAN; rows * cols];
            activation_backward_isa(isa, act, rows, cols, Some(&x), Some(&y), &dy, &mut dx).unwrap();
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
    activation_forward_isa(Isa::current(), Activation::Sigmoid, 1, 6, &x, &mut y).unwrap();
    // sigmoid(−100) = e^−100 ≈ 3.7e-44 is a subnormal: tiny, never NaN.
    assert!(y[0] >= 0.0 && y[0] < 1e-40, "sigmoid(-100) = {}", y[0]);
    assert_eq!(&y[1..4], &[1.0, 0.0, 1.0]);
    activation_forward_isa(Isa::current(), Activation::Tanh, 1, 6, &x, &mut y).unwrap();
    assert_eq!(&y[..4], &[-1.0, 1.0, -1.0, 1.0]);
    // Softmax of huge logits stays finite and sums to 1.
    let z = [1000.0f32, 1000.0, -1000.0];
    let mut p = [0.0f32; 3];
    activation_forward_isa(Isa::current(), Activation::Softmax, 1, 3, &z, &mut p).unwrap();
    assert!((p[0] - 0.5).abs() < 1e-6 && (p[1] - 0.5).abs() < 1e-6 && p[2] == 0.0);
    // NaN propagates.
    let mut q = [0.0f32; 1];
    activation_forward_isa(Isa::current(), Activation::Relu, 1, 1, &[f32::NAN], &mut q).unwrap();
    assert!(q[0].is_nan() || q[0] == 0.0);
    assert!(Activation::from_code(10).is_err());
}

fn ref_softmax_xent(z: &[f32], y: &[f32], rows: usize, cols: usize) -> f64 {
    (0..rows)
        .map(|r| {
            let zr: Vec<f64> = z[r * cols..(r + 1) * cols].iter().map(|&v| v as f64).collect();
            let ls = ref_fwd(Activation::LogSoftmax, &zr);
            -ls.iter().zip(&y[r * cols..]).map(|(l, &t)| l * t as f64).sum::<f64>()
        })
        .sum::<f64>()
        / rows as f64
}

#[test]
fn losses_match_f64_and_finite_differences() {
    let mut rng = Rng(3);
    let (rows, cols) = (7usize, 11usize);
    let z = rng.vec_24bit(rows * cols, 4.0);
    let labels: Vec<u32> = (0..rows).map(|i| (i * 5 % cols) as u32).collect();
    let mut y = vec![0.0f32; rows * cols];
    for (r, &l) in labels.iter().enumerate() {
        y[r * cols + l as usize] = 1.0;
    }
    let mut d1 = vec![0.0; rows * cols];
    let mut d2 = vec![0.0; rows * cols];
    let l1 = softmax_cross_entropy(rows, cols, &z, &y, &mut d1).unwrap();
    let l2 = softmax_cross_entropy_sparse(rows, cols, &z, &labels, &mut d2).unwrap();
    let want = ref_softmax_xent(&z, &y, rows, cols);
    assert!(close(l1, want, 1e-5, 1e-6) && close(l2, want, 1e-5, 1e-6), "{l1} {l2} vs {want}");
    let h = 1e-3f32;
    for i in 0..rows * cols {
        let mut zp = z.clone();
        zp[i] += h;
        let mut zm = z.clone();
        zm[i] -= h;
        let fd = (ref_softmax_xent(&zp, &y, rows, cols) - ref_softmax_xent(&zm, &y, rows, cols)) / (2.0 * h as f64);
        assert!(close(d1[i], fd, 2e-3, 1e-5) && close(d2[i], fd, 2e-3, 1e-5), "i={i}: {} {} vs {fd}", d1[i], d2[i]);
    }
    // Label out of range: error, output untouched.
    let mut d3 = vec![7.0; rows * cols];
    let mut bad = labels.clone();
    bad[3] = cols as u32;
    assert!(softmax_cross_entropy_sparse(rows, cols, &z, &bad, &mut d3).is_err());
    assert!(d3.iter().all(|&v| v == 7.0));

    // Squared error and binary cross-entropy from logits.
    let t: Vec<f32> = (0..rows * cols).map(|i| (i % 2) as f32).collect();
    for kind in [Loss::SquaredError, Loss::BinaryCrossEntropy] {
        let reff = |p: &[f32]| -> f64 {
            p.iter()
                .zip(&t)
                .map(|(&a, &b)| {
                    let (a, b) = (a as f64, b as f64);
                    if kind == Loss::SquaredError {
                        0.5 * (a - b) * (a - b)
                    } else {
                        a.max(0.0) - a * b + (-a.abs()).exp().ln_1p()
                    }
                })
                .sum::<f64>()
                / rows as f64
        };
        let mut g = vec![0.0; rows * cols];
        let l = elementwise_loss(kind, rows, cols, &z, &t, Some(&mut g)).unwrap();
        assert!(close(l, reff(&z), 1e-5, 1e-6));
        for i in 0..rows * cols {
            let mut zp = z.clone();
            zp[i] += h;
            let mut zm = z.clone();
            zm[i] -= h;
            let fd = (reff(&zp) - reff(&zm)) / (2.0 * h as f64);
            assert!(close(g[i], fd, 2e-3, 1e-5), "{kind:?} i={i}: {} vs {fd}", g[i]);
        }
    }
}

/// f64 dense layer: a = f(x·w + b).
fn ref_dense(act: Activation, s: DenseShape, x: &[f64], w: &[f64], b: &[f64]) -> Vec<f64> {
    let mut out = vec![0.0; s.batch * s.n_out];
    for r in 0..s.batch {
        let mut zr = vec![0.0; s.n_out];
        for j in 0..s.n_out {
            zr[j] = b[j] + (0..s.n_in).map(|p| x[r * s.n_in + p] * w[p * s.n_out + j]).sum::<f64>();
        }
        out[r * s.n_out..(r + 1) * s.n_out].copy_from_slice(&ref_fwd(act, &zr));
    }
    out
}

fn f64v(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

#[test]
fn dense_forward_fused_equals_unfused_and_f64() {
    let mut rng = Rng(4);
    for act in ACTS {
        for &(batch, n_in, n_out) in &[(1usize, 1usize, 1usize), (5, 7, 3), (32, 64, 10), (33, 40, 129), (4, 0, 6)] {
            let s = DenseShape { batch, n_in, n_out };
            let x = rng.vec_24bit(batch * n_in, 1.0);
            let w = rng.vec_24bit(n_in * n_out, 0.5);
            let b = rng.vec_24bit(n_out, 0.5);
            let mut z = vec![f32::NAN; batch * n_out];
            let mut a = vec![f32::NAN; batch * n_out];
            dense_forward(act, s, &x, &w, &b, Some(&mut z), &mut a, &GemmOptions::default()).unwrap();
            // Unfused: GEMM, bias pass, activation pass.
            let mut zu = vec![0.0f32; batch * n_out];
            gemm_with(
                1.0,
                MatRef::row_major(&x, batch, n_in, n_in).unwrap(),
                MatRef::row_major(&w, n_in, n_out, n_out).unwrap(),
                0.0,
                MatMut::row_major(&mut zu, batch, n_out, n_out).unwrap(),
                &GemmOptions::default(),
            )
            .unwrap();
            for r in 0..batch {
                for j in 0..n_out {
                    zu[r * n_out + j] += b[j];
                }
            }
            let mut au = vec![0.0f32; batch * n_out];
            activation_forward_isa(Isa::current(), act, batch, n_out, &zu, &mut au).unwrap();
            let want = ref_dense(act, s, &f64v(&x), &f64v(&w), &f64v(&b));
            for i in 0..batch * n_out {
                assert!(close(z[i], zu[i] as f64, 1e-5, 1e-6), "{act:?} z[{i}] {} vs {}", z[i], zu[i]);
                assert!(close(a[i], au[i] as f64, 1e-5, 1e-6), "{act:?} fused {} vs unfused {}", a[i], au[i]);
                assert!(close(a[i], want[i], 1e-4, 1e-5), "{act:?} {s:?} a[{i}] {} vs f64 {}", a[i], want[i]);
            }
        }
    }
}

#[test]
fn dense_backward_matches_finite_differences() {
    let mut rng = Rng(5);
    for act in ACTS {
        let s = DenseShape { batch: 4, n_in: 5, n_out: 3 };
        let l2 = 0.3f32;
        let x = rng.vec_24bit(20, 1.0);
        let w = rng.vec_24bit(15, 0.7);
        let b = rng.vec_24bit(3, 0.5);
        let da = rng.vec_24bit(12, 1.0);
        let mut z = vec![0.0; 12];
        let mut a = vec![0.0; 12];
        dense_forward(act, s, &x, &w, &b, Some(&mut z), &mut a, &GemmOptions::default()).unwrap();
        let (mut dw, mut db, mut dx, mut dz) = (vec![0.0; 15], vec![0.0; 3], vec![0.0; 20], vec![0.0; 12]);
        let g = DenseGrads { dw: &mut dw, db: &mut db, dx: Some(&mut dx), dz: &mut dz };
        dense_backward(act, s, &x, &w, &z, &a, &da, l2, g, &GemmOptions::default()).unwrap();
        // L = Σ da·f(xw+b) + l2/2·‖w‖²
        let loss = |x: &[f64], w: &[f64], b: &[f64]| -> f64 {
            let out = ref_dense(act, s, x, w, b);
            out.iter().zip(&da).map(|(o, &d)| o * d as f64).sum::<f64>()
                + 0.5 * l2 as f64 * w.iter().map(|v| v * v).sum::<f64>()
        };
        let (xd, wd, bd) = (f64v(&x), f64v(&w), f64v(&b));
        let h = 1e-5;
        let fd = |which: usize, i: usize| {
            let (mut xp, mut wp, mut bp) = (xd.clone(), wd.clone(), bd.clone());
            let (mut xm, mut wm, mut bm) = (xd.clone(), wd.clone(), bd.clone());
            match which {
                0 => {
                    xp[i] += h;
                    xm[i] -= h
                }
                1 => {
                    wp[i] += h;
                    wm[i] -= h
                }
                _ => {
                    bp[i] += h;
                    bm[i] -= h
                }
            }
            (loss(&xp, &wp, &bp) - loss(&xm, &wm, &bm)) / (2.0 * h)
        };
        for i in 0..15 {
            assert!(close(dw[i], fd(1, i), 2e-3, 1e-5), "{act:?} dw[{i}] {} vs {}", dw[i], fd(1, i));
        }
        for i in 0..3 {
            assert!(close(db[i], fd(2, i), 2e-3, 1e-5), "{act:?} db[{i}] {} vs {}", db[i], fd(2, i));
        }
        for i in 0..20 {
            assert!(close(dx[i], fd(0, i), 2e-3, 1e-5), "{act:?} dx[{i}] {} vs {}", dx[i], fd(0, i));
        }
    }
}

/// The fused dense backward against its unfused composition: the activation
/// backward pass, a column sum for db, `Xᵀ·dZ` then `+ l2·W` for dW, `dZ·Wᵀ`
/// for dX, each as a separate call. dZ must match bit for bit (the same
/// elementwise derivative); db, dW, dX within `(k + 2)·2⁻²³·Σ|terms|` (both
/// sum the same terms, in orders that may differ by blocking).
#[test]
fn dense_backward_fused_equals_unfused() {
    let mut rng = Rng(11);
    let eps = f32::EPSILON as f64;
    for act in ACTS {
        if matches!(act, Activation::Softmax | Activation::LogSoftmax) {
            continue; // not hidden-layer activations: dense_backward refuses them
        }
        for &(batch, n_in, n_out) in &[(1usize, 1usize, 1usize), (5, 7, 3), (32, 64, 10), (33, 40, 129), (3, 0, 4)] {
            let s = DenseShape { batch, n_in, n_out };
            let x = rng.vec_24bit(batch * n_in, 1.0);
            let w = rng.vec_24bit(n_in * n_out, 0.5);
            let b = rng.vec_24bit(n_out, 0.5);
            let da = rng.vec_24bit(batch * n_out, 0.5);
            let l2 = 0.03f32;
            let o = GemmOptions::default();
            let (mut z, mut a) = (vec![0.0f32; batch * n_out], vec![0.0f32; batch * n_out]);
            dense_forward(act, s, &x, &w, &b, Some(&mut z), &mut a, &o).unwrap();
            let (mut dw, mut db, mut dx, mut dz) = (
                vec![f32::NAN; n_in * n_out],
                vec![f32::NAN; n_out],
                vec![f32::NAN; batch * n_in],
                vec![0.0; batch * n_out],
            );
            let g = DenseGrads { dw: &mut dw, db: &mut db, dx: Some(&mut dx), dz: &mut dz };
            dense_backward(act, s, &x, &w, &z, &a, &da, l2, g, &o).unwrap();
            // Unfused.
            let mut dzu = vec![0.0f32; batch * n_out];
            activation_backward_isa(Isa::current(), act, batch, n_out, Some(&z), Some(&a), &da, &mut dzu).unwrap();
            let mut dbu = vec![0.0f32; n_out];
            for r in 0..batch {
                for j in 0..n_out {
                    dbu[j] += dzu[r * n_out + j];
                }
            }
            let mut dwu = vec![0.0f32; n_in * n_out];
            gemm_with(
                1.0,
                MatRef::row_major(&x, batch, n_in, n_in).unwrap().t(),
                MatRef::row_major(&dzu, batch, n_out, n_out).unwrap(),
                0.0,
                MatMut::row_major(&mut dwu, n_in, n_out, n_out).unwrap(),
                &o,
            )
            .unwrap();
            for (d, &wv) in dwu.iter_mut().zip(&w) {
                *d += l2 * wv;
            }
            let mut dxu = vec![0.0f32; batch * n_in];
            gemm_with(
                1.0,
                MatRef::row_major(&dzu, batch, n_out, n_out).unwrap(),
                MatRef::row_major(&w, n_in, n_out, n_out).unwrap().t(),
                0.0,
                MatMut::row_major(&mut dxu, batch, n_in, n_in).unwrap(),
                &o,
            )
            .unwrap();
            let tag = format!("{act:?} {s:?}");
            assert!(dz.iter().zip(&dzu).all(|(p, q)| p.to_bits() == q.to_bits()), "{tag}: dZ differs");
            for j in 0..n_out {
                let mag: f64 = (0..batch).map(|r| dzu[r * n_out + j].abs() as f64).sum();
                let tol = (batch as f64 + 2.0) * eps * mag + 1e-30;
                assert!((db[j] - dbu[j]).abs() as f64 <= tol, "{tag}: db[{j}] {} vs {}", db[j], dbu[j]);
            }
            for p in 0..n_in {
                for j in 0..n_out {
                    let mag: f64 = (0..batch).map(|r| (x[r * n_in + p] * dzu[r * n_out + j]).abs() as f64).sum::<f64>()
                        + (l2 * w[p * n_out + j]).abs() as f64;
                    let tol = (batch as f64 + 2.0) * eps * mag + 1e-30;
                    let (f, u) = (dw[p * n_out + j], dwu[p * n_out + j]);
                    assert!((f - u).abs() as f64 <= tol, "{tag}: dW[{p},{j}] {f} vs {u} (tol {tol:e})");
                }
            }
            for r in 0..batch {
                for p in 0..n_in {
                    let mag: f64 = (0..n_out).map(|j| (dzu[r * n_out + j] * w[p * n_out + j]).abs() as f64).sum();
                    let tol = (n_out as f64 + 2.0) * eps * mag + 1e-30;
                    let (f, u) = (dx[r * n_in + p], dxu[r * n_in + p]);
                    assert!((f - u).abs() as f64 <= tol, "{tag}: dX[{r},{p}] {f} vs {u}");
                }
            }
        }
    }
}

/// Softmax + cross-entropy in one pass against the unfused composition:
/// the softmax activation, then `−Σ y·ln p / batch` and `(P − Y)/batch` from
/// P. Loss within 1e-6 relative, gradient within 4·2⁻²³ of 1/batch absolute
/// (both compute P to a few ULP; the fused pass never forms ln p from P).
#[test]
fn softmax_cross_entropy_fused_equals_unfused() {
    let mut rng = Rng(12);
    for &(batch, classes) in &[(1usize, 1usize), (1, 2), (7, 10), (32, 10), (5, 33)] {
        let logits = rng.vec_24bit(batch * classes, 6.0);
        let labels: Vec<u32> = (0..batch).map(|i| ((i * 7 + 3) % classes) as u32).collect();
        let mut y = vec![0.0f32; batch * classes];
        for (r, &c) in labels.iter().enumerate() {
            y[r * classes + c as usize] = 1.0;
        }
        let (mut d, mut ds) = (vec![0.0f32; batch * classes], vec![0.0f32; batch * classes]);
        let loss = softmax_cross_entropy(batch, classes, &logits, &y, &mut d).unwrap();
        let loss_s = softmax_cross_entropy_sparse(batch, classes, &logits, &labels, &mut ds).unwrap();
        let mut p = vec![0.0f32; batch * classes];
        activation_forward_isa(Isa::current(), Activation::Softmax, batch, classes, &logits, &mut p).unwrap();
        let lu: f64 = -(0..batch * classes).map(|i| y[i] as f64 * (p[i] as f64).ln()).sum::<f64>() / batch as f64;
        let tag = format!("{batch}x{classes}");
        assert!(close(loss, lu, 1e-6, 1e-7), "{tag}: loss {loss} vs unfused {lu}");
        assert_eq!(loss.to_bits(), loss_s.to_bits(), "{tag}: sparse and dense losses");
        assert!(d.iter().zip(&ds).all(|(a, b)| a.to_bits() == b.to_bits()), "{tag}: sparse and dense gradients");
        let tol = 4.0 * f32::EPSILON / batch as f32;
        for i in 0..batch * classes {
            let du = (p[i] - y[i]) / batch as f32;
            assert!((d[i] - du).abs() <= tol, "{tag}: dlogits[{i}] {} vs unfused {du}", d[i]);
        }
    }
}

/// A whole two-layer step: x → dense(relu) → dense(identity) → softmax CE;
/// gradients of every parameter against f64 finite differences of the loss.
/// The elementwise losses over many blocks (3 700 elements), with and without
/// a gradient, against f64; softmax + cross-entropy over 300 rows of 10 (past
/// the 256-row block of the short-row path) against f64, and rows of −∞ or NaN.
#[test]
fn losses_over_many_blocks_and_bad_rows() {
    let mut rng = Rng(14);
    let (rows, cols) = (100usize, 37usize);
    let p = rng.vec_24bit(rows * cols, 5.0);
    let t: Vec<f32> = (0..rows * cols).map(|i| (i % 3 == 0) as u32 as f32).collect();
    for kind in [Loss::SquaredError, Loss::BinaryCrossEntropy] {
        let mut g = vec![0.0f32; rows * cols];
        let l = elementwise_loss(kind, rows, cols, &p, &t, Some(&mut g)).unwrap();
        let l2 = elementwise_loss(kind, rows, cols, &p, &t, None).unwrap();
        assert_eq!(l.to_bits(), l2.to_bits(), "{kind:?}: the gradient does not change the loss");
        let want: f64 = p
            .iter()
            .zip(&t)
            .map(|(&a, &b)| {
                let (a, b) = (a as f64, b as f64);
                match kind {
                    Loss::SquaredError => 0.5 * (a - b) * (a - b),
                    _ => a.max(0.0) - a * b + (-a.abs()).exp().ln_1p(),
                }
            })
            .sum::<f64>()
            / rows as f64;
        assert!(close(l, want, 2e-6, 1e-7), "{kind:?}: {l} vs {want}");
        for i in 0..rows * cols {
            let (a, b) = (p[i] as f64, t[i] as f64);
            let gw = if kind == Loss::SquaredError { a - b } else { 1.0 / (1.0 + (-a).exp()) - b } / rows as f64;
            assert!(close(g[i], gw, 1e-5, 1e-8), "{kind:?} grad[{i}]");
        }
    }
    let mut pn = p.clone();
    pn[2000] = f32::NAN;
    assert!(elementwise_loss(Loss::SquaredError, rows, cols, &pn, &t, None).unwrap().is_nan());
    // Softmax + cross-entropy, 300 rows of 10.
    let (rows, k) = (300usize, 10usize);
    let z = rng.vec_24bit(rows * k, 8.0);
    let labels: Vec<u32> = (0..rows).map(|r| (r * 7 % k) as u32).collect();
    let mut d = vec![0.0f32; rows * k];
    let loss = softmax_cross_entropy_sparse(rows, k, &z, &labels, &mut d).unwrap();
    let mut want = 0.0f64;
    for r in 0..rows {
        let zr: Vec<f64> = z[r * k..(r + 1) * k].iter().map(|&v| v as f64).collect();
        let m = zr.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = zr.iter().map(|v| (v - m).exp()).sum();
        want += m + sum.ln() - zr[labels[r] as usize];
        for j in 0..k {
            let pj = (zr[j] - m).exp() / sum;
            let dj = (pj - (j == labels[r] as usize) as u32 as f64) / rows as f64;
            assert!(close(d[r * k + j], dj, 1e-5, 1e-9), "row {r} class {j}: {} vs {dj}", d[r * k + j]);
        }
    }
    assert!(close(loss, want / rows as f64, 1e-6, 1e-7), "{loss} vs {}", want / rows as f64);
    // A row of −∞ or with a NaN: NaN loss and NaN in that row only.
    for bad in [f32::NEG_INFINITY, f32::NAN] {
        let mut zb = z[..3 * k].to_vec();
        if bad.is_nan() {
            zb[k + 4] = bad;
        } else {
            zb[k..2 * k].fill(bad);
        }
        let mut db = vec![0.0f32; 3 * k];
        let l = softmax_cross_entropy_sparse(3, k, &zb, &labels[..3], &mut db).unwrap();
        assert!(l.is_nan(), "{bad}: loss {l}");
        assert!(db[k..2 * k].iter().all(|v| v.is_nan()), "{bad}: the bad row");
        assert!(db[..k].iter().chain(&db[2 * k..]).all(|v| v.is_finite()), "{bad}: the other rows");
    }
}

#[test]
fn two_layer_step_matches_finite_differences() {
    let mut rng = Rng(6);
    let (batch, n_in, hid, k) = (6usize, 5usize, 7usize, 4usize);
    let x = rng.vec_24bit(batch * n_in, 1.0);
    let w1 = rng.vec_24bit(n_in * hid, 0.6);
    let b1 = rng.vec_24bit(hid, 0.3);
    let w2 = rng.vec_24bit(hid * k, 0.6);
    let b2 = rng.vec_24bit(k, 0.3);
    let labels: Vec<u32> = (0..batch).map(|i| (i % k) as u32).collect();
    let l2 = 0.05f32;
    let o = GemmOptions::default();
    let (s1, s2) = (DenseShape { batch, n_in, n_out: hid }, DenseShape { batch, n_in: hid, n_out: k });
    let (mut z1, mut a1, mut z2) = (vec![0.0; batch * hid], vec![0.0; batch * hid], vec![0.0; batch * k]);
    dense_forward(Activation::Relu, s1, &x, &w1, &b1, Some(&mut z1), &mut a1, &o).unwrap();
    let mut logits = vec![0.0; batch * k];
    dense_forward(Activation::Identity, s2, &a1, &w2, &b2, Some(&mut z2), &mut logits, &o).unwrap();
    let mut dlog = vec![0.0; batch * k];
    softmax_cross_entropy_sparse(batch, k, &logits, &labels, &mut dlog).unwrap();
    let (mut dw2, mut db2, mut da1, mut dz2) =
        (vec![0.0; hid * k], vec![0.0; k], vec![0.0; batch * hid], vec![0.0; batch * k]);
    dense_backward(
        Activation::Identity,
        s2,
        &a1,
        &w2,
        &z2,
        &logits,
        &dlog,
        l2,
        DenseGrads { dw: &mut dw2, db: &mut db2, dx: Some(&mut da1), dz: &mut dz2 },
        &o,
    )
    .unwrap();
    let (mut dw1, mut db1, mut dz1) = (vec![0.0; n_in * hid], vec![0.0; hid], vec![0.0; batch * hid]);
    dense_backward(
        Activation::Relu,
        s1,
        &x,
        &w1,
        &z1,
        &a1,
        &da1,
        l2,
        DenseGrads { dw: &mut dw1, db: &mut db1, dx: None, dz: &mut dz1 },
        &o,
    )
    .unwrap();

    let loss = |p: &[Vec<f64>]| -> f64 {
        let h1 = ref_dense(Activation::Relu, s1, &f64v(&x), &p[0], &p[1]);
        let lg = ref_dense(Activation::Identity, s2, &h1, &p[2], &p[3]);
        let mut l = 0.0;
        for r in 0..batch {
            let ls = ref_fwd(Activation::LogSoftmax, &lg[r * k..(r + 1) * k]);
            l -= ls[labels[r] as usize];
        }
        l / batch as f64
            + 0.5 * l2 as f64 * (p[0].iter().map(|v| v * v).sum::<f64>() + p[2].iter().map(|v| v * v).sum::<f64>())
    };
    let params = vec![f64v(&w1), f64v(&b1), f64v(&w2), f64v(&b2)];
    let grads = [&dw1, &db1, &dw2, &db2];
    let h = 1e-5;
    for (pi, g) in grads.iter().enumerate() {
        for i in 0..g.len() {
            let mut pp = params.clone();
            pp[pi][i] += h;
            let mut pm = params.clone();
            pm[pi][i] -= h;
            let fd = (loss(&pp) - loss(&pm)) / (2.0 * h);
            assert!(close(g[i], fd, 3e-3, 2e-5), "param {pi}[{i}]: analytic {} vs fd {fd}", g[i]);
        }
    }
}

#[test]
fn fused_steps_identical_across_thread_counts() {
    let mut rng = Rng(7);
    let s = DenseShape { batch: 256, n_in: 784, n_out: 128 };
    let x = rng.vec_24bit(256 * 784, 1.0);
    let w = rng.vec_24bit(784 * 128, 0.05);
    let b = rng.vec_24bit(128, 0.1);
    let da = rng.vec_24bit(256 * 128, 0.1);
    for act in [Activation::Relu, Activation::Sigmoid, Activation::Tanh, Activation::Gelu, Activation::Elu(1.0)] {
        let mut base: Option<Vec<Vec<f32>>> = None;
        for t in [1usize, 2, 4] {
            let o = GemmOptions { par: Par::Threads(t), ..Default::default() };
            let (mut z, mut a) = (vec![0.0; 256 * 128], vec![0.0; 256 * 128]);
            dense_forward(act, s, &x, &w, &b, Some(&mut z), &mut a, &o).unwrap();
            let (mut dw, mut db, mut dx, mut dz) =
                (vec![0.0; 784 * 128], vec![0.0; 128], vec![0.0; 256 * 784], vec![0.0; 256 * 128]);
            let g = DenseGrads { dw: &mut dw, db: &mut db, dx: Some(&mut dx), dz: &mut dz };
            dense_backward(act, s, &x, &w, &z, &a, &da, 1e-4, g, &o).unwrap();
            let cur = vec![z, a, dz, db, dw, dx];
            match &base {
                None => base = Some(cur),
                Some(b0) => {
                    for (i, name) in ["z", "a", "dz", "db", "dw", "dx"].iter().enumerate() {
                        let same = b0[i].iter().zip(&cur[i]).all(|(u, v)| u.to_bits() == v.to_bits());
                        assert!(same, "{act:?}: {name} differs with {t} threads");
                    }
                }
            }
        }
    }
}

/// Plain SGD and heavy-ball momentum (scikit-learn/PyTorch form), with L2,
/// three steps each, against f64.
#[test]
fn plain_and_momentum_sgd_match_f64_reference() {
    let mut rng = Rng(13);
    let n = 517;
    let w0 = rng.vec_24bit(n, 1.0);
    let g = rng.vec_24bit(n, 0.5);
    let l2 = 0.02f32;
    for mu in [0.0f32, 0.9] {
        let (mut w, mut v) = (w0.clone(), if mu > 0.0 { vec![0.0f32; n] } else { Vec::new() });
        let (mut wr, mut vr) = (f64v(&w0), vec![0.0f64; n]);
        for _ in 0..3 {
            sgd_step(&mut w, &g, &mut v, 0.1, mu, false, l2).unwrap();
            for i in 0..n {
                let gg = g[i] as f64 + l2 as f64 * wr[i];
                if mu > 0.0 {
                    vr[i] = mu as f64 * vr[i] - 0.1 * gg;
                    wr[i] += vr[i];
                } else {
                    wr[i] -= 0.1 * gg;
                }
            }
        }
        for i in 0..n {
            assert!(close(w[i], wr[i], 1e-5, 1e-6), "mu {mu}: w[{i}] {} vs {}", w[i], wr[i]);
            if mu > 0.0 {
                assert!(close(v[i], vr[i], 1e-5, 1e-6), "mu {mu}: v[{i}]");
            }
        }
    }
}

#[test]
fn optimizers_match_f64_reference() {
    let mut rng = Rng(8);
    let n = 1003;
    let w0 = rng.vec_24bit(n, 1.0);
    let g = rng.vec_24bit(n, 0.5);
    let l2 = 0.01f32;
    // SGD with Nesterov momentum, two steps.
    let (mut w, mut v) = (w0.clone(), vec![0.0f32; n]);
    let (mut wr, mut vr) = (f64v(&w0), vec![0.0f64; n]);
    for _ in 0..2 {
        sgd_step(&mut w, &g, &mut v, 0.1, 0.9, true, l2).unwrap();
        for i in 0..n {
            let gg = g[i] as f64 + l2 as f64 * wr[i];
            vr[i] = 0.9 * vr[i] - 0.1 * gg;
            wr[i] += 0.9 * vr[i] - 0.1 * gg;
        }
    }
    for i in 0..n {
        assert!(close(w[i], wr[i], 1e-5, 1e-6), "sgd {i}");
    }
    // Adam, three steps, and AdamW.
    let p = AdamParams::default();
    for decoupled in [false, true] {
        let (mut w, mut m, mut vv) = (w0.clone(), vec![0.0; n], vec![0.0; n]);
        let (mut wr, mut mr, mut vr) = (f64v(&w0), vec![0.0f64; n], vec![0.0f64; n]);
        for t in 1..=3u64 {
            if decoupled {
                adamw_step(&mut w, &g, &mut m, &mut vv, t, &p, l2).unwrap();
            } else {
                adam_step(&mut w, &g, &mut m, &mut vv, t, &p, l2).unwrap();
            }
            for i in 0..n {
                let gg = g[i] as f64 + if decoupled { 0.0 } else { l2 as f64 * wr[i] };
                mr[i] = 0.9 * mr[i] + 0.1 * gg;
                vr[i] = 0.999 * vr[i] + 0.001 * gg * gg;
                let mh = mr[i] / (1.0 - 0.9f64.powi(t as i32));
                let vh = vr[i] / (1.0 - 0.999f64.powi(t as i32));
                if decoupled {
                    wr[i] -= 1e-3 * l2 as f64 * wr[i];
                }
                wr[i] -= 1e-3 * mh / (vh.sqrt() + 1e-8);
            }
        }
        for i in 0..n {
            assert!(close(w[i], wr[i], 1e-5, 1e-6), "adam(w={decoupled}) {i}: {} vs {}", w[i], wr[i]);
        }
    }
    // RMSprop.
    let (mut w, mut sq) = (w0.clone(), vec![0.0; n]);
    rmsprop_step(&mut w, &g, &mut sq, 0.01, 0.9, 1e-8, l2).unwrap();
    for i in 0..n {
        let gg = g[i] as f64 + l2 as f64 * w0[i] as f64;
        let s = 0.1 * gg * gg;
        assert!(close(w[i], w0[i] as f64 - 0.01 * gg / (s.sqrt() + 1e-8), 1e-5, 1e-6));
    }
    // Clipping.
    let mut gc = vec![3.0f32, 4.0];
    assert_eq!(clip_grad_norm(&mut gc, 1.0).unwrap(), 5.0);
    assert!((gc[0] - 0.6).abs() < 1e-6 && (gc[1] - 0.8).abs() < 1e-6);
    // A long random gradient against the f64 norm (vector sums, 2⁻¹⁸ relative).
    let mut gl = rng.vec_24bit(10_007, 2.0);
    let want = gl.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
    let before = gl.clone();
    let got = clip_grad_norm(&mut gl, 1.0).unwrap() as f64;
    assert!((got - want).abs() <= want * 4e-6, "norm {got} vs {want}");
    for (a, b) in gl.iter().zip(&before) {
        assert!(close(*a, *b as f64 / want, 1e-5, 1e-12));
    }
    // Finite elements whose squares overflow f32: still a finite norm, clipped.
    // (70 elements: past one vector, so the f32 vector accumulators overflow.)
    let mut big = vec![0.0f32; 70];
    (big[10], big[50], big[69]) = (3e20, -4e20, 1.0);
    assert!(((clip_grad_norm(&mut big, 10.0).unwrap() as f64) - 5e20).abs() < 5e20 * 1e-6);
    assert!((big[10] - 6.0).abs() < 1e-5 && (big[50] + 8.0).abs() < 1e-5);
    let mut inf = vec![1.0f32; 70];
    inf[40] = f32::INFINITY;
    let keep = inf.clone();
    assert!(matches!(clip_grad_norm(&mut inf, 1.0), Err(nnkern::Error::NonFinite(_))));
    assert_eq!(inf, keep, "untouched on error");
    // Bad hyper-parameters.
    assert!(adam_step(&mut w, &g, &mut m_zero(n), &mut m_zero(n), 0, &p, 0.0).is_err());
    assert!(sgd_step(&mut w, &g, &mut [], f32::NAN, 0.0, false, 0.0).is_err());
    assert!(sgd_step(&mut w, &g[1..], &mut [], 0.1, 0.0, false, 0.0).is_err());
}

fn m_zero(n: usize) -> Vec<f32> {
    vec![0.0; n]
}

/// `first_non_finite` against `position(!is_finite)`: every length up to 600
/// (block edges at 256 and 512), each non-finite kind at every block offset,
/// and the finite extremes (f32::MAX, subnormals, -0.0) never reported.
#[test]
fn first_non_finite_matches_scalar_scan() {
    use nnkern::simd::reduce::{all_finite, first_non_finite};
    let finite = [0.0, -0.0, 1.0, -3.5, f32::MAX, f32::MIN, f32::MIN_POSITIVE, 1e-45, -1e-45];
    for len in [0usize, 1, 2, 7, 255, 256, 257, 511, 512, 513, 600] {
        let base: Vec<f32> = (0..len).map(|i| finite[i % finite.len()]).collect();
        assert_eq!(first_non_finite(&base), None, "len {len}");
        assert!(all_finite(&base));
        for &bad in &[f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -f32::NAN] {
            for pos in [0, len / 3, len.saturating_sub(1), 255, 256, 300] {
                if pos >= len {
                    continue;
                }
                let mut v = base.clone();
                v[pos] = bad;
                if pos + 5 < len {
                    v[pos + 5] = f32::NAN; // a later one is not the answer
                }
                assert_eq!(first_non_finite(&v), v.iter().position(|x| !x.is_finite()), "len {len} pos {pos}");
                assert_eq!(first_non_finite(&v), Some(pos));
                assert!(!all_finite(&v));
            }
        }
    }
}

/// The optimizer steps split large buffers over threads: the same bits for 1,
/// 2, 3 and 4 threads, for every rule, on a length that is not a multiple of
/// the split (and equal to the single-threaded public functions).
#[test]
fn optimizer_steps_same_bits_any_thread_count() {
    use nnkern::optim::{adam_step_par, adamw_step_par, rmsprop_step_par, sgd_step_par};
    // Four tasks of at least 128 Ki elements each, and a remainder.
    let n = 600_003;
    let w0: Vec<f32> = (0..n).map(|i| ((i * 37 % 1001) as f32 - 500.0) * 1e-3).collect();
    let g: Vec<f32> = (0..n).map(|i| ((i * 91 % 997) as f32 - 498.0) * 1e-4).collect();
    let p = AdamParams { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8 };
    let run = |par: Par| -> Vec<Vec<f32>> {
        let mut out = Vec::new();
        for rule in 0..5 {
            let (mut w, mut s1, mut s2) = (w0.clone(), vec![0.01f32; n], vec![0.02f32; n]);
            for t in 1..=3 {
                match rule {
                    0 => sgd_step_par(&mut w, &g, &mut [], 0.1, 0.0, false, 1e-4, par).unwrap(),
                    1 => sgd_step_par(&mut w, &g, &mut s1, 0.1, 0.9, true, 1e-4, par).unwrap(),
                    2 => adam_step_par(&mut w, &g, &mut s1, &mut s2, t, &p, 1e-4, par).unwrap(),
                    3 => adamw_step_par(&mut w, &g, &mut s1, &mut s2, t, &p, 1e-2, par).unwrap(),
                    _ => rmsprop_step_par(&mut w, &g, &mut s1, 1e-3, 0.9, 1e-8, 1e-4, par).unwrap(),
                }
            }
            out.extend([w, s1, s2]);
        }
        out
    };
    let base = run(Par::Seq);
    for t in [1, 2, 3, 4] {
        let r = run(Par::Threads(t));
        for (a, b) in base.iter().zip(&r) {
            assert!(a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits()), "{t} threads differ");
        }
    }
    let mut w = w0.clone();
    let (mut m, mut v) = (vec![0.01f32; n], vec![0.02f32; n]);
    for t in 1..=3 {
        adam_step(&mut w, &g, &mut m, &mut v, t, &p, 1e-4).unwrap();
    }
    assert!(w.iter().zip(&base[6]).all(|(x, y)| x.to_bits() == y.to_bits()));
}

#[test]
fn step_rule_matches_the_step_functions_bit_for_bit() {
    use nnkern::optim::StepRule;
    // Odd length: full vectors and a partial tail.
    let n = 1_037;
    let w0: Vec<f32> = (0..n).map(|i| ((i * 37 % 1001) as f32 - 500.0) * 1e-3).collect();
    let g: Vec<f32> = (0..n).map(|i| ((i * 91 % 997) as f32 - 498.0) * 1e-4).collect();
    let p = AdamParams { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8 };
    let same = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
    for rule in 0..6 {
        let (mut w1, mut a1, mut b1) = (w0.clone(), vec![0.01f32; n], vec![0.02f32; n]);
        let (mut w2, mut a2, mut b2) = (w0.clone(), vec![0.01f32; n], vec![0.02f32; n]);
        for t in 1..=3u64 {
            let r = match rule {
                0 => {
                    sgd_step(&mut w1, &g, &mut [], 0.1, 0.0, false, 1e-4).unwrap();
                    StepRule::sgd(0.1, 0.0, false, 1e-4)
                }
                1 => {
                    sgd_step(&mut w1, &g, &mut a1, 0.1, 0.9, false, 1e-4).unwrap();
                    StepRule::sgd(0.1, 0.9, false, 1e-4)
                }
                2 => {
                    sgd_step(&mut w1, &g, &mut a1, 0.1, 0.9, true, 1e-4).unwrap();
                    StepRule::sgd(0.1, 0.9, true, 1e-4)
                }
                3 => {
                    adam_step(&mut w1, &g, &mut a1, &mut b1, t, &p, 1e-4).unwrap();
                    StepRule::adam(&p, t, 1e-4)
                }
                4 => {
                    adamw_step(&mut w1, &g, &mut a1, &mut b1, t, &p, 1e-2).unwrap();
                    StepRule::adamw(&p, t, 1e-2)
                }
                _ => {
                    rmsprop_step(&mut w1, &g, &mut a1, 1e-3, 0.9, 1e-8, 1e-4).unwrap();
                    StepRule::rmsprop(1e-3, 0.9, 1e-8, 1e-4)
                }
            }
            .unwrap();
            r.apply(&mut w2, &g, &mut a2, &mut b2, Par::Threads(3)).unwrap();
        }
        assert!(same(&w1, &w2) && same(&a1, &a2) && same(&b1, &b2), "rule {rule}");
    }
    // Bad hyper-parameters and state lengths are refused, and nothing is written.
    assert!(StepRule::adam(&p, 0, 0.0).is_err());
    assert!(StepRule::sgd(f32::NAN, 0.0, false, 0.0).is_err());
    assert!(StepRule::sgd(0.1, 1.0, false, 0.0).is_err());
    assert!(StepRule::rmsprop(0.1, 0.9, 0.0, 0.0).is_err());
    let r = StepRule::adam(&p, 1, 0.0).unwrap();
    assert_eq!(r.state_buffers(), 2);
    let mut w = w0.clone();
    assert!(r.apply(&mut w, &g, &mut vec![0.0; n], &mut vec![0.0; n - 1], Par::Seq).is_err());
    assert!(r.apply(&mut w, &g[1..], &mut vec![0.0; n], &mut vec![0.0; n], Par::Seq).is_err());
    assert!(same(&w, &w0));
}
