//! Every elementwise kernel against a naive scalar `std` loop, in elements per
//! second: the vector math (`exp`, `tanh`, …) at 4 Ki … 16 Mi f32 elements;
//! every activation forward and backward (`act_fwd/…`, `act_bwd/…`; softmax
//! and log-softmax over rows of 128), the elementwise losses with their
//! gradients (rows of 16 outputs) and softmax + cross-entropy fused against
//! softmax then the loss (`loss/…`, rows of 10 classes), and every optimizer step and gradient
//! clipping (`optim/…`), at 4 Ki (L1), 256 Ki (L2) and 16 Mi (memory) elements.
//!
//! Quick run: `cargo bench -p nnkern-bench --bench ops -- --warm-up-time 1 --measurement-time 2 'exp|tanh'`.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use nnkern::ops::act::{Activation, activation_backward, activation_forward};
use nnkern::ops::loss::{Loss, elementwise_loss, softmax_cross_entropy};
use nnkern::optim::{AdamParams, adam_step, adamw_step, clip_grad_norm, rmsprop_step, sgd_step};
use nnkern::simd::math::{vexp_f32, vgelu_f32, vlog_f32, vsigmoid_f32, vsoftplus_f32, vtanh_f32};
use std::hint::black_box;

const SIZES: [usize; 5] = [4 << 10, 64 << 10, 256 << 10, 1 << 20, 16 << 20];
/// L1, L2 and memory-sized buffers for the activation, loss and optimizer groups.
const LEVELS: [usize; 3] = [4 << 10, 256 << 10, 16 << 20];

type Kernel = fn(&[f32], &mut [f32]) -> nnkern::Result<()>;

/// A deterministic spread over `[lo, hi]` (golden-ratio sequence, so no two
/// neighbours are close and branchy scalar code sees no pattern).
fn inputs(n: usize, lo: f32, hi: f32) -> Vec<f32> {
    let g = 0.618_033_988_749_895_f64;
    (0..n).map(|i| (lo as f64 + (hi - lo) as f64 * ((i as f64 * g) % 1.0)) as f32).collect()
}

fn group(c: &mut Criterion, name: &str, ours: Kernel, naive: fn(f32) -> f32, lo: f32, hi: f32) {
    let mut g = c.benchmark_group(name);
    for n in SIZES {
        let x = inputs(n, lo, hi);
        let mut y = vec![0f32; n];
        g.throughput(Throughput::Elements(n as u64));
        g.sample_size(if n >= 1 << 20 { 10 } else { 50 });
        g.bench_function(BenchmarkId::new("nnkern", n), |b| b.iter(|| ours(black_box(&x), black_box(&mut y)).unwrap()));
        g.bench_function(BenchmarkId::new("naive", n), |b| {
            b.iter(|| {
                for (o, &v) in y.iter_mut().zip(black_box(&x)) {
                    *o = naive(v);
                }
                black_box(&mut y);
            })
        });
    }
    g.finish();
}

fn naive_gelu(x: f32) -> f32 {
    const C: f32 = 0.797_884_6; // √(2/π)
    0.5 * x * (1.0 + (C * (x + 0.044_715 * x * x * x)).tanh())
}

fn samples(n: usize) -> usize {
    if n >= 1 << 20 { 10 } else { 30 }
}

fn naive_act(act: Activation, x: f32) -> f32 {
    match act {
        Activation::Identity => x,
        Activation::Relu => x.max(0.0),
        Activation::LeakyRelu(a) => {
            if x > 0.0 {
                x
            } else {
                a * x
            }
        }
        Activation::Elu(a) => {
            if x > 0.0 {
                x
            } else {
                a * x.exp_m1()
            }
        }
        Activation::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        Activation::Tanh => x.tanh(),
        Activation::Softplus => x.max(0.0) + (-x.abs()).exp().ln_1p(),
        Activation::Gelu => naive_gelu(x),
        Activation::Softmax | Activation::LogSoftmax => unreachable!("row-wise"),
        other => unimplemented!("no naive form of {other:?}"),
    }
}

/// f′(x) of the naive forms, from x.
fn naive_deriv(act: Activation, x: f32) -> f32 {
    match act {
        Activation::Identity => 1.0,
        Activation::Relu => (x > 0.0) as u32 as f32,
        Activation::LeakyRelu(a) => {
            if x > 0.0 {
                1.0
            } else {
                a
            }
        }
        Activation::Elu(a) => {
            if x > 0.0 {
                1.0
            } else {
                a * x.exp()
            }
        }
        Activation::Sigmoid => {
            let s = 1.0 / (1.0 + (-x).exp());
            s * (1.0 - s)
        }
        Activation::Tanh => 1.0 - x.tanh().powi(2),
        Activation::Softplus => 1.0 / (1.0 + (-x).exp()),
        Activation::Gelu => {
            const C: f32 = 0.797_884_6;
            let u = C * (x + 0.044_715 * x * x * x);
            let t = u.tanh();
            0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * C * (1.0 + 3.0 * 0.044_715 * x * x)
        }
        Activation::Softmax | Activation::LogSoftmax => unreachable!("row-wise"),
        other => unimplemented!("no naive form of {other:?}"),
    }
}

fn naive_softmax_rows(x: &[f32], y: &mut [f32], cols: usize, log: bool) {
    for (xr, yr) in x.chunks(cols).zip(y.chunks_mut(cols)) {
        let m = xr.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let s: f32 = xr.iter().map(|&v| (v - m).exp()).sum();
        for (o, &v) in yr.iter_mut().zip(xr) {
            *o = if log { v - m - s.ln() } else { (v - m).exp() / s };
        }
    }
}

fn activations(c: &mut Criterion) {
    let acts = [
        ("relu", Activation::Relu),
        ("leaky_relu", Activation::LeakyRelu(0.01)),
        ("elu", Activation::Elu(1.0)),
        ("sigmoid", Activation::Sigmoid),
        ("tanh", Activation::Tanh),
        ("softplus", Activation::Softplus),
        ("gelu", Activation::Gelu),
        ("softmax", Activation::Softmax),
        ("log_softmax", Activation::LogSoftmax),
    ];
    let cols = 128;
    for (name, act) in acts {
        let rowwise = matches!(act, Activation::Softmax | Activation::LogSoftmax);
        for dir in ["act_fwd", "act_bwd"] {
            let mut g = c.benchmark_group(format!("{dir}/{name}"));
            for n in LEVELS {
                let rows = n / cols;
                let x = inputs(n, -6.0, 6.0);
                let dy = inputs(n, -1.0, 1.0);
                let mut y = vec![0f32; n];
                activation_forward(act, rows, cols, &x, &mut y).unwrap();
                let mut dx = vec![0f32; n];
                g.throughput(Throughput::Elements(n as u64));
                g.sample_size(samples(n));
                if dir == "act_fwd" {
                    let mut out = vec![0f32; n];
                    g.bench_function(BenchmarkId::new("nnkern", n), |b| {
                        b.iter(|| activation_forward(act, rows, cols, black_box(&x), black_box(&mut out)).unwrap())
                    });
                    g.bench_function(BenchmarkId::new("naive", n), |b| {
                        b.iter(|| {
                            if rowwise {
                                naive_softmax_rows(black_box(&x), &mut out, cols, act == Activation::LogSoftmax);
                            } else {
                                for (o, &v) in out.iter_mut().zip(black_box(&x)) {
                                    *o = naive_act(act, v);
                                }
                            }
                            black_box(&mut out);
                        })
                    });
                } else {
                    g.bench_function(BenchmarkId::new("nnkern", n), |b| {
                        b.iter(|| {
                            activation_backward(act, rows, cols, Some(&x), Some(&y), black_box(&dy), black_box(&mut dx))
                                .unwrap()
                        })
                    });
                    g.bench_function(BenchmarkId::new("naive", n), |b| {
                        b.iter(|| {
                            if rowwise {
                                // softmax: dx = y ⊙ (dy − Σ dy·y); log-softmax: dx = dy − softmax·Σ dy.
                                for r in 0..rows {
                                    let (yr, dyr) = (&y[r * cols..(r + 1) * cols], &dy[r * cols..(r + 1) * cols]);
                                    let dxr = &mut dx[r * cols..(r + 1) * cols];
                                    if act == Activation::Softmax {
                                        let dot: f32 = yr.iter().zip(dyr).map(|(a, b)| a * b).sum();
                                        for j in 0..cols {
                                            dxr[j] = yr[j] * (dyr[j] - dot);
                                        }
                                    } else {
                                        let s: f32 = dyr.iter().sum();
                                        for j in 0..cols {
                                            dxr[j] = dyr[j] - yr[j].exp() * s;
                                        }
                                    }
                                }
                            } else {
                                for ((o, &v), &d) in dx.iter_mut().zip(black_box(&x)).zip(&dy) {
                                    *o = d * naive_deriv(act, v);
                                }
                            }
                            black_box(&mut dx);
                        })
                    });
                }
            }
            g.finish();
        }
    }
}

fn losses(c: &mut Criterion) {
    let k = 10;
    for (name, kind) in [("squared_error", Loss::SquaredError), ("bce_logits", Loss::BinaryCrossEntropy)] {
        let mut g = c.benchmark_group(format!("loss/{name}"));
        for n in LEVELS {
            let p = inputs(n, -4.0, 4.0);
            let t: Vec<f32> = (0..n).map(|i| ((i * 7) % 2) as f32).collect();
            let mut d = vec![0f32; n];
            g.throughput(Throughput::Elements(n as u64));
            g.sample_size(samples(n));
            g.bench_function(BenchmarkId::new("nnkern", n), |b| {
                b.iter(|| elementwise_loss(kind, n / 16, 16, black_box(&p), &t, Some(black_box(&mut d))).unwrap())
            });
            g.bench_function(BenchmarkId::new("naive", n), |b| {
                b.iter(|| {
                    let inv = 1.0 / (n / 16) as f32;
                    let mut l = 0.0f64;
                    for ((o, &z), &y) in d.iter_mut().zip(black_box(&p)).zip(&t) {
                        if kind == Loss::SquaredError {
                            l += 0.5 * ((z - y) as f64).powi(2);
                            *o = (z - y) * inv;
                        } else {
                            l += (z.max(0.0) - z * y + (-z.abs()).exp().ln_1p()) as f64;
                            *o = (1.0 / (1.0 + (-z).exp()) - y) * inv;
                        }
                    }
                    black_box((l, &mut d));
                })
            });
        }
        g.finish();
    }
    // Softmax + cross-entropy in one pass against the unfused composition.
    let mut g = c.benchmark_group("loss/softmax_xent");
    for n in LEVELS {
        let rows = n / k;
        let z = inputs(rows * k, -6.0, 6.0);
        let mut y = vec![0f32; rows * k];
        for r in 0..rows {
            y[r * k + (r * 3) % k] = 1.0;
        }
        let (mut d, mut p) = (vec![0f32; rows * k], vec![0f32; rows * k]);
        g.throughput(Throughput::Elements((rows * k) as u64));
        g.sample_size(samples(n));
        g.bench_function(BenchmarkId::new("fused", n), |b| {
            b.iter(|| softmax_cross_entropy(rows, k, black_box(&z), &y, black_box(&mut d)).unwrap())
        });
        g.bench_function(BenchmarkId::new("unfused", n), |b| {
            b.iter(|| {
                activation_forward(Activation::Softmax, rows, k, black_box(&z), &mut p).unwrap();
                let inv = 1.0 / rows as f32;
                let mut l = 0.0f64;
                for ((o, &q), &t) in d.iter_mut().zip(&p).zip(&y) {
                    if t != 0.0 {
                        l -= (t * q.ln()) as f64;
                    }
                    *o = (q - t) * inv;
                }
                black_box((l, &mut d));
            })
        });
    }
    g.finish();
}

fn optimizers(c: &mut Criterion) {
    let p = AdamParams::default();
    for name in ["sgd", "momentum", "adam", "adamw", "rmsprop", "clip"] {
        let mut g = c.benchmark_group(format!("optim/{name}"));
        for n in LEVELS {
            let mut w = inputs(n, -1.0, 1.0);
            let gr = inputs(n, -0.01, 0.01);
            let (mut s1, mut s2) = (vec![0f32; n], vec![0f32; n]);
            let mut gc = gr.clone();
            g.throughput(Throughput::Elements(n as u64));
            g.sample_size(samples(n));
            g.bench_function(BenchmarkId::new("nnkern", n), |b| {
                b.iter(|| match name {
                    "sgd" => sgd_step(&mut w, &gr, &mut [], 1e-6, 0.0, false, 1e-4).unwrap(),
                    "momentum" => sgd_step(&mut w, &gr, &mut s1, 1e-6, 0.9, false, 1e-4).unwrap(),
                    "adam" => adam_step(&mut w, &gr, &mut s1, &mut s2, 10, &p, 1e-4).unwrap(),
                    "adamw" => adamw_step(&mut w, &gr, &mut s1, &mut s2, 10, &p, 1e-2).unwrap(),
                    "rmsprop" => rmsprop_step(&mut w, &gr, &mut s1, 1e-6, 0.9, 1e-8, 1e-4).unwrap(),
                    _ => {
                        clip_grad_norm(black_box(&mut gc), 1e9).unwrap();
                    }
                })
            });
            let (lr, l2, mu, b1, b2, eps, rho) = (1e-6f32, 1e-4f32, 0.9f32, 0.9f32, 0.999f32, 1e-8f32, 0.9f32);
            let (c1, c2) = (1.0 - b1.powi(10), 1.0 - b2.powi(10));
            g.bench_function(BenchmarkId::new("naive", n), |b| {
                b.iter(|| {
                    match name {
                        "sgd" => {
                            for (w, &g) in w.iter_mut().zip(black_box(&gr)) {
                                *w -= lr * (g + l2 * *w);
                            }
                        }
                        "momentum" => {
                            for ((w, &g), v) in w.iter_mut().zip(black_box(&gr)).zip(s1.iter_mut()) {
                                *v = mu * *v - lr * (g + l2 * *w);
                                *w += *v;
                            }
                        }
                        "adam" | "adamw" => {
                            for (((w, &g), m), v) in
                                w.iter_mut().zip(black_box(&gr)).zip(s1.iter_mut()).zip(s2.iter_mut())
                            {
                                let g = if name == "adam" { g + l2 * *w } else { g };
                                *m = b1 * *m + (1.0 - b1) * g;
                                *v = b2 * *v + (1.0 - b2) * g * g;
                                let upd = lr * (*m / c1) / ((*v / c2).sqrt() + eps);
                                *w -= if name == "adamw" { upd + lr * 1e-2 * *w } else { upd };
                            }
                        }
                        "rmsprop" => {
                            for ((w, &g), s) in w.iter_mut().zip(black_box(&gr)).zip(s1.iter_mut()) {
                                let g = g + l2 * *w;
                                *s = rho * *s + (1.0 - rho) * g * g;
                                *w -= lr * g / (s.sqrt() + eps);
                            }
                        }
                        _ => {
                            let norm = gc.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>().sqrt();
                            if norm > 1e9 {
                                let s = (1e9 / norm) as f32;
                                gc.iter_mut().for_each(|v| *v *= s);
                            }
                        }
                    }
                    black_box(&mut w);
                })
            });
        }
        g.finish();
    }
}

fn benches(c: &mut Criterion) {
    group(c, "exp", vexp_f32, f32::exp, -10.0, 10.0);
    group(c, "tanh", vtanh_f32, f32::tanh, -10.0, 10.0);
    group(c, "sigmoid", vsigmoid_f32, |x| 1.0 / (1.0 + (-x).exp()), -10.0, 10.0);
    group(c, "log", vlog_f32, f32::ln, 1e-6, 100.0);
    group(c, "gelu", vgelu_f32, naive_gelu, -10.0, 10.0);
    group(c, "softplus", vsoftplus_f32, |x| x.max(0.0) + (-x.abs()).exp().ln_1p(), -10.0, 10.0);
    activations(c);
    losses(c);
    optimizers(c);
}

criterion_group!(ops, benches);
criterion_main!(ops);
