//! Activations and their derivatives, forward and backward, over row-major
//! `rows × cols` f32 matrices (contiguous rows).
//!
//! Elementwise activations take `x` (pre-activation) and produce `y`; their
//! backward takes what it needs (see [`Activation::backward_needs`]) and the
//! upstream gradient `dy`, and writes `dx = dy ⊙ f′`. `softmax` and
//! `log_softmax` work over each row (max-subtracted, stable).
//!
//! Accuracy: the transcendental activations inherit the bounds of
//! [`crate::simd::math`] (exp/log ≤ 2 ULP, tanh/sigmoid ≤ 4 ULP); relu, leaky
//! relu and identity are exact.

use crate::Options;
use crate::error::{Error, Result, check_len, elems, invalid};
use crate::simd::math::{exp_f32s, gelu_tanh_f32s, sigmoid_f32s, softplus_f32s, tanh_f32s};
use crate::simd::{Token, WithToken};

/// An activation function (scikit-learn and Keras names; C codes `NNK_ACT_*`).
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Activation {
    /// `f(x) = x` (code 0).
    Identity,
    /// `max(x, 0)` (code 1).
    Relu,
    /// Logistic sigmoid `1 / (1 + e^−x)` (code 2; scikit-learn's "logistic").
    Sigmoid,
    /// `tanh(x)` (code 3).
    Tanh,
    /// Softmax over each row (code 4).
    Softmax,
    /// `x` for `x > 0`, `slope·x` otherwise (code 5; C uses slope 0.01).
    LeakyRelu(f32),
    /// `x` for `x > 0`, `alpha·(e^x − 1)` otherwise (code 6; C uses alpha 1).
    Elu(f32),
    /// `log(1 + e^x)` (code 7).
    Softplus,
    /// GELU, tanh form: `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))` (code 8).
    Gelu,
    /// `log(softmax(x))` over each row (code 9).
    LogSoftmax,
}

/// What an activation's backward pass reads besides `dy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs {
    /// The pre-activation input `x`.
    pub x: bool,
    /// The output `y`.
    pub y: bool,
}

const SQRT_2_OVER_PI: f32 = 0.797_884_6;
const GELU_C: f32 = 0.044_715;

/// How a layer's initial weights are drawn for its activation: uniform in
/// `±sqrt(factor / fan)` (scikit-learn's Glorot rule, He's for the ReLU
/// family).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InitGain {
    /// The numerator under the square root.
    pub factor: f64,
    /// What `fan` counts.
    pub fan: Fan,
}

/// The `fan` of an [`InitGain`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fan {
    /// Inputs plus outputs of the layer (Glorot).
    InPlusOut,
    /// Twice the inputs (He, with factor 12: `sqrt(6 / fan_in)`).
    TwiceIn,
}

/// Everything the crate knows about one activation, apart from its math
/// (`act_fwd`, `act_bwd`): one row of [`ACTIVATIONS`] per C code.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ActivationInfo {
    /// The activation, with the C default for a parameterised one.
    pub activation: Activation,
    /// Its C code (`NNK_ACT_*`, the index in [`ACTIVATIONS`]).
    pub code: u32,
    /// Lowercase name, as [`Activation::name`] prints it.
    pub name: &'static str,
    /// Other names [`Activation::from_name`] accepts.
    pub aliases: &'static [&'static str],
    /// What its backward pass reads besides `dy`.
    pub needs: Needs,
    /// Whether it works across a row rather than elementwise.
    pub rowwise: bool,
    /// How a layer with it draws its initial weights.
    pub init: InitGain,
}

const fn info(
    activation: Activation,
    code: u32,
    name: &'static str,
    aliases: &'static [&'static str],
    (x, y): (bool, bool),
    rowwise: bool,
    (factor, fan): (f64, Fan),
) -> ActivationInfo {
    ActivationInfo { activation, code, name, aliases, needs: Needs { x, y }, rowwise, init: InitGain { factor, fan } }
}

const GLOROT: (f64, Fan) = (6.0, Fan::InPlusOut);
const GLOROT_SIGMOID: (f64, Fan) = (2.0, Fan::InPlusOut);
const HE: (f64, Fan) = (12.0, Fan::TwiceIn);

/// The registry of activations, indexed by C code. A new activation adds its
/// variant, a row here, its arm in [`Activation::code`] and its math in
/// `act_fwd` / `act_bwd` (and the variant list of `per_activation!`);
/// the C constant goes in `src/ffi/ops.rs`, checked against this table by
/// `tests/header.rs`, as are the C++ and Python lists.
pub const ACTIVATIONS: [ActivationInfo; 10] = [
    //    activation                    code name          aliases       needs (x, y)  rowwise init
    info(Activation::Identity, 0, "identity", &["linear"], (false, false), false, GLOROT),
    info(Activation::Relu, 1, "relu", &[], (true, false), false, HE),
    info(Activation::Sigmoid, 2, "sigmoid", &["logistic"], (false, true), false, GLOROT_SIGMOID),
    info(Activation::Tanh, 3, "tanh", &[], (false, true), false, GLOROT),
    info(Activation::Softmax, 4, "softmax", &[], (false, true), true, GLOROT),
    info(Activation::LeakyRelu(0.01), 5, "leaky_relu", &[], (true, false), false, HE),
    info(Activation::Elu(1.0), 6, "elu", &[], (true, true), false, HE),
    info(Activation::Softplus, 7, "softplus", &[], (true, false), false, GLOROT),
    info(Activation::Gelu, 8, "gelu", &[], (true, false), false, HE),
    info(Activation::LogSoftmax, 9, "log_softmax", &[], (false, true), true, GLOROT),
];

impl Activation {
    /// The activation for a C code (`NNK_ACT_*`), with the C defaults for the
    /// parameterised ones. Unknown codes are an error.
    pub fn from_code(code: u32) -> Result<Activation> {
        match ACTIVATIONS.get(code as usize) {
            Some(i) => Ok(i.activation),
            None => Err(invalid(format!(
                "unknown activation code {code} (expected 0..={}, see NNK_ACT_*)",
                ACTIVATIONS.len() - 1
            ))),
        }
    }

    /// The C code of this activation.
    pub fn code(self) -> u32 {
        match self {
            Activation::Identity => 0,
            Activation::Relu => 1,
            Activation::Sigmoid => 2,
            Activation::Tanh => 3,
            Activation::Softmax => 4,
            Activation::LeakyRelu(_) => 5,
            Activation::Elu(_) => 6,
            Activation::Softplus => 7,
            Activation::Gelu => 8,
            Activation::LogSoftmax => 9,
        }
    }

    /// Its row of [`ACTIVATIONS`].
    pub fn info(self) -> &'static ActivationInfo {
        &ACTIVATIONS[self.code() as usize]
    }

    /// Lowercase name (`"relu"`, `"logistic"` is spelled `"sigmoid"`, ...).
    pub fn name(self) -> &'static str {
        self.info().name
    }

    /// Parses a name as [`Activation::name`] prints it, or one of its aliases
    /// (`"logistic"`, `"linear"`); parameterised ones take the C defaults.
    pub fn from_name(s: &str) -> Result<Activation> {
        ACTIVATIONS
            .iter()
            .find(|i| i.name == s || i.aliases.contains(&s))
            .map(|i| i.activation)
            .ok_or_else(|| invalid(format!("unknown activation '{s}'")))
    }

    /// Whether it works across a row rather than elementwise.
    pub fn is_rowwise(self) -> bool {
        self.info().rowwise
    }

    /// What [`activation_backward`] reads for this activation.
    pub fn backward_needs(self) -> Needs {
        self.info().needs
    }

    /// How a layer with this activation draws its initial weights.
    pub fn init_gain(self) -> InitGain {
        self.info().init
    }

    /// The parameter of a parameterised activation (leaky ReLU's slope, ELU's
    /// alpha).
    pub fn param(self) -> Option<f32> {
        match self {
            Activation::LeakyRelu(a) | Activation::Elu(a) => Some(a),
            _ => None,
        }
    }

    /// The same activation with parameter `p` (unchanged when it has none).
    pub fn with_param(self, p: f32) -> Activation {
        match self {
            Activation::LeakyRelu(_) => Activation::LeakyRelu(p),
            Activation::Elu(_) => Activation::Elu(p),
            a => a,
        }
    }

    /// A non-finite parameter is an error.
    pub(crate) fn check(self) -> Result<()> {
        match self.param() {
            Some(a) if !a.is_finite() => Err(Error::NonFinite(format!("{} parameter {a} is not finite", self.name()))),
            _ => Ok(()),
        }
    }
}

/// `f(x)` for one vector (elementwise activations; row-wise ones pass through).
#[inline(always)]
pub(crate) fn act_fwd<S: Token>(s: S, act: Activation, x: S::f32s) -> S::f32s {
    match act {
        Activation::Identity | Activation::Softmax | Activation::LogSoftmax => x,
        Activation::Relu => s.max_f32s(x, s.splat_f32s(0.0)),
        Activation::LeakyRelu(a) => {
            let pos = s.greater_than_f32s(x, s.splat_f32s(0.0));
            s.select_f32s(pos, x, s.mul_f32s(x, s.splat_f32s(a)))
        }
        Activation::Elu(a) => {
            let pos = s.greater_than_f32s(x, s.splat_f32s(0.0));
            let neg = s.mul_f32s(
                s.splat_f32s(a),
                s.sub_f32s(exp_f32s(s, s.min_f32s(x, s.splat_f32s(0.0))), s.splat_f32s(1.0)),
            );
            s.select_f32s(pos, x, neg)
        }
        Activation::Sigmoid => sigmoid_f32s(s, x),
        Activation::Tanh => tanh_f32s(s, x),
        Activation::Softplus => softplus_f32s(s, x),
        Activation::Gelu => gelu_tanh_f32s(s, x),
    }
}

/// `dy ⊙ f′` for one vector of an elementwise activation.
#[inline(always)]
pub(crate) fn act_bwd<S: Token>(s: S, act: Activation, x: S::f32s, y: S::f32s, dy: S::f32s) -> S::f32s {
    let zero = s.splat_f32s(0.0);
    let one = s.splat_f32s(1.0);
    match act {
        Activation::Identity | Activation::Softmax | Activation::LogSoftmax => dy,
        Activation::Relu => s.select_f32s(s.greater_than_f32s(x, zero), dy, zero),
        Activation::LeakyRelu(a) => s.select_f32s(s.greater_than_f32s(x, zero), dy, s.mul_f32s(dy, s.splat_f32s(a))),
        Activation::Elu(a) => {
            s.select_f32s(s.greater_than_f32s(x, zero), dy, s.mul_f32s(dy, s.add_f32s(y, s.splat_f32s(a))))
        }
        Activation::Sigmoid => s.mul_f32s(dy, s.mul_f32s(y, s.sub_f32s(one, y))),
        Activation::Tanh => s.mul_f32s(dy, s.negate_mul_add_e_f32s(y, y, one)),
        Activation::Softplus => s.mul_f32s(dy, sigmoid_f32s(s, x)),
        Activation::Gelu => {
            // d/dx 0.5·x·(1 + t), t = tanh(u), u = c0·(x + c1·x³):
            // 0.5·(1 + t) + 0.5·x·(1 − t²)·c0·(1 + 3·c1·x²)
            let x2 = s.mul_f32s(x, x);
            let u =
                s.mul_f32s(s.splat_f32s(SQRT_2_OVER_PI), s.mul_add_e_f32s(s.mul_f32s(s.splat_f32s(GELU_C), x2), x, x));
            let t = tanh_f32s(s, u);
            let half = s.splat_f32s(0.5);
            let du = s.mul_f32s(s.splat_f32s(SQRT_2_OVER_PI), s.mul_add_e_f32s(s.splat_f32s(3.0 * GELU_C), x2, one));
            let sech2 = s.negate_mul_add_e_f32s(t, t, one);
            let d = s.mul_add_e_f32s(s.mul_f32s(half, x), s.mul_f32s(sech2, du), s.mul_f32s(half, s.add_f32s(one, t)));
            s.mul_f32s(dy, d)
        }
    }
}

/// Evaluates `$body` with `$a` bound to `act`, in a separate match arm for each
/// variant, so that the per-vector `match` in [`act_fwd`]/[`act_bwd`] folds away
/// in each arm's loop. The closures passed to [`map3`] are `#[inline(always)]`:
/// the one holding the whole match was not inlined, and ReLU cost an out-of-line
/// `_mm256_max_ps` call per vector.
macro_rules! per_activation {
    ($act:expr, |$a:ident| $body:expr) => {
        per_activation!(@arms $act, $a, $body; Identity Relu Sigmoid Tanh Softmax Softplus Gelu LogSoftmax)
    };
    (@arms $act:expr, $a:ident, $body:expr; $($unit:ident)*) => {
        match $act {
            $(Activation::$unit => {
                let $a = Activation::$unit;
                $body
            })*
            Activation::LeakyRelu(k) => {
                let $a = Activation::LeakyRelu(k);
                $body
            }
            Activation::Elu(k) => {
                let $a = Activation::Elu(k);
                $body
            }
        }
    };
}
pub(crate) use per_activation;

/// Applies `f` to `n` elements: full vectors, then a partial tail.
///
/// # Safety
/// Each pointer valid for `n` elements; `out` may equal an input pointer.
#[inline(always)]
pub(crate) unsafe fn map3<S: Token>(
    s: S,
    n: usize,
    a: *const f32,
    b: *const f32,
    c: *const f32,
    out: *mut f32,
    f: impl Fn(S::f32s, S::f32s, S::f32s) -> S::f32s,
) {
    let l = S::F32_LANES;
    let ld = |p: *const f32, i: usize, len: usize| {
        if p.is_null() {
            s.splat_f32s(0.0)
        } else if len == l {
            // SAFETY: i..i+l is inside the caller's range.
            unsafe { core::ptr::read_unaligned(p.add(i) as *const S::f32s) }
        } else {
            // SAFETY: i..i+len is inside the caller's range.
            crate::simd::load_tail(s, unsafe { core::slice::from_raw_parts(p.add(i), len) })
        }
    };
    let mut i = 0;
    while i + l <= n {
        let v = f(ld(a, i, l), ld(b, i, l), ld(c, i, l));
        // SAFETY: as above.
        unsafe { core::ptr::write_unaligned(out.add(i) as *mut S::f32s, v) };
        i += l;
    }
    if i < n {
        let len = n - i;
        let v = f(ld(a, i, len), ld(b, i, len), ld(c, i, len));
        // SAFETY: as above.
        crate::simd::store_tail(s, unsafe { core::slice::from_raw_parts_mut(out.add(i), len) }, v);
    }
}

/// Row-wise softmax (or log-softmax) of one row of `n` elements, `x` → `y`;
/// the softmax is multiplied by `scale` (1 for a plain softmax). Returns the
/// row's log-sum-exp.
///
/// # Safety
/// Both pointers valid for `n` elements (they may be equal).
#[inline(always)]
pub(crate) unsafe fn softmax_row<S: Token>(s: S, n: usize, x: *const f32, y: *mut f32, log: bool, scale: f32) -> f32 {
    let l = S::F32_LANES;
    // SAFETY: x is valid for n elements.
    let xs = unsafe { core::slice::from_raw_parts(x, n) };
    let mut mx = s.splat_f32s(f32::NEG_INFINITY);
    let (head, tail) = S::as_simd_f32s(xs);
    for &v in head {
        mx = s.max_f32s(mx, v);
    }
    let mut m = s.reduce_max_f32s(mx);
    for &v in tail {
        m = m.max(v);
    }
    if m == f32::NEG_INFINITY || m.is_nan() {
        // All −∞ (or NaN): propagate through exp without producing 0/0 warnings.
        m = 0.0;
    }
    let mv = s.splat_f32s(m);
    // e = exp(x − m) into y, summed in a fixed order.
    let mut sum = s.splat_f32s(0.0);
    let mut i = 0;
    while i + l <= n {
        // SAFETY: i..i+l in range.
        let v = unsafe { core::ptr::read_unaligned(x.add(i) as *const S::f32s) };
        let e = exp_f32s(s, s.sub_f32s(v, mv));
        sum = s.add_f32s(sum, e);
        if !log {
            // SAFETY: as above.
            unsafe { core::ptr::write_unaligned(y.add(i) as *mut S::f32s, e) };
        }
        i += l;
    }
    let mut total = s.reduce_sum_f32s(sum);
    if i < n {
        // SAFETY: i..n in range.
        let v = crate::simd::load_tail(s, unsafe { core::slice::from_raw_parts(x.add(i), n - i) });
        let e = exp_f32s(s, s.sub_f32s(v, mv));
        // Lanes past the row were loaded as 0: mask their contribution out.
        let mut buf = [0.0f32; 64];
        // SAFETY: buf holds at least `l` ≤ 64 elements.
        unsafe { core::ptr::write_unaligned(buf.as_mut_ptr() as *mut S::f32s, e) };
        for &b in &buf[..n - i] {
            total += b;
        }
        if !log {
            // SAFETY: i..n in range.
            crate::simd::store_tail(s, unsafe { core::slice::from_raw_parts_mut(y.add(i), n - i) }, e);
        }
    }
    let lse = m + total.ln();
    if log {
        let l = s.splat_f32s(lse);
        // SAFETY: both valid for n elements.
        unsafe {
            map3(
                s,
                n,
                x,
                core::ptr::null(),
                core::ptr::null(),
                y,
                #[inline(always)]
                |v, _, _| s.sub_f32s(v, l),
            )
        };
    } else {
        let inv = s.splat_f32s(scale / total);
        // SAFETY: y valid for n elements.
        unsafe {
            map3(
                s,
                n,
                y,
                core::ptr::null(),
                core::ptr::null(),
                y,
                #[inline(always)]
                |v, _, _| s.mul_f32s(v, inv),
            )
        };
    }
    lse
}

/// Backward of a row-wise activation for one row: softmax
/// `dx = y ⊙ (dy − Σ dy·y)`, log-softmax `dx = dy − softmax ⊙ Σ dy`.
///
/// # Safety
/// All pointers valid for `n` elements.
#[inline(always)]
pub(crate) unsafe fn softmax_row_bwd<S: Token>(s: S, n: usize, y: *const f32, dy: *const f32, dx: *mut f32, log: bool) {
    // Σ dy (log-softmax) or Σ dy·y (softmax) with vector accumulators, in a
    // fixed order (two accumulators, then the partial vector).
    let l = S::F32_LANES;
    let zero = s.splat_f32s(0.0);
    let mut acc = [zero; 2];
    let mut i = 0;
    // SAFETY: called with i + l ≤ n only: i..i+l is inside both rows.
    let ld = |p: *const f32, i: usize| unsafe { core::ptr::read_unaligned(p.add(i) as *const S::f32s) };
    while i + l <= n {
        let g = ld(dy, i);
        let k = (i / l) & 1;
        acc[k] = if log { s.add_f32s(acc[k], g) } else { s.mul_add_e_f32s(ld(y, i), g, acc[k]) };
        i += l;
    }
    if i < n {
        // Lanes past the row load as 0 and add nothing.
        // SAFETY: i..n is inside both rows.
        let (yt, gt) =
            unsafe { (core::slice::from_raw_parts(y.add(i), n - i), core::slice::from_raw_parts(dy.add(i), n - i)) };
        let g = crate::simd::load_tail(s, gt);
        acc[0] = if log { s.add_f32s(acc[0], g) } else { s.mul_add_e_f32s(crate::simd::load_tail(s, yt), g, acc[0]) };
    }
    let dot = s.reduce_sum_f32s(s.add_f32s(acc[0], acc[1]));
    let d = s.splat_f32s(dot);
    // SAFETY: all valid for n elements.
    unsafe {
        if log {
            map3(
                s,
                n,
                y,
                dy,
                core::ptr::null(),
                dx,
                #[inline(always)]
                |yv, g, _| s.negate_mul_add_e_f32s(exp_f32s(s, yv), d, g),
            )
        } else {
            map3(
                s,
                n,
                y,
                dy,
                core::ptr::null(),
                dx,
                #[inline(always)]
                |yv, g, _| s.mul_f32s(yv, s.sub_f32s(g, d)),
            )
        }
    };
}

struct Fwd<'a> {
    act: Activation,
    rows: usize,
    cols: usize,
    x: &'a [f32],
    y: &'a mut [f32],
}

impl WithToken for Fwd<'_> {
    type Output = ();
    #[inline(always)]
    fn with_token<S: Token>(self, s: S) {
        let Fwd { act, rows, cols, x, y } = self;
        if act.is_rowwise() {
            // Rows of no columns: nothing to do (and `rows` may be anything).
            if cols == 0 {
                return;
            }
            for r in 0..rows {
                let (xp, yp) = (x[r * cols..].as_ptr(), y[r * cols..].as_mut_ptr());
                // SAFETY: row r has `cols` elements in both (lengths checked by the caller).
                unsafe { softmax_row(s, cols, xp, yp, act == Activation::LogSoftmax, 1.0) };
            }
        } else {
            let n = rows * cols;
            // SAFETY: both slices hold n elements (checked by the caller).
            unsafe {
                per_activation!(act, |a| map3(
                    s,
                    n,
                    x.as_ptr(),
                    core::ptr::null(),
                    core::ptr::null(),
                    y.as_mut_ptr(),
                    #[inline(always)]
                    |v, _, _| act_fwd(s, a, v)
                ))
            };
        }
    }
}

/// `y = f(x)` for a row-major `rows × cols` matrix (row-wise for softmax).
pub fn activation_forward(act: Activation, rows: usize, cols: usize, x: &[f32], y: &mut [f32]) -> Result<()> {
    activation_forward_with(act, rows, cols, x, y, &Options::default())
}

/// [`activation_forward`] with per-call options (`opts.isa`; one thread).
pub fn activation_forward_with(
    act: Activation,
    rows: usize,
    cols: usize,
    x: &[f32],
    y: &mut [f32],
    opts: &Options,
) -> Result<()> {
    let isa = opts.resolve_isa()?;
    act.check()?;
    let n = elems(rows, cols)?;
    check_len("x", x.len(), n)?;
    check_len("y", y.len(), n)?;
    isa.run(Fwd { act, rows, cols, x, y });
    Ok(())
}

struct Bwd<'a> {
    act: Activation,
    rows: usize,
    cols: usize,
    x: Option<&'a [f32]>,
    y: Option<&'a [f32]>,
    dy: &'a [f32],
    dx: &'a mut [f32],
}

impl WithToken for Bwd<'_> {
    type Output = ();
    #[inline(always)]
    fn with_token<S: Token>(self, s: S) {
        let Bwd { act, rows, cols, x, y, dy, dx } = self;
        let xp = x.map_or(core::ptr::null(), |v| v.as_ptr());
        let yp = y.map_or(core::ptr::null(), |v| v.as_ptr());
        if act.is_rowwise() {
            // Rows of no columns: nothing to do (and `rows` may be anything).
            if cols == 0 {
                return;
            }
            for r in 0..rows {
                let o = r * cols;
                // SAFETY: row r has `cols` elements in every buffer (checked by the caller).
                unsafe {
                    softmax_row_bwd(
                        s,
                        cols,
                        yp.add(o),
                        dy.as_ptr().add(o),
                        dx.as_mut_ptr().add(o),
                        act == Activation::LogSoftmax,
                    )
                };
            }
        } else {
            // SAFETY: every non-NULL buffer holds rows·cols elements.
            unsafe {
                per_activation!(act, |a| map3(
                    s,
                    rows * cols,
                    xp,
                    yp,
                    dy.as_ptr(),
                    dx.as_mut_ptr(),
                    #[inline(always)]
                    |xv, yv, g| { act_bwd(s, a, xv, yv, g) }
                ))
            };
        }
    }
}

/// `dx = dy ⊙ f′` for a row-major `rows × cols` matrix. `x` (the forward input)
/// and `y` (the forward output) are needed as [`Activation::backward_needs`]
/// says; pass `None` for the others.
pub fn activation_backward(
    act: Activation,
    rows: usize,
    cols: usize,
    x: Option<&[f32]>,
    y: Option<&[f32]>,
    dy: &[f32],
    dx: &mut [f32],
) -> Result<()> {
    activation_backward_with(act, rows, cols, x, y, dy, dx, &Options::default())
}

/// [`activation_backward`] with per-call options (`opts.isa`; one thread).
#[allow(clippy::too_many_arguments)]
pub fn activation_backward_with(
    act: Activation,
    rows: usize,
    cols: usize,
    x: Option<&[f32]>,
    y: Option<&[f32]>,
    dy: &[f32],
    dx: &mut [f32],
    opts: &Options,
) -> Result<()> {
    let isa = opts.resolve_isa()?;
    act.check()?;
    let n = elems(rows, cols)?;
    let needs = act.backward_needs();
    if needs.x && x.is_none() {
        return Err(Error::NullPointer(format!("{} backward needs the input x", act.name())));
    }
    if needs.y && y.is_none() {
        return Err(Error::NullPointer(format!("{} backward needs the output y", act.name())));
    }
    let x = if needs.x { x } else { None };
    let y = if needs.y { y } else { None };
    if let Some(x) = x {
        check_len("x", x.len(), n)?;
    }
    if let Some(y) = y {
        check_len("y", y.len(), n)?;
    }
    check_len("dy", dy.len(), n)?;
    check_len("dx", dx.len(), n)?;
    isa.run(Bwd { act, rows, cols, x, y, dy, dx });
    Ok(())
}
