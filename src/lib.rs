//! # nnkern
//!
//! Hand-tuned SIMD numeric kernels for small neural networks, an MLP trainer
//! built on them, and a C ABI.
//!
//! Most users want the layer API: build an [`Mlp`], describe the training with
//! a [`TrainConfig`] (scikit-learn's names and defaults), [`Mlp::fit`] it,
//! predict, [`Mlp::save`] and [`Mlp::load`] it.
//!
//! ```
//! use nnkern::{Activation, Layer, Mlp, Targets, Task, TrainConfig};
//!
//! // XOR: 4 samples × 2 features, classes 0/1.
//! let x = [0.0f32, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0];
//! let y = [0u32, 1, 1, 0];
//! let mut model = Mlp::new(2, &[Layer { units: 16, activation: Activation::Tanh }], 2, Task::MultiClass, 0)?;
//! let cfg = TrainConfig { max_iter: 500, batch_size: 4, learning_rate_init: 0.05, ..Default::default() };
//! let history = model.fit(&x, 4, Targets::Labels(&y), &cfg, None, None)?;
//! assert!(history.epochs.len() <= 500);
//! assert_eq!(model.predict_class(&x, 4)?, [0, 1, 1, 0]);
//! # Ok::<(), nnkern::Error>(())
//! ```
//!
//! ## Modules, lowest layer first
//!
//! * [`simd`]: instruction-set detection ([`simd::Isa`]), the element
//!   abstraction, vectorised exp/log/tanh/sigmoid, subnormal flushing.
//! * Kernels, on `simd` only:
//!   * [`gemm`]: `C ← alpha·op(A)·op(B) + beta·C` for f32/f64 with any strides,
//!     our own BLIS-style kernels written once over `pulp` and dispatched at run
//!     time (AVX-512, AVX2+FMA, NEON, scalar), `matrixmultiply` and (feature
//!     `blas`) the system CBLAS as alternative backends, and sparse × dense
//!     products;
//!   * [`ops`]: activations and their derivatives, losses, fused dense
//!     forward/backward steps;
//!   * [`optim`]: SGD (momentum, Nesterov), Adam, AdamW, RMSprop updates in
//!     one pass.
//! * [`nn`]: the layer API on the kernels, in safe Rust only: [`Mlp`],
//!   [`TrainConfig`], model files ([`nn::io`]), CSV/IDX/MNIST readers
//!   ([`nn::data`]).
//! * `ffi` (feature `capi`): the C ABI declared by `include/nnkern.h`, on
//!   `nn` and the kernels.
//!
//! Beside the layers: [`error`] (the [`Error`] type and the C status table
//! [`Status`]), [`par`] (thread policy) and two crate-private leaves: `ptr`
//! (raw pointers that cross threads) and `sys` (safe wrappers over the system
//! calls model files need). A lower layer never imports a higher one
//! (`tests/header.rs` checks).
//!
//! ## Features
//!
//! * `capi`: compiles the C API (`nnkern::ffi`, the `nnk_*` symbols). Off by
//!   default: a Rust dependent needs none of it, and the crate's only crate
//!   type is `rlib`. The C libraries are built with `cargo rustc --release
//!   --lib --features capi --crate-type staticlib,cdylib` (cargo-c's
//!   convention; `bindings/install.sh` does it and installs the header,
//!   pkg-config and CMake files).
//! * `blas`: the system CBLAS as a GEMM backend (links `libopenblas`).
//!
//! ## Threads and reproducibility
//! The thread count is process-wide ([`par::set_num_threads`], the
//! `NNK_NUM_THREADS` environment variable, default all cores) with a per-call
//! override ([`par::Par`]). Work is split over output blocks only, never over a
//! reduction, so results are bit-identical for any thread count. (A sparse
//! layer's forward product with 128 KiB of weights or more,
//! [`ops::fused::dense_forward_sparse`], sums its inputs in two fixed halves
//! on any thread count; two threads take a half each.) A call made from
//! inside a rayon worker runs serially.
//!
//! ## Instruction sets
//! The best ISA is detected once ([`simd::Isa::detect`]); results may differ in
//! the last bits between ISAs, never between runs or thread counts on one ISA
//! and CPU. (On AVX-512, Adam's and RMSprop's steps and the quotients inside
//! tanh and sigmoid, and so the activations, losses and training built on
//! them, also depend on the CPU's vendor: AMD's (and Hygon's) use IEEE square
//! roots and divisions, others the hardware's estimates refined by Newton
//! steps, within 8 ulp of them for Adam and 1 ulp for tanh's and sigmoid's
//! quotients.)

#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks)]

#[cfg(feature = "mpi")]
pub(crate) mod comm;
pub mod error;
// With the `capi` feature only: the `#![cfg]` is inside src/ffi/mod.rs, where
// cbindgen (which reads the C API unconditionally) does not see it.
pub mod ffi;
pub mod gemm;
pub(crate) mod mem;
pub mod nn;
pub mod ops;
pub mod optim;
pub mod options;
pub mod par;
pub(crate) mod ptr;
pub mod simd;
pub(crate) mod sys;

pub use error::{Error, Result, Status};
pub use nn::{Layer, Mlp, Targets, Task, TrainConfig};
pub use ops::Activation;
pub use options::Options;

/// The crate version (`CARGO_PKG_VERSION`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The README's Rust examples run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
mod readme {}
