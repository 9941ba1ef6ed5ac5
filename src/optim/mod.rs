//! Optimizer updates in one pass over flat parameter buffers, L2 included.
//!
//! Every step reads the gradient, adds the L2 term `l2·w` (coupled L2, as
//! scikit-learn's `alpha` once scaled by the caller), updates the optimizer
//! state and the weights, all in one vectorised pass. Elementwise, so results
//! do not depend on threads; [`clip_grad_norm`] reduces in a fixed order.
//!
//! * SGD: `g' = g + l2·w`; without momentum `w −= lr·g'`; with momentum μ
//!   (scikit-learn/PyTorch form) `v = μ·v − lr·g'`, `w += v`, Nesterov
//!   `w += μ·v − lr·g'`.
//! * Adam: `m = β1·m + (1−β1)·g'`, `v = β2·v + (1−β2)·g'²`,
//!   `w −= lr·m̂/(√v̂ + ε)` with bias correction `m̂ = m/(1−β1ᵗ)`, `v̂ = v/(1−β2ᵗ)`.
//! * AdamW: Adam on `g` with decoupled decay `w −= lr·wd·w`.
//! * RMSprop: `s = ρ·s + (1−ρ)·g'²`, `w −= lr·g'/(√s + ε)`.
//!
//! On AVX-512 CPUs other than AMD's, Adam's and RMSprop's quotient
//! `x/(√v + ε)` comes from the hardware's 14-bit estimates of `1/√v` and
//! `1/d`, each refined by a Newton step, within 8 ulp of the IEEE square root
//! and division (4 at most in the test's 16 Ki random lanes), because there
//! IEEE `vsqrtps` and `vdivps` share one slow divider (measurement in
//! BENCHMARKS.md, "Design measurements"); AMD's Zen 4 divides faster than
//! the estimates' extra operations run. Other instruction sets and CPUs use
//! IEEE operations. See `simd::div_sqrt_plus` and `simd::div_sqrt_estimates_pay`.

use crate::Options;
use crate::error::{Error, Result, check_len, invalid, shape};
use crate::gemm::RowSink;
use crate::par::Par;
use crate::ptr::{ConstPtr, MutPtr};
use crate::simd::Isa;
use crate::simd::{Token, WithToken};

/// Each `(name, len)` of `others` has the parameters' length `n`.
fn same_len(n: usize, others: &[(&str, usize)]) -> Result<()> {
    others.iter().try_for_each(|&(name, len)| check_len(name, len, n))
}

fn finite(vals: &[(&str, f32)]) -> Result<()> {
    for &(name, v) in vals {
        if !v.is_finite() {
            return Err(Error::NonFinite(format!("hyper-parameter {name} = {v}")));
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Rule {
    Sgd { lr: f32, l2: f32 },
    Momentum { lr: f32, mu: f32, nesterov: bool, l2: f32 },
    Adam { lr_t: f32, b1: f32, b2: f32, eps_t: f32, l2: f32, decay: f32, fast: bool },
    RmsProp { lr: f32, rho: f32, eps: f32, l2: f32, fast: bool },
}

struct Step<'a> {
    rule: Rule,
    w: &'a mut [f32],
    g: &'a [f32],
    s1: &'a mut [f32],
    s2: &'a mut [f32],
}

impl WithToken for Step<'_> {
    type Output = ();
    #[inline(always)]
    fn with_token<S: Token>(self, s: S) {
        let Step { rule, w, g, s1, s2 } = self;
        // One monomorphised loop per rule: the rule's match stays out of the
        // per-vector path.
        match rule {
            Rule::Sgd { .. } => sweep(s, w, g, s1, s2, false, false, &rule),
            Rule::Momentum { .. } | Rule::RmsProp { .. } => sweep(s, w, g, s1, s2, true, false, &rule),
            Rule::Adam { .. } => sweep(s, w, g, s1, s2, true, true, &rule),
        }
    }
}

impl Rule {
    /// The update of one vector: `(w, g, s1, s2) → (w', s1', s2')` (unused
    /// state lanes pass through). Shared by every caller, so the same inputs
    /// give the same bits wherever the update runs.
    #[inline(always)]
    pub(crate) fn update<S: Token>(
        &self,
        s: S,
        wv: S::f32s,
        gv: S::f32s,
        a: S::f32s,
        b: S::f32s,
    ) -> (S::f32s, S::f32s, S::f32s) {
        let sp = |x: f32| s.splat_f32s(x);
        match *self {
            Rule::Sgd { lr, l2 } => {
                let g2 = s.mul_add_e_f32s(sp(l2), wv, gv);
                (s.negate_mul_add_e_f32s(sp(lr), g2, wv), a, b)
            }
            Rule::Momentum { lr, mu, nesterov, l2 } => {
                let g2 = s.mul_add_e_f32s(sp(l2), wv, gv);
                let step = s.negate_mul_add_e_f32s(sp(lr), g2, sp(0.0));
                let v = s.mul_add_e_f32s(sp(mu), a, step);
                let nw = if nesterov { s.add_f32s(wv, s.mul_add_e_f32s(sp(mu), v, step)) } else { s.add_f32s(wv, v) };
                (nw, v, b)
            }
            Rule::Adam { lr_t, b1, b2, eps_t, l2, decay, fast } => {
                let g2 = s.mul_add_e_f32s(sp(l2), wv, gv);
                let m = s.mul_add_e_f32s(sp(b1), a, s.mul_f32s(sp(1.0 - b1), g2));
                let v = s.mul_add_e_f32s(sp(b2), b, s.mul_f32s(sp(1.0 - b2), s.mul_f32s(g2, g2)));
                // w − lr_t·m/(√v + eps_t): bias corrections folded into lr_t and eps_t.
                let upd = crate::simd::div_sqrt_plus(s, m, v, eps_t, fast);
                // Decoupled decay (AdamW); plain Adam skips it: the same
                // step (an infinite or NaN weight already makes the update
                // NaN through g2), but for the sign of a −0 weight.
                let w1 = if decay != 0.0 { s.negate_mul_add_e_f32s(sp(decay), wv, wv) } else { wv };
                (s.negate_mul_add_e_f32s(sp(lr_t), upd, w1), m, v)
            }
            Rule::RmsProp { lr, rho, eps, l2, fast } => {
                let g2 = s.mul_add_e_f32s(sp(l2), wv, gv);
                let q = s.mul_add_e_f32s(sp(rho), a, s.mul_f32s(sp(1.0 - rho), s.mul_f32s(g2, g2)));
                let upd = crate::simd::div_sqrt_plus(s, g2, q, eps, fast);
                (s.negate_mul_add_e_f32s(sp(lr), upd, wv), q, b)
            }
        }
    }
}

/// Runs `rule` over every vector of the buffers: full vectors by unaligned loads
/// and stores, then one partial vector. `s1` (`s2`) is read and written only
/// when `use1` (`use2`); the caller checked that used buffers have `w`'s length.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn sweep<S: Token>(
    s: S,
    w: &mut [f32],
    g: &[f32],
    s1: &mut [f32],
    s2: &mut [f32],
    use1: bool,
    use2: bool,
    rule: &Rule,
) {
    let n = w.len();
    assert!(g.len() == n && (!use1 || s1.len() == n) && (!use2 || s2.len() == n));
    let l = S::F32_LANES;
    let full = n - n % l;
    let zero = s.splat_f32s(0.0);
    let (pw, pg, p1, p2) = (w.as_mut_ptr(), g.as_ptr(), s1.as_mut_ptr(), s2.as_mut_ptr());
    let mut i = 0;
    while i < full {
        // SAFETY: i + l ≤ n and every used buffer has n elements (asserted above).
        unsafe {
            let ld = |p: *const f32| core::ptr::read_unaligned(p.add(i) as *const S::f32s);
            let a = if use1 { ld(p1) } else { zero };
            let b = if use2 { ld(p2) } else { zero };
            let (nw, na, nb) = rule.update(s, ld(pw), ld(pg), a, b);
            if use1 {
                core::ptr::write_unaligned(p1.add(i) as *mut S::f32s, na);
            }
            if use2 {
                core::ptr::write_unaligned(p2.add(i) as *mut S::f32s, nb);
            }
            core::ptr::write_unaligned(pw.add(i) as *mut S::f32s, nw);
        }
        i += l;
    }
    if full < n {
        let a = if use1 { crate::simd::load_tail(s, &s1[full..]) } else { zero };
        let b = if use2 { crate::simd::load_tail(s, &s2[full..]) } else { zero };
        let (nw, na, nb) =
            rule.update(s, crate::simd::load_tail(s, &w[full..]), crate::simd::load_tail(s, &g[full..]), a, b);
        if use1 {
            crate::simd::store_tail(s, &mut s1[full..], na);
        }
        if use2 {
            crate::simd::store_tail(s, &mut s2[full..], nb);
        }
        crate::simd::store_tail(s, &mut w[full..], nw);
    }
}

/// Elements per task below which a step stays on one thread (32 KiB of each
/// buffer, a few microseconds of Adam): several times what handing a task to
/// the team's spinning workers costs (`par::run_tasks`). With a pool whose
/// threads had to be woken, 32 Ki elements made a batch-32 MNIST epoch
/// 0.39-0.41 s on two threads against 0.24 on one, and the bound was 128 Ki.
/// Under Miri, 64, so that the split path runs on buffers it can afford.
const PAR_CHUNK: usize = if cfg!(miri) { 64 } else { 1 << 13 };

/// Applies `rule` over the buffers on `isa`, split into contiguous ranges over
/// up to `par` threads. The update is element-wise, so every split gives the
/// same bits.
#[allow(clippy::too_many_arguments)]
fn run(rule: Rule, w: &mut [f32], g: &[f32], s1: &mut [f32], s2: &mut [f32], isa: Isa, par: Par) {
    let n = w.len();
    debug_assert!(g.len() == n && [s1.len(), s2.len()].iter().all(|&l| l == 0 || l == n));
    let tasks = par.threads().min(n / PAR_CHUNK).max(1);
    if tasks == 1 {
        isa.run(Step { rule, w, g, s1, s2 });
        return;
    }
    let per = n.div_ceil(tasks).next_multiple_of(64);
    // Writable pointers from the exclusive borrows, a read-only one from the
    // shared gradient (never a `*mut` made from `&[f32]`). The borrows are
    // not used again until every task has finished.
    let (n1, n2) = (s1.len(), s2.len());
    let (pw, pg) = (MutPtr::from_mut_slice(w), ConstPtr::from_slice(g));
    let (p1, p2) = (MutPtr::from_mut_slice(s1), MutPtr::from_mut_slice(s2));
    crate::par::run_tasks(tasks, |t| {
        let (lo, hi) = ((t * per).min(n), ((t + 1) * per).min(n));
        let at = |len: usize| if len == 0 { (0, 0) } else { (lo, hi - lo) };
        let ((o1, l1), (o2, l2)) = (at(n1), at(n2));
        // SAFETY: task t owns [lo, hi) of every buffer (the ranges of different
        // tasks are disjoint, and inside the buffers: hi ≤ n, and a state
        // buffer is either empty, giving an empty slice, or of length n); g is
        // only read.
        let (w, g, s1, s2) = unsafe {
            (
                pw.wrapping_offset(lo as isize).slice_mut(hi - lo),
                pg.wrapping_offset(lo as isize).slice(hi - lo),
                p1.wrapping_offset(o1 as isize).slice_mut(l1),
                p2.wrapping_offset(o2 as isize).slice_mut(l2),
            )
        };
        isa.run(Step { rule, w, g, s1, s2 });
    });
}

/// One SGD step. `velocity` (same length as `w`) is required when
/// `momentum > 0` and ignored otherwise (pass `&mut []`).
pub fn sgd_step(
    w: &mut [f32],
    g: &[f32],
    velocity: &mut [f32],
    lr: f32,
    momentum: f32,
    nesterov: bool,
    l2: f32,
) -> Result<()> {
    sgd_step_with(w, g, velocity, lr, momentum, nesterov, l2, &Options::default())
}

/// [`sgd_step`] with per-call options (`opts.isa`, `opts.par`). Large buffers
/// (≥ 2·128 Ki elements) are split into contiguous ranges over the threads;
/// the update is element-wise, so the result is the same for any thread count.
#[allow(clippy::too_many_arguments)]
pub fn sgd_step_with(
    w: &mut [f32],
    g: &[f32],
    velocity: &mut [f32],
    lr: f32,
    momentum: f32,
    nesterov: bool,
    l2: f32,
    opts: &Options,
) -> Result<()> {
    StepRule::sgd(lr, momentum, nesterov, l2)?.apply_named(w, g, ("velocity", velocity), ("", &mut []), opts)
}

/// Adam hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamParams {
    /// Learning rate (scikit-learn `learning_rate_init`, default 1e-3).
    pub lr: f32,
    /// β1 (default 0.9).
    pub beta1: f32,
    /// β2 (default 0.999).
    pub beta2: f32,
    /// ε (default 1e-8).
    pub eps: f32,
}

impl Default for AdamParams {
    fn default() -> Self {
        AdamParams { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8 }
    }
}

fn adam_rule(p: &AdamParams, t: u64, l2: f32, decay: f32) -> Result<Rule> {
    finite(&[
        ("lr", p.lr),
        ("beta1", p.beta1),
        ("beta2", p.beta2),
        ("eps", p.eps),
        ("l2", l2),
        ("weight_decay", decay),
    ])?;
    if t == 0 {
        return Err(invalid("Adam step counter t starts at 1"));
    }
    if !(0.0..1.0).contains(&p.beta1) || !(0.0..1.0).contains(&p.beta2) || p.eps <= 0.0 {
        return Err(invalid(format!("Adam needs 0 ≤ beta1, beta2 < 1 and eps > 0 (got {p:?})")));
    }
    // Bias corrections in f64: lr_t = lr·√(1−β2ᵗ)/(1−β1ᵗ), eps_t = eps·√(1−β2ᵗ)
    // (the scikit-learn / Kingma-Ba "efficient" form, exact algebraically).
    let ti = t.min(i32::MAX as u64) as i32;
    let c1 = 1.0 - (p.beta1 as f64).powi(ti);
    let c2 = 1.0 - (p.beta2 as f64).powi(ti);
    let eps_t = (p.eps as f64 * c2.sqrt()) as f32;
    Ok(Rule::Adam {
        lr_t: (p.lr as f64 * c2.sqrt() / c1) as f32,
        b1: p.beta1,
        b2: p.beta2,
        eps_t,
        l2,
        decay: p.lr * decay,
        fast: crate::simd::div_sqrt_fast(eps_t),
    })
}

/// One Adam step (`t` ≥ 1 is the step number after this update; `m`, `v` the
/// moment buffers, zero before the first step).
pub fn adam_step(
    w: &mut [f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    t: u64,
    p: &AdamParams,
    l2: f32,
) -> Result<()> {
    adam_step_with(w, g, m, v, t, p, l2, &Options::default())
}

/// [`adam_step`] with per-call options (see [`sgd_step_with`]).
#[allow(clippy::too_many_arguments)]
pub fn adam_step_with(
    w: &mut [f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    t: u64,
    p: &AdamParams,
    l2: f32,
    opts: &Options,
) -> Result<()> {
    StepRule::adam(p, t, l2)?.apply_named(w, g, ("m", m), ("v", v), opts)
}

/// One AdamW step: Adam on `g` plus decoupled weight decay `w −= lr·wd·w`.
pub fn adamw_step(
    w: &mut [f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    t: u64,
    p: &AdamParams,
    weight_decay: f32,
) -> Result<()> {
    adamw_step_with(w, g, m, v, t, p, weight_decay, &Options::default())
}

/// [`adamw_step`] with per-call options (see [`sgd_step_with`]).
#[allow(clippy::too_many_arguments)]
pub fn adamw_step_with(
    w: &mut [f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    t: u64,
    p: &AdamParams,
    weight_decay: f32,
    opts: &Options,
) -> Result<()> {
    StepRule::adamw(p, t, weight_decay)?.apply_named(w, g, ("m", m), ("v", v), opts)
}

/// One RMSprop step (`sq`: running mean of squared gradients).
pub fn rmsprop_step(w: &mut [f32], g: &[f32], sq: &mut [f32], lr: f32, rho: f32, eps: f32, l2: f32) -> Result<()> {
    rmsprop_step_with(w, g, sq, lr, rho, eps, l2, &Options::default())
}

/// [`rmsprop_step`] with per-call options (see [`sgd_step_with`]).
#[allow(clippy::too_many_arguments)]
pub fn rmsprop_step_with(
    w: &mut [f32],
    g: &[f32],
    sq: &mut [f32],
    lr: f32,
    rho: f32,
    eps: f32,
    l2: f32,
    opts: &Options,
) -> Result<()> {
    StepRule::rmsprop(lr, rho, eps, l2)?.apply_named(w, g, ("sq", sq), ("", &mut []), opts)
}

/// A validated optimizer update, prepared once per step (hyper-parameters
/// checked, Adam's bias corrections computed) and applied by
/// [`StepRule::apply`] to any number of parameter ranges. It runs the same
/// per-vector code as [`sgd_step`], [`adam_step`], [`adamw_step`] and
/// [`rmsprop_step`], so it gives the same bits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepRule(pub(crate) Rule);

impl StepRule {
    /// SGD (momentum 0) or SGD with (Nesterov) momentum; see [`sgd_step`].
    pub fn sgd(lr: f32, momentum: f32, nesterov: bool, l2: f32) -> Result<StepRule> {
        finite(&[("lr", lr), ("momentum", momentum), ("l2", l2)])?;
        if !(0.0..1.0).contains(&momentum) {
            return Err(invalid(format!("momentum {momentum} must be in [0, 1)")));
        }
        Ok(StepRule(if momentum > 0.0 {
            Rule::Momentum { lr, mu: momentum, nesterov, l2 }
        } else {
            Rule::Sgd { lr, l2 }
        }))
    }

    /// Adam step number `t` (≥ 1); see [`adam_step`].
    pub fn adam(p: &AdamParams, t: u64, l2: f32) -> Result<StepRule> {
        adam_rule(p, t, l2, 0.0).map(StepRule)
    }

    /// AdamW step number `t` (≥ 1) with decoupled `weight_decay`; see [`adamw_step`].
    pub fn adamw(p: &AdamParams, t: u64, weight_decay: f32) -> Result<StepRule> {
        adam_rule(p, t, 0.0, weight_decay).map(StepRule)
    }

    /// RMSprop; see [`rmsprop_step`].
    pub fn rmsprop(lr: f32, rho: f32, eps: f32, l2: f32) -> Result<StepRule> {
        finite(&[("lr", lr), ("rho", rho), ("eps", eps), ("l2", l2)])?;
        if !(0.0..1.0).contains(&rho) || eps <= 0.0 {
            return Err(invalid(format!("RMSprop needs 0 ≤ rho < 1 and eps > 0 (got {rho}, {eps})")));
        }
        Ok(StepRule(Rule::RmsProp { lr, rho, eps, l2, fast: crate::simd::div_sqrt_fast(eps) }))
    }

    /// How many state buffers (each as long as the parameters) the rule
    /// reads and writes: 0 (SGD), 1 (momentum, RMSprop) or 2 (Adam, AdamW).
    pub fn state_buffers(&self) -> usize {
        match self.0 {
            Rule::Sgd { .. } => 0,
            Rule::Momentum { .. } | Rule::RmsProp { .. } => 1,
            Rule::Adam { .. } => 2,
        }
    }

    /// Applies the update to `w` from `g` with state `s1`, `s2` (as many as
    /// [`StepRule::state_buffers`] says, each `w.len()` long; pass `&mut []`
    /// for the unused ones), split over up to `par` threads.
    pub fn apply(&self, w: &mut [f32], g: &[f32], s1: &mut [f32], s2: &mut [f32], par: Par) -> Result<()> {
        self.apply_named(w, g, ("s1", s1), ("s2", s2), &Options { isa: None, par })
    }

    /// [`StepRule::apply`] on the instruction set and threads of `opts`.
    #[cfg(test)]
    pub(crate) fn apply_opts(
        &self,
        w: &mut [f32],
        g: &[f32],
        s1: &mut [f32],
        s2: &mut [f32],
        opts: &Options,
    ) -> Result<()> {
        self.apply_named(w, g, ("s1", s1), ("s2", s2), opts)
    }

    /// [`StepRule::apply`]'s update of one range on the caller's thread and
    /// token, for a kernel that fuses the step into its own loop: the same
    /// per-vector code, so the same bits. The state buffers are as long as
    /// `w` where [`StepRule::state_buffers`] uses them (empty otherwise);
    /// `g` is as long as `w` (both asserted).
    #[inline(always)]
    pub(crate) fn apply_with<S: Token>(&self, s: S, w: &mut [f32], g: &[f32], s1: &mut [f32], s2: &mut [f32]) {
        Step { rule: self.0, w, g, s1, s2 }.with_token(s)
    }

    /// A sink for a weight gradient computed a row at a time
    /// (`gemm::spmm_t_into`): each row, as it is handed over, is applied
    /// to that row of `w` (row-major, `ld` columns) and of the state buffers
    /// (as many as [`StepRule::state_buffers`] uses, `w`'s length each;
    /// unused ones are ignored) by [`StepRule::apply`]'s per-vector code:
    /// the same bits as the whole gradient applied after. Checks the lengths.
    pub(crate) fn rows<'a>(
        &self,
        w: &'a mut [f32],
        s1: &'a mut [f32],
        s2: &'a mut [f32],
        ld: usize,
    ) -> Result<StepRows<'a>> {
        if ld == 0 || w.len() % ld != 0 {
            return Err(shape(format!("weights of {} values in rows of {ld}", w.len())));
        }
        let used = self.state_buffers();
        if used >= 1 {
            check_len("s1", s1.len(), w.len())?;
        }
        if used >= 2 {
            check_len("s2", s2.len(), w.len())?;
        }
        let (l1, l2) = (if used >= 1 { w.len() } else { 0 }, if used >= 2 { w.len() } else { 0 });
        let rows = w.len() / ld;
        // Writable pointers from the exclusive borrows, which the sink holds
        // for its lifetime.
        Ok(StepRows {
            rule: *self,
            w: MutPtr::from_mut_slice(w),
            s1: MutPtr::from_mut_slice(&mut s1[..l1]),
            s2: MutPtr::from_mut_slice(&mut s2[..l2]),
            state: (l1 > 0, l2 > 0),
            dims: (rows, ld),
            _borrow: core::marker::PhantomData,
        })
    }

    /// [`StepRule::apply`] with the state buffers' names for the error messages.
    fn apply_named(
        &self,
        w: &mut [f32],
        g: &[f32],
        (n1, s1): (&str, &mut [f32]),
        (n2, s2): (&str, &mut [f32]),
        opts: &Options,
    ) -> Result<()> {
        let isa = opts.resolve_isa()?;
        same_len(w.len(), &[("g", g.len())])?;
        let k = self.state_buffers();
        if k >= 1 {
            same_len(w.len(), &[(n1, s1.len())])?;
        }
        if k >= 2 {
            same_len(w.len(), &[(n2, s2.len())])?;
        }
        let (s1, s2): (&mut [f32], &mut [f32]) = match k {
            0 => (&mut [], &mut []),
            1 => (s1, &mut []),
            _ => (s1, s2),
        };
        run(self.0, w, g, s1, s2, isa, opts.par);
        Ok(())
    }
}

/// The optimizer step on each finished row of a weight gradient
/// ([`StepRule::rows`]): the trainer's first layer with sparse input.
pub(crate) struct StepRows<'a> {
    rule: StepRule,
    /// `dims.0 × dims.1`, row-major; from `w`'s exclusive borrow.
    w: MutPtr<f32>,
    /// The state buffers, `w`'s shape, where `state` says they are used.
    s1: MutPtr<f32>,
    s2: MutPtr<f32>,
    state: (bool, bool),
    dims: (usize, usize),
    _borrow: core::marker::PhantomData<&'a mut [f32]>,
}

impl RowSink for StepRows<'_> {
    fn dims(&self) -> (usize, usize) {
        self.dims
    }

    #[inline(always)]
    unsafe fn take_row<S: Token>(&self, s: S, i: usize, j0: usize, g: *const f32, n: usize) {
        let off = (i * self.dims.1 + j0) as isize;
        let at = |p: MutPtr<f32>, used: bool| if used { p.wrapping_offset(off) } else { p };
        let (k1, k2) = (if self.state.0 { n } else { 0 }, if self.state.1 { n } else { 0 });
        // SAFETY: row i, columns j0 .. j0 + n are inside the weights (the
        // caller's product has the sink's dims, RowSink's contract), and
        // inside the used state buffers, of the same shape (unused ones give
        // empty slices); this task alone takes row i, so these slices alias
        // nothing else while they live; `g` holds n values.
        let (w, g, s1, s2) = unsafe {
            (
                self.w.wrapping_offset(off).slice_mut(n),
                core::slice::from_raw_parts(g, n),
                at(self.s1, self.state.0).slice_mut(k1),
                at(self.s2, self.state.1).slice_mut(k2),
            )
        };
        self.rule.apply_with(s, w, g, s1, s2);
    }
}

/// Global gradient-norm clipping: if `‖g‖₂ > max_norm`, scales `g` by
/// `max_norm/‖g‖₂`. Returns the norm before clipping (deterministic reduction).
pub fn clip_grad_norm(g: &mut [f32], max_norm: f32) -> Result<f32> {
    if !(max_norm > 0.0) || !max_norm.is_finite() {
        return Err(invalid(format!("max_norm {max_norm} must be positive and finite")));
    }
    let norm = grad_sum_sq(g).sqrt();
    clip_to(g, norm, max_norm)?;
    Ok(norm as f32)
}

/// `Σ g²` of (a part of) a gradient: vector sums of squares over fixed
/// chunks, combined in f64 in index order (`simd::reduce`), deterministic
/// for any thread count. Squares above f32's range (elements beyond
/// ~1.8e19) overflow those f32 accumulators; then the sum is redone in f64,
/// element by element.
pub(crate) fn grad_sum_sq(g: &[f32]) -> f64 {
    let sq = crate::simd::reduce::sum_sq(g);
    if sq.is_infinite() && crate::simd::reduce::all_finite(g) {
        return g.iter().map(|&x| (x as f64) * (x as f64)).sum::<f64>();
    }
    sq
}

/// `Σ w²` of a layer's weights for the L2 penalty, on up to `par` threads:
/// [`crate::simd::reduce::sum_sq`]'s chunks, their sums added in f64 in
/// index order, so the same bits for any thread count. The threads take
/// contiguous runs of chunks of each 256 Ki weights (one run for a layer
/// up to that size, such as MNIST's 100 352), as the optimizer's step takes
/// contiguous ranges, so that each reads (about) the weights it updates:
/// read on one core, the other core's weights would have to be taken back
/// before the step could write them.
pub(crate) fn sum_sq_with(x: &[f32], par: Par) -> f64 {
    use crate::simd::reduce::{CHUNK, ChunkSumsSq};
    /// Chunks per round (a buffer on the stack).
    const ROUND: usize = 64;
    let tasks = par.threads().min(x.len() / (2 * CHUNK)).max(1);
    if tasks == 1 {
        return crate::simd::reduce::sum_sq(x);
    }
    let isa = Isa::current();
    let mut total = 0.0f64;
    for part in x.chunks(ROUND * CHUNK) {
        let mut sums = [0.0f64; ROUND];
        let nc = part.len().div_ceil(CHUNK);
        let out = MutPtr::from_mut_slice(&mut sums[..nc]);
        crate::par::run_tasks(tasks, |t| {
            let (c0, c1) = (nc * t / tasks, nc * (t + 1) / tasks);
            let x = &part[(c0 * CHUNK).min(part.len())..(c1 * CHUNK).min(part.len())];
            // SAFETY: task t writes only the sums c0..c1 (disjoint between
            // tasks, inside the nc of `sums`); `sums` is not used until every
            // task has finished.
            let out = unsafe { out.wrapping_offset(c0 as isize).slice_mut(c1 - c0) };
            isa.run(ChunkSumsSq { x, out });
        });
        for &c in &sums[..nc] {
            total += c;
        }
    }
    total
}

/// Scales `g`, a part of a gradient whose whole norm is `norm`, by
/// `max_norm/norm` when `norm > max_norm` ([`clip_grad_norm`]'s step, also
/// for a gradient split over processes). A non-finite norm is
/// [`Error::NonFinite`].
pub(crate) fn clip_to(g: &mut [f32], norm: f64, max_norm: f32) -> Result<()> {
    if !norm.is_finite() {
        return Err(Error::NonFinite("gradient norm is not finite".into()));
    }
    if norm > max_norm as f64 {
        let scale = (max_norm as f64 / norm) as f32;
        for x in g.iter_mut() {
            *x *= scale;
        }
    }
    Ok(())
}

/// Adds the L1 subgradient `c·sign(w)` to `g` where `w ≠ 0`.
pub(crate) fn add_l1(g: &mut [f32], w: &[f32], c: f32) {
    for (g, &v) in g.iter_mut().zip(w) {
        if v != 0.0 {
            *g += c * v.signum();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The penalty's sum of squares on several threads has the bits of the
    /// one-thread [`crate::simd::reduce::sum_sq`]: lengths of part of a
    /// chunk, whole chunks, a partial last chunk and more than one round of
    /// chunks (smaller under Miri).
    #[test]
    fn sum_sq_with_threads_has_the_bits_of_sum_sq() {
        let mut rnd = crate::simd::xorshift(0x9e37_79b9_7f4a_7c15);
        let lens: &[usize] = if cfg!(miri) { &[0, 5, 20_000] } else { &[0, 5, 8192, 100_352, 300_001] };
        for &n in lens {
            let x: Vec<f32> = (0..n).map(|_| (rnd() >> 40) as f32 / (1u64 << 24) as f32 - 0.5).collect();
            let want = crate::simd::reduce::sum_sq(&x);
            for t in [1, 2, 3, 4] {
                assert_eq!(sum_sq_with(&x, Par::Threads(t)).to_bits(), want.to_bits(), "n {n}, {t} threads");
            }
        }
    }
}
