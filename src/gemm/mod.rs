//! General matrix multiply: `C ← alpha·op(A)·op(B) + beta·C` for f32 and f64.
//!
//! * Any strides (row-major, column-major, sub-matrix views, negative or zero
//!   input strides) through checked [`MatRef`]/[`MatMut`] views; transposition
//!   is a view ([`MatRef::t`]).
//! * `beta == 0` never reads C (NaN there is overwritten); `alpha == 0` or
//!   `k == 0` never reads A or B.
//! * Backends chosen per call or process-wide ([`Backend`]).
//! * Results are bit-identical for any thread count (work is split over output
//!   blocks only; the sparse forward product of a large layer sums in two
//!   fixed halves of `k`, whatever the threads). They may differ in the last
//!   bits between ISAs (FMA vs none, different blocking).
//!
//! Error bound (asserted by the tests against an f64 oracle): every element
//! satisfies `|c − ĉ| ≤ (k + 2)·ε·(|alpha|·Σ_p |a_ip·b_pj| + |beta·c_ij|)`.
//!
//! ```
//! use nnkern::gemm::{gemm, MatRef, MatMut};
//! let a = [1.0f32, 2.0, 3.0, 4.0];          // 2×2 row-major
//! let b = [5.0f32, 6.0, 7.0, 8.0];
//! let mut c = [0.0f32; 4];
//! gemm(1.0, MatRef::row_major(&a, 2, 2, 2)?, MatRef::row_major(&b, 2, 2, 2)?,
//!      0.0, MatMut::row_major(&mut c, 2, 2, 2)?)?;
//! assert_eq!(c, [19.0, 22.0, 43.0, 50.0]);
//! # Ok::<(), nnkern::Error>(())
//! ```

mod backend;
mod driver;
mod kernel;
mod naive;
mod pack;
mod params;
mod scratch;
mod sparse;
mod strided;
mod view;

pub use backend::{Backend, Elem};
pub use naive::{gemm_naive, gemm_reference};
pub use params::Params;
pub use sparse::{SparseRows, spmm, spmm_rows, spmm_t_rows};
pub use view::{MatMut, MatRef};
// The fused write-out the kernels above `gemm` (`ops`) plug into
// `gemm_epilogue` and `spmm_epilogue`.
pub(crate) use kernel::{Epilogue, NoEpilogue};
pub(crate) use sparse::{RowSink, spmm_epilogue, spmm_halves_epilogue, spmm_t_epilogue, spmm_t_into};

use crate::error::{Result, shape};
use crate::par::Par;
use crate::simd::Isa;
use driver::Problem;
use std::sync::atomic::{AtomicU8, Ordering};
use strided::Strided;

static DEFAULT_BACKEND: AtomicU8 = AtomicU8::new(0);

/// Sets the backend used by [`gemm`] and by calls whose options say
/// [`GemmOptions::backend`] `= None`. Errors if it is not available in this build.
pub fn set_default_backend(b: Backend) -> Result<()> {
    if !b.is_available() {
        return Err(crate::Error::Unsupported(format!(
            "backend '{}' is not compiled in (build with --features blas)",
            b.name()
        )));
    }
    DEFAULT_BACKEND.store(b as u8, Ordering::Relaxed);
    Ok(())
}

/// The process-wide default backend.
pub fn default_backend() -> Backend {
    match DEFAULT_BACKEND.load(Ordering::Relaxed) {
        1 => Backend::MatrixMultiply,
        2 => Backend::Blas,
        _ => Backend::Native,
    }
}

/// Per-call options of [`gemm_with`]: the crate's [`crate::Options`] (`par`,
/// `isa`) plus the backend.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GemmOptions {
    /// Backend; `None` uses [`default_backend`].
    pub backend: Option<Backend>,
    /// Thread policy (default: the process-wide thread count).
    pub par: Par,
    /// Instruction set for the native backend; `None` uses [`Isa::current`]. An
    /// ISA this CPU lacks is an error.
    pub isa: Option<Isa>,
}

impl GemmOptions {
    /// The instruction set these options ask for: [`GemmOptions::isa`], or
    /// the best of this CPU; one this CPU lacks is an error.
    pub(crate) fn resolve_isa(&self) -> Result<Isa> {
        crate::Options { isa: self.isa, par: self.par }.resolve_isa()
    }
}

/// `C ← alpha·A·B + beta·C` with default options.
///
/// # Errors
/// [`crate::Error::ShapeMismatch`] when the shapes disagree (`A: m×k`, `B: k×n`,
/// `C: m×n`); [`crate::Error::OutOfMemory`] when the native kernels'
/// packing buffers cannot be allocated. C is then untouched.
pub fn gemm<T: Elem>(alpha: T, a: MatRef<'_, T>, b: MatRef<'_, T>, beta: T, c: MatMut<'_, T>) -> Result<()> {
    gemm_with(alpha, a, b, beta, c, &GemmOptions::default())
}

/// `C ← alpha·A·B + beta·C` with explicit options.
///
/// # Errors
/// As [`gemm`], and [`crate::Error::Unsupported`] for an ISA or a backend
/// this build or CPU lacks. The `matrixmultiply` and BLAS backends allocate
/// their own packing buffers, outside this crate's control.
pub fn gemm_with<T: Elem>(
    alpha: T,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    beta: T,
    c: MatMut<'_, T>,
    opts: &GemmOptions,
) -> Result<()> {
    gemm_epilogue(alpha, a, b, beta, c, kernel::NoEpilogue, opts)
}

/// `C ← epi(alpha·A·B + beta·C)`: the GEMM with `epi` fused into the native
/// write-out (other backends apply it in a second pass over C).
pub(crate) fn gemm_epilogue<T: Elem, E: kernel::Epilogue<T>>(
    alpha: T,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    beta: T,
    mut c: MatMut<'_, T>,
    epi: E,
    opts: &GemmOptions,
) -> Result<()> {
    let (m, n, k) = (c.rows, c.cols, a.cols);
    if a.rows != m || b.rows != k || b.cols != n {
        return Err(shape(format!(
            "gemm: A is {}×{}, B is {}×{}, C is {}×{}; need A m×k, B k×n, C m×n",
            a.rows, a.cols, b.rows, b.cols, m, n
        )));
    }
    let isa = opts.resolve_isa()?;
    let backend = opts.backend.unwrap_or_else(default_backend);
    if !backend.is_available() {
        return Err(crate::Error::Unsupported(format!(
            "backend '{}' is not compiled in (build with --features blas)",
            backend.name()
        )));
    }
    let prob = Problem {
        m,
        n,
        k,
        alpha,
        a: Strided { ptr: a.ptr(), rs: a.rs, cs: a.cs },
        b: Strided { ptr: b.ptr(), rs: b.rs, cs: b.cs },
        beta: if beta == T::ZERO { None } else { Some(beta) },
        c: Strided { ptr: c.ptr_mut(), rs: c.rs, cs: c.cs },
        i_off: 0,
        j_off: 0,
    };
    // SAFETY: the views were validated at construction (every element in range,
    // C injective), the borrows guarantee C does not overlap A or B.
    unsafe {
        match backend {
            // With alpha = 0 or k = 0 the native driver only scales C and never
            // reads A or B (NaN there must not leak into C). matrixmultiply would
            // still multiply (0·NaN = NaN), so every backend takes this path.
            _ if alpha == T::ZERO || k == 0 => driver::gemm_native(isa, prob, epi, opts.par.threads()),
            Backend::Native => driver::gemm_native(isa, prob, epi, opts.par.threads()),
            Backend::MatrixMultiply => {
                if m > 0 && n > 0 {
                    T::mm_gemm(prob);
                    driver::apply_epilogue(prob, &epi);
                }
                Ok(())
            }
            Backend::Blas => {
                if m > 0 && n > 0 {
                    if T::blas_gemm(prob) {
                        driver::apply_epilogue(prob, &epi);
                    } else {
                        return driver::gemm_native(isa, prob, epi, opts.par.threads());
                    }
                }
                Ok(())
            }
        }
    }
}
