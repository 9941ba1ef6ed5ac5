//! # nnkern
//!
//! Hand-tuned SIMD numeric kernels for small neural networks, with a C ABI.
//!
//! * [`gemm`]: `C ← alpha·op(A)·op(B) + beta·C` for f32/f64, any strides, our own
//!   BLIS-style kernels written once over `pulp` and dispatched at run time
//!   (AVX-512, AVX2+FMA, NEON, scalar), with `matrixmultiply` and (feature
//!   `blas`) system CBLAS as alternative backends.
//! * [`ffi`]: the C ABI (`include/nnkern.h`).
//!
//! ## Layering
//! `simd` → kernels (`gemm`) → `ffi`; a lower layer never imports a higher one.
//!
//! ## Threads and reproducibility
//! The thread count is process-wide ([`par::set_num_threads`], the
//! `NNK_NUM_THREADS` environment variable, default all cores) with a per-call
//! override ([`par::Par`]). Work is split over output blocks only, never over a
//! reduction, so results are bit-identical for any thread count. A call made
//! from inside a rayon worker runs serially.
//!
//! ## Instruction sets
//! The best ISA is detected once ([`simd::Isa::detect`]); results may differ in
//! the last bits between ISAs, never between runs or thread counts on one ISA.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod error;
pub mod ffi;
pub mod gemm;
pub mod nn;
pub mod ops;
pub mod optim;
pub mod par;
pub(crate) mod ptr;
pub mod simd;

pub use error::{Error, Result};

/// The crate version (`CARGO_PKG_VERSION`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The README's Rust examples run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
mod readme {}
