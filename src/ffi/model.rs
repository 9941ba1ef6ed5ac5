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

use super::{boundary, check_out, check_ptr, flag, slice_in};
use crate::error::{Error, Result};
use crate::nn::{
    EpochRecord, FitObserver, History, Inputs, Layer, Mlp, Schedule, Solver, SparseInput, Targets, Task, TrainConfig,
};
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
    /// The last fit's history (`nnk_mlp_fit_history`); None before any fit.
    pub(super) history: Option<History>,
}

impl nnk_mlp {
    /// A new handle owning `model`, as a raw pointer for C.
    pub(super) fn boxed(model: Mlp) -> *mut nnk_mlp {
        Box::into_raw(Box::new(nnk_mlp { model, poisoned: AtomicBool::new(false), history: None }))
    }

    /// The model.
    pub(super) fn model(&self) -> &Mlp {
        &self.model
    }
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
    /// The step schedule's factor (`nnk_train_config_set_step_factor`; 0.5).
    step_factor: f32,
    /// The invscaling schedule's exponent (`nnk_train_config_set_power_t`; 0.5).
    power_t: f32,
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

pub(super) fn null(name: &str) -> Error {
    Error::NullPointer(format!("'{name}' is NULL"))
}

/// Runs `f` on a model, honouring and setting the poison flag.
pub(super) fn with_model<R>(m: *const nnk_mlp, f: impl FnOnce(&nnk_mlp) -> Result<R>) -> Result<R> {
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

pub(super) fn with_model_mut<R>(
    m: *mut nnk_mlp,
    f: impl FnOnce(&mut Mlp, &mut Option<History>) -> Result<R>,
) -> Result<R> {
    // SAFETY: as above; `fit` needs exclusive access (documented).
    let h = unsafe { m.as_mut() }.ok_or_else(|| null("model"))?;
    if h.poisoned.load(Ordering::Relaxed) {
        return Err(Error::Panic("this model was poisoned by an earlier internal panic; free it".into()));
    }
    let poisoned = &h.poisoned;
    let (model, history) = (&mut h.model, &mut h.history);
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(model, history))) {
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
        check_out(out, "out")?;
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
        let h = nnk_mlp::boxed(model);
        // SAFETY: `out` is non-NULL and writable (caller contract).
        unsafe { *out = h };
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
        check_out(out, "out")?;
        let c = Box::new(nnk_train_config {
            cfg: TrainConfig::default(),
            callback: None,
            user: std::ptr::null_mut(),
            step_factor: 0.5,
            power_t: 0.5,
        });
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

/// `v` as the f32 the config stores, checked after the conversion (a
/// positive value that rounds to 0 is refused where 0 is).
fn pos_f32(v: f64, name: &str, allow_zero: bool) -> Result<f32> {
    let f = v as f32;
    if !v.is_finite() || v < 0.0 || (!allow_zero && f == 0.0) || v > f32::MAX as f64 {
        return Err(Error::InvalidArgument(format!("{name} = {v} is out of range")));
    }
    Ok(f)
}

/// `v` as the f32 the config stores, in `[0, 1)` after the conversion (a
/// value just below 1 rounds to 1.0f32 and is refused).
fn unit_f32(v: f64, name: &str) -> Result<f32> {
    let f = v as f32;
    if !(v.is_finite() && v >= 0.0 && (0.0..1.0).contains(&f)) {
        return Err(Error::InvalidArgument(format!("{name} {v} must be in [0, 1)")));
    }
    Ok(f)
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
    set_flag(c, on, "flush_denormals", |cfg, on| cfg.flush_denormals = on)
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
        let momentum = unit_f32(momentum, "momentum")?;
        c.cfg.nesterovs_momentum = flag(nesterov, "nesterov")?;
        c.cfg.momentum = momentum;
        Ok(())
    })
}

/// Learning-rate schedule `NNK_SCHEDULE_*` with its parameter (power_t for
/// invscaling, epochs per step for step, whose factor is
/// `nnk_train_config_set_step_factor`'s; ignored otherwise).
///
/// Undefined behaviour unless:
/// `c` is a live config.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nnk_train_config_set_schedule(c: *mut nnk_train_config, schedule: u32, param: f64) -> i32 {
    with_config(c, |c| {
        c.cfg.learning_rate = match Schedule::from_code(schedule, param)? {
            Schedule::Step { every, .. } => Schedule::Step { every, gamma: c.step_factor },
            Schedule::InvScaling { power_t } => {
                c.power_t = power_t;
                Schedule::InvScaling { power_t }
            }
            s => s,
        };
        Ok(())
    })
}

/// Early stopping on a held-out `validation_fraction` (enable: 0 or 1) with
/// `n_iter_no_change` and `tol`; the best weights are restored. With
/// `enable` 0, `validation_fraction` is not read (the config keeps its own).
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
        let fraction = validation_fraction as f32;
        if on && !(validation_fraction.is_finite() && fraction > 0.0 && fraction < 1.0) {
            return Err(Error::InvalidArgument("validation_fraction must be in (0, 1)".into()));
        }
        let tol = pos_f32(tol, "tol", true)?;
        c.cfg.tol = tol;
        c.cfg.early_stopping = on;
        if on {
            c.cfg.validation_fraction = fraction;
        }
        c.cfg.n_iter_no_change = n_iter_no_change.max(1);
        Ok(())
    })
}

/// A setter of one 0/1 flag.
fn set_flag(c: *mut nnk_train_config, on: u32, name: &str, set: impl FnOnce(&mut TrainConfig, bool)) -> i32 {
    with_config(c, |c| {
        set(&mut c.cfg, flag(on, name)?);
        Ok(())
    })
}

/// A setter of one number in `[lo, hi)` (`hi` excluded unless `hi_in`).
fn set_in(
    c: *mut nnk_train_config,
    v: f64,
    name: &str,
    (lo, lo_in): (f64, bool),
    (hi, hi_in): (f64, bool),
    set: impl FnOnce(&mut nnk_train_config, f32),
) -> i32 {
    with_config(c, |c| {
        // Checked as the f32 the config stores: 1 − 1e-12 rounds to 1.0f32,
        // 1e-50 to 0.
        let f = v as f32;
        let fv = f as f64;
        // Both the value given and the one stored (−1e-50 rounds to −0.0).
        let above = if lo_in { v >= lo && fv >= lo } else { v > lo && fv > lo };
        let below = if hi_in { v <= hi && fv <= hi } else { v < hi && fv < hi };
        if !(v.is_finite() && above && below) {
            let (l, h) = (if lo_in { '[' } else { '(' }, if hi_in { ']' } else { ')' });
            return Err(Error::InvalidArgument(format!("{name} = {v} must be in {l}{lo}, {hi}{h}")));
        }
        set(c, f);
        Ok(())
    })
}

/// Adam's β1, the decay of its first moment, in [0, 1) (default 0.9).
///
/// Undefined behaviour unless:
/// `c` is a live config.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nnk_train_config_set_beta_1(c: *mut nnk_train_config, beta_1: f64) -> i32 {
    set_in(c, beta_1, "beta_1", (0.0, true), (1.0, false), |c, v| c.cfg.beta_1 = v)
}

/// Adam's β2, the decay of its second moment, in [0, 1) (default 0.999).
///
/// Undefined behaviour unless:
/// `c` is a live config.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nnk_train_config_set_beta_2(c: *mut nnk_train_config, beta_2: f64) -> i32 {
    set_in(c, beta_2, "beta_2", (0.0, true), (1.0, false), |c, v| c.cfg.beta_2 = v)
}

/// Adam's and RMSprop's ε, > 0 (default 1e-8).
///
/// Undefined behaviour unless:
/// `c` is a live config.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nnk_train_config_set_epsilon(c: *mut nnk_train_config, epsilon: f64) -> i32 {
    set_in(c, epsilon, "epsilon", (0.0, false), (f32::MAX as f64, true), |c, v| c.cfg.epsilon = v)
}

/// RMSprop's decay ρ in [0, 1) (default 0.9; not in scikit-learn).
///
/// Undefined behaviour unless:
/// `c` is a live config.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nnk_train_config_set_rho(c: *mut nnk_train_config, rho: f64) -> i32 {
    set_in(c, rho, "rho", (0.0, true), (1.0, false), |c, v| c.cfg.rho = v)
}

/// L1 penalty `l1·‖W‖₁/batch` on the weights, biases excluded, ≥ 0 (default
/// 0; not in scikit-learn).
///
/// Undefined behaviour unless:
/// `c` is a live config.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nnk_train_config_set_l1(c: *mut nnk_train_config, l1: f64) -> i32 {
    set_in(c, l1, "l1", (0.0, true), (f32::MAX as f64, true), |c, v| c.cfg.l1 = v)
}

/// Clips the global gradient norm of each step to `clip_norm` (> 0); 0 turns
/// clipping off (the default; not in scikit-learn).
///
/// Undefined behaviour unless:
/// `c` is a live config.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nnk_train_config_set_clip_norm(c: *mut nnk_train_config, clip_norm: f64) -> i32 {
    set_in(c, clip_norm, "clip_norm", (0.0, true), (f32::MAX as f64, true), |c, v| {
        c.cfg.clip_norm = (v > 0.0).then_some(v)
    })
}

/// Reshuffles the samples every epoch (1, the default) or keeps their order (0).
///
/// Undefined behaviour unless:
/// `c` is a live config.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nnk_train_config_set_shuffle(c: *mut nnk_train_config, on: u32) -> i32 {
    set_flag(c, on, "shuffle", |cfg, on| cfg.shuffle = on)
}

/// Keeps the optimizer state of the model's previous fit (1) or starts it
/// afresh (0, the default). The weights are the model's either way.
///
/// Undefined behaviour unless:
/// `c` is a live config.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nnk_train_config_set_warm_start(c: *mut nnk_train_config, on: u32) -> i32 {
    set_flag(c, on, "warm_start", |cfg, on| cfg.warm_start = on)
}

/// The improvement threshold `tol` ≥ 0 (default 1e-4): an epoch improves when
/// its loss (or validation score, with early stopping) beats the best by more
/// than `tol`.
///
/// Undefined behaviour unless:
/// `c` is a live config.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nnk_train_config_set_tol(c: *mut nnk_train_config, tol: f64) -> i32 {
    set_in(c, tol, "tol", (0.0, true), (f32::MAX as f64, true), |c, v| c.cfg.tol = v)
}

/// Epochs without improvement before training stops, ≥ 1 (default 10).
///
/// Undefined behaviour unless:
/// `c` is a live config.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nnk_train_config_set_n_iter_no_change(c: *mut nnk_train_config, n: usize) -> i32 {
    with_config(c, |c| {
        if n == 0 {
            return Err(Error::InvalidArgument("n_iter_no_change must be ≥ 1".into()));
        }
        c.cfg.n_iter_no_change = n;
        Ok(())
    })
}

/// The fraction held out for validation with early stopping, in (0, 1)
/// (default 0.1).
///
/// Undefined behaviour unless:
/// `c` is a live config.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nnk_train_config_set_validation_fraction(c: *mut nnk_train_config, fraction: f64) -> i32 {
    set_in(c, fraction, "validation_fraction", (0.0, false), (1.0, false), |c, v| c.cfg.validation_fraction = v)
}

/// The exponent of the "invscaling" schedule, `lr / t^power_t` with t the
/// samples seen, ≥ 0 (default 0.5). It takes effect with that schedule, set
/// before or after; `nnk_train_config_set_schedule(c,
/// NNK_SCHEDULE_INVSCALING, p)` sets it to `p` too.
///
/// Undefined behaviour unless:
/// `c` is a live config.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nnk_train_config_set_power_t(c: *mut nnk_train_config, power_t: f64) -> i32 {
    set_in(c, power_t, "power_t", (0.0, true), (f32::MAX as f64, true), |c, v| {
        c.power_t = v;
        if let Schedule::InvScaling { .. } = c.cfg.learning_rate {
            c.cfg.learning_rate = Schedule::InvScaling { power_t: v };
        }
    })
}

/// The factor of the step schedule, in (0, 1] (default 0.5: halve), applied
/// every `param` epochs of `nnk_train_config_set_schedule(c,
/// NNK_SCHEDULE_STEP, param)`, whether set before or after it.
///
/// Undefined behaviour unless:
/// `c` is a live config.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nnk_train_config_set_step_factor(c: *mut nnk_train_config, factor: f64) -> i32 {
    set_in(c, factor, "step factor", (0.0, false), (1.0, true), |c, v| {
        c.step_factor = v;
        if let Schedule::Step { every, .. } = c.cfg.learning_rate {
            c.cfg.learning_rate = Schedule::Step { every, gamma: v };
        }
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

pub(super) fn input<'a>(x: *const f32, n_samples: usize, n_features: usize, m: &Mlp) -> Result<&'a [f32]> {
    if n_features != m.n_inputs() {
        return Err(Error::ShapeMismatch(format!("n_features = {n_features}, the model takes {}", m.n_inputs())));
    }
    let len =
        n_samples.checked_mul(n_features).ok_or_else(|| Error::Overflow("n_samples × n_features overflows".into()))?;
    // SAFETY: the caller passes n_samples × n_features elements.
    unsafe { slice_in(x, len, "x") }
}

/// A sparse matrix in compressed sparse rows (scipy's CSR, int64 row
/// offsets and int32 column indices), borrowed for the duration of a call.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct nnk_csr {
    /// Rows (samples).
    pub n_rows: usize,
    /// Columns (features).
    pub n_cols: usize,
    /// Stored values: the length of `indices` and `data`.
    pub nnz: usize,
    /// `n_rows + 1` offsets into `indices` and `data`, from 0 up to `nnz`.
    pub indptr: *const i64,
    /// Column of each stored value, strictly increasing within a row
    /// (scipy's canonical form: sorted, no duplicates).
    pub indices: *const i32,
    /// The stored values (explicit zeros are allowed and ignored).
    pub data: *const f32,
}

/// The nonzeros of a C CSR matrix, checked (pointers, lengths, offsets,
/// indices) and copied into the library's own form.
fn csr_rows(x: *const nnk_csr) -> Result<crate::gemm::SparseRows> {
    if x.is_null() {
        return Err(null("x"));
    }
    check_ptr(x, 1, "x")?;
    // SAFETY: non-NULL and aligned (checked), a valid nnk_csr (caller contract).
    let x = unsafe { &*x };
    let np = x.n_rows.checked_add(1).ok_or_else(|| Error::Overflow("n_rows + 1 overflows".into()))?;
    // SAFETY: the caller passes n_rows + 1 offsets and nnz indices and values.
    let (ptr, ix, v) = unsafe {
        (slice_in(x.indptr, np, "indptr")?, slice_in(x.indices, x.nnz, "indices")?, slice_in(x.data, x.nnz, "data")?)
    };
    if let Some(r) = ptr.iter().position(|&p| p < 0) {
        return Err(Error::InvalidArgument(format!("indptr[{r}] = {} is negative", ptr[r])));
    }
    if let Some(k) = ix.iter().position(|&c| c < 0) {
        return Err(Error::InvalidArgument(format!("indices[{k}] = {} is negative", ix[k])));
    }
    let what = "a sparse matrix's offsets";
    if let Some(r) = ptr.iter().position(|&p| usize::try_from(p).is_err()) {
        return Err(Error::Overflow(format!("indptr[{r}] = {} does not fit in size_t", ptr[r])));
    }
    let ptr: Vec<usize> = crate::mem::try_collect(np, ptr.iter().map(|&p| p as usize), what)?;
    let ix: Vec<u32> = crate::mem::try_collect(x.nnz, ix.iter().map(|&c| c as u32), what)?;
    crate::gemm::SparseRows::from_csr(x.n_rows, x.n_cols, &ptr, &ix, v)
}

/// The config's epoch callback as the trainer's observer.
struct CObserver {
    callback: nnk_epoch_callback,
    user: *mut c_void,
}

impl FitObserver for CObserver {
    fn on_epoch(&mut self, r: &EpochRecord) -> ControlFlow<()> {
        let Some(f) = self.callback else { return ControlFlow::Continue(()) };
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
        if unsafe { f(&info, self.user) } != 0 { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
    }
}

/// The inputs of a fit from C: dense rows, or a CSR matrix.
enum CInputs {
    /// `x`, `n_samples × n_features` values.
    Dense(*const f32, usize, usize),
    /// A CSR matrix.
    Csr(*const nnk_csr),
}

/// Which targets a fit gets from C.
enum CTargets {
    /// `labels`, `n_samples` class indices.
    Labels(*const u32),
    /// `y`, `n_samples × n_targets` values.
    Dense(*const f32, usize),
}

/// Whether a fit's error is one `Mlp::fit` returns before it changes any
/// weight (bad input, a size that overflows or cannot be allocated).
fn refused_before_training(e: &Error) -> bool {
    matches!(
        e,
        Error::InvalidArgument(_)
            | Error::NullPointer(_)
            | Error::ShapeMismatch(_)
            | Error::Overflow(_)
            | Error::NonFinite(_)
            | Error::Unsupported(_)
            | Error::OutOfMemory { .. }
    )
}

/// A fit from C: checks the handles and the inputs, runs `fit` (or
/// `partial_fit` when `partial`) with the config's callback, and keeps the
/// history on the handle: the new one after a successful fit, none after a
/// fit that ran and failed, the old one after a call refused for its input.
fn fit_common(m: *mut nnk_mlp, c: *const nnk_train_config, x: CInputs, targets: CTargets, partial: bool) -> i32 {
    boundary(|| {
        // SAFETY: non-NULL configs come from `nnk_train_config_new`.
        let c = unsafe { c.as_ref() }.ok_or_else(|| null("config"))?;
        let mut observer = CObserver { callback: c.callback, user: c.user };
        with_model_mut(m, |model, history| {
            let rows;
            let inputs = match x {
                CInputs::Dense(x, n_samples, n_features) => {
                    Inputs::Dense { x: input(x, n_samples, n_features, model)?, n_samples }
                }
                CInputs::Csr(x) => {
                    rows = csr_rows(x)?;
                    Inputs::Sparse(&rows)
                }
            };
            let n_samples = inputs.n_samples();
            let y = match targets {
                CTargets::Labels(labels) => {
                    // SAFETY: the caller passes n_samples labels.
                    Targets::Labels(unsafe { slice_in(labels, n_samples, "labels")? })
                }
                CTargets::Dense(y, n_targets) => {
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
                    Targets::Dense(unsafe { slice_in(y, len, "y")? })
                }
            };
            let partial_cfg;
            let cfg = if partial {
                partial_cfg = c.cfg.for_partial_fit();
                &partial_cfg
            } else {
                &c.cfg
            };
            let before = (model.optimizer_steps(), model.samples_seen());
            match model.fit_inputs(inputs, y, cfg, None, &mut observer) {
                Ok(h) => {
                    *history = Some(h);
                    Ok(())
                }
                Err(e) => {
                    // Input refused before any weight changed: the model, and
                    // so its last fit's history, stay as they were. A fit that
                    // ran and failed (diverged, or any error after a step)
                    // leaves no history.
                    let stepped = (model.optimizer_steps(), model.samples_seen()) != before;
                    if stepped || !refused_before_training(&e) {
                        *history = None;
                    }
                    Err(e)
                }
            }
        })
    })
}

/// Trains a classifier (softmax output, or one sigmoid output for 0/1 labels)
/// on `n_samples × n_features` finite inputs and labels `< classes`. Bad input
/// is refused before any weight changes; a non-finite loss returns
/// `NNK_ERR_DIVERGED` and keeps the weights of the start of that epoch. The
/// fit's history is kept on the model (`nnk_mlp_fit_history`).
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
    fit_common(m, c, CInputs::Dense(x, n_samples, n_features), CTargets::Labels(labels), false)
}

/// Trains a regressor (identity output) or multi-label model (sigmoid
/// outputs, targets in [0, 1], others refused with `NNK_ERR_INVALID_ARG`)
/// on dense targets `y` (`n_samples × n_targets`, `n_targets` = output
/// units).
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
    fit_common(m, c, CInputs::Dense(x, n_samples, n_features), CTargets::Dense(y, n_targets), false)
}

/// One pass over `x` keeping the optimizer state of the model's earlier fits
/// (scikit-learn's `partial_fit`): `nnk_mlp_fit_classifier` with the config's
/// epochs taken as 1, warm start on and early stopping off. The first call on
/// a fresh model starts the optimizer afresh. Its history replaces the last
/// fit's once it runs (a call refused for its input changes nothing).
///
/// Undefined behaviour unless:
/// As `nnk_mlp_fit_classifier`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nnk_mlp_partial_fit_classifier(
    m: *mut nnk_mlp,
    c: *const nnk_train_config,
    x: *const f32,
    n_samples: usize,
    n_features: usize,
    labels: *const u32,
) -> i32 {
    fit_common(m, c, CInputs::Dense(x, n_samples, n_features), CTargets::Labels(labels), true)
}

/// `nnk_mlp_partial_fit_classifier` for dense targets (regression,
/// multi-label), as `nnk_mlp_fit_regressor` takes them.
///
/// Undefined behaviour unless:
/// As `nnk_mlp_fit_classifier`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nnk_mlp_partial_fit_regressor(
    m: *mut nnk_mlp,
    c: *const nnk_train_config,
    x: *const f32,
    n_samples: usize,
    n_features: usize,
    y: *const f32,
    n_targets: usize,
) -> i32 {
    fit_common(m, c, CInputs::Dense(x, n_samples, n_features), CTargets::Dense(y, n_targets), true)
}

/// `nnk_mlp_fit_classifier` on a sparse matrix (`x->n_rows` samples, one
/// label each), which is never made dense as a whole: the sparse
/// first-layer path multiplies its nonzeros (`NNK_SPARSE_AUTO` picks it for
/// CSR input of at most 25% nonzeros), the dense path writes one mini-batch
/// at a time. `x->n_cols` must equal the model's inputs. Bad offsets or
/// indices are `NNK_ERR_SHAPE` / `NNK_ERR_INVALID_ARG`; the same rows given
/// densely train to the same bits.
///
/// Undefined behaviour unless:
/// As `nnk_mlp_fit_classifier`; `x` points to an `nnk_csr` whose arrays are
/// valid for their lengths.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nnk_mlp_fit_classifier_csr(
    m: *mut nnk_mlp,
    c: *const nnk_train_config,
    x: *const nnk_csr,
    labels: *const u32,
) -> i32 {
    fit_common(m, c, CInputs::Csr(x), CTargets::Labels(labels), false)
}

/// `nnk_mlp_fit_regressor` on a sparse matrix (as
/// `nnk_mlp_fit_classifier_csr`).
///
/// Undefined behaviour unless:
/// As `nnk_mlp_fit_classifier_csr`; `y` valid for `x->n_rows × n_targets`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nnk_mlp_fit_regressor_csr(
    m: *mut nnk_mlp,
    c: *const nnk_train_config,
    x: *const nnk_csr,
    y: *const f32,
    n_targets: usize,
) -> i32 {
    fit_common(m, c, CInputs::Csr(x), CTargets::Dense(y, n_targets), false)
}

/// `nnk_mlp_partial_fit_classifier` on a sparse matrix.
///
/// Undefined behaviour unless:
/// As `nnk_mlp_fit_classifier_csr`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nnk_mlp_partial_fit_classifier_csr(
    m: *mut nnk_mlp,
    c: *const nnk_train_config,
    x: *const nnk_csr,
    labels: *const u32,
) -> i32 {
    fit_common(m, c, CInputs::Csr(x), CTargets::Labels(labels), true)
}

/// `nnk_mlp_partial_fit_regressor` on a sparse matrix.
///
/// Undefined behaviour unless:
/// As `nnk_mlp_fit_regressor_csr`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nnk_mlp_partial_fit_regressor_csr(
    m: *mut nnk_mlp,
    c: *const nnk_train_config,
    x: *const nnk_csr,
    y: *const f32,
    n_targets: usize,
) -> i32 {
    fit_common(m, c, CInputs::Csr(x), CTargets::Dense(y, n_targets), true)
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
        check_out(out, "out")?;
        let model = Mlp::load(path_of(path)?)?;
        // SAFETY: non-NULL, writable.
        unsafe { *out = nnk_mlp::boxed(model) };
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
