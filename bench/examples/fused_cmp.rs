//! Fused dense steps against their unfused sequences, timed rep by rep in one
//! process (alternating, one thread), so that the machine's drifting speed hits
//! both alike; the criterion bench (`benches/fused.rs`) runs them as separate
//! groups. Prints the median over reps of unfused time / fused time (> 1: the
//! fused kernel is faster) with the quartiles.
//!
//! The unfused sequences are the bench's (`bench/benches/common/unfused.rs`).
//!
//! `cargo run --release -p nnkern-bench --example fused_cmp -- [REPS]`; with `FUSED_CMP_GEMM=1`
//! it also times the forward GEMM with an epilogue that does nothing against
//! the plain GEMM (what the epilogue's mere presence costs).
use nnkern::gemm::{GemmOptions, MatMut, MatRef, gemm_with};
use nnkern::ops::Activation;
use nnkern::ops::fused::{DenseGrads, DenseShape, dense_backward, dense_forward};
use nnkern::par::Par;
use std::hint::black_box;
use std::time::Instant;

#[path = "../benches/common/unfused.rs"]
mod unfused;

fn vec(n: usize, s: f32) -> Vec<f32> {
    (0..n).map(|i| (((i * 7919) % 1000) as f32 / 500.0 - 1.0) * s).collect()
}

/// Median and quartiles of `unfused / fused` over `reps` alternating pairs.
fn paired(reps: usize, inner: usize, mut fused: impl FnMut(), mut unfused: impl FnMut()) -> (f64, f64, f64) {
    let mut r = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t = Instant::now();
        for _ in 0..inner {
            fused();
        }
        let tf = t.elapsed().as_secs_f64();
        let t = Instant::now();
        for _ in 0..inner {
            unfused();
        }
        r.push(t.elapsed().as_secs_f64() / tf);
    }
    r.sort_by(|a, b| a.total_cmp(b));
    (r[reps / 2], r[reps / 4], r[3 * reps / 4])
}

fn main() -> nnkern::Result<()> {
    let reps: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(40);
    let o = GemmOptions { par: Par::Seq, ..Default::default() };
    println!("unfused time / fused time, median (quartiles) of {reps} alternating reps; > 1: fused faster");
    for &(batch, n_in, n_out) in &[(32usize, 784usize, 128usize), (256, 784, 128), (32, 128, 10), (256, 128, 10)] {
        let s = DenseShape { batch, n_in, n_out };
        let (x, w, b) = (vec(batch * n_in, 1.0), vec(n_in * n_out, 0.05), vec(n_out, 0.1));
        let (mut z, mut a) = (vec![0f32; batch * n_out], vec![0f32; batch * n_out]);
        let inner = 20_000_000 / (batch * n_in * n_out) + 1;
        let (za, zb) = (std::cell::RefCell::new(&mut z), std::cell::RefCell::new(&mut a));
        let fwd = paired(
            reps,
            inner,
            || dense_forward(Activation::Relu, s, black_box(&x), &w, &b, None, &mut zb.borrow_mut(), &o).unwrap(),
            || {
                let (mut z, mut a) = (za.borrow_mut(), zb.borrow_mut());
                unfused::forward((batch, n_in, n_out), black_box(&x), &w, &b, &mut z, &mut a, &o)
            },
        );
        println!("dense forward  {batch}x{n_in}->{n_out}: {:.3} ({:.3}, {:.3})", fwd.0, fwd.1, fwd.2);
        if std::env::var_os("FUSED_CMP_GEMM").is_some() {
            // Diagnostic: the same GEMM with an epilogue that does nothing
            // (identity, no bias) against the plain GEMM: the cost of the
            // epilogue's presence alone.
            let g = paired(
                reps,
                inner,
                || {
                    dense_forward(Activation::Identity, s, black_box(&x), &w, &[], None, &mut zb.borrow_mut(), &o)
                        .unwrap()
                },
                || {
                    let xv = MatRef::row_major(black_box(&x), batch, n_in, n_in).unwrap();
                    let wv = MatRef::row_major(&w, n_in, n_out, n_out).unwrap();
                    let mut z = za.borrow_mut();
                    gemm_with(1.0, xv, wv, 0.0, MatMut::row_major(&mut z, batch, n_out, n_out).unwrap(), &o).unwrap()
                },
            );
            println!("  plain GEMM / identity-epilogue GEMM: {:.3} ({:.3}, {:.3})", g.0, g.1, g.2);
        }

        let z = vec(batch * n_out, 1.0);
        let a: Vec<f32> = z.iter().map(|&v| v.max(0.0)).collect();
        let da = vec(batch * n_out, 0.1);
        let (mut dw, mut db, mut dx, mut dz) =
            (vec![0.0; n_in * n_out], vec![0.0; n_out], vec![0.0; batch * n_in], vec![0.0; batch * n_out]);
        let cells = std::cell::RefCell::new((&mut dw, &mut db, &mut dx, &mut dz));
        let bwd = paired(
            reps,
            inner / 2 + 1,
            || {
                let mut c = cells.borrow_mut();
                let (dw, db, dx, dz) = &mut *c;
                let gr = DenseGrads { dw, db, dx: Some(dx), dz };
                dense_backward(Activation::Relu, s, black_box(&x), &w, &z, &a, &da, 1e-4, gr, &o).unwrap()
            },
            || {
                let mut c = cells.borrow_mut();
                let (dw, db, dx, dz) = &mut *c;
                unfused::backward((batch, n_in, n_out), black_box(&x), &w, &z, &da, 1e-4, (dw, db, dx, dz), &o)
            },
        );
        println!("dense backward {batch}x{n_in}->{n_out}: {:.3} ({:.3}, {:.3})", bwd.0, bwd.1, bwd.2);
    }
    Ok(())
}
