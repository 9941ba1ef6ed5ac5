//! The crate's error type and the single table of C status codes.
//!
//! [`Status`] is that table: each code's number, its C name (it is exported to
//! `include/nnkern.h` as `enum nnk_status`) and its text, which is both what
//! `nnk_status_str` returns and the prefix of [`Error`]'s `Display`. Nothing
//! else in the crate spells a code's number or text.
//!
//! This module is a leaf: every other module may use it, it uses none of them.

use std::borrow::Cow;
use std::ffi::CStr;
use std::fmt;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

/// Status codes: `NNK_OK` (0) for success, else one `NNK_ERR_*` code per kind
/// of failure. Every fallible function returns one of these values as an
/// `int32_t`; `nnk_status_str` gives each one's text. Codes are stable: a code
/// keeps its number and new codes get new numbers, so treat an unknown nonzero
/// code as a failure.
//
// (Rust: this enum is the C definition, exported by cbindgen as
// `enum nnk_status`, hence the C names of the variants; each `Error` variant
// maps to one code through `Error::status`.)
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[allow(non_camel_case_types)]
pub enum Status {
    /// Success.
    NNK_OK = 0,
    /// An argument is outside its domain (unknown enum code, leading dimension
    /// too small, misaligned or overlapping buffers, thread count above 1024, ...).
    NNK_ERR_INVALID_ARG = 1,
    /// A pointer that must be read or written through is NULL.
    NNK_ERR_NULL_POINTER = 2,
    /// Shapes of the operands disagree with each other or with a buffer length.
    NNK_ERR_SHAPE = 3,
    /// A size, stride or size product overflows.
    NNK_ERR_OVERFLOW = 4,
    /// Input contains NaN or infinity where finite values are required.
    NNK_ERR_NON_FINITE = 5,
    /// The requested feature or backend is not available in this build or on this CPU.
    NNK_ERR_UNSUPPORTED = 6,
    /// An I/O operation failed (the message names the file).
    NNK_ERR_IO = 7,
    /// A file is corrupt, truncated, foreign or of a future version.
    NNK_ERR_FORMAT = 8,
    /// Training diverged (non-finite loss); the last good weights were kept.
    NNK_ERR_DIVERGED = 9,
    /// A panic inside nnkern was caught (a bug; please report it).
    NNK_ERR_PANIC = 10,
    /// Memory for a buffer could not be allocated (the message gives its size
    /// in bytes and what it was for); nothing was changed.
    NNK_ERR_OUT_OF_MEMORY = 11,
}

impl Status {
    /// Every status, in code order.
    pub fn all() -> &'static [Status] {
        use Status::*;
        &[
            NNK_OK,
            NNK_ERR_INVALID_ARG,
            NNK_ERR_NULL_POINTER,
            NNK_ERR_SHAPE,
            NNK_ERR_OVERFLOW,
            NNK_ERR_NON_FINITE,
            NNK_ERR_UNSUPPORTED,
            NNK_ERR_IO,
            NNK_ERR_FORMAT,
            NNK_ERR_DIVERGED,
            NNK_ERR_PANIC,
            NNK_ERR_OUT_OF_MEMORY,
        ]
    }

    /// The C value of this status.
    pub fn code(self) -> i32 {
        self as i32
    }

    /// The status with C value `code`, if there is one.
    pub fn from_code(code: i32) -> Option<Status> {
        Status::all().iter().copied().find(|s| s.code() == code)
    }

    /// The short text of this status (`"ok"`, `"invalid argument"`, ...), as a
    /// NUL-terminated string with static lifetime (what `nnk_status_str` returns).
    pub fn c_text(self) -> &'static CStr {
        match self {
            Status::NNK_OK => c"ok",
            Status::NNK_ERR_INVALID_ARG => c"invalid argument",
            Status::NNK_ERR_NULL_POINTER => c"null pointer",
            Status::NNK_ERR_SHAPE => c"shape mismatch",
            Status::NNK_ERR_OVERFLOW => c"overflow",
            Status::NNK_ERR_NON_FINITE => c"non-finite value",
            Status::NNK_ERR_UNSUPPORTED => c"unsupported",
            Status::NNK_ERR_IO => c"i/o error",
            Status::NNK_ERR_FORMAT => c"bad file format",
            Status::NNK_ERR_DIVERGED => c"training diverged",
            Status::NNK_ERR_PANIC => c"internal panic",
            Status::NNK_ERR_OUT_OF_MEMORY => c"out of memory",
        }
    }

    /// The short text of this status ([`Status::c_text`] without the NUL).
    pub fn text(self) -> &'static str {
        // Every text above is ASCII.
        self.c_text().to_str().unwrap_or("unknown status")
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text())
    }
}

/// What went wrong. Every variant carries a human-readable message that names the
/// offending argument (or file, or size); [`Error::status`] maps it to its C
/// status code. New variants may come, so match with a wildcard arm.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// An argument has a value outside its domain (unknown enum code, bad stride, ...).
    InvalidArgument(String),
    /// A pointer that must be dereferenced was NULL (C API only).
    NullPointer(String),
    /// Shapes of the operands do not agree with each other or with a buffer length.
    ShapeMismatch(String),
    /// A size, stride or size product overflowed `usize`/`isize`.
    Overflow(String),
    /// Input data contains NaN or infinity where finite values are required.
    NonFinite(String),
    /// A requested backend or feature is not available in this build or on this CPU.
    Unsupported(String),
    /// I/O failure (model files, data files).
    #[non_exhaustive]
    Io {
        /// The kind of the underlying [`std::io::Error`] (`NotFound`,
        /// `PermissionDenied`, `IsADirectory`, ...).
        kind: ErrorKind,
        /// The file or directory the operation was on, when there is one.
        path: Option<PathBuf>,
        /// The full message, naming the path and the operation.
        message: String,
    },
    /// A file's content is corrupt, truncated, foreign or of a future version.
    Format(String),
    /// Training diverged: the loss became NaN or infinite.
    Diverged(String),
    /// A panic was caught at the FFI boundary (always a bug in nnkern).
    Panic(String),
    /// An allocation of `bytes` bytes failed; `what` says what it was for
    /// (e.g. `"the training workspace"`).
    #[non_exhaustive]
    OutOfMemory {
        /// The size of the allocation that failed, in bytes.
        bytes: usize,
        /// What the memory was for.
        what: &'static str,
    },
}

/// `Result` with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An [`Error::Io`] of `kind` about `path`, with the full `message`.
    pub fn io(kind: ErrorKind, path: impl AsRef<Path>, message: impl Into<String>) -> Error {
        Error::Io { kind, path: Some(path.as_ref().to_path_buf()), message: message.into() }
    }

    /// An [`Error::Io`] from `e`, raised while doing `action` (`"cannot read"`,
    /// `"cannot open"`, ...) on `path`: the message reads
    /// `"{action} '{path}': {e}"`.
    pub fn io_at(e: &std::io::Error, action: &str, path: impl AsRef<Path>) -> Error {
        let path = path.as_ref();
        Error::io(e.kind(), path, format!("{action} '{}': {e}", path.display()))
    }

    /// An [`Error::OutOfMemory`]: `bytes` could not be allocated for `what`.
    pub fn out_of_memory(bytes: usize, what: &'static str) -> Error {
        Error::OutOfMemory { bytes, what }
    }

    /// The C status of this error (never [`Status::NNK_OK`]).
    pub fn status(&self) -> Status {
        match self {
            Error::InvalidArgument(_) => Status::NNK_ERR_INVALID_ARG,
            Error::NullPointer(_) => Status::NNK_ERR_NULL_POINTER,
            Error::ShapeMismatch(_) => Status::NNK_ERR_SHAPE,
            Error::Overflow(_) => Status::NNK_ERR_OVERFLOW,
            Error::NonFinite(_) => Status::NNK_ERR_NON_FINITE,
            Error::Unsupported(_) => Status::NNK_ERR_UNSUPPORTED,
            Error::Io { .. } => Status::NNK_ERR_IO,
            Error::Format(_) => Status::NNK_ERR_FORMAT,
            Error::Diverged(_) => Status::NNK_ERR_DIVERGED,
            Error::Panic(_) => Status::NNK_ERR_PANIC,
            Error::OutOfMemory { .. } => Status::NNK_ERR_OUT_OF_MEMORY,
        }
    }

    /// The C status code of this error (`NNK_ERR_*`, never 0).
    pub fn code(&self) -> i32 {
        self.status().code()
    }

    /// The message without the status text in front.
    pub fn message(&self) -> Cow<'_, str> {
        match self {
            Error::InvalidArgument(m)
            | Error::NullPointer(m)
            | Error::ShapeMismatch(m)
            | Error::Overflow(m)
            | Error::NonFinite(m)
            | Error::Unsupported(m)
            | Error::Io { message: m, .. }
            | Error::Format(m)
            | Error::Diverged(m)
            | Error::Panic(m) => Cow::Borrowed(m),
            Error::OutOfMemory { bytes, what } => Cow::Owned(format!("cannot allocate {bytes} bytes for {what}")),
        }
    }
}

impl fmt::Display for Error {
    /// `"{status text}: {message}"`, e.g. `"shape mismatch: n_features = 3, the model takes 2"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.status().text(), self.message())
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    /// An [`Error::Io`] without a path (prefer [`Error::io_at`], which names it).
    fn from(e: std::io::Error) -> Self {
        Error::Io { kind: e.kind(), path: None, message: e.to_string() }
    }
}

/// Shorthand constructors used across the crate.
pub(crate) fn invalid(msg: impl Into<String>) -> Error {
    Error::InvalidArgument(msg.into())
}
/// Shorthand for [`Error::Overflow`].
pub(crate) fn overflow(msg: impl Into<String>) -> Error {
    Error::Overflow(msg.into())
}
/// `len == need`, else [`Error::ShapeMismatch`] naming the buffer `name`:
/// the one length check of every kernel entry point.
pub(crate) fn check_len(name: &str, len: usize, need: usize) -> Result<()> {
    if len != need {
        return Err(shape(format!("'{name}' has {len} elements, expected {need}")));
    }
    Ok(())
}

/// `rows × cols` elements, else [`Error::Overflow`]: the one size check of
/// every matrix argument.
pub(crate) fn elems(rows: usize, cols: usize) -> Result<usize> {
    rows.checked_mul(cols).ok_or_else(|| Error::Overflow(format!("{rows} × {cols} overflows")))
}

/// Shorthand for [`Error::ShapeMismatch`].
pub(crate) fn shape(msg: impl Into<String>) -> Error {
    Error::ShapeMismatch(msg.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One example of every variant (a new variant must be added here: the
    /// `match` in `every_variant_has_its_own_status` will not compile otherwise).
    fn examples() -> Vec<Error> {
        vec![
            Error::InvalidArgument("x".into()),
            Error::NullPointer("x".into()),
            Error::ShapeMismatch("x".into()),
            Error::Overflow("x".into()),
            Error::NonFinite("x".into()),
            Error::Unsupported("x".into()),
            Error::io(ErrorKind::NotFound, "/no/such", "cannot open '/no/such': not found"),
            Error::Format("x".into()),
            Error::Diverged("x".into()),
            Error::Panic("x".into()),
            Error::out_of_memory(1 << 40, "the training workspace"),
        ]
    }

    #[test]
    fn every_variant_has_its_own_status() {
        let mut seen = Vec::new();
        for e in examples() {
            // Exhaustive on purpose: a new variant must get a status and an example.
            match &e {
                Error::InvalidArgument(_)
                | Error::NullPointer(_)
                | Error::ShapeMismatch(_)
                | Error::Overflow(_)
                | Error::NonFinite(_)
                | Error::Unsupported(_)
                | Error::Io { .. }
                | Error::Format(_)
                | Error::Diverged(_)
                | Error::Panic(_)
                | Error::OutOfMemory { .. } => {}
            }
            assert_ne!(e.status(), Status::NNK_OK);
            assert_eq!(e.code(), e.status() as i32);
            assert!(!seen.contains(&e.status()), "{e:?} shares its status");
            seen.push(e.status());
            // Display is the status text, then the message.
            assert_eq!(e.to_string(), format!("{}: {}", e.status().text(), e.message()));
        }
        // Every status but success belongs to exactly one variant.
        let mut all: Vec<Status> = Status::all().iter().copied().filter(|&s| s != Status::NNK_OK).collect();
        all.sort_by_key(|s| s.code());
        seen.sort_by_key(|s| s.code());
        assert_eq!(seen, all);
    }

    #[test]
    fn status_table_is_dense_and_distinct() {
        for (i, s) in Status::all().iter().enumerate() {
            assert_eq!(s.code(), i as i32, "{s:?}: codes are 0, 1, 2, ... in order");
            assert_eq!(Status::from_code(s.code()), Some(*s));
            assert!(!s.text().is_empty() && s.text().is_ascii());
            assert_eq!(Status::all().iter().filter(|t| t.text() == s.text()).count(), 1, "{s:?} text reused");
        }
        assert_eq!(Status::from_code(-1), None);
        assert_eq!(Status::from_code(Status::all().len() as i32), None);
        assert_eq!(Status::NNK_ERR_DIVERGED.text(), "training diverged");
    }

    #[test]
    fn out_of_memory_names_size_and_purpose() {
        let e = Error::out_of_memory(3_000_000_000, "the weights of layer 2");
        assert_eq!(e.code(), 11);
        assert_eq!(e.status(), Status::NNK_ERR_OUT_OF_MEMORY);
        assert_eq!(e.to_string(), "out of memory: cannot allocate 3000000000 bytes for the weights of layer 2");
        assert!(matches!(e, Error::OutOfMemory { bytes: 3_000_000_000, what: "the weights of layer 2" }));
    }

    #[test]
    fn io_keeps_kind_and_path() {
        let err = std::io::Error::from(ErrorKind::PermissionDenied);
        let e = Error::io_at(&err, "cannot read", "/data/x.csv");
        match &e {
            Error::Io { kind, path, message } => {
                assert_eq!(*kind, ErrorKind::PermissionDenied);
                assert_eq!(path.as_deref(), Some(Path::new("/data/x.csv")));
                assert!(message.starts_with("cannot read '/data/x.csv': "), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(e.code(), 7);
        assert!(e.to_string().starts_with("i/o error: cannot read '/data/x.csv'"));
        let bare = Error::from(std::io::Error::from(ErrorKind::NotFound));
        assert!(matches!(bare, Error::Io { kind: ErrorKind::NotFound, path: None, .. }));
    }
}
