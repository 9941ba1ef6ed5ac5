//! Training: mini-batch gradient descent with the solvers, schedules, L2/L1,
//! validation and early stopping of scikit-learn's `MLPClassifier` /
//! `MLPRegressor` (same names and defaults unless a doc says otherwise).

use super::dist::Dist;
use super::inputs::Inputs;
use super::model::{Mlp, Workspace};
pub use super::opt_state::OptState;
use super::task::{LossOf, Scale, Targets, Task};
use crate::error::{Error, Result, invalid};
use crate::gemm::{GemmOptions, SparseRows};
use crate::ops::act::Activation;
use crate::ops::fused::{
    DenseGrads, DenseShape, WeightGradInput, dense_backward, dense_backward_dz, dense_backward_sparse_into,
    dense_backward_sparse_rows, dense_forward, dense_forward_sparse, dense_weight_grad_rows,
};
use crate::optim::{AdamParams, StepRule, add_l1, clip_grad_norm};
use crate::par::Par;
use crate::simd::AlignedVec;
use crate::simd::fp::FlushDenormals;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use std::ops::{ControlFlow, Range};
use std::time::Instant;

/// Optimizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Solver {
    /// SGD with `momentum` and `nesterovs_momentum` (code 0).
    Sgd,
    /// Adam (code 1).
    Adam,
    /// AdamW: Adam with decoupled weight decay `alpha` (code 2).
    AdamW,
    /// RMSprop (code 3).
    RmsProp,
}

impl Solver {
    /// From the C code `NNK_SOLVER_*`.
    pub fn from_code(c: u32) -> Result<Solver> {
        Ok(match c {
            0 => Solver::Sgd,
            1 => Solver::Adam,
            2 => Solver::AdamW,
            3 => Solver::RmsProp,
            x => return Err(invalid(format!("unknown solver code {x} (0 sgd, 1 adam, 2 adamw, 3 rmsprop)"))),
        })
    }
    /// From a name (`"sgd"`, `"adam"`, `"adamw"`, `"rmsprop"`).
    pub fn from_name(s: &str) -> Result<Solver> {
        match s {
            "sgd" => Ok(Solver::Sgd),
            "adam" => Ok(Solver::Adam),
            "adamw" => Ok(Solver::AdamW),
            "rmsprop" => Ok(Solver::RmsProp),
            _ => Err(invalid(format!("unknown solver '{s}'"))),
        }
    }
}

/// Learning-rate schedule.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Schedule {
    /// `learning_rate_init` throughout.
    Constant,
    /// `lr = learning_rate_init / tᵖ` with `t` the samples seen (scikit-learn "invscaling").
    InvScaling {
        /// Exponent `power_t` (scikit-learn default 0.5).
        power_t: f32,
    },
    /// Divide by 5 each time the training loss (or validation score) fails to
    /// improve by `tol` for `n_iter_no_change` epochs (scikit-learn "adaptive").
    Adaptive,
    /// Multiply by `gamma` every `every` epochs.
    Step {
        /// Epochs per step.
        every: usize,
        /// Factor per step.
        gamma: f32,
    },
    /// Cosine decay from `learning_rate_init` to 0 over `max_iter` epochs.
    Cosine,
}

impl Schedule {
    /// The schedule for a C code (`NNK_SCHEDULE_*`: 0 constant, 1
    /// invscaling, 2 adaptive, 3 step, 4 cosine) and its parameter: the
    /// exponent for invscaling (finite, ≥ 0), the epochs per halving for
    /// step (≥ 1); ignored otherwise. Unknown codes and out-of-range
    /// parameters are errors.
    pub fn from_code(code: u32, param: f64) -> Result<Schedule> {
        Ok(match code {
            0 => Schedule::Constant,
            1 => {
                if !(param.is_finite() && (0.0..=f32::MAX as f64).contains(&param)) {
                    return Err(invalid(format!("power_t = {param} is out of range")));
                }
                Schedule::InvScaling { power_t: param as f32 }
            }
            2 => Schedule::Adaptive,
            3 => {
                if !(param >= 1.0 && param < 1e9) {
                    return Err(invalid("step schedule needs param ≥ 1 (epochs)"));
                }
                Schedule::Step { every: param as usize, gamma: 0.5 }
            }
            4 => Schedule::Cosine,
            x => return Err(invalid(format!("unknown schedule {x}"))),
        })
    }
}

/// The largest input density [`SparseInput::Auto`] trains sparse: below
/// the crossover with the dense path, about 0.3 for nonzeros at random
/// positions on this project's benchmark machine at batch 32 and 256
/// (`examples/sparse_cmp`, BENCHMARKS.md).
pub const SPARSE_AUTO_DENSITY: f64 = 0.25;

/// How the first layer reads the training inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SparseInput {
    /// Sparse when at most [`SPARSE_AUTO_DENSITY`] of the input values
    /// are nonzero (estimated once per fit on up to 4 096 evenly spaced
    /// training rows, so the choice depends on the data only).
    Auto,
    /// Always dense: each batch is copied and multiplied as a dense matrix.
    Dense,
    /// Always sparse: each batch's nonzeros are gathered and the first layer's
    /// forward product and weight gradient run as sparse × dense products
    /// ([`crate::gemm::spmm`]), costing `nnz/(batch·n_inputs)` of the dense
    /// flops.
    Sparse,
}

impl SparseInput {
    /// From the C code: 0 auto, 1 dense, 2 sparse.
    pub fn from_code(c: u32) -> Result<SparseInput> {
        Ok(match c {
            0 => SparseInput::Auto,
            1 => SparseInput::Dense,
            2 => SparseInput::Sparse,
            x => return Err(invalid(format!("unknown sparse-input code {x} (0 auto, 1 dense, 2 sparse)"))),
        })
    }
}

/// Training configuration; names and defaults follow scikit-learn's
/// `MLPClassifier` (deviations are noted per field).
#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    /// Optimizer (default Adam).
    pub solver: Solver,
    /// Initial learning rate (1e-3).
    pub learning_rate_init: f32,
    /// Schedule (constant).
    pub learning_rate: Schedule,
    /// L2 penalty: `0.5·alpha·‖W‖²/batch` added to the loss, biases excluded (1e-4).
    /// For AdamW it is the decoupled weight decay instead.
    pub alpha: f32,
    /// L1 penalty `l1·‖W‖₁/batch`, subgradient, biases excluded (0; not in scikit-learn).
    pub l1: f32,
    /// Mini-batch size; 0 means scikit-learn's "auto" = min(200, n_samples).
    pub batch_size: usize,
    /// Epochs (200).
    pub max_iter: usize,
    /// Reshuffle every epoch (true).
    pub shuffle: bool,
    /// Seed of the shuffling and the validation split (0).
    pub random_state: u64,
    /// Improvement threshold (1e-4).
    pub tol: f32,
    /// Epochs without improvement before stopping (10).
    pub n_iter_no_change: usize,
    /// Hold out `validation_fraction` and stop on its score, restoring the best weights (false).
    pub early_stopping: bool,
    /// Fraction held out when `early_stopping` and no explicit validation set (0.1).
    pub validation_fraction: f32,
    /// SGD momentum (0.9).
    pub momentum: f32,
    /// Nesterov momentum for SGD (true).
    pub nesterovs_momentum: bool,
    /// Adam β1 (0.9).
    pub beta_1: f32,
    /// Adam β2 (0.999).
    pub beta_2: f32,
    /// Adam/RMSprop ε (1e-8).
    pub epsilon: f32,
    /// RMSprop decay ρ (0.9; not in scikit-learn).
    pub rho: f32,
    /// Clip the global gradient norm to this value (None; not in scikit-learn).
    pub clip_norm: Option<f32>,
    /// Keep the optimizer state (Adam moments and step count, momentum,
    /// the adaptive learning rate) of a previous fit (false: start it afresh).
    ///
    /// Deviation from scikit-learn: the weights are the model's in both cases,
    /// as in Keras (`fit` continues from the current weights: fresh from
    /// [`Mlp::new`], loaded, or trained). scikit-learn re-draws them when
    /// `warm_start` is false; call [`Mlp::reinitialize`] for that.
    pub warm_start: bool,
    /// Threads for the kernels (Default: the process-wide count).
    pub par: Par,
    /// Dense or sparse first-layer products (Auto: from the inputs' density;
    /// not in scikit-learn, which decides by the input's type). The two paths
    /// give the same results up to the rounding of the sums, both
    /// reproducible for a seed and independent of the thread count.
    pub sparse_input: SparseInput,
    /// Flush subnormal results to zero while training, validating and
    /// predicting inside `fit` (true; not in scikit-learn). On x86-64 this
    /// avoids a microcode assist per subnormal operand, which Adam under L2
    /// otherwise meets on every step for the weights of always-zero inputs
    /// (3.6× slower MNIST epochs at batch 32 on a Xeon). TensorFlow and XLA
    /// (JAX) flush too. Results below `f32::MIN_POSITIVE` in magnitude become
    /// zero, so the trained weights can differ slightly from those trained
    /// without it. The caller's own mode is restored when `fit` returns; the
    /// per-epoch callback runs in this mode. See [`crate::simd::fp`].
    pub flush_denormals: bool,
    /// Data-parallel training over MPI (None: this process alone; feature
    /// `mpi`). Every rank of the communicator calls the same fit with the
    /// same model and config; see [`super::dist`] for how the data is shared
    /// and what the ranks agree on. A communicator of one rank gives exactly
    /// the bits of the fit without it.
    #[cfg(feature = "mpi")]
    pub distributed: Option<super::dist::Distributed>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            solver: Solver::Adam,
            learning_rate_init: 1e-3,
            learning_rate: Schedule::Constant,
            alpha: 1e-4,
            l1: 0.0,
            batch_size: 0,
            max_iter: 200,
            shuffle: true,
            random_state: 0,
            tol: 1e-4,
            n_iter_no_change: 10,
            early_stopping: false,
            validation_fraction: 0.1,
            momentum: 0.9,
            nesterovs_momentum: true,
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-8,
            rho: 0.9,
            clip_norm: None,
            warm_start: false,
            par: Par::Default,
            sparse_input: SparseInput::Auto,
            flush_denormals: true,
            #[cfg(feature = "mpi")]
            distributed: None,
        }
    }
}

impl TrainConfig {
    /// The config [`Mlp::partial_fit`] runs: one epoch, warm start on,
    /// early stopping off, the rest as `self`.
    pub fn for_partial_fit(&self) -> TrainConfig {
        TrainConfig { max_iter: 1, warm_start: true, early_stopping: false, ..self.clone() }
    }

    /// Validates every field.
    pub fn validate(&self) -> Result<()> {
        let finite = [
            ("learning_rate_init", self.learning_rate_init),
            ("alpha", self.alpha),
            ("l1", self.l1),
            ("tol", self.tol),
            ("validation_fraction", self.validation_fraction),
            ("momentum", self.momentum),
            ("beta_1", self.beta_1),
            ("beta_2", self.beta_2),
            ("epsilon", self.epsilon),
            ("rho", self.rho),
        ];
        for (n, v) in finite {
            if !v.is_finite() {
                return Err(Error::NonFinite(format!("{n} = {v}")));
            }
        }
        if self.learning_rate_init <= 0.0 {
            return Err(invalid("learning_rate_init must be > 0"));
        }
        if self.alpha < 0.0 || self.l1 < 0.0 {
            return Err(invalid("alpha and l1 must be ≥ 0"));
        }
        if self.max_iter == 0 {
            return Err(invalid("max_iter must be ≥ 1"));
        }
        if !(0.0..1.0).contains(&self.momentum)
            || !(0.0..1.0).contains(&self.beta_1)
            || !(0.0..1.0).contains(&self.beta_2)
        {
            return Err(invalid("momentum, beta_1 and beta_2 must be in [0, 1)"));
        }
        if !(0.0..1.0).contains(&self.rho) || self.epsilon <= 0.0 {
            return Err(invalid("rho must be in [0, 1) and epsilon > 0"));
        }
        if self.early_stopping && !(self.validation_fraction > 0.0 && self.validation_fraction < 1.0) {
            return Err(invalid("validation_fraction must be in (0, 1)"));
        }
        if let Some(c) = self.clip_norm {
            if !(c > 0.0 && c.is_finite()) {
                return Err(invalid("clip_norm must be positive"));
            }
        }
        if let Schedule::Step { every, gamma } = self.learning_rate {
            if every == 0 || !(gamma > 0.0 && gamma.is_finite()) {
                return Err(invalid("step schedule needs every ≥ 1 and gamma > 0"));
            }
        }
        if let Schedule::InvScaling { power_t } = self.learning_rate {
            if !power_t.is_finite() || power_t < 0.0 {
                return Err(invalid("power_t must be ≥ 0"));
            }
        }
        Ok(())
    }
}

/// One epoch of history (scikit-learn's `loss_curve_` / `validation_scores_`).
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct EpochRecord {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Mean training loss including the L2 term.
    pub loss: f64,
    /// Validation loss (without penalty), if a validation set is used.
    pub val_loss: Option<f64>,
    /// Validation accuracy (classifiers) or R² (regression), if used.
    pub val_score: Option<f64>,
    /// Training accuracy of the epoch for classifiers (Keras' running
    /// `accuracy`): the fraction of the epoch's samples that the model
    /// classified right in its forward pass, each batch measured before its
    /// own update (multi-class: the arg-max; binary and multi-label: every
    /// output on the right side of 0.5). `None` for regression.
    pub score: Option<f64>,
    /// Learning rate used in this epoch.
    pub learning_rate: f32,
    /// Wall-clock seconds of the epoch.
    pub seconds: f64,
}

/// What [`fit`](Mlp::fit) returns.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct History {
    /// One record per epoch run.
    pub epochs: Vec<EpochRecord>,
    /// Best training loss (`best_loss_`).
    pub best_loss: f64,
    /// Whether training stopped before `max_iter` epochs: no improvement for
    /// `n_iter_no_change` epochs, or the callback returned
    /// [`ControlFlow::Break`] (see [`History::stopped_by_callback`]).
    pub stopped_early: bool,
    /// Whether the epoch callback (or [`FitObserver::on_epoch`]) asked to stop.
    pub stopped_by_callback: bool,
    /// With `early_stopping`: the epoch (from 1) whose weights the model holds
    /// after `fit`, the best by validation score; they are restored at the end,
    /// whether training stopped early or ran all `max_iter` epochs. `None`
    /// without early stopping (the model holds the last epoch's weights).
    pub restored_epoch: Option<usize>,
    /// How a distributed fit went on this rank: its communication share
    /// and throughput (feature `mpi`; None when the fit ran on one rank).
    #[cfg(feature = "mpi")]
    pub distributed: Option<super::dist::DistReport>,
}

/// Progress within an epoch, given to [`FitObserver::on_batch`] after every
/// mini-batch's update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchProgress {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// The most epochs this fit runs (`max_iter`).
    pub max_epochs: usize,
    /// Mini-batches done in this epoch, from 1.
    pub batch: usize,
    /// Mini-batches per epoch.
    pub batches: usize,
}

/// Watches a fit: [`Mlp::fit_observed`] calls [`on_batch`](Self::on_batch)
/// after every mini-batch's update and [`on_epoch`](Self::on_epoch) after every
/// epoch. Both default to doing nothing (and continuing).
///
/// The observer cannot change what is trained: a fit gives the same bits with
/// or without one (unless `on_epoch` stops it). `on_batch` is called once per
/// batch on the fitting thread, with the subnormal mode of the fit (see
/// [`TrainConfig::flush_denormals`]); keep it cheap (throttle any printing), as
/// it runs between two batches' work.
pub trait FitObserver {
    /// After each mini-batch's update.
    fn on_batch(&mut self, progress: &BatchProgress) {
        let _ = progress;
    }
    /// After each epoch, with its record: [`ControlFlow::Continue`] to go on,
    /// [`ControlFlow::Break`] to stop (the fit then succeeds with the epochs
    /// run so far, and [`History::stopped_by_callback`] is set).
    fn on_epoch(&mut self, record: &EpochRecord) -> ControlFlow<()> {
        let _ = record;
        ControlFlow::Continue(())
    }
}

/// The per-epoch callback of [`Mlp::fit`]: [`ControlFlow::Continue`] goes on,
/// [`ControlFlow::Break`] stops.
pub type EpochCallback<'a> = dyn FnMut(&EpochRecord) -> ControlFlow<()> + 'a;

/// The epoch callback of [`Mlp::fit`] as an observer.
struct EpochFn<'a, 'b>(Option<&'a mut EpochCallback<'b>>);

impl FitObserver for EpochFn<'_, '_> {
    fn on_epoch(&mut self, record: &EpochRecord) -> ControlFlow<()> {
        match self.0.as_mut() {
            Some(f) => f(record),
            None => ControlFlow::Continue(()),
        }
    }
}

/// Validation data given explicitly (at least one sample: `n = 0` is
/// [`Error::InvalidArgument`]; pass `None` for no validation). In a
/// distributed fit over several ranks a rank's part may be empty: it weighs
/// 0 in the ranks' averaged score.
#[derive(Debug, Clone, Copy)]
pub struct Validation<'a> {
    /// Samples, `n × n_inputs`.
    pub x: &'a [f32],
    /// Number of samples.
    pub n: usize,
    /// Targets.
    pub y: Targets<'a>,
}

/// The optimizer update of one batch for `cfg` at learning rate `lr`, as
/// the step numbered `t` (from 1), with coupled L2 `l2` (AdamW decays by
/// `cfg.alpha` instead). The only place that maps a [`Solver`] to its rule:
/// the fit's state buffers follow from it too ([`StepRule::state_buffers`]).
fn step_rule(cfg: &TrainConfig, lr: f32, t: u64, l2: f32) -> Result<StepRule> {
    match cfg.solver {
        Solver::Sgd => StepRule::sgd(lr, cfg.momentum, cfg.nesterovs_momentum, l2),
        Solver::Adam | Solver::AdamW => {
            let p = AdamParams { lr, beta1: cfg.beta_1, beta2: cfg.beta_2, eps: cfg.epsilon };
            if cfg.solver == Solver::Adam { StepRule::adam(&p, t, l2) } else { StepRule::adamw(&p, t, cfg.alpha) }
        }
        Solver::RmsProp => StepRule::rmsprop(lr, cfg.rho, cfg.epsilon, l2),
    }
}

/// Starts fetching the inputs of the batch `rows` into the caches, only
/// where they exceed half of L3 (`bf.prefetch`): the rows' nonzeros on the
/// sparse path (`bf.sparse`, the trainer's copy; in halves, one per thread
/// of the forward product), else the rows of `x` that the next gather copies.
fn prefetch_inputs(x: Inputs<'_>, bf: &TrainBufs, rows: &[usize], n_inputs: usize, par: Par) {
    if !bf.prefetch {
        return;
    }
    match &bf.sparse {
        // Each half of the rows' nonzeros to the core whose task of the
        // forward product reads it.
        Some(xs) => xs.prefetch_rows_halves(rows, par),
        None => x.prefetch_rows(rows, n_inputs),
    }
}

/// The learning rate of epoch `epoch` (from 1) under `cfg`'s schedule
/// (`adaptive`: the state's; `invscaling` varies per batch, see
/// [`batch_lr`]).
fn epoch_lr(cfg: &TrainConfig, epoch: usize, state: &OptState) -> f32 {
    match cfg.learning_rate {
        Schedule::Constant | Schedule::InvScaling { .. } => cfg.learning_rate_init,
        Schedule::Adaptive => state.lr,
        Schedule::Step { every, gamma } => cfg.learning_rate_init * gamma.powi(((epoch - 1) / every) as i32),
        Schedule::Cosine => {
            let f = (epoch - 1) as f64 / cfg.max_iter as f64;
            (cfg.learning_rate_init as f64 * 0.5 * (1.0 + (std::f64::consts::PI * f).cos())) as f32
        }
    }
}

/// The learning rate of the next batch: the epoch's, or under `invscaling`
/// `learning_rate_init / (samples_seen + 1)^power_t`.
fn batch_lr(cfg: &TrainConfig, lr_epoch: f32, samples_seen: u64) -> f32 {
    match cfg.learning_rate {
        Schedule::InvScaling { power_t } => {
            (cfg.learning_rate_init as f64 / ((samples_seen + 1) as f64).powf(power_t as f64)) as f32
        }
        _ => lr_epoch,
    }
}

/// Buffers sized once per fit: no allocation per batch.
struct TrainBufs {
    /// The batch's inputs, dense (empty when sparse).
    xb: AlignedVec,
    /// The whole training set's nonzeros (sparse only): each batch's
    /// products read its rows there.
    sparse: Option<SparseRows>,
    /// Whether the step prefetches the next batch's inputs (its nonzeros on
    /// the sparse path): when they exceed half of L3
    /// ([`SparseRows::beyond_l3`], [`Inputs::beyond_l3`]).
    prefetch: bool,
    /// The batch's labels, when the task's loss reads labels.
    yl: Vec<u32>,
    /// The batch's dense targets (a sigmoid output's labels as 0/1).
    yd: Vec<f32>,
    /// Per layer: pre-activations (kept where the activation's backward
    /// needs them), activations (the last layer's: logits), and `∂L/∂a`.
    z: Vec<AlignedVec>,
    a: Vec<AlignedVec>,
    da: Vec<AlignedVec>,
    /// `∂L/∂z` of the layer being differentiated.
    dz: AlignedVec,
    /// The gradient, laid out as the parameters.
    grad: AlignedVec,
}

/// Where the backward pass writes the gradient (laid out as the
/// parameters): a plain slice, or a distributed step's reduce-scatter,
/// which sends each bucket as soon as its values are final.
pub(crate) trait GradSink {
    /// The gradient's values `r`, to write.
    fn part(&mut self, r: Range<usize>) -> &mut [f32];
    /// The values `r` are final for this step (written for the last time).
    fn ready(&mut self, _r: Range<usize>) {}
    /// Rows of the first layer's weight gradient to compute at a time (each
    /// piece final as soon as it is written), or `None`: the whole layer at
    /// once.
    fn first_rows(&self) -> Option<usize> {
        None
    }
}

impl GradSink for [f32] {
    fn part(&mut self, r: Range<usize>) -> &mut [f32] {
        &mut self[r]
    }
}

/// Everything a fit needs, checked and allocated before the model or its
/// optimizer state is touched (scikit-learn's `_fit_stochastic` set-up):
/// running out of memory is an [`Error::OutOfMemory`] that leaves the model
/// exactly as it was. The epochs then allocate nothing but their records.
struct Plan<'a> {
    /// The training rows, in the order of the next epoch.
    idx: Vec<usize>,
    /// Mini-batch size.
    batch: usize,
    bufs: TrainBufs,
    /// The optimizer state this fit continues (warm start).
    keep: bool,
    /// Zeroed state buffers the fit's solver needs and the kept state lacks.
    fresh: (Option<AlignedVec>, Option<AlignedVec>),
    /// Where a diverging epoch goes back to.
    start: Checkpoint,
    early: EarlyStopping,
    validator: Option<Validator<'a>>,
}

impl<'a> Plan<'a> {
    /// Checks the inputs, splits off the validation set, chooses the batch
    /// size and the sparse path, and allocates every buffer.
    fn new(
        m: &Mlp,
        x: Inputs<'_>,
        y: &Targets<'_>,
        cfg: &TrainConfig,
        val: Option<Validation<'a>>,
    ) -> Result<Plan<'a>> {
        let n_samples = x.n_samples();
        x.check_shape(m)?;
        m.check_targets(y, n_samples)?;
        if n_samples == 0 {
            return Err(invalid("no training samples"));
        }
        if let Some(v) = &val {
            m.check_input(v.x, v.n)?;
            m.check_targets(&v.y, v.n)?;
        }
        if val.is_none() && cfg.early_stopping && n_samples < 2 {
            return Err(invalid(format!(
                "early stopping holds out a validation set: it needs at least 2 samples, got {n_samples}"
            )));
        }
        let (ni, k) = (m.n_inputs, m.n_outputs());
        // Training / validation index split.
        let mut idx: Vec<usize> = crate::mem::try_collect(n_samples, 0..n_samples, "the sample order")?;
        let mut val_idx: Vec<usize> = Vec::new();
        if val.is_none() && cfg.early_stopping {
            let mut rng = StdRng::seed_from_u64(cfg.random_state ^ 0x5eed_5eed);
            idx.shuffle(&mut rng);
            let nv = ((n_samples as f64 * cfg.validation_fraction as f64).ceil() as usize).clamp(1, n_samples - 1);
            val_idx = crate::mem::try_to_vec(&idx[n_samples - nv..], "the validation split")?;
            idx.truncate(n_samples - nv);
            idx.sort_unstable();
        }
        let n_train = idx.len();
        let batch = if cfg.batch_size == 0 { n_train.min(200) } else { cfg.batch_size.min(n_train) };
        let sparse = match cfg.sparse_input {
            SparseInput::Dense => false,
            SparseInput::Sparse => true,
            // Sparse indices are 32-bit: wider inputs or batches stay dense.
            SparseInput::Auto => u32::try_from(ni.max(batch)).is_ok() && x.density(&idx, ni) <= SPARSE_AUTO_DENSITY,
        };
        // The sparse path checks its copy of the inputs' nonzeros
        // (`Inputs::to_sparse`), the dense path every value.
        if !sparse {
            x.check_finite(ni)?;
        }
        let bufs = m.train_buffers(batch, x, sparse)?;
        let n_par = m.params.len();
        // The optimizer state this fit continues (warm start), and the
        // buffers it still lacks: as many as the solver's rule reads.
        let kept =
            if cfg.warm_start { m.state.as_ref().filter(|s| s.s1.len() == n_par || s.s1.is_empty()) } else { None };
        let need = step_rule(cfg, cfg.learning_rate_init, 1, 0.0)?.state_buffers();
        let (keep, (kept1, kept2)) = (kept.is_some(), kept.map_or((0, 0), |s| (s.s1.len(), s.s2.len())));
        let s1_len = if need >= 1 { n_par } else { kept1 };
        let s2_len = if need >= 2 { n_par } else { kept2 };
        let what = "the optimizer state";
        let fresh1 = if kept1 != s1_len { Some(AlignedVec::try_zeros(s1_len, what)?) } else { None };
        let fresh2 = if kept2 != s2_len { Some(AlignedVec::try_zeros(s2_len, what)?) } else { None };
        let start = Checkpoint {
            params: m.params.try_clone("the epoch-start weights")?,
            state: OptState::try_zeros(s1_len, s2_len, cfg.learning_rate_init, "the epoch-start optimizer state")?,
        };
        let early = EarlyStopping::new(cfg.early_stopping, n_par)?;
        // Validation data, gathered once, and the buffers it is predicted in.
        let held_out = if val_idx.is_empty() { None } else { Some(gather(x, y, &val_idx, ni, k)?) };
        let n_val = val.as_ref().map_or(val_idx.len(), |v| v.n);
        let ws = if n_val > 0 { Workspace::try_new(m, n_val.min(256))? } else { Workspace::new(m, 1) };
        let ws = ws.with_flush_denormals(cfg.flush_denormals);
        let p = crate::mem::try_vec(if n_val > 0 { n_val * k } else { 0 }, 0.0, "the validation predictions")?;
        let data = match (val, held_out) {
            (Some(v), _) => Some(ValData::Given(v)),
            (None, Some((x, y))) => Some(ValData::HeldOut { x, n: val_idx.len(), y }),
            (None, None) => None,
        };
        let validator = data.map(|data| Validator { data, ws, p });
        Ok(Plan { idx, batch, bufs, keep, fresh: (fresh1, fresh2), start, early, validator })
    }

    /// Validation samples (0 without validation).
    fn n_val(&self) -> usize {
        self.validator.as_ref().map_or(0, |v| match &v.data {
            ValData::Given(g) => g.n,
            ValData::HeldOut { n, .. } => *n,
        })
    }

    /// The optimizer state to train with, from the model's (taken: the model
    /// holds none until the fit returns it): the kept one under
    /// `warm_start`, else a fresh one; with the buffers the solver needs.
    fn take_state(&mut self, m: &mut Mlp, cfg: &TrainConfig) -> OptState {
        let mut state = match m.state.take() {
            Some(s) if self.keep => s,
            _ => OptState::fresh(cfg.learning_rate_init),
        };
        if let Some(v) = self.fresh.0.take() {
            state.s1 = v;
        }
        if let Some(v) = self.fresh.1.take() {
            state.s2 = v;
        }
        state
    }
}

/// The weights and optimizer state at the start of an epoch: what a
/// diverging or failing epoch restores.
struct Checkpoint {
    params: AlignedVec,
    state: OptState,
}

impl Checkpoint {
    /// Records `m`'s weights and `state` (no allocation: same lengths).
    fn save(&mut self, m: &Mlp, state: &OptState) {
        self.params.copy_from_slice(&m.params);
        self.state.copy_from(state);
    }

    /// Puts the recorded weights and state back into `m` and returns `e`:
    /// a failed epoch leaves the model as the epoch found it.
    /// Distributed, every rank restores and each one's slice of the state
    /// goes to all.
    fn restore(mut self, m: &mut Mlp, e: Error, dist: Option<&mut Dist>) -> Error {
        m.params.copy_from_slice(&self.params);
        if let Some(d) = dist {
            d.gather_state(&mut self.state);
        }
        m.state = Some(self.state);
        e
    }
}

/// The validation set a fit scores after every epoch, given or held out
/// (gathered once), with the buffers it is predicted in.
struct Validator<'a> {
    data: ValData<'a>,
    ws: Workspace,
    p: Vec<f32>,
}

enum ValData<'a> {
    Given(Validation<'a>),
    HeldOut { x: Vec<f32>, n: usize, y: Gathered },
}

impl Validator<'_> {
    /// Loss and score of `m` on the validation set, allocating nothing.
    fn run(&mut self, m: &Mlp) -> Result<(f64, f64)> {
        match &self.data {
            ValData::Given(v) => m.evaluate_into(v.x, v.n, &v.y, &mut self.ws, &mut self.p),
            ValData::HeldOut { x, n, y } => {
                let vt = match y {
                    Gathered::L(l) => Targets::Labels(l),
                    Gathered::D(d) => Targets::Dense(d),
                };
                m.evaluate_into(x, *n, &vt, &mut self.ws, &mut self.p)
            }
        }
    }
}

/// The improvement bookkeeping of scikit-learn's
/// `_update_no_improvement_count`: on the validation score with
/// `early_stopping` (keeping the best epoch's weights), else on the
/// training loss.
struct EarlyStopping {
    on: bool,
    best_score: f64,
    /// The best epoch's weights (early stopping only).
    best_params: AlignedVec,
    best_epoch: Option<usize>,
    no_improve: usize,
}

impl EarlyStopping {
    /// The tracker of a fit, with room for `n_params` weights when `on`.
    fn new(on: bool, n_params: usize) -> Result<EarlyStopping> {
        let best_params =
            if on { AlignedVec::try_zeros(n_params, "the best epoch's weights")? } else { AlignedVec::default() };
        Ok(EarlyStopping { on, best_score: f64::NEG_INFINITY, best_params, best_epoch: None, no_improve: 0 })
    }

    /// Counts epoch `rec` (of weights `params`) against the best so far and
    /// lowers `hist.best_loss`. Returns whether `n_iter_no_change` epochs
    /// have passed without improvement; then the adaptive schedule divides
    /// the learning rate `lr` by 5 and goes on (while it stays above 1e-6)
    /// instead of stopping.
    fn update(
        &mut self,
        cfg: &TrainConfig,
        rec: &EpochRecord,
        params: &[f32],
        hist: &mut History,
        lr: &mut f32,
    ) -> bool {
        let improved = if self.on {
            let s = rec.val_score.unwrap_or(f64::NEG_INFINITY);
            let imp = s > self.best_score + cfg.tol as f64;
            if s > self.best_score {
                self.best_score = s;
                self.best_params.copy_from_slice(params);
                self.best_epoch = Some(rec.epoch);
                hist.restored_epoch = Some(rec.epoch);
            }
            imp
        } else {
            rec.loss < hist.best_loss - cfg.tol as f64
        };
        hist.best_loss = hist.best_loss.min(rec.loss);
        self.no_improve = if improved { 0 } else { self.no_improve + 1 };
        if self.no_improve > cfg.n_iter_no_change {
            if cfg.learning_rate == Schedule::Adaptive && *lr / 5.0 > 1e-6 {
                *lr /= 5.0;
                self.no_improve = 0;
            } else {
                return true;
            }
        }
        false
    }

    /// Puts the best epoch's weights into `params`, if there is one.
    fn restore_best(&self, params: &mut [f32]) {
        if self.best_epoch.is_some() {
            params.copy_from_slice(&self.best_params);
        }
    }
}

/// What one epoch's batches sum to.
struct EpochTotals {
    /// Σ batch loss × batch size.
    loss: f64,
    /// Samples classified right by the forward passes.
    correct: usize,
}

impl Mlp {
    pub(crate) fn check_targets(&self, y: &Targets<'_>, n: usize) -> Result<()> {
        self.task.check_targets(self.n_outputs(), y, n)
    }

    /// The checks of [`Mlp::evaluate`] and [`Mlp::score`] before they
    /// predict: the targets `y` of `n` samples ([`Mlp::check_targets`]),
    /// then at least one sample (a score of nothing is no score).
    pub(crate) fn check_eval_targets(&self, y: &Targets<'_>, n: usize) -> Result<()> {
        self.check_targets(y, n)?;
        if n == 0 {
            return Err(invalid("no samples to evaluate: n_samples is 0"));
        }
        Ok(())
    }

    /// Trains on `n_samples` rows of `x` (`n_samples × n_inputs`, finite) with
    /// targets `y`. Validation data: `val`, else with `early_stopping` a seeded
    /// `validation_fraction` split of the training data. `callback` is called
    /// after every epoch with its record and returns
    /// [`ControlFlow::Continue`] to go on or [`ControlFlow::Break`] to stop
    /// (the fit then succeeds with the epochs run so far). For progress within
    /// an epoch, see [`Mlp::fit_observed`].
    ///
    /// A non-finite loss stops training with [`Error::Diverged`] and restores
    /// the weights of the start of that epoch. With `early_stopping`, the
    /// weights of the best validation epoch are restored at the end
    /// ([`History::restored_epoch`]).
    pub fn fit(
        &mut self,
        x: &[f32],
        n_samples: usize,
        y: Targets<'_>,
        cfg: &TrainConfig,
        val: Option<Validation<'_>>,
        callback: Option<&mut EpochCallback<'_>>,
    ) -> Result<History> {
        self.fit_observed(x, n_samples, y, cfg, val, &mut EpochFn(callback))
    }

    /// [`Mlp::fit`] with an observer that also sees every mini-batch
    /// ([`FitObserver::on_batch`]: progress within long epochs). The trained
    /// weights are the same bits as `fit`'s.
    pub fn fit_observed(
        &mut self,
        x: &[f32],
        n_samples: usize,
        y: Targets<'_>,
        cfg: &TrainConfig,
        val: Option<Validation<'_>>,
        observer: &mut dyn FitObserver,
    ) -> Result<History> {
        self.fit_inputs(Inputs::Dense { x, n_samples }, y, cfg, val, observer)
    }

    /// [`Mlp::fit`] on a sparse matrix's rows (scipy's CSR through
    /// [`SparseRows::from_csr`]), which is never made dense as a whole: the
    /// sparse first-layer path (`sparse_input` Auto or Sparse) multiplies its
    /// nonzeros, the dense path writes one mini-batch at a time densely, and
    /// an early-stopping split holds its validation rows densely. The same
    /// rows given densely train to the same bits.
    pub fn fit_sparse(
        &mut self,
        x: &SparseRows,
        y: Targets<'_>,
        cfg: &TrainConfig,
        val: Option<Validation<'_>>,
        callback: Option<&mut EpochCallback<'_>>,
    ) -> Result<History> {
        self.fit_inputs(Inputs::Sparse(x), y, cfg, val, &mut EpochFn(callback))
    }

    /// The fit behind [`Mlp::fit`], [`Mlp::fit_observed`] and
    /// [`Mlp::fit_sparse`]: dense or sparse inputs, with an observer.
    pub fn fit_inputs(
        &mut self,
        x: Inputs<'_>,
        y: Targets<'_>,
        cfg: &TrainConfig,
        val: Option<Validation<'_>>,
        observer: &mut dyn FitObserver,
    ) -> Result<History> {
        let t_fit = Instant::now();
        // Collective over the communicator when distributed (None on one rank).
        let mut dist = Dist::join(cfg)?;
        // Empty validation data scores nothing. Across ranks, a rank's empty
        // part only weighs 0 in the average (`Shard::Local`).
        if dist.is_none() && val.as_ref().is_some_and(|v| v.n == 0) {
            return Err(invalid("the validation data has no samples (n = 0); pass None for no validation"));
        }
        let _mode = FlushDenormals::new(cfg.flush_denormals);
        let n_samples = x.n_samples();
        let plan = cfg.validate().and_then(|()| Plan::new(self, x, &y, cfg, val));
        let mut plan = match dist.as_mut() {
            // Every rank's checks agreed, then rank 0's weights everywhere.
            Some(d) => d.start(plan, |p| (p.idx.len(), p.n_val()), self, cfg, n_samples)?,
            None => plan?,
        };
        // Nothing below allocates in proportion to the data or the model:
        // the state can be taken.
        let mut state = plan.take_state(self, cfg);
        if let (Some(d), true) = (dist.as_mut(), plan.keep) {
            d.share_state(&mut state);
        }
        let mut rng = StdRng::seed_from_u64(cfg.random_state);
        let mut hist = History { best_loss: f64::INFINITY, ..Default::default() };
        let n_train = dist.as_ref().map_or(plan.idx.len(), |d| d.n_total());
        for epoch in 1..=cfg.max_iter {
            let t0 = Instant::now();
            if cfg.shuffle {
                plan.idx.shuffle(&mut rng);
            }
            plan.start.save(self, &state);
            let lr_epoch = epoch_lr(cfg, epoch, &state);
            let totals =
                match self.run_epoch(x, &y, &mut plan, cfg, &mut state, epoch, lr_epoch, observer, dist.as_mut()) {
                    Ok(t) => t,
                    Err(e) => return Err(plan.start.restore(self, e, dist.as_mut())),
                };
            let (val_loss, val_score) = match dist.as_mut() {
                None => match &mut plan.validator {
                    Some(v) => v.run(self).map(|(l, s)| (Some(l), Some(s)))?,
                    None => (None, None),
                },
                Some(d) => {
                    let local = plan.validator.as_mut().map(|v| v.run(self)).transpose();
                    let local = d.agree(local)?;
                    d.validation(local, plan.n_val())
                }
            };
            let rec = EpochRecord {
                epoch,
                loss: totals.loss / n_train as f64,
                val_loss,
                val_score,
                score: (self.task != Task::Regression).then(|| totals.correct as f64 / n_train as f64),
                learning_rate: lr_epoch,
                seconds: t0.elapsed().as_secs_f64(),
            };
            hist.epochs.push(rec);
            let mut stop = plan.early.update(cfg, &rec, &self.params, &mut hist, &mut state.lr);
            let mut brk = observer.on_epoch(&rec).is_break();
            if let Some(d) = dist.as_mut() {
                // One rank's callback stops every rank in the same epoch.
                brk = d.any(brk);
            }
            if brk {
                hist.stopped_by_callback = true;
                stop = true;
            }
            if stop {
                hist.stopped_early = true;
                break;
            }
        }
        plan.early.restore_best(&mut self.params);
        if let Some(d) = dist.as_mut() {
            d.gather_state(&mut state);
            d.report(&mut hist, t_fit.elapsed().as_secs_f64());
        }
        self.state = Some(state);
        Ok(hist)
    }

    /// One epoch: every batch of `plan.idx` through [`Mlp::train_batch`]
    /// (distributed: this rank's share of every global batch through
    /// [`Mlp::train_share`]). A non-finite loss or gradient, or weights that
    /// became non-finite, is [`Error::Diverged`]; the caller restores the
    /// epoch's start on any error.
    #[allow(clippy::too_many_arguments)]
    fn run_epoch(
        &mut self,
        x: Inputs<'_>,
        y: &Targets<'_>,
        plan: &mut Plan<'_>,
        cfg: &TrainConfig,
        state: &mut OptState,
        epoch: usize,
        lr_epoch: f32,
        observer: &mut dyn FitObserver,
        mut dist: Option<&mut Dist>,
    ) -> Result<EpochTotals> {
        let opts = GemmOptions { par: cfg.par, ..Default::default() };
        let mut totals = EpochTotals { loss: 0.0, correct: 0 };
        let batch = dist.as_ref().map_or(plan.batch, |d| d.global_batch(cfg.batch_size));
        let n = plan.idx.len();
        let batches = dist.as_ref().map_or(n.div_ceil(batch), |d| d.steps(n, batch));
        // This rank's rows of batch `s`, and the global batch's size.
        let rows_of = |idx: &[usize], d: Option<&Dist>, s: usize| -> (std::ops::Range<usize>, usize) {
            match d {
                None => (s * batch..((s + 1) * batch).min(n), ((s + 1) * batch).min(n) - s * batch),
                Some(d) => d.rows(idx.len(), batch, s, batches),
            }
        };
        // A failure of this rank alone inside a distributed epoch: it goes on
        // taking part (with a zero gradient) and all ranks return it at the end.
        let mut failed: Option<Error> = None;
        for s in 0..batches {
            let (rows, b) = rows_of(&plan.idx, dist.as_deref(), s);
            let next = (s + 1 < batches).then(|| rows_of(&plan.idx, dist.as_deref(), s + 1).0);
            let (rows, next) = (&plan.idx[rows], next.map(|r| &plan.idx[r]));
            let lr = batch_lr(cfg, lr_epoch, state.samples_seen);
            let what = if let Some(d) = dist.as_deref_mut() {
                // Only errors every rank agrees on (a non-finite global
                // gradient norm) return here.
                let (loss, right) =
                    self.train_share(x, y, rows, b, next, &mut plan.bufs, cfg, state, lr, &opts, d, &mut failed)?;
                totals.loss += loss;
                totals.correct += right;
                None
            } else {
                match self.train_batch(x, y, rows, next, &mut plan.bufs, cfg, state, lr, &opts) {
                    Ok((loss, right)) if loss.is_finite() => {
                        totals.loss += loss * b as f64;
                        totals.correct += right;
                        None
                    }
                    Ok((loss, _)) => Some(format!("the training loss became {loss}")),
                    Err(Error::Diverged(m)) => Some(m),
                    Err(e) => return Err(e),
                }
            };
            // An update can overflow the weights while its batch's loss was
            // still finite: checked once per epoch (a pass over the
            // parameters), before they become the next epoch's restore point
            // or the result.
            let what = what.or_else(|| {
                (s + 1 == batches && dist.is_none())
                    .then(|| crate::simd::reduce::first_non_finite(&self.params))
                    .flatten()
                    .map(|i| format!("parameter {i} became non-finite"))
            });
            if let Some(what) = what {
                // Back to the last state known to be good (the caller
                // restores): a non-finite loss may follow an update that
                // already spoiled the weights.
                return Err(diverged(&what, epoch));
            }
            state.samples_seen += b as u64;
            observer.on_batch(&BatchProgress { epoch, max_epochs: cfg.max_iter, batch: s + 1, batches });
        }
        if let Some(d) = dist {
            // Every rank's failure, then the epoch's sums, agreed; the
            // parameters are the same bits on every rank.
            d.agree(failed.map_or(Ok(()), Err))?;
            let mut t = [totals.loss, totals.correct as f64];
            d.sum(&mut t);
            totals = EpochTotals { loss: t[0], correct: t[1] as usize };
            let what = if !t[0].is_finite() {
                Some(format!("the training loss became {}", t[0]))
            } else {
                crate::simd::reduce::first_non_finite(&self.params).map(|i| format!("parameter {i} became non-finite"))
            };
            if let Some(what) = what {
                return Err(diverged(&what, epoch));
            }
        }
        Ok(totals)
    }

    /// One pass over the data keeping the optimizer state (scikit-learn's
    /// `partial_fit`): `fit` with `max_iter = 1`, `warm_start = true`.
    pub fn partial_fit(&mut self, x: &[f32], n_samples: usize, y: Targets<'_>, cfg: &TrainConfig) -> Result<History> {
        self.fit(x, n_samples, y, &cfg.for_partial_fit(), None, None)
    }

    /// Mean loss (without penalty) and score (accuracy, or R² for regression)
    /// on labelled data.
    /// Subnormals are flushed, as by [`Mlp::predict_proba`].
    /// Targets are checked as `fit` checks them; zero samples are
    /// [`Error::InvalidArgument`].
    pub fn evaluate(&self, x: &[f32], n_samples: usize, y: &Targets<'_>) -> Result<(f64, f64)> {
        self.evaluate_mode(x, n_samples, y, true)
    }

    /// [`Mlp::evaluate`] flushing subnormals or not (`fit` follows its config).
    fn evaluate_mode(&self, x: &[f32], n_samples: usize, y: &Targets<'_>, flush: bool) -> Result<(f64, f64)> {
        self.check_eval_targets(y, n_samples)?;
        let mut ws = Workspace::new(self, 256).with_flush_denormals(flush);
        let n_out = n_samples
            .checked_mul(self.n_outputs())
            .ok_or_else(|| Error::Overflow("n_samples × outputs overflows".into()))?;
        let mut p = crate::mem::try_vec(n_out, 0.0, "the predictions")?;
        self.evaluate_into(x, n_samples, y, &mut ws, &mut p)
    }

    /// [`Mlp::evaluate`] predicting into `ws` and `p` (`n_samples × outputs`),
    /// allocating nothing.
    fn evaluate_into(
        &self,
        x: &[f32],
        n_samples: usize,
        y: &Targets<'_>,
        ws: &mut Workspace,
        p: &mut [f32],
    ) -> Result<(f64, f64)> {
        self.check_targets(y, n_samples)?;
        let k = self.n_outputs();
        let p = &mut p[..n_samples * k];
        self.predict_into(x, n_samples, ws, p)?;
        let p = &*p;
        let score = self.task.score(p, k, y)?;
        let loss = self.task.loss(LossOf::Outputs(p), y, k)?;
        Ok((loss, score))
    }

    fn train_buffers(&self, batch: usize, x: Inputs<'_>, sparse: bool) -> Result<TrainBufs> {
        let k = self.n_outputs();
        let widest = self.layers.iter().map(|l| l.units).max().unwrap_or(1);
        // The whole training set's nonzeros, once per fit (each batch's
        // products then read its rows there, with nothing to allocate).
        let sparse = if sparse { Some(x.to_sparse(self.n_inputs)?) } else { None };
        let what = "the training buffers";
        let per_layer = || -> Result<Vec<AlignedVec>> {
            self.layers.iter().map(|l| AlignedVec::try_zeros(batch * l.units, what)).collect()
        };
        Ok(TrainBufs {
            xb: if sparse.is_some() {
                AlignedVec::default()
            } else {
                AlignedVec::try_zeros(batch * self.n_inputs, what)?
            },
            prefetch: sparse.as_ref().map_or_else(|| x.beyond_l3(), SparseRows::beyond_l3),
            sparse,
            yl: crate::mem::try_vec(batch, 0, what)?,
            yd: crate::mem::try_vec(batch * k, 0.0, what)?,
            z: per_layer()?,
            a: per_layer()?,
            da: per_layer()?,
            dz: AlignedVec::try_zeros(batch * widest, what)?,
            grad: AlignedVec::try_zeros(self.params.len(), "the gradient")?,
        })
    }

    /// Gather, forward, head (loss, ∂L/∂logits and accuracy), penalties,
    /// backward and optimizer step on the samples `rows` (`next`: the next
    /// batch's, whose inputs are prefetched during the step, or before the
    /// backward pass where that holds the first layer's step, see
    /// `prefetch_inputs`). Returns
    /// the batch loss and how many of its samples the forward pass
    /// classified right (0 for regression). Nothing is updated from a
    /// non-finite loss (the caller restores).
    #[allow(clippy::too_many_arguments)]
    fn train_batch(
        &mut self,
        x: Inputs<'_>,
        y: &Targets<'_>,
        rows: &[usize],
        next: Option<&[usize]>,
        bf: &mut TrainBufs,
        cfg: &TrainConfig,
        st: &mut OptState,
        lr: f32,
        opts: &GemmOptions,
    ) -> Result<(f64, usize)> {
        self.gather_batch(x, y, rows, bf);
        self.forward(rows, bf, opts)?;
        let (loss, right) = self.head(rows.len(), bf)?;
        let loss = self.add_penalties(loss, cfg, rows.len());
        if !loss.is_finite() {
            return Ok((loss, right));
        }
        let l2 = L2::of(cfg, rows.len());
        let rules = (step_rule(cfg, lr, st.t + 1, l2.in_step)?, step_rule(cfg, lr, st.t + 1, 0.0)?);
        // With sparse input the first layer's weights take their step
        // inside the backward pass, row by row of their gradient, unless
        // L1 or clipping needs the whole gradient first.
        let fuse = bf.sparse.is_some() && cfg.l1 == 0.0 && cfg.clip_norm.is_none();
        if let (true, Some(next)) = (fuse, next) {
            // The next batch's inputs while the fused step runs (see `step`).
            prefetch_inputs(x, bf, next, self.n_inputs, opts.par);
        }
        self.backward(rows, bf, cfg, l2.in_grad, fuse.then_some((&rules.0, &mut *st)), opts)?;
        self.step(x, if fuse { None } else { next }, bf, st, rules, fuse, opts)?;
        Ok((loss, right))
    }

    /// A distributed step: this rank's `rows` of a global batch of `b`
    /// rows. Their gradient, scaled to the global batch's mean, is summed
    /// over the ranks by [`Dist::reduce`] while the backward pass runs
    /// (bucket by bucket); [`Dist::step`] adds the penalties, clips and
    /// applies the update. Returns this rank's share of the batch's loss
    /// sum (rank 0 adds the penalties) and how many of its rows were
    /// classified right. A failure of this rank (`failed`, kept) makes it
    /// take part with a zero gradient (what it already sent of this step
    /// stands; the epoch fails on every rank anyway): only errors every
    /// rank meets together return.
    #[allow(clippy::too_many_arguments)]
    fn train_share(
        &mut self,
        x: Inputs<'_>,
        y: &Targets<'_>,
        rows: &[usize],
        b: usize,
        next: Option<&[usize]>,
        bf: &mut TrainBufs,
        cfg: &TrainConfig,
        st: &mut OptState,
        lr: f32,
        opts: &GemmOptions,
        d: &mut Dist,
        failed: &mut Option<Error>,
    ) -> Result<(f64, usize)> {
        let share = rows.len();
        let (k, nl) = (self.n_outputs(), self.layers.len());
        let mut grad = std::mem::take(&mut bf.grad);
        let (mut loss, right) = d.reduce(&mut grad, |sum| {
            let mut local = || -> Result<(f64, usize)> {
                if share == 0 || failed.is_some() {
                    return Ok((0.0, 0));
                }
                self.gather_batch(x, y, rows, bf);
                self.forward(rows, bf, opts)?;
                let (loss, right) = self.head(share, bf)?;
                // ∂L/∂logits of the global batch's mean: the share's mean × share/b.
                let scale = share as f32 / b as f32;
                bf.da[nl - 1][..share * k].iter_mut().for_each(|g| *g *= scale);
                self.backward_layers(0, rows, bf, sum, 0.0, opts)?;
                Ok((loss * share as f64, right))
            };
            let r = local().unwrap_or_else(|e| {
                *failed = Some(e);
                (0.0, 0)
            });
            if share == 0 || failed.is_some() {
                sum.zero_unsent();
            }
            r
        });
        bf.grad = grad;
        if d.rank().0 == 0 {
            loss += self.add_penalties(0.0, cfg, b) * b as f64;
        }
        d.count_samples(share);
        let l2 = L2::of(cfg, b);
        let rules = (step_rule(cfg, lr, st.t + 1, l2.in_step)?, step_rule(cfg, lr, st.t + 1, 0.0)?);
        st.t += 1;
        if let Some(next) = next {
            prefetch_inputs(x, bf, next, self.n_inputs, opts.par);
        }
        let l1 = cfg.l1 / b as f32;
        d.step(&mut self.params, rules, (l2.in_grad, l1, cfg.clip_norm), st, opts.par)?;
        Ok((loss, right))
    }

    /// Copies the inputs (dense path) and targets of `rows` into the batch
    /// buffers, targets in the form the task's loss reads.
    fn gather_batch(&self, x: Inputs<'_>, y: &Targets<'_>, rows: &[usize], bf: &mut TrainBufs) {
        let (ni, k) = (self.n_inputs, self.n_outputs());
        let labels = self.task.loss_reads_labels();
        for (r, &i) in rows.iter().enumerate() {
            if bf.sparse.is_none() {
                x.row_into(i, &mut bf.xb[r * ni..(r + 1) * ni]);
            }
            match y {
                Targets::Labels(l) if labels => bf.yl[r] = l[i],
                // A sigmoid output's 0/1 label (one output: checked).
                Targets::Labels(l) => bf.yd[r] = l[i] as f32,
                Targets::Dense(d) => bf.yd[r * k..(r + 1) * k].copy_from_slice(&d[i * k..(i + 1) * k]),
            }
        }
    }

    /// The forward pass of the batch `rows`; the output layer yields logits
    /// (its activation is folded into the loss).
    fn forward(&self, rows: &[usize], bf: &mut TrainBufs, opts: &GemmOptions) -> Result<()> {
        let (b, ni, nl) = (rows.len(), self.n_inputs, self.layers.len());
        for i in 0..nl {
            let l = self.layers[i];
            let n_in = self.fan_in(i);
            let shp = DenseShape { batch: b, n_in, n_out: l.units };
            let (w, bias) = self.layer_params(i);
            let (before, rest) = bf.a.split_at_mut(i);
            let act = if i + 1 == nl { Activation::Identity } else { l.activation };
            let keep_z = act.backward_needs().x;
            let z = if keep_z { Some(&mut bf.z[i][..b * l.units]) } else { None };
            let out = &mut rest[0][..b * l.units];
            match (&bf.sparse, i) {
                (Some(xs), 0) => dense_forward_sparse(act, shp, xs, Some(rows), w, bias, z, out, opts)?,
                _ => {
                    let input = if i == 0 { &bf.xb[..b * ni] } else { &before[i - 1][..b * n_in] };
                    dense_forward(act, shp, input, w, bias, z, out, opts)?
                }
            }
        }
        Ok(())
    }

    /// The task's head on the batch's `b` logits: the mean loss, `∂L/∂logits`
    /// (into the last layer's `da`) and how many samples were classified
    /// right (0 for regression).
    fn head(&self, b: usize, bf: &mut TrainBufs) -> Result<(f64, usize)> {
        let (k, nl) = (self.n_outputs(), self.layers.len());
        let yb =
            if self.task.loss_reads_labels() { Targets::Labels(&bf.yl[..b]) } else { Targets::Dense(&bf.yd[..b * k]) };
        let logits = &bf.a[nl - 1][..b * k];
        let right = if self.task == Task::Regression { 0 } else { self.task.correct(logits, Scale::Logits, &yb, k)? };
        let grad = &mut bf.da[nl - 1][..b * k];
        let loss = self.task.loss(LossOf::Logits { z: logits, grad }, &yb, k)?;
        Ok((loss, right))
    }

    /// `loss` plus the penalties of a batch of `b` (scikit-learn scaling: per
    /// batch size; biases excluded): `0.5·alpha·‖W‖²/b` (not for AdamW,
    /// which decays instead) and `l1·‖W‖₁/b`.
    fn add_penalties(&self, mut loss: f64, cfg: &TrainConfig, b: usize) -> f64 {
        let nl = self.layers.len();
        let coupled_l2 = L2::coupled(cfg);
        if coupled_l2 > 0.0 {
            // Vectorised, fixed-order reduction (deterministic).
            // On the step's threads, each reading the weights it updates.
            let sq: f64 = (0..nl).map(|i| crate::optim::sum_sq_with(self.layer_params(i).0, cfg.par)).sum();
            loss += 0.5 * coupled_l2 as f64 * sq / b as f64;
        }
        if cfg.l1 > 0.0 {
            let ab: f64 = (0..nl).map(|i| self.layer_params(i).0.iter().map(|&v| (v as f64).abs()).sum::<f64>()).sum();
            loss += cfg.l1 as f64 * ab / b as f64;
        }
        loss
    }

    /// Backward, last layer first, from `∂L/∂logits` into the flat gradient,
    /// with the L2 term `l2·W` (when the optimizer does not add it) and the
    /// L1 subgradient, then clipped by norm (`clip_norm`). With `fused`
    /// (sparse input, no L1, no clipping), the first layer's weights take
    /// their step `rule` (state `st`) as their gradient's rows are summed,
    /// and that gradient is not stored ([`Mlp::first_layer_step`]).
    fn backward(
        &mut self,
        rows: &[usize],
        bf: &mut TrainBufs,
        cfg: &TrainConfig,
        l2: f32,
        fused: Option<(&StepRule, &mut OptState)>,
        opts: &GemmOptions,
    ) -> Result<()> {
        let mut grad = std::mem::take(&mut bf.grad);
        let mut done = self.backward_layers(usize::from(fused.is_some()), rows, bf, &mut grad[..], l2, opts);
        if let (Ok(()), Some((rule, st))) = (&done, fused) {
            done = self.first_layer_step(rows, bf, &mut grad, rule, st, opts);
        }
        bf.grad = grad;
        done?;
        if cfg.l1 > 0.0 {
            let c = cfg.l1 / rows.len() as f32;
            for i in 0..self.layers.len() {
                let (w0, b0) = self.offsets[i];
                add_l1(&mut bf.grad[w0..b0], self.layer_params(i).0, c);
            }
        }
        if let Some(c) = cfg.clip_norm {
            // A non-finite gradient norm means divergence (the caller restores
            // the epoch's start).
            clip_grad_norm(&mut bf.grad, c).map_err(|e| match e {
                Error::NonFinite(m) => Error::Diverged(m),
                e => e,
            })?;
        }
        Ok(())
    }

    /// The first layer's backward pass from its `dA` with sparse input, its
    /// biases' gradient into `grad` and its weights' optimizer step `rule`
    /// (state `st`) fused in: each row of the weight gradient goes to the
    /// step as soon as it is summed, while in cache, and is never stored
    /// (`optim::StepRows` through `dense_backward_sparse_into`). The same bits as computing the
    /// gradient into `grad` and stepping after, for any thread count.
    fn first_layer_step(
        &mut self,
        rows: &[usize],
        bf: &mut TrainBufs,
        grad: &mut [f32],
        rule: &StepRule,
        st: &mut OptState,
        opts: &GemmOptions,
    ) -> Result<()> {
        let (b, nl, l) = (rows.len(), self.layers.len(), self.layers[0]);
        let shp = DenseShape { batch: b, n_in: self.n_inputs, n_out: l.units };
        let act = if nl == 1 { Activation::Identity } else { l.activation };
        let (w0, b0) = self.offsets[0];
        let Some(xs) = &bf.sparse else { return Err(invalid("the fused first-layer step needs sparse input")) };
        let nz = b * l.units;
        let zad = (&bf.z[0][..nz], &bf.a[0][..nz], &bf.da[0][..nz]);
        let (s1, s2) = (st.s1.get_mut(w0..b0).unwrap_or_default(), st.s2.get_mut(w0..b0).unwrap_or_default());
        let sink = rule.rows(&mut self.params[w0..b0], s1, s2, l.units)?;
        dense_backward_sparse_into(act, shp, xs, rows, zad, &mut bf.dz[..nz], &mut grad[b0..b0 + l.units], &sink, opts)
    }

    /// The layers' part of [`Mlp::backward`] for the layers
    /// `from..` (last first): the gradient of the loss with the L2 term
    /// `l2·W`, without L1 and clipping.
    ///
    /// The gradient goes to `grad`, each layer's values made final there
    /// as soon as they are written, last layer first; where `grad` asks for
    /// it (and without `l2`), the first layer's weight gradient is computed
    /// a range of rows at a time after its biases' (the same bits with
    /// sparse input, within the GEMM bound with dense).
    fn backward_layers<G: GradSink + ?Sized>(
        &self,
        from: usize,
        rows: &[usize],
        bf: &mut TrainBufs,
        grad: &mut G,
        l2: f32,
        opts: &GemmOptions,
    ) -> Result<()> {
        let (b, ni, nl) = (rows.len(), self.n_inputs, self.layers.len());
        for i in (from..nl).rev() {
            let l = self.layers[i];
            let n_in = self.fan_in(i);
            let shp = DenseShape { batch: b, n_in, n_out: l.units };
            let (w0, b0) = self.offsets[i];
            let (w, _) = self.layer_params(i);
            let act = if i + 1 == nl { Activation::Identity } else { l.activation };
            let end = b0 + l.units;
            let (da_lo, da_hi) = bf.da.split_at_mut(i);
            let da = &da_hi[0][..b * l.units];
            let (z, a) = (&bf.z[i][..b * l.units], &bf.a[i][..b * l.units]);
            let pieces = if i == 0 && l2 == 0.0 { grad.first_rows().filter(|&k| k > 0 && k < n_in) } else { None };
            if let Some(k) = pieces {
                // dZ and the biases' gradient, then the weights' a few rows
                // (inputs) at a time, each piece final at once.
                let dz = &mut bf.dz[..b * l.units];
                dense_backward_dz(act, shp, z, a, da, dz, grad.part(b0..end), opts)?;
                grad.ready(b0..end);
                let x = match &bf.sparse {
                    Some(xs) => WeightGradInput::Sparse(xs, rows),
                    None => WeightGradInput::Dense(&bf.xb[..b * ni]),
                };
                for lo in (0..n_in).step_by(k) {
                    let hi = (lo + k).min(n_in);
                    let r = w0 + lo * l.units..w0 + hi * l.units;
                    dense_weight_grad_rows(shp, x, lo..hi, dz, grad.part(r.clone()), opts)?;
                    grad.ready(r);
                }
                continue;
            }
            let (gw, gb) = grad.part(w0..end).split_at_mut(b0 - w0);
            let dx = if i == 0 { None } else { Some(&mut da_lo[i - 1][..b * n_in]) };
            let g = DenseGrads { dw: gw, db: gb, dx, dz: &mut bf.dz[..b * l.units] };
            match (&bf.sparse, i) {
                (Some(xs), 0) => dense_backward_sparse_rows(act, shp, xs, rows, w, z, a, da, l2, g, opts)?,
                _ => {
                    let input = if i == 0 { &bf.xb[..b * ni] } else { &bf.a[i - 1][..b * n_in] };
                    dense_backward(act, shp, input, w, z, a, da, l2, g, opts)?
                }
            }
            grad.ready(w0..end);
        }
        Ok(())
    }

    /// The optimizer step: one fused pass over each layer's weights with
    /// `rule_w` (which adds the L2 term `l2·W`, unless the gradient has it)
    /// and one over its biases with `rule_b` (never penalised), but for the
    /// first layer's weights where `first_done` (their step was fused into
    /// the backward pass); Adam's step counter advances once per batch.
    #[allow(clippy::too_many_arguments)]
    fn step(
        &mut self,
        x: Inputs<'_>,
        next: Option<&[usize]>,
        bf: &TrainBufs,
        st: &mut OptState,
        (rule_w, rule_b): (StepRule, StepRule),
        first_done: bool,
        opts: &GemmOptions,
    ) -> Result<()> {
        st.t += 1;
        if let Some(next) = next {
            // The next batch's inputs (see `prefetch_inputs` for when), while
            // the optimizer's divisions leave the memory system idle.
            prefetch_inputs(x, bf, next, self.n_inputs, opts.par);
        }
        for i in 0..self.layers.len() {
            let (w0, b0) = self.offsets[i];
            let end = b0 + self.layers[i].units;
            for (k, (r, lo, hi)) in [(rule_w, w0, b0), (rule_b, b0, end)].into_iter().enumerate() {
                if first_done && i == 0 && k == 0 {
                    continue;
                }
                let (s1, s2) = (st.s1.get_mut(lo..hi).unwrap_or_default(), st.s2.get_mut(lo..hi).unwrap_or_default());
                r.apply(&mut self.params[lo..hi], &bf.grad[lo..hi], s1, s2, opts.par)?;
            }
        }
        Ok(())
    }
}

/// Where a batch's coupled L2 term `l2·W` joins the gradient.
struct L2 {
    /// Added by the weight-gradient products.
    in_grad: f32,
    /// Added by the optimizer's pass.
    in_step: f32,
}

impl L2 {
    /// The coupled L2 factor: `alpha`, except for AdamW (decoupled decay).
    fn coupled(cfg: &TrainConfig) -> f32 {
        if cfg.solver == Solver::AdamW { 0.0 } else { cfg.alpha }
    }

    /// The term of a batch of `b`, `alpha/b`: in the optimizer's pass, which
    /// reads W anyway (the weight-gradient products then skip a pass over W;
    /// the same sum `dW + l2·W`, the same bits); in the products when
    /// clipping by the norm needs the whole gradient first.
    fn of(cfg: &TrainConfig, b: usize) -> L2 {
        let l2 = L2::coupled(cfg) / b as f32;
        if cfg.clip_norm.is_some() { L2 { in_grad: l2, in_step: 0.0 } } else { L2 { in_grad: 0.0, in_step: l2 } }
    }
}

/// [`Error::Diverged`] for `what` happened in `epoch`.
fn diverged(what: &str, epoch: usize) -> Error {
    Error::Diverged(format!(
        "{what} in epoch {epoch}; the weights and optimizer state of the start of that epoch were kept \
         (lower the learning rate or scale the inputs)"
    ))
}

enum Gathered {
    L(Vec<u32>),
    D(Vec<f32>),
}

/// The rows `idx` of `x` and `y` (the held-out validation split), fallibly.
fn gather(x: Inputs<'_>, y: &Targets<'_>, idx: &[usize], ni: usize, k: usize) -> Result<(Vec<f32>, Gathered)> {
    let what = "the validation split";
    let mut xv = crate::mem::try_vec(idx.len() * ni, 0.0, what)?;
    for (r, &i) in idx.iter().enumerate() {
        x.row_into(i, &mut xv[r * ni..(r + 1) * ni]);
    }
    let yv = match y {
        Targets::Labels(l) => Gathered::L(crate::mem::try_collect(idx.len(), idx.iter().map(|&i| l[i]), what)?),
        Targets::Dense(d) => Gathered::D(crate::mem::try_collect(
            idx.len() * k,
            idx.iter().flat_map(|&i| d[i * k..(i + 1) * k].iter().copied()),
            what,
        )?),
    };
    Ok((xv, yv))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_refuses_empty_validation_data() {
        let mut m = Mlp::new(2, &[], 2, Task::MultiClass, 1).unwrap();
        let before = m.clone();
        let (x, y) = ([0.0f32, 1.0, 1.0, 0.0, 0.5, 0.5, 1.0, 1.0], [0u32, 1, 0, 1]);
        let cfg = TrainConfig { max_iter: 3, early_stopping: true, ..Default::default() };
        let val = Validation { x: &[], n: 0, y: Targets::Labels(&[]) };
        let e = m.fit(&x, 4, Targets::Labels(&y), &cfg, Some(val), None).unwrap_err();
        assert!(matches!(&e, Error::InvalidArgument(s) if s.contains("no samples")), "{e}");
        assert_eq!(m, before, "a refused fit changes nothing");
        // One validation sample is enough.
        let val = Validation { x: &x[..2], n: 1, y: Targets::Labels(&y[..1]) };
        m.fit(&x, 4, Targets::Labels(&y), &cfg, Some(val), None).unwrap();
    }
}
