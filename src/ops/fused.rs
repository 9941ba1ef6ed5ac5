//! Fused dense-layer steps.
//!
//! * [`dense_forward`]: `Z = X·W + b`, `A = f(Z)` in one GEMM: bias and
//!   activation run in the GEMM write-out while each C tile is in registers,
//!   optionally storing `Z` on the way (softmax rows are finished in a second,
//!   cache-hot pass since they need whole rows).
//! * [`dense_backward`]: `dZ = dA ⊙ f′` fused with `db = Σ_rows dZ` in one pass,
//!   then `dW = Xᵀ·dZ + l2·W` as one GEMM with the L2 term in the write-out,
//!   then `dX = dZ·Wᵀ`.
//!
//! Shapes (row-major, contiguous): `X` batch×n_in, `W` n_in×n_out, `b` n_out,
//! `Z`, `A`, `dA`, `dZ` batch×n_out, `dX` batch×n_in.
//!
//! Equivalence: the fused results equal the unfused sequence (GEMM, bias pass,
//! activation pass) up to the GEMM bound of [`crate::gemm`] plus the
//! activation's own bound; the tests assert it.

use super::act::{Activation, act_bwd, act_fwd, count, softmax_row, softmax_row_bwd};
use crate::error::{Result, shape};
use crate::gemm::kernel::Epilogue;
use crate::gemm::{GemmOptions, MatMut, MatRef, gemm_epilogue, gemm_with};
use crate::simd::Isa;
use pulp::{Simd, WithSimd};

/// Bias + activation (+ storing the pre-activation) in the GEMM write-out.
#[derive(Clone, Copy)]
struct BiasAct {
    bias: *const f32,
    /// Bias indexed by the kernel's rows (true after the driver transposed).
    bias_on_rows: bool,
    act: Activation,
    z: *mut f32,
    z_rs: isize,
    z_cs: isize,
}

// SAFETY: the pointers are only used within one GEMM call whose threads write
// disjoint tiles of Z; the caller holds the borrows.
unsafe impl Send for BiasAct {}
// SAFETY: as above.
unsafe impl Sync for BiasAct {}

impl Epilogue<f32> for BiasAct {
    fn transposed(self) -> Self {
        BiasAct { bias_on_rows: !self.bias_on_rows, z_rs: self.z_cs, z_cs: self.z_rs, ..self }
    }
    #[inline(always)]
    unsafe fn apply<S: Simd>(&self, s: S, v: S::f32s, i: usize, j: usize, rows: usize) -> S::f32s {
        let l = S::F32_LANES;
        let mut v = v;
        if !self.bias.is_null() {
            let b = if self.bias_on_rows {
                // SAFETY: rows i..i+rows are inside the bias vector.
                unsafe {
                    if rows == l {
                        core::ptr::read_unaligned(self.bias.add(i) as *const S::f32s)
                    } else {
                        s.partial_load_f32s(core::slice::from_raw_parts(self.bias.add(i), rows))
                    }
                }
            } else {
                // SAFETY: column j is inside the bias vector.
                s.splat_f32s(unsafe { *self.bias.add(j) })
            };
            v = s.add_f32s(v, b);
        }
        if !self.z.is_null() {
            let zp = self.z.wrapping_offset(i as isize * self.z_rs + j as isize * self.z_cs);
            // SAFETY: (i..i+rows, j) is inside Z, which has C's shape.
            unsafe {
                if self.z_rs == 1 {
                    if rows == l {
                        core::ptr::write_unaligned(zp as *mut S::f32s, v)
                    } else {
                        s.partial_store_f32s(core::slice::from_raw_parts_mut(zp, rows), v)
                    }
                } else {
                    let mut buf = [0.0f32; 64];
                    core::ptr::write_unaligned(buf.as_mut_ptr() as *mut S::f32s, v);
                    for (r, &x) in buf[..rows].iter().enumerate() {
                        *zp.wrapping_offset(r as isize * self.z_rs) = x;
                    }
                }
            }
        }
        act_fwd(s, self.act, v)
    }
    #[inline(always)]
    unsafe fn apply_scalar(&self, x: f32, i: usize, j: usize) -> f32 {
        let mut x = x;
        if !self.bias.is_null() {
            // SAFETY: the index is inside the bias vector.
            x += unsafe { *self.bias.add(if self.bias_on_rows { i } else { j }) };
        }
        if !self.z.is_null() {
            // SAFETY: (i, j) is inside Z.
            unsafe { *self.z.wrapping_offset(i as isize * self.z_rs + j as isize * self.z_cs) = x };
        }
        act_fwd(pulp::Scalar::new(), self.act, x)
    }
}

/// `C += l2·W` in the GEMM write-out (W has C's shape).
#[derive(Clone, Copy)]
struct AddScaled {
    l2: f32,
    w: *const f32,
    w_rs: isize,
    w_cs: isize,
}

// SAFETY: read-only pointer used within one GEMM call.
unsafe impl Send for AddScaled {}
// SAFETY: as above.
unsafe impl Sync for AddScaled {}

impl Epilogue<f32> for AddScaled {
    fn transposed(self) -> Self {
        AddScaled { w_rs: self.w_cs, w_cs: self.w_rs, ..self }
    }
    #[inline(always)]
    unsafe fn apply<S: Simd>(&self, s: S, v: S::f32s, i: usize, j: usize, rows: usize) -> S::f32s {
        let wp = self.w.wrapping_offset(i as isize * self.w_rs + j as isize * self.w_cs);
        // SAFETY: (i..i+rows, j) is inside W, which has C's shape.
        let wv = unsafe {
            if self.w_rs == 1 {
                if rows == S::F32_LANES {
                    core::ptr::read_unaligned(wp as *const S::f32s)
                } else {
                    s.partial_load_f32s(core::slice::from_raw_parts(wp, rows))
                }
            } else {
                let mut buf = [0.0f32; 64];
                for (r, b) in buf[..rows].iter_mut().enumerate() {
                    *b = *wp.wrapping_offset(r as isize * self.w_rs);
                }
                core::ptr::read_unaligned(buf.as_ptr() as *const S::f32s)
            }
        };
        s.mul_add_e_f32s(s.splat_f32s(self.l2), wv, v)
    }
    #[inline(always)]
    unsafe fn apply_scalar(&self, x: f32, i: usize, j: usize) -> f32 {
        // SAFETY: (i, j) is inside W.
        x + self.l2 * unsafe { *self.w.wrapping_offset(i as isize * self.w_rs + j as isize * self.w_cs) }
    }
}

fn check(name: &str, len: usize, need: usize) -> Result<()> {
    if len != need {
        return Err(shape(format!("'{name}' has {len} elements, expected {need}")));
    }
    Ok(())
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
        Ok((count(self.batch, self.n_in)?, count(self.n_in, self.n_out)?, count(self.batch, self.n_out)?))
    }
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
    let (nx, nw, nz) = shp.sizes()?;
    check("x", x.len(), nx)?;
    check("w", w.len(), nw)?;
    if !b.is_empty() {
        check("b", b.len(), shp.n_out)?;
    }
    check("a", a.len(), nz)?;
    if let Some(z) = &z {
        check("z", z.len(), nz)?;
    }
    let DenseShape { batch, n_in, n_out } = shp;
    let xv = MatRef::row_major(x, batch, n_in, n_in)?;
    let wv = MatRef::row_major(w, n_in, n_out, n_out)?;
    let rowwise = act.is_rowwise();
    let zp = match (&z, rowwise) {
        (Some(z), false) => z.as_ptr() as *mut f32,
        _ => core::ptr::null_mut(),
    };
    let epi = BiasAct {
        bias: if b.is_empty() { core::ptr::null() } else { b.as_ptr() },
        bias_on_rows: false,
        act: if rowwise { Activation::Identity } else { act },
        z: zp,
        z_rs: n_out as isize,
        z_cs: 1,
    };
    let av = MatMut::row_major(a, batch, n_out, n_out)?;
    gemm_epilogue(1.0, xv, wv, 0.0, av, epi, opts)?;
    if rowwise {
        if let Some(z) = z {
            z.copy_from_slice(a);
        }
        let log = act == Activation::LogSoftmax;
        Isa::current().dispatch(RowSoftmax { rows: batch, cols: n_out, y: a, log });
    }
    Ok(())
}

struct RowSoftmax<'a> {
    rows: usize,
    cols: usize,
    y: &'a mut [f32],
    log: bool,
}

impl WithSimd for RowSoftmax<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self, s: S) {
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

impl WithSimd for DzDb<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self, s: S) {
        let DzDb { act, rows, cols, z, a, da, dz, db } = self;
        let l = S::F32_LANES;
        db.fill(0.0);
        let zero = s.splat_f32s(0.0);
        for r in 0..rows {
            let o = r * cols;
            if act.is_rowwise() {
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
                continue;
            }
            // dz = da ⊙ f′ and db += dz, one pass over the row.
            let mut j = 0;
            while j < cols {
                let len = l.min(cols - j);
                let ld = |src: &[f32]| {
                    if len == l {
                        // SAFETY: o+j .. o+j+l is inside the row.
                        unsafe { core::ptr::read_unaligned(src.as_ptr().add(o + j) as *const S::f32s) }
                    } else {
                        s.partial_load_f32s(&src[o + j..o + j + len])
                    }
                };
                let zv = if z.is_empty() { zero } else { ld(z) };
                let av = if a.is_empty() { zero } else { ld(a) };
                let d = act_bwd(s, act, zv, av, ld(da));
                let bv = if len == l {
                    // SAFETY: j..j+l inside db.
                    unsafe { core::ptr::read_unaligned(db.as_ptr().add(j) as *const S::f32s) }
                } else {
                    s.partial_load_f32s(&db[j..j + len])
                };
                let nb = s.add_f32s(bv, d);
                if len == l {
                    // SAFETY: inside dz's row and db.
                    unsafe {
                        core::ptr::write_unaligned(dz.as_mut_ptr().add(o + j) as *mut S::f32s, d);
                        core::ptr::write_unaligned(db.as_mut_ptr().add(j) as *mut S::f32s, nb);
                    }
                } else {
                    s.partial_store_f32s(&mut dz[o + j..o + j + len], d);
                    s.partial_store_f32s(&mut db[j..j + len], nb);
                }
                j += len;
            }
        }
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
    let (nx, nw, nz) = shp.sizes()?;
    let DenseShape { batch, n_in, n_out } = shp;
    check("x", x.len(), nx)?;
    check("w", w.len(), nw)?;
    check("da", da.len(), nz)?;
    check("dw", g.dw.len(), nw)?;
    check("db", g.db.len(), n_out)?;
    check("dz", g.dz.len(), nz)?;
    if let Some(dx) = &g.dx {
        check("dx", dx.len(), nx)?;
    }
    let needs = act.backward_needs();
    if needs.x {
        check("z", z.len(), nz)?;
    }
    if needs.y {
        check("a", a.len(), nz)?;
    }
    if !l2.is_finite() {
        return Err(crate::Error::NonFinite(format!("l2 = {l2}")));
    }
    let z = if needs.x { z } else { &[][..] };
    let a = if needs.y { a } else { &[][..] };
    Isa::current().dispatch(DzDb { act, rows: batch, cols: n_out, z, a, da, dz: &mut *g.dz, db: &mut *g.db });
    let dz = &*g.dz;
    let xt = MatRef::row_major(x, batch, n_in, n_in)?.t();
    let dzv = MatRef::row_major(dz, batch, n_out, n_out)?;
    let dwv = MatMut::row_major(g.dw, n_in, n_out, n_out)?;
    if l2 != 0.0 {
        let epi = AddScaled { l2, w: w.as_ptr(), w_rs: n_out as isize, w_cs: 1 };
        gemm_epilogue(1.0, xt, dzv, 0.0, dwv, epi, opts)?;
    } else {
        gemm_with(1.0, xt, dzv, 0.0, dwv, opts)?;
    }
    if let Some(dx) = g.dx {
        let wt = MatRef::row_major(w, n_in, n_out, n_out)?.t();
        gemm_with(1.0, dzv, wt, 0.0, MatMut::row_major(dx, batch, n_in, n_in)?, opts)?;
    }
    Ok(())
}
