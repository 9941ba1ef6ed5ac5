//! Fused steps vs their unfused compositions, and the optimizer against the
//! memory bandwidth measured in the same run.
//!
//! * dense forward at the MLP shapes: fused (GEMM with bias + relu in the
//!   write-out) vs unfused (GEMM, bias pass, activation pass);
//! * dense backward: fused (dz+db pass, L2 folded into the dW GEMM) vs
//!   unfused (activation backward, bias-gradient pass, GEMM, L2 pass, GEMM);
//! * softmax cross-entropy fused vs softmax pass + gradient pass;
//! * Adam over 1 Mi parameters vs a naive loop, and `copy` of the same number
//!   of bytes (7 × 4 MiB moved per step) as the bandwidth bound.
//!
//! `cargo bench -p nnkern-bench --bench fused`, then `python3 bench/report.py fused_ adam_`.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use nnkern::gemm::GemmOptions;
use nnkern::ops::Activation;
use nnkern::ops::act::activation_forward;
use nnkern::ops::fused::{DenseGrads, DenseShape, dense_backward, dense_forward};
use nnkern::ops::loss::softmax_cross_entropy_sparse;
use nnkern::optim::{AdamParams, adam_step};
use nnkern::par::Par;
use std::hint::black_box;
use std::time::Duration;

#[path = "common/unfused.rs"]
mod unfused;

fn vec(n: usize, s: f32) -> Vec<f32> {
    (0..n).map(|i| (((i * 7919) % 1000) as f32 / 500.0 - 1.0) * s).collect()
}

fn dense(c: &mut Criterion) {
    let o = GemmOptions { par: Par::Seq, ..Default::default() };
    for &(batch, n_in, n_out) in &[(32usize, 784usize, 128usize), (256, 784, 128), (32, 128, 10), (256, 128, 10)] {
        let s = DenseShape { batch, n_in, n_out };
        let (x, w, b) = (vec(batch * n_in, 1.0), vec(n_in * n_out, 0.05), vec(n_out, 0.1));
        let flops = 2 * batch * n_in * n_out;
        let mut g = c.benchmark_group(format!("fused_dense_fwd/{batch}x{n_in}x{n_out}"));
        g.throughput(Throughput::Elements(flops as u64));
        g.sample_size(30).warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(1));
        let (mut z, mut a) = (vec![0.0f32; batch * n_out], vec![0.0f32; batch * n_out]);
        g.bench_function(BenchmarkId::from_parameter("fused"), |bch| {
            bch.iter(|| dense_forward(Activation::Relu, s, black_box(&x), &w, &b, Some(&mut z), &mut a, &o).unwrap())
        });
        g.bench_function(BenchmarkId::from_parameter("unfused"), |bch| {
            bch.iter(|| unfused::forward((batch, n_in, n_out), black_box(&x), &w, &b, &mut z, &mut a, &o))
        });
        g.finish();

        let da = vec(batch * n_out, 0.1);
        let (mut dw, mut db, mut dx, mut dz) =
            (vec![0.0; n_in * n_out], vec![0.0; n_out], vec![0.0; batch * n_in], vec![0.0; batch * n_out]);
        let mut g = c.benchmark_group(format!("fused_dense_bwd/{batch}x{n_in}x{n_out}"));
        g.throughput(Throughput::Elements(2 * flops as u64));
        g.sample_size(30).warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(1));
        g.bench_function(BenchmarkId::from_parameter("fused"), |bch| {
            bch.iter(|| {
                let gr = DenseGrads { dw: &mut dw, db: &mut db, dx: Some(&mut dx), dz: &mut dz };
                dense_backward(Activation::Relu, s, black_box(&x), &w, &z, &a, &da, 1e-4, gr, &o).unwrap()
            })
        });
        g.bench_function(BenchmarkId::from_parameter("unfused"), |bch| {
            bch.iter(|| {
                let grads = (&mut dw[..], &mut db[..], &mut dx[..], &mut dz[..]);
                unfused::backward((batch, n_in, n_out), black_box(&x), &w, &z, &da, 1e-4, grads, &o)
            })
        });
        g.finish();
    }
}

fn softmax_xent(c: &mut Criterion) {
    for &(batch, k) in &[(256usize, 10usize), (4096, 10), (256, 1000)] {
        let z = vec(batch * k, 5.0);
        let labels: Vec<u32> = (0..batch).map(|i| (i % k) as u32).collect();
        let mut d = vec![0.0f32; batch * k];
        let mut g = c.benchmark_group(format!("fused_softmax_xent/{batch}x{k}"));
        g.throughput(Throughput::Elements((batch * k) as u64));
        g.sample_size(30).warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(1));
        g.bench_function(BenchmarkId::from_parameter("fused"), |bch| {
            bch.iter(|| softmax_cross_entropy_sparse(batch, k, black_box(&z), &labels, &mut d).unwrap())
        });
        g.bench_function(BenchmarkId::from_parameter("unfused"), |bch| {
            bch.iter(|| {
                activation_forward(Activation::Softmax, batch, k, black_box(&z), &mut d).unwrap();
                let mut loss = 0.0f64;
                for (r, &l) in labels.iter().enumerate() {
                    loss -= (d[r * k + l as usize] as f64).ln();
                    d[r * k + l as usize] -= 1.0;
                }
                for v in d.iter_mut() {
                    *v /= batch as f32;
                }
                black_box(loss)
            })
        });
        g.bench_function(BenchmarkId::from_parameter("naive"), |bch| {
            bch.iter(|| {
                let mut loss = 0.0f64;
                for r in 0..batch {
                    let row = &z[r * k..(r + 1) * k];
                    let m = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
                    let s: f32 = row.iter().map(|v| (v - m).exp()).sum();
                    for j in 0..k {
                        d[r * k + j] =
                            ((row[j] - m).exp() / s - (j == labels[r] as usize) as u32 as f32) / batch as f32;
                    }
                    loss += (s.ln() + m - row[labels[r] as usize]) as f64;
                }
                black_box(loss)
            })
        });
        g.finish();
    }
}

fn adam(c: &mut Criterion) {
    let n = 1 << 20;
    let (mut w, gr, mut m, mut v) = (vec(n, 1.0), vec(n, 0.01), vec![0.0f32; n], vec![0.0f32; n]);
    let mut g = c.benchmark_group("adam_1Mi");
    // Bytes an Adam step must move: read w, g, m, v; write w, m, v.
    g.throughput(Throughput::Bytes((7 * 4 * n) as u64));
    g.sample_size(30).warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(2));
    let p = AdamParams::default();
    let mut t = 0u64;
    g.bench_function(BenchmarkId::from_parameter("nnkern"), |bch| {
        bch.iter(|| {
            t += 1;
            adam_step(&mut w, black_box(&gr), &mut m, &mut v, t, &p, 1e-4).unwrap()
        })
    });
    g.bench_function(BenchmarkId::from_parameter("naive"), |bch| {
        bch.iter(|| {
            t += 1;
            let (c1, c2) = (1.0 - 0.9f32.powi(t as i32), 1.0 - 0.999f32.powi(t as i32));
            for i in 0..n {
                let gg = gr[i] + 1e-4 * w[i];
                m[i] = 0.9 * m[i] + 0.1 * gg;
                v[i] = 0.999 * v[i] + 0.001 * gg * gg;
                w[i] -= 1e-3 * (m[i] / c1) / ((v[i] / c2).sqrt() + 1e-8);
            }
        })
    });
    // Bandwidth bound: copying 3.5 × 4 MiB (read + write = 7 × 4 MiB moved).
    let src = vec(n * 7 / 2, 1.0);
    let mut dst = vec![0.0f32; n * 7 / 2];
    g.bench_function(BenchmarkId::from_parameter("copy_bound"), |bch| {
        bch.iter(|| dst.copy_from_slice(black_box(&src)))
    });
    g.finish();
}

criterion_group!(fused_benches, dense, softmax_xent, adam);
criterion_main!(fused_benches);
