//! The main command, `examples/train.rs`, run as a user runs it: refused flags,
//! output paths checked before training, `--load` evaluating only on the rows
//! the model did not train on, the early-stopping summary, the SVG plot and
//! progress within epochs.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `target/<profile>/examples/train`, built once per test run.
fn exe() -> PathBuf {
    static EXE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    EXE.get_or_init(|| {
        let profile = common::profile_dir();
        let release = profile.file_name().unwrap() == "release";
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["build", "--example", "train", "--quiet"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("CARGO_TARGET_DIR", profile.parent().unwrap());
        if release {
            cmd.arg("--release");
        }
        assert!(cmd.status().expect("cargo build").success(), "cargo build --example train failed");
        let exe = profile.join("examples").join(format!("train{}", std::env::consts::EXE_SUFFIX));
        assert!(exe.exists(), "{} missing", exe.display());
        exe
    })
    .clone()
}

/// A fresh scratch directory for one test.
fn scratch(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

struct Run {
    code: i32,
    out: String,
    err: String,
}

fn run(dir: &Path, args: &[&str]) -> Run {
    let o: Output = Command::new(exe()).args(args).current_dir(dir).env("NNK_NUM_THREADS", "1").output().unwrap();
    Run {
        code: o.status.code().unwrap_or(-1),
        out: String::from_utf8_lossy(&o.stdout).into_owned(),
        err: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// The `test accuracy: …` value printed.
fn accuracy(out: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix("test accuracy: "))
        .unwrap_or_else(|| panic!("no accuracy in:\n{out}"))
        .into()
}

#[test]
fn bad_values_are_refused_before_any_data_naming_the_flag() {
    let dir = scratch("values");
    let cases: &[(&[&str], &str)] = &[
        (&["--epochs", "2.7"], "--epochs"),
        (&["--epochs", "0"], "--epochs"),
        (&["--seed", "-5"], "--seed"),
        (&["--seed", "1e3"], "--seed"),
        (&["--batch-size", "-1"], "--batch-size"),
        (&["--batch-size", "0"], "--batch-size"),
        (&["--batch-size", "3.5"], "--batch-size"),
        (&["--threads", "5000"], "--threads"),
        (&["--threads", "0"], "--threads"),
        (&["--threads", "-2"], "--threads"),
        (&["--lr", "nan"], "--lr"),
        (&["--lr", "0"], "--lr"),
        (&["--lr", "1e39"], "--lr"),
        (&["--alpha", "-1"], "--alpha"),
        (&["--alpha", "inf"], "--alpha"),
        (&["--hidden", "64,x"], "--hidden"),
        (&["--hidden", "0"], "--hidden"),
        (&["--hidden", "1.5"], "--hidden"),
        (&["--activation", "softmax"], "--activation"),
        (&["--activation", "swish"], "--activation"),
        (&["--solver", "lbfgs"], "--solver"),
        (&["--sparse", "maybe"], "--sparse"),
        (&["--patience", "3"], "--early-stopping"),
        (&["--early-stopping", "--patience", "2.5"], "--patience"),
        (&["--label-column", "2"], "--csv"),
        (&["--idx", "x", "--csv", "y"], "--csv"),
        (&["--csv", "missing.csv", "--progress", "sometimes"], "--progress"),
    ];
    for (args, flag) in cases {
        let r = run(&dir, args);
        assert_eq!(r.code, 2, "{args:?} accepted:\n{}{}", r.out, r.err);
        assert!(r.err.contains(flag), "{args:?}: the error does not name {flag}: {}", r.err);
        assert!(r.out.is_empty(), "{args:?} went on to load data or train:\n{}", r.out);
    }
    // The one check that needs the data names its flag too.
    let csv = concat!(env!("CARGO_MANIFEST_DIR"), "/data/digits.csv");
    let r = run(&dir, &["--csv", csv, "--label-column", "65"]);
    assert_eq!(r.code, 2, "{}{}", r.out, r.err);
    assert!(r.err.contains("--label-column 65") && !r.out.contains("epoch"), "{}", r.err);
    // What is accepted: integers, `auto`, negative label columns.
    let ok = run(&dir, &["--epochs", "1", "--batch-size", "auto", "--threads", "1", "--seed", "18446744073709551615"]);
    assert_eq!(ok.code, 0, "{}{}", ok.out, ok.err);
    assert!(ok.out.contains("1 threads") && ok.out.contains("epochs run: 1 of 1"), "{}", ok.out);
    let ok = run(&dir, &["--epochs", "1", "--csv", csv, "--label-column", "-1", "--header", "yes"]);
    assert_eq!(ok.code, 0, "{}{}", ok.out, ok.err);
}

#[test]
fn training_flags_with_load_are_errors() {
    let dir = scratch("loadflags");
    let training: &[&[&str]] = &[
        &["--seed", "0"],
        &["--epochs", "3"],
        &["--hidden", "10"],
        &["--activation", "tanh"],
        &["--solver", "sgd"],
        &["--batch-size", "16"],
        &["--lr", "0.1"],
        &["--alpha", "0"],
        &["--early-stopping"],
        &["--sparse", "no"],
        &["--keep-subnormals"],
        &["--save", "again.bin"],
        &["--curve", "c.csv"],
        &["--plot", "p.svg"],
    ];
    for extra in training {
        let mut args = vec!["--load", "m.bin"];
        args.extend_from_slice(extra);
        let r = run(&dir, &args);
        assert_eq!(r.code, 2, "{args:?} accepted:\n{}{}", r.out, r.err);
        assert!(r.err.contains("--load") && r.err.contains(extra[0]), "{args:?}: {}", r.err);
    }
}

#[test]
fn output_paths_are_checked_before_training() {
    let dir = scratch("paths");
    let cases: &[(&[&str], &str)] = &[
        (&["--curve", "no/such/dir/c.csv"], "no/such/dir/c.csv"),
        (&["--plot", "missing/p.svg"], "missing/p.svg"),
        (&["--save", "gone/m.bin"], "gone/m.bin"),
        (&["--save", "."], "'.'"),
        (&["--save", "m.bin", "--curve", "./m.bin"], "same file"),
        (&["--save", "digits.csv", "--csv", "digits.csv"], "same file"),
    ];
    std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/data/digits.csv"), dir.join("digits.csv")).unwrap();
    for (args, what) in cases {
        let r = run(&dir, args);
        assert_eq!(r.code, 2, "{args:?}:\n{}{}", r.out, r.err);
        assert!(r.err.contains(what), "{args:?}: the error does not show {what}: {}", r.err);
        assert!(!r.out.contains("epoch"), "{args:?} trained first:\n{}", r.out);
    }
    assert!(!dir.join("m.bin").exists());
    // A good run saves the model and prints the accuracy before the optional outputs.
    let r = run(&dir, &["--epochs", "2", "--save", "m.bin", "--curve", "c.csv", "--plot", "p.svg"]);
    assert_eq!(r.code, 0, "{}{}", r.out, r.err);
    let at = |s: &str| r.out.find(s).unwrap_or_else(|| panic!("no '{s}' in\n{}", r.out));
    assert!(at("saved m.bin") < at("test accuracy") && at("test accuracy") < at("wrote c.csv"), "{}", r.out);
    assert!(at("wrote c.csv") < at("wrote p.svg"));
    assert_eq!(std::fs::read_to_string(dir.join("c.csv")).unwrap().lines().count(), 3);
}

#[test]
fn load_evaluates_on_the_models_own_test_rows_only() {
    let dir = scratch("load");
    let trained = run(&dir, &["--seed", "3", "--epochs", "5", "--hidden", "32", "--save", "m3.bin"]);
    assert_eq!(trained.code, 0, "{}{}", trained.out, trained.err);
    // `--load` re-creates the seed-3 split and scaler from the file: the same
    // test rows, the same accuracy to the last digit.
    let loaded = run(&dir, &["--load", "m3.bin"]);
    assert_eq!(loaded.code, 0, "{}{}", loaded.out, loaded.err);
    assert_eq!(accuracy(&loaded.out), accuracy(&trained.out));
    assert!(loaded.out.contains("1438 train / 359 test"), "{}", loaded.out);
    // The same data from a CSV path is fine; other data is refused.
    let csv = dir.join("digits.csv");
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/data/digits.csv")).unwrap();
    std::fs::write(&csv, &text).unwrap();
    let same = run(&dir, &["--load", "m3.bin", "--csv", "digits.csv"]);
    assert_eq!((same.code, accuracy(&same.out)), (0, accuracy(&trained.out)), "{}", same.err);
    let mut lines: Vec<&str> = text.lines().collect();
    lines.swap(10, 20);
    std::fs::write(&csv, lines.join("\n")).unwrap();
    let other = run(&dir, &["--load", "m3.bin", "--csv", "digits.csv"]);
    assert_eq!(other.code, 1, "reordered data evaluated:\n{}", other.out);
    assert!(other.err.contains("not the data the model was trained on") && !other.out.contains("accuracy"));
    // A model file without the record (saved by the library without
    // metadata, as every older file) is refused, not re-split.
    let m = nnkern::nn::Mlp::load(dir.join("m3.bin")).unwrap();
    m.save(dir.join("bare.bin")).unwrap();
    let bare = run(&dir, &["--load", "bare.bin"]);
    assert_eq!(bare.code, 1, "{}", bare.out);
    assert!(bare.err.contains("bare.bin") && bare.err.contains("does not record"), "{}", bare.err);
}

#[test]
fn early_stopping_is_reported_with_the_restored_epoch() {
    let dir = scratch("early");
    let r = run(&dir, &["--early-stopping", "--patience", "2", "--epochs", "500", "--curve", "c.csv"]);
    assert_eq!(r.code, 0, "{}{}", r.out, r.err);
    let num = |prefix: &str| -> usize {
        let l = r.out.lines().find(|l| l.contains(prefix)).unwrap_or_else(|| panic!("no '{prefix}' in\n{}", r.out));
        let rest = &l[l.find(prefix).unwrap() + prefix.len()..];
        rest.split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap()
    };
    let stopped = num("stopped at epoch ");
    let restored = num("restored the weights of epoch ");
    assert!(r.out.contains(&format!("stopped at epoch {stopped} of 500")), "{}", r.out);
    assert!(r.out.contains(&format!("epochs run: {stopped} of 500")), "{}", r.out);
    // Stopped after more than `patience` epochs without improvement.
    assert_eq!(stopped - restored, 3, "{}", r.out);
    // The restored epoch is the first with the best validation accuracy.
    let curve = std::fs::read_to_string(dir.join("c.csv")).unwrap();
    let val: Vec<f64> = curve.lines().skip(1).map(|l| l.split(',').nth(4).unwrap().parse().unwrap()).collect();
    assert_eq!(val.len(), stopped);
    let best = val.iter().copied().fold(f64::MIN, f64::max);
    assert_eq!(val.iter().position(|&v| v == best).unwrap() + 1, restored);
    // Without early stopping nothing of the kind is claimed.
    let plain = run(&dir, &["--epochs", "3"]);
    assert!(!plain.out.contains("early stopping") && plain.out.contains("epochs run: 3 of 3"), "{}", plain.out);
}

#[test]
fn plot_has_labelled_axes_ticks_and_only_the_series_that_exist() {
    let dir = scratch("plot");
    let r = run(&dir, &["--epochs", "12", "--plot", "p.svg"]);
    assert_eq!(r.code, 0, "{}{}", r.out, r.err);
    let svg = std::fs::read_to_string(dir.join("p.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    for title in [">epoch</text>", ">accuracy</text>", ">loss</text>"] {
        assert!(svg.contains(title), "no axis title {title}");
    }
    // Epoch ticks (2, 4, … 12), accuracy ticks 0.0 … 1.0, loss ticks.
    assert!(svg.matches("class=\"tick x\"").count() >= 5, "{svg}");
    assert_eq!(svg.matches("class=\"tick acc\"").count(), 6);
    assert!(svg.matches("class=\"tick loss\"").count() >= 3);
    for v in [">12</text>", ">0.0</text>", ">0.6</text>", ">1.0</text>"] {
        assert!(svg.contains(v), "no tick value {v}");
    }
    let series = |s: &str| svg.matches(s).count();
    assert_eq!(series("data-name=\"training loss\""), 1);
    assert_eq!(series("data-name=\"training accuracy\""), 1);
    assert!(!svg.contains("validation"), "a validation entry without validation data");
    let r = run(&dir, &["--epochs", "12", "--early-stopping", "--plot", "p.svg"]);
    assert_eq!(r.code, 0, "{}{}", r.out, r.err);
    let svg = std::fs::read_to_string(dir.join("p.svg")).unwrap();
    for name in ["training loss", "validation loss", "training accuracy", "validation accuracy"] {
        assert_eq!(svg.matches(&format!("data-name=\"{name}\"")).count(), 1, "{name}");
        assert!(svg.contains(&format!(">{name}</text>")), "legend {name}");
    }
    assert!(svg.contains("restored epoch"));
}

#[test]
fn progress_within_epochs_goes_to_stderr_when_asked() {
    let dir = scratch("progress");
    // 1438 rows in batches of 8: 180 batches per epoch; the first is always shown.
    let r = run(&dir, &["--epochs", "2", "--batch-size", "8", "--progress", "always"]);
    assert_eq!(r.code, 0, "{}{}", r.out, r.err);
    assert!(r.err.contains("epoch 1/2") && r.err.contains("batch 1/180") && r.err.contains("ETA"), "{}", r.err);
    assert!(!r.out.contains("ETA"), "progress on stdout");
    // Throttled: far fewer lines than batches.
    assert!(r.err.lines().count() < 60, "{} progress lines", r.err.lines().count());
    // Off by default when stderr is not a terminal, and with never.
    for extra in [&[][..], &["--progress", "never"][..]] {
        let mut args = vec!["--epochs", "2", "--batch-size", "8"];
        args.extend_from_slice(extra);
        let r = run(&dir, &args);
        assert_eq!((r.code, r.err.as_str()), (0, ""), "{args:?}");
    }
}
