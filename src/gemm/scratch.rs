//! The products' scratch (GEMM packing buffers, the sparse products'
//! accumulator blocks and B slices): one buffer per calling thread, grown
//! fallibly on that thread before any task starts and cut into equal,
//! disjoint parts, one per task.
//!
//! So a product that cannot get its scratch returns
//! [`crate::Error::OutOfMemory`] before anything is written to C, and no
//! worker thread ever allocates. The buffer is kept between calls (a call
//! that fits allocates nothing).

use crate::error::Result;
use crate::ptr::MutPtr;
use std::cell::RefCell;

thread_local! {
    static SCRATCH: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

/// `tasks` disjoint parts of `words` 64-bit words each, carved from one
/// buffer that outlives the call's tasks.
#[derive(Clone, Copy)]
pub(crate) struct Parts {
    base: MutPtr<u64>,
    words: usize,
    tasks: usize,
}

impl Parts {
    /// Part `t` of the buffer, `words` words, 8-byte aligned.
    ///
    /// # Safety
    /// At most one live borrow per part: each task takes only its own `t`,
    /// once, inside the [`with_parts`] call that made `self`.
    pub(crate) unsafe fn part<'a>(self, t: usize) -> &'a mut [u64] {
        assert!(t < self.tasks, "scratch part {t} of {}", self.tasks);
        // SAFETY: parts t·words .. (t+1)·words are inside the buffer
        // (tasks·words words) and disjoint for distinct t; the caller takes
        // each once, while the buffer is borrowed by `with_parts`.
        unsafe { self.base.wrapping_offset((t * self.words) as isize).slice_mut(self.words) }
    }
}

/// Runs `f` with `tasks` parts of `words` words each, from this thread's
/// scratch, grown first if needed.
///
/// # Errors
/// [`crate::Error::OutOfMemory`] (naming `what` and the bytes) when the
/// buffer cannot grow; `f` is then not called.
pub(crate) fn with_parts<R>(tasks: usize, words: usize, what: &'static str, f: impl FnOnce(Parts) -> R) -> Result<R> {
    let total = tasks.checked_mul(words).ok_or_else(|| crate::Error::out_of_memory(usize::MAX, what))?;
    let run = |v: &mut Vec<u64>| -> Result<R> {
        if v.len() < total {
            crate::mem::try_reserve(v, total - v.len(), what)?;
            v.resize(total, 0);
        }
        Ok(f(Parts { base: MutPtr::from_mut_slice(&mut v[..total]), words, tasks }))
    };
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut v) => run(&mut v),
        // Only a product called from inside a product on the same thread
        // (none does today) lands here: it gets a buffer of its own.
        Err(_) => run(&mut Vec::new()),
    })
}

/// [`with_parts`] plus one more region of `extra` words after the parts,
/// for the caller alone (the tasks take only their parts).
///
/// # Errors
/// As [`with_parts`].
pub(crate) fn with_parts_and<R>(
    tasks: usize,
    words: usize,
    extra: usize,
    what: &'static str,
    f: impl FnOnce(Parts, &mut [u64]) -> R,
) -> Result<R> {
    let total = tasks.checked_mul(words).and_then(|t| t.checked_add(extra));
    let total = total.ok_or_else(|| crate::Error::out_of_memory(usize::MAX, what))?;
    // One part of `total` words, cut here into the tasks' parts and the rest.
    with_parts(1, total, what, |whole| {
        // SAFETY: the one part of `whole`, taken once.
        let v = unsafe { whole.part(0) };
        let (head, tail) = v.split_at_mut(tasks * words);
        f(Parts { base: MutPtr::from_mut_slice(head), words, tasks }, tail)
    })
}

/// Words of 64 bits that hold `n` elements of `T`.
pub(crate) fn words_of<T>(n: usize) -> usize {
    crate::mem::bytes_of::<T>(n).div_ceil(8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_disjoint_and_an_impossible_size_is_an_error() {
        let got = with_parts(3, 5, "test", |p| {
            for t in 0..3 {
                // SAFETY: each part is taken once.
                unsafe { p.part(t) }.fill(t as u64);
            }
            // SAFETY: the borrows above have ended.
            (0..3).map(|t| unsafe { p.part(t) }.to_vec()).collect::<Vec<_>>()
        })
        .unwrap();
        assert_eq!(got, [[0; 5], [1; 5], [2; 5]]);
        let e = with_parts(2, usize::MAX / 8, "huge", |_| ()).unwrap_err();
        assert!(matches!(e, crate::Error::OutOfMemory { what: "huge", .. }), "{e:?}");
        assert!(with_parts(3, usize::MAX, "huge", |_| ()).is_err());
    }
}
