//! A model's contents from C: its layers, every layer's weights and biases,
//! the whole model as bytes, and the last fit's history. What a binding
//! needs to hold a model as its own data (scikit-learn's `coefs_`,
//! `intercepts_`, `loss_curve_`, pickling).

use super::model::{nnk_mlp, with_model, with_model_mut};
use super::{boundary, check_opt_out, check_out, check_ptr, slice_in};
use crate::error::{Error, Result};
use crate::nn::Mlp;

/// Number of dense layers of a model, the output layer included (0 for NULL).
///
/// Undefined behaviour unless:
/// `m` NULL or a live model.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nnk_mlp_n_layers(m: *const nnk_mlp) -> usize {
    // SAFETY: NULL or live (caller contract).
    unsafe { m.as_ref() }.map_or(0, |h| h.model().layers().len())
}

/// Layer `i`'s shape and activation: `*n_in` inputs, `*n_out` units and its
/// `NNK_ACT_*` code (a parameterized activation's parameter is the C default's
/// or the one it was created with; only the code is reported). Any of the
/// three pointers may be NULL.
///
/// Undefined behaviour unless:
/// `m` a live model; each non-NULL pointer writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nnk_mlp_layer(
    m: *const nnk_mlp,
    i: usize,
    n_in: *mut usize,
    n_out: *mut usize,
    activation: *mut u32,
) -> i32 {
    boundary(|| {
        let (w_in, w_out, w_act) =
            (check_opt_out(n_in, "n_in")?, check_opt_out(n_out, "n_out")?, check_opt_out(activation, "activation")?);
        with_model(m, |h| {
            let (fan_in, l) = layer(h.model(), i)?;
            // SAFETY: each written one is non-NULL and aligned (checked
            // above) and writable (caller contract).
            unsafe {
                if w_in {
                    *n_in = fan_in;
                }
                if w_out {
                    *n_out = l.units;
                }
                if w_act {
                    *activation = l.activation.code();
                }
            }
            Ok(())
        })
    })
}

/// Layer `i` of `m` and its input width, or an error naming the layer count.
fn layer(m: &Mlp, i: usize) -> Result<(usize, crate::nn::Layer)> {
    let ls = m.layers();
    let l = *ls.get(i).ok_or_else(|| {
        Error::InvalidArgument(format!("layer {i} does not exist; the model has {} layers", ls.len()))
    })?;
    Ok((if i == 0 { m.n_inputs() } else { ls[i - 1].units }, l))
}

/// Copies layer `i`'s weights (`w_len` = n_in × n_out, row-major `n_in ×
/// n_out`, as scikit-learn's `coefs_[i]`) into `w` and its biases (`b_len` =
/// n_out) into `b`. Lengths must be exact.
///
/// Undefined behaviour unless:
/// `m` a live model; `w`, `b` writable for `w_len`, `b_len` floats.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nnk_mlp_get_params(
    m: *const nnk_mlp,
    i: usize,
    w: *mut f32,
    w_len: usize,
    b: *mut f32,
    b_len: usize,
) -> i32 {
    boundary(|| {
        with_model(m, |h| {
            let (fan_in, l) = layer(h.model(), i)?;
            exact(w_len, fan_in * l.units, "w_len")?;
            exact(b_len, l.units, "b_len")?;
            check_ptr(w as *const f32, w_len, "w")?;
            check_ptr(b as *const f32, b_len, "b")?;
            let (ws, bs) = h.model().layer_params(i);
            // SAFETY: checked above: writable for exactly these lengths; the
            // model's own buffer cannot be the caller's output.
            unsafe {
                std::ptr::copy_nonoverlapping(ws.as_ptr(), w, w_len);
                std::ptr::copy_nonoverlapping(bs.as_ptr(), b, b_len);
            }
            Ok(())
        })
    })
}

/// Replaces layer `i`'s weights and biases (layout and lengths as
/// `nnk_mlp_get_params`). Non-finite values are refused (`NNK_ERR_NON_FINITE`)
/// and then nothing changes. The optimizer state of earlier fits is kept.
///
/// Undefined behaviour unless:
/// `m` a live model used by no other thread; `w`, `b` readable for `w_len`,
/// `b_len` floats.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nnk_mlp_set_params(
    m: *mut nnk_mlp,
    i: usize,
    w: *const f32,
    w_len: usize,
    b: *const f32,
    b_len: usize,
) -> i32 {
    boundary(|| {
        with_model_mut(m, |model, _| {
            let (fan_in, l) = layer(model, i)?;
            exact(w_len, fan_in * l.units, "w_len")?;
            exact(b_len, l.units, "b_len")?;
            // SAFETY: the caller passes readable buffers of these lengths.
            let (ws, bs) = unsafe { (slice_in(w, w_len, "w")?, slice_in(b, b_len, "b")?) };
            model.set_layer_params(i, ws, bs)
        })
    })
}

fn exact(got: usize, need: usize, name: &str) -> Result<()> {
    if got != need {
        return Err(Error::ShapeMismatch(format!("{name} = {got}, need {need}")));
    }
    Ok(())
}

/// The model in the file format of `nnk_mlp_save`, into `buf`. `*len` always
/// receives the size in bytes; with `buf` NULL nothing else is written (ask
/// the size, then call again), and a non-NULL `buf` with `cap` below the size
/// is `NNK_ERR_SHAPE`.
///
/// Undefined behaviour unless:
/// `m` a live model; `len` writable; `buf` NULL or writable for `cap` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nnk_mlp_to_bytes(m: *const nnk_mlp, buf: *mut u8, cap: usize, len: *mut usize) -> i32 {
    boundary(|| {
        check_out(len, "len")?;
        with_model(m, |h| {
            let bytes = h.model().to_bytes();
            // SAFETY: non-NULL, writable (caller contract).
            unsafe { *len = bytes.len() };
            if buf.is_null() {
                return Ok(());
            }
            if cap < bytes.len() {
                return Err(Error::ShapeMismatch(format!("cap = {cap}, the model needs {} bytes", bytes.len())));
            }
            check_ptr(buf as *const u8, bytes.len(), "buf")?;
            // SAFETY: checked above; `bytes` is our own new buffer.
            unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf, bytes.len()) };
            Ok(())
        })
    })
}

/// A model from `len` bytes written by `nnk_mlp_to_bytes` or `nnk_mlp_save`;
/// `*out` owns it on success. Truncated, corrupt or foreign bytes give
/// `NNK_ERR_FORMAT`.
///
/// Undefined behaviour unless:
/// `buf` readable for `len` bytes; `out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nnk_mlp_from_bytes(buf: *const u8, len: usize, out: *mut *mut nnk_mlp) -> i32 {
    boundary(|| {
        check_out(out, "out")?;
        // SAFETY: the caller passes `len` readable bytes.
        let bytes = unsafe { slice_in(buf, len, "buf")? };
        let model = Mlp::from_bytes(bytes)?;
        // SAFETY: non-NULL, writable.
        unsafe { *out = nnk_mlp::boxed(model) };
        Ok(())
    })
}

/// What a model's last fit did (`nnk_mlp_fit_history`), as scikit-learn's
/// fitted attributes name it.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct nnk_fit_summary {
    /// Epochs run (`n_iter_`): the length of the loss curve.
    pub n_iter: usize,
    /// Validation scores recorded (one per epoch with early stopping, else 0).
    pub n_validation_scores: usize,
    /// Optimizer steps taken by the fits whose state the model keeps.
    pub steps: u64,
    /// Training samples seen by those fits (`t_`).
    pub samples_seen: u64,
    /// Best training loss (`best_loss_`; NaN with early stopping, as in
    /// scikit-learn).
    pub best_loss: f64,
    /// Best validation score (`best_validation_score_`; NaN without early
    /// stopping).
    pub best_validation_score: f64,
    /// The epoch (from 1) whose weights the model holds after early stopping,
    /// 0 without it.
    pub restored_epoch: usize,
    /// 1 when training stopped before its epochs ran out (no improvement or
    /// the callback), else 0.
    pub stopped_early: i32,
    /// 1 when the epoch callback stopped it, else 0.
    pub stopped_by_callback: i32,
    /// Wall-clock seconds of the fit's epochs, summed (the setup and checks
    /// before the first epoch excluded).
    pub seconds: f64,
}

/// The last successful fit (or partial fit) of `m`: a summary into `*summary`
/// (may be NULL), the loss per epoch into `loss_curve` and the validation
/// scores into `validation_scores`, each up to `cap` values (either may be
/// NULL; sizes are in the summary: ask first, then call again).
/// `NNK_ERR_INVALID_ARG` when the model has no fit yet (new, loaded, or
/// its last fit ran and failed; a fit refused for its input changes
/// nothing, the history included).
///
/// Undefined behaviour unless:
/// `m` a live model; `summary` NULL or writable; each array NULL or
/// writable for `cap` doubles.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nnk_mlp_fit_history(
    m: *const nnk_mlp,
    summary: *mut nnk_fit_summary,
    loss_curve: *mut f64,
    validation_scores: *mut f64,
    cap: usize,
) -> i32 {
    boundary(|| {
        with_model(m, |h| {
            let hist = h
                .history
                .as_ref()
                .ok_or_else(|| Error::InvalidArgument("this model has no successful fit to report".into()))?;
            let losses: Vec<f64> = hist.epochs.iter().map(|e| e.loss).collect();
            let scores: Vec<f64> = hist.epochs.iter().filter_map(|e| e.val_score).collect();
            let best_score = scores.iter().copied().fold(f64::NAN, f64::max);
            let early = hist.restored_epoch.is_some();
            // Every pointer checked before anything is written.
            let arrays = [(loss_curve, &losses, "loss_curve"), (validation_scores, &scores, "validation_scores")];
            for &(p, v, name) in &arrays {
                if !p.is_null() {
                    check_ptr(p as *const f64, v.len().min(cap), name)?;
                }
            }
            let write_summary = check_opt_out(summary, "summary")?;
            for (p, v, _) in arrays {
                let n = v.len().min(cap);
                // Nothing to copy: `p` may be anything (even misaligned).
                if !p.is_null() && n > 0 {
                    // SAFETY: non-NULL and aligned for n > 0 doubles (checked
                    // above); writable for `cap` ≥ n doubles (caller contract).
                    unsafe { std::ptr::copy_nonoverlapping(v.as_ptr(), p, n) };
                }
            }
            // SAFETY: non-NULL and aligned (checked above), writable (caller contract).
            if let Some(s) = write_summary.then(|| unsafe { &mut *summary }) {
                *s = nnk_fit_summary {
                    n_iter: losses.len(),
                    n_validation_scores: scores.len(),
                    steps: h.model().optimizer_steps(),
                    samples_seen: h.model().samples_seen(),
                    best_loss: if early { f64::NAN } else { hist.best_loss },
                    best_validation_score: best_score,
                    restored_epoch: hist.restored_epoch.unwrap_or(0),
                    stopped_early: hist.stopped_early as i32,
                    stopped_by_callback: hist.stopped_by_callback as i32,
                    seconds: hist.epochs.iter().map(|e| e.seconds).sum(),
                };
            }
            Ok(())
        })
    })
}
