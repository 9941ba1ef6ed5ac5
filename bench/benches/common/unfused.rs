//! The unfused compositions that the fused dense steps are measured against,
//! shared by `benches/fused.rs` and `examples/fused_cmp.rs` (included with
//! `#[path]`), so that both time exactly the same sequence.

use nnkern::gemm::{GemmOptions, MatMut, MatRef, gemm_with};
use nnkern::ops::Activation;
use nnkern::ops::act::{activation_backward, activation_forward};

/// `a = relu(x·w + b)` as a GEMM into `z`, a bias pass and an activation pass.
#[allow(clippy::too_many_arguments)]
pub fn forward(
    (batch, n_in, n_out): (usize, usize, usize),
    x: &[f32],
    w: &[f32],
    b: &[f32],
    z: &mut [f32],
    a: &mut [f32],
    o: &GemmOptions,
) {
    let xv = MatRef::row_major(x, batch, n_in, n_in).unwrap();
    let wv = MatRef::row_major(w, n_in, n_out, n_out).unwrap();
    gemm_with(1.0, xv, wv, 0.0, MatMut::row_major(z, batch, n_out, n_out).unwrap(), o).unwrap();
    for r in z.chunks_mut(n_out) {
        for (v, bb) in r.iter_mut().zip(b) {
            *v += bb;
        }
    }
    activation_forward(Activation::Relu, batch, n_out, z, a).unwrap();
}

/// The relu layer's backward pass: activation backward into `dz`, a
/// bias-gradient pass, `dw = xᵀ·dz` then an L2 pass (`l2·w`), `dx = dz·wᵀ`.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    (batch, n_in, n_out): (usize, usize, usize),
    x: &[f32],
    w: &[f32],
    z: &[f32],
    da: &[f32],
    l2: f32,
    (dw, db, dx, dz): (&mut [f32], &mut [f32], &mut [f32], &mut [f32]),
    o: &GemmOptions,
) {
    activation_backward(Activation::Relu, batch, n_out, Some(z), None, da, dz).unwrap();
    db.fill(0.0);
    for r in dz.chunks(n_out) {
        for (d, v) in db.iter_mut().zip(r) {
            *d += v;
        }
    }
    let xt = MatRef::row_major(x, batch, n_in, n_in).unwrap().t();
    let dzv = MatRef::row_major(dz, batch, n_out, n_out).unwrap();
    gemm_with(1.0, xt, dzv, 0.0, MatMut::row_major(dw, n_in, n_out, n_out).unwrap(), o).unwrap();
    for (d, v) in dw.iter_mut().zip(w) {
        *d += l2 * v;
    }
    let wt = MatRef::row_major(w, n_in, n_out, n_out).unwrap().t();
    gemm_with(1.0, dzv, wt, 0.0, MatMut::row_major(dx, batch, n_in, n_in).unwrap(), o).unwrap();
}
