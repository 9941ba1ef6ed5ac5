//! The multilayer perceptron: layer stack, flat parameters, initialisation,
//! and prediction with a reusable workspace.

use super::opt_state::OptState;
use crate::error::{Error, Result, invalid, shape};
use crate::gemm::GemmOptions;
use crate::ops::act::{Activation, Fan};
use crate::ops::fused::{DenseShape, dense_forward};
use crate::simd::AlignedVec;
use crate::simd::fp::FlushDenormals;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

// Still nameable where they were defined before `task` held them
// (`nnkern::nn::model::Task`).
pub use super::task::{Targets, Task};

/// One dense layer: `units` outputs followed by `activation`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Layer {
    /// Output width.
    pub units: usize,
    /// Activation applied to the layer's output.
    pub activation: Activation,
}

/// A multilayer perceptron. Parameters live in one flat buffer (`W₀, b₀, W₁,
/// b₁, …`, each `W` row-major `n_in × n_out`), so an optimizer step is one
/// pass (but for a sparse first layer's weights, whose step the trainer runs
/// inside their backward pass). Prediction takes `&self`: many threads may predict concurrently, each
/// with its own [`Workspace`].
///
/// Names against scikit-learn's estimators: `predict` is
/// [`Mlp::predict_class`] for a classifier and [`Mlp::predict_proba`] (the
/// identity outputs) for a regressor, split in two because they return
/// different types; [`Mlp::predict_into`] is the allocation-free form of both;
/// `score`, `fit` and `partial_fit` keep their names.
#[derive(Debug, Clone, PartialEq)]
pub struct Mlp {
    pub(crate) n_inputs: usize,
    pub(crate) layers: Vec<Layer>,
    pub(crate) task: Task,
    pub(crate) params: AlignedVec,
    /// Offsets of `(W, b)` of each layer in `params`.
    pub(crate) offsets: Vec<(usize, usize)>,
    /// Optimizer state kept for `warm_start` / `partial_fit`.
    pub(crate) state: Option<OptState>,
}

/// Largest width accepted for any layer or input (guards allocations).
pub const MAX_WIDTH: usize = 1 << 24;
/// Largest total parameter count accepted.
pub const MAX_PARAMS: usize = 1 << 30;

impl Mlp {
    /// A network of `n_inputs` inputs, the `hidden` layers, and an output layer
    /// of `n_outputs` units whose activation follows from `task`. Weights are
    /// drawn uniformly from ±√(f/(fan_in+fan_out)) (Glorot; f = 6, or 2 before a
    /// sigmoid as scikit-learn does; He-style f = 12 for relu-family layers,
    /// unlike scikit-learn) with a generator seeded by `seed`; biases likewise.
    pub fn new(n_inputs: usize, hidden: &[Layer], n_outputs: usize, task: Task, seed: u64) -> Result<Mlp> {
        let mut layers = crate::mem::try_to_vec(hidden, "the layer list")?;
        layers.push(Layer { units: n_outputs, activation: task.output_activation() });
        Mlp::from_layers(n_inputs, layers, task, seed)
    }

    /// A network from its full layer list (the last one is the output layer and
    /// must carry `task`'s output activation).
    pub fn from_layers(n_inputs: usize, layers: Vec<Layer>, task: Task, seed: u64) -> Result<Mlp> {
        if n_inputs == 0 || n_inputs > MAX_WIDTH {
            return Err(invalid(format!("n_inputs = {n_inputs} must be in 1..={MAX_WIDTH}")));
        }
        let Some(last) = layers.last() else {
            return Err(invalid("a network needs at least an output layer"));
        };
        if last.activation != task.output_activation() {
            return Err(invalid(format!(
                "the output layer of a {task:?} network must use {}, not {}",
                task.output_activation().name(),
                last.activation.name()
            )));
        }
        for (i, l) in layers.iter().enumerate() {
            if l.units == 0 || l.units > MAX_WIDTH {
                return Err(invalid(format!("layer {i} has {} units; must be in 1..={MAX_WIDTH}", l.units)));
            }
            if i + 1 < layers.len() && l.activation.is_rowwise() {
                return Err(invalid(format!("layer {i}: {} is only allowed on the output layer", l.activation.name())));
            }
            if let Some(a) = l.activation.param().filter(|a| !a.is_finite()) {
                return Err(Error::NonFinite(format!("layer {i}: activation parameter {a}")));
            }
        }
        if task == Task::MultiClass && last.units < 2 {
            return Err(invalid("a multi-class output needs at least 2 units"));
        }
        let mut offsets = Vec::with_capacity(layers.len());
        let mut total = 0usize;
        let mut fan_in = n_inputs;
        for l in &layers {
            let w = fan_in.checked_mul(l.units).ok_or_else(|| Error::Overflow("parameter count overflows".into()))?;
            offsets.push((total, total + w));
            total =
                total.checked_add(w + l.units).ok_or_else(|| Error::Overflow("parameter count overflows".into()))?;
            fan_in = l.units;
        }
        if total > MAX_PARAMS {
            return Err(invalid(format!("{total} parameters exceed the limit of {MAX_PARAMS}")));
        }
        let params = AlignedVec::try_zeros(total, "the model's parameters")?;
        let mut m = Mlp { n_inputs, layers, task, params, offsets, state: None };
        m.reinitialize(seed);
        Ok(m)
    }

    /// Draws fresh weights and biases from `seed` (see [`Mlp::new`]) and forgets
    /// the optimizer state.
    pub fn reinitialize(&mut self, seed: u64) {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut fan_in = self.n_inputs;
        for (i, l) in self.layers.iter().enumerate() {
            let g = l.activation.init_gain();
            let fan = match g.fan {
                Fan::TwiceIn => (2 * fan_in) as f64,
                Fan::InPlusOut => (fan_in + l.units) as f64,
            };
            let bound = (g.factor / fan).sqrt() as f32;
            let (w0, b0) = self.offsets[i];
            for v in &mut self.params[w0..b0 + l.units] {
                *v = rng.random_range(-bound..bound);
            }
            fan_in = l.units;
        }
        self.state = None;
    }

    /// Input width.
    pub fn n_inputs(&self) -> usize {
        self.n_inputs
    }
    /// Output width.
    pub fn n_outputs(&self) -> usize {
        self.layers.last().map_or(0, |l| l.units)
    }
    /// The layers (the last is the output layer).
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }
    /// The task.
    pub fn task(&self) -> Task {
        self.task
    }
    /// All parameters, flat (`W₀, b₀, W₁, b₁, …`).
    pub fn params(&self) -> &[f32] {
        &self.params
    }
    /// Mutable parameters (forgets nothing; the caller keeps them finite).
    pub fn params_mut(&mut self) -> &mut [f32] {
        &mut self.params
    }
    /// `(W, b)` of layer `i` (`W` row-major `n_in × n_out`), like scikit-learn's
    /// `coefs_[i]`, `intercepts_[i]`.
    ///
    /// # Panics
    ///
    /// If `i` is not below `self.layers().len()` (as slice indexing does;
    /// [`Mlp::set_layer_params`] returns an error instead).
    pub fn layer_params(&self, i: usize) -> (&[f32], &[f32]) {
        let (w, b) = self.offsets[i];
        (&self.params[w..b], &self.params[b..b + self.layers[i].units])
    }

    /// Replaces `(W, b)` of layer `i` (`W` row-major `n_in × n_out`, as
    /// [`Mlp::layer_params`] gives them), keeping the optimizer state. Refuses
    /// a layer index out of range, wrong lengths and non-finite values, and
    /// then changes nothing.
    pub fn set_layer_params(&mut self, i: usize, w: &[f32], b: &[f32]) -> Result<()> {
        let n = self.layers.len();
        let Some(l) = self.layers.get(i) else {
            return Err(invalid(format!("layer {i} does not exist; the model has {n} layers")));
        };
        let (n_in, n_out) = (self.fan_in(i), l.units);
        if w.len() != n_in * n_out || b.len() != n_out {
            return Err(shape(format!(
                "layer {i} takes {n_in}×{n_out} weights and {n_out} biases, got {} and {}",
                w.len(),
                b.len()
            )));
        }
        for (what, v) in [("weight", w), ("bias", b)] {
            if let Some(j) = crate::simd::reduce::first_non_finite(v) {
                return Err(Error::NonFinite(format!("layer {i}: {what} {j} = {} is not finite", v[j])));
            }
        }
        let (w0, b0) = self.offsets[i];
        self.params[w0..b0].copy_from_slice(w);
        self.params[b0..b0 + n_out].copy_from_slice(b);
        Ok(())
    }

    /// Optimizer steps taken by the fits whose state the model keeps (0 when
    /// it keeps none: fresh, loaded, or reinitialized).
    pub fn optimizer_steps(&self) -> u64 {
        self.state.as_ref().map_or(0, |s| s.t)
    }

    /// Training samples seen by the fits whose state the model keeps
    /// (scikit-learn's `t_`; 0 when it keeps none).
    pub fn samples_seen(&self) -> u64 {
        self.state.as_ref().map_or(0, |s| s.samples_seen)
    }

    pub(crate) fn fan_in(&self, i: usize) -> usize {
        if i == 0 { self.n_inputs } else { self.layers[i - 1].units }
    }

    /// Checks `x` holds `n_samples × n_inputs` finite values.
    pub(crate) fn check_input(&self, x: &[f32], n_samples: usize) -> Result<()> {
        self.check_input_shape(x, n_samples)?;
        check_finite_rows(x, self.n_inputs)
    }

    /// The shape part of [`Mlp::check_input`].
    pub(crate) fn check_input_shape(&self, x: &[f32], n_samples: usize) -> Result<()> {
        let need = n_samples
            .checked_mul(self.n_inputs)
            .ok_or_else(|| Error::Overflow("n_samples × n_inputs overflows".into()))?;
        if x.len() != need {
            return Err(shape(format!(
                "x has {} values; {n_samples} samples × {} features need {need}",
                x.len(),
                self.n_inputs
            )));
        }
        Ok(())
    }

    /// Output activations (`n_samples × n_outputs`: class probabilities,
    /// sigmoid probabilities, or regression values) into `out`.
    pub fn predict_into(&self, x: &[f32], n_samples: usize, ws: &mut Workspace, out: &mut [f32]) -> Result<()> {
        self.check_input(x, n_samples)?;
        let k = self.n_outputs();
        if out.len() != n_samples * k {
            return Err(shape(format!("out has {} values, need {}", out.len(), n_samples * k)));
        }
        let _mode = FlushDenormals::new(ws.flush_denormals);
        let chunk = ws.batch.max(1);
        let opts = GemmOptions { par: ws.par, ..Default::default() };
        let mut s0 = 0;
        while s0 < n_samples {
            let b = chunk.min(n_samples - s0);
            let xin = &x[s0 * self.n_inputs..(s0 + b) * self.n_inputs];
            ws.ensure(self, b)?;
            for (i, l) in self.layers.iter().enumerate() {
                let n_in = self.fan_in(i);
                let (w, bias) = self.layer_params(i);
                let shp = DenseShape { batch: b, n_in, n_out: l.units };
                let last = i + 1 == self.layers.len();
                let (prev, cur) = ws.pingpong(i);
                let input = if i == 0 { xin } else { &prev[..b * n_in] };
                let dst = if last { &mut out[s0 * k..(s0 + b) * k] } else { &mut cur[..b * l.units] };
                dense_forward(l.activation, shp, input, w, bias, None, dst, &opts)?;
            }
            s0 += b;
        }
        Ok(())
    }

    /// Output activations as a new vector (see [`Mlp::predict_into`]), with
    /// subnormals flushed (the default [`Workspace`]).
    pub fn predict_proba(&self, x: &[f32], n_samples: usize) -> Result<Vec<f32>> {
        self.predict_proba_mode(x, n_samples, true)
    }

    /// [`Mlp::predict_proba`] flushing subnormals or not.
    pub(crate) fn predict_proba_mode(&self, x: &[f32], n_samples: usize, flush: bool) -> Result<Vec<f32>> {
        let mut ws = Workspace::new(self, 256).with_flush_denormals(flush);
        let n_out = n_samples
            .checked_mul(self.n_outputs())
            .ok_or_else(|| Error::Overflow("n_samples × outputs overflows".into()))?;
        let mut out = crate::mem::try_vec(n_out, 0.0, "the predictions")?;
        self.predict_into(x, n_samples, &mut ws, &mut out)?;
        Ok(out)
    }

    /// Predicted class per sample: the arg-max of the outputs (multi-class), or
    /// output ≥ 0.5 for a single sigmoid output. Errors for regression.
    pub fn predict_class(&self, x: &[f32], n_samples: usize) -> Result<Vec<u32>> {
        let p = self.predict_proba(x, n_samples)?;
        self.task.classes(&p, self.n_outputs())
    }

    /// Accuracy on labelled data (classifiers) or R² (regression, `y` is
    /// `n_samples × n_outputs` targets encoded as f32). For multi-label
    /// targets, subset accuracy (scikit-learn's): a sample counts as correct
    /// only when every one of its labels is (output ≥ 0.5 ⇔ target ≥ 0.5).
    ///
    /// The targets are checked as [`Mlp::evaluate`] checks them, with the
    /// same errors (a label not below the classes, a non-finite or, for
    /// multi-label, out-of-[0, 1] target, the wrong count), and so is the
    /// sample count: zero samples are [`Error::InvalidArgument`].
    pub fn score(&self, x: &[f32], n_samples: usize, y: &Targets<'_>) -> Result<f64> {
        self.check_eval_targets(y, n_samples)?;
        let p = self.predict_proba(x, n_samples)?;
        self.task.score(&p, self.n_outputs(), y)
    }
}

/// Scratch buffers for prediction (and, inside the trainer, training), for a
/// batch size. They are allocated on first use, fallibly (a call that cannot
/// have them returns [`Error::OutOfMemory`]); reuse the workspace across
/// calls to avoid allocation.
#[derive(Debug, Clone)]
pub struct Workspace {
    pub(crate) batch: usize,
    pub(crate) bufs: [AlignedVec; 2],
    pub(crate) par: crate::par::Par,
    pub(crate) flush_denormals: bool,
}

impl Workspace {
    /// A workspace for `model` processing up to `batch` samples at a time
    /// (nothing is allocated until the first call; see [`Workspace::try_new`]).
    pub fn new(_model: &Mlp, batch: usize) -> Workspace {
        Workspace {
            batch: batch.max(1),
            bufs: [AlignedVec::default(), AlignedVec::default()],
            par: crate::par::Par::Default,
            flush_denormals: true,
        }
    }

    /// [`Workspace::new`] with its buffers allocated now, or
    /// [`Error::OutOfMemory`].
    pub fn try_new(model: &Mlp, batch: usize) -> Result<Workspace> {
        let mut ws = Workspace::new(model, batch);
        ws.ensure(model, ws.batch)?;
        Ok(ws)
    }

    /// Threads for the GEMMs of calls using this workspace.
    pub fn with_par(mut self, par: crate::par::Par) -> Self {
        self.par = par;
        self
    }

    /// Whether calls using this workspace flush subnormal numbers to zero
    /// (default `true`, as [`TrainConfig::flush_denormals`](crate::nn::TrainConfig::flush_denormals);
    /// see [`crate::simd::fp`]). The caller's own mode is restored on return.
    pub fn with_flush_denormals(mut self, on: bool) -> Self {
        self.flush_denormals = on;
        self
    }

    fn ensure(&mut self, model: &Mlp, b: usize) -> Result<()> {
        let widest = model.layers.iter().map(|l| l.units).max().unwrap_or(1);
        let need = b.checked_mul(widest).ok_or_else(|| Error::Overflow("batch × width overflows".into()))?;
        for v in &mut self.bufs {
            if v.len() < need {
                // Scratch only: nothing in it outlives a call.
                *v = AlignedVec::try_zeros(need, "predict's workspace")?;
            }
        }
        Ok(())
    }

    fn pingpong(&mut self, i: usize) -> (&[f32], &mut [f32]) {
        let [a, b] = &mut self.bufs;
        if i % 2 == 0 { (&*b, &mut a[..]) } else { (&*a, &mut b[..]) }
    }
}

/// Errors on the first non-finite value of `x` (rows of `width` values,
/// named by row and column).
pub(crate) fn check_finite_rows(x: &[f32], width: usize) -> Result<()> {
    let w = width.max(1);
    crate::simd::reduce::first_non_finite(x).map_or(Ok(()), |i| Err(non_finite_input(i / w, i % w, x[i])))
}

/// The error of a non-finite input value `v` at row `r`, column `c` (dense
/// and sparse inputs alike).
pub(crate) fn non_finite_input(r: usize, c: usize, v: f32) -> Error {
    Error::NonFinite(format!("x[{r}][{c}] = {v} is not finite"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `score` checks targets and sample counts as `evaluate` does, with the
    /// same errors.
    #[test]
    fn score_checks_targets_as_evaluate_does() {
        let m = Mlp::new(2, &[], 3, Task::MultiClass, 1).unwrap();
        let x = [0.5f32, -0.5, 1.0, 2.0];
        let bad = Targets::Labels(&[0, 3]);
        let e = m.score(&x, 2, &bad).unwrap_err();
        assert!(matches!(&e, Error::InvalidArgument(s) if s.contains("label 3 of sample 1")), "{e}");
        assert_eq!(Some(e), m.evaluate(&x, 2, &bad).err());
        let short = Targets::Labels(&[0]);
        assert_eq!(m.score(&x, 2, &short).err(), m.evaluate(&x, 2, &short).err());
        assert!(m.score(&x, 2, &Targets::Labels(&[0, 2])).is_ok());

        let r = Mlp::new(2, &[], 1, Task::Regression, 1).unwrap();
        let nan = Targets::Dense(&[1.0, f32::NAN]);
        let e = r.score(&x, 2, &nan).unwrap_err();
        assert!(matches!(e, Error::NonFinite(_)), "{e}");
        assert_eq!(Some(e), r.evaluate(&x, 2, &nan).err());

        let l = Mlp::new(2, &[], 2, Task::MultiLabel, 1).unwrap();
        let out = Targets::Dense(&[0.0, 1.0, 2.0, 0.0]);
        let e = l.score(&x, 2, &out).unwrap_err();
        assert_eq!(Some(e), l.evaluate(&x, 2, &out).err());
    }

    #[test]
    fn score_and_evaluate_refuse_zero_samples() {
        let m = Mlp::new(2, &[], 3, Task::MultiClass, 1).unwrap();
        let e = m.score(&[], 0, &Targets::Labels(&[])).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
        assert_eq!(Some(e), m.evaluate(&[], 0, &Targets::Labels(&[])).err());
        let r = Mlp::new(2, &[], 1, Task::Regression, 1).unwrap();
        assert!(matches!(r.score(&[], 0, &Targets::Dense(&[])), Err(Error::InvalidArgument(_))));
    }

    #[test]
    fn layer_params_panics_on_a_layer_out_of_range_as_documented() {
        let m = Mlp::new(2, &[], 3, Task::MultiClass, 1).unwrap();
        assert_eq!(m.layer_params(0).1.len(), 3);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = m.layer_params(1);
        }));
        assert!(r.is_err(), "a layer out of range must panic, as documented");
    }
}
