//! The `gemm` crate as a peer of the timing examples (`gemm_cmp`,
//! `perf_rows`), behind one checked call.

/// `C = A·B` with the `gemm` crate: C is `m×n` row-major in `c`; A (`m×k`)
/// and B (`k×n`) lie in `a` and `b` with the element strides `(row, column)`
/// `sa` and `sb`, non-negative. Panics if a matrix does not fit its buffer.
#[allow(clippy::too_many_arguments)]
pub fn sgemm(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    sa: (isize, isize),
    b: &[f32],
    sb: (isize, isize),
    c: &mut [f32],
    par: gemm::Parallelism,
) {
    let last = |r: usize, cols: usize, (rs, cs): (isize, isize)| {
        assert!(rs >= 0 && cs >= 0, "negative strides");
        (r.max(1) - 1) * rs as usize + (cols.max(1) - 1) * cs as usize
    };
    assert!(m * n <= c.len(), "C does not fit");
    if m * n * k == 0 {
        return;
    }
    assert!(last(m, k, sa) < a.len() && last(k, n, sb) < b.len(), "A or B does not fit");
    // SAFETY: every element of A, B and C the call reads or writes is inside
    // its buffer (checked above); C is an exclusive borrow, so it aliases
    // neither A nor B.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            sa.1,
            sa.0,
            b.as_ptr(),
            sb.1,
            sb.0,
            0.0f32,
            1.0,
            false,
            false,
            false,
            par,
        )
    }
}
