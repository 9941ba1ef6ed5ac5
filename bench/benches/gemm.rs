//! GEMM benchmarks: nnkern (native) vs a naive i-k-j loop vs matrixmultiply vs
//! the `gemm` crate (vs system OpenBLAS with `--features blas`), f32 and f64,
//! square sizes and the MLP training shapes, 1 thread and all threads (the
//! naive loop in the 1-thread groups only; matrixmultiply, built without its
//! `threading` feature, appears in the all-threads groups as
//! `matrixmultiply_1t`).
//! Throughput is reported as elements = 2·m·n·k, i.e. criterion's "elem/s" are FLOP/s.
//!
//! `spmm_f32_1t/*`: the sparse × dense product (`nnkern::gemm::spmm`, as
//! `nnkern`) on MNIST's first-layer shapes, S from synthetic 28×28 digits
//! (strokes in the centre, 19% of the pixels nonzero as in MNIST), against
//! the dense GEMM of the same matrices (`nnkern_dense`) and a naive loop over
//! the nonzeros (`naive`). Throughput there counts the useful flops,
//! 2·nnz·n, for every implementation.
//!
//! Run: `cargo bench -p nnkern-bench --bench gemm [--features blas] -- [filter]`, then
//! `python3 bench/report.py` for the markdown table.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use nnkern::gemm::{Backend, Elem, GemmOptions, MatMut, MatRef, SparseRows, gemm_with, spmm};
use nnkern::par::Par;
use std::hint::black_box;
use std::time::Duration;

#[cfg(feature = "blas")]
unsafe extern "C" {
    fn openblas_set_num_threads(n: std::os::raw::c_int);
}

fn set_blas_threads(_n: usize) {
    #[cfg(feature = "blas")]
    // SAFETY: plain setter of OpenBLAS's global thread count.
    unsafe {
        openblas_set_num_threads(_n as std::os::raw::c_int)
    };
}

/// A benchmark shape: C (m×n) = op(A) (m×k) · op(B) (k×n), all stored row-major;
/// `ta`: A stored k×m (the weight gradient Xᵀ·dZ); `tb`: B stored n×k (dZ·Wᵀ).
#[derive(Clone, Copy)]
struct Shape {
    name: &'static str,
    m: usize,
    n: usize,
    k: usize,
    ta: bool,
    tb: bool,
}

const fn sq(name: &'static str, n: usize) -> Shape {
    Shape { name, m: n, n, k: n, ta: false, tb: false }
}

const SHAPES: &[Shape] = &[
    sq("64", 64),
    sq("128", 128),
    sq("256", 256),
    sq("512", 512),
    sq("1024", 1024),
    Shape { name: "32x784x128_fwd1", m: 32, n: 128, k: 784, ta: false, tb: false },
    Shape { name: "32x128x10_fwd2", m: 32, n: 10, k: 128, ta: false, tb: false },
    Shape { name: "784x32x128_dW", m: 784, n: 128, k: 32, ta: true, tb: false },
    Shape { name: "32x10x128_dX", m: 32, n: 128, k: 10, ta: false, tb: true },
    Shape { name: "256x784x128_fwd1", m: 256, n: 128, k: 784, ta: false, tb: false },
    Shape { name: "256x128x10_fwd2", m: 256, n: 10, k: 128, ta: false, tb: false },
    Shape { name: "784x256x128_dW", m: 784, n: 128, k: 256, ta: true, tb: false },
    Shape { name: "256x10x128_dX", m: 256, n: 128, k: 10, ta: false, tb: true },
];

struct Data<T> {
    a: Vec<T>,
    b: Vec<T>,
    c: Vec<T>,
    /// op(A), op(B) materialised row-major for the naive loop.
    a_op: Vec<T>,
    b_op: Vec<T>,
}

fn data<T: Elem>(s: &Shape) -> Data<T> {
    let a: Vec<T> = (0..s.m * s.k).map(|i| T::from_f64(((i * 7 % 13) as f64 - 6.0) / 7.0)).collect();
    let b: Vec<T> = (0..s.k * s.n).map(|i| T::from_f64(((i * 5 % 11) as f64 - 5.0) / 5.0)).collect();
    let a_op = if s.ta { transpose(&a, s.k, s.m) } else { a.clone() };
    let b_op = if s.tb { transpose(&b, s.n, s.k) } else { b.clone() };
    Data { a, b, c: vec![T::ZERO; s.m * s.n], a_op, b_op }
}

fn transpose<T: Copy>(x: &[T], r: usize, c: usize) -> Vec<T> {
    (0..r * c).map(|i| x[(i % r) * c + i / r]).collect()
}

fn views<'a, T: Elem>(s: &Shape, a: &'a [T], b: &'a [T]) -> (MatRef<'a, T>, MatRef<'a, T>) {
    let av = if s.ta {
        MatRef::row_major(a, s.k, s.m, s.m).unwrap().t()
    } else {
        MatRef::row_major(a, s.m, s.k, s.k).unwrap()
    };
    let bv = if s.tb {
        MatRef::row_major(b, s.n, s.k, s.k).unwrap().t()
    } else {
        MatRef::row_major(b, s.k, s.n, s.n).unwrap()
    };
    (av, bv)
}

/// The naive i-k-j loop over contiguous row-major op(A), op(B).
fn naive<T: Elem>(m: usize, n: usize, k: usize, a: &[T], b: &[T], c: &mut [T]) {
    for i in 0..m {
        let ci = &mut c[i * n..(i + 1) * n];
        ci.fill(T::ZERO);
        for p in 0..k {
            let x = a[i * k + p];
            let bp = &b[p * n..(p + 1) * n];
            for j in 0..n {
                ci[j] = ci[j] + x * bp[j];
            }
        }
    }
}

fn gemm_crate<T: Elem>(s: &Shape, d: &mut Data<T>, threads: usize) {
    // gemm: dst = alpha·dst + beta·lhs·rhs, strides given as (cs, rs).
    let (lcs, lrs) = if s.ta { (s.m as isize, 1) } else { (1, s.k as isize) };
    let (rcs, rrs) = if s.tb { (s.k as isize, 1) } else { (1, s.n as isize) };
    let par = if threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
    // SAFETY: buffers hold exactly the described matrices; dst does not alias.
    unsafe {
        gemm::gemm(
            s.m,
            s.n,
            s.k,
            d.c.as_mut_ptr(),
            1,
            s.n as isize,
            false,
            d.a.as_ptr(),
            lcs,
            lrs,
            d.b.as_ptr(),
            rcs,
            rrs,
            T::ZERO,
            T::ONE,
            false,
            false,
            false,
            par,
        )
    }
}

fn bench_type<T: Elem>(c: &mut Criterion) {
    let all = nnkern::par::available_cores();
    for &(tag, threads) in &[("1t", 1usize), ("all", all)] {
        for s in SHAPES {
            let flops = 2 * s.m * s.n * s.k;
            let mut g = c.benchmark_group(format!("gemm_{}_{tag}/{}", T::NAME, s.name));
            g.throughput(Throughput::Elements(flops as u64));
            // 1024³ runs about 0.25 s per naive product: fewer samples there.
            let samples = if flops > 300_000_000 { 10 } else { 20 };
            g.sample_size(samples)
                .warm_up_time(Duration::from_millis(300))
                .measurement_time(Duration::from_millis(1500));
            let mut d = data::<T>(s);
            let par = if threads == 1 { Par::Seq } else { Par::Threads(threads) };
            for backend in [Backend::Native, Backend::MatrixMultiply, Backend::Blas] {
                // matrixmultiply runs on one thread here (its `threading` feature is
                // off): in the all-threads groups it shows what a serial library gives.
                if !backend.is_available() {
                    continue;
                }
                if backend == Backend::Blas {
                    set_blas_threads(threads);
                }
                let name = match backend {
                    Backend::Native => "nnkern",
                    Backend::MatrixMultiply if threads > 1 => "matrixmultiply_1t",
                    Backend::MatrixMultiply => "matrixmultiply",
                    Backend::Blas => "openblas",
                };
                let o = GemmOptions { backend: Some(backend), par, isa: None };
                g.bench_function(BenchmarkId::from_parameter(name), |bch| {
                    bch.iter(|| {
                        let (av, bv) = views(s, &d.a, &d.b);
                        let cv = MatMut::row_major(&mut d.c, s.m, s.n, s.n).unwrap();
                        gemm_with(T::ONE, black_box(av), black_box(bv), T::ZERO, cv, &o).unwrap();
                    })
                });
            }
            g.bench_function(BenchmarkId::from_parameter("gemm_crate"), |bch| {
                bch.iter(|| gemm_crate(s, black_box(&mut d), threads))
            });
            if threads == 1 {
                g.bench_function(BenchmarkId::from_parameter("naive"), |bch| {
                    bch.iter(|| naive(s.m, s.n, s.k, black_box(&d.a_op), black_box(&d.b_op), &mut d.c))
                });
            }
            g.finish();
        }
    }
}

/// `rows` synthetic 28×28 digits, row-major: a few thick strokes through the
/// centre, values in (0, 1], about 19% of the pixels nonzero (MNIST: 19%).
fn digits(rows: usize) -> Vec<f32> {
    let mut st = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        st ^= st << 13;
        st ^= st >> 7;
        st ^= st << 17;
        (st >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut x = vec![0f32; rows * 784];
    for img in x.chunks_mut(784) {
        for _ in 0..3 {
            // A stroke: a segment between two points of the central 16×16,
            // drawn 2.5 pixels thick.
            let (r0, c0, r1, c1) = (6.0 + 16.0 * next(), 6.0 + 16.0 * next(), 6.0 + 16.0 * next(), 6.0 + 16.0 * next());
            for r in 0..28 {
                for c in 0..28 {
                    let (pr, pc) = (r as f64, c as f64);
                    let (dr, dc) = (r1 - r0, c1 - c0);
                    let t = (((pr - r0) * dr + (pc - c0) * dc) / (dr * dr + dc * dc + 1e-9)).clamp(0.0, 1.0);
                    let d = ((pr - r0 - t * dr).powi(2) + (pc - c0 - t * dc).powi(2)).sqrt();
                    if d < 1.25 {
                        img[r * 28 + c] = img[r * 28 + c].max((1.0 - d / 2.5) as f32);
                    }
                }
            }
        }
    }
    x
}

/// The naive loop over the nonzeros: `C = S·B`, row by row.
fn naive_spmm(s: &SparseRows, b: &[f32], n: usize, c: &mut [f32]) {
    for i in 0..s.rows() {
        let ci = &mut c[i * n..(i + 1) * n];
        ci.fill(0.0);
        let (ix, vs) = s.row(i);
        for (&p, &v) in ix.iter().zip(vs) {
            for (cj, &bj) in ci.iter_mut().zip(&b[p as usize * n..(p as usize + 1) * n]) {
                *cj += v * bj;
            }
        }
    }
}

fn bench_spmm(c: &mut Criterion) {
    // (name, batch, transposed): the forward X·W (S = X, batch × 784; B = W,
    // 784 × 128) and the weight gradient Xᵀ·dZ (S = Xᵀ, 784 × batch; B = dZ,
    // batch × 128). At batch 256 the gradient's B (128 KiB) takes the sliced
    // loop; the forward's B (392 KiB) the blocked one; batch 32's gradient the
    // plain direct loop.
    let n = 128;
    for &(name, batch, tr) in &[
        ("32x784x128_fwd1", 32usize, false),
        ("784x32x128_dW", 32, true),
        ("256x784x128_fwd1", 256, false),
        ("784x256x128_dW", 256, true),
    ] {
        let x = digits(batch);
        let (m, k, dense) = if tr { (784, batch, transpose(&x, batch, 784)) } else { (batch, 784, x) };
        let s = SparseRows::from_dense(&dense, m, k).unwrap();
        let b: Vec<f32> = (0..k * n).map(|i| ((i * 5 % 11) as f32 - 5.0) / 5.0).collect();
        let mut out = vec![0f32; m * n];
        let mut g = c.benchmark_group(format!("spmm_f32_1t/{name}"));
        g.throughput(Throughput::Elements((2 * s.nnz() * n) as u64));
        g.sample_size(20).warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_millis(1500));
        let o = GemmOptions { par: Par::Seq, ..Default::default() };
        g.bench_function(BenchmarkId::from_parameter("nnkern"), |bch| {
            bch.iter(|| {
                let bv = MatRef::row_major(&b, k, n, n).unwrap();
                spmm(1.0, black_box(&s), bv, 0.0, MatMut::row_major(&mut out, m, n, n).unwrap(), &o).unwrap()
            })
        });
        g.bench_function(BenchmarkId::from_parameter("nnkern_dense"), |bch| {
            bch.iter(|| {
                let (av, bv) = (MatRef::row_major(&dense, m, k, k).unwrap(), MatRef::row_major(&b, k, n, n).unwrap());
                gemm_with(1.0, black_box(av), bv, 0.0, MatMut::row_major(&mut out, m, n, n).unwrap(), &o).unwrap()
            })
        });
        g.bench_function(BenchmarkId::from_parameter("naive"), |bch| {
            bch.iter(|| naive_spmm(black_box(&s), &b, n, &mut out))
        });
        g.finish();
    }
}

fn benches(c: &mut Criterion) {
    bench_spmm(c);
    bench_type::<f32>(c);
    bench_type::<f64>(c);
}

criterion_group!(gemm_benches, benches);
criterion_main!(gemm_benches);
