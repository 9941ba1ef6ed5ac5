//! Runs one f32 GEMM shape repeatedly with one thread: a steady workload for
//! profilers (`valgrind --tool=callgrind`) and quick A/B timing.
//!
//! `cargo run --release -p nnkern-bench --example gemm_one -- M K N [REPS] [nn|tn|nt]`
//! (`tn`: A stored transposed, as in Xᵀ·dZ; `nt`: B stored transposed, as in dZ·Wᵀ).
use nnkern::gemm::{GemmOptions, MatMut, MatRef, gemm_with};
use nnkern::par::Par;
use std::time::Instant;

fn main() -> nnkern::Result<()> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize, d: usize| a.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let (m, k, n, reps) = (num(0, 512), num(1, 512), num(2, 512), num(3, 20));
    let mode = a.get(4).map_or("nn", |s| s.as_str());
    let x: Vec<f32> = (0..m * k).map(|i| ((i * 7) % 13) as f32 * 0.1 - 0.6).collect();
    let w: Vec<f32> = (0..k * n).map(|i| ((i * 5) % 11) as f32 * 0.1 - 0.5).collect();
    let mut c = vec![0f32; m * n];
    let opts = GemmOptions { par: Par::Seq, ..Default::default() };
    let av = if mode == "tn" { MatRef::row_major(&x, k, m, m)?.t() } else { MatRef::row_major(&x, m, k, k)? };
    let bv = if mode == "nt" { MatRef::row_major(&w, n, k, k)?.t() } else { MatRef::row_major(&w, k, n, n)? };
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        gemm_with(1.0, av, bv, 0.0, MatMut::row_major(&mut c, m, n, n)?, &opts)?;
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let gf = |t: f64| 2.0 * (m * k * n) as f64 / t / 1e9;
    let (best, med) = (times[0], times[times.len() / 2]);
    println!(
        "{m}x{k}x{n} {mode}: best {:.1} µs ({:.1} GFLOP/s), median {:.1} µs ({:.1} GFLOP/s)",
        best * 1e6,
        gf(best),
        med * 1e6,
        gf(med)
    );
    Ok(())
}
