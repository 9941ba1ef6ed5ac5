//! Backends: our native kernels, `matrixmultiply`, and (feature `blas`) the
//! system CBLAS. All share one argument convention: `(rows, cols)` strides in
//! that order, BLAS `alpha`/`beta`, and `beta == 0` never reads C.

// `Problem` is crate-private; it only appears in the sealed `Backends` trait.
#![allow(private_interfaces)]

use super::driver::Problem;
use crate::simd::Real;

/// Which implementation runs a GEMM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Backend {
    /// nnkern's own packed, runtime-dispatched SIMD kernels (the default).
    #[default]
    Native,
    /// The pure-Rust `matrixmultiply` crate (single-threaded here; any strides).
    MatrixMultiply,
    /// The system CBLAS (`cblas_sgemm`/`cblas_dgemm`), only with the cargo
    /// feature `blas`. Matrices without a unit stride in one dimension, and sizes
    /// beyond `i32`, fall back to `Native`.
    Blas,
}

impl Backend {
    /// Whether this build can run the backend.
    pub fn is_available(self) -> bool {
        match self {
            Backend::Native | Backend::MatrixMultiply => true,
            Backend::Blas => cfg!(feature = "blas"),
        }
    }

    /// Lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Native => "native",
            Backend::MatrixMultiply => "matrixmultiply",
            Backend::Blas => "blas",
        }
    }
}

/// Element types with GEMM backends (f32 and f64; sealed).
pub trait Elem: Real + sealed::Backends {}
impl Elem for f32 {}
impl Elem for f64 {}

pub(crate) mod sealed {
    use super::Problem;
    /// The backend hooks of an element type (not nameable outside the crate).
    pub trait Backends: Sized {
        /// Runs matrixmultiply.
        ///
        /// # Safety
        /// As [`super::driver::gemm_native`].
        #[doc(hidden)]
        unsafe fn mm_gemm(p: Problem<Self>);
        /// Runs CBLAS; returns `false` when the layout is not expressible in CBLAS.
        ///
        /// # Safety
        /// As [`super::driver::gemm_native`].
        #[doc(hidden)]
        unsafe fn blas_gemm(p: Problem<Self>) -> bool;
    }
}

macro_rules! impl_elem {
    ($t:ty, $mm:ident, $cblas:ident) => {
        impl sealed::Backends for $t {
            unsafe fn mm_gemm(p: Problem<Self>) {
                let beta = p.beta.unwrap_or(0.0);
                // SAFETY: the caller validated every pointer and stride; matrixmultiply
                // accepts any strides and does not read C when beta == 0.
                unsafe {
                    matrixmultiply::$mm(
                        p.m,
                        p.k,
                        p.n,
                        p.alpha,
                        p.a.ptr.get(),
                        p.a.rs,
                        p.a.cs,
                        p.b.ptr.get(),
                        p.b.rs,
                        p.b.cs,
                        beta,
                        p.c.ptr.get(),
                        p.c.rs,
                        p.c.cs,
                    )
                }
            }
            #[allow(unused_variables)]
            unsafe fn blas_gemm(p: Problem<Self>) -> bool {
                #[cfg(feature = "blas")]
                {
                    let Some((l, p)) = blas::layout(&p) else { return false };
                    // SAFETY: `layout` checked that every matrix is expressible as
                    // a CBLAS operand with a valid leading dimension.
                    unsafe {
                        blas::$cblas(
                            l.order,
                            l.ta,
                            l.tb,
                            l.m,
                            l.n,
                            l.k,
                            p.alpha,
                            p.a.ptr.get(),
                            l.lda,
                            p.b.ptr.get(),
                            l.ldb,
                            p.beta.unwrap_or(0.0),
                            p.c.ptr.get(),
                            l.ldc,
                        )
                    };
                    true
                }
                #[cfg(not(feature = "blas"))]
                {
                    false
                }
            }
        }
    };
}
impl_elem!(f32, sgemm, cblas_sgemm);
impl_elem!(f64, dgemm, cblas_dgemm);

#[cfg(feature = "blas")]
mod blas {
    use super::Problem;
    use std::os::raw::c_int;

    const ROW_MAJOR: c_int = 101;
    const NO_TRANS: c_int = 111;
    const TRANS: c_int = 112;

    unsafe extern "C" {
        pub fn cblas_sgemm(
            order: c_int,
            ta: c_int,
            tb: c_int,
            m: c_int,
            n: c_int,
            k: c_int,
            alpha: f32,
            a: *const f32,
            lda: c_int,
            b: *const f32,
            ldb: c_int,
            beta: f32,
            c: *mut f32,
            ldc: c_int,
        );
        pub fn cblas_dgemm(
            order: c_int,
            ta: c_int,
            tb: c_int,
            m: c_int,
            n: c_int,
            k: c_int,
            alpha: f64,
            a: *const f64,
            lda: c_int,
            b: *const f64,
            ldb: c_int,
            beta: f64,
            c: *mut f64,
            ldc: c_int,
        );
    }

    pub struct Layout {
        pub order: c_int,
        pub ta: c_int,
        pub tb: c_int,
        pub m: c_int,
        pub n: c_int,
        pub k: c_int,
        pub lda: c_int,
        pub ldb: c_int,
        pub ldc: c_int,
    }

    /// Expresses an operand `rows × cols` with strides in a row-major world:
    /// returns `(trans, ld)`.
    fn operand(rows: usize, cols: usize, rs: isize, cs: isize) -> Option<(c_int, c_int)> {
        let ld_ok = |ld: isize, min: usize| ld >= (min.max(1) as isize) && ld <= c_int::MAX as isize;
        if (cs == 1 || cols == 1) && ld_ok(if rows == 1 { cols.max(1) as isize } else { rs }, cols) {
            let ld = if rows == 1 { cols.max(1) as isize } else { rs };
            Some((NO_TRANS, ld as c_int))
        } else if (rs == 1 || rows == 1) && ld_ok(if cols == 1 { rows.max(1) as isize } else { cs }, rows) {
            let ld = if cols == 1 { rows.max(1) as isize } else { cs };
            Some((TRANS, ld as c_int))
        } else {
            None
        }
    }

    /// Maps the problem onto a row-major CBLAS call (transposing it first when C
    /// is column-major). `None` when some operand has no unit stride or a size
    /// exceeds `int`.
    pub fn layout<T: crate::simd::Real>(p: &Problem<T>) -> Option<(Layout, Problem<T>)> {
        let fits = |x: usize| x <= c_int::MAX as usize;
        if !(fits(p.m) && fits(p.n) && fits(p.k)) {
            return None;
        }
        let q = if p.c.cs == 1 || p.n == 1 { *p } else { p.transposed() };
        let (tc, ldc) = operand(q.m, q.n, q.c.rs, q.c.cs)?;
        if tc != NO_TRANS {
            return None;
        }
        let (ta, lda) = operand(q.m, q.k, q.a.rs, q.a.cs)?;
        let (tb, ldb) = operand(q.k, q.n, q.b.rs, q.b.cs)?;
        let l = Layout { order: ROW_MAJOR, ta, tb, m: q.m as c_int, n: q.n as c_int, k: q.k as c_int, lda, ldb, ldc };
        Some((l, q))
    }
}
