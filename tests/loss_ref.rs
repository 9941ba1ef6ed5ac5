//! Losses (softmax cross-entropy, dense and sparse labels; squared error;
//! binary cross-entropy) against float64 references and central finite
//! differences; the fused softmax + cross-entropy against the unfused
//! composition; many blocks and bad rows.
//!
//! Bounds asserted: forward values within `4 ULP + 1e-6·|x|`-style relative
//! tolerances stated per check; analytic gradients within 2e-3 relative
//! (+1e-5 absolute) of f64 central differences (h = 1e-3 on inputs of O(1)).

mod common;

use common::Rng;
use common::oracle::{close, ref_fwd};
use nnkern::ops::act::{Activation, activation_forward};
use nnkern::ops::loss::{Loss, elementwise_loss, softmax_cross_entropy, softmax_cross_entropy_sparse};

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
        activation_forward(Activation::Softmax, batch, classes, &logits, &mut p).unwrap();
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
