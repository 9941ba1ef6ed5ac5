//! The trainer end to end: accuracy on the bundled digits, regression,
//! reproducibility across runs and thread counts, the L2 convention against a
//! hand-computed gradient, model files, data readers and bad input.

use nnkern::Error;
use nnkern::gemm::SparseRows;
use nnkern::nn::data::{Scaler, one_hot, parse_csv, parse_idx, read_csv};
use nnkern::nn::{
    BatchProgress, EpochRecord, FitObserver, Layer, Mlp, SPARSE_AUTO_DENSITY, Schedule, Solver, SparseInput, Targets,
    Task, TrainConfig, Validation,
};
use nnkern::ops::Activation;
use nnkern::par::Par;
use std::ops::ControlFlow;

fn digits() -> (Vec<f32>, Vec<u32>, Vec<f32>, Vec<u32>, usize, usize, usize) {
    let ds = read_csv(concat!(env!("CARGO_MANIFEST_DIR"), "/data/digits.csv"), -1).unwrap();
    let (mut tr, mut te) = ds.split(0.2, 0).unwrap();
    let sc = Scaler::standard(&tr.x, tr.d);
    sc.transform(&mut tr.x);
    sc.transform(&mut te.x);
    let (ytr, yte) = (tr.labels().unwrap(), te.labels().unwrap());
    (tr.x, ytr, te.x, yte, tr.n, te.n, tr.d)
}

fn relu(units: usize) -> Layer {
    Layer { units, activation: Activation::Relu }
}

#[test]
fn digits_reach_96_percent() {
    let (xtr, ytr, xte, yte, ntr, nte, d) = digits();
    let mut m = Mlp::new(d, &[relu(64)], 10, Task::MultiClass, 0).unwrap();
    let cfg = TrainConfig { batch_size: 32, max_iter: 30, n_iter_no_change: 100, ..Default::default() };
    let h = m.fit(&xtr, ntr, Targets::Labels(&ytr), &cfg, None, None).unwrap();
    assert_eq!(h.epochs.len(), 30);
    assert!(h.epochs.last().unwrap().loss < h.epochs[0].loss / 10.0);
    let acc = m.score(&xte, nte, &Targets::Labels(&yte)).unwrap();
    println!("digits test accuracy {acc:.4}");
    assert!(acc >= 0.96, "test accuracy {acc}");
    // Every solver and a few schedules learn too (shorter runs).
    for (solver, sched) in [
        (Solver::Sgd, Schedule::InvScaling { power_t: 0.25 }),
        (Solver::AdamW, Schedule::Cosine),
        (Solver::RmsProp, Schedule::Step { every: 5, gamma: 0.5 }),
        (Solver::Adam, Schedule::Adaptive),
    ] {
        let mut m = Mlp::new(d, &[Layer { units: 32, activation: Activation::Tanh }], 10, Task::MultiClass, 1).unwrap();
        let lr = if solver == Solver::Sgd { 0.1 } else { 2e-3 };
        let cfg = TrainConfig {
            solver,
            learning_rate: sched,
            learning_rate_init: lr,
            batch_size: 32,
            max_iter: 15,
            ..Default::default()
        };
        m.fit(&xtr, ntr, Targets::Labels(&ytr), &cfg, None, None).unwrap();
        let acc = m.score(&xte, nte, &Targets::Labels(&yte)).unwrap();
        assert!(acc >= 0.9, "{solver:?}/{sched:?}: accuracy {acc}");
    }
}

#[test]
fn regression_converges() {
    let n = 512;
    let mut x = Vec::new();
    let mut y = Vec::new();
    for i in 0..n {
        let a = (i as f32 * 0.731).sin() * 2.0;
        let b = (i as f32 * 0.377).cos() * 2.0;
        x.extend_from_slice(&[a, b]);
        y.push(a.sin() + 0.5 * b);
    }
    let mut m = Mlp::new(2, &[Layer { units: 32, activation: Activation::Tanh }], 1, Task::Regression, 3).unwrap();
    let cfg = TrainConfig { learning_rate_init: 1e-2, batch_size: 32, max_iter: 200, ..Default::default() };
    m.fit(&x, n, Targets::Dense(&y), &cfg, None, None).unwrap();
    let r2 = m.score(&x, n, &Targets::Dense(&y)).unwrap();
    assert!(r2 > 0.95, "R² = {r2}");
}

#[test]
fn same_seed_same_bits_any_thread_count() {
    let (xtr, ytr, _, _, ntr, _, d) = digits();
    let mut base: Option<Vec<f32>> = None;
    for t in [1usize, 2, 4, 1] {
        let mut m = Mlp::new(d, &[relu(48), relu(24)], 10, Task::MultiClass, 7).unwrap();
        let cfg =
            TrainConfig { batch_size: 64, max_iter: 3, random_state: 7, par: Par::Threads(t), ..Default::default() };
        m.fit(&xtr, ntr, Targets::Labels(&ytr), &cfg, None, None).unwrap();
        match &base {
            None => base = Some(m.params().to_vec()),
            Some(b) => assert!(b.iter().zip(m.params()).all(|(x, y)| x.to_bits() == y.to_bits()), "{t} threads differ"),
        }
    }
    // A different seed gives different weights.
    let mut m = Mlp::new(d, &[relu(48), relu(24)], 10, Task::MultiClass, 8).unwrap();
    m.fit(
        &xtr,
        ntr,
        Targets::Labels(&ytr),
        &TrainConfig { batch_size: 64, max_iter: 3, random_state: 8, ..Default::default() },
        None,
        None,
    )
    .unwrap();
    assert_ne!(base.unwrap(), m.params());
}

/// scikit-learn's L2: loss += 0.5·alpha·‖W‖²/batch, gradient += alpha·W/batch,
/// biases excluded. One plain SGD step on a linear regression, by hand.
#[test]
fn l2_follows_scikit_learn_scaling() {
    let x = [1.0f32, 2.0, -1.0, 0.5, 0.0, 3.0, 2.0, -2.0]; // 4 samples × 2
    let y = [1.0f32, -1.0, 2.0, 0.5];
    let mut m = Mlp::new(2, &[], 1, Task::Regression, 0).unwrap();
    let w0 = m.params().to_vec(); // w(2), b(1)
    let (alpha, lr) = (0.5f32, 0.1f32);
    let cfg = TrainConfig {
        solver: Solver::Sgd,
        momentum: 0.0,
        learning_rate_init: lr,
        alpha,
        batch_size: 4,
        max_iter: 1,
        shuffle: false,
        ..Default::default()
    };
    m.fit(&x, 4, Targets::Dense(&y), &cfg, None, None).unwrap();
    let b = 4.0f64;
    let mut gw = [0.0f64; 2];
    let mut gb = 0.0f64;
    for i in 0..4 {
        let p = x[2 * i] as f64 * w0[0] as f64 + x[2 * i + 1] as f64 * w0[1] as f64 + w0[2] as f64;
        let e = (p - y[i] as f64) / b;
        gw[0] += x[2 * i] as f64 * e;
        gw[1] += x[2 * i + 1] as f64 * e;
        gb += e;
    }
    for j in 0..2 {
        gw[j] += alpha as f64 * w0[j] as f64 / b;
        let want = w0[j] as f64 - lr as f64 * gw[j];
        assert!((m.params()[j] as f64 - want).abs() < 1e-6, "w{j}: {} vs {want}", m.params()[j]);
    }
    let want_b = w0[2] as f64 - lr as f64 * gb; // no penalty on the bias
    assert!((m.params()[2] as f64 - want_b).abs() < 1e-6);
}

#[test]
fn save_load_predict_is_bit_identical_and_bad_files_are_refused() {
    let (xtr, ytr, xte, _, ntr, nte, d) = digits();
    let mut m =
        Mlp::new(d, &[relu(32), Layer { units: 16, activation: Activation::LeakyRelu(0.05) }], 10, Task::MultiClass, 2)
            .unwrap();
    m.fit(&xtr, ntr, Targets::Labels(&ytr), &TrainConfig { max_iter: 2, ..Default::default() }, None, None).unwrap();
    let dir = std::env::temp_dir().join(format!("nnkern-io-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("m.nnk");
    m.save(&path).unwrap();
    let l = Mlp::load(&path).unwrap();
    assert_eq!(l.layers(), m.layers());
    let (p1, p2) = (m.predict_proba(&xte, nte).unwrap(), l.predict_proba(&xte, nte).unwrap());
    assert!(p1.iter().zip(&p2).all(|(a, b)| a.to_bits() == b.to_bits()));

    let good = std::fs::read(&path).unwrap();
    let expect_format = |bytes: &[u8], what: &str| {
        let p = dir.join("bad.nnk");
        std::fs::write(&p, bytes).unwrap();
        match Mlp::load(&p) {
            Err(Error::Format(msg)) => println!("{what}: {msg}"),
            other => panic!("{what}: expected a format error, got {other:?}"),
        }
    };
    for cut in [0, 4, 8, 20, 40, good.len() / 2, good.len() - 1] {
        expect_format(&good[..cut], &format!("truncated at {cut}"));
    }
    let mut flipped = good.clone();
    flipped[good.len() / 2] ^= 0x40;
    expect_format(&flipped, "corrupt byte");
    let mut future = good.clone();
    future[8] = 99;
    expect_format(&future, "future version");
    expect_format(b"GIF89a this is not a model at all", "foreign file");
    let mut huge = good.clone();
    huge[16..24].copy_from_slice(&u64::MAX.to_le_bytes()); // absurd input width
    expect_format(&huge, "absurd header");
    let mut extra = good.clone();
    extra.push(0);
    expect_format(&extra, "trailing bytes");
    // I/O errors keep the kind and the path.
    match Mlp::load(&dir) {
        Err(Error::Io { kind, path, .. }) => {
            assert_eq!(kind, std::io::ErrorKind::IsADirectory, "a directory");
            assert_eq!(path.as_deref(), Some(dir.as_path()));
        }
        other => panic!("a directory: {other:?}"),
    }
    let missing = dir.join("missing");
    match Mlp::load(&missing) {
        Err(e @ Error::Io { .. }) => {
            assert!(e.to_string().contains(&missing.display().to_string()), "{e}");
            let Error::Io { kind, path, .. } = e else { unreachable!() };
            assert_eq!(kind, std::io::ErrorKind::NotFound);
            assert_eq!(path, Some(missing.clone()));
        }
        other => panic!("a missing file: {other:?}"),
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x100000001b3))
}

#[test]
fn model_files_carry_evaluation_metadata_and_version_1_still_loads() {
    use nnkern::nn::io::{DataRecord, FORMAT_VERSION, ModelMeta, SplitRecord};
    let ds = read_csv(concat!(env!("CARGO_MANIFEST_DIR"), "/data/digits.csv"), -1).unwrap();
    let (tr, _) = ds.split(0.2, 7).unwrap();
    let m = Mlp::new(ds.d, &[relu(8)], 10, Task::MultiClass, 1).unwrap();
    let meta = ModelMeta {
        data: Some(DataRecord { rows: ds.n as u64, features: ds.d as u64, fingerprint: ds.fingerprint() }),
        split: Some(SplitRecord { seed: 7, test_fraction: 0.2 }),
        scaler: Some(Scaler::standard(&tr.x, tr.d)),
    };
    assert_eq!(FORMAT_VERSION, 2);
    let bytes = m.to_bytes_with_meta(&meta).unwrap();
    let (l, lm) = Mlp::from_bytes_with_meta(&bytes).unwrap();
    assert_eq!((&l, &lm), (&m, &meta));
    // Without metadata: version 2, empty metadata; `from_bytes` drops any.
    let plain = m.to_bytes();
    assert_eq!(plain.len() + 24 + 16 + 8 * ds.d, bytes.len());
    assert_eq!(Mlp::from_bytes_with_meta(&plain).unwrap().1, ModelMeta::default());
    assert_eq!(Mlp::from_bytes(&bytes).unwrap(), m);
    // A version 1 file (no flags word) still loads, without metadata.
    let flags_at = 8 + 4 + 4 + 8 + 4 + 16 * m.layers().len() + 8;
    let mut v1 = plain[..flags_at].to_vec();
    v1.extend_from_slice(&plain[flags_at + 4..plain.len() - 8]);
    v1[8..12].copy_from_slice(&1u32.to_le_bytes());
    let h = fnv1a(&v1);
    v1.extend_from_slice(&h.to_le_bytes());
    let (l1, m1) = Mlp::from_bytes_with_meta(&v1).unwrap();
    assert_eq!((l1, m1), (m.clone(), ModelMeta::default()));
    // Refused: unknown flags, a bad fraction, a scaler of the wrong width.
    let reseal = |mut b: Vec<u8>| {
        let n = b.len() - 8;
        let h = fnv1a(&b[..n]);
        b[n..].copy_from_slice(&h.to_le_bytes());
        b
    };
    let mut unknown = bytes.clone();
    unknown[flags_at] |= 8;
    assert!(matches!(Mlp::from_bytes(&reseal(unknown)), Err(Error::Format(e)) if e.contains("flags")));
    let bad_split = ModelMeta { split: Some(SplitRecord { seed: 7, test_fraction: 1.0 }), ..meta.clone() };
    assert!(matches!(m.to_bytes_with_meta(&bad_split), Err(Error::InvalidArgument(_))));
    let frac_at = bytes.len() - 8 - 8 * ds.d - 8;
    let mut bad = bytes.clone();
    bad[frac_at..frac_at + 8].copy_from_slice(&1.5f64.to_le_bytes());
    assert!(matches!(Mlp::from_bytes(&reseal(bad)), Err(Error::Format(e)) if e.contains("fraction")));
    let narrow = ModelMeta { scaler: Some(Scaler { shift: vec![0.0; 3], scale: vec![1.0; 3] }), ..meta.clone() };
    assert!(m.to_bytes_with_meta(&narrow).is_err());
    let lost = ModelMeta { data: None, ..meta.clone() };
    assert!(m.to_bytes_with_meta(&lost).is_err(), "a split without the data it splits");
    // Truncation anywhere in the metadata is a format error, not a panic.
    for cut in [bytes.len() - 1, bytes.len() - 9, plain.len(), flags_at + 2] {
        assert!(matches!(Mlp::from_bytes(&bytes[..cut]), Err(Error::Format(_))), "cut at {cut}");
    }
    // The fingerprint sees one changed value, and a reordering.
    let mut changed = ds.clone();
    changed.x[5] += 1.0;
    assert_ne!(changed.fingerprint(), ds.fingerprint());
    let swapped = ds.take(&[1, 0]);
    assert_ne!(swapped.fingerprint(), ds.take(&[0, 1]).fingerprint());
    assert_eq!(ds.clone().fingerprint(), ds.fingerprint());
}

#[test]
fn bad_inputs_are_clear_errors_and_lose_nothing() {
    let (xtr, ytr, _, _, ntr, _, d) = digits();
    let mut m = Mlp::new(d, &[relu(16)], 10, Task::MultiClass, 0).unwrap();
    let before = m.params().to_vec();
    let cfg = TrainConfig { max_iter: 1, ..Default::default() };
    let mut xn = xtr.clone();
    xn[5] = f32::NAN;
    assert!(matches!(m.fit(&xn, ntr, Targets::Labels(&ytr), &cfg, None, None), Err(Error::NonFinite(_))));
    // Dense inputs on the sparse path are checked on their nonzeros: the
    // same error, naming the same first bad value, as on the dense path.
    let mut xs = xtr.clone();
    xs[3 * d + 7] = f32::NEG_INFINITY;
    xs[9 * d + 2] = f32::NAN;
    for sparse_input in [SparseInput::Dense, SparseInput::Sparse] {
        let cfg = TrainConfig { max_iter: 1, sparse_input, ..Default::default() };
        let e = m.fit(&xs, ntr, Targets::Labels(&ytr), &cfg, None, None).unwrap_err();
        assert!(matches!(e, Error::NonFinite(_)), "{sparse_input:?}: {e}");
        assert!(e.to_string().contains("x[3][7] = -inf is not finite"), "{sparse_input:?}: {e}");
    }
    let mut yb = ytr.clone();
    yb[3] = 10;
    assert!(matches!(m.fit(&xtr, ntr, Targets::Labels(&yb), &cfg, None, None), Err(Error::InvalidArgument(_))));
    assert!(matches!(m.fit(&xtr[1..], ntr, Targets::Labels(&ytr), &cfg, None, None), Err(Error::ShapeMismatch(_))));
    assert!(m.fit(&[], 0, Targets::Labels(&[]), &cfg, None, None).is_err());
    let bad_cfg = TrainConfig { learning_rate_init: -1.0, ..Default::default() };
    assert!(m.fit(&xtr, ntr, Targets::Labels(&ytr), &bad_cfg, None, None).is_err());
    // Found by fuzz/c_trainer: early stopping on one sample (nothing to hold out) panicked.
    let es = TrainConfig { early_stopping: true, max_iter: 1, ..Default::default() };
    assert!(matches!(m.fit(&xtr[..d], 1, Targets::Labels(&ytr[..1]), &es, None, None), Err(Error::InvalidArgument(_))));
    assert_eq!(m.params(), &before[..], "failed fits must not touch the weights");
    assert!(m.predict_proba(&xtr[..d - 1], 1).is_err());
    assert!(Mlp::new(0, &[], 2, Task::MultiClass, 0).is_err());
    assert!(Mlp::new(4, &[relu(0)], 2, Task::MultiClass, 0).is_err());
    assert!(Mlp::new(4, &[Layer { units: 3, activation: Activation::Softmax }], 2, Task::MultiClass, 0).is_err());
}

#[test]
fn divergence_stops_and_keeps_last_good_weights() {
    let x: Vec<f32> = (0..64).map(|i| (i as f32) * 100.0).collect();
    let y: Vec<f32> = (0..32).map(|i| (i as f32) * 1e4).collect();
    let mut m = Mlp::new(2, &[relu(8)], 1, Task::Regression, 0).unwrap();
    let cfg = TrainConfig {
        solver: Solver::Sgd,
        learning_rate_init: 10.0,
        momentum: 0.0,
        batch_size: 4,
        max_iter: 50,
        ..Default::default()
    };
    match m.fit(&x, 32, Targets::Dense(&y), &cfg, None, None) {
        Err(Error::Diverged(msg)) => println!("{msg}"),
        other => panic!("expected divergence, got {other:?}"),
    }
    assert!(m.params().iter().all(|v| v.is_finite()));
}

#[test]
fn early_stopping_callback_partial_fit_and_validation() {
    let (xtr, ytr, xte, yte, ntr, nte, d) = digits();
    let mut m = Mlp::new(d, &[relu(32)], 10, Task::MultiClass, 0).unwrap();
    let cfg = TrainConfig {
        early_stopping: true,
        n_iter_no_change: 3,
        max_iter: 200,
        tol: 0.01,
        batch_size: 32,
        ..Default::default()
    };
    let h = m.fit(&xtr, ntr, Targets::Labels(&ytr), &cfg, None, None).unwrap();
    assert!(h.stopped_early && !h.stopped_by_callback && h.epochs.len() < 200);
    let best = h.epochs.iter().map(|r| r.val_score.unwrap()).fold(0.0, f64::max);
    assert!(best > 0.8);
    // The restored epoch is the first one with the best validation score.
    let first_best = h.epochs.iter().find(|r| r.val_score == Some(best)).unwrap().epoch;
    assert_eq!(h.restored_epoch, Some(first_best));
    assert!(first_best < h.epochs.len(), "stopped at {} after the best epoch {first_best}", h.epochs.len());
    // Callback: Break stops after 3 epochs, Continue goes on.
    let mut seen = 0;
    let mut cb = |r: &nnkern::nn::EpochRecord| {
        seen = r.epoch;
        if r.epoch < 3 { ControlFlow::Continue(()) } else { ControlFlow::Break(()) }
    };
    let val = Validation { x: &xte, n: nte, y: Targets::Labels(&yte) };
    let h = m.fit(&xtr, ntr, Targets::Labels(&ytr), &TrainConfig::default(), Some(val), Some(&mut cb)).unwrap();
    assert_eq!(h.epochs.len(), 3);
    assert_eq!(seen, 3);
    assert!(h.stopped_early && h.stopped_by_callback);
    assert_eq!(h.restored_epoch, None);
    assert!(h.epochs[0].val_loss.is_some());
    // partial_fit keeps going from the current weights.
    let before = m.score(&xte, nte, &Targets::Labels(&yte)).unwrap();
    for _ in 0..3 {
        m.partial_fit(&xtr, ntr, Targets::Labels(&ytr), &TrainConfig::default()).unwrap();
    }
    let after = m.score(&xte, nte, &Targets::Labels(&yte)).unwrap();
    assert!(after >= before - 0.02, "{before} → {after}");
}

/// Records every batch and epoch it sees; stops after `stop_after` epochs.
struct Recorder {
    batches: Vec<BatchProgress>,
    epochs: Vec<usize>,
    stop_after: usize,
}

impl FitObserver for Recorder {
    fn on_batch(&mut self, p: &BatchProgress) {
        self.batches.push(*p);
    }
    fn on_epoch(&mut self, r: &EpochRecord) -> ControlFlow<()> {
        self.epochs.push(r.epoch);
        if r.epoch >= self.stop_after { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
    }
}

#[test]
fn batch_observer_sees_every_batch_and_changes_nothing() {
    let (xtr, ytr, _, _, ntr, _, d) = digits();
    // 1438 training rows in batches of 100: 15 batches, the last of 38.
    assert_eq!(ntr, 1438);
    let cfg = TrainConfig { max_iter: 3, batch_size: 100, ..Default::default() };
    let mut plain = Mlp::new(d, &[relu(16)], 10, Task::MultiClass, 5).unwrap();
    let hp = plain.fit(&xtr, ntr, Targets::Labels(&ytr), &cfg, None, None).unwrap();
    let mut watched = Mlp::new(d, &[relu(16)], 10, Task::MultiClass, 5).unwrap();
    let mut rec = Recorder { batches: vec![], epochs: vec![], stop_after: usize::MAX };
    let hw = watched.fit_observed(&xtr, ntr, Targets::Labels(&ytr), &cfg, None, &mut rec).unwrap();
    assert_eq!(rec.batches.len(), 3 * 15);
    for (i, p) in rec.batches.iter().enumerate() {
        assert_eq!(*p, BatchProgress { epoch: i / 15 + 1, max_epochs: 3, batch: i % 15 + 1, batches: 15 });
    }
    assert_eq!(rec.epochs, vec![1, 2, 3]);
    // Same bits with or without the observer.
    let bits = |m: &Mlp| m.params().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&plain), bits(&watched));
    assert_eq!(
        hp.epochs.iter().map(|r| r.loss).collect::<Vec<_>>(),
        hw.epochs.iter().map(|r| r.loss).collect::<Vec<_>>()
    );
    assert!(!hw.stopped_early && !hw.stopped_by_callback);
    // on_epoch's Break stops the observed fit too.
    let mut rec = Recorder { batches: vec![], epochs: vec![], stop_after: 2 };
    let h = watched.fit_observed(&xtr, ntr, Targets::Labels(&ytr), &cfg, None, &mut rec).unwrap();
    assert_eq!((h.epochs.len(), rec.batches.len(), h.stopped_by_callback), (2, 30, true));
}

#[test]
fn data_readers_report_bad_input() {
    let ok = parse_csv("a,b,label\n1,2,0\n3,4,1\n", -1).unwrap();
    assert_eq!((ok.n, ok.d, ok.y.clone()), (2, 2, vec![0.0, 1.0]));
    let ok0 = parse_csv("0,1,2\n1,3,4\n", 0).unwrap();
    assert_eq!(ok0.x, vec![1.0, 2.0, 3.0, 4.0]);
    let e = parse_csv("1,2,0\n3,x,1\n", -1).unwrap_err();
    assert!(e.to_string().contains("line 2") && e.to_string().contains("column 2"), "{e}");
    let e = parse_csv("1,2,0\n3,1\n", -1).unwrap_err();
    assert!(e.to_string().contains("line 2"), "{e}");
    assert!(parse_csv("", -1).is_err());
    assert!(parse_csv("1,2\n", 5).is_err());
    // IDX: plain, gzip, truncated, foreign.
    let mut idx = vec![0u8, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3];
    idx.extend_from_slice(&[1, 2, 3, 4, 5, 6]);
    let a = parse_idx(&idx).unwrap();
    assert_eq!((a.dims.clone(), a.data.clone()), (vec![2, 3], vec![1, 2, 3, 4, 5, 6]));
    let mut gz = Vec::new();
    {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(&mut gz, flate2::Compression::fast());
        enc.write_all(&idx).unwrap();
        enc.finish().unwrap();
    }
    assert_eq!(parse_idx(&gz).unwrap(), a);
    assert!(parse_idx(&idx[..idx.len() - 1]).is_err());
    assert!(parse_idx(&gz[..gz.len() / 2]).is_err());
    assert!(parse_idx(b"PK\x03\x04zip").is_err());
    assert_eq!(one_hot(&[2, 0], 3).unwrap(), vec![0.0, 0.0, 1.0, 1.0, 0.0, 0.0]);
    assert!(one_hot(&[3], 3).is_err());
    let mut x = vec![0.0f32, 10.0, 2.0, 30.0];
    let s = Scaler::min_max(&x, 2);
    s.transform(&mut x);
    assert_eq!(x, vec![0.0, 0.0, 1.0, 1.0]);
}

#[test]
fn concurrent_predictions_share_one_model() {
    let (xtr, ytr, xte, _, ntr, nte, d) = digits();
    let mut m = Mlp::new(d, &[relu(32)], 10, Task::MultiClass, 0).unwrap();
    m.fit(&xtr, ntr, Targets::Labels(&ytr), &TrainConfig { max_iter: 2, ..Default::default() }, None, None).unwrap();
    let want = m.predict_proba(&xte, nte).unwrap();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                let got = m.predict_proba(&xte, nte).unwrap();
                assert!(got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()));
            });
        }
    });
}

/// MNIST-shaped synthetic data (784 inputs, 10 classes): large enough that the
/// first layer's products (256×784·784×128, dense or sparse; the sparse
/// forward in halves of the inputs, one per thread), the L2 penalty's sum
/// of squares and the optimizer step (over 8 Ki parameters per task) really
/// run on the team's threads,
/// which the digits-sized test above does not.
#[test]
fn same_bits_for_1_2_4_threads_at_mnist_shapes() {
    let (n, d) = (600usize, 784usize);
    let x: Vec<f32> = (0..n * d).map(|i| (((i * 2654435761) >> 7) % 256) as f32 / 255.0).collect();
    // The same pixels with four in five zeroed, as in MNIST: the sparse path.
    let xs: Vec<f32> = x.iter().enumerate().map(|(i, &v)| if (i * 40503) % 5 == 0 { v } else { 0.0 }).collect();
    for (x, mode) in [(&x, SparseInput::Dense), (&xs, SparseInput::Sparse)] {
        same_bits_for_threads(x, n, d, mode, 256, Solver::Adam, &[relu(128)]);
    }
    // Batches of at most 64 rows: the first layer's weight gradient summed
    // in registers, the step fused into it; with a hidden layer, and
    // without one (the first layer is the output layer), other rules.
    same_bits_for_threads(&xs, n, d, SparseInput::Sparse, 32, Solver::Adam, &[relu(128)]);
    same_bits_for_threads(&xs, n, d, SparseInput::Sparse, 32, Solver::Sgd, &[]);
    same_bits_for_threads(&xs, n, d, SparseInput::Sparse, 64, Solver::RmsProp, &[relu(100)]);
}

fn same_bits_for_threads(
    x: &[f32],
    n: usize,
    d: usize,
    sparse_input: SparseInput,
    batch_size: usize,
    solver: Solver,
    hidden: &[Layer],
) {
    let y: Vec<u32> = (0..n).map(|i| (x[i * d + 100] * 7.0 + x[i * d + 500] * 3.0) as u32 % 10).collect();
    let mut base: Option<(Vec<f32>, Vec<f64>)> = None;
    for t in [1usize, 2, 4] {
        let mut m = Mlp::new(d, hidden, 10, Task::MultiClass, 5).unwrap();

        let cfg = TrainConfig {
            batch_size,
            max_iter: 2,
            random_state: 5,
            par: Par::Threads(t),
            sparse_input,
            solver,
            momentum: 0.9,
            learning_rate_init: if solver == Solver::Sgd { 0.01 } else { 1e-3 },
            ..Default::default()
        };
        let h = m.fit(&x, n, Targets::Labels(&y), &cfg, None, None).unwrap();
        let losses: Vec<f64> = h.epochs.iter().map(|r| r.loss).collect();
        match &base {
            None => base = Some((m.params().to_vec(), losses)),
            Some((p, l)) => {
                assert!(
                    p.iter().zip(m.params()).all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{sparse_input:?}, {t} threads: weights differ"
                );
                assert_eq!(l, &losses, "{sparse_input:?}, {t} threads: losses differ");
            }
        }
    }
}

/// One plain SGD step on a linear regression with an L1 term, by hand:
/// gradient += l1·sign(w)/batch on the weights, nothing on the bias.
#[test]
fn l1_subgradient_by_hand() {
    let x = [1.0f32, 2.0, -1.0, 0.5, 0.0, 3.0, 2.0, -2.0];
    let y = [1.0f32, -1.0, 2.0, 0.5];
    let mut m = Mlp::new(2, &[], 1, Task::Regression, 4).unwrap();
    let w0 = m.params().to_vec();
    let (l1, lr) = (0.3f32, 0.1f32);
    let cfg = TrainConfig {
        solver: Solver::Sgd,
        momentum: 0.0,
        learning_rate_init: lr,
        alpha: 0.0,
        l1,
        batch_size: 4,
        max_iter: 1,
        shuffle: false,
        ..Default::default()
    };
    let h = m.fit(&x, 4, Targets::Dense(&y), &cfg, None, None).unwrap();
    let (mut gw, mut gb, mut loss) = ([0.0f64; 2], 0.0f64, 0.0f64);
    for i in 0..4 {
        let p = x[2 * i] as f64 * w0[0] as f64 + x[2 * i + 1] as f64 * w0[1] as f64 + w0[2] as f64;
        let e = p - y[i] as f64;
        loss += 0.5 * e * e / 4.0;
        gw[0] += x[2 * i] as f64 * e / 4.0;
        gw[1] += x[2 * i + 1] as f64 * e / 4.0;
        gb += e / 4.0;
    }
    loss += l1 as f64 * (w0[0].abs() + w0[1].abs()) as f64 / 4.0;
    assert!((h.epochs[0].loss - loss).abs() < 1e-5 * loss.max(1.0), "loss {} vs {loss}", h.epochs[0].loss);
    for j in 0..2 {
        let want = w0[j] as f64 - lr as f64 * (gw[j] + l1 as f64 * (w0[j] as f64).signum() / 4.0);
        assert!((m.params()[j] as f64 - want).abs() < 1e-6, "w{j}: {} vs {want}", m.params()[j]);
    }
    assert!((m.params()[2] as f64 - (w0[2] as f64 - lr as f64 * gb)).abs() < 1e-6, "bias");
}

/// Gradient clipping inside `fit`: the step is lr·g·c/‖g‖ over all parameters.
#[test]
fn gradient_clipping_in_fit_by_hand() {
    let x = [1.0f32, 2.0, -1.0, 0.5, 0.0, 3.0, 2.0, -2.0];
    let y = [10.0f32, -10.0, 20.0, 5.0];
    let mut m = Mlp::new(2, &[], 1, Task::Regression, 4).unwrap();
    let w0 = m.params().to_vec();
    let (lr, c) = (0.1f32, 0.5f32);
    let cfg = TrainConfig {
        solver: Solver::Sgd,
        momentum: 0.0,
        learning_rate_init: lr,
        alpha: 0.0,
        clip_norm: Some(c),
        batch_size: 4,
        max_iter: 1,
        shuffle: false,
        ..Default::default()
    };
    m.fit(&x, 4, Targets::Dense(&y), &cfg, None, None).unwrap();
    let mut g = [0.0f64; 3];
    for i in 0..4 {
        let e =
            (x[2 * i] as f64 * w0[0] as f64 + x[2 * i + 1] as f64 * w0[1] as f64 + w0[2] as f64 - y[i] as f64) / 4.0;
        g[0] += x[2 * i] as f64 * e;
        g[1] += x[2 * i + 1] as f64 * e;
        g[2] += e;
    }
    let norm = g.iter().map(|v| v * v).sum::<f64>().sqrt();
    assert!(norm > c as f64 * 2.0, "the test must clip (‖g‖ = {norm})");
    for j in 0..3 {
        let want = w0[j] as f64 - lr as f64 * g[j] * c as f64 / norm;
        assert!((m.params()[j] as f64 - want).abs() < 1e-6, "p{j}: {} vs {want}", m.params()[j]);
    }
}

fn blobs(n: usize) -> (Vec<f32>, Vec<u32>, Vec<f32>) {
    // Two features; binary label x0 + x1 > 0, multi-label [x0 > 0, x1 > 0.3].
    let mut x = Vec::new();
    let (mut yb, mut ym) = (Vec::new(), Vec::new());
    for i in 0..n {
        let a = (i as f32 * 0.731).sin() * 2.0;
        let b = (i as f32 * 1.377).cos() * 2.0;
        x.extend_from_slice(&[a, b]);
        yb.push((a + b > 0.0) as u32);
        ym.extend_from_slice(&[(a > 0.0) as u32 as f32, (b > 0.3) as u32 as f32]);
    }
    (x, yb, ym)
}

#[test]
fn binary_and_multi_label_heads_fit_score_and_evaluate() {
    let n = 400;
    let (x, yb, ym) = blobs(n);
    let cfg = TrainConfig { learning_rate_init: 1e-2, batch_size: 32, max_iter: 60, ..Default::default() };
    // Binary: one sigmoid output, 0/1 labels.
    let mut m = Mlp::new(2, &[relu(16)], 1, Task::MultiLabel, 1).unwrap();
    let h = m.fit(&x, n, Targets::Labels(&yb), &cfg, None, None).unwrap();
    let acc = m.score(&x, n, &Targets::Labels(&yb)).unwrap();
    assert!(acc >= 0.95, "binary accuracy {acc}");
    assert!(h.epochs.last().unwrap().score.unwrap() >= 0.9);
    let p = m.predict_proba(&x, n).unwrap();
    let bce: f64 = p
        .iter()
        .zip(&yb)
        .map(|(&q, &t)| {
            let q = (q as f64).clamp(1e-12, 1.0 - 1e-12);
            -(t as f64 * q.ln() + (1.0 - t as f64) * (1.0 - q).ln())
        })
        .sum::<f64>()
        / n as f64;
    let (loss, score) = m.evaluate(&x, n, &Targets::Labels(&yb)).unwrap();
    assert!((loss - bce).abs() < 1e-9, "evaluate loss {loss} vs {bce}");
    assert_eq!(score, acc);
    let classes = m.predict_class(&x, n).unwrap();
    assert!(classes.iter().zip(&p).all(|(&c, &q)| c == (q >= 0.5) as u32));
    // Multi-label: two sigmoid outputs, dense 0/1 targets, subset accuracy.
    let mut m = Mlp::new(2, &[relu(32)], 2, Task::MultiLabel, 2).unwrap();
    m.fit(&x, n, Targets::Dense(&ym), &cfg, None, None).unwrap();
    let p = m.predict_proba(&x, n).unwrap();
    let exact = p
        .chunks(2)
        .zip(ym.chunks(2))
        .filter(|(q, t)| q.iter().zip(t.iter()).all(|(&q, &t)| (q >= 0.5) == (t >= 0.5)))
        .count() as f64
        / n as f64;
    let score = m.score(&x, n, &Targets::Dense(&ym)).unwrap();
    assert_eq!(score, exact, "subset accuracy");
    assert!(score >= 0.9, "multi-label subset accuracy {score}");
    let (loss, s2) = m.evaluate(&x, n, &Targets::Dense(&ym)).unwrap();
    assert!(loss.is_finite() && loss < 0.3 && s2 == score, "{loss} {s2}");
    assert!(m.predict_class(&x, n).is_err(), "two outputs: use predict_proba");
}

#[test]
fn early_stopping_restores_the_best_weights() {
    let (xtr, ytr, xte, yte, ntr, nte, d) = digits();
    let mut m = Mlp::new(d, &[relu(16)], 10, Task::MultiClass, 3).unwrap();
    let cfg = TrainConfig {
        early_stopping: true,
        n_iter_no_change: 2,
        tol: 0.0,
        max_iter: 100,
        learning_rate_init: 2e-2, // large: the validation score wobbles
        batch_size: 16,
        ..Default::default()
    };
    let val = Validation { x: &xte, n: nte, y: Targets::Labels(&yte) };
    let h = m.fit(&xtr, ntr, Targets::Labels(&ytr), &cfg, Some(val), None).unwrap();
    assert!(h.stopped_early);
    let scores: Vec<f64> = h.epochs.iter().map(|r| r.val_score.unwrap()).collect();
    let best = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let last = *scores.last().unwrap();
    assert!(best > last, "the run must end below its best for this test to mean anything: {scores:?}");
    assert_eq!(m.score(&xte, nte, &Targets::Labels(&yte)).unwrap(), best, "best weights restored");
}

#[test]
fn partial_fit_and_warm_start_keep_the_optimizer_state() {
    let (xtr, ytr, _, _, ntr, _, d) = digits();
    let cfg = TrainConfig { max_iter: 1, shuffle: false, batch_size: 64, ..Default::default() };
    let fresh = || Mlp::new(d, &[relu(24)], 10, Task::MultiClass, 9).unwrap();
    // Two epochs in one fit...
    let mut a = fresh();
    a.fit(&xtr, ntr, Targets::Labels(&ytr), &TrainConfig { max_iter: 2, ..cfg.clone() }, None, None).unwrap();
    // ...equal one fit and one partial_fit (Adam's moments and step count kept),
    let mut b = fresh();
    b.fit(&xtr, ntr, Targets::Labels(&ytr), &cfg, None, None).unwrap();
    b.partial_fit(&xtr, ntr, Targets::Labels(&ytr), &cfg).unwrap();
    assert!(a.params().iter().zip(b.params()).all(|(x, y)| x.to_bits() == y.to_bits()), "partial_fit");
    // ...and one fit then a warm-started one,
    let mut c = fresh();
    c.fit(&xtr, ntr, Targets::Labels(&ytr), &cfg, None, None).unwrap();
    c.fit(&xtr, ntr, Targets::Labels(&ytr), &TrainConfig { warm_start: true, ..cfg.clone() }, None, None).unwrap();
    assert_eq!(a.params(), c.params(), "warm_start");
    // but not a second fit that restarts the optimizer (same weights to start from).
    let mut e = fresh();
    e.fit(&xtr, ntr, Targets::Labels(&ytr), &cfg, None, None).unwrap();
    e.fit(&xtr, ntr, Targets::Labels(&ytr), &cfg, None, None).unwrap();
    assert_ne!(a.params(), e.params(), "warm_start = false restarts Adam");
}

#[test]
fn training_accuracy_in_the_history() {
    let (xtr, ytr, _, _, ntr, _, d) = digits();
    // A learning rate too small to move any weight: the running accuracy
    // must equal the model's accuracy on the training set.
    let mut m = Mlp::new(d, &[relu(16)], 10, Task::MultiClass, 6).unwrap();
    let before = m.params().to_vec();
    let cfg = TrainConfig {
        solver: Solver::Sgd,
        momentum: 0.0,
        learning_rate_init: 1e-30,
        alpha: 0.0,
        max_iter: 1,
        ..Default::default()
    };
    let h = m.fit(&xtr, ntr, Targets::Labels(&ytr), &cfg, None, None).unwrap();
    assert_eq!(m.params(), &before[..]);
    let acc = m.score(&xtr, ntr, &Targets::Labels(&ytr)).unwrap();
    let run = h.epochs[0].score.unwrap();
    assert!((run - acc).abs() <= 1.0 / ntr as f64, "running {run} vs score {acc}");
    // Regression has none.
    let mut r = Mlp::new(2, &[], 1, Task::Regression, 0).unwrap();
    let h =
        r.fit(&[1.0, 2.0], 1, Targets::Dense(&[1.0]), &TrainConfig { max_iter: 1, ..Default::default() }, None, None);
    assert_eq!(h.unwrap().epochs[0].score, None);
}

#[test]
fn divergence_restores_weights_and_optimizer_state() {
    let x: Vec<f32> = (0..64).map(|i| (i as f32) * 100.0).collect();
    let y: Vec<f32> = (0..32).map(|i| (i as f32) * 1e4).collect();
    for clip in [None, Some(1e30f32)] {
        let mut m = Mlp::new(2, &[relu(8)], 1, Task::Regression, 0).unwrap();
        let before = m.params().to_vec();
        let cfg = TrainConfig {
            solver: Solver::Sgd,
            learning_rate_init: 10.0,
            momentum: 0.9,
            batch_size: 4,
            max_iter: 50,
            clip_norm: clip,
            ..Default::default()
        };
        match m.fit(&x, 32, Targets::Dense(&y), &cfg, None, None) {
            Err(Error::Diverged(msg)) => {
                println!("{msg}");
                if msg.contains("in epoch 1;") {
                    assert_eq!(m.params(), &before[..], "the weights of the start of epoch 1");
                }
            }
            other => panic!("clip {clip:?}: expected divergence, got {other:?}"),
        }
        assert!(m.params().iter().all(|v| v.is_finite()));
        // The optimizer state kept for a warm start is the good one too: a
        // gentle continuation stays finite.
        let xs: Vec<f32> = x.iter().map(|v| v / 6400.0).collect();
        let ys: Vec<f32> = y.iter().map(|v| v / 3.2e5).collect();
        let gentle = TrainConfig { learning_rate_init: 1e-3, warm_start: true, max_iter: 3, ..cfg.clone() };
        let h = m.fit(&xs, 32, Targets::Dense(&ys), &gentle, None, None).unwrap();
        assert!(h.epochs.iter().all(|r| r.loss.is_finite()));
        assert!(m.params().iter().all(|v| v.is_finite()));
    }
}

#[test]
fn csv_header_can_be_chosen() {
    use nnkern::nn::data::{Header, parse_csv_with};
    // Auto: a first line with numbers is data, so a bad value there is an error on line 1.
    let e = parse_csv("1,x,0\n3,4,1\n", -1).unwrap_err();
    assert!(e.to_string().contains("line 1") && e.to_string().contains("column 2"), "{e}");
    // A numeric header needs Present; Absent reads every line.
    let p = parse_csv_with("0,1,2\n5,6,1\n7,8,0\n", -1, Header::Present).unwrap();
    assert_eq!((p.n, p.x.clone()), (2, vec![5.0, 6.0, 7.0, 8.0]));
    let a = parse_csv_with("0,1,2\n5,6,1\n", -1, Header::Absent).unwrap();
    assert_eq!(a.n, 2);
    assert!(parse_csv_with("a,b,c\n1,2,0\n", -1, Header::Absent).is_err());
    assert_eq!(parse_csv_with("a,b,c\n1,2,0\n", -1, Header::Auto).unwrap().n, 1);
}

#[test]
fn multi_label_score_is_subset_accuracy() {
    // Outputs fixed by the biases: σ(5) ≈ 1 and σ(−5) ≈ 0 for every sample.
    let mut m = Mlp::new(1, &[], 2, Task::MultiLabel, 0).unwrap();
    m.params_mut().copy_from_slice(&[0.0, 0.0, 5.0, -5.0]);
    let x = [0.0f32, 0.0];
    // Sample 0 all right; sample 1 wrong on its second label: subset accuracy
    // 1/2 (per-label accuracy would be 3/4).
    let y = [1.0f32, 0.0, 1.0, 1.0];
    assert_eq!(m.score(&x, 2, &Targets::Dense(&y)).unwrap(), 0.5);
}

#[test]
fn non_finite_gradient_is_divergence_with_or_without_clipping() {
    // Zero weights: the prediction is 0 and the loss 0.5·(1e10)² is finite,
    // but the weight gradient x·(p − t) = 1e30·1e10 overflows f32.
    let x = [1e30f32, 1.0, 1e30, 1.0];
    let y = [1e10f32, 1e10];
    for clip in [Some(1.0f32), None] {
        let mut m = Mlp::new(2, &[], 1, Task::Regression, 0).unwrap();
        m.params_mut().fill(0.0);
        let cfg = TrainConfig {
            solver: Solver::Sgd,
            momentum: 0.9,
            learning_rate_init: 1e-3,
            alpha: 0.0,
            batch_size: 1,
            max_iter: 3,
            shuffle: false,
            clip_norm: clip,
            ..Default::default()
        };
        match m.fit(&x, 2, Targets::Dense(&y), &cfg, None, None) {
            Err(Error::Diverged(msg)) => {
                println!("{clip:?}: {msg}");
                assert!(msg.contains("in epoch 1;"), "{msg}");
                if clip.is_some() {
                    assert!(msg.contains("gradient norm"), "{msg}");
                }
            }
            other => panic!("clip {clip:?}: expected divergence, got {other:?}"),
        }
        assert_eq!(m.params(), &[0.0, 0.0, 0.0], "the weights of the start of epoch 1");
    }
}

/// The digits scaled to [0, 1] keep their zeros (about half the values): the
/// sparse first layer trains as the dense one does, up to the rounding of
/// its sums, and `Auto` picks by the data's density.
#[test]
fn sparse_inputs_train_like_dense_ones() {
    let ds = read_csv(concat!(env!("CARGO_MANIFEST_DIR"), "/data/digits.csv"), -1).unwrap();
    let (mut tr, mut te) = ds.split(0.2, 0).unwrap();
    for v in tr.x.iter_mut().chain(te.x.iter_mut()) {
        *v /= 16.0;
    }
    let (ytr, yte) = (tr.labels().unwrap(), te.labels().unwrap());
    let fit = |mode: SparseInput, x: &[f32]| {
        let mut m = Mlp::new(tr.d, &[relu(64)], 10, Task::MultiClass, 0).unwrap();
        let cfg = TrainConfig {
            batch_size: 32,
            max_iter: 20,
            n_iter_no_change: 100,
            learning_rate_init: 3e-3,
            sparse_input: mode,
            ..Default::default()
        };
        let h = m.fit(x, tr.n, Targets::Labels(&ytr), &cfg, None, None).unwrap();
        (m, h)
    };
    let (md, hd) = fit(SparseInput::Dense, &tr.x);
    let (ms, hs) = fit(SparseInput::Sparse, &tr.x);
    let (ad, as_) = (
        md.score(&te.x, te.n, &Targets::Labels(&yte)).unwrap(),
        ms.score(&te.x, te.n, &Targets::Labels(&yte)).unwrap(),
    );
    println!("digits / 16: test accuracy dense {ad:.4}, sparse {as_:.4}");
    assert!(ad >= 0.95 && as_ >= 0.95, "dense {ad}, sparse {as_}");
    assert!((ad - as_).abs() <= 0.01, "dense {ad}, sparse {as_}");
    for (d, s) in hd.epochs.iter().zip(&hs.epochs) {
        assert!((d.loss - s.loss).abs() <= 1e-3 * d.loss.max(1e-3), "epoch {}: {} vs {}", d.epoch, d.loss, s.loss);
    }
    // Here (64 inputs, batch 32) both paths sum each product in one pass in
    // increasing k, and skipping exact zeros changes no sum: the same bits.
    assert!(md.params().iter().zip(ms.params()).all(|(a, b)| a.to_bits() == b.to_bits()));
    // The sparse path steps the first layer's weights inside its backward
    // pass (but with L1 or clipping, which need the whole gradient first);
    // the dense path steps after: the same bits for every rule, with and
    // without a hidden layer.
    let cases: [(Solver, f32, Option<f32>, usize); 7] = [
        (Solver::Sgd, 0.0, None, 1),
        (Solver::Sgd, 0.0, None, 0),
        (Solver::RmsProp, 0.0, None, 1),
        (Solver::AdamW, 0.0, None, 1),
        (Solver::Adam, 0.0, None, 0),
        (Solver::Adam, 1e-4, None, 1),
        (Solver::Adam, 0.0, Some(1.0), 1),
    ];
    for (solver, l1, clip_norm, nh) in cases {
        let fit = |mode: SparseInput| {
            let hidden = [relu(64)];
            let mut m = Mlp::new(tr.d, &hidden[..nh], 10, Task::MultiClass, 0).unwrap();
            let cfg = TrainConfig {
                batch_size: 32,
                max_iter: 3,
                learning_rate_init: if solver == Solver::Sgd { 0.05 } else { 3e-3 },
                momentum: 0.9,
                solver,
                l1,
                clip_norm,
                sparse_input: mode,
                ..Default::default()
            };
            m.fit(&tr.x, tr.n, Targets::Labels(&ytr), &cfg, None, None).unwrap();
            m
        };
        let (d, s) = (fit(SparseInput::Dense), fit(SparseInput::Sparse));
        assert!(
            d.params().iter().zip(s.params()).all(|(a, b)| a.to_bits() == b.to_bits()),
            "{solver:?}, l1 {l1}, clip {clip_norm:?}, {nh} hidden: sparse and dense differ"
        );
    }
    // Auto: dense on the standardized digits (no zeros left), sparse on a
    // copy with 80% of the values zeroed.
    let density = |x: &[f32]| x.iter().filter(|v| **v != 0.0).count() as f64 / x.len() as f64;
    let xz: Vec<f32> = tr.x.iter().enumerate().map(|(i, &v)| if i % 5 == 0 { v } else { 0.0 }).collect();
    assert!(density(&xz) <= SPARSE_AUTO_DENSITY && density(&tr.x) > SPARSE_AUTO_DENSITY);
    let (ma, _) = fit(SparseInput::Auto, &tr.x);
    assert!(ma.params().iter().zip(md.params()).all(|(a, b)| a.to_bits() == b.to_bits()), "auto → dense");
    let (ma, _) = fit(SparseInput::Auto, &xz);
    let (ms, _) = fit(SparseInput::Sparse, &xz);
    assert!(ma.params().iter().zip(ms.params()).all(|(a, b)| a.to_bits() == b.to_bits()), "auto → sparse");
    assert_eq!(SparseInput::from_code(2).unwrap(), SparseInput::Sparse);
    assert!(SparseInput::from_code(3).is_err());
}

/// Under L2, Adam drives the weights of an input that is always zero down
/// through the subnormal range (gradual underflow then keeps them there, as on
/// MNIST's border pixels). With `flush_denormals` (the default) they end at
/// zero; without, some stay subnormal. Either way `fit` gives the caller's
/// thread its own mode back.
#[test]
fn flush_denormals_keeps_subnormals_out_and_restores_the_mode() {
    let (n, d) = (64usize, 6usize);
    // Column 0 is always zero; the class is the sign of column 1.
    let x: Vec<f32> = (0..n * d)
        .map(|i| if i % d == 0 { 0.0 } else { (((i * 2654435761) >> 9) % 200) as f32 / 100.0 - 1.0 })
        .collect();
    let y: Vec<u32> = (0..n).map(|i| (x[i * d + 1] > 0.0) as u32).collect();
    for caller_flushes in [false, true] {
        let _caller = nnkern::simd::fp::FlushDenormals::new(caller_flushes);
        let caller = nnkern::simd::fp::flushing();
        fit_in_both_modes(&x, &y, n, d, caller);
    }
}

fn fit_in_both_modes(x: &[f32], y: &[u32], n: usize, d: usize, caller: bool) {
    let mut subnormal = [0usize; 2];
    for (k, flush) in [true, false].into_iter().enumerate() {
        let mut m = Mlp::new(d, &[relu(4)], 2, Task::MultiClass, 3).unwrap();
        let cfg = TrainConfig {
            batch_size: 4,
            max_iter: 400,
            alpha: 1e-2,
            tol: 0.0,
            n_iter_no_change: usize::MAX,
            sparse_input: SparseInput::Dense,
            flush_denormals: flush,
            ..Default::default()
        };
        m.fit(x, n, Targets::Labels(y), &cfg, None, None).unwrap();
        assert_eq!(nnkern::simd::fp::flushing(), caller, "fit restores the caller's mode");
        subnormal[k] = m.params().iter().filter(|v| v.is_subnormal()).count();
        assert!(m.score(x, n, &Targets::Labels(y)).unwrap() > 0.9);
        assert_eq!(nnkern::simd::fp::flushing(), caller, "score restores the caller's mode");
    }
    if cfg!(target_arch = "x86_64") {
        assert_eq!(subnormal[0], 0, "flushed: no subnormal weight");
        assert!(subnormal[1] > 0, "gradual underflow: the unused input's weights end subnormal ({subnormal:?})");
    }
    eprintln!("caller flushing {caller}: subnormal weights with / without flushing: {subnormal:?}");
}

/// A sparse matrix's rows (`fit_sparse`, from CSR) train to the same bits as
/// the same rows given densely, on the sparse path, the dense path (a
/// mini-batch written densely at a time) and Auto, with an early-stopping
/// split (its validation rows gathered from the sparse rows); a partial fit
/// continues alike; bad CSR is refused.
#[test]
fn sparse_rows_train_like_the_dense_rows() {
    let (xtr, ytr, _, _, ntr, _, d) = digits();
    let n = 400;
    // Keep the larger values only: about a third of the pixels stay nonzero.
    let x: Vec<f32> = xtr[..n * d].iter().map(|&v| if v > 0.5 { v } else { 0.0 }).collect();
    let y = &ytr[..n];
    assert!(ntr >= n);
    let (mut indptr, mut indices, mut data) = (vec![0usize], Vec::new(), Vec::new());
    for r in 0..n {
        for c in 0..d {
            let v = x[r * d + c];
            if v != 0.0 || c == 3 {
                indices.push(c as u32);
                data.push(v); // explicit zeros in column 3: dropped
            }
        }
        indptr.push(indices.len());
    }
    let s = SparseRows::from_csr(n, d, &indptr, &indices, &data).unwrap();
    assert_eq!(s.to_dense(), x);
    for mode in [SparseInput::Sparse, SparseInput::Dense, SparseInput::Auto] {
        let cfg = TrainConfig {
            max_iter: 3,
            batch_size: 32,
            early_stopping: true,
            n_iter_no_change: 100,
            sparse_input: mode,
            ..Default::default()
        };
        let new = || Mlp::new(d, &[relu(24)], 10, Task::MultiClass, 4).unwrap();
        let (mut a, mut b) = (new(), new());
        let ha = a.fit(&x, n, Targets::Labels(y), &cfg, None, None).unwrap();
        let hb = b.fit_sparse(&s, Targets::Labels(y), &cfg, None, None).unwrap();
        assert_eq!(a.params(), b.params(), "{mode:?}");
        assert_eq!(
            ha.epochs.iter().map(|e| e.val_score).collect::<Vec<_>>(),
            hb.epochs.iter().map(|e| e.val_score).collect::<Vec<_>>()
        );
        let pc = cfg.for_partial_fit();
        a.fit(&x, n, Targets::Labels(y), &pc, None, None).unwrap();
        b.fit_sparse(&s, Targets::Labels(y), &pc, None, None).unwrap();
        assert_eq!(a.params(), b.params(), "{mode:?} partial");
    }
    // Refused: a wrong width, offsets that disagree, unsorted or repeated or
    // out-of-range columns, non-finite values; the model is kept.
    let mut m = Mlp::new(d, &[relu(8)], 10, Task::MultiClass, 1).unwrap();
    let before = m.params().to_vec();
    let narrow =
        SparseRows::from_csr(n, d - 1, &indptr, &indices.iter().map(|&c| c.min(62)).collect::<Vec<_>>(), &data);
    assert!(narrow.is_err(), "repeated columns after clamping");
    let wide = SparseRows::from_csr(n, d + 1, &indptr, &indices, &data).unwrap();
    let e = m.fit_sparse(&wide, Targets::Labels(y), &TrainConfig::default(), None, None).unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch(_)), "{e}");
    assert!(SparseRows::from_csr(n, d, &indptr[..n], &indices, &data).is_err(), "short indptr");
    assert!(SparseRows::from_csr(usize::MAX, d, &indptr, &indices, &data).is_err(), "rows + 1 overflows");
    assert!(SparseRows::from_csr(n, d, &indptr, &indices, &data[1..]).is_err(), "short data");
    // An offset past nnz in the middle (then decreasing back to nnz): an
    // error, not a slice out of range.
    let e = SparseRows::from_csr(2, d, &[0, 2, 1], &[0], &[1.0]).unwrap_err();
    assert!(e.to_string().contains("beyond nnz"), "{e}");
    let mut bad = indices.clone();
    bad.swap(0, 1);
    assert!(SparseRows::from_csr(n, d, &indptr, &bad, &data).is_err(), "unsorted");
    bad = indices.clone();
    bad[0] = d as u32;
    assert!(SparseRows::from_csr(n, d, &indptr, &bad, &data).is_err(), "out of range");
    let mut nan = data.clone();
    nan[5] = f32::NAN;
    let sn = SparseRows::from_csr(n, d, &indptr, &indices, &nan).unwrap();
    let e = m.fit_sparse(&sn, Targets::Labels(y), &TrainConfig::default(), None, None).unwrap_err();
    assert!(matches!(e, Error::NonFinite(_)), "{e}");
    assert_eq!(m.params(), &before[..]);
}
