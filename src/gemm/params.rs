//! Blocking parameters per ISA and element type.
//!
//! Fixed constants, never probed from the cache hierarchy at run time (unlike the
//! `gemm` crate's `cache.rs`): KC fixes the order in which each dot product is
//! summed, so fixing it keeps results identical from run to run and machine to
//! machine of one ISA. Sized for Zen 4 / Skylake-class caches:
//! * the `KC × NR` B micro-panel stays in L1 while the A panels stream past it;
//! * the `MC × KC` packed A block fits in half of a 1 MiB L2;
//! * the `KC × NC` packed B block fits in L3.

use crate::simd::Isa;

/// Blocking of one (ISA, element type) pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    /// SIMD lanes per vector.
    pub lanes: usize,
    /// Vectors per microtile column (MR = mv · lanes).
    pub mv: usize,
    /// Rows of a microtile.
    pub mr: usize,
    /// Columns of a microtile.
    pub nr: usize,
    /// Depth of one packed block (the k-dimension blocking).
    pub kc: usize,
    /// Rows of one packed A block (multiple of MR).
    pub mc: usize,
    /// Columns of one packed B block (multiple of NR).
    pub nc: usize,
}

impl Params {
    /// The parameters for `isa` and an element of `elem_size` bytes (4 or 8).
    pub fn for_isa(isa: Isa, elem_size: usize) -> Params {
        let f32_ = elem_size == 4;
        let p = match isa {
            #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
            Isa::V4 => {
                if f32_ {
                    Params { lanes: 16, mv: 2, mr: 32, nr: 12, kc: 384, mc: 192, nc: 2040 }
                } else {
                    Params { lanes: 8, mv: 2, mr: 16, nr: 12, kc: 256, mc: 144, nc: 1020 }
                }
            }
            #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
            Isa::V3 => {
                if f32_ {
                    Params { lanes: 8, mv: 2, mr: 16, nr: 6, kc: 256, mc: 144, nc: 2040 }
                } else {
                    Params { lanes: 4, mv: 2, mr: 8, nr: 6, kc: 256, mc: 96, nc: 1020 }
                }
            }
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => {
                if f32_ {
                    Params { lanes: 4, mv: 2, mr: 8, nr: 12, kc: 256, mc: 128, nc: 1020 }
                } else {
                    Params { lanes: 2, mv: 2, mr: 4, nr: 12, kc: 256, mc: 96, nc: 1020 }
                }
            }
            #[cfg(not(miri))]
            Isa::Scalar => Params { lanes: 1, mv: 4, mr: 4, nr: 4, kc: 128, mc: 64, nc: 512 },
            // Under Miri (which takes the scalar path), small blocks, so that
            // the small shapes Miri can afford still run every loop of the
            // nest several times (tests/miri.rs).
            #[cfg(miri)]
            Isa::Scalar => Params { lanes: 1, mv: 4, mr: 4, nr: 4, kc: 8, mc: 8, nc: 8 },
        };
        p.check();
        p
    }

    /// Asserts the invariants the driver relies on (matrixmultiply's
    /// `ensure_kernel_params`).
    fn check(&self) {
        assert_eq!(self.mr, self.mv * self.lanes);
        assert!(self.mc % self.mr == 0 && self.nc % self.nr == 0);
        assert!(self.mr <= self.mc && self.nr <= self.nc && self.kc > 0);
        assert!(self.mr * self.nr <= 64 * 12);
    }
}
