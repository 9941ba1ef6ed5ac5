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
//! Deterministic sums: the elementwise losses sum their terms in f32 vector
//! accumulators over fixed blocks of `BLOCK_VECTORS` vectors (at most 16
//! terms per lane, all ≥ 0: relative error ≤ 2⁻¹⁹ before the final f32
//! rounding), the blocks in f64 in index order; the softmax losses sum per row
//! in f64 in row order. No thread count enters either.

use super::act::{map3, softmax_row};
use crate::error::{Error, Result, check_len, elems, invalid};
use crate::simd::Isa;
use crate::simd::math::{exp_f32s, sigmoid_f32s, softplus_f32s};
use crate::simd::{Token, WithToken};

/// A loss function (the output head decides which one a model uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Loss {
    /// Squared error, for regression with an identity output.
    SquaredError,
    /// Binary cross-entropy on logits, for sigmoid outputs (binary and multi-label).
    BinaryCrossEntropy,
    /// Softmax cross-entropy on logits, for multi-class outputs.
    SoftmaxCrossEntropy,
}

struct Elementwise<'a> {
    kind: Loss,
    rows: usize,
    cols: usize,
    p: &'a [f32],
    t: &'a [f32],
    grad: Option<&'a mut [f32]>,
}

/// (loss term, gradient) of one vector: ½(p − t)² and (p − t)/rows, or
/// max(z,0) − z·y + log(1 + e^−|z|) (the first two in one FMA, exact for 0/1
/// targets; the last as softplus(−|z|)) and (σ(z) − y)/rows.
#[inline(always)]
fn loss_term<S: Token>(s: S, kind: Loss, inv: S::f32s, a: S::f32s, b: S::f32s) -> (S::f32s, S::f32s) {
    let zero = s.splat_f32s(0.0);
    match kind {
        Loss::SquaredError => {
            let d = s.sub_f32s(a, b);
            (s.mul_f32s(s.mul_f32s(d, d), s.splat_f32s(0.5)), s.mul_f32s(d, inv))
        }
        _ => {
            let lin = s.negate_mul_add_e_f32s(a, b, s.max_f32s(a, zero));
            let soft = softplus_f32s(s, s.sub_f32s(zero, s.abs_f32s(a)));
            (s.add_f32s(lin, soft), s.mul_f32s(s.sub_f32s(sigmoid_f32s(s, a), b), inv))
        }
    }
}

/// Vectors per block of the elementwise losses' sums (fixed: it sets the rounding).
pub(crate) const BLOCK_VECTORS: usize = 16;

impl WithToken for Elementwise<'_> {
    type Output = f64;
    #[inline(always)]
    fn with_token<S: Token>(self, s: S) -> f64 {
        let Elementwise { kind, rows, cols, p, t, grad } = self;
        let n = rows * cols;
        assert!(p.len() >= n && t.len() >= n && grad.as_ref().is_none_or(|g| g.len() >= n));
        let inv = s.splat_f32s(1.0 / rows as f32);
        let zero = s.splat_f32s(0.0);
        let gp = grad.map_or(core::ptr::null_mut(), |g| g.as_mut_ptr());
        let l = S::F32_LANES;
        let block = BLOCK_VECTORS * l;
        let (pp, tp) = (p.as_ptr(), t.as_ptr());
        let mut total = 0.0f64;
        let mut i = 0;
        while i < n {
            let end = (i + block).min(n);
            let mut acc = zero;
            while i + l <= end {
                // SAFETY: i + l ≤ n and every buffer holds n elements (asserted).
                unsafe {
                    let (a, b) = (
                        core::ptr::read_unaligned(pp.add(i) as *const S::f32s),
                        core::ptr::read_unaligned(tp.add(i) as *const S::f32s),
                    );
                    let (lt, g) = loss_term(s, kind, inv, a, b);
                    acc = s.add_f32s(acc, lt);
                    if !gp.is_null() {
                        core::ptr::write_unaligned(gp.add(i) as *mut S::f32s, g);
                    }
                }
                i += l;
            }
            let mut sum = s.reduce_sum_f32s(acc) as f64;
            if i < end {
                // The partial last vector: its lanes past n must not count.
                let (a, b) = (crate::simd::load_tail(s, &p[i..n]), crate::simd::load_tail(s, &t[i..n]));
                let (lt, g) = loss_term(s, kind, inv, a, b);
                let mut buf = [0.0f32; 64];
                // SAFETY: buf holds at least `l` ≤ 64 elements.
                unsafe { core::ptr::write_unaligned(buf.as_mut_ptr() as *mut S::f32s, lt) };
                sum += buf[..n - i].iter().map(|&v| v as f64).sum::<f64>();
                if !gp.is_null() {
                    // SAFETY: gp holds n elements (asserted); i..n is inside it.
                    crate::simd::store_tail(s, unsafe { core::slice::from_raw_parts_mut(gp.add(i), n - i) }, g);
                }
                i = n;
            }
            total += sum;
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
    let n = elems(rows, cols)?;
    check_len("pred", pred.len(), n)?;
    check_len("target", target.len(), n)?;
    if let Some(g) = &grad {
        check_len("grad", g.len(), n)?;
    }
    if rows == 0 {
        return Ok(0.0);
    }
    Ok(Isa::current().run(Elementwise { kind, rows, cols, p: pred, t: target, grad }) as f32)
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

impl WithToken for SoftmaxXent<'_> {
    type Output = f64;
    #[inline(always)]
    fn with_token<S: Token>(self, s: S) -> f64 {
        let SoftmaxXent { rows, cols, z, y, d } = self;
        let scale = 1.0 / rows as f32;
        if cols <= SMALL_ROW {
            return small_rows(s, rows, cols, z, &y, d, scale);
        }
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
                        map3(
                            s,
                            cols,
                            dp,
                            tr.as_ptr(),
                            core::ptr::null(),
                            dp,
                            #[inline(always)]
                            |p, t, _| s.negate_mul_add_e_f32s(t, sv, p),
                        )
                    };
                }
            }
        }
        total / rows as f64
    }
}

/// Rows up to this many classes take [`small_rows`].
const SMALL_ROW: usize = 32;

/// Softmax + cross-entropy for short rows (10 classes and the like), where a
/// row is a vector or two and per-row vector work (horizontal max and sum,
/// partial loads and stores) costs more than the arithmetic: the row maxima
/// and sums run as scalar loops, the exponentials as one vector pass over the
/// whole `rows × cols` block.
#[inline(always)]
fn small_rows<S: Token>(s: S, rows: usize, cols: usize, z: &[f32], y: &Targets<'_>, d: &mut [f32], scale: f32) -> f64 {
    /// Rows per block: the block's exponentials stay in L1 between the passes.
    const ROWS: usize = 256;
    let n = rows * cols;
    let (z, d) = (&z[..n], &mut d[..n]);
    let l = S::F32_LANES;
    let mut maxes = [0.0f32; ROWS];
    let mut total = 0.0f64;
    let mut r0 = 0;
    while r0 < rows {
        let nr = ROWS.min(rows - r0);
        // d = z − max(row); a row of −∞ or with a NaN is shifted by 0, as in
        // softmax_row, so that NaN propagates and −∞ rows give NaN.
        for i in 0..nr {
            let o = (r0 + i) * cols;
            let zr = &z[o..o + cols];
            let mut m = f32::NEG_INFINITY;
            let mut nan = false;
            for &v in zr {
                m = m.max(v);
                nan |= v.is_nan();
            }
            if m == f32::NEG_INFINITY || nan {
                m = 0.0;
            }
            maxes[i] = m;
            for (dj, &v) in d[o..o + cols].iter_mut().zip(zr) {
                *dj = v - m;
            }
        }
        // e = exp(z − max) in place, a vector at a time over the whole block.
        let block = &mut d[r0 * cols..(r0 + nr) * cols];
        let full = block.len() - block.len() % l;
        let (head, tail) = block.split_at_mut(full);
        for c in head.chunks_exact_mut(l) {
            // SAFETY: c holds exactly l elements.
            unsafe {
                let v = core::ptr::read_unaligned(c.as_ptr() as *const S::f32s);
                core::ptr::write_unaligned(c.as_mut_ptr() as *mut S::f32s, exp_f32s(s, v));
            }
        }
        if !tail.is_empty() {
            let v = crate::simd::load_tail(s, tail);
            crate::simd::store_tail(s, tail, exp_f32s(s, v));
        }
        // Per row: the sum, the log-sum-exp and the loss, then
        // d = e·(scale/sum) − y·scale (the same expressions for labels and
        // one-hot targets, so both give the same bits).
        for (i, &m) in maxes[..nr].iter().enumerate() {
            let r = r0 + i;
            let o = r * cols;
            let er = &mut d[o..o + cols];
            let mut sum = 0.0f32;
            for &e in er.iter() {
                sum += e;
            }
            let lse = m + sum.ln();
            let inv = scale / sum;
            for e in er.iter_mut() {
                *e *= inv;
            }
            let zr = &z[o..o + cols];
            match y {
                Targets::Sparse(lab) => {
                    let k = lab[r] as usize;
                    total += (lse - zr[k]) as f64;
                    er[k] -= scale;
                }
                Targets::Dense(t) => {
                    let mut row = 0.0f64;
                    for (j, &tj) in t[o..o + cols].iter().enumerate() {
                        if tj != 0.0 {
                            row += tj as f64 * (lse - zr[j]) as f64;
                            er[j] -= tj * scale;
                        }
                    }
                    total += row;
                }
            }
        }
        r0 += nr;
    }
    total / rows as f64
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
    let n = elems(batch, classes)?;
    check_len("logits", logits.len(), n)?;
    check_len("y", y.len(), n)?;
    check_len("dlogits", dlogits.len(), n)?;
    if batch == 0 {
        return Ok(0.0);
    }
    if classes == 0 {
        return Err(invalid("softmax cross-entropy needs at least one class"));
    }
    Ok(Isa::current().run(SoftmaxXent { rows: batch, cols: classes, z: logits, y: Targets::Dense(y), d: dlogits })
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
    let n = elems(batch, classes)?;
    check_len("logits", logits.len(), n)?;
    check_len("labels", labels.len(), batch)?;
    check_len("dlogits", dlogits.len(), n)?;
    if let Some((i, &l)) = labels.iter().enumerate().find(|&(_, &l)| l as usize >= classes) {
        return Err(Error::InvalidArgument(format!("label {l} at row {i} is not below the class count {classes}")));
    }
    if batch == 0 {
        return Ok(0.0);
    }
    Ok(
        Isa::current().run(SoftmaxXent {
            rows: batch,
            cols: classes,
            z: logits,
            y: Targets::Sparse(labels),
            d: dlogits,
        }) as f32,
    )
}
