//! The main demo: trains an MLP classifier and reports its test accuracy.
//!
//! With no arguments it trains on the UCI digits bundled in `data/digits.csv`
//! (seeded 80/20 split, standardised features). `--help` lists the flags.
//!
//! ```sh
//! cargo run --release --example train
//! cargo run --release --example train -- --idx ../shared/data/mnist --hidden 128 --epochs 10 --batch-size 32
//! ```
//!
//! Every flag is checked before any data is read: integers must be integers
//! in range, numbers finite, output paths writable, and the flags that only
//! make sense when training are refused with `--load`. The model is saved and
//! the test accuracy printed before the optional outputs (`--curve`, `--plot`)
//! are written. A model saved here carries its input scaler, the data set's
//! fingerprint and the split's seed and fraction, so `--load` evaluates it on
//! exactly the rows it did not train on, and refuses other data.
//!
//! Progress within an epoch goes to stderr (at most 10 updates a second, with
//! the time left), by default only when stderr is a terminal (`--progress`).

use clap::{Parser, ValueEnum};
use nnkern::nn::data::{Dataset, Header, Scaler, load_mnist, read_csv_with};
use nnkern::nn::io::{DataRecord, ModelMeta, SplitRecord};
use nnkern::nn::{
    BatchProgress, EpochRecord, FitObserver, History, Layer, Mlp, Solver, SparseInput, Targets, Task, TrainConfig,
};
use nnkern::ops::Activation;
use nnkern::par::Par;
use std::io::{IsTerminal, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Fraction of a CSV's rows held out for testing.
const TEST_FRACTION: f64 = 0.2;
/// Improvement threshold of early stopping (the library's default `tol`).
const TOL: f32 = 1e-4;
/// Largest thread count (the C API's `nnk_set_num_threads` limit).
const MAX_THREADS: u64 = nnkern::par::MAX_THREADS as u64;

/// Fit an MLP classifier with nnkern and print its test accuracy.
///
/// Default data: the bundled UCI digits (data/digits.csv), split 80/20 by
/// --seed, features standardised on the training rows.
#[derive(Parser, Debug)]
#[command(name = "train", allow_negative_numbers = true, max_term_width = 100)]
struct Args {
    /// MNIST-style directory (train-/t10k- images and labels, .gz or not)
    #[arg(long, value_name = "DIR", conflicts_with = "csv", help_heading = "Data")]
    idx: Option<PathBuf>,
    /// CSV of numbers (header optional), split 80/20 by --seed
    #[arg(long, value_name = "FILE", help_heading = "Data")]
    csv: Option<PathBuf>,
    /// CSV label column, 0-based, negative from the end
    #[arg(long, value_name = "N", default_value_t = -1, requires = "csv", help_heading = "Data")]
    label_column: isize,
    /// Whether the CSV's first line is a header (auto: a first line without any number)
    #[arg(long, value_enum, value_name = "WHEN", default_value = "auto", requires = "csv", help_heading = "Data")]
    header: YesNoAuto,

    /// Hidden layer widths, comma-separated
    #[arg(long, value_name = "W,W,..", value_delimiter = ',', default_value = "128",
          value_parser = clap::value_parser!(u32).range(1..=1 << 24), help_heading = "Model and training")]
    hidden: Vec<u32>,
    /// Hidden activation: relu|tanh|sigmoid|leaky_relu|elu|softplus|gelu|identity
    #[arg(long, value_name = "NAME", default_value = "relu", value_parser = hidden_activation,
          help_heading = "Model and training")]
    activation: Activation,
    /// Optimizer: adam|adamw|sgd|rmsprop
    #[arg(long, value_name = "NAME", default_value = "adam", value_parser = solver, help_heading = "Model and training")]
    solver: Solver,
    /// Epochs (the most, with --early-stopping)
    #[arg(long, value_name = "N", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=1_000_000),
          help_heading = "Model and training")]
    epochs: u64,
    /// Mini-batch size, or auto (min(200, training rows))
    #[arg(long, value_name = "N|auto", default_value = "32", value_parser = batch_size,
          help_heading = "Model and training")]
    batch_size: BatchSize,
    /// Learning rate (finite, > 0)
    #[arg(long, value_name = "X", default_value_t = 1e-3, value_parser = positive, help_heading = "Model and training")]
    lr: f32,
    /// L2 penalty, scikit-learn scaling (finite, ≥ 0)
    #[arg(long, value_name = "X", default_value_t = 1e-4, value_parser = non_negative,
          help_heading = "Model and training")]
    alpha: f32,
    /// Seed of initialisation, shuffling and the train/test split
    #[arg(long, value_name = "N", default_value_t = 0, help_heading = "Model and training")]
    seed: u64,
    /// Kernel threads, 1 to 1024 (default: all cores)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=MAX_THREADS),
          help_heading = "Model and training")]
    threads: Option<u64>,
    /// Hold out 10% of the training rows, stop when their accuracy stalls, and keep the best epoch's weights
    #[arg(long, help_heading = "Model and training")]
    early_stopping: bool,
    /// With --early-stopping: stop after more than N epochs without improvement
    #[arg(long, value_name = "N", default_value_t = 10, requires = "early_stopping",
          value_parser = clap::value_parser!(u64).range(1..=1_000_000), help_heading = "Model and training")]
    patience: u64,
    /// First layer as a sparse product of the inputs' nonzeros (auto: when at most 25% are nonzero)
    #[arg(long, value_enum, value_name = "WHEN", default_value = "auto", help_heading = "Model and training")]
    sparse: YesNoAuto,
    /// Train with IEEE gradual underflow instead of flushing subnormals to zero (slow on Intel cores)
    #[arg(long, help_heading = "Model and training")]
    keep_subnormals: bool,
    /// Data-parallel training over MPI: run under `mpirun -np P` (build with --features mpi); each
    /// rank trains on its share of every batch, rank 0 prints and saves. Alone, it runs one rank
    #[arg(long, help_heading = "Model and training")]
    distributed: bool,

    /// Save the trained model (with its scaler and data split, for --load)
    #[arg(long, value_name = "FILE", help_heading = "Files")]
    save: Option<PathBuf>,
    /// Evaluate a saved model on the test rows of the data it was trained on, instead of training
    #[arg(long, value_name = "FILE", help_heading = "Files", conflicts_with_all = TRAINING_FLAGS)]
    load: Option<PathBuf>,
    /// Write the per-epoch history as CSV
    #[arg(long, value_name = "FILE", help_heading = "Files")]
    curve: Option<PathBuf>,
    /// Write the loss and accuracy curves as an SVG
    #[arg(long, value_name = "FILE", help_heading = "Files")]
    plot: Option<PathBuf>,
    /// Progress within epochs on stderr, with the time left (auto: when stderr is a terminal)
    #[arg(long, value_enum, value_name = "WHEN", default_value = "auto", help_heading = "Files")]
    progress: Progress,
}

/// The flags that only make sense when training: an error with `--load`.
const TRAINING_FLAGS: [&str; 15] = [
    "hidden",
    "activation",
    "solver",
    "epochs",
    "batch_size",
    "lr",
    "alpha",
    "seed",
    "early_stopping",
    "patience",
    "sparse",
    "keep_subnormals",
    "save",
    "curve",
    "plot",
];

#[derive(Clone, Copy, Debug, ValueEnum)]
enum YesNoAuto {
    Yes,
    No,
    Auto,
}

#[derive(Clone, Copy, Debug, PartialEq, ValueEnum)]
enum Progress {
    Auto,
    Always,
    Never,
}

#[derive(Clone, Copy, Debug)]
enum BatchSize {
    Auto,
    Rows(usize),
}

fn batch_size(s: &str) -> Result<BatchSize, String> {
    if s == "auto" {
        return Ok(BatchSize::Auto);
    }
    match s.parse::<u64>() {
        Ok(0) => Err("0 is not a batch size (use auto for min(200, rows))".into()),
        Ok(n) => usize::try_from(n).map(BatchSize::Rows).map_err(|_| format!("{n} is too large")),
        Err(e) => Err(format!("not a positive integer or auto ({e})")),
    }
}

fn finite(s: &str) -> Result<f32, String> {
    let v: f32 = s.parse().map_err(|e| format!("not a number ({e})"))?;
    if !v.is_finite() { Err(format!("{v} is not finite (as f32)")) } else { Ok(v) }
}

fn positive(s: &str) -> Result<f32, String> {
    let v = finite(s)?;
    if v > 0.0 { Ok(v) } else { Err(format!("{v} is not > 0")) }
}

fn non_negative(s: &str) -> Result<f32, String> {
    let v = finite(s)?;
    if v >= 0.0 { Ok(v) } else { Err(format!("{v} is not ≥ 0")) }
}

fn hidden_activation(s: &str) -> Result<Activation, String> {
    let a = Activation::from_name(s).map_err(|e| e.to_string())?;
    if a.is_rowwise() {
        return Err(format!("{s} is only allowed on the output layer"));
    }
    Ok(a)
}

fn solver(s: &str) -> Result<Solver, String> {
    Solver::from_name(s).map_err(|e| e.to_string())
}

/// An error of the main command: a message and the exit status (2 for usage).
struct Fail(String, u8);

impl From<nnkern::Error> for Fail {
    fn from(e: nnkern::Error) -> Fail {
        Fail(e.to_string(), 1)
    }
}

fn usage(msg: impl Into<String>) -> Fail {
    Fail(msg.into(), 2)
}

/// `path` with its directory made absolute (the file itself may not exist).
fn resolved(path: &Path) -> PathBuf {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    match path.file_name() {
        Some(name) => dir.join(name),
        None => dir,
    }
}

/// Checks before any work that `path` can be written: not a directory, in a
/// directory that exists and takes new files, and writable if it exists.
/// Nothing is created or changed.
fn check_output(flag: &str, path: &Path) -> Result<(), Fail> {
    let shown = path.display();
    if path.file_name().is_none() || path.is_dir() {
        return Err(usage(format!("{flag} '{shown}': is a directory, not a file path")));
    }
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return Err(usage(format!("{flag} '{shown}': directory '{}' does not exist", dir.display())));
    }
    // A probe file shows whether the directory takes new files (the model is
    // saved through a temporary file and a rename).
    let probe = dir.join(format!(".nnkern-train-probe-{}", std::process::id()));
    match std::fs::OpenOptions::new().write(true).create_new(true).open(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
        }
        Err(e) => return Err(usage(format!("{flag} '{shown}': cannot create files in '{}': {e}", dir.display()))),
    }
    if path.exists()
        && let Err(e) = std::fs::OpenOptions::new().append(true).open(path)
    {
        return Err(usage(format!("{flag} '{shown}': cannot be written: {e}")));
    }
    Ok(())
}

/// Every check that needs no data: output paths, and outputs that would
/// overwrite each other or an input.
fn check_paths(a: &Args) -> Result<(), Fail> {
    let outputs: Vec<(&str, &PathBuf)> = [("--save", &a.save), ("--curve", &a.curve), ("--plot", &a.plot)]
        .into_iter()
        .filter_map(|(f, p)| p.as_ref().map(|p| (f, p)))
        .collect();
    for (flag, p) in &outputs {
        check_output(flag, p)?;
    }
    let inputs: Vec<(&str, &PathBuf)> =
        [("--csv", &a.csv), ("--load", &a.load)].into_iter().filter_map(|(f, p)| p.as_ref().map(|p| (f, p))).collect();
    for (i, (f1, p1)) in outputs.iter().enumerate() {
        for (f2, p2) in outputs[i + 1..].iter().chain(&inputs) {
            if resolved(p1) == resolved(p2) {
                return Err(usage(format!("{f1} and {f2} name the same file '{}'", p1.display())));
            }
        }
    }
    Ok(())
}

/// The data: `(train, test, name, record of the data set, split, scaler)`.
struct Data {
    train: Dataset,
    test: Dataset,
    name: &'static str,
    meta: ModelMeta,
}

/// Loads the data. Training (`saved` = None): split by `--seed`, scaler fitted
/// on the training rows. Evaluating a saved model: the data must be the one it
/// was trained on, split and scaled as the model file records.
fn data(a: &Args, saved: Option<&ModelMeta>) -> Result<Data, Fail> {
    if let Some(dir) = &a.idx {
        let (train, test) = load_mnist(dir)?;
        let meta = ModelMeta { data: Some(record(&train)), split: None, scaler: None };
        if let Some(s) = saved {
            same_data(s, &meta, &format!("the MNIST training set in '{}'", dir.display()))?;
            if s.split.is_some() || s.scaler.is_some() {
                return Err(Fail(
                    "the model was trained on a split of its data, not on MNIST's training files".into(),
                    1,
                ));
            }
        }
        return Ok(Data { train, test, name: "MNIST", meta });
    }
    let (all, name) = match &a.csv {
        Some(f) => {
            let ds = read_csv_with(f, a.label_column, header(a.header)).map_err(|e| match e {
                // The one data-dependent flag: a column outside the file's.
                nnkern::Error::InvalidArgument(m) => usage(format!("--label-column {}: {m}", a.label_column)),
                e => e.into(),
            })?;
            (ds, "CSV")
        }
        None => {
            let path = concat!(env!("CARGO_MANIFEST_DIR"), "/data/digits.csv");
            (read_csv_with(path, -1, Header::Auto)?, "UCI digits (bundled)")
        }
    };
    let data = Some(record(&all));
    let (split, scaler) = match saved {
        None => {
            let split = SplitRecord { seed: a.seed, test_fraction: TEST_FRACTION };
            let (tr, _) = all.split(split.test_fraction, split.seed)?;
            (split, Scaler::standard(&tr.x, tr.d))
        }
        Some(s) => {
            same_data(s, &ModelMeta { data, ..Default::default() }, &format!("the {name} data"))?;
            let Some(split) = s.split else {
                return Err(Fail(
                    format!(
                        "the model was trained on all {} rows of this data set: no held-out rows are left to test it on",
                        all.n
                    ),
                    1,
                ));
            };
            let Some(scaler) = s.scaler.clone() else {
                return Err(Fail("the model file has no input scaler for this data".into(), 1));
            };
            (split, scaler)
        }
    };
    let (mut train, mut test) = all.split(split.test_fraction, split.seed)?;
    scaler.transform(&mut train.x);
    scaler.transform(&mut test.x);
    Ok(Data { train, test, name, meta: ModelMeta { data, split: Some(split), scaler: Some(scaler) } })
}

fn record(d: &Dataset) -> DataRecord {
    DataRecord { rows: d.n as u64, features: d.d as u64, fingerprint: d.fingerprint() }
}

/// Refuses to evaluate a model on data other than what it was trained on: its
/// test rows could then be rows it learned.
fn same_data(saved: &ModelMeta, here: &ModelMeta, what: &str) -> Result<(), Fail> {
    let (Some(s), Some(h)) = (saved.data, here.data) else {
        return Err(Fail("the model file does not record the data it was trained on".into(), 1));
    };
    if s != h {
        return Err(Fail(
            format!(
                "{what} ({} rows × {} features, fingerprint {:016x}) is not the data the model was trained on \
                 ({} rows × {} features, fingerprint {:016x}): its rows may overlap the training rows, so it is \
                 not evaluated",
                h.rows, h.features, h.fingerprint, s.rows, s.features, s.fingerprint
            ),
            1,
        ));
    }
    Ok(())
}

fn header(h: YesNoAuto) -> Header {
    match h {
        YesNoAuto::Yes => Header::Present,
        YesNoAuto::No => Header::Absent,
        YesNoAuto::Auto => Header::Auto,
    }
}

fn bar(done: usize, total: usize) -> String {
    let w = 20;
    let f = (done * w).checked_div(total).map_or(w, |f| f.min(w));
    format!("[{}{}]", "#".repeat(f), ".".repeat(w - f))
}

/// `4.2s` under a minute, then `m:ss`, and `h:mm:ss` from an hour.
fn clock(d: Duration) -> String {
    let s = d.as_secs();
    if s < 60 {
        format!("{:.1}s", d.as_secs_f64())
    } else if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

/// Prints each epoch's record on stdout and, if asked, progress within the
/// epoch on stderr (at most every 100 ms, with the time left).
struct Monitor {
    /// Prints nothing (ranks other than 0 of a distributed fit).
    quiet: bool,
    epochs: usize,
    progress: bool,
    stderr_tty: bool,
    stdout_tty: bool,
    early_stopping: bool,
    start: Instant,
    last: Option<Instant>,
    /// When the first batch was done.
    first: Option<Instant>,
    /// Whether a progress line is on the terminal (to be cleared).
    shown: bool,
}

impl Monitor {
    const EVERY: Duration = Duration::from_millis(100);

    fn clear(&mut self) {
        if self.shown {
            eprint!("\r\x1b[K");
            self.shown = false;
        }
    }
}

impl FitObserver for Monitor {
    fn on_batch(&mut self, p: &BatchProgress) {
        if !self.progress {
            return;
        }
        let now = Instant::now();
        if self.last.is_some_and(|t| now.duration_since(t) < Self::EVERY) {
            return;
        }
        self.last = Some(now);
        let done = (p.epoch - 1) * p.batches + p.batch;
        let total = p.max_epochs * p.batches;
        let elapsed = now.duration_since(self.start);
        // The rate from the first batch on: the first one also carries the
        // fit's setup (buffers, the sparse copy of the inputs).
        let first = *self.first.get_or_insert(now);
        let left = if done > 1 {
            let per = now.duration_since(first).div_f64((done - 1) as f64);
            clock(per.mul_f64((total - done) as f64))
        } else {
            "--:--".to_string()
        };
        let bound = if self.early_stopping { " at most" } else { "" };
        let line = format!(
            "epoch {}/{} {} batch {}/{} · {} elapsed · ETA{bound} {left}",
            p.epoch,
            p.max_epochs,
            bar(p.batch, p.batches),
            p.batch,
            p.batches,
            clock(elapsed),
        );
        if self.stderr_tty {
            eprint!("\r{line}\x1b[K");
            self.shown = true;
        } else {
            eprintln!("{line}");
        }
        let _ = std::io::stderr().flush();
    }

    fn on_epoch(&mut self, r: &EpochRecord) -> ControlFlow<()> {
        if self.quiet {
            return ControlFlow::Continue(());
        }
        self.clear();
        let epochs = self.epochs;
        let val = r.val_score.map_or(String::new(), |s| format!(" val_acc {s:.4}"));
        print!(
            "\repoch {:>3}/{epochs} {} loss {:.4} acc {:.4}{val} lr {:.1e} {:.2}s   ",
            r.epoch,
            bar(r.epoch, epochs),
            r.loss,
            r.score.unwrap_or(f64::NAN),
            r.learning_rate,
            r.seconds
        );
        let _ = std::io::stdout().flush();
        if r.epoch == epochs || r.epoch.is_multiple_of(10) || !self.stdout_tty {
            println!();
        }
        ControlFlow::Continue(())
    }
}

/// The summary line(s) after training: epochs run, early stopping, timing.
fn summary(h: &History, max_epochs: usize, patience: usize, fit_secs: f64) -> String {
    let mut secs: Vec<f64> = h.epochs.iter().map(|r| r.seconds).collect();
    secs.sort_by(f64::total_cmp);
    let ran = h.epochs.len();
    let mut s = String::new();
    if h.stopped_early {
        s += &format!(
            "early stopping: stopped at epoch {ran} of {max_epochs}, the validation accuracy had not improved by \
             more than {TOL} for more than {patience} epochs\n"
        );
    }
    if let Some(e) = h.restored_epoch {
        let v = h.epochs.get(e - 1).and_then(|r| r.val_score).unwrap_or(f64::NAN);
        s += &format!("early stopping: restored the weights of epoch {e} (best validation accuracy {v:.4})\n");
    }
    s += &format!(
        "epochs run: {ran} of {max_epochs}, median seconds per epoch: {:.3}, fit: {fit_secs:.3} s",
        secs.get(secs.len() / 2).copied().unwrap_or(0.0)
    );
    s
}

/// Ticks for `[lo, hi]`: a step of 1, 2 or 5 times a power of ten giving at
/// most `max` intervals, and the ticks on multiples of it.
fn ticks(lo: f64, hi: f64, max: usize) -> (f64, Vec<f64>) {
    let span = (hi - lo).max(1e-12);
    let raw = span / max as f64;
    let p = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * p).find(|s| *s >= raw).unwrap_or(10.0 * p);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step + 1e-9).floor() as i64;
    (step, (first..=last).map(|i| i as f64 * step).collect())
}

fn fmt_tick(v: f64, step: f64) -> String {
    let dec = if step >= 1.0 { 0 } else { (-step.log10().floor()) as usize };
    format!("{v:.dec$}")
}

/// Loss (right axis) and accuracy (left axis, 0 to 1) per epoch, with ticks,
/// tick values and axis titles; a legend entry only for the series drawn.
fn svg(hist: &History) -> String {
    let recs = &hist.epochs;
    let (w, h) = (760.0, 440.0);
    let (left, right, top, bottom) = (70.0, 80.0, 60.0, 60.0);
    let (pw, ph) = (w - left - right, h - top - bottom);
    let n = recs.len().max(1) as f64;
    let x_hi = n.max(2.0);
    let x = |e: f64| left + pw * (e - 1.0) / (x_hi - 1.0);
    let y_acc = |v: f64| top + ph * (1.0 - v);
    let lmax_data =
        recs.iter().flat_map(|r| [Some(r.loss), r.val_loss]).flatten().filter(|v| v.is_finite()).fold(0.0, f64::max);
    let (lstep, lticks) = ticks(0.0, lmax_data.max(1e-6), 6);
    let lmax = lticks.last().copied().filter(|&t| t >= lmax_data).unwrap_or(lmax_data + lstep);
    let y_loss = |v: f64| top + ph * (1.0 - v / lmax);
    let mut out = String::new();
    out += &format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    // Frame and axes.
    out += &format!("<rect x=\"{left}\" y=\"{top}\" width=\"{pw}\" height=\"{ph}\" fill=\"none\" stroke=\"black\"/>\n");
    // x: epochs.
    let (xstep, xt) = ticks(1.0, x_hi, 10);
    let xstep = xstep.max(1.0);
    for e in xt.iter().filter(|e| e.fract() == 0.0 && **e >= 1.0) {
        let px = x(*e);
        out += &format!(
            "<line class=\"tick x\" x1=\"{px:.1}\" y1=\"{b}\" x2=\"{px:.1}\" y2=\"{b6}\" stroke=\"black\"/>\
             <text x=\"{px:.1}\" y=\"{b20}\" text-anchor=\"middle\">{}</text>\n",
            fmt_tick(*e, xstep),
            b = top + ph,
            b6 = top + ph + 6.0,
            b20 = top + ph + 20.0
        );
    }
    out += &format!(
        "<text class=\"axis-title\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">epoch</text>\n",
        left + pw / 2.0,
        h - 15.0
    );
    // Left: accuracy.
    for i in 0..=5 {
        let v = i as f64 * 0.2;
        let py = y_acc(v);
        out += &format!(
            "<line class=\"tick acc\" x1=\"{l6}\" y1=\"{py:.1}\" x2=\"{left}\" y2=\"{py:.1}\" stroke=\"black\"/>\
             <line x1=\"{left}\" y1=\"{py:.1}\" x2=\"{r}\" y2=\"{py:.1}\" stroke=\"#dddddd\"/>\
             <text x=\"{l8}\" y=\"{py4:.1}\" text-anchor=\"end\">{v:.1}</text>\n",
            l6 = left - 6.0,
            l8 = left - 8.0,
            r = left + pw,
            py4 = py + 4.0
        );
    }
    out += &format!(
        "<text class=\"axis-title\" transform=\"translate(18 {:.1}) rotate(-90)\" text-anchor=\"middle\">accuracy</text>\n",
        top + ph / 2.0
    );
    // Right: loss.
    for t in &lticks {
        let py = y_loss(*t);
        out += &format!(
            "<line class=\"tick loss\" x1=\"{r}\" y1=\"{py:.1}\" x2=\"{r6}\" y2=\"{py:.1}\" stroke=\"black\"/>\
             <text x=\"{r8}\" y=\"{py4:.1}\">{}</text>\n",
            fmt_tick(*t, lstep),
            r = left + pw,
            r6 = left + pw + 6.0,
            r8 = left + pw + 8.0,
            py4 = py + 4.0
        );
    }
    out += &format!(
        "<text class=\"axis-title\" transform=\"translate({:.1} {:.1}) rotate(90)\" text-anchor=\"middle\">loss</text>\n",
        w - 18.0,
        top + ph / 2.0
    );
    // Series: only those with values.
    type Get = fn(&EpochRecord) -> Option<f64>;
    let series: [(&str, &str, &str, Get, bool); 4] = [
        ("training loss", "#c0392b", "", |r| Some(r.loss), true),
        ("validation loss", "#e67e22", "6 4", |r| r.val_loss, true),
        ("training accuracy", "#2471a3", "", |r| r.score, false),
        ("validation accuracy", "#27ae60", "6 4", |r| r.val_score, false),
    ];
    let mut legend = Vec::new();
    for (name, color, dash, get, is_loss) in series {
        let pts: Vec<String> = recs
            .iter()
            .filter_map(|r| get(r).filter(|v| v.is_finite()).map(|v| (r.epoch as f64, v)))
            .map(|(e, v)| format!("{:.1},{:.1}", x(e), if is_loss { y_loss(v) } else { y_acc(v.clamp(0.0, 1.0)) }))
            .collect();
        if pts.is_empty() {
            continue;
        }
        let dash = if dash.is_empty() { String::new() } else { format!(" stroke-dasharray=\"{dash}\"") };
        out += &format!(
            "<polyline class=\"series\" data-name=\"{name}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\"{dash} \
             points=\"{}\"/>\n",
            pts.join(" ")
        );
        legend.push((name, color, dash));
    }
    if let Some(e) = hist.restored_epoch {
        let px = x(e as f64);
        out += &format!(
            "<line x1=\"{px:.1}\" y1=\"{top}\" x2=\"{px:.1}\" y2=\"{b}\" stroke=\"#555555\" stroke-dasharray=\"2 3\"/>\
             <text x=\"{px4:.1}\" y=\"{t12}\" fill=\"#555555\">restored epoch {e}</text>\n",
            b = top + ph,
            px4 = px + 4.0,
            t12 = top + 12.0
        );
    }
    let mut lx = left;
    for (name, color, dash) in legend {
        out += &format!(
            "<g class=\"legend\"><line x1=\"{lx}\" y1=\"30\" x2=\"{l2}\" y2=\"30\" stroke=\"{color}\" stroke-width=\"2\"{dash}/>\
             <text x=\"{l3}\" y=\"34\">{name}</text></g>\n",
            l2 = lx + 24.0,
            l3 = lx + 30.0
        );
        lx += 40.0 + 7.0 * name.len() as f64;
    }
    out += "</svg>\n";
    out
}

fn curve_csv(hist: &History) -> String {
    let mut s = String::from("epoch,loss,accuracy,val_loss,val_score,learning_rate,seconds\n");
    let opt = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
    for r in &hist.epochs {
        s += &format!(
            "{},{},{},{},{},{},{}\n",
            r.epoch,
            r.loss,
            opt(r.score),
            opt(r.val_loss),
            opt(r.val_score),
            r.learning_rate,
            r.seconds
        );
    }
    s
}

fn write(flag: &str, path: &Path, text: &str) -> Result<(), Fail> {
    std::fs::write(path, text).map_err(|e| Fail(format!("{flag}: cannot write '{}': {e}", path.display()), 1))?;
    println!("wrote {}", path.display());
    Ok(())
}

/// MPI for `--distributed` (initialized once; finalized when dropped), and
/// this process's rank and the number of ranks.
#[cfg(feature = "mpi")]
fn start_mpi(a: &Args) -> Result<(Option<mpi::environment::Universe>, usize, usize), Fail> {
    use mpi::traits::Communicator;
    if !a.distributed {
        return Ok((None, 0, 1));
    }
    let (universe, _) = mpi::initialize_with_threading(mpi::Threading::Funneled)
        .ok_or_else(|| Fail("--distributed: MPI could not be initialized".into(), 1))?;
    let world = universe.world();
    let (rank, size) = (world.rank() as usize, world.size() as usize);
    Ok((Some(universe), rank, size))
}

#[cfg(not(feature = "mpi"))]
fn start_mpi(a: &Args) -> Result<(Option<()>, usize, usize), Fail> {
    if a.distributed {
        return Err(Fail(
            "--distributed needs the example built with MPI: cargo build --release --features mpi --example train \
             (Debian: libopenmpi-dev openmpi-bin libclang-dev)"
                .into(),
            2,
        ));
    }
    Ok((None, 0, 1))
}

fn run(a: Args) -> Result<(), Fail> {
    // Every check that needs no data comes first.
    check_paths(&a)?;
    if a.distributed && a.load.is_some() {
        return Err(Fail("--distributed trains; it cannot be used with --load".into(), 2));
    }
    let (_mpi, rank, ranks) = start_mpi(&a)?;
    let root = rank == 0;
    if let Some(t) = a.threads {
        nnkern::par::set_num_threads(t as usize)?;
    }
    let loaded = match &a.load {
        Some(path) => {
            let (m, meta) = Mlp::load_with_meta(path).map_err(|e| Fail(format!("--load: {e}"), 1))?;
            if meta.data.is_none() {
                return Err(Fail(
                    format!(
                        "'{}' does not record the data it was trained on (saved by an older version or without \
                         metadata): its test rows cannot be told apart from its training rows; train and save it again",
                        path.display()
                    ),
                    1,
                ));
            }
            Some((m, meta))
        }
        None => None,
    };
    let d = data(&a, loaded.as_ref().map(|(_, meta)| meta))?;
    let (train, test) = (&d.train, &d.test);
    let ytr = train.labels()?;
    let yte = test.labels()?;
    let k = (ytr.iter().chain(&yte).copied().max().unwrap_or(0) + 1).max(2) as usize;
    if root {
        let on = if ranks > 1 { format!(", {ranks} ranks") } else { String::new() };
        println!(
            "nnkern {} ({} kernels, {} threads{on}): {}, {} train / {} test samples, {} features, {k} classes",
            nnkern::VERSION,
            nnkern::simd::isa_name(),
            nnkern::par::num_threads(),
            d.name,
            train.n,
            test.n,
            train.d
        );
    }
    if let Some((model, _)) = &loaded {
        println!("loaded {}", a.load.as_ref().expect("loaded").display());
        let acc = model.score(&test.x, test.n, &Targets::Labels(&yte))?;
        println!("test accuracy: {acc:.4}");
        return Ok(());
    }
    if let BatchSize::Rows(b) = a.batch_size
        && b > train.n
        && root
    {
        eprintln!("warning: --batch-size {b} is larger than the {} training rows: one batch per epoch", train.n);
    }
    let hidden: Vec<Layer> = a.hidden.iter().map(|&u| Layer { units: u as usize, activation: a.activation }).collect();
    let mut model = Mlp::new(train.d, &hidden, k, Task::MultiClass, a.seed)?;
    let epochs = a.epochs as usize;
    let patience = a.patience as usize;
    let cfg = TrainConfig {
        solver: a.solver,
        learning_rate_init: a.lr,
        alpha: a.alpha,
        batch_size: match a.batch_size {
            BatchSize::Auto => 0,
            BatchSize::Rows(n) => n,
        },
        max_iter: epochs,
        random_state: a.seed,
        tol: TOL,
        early_stopping: a.early_stopping,
        n_iter_no_change: if a.early_stopping { patience } else { usize::MAX - 1 },
        par: Par::Default,
        sparse_input: match a.sparse {
            YesNoAuto::Yes => SparseInput::Sparse,
            YesNoAuto::No => SparseInput::Dense,
            YesNoAuto::Auto => SparseInput::Auto,
        },
        flush_denormals: !a.keep_subnormals,
        #[cfg(feature = "mpi")]
        distributed: a.distributed.then(nnkern::nn::dist::Distributed::world),
        ..Default::default()
    };
    let stderr_tty = std::io::stderr().is_terminal();
    let mut monitor = Monitor {
        quiet: !root,
        epochs,
        progress: root
            && match a.progress {
                Progress::Always => true,
                Progress::Never => false,
                Progress::Auto => stderr_tty,
            },
        stderr_tty,
        stdout_tty: std::io::stdout().is_terminal(),
        early_stopping: a.early_stopping,
        start: Instant::now(),
        last: None,
        first: None,
        shown: false,
    };
    let t0 = Instant::now();
    let fitted = model.fit_observed(&train.x, train.n, Targets::Labels(&ytr), &cfg, None, &mut monitor);
    monitor.clear();
    let hist = fitted?;
    #[cfg(feature = "mpi")]
    if let Some(r) = &hist.distributed {
        // Every rank's throughput, rank 0's after its summary below.
        if !root {
            println!("{}", throughput(r));
            return Ok(());
        }
    }
    if !root {
        return Ok(());
    }
    if monitor.stdout_tty && !hist.epochs.len().is_multiple_of(10) && hist.epochs.len() != epochs {
        println!(); // the last epoch line is unfinished on a terminal
    }
    println!("{}", summary(&hist, epochs, patience, t0.elapsed().as_secs_f64()));
    #[cfg(feature = "mpi")]
    if let Some(r) = &hist.distributed {
        println!("{}", throughput(r));
    }
    // The model and the test accuracy first; then the optional outputs.
    if let Some(path) = &a.save {
        model.save_with_meta(path, &d.meta)?;
        println!("saved {}", path.display());
    }
    let acc = model.score(&test.x, test.n, &Targets::Labels(&yte))?;
    println!("test accuracy: {acc:.4}");
    if let Some(f) = &a.curve {
        write("--curve", f, &curve_csv(&hist))?;
    }
    if let Some(f) = &a.plot {
        write("--plot", f, &svg(&hist))?;
    }
    Ok(())
}

/// One rank's line after a distributed fit.
#[cfg(feature = "mpi")]
fn throughput(r: &nnkern::nn::dist::DistReport) -> String {
    format!(
        "rank {}/{}: {} samples in {:.3} s ({:.0} samples/s), {:.1}% of it in communication ({})",
        r.rank,
        r.ranks,
        r.samples,
        r.seconds,
        r.samples as f64 / r.seconds.max(1e-9),
        100.0 * r.communication_share(),
        if r.shared_memory {
            "shared memory".to_string()
        } else {
            format!("send-receive rings in {} bucket{}", r.buckets, if r.buckets == 1 { "" } else { "s" })
        }
    )
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Fail(msg, code)) => {
            eprintln!("error: {msg}");
            ExitCode::from(code)
        }
    }
}
