//! Blocking parameters per ISA and element type, read from the ISA table
//! (`simd::isa`): the tile shape and block sizes live there, one row per ISA.
//!
//! Fixed constants, never probed from the cache hierarchy at run time (unlike the
//! `gemm` crate's `cache.rs`): KC fixes the order in which each dot product is
//! summed, so fixing it keeps results identical from run to run and machine to
//! machine of one ISA.

use crate::simd::{Isa, IsaToken, IsaVisitor, TileShape};

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
    /// Whether the microkernel loads a one-vector A panel (the rows past
    /// the last whole MR panel) with a mask of the tile's rows (AVX-512), so
    /// that such a partial panel of an A read in place needs no packed copy.
    pub(crate) masked_a: bool,
}

impl Params {
    /// The parameters for `isa` and an element of `elem_size` bytes (4 or 8).
    pub fn for_isa(isa: Isa, elem_size: usize) -> Params {
        struct Row(usize);
        impl IsaVisitor for Row {
            type Output = Params;
            fn visit<S: IsaToken>(self) -> Params {
                let (lanes, b) = if self.0 == 4 { (S::F32_LANES, S::F32) } else { (S::F64_LANES, S::F64) };
                let (mv, nr) = (S::Tile::MV, S::Tile::NR);
                Params { lanes, mv, mr: mv * lanes, nr, kc: b.kc, mc: b.mc, nc: b.nc, masked_a: S::AVX512F }
            }
        }
        let p = isa.visit(Row(elem_size));
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
