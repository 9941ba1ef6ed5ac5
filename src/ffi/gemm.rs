//! `nnk_sgemm` / `nnk_dgemm`: CBLAS-compatible GEMM entry points.

use super::{
    NNK_COL_MAJOR, NNK_CONJ_TRANS, NNK_NO_TRANS, NNK_ROW_MAJOR, NNK_TRANS, boundary, check_ptr, overlaps, slice_in,
    slice_out,
};
use crate::error::{Error, Result};
use crate::gemm::{Elem, GemmOptions, MatMut, MatRef, gemm_with};

/// Elements a stored `rows × cols` matrix with leading dimension `ld` spans
/// (`ld` strides the major dimension of length `major`, `minor` elements each).
fn span(major: usize, minor: usize, ld: usize, name: &str) -> Result<usize> {
    if major == 0 || minor == 0 {
        return Ok(0);
    }
    (major - 1)
        .checked_mul(ld)
        .and_then(|x| x.checked_add(minor))
        .ok_or_else(|| Error::Overflow(format!("'{name}': (rows - 1) × ld + cols overflows size_t")))
}

/// One operand as stored: `(major, minor)` extents for the leading-dimension check.
struct Stored {
    major: usize,
    minor: usize,
}

#[allow(clippy::too_many_arguments)]
unsafe fn gemm_c<T: Elem>(
    layout: i32,
    trans_a: i32,
    trans_b: i32,
    m: usize,
    n: usize,
    k: usize,
    alpha: T,
    a: *const T,
    lda: usize,
    b: *const T,
    ldb: usize,
    beta: T,
    c: *mut T,
    ldc: usize,
) -> Result<()> {
    let row = match layout {
        NNK_ROW_MAJOR => true,
        NNK_COL_MAJOR => false,
        x => return Err(Error::InvalidArgument(format!("layout {x}: expected 101 (row-major) or 102 (column-major)"))),
    };
    let trans = |t: i32, name: &str| match t {
        NNK_NO_TRANS => Ok(false),
        NNK_TRANS | NNK_CONJ_TRANS => Ok(true),
        x => Err(Error::InvalidArgument(format!("{name} {x}: expected 111, 112 or 113"))),
    };
    let (ta, tb) = (trans(trans_a, "trans_a")?, trans(trans_b, "trans_b")?);
    for (v, name) in [(m, "m"), (n, "n"), (k, "k")] {
        if v > isize::MAX as usize {
            return Err(Error::Overflow(format!("{name} = {v} exceeds the largest matrix dimension")));
        }
    }
    // Stored shapes: op(A) is m×k, so A is stored m×k or k×m; in row-major the
    // major dimension is rows, in column-major it is columns.
    let stored = |r: usize, c: usize| if row { Stored { major: r, minor: c } } else { Stored { major: c, minor: r } };
    let sa = if ta { stored(k, m) } else { stored(m, k) };
    let sb = if tb { stored(n, k) } else { stored(k, n) };
    let sc = stored(m, n);
    for (s, ld, name) in [(&sa, lda, "lda"), (&sb, ldb, "ldb"), (&sc, ldc, "ldc")] {
        if ld < s.minor.max(1) {
            return Err(Error::InvalidArgument(format!("{name} = {ld} is smaller than max(1, {})", s.minor)));
        }
        if ld > isize::MAX as usize {
            return Err(Error::Overflow(format!("{name} = {ld} exceeds isize::MAX")));
        }
    }
    let reads_ab = m > 0 && n > 0 && k > 0 && alpha != T::ZERO;
    let alen = if reads_ab { span(sa.major, sa.minor, lda, "a")? } else { 0 };
    let blen = if reads_ab { span(sb.major, sb.minor, ldb, "b")? } else { 0 };
    let clen = span(sc.major, sc.minor, ldc, "c")?;
    for (p, len, name) in [(a, alen, "a"), (b, blen, "b"), (c as *const T, clen, "c")] {
        check_ptr(p, len, name)?;
    }
    if overlaps(a, alen, c, clen) || overlaps(b, blen, c, clen) {
        return Err(Error::InvalidArgument("'c' overlaps 'a' or 'b'; the output must not alias an input".into()));
    }
    if clen == 0 {
        return Ok(());
    }
    // SAFETY: the caller guarantees the memory for the lengths the views
    // use; C does not overlap A or B (checked above), so the shared and
    // exclusive borrows are disjoint.
    let (asl, bsl, csl) = unsafe { (slice_in(a, alen, "a")?, slice_in(b, blen, "b")?, slice_out(c, clen, "c")?) };
    fn view<T>(row: bool, sl: &[T], r: usize, cl: usize, ld: usize) -> Result<MatRef<'_, T>> {
        if row { MatRef::row_major(sl, r, cl, ld) } else { MatRef::col_major(sl, r, cl, ld) }
    }
    let (am, ak) = if reads_ab { (m, k) } else { (m, 0) };
    let (bk, bn) = if reads_ab { (k, n) } else { (0, n) };
    let av = if ta { view(row, asl, ak, am, lda)?.t() } else { view(row, asl, am, ak, lda)? };
    let bv = if tb { view(row, bsl, bn, bk, ldb)?.t() } else { view(row, bsl, bk, bn, ldb)? };
    let cv = if row { MatMut::row_major(csl, m, n, ldc)? } else { MatMut::col_major(csl, m, n, ldc)? };
    // With nothing to read from A/B, run the k = 0 product: C = beta·C.
    gemm_with(if reads_ab { alpha } else { T::ZERO }, av, bv, beta, cv, &GemmOptions::default())
}

/// Single-precision GEMM with CBLAS conventions:
/// `C ← alpha·op(A)·op(B) + beta·C`, `op(A)` m×k, `op(B)` k×n, C m×n.
///
/// * `layout`: `NNK_ROW_MAJOR` (101) or `NNK_COL_MAJOR` (102).
/// * `trans_a`, `trans_b`: `NNK_NO_TRANS` (111), `NNK_TRANS` (112) or
///   `NNK_CONJ_TRANS` (113, also a transpose).
/// * `lda`, `ldb`, `ldc`: leading dimensions, at least `max(1, width)` of the
///   stored matrix as in CBLAS.
/// * `beta == 0`: C is not read (NaN there is overwritten). `alpha == 0` or
///   `k == 0`: A and B are not read and may be NULL.
///
/// Returns `NNK_OK` or: `NNK_ERR_INVALID_ARG` (unknown enum value, leading
/// dimension too small, misaligned pointer, C overlapping A or B),
/// `NNK_ERR_NULL_POINTER`, `NNK_ERR_OVERFLOW` (sizes whose products overflow).
/// On error C is untouched. Thread-safe; uses the process-wide thread count.
///
/// Undefined behaviour unless:
/// Each non-NULL pointer are valid for the extent its dimensions and
/// leading dimension describe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nnk_sgemm(
    layout: i32,
    trans_a: i32,
    trans_b: i32,
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: *const f32,
    lda: usize,
    b: *const f32,
    ldb: usize,
    beta: f32,
    c: *mut f32,
    ldc: usize,
) -> i32 {
    // SAFETY: forwarded contract.
    boundary(|| unsafe { gemm_c(layout, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc) })
}

/// Double-precision GEMM; the same contract as `nnk_sgemm`.
///
/// Undefined behaviour unless:
/// as for `nnk_sgemm`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nnk_dgemm(
    layout: i32,
    trans_a: i32,
    trans_b: i32,
    m: usize,
    n: usize,
    k: usize,
    alpha: f64,
    a: *const f64,
    lda: usize,
    b: *const f64,
    ldb: usize,
    beta: f64,
    c: *mut f64,
    ldc: usize,
) -> i32 {
    // SAFETY: forwarded contract.
    boundary(|| unsafe { gemm_c(layout, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc) })
}
