//! Data-parallel training over MPI (feature `mpi`), run under `mpirun
//! --oversubscribe -np 1|2` on this machine (shared memory and loopback
//! only): the scenarios of `examples/mpi_check.rs`, the main command with
//! `--distributed`, and a C program through the C ABI.
//!
//! The test builds what it runs with `--features mpi,capi` in its own target
//! directory (`target/ffi-mpi`). Without Open MPI (`mpirun`, `mpicc`:
//! Debian's openmpi-bin and libopenmpi-dev, and libclang-dev for rsmpi's
//! bindgen) it prints what it skipped; under CI a skip is a failure.

mod common;

use common::{have, profile_dir};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const FIX: &str = "apt-get install openmpi-bin libopenmpi-dev libclang-dev; .ci/run installs them";

/// Whether Open MPI is here (else skipped, with the reason).
fn have_mpi(what: &str) -> bool {
    have("mpirun", "openmpi-bin", what) && common::have_tool("mpicc", &["--showme:version"], what, FIX)
}

/// The directory of the `mpi,capi` build: examples `mpi_check` and `train`,
/// and `libnnkern.a` (built once per test binary).
fn built() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let profile = profile_dir();
        let release = profile.file_name().unwrap() == "release";
        let target = profile.parent().unwrap().join("ffi-mpi");
        let cargo = |args: &[&str]| {
            let mut cmd = Command::new(env!("CARGO"));
            cmd.args(args).current_dir(env!("CARGO_MANIFEST_DIR")).env("CARGO_TARGET_DIR", &target);
            if release {
                cmd.arg("--release");
            }
            let st = cmd.status().expect("cargo");
            assert!(st.success(), "cargo {} failed (MPI headers and libclang-dev are needed: {FIX})", args.join(" "));
        };
        cargo(&["build", "--quiet", "--features", "mpi,capi", "--example", "mpi_check", "--example", "train"]);
        cargo(&["rustc", "--lib", "--quiet", "--features", "mpi,capi", "--crate-type", "staticlib"]);
        target.join(if release { "release" } else { "debug" })
    })
}

/// Runs `mpirun -np ranks exe args…` and returns its stdout; fails on a
/// nonzero exit, and on a hang (killed after `limit`).
fn mpirun(ranks: usize, exe: &Path, args: &[&str], limit: Duration) -> String {
    mpirun_env(ranks, exe, args, limit, None, None)
}

/// [`mpirun`], the step's collectives through shared memory (`Some(true)`:
/// `NNKERN_MPI_SHM=1`), as send-receive rings (`Some(false)`: `0`) or, by
/// default, the faster of the two as timed at the start of each fit; and the
/// reduce-scatter's buckets of `bucket_kb` KiB (`NNKERN_MPI_BUCKET_KB`; by
/// default one bucket, every rank being on this machine).
fn mpirun_env(
    ranks: usize,
    exe: &Path,
    args: &[&str],
    limit: Duration,
    shm: Option<bool>,
    bucket_kb: Option<&str>,
) -> String {
    let out = std::env::temp_dir().join(format!("nnkern-mpi-{}-{}.out", std::process::id(), fastrand()));
    let file = std::fs::File::create(&out).unwrap();
    let mut cmd = Command::new("mpirun");
    cmd.args(["--allow-run-as-root", "--oversubscribe", "--mca", "btl_tcp_if_include", "lo"]);
    match shm {
        Some(on) => cmd.args(["-x", "NNKERN_MPI_SHM"]).env("NNKERN_MPI_SHM", if on { "1" } else { "0" }),
        None => cmd.env_remove("NNKERN_MPI_SHM"),
    };
    match bucket_kb {
        Some(kb) => cmd.args(["-x", "NNKERN_MPI_BUCKET_KB"]).env("NNKERN_MPI_BUCKET_KB", kb),
        None => cmd.env_remove("NNKERN_MPI_BUCKET_KB"),
    };
    let mut child = cmd
        .arg("-np")
        .arg(ranks.to_string())
        .arg(exe)
        .args(args)
        .stdout(file)
        .stderr(Stdio::inherit())
        .spawn()
        .expect("mpirun");
    let t0 = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("mpirun -np {ranks} {} {args:?} hung: killed after {limit:?}", exe.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let text = std::fs::read_to_string(&out).unwrap();
    let _ = std::fs::remove_file(&out);
    assert!(status.success(), "mpirun -np {ranks} {} {args:?}: {status}\n{text}", exe.display());
    text
}

fn fastrand() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// `mpi_check SCENARIO` on `ranks` ranks: each rank's line (`rank R: …`,
/// without the prefix) and the single-process line, if printed.
fn scenario(ranks: usize, name: &str) -> (Vec<String>, Option<String>) {
    scenario_env(ranks, name, None, None)
}

/// [`scenario`] with the collectives through shared memory or not, and
/// buckets of a size ([`mpirun_env`]).
fn scenario_env(ranks: usize, name: &str, shm: Option<bool>, kb: Option<&str>) -> (Vec<String>, Option<String>) {
    let exe = built().join("examples/mpi_check");
    let text = mpirun_env(ranks, &exe, &[name], Duration::from_secs(120), shm, kb);
    let mut lines = vec![String::new(); ranks];
    let mut single = None;
    for l in text.lines() {
        if let Some(rest) = l.strip_prefix("single: ") {
            single = Some(rest.to_string());
        } else if let Some(rest) = l.strip_prefix("rank ") {
            let (r, msg) = rest.split_once(": ").unwrap();
            let r: usize = r.parse().unwrap();
            lines[r].push_str(msg);
            lines[r].push('\n');
        }
    }
    assert!(lines.iter().all(|l| !l.is_empty()), "a rank printed nothing:\n{text}");
    (lines, single)
}

/// The loss curve and test accuracy of an `ok …` line.
fn curve(line: &str) -> (Vec<f64>, f64) {
    let f: Vec<&str> = line.split_whitespace().collect();
    let at = |k: &str| f[f.iter().position(|&w| w == k).unwrap() + 1];
    (at("loss").split(',').map(|v| v.parse().unwrap()).collect(), at("acc").parse().unwrap())
}

/// Every rank printed the same.
fn agree(lines: &[String]) -> &str {
    assert!(lines.iter().all(|l| l == &lines[0]), "the ranks differ:\n{}", lines.join("---\n"));
    &lines[0]
}

#[test]
fn one_rank_gives_the_bits_of_one_process() {
    if !have_mpi("one_rank_gives_the_bits_of_one_process") {
        return;
    }
    let (lines, single) = scenario(1, "bits");
    let (mine, single) = (lines[0].trim(), single.unwrap());
    assert!(mine.starts_with("ok "), "{mine}");
    // The same weights (hash), loss curve and accuracy, to the last bit.
    assert_eq!(mine, single);
}

#[test]
fn two_and_three_ranks_hold_the_same_weights_and_track_one_process() {
    if !have_mpi("two_and_three_ranks_hold_the_same_weights_and_track_one_process") {
        return;
    }
    // Three ranks: the ring collectives' parts travel more than one hop.
    // Each case through shared memory, as rings (mpi_check asserts which one
    // ran) and as chosen by timing: the same order of summation, the same
    // bits. The rings can send the gradient in buckets as the backward
    // pass makes them final (by default only across nodes): with 1 KiB
    // buckets one per layer, the first layer's weight gradient in 8 pieces
    // of 8 rows, each bucket's ring in flight while the next piece computes
    // (the pieces are GEMMs of fewer rows, so those bits may differ from
    // the default's within the GEMM bound).
    for (ranks, name, kb) in
        [(2, "bits", None), (2, "clip", None), (3, "bits", None), (2, "bits", Some("1")), (3, "bits", Some("1"))]
    {
        let (lines, single) = scenario_env(ranks, name, Some(true), kb);
        let name = format!("{ranks} ranks, {name}, buckets of {kb:?} KiB");
        let line = agree(&lines).trim().to_string();
        for shm in [Some(false), None] {
            let (other, _) = scenario_env(ranks, name.split(", ").nth(1).unwrap(), shm, kb);
            assert_eq!(line, agree(&other).trim(), "{name}: shared memory against {shm:?}");
        }
        if kb == Some("1") {
            // One bucket (the default on one node) and one per layer
            // (buckets of 64 KiB: no pieces here) give the same bits.
            let (one, _) = scenario_env(ranks, "bits", Some(false), Some("0"));
            let (layers, _) = scenario_env(ranks, "bits", Some(false), Some("64"));
            assert_eq!(agree(&one), agree(&layers), "{name}: one bucket against one per layer");
        }
        assert!(line.starts_with("ok "), "{name}: {line}");
        let ((l2, a2), (l1, a1)) = (curve(&line), curve(&single.unwrap()));
        assert_eq!(l2.len(), 3);
        for (e, (a, b)) in l2.iter().zip(&l1).enumerate() {
            // The gradients are summed in another order than one process's.
            assert!((a - b).abs() <= 1e-4 * b.abs(), "{name}: epoch {} loss {a} vs one process {b}", e + 1);
        }
        assert!((a2 - a1).abs() <= 0.005, "{name}: accuracy {a2} vs one process {a1}");
    }
}

#[test]
fn two_ranks_agree_after_every_epoch() {
    if !have_mpi("two_ranks_agree_after_every_epoch") {
        return;
    }
    let (lines, _) = scenario(2, "epochs");
    let all = agree(&lines);
    assert_eq!(all.lines().filter(|l| l.contains(" ok hash ")).count(), 3, "{all}");
    // Each partial_fit ends gathering the optimizer state, which the next
    // one starts from: the same weights after every epoch through shared
    // memory and as rings (mpi_check asserts which one ran).
    for shm in [true, false] {
        let (lines, _) = scenario_env(2, "epochs", Some(shm), None);
        assert_eq!(agree(&lines), all, "NNKERN_MPI_SHM={}", shm as u8);
    }
}

#[test]
fn a_bad_bucket_size_is_refused_on_every_rank() {
    if !have_mpi("a_bad_bucket_size_is_refused_on_every_rank") {
        return;
    }
    // Rank 0's size is every rank's: a value that is not a whole number of
    // KiB fails the fit on both ranks with the same message, before any
    // bucket is sent.
    let (lines, single) = scenario_env(2, "bits", Some(false), Some("1.5"));
    let line = agree(&lines).trim();
    assert!(line.starts_with("error ") && line.contains("NNKERN_MPI_BUCKET_KB=\"1.5\""), "{line}");
    assert!(single.unwrap().starts_with("ok "), "one process ignores the variable");
}

#[test]
fn local_shards_agree_and_learn() {
    if !have_mpi("local_shards_agree_and_learn") {
        return;
    }
    let (lines, _) = scenario(2, "local");
    let line = agree(&lines).trim();
    assert!(line.starts_with("ok "), "{line}");
    let (loss, acc) = curve(line);
    assert!(loss[2] < loss[0] && acc > 0.5, "{line}");
}

#[test]
fn one_rank_failing_gives_every_rank_the_same_error() {
    if !have_mpi("one_rank_failing_gives_every_rank_the_same_error") {
        return;
    }
    for (name, want) in [
        ("bad-data", "error 5 non-finite value: on rank 1 of 2: x[5][3] = NaN"),
        ("mismatch", "error 1 invalid argument: ranks 0 and 1 of 2 differ in the model's shape"),
        ("empty-shard", "error 1 invalid argument: on rank 1 of 2: no training samples"),
        ("bad-comm", "error 1 invalid argument: the MPI communicator of Fortran handle 987654 is not valid"),
    ] {
        let (lines, _) = scenario(2, name);
        let line = agree(&lines);
        assert!(line.starts_with(want), "{name}: {line}");
    }
}

#[test]
fn timing_the_collectives_refuses_bad_arguments_on_every_rank() {
    if !have_mpi("timing_the_collectives_refuses_bad_arguments_on_every_rank") {
        return;
    }
    let (lines, _) = scenario(2, "bad-collectives");
    let all = agree(&lines);
    let want = [
        "n 0 reps 10: error 1 invalid argument: time_collectives needs n > 0 floats and reps > 0",
        "n 1000 reps 0: error 1 invalid argument: time_collectives needs n > 0 floats and reps > 0",
        "n 2147483648 reps 10: error",
        "bad comm: error 1 invalid argument: the MPI communicator of Fortran handle 987654 is not valid",
    ];
    for (line, want) in all.lines().zip(want) {
        assert!(line.starts_with(want), "{line}\nwanted: {want}");
    }
    assert!(all.lines().nth(2).is_some_and(|l| l.contains("32-bit")), "{all}");
}

#[test]
fn early_stopping_stops_every_rank_in_the_same_epoch() {
    if !have_mpi("early_stopping_stops_every_rank_in_the_same_epoch") {
        return;
    }
    let (lines, _) = scenario(2, "early-stopping");
    let line = agree(&lines);
    assert!(line.contains("stopped Some((true, Some("), "{line}");
    let (loss, _) = curve(line);
    assert!(loss.len() < 200, "{line}");
}

#[test]
fn main_command_distributed_prints_and_saves_once() {
    if !have_mpi("main_command_distributed_prints_and_saves_once") {
        return;
    }
    let exe = built().join("examples/train");
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("mpi-cli");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let model = dir.join("model.nnk");
    let m = model.to_str().unwrap();
    let args = ["--distributed", "--epochs", "3", "--progress", "never", "--save", m];
    let text = mpirun(2, &exe, &args, Duration::from_secs(120));
    let count = |s: &str| text.lines().filter(|l| l.contains(s)).count();
    assert_eq!(count("2 ranks"), 1, "{text}");
    assert_eq!(count("saved "), 1, "{text}");
    assert_eq!(count("test accuracy"), 1, "{text}");
    assert_eq!(count("epochs run: 3 of 3"), 1, "{text}");
    for r in 0..2 {
        assert_eq!(count(&format!("rank {r}/2: ")), 1, "{text}");
    }
    assert!(model.exists());
    // Without mpirun the same flag trains alone, and prints as without it.
    let o = Command::new(&exe).args(["--distributed", "--epochs", "2", "--progress", "never"]).output().unwrap();
    let alone = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{alone}{}", String::from_utf8_lossy(&o.stderr));
    assert!(alone.contains("test accuracy") && !alone.contains("ranks"), "{alone}");
}

#[test]
fn c_program_trains_over_mpi() {
    if !have_mpi("c_program_trains_over_mpi") {
        return;
    }
    let dir = built();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let exe = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("mpi_train");
    let o = Command::new("mpicc")
        .args(["-std=c99", "-O1", "-Wall", "-Werror", "-o"])
        .arg(&exe)
        .arg(root.join("tests/c/mpi_train.c"))
        .arg("-I")
        .arg(root.join("include"))
        .arg(dir.join("libnnkern.a"))
        .args(common::NATIVE_LIBS)
        .output()
        .unwrap();
    assert!(o.status.success(), "mpicc: {}", String::from_utf8_lossy(&o.stderr));
    let text = mpirun(2, &exe, &[], Duration::from_secs(120));
    let mut fits: Vec<&str> =
        text.lines().filter(|l| l.contains(": fit ")).map(|l| &l[l.find(": ").unwrap()..]).collect();
    fits.dedup();
    assert_eq!(fits.len(), 1, "the ranks' predictions differ:\n{text}");
    let acc: f64 = fits[0].rsplit(' ').next().unwrap().parse().unwrap();
    assert!(acc > 0.9, "{text}");
    assert_eq!(text.matches(": 0 failures").count(), 2, "{text}");
    assert_eq!(
        text.matches("bad handle 1 invalid argument: the MPI communicator of Fortran handle 987654").count(),
        2,
        "{text}"
    );
}
