//! The register-blocked microkernel, written once over the token type (`S: Token`).
//!
//! A tile computes `C[0..m, 0..n] (op)= alpha · A_panel · B_panel` where
//! * the A panel holds, for each `p < k`, `MV` full vectors of consecutive rows
//!   (`a.ptr + p·a.cs`), either packed and zero-padded or read in place from a
//!   column-contiguous A (a partial edge panel is packed, so loads never pass
//!   the end of A, except that on AVX-512 a one-vector panel may be read in
//!   place with a masked load of its rows);
//! * the B panel is read by broadcasts at `b.at(p, j)`, packed or in place;
//! * C is written with general strides, with a vector fast path for `c.rs == 1`
//!   (strided C goes through a buffer, with the same vector arithmetic).
//!
//! Every `(mv, nr)` with `mv ≤ MV`, `nr ≤ NR` is its own monomorphised kernel
//! (the `gemm` crate's table approach), so an edge tile runs exactly the work it
//! needs: no scalar slow path and no wasted columns.
//!
//! The write-out follows the BLIS contract: with `beta == None` C is never read
//! (NaN there is overwritten); otherwise `C = beta·C + alpha·acc`.

use super::strided::Strided;
use crate::simd::{Real, TileVisitor, Token};

/// One microkernel invocation. Pointers are only dereferenced inside the ranges
/// the driver validated.
#[derive(Clone, Copy)]
pub(crate) struct Tile<T> {
    pub k: usize,
    /// The A panel: rows contiguous (`a.rs == 1`), `a.cs` apart in k. Every
    /// vector of a k step must be readable (whole vectors: packed, or read in
    /// place from a panel of whole vectors), except on AVX-512 in a
    /// one-vector tile (`MV == 1`), whose load is masked to the tile's `m`
    /// rows: only those need be readable (`driver::edge_width` relies on it).
    pub a: Strided<*const T>,
    /// The B panel, `k × n`.
    pub b: Strided<*const T>,
    /// The C tile, `m × n`.
    pub c: Strided<*mut T>,
    /// Valid rows (≤ MV·lanes) and columns (≤ NR) of this tile.
    pub m: usize,
    pub n: usize,
    pub alpha: T,
    /// `None`: overwrite C without reading it.
    pub beta: Option<T>,
    /// Coordinates of the tile's first element in the whole (internal) C, for
    /// the epilogue.
    pub i0: usize,
    pub j0: usize,
    /// Whether this is the last KC pass (the epilogue runs only then).
    pub last: bool,
}

/// Work fused into the GEMM write-out, applied to each vector of C while it is
/// still in registers, on the last KC pass only (earlier passes hold partial
/// sums). Coordinates are those of the kernel's internal problem; the driver
/// calls [`Epilogue::transposed`] when it computes `Cᵀ = Bᵀ·Aᵀ` instead.
pub(crate) trait Epilogue<T: Real>: Copy + Send + Sync {
    /// True only for [`NoEpilogue`], so the plain GEMM pays nothing.
    const IS_NONE: bool = false;
    /// The same epilogue for the transposed problem.
    fn transposed(self) -> Self;
    /// Transforms a register tile in place: `acc[j][v]` holds rows
    /// `i + v·lanes ..` of column `j + j'`, with `m` valid rows in all (only
    /// the last vector may be partial; lanes beyond `m` are don't-care) and
    /// `NR` valid columns. Called once per tile, so an implementation decides
    /// its branches (activation, bias layout) once, not per vector.
    ///
    /// # Safety
    /// Rows `i .. i+m` and columns `j .. j+NR` must be inside C.
    unsafe fn apply_tile<S: Token, const MV: usize, const NR: usize>(
        &self,
        s: S,
        acc: &mut [[T::V<S>; MV]; NR],
        i: usize,
        j: usize,
        m: usize,
    );
    /// Transforms element `(i, j)` (C when A or B is never read, and the
    /// unfused fallback of other backends).
    ///
    /// # Safety
    /// `(i, j)` must be inside C.
    unsafe fn apply_scalar(&self, x: T, i: usize, j: usize) -> T;
}

/// The plain GEMM: no epilogue.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct NoEpilogue;

impl<T: Real> Epilogue<T> for NoEpilogue {
    const IS_NONE: bool = true;
    fn transposed(self) -> Self {
        self
    }
    #[inline(always)]
    unsafe fn apply_tile<S: Token, const MV: usize, const NR: usize>(
        &self,
        _s: S,
        _acc: &mut [[T::V<S>; MV]; NR],
        _i: usize,
        _j: usize,
        _m: usize,
    ) {
    }
    #[inline(always)]
    unsafe fn apply_scalar(&self, x: T, _i: usize, _j: usize) -> T {
        x
    }
}

#[inline(always)]
unsafe fn step<T: Real, S: Token, const MV: usize, const NR: usize>(
    s: S,
    av: &[T::V<S>; MV],
    b: *const T,
    b_js: isize,
    acc: &mut [[T::V<S>; MV]; NR],
) {
    for j in 0..NR {
        // SAFETY: `b + j·b_js` is an element of the validated B panel.
        let bj = T::splat(s, unsafe { *b.offset(j as isize * b_js) });
        for i in 0..MV {
            acc[j][i] = T::vmul_add(s, av[i], bj, acc[j][i]);
        }
    }
}

/// The k loop of a tile.
///
/// # Safety
/// As [`ukr`]; `UNIT_JS` only when `t.b.cs == 1`.
#[inline(always)]
unsafe fn k_loop<T: Real, S: Token, const MV: usize, const NR: usize, const UNIT_JS: bool>(
    s: S,
    t: &Tile<T>,
    acc: &mut [[T::V<S>; MV]; NR],
) {
    let l = T::lanes::<S>();
    let zero = T::splat(s, T::ZERO);
    let js = if UNIT_JS { 1 } else { t.b.cs };
    // A one-vector tile (the rows left past the last whole MR panel) on
    // AVX-512 loads A with a k-mask of its rows (one instruction, as cheap
    // as a plain load): an A read in place then needs no packed copy of that
    // partial panel (`driver::edge_width`, which relies on this), and a
    // packed panel's zero padding reads as the zero it is. Wider tiles keep
    // plain loads.
    let rows = t.m.min(l);
    let load_a = |a: *const T| {
        let mut av = [zero; MV];
        for i in 0..MV {
            let masked = if S::AVX512F && MV == 1 {
                // SAFETY: the tile's `t.m` valid rows of this vector are
                // readable, and the masked load reads only those.
                unsafe { crate::simd::load_first_avx512::<S, T::V<S>, T>(a, rows) }
            } else {
                None
            };
            av[i] = match masked {
                Some(v) => v,
                // SAFETY: every vector is either valid rows of A or the zero
                // padding of a packed panel (see `Tile::a`).
                None => unsafe { T::load(s, a.add(i * l)) },
            };
        }
        av
    };
    if !UNIT_JS {
        // Columns of B `b.cs` apart (B read in place, e.g. Xᵀ with contiguous
        // columns): one base pointer per column and a common running offset,
        // so the broadcasts' addresses do not form a chain of adds.
        let cols: [*const T; NR] = core::array::from_fn(|j| t.b.ptr.wrapping_offset(j as isize * t.b.cs));
        let mut a = t.a.ptr;
        let mut off = 0isize;
        for _ in 0..t.k {
            let av = load_a(a);
            for j in 0..NR {
                // SAFETY: element (p, j) of the validated B panel.
                let bj = T::splat(s, unsafe { *cols[j].wrapping_offset(off) });
                for i in 0..MV {
                    acc[j][i] = T::vmul_add(s, av[i], bj, acc[j][i]);
                }
            }
            a = a.wrapping_offset(t.a.cs);
            off += t.b.rs;
        }
        return;
    }
    let mut a = t.a.ptr;
    let mut b = t.b.ptr;
    for _ in 0..t.k {
        let av = load_a(a);
        // SAFETY: row p of the B panel is in range.
        unsafe { step::<T, S, MV, NR>(s, &av, b, js, acc) };
        a = a.wrapping_offset(t.a.cs);
        b = b.wrapping_offset(t.b.rs);
    }
}

/// The k loop with both addressing variants: B columns adjacent (`b.cs == 1`:
/// packed B, or a row-major B read in place) has compile-time constant
/// addressing.
///
/// # Safety
/// As [`ukr`].
#[inline(always)]
unsafe fn k_loop_any<T: Real, S: Token, const MV: usize, const NR: usize>(s: S, t: &Tile<T>) -> [[T::V<S>; MV]; NR] {
    let zero = T::splat(s, T::ZERO);
    let mut acc = [[zero; MV]; NR];
    // SAFETY: forwarded contract (see `k_loop`).
    unsafe {
        if t.b.cs == 1 {
            k_loop::<T, S, MV, NR, true>(s, t, &mut acc)
        } else {
            k_loop::<T, S, MV, NR, false>(s, t, &mut acc)
        }
    }
    acc
}

/// The microkernel for an `MV`-vector × `NR`-column tile.
///
/// # Safety
/// The tile's pointers must be valid for the ranges described on [`Tile`].
#[inline(always)]
pub(crate) unsafe fn ukr<T: Real, S: Token, E: Epilogue<T>, const MV: usize, const NR: usize>(
    s: S,
    t: &Tile<T>,
    e: &E,
) {
    // Start fetching the C tile now; it is needed only after the k loop.
    if t.c.rs == 1 {
        let last = (MV * T::lanes::<S>()).min(t.m) - 1;
        for j in 0..NR {
            let cp = t.c.ptr.wrapping_offset(j as isize * t.c.cs);
            crate::simd::prefetch(cp);
            crate::simd::prefetch(cp.wrapping_add(last));
        }
    }
    // SAFETY: forwarded contract (see `k_loop`).
    let acc = unsafe { k_loop_any::<T, S, MV, NR>(s, t) };
    // SAFETY: C tile validity is the caller's contract.
    unsafe { write_out::<T, S, E, MV, NR>(s, t, e, &acc) };
}

#[inline(always)]
unsafe fn write_out<T: Real, S: Token, E: Epilogue<T>, const MV: usize, const NR: usize>(
    s: S,
    t: &Tile<T>,
    e: &E,
    acc: &[[T::V<S>; MV]; NR],
) {
    let l = T::lanes::<S>();
    let alpha = T::splat(s, t.alpha);
    if t.c.rs == 1 {
        let last = t.m - (MV - 1) * l;
        let mut v = *acc;
        // `x·1 = x` for every x (NaN, ±0 and ±∞ included): alpha = 1, the
        // trainer's every product, skips the multiplies (a tenth of the
        // FMAs of a k = 10 tile). One test per tile, outside the loops.
        if t.alpha != T::ONE {
            for (vj, aj) in v.iter_mut().zip(acc) {
                for (x, &a) in vj.iter_mut().zip(aj) {
                    *x = T::vmul(s, a, alpha);
                }
            }
        }
        if let Some(beta) = t.beta {
            let beta = T::splat(s, beta);
            for (j, vj) in v.iter_mut().enumerate() {
                let cp = t.c.ptr.wrapping_offset(j as isize * t.c.cs);
                for (i, x) in vj.iter_mut().enumerate() {
                    let rows = if i == MV - 1 { last } else { l };
                    // SAFETY: rows `i·l .. i·l+rows` of column j are inside the C tile.
                    let cv = unsafe { T::load_upto(s, cp.wrapping_add(i * l), rows) };
                    *x = T::vmul_add(s, cv, beta, *x);
                }
            }
        }
        if !E::IS_NONE && t.last {
            // SAFETY: the tile is inside C.
            unsafe { e.apply_tile(s, &mut v, t.i0, t.j0, t.m) };
        }
        for j in 0..NR {
            let cp = t.c.ptr.wrapping_offset(j as isize * t.c.cs);
            for i in 0..MV {
                let rows = if i == MV - 1 { last } else { l };
                let p = cp.wrapping_add(i * l);
                // SAFETY: rows `i·l .. i·l+rows` of column j are inside the C tile.
                unsafe { T::store_upto(s, p, rows, v[j][i]) }
            }
        }
    } else {
        // Strided C (a row-major C kept in this orientation, see the driver's
        // `keeps_orientation`, or general strides): the same vector
        // operations as above, so an element has the bits it would have in
        // a column-contiguous C; C's elements are read into a tile of
        // vectors element by element, and the result written by a transpose
        // in registers (f32 on AVX-512) or element by element.
        let mr = MV * l;
        debug_assert_eq!(t.n, NR);
        // Element (i, j) of a tile of vectors (`v`, `cin`) as NR columns of `mr`.
        let idx = |i: usize, j: usize| j * mr + i;
        // C's row i, and the distance between its columns.
        let row = |i: usize| t.c.ptr.wrapping_offset(i as isize * t.c.rs);
        let cs = t.c.cs;
        let mut v = *acc;
        if t.alpha != T::ONE {
            for x in v.as_flattened_mut() {
                *x = T::vmul(s, *x, alpha);
            }
        }
        if let Some(beta) = t.beta {
            let mut cin = [[T::splat(s, T::ZERO); MV]; NR];
            let cp = cin.as_mut_ptr() as *mut T;
            // Rows outer: a row-major C is read along its rows.
            for i in 0..t.m {
                let r = row(i);
                for j in 0..NR {
                    // SAFETY: (i, j) is inside the validated C tile (NR == n);
                    // `cin` holds NR·mr elements.
                    unsafe { *cp.add(idx(i, j)) = *r.wrapping_offset(j as isize * cs) };
                }
            }
            let beta = T::splat(s, beta);
            for (vj, cj) in v.iter_mut().zip(&cin) {
                for (x, &c) in vj.iter_mut().zip(cj) {
                    *x = T::vmul_add(s, c, beta, *x);
                }
            }
        }
        if !E::IS_NONE && t.last {
            // SAFETY: the tile is inside C (lanes beyond `m` are don't-care).
            unsafe { e.apply_tile(s, &mut v, t.i0, t.j0, t.m) };
        }
        if cs == 1 && T::lanes::<S>() <= 16 {
            // The native path exists or not by type (f32 on AVX-512): it
            // declines on the first call, before writing anything, or never.
            let mut native = true;
            for mv in 0..MV {
                let rows = l.min(t.m.saturating_sub(mv * l));
                if rows == 0 {
                    break;
                }
                let cols: [T::V<S>; NR] = core::array::from_fn(|j| v[j][mv]);
                // SAFETY: rows `mv·l .. mv·l+rows` of the tile, NR values
                // each, are inside C (NR == n, `cs == 1`).
                native = unsafe { crate::simd::store_cols_as_rows::<S, _, T>(&cols, rows, row(mv * l), t.c.rs) };
                if !native {
                    break;
                }
            }
            if native {
                return;
            }
        }
        let vp = v.as_ptr() as *const T;
        for i in 0..t.m {
            let r = row(i);
            for j in 0..NR {
                // SAFETY: (i, j) is inside the validated C tile (NR == n); `v`
                // holds NR·mr elements.
                unsafe { *r.wrapping_offset(j as isize * cs) = *vp.add(idx(i, j)) };
            }
        }
    }
}

/// [`ukr`] for one tile, as the visitor of the ISA table's tile shape
/// (`simd::TileShape::select` picks the `(MV, NR)` variant).
pub(crate) struct Ukr<'a, T, S, E> {
    /// The ISA token.
    pub s: S,
    /// The tile.
    pub t: &'a Tile<T>,
    /// The epilogue.
    pub e: &'a E,
}

impl<T: Real, S: Token, E: Epilogue<T>> TileVisitor for Ukr<'_, T, S, E> {
    type Output = ();
    /// # Safety
    /// As [`ukr`].
    #[inline(always)]
    unsafe fn visit<const MV: usize, const NR: usize>(self) {
        // SAFETY: forwarded contract.
        unsafe { ukr::<T, S, E, MV, NR>(self.s, self.t, self.e) }
    }
}
