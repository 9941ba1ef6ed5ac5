//! SIMD foundation: instruction-set detection and the element abstraction every
//! kernel is written over.
//!
//! Kernels are written once, generic over the token type (`S: Token`, pulp's
//! `Simd` plus what the token proves, from the ISA table in `isa.rs`), and
//! entered through `Isa::run`, which enters a `#[target_feature]` region for
//! the chosen instruction set. The best available set is detected once and cached
//! ([`Isa::detect`]); tests and benches may force a lower one with
//! [`set_forced_isa`] so that every ISA on the machine is exercised.
//!
//! Everything reachable from a `with_token` body must be `#[inline(always)]`,
//! otherwise it leaves the target-feature region and runs as scalar code.

mod aligned;
pub mod fp;
mod isa;
pub mod math;
pub mod reduce;
#[cfg(target_arch = "x86_64")]
pub(crate) mod x86;

pub use aligned::AlignedVec;

pub use isa::{Isa, isa_name, set_forced_isa};
pub(crate) use isa::{IsaToken, IsaVisitor, TileShape, TileVisitor, Token, WithToken, vectorize};

/// Hints the CPU to bring the cache line holding `p` into L2, not L1 (no-op
/// where the architecture has no prefetch hint): for data needed after the
/// current work, which L1 should keep. Never faults, whatever the address.
#[inline(always)]
pub fn prefetch_l2<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    x86::prefetch_l2(p);
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Hints the CPU to bring the cache line holding `p` into L1 (no-op where the
/// architecture has no prefetch hint). Never faults, whatever the address.
#[inline(always)]
pub fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    x86::prefetch(p);
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Loads the first `n` (`< lanes`) elements of a vector of `V` (`size_of::<V>()`
/// bytes of `E`, 4 or 8 bytes each), zero in the other lanes, and reads no
/// memory beyond them. `None` where no native masked load applies (the
/// caller then falls back to pulp's partial load).
///
/// On x86-64 with 256- and 512-bit vectors this is one or two AVX `vmaskmov`
/// loads with a mask read from a sliding window. pulp's `partial_load_*`
/// jumps through a table of code snippets in inline assembly that pins `rax`,
/// `rcx`, `ymm0` and `ymm1`: in a GEMM write-out with 12 live accumulators
/// that cost register shuffles and an indirect jump per edge vector.
///
/// # Safety
/// `p` valid for reading `n < lanes` elements of `E`; the caller holds a token
/// of type `S` (it exists, so its CPU features were detected).
#[inline(always)]
unsafe fn masked_load_native<S: Token, V: Copy, E>(p: *const E, n: usize) -> Option<V> {
    #[cfg(target_arch = "x86_64")]
    {
        let bytes = core::mem::size_of::<V>();
        let esz = core::mem::size_of::<E>();
        if S::AVX2 && (bytes == 32 || bytes == 64) && (esz == 4 || esz == 8) {
            debug_assert!(n < bytes / esz);
            // SAFETY: `S`'s `Token` impl says its token exists only once AVX2
            // was detected, so AVX is available; `n` elements
            // are readable (caller contract) and `n < lanes`; the result is
            // reassembled from whole 256-bit halves of the vector's size, and
            // any bit pattern is a valid vector.
            unsafe {
                let out = x86::masked_load(p as *const u8, n, esz, bytes / 32);
                return Some(core::mem::transmute_copy::<[core::arch::x86_64::__m256; 2], V>(&out));
            }
        }
    }
    let _ = (p, n);
    None
}

/// Loads the first `n` elements of a 512-bit vector `V` of `E` (4 or 8
/// bytes each), zero in the other lanes, with one AVX-512 zero-masking load
/// that reads no memory beyond them (`n ≥` the lanes loads them all); `None`
/// unless `S` proves AVX-512F and `V` is 64 bytes. pulp's masked loads
/// (`MemMask` from `mask_between_*`) jump through a table of code snippets
/// in inline assembly instead (see [`masked_load_native`]).
///
/// # Safety
/// `p` valid for reading `min(n, lanes)` elements of `E`; the caller holds a
/// token of type `S`.
#[inline(always)]
pub(crate) unsafe fn load_first_avx512<S: Token, V: Copy, E>(p: *const E, n: usize) -> Option<V> {
    #[cfg(target_arch = "x86_64")]
    if S::AVX512F && core::mem::size_of::<V>() == 64 {
        use core::arch::x86_64::*;
        // SAFETY: `S`'s token exists only once AVX-512F was detected; the
        // mask enables the first `min(n, lanes)` lanes, which the caller
        // guarantees readable (masked-off lanes are not accessed); `V` is 64
        // bytes, the size of the result, and any bit pattern is valid.
        unsafe {
            match core::mem::size_of::<E>() {
                4 => {
                    let m: __mmask16 = if n >= 16 { !0 } else { (1u16 << n) - 1 };
                    return Some(core::mem::transmute_copy(&_mm512_maskz_loadu_ps(m, p as *const f32)));
                }
                8 => {
                    let m: __mmask8 = if n >= 8 { !0 } else { (1u8 << n) - 1 };
                    return Some(core::mem::transmute_copy(&_mm512_maskz_loadu_pd(m, p as *const f64)));
                }
                _ => {}
            }
        }
    }
    let _ = (p, n);
    None
}

/// Stores the first `n` (`< lanes`) lanes of `v` and writes no memory beyond
/// them; `false` where no native path applies. See [`masked_load_native`].
///
/// On x86-64 these are plain stores, not `vmaskmov`, which AMD cores
/// microcode (see BENCHMARKS.md, "Design measurements").
///
/// # Safety
/// `p` valid for writing `n < lanes` elements of `E`; `S` as for
/// [`masked_load_native`].
#[inline(always)]
unsafe fn masked_store_native<S: Token, V: Copy, E>(p: *mut E, n: usize, v: V) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        let bytes = core::mem::size_of::<V>();
        let esz = core::mem::size_of::<E>();
        if S::AVX2 && (bytes == 32 || bytes == 64) && (esz == 4 || esz == 8) {
            debug_assert!(n < bytes / esz);
            // SAFETY: as in `masked_load_native` (AVX available); `v` is copied
            // into 256-bit halves; `n·esz/4 < 16` 4-byte units are writable at
            // `p` (an f64 is two units).
            unsafe {
                let mut halves: [core::arch::x86_64::__m256; 2] = core::mem::zeroed();
                core::ptr::copy_nonoverlapping(&v as *const V as *const u8, halves.as_mut_ptr() as *mut u8, bytes);
                x86::store_units(p as *mut u8, n * esz / 4, halves);
            }
            return true;
        }
    }
    let _ = (p, n, v);
    false
}

/// Loads `x` (at most one vector of f32s; a shorter slice is zero-padded) with
/// a native masked load where there is one (see [`Real::load_partial`]).
#[inline(always)]
pub(crate) fn load_tail<S: Token>(s: S, x: &[f32]) -> S::f32s {
    if x.len() >= S::F32_LANES {
        // SAFETY: a full vector of `x` is readable; any bit pattern is valid.
        return unsafe { core::ptr::read_unaligned(x.as_ptr() as *const S::f32s) };
    }
    // SAFETY: `x.len()` elements are readable.
    unsafe { f32::load_partial(s, x.as_ptr(), x.len()) }
}

/// Stores the first `min(y.len(), lanes)` lanes of `v` into `y`, writing no
/// other memory (the counterpart of [`load_tail`]).
#[inline(always)]
pub(crate) fn store_tail<S: Token>(s: S, y: &mut [f32], v: S::f32s) {
    if y.len() >= S::F32_LANES {
        // SAFETY: a full vector of `y` is writable.
        unsafe { core::ptr::write_unaligned(y.as_mut_ptr() as *mut S::f32s, v) };
        return;
    }
    // SAFETY: `y.len()` elements are writable.
    unsafe { f32::store_partial(s, y.as_mut_ptr(), y.len(), v) }
}

/// The range of `eps` in which [`div_sqrt_plus`] takes its AVX-512 estimate
/// path: `d = √v + eps` (with `√v` below 2⁶⁴) then stays between 1e-30 and
/// 1e30, so `1/d` neither overflows nor goes subnormal.
pub(crate) const DIV_SQRT_FAST_EPS: f32 = 1e-30;
/// See [`DIV_SQRT_FAST_EPS`].
pub(crate) const DIV_SQRT_FAST_EPS_MAX: f32 = 1e30;

/// Whether [`div_sqrt_plus`]'s estimate path pays on this CPU, decided once
/// per process from the CPU's vendor (so one machine always gives the same
/// bits). On Intel's AVX-512 cores IEEE `vsqrtps` and `vdivps` on 512-bit
/// vectors share one slow divider (about 22 cycles per vector together):
/// Adam took 0.466 ns per parameter with them, 0.357 with the estimates, on
/// a Xeon. AMD's Zen 4 divides faster than it runs the estimates' extra
/// operations (0.32 ns against 0.35, Adam alone): not on AMD (or Hygon).
/// The same choice sets tanh's and sigmoid's quotient (`math::div_normal`).
/// Inlined (one relaxed load and a compare), so that kernels which ask once
/// per vector keep their constants in registers; the first call's CPUID is
/// out of line.
#[inline]
pub(crate) fn div_sqrt_estimates_pay() -> bool {
    match ESTIMATES_PAY.load(core::sync::atomic::Ordering::Relaxed) {
        1 => false,
        2 => true,
        _ => decide_estimates_pay(),
    }
}

/// [`div_sqrt_estimates_pay`]'s answer: 0 until decided, then 1 (no) or 2 (yes).
static ESTIMATES_PAY: core::sync::atomic::AtomicU8 = core::sync::atomic::AtomicU8::new(0);

/// Decides [`div_sqrt_estimates_pay`] once (every thread decides the same).
#[cold]
#[inline(never)]
fn decide_estimates_pay() -> bool {
    let pay = !cpu_is_amd();
    ESTIMATES_PAY.store(if pay { 2 } else { 1 }, core::sync::atomic::Ordering::Relaxed);
    pay
}

/// Whether the CPU's vendor string is AMD's (or Hygon's, a Zen licensee).
fn cpu_is_amd() -> bool {
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    {
        // SAFETY: CPUID leaf 0 exists on every x86-64 CPU.
        #[allow(unused_unsafe)]
        let r = unsafe { core::arch::x86_64::__cpuid(0) };
        let mut v = [0u8; 12];
        v[..4].copy_from_slice(&r.ebx.to_le_bytes());
        v[4..8].copy_from_slice(&r.edx.to_le_bytes());
        v[8..].copy_from_slice(&r.ecx.to_le_bytes());
        &v == b"AuthenticAMD" || &v == b"HygonGenuine"
    }
    #[cfg(not(all(target_arch = "x86_64", not(miri))))]
    false
}

/// The `fast` argument of [`div_sqrt_plus`] for this `eps`: its estimate
/// path where the CPU gains from it ([`div_sqrt_estimates_pay`]) and `eps`
/// is within `DIV_SQRT_FAST_EPS..=DIV_SQRT_FAST_EPS_MAX`. Decided once per
/// step, outside the per-vector loop.
pub(crate) fn div_sqrt_fast(eps: f32) -> bool {
    (DIV_SQRT_FAST_EPS..=DIV_SQRT_FAST_EPS_MAX).contains(&eps) && div_sqrt_estimates_pay()
}

/// `num / (√v + eps)` per lane: Adam's and RMSprop's step.
///
/// With `fast` (see [`div_sqrt_fast`]; the caller keeps `eps` within
/// `DIV_SQRT_FAST_EPS..=DIV_SQRT_FAST_EPS_MAX` then) and a token that proves
/// AVX-512F and DQ (pulp's V4), the square root and the division come from
/// the 14-bit hardware estimates (`vrsqrt14ps`, `vrcp14ps`), each refined by
/// one Newton step on the FMA units; one `vfpclassps` sorts out the lanes
/// the estimates cannot take. The result is within 8 ulp of `num / (√v +
/// eps)` computed with IEEE operations (at most 4 ulp seen in
/// `tests::div_sqrt_plus_estimates_stay_within_8_ulp`); `√0` is exact. The
/// lanes where `v` is outside `{±0} ∪ [f32::MIN_POSITIVE, ∞)` (subnormal,
/// negative, infinite, NaN) take the IEEE path, so every special value
/// behaves as IEEE prescribes; a lane's bits never depend on the other
/// lanes of its vector (so not on where a caller's vectors start: the
/// optimizer's flat ranges, or the rows of the first layer's fused step).
/// Otherwise, and with every other token, IEEE `sqrt` and division.
#[inline(always)]
pub(crate) fn div_sqrt_plus<S: Token>(s: S, num: S::f32s, v: S::f32s, eps: f32, fast: bool) -> S::f32s {
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::__m512;
        if fast && S::AVX512F && core::mem::size_of::<S::f32s>() == 64 {
            debug_assert!((DIV_SQRT_FAST_EPS..=DIV_SQRT_FAST_EPS_MAX).contains(&eps));
            // SAFETY: `S`'s `Token` impl says its token exists only once
            // AVX-512F and DQ were detected; its f32 vector is 64 bytes, the layout of
            // `__m512` (checked above), and any bit pattern is valid for both.
            unsafe {
                let (nv, vv): (__m512, __m512) = (core::mem::transmute_copy(&num), core::mem::transmute_copy(&v));
                return core::mem::transmute_copy(&x86::div_sqrt_plus_avx512(nv, vv, eps));
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = fast;
    s.div_f32s(num, s.add_f32s(s.sqrt_f32s(v), s.splat_f32s(eps)))
}

/// Writes the first `rows` rows of a tile of `cols.len() ≤ 16` column
/// vectors (lane `r` of `cols[j]`: element `(r, j)`) to row-major memory,
/// row `r` at `dst + r·rs`, by a transpose in registers and plain stores
/// of each row's values; `false`, writing nothing, where no native path applies
/// (f32 on AVX-512 only; the caller then writes element by element).
///
/// # Safety
/// `rows ≤` the vector's lanes; the `cols.len()` values of each row `r <
/// rows` at `dst + r·rs` are writable; the caller holds a token of type `S`.
#[inline(always)]
pub(crate) unsafe fn store_cols_as_rows<S: Token, V: Copy, E>(cols: &[V], rows: usize, dst: *mut E, rs: isize) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::__m512;
        if S::AVX512F && core::mem::size_of::<V>() == 64 && core::mem::size_of::<E>() == 4 && cols.len() <= 16 {
            debug_assert!(rows <= 16);
            let mut v = [[0u8; 64]; 16];
            for (d, c) in v.iter_mut().zip(cols) {
                // SAFETY: `V` is 64 bytes (checked above), any bit pattern of
                // which is valid for a byte array.
                *d = unsafe { core::mem::transmute_copy(c) };
            }
            // SAFETY: `S`'s token exists only once AVX-512F was detected; a
            // 64-byte array is a valid `__m512` bit pattern; `E` is a 4-byte
            // element (f32: the only 4-byte `Real`); the rest is the caller's
            // contract.
            unsafe {
                let v: [__m512; 16] = core::mem::transmute(v);
                x86::store_cols_as_rows_avx512(&v, cols.len(), rows, dst as *mut f32, rs);
            }
            return true;
        }
    }
    let _ = (cols, rows, dst, rs);
    false
}

/// Packs `rows ≤ height` rows of `n ≤ 16` values (row `r` at `src + r·rs`)
/// as `n` columns of `height ≤ 16` values, column `j` at `dst + j·dst_cs`,
/// zero below row `rows`: masked loads (plain ones for a whole 16 × 16
/// tile), a transpose in registers and one store per column (masked below
/// 16 values). `false`, writing nothing, where no native path applies (f32
/// on AVX-512 only).
///
/// # Safety
/// The `n` values of each row `r < rows` at `src + r·rs` are readable;
/// `height` values at each `dst + j·dst_cs` (`j < n`) are writable; the
/// caller holds a token of type `S`.
#[inline(always)]
pub(crate) unsafe fn load_rows_as_cols<S: Token, E>(
    src: *const E,
    rs: isize,
    rows: usize,
    n: usize,
    dst: *mut E,
    dst_cs: usize,
    height: usize,
) -> bool {
    #[cfg(target_arch = "x86_64")]
    if S::AVX512F && core::mem::size_of::<E>() == 4 && n <= 16 && rows <= height && height <= 16 {
        // SAFETY: `S`'s token exists only once AVX-512F was detected; `E` is
        // a 4-byte element (f32: the only 4-byte `Real`); the rest is the
        // caller's contract.
        unsafe { x86::load_rows_as_cols_avx512(src as *const f32, rs, rows, n, dst as *mut f32, dst_cs, height) };
        return true;
    }
    let _ = (src, rs, rows, n, dst, dst_cs, height);
    false
}

/// A floating-point element type with the vector operations the kernels need.
///
/// Implemented for `f32` and `f64`; the methods are thin `#[inline(always)]`
/// wrappers over pulp's `Simd` methods so one kernel source serves both types.
pub trait Real:
    Copy
    + Send
    + Sync
    + 'static
    + PartialEq
    + PartialOrd
    + Default
    + std::fmt::Debug
    + std::ops::Add<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Sub<Output = Self>
{
    /// The vector type of this element for ISA token `S`.
    type V<S: Token>: Copy;
    /// 0
    const ZERO: Self;
    /// 1
    const ONE: Self;
    /// Machine epsilon.
    const EPSILON: Self;
    /// `"f32"` or `"f64"`.
    const NAME: &'static str;

    /// Lanes per vector for `S`.
    fn lanes<S: Token>() -> usize;
    /// Widens to f64.
    fn to_f64(self) -> f64;
    /// Narrows from f64 (rounding).
    fn from_f64(x: f64) -> Self;
    /// Whether the value is finite.
    fn is_finite(self) -> bool;
    /// Broadcast.
    fn splat<S: Token>(s: S, x: Self) -> Self::V<S>;
    /// `a * b + c` (fused where the ISA has FMA).
    fn vmul_add<S: Token>(s: S, a: Self::V<S>, b: Self::V<S>, c: Self::V<S>) -> Self::V<S>;
    /// `a * b`.
    fn vmul<S: Token>(s: S, a: Self::V<S>, b: Self::V<S>) -> Self::V<S>;
    /// `a + b`.
    fn vadd<S: Token>(s: S, a: Self::V<S>, b: Self::V<S>) -> Self::V<S>;
    /// Unaligned vector load.
    ///
    /// # Safety
    /// `p` must be valid for reading `lanes::<S>()` elements.
    unsafe fn load<S: Token>(s: S, p: *const Self) -> Self::V<S>;
    /// Unaligned vector store.
    ///
    /// # Safety
    /// `p` must be valid for writing `lanes::<S>()` elements.
    unsafe fn store<S: Token>(s: S, p: *mut Self, v: Self::V<S>);
    /// Loads the first `n < lanes` elements, zero elsewhere.
    ///
    /// # Safety
    /// `n < lanes`, and `p` must be valid for reading `n` elements.
    unsafe fn load_partial<S: Token>(s: S, p: *const Self, n: usize) -> Self::V<S>;
    /// Stores the first `n < lanes` lanes.
    ///
    /// # Safety
    /// `n < lanes`, and `p` must be valid for writing `n` elements.
    unsafe fn store_partial<S: Token>(s: S, p: *mut Self, n: usize, v: Self::V<S>);
    /// Loads `n ≤ lanes` elements: a full vector when `n == lanes`, else
    /// [`Real::load_partial`].
    ///
    /// # Safety
    /// `p` must be valid for reading `n` elements.
    #[inline(always)]
    unsafe fn load_upto<S: Token>(s: S, p: *const Self, n: usize) -> Self::V<S> {
        // SAFETY: forwarded contract.
        unsafe { if n >= Self::lanes::<S>() { Self::load(s, p) } else { Self::load_partial(s, p, n) } }
    }
    /// Stores the first `n ≤ lanes` lanes: a full store when `n == lanes`,
    /// else [`Real::store_partial`].
    ///
    /// # Safety
    /// `p` must be valid for writing `n` elements.
    #[inline(always)]
    unsafe fn store_upto<S: Token>(s: S, p: *mut Self, n: usize, v: Self::V<S>) {
        // SAFETY: forwarded contract.
        unsafe { if n >= Self::lanes::<S>() { Self::store(s, p, v) } else { Self::store_partial(s, p, n, v) } }
    }
    /// A memory mask enabling the first `n` lanes (`n ≤ lanes`).
    fn mask<S: Token>(s: S, n: usize) -> pulp::MemMask<Self::M<S>>;
    /// The lane-mask type for `S`.
    type M<S: Token>: Copy;
    /// Masked load (disabled lanes read as zero and touch no memory).
    ///
    /// # Safety
    /// Enabled lanes must be readable.
    unsafe fn load_masked<S: Token>(s: S, m: pulp::MemMask<Self::M<S>>, p: *const Self) -> Self::V<S>;
}

macro_rules! impl_real {
    ($t:ty, $v:ident, $lanes:ident, $splat:ident, $fma:ident, $mul:ident, $add:ident,
     $pl:ident, $ps:ident, $eps:expr, $m:ident, $mb:ident, $ml:ident, $mt:ty) => {
        impl Real for $t {
            type V<S: Token> = S::$v;
            type M<S: Token> = S::$m;
            #[inline(always)]
            fn mask<S: Token>(s: S, n: usize) -> pulp::MemMask<S::$m> {
                s.$mb(0, n as $mt)
            }
            #[inline(always)]
            unsafe fn load_masked<S: Token>(s: S, m: pulp::MemMask<S::$m>, p: *const Self) -> S::$v {
                // SAFETY: the caller guarantees the enabled lanes are readable.
                unsafe { s.$ml(m, p) }
            }
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const EPSILON: Self = $eps;
            const NAME: &'static str = stringify!($t);
            #[inline(always)]
            fn lanes<S: Token>() -> usize {
                S::$lanes
            }
            #[inline(always)]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline(always)]
            fn from_f64(x: f64) -> Self {
                x as $t
            }
            #[inline(always)]
            fn is_finite(self) -> bool {
                <$t>::is_finite(self)
            }
            #[inline(always)]
            fn splat<S: Token>(s: S, x: Self) -> S::$v {
                s.$splat(x)
            }
            #[inline(always)]
            fn vmul_add<S: Token>(s: S, a: S::$v, b: S::$v, c: S::$v) -> S::$v {
                s.$fma(a, b, c)
            }
            #[inline(always)]
            fn vmul<S: Token>(s: S, a: S::$v, b: S::$v) -> S::$v {
                s.$mul(a, b)
            }
            #[inline(always)]
            fn vadd<S: Token>(s: S, a: S::$v, b: S::$v) -> S::$v {
                s.$add(a, b)
            }
            #[inline(always)]
            unsafe fn load<S: Token>(_s: S, p: *const Self) -> S::$v {
                // SAFETY: the caller guarantees `lanes` readable elements at `p`;
                // the vector type is Pod, so any bit pattern is valid.
                unsafe { core::ptr::read_unaligned(p as *const S::$v) }
            }
            #[inline(always)]
            unsafe fn store<S: Token>(_s: S, p: *mut Self, v: S::$v) {
                // SAFETY: the caller guarantees `lanes` writable elements at `p`.
                unsafe { core::ptr::write_unaligned(p as *mut S::$v, v) }
            }
            #[inline(always)]
            unsafe fn load_partial<S: Token>(s: S, p: *const Self, n: usize) -> S::$v {
                // SAFETY: the caller guarantees `n` readable elements at `p`;
                // `S::$v` belongs to the token `s` we hold.
                if let Some(v) = unsafe { masked_load_native::<S, S::$v, Self>(p, n) } {
                    return v;
                }
                // SAFETY: the caller guarantees `n` readable elements at `p`.
                s.$pl(unsafe { core::slice::from_raw_parts(p, n) })
            }
            #[inline(always)]
            unsafe fn store_partial<S: Token>(s: S, p: *mut Self, n: usize, v: S::$v) {
                // SAFETY: as in `load_partial`, for writing.
                if unsafe { masked_store_native::<S, S::$v, Self>(p, n, v) } {
                    return;
                }
                // SAFETY: the caller guarantees `n` writable elements at `p`.
                s.$ps(unsafe { core::slice::from_raw_parts_mut(p, n) }, v)
            }
        }
    };
}

impl_real!(
    f32,
    f32s,
    F32_LANES,
    splat_f32s,
    mul_add_e_f32s,
    mul_f32s,
    add_f32s,
    partial_load_f32s,
    partial_store_f32s,
    f32::EPSILON,
    m32s,
    mask_between_m32s,
    mask_load_ptr_f32s,
    u32
);
impl_real!(
    f64,
    f64s,
    F64_LANES,
    splat_f64s,
    mul_add_e_f64s,
    mul_f64s,
    add_f64s,
    partial_load_f64s,
    partial_store_f64s,
    f64::EPSILON,
    m64s,
    mask_between_m64s,
    mask_load_ptr_f64s,
    u64
);

/// A xorshift64 generator from `seed` (nonzero) for the unit tests' random
/// inputs: the same sequence on every machine, no dependency.
#[cfg(test)]
pub(crate) fn xorshift(mut seed: u64) -> impl FnMut() -> u64 {
    move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Native masked loads and stores for every lane count of 256- and 512-bit
    /// vectors of f32 and f64 (the 512-bit forms run on AVX2 too: they are two
    /// AVX halves): loaded lanes past `n` are zero, stores touch exactly `n`
    /// elements (guard cells on both sides stay untouched).
    fn check<V: Copy, E: Copy + PartialEq + std::fmt::Debug + From<i8>>(lanes: usize) {
        assert_eq!(core::mem::size_of::<V>(), lanes * core::mem::size_of::<E>());
        for n in 0..lanes {
            let src: Vec<E> = (0..lanes + 2).map(|i| E::from(i as i8 + 1)).collect();
            // SAFETY: `n` elements are readable at `src[1..]`; AVX was checked.
            let v = unsafe { masked_load_native::<pulp::x86::V3, V, E>(src.as_ptr().add(1), n) }.expect("native load");
            // SAFETY: V is `lanes` elements of E.
            let got: Vec<E> = unsafe { core::slice::from_raw_parts(&v as *const V as *const E, lanes) }.to_vec();
            for (i, &g) in got.iter().enumerate() {
                assert_eq!(g, if i < n { src[1 + i] } else { E::from(0) }, "load n={n} lane {i}");
            }
            let mut dst = vec![E::from(-1); lanes + 2];
            // SAFETY: `n` elements are writable at `dst[1..]`.
            assert!(unsafe { masked_store_native::<pulp::x86::V3, V, E>(dst.as_mut_ptr().add(1), n, v) });
            for (i, &d) in dst.iter().enumerate() {
                let want = if i >= 1 && i <= n { src[i] } else { E::from(-1) };
                assert_eq!(d, want, "store n={n} element {i}");
            }
        }
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn native_partial_load_store() {
        if !std::arch::is_x86_feature_detected!("avx2") {
            return;
        }
        check::<[f32; 8], f32>(8);
        check::<[f32; 16], f32>(16);
        check::<[f64; 4], f64>(4);
        check::<[f64; 8], f64>(8);
    }

    /// [`store_cols_as_rows`] on AVX-512 (where the CPU has it): every
    /// column count 0 to 16 and row count 0 to 16, rows packed (`rs = n`) and
    /// apart (`rs = n + 3`), against the element-by-element transpose; no
    /// other element changes (guard cells before, between and after the
    /// rows). Other tokens must decline.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn columns_store_as_rows() {
        if pulp::x86::V3::try_new().is_some() {
            let cols = [[1.0f32; 8]; 2];
            // SAFETY: a declining path writes nothing.
            assert!(!unsafe { store_cols_as_rows::<pulp::x86::V3, [f32; 8], f32>(&cols, 8, core::ptr::null_mut(), 2) });
        }
        let Some(_v4) = pulp::x86::V4::try_new() else {
            println!("skipped the AVX-512 transposing store: this CPU lacks AVX-512");
            return;
        };
        for n in 0..=16usize {
            for rows in 0..=16usize {
                for rs in [n, n + 3] {
                    let cols: Vec<[f32; 16]> =
                        (0..n).map(|j| core::array::from_fn(|r| (100 * j + r) as f32 + 0.5)).collect();
                    let (guard, len) = (5, rows.max(1) * rs.max(1) + 16);
                    let mut dst = vec![-1.0f32; len + 2 * guard];
                    // SAFETY: the V4 token exists; row r's n values at
                    // guard + r·rs lie inside `dst`.
                    let done = unsafe {
                        store_cols_as_rows::<pulp::x86::V4, [f32; 16], f32>(
                            &cols,
                            rows,
                            dst.as_mut_ptr().add(guard),
                            rs as isize,
                        )
                    };
                    assert!(done);
                    let mut want = vec![-1.0f32; dst.len()];
                    for r in 0..rows {
                        for (j, c) in cols.iter().enumerate() {
                            want[guard + r * rs + j] = c[r];
                        }
                    }
                    assert_eq!(dst, want, "n={n} rows={rows} rs={rs}");
                }
            }
        }
    }

    /// [`load_rows_as_cols`] on AVX-512 (where the CPU has it): columns of
    /// 16, 12 and 1 values, every row count up to that height and column
    /// count 0 to 16, rows packed and apart, against the element-by-element
    /// transpose: lanes of rows past `rows` are zero, columns past `n` and
    /// slots past the height untouched. Other tokens must decline.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn rows_load_as_columns() {
        // SAFETY: a declining path reads and writes nothing.
        assert!(!unsafe {
            load_rows_as_cols::<pulp::x86::V3, f32>(core::ptr::null(), 1, 1, 1, core::ptr::null_mut(), 16, 16)
        });
        if pulp::x86::V4::try_new().is_none() {
            println!("skipped the AVX-512 transposing load: this CPU lacks AVX-512");
            return;
        }
        for height in [16usize, 12, 1] {
            for n in 0..=16usize {
                for rows in 0..=height {
                    for rs in [n, n + 3] {
                        // Exactly the rows' extent (a read past a row's n values
                        // lands in lanes never stored, so only the PROT_NONE test
                        // in tests/gemm_ref.rs would see one).
                        let len = if rows == 0 { 0 } else { (rows - 1) * rs + n };
                        let src: Vec<f32> = (0..len).map(|x| x as f32 + 0.25).collect();
                        let mut dst = vec![-1.0f32; 16 * 17];
                        // SAFETY: the V4 token exists; row r's n values at r·rs
                        // lie inside `src`; column j's `height` slots at j·17
                        // inside `dst`.
                        let done = unsafe {
                            load_rows_as_cols::<pulp::x86::V4, f32>(
                                src.as_ptr(),
                                rs as isize,
                                rows,
                                n,
                                dst.as_mut_ptr(),
                                17,
                                height,
                            )
                        };
                        assert!(done);
                        for j in 0..16 {
                            for r in 0..17 {
                                let want = if j >= n || r >= height {
                                    -1.0
                                } else if r < rows {
                                    src[r * rs + j]
                                } else {
                                    0.0
                                };
                                assert_eq!(
                                    dst[j * 17 + r],
                                    want,
                                    "height={height} n={n} rows={rows} rs={rs} column {j} row {r}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    /// [`div_sqrt_plus`] on every ISA of this machine against the IEEE
    /// sequence `num / (√v + eps)`: within 8 ulp on AVX-512 when the estimate
    /// path is asked for (`fast`, on any CPU), the same bits elsewhere and
    /// without it; special values (0, subnormal, negative, infinite, NaN,
    /// each alone in an otherwise normal vector) exactly as IEEE.
    #[test]
    fn div_sqrt_plus_estimates_stay_within_8_ulp() {
        struct Op<'a>(&'a [f32], &'a [f32], f32, bool, &'a mut [f32]);
        impl WithToken for Op<'_> {
            type Output = ();
            #[inline(always)]
            fn with_token<S: Token>(self, s: S) {
                let Op(num, v, eps, fast, out) = self;
                let l = S::F32_LANES;
                for i in (0..num.len()).step_by(l) {
                    let r = div_sqrt_plus(s, load_tail(s, &num[i..]), load_tail(s, &v[i..]), eps, fast);
                    store_tail(s, &mut out[i..], r);
                }
            }
        }
        let mut rnd = xorshift(0x9e37_79b9_7f4a_7c15u64);
        let n = 1 << 14;
        // v over the whole finite normal range (and zeros), num of both signs.
        let mut v: Vec<f32> = (0..n)
            .map(|_| {
                let r = rnd();
                if r % 17 == 0 {
                    0.0
                } else {
                    f32::from_bits(0x0080_0000 + (r >> 32) as u32 % (0x7f80_0000 - 0x0080_0000))
                }
            })
            .collect();
        v[5] = f32::MAX;
        v[6] = f32::MIN_POSITIVE;
        assert!(v.iter().any(|&x| x > 1e30) && v.iter().any(|&x| x > 0.0 && x < 1e-30));
        let num: Vec<f32> = (0..n).map(|_| (rnd() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0).collect();
        // One special value in each of a few vectors.
        let specials = [f32::from_bits(1), f32::MIN_POSITIVE / 2.0, -1.0, -0.0, f32::INFINITY, f32::NAN];
        for (j, &x) in specials.iter().enumerate() {
            v[64 * j + 3] = x;
        }
        // The estimates run wherever asked for (in range), whichever CPU
        // this is; `div_sqrt_fast` only decides whether the optimizer asks.
        let cases = [1e-8f32, 3.2e-10, DIV_SQRT_FAST_EPS, 1e-31, 0.5, DIV_SQRT_FAST_EPS_MAX, 2e30]
            .into_iter()
            .flat_map(|eps| [(eps, false), (eps, (DIV_SQRT_FAST_EPS..=DIV_SQRT_FAST_EPS_MAX).contains(&eps))]);
        for (eps, fast) in cases {
            let want: Vec<f32> = num.iter().zip(&v).map(|(&a, &b)| a / (b.sqrt() + eps)).collect();
            for &isa in Isa::all().iter().filter(|i| i.is_available()) {
                let mut got = vec![0.0f32; n];
                isa.run(Op(&num, &v, eps, fast, &mut got));
                let estimate = isa.name() == "avx512" && fast;
                let differ = got.iter().zip(&want).filter(|(g, w)| g.to_bits() != w.to_bits()).count();
                assert!(!estimate || differ > 0, "eps {eps}: the estimate path never ran");
                // Each lane alone decides its path: the same bits with the
                // vectors starting one element later (a special value then
                // shares its vector with other lanes).
                let mut shifted = vec![0.0f32; n - 1];
                isa.run(Op(&num[1..], &v[1..], eps, fast, &mut shifted));
                for i in 1..n {
                    let (a, b) = (shifted[i - 1], got[i]);
                    assert!(
                        a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
                        "{} eps {eps}: lane {i}",
                        isa.name()
                    );
                }
                for i in 0..n {
                    let (g, w) = (got[i], want[i]);
                    let special = !(v[i] == 0.0 || (v[i] >= f32::MIN_POSITIVE && v[i].is_finite()));
                    if !estimate || special {
                        assert!(
                            g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()),
                            "{} eps {eps}: v {} num {}: {g} against {w}",
                            isa.name(),
                            v[i],
                            num[i]
                        );
                    } else {
                        let ulps = (g.to_bits() as i64 - w.to_bits() as i64).abs();
                        assert!(
                            g.signum() == w.signum() && ulps <= 8,
                            "{} eps {eps}: v {} num {}: {g} against {w} ({ulps} ulp)",
                            isa.name(),
                            v[i],
                            num[i]
                        );
                    }
                }
            }
        }
    }

    /// The same contract through `Real::load_partial`/`store_partial` on every
    /// ISA of this machine (pulp's path where no native one applies).
    #[test]
    fn partial_load_store_every_isa() {
        struct Op;
        impl WithToken for Op {
            type Output = ();
            #[inline(always)]
            fn with_token<S: Token>(self, s: S) {
                let l = S::F32_LANES;
                for n in 0..l {
                    let src: Vec<f32> = (0..l + 2).map(|i| i as f32 + 1.0).collect();
                    let v = load_tail(s, &src[1..1 + n]);
                    let mut dst = vec![-1.0f32; l + 2];
                    store_tail(s, &mut dst[1..1 + n], v);
                    for (i, &d) in dst.iter().enumerate() {
                        assert_eq!(d, if i >= 1 && i <= n { src[i] } else { -1.0 }, "n={n} i={i}");
                    }
                    let mut all = vec![-1.0f32; l];
                    store_tail(s, &mut all, v);
                    for (i, &d) in all.iter().enumerate() {
                        assert_eq!(d, if i < n { src[1 + i] } else { 0.0 }, "zero lanes n={n} i={i}");
                    }
                }
            }
        }
        for isa in Isa::available() {
            isa.run(Op);
        }
    }
}
