//! Vectorised elementary functions for f32: `exp`, `log`, `tanh`, `sigmoid`,
//! `softplus` and tanh-form GELU.
//!
//! Two layers:
//!
//! * `#[inline(always)]` helpers generic over the token type `S` that map one
//!   `S::f32s` vector ([`exp_f32s`], [`log_f32s`], [`tanh_f32s`],
//!   [`sigmoid_f32s`], [`softplus_f32s`], [`gelu_tanh_f32s`]). They are meant to
//!   be called from inside other kernels' `with_token` bodies (GEMM epilogues,
//!   fused activations) and never leave the caller's target-feature region.
//! * Safe slice kernels ([`vexp_f32`], ...), dispatched at run time through
//!   [`Isa::current`], with `_with` variants that take the per-call
//!   [`crate::Options`] (an instruction set to force) and `_inplace` variants.
//!
//! The algorithms are Cephes-style: range reduction, a short polynomial, exact
//! reconstruction with integer exponent arithmetic. No FP environment state
//! (MXCSR, flush-to-zero) is read or changed; out-of-range inputs are clamped
//! instead. Results are identical for every call on one ISA and CPU vendor,
//! and may differ between ISAs in the last bit (FMA versus separate multiply
//! and add in the scalar path) and, for tanh and sigmoid on AVX-512, between
//! AMD's (and Hygon's) CPUs and others' (whose slow 512-bit divider they
//! avoid with a reciprocal estimate, `div_normal`).
//!
//! Error bounds are stated per function in ULPs of the exact result (ULP taken
//! in the binade of the exact value, never finer than the subnormal spacing
//! 2⁻¹⁴⁹), measured by `tests/math_sweep.rs` against `f64` `std` over every
//! 401st f32 bit pattern (≈10.7 M inputs, both signs, subnormals and both
//! overflow edges) on every ISA of the test machine.

// Coefficients are quoted as published (Cephes), some with more digits than f32 holds.
#![allow(clippy::excessive_precision)]

use super::Isa;
use crate::Options;
use crate::error::shape;
use crate::simd::{Token, WithToken};
use std::marker::PhantomData;

// ---------------------------------------------------------------------------
// Small bit-level helpers.
// ---------------------------------------------------------------------------

/// `1.5 · 2²³`: adding it to a float of magnitude < 2²² rounds to an integer and
/// leaves that integer (two's complement) in the low mantissa bits.
const MAGIC: f32 = 12_582_912.0;
/// Bit pattern of [`MAGIC`].
const MAGIC_BITS: u32 = 0x4B40_0000;

#[inline(always)]
fn bits<S: Token>(s: S, x: S::f32s) -> S::u32s {
    s.transmute_u32s_f32s(x)
}

#[inline(always)]
fn from_bits<S: Token>(s: S, x: S::u32s) -> S::f32s {
    s.transmute_f32s_u32s(x)
}

#[inline(always)]
fn splat<S: Token>(s: S, x: f32) -> S::f32s {
    s.splat_f32s(x)
}

#[inline(always)]
fn fma<S: Token>(s: S, a: S::f32s, b: S::f32s, c: S::f32s) -> S::f32s {
    s.mul_add_e_f32s(a, b, c)
}

/// `|x|` (clears the sign bit; NaN stays NaN).
#[inline(always)]
fn abs<S: Token>(s: S, x: S::f32s) -> S::f32s {
    from_bits(s, s.and_u32s(bits(s, x), s.splat_u32s(0x7FFF_FFFF)))
}

/// `min(c, v)` lane by lane, NaN where `v` is NaN. On x86-64 vector tokens one
/// `vminps`, which returns its second operand (`v`) where either is NaN;
/// elsewhere a compare and a select that keep `v` unless it is greater.
#[inline(always)]
fn min_keep_nan<S: Token>(s: S, c: S::f32s, v: S::f32s) -> S::f32s {
    if cfg!(target_arch = "x86_64") && S::AVX2 {
        s.min_f32s(c, v)
    } else {
        s.select_f32s(s.greater_than_f32s(v, c), c, v)
    }
}

/// `x`'s sign bit over `mag`'s other bits: one `vpternlogd` on AVX-512, two
/// ANDs and an OR elsewhere.
#[inline(always)]
fn copy_sign<S: Token>(s: S, mag: S::f32s, x: S::f32s) -> S::f32s {
    #[cfg(target_arch = "x86_64")]
    if S::AVX512F && core::mem::size_of::<S::f32s>() == 64 {
        use core::arch::x86_64::__m512;
        // SAFETY: `S`'s `Token` impl says its token exists only once AVX-512F
        // was detected; its f32 vector is 64 bytes, the layout of `__m512`
        // (checked above), and any bit pattern is valid for both.
        return unsafe {
            core::mem::transmute_copy(&super::x86::copy_sign_avx512(
                core::mem::transmute_copy::<S::f32s, __m512>(&mag),
                core::mem::transmute_copy::<S::f32s, __m512>(&x),
            ))
        };
    }
    let sign = s.splat_u32s(0x8000_0000);
    from_bits(s, s.or_u32s(s.and_u32s(bits(s, x), sign), s.and_u32s(bits(s, mag), s.not_u32s(sign))))
}

/// Whether `S` has [`div_normal`]'s estimate path: an AVX-512 token with
/// 64-byte f32 vectors on x86-64 (never under Miri).
#[inline(always)]
fn estimate_isa<S: Token>() -> bool {
    cfg!(all(target_arch = "x86_64", not(miri))) && S::AVX512F && core::mem::size_of::<S::f32s>() == 64
}

/// Whether [`div_normal`] takes its estimate path here: on AVX-512 tokens
/// where the estimates pay ([`super::div_sqrt_estimates_pay`]: not on AMD,
/// whose Zen 4 divides in two multiply-pipe slots). Intel's 512-bit `vdivps`
/// takes the divider about 10 cycles per vector. Read once per call of the
/// `N`-vector helpers, before their arithmetic.
#[inline(always)]
fn div_estimates<S: Token>() -> bool {
    estimate_isa::<S>() && super::div_sqrt_estimates_pay()
}

/// `num / den` for `den` and `1/den` normal and finite (in other lanes the
/// result is garbage or NaN: callers blend those lanes away), positive
/// where `num` is ±0 on the estimate path. With `est`
/// ([`div_estimates`]) `vrcp14ps` and a residual step
/// (`x86::div_rcp14_avx512`: within 0.5 ULP + 2⁻²⁷ relative, one bit from
/// IEEE at most), otherwise IEEE division.
#[inline(always)]
fn div_normal<S: Token>(s: S, num: S::f32s, den: S::f32s, est: bool) -> S::f32s {
    #[cfg(target_arch = "x86_64")]
    if est && estimate_isa::<S>() {
        use core::arch::x86_64::__m512;
        // SAFETY: `S`'s `Token` impl says its token exists only once AVX-512F
        // was detected; its f32 vector is 64 bytes, the layout of `__m512`
        // (both checked by `estimate_isa`), and any bit pattern is valid for both.
        return unsafe {
            core::mem::transmute_copy(&super::x86::div_rcp14_avx512(
                core::mem::transmute_copy::<S::f32s, __m512>(&num),
                core::mem::transmute_copy::<S::f32s, __m512>(&den),
            ))
        };
    }
    let _ = est;
    s.div_f32s(num, den)
}

/// `r` where `x` is a number, `x` itself where `x` is NaN.
#[inline(always)]
fn keep_nan<S: Token>(s: S, x: S::f32s, r: S::f32s) -> S::f32s {
    s.select_f32s(s.equal_f32s(x, x), r, x)
}

/// Horner evaluation `(((c0·x + c1)·x + c2)·x + …)`, highest degree first.
macro_rules! horner {
    ($s:expr, $x:expr, $c0:expr $(, $c:expr)* $(,)?) => {{
        let s = $s;
        let x = $x;
        let acc = s.splat_f32s($c0);
        $( let acc = s.mul_add_e_f32s(acc, x, s.splat_f32s($c)); )*
        acc
    }};
}

/// `[f(0), …, f(N−1)]` for an `N`-array of `f32s` (or `u32s` with `u32`), built
/// with a plain loop: `std::array::from_fn` takes a closure that is not
/// guaranteed to be inlined, which would leave the target-feature region.
macro_rules! map_n {
    ($s:expr, $n:expr, |$i:ident| $e:expr) => {{
        let mut a = [$s.splat_f32s(0.0); $n];
        for $i in 0..$n {
            a[$i] = $e;
        }
        a
    }};
    ($s:expr, $n:expr, u32, |$i:ident| $e:expr) => {{
        let mut a = [$s.splat_u32s(0); $n];
        for $i in 0..$n {
            a[$i] = $e;
        }
        a
    }};
}

// ---------------------------------------------------------------------------
// exp
// ---------------------------------------------------------------------------

const LOG2E: f32 = std::f32::consts::LOG2_E;
/// Cody–Waite split of ln 2: `LN2_HI` has 9 significant bits, so `n·LN2_HI` is
/// exact for every `|n| ≤ 2⁸` we produce.
const LN2_HI: f32 = 0.693_359_375;
const LN2_LO: f32 = -2.121_944_4e-4;
/// Inputs are clamped to `[EXP_LO, EXP_HI]` before the reduction: exp(-104)
/// rounds to +0 and exp(89) overflows to +Inf, so clamping changes no result.
const EXP_LO: f32 = -104.0;
const EXP_HI: f32 = 89.0;

/// Range reduction and polynomial: for `x` in `[EXP_LO, EXP_HI]` returns
/// `(p, kf)` with `p ≈ e^r`, `r = x − n·ln2 ∈ [−ln2/2, ln2/2]` and
/// `kf = MAGIC + n` (so `bits(kf)` holds `n` in its low bits).
#[inline(always)]
fn exp_reduce<S: Token>(s: S, x: S::f32s) -> (S::f32s, S::f32s) {
    let kf = fma(s, x, splat(s, LOG2E), splat(s, MAGIC));
    let n = s.sub_f32s(kf, splat(s, MAGIC));
    let r = fma(s, n, splat(s, -LN2_HI), x);
    let r = fma(s, n, splat(s, -LN2_LO), r);
    let r2 = s.mul_f32s(r, r);
    // Cephes expf minimax: e^r ≈ 1 + r + r²·P(r), P of degree 5.
    let p =
        horner!(s, r, 1.987_569_1e-4, 1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 1.666_666_5e-1, 5.000_000_1e-1,);
    let p = fma(s, r2, p, r);
    (s.add_f32s(p, splat(s, 1.0)), kf)
}

/// `e^x` for `x` already clamped to `[EXP_LO, EXP_HI]`, over the full output range
/// (subnormal results included, overflow to +Inf).
///
/// `2ⁿ` (n ∈ [−150, 128]) is applied as two exact normal factors `2^n1·2^n2`, so
/// the only rounding after the polynomial is the final one into the subnormal
/// range, and nothing overflows before the last multiply.
#[inline(always)]
fn exp_clamped<S: Token>(s: S, x: S::f32s) -> S::f32s {
    let (p, kf) = exp_reduce(s, x);
    let n = s.sub_f32s(kf, splat(s, MAGIC));
    // n1 = round(n / 2) ∈ [−75, 64], n2 = n − n1 ∈ [−75, 64].
    let h = fma(s, n, splat(s, 0.5), splat(s, MAGIC));
    let kb = bits(s, kf);
    let hb = bits(s, h);
    let bias = s.splat_u32s(127);
    let sh = s.splat_u32s(23);
    // (MAGIC_BITS + n1 + 127) << 23 ≡ (n1 + 127) << 23 (mod 2³²): MAGIC's bits all shift out.
    let s1 = from_bits(s, s.wrapping_dyn_shl_u32s(s.add_u32s(hb, bias), sh));
    let s2 = from_bits(s, s.wrapping_dyn_shl_u32s(s.add_u32s(s.sub_u32s(kb, hb), bias), sh));
    s.mul_f32s(s.mul_f32s(p, s1), s2)
}

/// `|x| ≤ FAST_LIM` (and not NaN) selects the fast exponential path
/// ([`exp_fast_parts_n`]): there `n = round(x·log₂e) ∈ [−125, 125]`, so `e^r·2ⁿ` is a
/// normal number and `2ⁿ` can be applied by an integer add to the exponent field.
const FAST_LIM: f32 = 86.5;

/// Sign bit set in the lanes where `x` is outside `[−FAST_LIM, FAST_LIM]` or NaN
/// (`bits(FAST_LIM) − bits(|x|)` goes negative exactly there).
#[inline(always)]
fn out_of_fast_range<S: Token>(s: S, x: S::f32s) -> S::u32s {
    s.sub_u32s(s.splat_u32s(FAST_LIM.to_bits()), s.and_u32s(bits(s, x), s.splat_u32s(0x7FFF_FFFF)))
}

/// Whether any lane of `v` has its sign bit set: one `vmovmskps` and a test on
/// x86 with 256-bit vectors (two with 512-bit ones), a lane loop elsewhere.
#[inline(always)]
fn any_sign<S: Token>(v: S::u32s) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::__m256;
        if const { core::mem::size_of::<S::u32s>() == 32 } {
            // SAFETY: the only pulp tokens with 256-bit `u32s` on x86-64 are the
            // AVX2 (V3) and AVX-512 (V4) families, whose tokens exist only once
            // their features were detected, so AVX is available; the sizes match
            // and `__m256` accepts any bit pattern.
            return unsafe { super::x86::any_sign(&[core::mem::transmute_copy::<S::u32s, __m256>(&v)]) };
        }
        if const { core::mem::size_of::<S::u32s>() == 64 } {
            // SAFETY: 512-bit `u32s` exist only for pulp's AVX-512 (V4) tokens and
            // the AVX2 token's 512-bit emulation, both proof that AVX is
            // available; the sizes match and `__m256` accepts any bit pattern.
            return unsafe { super::x86::any_sign(&core::mem::transmute_copy::<S::u32s, [__m256; 2]>(&v)) };
        }
    }
    let lanes: &[u32] = pulp::bytemuck::cast_slice(std::slice::from_ref(&v));
    lanes.iter().fold(false, |acc, &l| acc | ((l as i32) < 0))
}

/// Mask of the lanes that [`exp_fast_parts_n`] handles (`|x| ≤ FAST_LIM`; false for NaN).
#[inline(always)]
fn in_fast_range<S: Token>(s: S, x: S::f32s) -> S::m32s {
    s.less_than_or_equal_f32s(abs(s, x), splat(s, FAST_LIM))
}

/// `e^r − 1` for `r ∈ [−ln2/2, ln2/2]` on `N` vectors: `r + r²·q(r)`, `q` a degree-4 minimax
/// fit of `(e^r − 1 − r)/r²` (relative error of the polynomial 3.1e-9), evaluated
/// Estrin-style (`q = (c2 + c3·r) + r²·(c4 + c5·r + c6·r²)`) so that the dependency
/// chain after `r` is 4 multiplies/FMAs deep instead of 6, with a single rounding
/// of the result relative to `r` (the last FMA), which keeps `e^r − 1` accurate to
/// about half an ULP for small `r` too (tanh relies on that).
#[inline(always)]
fn expm1_poly_n<S: Token, const N: usize>(s: S, r: [S::f32s; N]) -> [S::f32s; N] {
    expm1_poly_scaled_n(s, r, 1.0)
}

/// `(e^{k·h} − 1)/k` for `k = scale` (1 or 2) and `k·h ∈ [−ln2/2, ln2/2]`:
/// [`expm1_poly_n`] of `r = k·h` with every coefficient and intermediate
/// scaled by a power of `k`, so its bits are exactly those of
/// `expm1_poly_n(k·h) / k` without the multiply by `k`: scaling by powers of
/// two is exact while the intermediates are normal, and where `h²` is
/// subnormal (`|h| < 2⁻⁶³`) both forms return `h` itself. tanh takes
/// `k = 2` (`e^{2|x|}`).
#[inline(always)]
fn expm1_poly_scaled_n<S: Token, const N: usize>(s: S, h: [S::f32s; N], scale: f32) -> [S::f32s; N] {
    debug_assert!(scale == 1.0 || scale == 2.0);
    let k = scale;
    let (c2, c3, c4, c5, c6) = (4.999_999_4e-1, 1.666_652_1e-1, 4.166_838_9e-2, 8.368_728_7e-3, 1.381_447_8e-3);
    let h2: [S::f32s; N] = map_n!(s, N, |i| s.mul_f32s(h[i], h[i]));
    let b: [S::f32s; N] = map_n!(s, N, |i| fma(s, splat(s, c3 * k * k), h[i], splat(s, c2 * k)));
    let c: [S::f32s; N] = map_n!(s, N, |i| fma(s, splat(s, c5 * k * k * k * k), h[i], splat(s, c4 * k * k * k)));
    let d: [S::f32s; N] = map_n!(s, N, |i| fma(s, splat(s, c6 * k * k * k * k * k), h2[i], c[i]));
    let q: [S::f32s; N] = map_n!(s, N, |i| fma(s, d[i], h2[i], b[i]));
    map_n!(s, N, |i| fma(s, q[i], h2[i], h[i]))
}

/// Reduction for the fast path, on `N` independent vectors stage by stage (so the
/// chains are interleaved in program order and the out-of-order window covers
/// several of them): `x = n·ln2 + r`, returns `(t, sc)` with `t = e^r − 1`
/// ([`expm1_poly_n`]) and `sc = 2ⁿ`, so that `e^x = sc + sc·t` (one FMA, one
/// rounding). Valid for `|x| ≤ FAST_LIM` (`n ∈ [−125, 125]`, so `2ⁿ` is a normal
/// number built directly in the exponent field).
#[inline(always)]
fn exp_fast_parts_n<S: Token, const N: usize>(s: S, x: [S::f32s; N]) -> ([S::f32s; N], [S::f32s; N]) {
    let kf: [S::f32s; N] = map_n!(s, N, |i| fma(s, x[i], splat(s, LOG2E), splat(s, MAGIC)));
    let n: [S::f32s; N] = map_n!(s, N, |i| s.sub_f32s(kf[i], splat(s, MAGIC)));
    // Cody–Waite: n·LN2_HI is exact and so is x − n·LN2_HI; the low part is
    // multiplied in parallel and added once.
    let r: [S::f32s; N] = map_n!(s, N, |i| fma(s, n[i], splat(s, -LN2_HI), x[i]));
    let r: [S::f32s; N] = map_n!(s, N, |i| s.add_f32s(r[i], s.mul_f32s(n[i], splat(s, -LN2_LO))));
    let t = expm1_poly_n(s, r);
    // (MAGIC_BITS + n + 127) << 23 ≡ (n + 127) << 23 (mod 2³²): MAGIC's bits all shift out.
    let sc = map_n!(s, N, |i| {
        from_bits(s, s.wrapping_dyn_shl_u32s(s.add_u32s(bits(s, kf[i]), s.splat_u32s(127)), s.splat_u32s(23)))
    });
    (t, sc)
}

/// `e^x` over all of f32 (the slow path, used only for vectors with a lane out of
/// the fast range): clamp, two-factor scaling for subnormal results, NaN.
#[inline(always)]
fn exp_full<S: Token>(s: S, x: S::f32s) -> S::f32s {
    let xc = s.min_f32s(s.max_f32s(x, splat(s, EXP_LO)), splat(s, EXP_HI));
    keep_nan(s, x, exp_clamped(s, xc))
}

/// `e^x` on one vector.
///
/// **Error ≤ 2 ULP** over all of f32 (measured max 0.98 ULP), including subnormal results for
/// `x ∈ [−103.97, −87.34]`. `exp(x) = +Inf` for `x > 88.7228` (and `+Inf`),
/// `+0` for `x < −103.973` (and `−Inf`); NaN propagates.
///
/// Vectors whose lanes all lie in `[−86.5, 86.5]` take a short branch-free path;
/// any other vector (a lane that overflows, underflows towards subnormals, or is
/// NaN/Inf) also runs the full path and blends it into those lanes only, so every
/// lane's result depends on that lane alone.
#[inline(always)]
pub fn exp_f32s<S: Token>(s: S, x: S::f32s) -> S::f32s {
    let ([fast], [flags]) = exp_flagged_n(s, [x]);
    if any_sign::<S>(flags) { exp_fixup(s, x, fast) } else { fast }
}

/// Fast-path `e^x` on `N` vectors and the lanes (sign bit set) that need [`exp_fixup`].
#[inline(always)]
fn exp_flagged_n<S: Token, const N: usize>(s: S, x: [S::f32s; N]) -> ([S::f32s; N], [S::u32s; N]) {
    let (t, sc) = exp_fast_parts_n(s, x);
    (map_n!(s, N, |i| fma(s, t[i], sc[i], sc[i])), map_n!(s, N, u32, |i| out_of_fast_range(s, x[i])))
}

/// Replaces the lanes of `fast` outside the fast range by the full-range result.
#[inline(always)]
fn exp_fixup<S: Token>(s: S, x: S::f32s, fast: S::f32s) -> S::f32s {
    s.select_f32s(in_fast_range(s, x), fast, exp_full(s, x))
}

// ---------------------------------------------------------------------------
// log
// ---------------------------------------------------------------------------

/// `log(1 + f) + k·ln 2` for `f ∈ [√½ − 1, √2 − 1]` and integral `k` (as f32).
#[inline(always)]
fn log_poly<S: Token>(s: S, f: S::f32s, k: S::f32s) -> S::f32s {
    let z = s.mul_f32s(f, f);
    // Cephes logf minimax: log(1+f) ≈ f − f²/2 + f³·P(f), P of degree 8.
    let p = horner!(
        s,
        f,
        7.037_683_6e-2,
        -1.151_461_0e-1,
        1.167_699_9e-1,
        -1.242_014_1e-1,
        1.424_932_3e-1,
        -1.666_805_8e-1,
        2.000_071_4e-1,
        -2.499_999_4e-1,
        3.333_333_1e-1,
    );
    let y = s.mul_f32s(p, s.mul_f32s(f, z));
    let y = fma(s, k, splat(s, LN2_LO), y);
    let y = fma(s, z, splat(s, -0.5), y);
    let r = s.add_f32s(f, y);
    fma(s, k, splat(s, LN2_HI), r)
}

/// Natural logarithm on one vector.
///
/// **Error ≤ 2 ULP** over all of f32 (measured max 0.78 ULP), subnormal inputs included (they are
/// rescaled by 2²³ first). `log(±0) = −Inf`, `log(x < 0) = NaN`,
/// `log(+Inf) = +Inf`; NaN propagates.
#[inline(always)]
pub fn log_f32s<S: Token>(s: S, x: S::f32s) -> S::f32s {
    let tiny = s.less_than_f32s(x, splat(s, f32::MIN_POSITIVE));
    let xs = s.select_f32s(tiny, s.mul_f32s(x, splat(s, 8_388_608.0)), x);
    // Shift the mantissa split point to √½ so that m ∈ [√½, √2) (musl's trick).
    let ix = s.add_u32s(bits(s, xs), s.splat_u32s(0x3F80_0000 - 0x3F35_04F3));
    let e = s.wrapping_dyn_shr_u32s(ix, s.splat_u32s(23));
    // Integer → float through MAGIC: exact for the small exponents here.
    let ebias = s.select_f32s(tiny, splat(s, MAGIC + 127.0 + 23.0), splat(s, MAGIC + 127.0));
    let k = s.sub_f32s(from_bits(s, s.add_u32s(e, s.splat_u32s(MAGIC_BITS))), ebias);
    let m = from_bits(s, s.add_u32s(s.and_u32s(ix, s.splat_u32s(0x007F_FFFF)), s.splat_u32s(0x3F35_04F3)));
    let f = s.sub_f32s(m, splat(s, 1.0));
    let r = log_poly(s, f, k);

    // Special lanes: x ≤ 0, +Inf, NaN.
    let ok = s.and_m32s(s.greater_than_f32s(x, splat(s, 0.0)), s.less_than_f32s(x, splat(s, f32::INFINITY)));
    let special = s.select_f32s(
        s.equal_f32s(x, splat(s, 0.0)),
        splat(s, f32::NEG_INFINITY),
        s.select_f32s(s.less_than_f32s(x, splat(s, 0.0)), splat(s, f32::NAN), x),
    );
    s.select_f32s(ok, r, special)
}

/// `log(1 + u)` for `u ∈ [0, 1]` (or NaN), accurate also for tiny `u`.
#[inline(always)]
fn log1p_unit<S: Token>(s: S, u: S::f32s) -> S::f32s {
    // 1 + u < √2: k = 0, f = u exactly. Otherwise k = 1, f = (1 + u)/2 − 1.
    let big = s.greater_than_f32s(u, splat(s, std::f32::consts::SQRT_2 - 1.0));
    let f = s.select_f32s(big, fma(s, u, splat(s, 0.5), splat(s, -0.5)), u);
    let k = s.select_f32s(big, splat(s, 1.0), splat(s, 0.0));
    log_poly(s, f, k)
}

// ---------------------------------------------------------------------------
// tanh, sigmoid, softplus, GELU
// ---------------------------------------------------------------------------

/// Hyperbolic tangent on one vector.
///
/// Computed on `|x|` clamped to 9.5 (the exact result rounds to 1 from
/// `|x| > 9.011` on), with `x`'s sign bit put back at the end: `tanh|x| = (e^{2|x|} − 1)/(e^{2|x|} + 1)`.
/// With `2|x| = n·ln2 + r` and `t = e^r − 1` (`expm1_poly_n`), the numerator
/// `num = 2ⁿ·t + (2ⁿ − 1)` is one FMA from `t`, accurate for small arguments
/// too (it is `t` itself when `n = 0`), so one formula covers the whole range
/// without cancellation; the denominator is `num + 2`, whose rounding is the
/// only error the quotient does not cancel for large `|x|`. Tiny and
/// subnormal `|x|` need no special case (`num = t ≈ 2|x|`, the quotient
/// `|x|` to within its last bit). The reduction uses a single `ln 2`
/// constant: its error `|n|·1.9e-9` only matters where `n` is small, since
/// for large `|n|` the result is within a few ULP of ±1 and insensitive to
/// the exponential. It is computed by halves, with the same bits:
/// `h = r/2 = |x| − n·ln2/2` and `t/2` from `expm1_poly_n`'s coefficients
/// scaled by powers of two (`expm1_poly_scaled_n`), so that `2|x|` is never
/// formed, and `num = (t/2)·2ⁿ⁺¹ + (2ⁿ − 1)`.
///
/// Special values without a compare (a multiply-pipe operation on Zen 4):
/// the clamp keeps NaN (`min_keep_nan`), which then flows through every step;
/// the sign copy makes `tanh(−0) = −0`. The quotient is `div_normal`'s: a
/// reciprocal estimate and a residual step on AVX-512 CPUs other than AMD's,
/// within one bit of IEEE division.
///
/// **Error ≤ 4 ULP** over all of f32 (ULP bound, not a relative one; measured
/// max 2.46 ULP, the same on every ISA and with either quotient). `tanh(±Inf) = ±1`.
#[inline(always)]
pub fn tanh_f32s<S: Token>(s: S, x: S::f32s) -> S::f32s {
    tanh_n(s, [x])[0]
}

/// [`tanh_f32s`] on `N` vectors, stage by stage.
#[inline(always)]
fn tanh_n<S: Token, const N: usize>(s: S, x: [S::f32s; N]) -> [S::f32s; N] {
    let xc: [S::f32s; N] = map_n!(s, N, |i| min_keep_nan(s, splat(s, 9.5), abs(s, x[i])));
    let num = tanh_num_n(s, xc);
    // num + 2 ∈ [2, e¹⁹ + 1]: normal, and so is its reciprocal.
    let est = div_estimates::<S>();
    map_n!(s, N, |i| copy_sign(s, div_normal(s, num[i], s.add_f32s(num[i], splat(s, 2.0)), est), x[i]))
}

/// tanh's numerator `e^{2·xc} − 1` for `xc ∈ [+0, 9.5]` (or NaN), by halves
/// (see [`tanh_f32s`]).
#[inline(always)]
fn tanh_num_n<S: Token, const N: usize>(s: S, xc: [S::f32s; N]) -> [S::f32s; N] {
    let kf: [S::f32s; N] = map_n!(s, N, |i| fma(s, xc[i], splat(s, 2.0 * LOG2E), splat(s, MAGIC)));
    let n: [S::f32s; N] = map_n!(s, N, |i| s.sub_f32s(kf[i], splat(s, MAGIC)));
    // Half of everything: h = r/2 (r = 2|x| − n·ln2; halving is exact, so
    // these are r's bits halved) and th = t/2, so 2|x| is never formed.
    let h: [S::f32s; N] = map_n!(s, N, |i| fma(s, n[i], splat(s, -0.5 * std::f32::consts::LN_2), xc[i]));
    let th = expm1_poly_scaled_n(s, h, 2.0);
    // 2ⁿ⁺¹ from the exponent field (see exp_fast_parts_n); n ∈ [0, 27].
    let sc2: [S::f32s; N] = map_n!(s, N, |i| {
        from_bits(s, s.wrapping_dyn_shl_u32s(s.add_u32s(bits(s, kf[i]), s.splat_u32s(128)), s.splat_u32s(23)))
    });
    // num = t·2ⁿ + (2ⁿ − 1) = th·2ⁿ⁺¹ + (2ⁿ⁺¹·½ − 1), the same bits.
    map_n!(s, N, |i| fma(s, th[i], sc2[i], fma(s, sc2[i], splat(s, 0.5), splat(s, -1.0))))
}

/// Stable logistic function without NaN handling: `num/(1 + e)` with
/// `e = e^{−|u|}` and `num = 1` (u ≥ 0) or `e` (u < 0).
#[inline(always)]
fn sigmoid_core<S: Token>(s: S, u: S::f32s) -> S::f32s {
    let e = exp_clamped(s, s.max_f32s(s.sub_f32s(splat(s, 0.0), abs(s, u)), splat(s, EXP_LO)));
    let num = s.select_f32s(s.less_than_f32s(u, splat(s, 0.0)), e, splat(s, 1.0));
    s.div_f32s(num, s.add_f32s(e, splat(s, 1.0)))
}

/// Logistic sigmoid `1/(1 + e^{−x})` on one vector.
///
/// Vectors with every lane in `[−86.5, 86.5]` compute `1/(1 + e^{−x})` directly
/// (nothing overflows there) with one FMA for the denominator; any other vector
/// also runs the stable form `1/(1 + e^{−|x|})` or `e^{−|x|}/(1 + e^{−|x|})` and
/// blends it into the lanes outside that range.
///
/// **Error ≤ 4 ULP** over all of f32 (ULP bound, not a relative one; measured
/// max 2.34 ULP; 2.25 with the reciprocal estimate of `div_normal`, taken
/// on AVX-512 CPUs other than AMD's), subnormal results included (for `x ∈ [−103.97, −87.34]`). `sigmoid(x) = 0` for `x < −103.973` and `−Inf`,
/// `1` for `x > 16.64` and `+Inf`; NaN propagates.
#[inline(always)]
pub fn sigmoid_f32s<S: Token>(s: S, x: S::f32s) -> S::f32s {
    let ([fast], [flags]) = sigmoid_flagged_n(s, [x]);
    if any_sign::<S>(flags) { sigmoid_fixup(s, x, fast) } else { fast }
}

/// Fast path, `|x| ≤ 86.5`: `e^{−x} = sc·(1 + t)` is a normal number and
/// `1/(1 + e^{−x}) = 1/fma(t, sc, sc + 1)` loses nothing. Also returns the lanes
/// (sign bit set) that need [`sigmoid_fixup`].
#[inline(always)]
fn sigmoid_flagged_n<S: Token, const N: usize>(s: S, x: [S::f32s; N]) -> ([S::f32s; N], [S::u32s; N]) {
    let neg_x: [S::f32s; N] = map_n!(s, N, |i| from_bits(s, s.xor_u32s(bits(s, x[i]), s.splat_u32s(0x8000_0000))));
    let (t, sc) = exp_fast_parts_n(s, neg_x);
    let den: [S::f32s; N] = map_n!(s, N, |i| fma(s, t[i], sc[i], s.add_f32s(sc[i], splat(s, 1.0))));
    // In the fast range den ∈ [1, 1 + e^86.5] (below 2¹²⁵), its reciprocal normal;
    // the other lanes are replaced by `sigmoid_fixup`.
    let est = div_estimates::<S>();
    (map_n!(s, N, |i| div_normal(s, splat(s, 1.0), den[i], est)), map_n!(s, N, u32, |i| out_of_fast_range(s, x[i])))
}

/// Replaces the lanes of `fast` outside the fast range by the stable full-range form.
#[inline(always)]
fn sigmoid_fixup<S: Token>(s: S, x: S::f32s, fast: S::f32s) -> S::f32s {
    s.select_f32s(in_fast_range(s, x), fast, keep_nan(s, x, sigmoid_core(s, x)))
}

/// Softplus `log(1 + e^x)` on one vector, computed stably as
/// `max(x, 0) + log1p(e^{−|x|})` with a dedicated `log1p` on `[0, 1]`.
///
/// **Error ≤ 4 ULP** (so relative error < 4.8e-7; measured max 1.57 ULP) over
/// all of f32, subnormal results included. `softplus(x) = x` for `x > 14.56`
/// (and `+Inf`),
/// `0` for `x < −103.973` (and `−Inf`); NaN propagates.
#[inline(always)]
pub fn softplus_f32s<S: Token>(s: S, x: S::f32s) -> S::f32s {
    let e = exp_clamped(s, s.max_f32s(s.sub_f32s(splat(s, 0.0), abs(s, x)), splat(s, EXP_LO)));
    let l = log1p_unit(s, e);
    let r = s.add_f32s(s.max_f32s(x, splat(s, 0.0)), l);
    keep_nan(s, x, r)
}

/// `2·√(2/π)`.
const GELU_C1: f32 = 1.595_769_1;
/// `2·√(2/π)·0.044715`.
const GELU_C2: f32 = 0.071_354_816;

/// Tanh-form GELU `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))` on one vector.
///
/// Evaluated as `x·sigmoid(u)` with `u = 2√(2/π)·(x + 0.044715·x³)`, which is
/// the same function without the cancellation in `1 + tanh` for negative `x`.
///
/// **Error** (against the exact tanh-form GELU): ≤ 4 ULP (relative error
/// < 4.8e-7) for `x ≥ −1`. For `x < −1` the result is `≈ x·e^u` and the
/// function is ill-conditioned (condition number ≈ `|u|`, up to ~170 before
/// the result underflows near x ≈ −10.7); the f32 rounding of `u` then bounds
/// the error by `4 + 3·|u(x)|` ULP, i.e. relative error
/// < 1.2e-7·(4 + 3·|u(x)|) (≤ 1.8e-6 at x = −2, ≤ 4.4e-6 at x = −4). The absolute
/// error there is below 1e-7 (measured 5.2e-8). Results are `x` for
/// `x > 4.97` (and `+Inf`), `−0` for `x < −10.69` (and `−Inf`); NaN propagates.
#[inline(always)]
pub fn gelu_tanh_f32s<S: Token>(s: S, x: S::f32s) -> S::f32s {
    // Clamp below so that x = −Inf gives −20·0 = −0 rather than −Inf·0 = NaN.
    let xc = s.max_f32s(x, splat(s, -20.0));
    let x2 = s.mul_f32s(xc, xc);
    let u = s.mul_f32s(xc, fma(s, x2, splat(s, GELU_C2), splat(s, GELU_C1)));
    let r = s.mul_f32s(xc, sigmoid_core(s, u));
    keep_nan(s, x, r)
}

// ---------------------------------------------------------------------------
// Slice kernels.
// ---------------------------------------------------------------------------

/// An elementwise f32 vector function (one of this module's helpers).
trait F32Map {
    /// Name for error messages.
    const NAME: &'static str;
    /// Applies the function to one vector.
    fn apply<S: Token>(s: S, x: S::f32s) -> S::f32s;
    /// Fast-path results on a block of vectors, and flag vectors whose sign bit
    /// marks the lanes that [`F32Map::fixup`] must redo (none by default: `apply`
    /// is the whole function).
    #[inline(always)]
    fn block<S: Token>(s: S, x: [S::f32s; UNROLL]) -> ([S::f32s; UNROLL], [S::u32s; UNROLL]) {
        (map_n!(s, UNROLL, |i| Self::apply(s, x[i])), [s.splat_u32s(0); UNROLL])
    }
    /// The full result from the fast one, for a vector with a flagged lane.
    #[inline(always)]
    fn fixup<S: Token>(_s: S, _x: S::f32s, fast: S::f32s) -> S::f32s {
        fast
    }
}

macro_rules! map_type {
    ($ty:ident, $name:literal, $f:ident) => {
        struct $ty;
        impl F32Map for $ty {
            const NAME: &'static str = $name;
            #[inline(always)]
            fn apply<S: Token>(s: S, x: S::f32s) -> S::f32s {
                $f(s, x)
            }
        }
    };
    ($ty:ident, $name:literal, $f:ident, $block:ident) => {
        struct $ty;
        impl F32Map for $ty {
            const NAME: &'static str = $name;
            #[inline(always)]
            fn apply<S: Token>(s: S, x: S::f32s) -> S::f32s {
                $f(s, x)
            }
            #[inline(always)]
            fn block<S: Token>(s: S, x: [S::f32s; UNROLL]) -> ([S::f32s; UNROLL], [S::u32s; UNROLL]) {
                ($block(s, x), [s.splat_u32s(0); UNROLL])
            }
        }
    };
    ($ty:ident, $name:literal, $f:ident, $flagged:ident, $fixup:ident) => {
        struct $ty;
        impl F32Map for $ty {
            const NAME: &'static str = $name;
            #[inline(always)]
            fn apply<S: Token>(s: S, x: S::f32s) -> S::f32s {
                $f(s, x)
            }
            #[inline(always)]
            fn block<S: Token>(s: S, x: [S::f32s; UNROLL]) -> ([S::f32s; UNROLL], [S::u32s; UNROLL]) {
                $flagged(s, x)
            }
            #[inline(always)]
            fn fixup<S: Token>(s: S, x: S::f32s, fast: S::f32s) -> S::f32s {
                $fixup(s, x, fast)
            }
        }
    };
}

map_type!(Exp, "vexp_f32", exp_f32s, exp_flagged_n, exp_fixup);
map_type!(Log, "vlog_f32", log_f32s);
map_type!(Tanh, "vtanh_f32", tanh_f32s, tanh_n);
map_type!(Sigmoid, "vsigmoid_f32", sigmoid_f32s, sigmoid_flagged_n, sigmoid_fixup);
map_type!(Softplus, "vsoftplus_f32", softplus_f32s);
map_type!(Gelu, "vgelu_f32", gelu_tanh_f32s);

/// `F` on `UNROLL` independent vectors: fast paths first, then one test of the
/// OR-ed flags, so the common case has a single well-predicted branch.
#[inline(always)]
fn apply_block<S: Token, F: F32Map>(s: S, x: &[S::f32s], y: &mut [S::f32s]) {
    let (r, flags) = F::block(s, map_n!(s, UNROLL, |i| x[i]));
    // One sign test of the OR of all flag vectors: the common case costs three
    // vector ORs and one move-mask.
    if any_sign::<S>(flags[1..].iter().fold(flags[0], |acc, &f| s.or_u32s(acc, f))) {
        for i in 0..UNROLL {
            y[i] = if any_sign::<S>(flags[i]) { F::fixup(s, x[i], r[i]) } else { r[i] };
        }
    } else {
        y.copy_from_slice(&r);
    }
}

/// Vectors processed per iteration by the slice kernels (independent dependency chains).
const UNROLL: usize = 4;

/// `y[i] = F(x[i])`.
struct MapOp<'a, F> {
    x: &'a [f32],
    y: &'a mut [f32],
    f: PhantomData<F>,
}

impl<F: F32Map> WithToken for MapOp<'_, F> {
    type Output = ();
    #[inline(always)]
    fn with_token<S: Token>(self, s: S) {
        let (xv, xt) = S::as_simd_f32s(self.x);
        let (yv, yt) = S::as_mut_simd_f32s(self.y);
        // UNROLL independent vectors per iteration.
        let mut xc = xv.chunks_exact(UNROLL);
        let mut yc = yv.chunks_exact_mut(UNROLL);
        for (y, x) in yc.by_ref().zip(xc.by_ref()) {
            apply_block::<S, F>(s, x, y);
        }
        for (y, &x) in yc.into_remainder().iter_mut().zip(xc.remainder()) {
            *y = F::apply(s, x);
        }
        if !xt.is_empty() {
            let v = crate::simd::load_tail(s, xt);
            crate::simd::store_tail(s, yt, F::apply(s, v));
        }
    }
}

/// `x[i] = F(x[i])`.
struct MapInPlace<'a, F> {
    x: &'a mut [f32],
    f: PhantomData<F>,
}

impl<F: F32Map> WithToken for MapInPlace<'_, F> {
    type Output = ();
    #[inline(always)]
    fn with_token<S: Token>(self, s: S) {
        let (xv, xt) = S::as_mut_simd_f32s(self.x);
        let mut xc = xv.chunks_exact_mut(UNROLL);
        for x in xc.by_ref() {
            let v: [S::f32s; UNROLL] = map_n!(s, UNROLL, |i| x[i]);
            apply_block::<S, F>(s, &v, x);
        }
        for x in xc.into_remainder() {
            *x = F::apply(s, *x);
        }
        if !xt.is_empty() {
            let v = crate::simd::load_tail(s, xt);
            crate::simd::store_tail(s, xt, F::apply(s, v));
        }
    }
}

fn map_f32<F: F32Map>(isa: Isa, x: &[f32], y: &mut [f32]) -> crate::Result<()> {
    if x.len() != y.len() {
        return Err(shape(format!("{}: input has {} elements but output has {}", F::NAME, x.len(), y.len())));
    }
    isa.run(MapOp::<F> { x, y, f: PhantomData });
    Ok(())
}

fn map_f32_inplace<F: F32Map>(isa: Isa, x: &mut [f32]) {
    isa.run(MapInPlace::<F> { x, f: PhantomData });
}

macro_rules! slice_kernels {
    ($ty:ident, $what:literal, $helper:literal,
     $fwd:ident, $fwd_with:ident, $inp:ident, $inp_with:ident) => {
        #[doc = concat!("`y[i] = ", $what, "(x[i])` on the current ISA ([`Isa::current`]).")]
        ///
        #[doc = concat!("Accuracy and special values: see [`", $helper, "`].")]
        ///
        /// # Errors
        /// [`crate::Error::ShapeMismatch`] if `x.len() != y.len()`.
        pub fn $fwd(x: &[f32], y: &mut [f32]) -> crate::Result<()> {
            map_f32::<$ty>(Isa::current(), x, y)
        }

        #[doc = concat!("`y[i] = ", $what, "(x[i])` with per-call options (`opts.isa`; one thread).")]
        ///
        /// # Errors
        /// [`crate::Error::Unsupported`] if `opts.isa` is not available on this
        /// CPU; [`crate::Error::ShapeMismatch`] if `x.len() != y.len()`.
        pub fn $fwd_with(x: &[f32], y: &mut [f32], opts: &Options) -> crate::Result<()> {
            map_f32::<$ty>(opts.resolve_isa()?, x, y)
        }

        #[doc = concat!("`x[i] = ", $what, "(x[i])` in place on the current ISA.")]
        pub fn $inp(x: &mut [f32]) {
            map_f32_inplace::<$ty>(Isa::current(), x)
        }

        #[doc = concat!("`x[i] = ", $what, "(x[i])` in place with per-call options (`opts.isa`; one thread).")]
        ///
        /// # Errors
        /// [`crate::Error::Unsupported`] if `opts.isa` is not available on this CPU.
        pub fn $inp_with(x: &mut [f32], opts: &Options) -> crate::Result<()> {
            map_f32_inplace::<$ty>(opts.resolve_isa()?, x);
            Ok(())
        }
    };
}

slice_kernels!(Exp, "exp", "exp_f32s", vexp_f32, vexp_f32_with, vexp_f32_inplace, vexp_f32_inplace_with);
slice_kernels!(Log, "ln", "log_f32s", vlog_f32, vlog_f32_with, vlog_f32_inplace, vlog_f32_inplace_with);
slice_kernels!(Tanh, "tanh", "tanh_f32s", vtanh_f32, vtanh_f32_with, vtanh_f32_inplace, vtanh_f32_inplace_with);
slice_kernels!(
    Sigmoid,
    "sigmoid",
    "sigmoid_f32s",
    vsigmoid_f32,
    vsigmoid_f32_with,
    vsigmoid_f32_inplace,
    vsigmoid_f32_inplace_with
);
slice_kernels!(
    Softplus,
    "softplus",
    "softplus_f32s",
    vsoftplus_f32,
    vsoftplus_f32_with,
    vsoftplus_f32_inplace,
    vsoftplus_f32_inplace_with
);
slice_kernels!(
    Gelu,
    "gelu_tanh",
    "gelu_tanh_f32s",
    vgelu_f32,
    vgelu_f32_with,
    vgelu_f32_inplace,
    vgelu_f32_inplace_with
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simd::{load_tail, store_tail};

    /// tanh's numerator by halves ([`tanh_num_n`]: `h = r/2`,
    /// `expm1_poly_scaled_n(h, 2)`, `2ⁿ⁺¹`) gives the bits of the direct form
    /// (`r = 2|x| − n·ln2`, `expm1_poly_n(r)`, `2ⁿ`) for every 4099th f32 bit
    /// pattern of `[0, 9.5]` and for the clamped arguments (9.5 itself, 10³,
    /// +Inf, NaN), on every ISA.
    #[test]
    fn tanh_halved_reduction_keeps_the_bits() {
        struct Op<'a>(&'a [f32], &'a mut [f32], &'a mut [f32]);
        impl WithToken for Op<'_> {
            type Output = ();
            #[inline(always)]
            fn with_token<S: Token>(self, s: S) {
                let Op(x, halved, direct) = self;
                for i in (0..x.len()).step_by(S::F32_LANES) {
                    let xc = min_keep_nan(s, splat(s, 9.5), abs(s, load_tail(s, &x[i..])));
                    let [num] = tanh_num_n(s, [xc]);
                    store_tail(s, &mut halved[i..], num);
                    let kf = fma(s, xc, splat(s, 2.0 * LOG2E), splat(s, MAGIC));
                    let n = s.sub_f32s(kf, splat(s, MAGIC));
                    let sc = from_bits(
                        s,
                        s.wrapping_dyn_shl_u32s(s.add_u32s(bits(s, kf), s.splat_u32s(127)), s.splat_u32s(23)),
                    );
                    let r = fma(s, n, splat(s, -std::f32::consts::LN_2), s.add_f32s(xc, xc));
                    let [t] = expm1_poly_n(s, [r]);
                    store_tail(s, &mut direct[i..], fma(s, t, sc, s.sub_f32s(sc, splat(s, 1.0))));
                }
            }
        }
        let step = if cfg!(miri) { 1 << 24 } else { 4099 };
        let mut x: Vec<f32> = (0..=0x4118_0000u32).step_by(step).map(f32::from_bits).collect();
        x.extend([9.5, 1e3, f32::INFINITY, f32::NAN, -0.0, f32::from_bits(1)]);
        for &isa in Isa::all().iter().filter(|i| i.is_available()) {
            let (mut a, mut b) = (vec![0.0f32; x.len()], vec![0.0f32; x.len()]);
            isa.run(Op(&x, &mut a, &mut b));
            for i in 0..x.len() {
                let same = a[i].to_bits() == b[i].to_bits() || (x[i].is_nan() && a[i].is_nan() && b[i].is_nan());
                assert!(same, "{} x = {}: {} against {}", isa.name(), x[i], a[i], b[i]);
            }
        }
    }

    /// [`div_normal`]'s estimate path (asked for on every CPU here, whatever
    /// its vendor) against IEEE division, over numerators and denominators
    /// of tanh's and sigmoid's ranges (`den ∈ [1, 2¹²⁵]`, `|num| ≤ den`,
    /// sigmoid's `1/den`, a subnormal quotient, NaN in either operand; `num`
    /// never −0, whose quotient is +0 on the estimate path): at
    /// most 1 ulp apart on AVX-512 (and differing somewhere, so the path
    /// ran), the same bits on every other ISA and without it. tanh's and
    /// sigmoid's ULP bounds hold on either path (`tests/math_sweep.rs` sweeps
    /// the path this CPU takes).
    #[test]
    fn div_normal_estimates_stay_within_1_ulp() {
        struct Op<'a>(&'a [f32], &'a [f32], bool, &'a mut [f32]);
        impl WithToken for Op<'_> {
            type Output = ();
            #[inline(always)]
            fn with_token<S: Token>(self, s: S) {
                let Op(num, den, est, out) = self;
                for i in (0..num.len()).step_by(S::F32_LANES) {
                    let q = div_normal(s, load_tail(s, &num[i..]), load_tail(s, &den[i..]), est);
                    store_tail(s, &mut out[i..], q);
                }
            }
        }
        let mut rnd = crate::simd::xorshift(0x2545_f491_4f6c_dd1du64);
        let n = if cfg!(miri) { 128 } else { 1 << 16 };
        // den = 2^e·(1 + f), e ∈ [0, 125]; num = ±den·u, u ∈ [0, 1), with
        // powers of two and 1 among both.
        let mut den: Vec<f32> =
            (0..n).map(|_| f32::from_bits(0x3f80_0000 + (rnd() >> 33) as u32 % (125 << 23))).collect();
        // u ∈ (0, 1) (never 0, so num is never −0); every third numerator
        // is 1, sigmoid's (quotients down to 2⁻¹²⁵).
        let mut num: Vec<f32> = den
            .iter()
            .map(|&d| {
                let r = rnd();
                let u = ((r >> 40) | 1) as f32 / (1u64 << 24) as f32;
                match r % 3 {
                    0 => 1.0,
                    1 => d * u,
                    _ => -d * u,
                }
            })
            .collect();
        den[..4].copy_from_slice(&[1.0, 2.0, 1024.0, 3.0]);
        num[..4].copy_from_slice(&[1.0, 1e-40, 0.0, 2.0]);
        // NaN in either operand, alone in its vector.
        for (j, (a, b)) in [(f32::NAN, 5.0), (3.0, f32::NAN)].into_iter().enumerate() {
            num[64 * j + 37] = a;
            den[64 * j + 37] = b;
        }
        let want: Vec<f32> = num.iter().zip(&den).map(|(a, b)| a / b).collect();
        for &isa in Isa::all().iter().filter(|i| i.is_available()) {
            for est in [false, true] {
                let mut got = vec![0.0f32; n];
                isa.run(Op(&num, &den, est, &mut got));
                let estimate = est && isa.name() == "avx512" && !cfg!(miri);
                let mut differ = 0;
                for i in 0..n {
                    let (g, w) = (got[i], want[i]);
                    if w.is_nan() {
                        assert!(g.is_nan(), "{} est {est}: {} / {}: {g}", isa.name(), num[i], den[i]);
                        continue;
                    }
                    let ulps = (g.to_bits() as i64 - w.to_bits() as i64).abs();
                    differ += (ulps != 0) as usize;
                    assert!(
                        ulps == 0 || (estimate && ulps <= 1),
                        "{} est {est}: {} / {}: {g} against {w}",
                        isa.name(),
                        num[i],
                        den[i]
                    );
                }
                assert!(!estimate || differ > 0, "the estimate path never ran");
            }
        }
    }
}
