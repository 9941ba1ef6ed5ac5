//! A fixed-length f32 buffer whose first element starts a cache line.
//!
//! `Vec<f32>` is only 4-byte aligned. glibc's allocator returns 16-byte
//! aligned blocks, so a 64-byte AVX-512 vector read from a `Vec` straddles
//! two cache lines unless the block happens to start one, and where it
//! starts depends on everything the process allocated before (so run times
//! moved with it: see BENCHMARKS.md, "Design measurements"). [`AlignedVec`]
//! starts every buffer on a
//! 64-byte boundary, so a kernel's vectors at multiples of 16 elements never
//! split a line; and a buffer of at least a page (1 Ki elements) on a page
//! boundary, so that buffers streamed together (the optimizer's weights,
//! gradient and moments) sit at the same offset within their pages: a load
//! then never follows a store whose address differs by a multiple of 4 KiB,
//! which the core would first take for the same address ("4K aliasing").
//!
//! Inside a buffer, alignment is the caller's: the trainer's flat parameter
//! buffer starts on a page, and so does the first layer's weight block, but
//! later blocks start where the model file's layout puts them.

use std::ops::{Deref, DerefMut};

/// One cache line of f32s: the unit of storage, and of alignment.
#[derive(Clone, Copy, Default, PartialEq)]
#[repr(C, align(64))]
struct Line([f32; 16]);

/// Elements from which a buffer starts a page.
const PAGE_ALIGNED_FROM: usize = 1024;
/// Lines per 4 KiB page.
const PAGE_LINES: usize = 64;

/// A fixed-length, zero-initialised f32 buffer aligned to 64 bytes (to
/// 4 KiB from 1 Ki elements); derefs to `[f32]`.
#[derive(Default)]
pub struct AlignedVec {
    lines: Vec<Line>,
    /// The line the data starts at (the first page boundary of `lines`).
    start: usize,
    len: usize,
}

impl AlignedVec {
    /// `len` zeros. Panics (aborts) when the memory cannot be had; the
    /// library itself uses [`AlignedVec::try_zeros`].
    pub fn zeros(len: usize) -> AlignedVec {
        AlignedVec::try_zeros(len, "an AlignedVec").unwrap_or_else(|e| panic!("{e}"))
    }

    /// `len` zeros, or [`crate::Error::OutOfMemory`] naming the size and
    /// `what` the buffer is for.
    pub fn try_zeros(len: usize, what: &'static str) -> crate::Result<AlignedVec> {
        let n = len.div_ceil(16);
        let oom = || crate::Error::out_of_memory(len.saturating_mul(4), what);
        if len < PAGE_ALIGNED_FROM {
            let mut lines = Vec::new();
            lines.try_reserve_exact(n).map_err(|_| oom())?;
            lines.resize(n, Line::default());
            return Ok(AlignedVec { lines, start: 0, len });
        }
        // Up to a page more, to start on its boundary.
        let total = n.checked_add(PAGE_LINES - 1).ok_or_else(oom)?;
        let mut lines = Vec::new();
        lines.try_reserve_exact(total).map_err(|_| oom())?;
        lines.resize(total, Line::default());
        let start = (lines.as_ptr() as usize).next_multiple_of(4096) - lines.as_ptr() as usize;
        Ok(AlignedVec { lines, start: start / 64, len })
    }

    /// A copy, or [`crate::Error::OutOfMemory`] (`Clone` aborts instead).
    pub fn try_clone(&self, what: &'static str) -> crate::Result<AlignedVec> {
        let mut v = AlignedVec::try_zeros(self.len, what)?;
        v.copy_from_slice(self);
        Ok(v)
    }

    /// A copy of `x`.
    pub fn from_slice(x: &[f32]) -> AlignedVec {
        let mut v = AlignedVec::zeros(x.len());
        v.copy_from_slice(x);
        v
    }
}

impl Deref for AlignedVec {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        // SAFETY: `lines[start..]` holds `16·(lines.len() − start) ≥ len`
        // initialised f32s, contiguous (`Line` is `repr(C)` over `[f32; 16]`,
        // 64 bytes, no padding); the pointer is aligned and non-null even
        // when empty.
        unsafe { std::slice::from_raw_parts(self.lines[self.start..].as_ptr() as *const f32, self.len) }
    }
}

impl DerefMut for AlignedVec {
    fn deref_mut(&mut self) -> &mut [f32] {
        // SAFETY: as in `deref`, and `&mut self` makes the borrow unique.
        unsafe { std::slice::from_raw_parts_mut(self.lines[self.start..].as_mut_ptr() as *mut f32, self.len) }
    }
}

impl Clone for AlignedVec {
    /// A copy in a buffer of its own, aligned as a new one is.
    fn clone(&self) -> AlignedVec {
        AlignedVec::from_slice(self)
    }

    /// Copies in place when the lengths agree (no allocation).
    fn clone_from(&mut self, source: &AlignedVec) {
        if self.len == source.len {
            self.copy_from_slice(source);
        } else {
            *self = source.clone();
        }
    }
}

impl From<Vec<f32>> for AlignedVec {
    fn from(v: Vec<f32>) -> AlignedVec {
        AlignedVec::from_slice(&v)
    }
}

impl PartialEq for AlignedVec {
    fn eq(&self, other: &AlignedVec) -> bool {
        **self == **other
    }
}

impl std::fmt::Debug for AlignedVec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (**self).fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn impossible_sizes_are_errors() {
        let e = AlignedVec::try_zeros(usize::MAX / 8, "a test buffer").unwrap_err();
        assert_eq!(e, crate::Error::out_of_memory(usize::MAX / 8 * 4, "a test buffer"));
        assert!(AlignedVec::try_zeros(usize::MAX, "x").is_err());
        let v = AlignedVec::try_zeros(3000, "x").unwrap();
        assert_eq!(v.try_clone("y").unwrap(), v);
    }

    #[test]
    fn aligned_zeroed_and_exactly_as_long_as_asked() {
        for n in [0usize, 1, 15, 16, 17, 100, 1023, 1024, 1025, 5000] {
            let align = if n >= PAGE_ALIGNED_FROM { 4096 } else { 64 };
            let mut v = AlignedVec::zeros(n);
            assert_eq!(v.len(), n);
            assert_eq!(v.as_ptr() as usize % align, 0, "n = {n}");
            assert!(v.iter().all(|&x| x == 0.0));
            for (i, x) in v.iter_mut().enumerate() {
                *x = i as f32;
            }
            let c = v.clone();
            assert_eq!(c.as_ptr() as usize % align, 0);
            assert_eq!(c, v);
            let mut d = AlignedVec::zeros(n);
            let at = d.as_ptr();
            d.clone_from(&v);
            assert_eq!((d.as_ptr(), &d), (at, &v), "clone_from copies in place");
            let mut e = AlignedVec::zeros(n + 1);
            e.clone_from(&v);
            assert_eq!(e, v);
            let w = AlignedVec::from((0..n).map(|i| i as f32).collect::<Vec<_>>());
            assert_eq!(w, v);
            assert_eq!(format!("{w:?}"), format!("{:?}", (0..n).map(|i| i as f32).collect::<Vec<_>>()));
        }
    }
}
