//! The trainer from C: opaque `nnk_mlp` and `nnk_train_config` handles.
//!
//! Their ownership, thread-safety and poisoning rules are stated for C
//! callers in the header's preamble (`cbindgen.toml`, sections OWNERSHIP,
//! THREADS, PANICS AND POISONING); this module implements them: each
//! prediction uses its own workspace (so concurrent predictions on one model
//! are fine), a fit takes the model `&mut`, and `with_model` /
//! `with_model_mut` set the poison flag when a call panics.

// The C names are the type names (one grep finds both sides).
#![allow(non_camel_case_types)]

use super::{boundary, check_ptr, flag, slice_in};
use crate::error::{Error, Result};
use crate::nn::{EpochRecord, Layer, Mlp, Schedule, Solver, SparseInput, Targets, Task, TrainConfig};
use crate::ops::act::Activation;
use crate::par::Par;
use std::ffi::{CStr, c_char, c_void};
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};

/// SGD (with `momentum` and Nesterov by default).
pub const NNK_SOLVER_SGD: u32 = 0;
/// Adam.
pub const NNK_SOLVER_ADAM: u32 = 1;
/// AdamW (alpha is the decoupled weight decay).
pub const NNK_SOLVER_ADAMW: u32 = 2;
/// RMSprop.
pub const NNK_SOLVER_RMSPROP: u32 = 3;

/// First layer dense or sparse by the training inputs' density (default).
pub const NNK_SPARSE_AUTO: u32 = 0;
/// First layer always dense.
pub const NNK_SPARSE_DENSE: u32 = 1;
/// First layer always a sparse product of the inputs' nonzeros.
pub const NNK_SPARSE_SPARSE: u32 = 2;

/// Constant learning rate.
pub const NNK_SCHEDULE_CONSTANT: u32 = 0;
/// `lr / t^param` with t the samples seen (param = power_t, 0.5 in scikit-learn).
pub const NNK_SCHEDULE_INVSCALING: u32 = 1;
/// Divide by 5 when progress stalls (scikit-learn "adaptive").
pub const NNK_SCHEDULE_ADAPTIVE: u32 = 2;
/// Halve every `param` epochs.
pub const NNK_SCHEDULE_STEP: u32 = 3;
/// Cosine decay over the epochs.
pub const NNK_SCHEDULE_COSINE: u32 = 4;

/// Distributed fits: every rank passes the whole data set (default).
pub const NNK_SHARD_WHOLE: u32 = 0;
/// Distributed fits: each rank passes its own part of the data.
pub const NNK_SHARD_LOCAL: u32 = 1;

/// A multilayer perceptron (opaque handle). Created by `nnk_mlp_new` or
/// `nnk_mlp_load`, freed by `nnk_mlp_free`; see OWNERSHIP, THREADS and PANICS
/// AND POISONING at the top of this header.
pub struct nnk_mlp {
    model: Mlp,
    poisoned: AtomicBool,
}

/// Training hyper-parameters (opaque handle); defaults as scikit-learn's
/// MLPClassifier, except the ones noted on each setter. Created by
/// `nnk_train_config_new`, freed by `nnk_train_config_free`; do not change a
/// config while a fit that uses it is running (see THREADS at the top of this
/// header).
pub struct nnk_train_config {
    cfg: TrainConfig,
    callback: nnk_epoch_callback,
    user: *mut c_void,
}

/// What the epoch callback receives.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct nnk_epoch_info {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Mean training loss (with the L2 term).
    pub loss: f64,
    /// Validation loss, NaN without validation data.
    pub val_loss: f64,
    /// Validation accuracy (R² for regression), NaN without validation data.
    pub val_score: f64,
    /// Learning rate of the epoch.
    pub learning_rate: f64,
    /// Seconds the epoch took.
    pub seconds: f64,
    /// Training accuracy of the epoch's batches, each measured before its
    /// update (classifiers); NaN for regression.
    pub score: f64,
}

/// Called after every epoch on the fitting thread with the epoch's record
/// (valid only during the call) and the `user` pointer given to
/// `nnk_train_config_set_callback`.
///
/// Return value: **0 continues** training; **nonzero stops** it after this
/// epoch, and the fit then returns `NNK_OK` with the epochs run so far (with
/// early stopping, the best epoch's weights restored).
#[allow(non_camel_case_types)]
///
/// The type is nullable: NULL means no callback.
pub type nnk_epoch_callback = Option<unsafe extern "C" fn(info: *const nnk_epoch_info, user: *mut c_void) -> i32>;

fn null(name: &str) -> Error {
    Error::NullPointer(format!("'{name}' is NULL"))
}

/// Runs `f` on a model, honouring and setting the poison flag.
fn with_model<R>(m: *const nnk_mlp, f: impl FnOnce(&nnk_mlp) -> Result<R>) -> Result<R> {
    // SAFETY: non-NULL handles come from `nnk_mlp_new`/`nnk_mlp_load` (caller contract).
    let h = unsafe { m.as_ref() }.ok_or_else(|| null("model"))?;
    if h.poisoned.load(Ordering::Relaxed) {
        return Err(Error::Panic("this model was poisoned by an earlier internal panic; free it".into()));
    }
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(h)));
    match r {
        Ok(v) => v,
        Err(p) => {
            h.poisoned.store(true, Ordering::Relaxed);
            std::panic::resume_unwind(p)
        }
    }
}

fn with_model_mut<R>(m: *mut nnk_mlp, f: impl FnOnce(&mut Mlp) -> Result<R>) -> Result<R> {
    // SAFETY: as above; `fit` needs exclusive access (documented).
    let h = unsafe { m.as_mut() }.ok_or_else(|| null("model"))?;
    if h.poisoned.load(Ordering::Relaxed) {
        return Err(Error::Panic("this model was poisoned by an earlier internal panic; free it".into()));
    }
    let poisoned = &h.poisoned;
    let model = &mut h.model;
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(model))) {
        Ok(v) => v,
        Err(p) => {
            poisoned.store(true, Ordering::Relaxed);
            std::panic::resume_unwind(p)
        }
    }
}

fn with_config(c: *mut nnk_train_config, f: impl FnOnce(&mut nnk_train_config) -> Result<()>) -> i32 {
    boundary(|| {
        // SAFETY: non-NULL configs come from `nnk_train_config_new`.
        let c = unsafe { c.as_mut() }.ok_or_else(|| null("config"))?;
        f(c)
    })
}

/// Creates a network of `n_inputs` inputs and `n_layers` dense layers with
/// `units[i]` outputs and activation `activations[i]` (`NNK_ACT_*`). The last
/// layer is the output: `NNK_ACT_SOFTMAX` (classification; units = classes ≥ 2),
/// `NNK_ACT_SIGMOID` (binary / multi-label) or `NNK_ACT_IDENTITY` (regression).
/// Weights are drawn from `seed`. On success `*out` owns the model.
///
/// Undefined behaviour unless:
/// `units` and `activations` valid for `n_layers` elements; `out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nnk_mlp_new(
    n_inputs: usize,
    n_layers: usize,
    units: *const usize,
    activations: *const u32,
    seed: u64,
    out: *mut *mut nnk_mlp,
) -> i32 {
    boundary(|| {
        if out.is_null() {
            return Err(null("out"));
        }
        if n_layers == 0 {
            return Err(Error::InvalidArgument("n_layers must be ≥ 1 (the output layer)".into()));
        }
        if n_layers > crate::nn::io::MAX_LAYERS {
            return Err(Error::InvalidArgument(format!("n_layers {n_layers} exceeds {}", crate::nn::io::MAX_LAYERS)));
        }
        // SAFETY: the caller passes n_layers elements behind each pointer.
        let (u, a) = unsafe { (slice_in(units, n_layers, "units")?, slice_in(activations, n_layers, "activations")?) };
        let layers = u
            .iter()
            .zip(a)
            .map(|(&units, &code)| Ok(Layer { units, activation: Activation::from_code(code)? }))
            .collect::<Result<Vec<_>>>()?;
        let task = match layers[n_layers - 1].activation {
            Activation::Softmax => Task::MultiClass,
            Activation::Sigmoid => Task::MultiLabel,
            Activation::Identity => Task::Regression,
            a => {
                return Err(Error::InvalidArgument(format!(
                    "the output layer must be softmax, sigmoid or identity, not {}",
                    a.name()
                )));
            }
        };
        let model = Mlp::from_layers(n_inputs, layers, task, seed)?;
        let h = Box::new(nnk_mlp { model, poisoned: AtomicBool::new(false) });
        // SAFETY: `out` is non-NULL and writable (caller contract).
        unsafe { *out = Box::into_raw(h) };
        Ok(())
    })
}

/// Frees a model (NULL is fine). Call exactly once per handle.
///
/// Undefined behaviour unless:
/// `m` is NULL or a handle from `nnk_mlp_new`/`nnk_mlp_load` not yet freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nnk_mlp_free(m: *mut nnk_mlp) {
    if !m.is_null() {
        // SAFETY: the handle came from Box::into_raw and is freed once.
        let _ = std::panic::catch_unwind(|| drop(unsafe { Box::from_raw(m) }));
    }
}

/// Creates a config with scikit-learn's defaults (adam, lr 1e-3, alpha 1e-4,
/// batch min(200, n), 200 epochs, seed 0). On success `*out` owns it.
///
/// Undefined behaviour unless:
/// `out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nnk_train_config_new(out: *mut *mut nnk_train_config) -> i32 {
    boundary(|| {
        if out.is_null() {
            return Err(null("out"));
        }
        let c = Box::new(nnk_train_config { cfg: TrainConfig::default(), callback: None, user: std::ptr::null_mut() });
        // SAFETY: non-NULL, writable.
        unsafe { *out = Box::into_raw(c) };
        Ok(())
    })
}

/// Frees a config (NULL is fine). Call exactly once per handle.
///
/// Undefined behaviour unless:
/// `c` is NULL or a handle from `nnk_train_config_new` not yet freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nnk_train_config_free(c: *mut nnk_train_config) {
    if !c.is_null() {
        // SAFETY: from Box::into_raw, freed once.
        let _ = std::panic::catch_unwind(|| drop(unsafe { Box::from_raw(c) }));
    }
}

fn pos_f32(v: f64, name: &str, allow_zero: bool) -> Result<f32> {
    if !v.is_finite() || v < 0.0 || (!allow_zero && v == 0.0) || v > f32::MAX as f64 {
        return Err(Error::InvalidArgument(format!("{name} = {v} is out of range")));
    }
    Ok(v as f32)
}

/// Epochs (`max_iter`, ≥ 1; default 200).
///
/// Undefined behaviour unless:
/// `c` is a live config.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nnk_train_config_set_epochs(c: *mut nnk_train_config, epochs: usize) -> i32 {
    with_config(c, |c| {
        if epochs == 0 {
            return Err(Error::InvalidArgument("epochs must be ≥ 1".into()));
        }
        c.cfg.max_iter = epochs;
        Ok(())
    })
}

/// Mini-batch size (0 = min(200, n_samples), the default).
///
/// Undefined behaviour unless:
/// `c` is a live config.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nnk_train_config_set_batch_size(c: *mut nnk_train_config, batch: usize) -> i32 {
    with_config(c, |c| {
        c.cfg.batch_size = batch;
        Ok(())
    })
}

/// Initial learning rate (> 0; default 1e-3).
///
/// Undefined behaviour unless:
/// `c` is a live config.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nnk_train_config_set_learning_rate(c: *mut nnk_train_config, lr: f64) -> i32 {
    with_config(c, |c| {
        c.cfg.learning_rate_init = pos_f32(lr, "learning rate", false)?;
        Ok(())
    })
}

/// L2 penalty `alpha` (≥ 0; scikit-learn scaling; default 1e-4).
///
/// Undefined behaviour unless:
/// `c` is a live config.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nnk_train_config_set_alpha(c: *mut nnk_train_config, l2: f64) -> i32 {
    with_config(c, |c| {
        c.cfg.alpha = pos_f32(l2, "alpha", true)?;
        Ok(())
    })
}

/// Solver: `NNK_SOLVER_SGD`, `_ADAM` (default), `_ADAMW`, `_RMSPROP`.
///
/// Undefined behaviour unless:
/// `c` is a live config.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nnk_train_config_set_solver(c: *mut nnk_train_config, solver: u32) -> i32 {
    with_config(c, |c| {
        c.cfg.solver = Solver::from_code(solver)?;
        Ok(())
    })
}

/// How the first layer reads the training inputs: `NNK_SPARSE_AUTO`
/// (default: sparse when at most 25% of the values are nonzero),
/// `NNK_SPARSE_DENSE` or `NNK_SPARSE_SPARSE` (both give the same results up
/// to the rounding of the sums).
///
/// Undefined behaviour unless:
/// `c` is a live config.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nnk_train_config_set_sparse_input(c: *mut nnk_train_config, mode: u32) -> i32 {
    with_config(c, |c| {
        c.cfg.sparse_input = SparseInput::from_code(mode)?;
        Ok(())
    })
}

/// Whether training (and the validation inside it) flushes subnormal
/// numbers to zero: 1 (default) or 0 (IEEE gradual underflow). On x86-64
/// Intel cores, Adam under L2 otherwise runs several times slower once unused
/// weights turn subnormal; flushing can change the trained weights slightly.
/// The calling thread's own mode is restored when the fit returns; the
/// epoch callback runs in the fit's mode. `nnk_mlp_predict_*` always flush.
///
/// Undefined behaviour unless:
/// `c` is a live config.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nnk_train_config_set_flush_denormals(c: *mut nnk_train_config, on: u32) -> i32 {
    with_config(c, |c| {
        c.cfg.flush_denormals = flag(on, "flush_denormals")?;
        Ok(())
    })
}

/// Seed of shuffling and validation split (default 0).
///
/// Undefined behaviour unless:
/// `c` is a live config.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nnk_train_config_set_seed(c: *mut nnk_train_config, seed: u64) -> i32 {
    with_config(c, |c| {
        c.cfg.random_state = seed;
        Ok(())
    })
}

/// SGD momentum in [0, 1) (default 0.9) and Nesterov (0 or 1; default 1).
///
/// Undefined behaviour unless:
/// `c` is a live config.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nnk_train_config_set_momentum(c: *mut nnk_train_config, momentum: f64, nesterov: u32) -> i32 {
    with_config(c, |c| {
        if !(0.0..1.0).contains(&momentum) {
            return Err(Error::InvalidArgument(format!("momentum {momentum} must be in [0, 1)")));
        }
        c.cfg.nesterovs_momentum = flag(nesterov, "nesterov")?;
        c.cfg.momentum = momentum as f32;
        Ok(())
    })
}

/// Learning-rate schedule `NNK_SCHEDULE_*` with its parameter (power_t for
/// invscaling, epochs per halving for step; ignored otherwise).
///
/// Undefined behaviour unless:
/// `c` is a live config.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nnk_train_config_set_schedule(c: *mut nnk_train_config, schedule: u32, param: f64) -> i32 {
    with_config(c, |c| {
        c.cfg.learning_rate = Schedule::from_code(schedule, param)?;
        Ok(())
    })
}

/// Early stopping on a held-out `validation_fraction` (enable: 0 or 1) with
/// `n_iter_no_change` and `tol`; the best weights are restored.
///
/// Undefined behaviour unless:
/// `c` is a live config.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nnk_train_config_set_early_stopping(
    c: *mut nnk_train_config,
    enable: u32,
    validation_fraction: f64,
    n_iter_no_change: usize,
    tol: f64,
) -> i32 {
    with_config(c, |c| {
        let on = flag(enable, "enable")?;
        if on && !(validation_fraction > 0.0 && validation_fraction < 1.0) {
            return Err(Error::InvalidArgument("validation_fraction must be in (0, 1)".into()));
        }
        c.cfg.tol = pos_f32(tol, "tol", true)?;
        c.cfg.early_stopping = on;
        c.cfg.validation_fraction = validation_fraction as f32;
        c.cfg.n_iter_no_change = n_iter_no_change.max(1);
        Ok(())
    })
}

/// Kernel threads for fits with this config (0 = the process-wide count).
///
/// Undefined behaviour unless:
/// `c` is a live config.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nnk_train_config_set_threads(c: *mut nnk_train_config, threads: usize) -> i32 {
    with_config(c, |c| {
        if threads > 1024 {
            return Err(Error::InvalidArgument(format!("{threads} threads > 1024")));
        }
        c.cfg.par = if threads == 0 { Par::Default } else { Par::Threads(threads) };
        Ok(())
    })
}

/// Trains data-parallel over MPI with the communicator whose Fortran handle
/// is `fortran_comm` (`MPI_Comm_c2f(comm)`; portable across MPI
/// implementations). Every rank of it then calls `nnk_mlp_fit` with the same
/// model shape and config; rank 0's initial weights are used everywhere, the
/// gradients are summed over the ranks, and every rank ends with the same
/// weights. A rank whose check fails makes every rank's fit return the same
/// error. MPI must be initialized (`MPI_Init`) before the fit, and the
/// communicator must stay alive until the fit returns: nnkern does not take
/// ownership of it (it works on its own duplicate during each fit). Save
/// the trained model on one rank. See `nnk_train_config_set_data_shard`.
///
/// Returns `NNK_ERR_UNSUPPORTED` in a library built without the `mpi`
/// feature, and `NNK_ERR_INVALID_ARG` for a handle that is not a Fortran
/// integer (whether it names a live communicator is checked by the fit).
///
/// Undefined behaviour unless:
/// `c` is a live config.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nnk_train_config_set_mpi_comm(c: *mut nnk_train_config, fortran_comm: i64) -> i32 {
    with_config(c, |c| {
        #[cfg(feature = "mpi")]
        {
            let comm = crate::nn::dist::Comm::from_fortran(fortran_comm)?;
            let shard = c.cfg.distributed.map_or(Default::default(), |d| d.shard);
            c.cfg.distributed = Some(crate::nn::dist::Distributed { comm, shard });
            Ok(())
        }
        #[cfg(not(feature = "mpi"))]
        {
            let _ = (c, fortran_comm);
            Err(without_mpi())
        }
    })
}

/// Distributed training over `MPI_COMM_WORLD` (`on` = 1) or none (0,
/// default); see `nnk_train_config_set_mpi_comm`. Returns
/// `NNK_ERR_UNSUPPORTED` in a library built without the `mpi` feature
/// (for `on` = 0 as well).
///
/// Undefined behaviour unless:
/// `c` is a live config.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nnk_train_config_set_distributed(c: *mut nnk_train_config, on: u32) -> i32 {
    with_config(c, |c| {
        let on = flag(on, "distributed")?;
        #[cfg(feature = "mpi")]
        {
            let shard = c.cfg.distributed.map_or(Default::default(), |d| d.shard);
            c.cfg.distributed =
                on.then_some(crate::nn::dist::Distributed { comm: crate::nn::dist::Comm::world(), shard });
            Ok(())
        }
        #[cfg(not(feature = "mpi"))]
        {
            let _ = (c, on);
            Err(without_mpi())
        }
    })
}

/// What the data each rank passes to a distributed fit is:
/// `NNK_SHARD_WHOLE` (default: every rank passes the whole data set; rank r
/// of p trains on its p-th of every global batch of `batch_size` rows, and
/// the global order is that of one process) or `NNK_SHARD_LOCAL` (each rank
/// passes its own part; every global batch takes from each part in
/// proportion to its size, and validation scores are averaged over the
/// ranks). Set it after `nnk_train_config_set_mpi_comm` or
/// `nnk_train_config_set_distributed`. Returns `NNK_ERR_UNSUPPORTED` in a
/// library built without the `mpi` feature.
///
/// Undefined behaviour unless:
/// `c` is a live config.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nnk_train_config_set_data_shard(c: *mut nnk_train_config, shard: u32) -> i32 {
    with_config(c, |c| {
        #[cfg(feature = "mpi")]
        {
            use crate::nn::dist::Shard;
            let shard = match shard {
                NNK_SHARD_WHOLE => Shard::Whole,
                NNK_SHARD_LOCAL => Shard::Local,
                s => return Err(Error::InvalidArgument(format!("unknown data shard code {s}"))),
            };
            match &mut c.cfg.distributed {
                Some(d) => d.shard = shard,
                None => {
                    return Err(Error::InvalidArgument(
                        "set a communicator first (nnk_train_config_set_mpi_comm or _set_distributed)".into(),
                    ));
                }
            }
            Ok(())
        }
        #[cfg(not(feature = "mpi"))]
        {
            let _ = (c, shard);
            Err(without_mpi())
        }
    })
}

#[cfg(not(feature = "mpi"))]
fn without_mpi() -> Error {
    Error::Unsupported("this nnkern library was built without the `mpi` feature (distributed training)".into())
}

/// Installs the per-epoch callback (NULL removes it); `user` is passed back
/// unchanged. The callback returns 0 to continue training and nonzero to stop
/// it (see `nnk_epoch_callback`).
///
/// Undefined behaviour unless:
/// `c` is a live config; the callback must be safe to call from the fitting thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nnk_train_config_set_callback(
    c: *mut nnk_train_config,
    callback: nnk_epoch_callback,
    user: *mut c_void,
) -> i32 {
    with_config(c, |c| {
        c.callback = callback;
        c.user = user;
        Ok(())
    })
}

fn input<'a>(x: *const f32, n_samples: usize, n_features: usize, m: &Mlp) -> Result<&'a [f32]> {
    if n_features != m.n_inputs() {
        return Err(Error::ShapeMismatch(format!("n_features = {n_features}, the model takes {}", m.n_inputs())));
    }
    let len =
        n_samples.checked_mul(n_features).ok_or_else(|| Error::Overflow("n_samples × n_features overflows".into()))?;
    // SAFETY: the caller passes n_samples × n_features elements.
    unsafe { slice_in(x, len, "x") }
}

fn fit_common(
    m: *mut nnk_mlp,
    c: *const nnk_train_config,
    f: impl FnOnce(&mut Mlp, &TrainConfig, &mut dyn FnMut(&EpochRecord) -> ControlFlow<()>) -> Result<()>,
) -> i32 {
    boundary(|| {
        // SAFETY: non-NULL configs come from `nnk_train_config_new`.
        let c = unsafe { c.as_ref() }.ok_or_else(|| null("config"))?;
        let (cb, user) = (c.callback, c.user);
        let mut call = |r: &EpochRecord| -> ControlFlow<()> {
            match cb {
                None => ControlFlow::Continue(()),
                Some(f) => {
                    let info = nnk_epoch_info {
                        epoch: r.epoch,
                        loss: r.loss,
                        val_loss: r.val_loss.unwrap_or(f64::NAN),
                        val_score: r.val_score.unwrap_or(f64::NAN),
                        learning_rate: r.learning_rate as f64,
                        seconds: r.seconds,
                        score: r.score.unwrap_or(f64::NAN),
                    };
                    // SAFETY: a C function pointer supplied by the caller, called as documented.
                    let stop = unsafe { f(&info, user) } != 0;
                    if stop { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
                }
            }
        };
        with_model_mut(m, |model| f(model, &c.cfg, &mut call))
    })
}

/// Trains a classifier (softmax output, or one sigmoid output for 0/1 labels)
/// on `n_samples × n_features` finite inputs and labels `< classes`. Bad input
/// is refused before any weight changes; a non-finite loss returns
/// `NNK_ERR_DIVERGED` and keeps the weights of the start of that epoch.
///
/// Undefined behaviour unless:
/// `m` a live model used by no other thread; `c` a live config; `x`, `labels`
/// valid for their sizes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nnk_mlp_fit_classifier(
    m: *mut nnk_mlp,
    c: *const nnk_train_config,
    x: *const f32,
    n_samples: usize,
    n_features: usize,
    labels: *const u32,
) -> i32 {
    fit_common(m, c, |model, cfg, cb| {
        let xs = input(x, n_samples, n_features, model)?;
        // SAFETY: the caller passes n_samples labels.
        let ls = unsafe { slice_in(labels, n_samples, "labels")? };
        model.fit(xs, n_samples, Targets::Labels(ls), cfg, None, Some(cb)).map(|_| ())
    })
}

/// Trains a regressor (identity output) or multi-label model (sigmoid
/// outputs, 0/1 targets) on dense targets `y` (`n_samples × n_targets`,
/// `n_targets` = output units).
///
/// Undefined behaviour unless:
/// As `nnk_mlp_fit_classifier`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nnk_mlp_fit_regressor(
    m: *mut nnk_mlp,
    c: *const nnk_train_config,
    x: *const f32,
    n_samples: usize,
    n_features: usize,
    y: *const f32,
    n_targets: usize,
) -> i32 {
    fit_common(m, c, |model, cfg, cb| {
        let xs = input(x, n_samples, n_features, model)?;
        if n_targets != model.n_outputs() {
            return Err(Error::ShapeMismatch(format!(
                "n_targets = {n_targets}, the model has {} outputs",
                model.n_outputs()
            )));
        }
        let len = n_samples
            .checked_mul(n_targets)
            .ok_or_else(|| Error::Overflow("n_samples × n_targets overflows".into()))?;
        // SAFETY: the caller passes n_samples × n_targets targets.
        let ys = unsafe { slice_in(y, len, "y")? };
        model.fit(xs, n_samples, Targets::Dense(ys), cfg, None, Some(cb)).map(|_| ())
    })
}

/// Output activations (`n_samples × n_outputs`: probabilities, or regression
/// values) into `out` (`out_len` must be exactly that). Concurrent calls on one
/// model are fine.
///
/// Undefined behaviour unless:
/// `m` a live model; `x` valid for `n_samples·n_features`, `out` for `out_len`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nnk_mlp_predict_proba(
    m: *const nnk_mlp,
    x: *const f32,
    n_samples: usize,
    n_features: usize,
    out: *mut f32,
    out_len: usize,
) -> i32 {
    boundary(|| {
        with_model(m, |h| {
            let xs = input(x, n_samples, n_features, &h.model)?;
            let need = n_samples
                .checked_mul(h.model.n_outputs())
                .ok_or_else(|| Error::Overflow("output size overflows".into()))?;
            if out_len != need {
                return Err(Error::ShapeMismatch(format!("out_len = {out_len}, need {need}")));
            }
            check_ptr(out as *const f32, need, "out")?;
            if super::overlaps(xs.as_ptr(), xs.len(), out, need) {
                return Err(Error::InvalidArgument("'out' overlaps 'x'".into()));
            }
            let p = h.model.predict_proba(xs, n_samples)?;
            // SAFETY: checked above; written only on success.
            unsafe { std::ptr::copy_nonoverlapping(p.as_ptr(), out, need) };
            Ok(())
        })
    })
}

/// Predicted class per sample into `out` (`out_len` = `n_samples`).
///
/// Undefined behaviour unless:
/// As `nnk_mlp_predict_proba`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nnk_mlp_predict_class(
    m: *const nnk_mlp,
    x: *const f32,
    n_samples: usize,
    n_features: usize,
    out: *mut u32,
    out_len: usize,
) -> i32 {
    boundary(|| {
        with_model(m, |h| {
            let xs = input(x, n_samples, n_features, &h.model)?;
            if out_len != n_samples {
                return Err(Error::ShapeMismatch(format!("out_len = {out_len}, need {n_samples}")));
            }
            check_ptr(out as *const u32, n_samples, "out")?;
            let c = h.model.predict_class(xs, n_samples)?;
            // SAFETY: checked above.
            unsafe { std::ptr::copy_nonoverlapping(c.as_ptr(), out, n_samples) };
            Ok(())
        })
    })
}

fn path_of<'a>(p: *const c_char) -> Result<&'a str> {
    if p.is_null() {
        return Err(null("path"));
    }
    // SAFETY: non-NULL, NUL-terminated (caller contract).
    unsafe { CStr::from_ptr(p) }.to_str().map_err(|_| Error::InvalidArgument("path is not UTF-8".into()))
}

/// Saves the model atomically (temporary file + rename) to `path`.
///
/// Undefined behaviour unless:
/// `m` a live model; `path` a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nnk_mlp_save(m: *const nnk_mlp, path: *const c_char) -> i32 {
    boundary(|| {
        let p = path_of(path)?;
        with_model(m, |h| h.model.save(p))
    })
}

/// Loads a model saved by `nnk_mlp_save`; `*out` owns it on success. Truncated,
/// corrupt, foreign or future-version files give `NNK_ERR_FORMAT`; missing
/// files and directories `NNK_ERR_IO`.
///
/// Undefined behaviour unless:
/// `path` NUL-terminated; `out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nnk_mlp_load(path: *const c_char, out: *mut *mut nnk_mlp) -> i32 {
    boundary(|| {
        if out.is_null() {
            return Err(null("out"));
        }
        let model = Mlp::load(path_of(path)?)?;
        // SAFETY: non-NULL, writable.
        unsafe { *out = Box::into_raw(Box::new(nnk_mlp { model, poisoned: AtomicBool::new(false) })) };
        Ok(())
    })
}

/// Input width of a model (0 for NULL).
///
/// Undefined behaviour unless:
/// `m` NULL or a live model.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nnk_mlp_n_inputs(m: *const nnk_mlp) -> usize {
    // SAFETY: NULL or live (caller contract).
    unsafe { m.as_ref() }.map_or(0, |h| h.model.n_inputs())
}

/// Output width of a model (0 for NULL).
///
/// Undefined behaviour unless:
/// `m` NULL or a live model.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nnk_mlp_n_outputs(m: *const nnk_mlp) -> usize {
    // SAFETY: NULL or live (caller contract).
    unsafe { m.as_ref() }.map_or(0, |h| h.model.n_outputs())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The C constants decode, in the one place `nn` decodes them, to what
    /// their names say.
    #[test]
    fn c_codes_decode_in_nn() {
        let solvers = [
            (NNK_SOLVER_SGD, Solver::Sgd),
            (NNK_SOLVER_ADAM, Solver::Adam),
            (NNK_SOLVER_ADAMW, Solver::AdamW),
            (NNK_SOLVER_RMSPROP, Solver::RmsProp),
        ];
        for (code, s) in solvers {
            assert_eq!(Solver::from_code(code).unwrap(), s);
        }
        let modes = [
            (NNK_SPARSE_AUTO, SparseInput::Auto),
            (NNK_SPARSE_DENSE, SparseInput::Dense),
            (NNK_SPARSE_SPARSE, SparseInput::Sparse),
        ];
        for (code, m) in modes {
            assert_eq!(SparseInput::from_code(code).unwrap(), m);
        }
        let schedules = [
            (NNK_SCHEDULE_CONSTANT, 0.0, Schedule::Constant),
            (NNK_SCHEDULE_INVSCALING, 0.25, Schedule::InvScaling { power_t: 0.25 }),
            (NNK_SCHEDULE_ADAPTIVE, 0.0, Schedule::Adaptive),
            (NNK_SCHEDULE_STEP, 3.0, Schedule::Step { every: 3, gamma: 0.5 }),
            (NNK_SCHEDULE_COSINE, 0.0, Schedule::Cosine),
        ];
        for (code, param, s) in schedules {
            assert_eq!(Schedule::from_code(code, param).unwrap(), s);
        }
        assert!(Schedule::from_code(NNK_SCHEDULE_STEP, 0.5).is_err());
        assert!(Schedule::from_code(NNK_SCHEDULE_INVSCALING, f64::NAN).is_err());
        assert!(Schedule::from_code(NNK_SCHEDULE_COSINE + 1, 0.0).is_err());
    }
}
