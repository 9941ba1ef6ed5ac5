//! SIMD foundation: instruction-set detection and the element abstraction every
//! kernel is written over.
//!
//! Kernels are written once, generic over `pulp::Simd`, and entered through
//! [`Isa::dispatch`], which enters a `#[target_feature]` region for the chosen
//! instruction set. The best available set is detected once and cached
//! ([`Isa::detect`]); tests and benches may force a lower one with
//! [`set_forced_isa`] so that every ISA on the machine is exercised.
//!
//! Everything reachable from a `with_simd` body must be `#[inline(always)]`,
//! otherwise it leaves the target-feature region and runs as scalar code.

pub mod math;

use pulp::{Simd, WithSimd};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, Ordering};

/// An instruction set nnkern can run its kernels on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Isa {
    /// Portable scalar code (one lane).
    Scalar,
    /// x86-64-v3: AVX2 + FMA (256-bit vectors).
    #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
    V3,
    /// x86-64-v4: AVX-512F/BW/CD/DQ/VL (512-bit vectors).
    #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
    V4,
    /// AArch64 NEON (128-bit vectors).
    #[cfg(target_arch = "aarch64")]
    Neon,
}

static DETECTED: OnceLock<Isa> = OnceLock::new();
/// 0 = no override, otherwise `Isa as u8 + 1`.
static FORCED: AtomicU8 = AtomicU8::new(0);

impl Isa {
    /// Every ISA this build knows, best last.
    pub fn all() -> &'static [Isa] {
        #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
        {
            &[Isa::Scalar, Isa::V3, Isa::V4]
        }
        #[cfg(target_arch = "aarch64")]
        {
            &[Isa::Scalar, Isa::Neon]
        }
        #[cfg(not(any(target_arch = "x86_64", target_arch = "x86", target_arch = "aarch64")))]
        {
            &[Isa::Scalar]
        }
    }

    /// Whether this CPU supports the ISA.
    pub fn is_available(self) -> bool {
        match self {
            Isa::Scalar => true,
            #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
            Isa::V3 => pulp::x86::V3::try_new().is_some(),
            #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
            Isa::V4 => pulp::x86::V4::try_new().is_some(),
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => pulp::aarch64::Neon::try_new().is_some(),
        }
    }

    /// All ISAs available on this CPU, best last.
    pub fn available() -> Vec<Isa> {
        Isa::all().iter().copied().filter(|i| i.is_available()).collect()
    }

    /// The best ISA of this CPU, detected once and cached.
    pub fn detect() -> Isa {
        *DETECTED.get_or_init(|| *Isa::available().last().unwrap_or(&Isa::Scalar))
    }

    /// The ISA kernels use now: the forced one if set, otherwise [`Isa::detect`].
    pub fn current() -> Isa {
        match FORCED.load(Ordering::Relaxed) {
            0 => Isa::detect(),
            v => Isa::all().iter().copied().find(|i| i.tag() + 1 == v).unwrap_or_else(Isa::detect),
        }
    }

    fn tag(self) -> u8 {
        Isa::all().iter().position(|&i| i == self).unwrap_or(0) as u8
    }

    /// Short lowercase name: `"scalar"`, `"avx2"`, `"avx512"`, `"neon"`.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
            Isa::V3 => "avx2",
            #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
            Isa::V4 => "avx512",
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => "neon",
        }
    }

    /// Runs `op` with this ISA's token inside its target-feature region.
    ///
    /// Falls back to scalar if the ISA is not available on this CPU, so this is
    /// always safe to call.
    #[inline]
    pub fn dispatch<Op: WithSimd>(self, op: Op) -> Op::Output {
        match self {
            #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
            Isa::V4 => match pulp::x86::V4::try_new() {
                Some(s) => Simd::vectorize(s, op),
                None => Simd::vectorize(pulp::Scalar::new(), op),
            },
            #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
            Isa::V3 => match pulp::x86::V3::try_new() {
                Some(s) => Simd::vectorize(s, op),
                None => Simd::vectorize(pulp::Scalar::new(), op),
            },
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => match pulp::aarch64::Neon::try_new() {
                Some(s) => Simd::vectorize(s, op),
                None => Simd::vectorize(pulp::Scalar::new(), op),
            },
            Isa::Scalar => Simd::vectorize(pulp::Scalar::new(), op),
        }
    }
}

/// Forces every kernel to use `isa` (or the detected best, with `None`).
///
/// A process-wide test and benchmark hook; an unavailable ISA falls back to scalar
/// at dispatch. Not meant for production use.
pub fn set_forced_isa(isa: Option<Isa>) {
    FORCED.store(isa.map_or(0, |i| i.tag() + 1), Ordering::Relaxed);
}

/// Name of the ISA kernels use now (see [`Isa::current`]).
pub fn isa_name() -> &'static str {
    Isa::current().name()
}

/// Hints the CPU to bring the cache line holding `p` into L1 (no-op where the
/// architecture has no prefetch hint). Never faults, whatever the address.
#[inline(always)]
pub fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetch is a hint; it never faults, even on invalid addresses,
    // and SSE is part of the x86-64 baseline.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p as *const i8)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// A floating-point element type with the vector operations the kernels need.
///
/// Implemented for `f32` and `f64`; the methods are thin `#[inline(always)]`
/// wrappers over `pulp::Simd` so one kernel source serves both types.
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
    type V<S: Simd>: Copy;
    /// 0
    const ZERO: Self;
    /// 1
    const ONE: Self;
    /// Machine epsilon.
    const EPSILON: Self;
    /// `"f32"` or `"f64"`.
    const NAME: &'static str;

    /// Lanes per vector for `S`.
    fn lanes<S: Simd>() -> usize;
    /// Widens to f64.
    fn to_f64(self) -> f64;
    /// Narrows from f64 (rounding).
    fn from_f64(x: f64) -> Self;
    /// Whether the value is finite.
    fn is_finite(self) -> bool;
    /// Broadcast.
    fn splat<S: Simd>(s: S, x: Self) -> Self::V<S>;
    /// `a * b + c` (fused where the ISA has FMA).
    fn vmul_add<S: Simd>(s: S, a: Self::V<S>, b: Self::V<S>, c: Self::V<S>) -> Self::V<S>;
    /// `a * b`.
    fn vmul<S: Simd>(s: S, a: Self::V<S>, b: Self::V<S>) -> Self::V<S>;
    /// `a + b`.
    fn vadd<S: Simd>(s: S, a: Self::V<S>, b: Self::V<S>) -> Self::V<S>;
    /// Unaligned vector load.
    ///
    /// # Safety
    /// `p` must be valid for reading `lanes::<S>()` elements.
    unsafe fn load<S: Simd>(s: S, p: *const Self) -> Self::V<S>;
    /// Unaligned vector store.
    ///
    /// # Safety
    /// `p` must be valid for writing `lanes::<S>()` elements.
    unsafe fn store<S: Simd>(s: S, p: *mut Self, v: Self::V<S>);
    /// Loads the first `n < lanes` elements, zero elsewhere.
    ///
    /// # Safety
    /// `p` must be valid for reading `n` elements.
    unsafe fn load_partial<S: Simd>(s: S, p: *const Self, n: usize) -> Self::V<S>;
    /// Stores the first `n < lanes` lanes.
    ///
    /// # Safety
    /// `p` must be valid for writing `n` elements.
    unsafe fn store_partial<S: Simd>(s: S, p: *mut Self, n: usize, v: Self::V<S>);
    /// A memory mask enabling the first `n` lanes (`n ≤ lanes`).
    fn mask<S: Simd>(s: S, n: usize) -> pulp::MemMask<Self::M<S>>;
    /// The lane-mask type for `S`.
    type M<S: Simd>: Copy;
    /// Masked load (disabled lanes read as zero and touch no memory).
    ///
    /// # Safety
    /// Enabled lanes must be readable.
    unsafe fn load_masked<S: Simd>(s: S, m: pulp::MemMask<Self::M<S>>, p: *const Self) -> Self::V<S>;
}

macro_rules! impl_real {
    ($t:ty, $v:ident, $lanes:ident, $splat:ident, $fma:ident, $mul:ident, $add:ident,
     $pl:ident, $ps:ident, $eps:expr, $m:ident, $mb:ident, $ml:ident, $mt:ty) => {
        impl Real for $t {
            type V<S: Simd> = S::$v;
            type M<S: Simd> = S::$m;
            #[inline(always)]
            fn mask<S: Simd>(s: S, n: usize) -> pulp::MemMask<S::$m> {
                s.$mb(0, n as $mt)
            }
            #[inline(always)]
            unsafe fn load_masked<S: Simd>(s: S, m: pulp::MemMask<S::$m>, p: *const Self) -> S::$v {
                // SAFETY: the caller guarantees the enabled lanes are readable.
                unsafe { s.$ml(m, p) }
            }
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const EPSILON: Self = $eps;
            const NAME: &'static str = stringify!($t);
            #[inline(always)]
            fn lanes<S: Simd>() -> usize {
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
            fn splat<S: Simd>(s: S, x: Self) -> S::$v {
                s.$splat(x)
            }
            #[inline(always)]
            fn vmul_add<S: Simd>(s: S, a: S::$v, b: S::$v, c: S::$v) -> S::$v {
                s.$fma(a, b, c)
            }
            #[inline(always)]
            fn vmul<S: Simd>(s: S, a: S::$v, b: S::$v) -> S::$v {
                s.$mul(a, b)
            }
            #[inline(always)]
            fn vadd<S: Simd>(s: S, a: S::$v, b: S::$v) -> S::$v {
                s.$add(a, b)
            }
            #[inline(always)]
            unsafe fn load<S: Simd>(_s: S, p: *const Self) -> S::$v {
                // SAFETY: the caller guarantees `lanes` readable elements at `p`;
                // the vector type is Pod, so any bit pattern is valid.
                unsafe { core::ptr::read_unaligned(p as *const S::$v) }
            }
            #[inline(always)]
            unsafe fn store<S: Simd>(_s: S, p: *mut Self, v: S::$v) {
                // SAFETY: the caller guarantees `lanes` writable elements at `p`.
                unsafe { core::ptr::write_unaligned(p as *mut S::$v, v) }
            }
            #[inline(always)]
            unsafe fn load_partial<S: Simd>(s: S, p: *const Self, n: usize) -> S::$v {
                // SAFETY: the caller guarantees `n` readable elements at `p`.
                s.$pl(unsafe { core::slice::from_raw_parts(p, n) })
            }
            #[inline(always)]
            unsafe fn store_partial<S: Simd>(s: S, p: *mut Self, n: usize, v: S::$v) {
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
