//! One training epoch of a 784-128(relu)-10(softmax) MLP with Adam on
//! synthetic MNIST-shaped data (6 000 samples, a tenth of MNIST, so a sample
//! takes seconds, not minutes), batch 32 and 256, 1 thread and all threads,
//! against a naive-loop implementation of the same step.
//! Throughput is in samples per second.
//!
//! `*_sparse_data`: the same stripes on a zero background (30% of the pixels
//! nonzero; MNIST has 19%), trained with the sparse first layer that
//! `SparseInput::Auto` picks for it and, forced, with the dense one. Each
//! sample is one `fit` of one epoch, so the sparse runs include finding the
//! data's nonzeros (once per fit).
//!
//! `cargo bench -p nnkern-bench --bench train`, then `python3 bench/report.py train_`.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use nnkern::nn::{Layer, Mlp, SparseInput, Targets, Task, TrainConfig};
use nnkern::ops::Activation;
use nnkern::par::Par;
use std::time::Duration;

const N: usize = 6000;
const D: usize = 784;
const H: usize = 128;
const K: usize = 10;

fn data() -> (Vec<f32>, Vec<u32>) {
    data_with(0.3)
}

/// The stripes alone, background 0.
fn sparse_data() -> (Vec<f32>, Vec<u32>) {
    data_with(0.0)
}

fn data_with(background: f32) -> (Vec<f32>, Vec<u32>) {
    let mut x = vec![0.0f32; N * D];
    let mut y = vec![0u32; N];
    let mut s = 12345u64;
    for i in 0..N {
        let c = (i % K) as u32;
        y[i] = c;
        for j in 0..D {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let noise = (s >> 40) as f32 / (1u64 << 24) as f32;
            // A class-dependent stripe plus noise, pixels in [0, 1].
            x[i * D + j] = if (j / 28 + c as usize) % 10 < 3 { 0.5 + 0.5 * noise } else { background * noise };
        }
    }
    (x, y)
}

/// The same step written as plain loops: forward, softmax cross-entropy,
/// backward, L2 (alpha 1e-4, as nnkern's default), Adam, one thread.
struct Naive {
    w1: Vec<f32>,
    b1: Vec<f32>,
    w2: Vec<f32>,
    b2: Vec<f32>,
    m: Vec<f32>,
    v: Vec<f32>,
    t: i32,
}

impl Naive {
    fn new() -> Naive {
        let p = D * H + H + H * K + K;
        let f = |n: usize, s: f32| (0..n).map(|i| (((i * 7919) % 1000) as f32 / 500.0 - 1.0) * s).collect::<Vec<_>>();
        Naive {
            w1: f(D * H, 0.05),
            b1: vec![0.0; H],
            w2: f(H * K, 0.1),
            b2: vec![0.0; K],
            m: vec![0.0; p],
            v: vec![0.0; p],
            t: 0,
        }
    }

    fn epoch(&mut self, x: &[f32], y: &[u32], bs: usize) {
        let mut h = vec![0.0f32; bs * H];
        let mut o = vec![0.0f32; bs * K];
        for start in (0..N).step_by(bs) {
            let b = bs.min(N - start);
            let xb = &x[start * D..(start + b) * D];
            for r in 0..b {
                for j in 0..H {
                    let mut s = self.b1[j];
                    for p in 0..D {
                        s += xb[r * D + p] * self.w1[p * H + j];
                    }
                    h[r * H + j] = s.max(0.0);
                }
                let mut mx = f32::NEG_INFINITY;
                for j in 0..K {
                    let mut s = self.b2[j];
                    for p in 0..H {
                        s += h[r * H + p] * self.w2[p * K + j];
                    }
                    o[r * K + j] = s;
                    mx = mx.max(s);
                }
                let sum: f32 = (0..K).map(|j| (o[r * K + j] - mx).exp()).sum();
                for j in 0..K {
                    o[r * K + j] =
                        ((o[r * K + j] - mx).exp() / sum - (j as u32 == y[start + r]) as u32 as f32) / b as f32;
                }
            }
            let mut g = vec![0.0f32; self.m.len()];
            let (gw1, rest) = g.split_at_mut(D * H);
            let (gb1, rest) = rest.split_at_mut(H);
            let (gw2, gb2) = rest.split_at_mut(H * K);
            let mut dh = vec![0.0f32; b * H];
            for r in 0..b {
                for j in 0..K {
                    let d = o[r * K + j];
                    gb2[j] += d;
                    for p in 0..H {
                        gw2[p * K + j] += h[r * H + p] * d;
                        dh[r * H + p] += d * self.w2[p * K + j];
                    }
                }
                for p in 0..H {
                    if h[r * H + p] <= 0.0 {
                        dh[r * H + p] = 0.0;
                    }
                    gb1[p] += dh[r * H + p];
                }
                for q in 0..D {
                    let xv = xb[r * D + q];
                    for p in 0..H {
                        gw1[q * H + p] += xv * dh[r * H + p];
                    }
                }
            }
            // L2 with scikit-learn's scaling (alpha 1e-4, nnkern's default):
            // alpha·W/batch on the weights, not the biases.
            let l2 = 1e-4 / b as f32;
            for (gw, w) in gw1.iter_mut().zip(&self.w1) {
                *gw += l2 * w;
            }
            for (gw, w) in gw2.iter_mut().zip(&self.w2) {
                *gw += l2 * w;
            }
            self.t += 1;
            let (c1, c2) = (1.0 - 0.9f32.powi(self.t), 1.0 - 0.999f32.powi(self.t));
            let mut i = 0;
            for param in [&mut self.w1, &mut self.b1, &mut self.w2, &mut self.b2] {
                for w in param.iter_mut() {
                    self.m[i] = 0.9 * self.m[i] + 0.1 * g[i];
                    self.v[i] = 0.999 * self.v[i] + 0.001 * g[i] * g[i];
                    *w -= 1e-3 * (self.m[i] / c1) / ((self.v[i] / c2).sqrt() + 1e-8);
                    i += 1;
                }
            }
        }
    }
}

fn epoch(c: &mut Criterion) {
    let (x, y) = data();
    let (xs, ys) = sparse_data();
    let all = nnkern::par::available_cores();
    // (id, data, threads, first-layer mode)
    let runs = [
        ("nnkern_1t", (&x, &y), 1usize, SparseInput::Auto),
        ("nnkern_all", (&x, &y), all, SparseInput::Auto),
        ("nnkern_1t_sparse_data", (&xs, &ys), 1, SparseInput::Auto),
        ("nnkern_1t_sparse_data_dense_path", (&xs, &ys), 1, SparseInput::Dense),
    ];
    for &bs in &[32usize, 256] {
        let mut g = c.benchmark_group(format!("train_epoch/batch{bs}"));
        g.throughput(Throughput::Elements(N as u64));
        g.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(4));
        for &(tag, (x, y), threads, mode) in &runs {
            let mut m =
                Mlp::new(D, &[Layer { units: H, activation: Activation::Relu }], K, Task::MultiClass, 0).unwrap();
            let cfg = TrainConfig {
                batch_size: bs,
                max_iter: 1,
                warm_start: true,
                par: if threads == 1 { Par::Seq } else { Par::Threads(threads) },
                sparse_input: mode,
                ..Default::default()
            };
            g.bench_function(BenchmarkId::from_parameter(tag), |bch| {
                bch.iter(|| m.fit(x, N, Targets::Labels(y), &cfg, None, None).unwrap())
            });
        }
        let mut naive = Naive::new();
        g.bench_function(BenchmarkId::from_parameter("naive"), |bch| bch.iter(|| naive.epoch(&x, &y, bs)));
        g.finish();
    }
}

criterion_group!(train_benches, epoch);
criterion_main!(train_benches);
