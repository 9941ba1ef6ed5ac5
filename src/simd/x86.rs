//! Every raw x86-64 intrinsic of the crate, each behind a function that states
//! what it needs. Callers are the portable wrappers in [`crate::simd`]; none
//! of these is reached on another architecture.

use core::arch::x86_64::*;

/// Hints the CPU to bring the cache line holding `p` into L1.
#[inline(always)]
pub(crate) fn prefetch<T>(p: *const T) {
    // SAFETY: prefetch is a hint; it never faults, even on invalid addresses,
    // and SSE is part of the x86-64 baseline.
    unsafe { _mm_prefetch::<{ _MM_HINT_T0 }>(p as *const i8) };
}

/// `prefetcht1`: the line into L2 (and beyond), not L1.
#[inline(always)]
pub(crate) fn prefetch_l2<T>(p: *const T) {
    // SAFETY: prefetch is a hint; it never faults, even on invalid addresses,
    // and SSE is part of the x86-64 baseline.
    unsafe { _mm_prefetch::<{ _MM_HINT_T1 }>(p as *const i8) };
}

/// Lane masks for AVX `vmaskmov`: `MASK32[16 - n ..]` starts with `n` enabled
/// 32-bit lanes (`n ≤ 16`), then disabled ones.
static MASK32: [i32; 32] =
    [-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
/// As [`MASK32`] for 64-bit lanes (`n ≤ 8`).
static MASK64: [i64; 16] = [-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0];

/// The first `n` elements of `esz` bytes (4 or 8) at `p`, in `halves` (1 or
/// 2) 256-bit vectors, zero in the other lanes, by AVX `vmaskmov` loads with
/// masks read from a sliding window; no memory past them is read.
///
/// # Safety
/// AVX is available; `p` is valid for reading `n` elements; `esz` is 4 or 8
/// and `n < halves·32 / esz`.
#[inline(always)]
pub(crate) unsafe fn masked_load(p: *const u8, n: usize, esz: usize, halves: usize) -> [__m256; 2] {
    // SAFETY: AVX is available (caller contract); the mask windows stay
    // inside the tables (n < lanes ≤ 16 or 8); masked-off lanes are not
    // accessed (no fault).
    unsafe {
        let mut out = [_mm256_setzero_ps(); 2];
        if esz == 4 {
            for (h, o) in out.iter_mut().enumerate().take(halves) {
                let m = _mm256_loadu_si256(MASK32.as_ptr().add(16 - n + h * 8) as *const __m256i);
                *o = _mm256_maskload_ps((p as *const f32).wrapping_add(h * 8), m);
            }
        } else {
            for (h, o) in out.iter_mut().enumerate().take(halves) {
                let m = _mm256_loadu_si256(MASK64.as_ptr().add(8 - n + h * 4) as *const __m256i);
                *o = _mm256_castpd_ps(_mm256_maskload_pd((p as *const f64).wrapping_add(h * 4), m));
            }
        }
        out
    }
}

/// Stores the first `units` 4-byte units of `halves` at `p` and writes no
/// memory beyond them: at most a 256-bit, a 128-bit, a 64-bit and a 32-bit
/// store chosen by the bits of the count, not `vmaskmov` (AMD cores microcode
/// masked stores; see BENCHMARKS.md, "Design measurements").
///
/// # Safety
/// AVX is available; `p` is valid for writing `units` 4-byte units;
/// `units < 16`.
#[inline(always)]
pub(crate) unsafe fn store_units(p: *mut u8, mut units: usize, halves: [__m256; 2]) {
    // SAFETY: AVX is available (caller contract); the stores cover exactly
    // the first `units·4` bytes at `p`: whole 128-bit quarters first, then
    // the remaining 8- and 4-byte pieces.
    unsafe {
        let mut q = p as *mut f32;
        let mut h = halves[0];
        if units >= 8 {
            _mm256_storeu_ps(q, h);
            q = q.add(8);
            units -= 8;
            h = halves[1];
        }
        let mut x = _mm256_castps256_ps128(h);
        if units & 4 != 0 {
            _mm_storeu_ps(q, x);
            x = _mm256_extractf128_ps::<1>(h);
            q = q.add(4);
        }
        if units & 2 != 0 {
            _mm_storel_epi64(q as *mut __m128i, _mm_castps_si128(x));
            x = _mm_movehl_ps(x, x);
            q = q.add(2);
        }
        if units & 1 != 0 {
            _mm_store_ss(q, x);
        }
    }
}

/// Whether any 32-bit lane of `v` (one or two 256-bit vectors) has its sign
/// bit set: one `vmovmskps` and a test.
///
/// # Safety
/// AVX is available.
#[inline(always)]
pub(crate) unsafe fn any_sign(v: &[__m256]) -> bool {
    // SAFETY: AVX is available (caller contract).
    unsafe {
        match *v {
            [a] => _mm256_movemask_ps(a) != 0,
            [a, b] => _mm256_movemask_ps(_mm256_or_ps(a, b)) != 0,
            _ => v.iter().any(|&a| _mm256_movemask_ps(a) != 0),
        }
    }
}

/// `x`'s sign bit over `mag`'s other bits, in one `vpternlogd` (bit select).
///
/// # Safety
/// AVX-512F is available (pulp's V4 token proves it).
#[inline(always)]
pub(crate) unsafe fn copy_sign_avx512(mag: __m512, x: __m512) -> __m512 {
    // SAFETY: AVX-512F is available (caller contract).
    unsafe {
        let sign = _mm512_set1_epi32(i32::MIN);
        // 0xCA: a ? b : c, bit by bit, with a = the sign mask.
        _mm512_castsi512_ps(_mm512_ternarylogic_epi32::<0xCA>(sign, _mm512_castps_si512(x), _mm512_castps_si512(mag)))
    }
}

/// `num / den` from the 14-bit estimate `r = vrcp14ps(den)` and one
/// residual step: `q = num·r`, then `q + r·(num − q·den)` (the residual by
/// one FMA). The step squares the estimate's relative error (≤ 2⁻¹⁴), so the
/// quotient is within 0.5 ULP + 2⁻²⁷ relative of the exact one, against
/// IEEE division's 0.5 ULP; for `den` and `1/den` normal and finite (NaN
/// propagates). `vrcp14ps`'s results are fixed by Intel's specification.
///
/// # Safety
/// AVX-512F is available (pulp's V4 token proves it).
#[inline(always)]
pub(crate) unsafe fn div_rcp14_avx512(num: __m512, den: __m512) -> __m512 {
    // SAFETY: AVX-512F is available (caller contract).
    unsafe {
        let r = _mm512_rcp14_ps(den);
        let q = _mm512_mul_ps(num, r);
        _mm512_fmadd_ps(_mm512_fnmadd_ps(q, den, num), r, q)
    }
}

/// `num / (√v + eps)` from the 14-bit hardware estimates (`vrsqrt14ps`,
/// `vrcp14ps`), each refined by one Newton step, but in the lanes where `v`
/// is outside `{±0} ∪ [f32::MIN_POSITIVE, ∞)`: those take IEEE `vsqrtps`,
/// `vaddps` and `vdivps` (only when there are any). Each lane's result
/// depends on that lane alone. See `simd::div_sqrt_plus` for the contract.
///
/// # Safety
/// AVX-512F and AVX-512DQ are available (pulp's V4 token proves both).
#[inline(always)]
pub(crate) unsafe fn div_sqrt_plus_avx512(num: __m512, vv: __m512, eps: f32) -> __m512 {
    // SAFETY: AVX-512F and DQ are available (caller contract).
    unsafe {
        // r ≈ 1/√v (relative error ≤ 2⁻¹⁴), from v raised to the smallest
        // normal, so that v = ±0 gives a finite r and y = v·r = ±0 below.
        let r = _mm512_rsqrt14_ps(_mm512_max_ps(vv, _mm512_set1_ps(f32::MIN_POSITIVE)));
        // 2√v ≈ y·(3 − y·r) with y = v·r (one Newton step); √0 = 0 exactly.
        let y = _mm512_mul_ps(vv, r);
        let root2 = _mm512_mul_ps(y, _mm512_fnmadd_ps(y, r, _mm512_set1_ps(3.0)));
        // d = √v + eps: halving is exact, so this rounds √v's estimate plus
        // eps once, as an add of the halved root would.
        let d = _mm512_fmadd_ps(root2, _mm512_set1_ps(0.5), _mm512_set1_ps(eps));
        // 1/d = q + q·(1 − d·q) with q ≈ 1/d (relative error ≤ 2⁻¹⁴).
        let q = _mm512_rcp14_ps(d);
        let q = _mm512_fmadd_ps(q, _mm512_fnmadd_ps(d, q, _mm512_set1_ps(1.0)), q);
        let fast = _mm512_mul_ps(num, q);
        // One classification for every lane the estimates cannot take: QNaN
        // (0x01), +∞ (0x08), −∞ (0x10), subnormal (0x20), negative finite
        // (0x40), SNaN (0x80). ±0 (0x02, 0x04) and positive normals pass.
        let special = _mm512_fpclass_ps_mask::<0xF9>(vv);
        if special == 0 {
            return fast;
        }
        let ieee_d = _mm512_add_ps(_mm512_sqrt_ps(vv), _mm512_set1_ps(eps));
        _mm512_mask_div_ps(fast, special, num, ieee_d)
    }
}

/// The nonzeros (column index, value) of the first `row.len() / 16 · 16`
/// values of `row`, written to the front of `idx` and `val`; returns their
/// count. 16 values are compared at once and their nonzeros left-packed by
/// `vcompressps` / `vpcompressd` in registers, stored as whole vectors (the
/// slack past the count is overwritten by later groups or ignored), with no
/// branch on the data (MNIST's rows mix zero and nonzero groups at random:
/// a branch per group mispredicted often).
///
/// # Safety
/// The CPU has AVX-512F; `idx` and `val` are at least `row.len()` long.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn scan_row_avx512(row: &[f32], idx: &mut [u32], val: &mut [f32]) -> usize {
    let full = row.len() / 16 * 16;
    assert!(idx.len() >= row.len() && val.len() >= row.len());
    let mut n = 0usize;
    let zero = _mm512_setzero_ps();
    let iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    let mut c = 0;
    while c < full {
        // SAFETY: c + 16 ≤ row.len().
        let v = unsafe { _mm512_loadu_ps(row.as_ptr().add(c)) };
        // Unordered-or-not-equal: NaN counts as nonzero, ±0 does not.
        let m = _mm512_cmp_ps_mask::<_CMP_NEQ_UQ>(v, zero);
        let packed = _mm512_maskz_compress_ps(m, v);
        let cols = _mm512_maskz_compress_epi32(m, _mm512_add_epi32(iota, _mm512_set1_epi32(c as i32)));
        // SAFETY: n ≤ c, so n + 16 ≤ c + 16 ≤ row.len() ≤ the slices' length.
        unsafe {
            _mm512_storeu_ps(val.as_mut_ptr().add(n), packed);
            _mm512_storeu_si512(idx.as_mut_ptr().add(n) as *mut __m512i, cols);
        }
        n += m.count_ones() as usize;
        c += 16;
    }
    n
}

/// The 16 × 16 transpose of `r` (lane `j` of `out[i]` is lane `i` of
/// `r[j]`) in four rounds of 16 shuffles: 32-bit and 64-bit interleaves
/// within 128-bit blocks, then two rounds of block shuffles.
///
/// # Safety
/// AVX-512F is available.
#[inline(always)]
unsafe fn transpose16(r: &[__m512; 16]) -> [__m512; 16] {
    // SAFETY: AVX-512F is available (caller contract). No closures here: a
    // closure is a function of its own, without the caller's target
    // features, so its intrinsics would be calls.
    unsafe {
        // Round 1: t[2k], t[2k+1] interleave r[2k] and r[2k+1] by 32 bits.
        let mut t = [_mm512_setzero_ps(); 16];
        for k in 0..8 {
            t[2 * k] = _mm512_unpacklo_ps(r[2 * k], r[2 * k + 1]);
            t[2 * k + 1] = _mm512_unpackhi_ps(r[2 * k], r[2 * k + 1]);
        }
        // Round 2: u[4k+c] holds, in each 128-bit block q, lane 4q+c of
        // r[4k..4k+4].
        let mut u = [_mm512_setzero_ps(); 16];
        for k in 0..4 {
            let (a, b) = (_mm512_castps_pd(t[4 * k]), _mm512_castps_pd(t[4 * k + 1]));
            let (c, d) = (_mm512_castps_pd(t[4 * k + 2]), _mm512_castps_pd(t[4 * k + 3]));
            u[4 * k] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
            u[4 * k + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
            u[4 * k + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
            u[4 * k + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
        }
        // Rounds 3 and 4: the 4 × 4 transpose of 128-bit blocks across
        // u[c], u[4+c], u[8+c], u[12+c] gives out[c], [4+c], [8+c], [12+c].
        let mut out = [_mm512_setzero_ps(); 16];
        for c in 0..4 {
            let v0 = _mm512_shuffle_f32x4::<0x44>(u[c], u[4 + c]);
            let v1 = _mm512_shuffle_f32x4::<0xEE>(u[c], u[4 + c]);
            let v2 = _mm512_shuffle_f32x4::<0x44>(u[8 + c], u[12 + c]);
            let v3 = _mm512_shuffle_f32x4::<0xEE>(u[8 + c], u[12 + c]);
            out[c] = _mm512_shuffle_f32x4::<0x88>(v0, v2);
            out[4 + c] = _mm512_shuffle_f32x4::<0xDD>(v0, v2);
            out[8 + c] = _mm512_shuffle_f32x4::<0x88>(v1, v3);
            out[12 + c] = _mm512_shuffle_f32x4::<0xDD>(v1, v3);
        }
        out
    }
}

/// Writes a tile given as `n ≤ 16` column vectors (lane `r` of `cols[j]`:
/// element `(r, j)`) to row-major memory: row `r < rows` as `n` consecutive
/// values at `dst + r·rs`, by [`transpose16`] and plain stores of 16, or of
/// 8, 4, 2 and 1 values ([`store_units`]; AVX-512's masked stores are slow
/// on Zen 4), instead of `rows·n` scalar stores from a spilled tile (whose
/// reloads wait for the spill's wide stores). Columns `n..16` of `cols` are
/// don't-care.
///
/// # Safety
/// AVX-512F is available; `n ≤ 16`, `rows ≤ 16`; the `n` values of each
/// row `r < rows` at `dst + r·rs` are writable.
#[inline(always)]
pub(crate) unsafe fn store_cols_as_rows_avx512(cols: &[__m512; 16], n: usize, rows: usize, dst: *mut f32, rs: isize) {
    debug_assert!(n <= 16 && rows <= 16);
    // SAFETY: AVX-512F is available (caller contract); the stores write the
    // first `n` values of rows `r < rows` only.
    unsafe {
        let out = transpose16(cols);
        // Loops of a constant count (unrolled: the tile stays in registers).
        for (i, &row) in out.iter().enumerate() {
            if i >= rows {
                break;
            }
            let p = dst.wrapping_offset(i as isize * rs);
            if n == 16 {
                _mm512_storeu_ps(p, row);
            } else {
                let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(row)));
                store_units(p as *mut u8, n, [_mm512_castps512_ps256(row), hi]);
            }
        }
    }
}

/// The transpose of [`store_cols_as_rows_avx512`]: reads `rows ≤ height`
/// rows of `n ≤ 16` values (row `r` at `src + r·rs`, by masked loads, which
/// read nothing past the `n` values, or plain ones for a whole 16 × 16
/// tile) and writes column `j < n` as `height ≤ 16` values at `dst +
/// j·dst_cs` (a masked store below 16), zero in the lanes of rows
/// `rows..height` (16 columns of a GEMM panel of `height` rows packed from
/// a row-major operand: 16 rows of an A panel, or the 12 columns of a B
/// panel whose columns are contiguous).
///
/// # Safety
/// AVX-512F is available; `rows ≤ height ≤ 16`, `n ≤ 16`; the `n` values of
/// each row `r < rows` at `src + r·rs` are readable; `height` values at each
/// `dst + j·dst_cs` (`j < n`) are writable.
#[inline(always)]
pub(crate) unsafe fn load_rows_as_cols_avx512(
    src: *const f32,
    rs: isize,
    rows: usize,
    n: usize,
    dst: *mut f32,
    dst_cs: usize,
    height: usize,
) {
    debug_assert!(n <= 16 && rows <= height && height <= 16);
    // SAFETY: AVX-512F is available (caller contract); the masked loads read
    // the first `n` values of rows `r < rows` only; the stores write
    // `height` values at `dst + j·dst_cs` for `j < n`.
    unsafe {
        if rows == 16 && n == 16 {
            // A whole tile: plain loads and stores, every loop of a constant
            // count, so the tile never leaves the registers.
            let mut r = [_mm512_setzero_ps(); 16];
            for (i, v) in r.iter_mut().enumerate() {
                *v = _mm512_loadu_ps(src.wrapping_offset(i as isize * rs));
            }
            let out = transpose16(&r);
            for (j, &col) in out.iter().enumerate() {
                _mm512_storeu_ps(dst.add(j * dst_cs), col);
            }
            return;
        }
        let mask: __mmask16 = if n >= 16 { !0 } else { (1u16 << n) - 1 };
        // Loops of a constant count (unrolled: the tile stays in registers);
        // a row past `rows` loads with an empty mask, reading nothing.
        let mut r = [_mm512_setzero_ps(); 16];
        for (i, v) in r.iter_mut().enumerate() {
            let m = if i < rows { mask } else { 0 };
            *v = _mm512_maskz_loadu_ps(m, src.wrapping_offset(i as isize * rs));
        }
        let out = transpose16(&r);
        let keep: __mmask16 = if height >= 16 { !0 } else { (1u16 << height) - 1 };
        for (j, &col) in out.iter().enumerate() {
            if j >= n {
                break;
            }
            _mm512_mask_storeu_ps(dst.add(j * dst_cs), keep, col);
        }
    }
}

/// For each 8-bit mask, the lane numbers of its set bits first (a left-pack
/// permutation for `vpermps`).
static PACK_LUT: [[u32; 8]; 256] = {
    let mut t = [[0u32; 8]; 256];
    let mut m = 0;
    while m < 256 {
        let (mut k, mut b) = (0, 0);
        while b < 8 {
            if m & (1 << b) != 0 {
                t[m][k] = b as u32;
                k += 1;
            }
            b += 1;
        }
        m += 1;
    }
    t
};

/// The nonzeros (column index, value) of the first `row.len() / 8 · 8`
/// values of `row`, written to the front of `idx` and `val`; returns their
/// count. 8 values are compared at once and their nonzeros left-packed by a
/// permutation from [`PACK_LUT`], stored as whole vectors (the slack past
/// the count is overwritten by later groups or ignored).
///
/// # Safety
/// The CPU has AVX2; `idx` and `val` are at least `row.len()` long.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn scan_row_avx2(row: &[f32], idx: &mut [u32], val: &mut [f32]) -> usize {
    let full = row.len() / 8 * 8;
    assert!(idx.len() >= row.len() && val.len() >= row.len());
    let mut n = 0usize;
    let zero = _mm256_setzero_ps();
    let mut c = 0;
    while c < full {
        // SAFETY: c + 8 ≤ row.len().
        let v = unsafe { _mm256_loadu_ps(row.as_ptr().add(c)) };
        // Unordered-or-not-equal: NaN counts as nonzero, ±0 does not.
        let m = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_NEQ_UQ>(v, zero)) as usize;
        if m != 0 {
            // SAFETY: the table row holds 8 u32.
            let perm = unsafe { _mm256_loadu_si256(PACK_LUT[m].as_ptr() as *const __m256i) };
            let packed = _mm256_permutevar8x32_ps(v, perm);
            let cols = _mm256_add_epi32(perm, _mm256_set1_epi32(c as i32));
            // SAFETY: n ≤ c, so n + 8 ≤ c + 8 ≤ row.len() ≤ the slices' length.
            unsafe {
                _mm256_storeu_ps(val.as_mut_ptr().add(n), packed);
                _mm256_storeu_si256(idx.as_mut_ptr().add(n) as *mut __m256i, cols);
            }
            n += m.count_ones() as usize;
        }
        c += 8;
    }
    n
}
