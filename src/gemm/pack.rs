//! Packing of A into MR-row panels and B into NR-column panels, by one
//! routine (as matrixmultiply's `packing.rs`): a B block is packed as the A
//! block of Bᵀ, its strides swapped.
//!
//! Panel layouts (BLIS): an A panel stores, for each `p < kc`, MR consecutive
//! rows; a B panel stores, for each `p < kc`, NR consecutive columns. Edges are
//! zero-padded to full MR / NR so the microkernel never reads garbage.

use crate::simd::{Isa, Real};
use crate::simd::{Token, WithToken};

/// Packs `A[0..mc, 0..kc]` (strides `rs`, `cs`) into `dst` as `ceil(mc/mr)`
/// panels of `mr × kc` (`isa`: the instruction set of the product, for the
/// vectorised partial panel). A block `B[0..kc, 0..nc]` (strides `rs`, `cs`)
/// packs into `ceil(nc/nr)` panels of `kc × nr` as
/// `pack(isa, dst, b, cs, rs, nc, kc, nr)`.
///
/// # Safety
/// `a` must be valid for every `(i, p)` in range; `dst` for
/// `ceil(mc/mr)·mr·kc` writes.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn pack<T: Real>(
    isa: Isa,
    dst: *mut T,
    a: *const T,
    rs: isize,
    cs: isize,
    mc: usize,
    kc: usize,
    mr: usize,
) {
    let mut i0 = 0;
    let mut d = dst;
    while i0 < mc {
        let rows = mr.min(mc - i0);
        let src = a.wrapping_offset(i0 as isize * rs);
        // SAFETY: in-range reads of A and writes of this panel.
        unsafe {
            if rs == 1 && rows == mr && copy_rows_with(isa, d, src, cs, kc, mr) {
                // Whole panel copied by fixed-size moves.
            } else if rs == 1 {
                pack_partial_contig(isa, d, src, cs, kc, rows, mr);
            } else if cs == 1 && pack_rows_t(isa, d, src, rs, rows, kc, mr) {
                // A row-major A (W of dZ·Wᵀ at a 10-class output; H of a
                // narrow forward product that keeps its orientation): 16
                // rows × 16 columns at a time transposed in registers.
            } else if kc < 64 {
                // Short rows (the k = 10 of dZ·Wᵀ at a 10-class output where
                // `pack_rows_t` declines: f64, or no AVX-512): one panel
                // column at a time, with sequential writes.
                for p in 0..kc {
                    let s = src.wrapping_offset(p as isize * cs);
                    let dp = d.add(p * mr);
                    for r in 0..rows {
                        *dp.add(r) = *s.wrapping_offset(r as isize * rs);
                    }
                    for r in rows..mr {
                        *dp.add(r) = T::ZERO;
                    }
                }
            } else {
                // Row by row: reads along each row, writes `mr` apart (faster
                // than column by column for the 784×128 Wᵀ of dZ·Wᵀ where
                // `pack_rows_t` declines).
                for r in 0..rows {
                    let s = src.wrapping_offset(r as isize * rs);
                    for p in 0..kc {
                        *d.add(p * mr + r) = *s.wrapping_offset(p as isize * cs);
                    }
                }
                if rows < mr {
                    for p in 0..kc {
                        for r in rows..mr {
                            *d.add(p * mr + r) = T::ZERO;
                        }
                    }
                }
            }
            d = d.add(mr * kc);
        }
        i0 += mr;
    }
}

/// Packs the `rows < mr` contiguous rows of each of `kc` columns (`cs` apart)
/// into one zero-padded `mr × kc` panel, by vectors: full loads where a whole
/// vector of rows exists, one masked load for the last partial vector, zeros
/// beyond, with no `memmove`/`memset` call per column (they cost the narrow
/// MLP products dearly, see BENCHMARKS.md, "Design measurements").
///
/// # Safety
/// Each `src + p·cs .. + rows` must be readable, `dst` valid for `mr·kc` writes.
unsafe fn pack_partial_contig<T: Real>(
    isa: Isa,
    dst: *mut T,
    src: *const T,
    cs: isize,
    kc: usize,
    rows: usize,
    mr: usize,
) {
    struct Op<T> {
        dst: *mut T,
        src: *const T,
        cs: isize,
        kc: usize,
        rows: usize,
        mr: usize,
    }
    impl<T: Real> WithToken for Op<T> {
        type Output = ();
        #[inline(always)]
        fn with_token<S: Token>(self, s: S) {
            let l = T::lanes::<S>();
            let (mut d, mut c) = (self.dst, self.src);
            if self.mr % l != 0 {
                // A panel height that is not whole vectors: element by element.
                for _ in 0..self.kc {
                    for r in 0..self.mr {
                        // SAFETY: r < rows elements of this column are readable,
                        // r < mr slots of the panel writable.
                        unsafe { *d.add(r) = if r < self.rows { *c.add(r) } else { T::ZERO } };
                    }
                    d = d.wrapping_add(self.mr);
                    c = c.wrapping_offset(self.cs);
                }
                return;
            }
            let zero = T::splat(s, T::ZERO);
            let (full, rem) = (self.rows / l, self.rows % l);
            for _ in 0..self.kc {
                let mut r = 0;
                // SAFETY: reads stay within the `rows` readable elements of this
                // column (the partial load reads `rem` of them); writes stay
                // within this column's `mr` slots of the panel, as `mr` is a
                // multiple of the vector width here.
                unsafe {
                    for i in 0..full {
                        T::store(s, d.add(i * l), T::load(s, c.add(i * l)));
                    }
                    r += full * l;
                    if rem > 0 {
                        T::store(s, d.add(r), T::load_partial(s, c.add(r), rem));
                        r += l;
                    }
                    while r < self.mr {
                        T::store(s, d.add(r), zero);
                        r += l;
                    }
                }
                d = d.wrapping_add(self.mr);
                c = c.wrapping_offset(self.cs);
            }
        }
    }
    isa.run(Op { dst, src, cs, kc, rows, mr });
}

/// Whether [`pack`] packs a row-major panel of `mr` rows by 16 × 16
/// transposes in registers for an element of `lanes` lanes (f32 on
/// AVX-512, x86-64 only; any `mr`, a last group of fewer than 16 rows
/// stored masked); the driver's choice of orientation asks the same.
pub(crate) fn transposes_rows(lanes: usize, mr: usize) -> bool {
    cfg!(target_arch = "x86_64") && lanes == 16 && mr > 0
}

/// Packs the `rows ≤ mr` rows of `kc` contiguous elements each (`rs`
/// apart) into one zero-padded `mr × kc` panel, 16 rows × 16 columns at a
/// time by [`crate::simd::load_rows_as_cols`] (a last group of `mr mod 16`
/// rows: the 12 columns of a B panel whose columns are contiguous, Aᵀ of a
/// row-major `A·B` computed as `Cᵀ = Bᵀ·Aᵀ`); `false`, writing nothing,
/// where [`transposes_rows`] says no for this ISA and element.
///
/// # Safety
/// Each `src + r·rs .. + kc` (`r < rows`) must be readable, `dst` valid for
/// `mr·kc` writes.
unsafe fn pack_rows_t<T: Real>(
    isa: Isa,
    dst: *mut T,
    src: *const T,
    rs: isize,
    rows: usize,
    kc: usize,
    mr: usize,
) -> bool {
    struct Op<T> {
        dst: *mut T,
        src: *const T,
        rs: isize,
        rows: usize,
        kc: usize,
        mr: usize,
    }
    impl<T: Real> WithToken for Op<T> {
        type Output = bool;
        #[inline(always)]
        fn with_token<S: Token>(self, _s: S) -> bool {
            let Op { dst, src, rs, rows, kc, mr } = self;
            if !transposes_rows(T::lanes::<S>(), mr) {
                return false;
            }
            for p0 in (0..kc).step_by(16) {
                let w = (kc - p0).min(16);
                for g in (0..mr).step_by(16) {
                    let height = (mr - g).min(16);
                    let n = rows.saturating_sub(g).min(height);
                    // SAFETY: rows g .. g+n of the panel's source are readable
                    // (kc values each, so p0 .. p0+w); the `height` slots g ..
                    // g+height of each of the panel columns p0 .. p0+w (mr
                    // apart) are writable.
                    let done = unsafe {
                        crate::simd::load_rows_as_cols::<S, T>(
                            src.wrapping_offset(g as isize * rs + p0 as isize),
                            rs,
                            n,
                            w,
                            dst.add(p0 * mr + g),
                            mr,
                            height,
                        )
                    };
                    if !done {
                        // Declined by type, on the first group: nothing written.
                        return false;
                    }
                }
            }
            true
        }
    }
    isa.run(Op { dst, src, rs, rows, kc, mr })
}

/// [`copy_rows`] compiled with `isa`'s target features, so that its
/// fixed-size moves are that ISA's widest vectors (outside them, a panel row
/// of 32 f32 moves as eight 16-byte halves: 1024³ spent 6% of its time in
/// that copy).
///
/// # Safety
/// As [`copy_rows`].
unsafe fn copy_rows_with<T: Copy>(
    isa: Isa,
    dst: *mut T,
    src: *const T,
    stride: isize,
    count: usize,
    len: usize,
) -> bool {
    struct Op<T> {
        dst: *mut T,
        src: *const T,
        stride: isize,
        count: usize,
        len: usize,
    }
    impl<T: Copy> WithToken for Op<T> {
        type Output = bool;
        #[inline(always)]
        fn with_token<S: Token>(self, _s: S) -> bool {
            // SAFETY: forwarded contract.
            unsafe { copy_rows(self.dst, self.src, self.stride, self.count, self.len) }
        }
    }
    isa.run(Op { dst, src, stride, count, len })
}

/// Copies `len` contiguous elements from each of `count` source rows (`stride`
/// apart) into consecutive rows of `dst`, by fixed-size moves that compile to
/// vector loads and stores (a `copy_nonoverlapping` of a run-time length is a
/// call to `memmove` per row). Returns false, copying nothing, for a `len`
/// without a fixed-size path.
///
/// # Safety
/// Each source row `src + p·stride .. + len` must be readable and `dst` valid
/// for `count·len` writes.
#[inline(always)]
unsafe fn copy_rows<T: Copy>(dst: *mut T, src: *const T, stride: isize, count: usize, len: usize) -> bool {
    #[inline(always)]
    unsafe fn rows<T: Copy, const L: usize>(dst: *mut T, src: *const T, stride: isize, count: usize) {
        let (d, mut s) = (dst as *mut [T; L], src);
        for p in 0..count {
            // SAFETY: the caller's contract; `[T; L]` has T's alignment.
            unsafe { d.add(p).write_unaligned((s as *const [T; L]).read_unaligned()) };
            s = s.wrapping_offset(stride);
        }
    }
    // SAFETY: forwarded contract.
    unsafe {
        match len {
            4 => rows::<T, 4>(dst, src, stride, count),
            6 => rows::<T, 6>(dst, src, stride, count),
            8 => rows::<T, 8>(dst, src, stride, count),
            12 => rows::<T, 12>(dst, src, stride, count),
            16 => rows::<T, 16>(dst, src, stride, count),
            32 => rows::<T, 32>(dst, src, stride, count),
            _ => return false,
        }
    }
    true
}
