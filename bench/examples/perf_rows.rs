//! nnkern's side of the one-command benchmark (`python3 bench/perf.py`): one
//! process times one library's rows, so that `perf.py` can run it alternately
//! with the numpy peer (`bench/peers/numpy_rows.py`, same protocol) and
//! neither library's idle threads steal the other's core.
//!
//! ```text
//! perf_rows gemm THREADS BACKEND SHAPE...   BACKEND: native | blas (system OpenBLAS,
//!                                           needs --features blas) | matrixmultiply (1 thread)
//!                                           | gemm_crate; SHAPE: MxKxN:nn|tn|nt
//! perf_rows elem OP N...                    OP: exp | sigmoid | tanh (1 thread)
//! perf_rows fma                             this core's FMA peak (GFLOP/s, 1 thread)
//! ```
//!
//! Every row prints `ROW,<kind>,<name>,<seconds per call>`: the median over
//! 21 blocks of calls, each block lasting about 2 ms, after one warm-up block.
//! The data are the same formulas as the numpy peer's: A(i) = ((7i) mod 13)·0.1
//! − 0.6, B(i) = ((5i) mod 11)·0.1 − 0.5, and for the elementwise rows
//! x(i) = ((7919·i) mod 10007)/10007·10 − 5 (so exp sees [−5, 5]).
#[path = "common/fma.rs"]
mod fma;
#[path = "common/gemm_crate.rs"]
mod gemm_crate;

use nnkern::gemm::{Backend, GemmOptions, MatMut, MatRef, gemm_with};
use nnkern::par::Par;
use std::hint::black_box;
use std::time::Instant;

/// Median seconds per call of `f`, over 21 blocks of about 2 ms each.
fn time_per_call(mut f: impl FnMut()) -> f64 {
    let t = Instant::now();
    f();
    let once = t.elapsed().as_secs_f64().max(1e-7);
    let inner = ((2e-3 / once) as usize).clamp(1, 100_000);
    let block = |f: &mut dyn FnMut()| {
        let t = Instant::now();
        for _ in 0..inner {
            f();
        }
        t.elapsed().as_secs_f64() / inner as f64
    };
    block(&mut f);
    let mut v: Vec<f64> = (0..21).map(|_| block(&mut f)).collect();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One GEMM row's shape and data: A (stored k×m for `tn`), B (stored n×k
/// for `nt`) and C, row-major.
struct Operands<'a> {
    m: usize,
    k: usize,
    n: usize,
    mode: &'a str,
    x: Vec<f32>,
    w: Vec<f32>,
    c: Vec<f32>,
}

/// Parses `MxKxN[:mode]` and makes the operands.
fn operands(spec: &str) -> Operands<'_> {
    let (dims, mode) = spec.split_once(':').unwrap_or((spec, "nn"));
    let d: Vec<usize> = dims.split('x').map(|s| s.parse().expect("a size")).collect();
    let (m, k, n) = (d[0], d[1], d[2]);
    let x = (0..m * k).map(|i| ((i * 7) % 13) as f32 * 0.1 - 0.6).collect();
    let w = (0..k * n).map(|i| ((i * 5) % 11) as f32 * 0.1 - 0.5).collect();
    Operands { m, k, n, mode, x, w, c: vec![0f32; m * n] }
}

#[cfg(feature = "blas")]
unsafe extern "C" {
    fn openblas_set_num_threads(n: std::os::raw::c_int);
}

fn gemm_rows(threads: usize, backend: &str, shapes: &[String]) -> nnkern::Result<()> {
    let backend = match backend {
        "native" => Backend::Native,
        "blas" => {
            #[cfg(feature = "blas")]
            // SAFETY: plain setter of OpenBLAS's global thread count.
            unsafe {
                openblas_set_num_threads(threads as std::os::raw::c_int)
            };
            Backend::Blas
        }
        "matrixmultiply" => Backend::MatrixMultiply,
        "gemm_crate" => return gemm_crate_rows(threads, shapes),
        other => panic!("unknown backend {other}"),
    };
    let opts = GemmOptions { backend: Some(backend), par: Par::Threads(threads), isa: None };
    for spec in shapes {
        let Operands { m, k, n, mode, x, w, mut c } = operands(spec);
        let av = if mode == "tn" { MatRef::row_major(&x, k, m, m)?.t() } else { MatRef::row_major(&x, m, k, k)? };
        let bv = if mode == "nt" { MatRef::row_major(&w, n, k, k)?.t() } else { MatRef::row_major(&w, k, n, n)? };
        let s = time_per_call(|| {
            gemm_with(1.0, av, bv, 0.0, MatMut::row_major(&mut c, m, n, n).unwrap(), &opts).unwrap();
            black_box(&c);
        });
        println!("ROW,gemm,{spec},{s:e}");
    }
    Ok(())
}

/// The `gemm` crate's rows (its own threads through rayon when `threads > 1`).
fn gemm_crate_rows(threads: usize, shapes: &[String]) -> nnkern::Result<()> {
    let par = if threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
    for spec in shapes {
        let Operands { m, k, n, mode, x, w, mut c } = operands(spec);
        // Element strides (row, column) of A (m×k) and B (k×n).
        let (ars, acs) = if mode == "tn" { (1isize, m as isize) } else { (k as isize, 1) };
        let (brs, bcs) = if mode == "nt" { (1isize, k as isize) } else { (n as isize, 1) };
        let s = time_per_call(|| {
            gemm_crate::sgemm(m, n, k, &x, (ars, acs), &w, (brs, bcs), &mut c, par);
            black_box(&c);
        });
        println!("ROW,gemm,{spec},{s:e}");
    }
    Ok(())
}

fn elem_rows(op: &str, sizes: &[String]) -> nnkern::Result<()> {
    use nnkern::simd::math::{vexp_f32, vsigmoid_f32, vtanh_f32};
    let f = match op {
        "exp" => vexp_f32,
        "sigmoid" => vsigmoid_f32,
        "tanh" => vtanh_f32,
        other => panic!("unknown op {other}"),
    };
    for n in sizes {
        let n: usize = n.parse().expect("a size");
        let x: Vec<f32> = (0..n).map(|i| ((7919 * i) % 10007) as f32 / 10007.0 * 10.0 - 5.0).collect();
        let mut y = vec![0f32; n];
        let s = time_per_call(|| {
            f(&x, &mut y).unwrap();
            black_box(&y);
        });
        println!("ROW,elem,{op}:{n},{s:e}");
    }
    Ok(())
}

fn main() -> nnkern::Result<()> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let usage = "perf_rows gemm THREADS native|blas|matrixmultiply|gemm_crate SHAPE... | elem OP N... | fma";
    match a.first().map(String::as_str) {
        Some("gemm") if a.len() >= 4 => gemm_rows(a[1].parse().expect("a thread count"), &a[2], &a[3..]),
        Some("elem") if a.len() >= 3 => elem_rows(&a[1], &a[2..]),
        Some("fma") => {
            println!("ROW,fma,peak,{:e}", fma::peak());
            Ok(())
        }
        _ => {
            eprintln!("usage: {usage}");
            std::process::exit(2)
        }
    }
}
