//! Elementwise math kernels (`nnkern::simd::math`) against naive scalar `std`
//! loops, at 4 Ki … 16 Mi f32 elements, reported as elements per second.
//!
//! Quick run: `cargo bench --bench ops -- --warm-up-time 1 --measurement-time 2 'exp|tanh'`.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use nnkern::simd::math::{vexp_f32, vgelu_f32, vlog_f32, vsigmoid_f32, vtanh_f32};
use std::hint::black_box;

const SIZES: [usize; 5] = [4 << 10, 64 << 10, 256 << 10, 1 << 20, 16 << 20];

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

fn benches(c: &mut Criterion) {
    group(c, "exp", vexp_f32, f32::exp, -10.0, 10.0);
    group(c, "tanh", vtanh_f32, f32::tanh, -10.0, 10.0);
    group(c, "sigmoid", vsigmoid_f32, |x| 1.0 / (1.0 + (-x).exp()), -10.0, 10.0);
    group(c, "log", vlog_f32, f32::ln, 1e-6, 100.0);
    group(c, "gelu", vgelu_f32, naive_gelu, -10.0, 10.0);
}

criterion_group!(ops, benches);
criterion_main!(ops);
