//! Training: mini-batch gradient descent with the solvers, schedules, L2/L1,
//! validation and early stopping of scikit-learn's `MLPClassifier` /
//! `MLPRegressor` (same names and defaults unless a doc says otherwise).

use super::model::{Mlp, Targets, Task, Workspace, argmax, score_of};
use crate::error::{Error, Result, invalid, shape};
use crate::gemm::{GemmOptions, SparseRows};
use crate::ops::act::Activation;
use crate::ops::fused::{
    DenseGrads, DenseShape, dense_backward, dense_backward_sparse, dense_forward, dense_forward_sparse,
};
use crate::ops::loss::{Loss, elementwise_loss, softmax_cross_entropy_sparse};
use crate::optim::{AdamParams, StepRule, clip_grad_norm};
use crate::par::Par;
use crate::simd::AlignedVec;
use crate::simd::fp::FlushDenormals;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use std::ops::ControlFlow;
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

/// Fraction of nonzero values in up to 4 096 evenly spaced rows of `x`
/// among `rows` (the training rows).
pub(crate) fn estimate_density(x: &[f32], rows: &[usize], n_inputs: usize) -> f64 {
    let take = rows.len().min(4096);
    if take == 0 || n_inputs == 0 {
        return 0.0;
    }
    let mut nz = 0usize;
    for t in 0..take {
        let r = rows[t * rows.len() / take];
        nz += x[r * n_inputs..(r + 1) * n_inputs].iter().filter(|v| v.to_bits() << 1 != 0).count();
    }
    nz as f64 / (take * n_inputs) as f64
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
        }
    }
}

impl TrainConfig {
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

/// Optimizer state kept between `fit` calls for `warm_start`/`partial_fit`.
#[derive(Debug, Clone, PartialEq)]
pub struct OptState {
    s1: AlignedVec,
    s2: AlignedVec,
    t: u64,
    samples_seen: u64,
    lr: f32,
}

impl OptState {
    /// Copies `o` in place (the buffers have `o`'s lengths: no allocation).
    fn copy_from(&mut self, o: &OptState) {
        self.s1.clone_from(&o.s1);
        self.s2.clone_from(&o.s2);
        (self.t, self.samples_seen, self.lr) = (o.t, o.samples_seen, o.lr);
    }
}

/// Buffers sized once per fit: no allocation per batch.
struct TrainBufs {
    /// The batch's inputs, dense (empty when sparse).
    xb: AlignedVec,
    /// The batch's inputs as nonzeros, and their transpose (sparse only).
    sparse: Option<(SparseRows, SparseRows)>,
    yl: Vec<u32>,
    yd: Vec<f32>,
    z: Vec<AlignedVec>,
    a: Vec<AlignedVec>,
    da: Vec<AlignedVec>,
    dz: AlignedVec,
    grad: AlignedVec,
}

/// Validation data given explicitly.
#[derive(Debug, Clone, Copy)]
pub struct Validation<'a> {
    /// Samples, `n × n_inputs`.
    pub x: &'a [f32],
    /// Number of samples.
    pub n: usize,
    /// Targets.
    pub y: Targets<'a>,
}

impl Mlp {
    fn check_targets(&self, y: &Targets<'_>, n: usize) -> Result<()> {
        let k = self.n_outputs();
        match (self.task, y) {
            (Task::MultiClass, Targets::Labels(l)) | (Task::MultiLabel, Targets::Labels(l)) => {
                if self.task == Task::MultiLabel && k != 1 {
                    return Err(invalid("labels need a single sigmoid output; use dense 0/1 targets for multi-label"));
                }
                if l.len() != n {
                    return Err(shape(format!("{} labels for {n} samples", l.len())));
                }
                let bound = if self.task == Task::MultiClass { k } else { 2 };
                if let Some((i, &v)) = l.iter().enumerate().find(|&(_, &v)| v as usize >= bound) {
                    return Err(invalid(format!("label {v} of sample {i} is not below {bound}")));
                }
            }
            (Task::Regression, Targets::Dense(t)) | (Task::MultiLabel, Targets::Dense(t)) => {
                if t.len() != n * k {
                    return Err(shape(format!("targets have {} values, need {n} × {k}", t.len())));
                }
                if let Some(i) = crate::simd::reduce::first_non_finite(t) {
                    return Err(Error::NonFinite(format!("target {i} is not finite")));
                }
            }
            (Task::MultiClass, Targets::Dense(_)) => return Err(invalid("a multi-class model trains on labels")),
            (Task::Regression, Targets::Labels(_)) => {
                return Err(invalid("a regression model trains on dense targets"));
            }
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
        cfg.validate()?;
        let _mode = FlushDenormals::new(cfg.flush_denormals);
        self.check_input(x, n_samples)?;
        self.check_targets(&y, n_samples)?;
        if n_samples == 0 {
            return Err(invalid("no training samples"));
        }
        if let Some(v) = &val {
            self.check_input(v.x, v.n)?;
            self.check_targets(&v.y, v.n)?;
        }
        if val.is_none() && cfg.early_stopping && n_samples < 2 {
            return Err(invalid(format!(
                "early stopping holds out a validation set: it needs at least 2 samples, got {n_samples}"
            )));
        }
        // Everything the fit needs is allocated before the model or its
        // optimizer state is touched: running out of memory is an
        // `Error::OutOfMemory` that leaves the model exactly as it was. The
        // epochs then allocate nothing but their records.
        let (ni, k) = (self.n_inputs, self.n_outputs());
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
            SparseInput::Auto => {
                u32::try_from(self.n_inputs.max(batch)).is_ok()
                    && estimate_density(x, &idx, self.n_inputs) <= SPARSE_AUTO_DENSITY
            }
        };
        let mut bufs = self.train_buffers(batch, sparse.then_some((x, n_samples)))?;
        let n_par = self.params.len();
        // The optimizer state this fit continues (warm start), and the moments
        // it still lacks.
        let kept =
            if cfg.warm_start { self.state.as_ref().filter(|s| s.s1.len() == n_par || s.s1.is_empty()) } else { None };
        let need_s1 = matches!(cfg.solver, Solver::Adam | Solver::AdamW | Solver::RmsProp)
            || (cfg.solver == Solver::Sgd && cfg.momentum > 0.0);
        let need_s2 = matches!(cfg.solver, Solver::Adam | Solver::AdamW);
        let (keep, (kept1, kept2)) = (kept.is_some(), kept.map_or((0, 0), |s| (s.s1.len(), s.s2.len())));
        let s1_len = if need_s1 { n_par } else { kept1 };
        let s2_len = if need_s2 { n_par } else { kept2 };
        let what = "the optimizer state";
        let fresh1 = if kept1 != s1_len { Some(AlignedVec::try_zeros(s1_len, what)?) } else { None };
        let fresh2 = if kept2 != s2_len { Some(AlignedVec::try_zeros(s2_len, what)?) } else { None };
        // Weights and optimizer state at the start of the epoch, restored if
        // the training diverges; the best epoch's weights (early stopping).
        let mut epoch_start = self.params.try_clone("the epoch-start weights")?;
        let mut state_start = OptState {
            s1: AlignedVec::try_zeros(s1_len, "the epoch-start optimizer state")?,
            s2: AlignedVec::try_zeros(s2_len, "the epoch-start optimizer state")?,
            t: 0,
            samples_seen: 0,
            lr: cfg.learning_rate_init,
        };
        let mut best_params = if cfg.early_stopping {
            AlignedVec::try_zeros(n_par, "the best epoch's weights")?
        } else {
            AlignedVec::default()
        };
        let mut have_best = false;
        // Validation data, gathered once, and the buffers it is predicted in.
        let held_out = if val_idx.is_empty() { None } else { Some(gather(x, &y, &val_idx, ni, k)?) };
        let n_val = val.as_ref().map_or(val_idx.len(), |v| v.n);
        let val_ws = if n_val > 0 { Workspace::try_new(self, n_val.min(256))? } else { Workspace::new(self, 1) };
        let mut val_ws = val_ws.with_flush_denormals(cfg.flush_denormals);
        let mut val_p = crate::mem::try_vec(if n_val > 0 { n_val * k } else { 0 }, 0.0, "the validation predictions")?;

        // Nothing below allocates in proportion to the data or the model:
        // the state can be taken.
        let mut state = match self.state.take() {
            Some(s) if keep => s,
            _ => OptState {
                s1: AlignedVec::default(),
                s2: AlignedVec::default(),
                t: 0,
                samples_seen: 0,
                lr: cfg.learning_rate_init,
            },
        };
        if let Some(v) = fresh1 {
            state.s1 = v;
        }
        if let Some(v) = fresh2 {
            state.s2 = v;
        }
        let mut rng = StdRng::seed_from_u64(cfg.random_state);
        let mut hist = History { best_loss: f64::INFINITY, ..Default::default() };
        let mut best_score = f64::NEG_INFINITY;
        let mut no_improve = 0usize;
        let opts = GemmOptions { par: cfg.par, ..Default::default() };
        for epoch in 1..=cfg.max_iter {
            let t0 = Instant::now();
            if cfg.shuffle {
                idx.shuffle(&mut rng);
            }
            epoch_start.copy_from_slice(&self.params);
            state_start.copy_from(&state);
            let lr_epoch = match cfg.learning_rate {
                Schedule::Constant | Schedule::InvScaling { .. } => cfg.learning_rate_init,
                Schedule::Adaptive => state.lr,
                Schedule::Step { every, gamma } => cfg.learning_rate_init * gamma.powi(((epoch - 1) / every) as i32),
                Schedule::Cosine => {
                    let f = (epoch - 1) as f64 / cfg.max_iter as f64;
                    (cfg.learning_rate_init as f64 * 0.5 * (1.0 + (std::f64::consts::PI * f).cos())) as f32
                }
            };
            let mut total = 0.0f64;
            let mut correct = 0usize;
            let batches = n_train.div_ceil(batch);
            let mut chunks = idx.chunks(batch).peekable();
            let mut done = 0usize;
            while let Some(chunk) = chunks.next() {
                let b = chunk.len();
                let mut lr = lr_epoch;
                if let Schedule::InvScaling { power_t } = cfg.learning_rate {
                    lr =
                        (cfg.learning_rate_init as f64 / ((state.samples_seen + 1) as f64).powf(power_t as f64)) as f32;
                }
                let next = chunks.peek().copied();
                let what = match self.train_batch(x, &y, chunk, next, &mut bufs, cfg, &mut state, lr, &opts) {
                    Ok((loss, right)) if loss.is_finite() => {
                        total += loss * b as f64;
                        correct += right;
                        None
                    }
                    Ok((loss, _)) => Some(format!("the training loss became {loss}")),
                    Err(Error::Diverged(m)) => Some(m),
                    Err(e) => {
                        // Any other failure leaves the model as the epoch found it too.
                        self.params.copy_from_slice(&epoch_start);
                        self.state = Some(state_start);
                        return Err(e);
                    }
                };
                // An update can overflow the weights while its batch's loss was
                // still finite: checked once per epoch (a pass over the
                // parameters), before they become the next epoch's restore point
                // or the result.
                let what = what.or_else(|| {
                    (chunks.peek().is_none())
                        .then(|| crate::simd::reduce::first_non_finite(&self.params))
                        .flatten()
                        .map(|i| format!("parameter {i} became non-finite"))
                });
                if let Some(what) = what {
                    // Back to the last state known to be good: a non-finite loss
                    // may follow an update that already spoiled the weights.
                    self.params.copy_from_slice(&epoch_start);
                    self.state = Some(state_start);
                    return Err(Error::Diverged(format!(
                        "{what} in epoch {epoch}; the weights and optimizer state of the start of that epoch were \
                         kept (lower the learning rate or scale the inputs)"
                    )));
                }
                state.samples_seen += b as u64;
                done += 1;
                observer.on_batch(&BatchProgress { epoch, max_epochs: cfg.max_iter, batch: done, batches });
            }
            let loss = total / n_train as f64;
            // Validation.
            let (mut val_loss, mut val_score) = (None, None);
            if val.is_some() || !val_idx.is_empty() {
                let (vl, vs) = match (&val, &held_out) {
                    (Some(v), _) => self.evaluate_into(v.x, v.n, &v.y, &mut val_ws, &mut val_p)?,
                    (None, Some((vx, vy))) => {
                        let vt = match vy {
                            Gathered::L(l) => Targets::Labels(l),
                            Gathered::D(d) => Targets::Dense(d),
                        };
                        self.evaluate_into(vx, val_idx.len(), &vt, &mut val_ws, &mut val_p)?
                    }
                    (None, None) => unreachable!("validation without data"),
                };
                val_loss = Some(vl);
                val_score = Some(vs);
            }
            let rec = EpochRecord {
                epoch,
                loss,
                val_loss,
                val_score,
                score: (self.task != Task::Regression).then(|| correct as f64 / n_train as f64),
                learning_rate: lr_epoch,
                seconds: t0.elapsed().as_secs_f64(),
            };
            hist.epochs.push(rec);
            // Improvement bookkeeping (scikit-learn's _update_no_improvement_count).
            let improved = if cfg.early_stopping {
                let s = val_score.unwrap_or(f64::NEG_INFINITY);
                let imp = s > best_score + cfg.tol as f64;
                if s > best_score {
                    best_score = s;
                    best_params.copy_from_slice(&self.params);
                    have_best = true;
                    hist.restored_epoch = Some(epoch);
                }
                imp
            } else {
                loss < hist.best_loss - cfg.tol as f64
            };
            hist.best_loss = hist.best_loss.min(loss);
            no_improve = if improved { 0 } else { no_improve + 1 };
            let mut stop = false;
            if no_improve > cfg.n_iter_no_change {
                if cfg.learning_rate == Schedule::Adaptive && state.lr / 5.0 > 1e-6 {
                    state.lr /= 5.0;
                    no_improve = 0;
                } else {
                    stop = true;
                }
            }
            if observer.on_epoch(&rec).is_break() {
                hist.stopped_by_callback = true;
                stop = true;
            }
            if stop {
                hist.stopped_early = true;
                break;
            }
        }
        if have_best {
            self.params.copy_from_slice(&best_params);
        }
        self.state = Some(state);
        Ok(hist)
    }

    /// One pass over the data keeping the optimizer state (scikit-learn's
    /// `partial_fit`): `fit` with `max_iter = 1`, `warm_start = true`.
    pub fn partial_fit(&mut self, x: &[f32], n_samples: usize, y: Targets<'_>, cfg: &TrainConfig) -> Result<History> {
        let c = TrainConfig { max_iter: 1, warm_start: true, early_stopping: false, ..cfg.clone() };
        self.fit(x, n_samples, y, &c, None, None)
    }

    /// Mean loss (without penalty) and score (accuracy, or R² for regression)
    /// on labelled data.
    /// Subnormals are flushed, as by [`Mlp::predict_proba`].
    pub fn evaluate(&self, x: &[f32], n_samples: usize, y: &Targets<'_>) -> Result<(f64, f64)> {
        self.evaluate_mode(x, n_samples, y, true)
    }

    /// [`Mlp::evaluate`] flushing subnormals or not (`fit` follows its config).
    fn evaluate_mode(&self, x: &[f32], n_samples: usize, y: &Targets<'_>, flush: bool) -> Result<(f64, f64)> {
        self.check_targets(y, n_samples)?;
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
        let score = score_of(self.task, &p, k, y)?;
        let n = n_samples.max(1) as f64;
        let loss = match (self.task, y) {
            (Task::MultiClass, Targets::Labels(l)) => {
                l.iter().enumerate().map(|(i, &c)| -((p[i * k + c as usize] as f64).max(1e-30)).ln()).sum::<f64>() / n
            }
            (Task::MultiLabel, Targets::Labels(l)) => {
                l.iter().enumerate().map(|(i, &c)| bce(p[i] as f64, c as f64)).sum::<f64>() / n
            }
            (Task::MultiLabel, Targets::Dense(t)) => {
                p.iter().zip(t.iter()).map(|(&a, &b)| bce(a as f64, b as f64)).sum::<f64>() / n
            }
            (_, Targets::Dense(t)) => {
                p.iter().zip(t.iter()).map(|(&a, &b)| 0.5 * (a as f64 - b as f64).powi(2)).sum::<f64>() / n
            }
            _ => return Err(invalid("targets do not match the task")),
        };
        Ok((loss, score))
    }

    fn train_buffers(&self, batch: usize, sparse: Option<(&[f32], usize)>) -> Result<TrainBufs> {
        let k = self.n_outputs();
        let widest = self.layers.iter().map(|l| l.units).max().unwrap_or(1);
        let sparse = if let Some((x, n)) = sparse {
            // The whole training set's nonzeros, once per fit (each batch is
            // then gathered from them); room for a fully dense batch in the
            // transpose: no allocation per batch whatever its density.
            let xs = SparseRows::from_dense(x, n, self.n_inputs)?;
            let mut xt = SparseRows::new(batch)?;
            xt.reserve(self.n_inputs + 1, batch * self.n_inputs)?;
            Some((xs, xt))
        } else {
            None
        };
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

    /// Forward, loss, backward and optimizer step on the samples `rows` (`next`:
    /// the next batch's, whose sparse inputs are prefetched during the step).
    /// Returns the batch loss and how many of its samples the forward pass
    /// classified right (0 for regression).
    #[allow(clippy::too_many_arguments)]
    fn train_batch(
        &mut self,
        x: &[f32],
        y: &Targets<'_>,
        rows: &[usize],
        next: Option<&[usize]>,
        bf: &mut TrainBufs,
        cfg: &TrainConfig,
        st: &mut OptState,
        lr: f32,
        opts: &GemmOptions,
    ) -> Result<(f64, usize)> {
        let b = rows.len();
        let (ni, k, nl) = (self.n_inputs, self.n_outputs(), self.layers.len());

        for (r, &i) in rows.iter().enumerate() {
            if bf.sparse.is_none() {
                bf.xb[r * ni..(r + 1) * ni].copy_from_slice(&x[i * ni..(i + 1) * ni]);
            }
            match y {
                Targets::Labels(l) => bf.yl[r] = l[i],
                Targets::Dense(d) => bf.yd[r * k..(r + 1) * k].copy_from_slice(&d[i * k..(i + 1) * k]),
            }
        }
        // Forward; the output layer yields logits (its activation is folded into the loss).
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
                (Some((xs, _)), 0) => dense_forward_sparse(act, shp, xs, Some(rows), w, bias, z, out, opts)?,
                _ => {
                    let input = if i == 0 { &bf.xb[..b * ni] } else { &before[i - 1][..b * n_in] };
                    dense_forward(act, shp, input, w, bias, z, out, opts)?
                }
            }
        }
        // Loss and ∂L/∂logits.
        let logits = &bf.a[nl - 1][..b * k];
        let right = match (self.task, y) {
            (Task::Regression, _) => 0,
            (Task::MultiClass, _) => {
                logits.chunks(k).zip(&bf.yl[..b]).filter(|&(r, &c)| argmax(r) == c as usize).count()
            }
            // Logit ≥ 0 ⇔ sigmoid ≥ 0.5.
            (Task::MultiLabel, Targets::Labels(_)) => {
                logits.iter().zip(&bf.yl[..b]).filter(|&(&z, &c)| (z >= 0.0) == (c != 0)).count()
            }
            (Task::MultiLabel, _) => logits
                .chunks(k)
                .zip(bf.yd[..b * k].chunks(k))
                .filter(|(r, t)| r.iter().zip(t.iter()).all(|(&z, &v)| (z >= 0.0) == (v >= 0.5)))
                .count(),
        };
        let dlog = &mut bf.da[nl - 1][..b * k];
        let mut loss = match (self.task, y) {
            (Task::MultiClass, _) => softmax_cross_entropy_sparse(b, k, logits, &bf.yl[..b], dlog)? as f64,
            (Task::MultiLabel, Targets::Labels(_)) => {
                for r in 0..b {
                    bf.yd[r] = bf.yl[r] as f32;
                }
                elementwise_loss(Loss::BinaryCrossEntropy, b, k, logits, &bf.yd[..b], Some(dlog))? as f64
            }
            (Task::MultiLabel, _) => {
                elementwise_loss(Loss::BinaryCrossEntropy, b, k, logits, &bf.yd[..b * k], Some(dlog))? as f64
            }
            (Task::Regression, _) => {
                elementwise_loss(Loss::SquaredError, b, k, logits, &bf.yd[..b * k], Some(dlog))? as f64
            }
        };
        // Penalties (scikit-learn scaling: per batch size; biases excluded).
        let coupled_l2 = if cfg.solver == Solver::AdamW { 0.0 } else { cfg.alpha };
        let l2 = coupled_l2 / b as f32;
        // The L2 term `l2·W` joins the gradient in the optimizer's pass, which
        // reads W anyway (the weight-gradient products then skip a pass over
        // W; the same sum `dW + l2·W`, the same bits). Clipping by the norm
        // needs the whole gradient first: then the products add it.
        let (l2_grad, l2_step) = if cfg.clip_norm.is_some() { (l2, 0.0) } else { (0.0, l2) };
        if coupled_l2 > 0.0 {
            // Vectorised, fixed-order reduction (deterministic).
            let sq: f64 = (0..nl).map(|i| crate::simd::reduce::sum_sq(self.layer_params(i).0)).sum();
            loss += 0.5 * coupled_l2 as f64 * sq / b as f64;
        }
        if cfg.l1 > 0.0 {
            let ab: f64 = (0..nl).map(|i| self.layer_params(i).0.iter().map(|&v| (v as f64).abs()).sum::<f64>()).sum();
            loss += cfg.l1 as f64 * ab / b as f64;
        }
        if !loss.is_finite() {
            // Nothing is updated from a non-finite loss; the caller restores.
            return Ok((loss, right));
        }
        // Backward, last layer first; gradients land in the flat buffer.
        for i in (0..nl).rev() {
            let l = self.layers[i];
            let n_in = self.fan_in(i);
            let shp = DenseShape { batch: b, n_in, n_out: l.units };
            let (w0, b0) = self.offsets[i];
            let (w, _) = self.layer_params(i);
            let act = if i + 1 == nl { Activation::Identity } else { l.activation };
            let (gw, rest) = bf.grad[w0..].split_at_mut(b0 - w0);
            let gb = &mut rest[..l.units];
            let (da_lo, da_hi) = bf.da.split_at_mut(i);
            let da = &da_hi[0][..b * l.units];
            let dx = if i == 0 { None } else { Some(&mut da_lo[i - 1][..b * n_in]) };
            let g = DenseGrads { dw: gw, db: gb, dx, dz: &mut bf.dz[..b * l.units] };
            let (z, a) = (&bf.z[i][..b * l.units], &bf.a[i][..b * l.units]);
            if let (Some((xs, xt)), 0) = (&mut bf.sparse, i) {
                // The batch's nonzeros, transposed, from the data set's.
                xt.transpose_rows_from(xs, rows)?;
            }
            match (&bf.sparse, i) {
                (Some((_, xt)), 0) => dense_backward_sparse(act, shp, xt, w, z, a, da, l2_grad, g, opts)?,
                _ => {
                    let input = if i == 0 { &bf.xb[..b * ni] } else { &bf.a[i - 1][..b * n_in] };
                    dense_backward(act, shp, input, w, z, a, da, l2_grad, g, opts)?
                }
            }
            if cfg.l1 > 0.0 {
                let c = cfg.l1 / b as f32;
                let (wv, _) = self.layer_params(i);
                for (g, &v) in bf.grad[w0..b0].iter_mut().zip(wv) {
                    if v != 0.0 {
                        *g += c * v.signum();
                    }
                }
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
        // One fused optimizer pass over each layer's weights (with the L2
        // term, unless the gradient has it) and one over its biases (never
        // penalised); Adam's step counter advances once per batch.
        let rule = |l2: f32| -> Result<StepRule> {
            match cfg.solver {
                Solver::Sgd => StepRule::sgd(lr, cfg.momentum, cfg.nesterovs_momentum, l2),
                Solver::Adam | Solver::AdamW => {
                    let p = AdamParams { lr, beta1: cfg.beta_1, beta2: cfg.beta_2, eps: cfg.epsilon };
                    if cfg.solver == Solver::Adam {
                        StepRule::adam(&p, st.t + 1, l2)
                    } else {
                        StepRule::adamw(&p, st.t + 1, cfg.alpha)
                    }
                }
                Solver::RmsProp => StepRule::rmsprop(lr, cfg.rho, cfg.epsilon, l2),
            }
        };
        let (rule_w, rule_b) = (rule(l2_step)?, rule(0.0)?);
        st.t += 1;
        if let (Some((xs, _)), Some(next)) = (&bf.sparse, next) {
            // The next batch's nonzeros, while the optimizer's divisions leave
            // the memory system idle.
            xs.prefetch_rows(next);
        }
        for i in 0..nl {
            let (w0, b0) = self.offsets[i];
            let end = b0 + self.layers[i].units;
            for (r, lo, hi) in [(rule_w, w0, b0), (rule_b, b0, end)] {
                let (s1, s2) = (st.s1.get_mut(lo..hi).unwrap_or_default(), st.s2.get_mut(lo..hi).unwrap_or_default());
                r.apply(&mut self.params[lo..hi], &bf.grad[lo..hi], s1, s2, opts.par)?;
            }
        }
        Ok((loss, right))
    }
}

fn bce(p: f64, t: f64) -> f64 {
    let p = p.clamp(1e-12, 1.0 - 1e-12);
    -(t * p.ln() + (1.0 - t) * (1.0 - p).ln())
}

enum Gathered {
    L(Vec<u32>),
    D(Vec<f32>),
}

/// The rows `idx` of `x` and `y` (the held-out validation split), fallibly.
fn gather(x: &[f32], y: &Targets<'_>, idx: &[usize], ni: usize, k: usize) -> Result<(Vec<f32>, Gathered)> {
    let what = "the validation split";
    let xv = crate::mem::try_collect(
        idx.len() * ni,
        idx.iter().flat_map(|&i| x[i * ni..(i + 1) * ni].iter().copied()),
        what,
    )?;
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
