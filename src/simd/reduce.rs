//! Deterministic reductions: fixed chunks, each summed with vector
//! accumulators in index order, chunk results combined in f64 in index order.
//! The result depends only on the data and the ISA, never on threads.

use super::Isa;
use crate::simd::{Token, WithToken};

/// Elements per chunk (fixed: changing it changes the rounding).
pub(crate) const CHUNK: usize = 4096;

struct Sum<'a> {
    x: &'a [f32],
    square: bool,
}

impl WithToken for Sum<'_> {
    type Output = f64;
    #[inline(always)]
    fn with_token<S: Token>(self, s: S) -> f64 {
        let mut total = 0.0f64;
        for chunk in self.x.chunks(CHUNK) {
            total += chunk_sum(s, chunk, self.square);
        }
        total
    }
}

/// One chunk's sum (of squares with `square`): vector accumulators in index
/// order, reduced, then the scalar tail in f64.
#[inline(always)]
fn chunk_sum<S: Token>(s: S, chunk: &[f32], square: bool) -> f64 {
    let (head, tail) = S::as_simd_f32s(chunk);
    let mut acc = [s.splat_f32s(0.0); 4];
    let mut it = head.chunks_exact(4);
    for q in &mut it {
        for i in 0..4 {
            acc[i] = if square { s.mul_add_e_f32s(q[i], q[i], acc[i]) } else { s.add_f32s(acc[i], q[i]) };
        }
    }
    for (i, &v) in it.remainder().iter().enumerate() {
        acc[i] = if square { s.mul_add_e_f32s(v, v, acc[i]) } else { s.add_f32s(acc[i], v) };
    }
    let v = s.add_f32s(s.add_f32s(acc[0], acc[1]), s.add_f32s(acc[2], acc[3]));
    let mut c = s.reduce_sum_f32s(v) as f64;
    for &t in tail {
        c += if square { (t as f64) * (t as f64) } else { t as f64 };
    }
    c
}

/// Each chunk's Σ x² into `out` (one value per chunk of `x`, which starts a
/// chunk of the whole): [`sum_sq`] is these values added in f64 in order,
/// from 0, so that parts of `x` can be summed on different threads with
/// the same result.
pub(crate) struct ChunkSumsSq<'a> {
    pub(crate) x: &'a [f32],
    pub(crate) out: &'a mut [f64],
}

impl WithToken for ChunkSumsSq<'_> {
    type Output = ();
    #[inline(always)]
    fn with_token<S: Token>(self, s: S) {
        debug_assert_eq!(self.x.len().div_ceil(CHUNK), self.out.len());
        for (chunk, o) in self.x.chunks(CHUNK).zip(self.out.iter_mut()) {
            *o = chunk_sum(s, chunk, true);
        }
    }
}

/// Σ x, deterministic (see the module docs).
pub fn sum(x: &[f32]) -> f64 {
    Isa::current().run(Sum { x, square: false })
}

/// Σ x², deterministic.
pub fn sum_sq(x: &[f32]) -> f64 {
    Isa::current().run(Sum { x, square: true })
}

/// Whether every element is finite.
pub fn all_finite(x: &[f32]) -> bool {
    first_non_finite(x).is_none()
}

/// The index of the first NaN or ±Inf in `x`, if any.
///
/// Scans blocks of 256 elements branch-free (an exponent-field test the
/// compiler vectorises: about 1 instruction per 8 elements with AVX2, where
/// `iter().position(|v| !v.is_finite())` costs about 8 per element), and
/// searches only the block that contains one.
pub fn first_non_finite(x: &[f32]) -> Option<usize> {
    const EXP: u32 = 0x7f80_0000;
    let bad = |c: &[f32]| c.iter().fold(0u32, |acc, v| acc | ((v.to_bits() & EXP) == EXP) as u32) != 0;
    let mut base = 0;
    for c in x.chunks(256) {
        if bad(c) {
            return c.iter().position(|v| !v.is_finite()).map(|i| base + i);
        }
        base += c.len();
    }
    None
}
