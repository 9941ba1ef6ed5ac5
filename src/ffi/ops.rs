//! C entry points of the kernels: vector math, activations, fused dense
//! steps, softmax cross-entropy and optimizer steps (f32, row-major, contiguous).

use super::{boundary, check_ptr, flag, overlaps, slice_in, slice_out};
use crate::error::{Error, Result, elems};
use crate::gemm::GemmOptions;
use crate::ops::act::{Activation, activation_backward, activation_forward};
use crate::ops::fused::{DenseGrads, DenseShape, dense_backward, dense_forward};
use crate::ops::loss::softmax_cross_entropy_sparse;
use crate::optim::{AdamParams, adam_step, sgd_step};
use std::cell::RefCell;

/// Identity activation.
pub const NNK_ACT_IDENTITY: u32 = 0;
/// `max(x, 0)`.
pub const NNK_ACT_RELU: u32 = 1;
/// Logistic sigmoid.
pub const NNK_ACT_SIGMOID: u32 = 2;
/// Hyperbolic tangent.
pub const NNK_ACT_TANH: u32 = 3;
/// Softmax over each row.
pub const NNK_ACT_SOFTMAX: u32 = 4;
/// Leaky ReLU with slope 0.01.
pub const NNK_ACT_LEAKY_RELU: u32 = 5;
/// ELU with alpha 1.
pub const NNK_ACT_ELU: u32 = 6;
/// `log(1 + e^x)`.
pub const NNK_ACT_SOFTPLUS: u32 = 7;
/// GELU (tanh form).
pub const NNK_ACT_GELU: u32 = 8;
/// Log-softmax over each row.
pub const NNK_ACT_LOG_SOFTMAX: u32 = 9;

fn no_overlap(outs: &[(*const f32, usize, &str)], ins: &[(*const f32, usize, &str)]) -> Result<()> {
    // Each range first checked on its own (NULL, alignment, an extent past
    // isize::MAX bytes or the address space), so that the comparisons below
    // see real ranges.
    for &(p, l, name) in outs.iter().chain(ins) {
        check_ptr(p, l, name)?;
    }
    for (i, &(o, ol, on)) in outs.iter().enumerate() {
        for &(p, pl, pn) in ins.iter().chain(&outs[i + 1..]) {
            if overlaps(o, ol, p, pl) {
                return Err(Error::InvalidArgument(format!("output '{on}' overlaps '{pn}'")));
            }
        }
    }
    Ok(())
}

/// Shared body of the `nnk_v*_f32` entry points: `y[i] = f(x[i])`, in place
/// allowed, any other overlap refused, NULL only with `n == 0`.
///
/// # Safety
/// `x` and `y` valid for `n` elements.
unsafe fn vmath(x: *const f32, y: *mut f32, n: usize, f: fn(&[f32], &mut [f32]) -> Result<()>) -> i32 {
    boundary(|| {
        check_ptr(x, n, "x")?;
        check_ptr(y as *const f32, n, "y")?;
        if n == 0 {
            return Ok(());
        }
        if x == y as *const f32 {
            // SAFETY: checked; in place is one exclusive slice, read through a copy.
            let v = unsafe { std::slice::from_raw_parts_mut(y, n) };
            let tmp = crate::mem::try_to_vec(v, "a copy of the input")?;
            return f(&tmp, v);
        }
        if overlaps(x, n, y, n) {
            return Err(Error::InvalidArgument("'y' partially overlaps 'x'".into()));
        }
        // SAFETY: checked, disjoint.
        let (xs, ys) = unsafe { (std::slice::from_raw_parts(x, n), std::slice::from_raw_parts_mut(y, n)) };
        f(xs, ys)
    })
}

/// Vector `exp` (≤ 2 ULP; overflow to +Inf above 88.72, 0 or subnormal below −87.3).
///
/// `y[i] = f(x[i])` for `n` elements; `x == y` (in place) is allowed, any other
/// overlap is refused. NULL is allowed only with `n == 0`.
///
/// Undefined behaviour unless:
/// `x` and `y` are valid for `n` elements.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nnk_vexp_f32(x: *const f32, y: *mut f32, n: usize) -> i32 {
    // SAFETY: forwarded contract.
    unsafe { vmath(x, y, n, crate::simd::math::vexp_f32) }
}

/// Vector natural `log` (≤ 2 ULP; `log(0) = −Inf`, negative → NaN).
///
/// `y[i] = f(x[i])` for `n` elements; `x == y` (in place) is allowed, any other
/// overlap is refused. NULL is allowed only with `n == 0`.
///
/// Undefined behaviour unless:
/// `x` and `y` are valid for `n` elements.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nnk_vlog_f32(x: *const f32, y: *mut f32, n: usize) -> i32 {
    // SAFETY: forwarded contract.
    unsafe { vmath(x, y, n, crate::simd::math::vlog_f32) }
}

/// Vector `tanh` (≤ 4 ULP).
///
/// `y[i] = f(x[i])` for `n` elements; `x == y` (in place) is allowed, any other
/// overlap is refused. NULL is allowed only with `n == 0`.
///
/// Undefined behaviour unless:
/// `x` and `y` are valid for `n` elements.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nnk_vtanh_f32(x: *const f32, y: *mut f32, n: usize) -> i32 {
    // SAFETY: forwarded contract.
    unsafe { vmath(x, y, n, crate::simd::math::vtanh_f32) }
}

/// Vector logistic sigmoid (≤ 4 ULP).
///
/// `y[i] = f(x[i])` for `n` elements; `x == y` (in place) is allowed, any other
/// overlap is refused. NULL is allowed only with `n == 0`.
///
/// Undefined behaviour unless:
/// `x` and `y` are valid for `n` elements.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nnk_vsigmoid_f32(x: *const f32, y: *mut f32, n: usize) -> i32 {
    // SAFETY: forwarded contract.
    unsafe { vmath(x, y, n, crate::simd::math::vsigmoid_f32) }
}

/// Vector softplus `log(1 + e^x)`, stable (≤ 4 ULP).
///
/// `y[i] = f(x[i])` for `n` elements; `x == y` (in place) is allowed, any other
/// overlap is refused. NULL is allowed only with `n == 0`.
///
/// Undefined behaviour unless:
/// `x` and `y` are valid for `n` elements.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nnk_vsoftplus_f32(x: *const f32, y: *mut f32, n: usize) -> i32 {
    // SAFETY: forwarded contract.
    unsafe { vmath(x, y, n, crate::simd::math::vsoftplus_f32) }
}

/// Vector GELU, tanh form.
///
/// `y[i] = f(x[i])` for `n` elements; `x == y` (in place) is allowed, any other
/// overlap is refused. NULL is allowed only with `n == 0`.
///
/// Undefined behaviour unless:
/// `x` and `y` are valid for `n` elements.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nnk_vgelu_f32(x: *const f32, y: *mut f32, n: usize) -> i32 {
    // SAFETY: forwarded contract.
    unsafe { vmath(x, y, n, crate::simd::math::vgelu_f32) }
}

/// `y = f(x)` for a `rows × cols` row-major matrix (`act`: `NNK_ACT_*`;
/// softmax and log-softmax work over each row). `x == y` is allowed.
///
/// Undefined behaviour unless:
/// `x` and `y` valid for `rows·cols` elements.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nnk_activation_forward(act: u32, rows: usize, cols: usize, x: *const f32, y: *mut f32) -> i32 {
    boundary(|| {
        let act = Activation::from_code(act)?;
        let n = elems(rows, cols)?;
        // SAFETY: checked by `rd`; in place handled through a copy of x.
        let xs = unsafe { slice_in(x, n, "x")? };
        if x != y as *const f32 {
            no_overlap(&[(y, n, "y")], &[(x, n, "x")])?;
        }
        let tmp;
        let xs = if x == y as *const f32 {
            tmp = crate::mem::try_to_vec(xs, "a copy of the input")?;
            &tmp[..]
        } else {
            xs
        };
        // SAFETY: checked by `wr`; disjoint from the input (or the input was copied).
        let ys = unsafe { slice_out(y, n, "y")? };
        activation_forward(act, rows, cols, xs, ys)
    })
}

/// `dx = dy ⊙ f′` for a `rows × cols` matrix. `x` is the forward input, `y` the
/// forward output; each may be NULL when the activation does not need it
/// (relu, leaky relu, softplus, gelu need `x`; sigmoid, tanh, softmax,
/// log-softmax need `y`; elu needs both; identity neither).
///
/// Undefined behaviour unless:
/// Non-NULL pointers valid for `rows·cols` elements; `dx` must not overlap the inputs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nnk_activation_backward(
    act: u32,
    rows: usize,
    cols: usize,
    x: *const f32,
    y: *const f32,
    dy: *const f32,
    dx: *mut f32,
) -> i32 {
    boundary(|| {
        let act = Activation::from_code(act)?;
        let n = elems(rows, cols)?;
        let need = act.backward_needs();
        // SAFETY: each checked by `rd`/`wr`; overlap refused below.
        unsafe {
            let xs = if need.x && n > 0 { Some(slice_in(x, n, "x")?) } else { None };
            let ys = if need.y && n > 0 { Some(slice_in(y, n, "y")?) } else { None };
            let dys = slice_in(dy, n, "dy")?;
            no_overlap(
                &[(dx, n, "dx")],
                &[(x, if need.x { n } else { 0 }, "x"), (y, if need.y { n } else { 0 }, "y"), (dy, n, "dy")],
            )?;
            let dxs = slice_out(dx, n, "dx")?;
            if n == 0 {
                return Ok(());
            }
            activation_backward(act, rows, cols, xs, ys, dys, dxs)
        }
    })
}

/// Fused dense forward: `z = x·w + b`, `a = f(z)`; `x` batch×n_in, `w`
/// n_in×n_out, `b` n_out (may be NULL: no bias), `z` batch×n_out or NULL (not
/// stored), `a` batch×n_out. Bias and activation run inside the GEMM.
///
/// Undefined behaviour unless:
/// Pointers valid for the sizes above; outputs must not overlap anything.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nnk_dense_forward(
    act: u32,
    batch: usize,
    n_in: usize,
    n_out: usize,
    x: *const f32,
    w: *const f32,
    b: *const f32,
    z: *mut f32,
    a: *mut f32,
) -> i32 {
    boundary(|| {
        let act = Activation::from_code(act)?;
        let (nx, nw, nz) = (elems(batch, n_in)?, elems(n_in, n_out)?, elems(batch, n_out)?);
        let nb = if b.is_null() { 0 } else { n_out };
        let nzs = if z.is_null() { 0 } else { nz };
        no_overlap(&[(a, nz, "a"), (z, nzs, "z")], &[(x, nx, "x"), (w, nw, "w"), (b, nb, "b")])?;
        // SAFETY: checked by `rd`/`wr`; outputs disjoint from everything.
        unsafe {
            let (xs, ws, bs) = (slice_in(x, nx, "x")?, slice_in(w, nw, "w")?, slice_in(b, nb, "b")?);
            let zs = if z.is_null() { None } else { Some(slice_out(z, nz, "z")?) };
            let as_ = slice_out(a, nz, "a")?;
            dense_forward(act, DenseShape { batch, n_in, n_out }, xs, ws, bs, zs, as_, &GemmOptions::default())
        }
    })
}

thread_local! {
    static DZ_SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Fused dense backward from `da = ∂L/∂a`: `dz = da ⊙ f′`, `db = Σ_rows dz`,
/// `dw = xᵀ·dz + l2·w`, `dx = dz·wᵀ` (`dx` may be NULL). `z` and `a` are the
/// forward's pre-activation and output; each may be NULL when the activation
/// does not need it (see `nnk_activation_backward`). For softmax outputs
/// trained with cross-entropy, pass the already-combined gradient with
/// `NNK_ACT_IDENTITY` instead.
///
/// Undefined behaviour unless:
/// Pointers valid for their sizes; outputs must not overlap anything.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nnk_dense_backward(
    act: u32,
    batch: usize,
    n_in: usize,
    n_out: usize,
    x: *const f32,
    w: *const f32,
    z: *const f32,
    a: *const f32,
    da: *const f32,
    l2: f32,
    dw: *mut f32,
    db: *mut f32,
    dx: *mut f32,
) -> i32 {
    boundary(|| {
        let act = Activation::from_code(act)?;
        let (nx, nw, nz) = (elems(batch, n_in)?, elems(n_in, n_out)?, elems(batch, n_out)?);
        let need = act.backward_needs();
        let (nzz, naa) = (if need.x { nz } else { 0 }, if need.y { nz } else { 0 });
        let ndx = if dx.is_null() { 0 } else { nx };
        no_overlap(
            &[(dw, nw, "dw"), (db, n_out, "db"), (dx, ndx, "dx")],
            &[(x, nx, "x"), (w, nw, "w"), (z, nzz, "z"), (a, naa, "a"), (da, nz, "da")],
        )?;
        // SAFETY: checked by `rd`/`wr`; outputs disjoint from everything.
        unsafe {
            let (xs, ws, zs, as_, das) = (
                slice_in(x, nx, "x")?,
                slice_in(w, nw, "w")?,
                slice_in(z, nzz, "z")?,
                slice_in(a, naa, "a")?,
                slice_in(da, nz, "da")?,
            );
            let (dws, dbs) = (slice_out(dw, nw, "dw")?, slice_out(db, n_out, "db")?);
            let dxs = if dx.is_null() { None } else { Some(slice_out(dx, nx, "dx")?) };
            DZ_SCRATCH.with(|cell| {
                let mut scratch = cell.borrow_mut();
                if scratch.len() < nz {
                    let more = nz - scratch.len();
                    crate::mem::try_reserve(&mut scratch, more, "the pre-activation gradient")?;
                }
                scratch.resize(nz, 0.0);
                let g = DenseGrads { dw: dws, db: dbs, dx: dxs, dz: &mut scratch[..] };
                dense_backward(
                    act,
                    DenseShape { batch, n_in, n_out },
                    xs,
                    ws,
                    zs,
                    as_,
                    das,
                    l2,
                    g,
                    &GemmOptions::default(),
                )
            })
        }
    })
}

/// Softmax + cross-entropy from `logits` (batch×classes) and integer `labels`:
/// writes the mean loss to `*loss` and `dlogits = (softmax − onehot)/batch`.
/// A label ≥ classes is refused (`NNK_ERR_INVALID_ARG`), outputs untouched.
///
/// Undefined behaviour unless:
/// Pointers valid for their sizes; `dlogits` must not overlap `logits`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nnk_softmax_cross_entropy(
    batch: usize,
    classes: usize,
    logits: *const f32,
    labels: *const u32,
    loss: *mut f32,
    dlogits: *mut f32,
) -> i32 {
    boundary(|| {
        let n = elems(batch, classes)?;
        if loss.is_null() {
            return Err(Error::NullPointer("'loss' is NULL".into()));
        }
        check_ptr(loss as *const f32, 1, "loss")?;
        check_ptr(labels, batch, "labels")?;
        no_overlap(
            &[(dlogits, n, "dlogits"), (loss, 1, "loss")],
            &[(logits, n, "logits"), (labels as *const f32, batch, "labels")],
        )?;
        // SAFETY: checked; disjoint.
        unsafe {
            let zs = slice_in(logits, n, "logits")?;
            let ls = slice_in(labels, batch, "labels")?;
            let ds = slice_out(dlogits, n, "dlogits")?;
            let l = softmax_cross_entropy_sparse(batch, classes, zs, ls, ds)?;
            *loss = l;
        }
        Ok(())
    })
}

/// One Adam step over `n` parameters (`t` ≥ 1: the step number after this
/// update; `m`, `v` zero before the first step; `l2` coupled L2).
///
/// Undefined behaviour unless:
/// All buffers valid for `n` elements and pairwise disjoint.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nnk_adam_step(
    n: usize,
    w: *mut f32,
    g: *const f32,
    m: *mut f32,
    v: *mut f32,
    t: u64,
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    l2: f32,
) -> i32 {
    boundary(|| {
        no_overlap(&[(w, n, "w"), (m, n, "m"), (v, n, "v")], &[(g, n, "g")])?;
        // SAFETY: checked; disjoint.
        unsafe {
            let (ws, gs, ms, vs) =
                (slice_out(w, n, "w")?, slice_in(g, n, "g")?, slice_out(m, n, "m")?, slice_out(v, n, "v")?);
            adam_step(ws, gs, ms, vs, t, &AdamParams { lr, beta1, beta2, eps }, l2)
        }
    })
}

/// One SGD step over `n` parameters: `momentum` in [0, 1); `velocity` (n
/// elements) is required when `momentum > 0` and may be NULL otherwise;
/// `nesterov` is 0 or 1 (any other value is refused).
///
/// Undefined behaviour unless:
/// Buffers valid for `n` elements and pairwise disjoint.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nnk_sgd_step(
    n: usize,
    w: *mut f32,
    g: *const f32,
    velocity: *mut f32,
    lr: f32,
    momentum: f32,
    nesterov: u32,
    l2: f32,
) -> i32 {
    boundary(|| {
        let nesterov = flag(nesterov, "nesterov")?;
        let nv = if momentum > 0.0 { n } else { 0 };
        no_overlap(&[(w, n, "w"), (velocity, nv, "velocity")], &[(g, n, "g")])?;
        // SAFETY: checked; disjoint.
        unsafe {
            let (ws, gs, vs) = (slice_out(w, n, "w")?, slice_in(g, n, "g")?, slice_out(velocity, nv, "velocity")?);
            sgd_step(ws, gs, vs, lr, momentum, nesterov, l2)
        }
    })
}
