//! Fused dense-layer steps.
//!
//! * [`dense_forward`]: `Z = X·W + b`, `A = f(Z)` in one GEMM: bias and
//!   activation run in the GEMM write-out while each C tile is in registers,
//!   optionally storing `Z` on the way (softmax rows are finished in a second,
//!   cache-hot pass since they need whole rows).
//! * [`dense_backward`]: `dZ = dA ⊙ f′` fused with `db = Σ_rows dZ` in one pass,
//!   then `dW = Xᵀ·dZ + l2·W` as one GEMM with the L2 term in the write-out,
//!   then `dX = dZ·Wᵀ`.
//! * [`dense_forward_sparse`], [`dense_backward_sparse`]: the same with the
//!   layer's input given by its nonzeros (mostly-zero inputs such as pixels),
//!   the products running as sparse × dense ([`crate::gemm::spmm`]).
//!
//! Shapes (row-major, contiguous): `X` batch×n_in, `W` n_in×n_out, `b` n_out,
//! `Z`, `A`, `dA`, `dZ` batch×n_out, `dX` batch×n_in.
//!
//! Equivalence: the fused results equal the unfused sequence (GEMM, bias pass,
//! activation pass) up to the GEMM bound of [`crate::gemm`] plus the
//! activation's own bound; the tests assert it.

use super::act::{Activation, act_bwd, act_fwd, per_activation, softmax_row, softmax_row_bwd};
use crate::error::{Result, check_len, elems, shape};
use crate::gemm::RowSink;
use crate::gemm::{
    Epilogue, GemmOptions, MatMut, MatRef, NoEpilogue, SparseRows, gemm_epilogue, gemm_with, spmm, spmm_epilogue,
    spmm_halves_epilogue, spmm_t_epilogue, spmm_t_into,
};
use crate::ptr::{ConstPtr, MutPtr};
use crate::simd::Real;
use crate::simd::{Token, WithToken};

/// Bias + activation (+ storing the pre-activation) in the GEMM write-out.
#[derive(Clone, Copy)]
struct BiasAct {
    /// Null when the layer has no bias.
    bias: ConstPtr<f32>,
    /// Bias indexed by the kernel's rows (true after the driver transposed).
    bias_on_rows: bool,
    act: Activation,
    /// Null unless Z is stored; made from Z's exclusive borrow. The GEMM's
    /// threads write disjoint tiles of Z.
    z: MutPtr<f32>,
    z_rs: isize,
    z_cs: isize,
}

impl Epilogue<f32> for BiasAct {
    fn transposed(self) -> Self {
        BiasAct { bias_on_rows: !self.bias_on_rows, z_rs: self.z_cs, z_cs: self.z_rs, ..self }
    }
    #[inline(always)]
    unsafe fn apply_tile<S: Token, const MV: usize, const NR: usize>(
        &self,
        s: S,
        acc: &mut [[S::f32s; MV]; NR],
        i: usize,
        j: usize,
        m: usize,
    ) {
        let l = S::F32_LANES;
        let last = m - (MV - 1) * l;
        if !self.bias.is_null() {
            if self.bias_on_rows {
                let bv: [S::f32s; MV] = core::array::from_fn(|v| {
                    // SAFETY: rows i..i+m are inside the bias vector.
                    unsafe { f32::load_upto(s, self.bias.get().add(i + v * l), if v + 1 < MV { l } else { last }) }
                });
                for col in acc.iter_mut() {
                    for (x, &b) in col.iter_mut().zip(&bv) {
                        *x = s.add_f32s(*x, b);
                    }
                }
            } else {
                for (c, col) in acc.iter_mut().enumerate() {
                    // SAFETY: column j + c is inside the bias vector.
                    let b = s.splat_f32s(unsafe { *self.bias.get().add(j + c) });
                    for x in col.iter_mut() {
                        *x = s.add_f32s(*x, b);
                    }
                }
            }
        }
        if !self.z.is_null() {
            if self.z_rs == 1 {
                for (c, col) in acc.iter().enumerate() {
                    let zp = self.z.get().wrapping_offset(i as isize + (j + c) as isize * self.z_cs);
                    for (v, &x) in col.iter().enumerate() {
                        // SAFETY: rows i .. i+m of column j+c are inside Z (C's shape).
                        unsafe { f32::store_upto(s, zp.add(v * l), if v + 1 < MV { l } else { last }, x) }
                    }
                }
            } else {
                for (c, col) in acc.iter().enumerate() {
                    for (v, &x) in col.iter().enumerate() {
                        let rows = if v == MV - 1 { last } else { l };
                        let mut buf = [0.0f32; 64];
                        // SAFETY: `buf` holds at least one vector.
                        unsafe { core::ptr::write_unaligned(buf.as_mut_ptr() as *mut S::f32s, x) };
                        for (r, &e) in buf[..rows].iter().enumerate() {
                            let p = ((i + v * l + r) as isize) * self.z_rs + (j + c) as isize * self.z_cs;
                            // SAFETY: (i+v·l+r, j+c) is inside Z, which has C's shape.
                            unsafe { *self.z.get().wrapping_offset(p) = e };
                        }
                    }
                }
            }
        }
        // One match per tile. The cheap activations are inlined in the tile;
        // the polynomial ones run out of line over the tile's vectors (one
        // instance per ISA, not one per tile shape: inlined in each of the
        // kernel table's variants they multiplied the crate's build time by
        // five, and a call per tile is small next to their own cost).
        match self.act {
            Activation::Identity | Activation::Softmax | Activation::LogSoftmax => {}
            Activation::Relu => {
                for x in acc.as_flattened_mut() {
                    *x = act_fwd(s, Activation::Relu, *x);
                }
            }
            Activation::LeakyRelu(k) => {
                for x in acc.as_flattened_mut() {
                    *x = act_fwd(s, Activation::LeakyRelu(k), *x);
                }
            }
            act => act_fwd_outlined(s, act, acc.as_flattened_mut()),
        }
    }
    #[inline(always)]
    unsafe fn apply_scalar(&self, x: f32, i: usize, j: usize) -> f32 {
        let mut x = x;
        if !self.bias.is_null() {
            // SAFETY: the index is inside the bias vector.
            x += unsafe { *self.bias.get().add(if self.bias_on_rows { i } else { j }) };
        }
        if !self.z.is_null() {
            // SAFETY: (i, j) is inside Z.
            unsafe { *self.z.get().wrapping_offset(i as isize * self.z_rs + j as isize * self.z_cs) = x };
        }
        act_fwd(pulp::Scalar::new(), self.act, x)
    }
}

/// `v = f(v)` for each vector, as its own target-feature function: the
/// `#[inline(never)]` wrapper has no target features, so pulp's `vectorize`
/// region cannot be inlined into it (and thus into every GEMM tile variant).
#[inline(never)]
fn act_fwd_outlined<S: Token>(s: S, act: Activation, v: &mut [S::f32s]) {
    // Runs with the outer `S` (the same token comes back as `S2`).
    struct Op<'a, S: Token>(S, Activation, &'a mut [S::f32s]);
    impl<S: Token> WithToken for Op<'_, S> {
        type Output = ();
        #[inline(always)]
        fn with_token<S2: Token>(self, _s: S2) {
            let Op(s, act, v) = self;
            per_activation!(act, |a| {
                for x in v.iter_mut() {
                    *x = act_fwd(s, a, *x);
                }
            })
        }
    }
    crate::simd::vectorize(s, Op(s, act, v))
}

/// `C += l2·W` in the GEMM write-out (W has C's shape).
#[derive(Clone, Copy)]
struct AddScaled {
    l2: f32,
    w: ConstPtr<f32>,
    w_rs: isize,
    w_cs: isize,
}

impl Epilogue<f32> for AddScaled {
    fn transposed(self) -> Self {
        AddScaled { w_rs: self.w_cs, w_cs: self.w_rs, ..self }
    }
    #[inline(always)]
    unsafe fn apply_tile<S: Token, const MV: usize, const NR: usize>(
        &self,
        s: S,
        acc: &mut [[S::f32s; MV]; NR],
        i: usize,
        j: usize,
        m: usize,
    ) {
        let l = S::F32_LANES;
        let last = m - (MV - 1) * l;
        let l2 = s.splat_f32s(self.l2);
        if self.w_rs == 1 {
            // Columns of W contiguous (the usual case): vector loads, only the
            // last vector of a column partial. Branch-free per column so the
            // tile stays in registers.
            for (c, col) in acc.iter_mut().enumerate() {
                let wp = self.w.get().wrapping_offset(i as isize + (j + c) as isize * self.w_cs);
                for (v, x) in col.iter_mut().enumerate() {
                    // SAFETY: rows i .. i+m of column j+c are inside W (C's shape).
                    let wv = unsafe { f32::load_upto(s, wp.add(v * l), if v + 1 < MV { l } else { last }) };
                    *x = s.mul_add_e_f32s(l2, wv, *x);
                }
            }
            return;
        }
        for (c, col) in acc.iter_mut().enumerate() {
            for (v, x) in col.iter_mut().enumerate() {
                let rows = if v == MV - 1 { last } else { l };
                let mut buf = [0.0f32; 64];
                for (r, b) in buf[..rows].iter_mut().enumerate() {
                    let p = ((i + v * l + r) as isize) * self.w_rs + (j + c) as isize * self.w_cs;
                    // SAFETY: (i+v·l+r, j+c) is inside W, which has C's shape.
                    *b = unsafe { *self.w.get().wrapping_offset(p) };
                }
                // SAFETY: `buf` holds at least one vector.
                let wv = unsafe { core::ptr::read_unaligned(buf.as_ptr() as *const S::f32s) };
                *x = s.mul_add_e_f32s(l2, wv, *x);
            }
        }
    }
    #[inline(always)]
    unsafe fn apply_scalar(&self, x: f32, i: usize, j: usize) -> f32 {
        // SAFETY: (i, j) is inside W.
        x + self.l2 * unsafe { *self.w.get().wrapping_offset(i as isize * self.w_rs + j as isize * self.w_cs) }
    }
}

/// Shapes of one dense layer call.
#[derive(Debug, Clone, Copy)]
pub struct DenseShape {
    /// Rows of X (samples).
    pub batch: usize,
    /// Input width.
    pub n_in: usize,
    /// Output width.
    pub n_out: usize,
}

impl DenseShape {
    fn sizes(&self) -> Result<(usize, usize, usize)> {
        Ok((elems(self.batch, self.n_in)?, elems(self.n_in, self.n_out)?, elems(self.batch, self.n_out)?))
    }
}

/// The input `X` of a dense layer: dense rows, or the nonzeros of mostly-zero
/// rows (see [`crate::gemm::spmm`]).
#[derive(Clone, Copy)]
enum Input<'a> {
    Dense(&'a [f32]),
    /// Forward: the rows of X (all, or those listed); backward: Xᵀ
    /// (`None`) or the listed rows of X.
    Sparse(&'a SparseRows, Option<&'a [usize]>),
}

/// Fused forward: `Z = X·W + b` (stored if `z` is given), `A = f(Z)`.
/// `b` may be empty for no bias.
#[allow(clippy::too_many_arguments)]
pub fn dense_forward(
    act: Activation,
    shp: DenseShape,
    x: &[f32],
    w: &[f32],
    b: &[f32],
    z: Option<&mut [f32]>,
    a: &mut [f32],
    opts: &GemmOptions,
) -> Result<()> {
    forward(act, shp, Input::Dense(x), w, b, z, a, opts)
}

/// [`dense_forward`] with the input given by its nonzeros: the rows of `x`
/// (`batch × n_in`), or with `rows` the rows `rows` of `x` (a mini-batch of a
/// data set whose nonzeros were found once, `rows.len() == batch`). The
/// product ([`crate::gemm::spmm_rows`]) costs `2·nnz·n_out` flops instead of
/// `2·batch·n_in·n_out`, with bias and activation fused in its write-out.
/// Equal to the dense call within the GEMM bound (the sums skip the zeros and
/// run in another order). Where the weights take 128 KiB or more (MNIST's
/// 784×128), each output sums its first `n_in/2` inputs' terms and its others'
/// apart and then adds the two, so that two threads each read only their
/// half of the weights, the half whose gradient and update they compute: the
/// same bits for any thread count.
#[allow(clippy::too_many_arguments)]
pub fn dense_forward_sparse(
    act: Activation,
    shp: DenseShape,
    x: &SparseRows,
    rows: Option<&[usize]>,
    w: &[f32],
    b: &[f32],
    z: Option<&mut [f32]>,
    a: &mut [f32],
    opts: &GemmOptions,
) -> Result<()> {
    forward(act, shp, Input::Sparse(x, rows), w, b, z, a, opts)
}

/// `rows` (`batch` of them) select a batch of the rows of `s`, which has `cols` columns.
fn check_rows(name: &str, s: &SparseRows, rows: &[usize], batch: usize, cols: usize) -> Result<()> {
    check_sparse(name, s, s.rows(), cols)?;
    check_len("rows", rows.len(), batch)?;
    match rows.iter().find(|&&r| r >= s.rows()) {
        Some(r) => Err(shape(format!("row {r} of a sparse matrix of {} rows", s.rows()))),
        None => Ok(()),
    }
}

fn check_sparse(name: &str, s: &SparseRows, rows: usize, cols: usize) -> Result<()> {
    if s.rows() != rows || s.cols() != cols {
        return Err(shape(format!("'{name}' is {}×{}, expected {rows}×{cols}", s.rows(), s.cols())));
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn forward(
    act: Activation,
    shp: DenseShape,
    x: Input<'_>,
    w: &[f32],
    b: &[f32],
    z: Option<&mut [f32]>,
    a: &mut [f32],
    opts: &GemmOptions,
) -> Result<()> {
    let (nx, nw, nz) = shp.sizes()?;
    match x {
        Input::Dense(x) => check_len("x", x.len(), nx)?,
        Input::Sparse(x, None) => check_sparse("x", x, shp.batch, shp.n_in)?,
        Input::Sparse(x, Some(rows)) => check_rows("x", x, rows, shp.batch, shp.n_in)?,
    }
    check_len("w", w.len(), nw)?;
    if !b.is_empty() {
        check_len("b", b.len(), shp.n_out)?;
    }
    check_len("a", a.len(), nz)?;
    if let Some(z) = &z {
        check_len("z", z.len(), nz)?;
    }
    let DenseShape { batch, n_in, n_out } = shp;
    let wv = MatRef::row_major(w, n_in, n_out, n_out)?;
    let rowwise = act.is_rowwise();
    let mut z = z;
    // Z's write pointer comes from its exclusive borrow (`&mut`), never
    // through a shared reborrow.
    let zp = match (&mut z, rowwise) {
        (Some(z), false) => MutPtr::from_mut_slice(z),
        _ => MutPtr::null(),
    };
    let epi = BiasAct {
        bias: if b.is_empty() { ConstPtr::null() } else { ConstPtr::from_slice(b) },
        bias_on_rows: false,
        act: if rowwise { Activation::Identity } else { act },
        z: zp,
        z_rs: n_out as isize,
        z_cs: 1,
    };
    let av = MatMut::row_major(a, batch, n_out, n_out)?;
    match x {
        Input::Dense(x) => gemm_epilogue(1.0, MatRef::row_major(x, batch, n_in, n_in)?, wv, 0.0, av, epi, opts)?,
        Input::Sparse(x, rows) => spmm_halves_epilogue(x, rows, wv, av, epi, opts)?,
    }
    if rowwise {
        if let Some(z) = z {
            z.copy_from_slice(a);
        }
        let log = act == Activation::LogSoftmax;
        opts.resolve_isa()?.run(RowSoftmax { rows: batch, cols: n_out, y: a, log });
    }
    Ok(())
}

struct RowSoftmax<'a> {
    rows: usize,
    cols: usize,
    y: &'a mut [f32],
    log: bool,
}

impl WithToken for RowSoftmax<'_> {
    type Output = ();
    #[inline(always)]
    fn with_token<S: Token>(self, s: S) {
        // Rows of no columns: nothing to do (and `rows` may be anything).
        if self.cols == 0 {
            return;
        }
        for r in 0..self.rows {
            let p = self.y[r * self.cols..].as_mut_ptr();
            // SAFETY: row r holds `cols` elements; in place is allowed.
            unsafe { softmax_row(s, self.cols, p, p, self.log, 1.0) };
        }
    }
}

struct DzDb<'a> {
    act: Activation,
    rows: usize,
    cols: usize,
    z: &'a [f32],
    a: &'a [f32],
    da: &'a [f32],
    dz: &'a mut [f32],
    db: &'a mut [f32],
}

impl WithToken for DzDb<'_> {
    type Output = ();
    #[inline(always)]
    fn with_token<S: Token>(self, s: S) {
        let DzDb { act, rows, cols, z, a, da, dz, db } = self;
        let l = S::F32_LANES;
        let zero = s.splat_f32s(0.0);
        if act.is_rowwise() {
            db.fill(0.0);
            // Rows of no columns: nothing to do (and `rows` may be anything).
            if cols == 0 {
                return;
            }
            for r in 0..rows {
                let o = r * cols;
                // SAFETY: row r holds `cols` elements in a, da and dz.
                unsafe {
                    softmax_row_bwd(
                        s,
                        cols,
                        a.as_ptr().add(o),
                        da.as_ptr().add(o),
                        dz.as_mut_ptr().add(o),
                        act == Activation::LogSoftmax,
                    )
                };
                let (head, tail) = S::as_mut_simd_f32s(db);
                let (dh, dt) = S::as_simd_f32s(&dz[o..o + cols]);
                for (x, &d) in head.iter_mut().zip(dh) {
                    *x = s.add_f32s(*x, d);
                }
                for (x, &d) in tail.iter_mut().zip(dt) {
                    *x += d;
                }
            }
            return;
        }
        // dz = da ⊙ f′ and db = Σ_rows dz in one pass over dz, a strip of up to
        // STRIP vectors of columns at a time, with the strip's bias gradient
        // held in registers over all rows (each column sums its rows in order
        // from 0, the same bits as a row-by-row accumulation).
        const STRIP: usize = 4;
        per_activation!(act, |f| {
            let mut j = 0;
            while j < cols {
                let w = (cols - j).min(STRIP * l);
                let mut acc = [zero; STRIP];
                for r in 0..rows {
                    let o = r * cols + j;
                    for (v, acc) in acc.iter_mut().enumerate().take(w.div_ceil(l)) {
                        let (q, len) = (o + v * l, (w - v * l).min(l));
                        let d = act_bwd(
                            s,
                            f,
                            if z.is_empty() { zero } else { crate::simd::load_tail(s, &z[q..q + len]) },
                            if a.is_empty() { zero } else { crate::simd::load_tail(s, &a[q..q + len]) },
                            crate::simd::load_tail(s, &da[q..q + len]),
                        );
                        crate::simd::store_tail(s, &mut dz[q..q + len], d);
                        *acc = s.add_f32s(*acc, d);
                    }
                }
                for (v, acc) in acc.iter().enumerate().take(w.div_ceil(l)) {
                    let (q, len) = (j + v * l, (w - v * l).min(l));
                    crate::simd::store_tail(s, &mut db[q..q + len], *acc);
                }
                j += w;
            }
        })
    }
}

/// Buffers of [`dense_backward`].
pub struct DenseGrads<'a> {
    /// Weight gradient, n_in×n_out (overwritten).
    pub dw: &'a mut [f32],
    /// Bias gradient, n_out (overwritten).
    pub db: &'a mut [f32],
    /// Input gradient, batch×n_in (overwritten), or `None` for the first layer.
    pub dx: Option<&'a mut [f32]>,
    /// Scratch for dZ, batch×n_out (holds dZ on return).
    pub dz: &'a mut [f32],
}

/// Fused backward of `A = f(X·W + b)` from `da = ∂L/∂A`:
/// `dZ = dA ⊙ f′(Z)` with `db = Σ_rows dZ` in one pass, `dW = Xᵀ·dZ + l2·W`
/// in one GEMM, `dX = dZ·Wᵀ`. `z` and `a` are needed as
/// [`Activation::backward_needs`] says (pass empty slices for the others).
#[allow(clippy::too_many_arguments)]
pub fn dense_backward(
    act: Activation,
    shp: DenseShape,
    x: &[f32],
    w: &[f32],
    z: &[f32],
    a: &[f32],
    da: &[f32],
    l2: f32,
    g: DenseGrads<'_>,
    opts: &GemmOptions,
) -> Result<()> {
    backward(act, shp, Input::Dense(x), w, z, a, da, l2, g, opts)
}

/// [`dense_backward`] with the layer's input given by the nonzeros of its
/// transpose `xt = Xᵀ` (`n_in × batch`, as [`SparseRows::transpose_from`]
/// makes it): `dW = Xᵀ·dZ + l2·W` costs `2·nnz·n_out` flops, each row of `dW`
/// summing its samples in order. Equal to the dense call within the GEMM
/// bound.
#[allow(clippy::too_many_arguments)]
pub fn dense_backward_sparse(
    act: Activation,
    shp: DenseShape,
    xt: &SparseRows,
    w: &[f32],
    z: &[f32],
    a: &[f32],
    da: &[f32],
    l2: f32,
    g: DenseGrads<'_>,
    opts: &GemmOptions,
) -> Result<()> {
    backward(act, shp, Input::Sparse(xt, None), w, z, a, da, l2, g, opts)
}

/// [`dense_backward_sparse`] with the layer's input given as the rows `rows`
/// of `x` (a mini-batch of a data set whose nonzeros were found once, as
/// [`dense_forward_sparse`] takes it; `rows.len() == batch`): the weight
/// gradient comes straight from those rows ([`crate::gemm::spmm_t_rows`]),
/// with no transpose, and has the bits of [`dense_backward_sparse`] on
/// their transpose.
#[allow(clippy::too_many_arguments)]
pub fn dense_backward_sparse_rows(
    act: Activation,
    shp: DenseShape,
    x: &SparseRows,
    rows: &[usize],
    w: &[f32],
    z: &[f32],
    a: &[f32],
    da: &[f32],
    l2: f32,
    g: DenseGrads<'_>,
    opts: &GemmOptions,
) -> Result<()> {
    backward(act, shp, Input::Sparse(x, Some(rows)), w, z, a, da, l2, g, opts)
}

/// The first pass of [`dense_backward`] alone, for a layer whose weight
/// gradient is then computed in parts ([`dense_weight_grad_rows`]):
/// `dZ = dA ⊙ f′(Z)` and `db = Σ_rows dZ`, the same bits as inside
/// [`dense_backward`].
#[allow(clippy::too_many_arguments)]
pub(crate) fn dense_backward_dz(
    act: Activation,
    shp: DenseShape,
    z: &[f32],
    a: &[f32],
    da: &[f32],
    dz: &mut [f32],
    db: &mut [f32],
    opts: &GemmOptions,
) -> Result<()> {
    let (_, _, nz) = shp.sizes()?;
    check_len("da", da.len(), nz)?;
    check_len("dz", dz.len(), nz)?;
    check_len("db", db.len(), shp.n_out)?;
    let needs = act.backward_needs();
    if needs.x {
        check_len("z", z.len(), nz)?;
    }
    if needs.y {
        check_len("a", a.len(), nz)?;
    }
    let z = if needs.x { z } else { &[][..] };
    let a = if needs.y { a } else { &[][..] };
    opts.resolve_isa()?.run(DzDb { act, rows: shp.batch, cols: shp.n_out, z, a, da, dz, db });
    Ok(())
}

/// The layer's input for [`dense_weight_grad_rows`]: dense rows `X`
/// (batch×n_in), or the rows of a sparse data set that make the batch.
#[derive(Clone, Copy)]
pub(crate) enum WeightGradInput<'a> {
    /// `X`, batch×n_in, row-major.
    Dense(&'a [f32]),
    /// The data set's nonzeros (n_in columns), and the batch's rows of it.
    Sparse(&'a SparseRows, &'a [usize]),
}

/// Rows `rows` of a layer's weight gradient, `dW[rows] = Xᵀ[rows]·dZ`
/// (no L2 term), into `dw` (`rows.len() × n_out`), from `dZ` of
/// [`dense_backward_dz`]. With sparse input every element sums its samples
/// in order, as [`dense_backward_sparse`] does: the parts give its bits
/// exactly. With dense input the parts are GEMMs of fewer rows, equal to
/// [`dense_backward`]'s within the GEMM bound.
pub(crate) fn dense_weight_grad_rows(
    shp: DenseShape,
    x: WeightGradInput<'_>,
    rows: std::ops::Range<usize>,
    dz: &[f32],
    dw: &mut [f32],
    opts: &GemmOptions,
) -> Result<()> {
    let DenseShape { batch, n_in, n_out } = shp;
    let (nx, _, nz) = shp.sizes()?;
    if rows.start > rows.end || rows.end > n_in {
        return Err(shape(format!("weight-gradient rows {rows:?} of a layer of {n_in} inputs")));
    }
    let m = rows.end - rows.start;
    check_len("dz", dz.len(), nz)?;
    check_len("dw", dw.len(), elems(m, n_out)?)?;
    let dzv = MatRef::row_major(dz, batch, n_out, n_out)?;
    let dwv = MatMut::row_major(dw, m, n_out, n_out)?;
    match x {
        WeightGradInput::Dense(x) => {
            check_len("x", x.len(), nx)?;
            // Xᵀ's rows `rows`: columns of X, stride n_in between samples.
            let xt = MatRef::new(x, rows.start, m, batch, 1, n_in as isize)?;
            gemm_with(1.0, xt, dzv, 0.0, dwv, opts)
        }
        WeightGradInput::Sparse(xs, batch_rows) => {
            check_rows("x", xs, batch_rows, batch, n_in)?;
            spmm_t_epilogue(1.0, xs, batch_rows, rows.start, dzv, 0.0, dwv, NoEpilogue, opts)
        }
    }
}

/// The first layer's backward pass with sparse input (the rows `rows` of
/// `x`, as [`dense_backward_sparse_rows`] takes them), its weight gradient
/// handed to `sink` instead of stored: `dZ` and `db` as there, then each row
/// of `dW = Xᵀ·dZ`, as soon as the sparse product has summed it, goes to
/// `sink` (the trainer's optimizer step, `optim::StepRows`, which so reads
/// and writes the weights and their state once, instead of also writing
/// and reading back a gradient as large as the weights). The rows are
/// those [`dense_backward_sparse_rows`] computes (with `l2 = 0`), bit for
/// bit, for any thread count (each task of the product hands over the rows
/// it sums). Every length, and the sink's shape (`n_in × n_out`), is
/// checked before anything is written.
#[allow(clippy::too_many_arguments)]
pub(crate) fn dense_backward_sparse_into<K: RowSink>(
    act: Activation,
    shp: DenseShape,
    x: &SparseRows,
    rows: &[usize],
    (z, a, da): (&[f32], &[f32], &[f32]),
    dz: &mut [f32],
    db: &mut [f32],
    sink: &K,
    opts: &GemmOptions,
) -> Result<()> {
    let DenseShape { batch, n_in, n_out } = shp;
    check_rows("x", x, rows, batch, n_in)?;
    if sink.dims() != (n_in, n_out) {
        return Err(shape(format!("the weight gradient's sink is {:?}, the layer {n_in}×{n_out}", sink.dims())));
    }
    // Checks the rest before it writes dZ and db.
    dense_backward_dz(act, shp, z, a, da, dz, db, opts)?;
    let dzv = MatRef::row_major(dz, batch, n_out, n_out)?;
    spmm_t_into(x, rows, 0, n_in, dzv, sink, opts)
}

#[allow(clippy::too_many_arguments)]
fn backward(
    act: Activation,
    shp: DenseShape,
    x: Input<'_>,
    w: &[f32],
    z: &[f32],
    a: &[f32],
    da: &[f32],
    l2: f32,
    g: DenseGrads<'_>,
    opts: &GemmOptions,
) -> Result<()> {
    let (nx, nw, nz) = shp.sizes()?;
    let DenseShape { batch, n_in, n_out } = shp;
    match x {
        Input::Dense(x) => check_len("x", x.len(), nx)?,
        Input::Sparse(xt, None) => check_sparse("xt", xt, n_in, batch)?,
        Input::Sparse(xs, Some(rows)) => check_rows("x", xs, rows, batch, n_in)?,
    }
    check_len("w", w.len(), nw)?;
    check_len("da", da.len(), nz)?;
    check_len("dw", g.dw.len(), nw)?;
    check_len("db", g.db.len(), n_out)?;
    check_len("dz", g.dz.len(), nz)?;
    if let Some(dx) = &g.dx {
        check_len("dx", dx.len(), nx)?;
    }
    let needs = act.backward_needs();
    if needs.x {
        check_len("z", z.len(), nz)?;
    }
    if needs.y {
        check_len("a", a.len(), nz)?;
    }
    if !l2.is_finite() {
        return Err(crate::Error::NonFinite(format!("l2 = {l2}")));
    }
    let z = if needs.x { z } else { &[][..] };
    let a = if needs.y { a } else { &[][..] };
    opts.resolve_isa()?.run(DzDb { act, rows: batch, cols: n_out, z, a, da, dz: &mut *g.dz, db: &mut *g.db });
    let dz = &*g.dz;
    let dzv = MatRef::row_major(dz, batch, n_out, n_out)?;
    let dwv = MatMut::row_major(g.dw, n_in, n_out, n_out)?;
    let epi = AddScaled { l2, w: ConstPtr::from_slice(w), w_rs: n_out as isize, w_cs: 1 };
    match (x, l2 != 0.0) {
        (Input::Dense(x), true) => {
            gemm_epilogue(1.0, MatRef::row_major(x, batch, n_in, n_in)?.t(), dzv, 0.0, dwv, epi, opts)?
        }
        (Input::Dense(x), false) => gemm_with(1.0, MatRef::row_major(x, batch, n_in, n_in)?.t(), dzv, 0.0, dwv, opts)?,
        (Input::Sparse(xt, None), true) => spmm_epilogue(1.0, xt, None, dzv, 0.0, dwv, epi, opts)?,
        (Input::Sparse(xt, None), false) => spmm(1.0, xt, dzv, 0.0, dwv, opts)?,
        (Input::Sparse(xs, Some(rows)), true) => spmm_t_epilogue(1.0, xs, rows, 0, dzv, 0.0, dwv, epi, opts)?,
        (Input::Sparse(xs, Some(rows)), false) => spmm_t_epilogue(1.0, xs, rows, 0, dzv, 0.0, dwv, NoEpilogue, opts)?,
    }
    if let Some(dx) = g.dx {
        let wt = MatRef::row_major(w, n_in, n_out, n_out)?.t();
        gemm_with(1.0, dzv, wt, 0.0, MatMut::row_major(dx, batch, n_in, n_in)?, opts)?;
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::simd::Isa;

    /// Values uniform in [-1, 1), each zero with probability `zeros` (a small
    /// xorshift: the test needs no crate).
    pub(crate) fn data(n: usize, seed: u64, zeros: f64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                let u = (s >> 11) as f64 / (1u64 << 53) as f64;
                if u < zeros { 0.0 } else { (2.0 * (u - zeros) / (1.0 - zeros) - 1.0) as f32 }
            })
            .collect()
    }

    /// The weight gradient in pieces of rows (after `dense_backward_dz`)
    /// gives the bits of the whole backward pass with sparse input, and the
    /// dense GEMM's within its bound, on every ISA of the machine, for odd
    /// shapes, 1 and pieces of 1 row up to all of them.
    #[test]
    fn weight_gradient_in_pieces_equals_the_whole() {
        for isa in Isa::available() {
            let opts = GemmOptions { isa: Some(isa), ..GemmOptions::default() };
            for (t, &(batch, n_in, n_out)) in [(1, 1, 1), (3, 7, 5), (32, 50, 17), (65, 97, 128)].iter().enumerate() {
                for (ai, act) in [Activation::Relu, Activation::Tanh, Activation::Identity].into_iter().enumerate() {
                    let shp = DenseShape { batch, n_in, n_out };
                    let seed = 10 * t as u64 + ai as u64;
                    let x = data(batch * n_in, seed, 0.7);
                    let w = data(n_in * n_out, seed + 1, 0.0);
                    let z = data(batch * n_out, seed + 2, 0.0);
                    let a = data(batch * n_out, seed + 3, 0.0);
                    let da = data(batch * n_out, seed + 4, 0.0);
                    let xs = SparseRows::from_dense(&x, batch, n_in).unwrap();
                    let mut xt = SparseRows::new(batch).unwrap();
                    xt.transpose_from(&xs).unwrap();
                    // The batch as rows of a larger data set, in another order.
                    let data = SparseRows::from_dense(&[x.clone(), x.clone()].concat(), 2 * batch, n_in).unwrap();
                    let rows: Vec<usize> = (0..batch).map(|r| if r % 2 == 0 { r } else { batch + r }).collect();
                    let whole = |sparse: bool| {
                        let (mut dw, mut db, mut dz) =
                            (vec![0.0; n_in * n_out], vec![0.0; n_out], vec![0.0; batch * n_out]);
                        let g = DenseGrads { dw: &mut dw, db: &mut db, dx: None, dz: &mut dz };
                        if sparse {
                            dense_backward_sparse(act, shp, &xt, &w, &z, &a, &da, 0.0, g, &opts).unwrap();
                        } else {
                            dense_backward(act, shp, &x, &w, &z, &a, &da, 0.0, g, &opts).unwrap();
                        }
                        (dw, db, dz)
                    };
                    for sparse in [true, false] {
                        let (dw, db, dz) = whole(sparse);
                        for k in [1, 3, n_in.div_ceil(2), n_in] {
                            let (mut dw2, mut db2, mut dz2) =
                                (vec![f32::NAN; n_in * n_out], vec![f32::NAN; n_out], vec![f32::NAN; batch * n_out]);
                            dense_backward_dz(act, shp, &z, &a, &da, &mut dz2, &mut db2, &opts).unwrap();
                            let input =
                                if sparse { WeightGradInput::Sparse(&data, &rows) } else { WeightGradInput::Dense(&x) };
                            for lo in (0..n_in).step_by(k) {
                                let hi = (lo + k).min(n_in);
                                let piece = &mut dw2[lo * n_out..hi * n_out];
                                dense_weight_grad_rows(shp, input, lo..hi, &dz2, piece, &opts).unwrap();
                            }
                            let what = format!("{isa:?} {act:?} {batch}x{n_in}x{n_out} sparse {sparse} rows {k}");
                            assert_eq!(bits(&dz2), bits(&dz), "dZ, {what}");
                            assert_eq!(bits(&db2), bits(&db), "db, {what}");
                            if sparse {
                                assert_eq!(bits(&dw2), bits(&dw), "dW, {what}");
                            } else {
                                // The GEMM bound: |Δ| ≤ 2·batch·ε·Σ|x||dz| per element.
                                for i in 0..n_in {
                                    for j in 0..n_out {
                                        let mag: f64 = (0..batch)
                                            .map(|r| (x[r * n_in + i] as f64 * dz[r * n_out + j] as f64).abs())
                                            .sum();
                                        let d = (dw2[i * n_out + j] as f64 - dw[i * n_out + j] as f64).abs();
                                        assert!(
                                            d <= 2.0 * batch as f64 * f32::EPSILON as f64 * mag,
                                            "dW[{i},{j}], {what}"
                                        );
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    /// Rows outside the layer, a piece of the wrong size, a short list of
    /// the batch's rows and a row outside the data set are shape errors,
    /// nothing written.
    #[test]
    fn weight_gradient_pieces_refuse_bad_shapes() {
        let opts = GemmOptions::default();
        let shp = DenseShape { batch: 2, n_in: 4, n_out: 3 };
        let (x, dz) = (vec![1.0; 8], vec![1.0; 6]);
        let mut dw = [7.0; 6];
        let err = |r: Result<()>| matches!(r, Err(crate::Error::ShapeMismatch(_)));
        assert!(err(dense_weight_grad_rows(shp, WeightGradInput::Dense(&x), 3..5, &dz, &mut dw[..6], &opts)));
        assert!(err(dense_weight_grad_rows(shp, WeightGradInput::Dense(&x), 0..1, &dz, &mut dw[..6], &opts)));
        assert!(err(dense_weight_grad_rows(shp, WeightGradInput::Dense(&x[..7]), 0..2, &dz, &mut dw[..6], &opts)));
        let xs = SparseRows::from_dense(&x, 2, 4).unwrap();
        let sparse = |rows| WeightGradInput::Sparse(&xs, rows);
        assert!(err(dense_weight_grad_rows(shp, sparse(&[1]), 1..3, &dz, &mut dw[..6], &opts)));
        assert!(err(dense_weight_grad_rows(shp, sparse(&[1, 2]), 1..3, &dz, &mut dw[..6], &opts)));
        assert!(err(dense_weight_grad_rows(shp, sparse(&[1, 0]), 1..4, &dz, &mut dw[..6], &opts)));
        assert!(dw.iter().all(|&v| v == 7.0));
    }
}
