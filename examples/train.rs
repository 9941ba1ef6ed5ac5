//! The main demo: trains an MLP classifier and reports its test accuracy.
//!
//! With no arguments it trains on the UCI digits bundled in `data/digits.csv`
//! (seeded 80/20 split, standardised features). `--help` lists the flags.
//!
//! ```sh
//! cargo run --release --example train
//! cargo run --release --example train -- --idx ../shared/data/mnist --hidden 128 --epochs 10 --batch-size 32
//! ```

use nnkern::nn::data::{Dataset, Header, Scaler, load_mnist, read_csv, read_csv_with};
use nnkern::nn::{EpochRecord, Layer, Mlp, Solver, SparseInput, Targets, Task, TrainConfig};
use nnkern::ops::Activation;
use nnkern::par::Par;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;

const HELP: &str = "\
train: fit an MLP classifier with nnkern and print its test accuracy

USAGE: cargo run --release --example train -- [FLAGS]

Data (default: the bundled UCI digits, data/digits.csv, 80/20 split):
  --idx DIR             MNIST-style directory (train-/t10k- images and labels, .gz or not)
  --csv FILE            CSV of numbers (header optional); split 80/20
  --label-column N      CSV label column, 0-based, negative from the end (default -1)
  --header yes|no|auto  whether the CSV's first line is a header (default auto:
                        a first line without any number)
Model and training:
  --hidden 128,64       hidden layer widths (default 128)
  --activation NAME     relu|tanh|sigmoid|leaky_relu|elu|softplus|gelu|identity (default relu)
  --solver NAME         adam|adamw|sgd|rmsprop (default adam)
  --epochs N            epochs (default 30)
  --batch-size N        mini-batch size (default 32)
  --lr X                learning rate (default 0.001)
  --alpha X             L2 penalty, scikit-learn scaling (default 0.0001)
  --seed N              seed of initialisation, shuffling and split (default 0)
  --threads N           kernel threads (default: all cores)
  --early-stopping      hold out 10% and stop when its accuracy stalls
  --sparse auto|yes|no  first layer as a sparse product of the inputs' nonzeros
                        (default auto: when at most 25% of the inputs are nonzero)
  --keep-subnormals     train with IEEE gradual underflow instead of flushing
                        subnormal numbers to zero (slow on Intel cores)
Files:
  --save FILE           save the trained model
  --load FILE           load a model instead of training (evaluates it)
  --curve FILE          write the per-epoch history as CSV
  --plot FILE           write the loss/accuracy curves as an SVG
  --help                this text
";

struct Args {
    idx: Option<String>,
    csv: Option<String>,
    label_column: isize,
    header: Header,
    hidden: Vec<usize>,
    activation: Activation,
    solver: Solver,
    epochs: usize,
    batch: usize,
    lr: f32,
    alpha: f32,
    seed: u64,
    threads: Option<usize>,
    early: bool,
    sparse: SparseInput,
    keep_subnormals: bool,
    save: Option<String>,
    load: Option<String>,
    curve: Option<String>,
    plot: Option<String>,
}

/// `yes`, `no` or `auto` as the matching one of `[yes, no, auto]`.
fn yes_no_auto<T: Copy>(flag: &str, v: &str, [yes, no, auto]: [T; 3]) -> Result<T, String> {
    match v {
        "yes" => Ok(yes),
        "no" => Ok(no),
        "auto" => Ok(auto),
        _ => Err(format!("{flag}: yes, no or auto")),
    }
}

fn parse() -> Result<Option<Args>, String> {
    let mut a = Args {
        idx: None,
        csv: None,
        label_column: -1,
        header: Header::Auto,
        hidden: vec![128],
        activation: Activation::Relu,
        solver: Solver::Adam,
        epochs: 30,
        batch: 32,
        lr: 1e-3,
        alpha: 1e-4,
        seed: 0,
        threads: None,
        early: false,
        sparse: SparseInput::Auto,
        keep_subnormals: false,
        save: None,
        load: None,
        curve: None,
        plot: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        let num = |s: String, f: &str| s.parse::<f64>().map_err(|_| format!("{f}: '{s}' is not a number"));
        match flag.as_str() {
            "--help" | "-h" => return Ok(None),
            "--idx" => a.idx = Some(val()?),
            "--csv" => a.csv = Some(val()?),
            "--header" => a.header = yes_no_auto(&flag, &val()?, [Header::Present, Header::Absent, Header::Auto])?,
            "--label-column" => a.label_column = val()?.parse().map_err(|_| "--label-column: not an integer")?,
            "--hidden" => {
                a.hidden = val()?
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(|s| s.trim().parse::<usize>().map_err(|_| format!("--hidden: '{s}' is not a width")))
                    .collect::<Result<_, _>>()?
            }
            "--activation" => a.activation = Activation::from_name(&val()?).map_err(|e| e.to_string())?,
            "--solver" => a.solver = Solver::from_name(&val()?).map_err(|e| e.to_string())?,
            "--epochs" => a.epochs = num(val()?, "--epochs")? as usize,
            "--batch-size" => a.batch = num(val()?, "--batch-size")? as usize,
            "--lr" => a.lr = num(val()?, "--lr")? as f32,
            "--alpha" => a.alpha = num(val()?, "--alpha")? as f32,
            "--seed" => a.seed = num(val()?, "--seed")? as u64,
            "--threads" => a.threads = Some(num(val()?, "--threads")? as usize),
            "--early-stopping" => a.early = true,
            "--keep-subnormals" => a.keep_subnormals = true,
            "--sparse" => {
                a.sparse = yes_no_auto(&flag, &val()?, [SparseInput::Sparse, SparseInput::Dense, SparseInput::Auto])?
            }
            "--save" => a.save = Some(val()?),
            "--load" => a.load = Some(val()?),
            "--curve" => a.curve = Some(val()?),
            "--plot" => a.plot = Some(val()?),
            f => return Err(format!("unknown flag '{f}' (see --help)")),
        }
    }
    Ok(Some(a))
}

fn data(a: &Args) -> nnkern::Result<(Dataset, Dataset, &'static str)> {
    if let Some(dir) = &a.idx {
        let (tr, te) = load_mnist(dir)?;
        return Ok((tr, te, "MNIST"));
    }
    let (all, name) = match &a.csv {
        Some(f) => (read_csv_with(f, a.label_column, a.header)?, "CSV"),
        None => {
            let path = concat!(env!("CARGO_MANIFEST_DIR"), "/data/digits.csv");
            (read_csv(path, -1)?, "UCI digits (bundled)")
        }
    };
    let (mut tr, mut te) = all.split(0.2, a.seed)?;
    let sc = Scaler::standard(&tr.x, tr.d);
    sc.transform(&mut tr.x);
    sc.transform(&mut te.x);
    Ok((tr, te, name))
}

fn bar(done: usize, total: usize) -> String {
    let w = 20;
    let f = if total == 0 { w } else { done * w / total };
    format!("[{}{}]", "#".repeat(f), ".".repeat(w - f))
}

fn svg(hist: &[EpochRecord]) -> String {
    let (w, h, m) = (640.0, 360.0, 40.0);
    let n = hist.len().max(2) as f64;
    let lmax = hist.iter().map(|r| r.loss).fold(1e-9, f64::max);
    let x = |i: usize| m + (w - 2.0 * m) * i as f64 / (n - 1.0);
    let y = |v: f64| h - m - (h - 2.0 * m) * v;
    let line = |vals: Vec<f64>, color: &str| {
        let pts: Vec<String> = vals.iter().enumerate().map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v))).collect();
        format!("<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>", pts.join(" "))
    };
    let loss = line(hist.iter().map(|r| r.loss / lmax).collect(), "#c0392b");
    let acc = line(hist.iter().map(|r| r.score.unwrap_or(f64::NAN)).filter(|v| v.is_finite()).collect(), "#2471a3");
    let val = line(hist.iter().map(|r| r.val_score.unwrap_or(f64::NAN)).filter(|v| v.is_finite()).collect(), "#27ae60");
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\">\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\
         <line x1=\"{m}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"black\"/><line x1=\"{m}\" y1=\"{m}\" x2=\"{m}\" y2=\"{b}\" stroke=\"black\"/>\
         {loss}{acc}{val}<text x=\"{m}\" y=\"20\" font-family=\"sans-serif\" font-size=\"14\">\
         <tspan fill=\"#c0392b\">training loss (÷{lmax:.3})</tspan> · <tspan fill=\"#2471a3\">training accuracy</tspan> · <tspan fill=\"#27ae60\">validation accuracy</tspan> · epochs 1..{}</text></svg>\n",
        hist.len(),
        b = h - m,
        r = w - m
    )
}

fn run(a: Args) -> nnkern::Result<()> {
    if let Some(t) = a.threads {
        nnkern::par::set_num_threads(t);
    }
    let (train, test, name) = data(&a)?;
    let ytr = train.labels()?;
    let yte = test.labels()?;
    let k = (ytr.iter().chain(&yte).copied().max().unwrap_or(0) + 1).max(2) as usize;
    println!(
        "nnkern {} ({} kernels, {} threads): {name}, {} train / {} test samples, {} features, {k} classes",
        nnkern::VERSION,
        nnkern::simd::isa_name(),
        nnkern::par::num_threads(),
        train.n,
        test.n,
        train.d
    );
    let model = if let Some(path) = &a.load {
        let m = Mlp::load(path)?;
        println!("loaded {path}");
        m
    } else {
        let hidden: Vec<Layer> = a.hidden.iter().map(|&u| Layer { units: u, activation: a.activation }).collect();
        let mut m = Mlp::new(train.d, &hidden, k, Task::MultiClass, a.seed)?;
        let cfg = TrainConfig {
            solver: a.solver,
            learning_rate_init: a.lr,
            alpha: a.alpha,
            batch_size: a.batch,
            max_iter: a.epochs,
            random_state: a.seed,
            early_stopping: a.early,
            n_iter_no_change: if a.early { 10 } else { usize::MAX - 1 },
            par: Par::Default,
            sparse_input: a.sparse,
            flush_denormals: !a.keep_subnormals,
            ..Default::default()
        };
        let epochs = a.epochs;
        let mut log = |r: &EpochRecord| {
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
            if r.epoch == epochs || r.epoch % 10 == 0 || !std::io::stdout().is_terminal() {
                println!();
            }
            std::ops::ControlFlow::Continue(())
        };
        let t0 = std::time::Instant::now();
        let hist = m.fit(&train.x, train.n, Targets::Labels(&ytr), &cfg, None, Some(&mut log))?;
        let fit_secs = t0.elapsed().as_secs_f64();
        let secs: Vec<f64> = hist.epochs.iter().map(|r| r.seconds).collect();
        let mut sorted = secs.clone();
        sorted.sort_by(|x, y| x.partial_cmp(y).unwrap());
        println!(
            "epochs run: {}, median seconds per epoch: {:.3}, fit: {fit_secs:.3} s",
            secs.len(),
            sorted[sorted.len() / 2]
        );
        if let Some(f) = &a.curve {
            let mut s = String::from("epoch,loss,accuracy,val_loss,val_score,learning_rate,seconds\n");
            for r in &hist.epochs {
                s += &format!(
                    "{},{},{},{},{},{},{}\n",
                    r.epoch,
                    r.loss,
                    r.score.map_or(String::new(), |v| v.to_string()),
                    r.val_loss.map_or(String::new(), |v| v.to_string()),
                    r.val_score.map_or(String::new(), |v| v.to_string()),
                    r.learning_rate,
                    r.seconds
                );
            }
            std::fs::write(f, s)?;
        }
        if let Some(f) = &a.plot {
            std::fs::write(f, svg(&hist.epochs))?;
        }
        m
    };
    if let Some(path) = &a.save {
        model.save(path)?;
        println!("saved {path}");
    }
    let acc = model.score(&test.x, test.n, &Targets::Labels(&yte))?;
    println!("test accuracy: {acc:.4}");
    Ok(())
}

fn main() -> ExitCode {
    match parse() {
        Ok(None) => {
            print!("{HELP}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
        Ok(Some(a)) => match run(a) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
    }
}
