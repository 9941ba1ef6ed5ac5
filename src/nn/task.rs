//! What a task decides, in one place: the output activation, the loss (for
//! training, through [`crate::ops::loss`], and for validation), which
//! targets fit it, and what counts as a right answer (training accuracy,
//! [`Mlp::score`](super::Mlp::score), predicted classes).

use crate::error::{Error, Result, invalid, shape};
use crate::ops::act::Activation;
use crate::ops::loss::{Loss, elementwise_loss, softmax_cross_entropy_sparse};

/// What the output layer predicts; decides the output activation and the loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Task {
    /// One of K classes: softmax output, categorical cross-entropy.
    MultiClass,
    /// Independent yes/no outputs (binary is one output): sigmoid, log-loss.
    MultiLabel,
    /// Real values: identity output, squared error.
    Regression,
}

/// Training or evaluation targets.
#[derive(Debug, Clone, Copy)]
pub enum Targets<'a> {
    /// Class labels `0..K` (multi-class; binary with one sigmoid output: 0/1).
    Labels(&'a [u32]),
    /// Dense targets, `n_samples × n_outputs`: regression values (finite), or
    /// multi-label targets in [0, 1] (0/1, or soft labels between).
    Dense(&'a [f32]),
}

/// What a loss is taken of, which decides how it is summed. Training and
/// validation share the loss's definition (the task's [`Loss`]) but not their
/// rounding: changing either would change reported results.
pub(crate) enum LossOf<'a> {
    /// The output layer's logits (its activation folded into the loss),
    /// through the [`crate::ops::loss`] kernels (f32 vector sums, as fast as
    /// the trainer needs), writing `∂L/∂logits` into `grad`. The result is
    /// the kernel's f32.
    Logits {
        /// The logits, `rows × outputs`.
        z: &'a [f32],
        /// `∂L/∂z`, same shape.
        grad: &'a mut [f32],
    },
    /// The output activations (probabilities or values, as predicted), one
    /// term per sample in f64, summed in sample order: a report's precision.
    Outputs(&'a [f32]),
}

/// Where class decisions are read: the output layer's logits (during
/// training, before the activation) or its activations (predictions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scale {
    /// Logits: a sigmoid output is "yes" when its logit is ≥ 0.
    Logits,
    /// Activations: a sigmoid output is "yes" when it is ≥ 0.5.
    Outputs,
}

impl Task {
    /// The output activation of the task.
    pub fn output_activation(self) -> Activation {
        match self {
            Task::MultiClass => Activation::Softmax,
            Task::MultiLabel => Activation::Sigmoid,
            Task::Regression => Activation::Identity,
        }
    }

    /// The loss the task trains and validates with (the output activation
    /// folded in).
    pub(crate) fn loss_kind(self) -> Loss {
        match self {
            Task::MultiClass => Loss::SoftmaxCrossEntropy,
            Task::MultiLabel => Loss::BinaryCrossEntropy,
            Task::Regression => Loss::SquaredError,
        }
    }

    /// Whether the loss reads class labels (softmax) rather than dense
    /// targets: a sigmoid output's labels are read as 0/1 values.
    pub(crate) fn loss_reads_labels(self) -> bool {
        self.loss_kind() == Loss::SoftmaxCrossEntropy
    }

    pub(crate) fn code(self) -> u32 {
        match self {
            Task::MultiClass => 0,
            Task::MultiLabel => 1,
            Task::Regression => 2,
        }
    }

    pub(crate) fn from_code(c: u32) -> Result<Task> {
        Ok(match c {
            0 => Task::MultiClass,
            1 => Task::MultiLabel,
            2 => Task::Regression,
            x => return Err(invalid(format!("unknown task code {x}"))),
        })
    }

    /// Checks that `y` holds valid targets of `n` samples for a network of
    /// `k` outputs (labels in range, dense values finite, multi-label dense
    /// values in [0, 1]).
    pub(crate) fn check_targets(self, k: usize, y: &Targets<'_>, n: usize) -> Result<()> {
        match (self, y) {
            (Task::MultiClass, Targets::Labels(l)) | (Task::MultiLabel, Targets::Labels(l)) => {
                if self == Task::MultiLabel && k != 1 {
                    return Err(invalid(
                        "labels need a single sigmoid output; use dense targets in [0, 1] for multi-label",
                    ));
                }
                if l.len() != n {
                    return Err(shape(format!("{} labels for {n} samples", l.len())));
                }
                let bound = if self == Task::MultiClass { k } else { 2 };
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
                // Log-loss reads probabilities: a target outside [0, 1] is no label.
                if self == Task::MultiLabel
                    && let Some((i, &v)) = t.iter().enumerate().find(|&(_, &v)| !(0.0..=1.0).contains(&v))
                {
                    return Err(invalid(format!("multi-label target {i} is {v}, outside [0, 1]")));
                }
            }
            (Task::MultiClass, Targets::Dense(_)) => return Err(invalid("a multi-class model trains on labels")),
            (Task::Regression, Targets::Labels(_)) => {
                return Err(invalid("a regression model trains on dense targets"));
            }
        }
        Ok(())
    }

    /// The mean loss (without penalty) of `rows × k` outputs against checked
    /// targets `y` ([`Task::check_targets`]; a sigmoid output's labels as
    /// dense 0/1 when taken of logits, see [`Task::loss_reads_labels`]).
    pub(crate) fn loss(self, of: LossOf<'_>, y: &Targets<'_>, k: usize) -> Result<f64> {
        let kind = self.loss_kind();
        match of {
            LossOf::Logits { z, grad } => {
                let rows = z.len() / k.max(1);
                Ok(match (kind, y) {
                    (Loss::SoftmaxCrossEntropy, Targets::Labels(l)) => {
                        softmax_cross_entropy_sparse(rows, k, z, l, grad)? as f64
                    }
                    (Loss::SoftmaxCrossEntropy, Targets::Dense(_)) => {
                        return Err(invalid("a multi-class model trains on labels"));
                    }
                    (_, Targets::Dense(t)) => elementwise_loss(kind, rows, k, z, t, Some(grad))? as f64,
                    (_, Targets::Labels(_)) => {
                        return Err(invalid("the loss of logits reads a sigmoid output's labels as 0/1 values"));
                    }
                })
            }
            LossOf::Outputs(p) => {
                let n = (p.len() / k.max(1)).max(1) as f64;
                Ok(match (kind, y) {
                    (Loss::SoftmaxCrossEntropy, Targets::Labels(l)) => {
                        l.iter()
                            .enumerate()
                            .map(|(i, &c)| -((p[i * k + c as usize] as f64).max(1e-30)).ln())
                            .sum::<f64>()
                            / n
                    }
                    (Loss::BinaryCrossEntropy, Targets::Labels(l)) => {
                        l.iter().enumerate().map(|(i, &c)| bce(p[i] as f64, c as f64)).sum::<f64>() / n
                    }
                    (Loss::BinaryCrossEntropy, Targets::Dense(t)) => {
                        p.iter().zip(t.iter()).map(|(&a, &b)| bce(a as f64, b as f64)).sum::<f64>() / n
                    }
                    (Loss::SquaredError, Targets::Dense(t)) => {
                        p.iter().zip(t.iter()).map(|(&a, &b)| 0.5 * (a as f64 - b as f64).powi(2)).sum::<f64>() / n
                    }
                    _ => return Err(invalid("targets do not match the task")),
                })
            }
        }
    }

    /// How many rows of `out` (`rows × k`, read on `scale`) are classified
    /// right against `y`: multi-class by the arg-max, sigmoid outputs each on
    /// the right side of 0.5 (multi-label: every label of the row, subset
    /// accuracy). Allocates nothing (the trainer counts every batch).
    pub(crate) fn correct(self, out: &[f32], scale: Scale, y: &Targets<'_>, k: usize) -> Result<usize> {
        let n = out.len() / k.max(1);
        match (self, y) {
            (Task::MultiClass, Targets::Dense(_)) => Err(invalid("a multi-class model is scored on labels")),
            (_, Targets::Labels(l)) => {
                if l.len() != n {
                    return Err(shape(format!("{} labels for {n} samples", l.len())));
                }
                self.check_classes(k)?;
                Ok(out.chunks(k.max(1)).zip(l.iter()).filter(|(r, c)| self.class_of(r, scale) == **c).count())
            }
            (_, Targets::Dense(t)) => {
                if t.len() != out.len() {
                    return Err(shape("targets and predictions differ in length"));
                }
                Ok(out
                    .chunks(k.max(1))
                    .zip(t.chunks(k.max(1)))
                    .filter(|(r, tr)| r.iter().zip(tr.iter()).all(|(&a, &b)| scale.yes(a) == (b >= 0.5)))
                    .count())
            }
        }
    }

    /// Accuracy on labelled data (classifiers; subset accuracy for
    /// multi-label dense targets) or R² (regression) of predictions `p`
    /// (`n × k`). Allocates nothing (the trainer scores its validation set
    /// every epoch).
    pub(crate) fn score(self, p: &[f32], k: usize, y: &Targets<'_>) -> Result<f64> {
        let n = p.len() / k.max(1);
        match (self, y) {
            (Task::Regression, Targets::Dense(t)) => {
                if t.len() != p.len() {
                    return Err(shape("targets and predictions differ in length"));
                }
                // R² averaged over outputs (scikit-learn's uniform average).
                let mut r2 = 0.0;
                for j in 0..k {
                    let mean = (0..n).map(|i| t[i * k + j] as f64).sum::<f64>() / n.max(1) as f64;
                    let ss_res: f64 = (0..n).map(|i| (t[i * k + j] as f64 - p[i * k + j] as f64).powi(2)).sum();
                    let ss_tot: f64 = (0..n).map(|i| (t[i * k + j] as f64 - mean).powi(2)).sum();
                    r2 += if ss_tot > 0.0 {
                        1.0 - ss_res / ss_tot
                    } else if ss_res == 0.0 {
                        1.0
                    } else {
                        0.0
                    };
                }
                Ok(r2 / k.max(1) as f64)
            }
            // Multi-label dense targets: subset accuracy, as scikit-learn's
            // `score`: a sample counts only when all its labels are right.
            _ => Ok(self.correct(p, Scale::Outputs, y, k)? as f64 / n.max(1) as f64),
        }
    }

    /// The predicted class of each row of `p` (`k` outputs per row).
    pub(crate) fn classes(self, p: &[f32], k: usize) -> Result<Vec<u32>> {
        self.check_classes(k)?;
        crate::mem::try_collect(
            p.len() / k.max(1),
            p.chunks(k.max(1)).map(|r| self.class_of(r, Scale::Outputs)),
            "the predicted classes",
        )
    }

    /// Whether the task predicts one class per sample with `k` outputs.
    fn check_classes(self, k: usize) -> Result<()> {
        match self {
            Task::Regression => Err(invalid("a regression model has no classes")),
            Task::MultiLabel if k != 1 => {
                Err(invalid("a multi-label model predicts one 0/1 per output: use predict_proba"))
            }
            _ => Ok(()),
        }
    }

    /// The class of one row of outputs ([`Task::check_classes`] passed).
    fn class_of(self, r: &[f32], scale: Scale) -> u32 {
        match self {
            Task::MultiClass => argmax(r) as u32,
            _ => scale.yes(r[0]) as u32,
        }
    }
}

impl Scale {
    /// Whether a sigmoid output read on this scale says yes.
    fn yes(self, v: f32) -> bool {
        match self {
            Scale::Logits => v >= 0.0,
            Scale::Outputs => v >= 0.5,
        }
    }
}

/// Index of the first maximum of `r` (a row of outputs or logits; 0 where
/// `r[0]` is NaN or `r` is empty). The running maximum is kept as a value,
/// with selects rather than a branch on the data (a branch mispredicted
/// about once per row: 30 ns a row of 10 logits, a trainer's step scoring
/// 256 rows spent 8 µs here).
pub(crate) fn argmax(r: &[f32]) -> usize {
    let Some(&first) = r.first() else { return 0 };
    let (mut best, mut top) = (0, first);
    for (j, &v) in r.iter().enumerate().skip(1) {
        let more = v > top;
        best = if more { j } else { best };
        top = if more { v } else { top };
    }
    best
}

/// Log-loss of probability `p` against target `t`, `p` kept 1e-12 from 0 and 1.
fn bce(p: f64, t: f64) -> f64 {
    let p = p.clamp(1e-12, 1.0 - 1e-12);
    -(t * p.ln() + (1.0 - t) * (1.0 - p).ln())
}

#[cfg(test)]
mod tests {
    use super::{Error, Targets, Task, argmax};

    /// Multi-label dense targets are probabilities: [0, 1], soft labels
    /// allowed, anything outside refused naming its index and value.
    #[test]
    fn multi_label_targets_must_be_in_0_1() {
        let ok = [0.0f32, 1.0, 0.25, -0.0];
        assert!(Task::MultiLabel.check_targets(2, &Targets::Dense(&ok), 2).is_ok());
        for (bad, what) in [([0.0f32, 1.0, 2.0, 0.0], "target 2 is 2"), ([0.0, -0.5, 1.0, 0.0], "target 1 is -0.5")] {
            let e = Task::MultiLabel.check_targets(2, &Targets::Dense(&bad), 2).unwrap_err();
            assert!(matches!(&e, Error::InvalidArgument(m) if m.contains(what) && m.contains("[0, 1]")), "{e}");
        }
        // Regression targets keep any finite value.
        assert!(Task::Regression.check_targets(2, &Targets::Dense(&[2.0, -0.5, 9.0, 0.0]), 2).is_ok());
        // Non-finite values are still non-finite errors first.
        let nan = [f32::NAN, 2.0];
        assert!(matches!(Task::MultiLabel.check_targets(1, &Targets::Dense(&nan), 2), Err(Error::NonFinite(_))));
    }

    /// The first maximum, as a plain scan with a branch finds it: ties go to
    /// the first, NaN never wins (nor loses to anything after a NaN first).
    #[test]
    fn argmax_takes_the_first_maximum() {
        let reference = |r: &[f32]| {
            let mut best = 0;
            for (j, &v) in r.iter().enumerate() {
                if v > r[best] {
                    best = j;
                }
            }
            best
        };
        let nan = f32::NAN;
        let cases: [&[f32]; 10] = [
            &[1.0],
            &[0.0, 2.0, 2.0, 1.0],
            &[3.0, 2.0, 1.0],
            &[nan, 5.0, 6.0],
            &[1.0, nan, 0.5, 2.0],
            &[f32::NEG_INFINITY, f32::NEG_INFINITY],
            &[-0.0, 0.0],
            &[0.0, -0.0, f32::INFINITY, 1e30],
            &[-1.0, -3.0, -0.5, -0.5],
            &[0.1, 0.9, 0.3, 0.9, 0.2, 0.8, 0.95, 0.1, 0.0, 0.95],
        ];
        for r in cases {
            assert_eq!(argmax(r), reference(r), "{r:?}");
        }
        assert_eq!(argmax(&[]), 0);
        // Random rows of logits.
        let mut seed = 9u64;
        for len in 1..40 {
            let r: Vec<f32> = (0..len)
                .map(|_| {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    ((seed >> 40) % 7) as f32 - 3.0
                })
                .collect();
            assert_eq!(argmax(&r), reference(&r), "{r:?}");
        }
    }
}
