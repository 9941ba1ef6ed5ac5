//! Accuracy sweeps and special values for `nnkern::simd::math` on every ISA of
//! this CPU (unavailable ones are skipped with a printed line).
//!
//! The sweep visits every 401st f32 bit pattern (≈10.7 M inputs: both signs,
//! zeros, subnormals, both overflow edges, infinities and NaNs) plus a dense
//! pass over the subnormal-result range of `exp`. The reference is the `f64`
//! `std` function (or a stable `f64` formula), and the error is measured in
//! ULPs of the f32 binade of the exact value (never finer than 2⁻¹⁴⁹), so the
//! unavoidable final rounding counts as up to 0.5 ULP. Run with
//! `--nocapture` to see the max error per function and ISA.

mod common;

use common::isas;
use nnkern::simd::Isa;
use nnkern::simd::math::*;
use nnkern::{Error, Options};

type Kernel = fn(&[f32], &mut [f32], &Options) -> nnkern::Result<()>;
type InPlace = fn(&mut [f32], &Options) -> nnkern::Result<()>;
type Plain = fn(&[f32], &mut [f32]) -> nnkern::Result<()>;

/// The options that force `isa`.
fn on(isa: Isa) -> Options {
    Options { isa: Some(isa), ..Default::default() }
}

/// ULP of the f32 binade holding `r` (subnormal spacing at the bottom).
fn ulp_at(r: f64) -> f64 {
    let e = ((r.abs().to_bits() >> 52) & 0x7ff) as i32 - 1023;
    let e = e.clamp(-126, 127);
    2f64.powi(e - 23)
}

/// Error of `y` against the exact value `r`, in ULPs of `r`.
///
/// NaN must match NaN; ±Inf must match exactly, except that an infinite result
/// (or reference) near the overflow edge is measured as 2¹²⁸.
fn ulp_err(y: f32, r: f64) -> f64 {
    if r.is_nan() || y.is_nan() {
        return if r.is_nan() && y.is_nan() { 0.0 } else { f64::INFINITY };
    }
    if r.is_infinite() || y.is_infinite() {
        if r as f32 == y {
            return 0.0;
        }
        let edge = 2f64.powi(128);
        let yv = if y.is_infinite() { edge.copysign(y as f64) } else { y as f64 };
        let rv = if r.is_infinite() { edge.copysign(r) } else { r };
        return (yv - rv).abs() / ulp_at(rv.min(f32::MAX as f64).max(f32::MIN as f64));
    }
    (y as f64 - r).abs() / ulp_at(r)
}

fn ref_exp(x: f64) -> f64 {
    x.exp()
}
fn ref_log(x: f64) -> f64 {
    x.ln()
}
fn ref_tanh(x: f64) -> f64 {
    x.tanh()
}
fn ref_sigmoid(x: f64) -> f64 {
    if x >= 0.0 { 1.0 / (1.0 + (-x).exp()) } else { x.exp() / (1.0 + x.exp()) }
}
fn ref_softplus(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}
/// `2·√(2/π)·(x + 0.044715·x³)`.
fn gelu_u(x: f64) -> f64 {
    2.0 * (2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x)
}
fn ref_gelu(x: f64) -> f64 {
    if x == f64::NEG_INFINITY {
        return 0.0;
    }
    // x·sigmoid(u): the tanh form without cancellation.
    x * ref_sigmoid(gelu_u(x))
}

/// Inputs for the sweep: every 401st bit pattern, plus every 7th pattern whose
/// value lies in `[-104, -87]` (the subnormal range of exp/sigmoid/softplus).
fn sweep_inputs() -> Vec<f32> {
    let mut v: Vec<f32> = (0..=u32::MAX).step_by(401).map(f32::from_bits).collect();
    let (lo, hi) = ((-87.0f32).to_bits(), (-104.0f32).to_bits());
    v.extend((lo..=hi).step_by(7).map(f32::from_bits));
    v.extend([0.0, -0.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, f32::MIN_POSITIVE, f32::MAX, f32::MIN]);
    v
}

/// Max ULP error of `k` on every ISA; `bound(x)` is the allowed error at `x`.
/// Returns nothing; asserts and prints.
fn sweep(name: &str, k: Kernel, reference: fn(f64) -> f64, bound: fn(f32) -> f64) {
    let xs = sweep_inputs();
    let refs: Vec<f64> = xs.iter().map(|&x| reference(x as f64)).collect();
    let mut y = vec![0f32; xs.len()];
    for isa in isas() {
        k(&xs, &mut y, &on(isa)).unwrap();
        let (mut worst, mut worst_x, mut worst_y, mut worst_ratio) = (0f64, 0f32, 0f32, 0f64);
        let mut failures = 0usize;
        let mut max_abs = 0f64;
        for ((&x, &r), &yi) in xs.iter().zip(&refs).zip(&y) {
            let e = ulp_err(yi, r);
            if yi.is_finite() && r.is_finite() {
                max_abs = max_abs.max((yi as f64 - r).abs());
            }
            let b = if x.is_nan() { 0.0 } else { bound(x) };
            if e > worst {
                (worst, worst_x, worst_y) = (e, x, yi);
            }
            if b > 0.0 {
                worst_ratio = worst_ratio.max(e / b);
            }
            if e.is_nan() || e > b {
                if failures < 10 {
                    eprintln!(
                        "{name} [{}]: x = {x:e} ({:#010x}): got {yi:e}, want {r:e}: {e:.3} ULP > {b}",
                        isa.name(),
                        x.to_bits()
                    );
                }
                failures += 1;
            }
        }
        println!(
            "{name:>9} [{:>6}]: max error {worst:.3} ULP at x = {worst_x:e} (got {worst_y:e}); \
             worst error/bound {worst_ratio:.3}; max abs error {max_abs:.3e}; {} inputs",
            isa.name(),
            xs.len()
        );
        assert_eq!(failures, 0, "{name} [{}]: {failures} inputs over the bound", isa.name());
    }
}

#[test]
fn sweep_exp() {
    sweep("exp", vexp_f32_with, ref_exp, |_| 2.0);
}

#[test]
fn sweep_log() {
    sweep("log", vlog_f32_with, ref_log, |_| 2.0);
}

#[test]
fn sweep_tanh() {
    sweep("tanh", vtanh_f32_with, ref_tanh, |_| 4.0);
}

#[test]
fn sweep_sigmoid() {
    sweep("sigmoid", vsigmoid_f32_with, ref_sigmoid, |_| 4.0);
}

#[test]
fn sweep_softplus() {
    sweep("softplus", vsoftplus_f32_with, ref_softplus, |_| 4.0);
}

#[test]
fn sweep_gelu() {
    // 4 ULP where well conditioned; below −1 the result is x·e^u with u rounded
    // in f32, so the error grows with |u| (the condition number).
    sweep("gelu", vgelu_f32_with, ref_gelu, |x| if x >= -1.0 { 4.0 } else { 4.0 + 3.0 * gelu_u(x as f64).abs() });
}

/// Runs `k` on single values on every ISA.
fn eval(k: Kernel, isa: Isa, x: f32) -> f32 {
    let mut y = [0f32; 1];
    k(&[x], &mut y, &on(isa)).unwrap();
    y[0]
}

#[test]
fn special_values() {
    let inf = f32::INFINITY;
    for isa in isas() {
        let n = isa.name();
        let e = |x| eval(vexp_f32_with, isa, x);
        assert!(e(f32::NAN).is_nan(), "{n}");
        assert_eq!(e(inf), inf, "{n}");
        assert_eq!(e(-inf).to_bits(), 0, "{n}");
        assert_eq!(e(89.0), inf, "{n}");
        assert_eq!(e(88.8), inf, "{n}");
        assert!(e(88.72).is_finite(), "{n}");
        assert_eq!(e(-104.0), 0.0, "{n}");
        assert_eq!(e(-1000.0), 0.0, "{n}");
        assert_eq!(e(-103.9), f32::from_bits(1), "{n}: exp(-103.9) is the smallest subnormal");
        assert!(e(-90.0) > 0.0 && e(-90.0) < f32::MIN_POSITIVE, "{n}");
        assert_eq!(e(0.0), 1.0, "{n}");
        assert_eq!(e(-0.0), 1.0, "{n}");

        let l = |x| eval(vlog_f32_with, isa, x);
        assert_eq!(l(0.0), -inf, "{n}");
        assert_eq!(l(-0.0), -inf, "{n}");
        assert!(l(-1.0).is_nan(), "{n}");
        assert!(l(-f32::from_bits(1)).is_nan(), "{n}");
        assert!(l(-inf).is_nan(), "{n}");
        assert!(l(f32::NAN).is_nan(), "{n}");
        assert_eq!(l(inf), inf, "{n}");
        assert_eq!(l(1.0), 0.0, "{n}");
        let lmin = l(f32::from_bits(1));
        assert!(ulp_err(lmin, -149.0 * std::f64::consts::LN_2) <= 2.0, "{n}: log(2^-149) = {lmin}");

        let t = |x| eval(vtanh_f32_with, isa, x);
        assert_eq!(t(50.0), 1.0, "{n}");
        assert_eq!(t(-50.0), -1.0, "{n}");
        assert_eq!(t(inf), 1.0, "{n}");
        assert_eq!(t(-inf), -1.0, "{n}");
        assert_eq!(t(0.0).to_bits(), 0.0f32.to_bits(), "{n}");
        assert_eq!(t(-0.0).to_bits(), (-0.0f32).to_bits(), "{n}");
        assert!(t(f32::NAN).is_nan(), "{n}");
        assert_eq!(t(1e-30), 1e-30, "{n}");
        assert_eq!(t(f32::from_bits(3)), f32::from_bits(3), "{n}");

        let sg = |x| eval(vsigmoid_f32_with, isa, x);
        assert_eq!(sg(100.0), 1.0, "{n}");
        assert_eq!(sg(inf), 1.0, "{n}");
        assert_eq!(sg(-inf), 0.0, "{n}");
        assert_eq!(sg(-110.0), 0.0, "{n}");
        assert_eq!(sg(-1000.0), 0.0, "{n}");
        // sigmoid(-100) = 3.72e-44 is a subnormal, not 0.
        let s100 = sg(-100.0);
        assert!(!s100.is_nan() && ulp_err(s100, ref_sigmoid(-100.0)) <= 1.0, "{n}: sigmoid(-100) = {s100:e}");
        assert_eq!(sg(0.0), 0.5, "{n}");
        assert!(sg(f32::NAN).is_nan(), "{n}");

        let sp = |x| eval(vsoftplus_f32_with, isa, x);
        assert_eq!(sp(100.0), 100.0, "{n}");
        assert_eq!(sp(1e30), 1e30, "{n}");
        assert_eq!(sp(f32::MAX), f32::MAX, "{n}");
        assert_eq!(sp(inf), inf, "{n}");
        assert_eq!(sp(-inf), 0.0, "{n}");
        assert_eq!(sp(-200.0), 0.0, "{n}");
        assert!(sp(f32::NAN).is_nan(), "{n}");
        assert!(ulp_err(sp(0.0), std::f64::consts::LN_2) <= 1.0, "{n}");

        let g = |x| eval(vgelu_f32_with, isa, x);
        assert_eq!(g(0.0), 0.0, "{n}");
        assert_eq!(g(10.0), 10.0, "{n}");
        assert_eq!(g(1e30), 1e30, "{n}");
        assert_eq!(g(inf), inf, "{n}");
        assert_eq!(g(-inf), 0.0, "{n}");
        assert!(!g(-inf).is_nan(), "{n}");
        assert_eq!(g(-1e30), 0.0, "{n}");
        assert_eq!(g(-20.0), 0.0, "{n}");
        assert!(g(f32::NAN).is_nan(), "{n}");
    }
}

/// Every kernel and every tail length agrees with itself lane by lane, in place
/// and out of place, and never writes past the end.
#[test]
fn tail_lengths_and_inplace() {
    let kernels: [(&str, Kernel, InPlace); 6] = [
        ("exp", vexp_f32_with, vexp_f32_inplace_with),
        ("log", vlog_f32_with, vlog_f32_inplace_with),
        ("tanh", vtanh_f32_with, vtanh_f32_inplace_with),
        ("sigmoid", vsigmoid_f32_with, vsigmoid_f32_inplace_with),
        ("softplus", vsoftplus_f32_with, vsoftplus_f32_inplace_with),
        ("gelu", vgelu_f32_with, vgelu_f32_inplace_with),
    ];
    for isa in isas() {
        let lanes: usize = match isa {
            Isa::Scalar => 1,
            #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
            Isa::V3 => 8,
            #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
            Isa::V4 => 16,
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => 4,
            other => panic!("no lane count for {other:?}"),
        };
        let mut lens = vec![0, 1, lanes.saturating_sub(1), lanes, lanes + 1, 2 * lanes + 3, 1_000_003];
        lens.sort_unstable();
        lens.dedup();
        for &(name, k, ip) in &kernels {
            for &len in &lens {
                let x: Vec<f32> = (0..len).map(|i| ((i as f32) * 0.618_034).sin() * 30.0 + 0.5).collect();
                let xs = if name == "log" { x.iter().map(|v| v.abs()).collect() } else { x.clone() };
                // Output with guard cells after the end.
                let mut y = vec![f32::from_bits(0x7FC0_1234); len + 17];
                k(&xs, &mut y[..len], &on(isa)).unwrap();
                assert!(
                    y[len..].iter().all(|v| v.to_bits() == 0x7FC0_1234),
                    "{name} [{}] len {len}: wrote past end",
                    isa.name()
                );
                // Lane-by-lane against single-element calls (the tail path).
                for i in (0..len).step_by(((len / 4096) + 1).max(1)) {
                    let one = eval(k, isa, xs[i]);
                    assert_eq!(y[i].to_bits(), one.to_bits(), "{name} [{}] len {len} i {i}", isa.name());
                }
                let mut z = xs.clone();
                ip(&mut z, &on(isa)).unwrap();
                assert!(
                    z.iter().zip(&y[..len]).all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{name} [{}] len {len}: in-place differs",
                    isa.name()
                );
            }
        }
    }
}

#[test]
fn length_mismatch() {
    let x = [1.0f32; 5];
    let mut y = [0f32; 4];
    let kernels: [Plain; 6] = [vexp_f32, vlog_f32, vtanh_f32, vsigmoid_f32, vsoftplus_f32, vgelu_f32];
    for k in kernels {
        match k(&x, &mut y) {
            Err(Error::ShapeMismatch(m)) => assert!(m.contains('5') && m.contains('4'), "{m}"),
            other => panic!("expected ShapeMismatch, got {other:?}"),
        }
        assert_eq!(y, [0.0; 4], "nothing written on error");
    }
    // Empty slices are fine.
    vexp_f32(&[], &mut []).unwrap();
}

/// The dispatching entry points use the current ISA and agree with it.
#[test]
fn default_isa_matches_with_isa() {
    let x: Vec<f32> = (0..1000).map(|i| i as f32 * 0.05 - 25.0).collect();
    let mut a = vec![0f32; x.len()];
    let mut b = vec![0f32; x.len()];
    vtanh_f32(&x, &mut a).unwrap();
    vtanh_f32_with(&x, &mut b, &on(Isa::current())).unwrap();
    assert_eq!(a, b);
    let mut c = x.clone();
    vtanh_f32_inplace(&mut c);
    assert_eq!(a, c);
}

/// GELU's absolute error on the ill-conditioned side `x ∈ [−20, −1]`.
#[test]
fn gelu_negative_abs_error() {
    let (lo, hi) = ((-1.0f32).to_bits(), (-20.0f32).to_bits());
    let xs: Vec<f32> = (lo..=hi).step_by(37).map(f32::from_bits).collect();
    let mut y = vec![0f32; xs.len()];
    for isa in isas() {
        vgelu_f32_with(&xs, &mut y, &on(isa)).unwrap();
        let max_abs = xs.iter().zip(&y).map(|(&x, &yi)| (yi as f64 - ref_gelu(x as f64)).abs()).fold(0.0, f64::max);
        println!("gelu [{:>6}]: max abs error on [-20, -1]: {max_abs:.3e} ({} inputs)", isa.name(), xs.len());
        assert!(max_abs <= 1e-7, "gelu [{}]: {max_abs:e}", isa.name());
    }
}
