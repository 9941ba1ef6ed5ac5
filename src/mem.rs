//! Fallible allocation: every buffer whose size comes from the caller (a
//! model's weights, the trainer's buffers, a data file's contents, predict's
//! workspace) is allocated through these helpers, so that a request the
//! system cannot satisfy is an [`Error::OutOfMemory`] naming its size and
//! purpose, never an abort of the host process.
//!
//! The products' scratch (GEMM packing, the sparse products' accumulator
//! blocks and B slices) is bounded by the blocking constants, yet it is
//! reserved fallibly too, on the calling thread before any task writes C
//! (`gemm::scratch`).
//!
//! What stays infallible, and why: small per-call records of a size fixed
//! by the crate (one `EpochRecord` per epoch, a layer list bounded by
//! `MAX_LAYERS`, error messages), and the thread pool's own bookkeeping.
//! Failing there means the process is out of memory anyway.
//!
//! This module is a leaf above `error`: it uses no other module.

use crate::error::{Error, Result};

/// Bytes of `n` elements of `T` (saturating: an impossible size is still a
/// number to report).
pub(crate) fn bytes_of<T>(n: usize) -> usize {
    n.saturating_mul(core::mem::size_of::<T>())
}

/// Reserves room for `additional` more elements in `v`.
pub(crate) fn try_reserve<T>(v: &mut Vec<T>, additional: usize, what: &'static str) -> Result<()> {
    v.try_reserve_exact(additional)
        .map_err(|_| Error::out_of_memory(bytes_of::<T>(v.len().saturating_add(additional)), what))
}

/// `n` copies of `value`.
pub(crate) fn try_vec<T: Clone>(n: usize, value: T, what: &'static str) -> Result<Vec<T>> {
    let mut v = Vec::new();
    try_reserve(&mut v, n, what)?;
    v.resize(n, value);
    Ok(v)
}

/// A copy of `s`.
pub(crate) fn try_to_vec<T: Clone>(s: &[T], what: &'static str) -> Result<Vec<T>> {
    let mut v = Vec::new();
    try_reserve(&mut v, s.len(), what)?;
    v.extend_from_slice(s);
    Ok(v)
}

/// The items of an iterator of known length `n`, collected into one
/// allocation made first.
pub(crate) fn try_collect<T>(n: usize, it: impl IntoIterator<Item = T>, what: &'static str) -> Result<Vec<T>> {
    let mut v = Vec::new();
    try_reserve(&mut v, n, what)?;
    v.extend(it);
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn impossible_sizes_are_errors_naming_size_and_purpose() {
        let e = try_vec(usize::MAX / 2, 0u32, "a test buffer").unwrap_err();
        assert_eq!(e, Error::out_of_memory(usize::MAX, "a test buffer"));
        let mut v = vec![1u8, 2];
        assert!(try_reserve(&mut v, usize::MAX, "x").is_err());
        assert_eq!(v, [1, 2], "a failed reservation leaves the vector as it was");
        try_push(&mut v, 9, "x").unwrap();
        assert_eq!(v, [1, 2, 9]);
        assert_eq!(try_to_vec(&v, "x").unwrap(), v);
        assert_eq!(try_collect(3, 0..3, "x").unwrap(), [0, 1, 2]);
    }
}

/// The whole file at `path` (`std::fs::read`, which reserves the file's size
/// fallibly): running out of memory is [`Error::OutOfMemory`] with the
/// file's size and `what`, other failures an I/O error naming the path.
pub(crate) fn read_file(path: &std::path::Path, what: &'static str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| read_error(&e, path, what))
}

/// [`read_file`] as UTF-8 text (`std::fs::read_to_string`).
pub(crate) fn read_text(path: &std::path::Path, what: &'static str) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| read_error(&e, path, what))
}

fn read_error(e: &std::io::Error, path: &std::path::Path, what: &'static str) -> Error {
    if e.kind() == std::io::ErrorKind::OutOfMemory {
        let bytes = std::fs::metadata(path).map_or(0, |m| usize::try_from(m.len()).unwrap_or(usize::MAX));
        Error::out_of_memory(bytes, what)
    } else {
        Error::io_at(e, "cannot read", path)
    }
}

/// Pushes `item`, growing `v` fallibly (by doubling, as `push` does).
pub(crate) fn try_push<T>(v: &mut Vec<T>, item: T, what: &'static str) -> Result<()> {
    if v.len() == v.capacity() {
        try_reserve(v, v.len().max(64), what)?;
    }
    v.push(item);
    Ok(())
}
