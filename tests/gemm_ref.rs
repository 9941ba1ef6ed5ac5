//! GEMM against the f64 oracle on every ISA of this CPU, every backend, random
//! shapes, strides, transposes, alpha/beta, NaN-filled C and guard cells.
//!
//! Bound asserted for every element (see `nnkern::gemm` docs):
//! `|c − ĉ| ≤ (k + 2)·ε·(|alpha|·Σ|a·b| + |beta·c|)`.

mod common;

use common::{Rng, each_isa};

use nnkern::gemm::{Backend, Elem, GemmOptions, MatMut, MatRef, gemm_reference, gemm_with};
use nnkern::par::Par;
use nnkern::simd::{Isa, Real};

/// How an operand is laid out in its buffer.
#[derive(Clone, Copy, Debug)]
enum Layout {
    Row,
    Col,
    /// Row-major with padded leading dimension.
    RowPad(usize),
    /// Column-major with padded leading dimension.
    ColPad(usize),
    /// Neither stride is 1.
    General,
    /// Reversed rows (negative row stride).
    NegRows,
}

const LAYOUTS: [Layout; 6] =
    [Layout::Row, Layout::Col, Layout::RowPad(3), Layout::ColPad(5), Layout::General, Layout::NegRows];

/// (offset, rs, cs, buffer length) for an r×c operand, plus leading guard cells.
fn geometry(l: Layout, r: usize, c: usize, guard: usize) -> (usize, isize, isize, usize) {
    let (r1, c1) = (r.max(1), c.max(1));
    let (off, rs, cs, len) = match l {
        Layout::Row => (0, c1 as isize, 1, r1 * c1),
        Layout::Col => (0, 1, r1 as isize, r1 * c1),
        Layout::RowPad(p) => (0, (c1 + p) as isize, 1, r1 * (c1 + p)),
        Layout::ColPad(p) => (0, 1, (r1 + p) as isize, (r1 + p) * c1),
        Layout::General => (0, 2, (2 * r1 + 1) as isize, (2 * r1 + 1) * c1),
        Layout::NegRows => ((r1 - 1) * c1, -(c1 as isize), 1, r1 * c1),
    };
    (off + guard, rs, cs, len + 2 * guard)
}

fn fill<T: Real>(rng: &mut Rng, n: usize, ints: bool) -> Vec<T> {
    (0..n).map(|_| if ints { T::from_f64((rng.below(9) as f64) - 4.0) } else { T::from_f64(rng.unif_f64()) }).collect()
}

struct Case {
    m: usize,
    n: usize,
    k: usize,
    la: Layout,
    lb: Layout,
    lc: Layout,
    ta: bool,
    tb: bool,
    alpha: f64,
    beta: f64,
}

/// Runs one case; returns C's buffer (for bit comparisons).
fn run_case<T: Elem>(rng: &mut Rng, cs: &Case, opts: &GemmOptions, ints: bool) -> Vec<T> {
    let &Case { m, n, k, la, lb, lc, ta, tb, alpha, beta } = cs;
    const G: usize = 7;
    // A is stored as k×m when transposed, then viewed through `.t()`.
    let (ar, ac) = if ta { (k, m) } else { (m, k) };
    let (br, bc) = if tb { (n, k) } else { (k, n) };
    let (ao, ars, acs, alen) = geometry(la, ar, ac, G);
    let (bo, brs, bcs, blen) = geometry(lb, br, bc, G);
    let (co, crs, ccs, clen) = geometry(lc, m, n, G);
    let a: Vec<T> = fill(rng, alen, ints);
    let b: Vec<T> = fill(rng, blen, ints);
    // C: NaN when beta == 0 (must be overwritten, never read), random otherwise.
    let mut c: Vec<T> = if beta == 0.0 { vec![T::from_f64(f64::NAN); clen] } else { fill(rng, clen, ints) };
    let mut av = MatRef::new(&a, ao, ar, ac, ars, acs).unwrap();
    if ta {
        av = av.t();
    }
    let mut bv = MatRef::new(&b, bo, br, bc, brs, bcs).unwrap();
    if tb {
        bv = bv.t();
    }
    let c0 = c.clone();
    let cref = MatRef::new(&c0, co, m, n, crs, ccs).unwrap();
    let (want, scale) = gemm_reference(T::from_f64(alpha), av, bv, T::from_f64(beta), &cref);
    let cv = MatMut::new(&mut c, co, m, n, crs, ccs).unwrap();
    gemm_with(T::from_f64(alpha), av, bv, T::from_f64(beta), cv, opts).unwrap();

    // Every element within the bound; every other cell bit-identical.
    let eps = T::EPSILON.to_f64();
    let mut touched = vec![false; clen];
    for i in 0..m {
        for j in 0..n {
            let idx = (co as isize + i as isize * crs + j as isize * ccs) as usize;
            touched[idx] = true;
            let got = c[idx].to_f64();
            let (w, s) = (want[i * n + j], scale[i * n + j]);
            let tol = (k as f64 + 2.0) * eps * s;
            assert!(
                (got - w).abs() <= tol,
                "{} m={m} n={n} k={k} {la:?}/{lb:?}/{lc:?} ta={ta} tb={tb} alpha={alpha} beta={beta} {opts:?}: \
                 C({i},{j}) = {got}, want {w} (err {:e} > tol {tol:e})",
                T::NAME,
                (got - w).abs()
            );
        }
    }
    for (idx, t) in touched.iter().enumerate() {
        if !t {
            let (x, y) = (c[idx].to_f64(), c0[idx].to_f64());
            assert!(x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()), "guard cell {idx} changed: {y} → {x}");
        }
    }
    c
}

const DIMS: [usize; 22] = [0, 1, 2, 3, 5, 7, 8, 11, 12, 13, 16, 17, 23, 31, 32, 33, 47, 49, 64, 65, 97, 131];
const SCALARS: [(f64, f64); 6] = [(1.0, 0.0), (1.0, 1.0), (-1.5, 2.25), (2.25, -1.5), (0.0, 2.25), (1.0, -1.5)];

fn random_cases<T: Elem>(isa: Isa, backend: Backend, count: usize, seed: u64) {
    let mut rng = Rng(seed);
    let opts = GemmOptions { backend: Some(backend), par: Par::Seq, isa: Some(isa) };
    for _ in 0..count {
        let case = Case {
            m: DIMS[rng.below(DIMS.len())],
            n: DIMS[rng.below(DIMS.len())],
            k: DIMS[rng.below(DIMS.len())],
            la: LAYOUTS[rng.below(6)],
            lb: LAYOUTS[rng.below(6)],
            lc: LAYOUTS[rng.below(6)],
            ta: rng.below(2) == 1,
            tb: rng.below(2) == 1,
            alpha: SCALARS[rng.below(6)].0,
            beta: SCALARS[rng.below(6)].1,
        };
        run_case::<T>(&mut rng, &case, &opts, false);
    }
}

/// Sizes around the blocking parameters: MR/NR edges, MC, KC, NC.
fn blocking_cases<T: Elem>(isa: Isa) {
    let p = nnkern::gemm::Params::for_isa(isa, std::mem::size_of::<T>());
    let mut rng = Rng(7);
    let opts = GemmOptions { backend: Some(Backend::Native), par: Par::Seq, isa: Some(isa) };
    let shapes = [
        (p.mr - 1, p.nr + 1, 3),
        (p.mr + 1, p.nr - 1, p.kc + 1),
        (p.mc + 3, 2 * p.nr + 1, 17),
        (2 * p.mc + p.mr + 1, 9, p.kc - 1),
        (9, p.nc + p.nr + 3, 5),
        (p.mr * 9 + 5, p.nr * 17 + 1, 2 * p.kc + 3),
        (33, 25, 3 * p.kc + 1),
    ];
    for (i, &(m, n, k)) in shapes.iter().enumerate() {
        for (t, &(la, lb, lc)) in [
            (Layout::Col, Layout::Col, Layout::Col),
            (Layout::Row, Layout::Row, Layout::Row),
            (Layout::RowPad(3), Layout::ColPad(2), Layout::General),
        ]
        .iter()
        .enumerate()
        {
            let (alpha, beta) = SCALARS[(i + t) % SCALARS.len()];
            let case = Case { m, n, k, la, lb, lc, ta: t == 1, tb: t == 2, alpha, beta };
            run_case::<T>(&mut rng, &case, &opts, false);
        }
    }
}

/// MLP shapes (batch 32 and 256) in the layouts training uses.
fn mlp_cases<T: Elem>(isa: Isa) {
    let mut rng = Rng(11);
    let opts = GemmOptions { backend: Some(Backend::Native), par: Par::Seq, isa: Some(isa) };
    for &bs in &[32usize, 256] {
        for &(m, n, k, ta, tb) in &[
            (bs, 128, 784, false, false), // forward layer 1
            (bs, 10, 128, false, false),  // forward layer 2
            (784, 128, bs, true, false),  // Xᵀ·dZ
            (bs, 128, 10, false, true),   // dZ·Wᵀ
            // A wide row-major C: Aᵀ packed as B by transposes in registers
            // on AVX-512 (panels of 12 columns, a last one of 8 at batch 32,
            // 4 at 256; a k tail of 11).
            (bs / 8 * 5, 600, 75, false, false),
        ] {
            let case =
                Case { m, n, k, la: Layout::Row, lb: Layout::Row, lc: Layout::Row, ta, tb, alpha: 1.0, beta: 0.0 };
            run_case::<T>(&mut rng, &case, &opts, false);
        }
    }
}

/// The narrow shapes of MLP training (N or K up to 16: the output layer of a
/// classifier with few classes) in training's row-major layouts, where the
/// driver reads A in place and packs only a last panel that ends inside a
/// vector, zero-padded to whole vectors (or reads it in place too when it is
/// whole vectors, or, on AVX-512, a one-vector panel with a masked load;
/// row-major C with at most 16 columns may keep its orientation): every width 1 to 17 and 31 to 33 around the vector
/// lengths (4, 8, 16 lanes and the 2-vector panels), against the f64
/// oracle, beta 0 and not.
fn narrow_cases<T: Elem>(isa: Isa) {
    let mut rng = Rng(23);
    let opts = GemmOptions { backend: Some(Backend::Native), par: Par::Seq, isa: Some(isa) };
    let widths: Vec<usize> = (1..=17).chain(31..=33).collect();
    for &narrow in &widths {
        for &other in &[1usize, 7, 32, 50, 256] {
            for &long_k in &[10usize, 128] {
                for (i, &(m, n, k, ta, tb)) in [
                    (other, narrow, long_k, false, false), // forward into few outputs
                    (long_k, narrow, other, true, false),  // Xᵀ·dZ into few outputs
                    (other, long_k, narrow, false, true),  // dZ·Wᵀ from few outputs
                    (narrow, other, long_k, false, false), // a short batch
                ]
                .iter()
                .enumerate()
                {
                    let (alpha, beta) = if (narrow + other + i) % 2 == 0 { (1.0, 0.0) } else { (-1.5, 2.25) };
                    let case = Case { m, n, k, la: Layout::Row, lb: Layout::Row, lc: Layout::Row, ta, tb, alpha, beta };
                    run_case::<T>(&mut rng, &case, &opts, false);
                    // C column-major: the other orientation of the driver.
                    let case = Case { lc: Layout::Col, ..case };
                    run_case::<T>(&mut rng, &case, &opts, false);
                    // C row-major with rows apart: a narrow C kept in its
                    // orientation is written row by row, not as one block.
                    let case = Case { lc: Layout::RowPad(3), ..case };
                    run_case::<T>(&mut rng, &case, &opts, false);
                }
            }
        }
    }
}

#[test]
fn narrow_shapes_every_isa() {
    each_isa(|isa| {
        narrow_cases::<f32>(isa);
        narrow_cases::<f64>(isa);
    });
}

/// A narrow product gives the same bits whichever way the driver orients
/// it: with C row-major (computed as `Cᵀ = Bᵀ·Aᵀ`, or kept as it is when C
/// has at most 16 columns and A's columns are contiguous, or A is row-major
/// and packed by transposes, vectors then running along A's rows) and with
/// C column-major (never transposed). Every
/// element sums its k products in the same order on either path, and the
/// write-outs apply alpha and beta with the same operations, so the results
/// are equal bit for bit, on every ISA, for f32 and f64, with 1 and 2
/// threads.
fn narrow_orientation_bits<T: Elem>(isa: Isa) {
    let mut rng = Rng(41);
    // k past one KC pass too (384 and 256 on AVX-512, 256 on AVX2): later
    // passes read C back (beta 1) in the kept orientation.
    for &(m, k) in &[(7usize, 10usize), (16, 1), (33, 32), (64, 33), (128, 32), (200, 256), (48, 400), (96, 800)] {
        for n in 1..=17usize {
            let cases = [(1.0, 0.0), (-1.5, 2.25)].into_iter().flat_map(|ab| [(ab, false), (ab, true)]);
            for ((alpha, beta), a_row_major) in cases {
                // A column-major (`Hᵀ` of the weight gradient) or row-major
                // (H of a forward product, packed by transposes when C
                // keeps its orientation), B row-major.
                let a: Vec<T> = fill(&mut rng, m * k, false);
                let b: Vec<T> = fill(&mut rng, k * n, false);
                let c0: Vec<T> = fill(&mut rng, m * n, false);
                let av = if a_row_major {
                    MatRef::row_major(&a, m, k, k).unwrap()
                } else {
                    MatRef::new(&a, 0, m, k, 1, m as isize).unwrap()
                };
                let bv = MatRef::row_major(&b, k, n, n).unwrap();
                let (alpha, beta) = (T::from_f64(alpha), T::from_f64(beta));
                let mut results = Vec::new();
                for threads in [1usize, 2] {
                    let opts =
                        GemmOptions { backend: Some(Backend::Native), par: Par::Threads(threads), isa: Some(isa) };
                    // Element (i, j) of C starts as c0[i·n + j] in both layouts.
                    let mut cr = c0.clone();
                    gemm_with(alpha, av, bv, beta, MatMut::row_major(&mut cr, m, n, n).unwrap(), &opts).unwrap();
                    let mut cc: Vec<T> = (0..m * n).map(|x| c0[(x % m) * n + x / m]).collect();
                    gemm_with(alpha, av, bv, beta, MatMut::new(&mut cc, 0, m, n, 1, m as isize).unwrap(), &opts)
                        .unwrap();
                    for i in 0..m {
                        for j in 0..n {
                            let (r, c) = (cr[i * n + j].to_f64(), cc[j * m + i].to_f64());
                            assert_eq!(
                                r.to_bits(),
                                c.to_bits(),
                                "{} {isa:?} m={m} n={n} k={k} threads={threads} A row-major {a_row_major}: C({i},{j}) row-major {r} vs column-major {c}",
                                T::NAME
                            );
                        }
                    }
                    results.push(cr);
                }
                assert!(results[0].iter().zip(&results[1]).all(|(x, y)| x.to_f64().to_bits() == y.to_f64().to_bits()));
            }
        }
    }
}

#[test]
fn narrow_products_have_the_same_bits_in_either_orientation() {
    each_isa(|isa| {
        narrow_orientation_bits::<f32>(isa);
        narrow_orientation_bits::<f64>(isa);
    });
}

/// `n` f32 values that end exactly where an unreadable page begins, so that
/// a load past their end faults instead of reading a neighbour.
#[cfg(unix)]
struct EndOfPage {
    base: *mut libc::c_void,
    len: usize,
    n: usize,
}

#[cfg(unix)]
impl EndOfPage {
    fn new(vals: &[f32]) -> EndOfPage {
        let page = 4096usize.max(
            // SAFETY: sysconf has no preconditions.
            unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize,
        );
        let bytes = std::mem::size_of_val(vals).div_ceil(page) * page;
        let len = bytes + page;
        // SAFETY: an anonymous private mapping of `len` bytes; checked below.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(base, libc::MAP_FAILED, "mmap");
        // SAFETY: the last page lies inside the mapping just made.
        assert_eq!(unsafe { libc::mprotect((base as *mut u8).add(bytes) as *mut _, page, libc::PROT_NONE) }, 0);
        let g = EndOfPage { base, len, n: vals.len() };
        // SAFETY: the n values at `start()` are writable and not borrowed.
        unsafe { std::ptr::copy_nonoverlapping(vals.as_ptr(), g.start(), vals.len()) };
        g
    }
    fn start(&self) -> *mut f32 {
        let bytes = self.len
            - 4096usize.max(
                // SAFETY: sysconf has no preconditions.
                unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize,
            );
        // SAFETY: `bytes − 4n` is inside the readable part of the mapping.
        unsafe { (self.base as *mut u8).add(bytes - 4 * self.n) as *mut f32 }
    }
    fn slice(&self) -> &[f32] {
        // SAFETY: n f32 values, readable and initialised, owned by `self`.
        unsafe { std::slice::from_raw_parts(self.start(), self.n) }
    }
}

#[cfg(unix)]
impl Drop for EndOfPage {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unmapped once.
        unsafe { libc::munmap(self.base, self.len) };
    }
}

/// The narrow products' in-place reads stop at their operands' ends: A and
/// B each end where an unreadable page begins (a load past them faults),
/// for the MLP's three narrow products at every width 1 to 17, on every
/// ISA: the masked loads of a one-vector A panel read in place (AVX-512),
/// the transposing pack of a row-major panel (a partial chunk of 16 columns
/// and of 16 rows included), the edge copies.
#[test]
#[cfg(unix)]
fn narrow_products_read_nothing_past_their_operands() {
    each_isa(|isa| {
        let opts = GemmOptions { backend: Some(Backend::Native), par: Par::Seq, isa: Some(isa) };
        let mut rng = Rng(57);
        for n in 1..=17usize {
            for &(other, k) in &[(1usize, 128usize), (7, 10), (32, 128), (33, 16), (33, 130)] {
                // (m, k, n, ta, tb): forward H·W, weight gradient Hᵀ·dZ (A
                // stored k×m), dZ·Wᵀ (B stored n×k, k = n few outputs).
                for &(m, kk, nn, ta, tb) in
                    &[(other, k, n, false, false), (k, other, n, true, false), (other, n, k, false, true)]
                {
                    let (ar, ac) = if ta { (kk, m) } else { (m, kk) };
                    let (br, bc) = if tb { (nn, kk) } else { (kk, nn) };
                    let a = EndOfPage::new(&fill::<f32>(&mut rng, ar * ac, false));
                    let b = EndOfPage::new(&fill::<f32>(&mut rng, br * bc, false));
                    let mut av = MatRef::row_major(a.slice(), ar, ac, ac).unwrap();
                    if ta {
                        av = av.t();
                    }
                    let mut bv = MatRef::row_major(b.slice(), br, bc, bc).unwrap();
                    if tb {
                        bv = bv.t();
                    }
                    let mut c = vec![0.0f32; m * nn];
                    gemm_with(1.0, av, bv, 0.0, MatMut::row_major(&mut c, m, nn, nn).unwrap(), &opts).unwrap();
                    let (want, scale) = gemm_reference(1.0, av, bv, 0.0, &MatRef::row_major(&c, m, nn, nn).unwrap());
                    for (x, (&w, &sc)) in c.iter().zip(want.iter().zip(&scale)) {
                        let tol = (kk as f64 + 2.0) * f32::EPSILON as f64 * sc;
                        assert!((*x as f64 - w).abs() <= tol, "{isa:?} m={m} n={nn} k={kk}: {x} vs {w}");
                    }
                }
            }
        }
    });
}

#[test]
fn random_f32_every_isa() {
    each_isa(|isa| random_cases::<f32>(isa, Backend::Native, 1500, 1));
}

#[test]
fn random_f64_every_isa() {
    each_isa(|isa| random_cases::<f64>(isa, Backend::Native, 1500, 2));
}

#[test]
fn blocking_edges_every_isa() {
    each_isa(|isa| {
        blocking_cases::<f32>(isa);
        blocking_cases::<f64>(isa);
    });
}

#[test]
fn mlp_shapes_every_isa() {
    each_isa(|isa| {
        mlp_cases::<f32>(isa);
        mlp_cases::<f64>(isa);
    });
}

#[test]
fn matrixmultiply_backend() {
    random_cases::<f32>(Isa::Scalar, Backend::MatrixMultiply, 400, 3);
    random_cases::<f64>(Isa::Scalar, Backend::MatrixMultiply, 400, 4);
}

#[test]
fn blas_backend() {
    if !Backend::Blas.is_available() {
        common::skip(
            "gemm_ref::blas_backend",
            "built without the `blas` feature",
            "apt-get install libopenblas-dev, then cargo test --release --features blas; .ci/run does both",
        );
        return;
    }
    random_cases::<f32>(Isa::detect(), Backend::Blas, 600, 5);
    random_cases::<f64>(Isa::detect(), Backend::Blas, 600, 6);
}

/// CI sets NNK_EXPECT_ISA (e.g. "avx512") to fail loudly if the runner lacks it.
#[test]
fn expected_isa_is_present() {
    if let Ok(want) = std::env::var("NNK_EXPECT_ISA") {
        let have: Vec<_> = Isa::available().iter().map(|i| i.name()).collect();
        assert!(have.contains(&want.as_str()), "expected ISA {want}, this CPU has {have:?}");
    }
    println!("available ISAs: {:?}", Isa::available());
}

/// Small integers: every ISA and every thread count gives identical bits.
#[test]
fn exact_integers_identical_across_isas_and_threads() {
    for &(m, n, k) in &[(67, 45, 60), (300, 200, 64), (31, 700, 33)] {
        let mut results: Vec<(String, Vec<f32>)> = Vec::new();
        for &isa in &Isa::available() {
            for &t in &[1usize, 2, 4] {
                let mut rng = Rng(99);
                let opts = GemmOptions { backend: Some(Backend::Native), par: Par::Threads(t), isa: Some(isa) };
                let case = Case {
                    m,
                    n,
                    k,
                    la: Layout::Row,
                    lb: Layout::Col,
                    lc: Layout::Row,
                    ta: false,
                    tb: false,
                    alpha: 1.0,
                    beta: 1.0,
                };
                results.push((format!("{}/{t}", isa.name()), run_case::<f32>(&mut rng, &case, &opts, true)));
            }
        }
        for r in &results[1..] {
            assert!(
                r.1.iter().zip(&results[0].1).all(|(x, y)| x.to_bits() == y.to_bits()),
                "{} differs from {}",
                r.0,
                results[0].0
            );
        }
    }
}

/// Random data: 1, 2, 3, 4 and 7 threads give identical bits on each ISA,
/// f32 and f64.
#[test]
fn thread_count_invariance_random() {
    fn check<T: Elem>(isa: Isa) {
        for &(m, n, k, lc, ta) in &[
            (517, 389, 700, Layout::Col, false),
            (64, 1500, 300, Layout::Row, false),
            (1200, 40, 257, Layout::Col, false),
            (32, 128, 784, Layout::Row, false),
            (784, 128, 256, Layout::Row, true),
        ] {
            let mut base: Option<Vec<f64>> = None;
            for &t in &[1usize, 2, 3, 4, 7] {
                let mut rng = Rng(5);
                let opts = GemmOptions { backend: Some(Backend::Native), par: Par::Threads(t), isa: Some(isa) };
                let case = Case { m, n, k, la: Layout::Row, lb: Layout::Row, lc, ta, tb: false, alpha: 1.0, beta: 0.5 };
                // f32 → f64 is exact and injective: equal f64 bits ⇔ equal T bits.
                let c: Vec<f64> =
                    run_case::<T>(&mut rng, &case, &opts, false).into_iter().map(|v| v.to_f64()).collect();
                match &base {
                    None => base = Some(c),
                    Some(b) => assert!(
                        b.iter().zip(&c).all(|(x, y)| x.to_bits() == y.to_bits()),
                        "{} {} {m}x{n}x{k}: {t} threads differ from 1",
                        isa.name(),
                        std::any::type_name::<T>()
                    ),
                }
            }
        }
    }
    each_isa(|isa| {
        check::<f32>(isa);
        check::<f64>(isa);
    });
}

#[test]
fn broadcast_zero_stride_inputs() {
    // A row broadcast down the rows (rs = 0): every row of C equal.
    let a = [1.0f32, 2.0, 3.0];
    let b: Vec<f32> = (0..15).map(|x| x as f32).collect();
    let mut c = [0.0f32; 20];
    let av = MatRef::new(&a, 0, 4, 3, 0, 1).unwrap();
    let bv = MatRef::row_major(&b, 3, 5, 5).unwrap();
    gemm_with(1.0, av, bv, 0.0, MatMut::row_major(&mut c, 4, 5, 5).unwrap(), &GemmOptions::default()).unwrap();
    for i in 1..4 {
        assert_eq!(c[i * 5..i * 5 + 5], c[0..5]);
    }
    assert_eq!(c[0], 1.0 * 0.0 + 2.0 * 5.0 + 3.0 * 10.0);
}

#[test]
fn bad_views_are_errors() {
    let a = [0.0f32; 6];
    let mut c = [0.0f32; 6];
    assert!(MatRef::row_major(&a, 3, 3, 3).is_err(), "short slice");
    assert!(MatRef::row_major(&a, 2, 3, 2).is_err(), "ld < cols");
    assert!(MatRef::new(&a, 0, 2, 2, -1, 1).is_err(), "negative stride without offset");
    assert!(MatRef::new(&a, 0, 2, 2, isize::MAX, 1).is_err(), "stride overflow");
    assert!(MatRef::new(&a, 0, usize::MAX, 1, 1, 1).is_err(), "rows overflow");
    assert!(MatMut::new(&mut c, 0, 2, 2, 1, 1).is_err(), "overlapping output");
    assert!(MatMut::new(&mut c, 0, 2, 2, 0, 1).is_err(), "zero output stride");
    assert!(MatMut::new(&mut c, 0, 2, 3, 3, 1).is_ok());
    // Shape mismatch between operands.
    let av = MatRef::row_major(&a, 2, 3, 3).unwrap();
    let bv = MatRef::row_major(&a, 2, 3, 3).unwrap();
    let cv = MatMut::row_major(&mut c, 2, 3, 3).unwrap();
    assert!(gemm_with(1.0, av, bv, 0.0, cv, &GemmOptions::default()).is_err());
    // Zero-sized views are fine with empty slices.
    let e: [f32; 0] = [];
    assert!(MatRef::row_major(&e, 0, 5, 5).is_ok());
}

#[test]
fn alpha_zero_and_k_zero_do_not_read_inputs() {
    // On every backend compiled in: A and B full of NaN, alpha = 0 must not
    // touch them (0·NaN would be NaN); beta scales C; k = 0 gives beta·C.
    for backend in [Backend::Native, Backend::MatrixMultiply, Backend::Blas] {
        if !backend.is_available() {
            continue;
        }
        let opts = GemmOptions { backend: Some(backend), ..GemmOptions::default() };
        let a = [f32::NAN; 6];
        let b = [f32::NAN; 6];
        let mut c = [1.0f32, 2.0, 3.0, 4.0];
        let av = MatRef::row_major(&a, 2, 3, 3).unwrap();
        let bv = MatRef::row_major(&b, 3, 2, 2).unwrap();
        gemm_with(0.0, av, bv, 2.0, MatMut::row_major(&mut c, 2, 2, 2).unwrap(), &opts).unwrap();
        assert_eq!(c, [2.0, 4.0, 6.0, 8.0], "{backend:?}");
        // alpha = 0 and beta = 0: C is overwritten with zeros, NaN there included.
        let mut c = [f64::NAN; 4];
        let (a, b) = ([f64::NAN; 6], [f64::NAN; 6]);
        let av = MatRef::row_major(&a, 2, 3, 3).unwrap();
        let bv = MatRef::row_major(&b, 3, 2, 2).unwrap();
        gemm_with(0.0, av, bv, 0.0, MatMut::row_major(&mut c, 2, 2, 2).unwrap(), &opts).unwrap();
        assert_eq!(c, [0.0; 4], "{backend:?}");
        let e: [f32; 0] = [];
        let av = MatRef::row_major(&e, 2, 0, 0).unwrap();
        let bv = MatRef::row_major(&e, 0, 2, 2).unwrap();
        let mut c = [f32::NAN; 4];
        gemm_with(1.0, av, bv, 0.0, MatMut::row_major(&mut c, 2, 2, 2).unwrap(), &opts).unwrap();
        assert_eq!(c, [0.0; 4], "{backend:?}");
        let mut c = [1.0f32, 2.0, 3.0, 4.0];
        gemm_with(1.0, av, bv, -1.5, MatMut::row_major(&mut c, 2, 2, 2).unwrap(), &opts).unwrap();
        assert_eq!(c, [-1.5, -3.0, -4.5, -6.0], "{backend:?}");
    }
}
