//! Losses with their gradients, mean over the batch (rows).
//!
//! * squared error: `L = Σ (p − t)² / (2·batch)`, `∂L/∂p = (p − t)/batch`
//!   (the ½ of scikit-learn's squared loss; summed over outputs, averaged over
//!   samples);
//! * binary cross-entropy from logits (stable):
//!   `L = Σ [max(z,0) − z·y + log(1 + e^−|z|)] / batch`, `∂L/∂z = (σ(z) − y)/batch`;
//! * softmax + categorical cross-entropy fused, from logits, with dense targets
//!   ([`softmax_cross_entropy`]) or integer labels
//!   ([`softmax_cross_entropy_sparse`]): `∂L/∂z = (softmax(z) − y)/batch`.
//!
//! Per-row losses are accumulated in f64 in row order (deterministic).

use super::act::{count, map3, softmax_row};
use crate::error::{Error, Result, invalid, shape};
use crate::simd::Isa;
use crate::simd::math::sigmoid_f32s;
use pulp::{Simd, WithSimd};

/// A loss function (the output head decides which one a model uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loss {
    /// Squared error, for regression with an identity output.
    SquaredError,
    /// Binary cross-entropy on logits, for sigmoid outputs (binary and multi-label).
    BinaryCrossEntropy,
    /// Softmax cross-entropy on logits, for multi-class outputs.
    SoftmaxCrossEntropy,
}

fn check(name: &str, len: usize, need: usize) -> Result<()> {
    if len != need {
        return Err(shape(format!("'{name}' has {len} elements, expected {need}")));
    }
    Ok(())
}

struct Elementwise<'a> {
    kind: Loss,
    rows: usize,
    cols: usize,
    p: &'a [f32],
    t: &'a [f32],
    grad: Option<&'a mut [f32]>,
}

impl WithSimd for Elementwise<'_> {
    type Output = f64;
    #[inline(always)]
    fn with_simd<S: Simd>(self, s: S) -> f64 {
        let Elementwise { kind, rows, cols, p, t, grad } = self;
        let inv = 1.0 / rows as f32;
        let mut total = 0.0f64;
        let gp = grad.map_or(core::ptr::null_mut(), |g| g.as_mut_ptr());
        for r in 0..rows {
            let (pr, tr) = (&p[r * cols..(r + 1) * cols], &t[r * cols..(r + 1) * cols]);
            let mut row = 0.0f64;
            for (&a, &b) in pr.iter().zip(tr) {
                let (a, b) = (a as f64, b as f64);
                row += match kind {
                    Loss::SquaredError => 0.5 * (a - b) * (a - b),
                    _ => a.max(0.0) - a * b + (-a.abs()).exp().ln_1p(),
                };
            }
            total += row;
            if !gp.is_null() {
                let iv = s.splat_f32s(inv);
                // SAFETY: row r of grad holds `cols` elements (checked by the caller).
                unsafe {
                    map3(s, cols, pr.as_ptr(), tr.as_ptr(), core::ptr::null(), gp.add(r * cols), |a, b, _| {
                        let d = if kind == Loss::SquaredError { a } else { sigmoid_f32s(s, a) };
                        s.mul_f32s(s.sub_f32s(d, b), iv)
                    })
                };
            }
        }
        total / rows as f64
    }
}

/// Squared-error or binary-cross-entropy loss of `pred` (or logits) against
/// `target`, both `rows × cols`; writes `∂L/∂pred` into `grad` when given.
/// `kind` must not be [`Loss::SoftmaxCrossEntropy`] (use the fused functions).
pub fn elementwise_loss(
    kind: Loss,
    rows: usize,
    cols: usize,
    pred: &[f32],
    target: &[f32],
    grad: Option<&mut [f32]>,
) -> Result<f32> {
    if kind == Loss::SoftmaxCrossEntropy {
        return Err(invalid("use softmax_cross_entropy for the softmax loss"));
    }
    let n = count(rows, cols)?;
    check("pred", pred.len(), n)?;
    check("target", target.len(), n)?;
    if let Some(g) = &grad {
        check("grad", g.len(), n)?;
    }
    if rows == 0 {
        return Ok(0.0);
    }
    Ok(Isa::current().dispatch(Elementwise { kind, rows, cols, p: pred, t: target, grad }) as f32)
}

enum Targets<'a> {
    Dense(&'a [f32]),
    Sparse(&'a [u32]),
}

struct SoftmaxXent<'a> {
    rows: usize,
    cols: usize,
    z: &'a [f32],
    y: Targets<'a>,
    d: &'a mut [f32],
}

impl WithSimd for SoftmaxXent<'_> {
    type Output = f64;
    #[inline(always)]
    fn with_simd<S: Simd>(self, s: S) -> f64 {
        let SoftmaxXent { rows, cols, z, y, d } = self;
        let scale = 1.0 / rows as f32;
        let mut total = 0.0f64;
        for r in 0..rows {
            let o = r * cols;
            let zr = &z[o..o + cols];
            // SAFETY: row r has `cols` elements in z and d.
            let lse = unsafe { softmax_row(s, cols, zr.as_ptr(), d.as_mut_ptr().add(o), false, scale) };
            match &y {
                Targets::Sparse(l) => {
                    let k = l[r] as usize;
                    total += (lse - zr[k]) as f64;
                    d[o + k] -= scale;
                }
                Targets::Dense(t) => {
                    let tr = &t[o..o + cols];
                    let mut row = 0.0f64;
                    for (&tj, &zj) in tr.iter().zip(zr) {
                        if tj != 0.0 {
                            row += tj as f64 * (lse - zj) as f64;
                        }
                    }
                    total += row;
                    let sv = s.splat_f32s(scale);
                    let dp = d[o..].as_mut_ptr();
                    // SAFETY: row r has `cols` elements in d and t.
                    unsafe {
                        map3(s, cols, dp, tr.as_ptr(), core::ptr::null(), dp, |p, t, _| {
                            s.negate_mul_add_e_f32s(t, sv, p)
                        })
                    };
                }
            }
        }
        total / rows as f64
    }
}

/// Fused softmax + categorical cross-entropy from `logits` (`batch × classes`)
/// and dense targets `y` (one-hot or probabilities, rows summing to 1).
/// Writes `dlogits = (softmax(logits) − y)/batch` and returns the mean loss.
pub fn softmax_cross_entropy(
    batch: usize,
    classes: usize,
    logits: &[f32],
    y: &[f32],
    dlogits: &mut [f32],
) -> Result<f32> {
    let n = count(batch, classes)?;
    check("logits", logits.len(), n)?;
    check("y", y.len(), n)?;
    check("dlogits", dlogits.len(), n)?;
    if batch == 0 {
        return Ok(0.0);
    }
    if classes == 0 {
        return Err(invalid("softmax cross-entropy needs at least one class"));
    }
    Ok(Isa::current().dispatch(SoftmaxXent { rows: batch, cols: classes, z: logits, y: Targets::Dense(y), d: dlogits })
        as f32)
}

/// Fused softmax + cross-entropy with integer labels (`labels[i] < classes`);
/// otherwise as [`softmax_cross_entropy`]. A label out of range is an error
/// and leaves `dlogits` untouched.
pub fn softmax_cross_entropy_sparse(
    batch: usize,
    classes: usize,
    logits: &[f32],
    labels: &[u32],
    dlogits: &mut [f32],
) -> Result<f32> {
    let n = count(batch, classes)?;
    check("logits", logits.len(), n)?;
    check("labels", labels.len(), batch)?;
    check("dlogits", dlogits.len(), n)?;
    if let Some((i, &l)) = labels.iter().enumerate().find(|&(_, &l)| l as usize >= classes) {
        return Err(Error::InvalidArgument(format!("label {l} at row {i} is not below the class count {classes}")));
    }
    if batch == 0 {
        return Ok(0.0);
    }
    Ok(Isa::current().dispatch(SoftmaxXent {
        rows: batch,
        cols: classes,
        z: logits,
        y: Targets::Sparse(labels),
        d: dlogits,
    }) as f32)
}
