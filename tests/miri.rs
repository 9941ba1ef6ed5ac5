//! The trimmed set that CI runs under Miri (`cargo +nightly miri test --test
//! miri`, see `.ci/run`): every piece of `unsafe` the crate's kernels and C
//! edge rely on, on shapes Miri can afford. The same tests run natively in
//! the normal suite.
//!
//! * **Miri takes the scalar path.** It reports no SIMD features, so
//!   [`Isa::current`] is `Scalar` there (asserted below); the AVX2, AVX-512
//!   and NEON kernels are covered natively by `gemm_ref`, `act_ref`,
//!   `loss_ref`, `fused_ref` and `math_sweep`. Under `cfg(miri)` the crate
//!   also shrinks its scalar GEMM blocks (KC = MC = NC = 8) and its thread
//!   thresholds (64 flops per GEMM task, 64 elements per optimizer task), so
//!   that these small shapes still run every loop of the GEMM nest several
//!   times, the pack routines, and the multi-threaded splits.
//! * Inputs are small integers, so every product is exact and compared with
//!   `==` against a float64 reference.
//! * The subnormal-mode switch (`simd::fp`, inline assembly) is a no-op under
//!   Miri, which cannot run assembly.

mod common;

use nnkern::Options;
use nnkern::gemm::{Backend, GemmOptions, MatMut, MatRef, SparseRows, gemm_with, spmm, spmm_t_rows};
use nnkern::nn::{Layer, Mlp, Targets, Task, TrainConfig};
use nnkern::ops::Activation;
use nnkern::ops::fused::{
    DenseGrads, DenseShape, dense_backward, dense_backward_sparse, dense_forward, dense_forward_sparse,
};
use nnkern::optim::{AdamParams, adam_step_with, rmsprop_step_with, sgd_step_with};
use nnkern::par::Par;
use nnkern::simd::{AlignedVec, Isa};

/// A deterministic generator of small integers (exact products).
struct Lcg(u64);
impl Lcg {
    fn int(&mut self, lo: i32, hi: i32) -> i32 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        lo + ((self.0 >> 33) % (hi - lo + 1) as u64) as i32
    }
    fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.int(-3, 3) as f32).collect()
    }
}

fn opts(threads: usize) -> GemmOptions {
    let mut o = GemmOptions::default();
    o.backend = Some(Backend::Native);
    o.par = if threads == 1 { Par::Seq } else { Par::Threads(threads) };
    o
}

#[test]
fn miri_takes_the_scalar_path() {
    if cfg!(miri) {
        assert_eq!(Isa::current(), Isa::Scalar, "Miri reports no SIMD features: the scalar kernels run");
        println!("under Miri: ISA {:?} (the SIMD kernels are tested natively)", Isa::current());
    }
}

/// One GEMM through strided views of A, B and C against an exact reference,
/// with NaN guards around C that must survive and a NaN-filled C for beta = 0.
#[allow(clippy::too_many_arguments)]
fn gemm_case(
    rng: &mut Lcg,
    m: usize,
    k: usize,
    n: usize,
    ta: bool,
    tb: bool,
    c_row: bool,
    gap: usize,
    beta: f32,
    threads: usize,
) {
    // A stored as (k×m)ᵀ when ta, with a row gap; B with both strides ≠ 1 when gap > 0.
    let lda = if ta { m } else { k } + gap;
    let a_data = rng.vec(if ta { k } else { m } * lda.max(1));
    let a = if ta {
        MatRef::row_major(&a_data, k, m, lda).unwrap().t()
    } else {
        MatRef::row_major(&a_data, m, k, lda).unwrap()
    };
    let (rsb, csb) =
        if tb { (1, (k + gap).max(1) as isize) } else { (((n + gap) * (1 + gap)).max(1) as isize, 1 + gap as isize) };
    let b_len = if k == 0 || n == 0 { 0 } else { (k - 1) * rsb as usize + (n - 1) * csb as usize + 1 };
    let b_data = rng.vec(b_len);
    let b = MatRef::new(&b_data, 0, k, n, rsb, csb).unwrap();
    let ldc = if c_row { n } else { m } + gap;
    let c_len = if c_row { m * ldc } else { n * ldc };
    let c0: Vec<f32> = if beta == 0.0 { vec![f32::NAN; c_len] } else { rng.vec(c_len) };
    let mut c_data = c0.clone();
    let at = |v: &MatRef<'_, f32>, i, j| *v.get(i, j) as f64;
    let idx = |i: usize, j: usize| if c_row { i * ldc + j } else { j * ldc + i };
    let alpha = 2.0f32;
    let cv = if c_row {
        MatMut::row_major(&mut c_data, m, n, ldc).unwrap()
    } else {
        MatMut::col_major(&mut c_data, m, n, ldc).unwrap()
    };
    gemm_with(alpha, a, b, beta, cv, &opts(threads)).unwrap();
    for i in 0..m {
        for j in 0..n {
            let dot: f64 = (0..k).map(|p| at(&a, i, p) * at(&b, p, j)).sum();
            let old = if beta == 0.0 { 0.0 } else { beta as f64 * c0[idx(i, j)] as f64 };
            let want = alpha as f64 * dot + old;
            assert_eq!(
                c_data[idx(i, j)] as f64,
                want,
                "C({i},{j}) of {m}×{k}×{n} ta={ta} tb={tb} row={c_row} gap={gap}"
            );
        }
    }
    // The gaps between C's rows or columns are never written.
    for (p, (&x, &x0)) in c_data.iter().zip(&c0).enumerate() {
        let (major, minor) = (p / ldc.max(1), p % ldc.max(1));
        let inside = if c_row { major < m && minor < n } else { major < n && minor < m };
        if !inside {
            assert!(x.to_bits() == x0.to_bits(), "C's gap element {p} was written");
        }
    }
}

#[test]
fn gemm_driver_small_shapes_and_packing() {
    let mut rng = Lcg(1);
    // Odd sizes, 0 and 1; k = 33 > 32 with strided B packs B, transposed A packs A;
    // under Miri KC = MC = NC = 8 so these run several blocks of every loop.
    let shapes: &[(usize, usize, usize)] =
        &[(0, 3, 2), (3, 0, 2), (1, 1, 1), (5, 7, 3), (9, 33, 7), (13, 9, 17), (37, 5, 6)];
    for &(m, k, n) in shapes {
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            for (c_row, gap, beta, threads) in [(true, 0, 0.0, 1), (false, 1, 1.0, 3), (true, 2, -1.0, 2)] {
                gemm_case(&mut rng, m, k, n, ta, tb, c_row, gap, beta, threads);
            }
        }
    }
}

/// A C with neither stride 1 takes the kernel's strided write-out (the
/// path of a narrow row-major C kept in its orientation on vector ISAs):
/// C's elements read into a tile of vectors for beta, the result written
/// element by element, nothing written between C's elements.
#[test]
fn gemm_strided_c_write_out() {
    let mut rng = Lcg(3);
    let (m, k, n) = (5usize, 9usize, 3usize);
    let (a, b) = (rng.vec(m * k), rng.vec(k * n));
    let av = MatRef::row_major(&a, m, k, k).unwrap();
    let bv = MatRef::row_major(&b, k, n, n).unwrap();
    // Element (i, j) at 2·i + (2m + 1)·j.
    let (rs, cs) = (2isize, (2 * m + 1) as isize);
    let len = (m - 1) * 2 + (n - 1) * (2 * m + 1) + 1;
    for beta in [0.0f32, -1.0] {
        let c0: Vec<f32> = if beta == 0.0 { vec![f32::NAN; len] } else { rng.vec(len) };
        let mut c = c0.clone();
        gemm_with(2.0, av, bv, beta, MatMut::new(&mut c, 0, m, n, rs, cs).unwrap(), &opts(1)).unwrap();
        let mut inside = vec![false; len];
        for i in 0..m {
            for j in 0..n {
                let p = i * 2 + j * (2 * m + 1);
                inside[p] = true;
                let dot: f64 = (0..k).map(|q| a[i * k + q] as f64 * b[q * n + j] as f64).sum();
                let old = if beta == 0.0 { 0.0 } else { beta as f64 * c0[p] as f64 };
                assert_eq!(c[p] as f64, 2.0 * dot + old, "C({i},{j}) beta={beta}");
            }
        }
        for p in (0..len).filter(|&p| !inside[p]) {
            assert_eq!(c[p].to_bits(), c0[p].to_bits(), "C's gap element {p} was written");
        }
    }
}

#[test]
fn gemm_f64_and_alpha_zero() {
    let (m, k, n) = (6, 11, 5);
    let a: Vec<f64> = (0..m * k).map(|i| (i % 5) as f64 - 2.0).collect();
    let b: Vec<f64> = (0..k * n).map(|i| (i % 3) as f64 - 1.0).collect();
    let mut c = vec![f64::NAN; m * n];
    let av = MatRef::row_major(&a, m, k, k).unwrap();
    let bv = MatRef::row_major(&b, k, n, n).unwrap();
    gemm_with(1.0, av.t().t(), bv, 0.0, MatMut::row_major(&mut c, m, n, n).unwrap(), &opts(2)).unwrap();
    for i in 0..m {
        for j in 0..n {
            let want: f64 = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
            assert_eq!(c[i * n + j], want);
        }
    }
    // alpha = 0 never reads A or B: NaN there must not reach C.
    let nan = vec![f64::NAN; m * k];
    gemm_with(
        0.0,
        MatRef::row_major(&nan, m, k, k).unwrap(),
        bv,
        2.0,
        MatMut::row_major(&mut c, m, n, n).unwrap(),
        &opts(1),
    )
    .unwrap();
    assert!(c.iter().all(|x| x.is_finite()));
}

fn relu(x: f64) -> f64 {
    x.max(0.0)
}

#[test]
fn fused_dense_steps_dense_and_sparse() {
    let mut rng = Lcg(7);
    let (batch, n_in, n_out) = (7, 13, 5);
    let shp = DenseShape { batch, n_in, n_out };
    // Mostly-zero X, so that the sparse path has work and skips.
    let x: Vec<f32> = (0..batch * n_in).map(|i| if i % 3 == 0 { rng.int(-2, 2) as f32 } else { 0.0 }).collect();
    let w = rng.vec(n_in * n_out);
    let b = rng.vec(n_out);
    let zref: Vec<f64> = (0..batch * n_out)
        .map(|t| {
            let (r, c) = (t / n_out, t % n_out);
            b[c] as f64 + (0..n_in).map(|p| x[r * n_in + p] as f64 * w[p * n_out + c] as f64).sum::<f64>()
        })
        .collect();
    let xs = SparseRows::from_dense(&x, batch, n_in).unwrap();
    for threads in [1, 3] {
        let o = opts(threads);
        let (mut z, mut a) = (vec![f32::NAN; batch * n_out], vec![f32::NAN; batch * n_out]);
        dense_forward(Activation::Relu, shp, &x, &w, &b, Some(&mut z), &mut a, &o).unwrap();
        let (mut zs, mut as_) = (vec![f32::NAN; batch * n_out], vec![f32::NAN; batch * n_out]);
        dense_forward_sparse(Activation::Relu, shp, &xs, None, &w, &b, Some(&mut zs), &mut as_, &o).unwrap();
        for t in 0..batch * n_out {
            assert_eq!(z[t] as f64, zref[t]);
            assert_eq!(a[t] as f64, relu(zref[t]));
            assert_eq!((zs[t], as_[t]), (z[t], a[t]));
        }
        // Softmax rows (finished in the second pass) sum to one.
        let mut p = vec![0.0f32; batch * n_out];
        dense_forward(Activation::Softmax, shp, &x, &w, &b, None, &mut p, &o).unwrap();
        for r in p.chunks(n_out) {
            assert!((r.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        }

        // Backward: dZ = dA ⊙ relu′(Z), db = Σ dZ, dW = Xᵀ·dZ + l2·W, dX = dZ·Wᵀ.
        let da = rng.vec(batch * n_out);
        let l2 = 0.5f32;
        let (mut dw, mut db, mut dx, mut dz) = (
            vec![f32::NAN; n_in * n_out],
            vec![f32::NAN; n_out],
            vec![f32::NAN; batch * n_in],
            vec![f32::NAN; batch * n_out],
        );
        let g = DenseGrads { dw: &mut dw, db: &mut db, dx: Some(&mut dx), dz: &mut dz };
        dense_backward(Activation::Relu, shp, &x, &w, &z, &a, &da, l2, g, &o).unwrap();
        let dzr: Vec<f64> = (0..batch * n_out).map(|t| if zref[t] > 0.0 { da[t] as f64 } else { 0.0 }).collect();
        for c in 0..n_out {
            assert_eq!(db[c] as f64, (0..batch).map(|r| dzr[r * n_out + c]).sum::<f64>());
            for p in 0..n_in {
                let want = (0..batch).map(|r| x[r * n_in + p] as f64 * dzr[r * n_out + c]).sum::<f64>()
                    + l2 as f64 * w[p * n_out + c] as f64;
                assert_eq!(dw[p * n_out + c] as f64, want);
            }
        }
        for r in 0..batch {
            for p in 0..n_in {
                let want: f64 = (0..n_out).map(|c| dzr[r * n_out + c] * w[p * n_out + c] as f64).sum();
                assert_eq!(dx[r * n_in + p] as f64, want);
            }
        }
        let mut xt = SparseRows::new(batch).unwrap();
        xt.transpose_from(&xs).unwrap();
        let (mut dw2, mut db2, mut dz2) =
            (vec![f32::NAN; n_in * n_out], vec![f32::NAN; n_out], vec![f32::NAN; batch * n_out]);
        let g = DenseGrads { dw: &mut dw2, db: &mut db2, dx: None, dz: &mut dz2 };
        dense_backward_sparse(Activation::Relu, shp, &xt, &w, &z, &a, &da, l2, g, &o).unwrap();
        assert_eq!((dw2, db2, dz2), (dw.clone(), db.clone(), dz.clone()));
    }
}

/// The batch transpose split over threads (each writes its rows' part of
/// every column's list through raw pointers) against the serial one.
#[test]
fn batch_transpose_split_over_threads() {
    let mut rng = Lcg(5);
    let (m, k) = (9, 7);
    let s: Vec<f32> = (0..m * k).map(|i| if i % 3 != 0 { rng.int(-3, 3) as f32 } else { 0.0 }).collect();
    let sp = SparseRows::from_dense(&s, m, k).unwrap();
    let rows = [4usize, 0, 8, 4, 2, 7, 1];
    let mut want = SparseRows::default();
    want.transpose_rows_from(&sp, &rows).unwrap();
    let mut got = SparseRows::default();
    for t in [2usize, 3] {
        got.transpose_rows_from_with(&sp, &rows, Par::Threads(t)).unwrap();
        assert!(got == want, "{t} threads");
    }
}

#[test]
fn spmm_rows_split_over_threads() {
    let mut rng = Lcg(3);
    let (m, k, n) = (11, 9, 6);
    let s: Vec<f32> = (0..m * k).map(|i| if i % 4 == 1 { rng.int(-3, 3) as f32 } else { 0.0 }).collect();
    let sp = SparseRows::from_dense(&s, m, k).unwrap();
    let b = rng.vec(k * n);
    let mut want = vec![0.0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            want[i * n + j] = (0..k).map(|p| s[i * k + p] * b[p * n + j]).sum();
        }
    }
    for threads in [1, 4] {
        let mut c = vec![f32::NAN; m * n];
        let bv = MatRef::row_major(&b, k, n, n).unwrap();
        spmm(1.0, &sp, bv, 0.0, MatMut::row_major(&mut c, m, n, n).unwrap(), &opts(threads)).unwrap();
        assert_eq!(c, want);
    }
}

/// The forward product in halves of the inputs (`spmm_halves_epilogue`,
/// from 64 bytes of weights under Miri): one thread after the other, or a
/// task per half and group of rows, one half into scratch, then a pass that
/// adds it (with the bias and activation) over C's rows. Exact on small
/// integers, for a selection of rows.
#[test]
fn sparse_forward_in_halves_split_over_threads() {
    let mut rng = Lcg(5);
    let (nd, batch, n_in, n_out) = (9, 6, 11, 7);
    let x: Vec<f32> = (0..nd * n_in).map(|i| if i % 3 != 1 { rng.int(-2, 2) as f32 } else { 0.0 }).collect();
    let w = rng.vec(n_in * n_out);
    let b = rng.vec(n_out);
    let rows = [4usize, 0, 8, 4, 2, 7];
    let xs = SparseRows::from_dense(&x, nd, n_in).unwrap();
    let shp = DenseShape { batch, n_in, n_out };
    for threads in [1, 2, 4] {
        let (mut z, mut a) = (vec![f32::NAN; batch * n_out], vec![f32::NAN; batch * n_out]);
        dense_forward_sparse(Activation::Relu, shp, &xs, Some(&rows), &w, &b, Some(&mut z), &mut a, &opts(threads))
            .unwrap();
        for t in 0..batch * n_out {
            let (r, c) = (rows[t / n_out], t % n_out);
            let want = b[c] as f64 + (0..n_in).map(|p| x[r * n_in + p] as f64 * w[p * n_out + c] as f64).sum::<f64>();
            assert_eq!((z[t] as f64, a[t] as f64), (want, relu(want)), "{threads} threads, {t}");
        }
    }
}

/// `Sᵀ_b·B` from the rows (each task a range of C's rows: for batches of up
/// to 64 rows summed in registers from a bitmask of each row's terms, for
/// larger ones accumulated in an aligned part of the scratch, with a cursor
/// per row), exact on small integers, against the sum written out; a batch
/// with a repeated row.
#[test]
fn spmm_t_rows_split_over_threads() {
    let mut rng = Lcg(8);
    let (nd, k, n) = (10, 9, 5);
    let s: Vec<f32> = (0..nd * k).map(|i| if i % 3 == 1 { rng.int(-3, 3) as f32 } else { 0.0 }).collect();
    let sp = SparseRows::from_dense(&s, nd, k).unwrap();
    // A batch of 6 rows, one repeated; one of 65 (past the bitmask loop's
    // 64: the block of accumulators in memory).
    for rows in [vec![3usize, 0, 9, 3, 6, 1], (0..65).map(|t| (t * 7) % nd).collect()] {
        let m = rows.len();
        let b = rng.vec(m * n);
        let mut want = vec![0.0f32; k * n];
        for p in 0..k {
            for j in 0..n {
                want[p * n + j] = rows.iter().enumerate().map(|(t, &r)| s[r * k + p] * b[t * n + j]).sum();
            }
        }
        for threads in [1, 3] {
            let mut c = vec![f32::NAN; k * n];
            let bv = MatRef::row_major(&b, m, n, n).unwrap();
            spmm_t_rows(1.0, &sp, &rows, bv, 0.0, MatMut::row_major(&mut c, k, n, n).unwrap(), &opts(threads)).unwrap();
            assert_eq!(c, want, "batch of {m}, {threads} threads");
        }
    }
}

/// The optimizers' split path: several tasks over disjoint ranges give the
/// bits of one thread.
#[test]
fn optimizer_split_path_same_bits() {
    // Above 2 × the per-task chunk (64 elements under Miri, 8 Ki natively).
    let n = if cfg!(miri) { 64 * 4 + 13 } else { (1 << 13) * 4 + 13 };
    let mut rng = Lcg(11);
    let (w0, g) = (rng.vec(n), rng.vec(n));
    let run = |par: Par| {
        let o = Options { par, ..Default::default() };
        let (mut w, mut m, mut v) = (w0.clone(), vec![0.1f32; n], vec![0.2f32; n]);
        adam_step_with(&mut w, &g, &mut m, &mut v, 3, &AdamParams::default(), 0.01, &o).unwrap();
        let mut vel = vec![0.0f32; n];
        sgd_step_with(&mut w, &g, &mut vel, 0.1, 0.9, true, 0.01, &o).unwrap();
        sgd_step_with(&mut w, &g, &mut [], 0.1, 0.0, false, 0.0, &o).unwrap();
        let mut sq = vec![0.0f32; n];
        rmsprop_step_with(&mut w, &g, &mut sq, 0.01, 0.9, 1e-8, 0.0, &o).unwrap();
        (w, m, v, vel, sq)
    };
    let one = run(Par::Seq);
    assert_eq!(run(Par::Threads(4)), one);
    assert_eq!(run(Par::Threads(3)), one);
    assert!(one.0.iter().zip(&w0).any(|(a, b)| a != b), "the steps changed the weights");
}

#[test]
fn aligned_vec() {
    for len in [0usize, 1, 17, 1023, 1024, 1500] {
        let mut v = AlignedVec::zeros(len);
        assert_eq!(v.len(), len);
        assert!(v.iter().all(|&x| x == 0.0));
        assert_eq!(v.as_ptr() as usize % 64, 0, "cache-line aligned");
        if len >= 1024 {
            assert_eq!(v.as_ptr() as usize % 4096, 0, "page aligned from 1 Ki elements");
        }
        for (i, x) in v.iter_mut().enumerate() {
            *x = i as f32;
        }
        let c = v.clone();
        assert_eq!(c, v);
        let mut d = AlignedVec::zeros(len);
        d.clone_from(&v);
        assert_eq!(&d[..], &v[..]);
        let e = AlignedVec::from_slice(&v);
        assert_eq!(e, v);
        let f: AlignedVec = v.to_vec().into();
        assert_eq!(f, v);
    }
}

fn tiny_model() -> Mlp {
    let hidden = [Layer { units: 3, activation: Activation::Tanh }];
    Mlp::new(4, &hidden, 3, Task::MultiClass, 5).unwrap()
}

#[test]
fn model_file_reader_refuses_every_truncation() {
    let m = tiny_model();
    let bytes = m.to_bytes();
    assert_eq!(Mlp::from_bytes(&bytes).unwrap(), m);
    // Every prefix natively; under Miri a spread of them.
    let step = if cfg!(miri) { 13 } else { 1 };
    for cut in (0..bytes.len()).step_by(step) {
        assert!(Mlp::from_bytes(&bytes[..cut]).is_err(), "a file cut at {cut} of {} bytes was accepted", bytes.len());
    }
    // Flipped bytes are refused or parse into a valid model; never UB.
    for p in (0..bytes.len()).step_by(step * 3) {
        let mut b = bytes.clone();
        b[p] ^= 0xA5;
        if let Ok(m2) = Mlp::from_bytes(&b) {
            let _ = m2.predict_proba(&[0.5; 4], 1);
        }
    }
}

#[test]
fn trainer_end_to_end_tiny() {
    let mut m = tiny_model();
    let x: Vec<f32> = (0..12 * 4).map(|i| ((i * 7) % 5) as f32 - 2.0).collect();
    let y: Vec<u32> = (0..12).map(|i| (i % 3) as u32).collect();
    let mut cfg = TrainConfig::default();
    cfg.max_iter = 2;
    cfg.batch_size = 5;
    cfg.n_iter_no_change = 100;
    m.fit(&x, 12, Targets::Labels(&y), &cfg, None, None).unwrap();
    let p = m.predict_proba(&x, 12).unwrap();
    assert!(p.chunks(3).all(|r| (r.iter().sum::<f32>() - 1.0).abs() < 1e-5));
    // The sparse first layer: the batch's rows multiplied where they lie,
    // and the weight gradient straight from them.
    cfg.sparse_input = nnkern::nn::SparseInput::Sparse;
    let mut s = tiny_model();
    s.fit(&x, 12, Targets::Labels(&y), &cfg, None, None).unwrap();
    assert!(s.predict_proba(&x, 12).unwrap().iter().all(|v| v.is_finite()));
}

/// The sparse first layer's weights take their optimizer step inside the
/// backward pass (each task of the weight-gradient product updates the rows
/// it sums): the bits of the dense path, which steps after, and of one
/// thread, on 3.
#[test]
fn trainer_fused_first_layer_step_over_threads() {
    // Batches of 12 rows with 28 to 36 nonzeros: 168 to 216 flops in the
    // weight gradient, 2 or 3 tasks under Miri (64 flops each at least); and
    // one batch of 70 rows (the block loop hands its rows to the step). The weights
    // (48 bytes) stay below the forward product's split in halves, so the
    // dense and sparse sums agree.
    for (n, batch, epochs) in [(24usize, 12usize, 2usize), (80, 70, 1)] {
        let x: Vec<f32> = (0..n * 4).map(|i| if i % 3 == 0 { 0.0 } else { ((i * 7) % 5) as f32 - 2.5 }).collect();
        let y: Vec<u32> = (0..n).map(|i| (i % 3) as u32).collect();
        let fit = |sparse: nnkern::nn::SparseInput, par: Par| {
            let mut m = tiny_model();
            let mut cfg = TrainConfig::default();
            (cfg.max_iter, cfg.batch_size, cfg.n_iter_no_change) = (epochs, batch, 100);
            (cfg.sparse_input, cfg.par) = (sparse, par);
            m.fit(&x, n, Targets::Labels(&y), &cfg, None, None).unwrap();
            m.params().iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        };
        let dense = fit(nnkern::nn::SparseInput::Dense, Par::Seq);
        assert_eq!(fit(nnkern::nn::SparseInput::Sparse, Par::Seq), dense, "batch {batch}");
        assert_eq!(fit(nnkern::nn::SparseInput::Sparse, Par::Threads(3)), dense, "batch {batch}, 3 threads");
    }
}

/// The C entry points exist with the `capi` feature only (CI turns it on).
#[cfg(not(feature = "capi"))]
#[test]
fn c_entry_points() {
    common::skip("miri::c_entry_points", "built without the `capi` feature", "cargo test --release --features capi");
}

#[cfg(feature = "capi")]
mod c_entry_points {
    use nnkern::ffi::gemm::nnk_sgemm;
    use nnkern::ffi::model::*;
    use nnkern::ffi::ops::{NNK_ACT_RELU, NNK_ACT_SOFTMAX, nnk_adam_step, nnk_dense_forward};
    use nnkern::ffi::{NNK_NO_TRANS, NNK_ROW_MAJOR, nnk_last_error_message};
    use std::ffi::CStr;
    use std::ptr::{null, null_mut};

    fn last() -> String {
        // SAFETY: the library returns a valid NUL-terminated string owned by this thread.
        unsafe { CStr::from_ptr(nnk_last_error_message()) }.to_string_lossy().into_owned()
    }

    #[test]
    fn gemm_and_kernels_check_their_arguments() {
        let a = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
        let b = [7.0f32, 8.0, 9.0, 10.0, 11.0, 12.0];
        let mut c = [0.0f32; 4];
        // The 2×2×3 product of a and b into `c` (leading dimension `lda` for a).
        let sgemm = |c: *mut f32, lda: usize| {
            // SAFETY: a, b and a non-null c hold what the shapes read and
            // write; a null c or lda < k is refused before any access.
            unsafe {
                nnk_sgemm(
                    NNK_ROW_MAJOR,
                    NNK_NO_TRANS,
                    NNK_NO_TRANS,
                    2,
                    2,
                    3,
                    1.0,
                    a.as_ptr(),
                    lda,
                    b.as_ptr(),
                    2,
                    0.0,
                    c,
                    2,
                )
            }
        };
        let st = sgemm(c.as_mut_ptr(), 3);
        assert_eq!(st, 0, "{}", last());
        assert_eq!(c, [58.0, 64.0, 139.0, 154.0]);
        assert_ne!(sgemm(null_mut(), 3), 0, "a null C");
        assert!(!last().is_empty());
        assert_ne!(sgemm(c.as_mut_ptr(), 2), 0, "lda < k");
        // SAFETY: an unknown layout code is refused.
        let st = unsafe {
            nnk_sgemm(7, NNK_NO_TRANS, NNK_NO_TRANS, 2, 2, 3, 1.0, a.as_ptr(), 3, b.as_ptr(), 2, 0.0, c.as_mut_ptr(), 2)
        };
        assert_ne!(st, 0);

        let (x, w, bias) = ([1.0f32, -1.0, 2.0, 0.5], [1.0f32, 2.0, 3.0, 4.0], [0.5f32, -0.5]);
        let (mut z, mut out) = ([0.0f32; 4], [0.0f32; 4]);
        // SAFETY: batch 2 × n_in 2 → n_out 2; every array holds what the shapes need.
        let st = unsafe {
            nnk_dense_forward(
                NNK_ACT_RELU,
                2,
                2,
                2,
                x.as_ptr(),
                w.as_ptr(),
                bias.as_ptr(),
                z.as_mut_ptr(),
                out.as_mut_ptr(),
            )
        };
        assert_eq!(st, 0, "{}", last());
        assert_eq!(z, [-1.5, -2.5, 4.0, 5.5]);
        assert_eq!(out, [0.0, 0.0, 4.0, 5.5]);
        // SAFETY: a null X is refused.
        let st = unsafe {
            nnk_dense_forward(
                NNK_ACT_RELU,
                2,
                2,
                2,
                null(),
                w.as_ptr(),
                bias.as_ptr(),
                z.as_mut_ptr(),
                out.as_mut_ptr(),
            )
        };
        assert_ne!(st, 0);

        let (mut w, g, mut m, mut v) = ([1.0f32; 5], [0.5f32; 5], [0.0f32; 5], [0.0f32; 5]);
        // SAFETY: four arrays of 5 elements.
        let st = unsafe {
            nnk_adam_step(5, w.as_mut_ptr(), g.as_ptr(), m.as_mut_ptr(), v.as_mut_ptr(), 1, 0.1, 0.9, 0.999, 1e-8, 0.0)
        };
        assert_eq!(st, 0, "{}", last());
        assert!(w.iter().all(|&x| x < 1.0));
        // SAFETY: t = 0 is refused before any access.
        let st = unsafe {
            nnk_adam_step(5, w.as_mut_ptr(), g.as_ptr(), m.as_mut_ptr(), v.as_mut_ptr(), 0, 0.1, 0.9, 0.999, 1e-8, 0.0)
        };
        assert_ne!(st, 0);
    }

    #[test]
    fn model_handles() {
        let units = [4usize, 3];
        let acts = [NNK_ACT_RELU, NNK_ACT_SOFTMAX];
        let mut m = null_mut();
        // SAFETY: 2 layers described by arrays of 2; `m` receives the handle.
        let st = unsafe { nnk_mlp_new(5, 2, units.as_ptr(), acts.as_ptr(), 1, &mut m) };
        assert_eq!(st, 0, "{}", last());
        let mut cfg = null_mut();
        // SAFETY: `cfg` receives the handle.
        assert_eq!(unsafe { nnk_train_config_new(&mut cfg) }, 0);
        // SAFETY: valid handle.
        assert_eq!(unsafe { nnk_train_config_set_epochs(cfg, 2) }, 0);
        // SAFETY: valid handle.
        assert_eq!(unsafe { nnk_train_config_set_batch_size(cfg, 4) }, 0);
        let x: Vec<f32> = (0..10 * 5).map(|i| ((i * 3) % 7) as f32 - 3.0).collect();
        let y: Vec<u32> = (0..10).map(|i| (i % 3) as u32).collect();
        // SAFETY: 10 samples × 5 features, 10 labels.
        let st = unsafe { nnk_mlp_fit_classifier(m, cfg, x.as_ptr(), 10, 5, y.as_ptr()) };
        assert_eq!(st, 0, "{}", last());
        let mut p = [0.0f32; 30];
        // SAFETY: 10 × 5 inputs, 30 outputs.
        let st = unsafe { nnk_mlp_predict_proba(m, x.as_ptr(), 10, 5, p.as_mut_ptr(), 30) };
        assert_eq!(st, 0, "{}", last());
        assert!(p.chunks(3).all(|r| (r.iter().sum::<f32>() - 1.0).abs() < 1e-5));
        // SAFETY: an output buffer too short is refused before any write.
        let st = unsafe { nnk_mlp_predict_proba(m, x.as_ptr(), 10, 5, p.as_mut_ptr(), 29) };
        assert_ne!(st, 0);
        // SAFETY: null handles are refused; free accepts NULL.
        unsafe {
            assert_ne!(nnk_mlp_predict_proba(null(), x.as_ptr(), 10, 5, p.as_mut_ptr(), 30), 0);
            nnk_train_config_free(cfg);
            nnk_mlp_free(m);
            nnk_mlp_free(null_mut());
        }
    }

    /// A model's contents through C: parameters out and in, the model as
    /// bytes and back, a partial fit and its history.
    #[test]
    fn model_contents() {
        use nnkern::ffi::model_data::*;
        let units = [3usize, 2];
        let acts = [NNK_ACT_RELU, NNK_ACT_SOFTMAX];
        let mut m = null_mut();
        // SAFETY: 2 layers described by arrays of 2; `m` receives the handle.
        assert_eq!(unsafe { nnk_mlp_new(4, 2, units.as_ptr(), acts.as_ptr(), 3, &mut m) }, 0, "{}", last());
        let (mut w, mut b) = ([0.0f32; 12], [0.0f32; 3]);
        // SAFETY: layer 0 is 4×3: 12 weights, 3 biases.
        assert_eq!(unsafe { nnk_mlp_get_params(m, 0, w.as_mut_ptr(), 12, b.as_mut_ptr(), 3) }, 0, "{}", last());
        let w2: Vec<f32> = w.iter().map(|v| v * 0.5).collect();
        // SAFETY: as above, read only.
        assert_eq!(unsafe { nnk_mlp_set_params(m, 0, w2.as_ptr(), 12, b.as_ptr(), 3) }, 0, "{}", last());
        // SAFETY: a short buffer is refused before any access.
        assert_ne!(unsafe { nnk_mlp_get_params(m, 0, w.as_mut_ptr(), 11, b.as_mut_ptr(), 3) }, 0);
        // SAFETY: as above.
        assert_eq!(unsafe { nnk_mlp_get_params(m, 0, w.as_mut_ptr(), 12, b.as_mut_ptr(), 3) }, 0);
        assert_eq!(w.to_vec(), w2);
        let mut len = 0usize;
        // SAFETY: a size query: NULL buffer, `len` writable.
        assert_eq!(unsafe { nnk_mlp_to_bytes(m, null_mut(), 0, &mut len) }, 0, "{}", last());
        let mut buf = vec![0u8; len];
        // SAFETY: `buf` holds `len` bytes.
        assert_eq!(unsafe { nnk_mlp_to_bytes(m, buf.as_mut_ptr(), len, &mut len) }, 0, "{}", last());
        let mut m2 = null_mut();
        // SAFETY: `buf` holds `len` bytes; `m2` receives the handle.
        assert_eq!(unsafe { nnk_mlp_from_bytes(buf.as_ptr(), len, &mut m2) }, 0, "{}", last());
        // SAFETY: a truncated buffer is refused.
        assert_ne!(unsafe { nnk_mlp_from_bytes(buf.as_ptr(), len - 1, &mut m2) }, 0);
        let mut cfg = null_mut();
        // SAFETY: `cfg` receives the handle; then valid handles.
        unsafe {
            assert_eq!(nnk_train_config_new(&mut cfg), 0);
            assert_eq!(nnk_train_config_set_batch_size(cfg, 3), 0);
            assert_eq!(nnk_train_config_set_beta_1(cfg, 0.8), 0);
            assert_ne!(nnk_train_config_set_beta_1(cfg, 1.0), 0);
        }
        let x: Vec<f32> = (0..6 * 4).map(|i| ((i * 5) % 7) as f32 - 3.0).collect();
        let y: Vec<u32> = (0..6).map(|i| (i % 2) as u32).collect();
        // SAFETY: 6 samples × 4 features, 6 labels.
        let st = unsafe { nnk_mlp_partial_fit_classifier(m2, cfg, x.as_ptr(), 6, 4, y.as_ptr()) };
        assert_eq!(st, 0, "{}", last());
        let mut loss = [0.0f64; 2];
        // SAFETY: a zeroed plain C struct is a valid value of it.
        let mut s: nnk_fit_summary = unsafe { std::mem::zeroed() };
        // SAFETY: `s` writable, `loss` holds 2 (cap), no validation array.
        let st = unsafe { nnk_mlp_fit_history(m2, &mut s, loss.as_mut_ptr(), null_mut(), 2) };
        assert_eq!(st, 0, "{}", last());
        assert_eq!((s.n_iter, s.samples_seen, s.steps), (1, 6, 2));
        assert!(loss[0].is_finite() && s.best_loss == loss[0]);
        // The same six rows as CSR (every value stored, zeros included).
        let indptr: Vec<i64> = (0..=6).map(|r| r * 4).collect();
        let indices: Vec<i32> = (0..24).map(|k| k % 4).collect();
        let csr = nnk_csr {
            n_rows: 6,
            n_cols: 4,
            nnz: 24,
            indptr: indptr.as_ptr(),
            indices: indices.as_ptr(),
            data: x.as_ptr(),
        };
        // SAFETY: `csr` describes arrays of n_rows + 1 and nnz elements; 6 labels.
        let st = unsafe { nnk_mlp_partial_fit_classifier_csr(m2, cfg, &csr, y.as_ptr()) };
        assert_eq!(st, 0, "{}", last());
        let bad = nnk_csr { n_rows: usize::MAX, ..csr };
        // SAFETY: refused (n_rows + 1 overflows) before any array is read.
        assert_ne!(unsafe { nnk_mlp_partial_fit_classifier_csr(m2, cfg, &bad, y.as_ptr()) }, 0);
        // SAFETY: the first model has no fit yet: refused, nothing written.
        assert_ne!(unsafe { nnk_mlp_fit_history(m, &mut s, null_mut(), null_mut(), 0) }, 0);
        // SAFETY: each handle freed once.
        unsafe {
            nnk_train_config_free(cfg);
            nnk_mlp_free(m2);
            nnk_mlp_free(m);
        }
    }
}
