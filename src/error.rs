//! The crate's error type and its single mapping to C status codes.
//!
//! This module is a leaf: every other module may use it, it uses none of them.

use std::fmt;

/// What went wrong. Every variant carries a human-readable message that names the
/// offending argument; [`Error::code`] maps it to the stable C status code.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    Io(String),
    /// A file's content is corrupt, truncated, foreign or of a future version.
    Format(String),
    /// Training diverged: the loss became NaN or infinite.
    Diverged(String),
    /// A panic was caught at the FFI boundary (always a bug in nnkern).
    Panic(String),
}

/// `Result` with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// The C status code of this error (`NNK_ERR_*`, never 0).
    pub fn code(&self) -> i32 {
        match self {
            Error::InvalidArgument(_) => 1,
            Error::NullPointer(_) => 2,
            Error::ShapeMismatch(_) => 3,
            Error::Overflow(_) => 4,
            Error::NonFinite(_) => 5,
            Error::Unsupported(_) => 6,
            Error::Io(_) => 7,
            Error::Format(_) => 8,
            Error::Diverged(_) => 9,
            Error::Panic(_) => 10,
        }
    }

    /// The message without the kind prefix.
    pub fn message(&self) -> &str {
        match self {
            Error::InvalidArgument(m)
            | Error::NullPointer(m)
            | Error::ShapeMismatch(m)
            | Error::Overflow(m)
            | Error::NonFinite(m)
            | Error::Unsupported(m)
            | Error::Io(m)
            | Error::Format(m)
            | Error::Diverged(m)
            | Error::Panic(m) => m,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Error::InvalidArgument(_) => "invalid argument",
            Error::NullPointer(_) => "null pointer",
            Error::ShapeMismatch(_) => "shape mismatch",
            Error::Overflow(_) => "overflow",
            Error::NonFinite(_) => "non-finite value",
            Error::Unsupported(_) => "unsupported",
            Error::Io(_) => "i/o error",
            Error::Format(_) => "bad file format",
            Error::Diverged(_) => "diverged",
            Error::Panic(_) => "internal panic",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind(), self.message())
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e.to_string())
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
/// Shorthand for [`Error::ShapeMismatch`].
pub(crate) fn shape(msg: impl Into<String>) -> Error {
    Error::ShapeMismatch(msg.into())
}
