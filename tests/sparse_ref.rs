//! Sparse × dense products (`nnkern::gemm::spmm`, `spmm_rows`, `spmm_t_rows`) and the sparse
//! dense-layer steps against f64 oracles and against the dense path: random
//! shapes (0, 1, odd, past the row and k blocks), densities, special values,
//! strides, alpha/beta, every ISA of this CPU, 1/2/4 threads.
//!
//! Bound asserted for every element (see `nnkern::gemm::sparse`):
//! `|c − ĉ| ≤ (nnz_i + 2)·ε·(|alpha|·Σ|s·b| + |beta·c|)`.

mod common;

use common::{Rng, isas, scalar_and_current};
use nnkern::gemm::{GemmOptions, MatMut, MatRef, SparseRows, spmm, spmm_rows, spmm_t_rows};
use nnkern::ops::Activation;
use nnkern::ops::fused::{
    DenseGrads, DenseShape, dense_backward, dense_backward_sparse, dense_backward_sparse_rows, dense_forward,
    dense_forward_sparse,
};
use nnkern::par::Par;
use nnkern::simd::Isa;

#[test]
fn sparse_rows_round_trip_and_keep_special_values() {
    let mut rng = Rng(1);
    for &(r, c) in &[(0usize, 0usize), (0, 5), (3, 0), (1, 1), (4, 7), (5, 8), (9, 17), (3, 100)] {
        let mut x = rng.sparse(r * c, 0.3);
        if r * c > 3 {
            x[0] = f32::NAN;
            x[1] = -0.0;
            x[2] = f32::INFINITY;
        }
        let s = SparseRows::from_dense(&x, r, c).unwrap();
        assert_eq!((s.rows(), s.cols()), (r, c));
        let nz = x.iter().filter(|v| **v != 0.0 || v.is_nan()).count();
        assert_eq!(s.nnz(), nz, "{r}×{c}");
        let d = s.to_dense();
        for (a, b) in d.iter().zip(&x) {
            // -0.0 is not stored: it comes back as +0.0.
            assert!(a.to_bits() == b.to_bits() || (*b == 0.0 && *a == 0.0), "{a} vs {b}");
        }
        for row in 0..r {
            let (ix, _) = s.row(row);
            assert!(ix.windows(2).all(|w| w[0] < w[1]), "indices increase");
        }
    }
    assert!(SparseRows::from_dense(&[1.0, 2.0], 1, 3).is_err(), "wrong length");
    let mut s = SparseRows::new(3).unwrap();
    assert!(s.push_dense_row(&[1.0, 2.0]).is_err(), "wrong row width");
    // The default matrix is a valid 0 × 0 one.
    let mut d = SparseRows::default();
    d.push_dense_row(&[]).unwrap();
    assert_eq!((d.rows(), d.cols(), d.nnz()), (1, 0, 0));
    assert_eq!(d.row(0), (&[][..], &[][..]));
    let mut t = SparseRows::default();
    t.transpose_from(&d).unwrap();
    assert_eq!((t.rows(), t.cols()), (0, 1));
    // Equality ignores the buffers' spare room: the same matrix built
    // directly, row by row into a used buffer, and by transposing twice.
    let x = rng.sparse(6 * 11, 0.4);
    let a = SparseRows::from_dense(&x, 6, 11).unwrap();
    let mut b = SparseRows::from_dense(&rng.sparse(9 * 11, 0.9), 9, 11).unwrap();
    b.clear(11).unwrap();
    for r in 0..6 {
        b.push_dense_row(&x[r * 11..(r + 1) * 11]).unwrap();
    }
    let (mut t1, mut t2) = (SparseRows::default(), SparseRows::default());
    t1.transpose_from(&a).unwrap();
    t2.transpose_from(&t1).unwrap();
    assert!(a == b && a == t2 && a != t1);
    // from_dense grows its buffers to the density seen so far: rows that
    // start empty and grow dense (every regrowth), and the reverse.
    for ramp in [false, true] {
        let (rows, cols) = (300usize, 37usize);
        let x: Vec<f32> = (0..rows * cols)
            .map(|t| {
                let (r, c) = (t / cols, t % cols);
                let r = if ramp { rows - 1 - r } else { r };
                if (c * 7 + r) % rows < r { 1.0 + t as f32 } else { 0.0 }
            })
            .collect();
        let a = SparseRows::from_dense(&x, rows, cols).unwrap();
        let mut b = SparseRows::new(cols).unwrap();
        for r in 0..rows {
            b.push_dense_row(&x[r * cols..(r + 1) * cols]).unwrap();
        }
        assert!(a == b, "ramp {ramp}");
        assert_eq!(a.to_dense(), x);
    }
}

#[test]
fn transposes_match_the_dense_transpose() {
    let mut rng = Rng(2);
    let (r, c) = (37, 29);
    let x = rng.sparse(r * c, 0.2);
    let s = SparseRows::from_dense(&x, r, c).unwrap();
    let mut t = SparseRows::new(0).unwrap();
    t.transpose_from(&s).unwrap();
    let td = t.to_dense();
    for i in 0..r {
        for j in 0..c {
            assert_eq!(td[j * r + i].to_bits(), x[i * c + j].to_bits());
        }
    }
    // A gathered batch, with repeats, transposed.
    let rows = [5usize, 0, 36, 5, 17];
    t.transpose_rows_from(&s, &rows).unwrap();
    assert_eq!((t.rows(), t.cols()), (c, rows.len()));
    let td = t.to_dense();
    for (p, &i) in rows.iter().enumerate() {
        for j in 0..c {
            assert_eq!(td[j * rows.len() + p].to_bits(), x[i * c + j].to_bits());
        }
    }
    assert!(t.transpose_rows_from(&s, &[0, 37]).is_err(), "row out of range");
}

/// The batch transpose on several threads (each takes a range of the batch's
/// rows and writes its part of every column's list) gives the serial one's
/// exact matrix: batches large enough to split (over 8192 nonzeros per
/// thread), rows repeated, empty rows and empty columns, and more threads
/// than the batch can use.
#[test]
fn batch_transpose_is_the_same_for_any_thread_count() {
    let mut rng = Rng(0x5eed_7a55);
    let (r, c) = (700, 301);
    let x: Vec<f32> = (0..r * c)
        .map(|i| {
            let (row, col) = (i / c, i % c);
            // Row 3 and column 7 are empty; about 45% of the rest is nonzero.
            if row == 3 || col == 7 || rng.unif_f64() < -0.1 { 0.0 } else { rng.unif_f64_as_f32() }
        })
        .collect();
    let s = SparseRows::from_dense(&x, r, c).unwrap();
    for n in [1usize, 2, 50, 199, 600, 1400] {
        let rows: Vec<usize> = (0..n).map(|_| (rng.next() % r as u64) as usize).chain([3, 3]).collect();
        let mut want = SparseRows::default();
        want.transpose_rows_from(&s, &rows).unwrap();
        let td = want.to_dense();
        for (p, &i) in rows.iter().enumerate() {
            for j in 0..c {
                assert_eq!(td[j * rows.len() + p].to_bits(), x[i * c + j].to_bits());
            }
        }
        // Reused outputs, also from a larger earlier fill.
        let mut got = SparseRows::default();
        for t in [2usize, 3, 4, 7, 64, 2] {
            got.transpose_rows_from_with(&s, &rows, Par::Threads(t)).unwrap();
            assert!(got == want, "batch of {} rows, {t} threads", rows.len());
        }
    }
    let mut t = SparseRows::default();
    assert!(t.transpose_rows_from_with(&s, &[0, r], Par::Threads(2)).is_err(), "row out of range");
}

/// `prefetch_rows` is a hint: rows out of range (even `usize::MAX`) and empty
/// matrices are skipped, and nothing changes.
#[test]
fn prefetch_rows_skips_rows_out_of_range() {
    let mut rng = Rng(5);
    let x = rng.sparse(37 * 29, 0.3);
    let s = SparseRows::from_dense(&x, 37, 29).unwrap();
    let before = s.clone();
    s.prefetch_rows(&[0, 36, 37, usize::MAX, 5, 5]);
    assert_eq!(s, before);
    SparseRows::default().prefetch_rows(&[0, 1, usize::MAX]);
    SparseRows::new(8).unwrap().prefetch_rows(&[0]);
}

/// f64 oracle of alpha·S·B + beta·C and the element bound's scale.
#[allow(clippy::too_many_arguments)]
fn oracle(
    x: &[f32],
    m: usize,
    k: usize,
    n: usize,
    b: &dyn Fn(usize, usize) -> f32,
    alpha: f32,
    beta: f32,
    c0: &dyn Fn(usize, usize) -> f32,
) -> (Vec<f64>, Vec<f64>) {
    let (mut r, mut bound) = (vec![0.0; m * n], vec![0.0; m * n]);
    for i in 0..m {
        let nnz = (0..k).filter(|&p| x[i * k + p] != 0.0).count() as f64;
        for j in 0..n {
            let (mut s, mut a) = (0.0f64, 0.0f64);
            for p in 0..k {
                let t = x[i * k + p] as f64 * b(p, j) as f64;
                s += t;
                a += t.abs();
            }
            let cv = if beta == 0.0 { 0.0 } else { beta as f64 * c0(i, j) as f64 };
            r[i * n + j] = alpha as f64 * s + cv;
            bound[i * n + j] = (nnz + 2.0) * f32::EPSILON as f64 * (alpha.abs() as f64 * a + cv.abs());
        }
    }
    (r, bound)
}

#[test]
fn spmm_matches_f64_on_random_shapes_strides_and_isas() {
    let mut rng = Rng(3);
    let shapes = [
        (0usize, 3usize, 4usize),
        (3, 0, 4),
        (3, 4, 0),
        (1, 1, 1),
        (1, 7, 9),
        (5, 13, 8),
        (7, 31, 17),
        (33, 50, 3),
        // B of at most 32 KiB (with AVX2's 8 lanes): the direct row-by-row
        // loop.
        (40, 60, 128), // m past one row block of the blocked loop
        (35, 60, 131), // a partial last vector
        // B of 32 KiB to 256 KiB: the sliced direct loop (rows in pairs, B in
        // slices of 4 vectors of columns).
        (40, 100, 128),
        (35, 70, 131), // an odd row left after the pairs, a partial last slice
        (9, 300, 200),
        (3, 20, 1100), // past one column panel (1024)
        // B of 256 to 512 KiB: direct where L2 holds twice that (a Zen 4's
        // 1 MiB), else blocked.
        (37, 600, 130),
        // Beyond 512 KiB: the blocked loop on any machine (rows of C in
        // blocks of 32, k in blocks of 32 KiB of B, columns in panels of 1024).
        (37, 1200, 130), // past a row block and several k blocks, a partial vector
        (3, 200, 1100),  // past a column panel
        (5, 200, 1088),  // a blocked first panel, a sliced second one (64 columns)
    ];
    for isa in scalar_and_current() {
        let o = GemmOptions { isa: Some(isa), par: Par::Seq, ..Default::default() };
        for &(m, k, n) in &shapes {
            for &density in &[0.0, 0.05, 0.3, 1.0] {
                for &(alpha, beta) in &[(1.0f32, 0.0f32), (0.5, 2.0), (-1.5, 1.0)] {
                    for strided in [false, true] {
                        let x = rng.sparse(m * k, density);
                        let s = SparseRows::from_dense(&x, m, k).unwrap();
                        // B row-major, or column-major (no unit column stride).
                        let bd: Vec<f32> = (0..k * n).map(|_| rng.unif_f64_as_f32()).collect();
                        let bview = if strided {
                            MatRef::col_major(&bd, k, n, k.max(1)).unwrap()
                        } else {
                            MatRef::row_major(&bd, k, n, n.max(1)).unwrap()
                        };
                        let bget = |p: usize, j: usize| if strided { bd[j * k + p] } else { bd[p * n + j] };
                        // C: padded rows, or column-major when strided; NaN where
                        // beta = 0 must not be read.
                        let ldc = if strided { m.max(1) } else { n + 3 };
                        let len = if strided { ldc * n } else { m * ldc };
                        let c_init: Vec<f32> =
                            (0..len).map(|_| if beta == 0.0 { f32::NAN } else { rng.unif_f64_as_f32() }).collect();
                        let cidx = |i: usize, j: usize| if strided { j * ldc + i } else { i * ldc + j };
                        let (want, bound) =
                            oracle(&x, m, k, n, &bget, alpha, beta, &|i: usize, j: usize| c_init[cidx(i, j)]);
                        let mut c = c_init.clone();
                        let cv = if strided {
                            MatMut::col_major(&mut c, m, n, ldc).unwrap()
                        } else {
                            MatMut::row_major(&mut c, m, n, ldc).unwrap()
                        };
                        spmm(alpha, &s, bview, beta, cv, &o).unwrap();
                        for i in 0..m {
                            for j in 0..n {
                                let got = c[cidx(i, j)] as f64;
                                let e = (got - want[i * n + j]).abs();
                                assert!(
                                    e <= bound[i * n + j],
                                    "{isa:?} {m}×{k}×{n} d{density} α{alpha} β{beta} strided {strided} ({i},{j}): \
                                     {got} vs {} (bound {})",
                                    want[i * n + j],
                                    bound[i * n + j]
                                );
                            }
                        }
                        if !strided {
                            // Padding between rows is never written.
                            for i in 0..m {
                                for j in n..ldc {
                                    assert_eq!(c[i * ldc + j].to_bits(), c_init[i * ldc + j].to_bits());
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The direct loop (B ≤ 32 KiB), the sliced direct loop (32 to 256 KiB) and
/// the blocked loop (beyond 512 KiB) sum each element's terms in the same order:
/// the same columns of narrower and wider B give the same bits, with and
/// without beta, on one thread and on three, into row- and column-major C.
#[test]
fn direct_sliced_and_blocked_loops_give_the_same_bits() {
    let mut rng = Rng(17);
    // k = 250 rows of B. 600 columns (about 600 KiB): blocked. 100 columns
    // (112 KiB padded, a 4-vector slice of at most 64 KiB with 8 or 16
    // lanes): sliced; 45 columns: sliced with 8 lanes (48 KiB), direct with
    // 16 (under one slice). 8 columns (at most 16 KiB): direct. 301 rows of
    // C: an odd one after the pairs, and enough work for three threads from
    // 100 columns on.
    let (m, k, wide) = (301usize, 250usize, 600usize);
    let x = rng.sparse(m * k, 0.2);
    let s = SparseRows::from_dense(&x, m, k).unwrap();
    let b: Vec<f32> = (0..k * wide).map(|_| rng.unif_f64_as_f32()).collect();
    let c0: Vec<f32> = (0..m * wide).map(|_| rng.unif_f64_as_f32()).collect();
    for isa in scalar_and_current() {
        for par in [Par::Seq, Par::Threads(3)] {
            let o = GemmOptions { isa: Some(isa), par, ..Default::default() };
            for beta in [0.0f32, 0.75] {
                // C row-major (leading dimension `wide`), or column-major
                // (leading dimension m) read back in row-major order.
                let run = |n: usize, col_major: bool| {
                    let bv = MatRef::row_major(&b, k, n, wide).unwrap();
                    if col_major {
                        let mut c: Vec<f32> = (0..m * n).map(|t| c0[(t % m) * wide + t / m]).collect();
                        spmm(1.25, &s, bv, beta, MatMut::col_major(&mut c, m, n, m).unwrap(), &o).unwrap();
                        (0..m * wide)
                            .map(|t| if t % wide < n { c[(t % wide) * m + t / wide] } else { c0[t] })
                            .collect::<Vec<f32>>()
                    } else {
                        let mut c = c0.clone();
                        spmm(1.25, &s, bv, beta, MatMut::row_major(&mut c, m, n, wide).unwrap(), &o).unwrap();
                        c
                    }
                };
                // Each layout against the wide product in the same layout (the
                // scalar ISA's strided write-out rounds beta·C with a fused
                // multiply-add, its vector one without).
                let cws = [run(wide, false), run(wide, true)];
                for n in [8, 45, 100] {
                    for col_major in [false, true] {
                        let cw = &cws[col_major as usize];
                        let cn = run(n, col_major);
                        for i in 0..m {
                            for j in 0..wide {
                                let want = if j < n { cw[i * wide + j] } else { c0[i * wide + j] };
                                assert_eq!(
                                    cn[i * wide + j].to_bits(),
                                    want.to_bits(),
                                    "{isa:?} {par:?} n{n} col-major {col_major} β{beta} ({i},{j})"
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn spmm_alpha_zero_never_reads_b_and_rejects_bad_shapes() {
    let x = [1.0f32, 0.0, 2.0, 3.0];
    let s = SparseRows::from_dense(&x, 2, 2).unwrap();
    let b = [f32::NAN; 4];
    let mut c = [1.0f32, 2.0, 3.0, 4.0];
    let o = GemmOptions::default();
    spmm(0.0, &s, MatRef::row_major(&b, 2, 2, 2).unwrap(), 2.0, MatMut::row_major(&mut c, 2, 2, 2).unwrap(), &o)
        .unwrap();
    assert_eq!(c, [2.0, 4.0, 6.0, 8.0]);
    // Zeros of S skip B's NaN and ∞ (a dense product would give NaN), at
    // widths with full vectors, a partial one and both.
    for n in [2usize, 16, 19] {
        let b: Vec<f32> =
            (0..2 * n).map(|i| if i < n { if i % 2 == 0 { f32::NAN } else { f32::INFINITY } } else { 1.0 }).collect();
        let mut c = vec![0f32; n];
        spmm(
            1.0,
            &SparseRows::from_dense(&[0.0, 1.0], 1, 2).unwrap(),
            MatRef::row_major(&b, 2, n, n).unwrap(),
            0.0,
            MatMut::row_major(&mut c, 1, n, n).unwrap(),
            &o,
        )
        .unwrap();
        assert!(c.iter().all(|&v| v == 1.0), "n = {n}: {c:?}");
    }
    let b3 = [0.0f32; 6];
    let e =
        spmm(1.0, &s, MatRef::row_major(&b3, 3, 2, 2).unwrap(), 0.0, MatMut::row_major(&mut c, 2, 2, 2).unwrap(), &o);
    assert!(e.unwrap_err().to_string().contains("spmm"), "k mismatch");
    let e = spmm_rows(
        1.0,
        &s,
        &[0, 2],
        MatRef::row_major(&b, 2, 2, 2).unwrap(),
        0.0,
        MatMut::row_major(&mut c, 2, 2, 2).unwrap(),
        &o,
    );
    assert!(e.is_err(), "row out of range");
}

#[test]
fn spmm_rows_equals_spmm_on_the_gathered_rows_for_any_thread_count() {
    let mut rng = Rng(4);
    let (n_data, k, n) = (500, 784, 128);
    let x = rng.sparse(n_data * k, 0.19);
    let s = SparseRows::from_dense(&x, n_data, k).unwrap();
    let b: Vec<f32> = (0..k * n).map(|_| rng.unif_f64_as_f32()).collect();
    let rows: Vec<usize> = (0..256).map(|_| rng.below(n_data)).collect();
    let gathered: Vec<f32> = rows.iter().flat_map(|&r| x[r * k..(r + 1) * k].iter().copied()).collect();
    let g = SparseRows::from_dense(&gathered, rows.len(), k).unwrap();
    let m = rows.len();
    let c0: Vec<f32> = (0..m * n).map(|_| rng.unif_f64_as_f32()).collect();
    // Row-major C with beta = 0, and column-major C with beta = 0.5 (the
    // strided write-out).
    for (beta, col_major) in [(0.0f32, false), (0.5, true)] {
        let run = |threads: usize, sel: bool| {
            let o = GemmOptions { par: Par::Threads(threads), ..Default::default() };
            let mut c = c0.clone();
            let bv = MatRef::row_major(&b, k, n, n).unwrap();
            let cv = if col_major {
                MatMut::col_major(&mut c, m, n, m).unwrap()
            } else {
                MatMut::row_major(&mut c, m, n, n).unwrap()
            };
            if sel { spmm_rows(0.7, &s, &rows, bv, beta, cv, &o) } else { spmm(0.7, &g, bv, beta, cv, &o) }.unwrap();
            c
        };
        let base = run(1, false);
        for t in [1, 2, 4] {
            for sel in [false, true] {
                let c = run(t, sel);
                assert!(
                    c.iter().zip(&base).all(|(a, b)| a.to_bits() == b.to_bits()),
                    "beta {beta}: threads {t} rows {sel}"
                );
            }
        }
    }
}

/// `spmm_t_rows` (`Sᵀ_b·B` straight from the rows) gives the bits of `spmm`
/// on the batch's transpose, on every ISA and thread count: odd shapes, 0 and
/// 1, k past several blocks, n past 8 vectors and past the 1024-column panel,
/// repeated and empty rows, an empty column, strided B and C, alpha 0 and
/// not 1, beta, batches up to 64 rows (the bitmask loop, up to its last
/// bit) and past them (the block of accumulators); and it is within the
/// bound of an f64 oracle.
#[test]
fn spmm_t_rows_has_the_bits_of_spmm_on_the_transpose() {
    let mut rng = Rng(0x7d3);
    // (rows of the data set, k, n, batch)
    for &(nd, k, n, m) in &[
        (5usize, 1usize, 1usize, 3usize),
        (6, 7, 5, 0),
        (6, 7, 5, 1),
        (40, 33, 17, 25),
        (60, 1100, 17, 41),
        (30, 90, 130, 37),
        (12, 40, 1030, 9),
        (200, 784, 100, 64),
        (300, 90, 130, 70),
        (100, 40, 1030, 65),
    ] {
        let mut x = rng.sparse(nd * k, 0.25);
        // Row 1 is empty, and so is column k / 2.
        for c in 0..k {
            if nd > 1 {
                x[k + c] = 0.0;
            }
            for r in 0..nd {
                if c == k / 2 {
                    x[r * k + c] = 0.0;
                }
            }
        }
        let s = SparseRows::from_dense(&x, nd, k).unwrap();
        let mut rows: Vec<usize> = (0..m).map(|_| rng.below(nd)).collect();
        if m > 3 {
            rows[1] = 1;
            rows[2] = rows[0];
        }
        let mut b: Vec<f32> = (0..m * n).map(|_| rng.unif_f64_as_f32()).collect();
        let c0: Vec<f32> = (0..k * n).map(|_| rng.unif_f64_as_f32()).collect();
        let mut xt = SparseRows::default();
        xt.transpose_rows_from(&s, &rows).unwrap();
        for isa in common::isas() {
            for &(alpha, beta, b_strided, c_col) in &[
                (1.0f32, 0.0f32, false, false),
                (0.7, 0.5, false, true),
                (0.0, 0.5, false, false),
                (1.0, 0.0, true, false),
            ] {
                let run = |threads: usize, transposed: bool, b: &[f32]| {
                    let o = GemmOptions { isa: Some(isa), par: Par::Threads(threads), ..Default::default() };
                    let mut c = c0.clone();
                    let bc: Vec<f32> =
                        if b_strided { (0..m * n).map(|i| b[(i % m) * n + i / m]).collect() } else { b.to_vec() };
                    let bv = if b_strided { MatRef::col_major(&bc, m, n, m) } else { MatRef::row_major(&bc, m, n, n) }
                        .unwrap();
                    let cv =
                        if c_col { MatMut::col_major(&mut c, k, n, k) } else { MatMut::row_major(&mut c, k, n, n) }
                            .unwrap();
                    if transposed {
                        spmm(alpha, &xt, bv, beta, cv, &o)
                    } else {
                        spmm_t_rows(alpha, &s, &rows, bv, beta, cv, &o)
                    }
                    .unwrap();
                    c
                };
                let want = run(1, true, &b);
                for t in [1, 2, 3] {
                    let got = run(t, false, &b);
                    assert!(
                        got.iter().zip(&want).all(|(p, q)| p.to_bits() == q.to_bits()),
                        "{isa:?} {nd}×{k}, n {n}, batch {m}, alpha {alpha} beta {beta} strided B {b_strided}, {t} threads"
                    );
                }
                if alpha == 0.7 {
                    // Against the f64 oracle, within spmm's bound.
                    for p in 0..k {
                        for j in 0..n {
                            let (mut acc, mut scale, mut nnz) = (0f64, 0f64, 0usize);
                            for (t, &r) in rows.iter().enumerate() {
                                let v = x[r * k + p] as f64;
                                if v != 0.0 {
                                    acc += v * b[t * n + j] as f64;
                                    scale += (v * b[t * n + j] as f64).abs();
                                    nnz += 1;
                                }
                            }
                            let c = c0[p + j * k] as f64; // column-major C
                            let exact = alpha as f64 * acc + beta as f64 * c;
                            let tol = (nnz as f64 + 2.0)
                                * f32::EPSILON as f64
                                * (alpha.abs() as f64 * scale + (beta as f64 * c).abs());
                            let got = want[p + j * k] as f64;
                            assert!((got - exact).abs() <= tol, "({p},{j}): {got} vs {exact} (bound {tol})");
                        }
                    }
                }
            }
        }
        // A NaN in B where the sample's value is zero is not formed (0·NaN).
        if m > 3 && k > 1 {
            let (r1, p) = (rows[1], k / 2);
            assert!(x[r1 * k..(r1 + 1) * k].iter().all(|&v| v == 0.0) && rows.iter().all(|&r| x[r * k + p] == 0.0));
            b[n] = f32::NAN; // row 1 of B: the empty sample's
            let mut c = vec![0f32; k * n];
            let o = GemmOptions::default();
            spmm_t_rows(
                1.0,
                &s,
                &rows,
                MatRef::row_major(&b, m, n, n).unwrap(),
                0.0,
                MatMut::row_major(&mut c, k, n, n).unwrap(),
                &o,
            )
            .unwrap();
            assert!(c.iter().all(|v| v.is_finite()), "0·NaN formed");
        }
    }
    // Bad shapes and rows are refused, and C is left as it was.
    let s = SparseRows::from_dense(&[1.0, 0.0, 2.0, 3.0, 0.0, 4.0], 2, 3).unwrap();
    let o = GemmOptions::default();
    let b = [1.0f32; 4];
    let mut c = [7.0f32; 6];
    let call = |c: &mut [f32; 6], rows: &[usize], bm: usize, ck: usize| {
        let (bv, cv) = (MatRef::row_major(&b[..bm * 2], bm, 2, 2), MatMut::row_major(&mut c[..ck * 2], ck, 2, 2));
        spmm_t_rows(1.0, &s, rows, bv.unwrap(), 0.0, cv.unwrap(), &o).map_err(|e| e.to_string())
    };
    assert!(call(&mut c, &[0, 2], 2, 3).unwrap_err().contains("row 2"), "row out of range");
    assert!(call(&mut c, &[0, 1], 1, 3).unwrap_err().contains("spmm_t"), "B of another batch");
    assert!(call(&mut c, &[0, 1], 2, 2).unwrap_err().contains("spmm_t"), "C of the wrong height");
    assert_eq!(c, [7.0; 6]);
    assert!(call(&mut c, &[1, 0], 2, 3).is_ok());
    assert_eq!(c, [4.0, 4.0, 0.0, 0.0, 6.0, 6.0]);
}

/// A layer whose weights take 128 KiB or more sums each output in two
/// halves of its inputs (`epi(s_lo + s_hi)`, so that two threads each read
/// only their half of the weights): the bits of two products on the halves'
/// nonzeros, added, plus the bias, then the activation; the same for 1 to 4
/// threads, every ISA of this CPU, all rows or a selection of them, through
/// the direct and blocked loops, odd widths and two panels of columns;
/// smaller weights keep the one-pass sum (`sparse_inputs_train_like_dense_ones`
/// in `train.rs` asserts the sparse and dense paths' bits equal).
#[test]
fn large_sparse_forward_sums_in_halves_for_any_thread_count() {
    let mut rng = Rng(23);
    let mut differ = 0;
    // 784 × 128: MNIST's first layer (401 KiB); 301 × 130 (157 KiB) and
    // 1001 × 40 (160 KiB): odd k, n past and short of whole vectors.
    for &(batch, n_in, n_out, density) in &[
        (37usize, 784usize, 128usize, 0.2),
        (48, 301, 130, 0.2),
        (64, 1001, 40, 0.2),
        // B beyond 512 KiB: the blocked loop, on any machine.
        (40, 2100, 70, 0.2),
        // One row over two panels of columns, enough work for 4 threads.
        (1, 784, 1100, 0.9),
    ] {
        assert!(n_in * n_out * 4 >= 128 << 10);
        let shp = DenseShape { batch, n_in, n_out };
        let half = n_in / 2;
        let n_rows = batch + 9;
        let x = rng.sparse(n_rows * n_in, density);
        let w: Vec<f32> = (0..n_in * n_out).map(|_| rng.unif_f64_as_f32() * 0.1).collect();
        let bias: Vec<f32> = (0..n_out).map(|_| rng.unif_f64_as_f32()).collect();
        let rows: Vec<usize> = (0..batch).map(|_| rng.below(n_rows)).collect();
        let s = SparseRows::from_dense(&x, n_rows, n_in).unwrap();
        // The halves' nonzeros as matrices of their own, on the batch's rows.
        let part = |lo: bool| {
            let xp: Vec<f32> = (0..batch * n_in)
                .map(|t| if ((t % n_in) < half) == lo { x[rows[t / n_in] * n_in + t % n_in] } else { 0.0 })
                .collect();
            SparseRows::from_dense(&xp, batch, n_in).unwrap()
        };
        let (s_lo, s_hi) = (part(true), part(false));
        for isa in isas() {
            let seq = GemmOptions { isa: Some(isa), par: Par::Seq, ..Default::default() };
            let wv = MatRef::row_major(&w, n_in, n_out, n_out).unwrap();
            let (mut lo, mut hi) = (vec![0f32; batch * n_out], vec![0f32; batch * n_out]);
            spmm(1.0, &s_lo, wv, 0.0, MatMut::row_major(&mut lo, batch, n_out, n_out).unwrap(), &seq).unwrap();
            spmm(1.0, &s_hi, wv, 0.0, MatMut::row_major(&mut hi, batch, n_out, n_out).unwrap(), &seq).unwrap();
            let z_want: Vec<f32> = (0..batch * n_out).map(|t| (lo[t] + hi[t]) + bias[t % n_out]).collect();
            // The one-pass sum rounds differently somewhere (else this test
            // could not tell the orders apart).
            let mut one = vec![0f32; batch * n_out];
            spmm_rows(1.0, &s, &rows, wv, 0.0, MatMut::row_major(&mut one, batch, n_out, n_out).unwrap(), &seq)
                .unwrap();
            differ +=
                one.iter().zip(lo.iter().zip(&hi)).filter(|(o, (l, h))| o.to_bits() != (**l + **h).to_bits()).count();
            for threads in 1..=4 {
                let o = GemmOptions { isa: Some(isa), par: Par::Threads(threads), ..Default::default() };
                let (mut z, mut a) = (vec![f32::NAN; batch * n_out], vec![f32::NAN; batch * n_out]);
                let act = Activation::Relu;
                dense_forward_sparse(act, shp, &s, Some(&rows), &w, &bias, Some(&mut z), &mut a, &o).unwrap();
                for t in 0..batch * n_out {
                    let at = format!(
                        "{isa:?}, {threads} threads, {batch}×{n_in}·{n_in}×{n_out}, ({}, {})",
                        t / n_out,
                        t % n_out
                    );
                    assert_eq!(z[t].to_bits(), z_want[t].to_bits(), "z {at}");
                    assert_eq!(a[t].to_bits(), z_want[t].max(0.0).to_bits(), "a {at}");
                }
                // All rows of S (no selection) on these threads: the bits of
                // the selection of every row in order on one thread.
                let first: Vec<usize> = (0..n_rows).collect();
                let shp_all = DenseShape { batch: n_rows, ..shp };
                let (mut za, mut aa) = (vec![0f32; n_rows * n_out], vec![0f32; n_rows * n_out]);
                dense_forward_sparse(act, shp_all, &s, None, &w, &bias, Some(&mut za), &mut aa, &o).unwrap();
                let (mut zr, mut ar) = (za.clone(), aa.clone());
                dense_forward_sparse(act, shp_all, &s, Some(&first), &w, &bias, Some(&mut zr), &mut ar, &seq).unwrap();
                assert!(za.iter().zip(&zr).all(|(p, q)| p.to_bits() == q.to_bits()), "{isa:?} {threads} all rows");
            }
        }
    }
    assert!(differ > 0, "the halves' sums never differed from the one-pass sums");
}

#[test]
fn sparse_dense_layer_steps_match_the_dense_ones() {
    let mut rng = Rng(5);
    // (131, 200, 70): dW's B (dZ, 131 × 72 floats) takes the sliced loop.
    for &(batch, n_in, n_out) in
        &[(1usize, 1usize, 1usize), (32, 784, 128), (7, 50, 13), (45, 100, 10), (3, 40, 1030), (131, 200, 70)]
    {
        for act in [Activation::Relu, Activation::Tanh, Activation::Gelu, Activation::Softmax] {
            let shp = DenseShape { batch, n_in, n_out };
            let x = rng.sparse(batch * n_in, 0.2);
            let w: Vec<f32> = (0..n_in * n_out).map(|_| rng.unif_f64_as_f32() * 0.1).collect();
            let bias: Vec<f32> = (0..n_out).map(|_| rng.unif_f64_as_f32()).collect();
            let o = GemmOptions { par: Par::Seq, ..Default::default() };
            let s = SparseRows::from_dense(&x, batch, n_in).unwrap();
            let (mut zd, mut ad) = (vec![0f32; batch * n_out], vec![0f32; batch * n_out]);
            let (mut zs, mut as_) = (zd.clone(), ad.clone());
            dense_forward(act, shp, &x, &w, &bias, Some(&mut zd), &mut ad, &o).unwrap();
            dense_forward_sparse(act, shp, &s, None, &w, &bias, Some(&mut zs), &mut as_, &o).unwrap();
            // z: the GEMM bound with k = n_in; a: through the activation (its
            // Lipschitz constant is ≤ 1.2 for these, softmax's rows ≤ 1).
            for i in 0..batch {
                for j in 0..n_out {
                    let scale: f64 =
                        (0..n_in).map(|p| (x[i * n_in + p] as f64 * w[p * n_out + j] as f64).abs()).sum::<f64>()
                            + bias[j].abs() as f64;
                    let tol = (n_in as f64 + 2.0) * f32::EPSILON as f64 * scale + 1e-6;
                    let (a, b) = (zs[i * n_out + j] as f64, zd[i * n_out + j] as f64);
                    assert!((a - b).abs() <= 2.0 * tol, "{act:?} z ({i},{j}) {a} vs {b}");
                    let (a, b) = (as_[i * n_out + j] as f64, ad[i * n_out + j] as f64);
                    assert!((a - b).abs() <= 4.0 * tol + 1e-6, "{act:?} a ({i},{j}) {a} vs {b}");
                }
            }
            // The selected-rows form gives the same bits as the gathered one.
            let data = SparseRows::from_dense(&[x.clone(), x.clone()].concat(), 2 * batch, n_in).unwrap();
            let rows: Vec<usize> = (0..batch).map(|i| i + batch).collect();
            let (mut z2, mut a2) = (vec![0f32; batch * n_out], vec![0f32; batch * n_out]);
            dense_forward_sparse(act, shp, &data, Some(&rows), &w, &bias, Some(&mut z2), &mut a2, &o).unwrap();
            assert!(a2.iter().zip(&as_).all(|(p, q)| p.to_bits() == q.to_bits()), "{act:?} rows form");
            assert!(z2.iter().zip(&zs).all(|(p, q)| p.to_bits() == q.to_bits()), "{act:?} rows form, z");
            if act == Activation::Softmax {
                continue;
            }
            // Backward: dZ and db exactly, dW within the GEMM bound (k = batch).
            let da: Vec<f32> = (0..batch * n_out).map(|_| rng.unif_f64_as_f32()).collect();
            let mut xt = SparseRows::new(0).unwrap();
            xt.transpose_from(&s).unwrap();
            let l2 = 1e-3;
            let bufs = |sparse: bool| {
                let (mut dw, mut db, mut dz) = (vec![0f32; n_in * n_out], vec![0f32; n_out], vec![0f32; batch * n_out]);
                let g = DenseGrads { dw: &mut dw, db: &mut db, dx: None, dz: &mut dz };
                if sparse {
                    dense_backward_sparse(act, shp, &xt, &w, &zd, &ad, &da, l2, g, &o).unwrap();
                } else {
                    dense_backward(act, shp, &x, &w, &zd, &ad, &da, l2, g, &o).unwrap();
                }
                (dw, db, dz)
            };
            let (dws, dbs, dzs) = bufs(true);
            let (dwd, dbd, dzd) = bufs(false);
            // From the data set's rows, with and without l2: the bits of the
            // transpose's.
            for l2 in [l2, 0.0] {
                let run = |rows_form: bool| {
                    let (mut dw, mut db, mut dz) =
                        (vec![0f32; n_in * n_out], vec![0f32; n_out], vec![0f32; batch * n_out]);
                    let g = DenseGrads { dw: &mut dw, db: &mut db, dx: None, dz: &mut dz };
                    if rows_form {
                        dense_backward_sparse_rows(act, shp, &data, &rows, &w, &zd, &ad, &da, l2, g, &o).unwrap();
                    } else {
                        dense_backward_sparse(act, shp, &xt, &w, &zd, &ad, &da, l2, g, &o).unwrap();
                    }
                    (dw, db, dz)
                };
                let (want, got) = (run(false), run(true));
                assert!(
                    want.0.iter().zip(&got.0).all(|(p, q)| p.to_bits() == q.to_bits()),
                    "{act:?} l2 {l2} dW rows form"
                );
                assert!(want.1.iter().zip(&got.1).all(|(p, q)| p.to_bits() == q.to_bits()), "{act:?} db rows form");
            }
            assert!(dzs.iter().zip(&dzd).all(|(p, q)| p.to_bits() == q.to_bits()), "{act:?} dz");
            assert!(dbs.iter().zip(&dbd).all(|(p, q)| p.to_bits() == q.to_bits()), "{act:?} db");
            for p in 0..n_in {
                for j in 0..n_out {
                    let scale: f64 =
                        (0..batch).map(|i| (x[i * n_in + p] as f64 * dzs[i * n_out + j] as f64).abs()).sum::<f64>()
                            + (l2 * w[p * n_out + j]).abs() as f64;
                    let tol = 2.0 * (batch as f64 + 2.0) * f32::EPSILON as f64 * scale;
                    let (a, b) = (dws[p * n_out + j] as f64, dwd[p * n_out + j] as f64);
                    assert!((a - b).abs() <= tol, "{act:?} dW ({p},{j}) {a} vs {b}");
                }
            }
        }
    }
}

#[test]
fn bad_input_is_refused_with_clear_errors() {
    assert!(SparseRows::new(u32::MAX as usize + 1).is_err(), "columns past 32-bit indices");
    let mut s = SparseRows::from_dense(&[1.0, 0.0, 2.0, 3.0], 2, 2).unwrap();
    let before = s.clone();
    assert!(s.reserve(0, usize::MAX).is_err(), "overflowing reservation");
    assert!(s == before, "a refused reservation keeps the matrix");
    let o = GemmOptions::default();
    let shp = DenseShape { batch: 2, n_in: 2, n_out: 3 };
    let (w, b) = (vec![0.1f32; 6], vec![0.0f32; 3]);
    let (mut z, mut a) = (vec![0f32; 6], vec![0f32; 6]);
    let mut fwd = |x: &SparseRows, rows: Option<&[usize]>, w: &[f32]| {
        dense_forward_sparse(Activation::Relu, shp, x, rows, w, &b, Some(&mut z), &mut a, &o).map_err(|e| e.to_string())
    };
    let wide = SparseRows::from_dense(&[1.0; 6], 2, 3).unwrap();
    assert!(fwd(&wide, None, &w).unwrap_err().contains("'x'"), "x of the wrong width");
    assert!(fwd(&s, Some(&[0]), &w).unwrap_err().contains("'rows'"), "rows for another batch");
    assert!(fwd(&s, Some(&[0, 2]), &w).unwrap_err().contains("row 2"), "row out of range");
    assert!(fwd(&s, None, &w[..5]).unwrap_err().contains("'w'"), "w of the wrong length");
    assert!(fwd(&s, None, &w).is_ok());
    let mut xt = SparseRows::default();
    xt.transpose_from(&s).unwrap();
    let da = vec![1.0f32; 6];
    let bwd = |xt: &SparseRows, l2: f32| {
        let (mut dw, mut db, mut dz) = (vec![0f32; 6], vec![0f32; 3], vec![0f32; 6]);
        let g = DenseGrads { dw: &mut dw, db: &mut db, dx: None, dz: &mut dz };
        dense_backward_sparse(Activation::Relu, shp, xt, &w, &z, &a, &da, l2, g, &o).map_err(|e| e.to_string())
    };
    assert!(bwd(&s, 0.0).is_ok(), "a 2×2 input is its own transpose's shape");
    assert!(bwd(&wide, 0.0).unwrap_err().contains("'xt'"), "xt of the wrong shape");
    assert!(bwd(&xt, f32::NAN).is_err(), "non-finite l2");
    assert!(bwd(&xt, f32::INFINITY).is_err(), "infinite l2");
    let bwd_rows = |x: &SparseRows, rows: &[usize]| {
        let (mut dw, mut db, mut dz) = (vec![0f32; 6], vec![0f32; 3], vec![0f32; 6]);
        let g = DenseGrads { dw: &mut dw, db: &mut db, dx: None, dz: &mut dz };
        dense_backward_sparse_rows(Activation::Relu, shp, x, rows, &w, &z, &a, &da, 0.0, g, &o)
            .map_err(|e| e.to_string())
    };
    assert!(bwd_rows(&s, &[1, 0]).is_ok());
    assert!(bwd_rows(&s, &[1]).unwrap_err().contains("'rows'"), "rows for another batch");
    assert!(bwd_rows(&s, &[1, 2]).unwrap_err().contains("row 2"), "row out of range");
    assert!(bwd_rows(&wide, &[0, 1]).unwrap_err().contains("'x'"), "x of the wrong width");
    #[cfg(target_arch = "x86_64")]
    if !Isa::V4.is_available() {
        let o4 = GemmOptions { isa: Some(Isa::V4), ..Default::default() };
        let bd = [0f32; 4];
        let mut c = [0f32; 4];
        let e = spmm(
            1.0,
            &s,
            MatRef::row_major(&bd, 2, 2, 2).unwrap(),
            0.0,
            MatMut::row_major(&mut c, 2, 2, 2).unwrap(),
            &o4,
        );
        assert!(e.unwrap_err().to_string().contains("not available"), "an ISA this CPU lacks");
    }
}
