//! The first layer's dense and sparse paths side by side, one thread, timed
//! in alternation in one process (the machine's drifting speed hits both
//! alike): the fused forward `relu(X·W + b)` (dense: with the copy of the
//! batch's rows; sparse: on the data set's nonzeros, found once beforehand)
//! and the weight gradient `dW = Xᵀ·dZ + l2·W` (with dZ, db; sparse: straight
//! from the batch's rows, as the trainer does, and from their transpose, the
//! transpose timed with it), at `784 → 128` and batch 32 and 256, on synthetic inputs of
//! several densities (nonzeros at random positions) and, with `--idx DIR`, on
//! MNIST's training images (pixels scaled to [0, 1]).
//!
//! Prints the median microseconds per call of each step and the dense / sparse
//! ratio of the three steps together (> 1: sparse faster); the crossover
//! density is where that ratio is 1 (it sets `nn::SPARSE_AUTO_DENSITY`).
//!
//! `cargo run --release -p nnkern-bench --example sparse_cmp -- [--idx DIR [--quick]] [REPS]` (`--quick`: MNIST only)
use nnkern::gemm::{GemmOptions, SparseRows};
use nnkern::nn::data::load_mnist;
use nnkern::ops::Activation;
use nnkern::ops::fused::{
    DenseGrads, DenseShape, dense_backward, dense_backward_sparse, dense_backward_sparse_rows, dense_forward,
    dense_forward_sparse,
};
use nnkern::par::Par;
use std::hint::black_box;
use std::time::Instant;

fn lcg(s: &mut u64) -> u64 {
    *s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    *s >> 33
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn run(name: &str, x: &[f32], n: usize, batch: usize, reps: usize) -> nnkern::Result<()> {
    let (ni, no) = (784usize, 128usize);
    let o = GemmOptions { par: Par::Seq, ..Default::default() };
    let s = DenseShape { batch, n_in: ni, n_out: no };
    let mut seed = 7u64;
    let w: Vec<f32> = (0..ni * no).map(|_| (lcg(&mut seed) % 1000) as f32 / 10000.0 - 0.05).collect();
    let b = vec![0.01f32; no];
    let da: Vec<f32> = (0..batch * no).map(|_| (lcg(&mut seed) % 1000) as f32 / 1000.0 - 0.5).collect();
    let (mut z, mut a) = (vec![0f32; batch * no], vec![0f32; batch * no]);
    let (mut dw, mut db, mut dz) = (vec![0f32; ni * no], vec![0f32; no], vec![0f32; batch * no]);
    let mut xb = vec![0f32; batch * ni];
    // The data set's nonzeros, once (as the trainer does per fit).
    let t = Instant::now();
    let xs = SparseRows::from_dense(&x[..n * ni], n, ni)?;
    if batch == 32 {
        println!("{name:>14} nonzeros of {n} rows found in {:.1} ms", t.elapsed().as_secs_f64() * 1e3);
    }
    let mut xt = SparseRows::new(batch)?;
    xt.reserve(ni + 1, batch * ni)?;
    let (mut t_d, mut t_s) = ([Vec::new(), Vec::new(), Vec::new()], [Vec::new(), Vec::new(), Vec::new()]);
    let mut t_t = Vec::new();
    let mut density = 0.0;
    for rep in 0..reps {
        let rows: Vec<usize> = (0..batch).map(|_| lcg(&mut seed) as usize % n).collect();
        // Dense.
        let t = Instant::now();
        for (r, &i) in rows.iter().enumerate() {
            xb[r * ni..(r + 1) * ni].copy_from_slice(&x[i * ni..(i + 1) * ni]);
        }
        let t1 = Instant::now();
        dense_forward(Activation::Relu, s, black_box(&xb), &w, &b, Some(&mut z), &mut a, &o)?;
        let t2 = Instant::now();
        let g = DenseGrads { dw: &mut dw, db: &mut db, dx: None, dz: &mut dz };
        dense_backward(Activation::Relu, s, &xb, &w, &z, &a, &da, 1e-4, g, &o)?;
        let t3 = Instant::now();
        // Sparse.
        let t4 = Instant::now();
        dense_forward_sparse(Activation::Relu, s, black_box(&xs), Some(&rows), &w, &b, Some(&mut z), &mut a, &o)?;
        let t5 = Instant::now();
        let g = DenseGrads { dw: &mut dw, db: &mut db, dx: None, dz: &mut dz };
        dense_backward_sparse_rows(Activation::Relu, s, &xs, &rows, &w, &z, &a, &da, 1e-4, g, &o)?;
        let t6 = Instant::now();
        xt.transpose_rows_from(&xs, &rows)?;
        let g = DenseGrads { dw: &mut dw, db: &mut db, dx: None, dz: &mut dz };
        dense_backward_sparse(Activation::Relu, s, &xt, &w, &z, &a, &da, 1e-4, g, &o)?;
        let t7 = Instant::now();
        if rep > 0 {
            for (v, d) in t_d.iter_mut().zip([t1 - t, t2 - t1, t3 - t2]) {
                v.push(d.as_secs_f64() * 1e6);
            }
            for (v, d) in t_s.iter_mut().zip([t4 - t3, t5 - t4, t6 - t5]) {
                v.push(d.as_secs_f64() * 1e6);
            }
            t_t.push((t7 - t6).as_secs_f64() * 1e6);
        }
        density += xt.density();
    }
    let td: Vec<f64> = t_d.iter_mut().map(|v| median(v)).collect();
    let ts: Vec<f64> = t_s.iter_mut().map(|v| median(v)).collect();
    let (sd, ss): (f64, f64) = (td.iter().sum(), ts.iter().sum());
    println!(
        "{name:>14} b{batch:<3} density {:.3} | dense gather {:6.1} fwd {:6.1} dW {:6.1} | sparse - {:6.1} fwd {:6.1} dW {:6.1} (transpose+dW {:6.1}) | dense/sparse {:.2}",
        density / reps as f64,
        td[0],
        td[1],
        td[2],
        ts[0],
        ts[1],
        ts[2],
        median(&mut t_t),
        sd / ss
    );
    Ok(())
}

fn main() -> nnkern::Result<()> {
    let mut args = std::env::args().skip(1);
    let (mut idx, mut reps, mut quick) = (None, 400usize, false);
    while let Some(a) = args.next() {
        if a == "--quick" {
            quick = true;
        } else if a == "--idx" {
            idx = args.next();
        } else if let Ok(r) = a.parse() {
            reps = r;
        }
    }
    println!("median µs per call, 1 thread, 784 -> 128, relu; dense/sparse > 1: sparse faster");
    if let Some(dir) = idx {
        let (tr, _) = load_mnist(&dir)?;
        for batch in [32, 256] {
            run("MNIST", &tr.x, tr.n, batch, reps)?;
        }
    }
    if quick {
        return Ok(());
    }
    let n = 4096;
    for d in [0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.7] {
        let mut seed = 11u64;
        let x: Vec<f32> = (0..n * 784)
            .map(|_| {
                if (lcg(&mut seed) % 10000) as f64 / 10000.0 < d {
                    (lcg(&mut seed) % 255 + 1) as f32 / 255.0
                } else {
                    0.0
                }
            })
            .collect();
        for batch in [32, 256] {
            run(&format!("random {d:.2}"), &x, n, batch, reps.min(200))?;
        }
    }
    Ok(())
}
