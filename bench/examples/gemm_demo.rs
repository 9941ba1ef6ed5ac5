//! GEMM demo: GFLOP/s of nnkern's native kernels against matrixmultiply and a
//! naive triple loop, single-threaded and with all threads, on square and MLP
//! shapes. Quick and rough (best of a few repetitions); the criterion benches
//! (`cargo bench -p nnkern-bench --bench gemm`) are the measured reference.
//!
//! `cargo run --release -p nnkern-bench --example gemm_demo [-- --quick]`

use nnkern::gemm::{Backend, GemmOptions, MatMut, MatRef, gemm_naive, gemm_with};
use nnkern::par::Par;
use std::time::Instant;

fn gflops(m: usize, n: usize, k: usize, reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let t = Instant::now();
        for _ in 0..reps {
            f();
        }
        best = best.min(t.elapsed().as_secs_f64() / reps as f64);
    }
    2.0 * (m * n * k) as f64 / best / 1e9
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    println!("nnkern {} — ISA {}, {} threads", nnkern::VERSION, nnkern::simd::isa_name(), nnkern::par::num_threads());
    println!("{:<26} {:>10} {:>10} {:>10} {:>10}", "f32 shape (m×k · k×n)", "naive", "mmul", "nnkern·1", "nnkern·all");
    let mut shapes: Vec<(usize, usize, usize, bool)> = vec![
        (32, 128, 784, false),
        (32, 10, 128, false),
        (784, 128, 32, true),
        (32, 128, 10, false),
        (256, 128, 784, false),
        (256, 10, 128, false),
        (784, 128, 256, true),
        (256, 128, 10, false),
        (256, 256, 256, false),
        (512, 512, 512, false),
    ];
    if !quick {
        shapes.push((1024, 1024, 1024, false));
    }
    for (m, n, k, ta) in shapes {
        let a: Vec<f32> = (0..m * k).map(|i| ((i * 7 % 13) as f32 - 6.0) / 7.0).collect();
        let b: Vec<f32> = (0..k * n).map(|i| ((i * 5 % 11) as f32 - 5.0) / 5.0).collect();
        let mut c = vec![0.0f32; m * n];
        // Xᵀ·dZ reads A transposed, as the weight gradient does.
        let av =
            || if ta { MatRef::row_major(&a, k, m, m).unwrap().t() } else { MatRef::row_major(&a, m, k, k).unwrap() };
        let bv = || MatRef::row_major(&b, k, n, n).unwrap();
        let flop = (m * n * k) as f64;
        let reps = ((2e8 / flop) as usize).clamp(1, 20000);
        let naive = if flop <= 1.1e8 {
            gflops(m, n, k, (reps / 20).max(1), || {
                gemm_naive(1.0, av(), bv(), 0.0, MatMut::row_major(&mut c, m, n, n).unwrap())
            })
        } else {
            f64::NAN
        };
        let mut run = |backend, par| {
            let o = GemmOptions { backend: Some(backend), par, isa: None };
            gflops(m, n, k, reps, || {
                gemm_with(1.0, av(), bv(), 0.0, MatMut::row_major(&mut c, m, n, n).unwrap(), &o).unwrap()
            })
        };
        let mm = run(Backend::MatrixMultiply, Par::Seq);
        let one = run(Backend::Native, Par::Seq);
        let all = run(Backend::Native, Par::Default);
        let name = format!("{m}×{k} · {k}×{n}{}", if ta { " (Aᵀ)" } else { "" });
        println!("{name:<26} {naive:>10.1} {mm:>10.1} {one:>10.1} {all:>10.1}");
    }
}
