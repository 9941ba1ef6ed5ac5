//! The instruction-set table: one [`IsaToken`] impl per ISA (pulp's token for
//! it, its names, its GEMM blocking for f32 and f64, its register tile).
//! Everything else about an ISA derives from that row: [`Isa::name`],
//! [`Isa::c_name`], [`Isa::is_available`], [`Isa::dispatch`],
//! `gemm::Params::for_isa`, the GEMM driver's block loop and the C API's
//! `nnk_isa_name`. [`Isa::visit`] is the one place that maps an [`Isa`] value
//! to its token type.
//!
//! Adding an ISA: a variant of [`Isa`], its entry in [`Isa::all`], its arm in
//! [`Isa::visit`], its `impl IsaToken` and its `impl Token` below (plus, if
//! its register tile is new, a `tile!` line).

use core::ffi::CStr;
use pulp::{Simd, WithSimd};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, Ordering};

/// An instruction set nnkern can run its kernels on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
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

/// The GEMM's cache blocking for one element type (fixed, never probed: KC
/// fixes the order in which each dot product is summed, so results do not
/// change between runs or machines of one ISA).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Blocking {
    /// Depth of one packed block (the k-dimension blocking).
    pub kc: usize,
    /// Rows of one packed A block (multiple of the tile's rows).
    pub mc: usize,
    /// Columns of one packed B block (multiple of the tile's columns).
    pub nc: usize,
}

/// What a kernel may learn from its token type beyond `pulp::Simd`: the CPU
/// features that holding the token proves. Every kernel of the crate is
/// generic over `S: Token` (entered through [`Isa::run`]), and each answer is
/// the token's own `impl`, fixed at compile time. Vector size alone is no
/// proof: pulp's `Scalar256b` and `Scalar512b` have 256- and 512-bit vectors
/// and need no CPU feature.
///
/// Public in a private module: the crate's public `Real` trait names it in
/// its bounds, and no one outside can name or implement it.
pub trait Token: Simd {
    /// The token exists only once AVX2 (and so AVX) was detected: native
    /// masked loads and stores, the sparse row scan's 8-wide path.
    const AVX2: bool = false;
    /// The token exists only once AVX-512F, with the rest of pulp's V4 set
    /// (BW, CD, DQ, VL), was detected: `div_sqrt_plus`'s and `div_normal`'s
    /// estimate paths, the sparse row scan's 16-wide compress path.
    const AVX512F: bool = false;
}

/// A kernel generic over the token type (the crate's `pulp::WithSimd`, with
/// `S: Token`); run it with [`Isa::run`] or [`vectorize`].
pub trait WithToken {
    /// What the kernel returns.
    type Output;
    /// Runs the kernel with token `s`, inside its target-feature region.
    fn with_token<S: Token>(self, s: S) -> Self::Output;
}

/// Runs `op` with token `s` inside `s`'s target-feature region (pulp's
/// `vectorize`).
#[inline(always)]
pub(crate) fn vectorize<S: Token, Op: WithToken>(s: S, op: Op) -> Op::Output {
    struct Enter<S, Op>(S, Op);
    impl<S: Token, Op: WithToken> WithSimd for Enter<S, Op> {
        type Output = Op::Output;
        #[inline(always)]
        fn with_simd<S2: Simd>(self, _s: S2) -> Op::Output {
            // pulp hands back the token it was called on, `self.0`.
            self.1.with_token(self.0)
        }
    }
    Simd::vectorize(s, Enter(s, op))
}

/// One row of the ISA table, implemented on pulp's token type for the ISA.
pub(crate) trait IsaToken: Token {
    /// Short lowercase name (`"avx512"`, …).
    const NAME: &'static str;
    /// [`IsaToken::NAME`] as a static C string (the C API's).
    const C_NAME: &'static CStr;
    /// GEMM blocking for f32.
    const F32: Blocking;
    /// GEMM blocking for f64.
    const F64: Blocking;
    /// The GEMM's register tile (vectors of rows × columns).
    type Tile: TileShape;
    /// The token, if this CPU supports the ISA.
    fn detect() -> Option<Self>;
}

/// Blocking sized for Zen 4 / Skylake-class caches: the `KC × NR` B
/// micro-panel stays in L1, the `MC × KC` A block in half of a 1 MiB L2, the
/// `KC × NC` B block in L3.
#[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
impl IsaToken for pulp::x86::V4 {
    const NAME: &'static str = "avx512";
    const C_NAME: &'static CStr = c"avx512";
    const F32: Blocking = Blocking { kc: 384, mc: 192, nc: 2040 };
    const F64: Blocking = Blocking { kc: 256, mc: 144, nc: 1020 };
    // 32 zmm registers: 2 vectors × 12 columns = 24 accumulators.
    type Tile = Mv2Nr12;
    #[inline(always)]
    fn detect() -> Option<Self> {
        pulp::x86::V4::try_new()
    }
}

#[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
impl Token for pulp::x86::V4 {
    const AVX2: bool = true;
    const AVX512F: bool = true;
}

#[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
impl IsaToken for pulp::x86::V3 {
    const NAME: &'static str = "avx2";
    const C_NAME: &'static CStr = c"avx2";
    const F32: Blocking = Blocking { kc: 256, mc: 144, nc: 2040 };
    const F64: Blocking = Blocking { kc: 256, mc: 96, nc: 1020 };
    // 16 ymm registers: 2 vectors × 6 columns = 12 accumulators.
    type Tile = Mv2Nr6;
    #[inline(always)]
    fn detect() -> Option<Self> {
        pulp::x86::V3::try_new()
    }
}

#[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
impl Token for pulp::x86::V3 {
    const AVX2: bool = true;
}

#[cfg(target_arch = "aarch64")]
impl IsaToken for pulp::aarch64::Neon {
    const NAME: &'static str = "neon";
    const C_NAME: &'static CStr = c"neon";
    const F32: Blocking = Blocking { kc: 256, mc: 128, nc: 1020 };
    const F64: Blocking = Blocking { kc: 256, mc: 96, nc: 1020 };
    // 32 q registers: 2 vectors × 12 columns = 24 accumulators.
    type Tile = Mv2Nr12;
    #[inline(always)]
    fn detect() -> Option<Self> {
        pulp::aarch64::Neon::try_new()
    }
}

#[cfg(target_arch = "aarch64")]
impl Token for pulp::aarch64::Neon {}

impl IsaToken for pulp::Scalar {
    const NAME: &'static str = "scalar";
    const C_NAME: &'static CStr = c"scalar";
    #[cfg(not(miri))]
    const F32: Blocking = Blocking { kc: 128, mc: 64, nc: 512 };
    #[cfg(not(miri))]
    const F64: Blocking = Blocking { kc: 128, mc: 64, nc: 512 };
    // Under Miri (which takes the scalar path), small blocks, so that the
    // small shapes Miri can afford still run every loop of the nest several
    // times (tests/miri.rs).
    #[cfg(miri)]
    const F32: Blocking = Blocking { kc: 8, mc: 8, nc: 8 };
    #[cfg(miri)]
    const F64: Blocking = Blocking { kc: 8, mc: 8, nc: 8 };
    // 4 × 4 scalars.
    type Tile = Mv4Nr4;
    #[inline(always)]
    fn detect() -> Option<Self> {
        Some(pulp::Scalar::new())
    }
}

impl Token for pulp::Scalar {}

/// Something to run with the token type of an [`Isa`] (see [`Isa::visit`]).
pub(crate) trait IsaVisitor {
    /// What the visit returns.
    type Output;
    /// Runs with `S`, the token type of the ISA visited.
    fn visit<S: IsaToken>(self) -> Self::Output;
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

    /// Runs `v` with this ISA's token type: the only map from an [`Isa`]
    /// value to its row of the table.
    #[inline(always)]
    pub(crate) fn visit<V: IsaVisitor>(self, v: V) -> V::Output {
        match self {
            Isa::Scalar => v.visit::<pulp::Scalar>(),
            #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
            Isa::V3 => v.visit::<pulp::x86::V3>(),
            #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
            Isa::V4 => v.visit::<pulp::x86::V4>(),
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => v.visit::<pulp::aarch64::Neon>(),
        }
    }

    /// Whether this CPU supports the ISA.
    pub fn is_available(self) -> bool {
        struct Available;
        impl IsaVisitor for Available {
            type Output = bool;
            fn visit<S: IsaToken>(self) -> bool {
                S::detect().is_some()
            }
        }
        self.visit(Available)
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
        struct Name;
        impl IsaVisitor for Name {
            type Output = &'static str;
            fn visit<S: IsaToken>(self) -> &'static str {
                S::NAME
            }
        }
        self.visit(Name)
    }

    /// [`Isa::name`] as a static C string.
    pub fn c_name(self) -> &'static CStr {
        struct Name;
        impl IsaVisitor for Name {
            type Output = &'static CStr;
            fn visit<S: IsaToken>(self) -> &'static CStr {
                S::C_NAME
            }
        }
        self.visit(Name)
    }

    /// Runs `op` with this ISA's token inside its target-feature region.
    ///
    /// Falls back to scalar if the ISA is not available on this CPU, so this is
    /// always safe to call. (The crate's own kernels are `WithToken`s, run
    /// with `Isa::run`.)
    #[inline]
    pub fn dispatch<Op: WithSimd>(self, op: Op) -> Op::Output {
        struct Plain<Op>(Op);
        impl<Op: WithSimd> WithToken for Plain<Op> {
            type Output = Op::Output;
            #[inline(always)]
            fn with_token<S: Token>(self, s: S) -> Op::Output {
                self.0.with_simd(s)
            }
        }
        self.run(Plain(op))
    }

    /// Runs the kernel `op` with this ISA's token inside its target-feature
    /// region; scalar if the ISA is not available on this CPU.
    #[inline]
    pub(crate) fn run<Op: WithToken>(self, op: Op) -> Op::Output {
        struct Run<Op>(Op);
        impl<Op: WithToken> IsaVisitor for Run<Op> {
            type Output = Op::Output;
            #[inline(always)]
            fn visit<S: IsaToken>(self) -> Op::Output {
                match S::detect() {
                    Some(s) => vectorize(s, self.0),
                    None => vectorize(pulp::Scalar::new(), self.0),
                }
            }
        }
        self.visit(Run(op))
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

/// A register tile of `MV` vectors of rows × `NR` columns, with the table of
/// its edge variants (the `gemm` crate's approach: every `(mv, n)` with
/// `mv ≤ MV`, `n ≤ NR` is its own monomorphised kernel).
pub(crate) trait TileShape {
    /// Vectors of rows per tile.
    const MV: usize;
    /// Columns per tile.
    const NR: usize;
    /// Runs `v` for the `(mv, n)` variant.
    ///
    /// # Safety
    /// The contract of `v`'s [`TileVisitor::visit`].
    unsafe fn select<V: TileVisitor>(mv: usize, n: usize, v: V) -> V::Output;
}

/// A kernel for one `(MV, NR)` tile variant (see [`TileShape::select`]).
pub(crate) trait TileVisitor {
    /// What the kernel returns.
    type Output;
    /// Runs the `MV`-vector × `NR`-column variant.
    ///
    /// # Safety
    /// The implementor's.
    unsafe fn visit<const MV: usize, const NR: usize>(self) -> Self::Output;
}

macro_rules! tile {
    ($name:ident, $mv:literal, $nr:literal; $( ($a:literal, $b:literal) ),* $(,)?) => {
        /// Register tile configuration (see [`TileShape`]).
        pub(crate) struct $name;
        impl TileShape for $name {
            const MV: usize = $mv;
            const NR: usize = $nr;
            #[inline(always)]
            unsafe fn select<V: TileVisitor>(mv: usize, n: usize, v: V) -> V::Output {
                // SAFETY: forwarded contract.
                unsafe {
                    match (mv, n) {
                        $( ($a, $b) => v.visit::<$a, $b>(), )*
                        _ => unreachable!("tile {}x{} outside the {}x{} table", mv, n, $mv, $nr),
                    }
                }
            }
        }
    };
}

tile!(Mv2Nr12, 2, 12;
    (1,1),(1,2),(1,3),(1,4),(1,5),(1,6),(1,7),(1,8),(1,9),(1,10),(1,11),(1,12),
    (2,1),(2,2),(2,3),(2,4),(2,5),(2,6),(2,7),(2,8),(2,9),(2,10),(2,11),(2,12));
#[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
tile!(Mv2Nr6, 2, 6;
    (1,1),(1,2),(1,3),(1,4),(1,5),(1,6),
    (2,1),(2,2),(2,3),(2,4),(2,5),(2,6));
tile!(Mv4Nr4, 4, 4;
    (1,1),(1,2),(1,3),(1,4),(2,1),(2,2),(2,3),(2,4),
    (3,1),(3,2),(3,3),(3,4),(4,1),(4,2),(4,3),(4,4));
