//! Side-by-side f32 GEMM timing on one thread: nnkern, the `gemm` crate and
//! matrixmultiply, interleaved rep by rep so that the machine's load hits all
//! three alike, plus a pure-FMA probe of this core's peak. A quick A/B tool for
//! tuning; the criterion bench (`benches/gemm.rs`) is the reference.
//!
//! `cargo run --release -p nnkern-bench --example gemm_cmp -- [REPS] [M K N [nn|tn|nt] ...]`
//! With no shapes it runs the squares and the MLP shapes of the GEMM bench.
#[path = "common/fma.rs"]
mod fma;
#[path = "common/gemm_crate.rs"]
mod gemm_crate;

use nnkern::gemm::{GemmOptions, MatMut, MatRef, gemm_with};
use nnkern::par::Par;
use std::hint::black_box;
use std::time::Instant;

fn main() -> nnkern::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let reps: usize = args.first().and_then(|s| s.parse().ok()).unwrap_or(30);
    let mut shapes: Vec<(usize, usize, usize, String)> = Vec::new();
    let mut it = args.iter().skip(1);
    while let (Some(m), Some(k), Some(n)) = (it.next(), it.next(), it.next()) {
        let p = |s: &String| s.parse::<usize>().expect("a size");
        let mode = it.clone().next().filter(|s| s.parse::<usize>().is_err()).cloned();
        if mode.is_some() {
            it.next();
        }
        shapes.push((p(m), p(k), p(n), mode.unwrap_or_else(|| "nn".into())));
    }
    if shapes.is_empty() {
        for &(m, k, n, mode) in &[
            (64, 64, 64, "nn"),
            (128, 128, 128, "nn"),
            (256, 256, 256, "nn"),
            (512, 512, 512, "nn"),
            (32, 784, 128, "nn"),
            (32, 128, 10, "nn"),
            (784, 32, 128, "tn"),
            (32, 10, 128, "nt"),
            (256, 784, 128, "nn"),
            (256, 128, 10, "nn"),
            (784, 256, 128, "tn"),
            (256, 10, 128, "nt"),
        ] {
            shapes.push((m, k, n, mode.into()));
        }
    }
    println!("FMA probe (12 chains, 1 thread): {:.1} GFLOP/s", fma::peak());
    println!("{:>20} {:>16} {:>16} {:>16}   {:>5} {:>5}", "shape", "nnkern", "gemm", "mm", "t_g/n", "t_m/n");
    println!(
        "(best / median GFLOP/s; t_g/n, t_m/n: median per-rep time ratio gemm/nnkern, mm/nnkern, > 1: nnkern faster)"
    );
    for (m, k, n, mode) in shapes {
        let x: Vec<f32> = (0..m * k).map(|i| ((i * 7) % 13) as f32 * 0.1 - 0.6).collect();
        let w: Vec<f32> = (0..k * n).map(|i| ((i * 5) % 11) as f32 * 0.1 - 0.5).collect();
        let mut c = vec![0f32; m * n];
        let (ta, tb) = (mode == "tn", mode == "nt");
        // Element strides (row, column) of A (m×k) and B (k×n).
        let (ars, acs) = if ta { (1isize, m as isize) } else { (k as isize, 1) };
        let (brs, bcs) = if tb { (1isize, k as isize) } else { (n as isize, 1) };
        let opts = GemmOptions { par: Par::Seq, ..Default::default() };
        let av = if ta { MatRef::row_major(&x, k, m, m)?.t() } else { MatRef::row_major(&x, m, k, k)? };
        let bv = if tb { MatRef::row_major(&w, n, k, k)?.t() } else { MatRef::row_major(&w, k, n, n)? };
        let mut t = [Vec::new(), Vec::new(), Vec::new()];
        // Enough calls per sample to last ~1 ms.
        let inner = (1_000_000 / (2 * m * k * n / 50).max(1)).clamp(1, 2000);
        for _ in 0..reps {
            for (lib, times) in t.iter_mut().enumerate() {
                let t0 = Instant::now();
                for _ in 0..inner {
                    match lib {
                        0 => gemm_with(1.0, av, bv, 0.0, MatMut::row_major(&mut c, m, n, n)?, &opts)?,
                        1 => {
                            gemm_crate::sgemm(m, n, k, &x, (ars, acs), &w, (brs, bcs), &mut c, gemm::Parallelism::None)
                        }
                        // SAFETY: the buffers hold exactly the described matrices; C does not alias.
                        _ => unsafe {
                            matrixmultiply::sgemm(
                                m,
                                k,
                                n,
                                1.0,
                                x.as_ptr(),
                                ars,
                                acs,
                                w.as_ptr(),
                                brs,
                                bcs,
                                0.0,
                                c.as_mut_ptr(),
                                n as isize,
                                1,
                            )
                        },
                    }
                }
                times.push(t0.elapsed().as_secs_f64() / inner as f64);
                black_box(&c);
            }
        }
        // Median over reps of the time ratio to nnkern, rep by rep (each pair ran
        // back to back, under the same load).
        let ratio = |o: &Vec<f64>| {
            let mut r: Vec<f64> = o.iter().zip(&t[0]).map(|(x, y)| x / y).collect();
            r.sort_by(f64::total_cmp);
            r[r.len() / 2]
        };
        let (rg, rm) = (ratio(&t[1]), ratio(&t[2]));
        let gf = |s: f64| 2.0 * (m * k * n) as f64 / s / 1e9;
        let cell = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            format!("{:.1} / {:.1}", gf(v[0]), gf(v[v.len() / 2]))
        };
        let name = format!("{m}x{k}x{n} {mode}");
        let [a, b, d] = &mut t;
        println!("{name:>20} {:>16} {:>16} {:>16}   {rg:>5.2} {rm:>5.2}", cell(a), cell(b), cell(d));
    }
    Ok(())
}
