//! Fused dense-layer steps (`nnkern::ops::fused`) against float64 references,
//! central finite differences and the unfused composition; a two-layer step;
//! thread invariance.
//!
//! Bounds asserted: forward values within `4 ULP + 1e-6·|x|`-style relative
//! tolerances stated per check; analytic gradients within 2e-3 relative
//! (+1e-5 absolute) of f64 central differences (h = 1e-3 on inputs of O(1)).

mod common;

use common::Rng;
use common::oracle::{ACTS, close, f64v, ref_fwd};
use nnkern::gemm::{GemmOptions, MatMut, MatRef, gemm_with};
use nnkern::ops::act::{Activation, activation_backward, activation_forward};
use nnkern::ops::fused::{DenseGrads, DenseShape, dense_backward, dense_forward};
use nnkern::ops::loss::softmax_cross_entropy_sparse;
use nnkern::par::Par;

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
            activation_forward(act, batch, n_out, &zu, &mut au).unwrap();
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
            activation_backward(act, batch, n_out, Some(&z), Some(&a), &da, &mut dzu).unwrap();
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

/// A whole two-layer step: x → dense(relu) → dense(identity) → softmax CE;
/// gradients of every parameter against f64 finite differences of the loss.
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
