//! The trainer's C API end to end with random architectures, configurations
//! (valid and not), data (NaN/Inf included), labels (some ≥ classes) and
//! output sizes. Never a crash; a refused fit (other than divergence, which
//! keeps the last good weights) leaves the model's predictions unchanged.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nnkern::ffi::model::*;
use nnkern::ffi::*;

const NNK_OK: i32 = Status::NNK_OK as i32;
const NNK_ERR_PANIC: i32 = Status::NNK_ERR_PANIC as i32;
const NNK_ERR_DIVERGED: i32 = Status::NNK_ERR_DIVERGED as i32;

#[path = "bytes.rs"]
mod bytes;
use bytes::Bytes;

fn f64_arg(b: &mut Bytes) -> f64 {
    match b.below(8) {
        0 => f64::NAN,
        1 => -1.0,
        2 => 0.0,
        3 => 1e30,
        _ => b.below(100) as f64 * 1e-3,
    }
}

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes(data);
    let n_in = 1 + b.below(6);
    let n_layers = 1 + b.below(3);
    let units: Vec<usize> = (0..n_layers).map(|_| if b.flag(20) { 0 } else { 1 + b.below(6) }).collect();
    let acts: Vec<u32> = (0..n_layers).map(|_| if b.flag(20) { b.u32() } else { b.below(10) as u32 }).collect();
    let mut m: *mut nnk_mlp = std::ptr::null_mut();
    // SAFETY: arrays of n_layers elements; out is a valid location.
    if unsafe { nnk_mlp_new(n_in, n_layers, units.as_ptr(), acts.as_ptr(), b.u64(), &mut m) } != NNK_OK {
        assert!(m.is_null(), "handle written on error");
        return;
    }
    let mut c: *mut nnk_train_config = std::ptr::null_mut();
    // SAFETY: out is a valid location.
    assert_eq!(unsafe { nnk_train_config_new(&mut c) }, NNK_OK);
    // SAFETY: c is live; each setter validates its arguments.
    unsafe {
        nnk_train_config_set_epochs(c, b.below(4));
        nnk_train_config_set_batch_size(c, b.below(9));
        nnk_train_config_set_learning_rate(c, f64_arg(&mut b));
        nnk_train_config_set_alpha(c, f64_arg(&mut b));
        nnk_train_config_set_solver(c, if b.flag(10) { b.u32() } else { b.below(4) as u32 });
        nnk_train_config_set_seed(c, b.u64());
        nnk_train_config_set_momentum(c, f64_arg(&mut b), b.below(3) as u32);
        nnk_train_config_set_schedule(c, b.below(6) as u32, f64_arg(&mut b));
        nnk_train_config_set_early_stopping(c, b.below(3) as u32, f64_arg(&mut b), b.below(4), f64_arg(&mut b));
        nnk_train_config_set_threads(c, b.below(3));
    }
    let n_out = units[n_layers - 1];
    let feats = if b.flag(10) { n_in + 1 } else { n_in };
    let n = b.below(24);
    let mut x = Vec::with_capacity(n * feats);
    for _ in 0..n * feats {
        x.push(if b.flag(50) { b.value() } else { b.finite() });
    }
    let probe: Vec<f32> = (0..3 * n_in).map(|i| (i % 5) as f32 * 0.3 - 0.6).collect();
    let mut before = vec![0f32; 3 * n_out];
    // SAFETY: probe is 3 × n_in, before 3 × n_out.
    let p0 = unsafe { nnk_mlp_predict_proba(m, probe.as_ptr(), 3, n_in, before.as_mut_ptr(), before.len()) };
    let st = if b.flag(2) {
        let labels: Vec<u32> = (0..n).map(|_| if b.flag(30) { b.u32() } else { b.below(n_out.max(2)) as u32 }).collect();
        // SAFETY: x is n × feats, labels n.
        unsafe { nnk_mlp_fit_classifier(m, c, x.as_ptr(), n, feats, labels.as_ptr()) }
    } else {
        let y: Vec<f32> = (0..n * n_out).map(|_| b.finite()).collect();
        // SAFETY: x is n × feats, y n × n_out.
        unsafe { nnk_mlp_fit_regressor(m, c, x.as_ptr(), n, feats, y.as_ptr(), n_out) }
    };
    // SAFETY: a NUL-terminated thread-local string.
    let msg = unsafe { std::ffi::CStr::from_ptr(nnk_last_error_message()) };
    assert_ne!(st, NNK_ERR_PANIC, "panic inside fit: {msg:?}");
    let mut after = vec![0f32; 3 * n_out];
    // SAFETY: as above.
    let p1 = unsafe { nnk_mlp_predict_proba(m, probe.as_ptr(), 3, n_in, after.as_mut_ptr(), after.len()) };
    assert_eq!(p0, p1);
    if st != NNK_OK && st != NNK_ERR_DIVERGED && p0 == NNK_OK {
        assert!(
            before.iter().zip(&after).all(|(a, b)| a.to_bits() == b.to_bits()),
            "a refused fit (status {st}) changed the model"
        );
    }
    // Prediction with random shapes and output lengths.
    let rows = b.below(5);
    let nf = if b.flag(6) { b.below(8) } else { n_in };
    let xin: Vec<f32> = (0..rows * nf).map(|_| b.value()).collect();
    let out_len = if b.flag(6) { b.below(20) } else { rows * n_out };
    let mut out = vec![-1f32; out_len];
    let mut cls = vec![u32::MAX; if b.flag(6) { b.below(6) } else { rows }];
    // SAFETY: buffer lengths are passed alongside.
    unsafe {
        let xp = if rows * nf == 0 && b.flag(2) { std::ptr::null() } else { xin.as_ptr() };
        nnk_mlp_predict_proba(m, xp, rows, nf, out.as_mut_ptr(), out_len);
        nnk_mlp_predict_class(m, xp, rows, nf, cls.as_mut_ptr(), cls.len());
        nnk_mlp_free(m);
        nnk_train_config_free(c);
    }
});
