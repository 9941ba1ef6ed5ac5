//! Optimizer steps (SGD, momentum, Adam, AdamW, RMSprop), gradient clipping
//! and the non-finite scan against float64 references; the same bits for any
//! thread count; `StepRule` against the step functions.

mod common;

use common::Rng;
use common::oracle::{close, f64v};
use nnkern::Options;
use nnkern::optim::{AdamParams, adam_step, adamw_step, clip_grad_norm, rmsprop_step, sgd_step};
use nnkern::par::Par;

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
    use nnkern::optim::{adam_step_with, adamw_step_with, rmsprop_step_with, sgd_step_with};
    // Four tasks of at least 8 Ki elements each (the per-task chunk), and a remainder.
    let n = 600_003;
    let w0: Vec<f32> = (0..n).map(|i| ((i * 37 % 1001) as f32 - 500.0) * 1e-3).collect();
    let g: Vec<f32> = (0..n).map(|i| ((i * 91 % 997) as f32 - 498.0) * 1e-4).collect();
    let p = AdamParams { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8 };
    let run = |par: Par| -> Vec<Vec<f32>> {
        let o = Options { par, ..Default::default() };
        let mut out = Vec::new();
        for rule in 0..5 {
            let (mut w, mut s1, mut s2) = (w0.clone(), vec![0.01f32; n], vec![0.02f32; n]);
            for t in 1..=3 {
                match rule {
                    0 => sgd_step_with(&mut w, &g, &mut [], 0.1, 0.0, false, 1e-4, &o).unwrap(),
                    1 => sgd_step_with(&mut w, &g, &mut s1, 0.1, 0.9, true, 1e-4, &o).unwrap(),
                    2 => adam_step_with(&mut w, &g, &mut s1, &mut s2, t, &p, 1e-4, &o).unwrap(),
                    3 => adamw_step_with(&mut w, &g, &mut s1, &mut s2, t, &p, 1e-2, &o).unwrap(),
                    _ => rmsprop_step_with(&mut w, &g, &mut s1, 1e-3, 0.9, 1e-8, 1e-4, &o).unwrap(),
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
