//! The layer API: a multilayer perceptron ([`Mlp`]) trained with
//! [`Mlp::fit`] under a [`TrainConfig`] (scikit-learn names and defaults),
//! versioned model files ([`io`]) and data loaders ([`data`]).
//!
//! Safe Rust only (`forbid(unsafe_code)`): every kernel call goes through the
//! checked APIs of [`crate::ops`], [`crate::gemm`] and [`crate::optim`], and
//! the few system calls model files need beyond `std` through the crate's
//! private `sys` module.

#![forbid(unsafe_code)]

pub mod data;
#[cfg(feature = "mpi")]
pub mod dist;
#[cfg(not(feature = "mpi"))]
#[path = "dist_off.rs"]
mod dist;
#[cfg(test)]
mod fused_step_tests;
pub mod inputs;
pub mod io;
pub mod model;
mod opt_state;
pub mod task;
pub mod train;

pub use inputs::Inputs;
pub use model::{Layer, Mlp, Workspace};
pub use task::{Targets, Task};
pub use train::{
    BatchProgress, EpochCallback, EpochRecord, FitObserver, History, SPARSE_AUTO_DENSITY, Schedule, Solver,
    SparseInput, TrainConfig, Validation,
};
