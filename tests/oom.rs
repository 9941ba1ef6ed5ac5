//! Resource limits are errors or fallbacks, never aborts. Each case runs in a
//! child process (this test binary again, asked for one test) under
//! `setrlimit(RLIMIT_AS)`, so that an abort would only take the child down
//! and be reported here.
#![cfg(target_os = "linux")]

use nnkern::gemm::{Backend, GemmOptions, MatMut, MatRef, gemm_with};
use nnkern::par::Par;
use std::process::Command;

const CHILD: &str = "NNK_LIMIT_CHILD";

/// In the child: whether this process is the child for `case`.
fn is_child(case: &str) -> bool {
    std::env::var(CHILD).is_ok_and(|v| v == case)
}

/// The process's current address-space size in bytes (`VmSize`).
fn vm_size() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = s
        .lines()
        .find_map(|l| l.strip_prefix("VmSize:"))
        .unwrap()
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kb * 1024
}

/// Limits this process's address space to what it uses now plus `slack`
/// bytes (the soft limit: [`lift_address_space_limit`] undoes it).
fn limit_address_space(slack: u64) {
    let lim = vm_size() + slack;
    let r = libc::rlimit { rlim_cur: lim, rlim_max: libc::RLIM_INFINITY };
    // SAFETY: setrlimit reads the struct we pass; it changes only this process.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_AS, &r) };
    assert_eq!(rc, 0, "setrlimit(RLIMIT_AS)");
}

/// Lifts the limit [`limit_address_space`] set.
fn lift_address_space_limit() {
    let r = libc::rlimit { rlim_cur: libc::RLIM_INFINITY, rlim_max: libc::RLIM_INFINITY };
    // SAFETY: as in `limit_address_space`.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_AS, &r) };
    assert_eq!(rc, 0, "setrlimit(RLIMIT_AS)");
}

/// The end of a child's case: lifts the limit, so that what runs at exit
/// can allocate (OpenBLAS, linked with the `blas` feature, starts a worker at
/// load that allocates its buffer when shut down, and retries forever when
/// it cannot), then says `CASE OK`.
fn case_ok() {
    lift_address_space_limit();
    println!("CASE OK");
}

/// Runs test `case` of this binary in a child process and asserts that it
/// exited normally, within two minutes, having printed `CASE OK`.
fn run_child(case: &str) {
    let dir = std::env::temp_dir();
    let tag = format!("nnkern-oom-{}-{}", std::process::id(), case.replace("::", "-"));
    let (out_path, err_path) = (dir.join(format!("{tag}.out")), dir.join(format!("{tag}.err")));
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([case, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, case)
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st);
        }
        if t0.elapsed() > std::time::Duration::from_secs(120) {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let out = std::fs::read_to_string(&out_path).unwrap_or_default()
        + &std::fs::read_to_string(&err_path).unwrap_or_default();
    let _ = (std::fs::remove_file(&out_path), std::fs::remove_file(&err_path));
    let Some(status) = status else { panic!("child for {case} hung: killed after 120 s\n{out}") };
    assert!(status.success() && out.contains("CASE OK"), "child for {case} failed ({status:?}):\n{out}");
}

/// `C = A·B` (n×n, row-major) on the native backend into `c`.
fn product_into(threads: Par, a: &[f32], b: &[f32], n: usize, c: &mut [f32]) {
    let mut o = GemmOptions::default();
    o.backend = Some(Backend::Native);
    o.par = threads;
    let (av, bv) = (MatRef::row_major(a, n, n, n).unwrap(), MatRef::row_major(b, n, n, n).unwrap());
    gemm_with(1.0, av, bv, 0.0, MatMut::row_major(c, n, n, n).unwrap(), &o).unwrap();
}

fn product(threads: Par, a: &[f32], b: &[f32], n: usize) -> Vec<f32> {
    let mut c = vec![0.0f32; n * n];
    product_into(threads, a, b, n, &mut c);
    c
}

/// A pool whose threads cannot start (no address space left for their
/// stacks) runs the work on the caller's thread, with the same bits.
#[test]
fn threads_that_cannot_start_mean_serial_same_bits() {
    let case = "threads_that_cannot_start_mean_serial_same_bits";
    if !is_child(case) {
        return run_child(case);
    }
    let n = 160; // 8 Mflop: split over up to 4 tasks natively
    let a: Vec<f32> = (0..n * n).map(|i| ((i * 37) % 101) as f32 / 7.0 - 7.0).collect();
    let b: Vec<f32> = (0..n * n).map(|i| ((i * 53) % 97) as f32 / 5.0 - 9.0).collect();
    let seq = product(Par::Seq, &a, &b, n);
    // The products' outputs, allocated before the limit.
    let mut outs = vec![vec![0.0f32; n * n]; 3];
    limit_address_space(256 << 10);
    // The limit really stops threads: a plain spawn fails now.
    let probe = std::thread::Builder::new().spawn(|| ());
    assert!(probe.is_err(), "the address-space limit did not stop a thread spawn");
    for (threads, out) in [4, 3, 2].into_iter().zip(&mut outs) {
        product_into(Par::Threads(threads), &a, &b, n, out);
        assert!(out.iter().zip(&seq).all(|(x, y)| x.to_bits() == y.to_bits()), "{threads} threads changed the bits");
    }
    case_ok();
}

mod fallible {
    use super::{is_child, limit_address_space, run_child};
    use nnkern::Error;
    use nnkern::nn::data::{read_csv, read_idx};
    use nnkern::nn::{Layer, Mlp, Targets, Task, TrainConfig, Workspace};
    use nnkern::ops::Activation;

    const MIB: u64 = 1 << 20;

    fn model(n_in: usize, hidden: usize) -> Mlp {
        Mlp::new(n_in, &[Layer { units: hidden, activation: Activation::Relu }], 10, Task::MultiClass, 1).unwrap()
    }

    fn data(n: usize, d: usize) -> (Vec<f32>, Vec<u32>) {
        ((0..n * d).map(|i| ((i * 7919) % 13) as f32 / 13.0).collect(), (0..n).map(|i| (i % 10) as u32).collect())
    }

    fn assert_oom<T: std::fmt::Debug>(r: nnkern::Result<T>, what: &str) {
        match r {
            Err(e @ Error::OutOfMemory { .. }) => println!("{what}: {e}"),
            other => panic!("{what}: expected OutOfMemory, got {other:?}"),
        }
    }

    /// After a failed call: the model is bit for bit what it was, and a small
    /// prediction still works.
    fn still_usable(m: &Mlp, before: &Mlp, bytes: &[u8], n_in: usize) {
        assert!(m == before, "the model changed");
        assert_eq!(m.to_bytes(), bytes, "the model's bytes changed");
        let mut ws = Workspace::new(m, 1);
        let mut out = vec![0.0f32; 10];
        m.predict_into(&vec![0.5; n_in], 1, &mut ws, &mut out).unwrap();
        assert!((out.iter().sum::<f32>() - 1.0).abs() < 1e-4);
    }

    #[test]
    fn fit_and_partial_fit_out_of_memory_keep_the_model() {
        let case = "fallible::fit_and_partial_fit_out_of_memory_keep_the_model";
        if !is_child(case) {
            return run_child(case);
        }
        // 784-8192-10: 6.5 M parameters, 26 MB; Adam's fit needs six more
        // buffers of that size (gradient, moments, restore points).
        let (n_in, n) = (784, 64);
        let (x, y) = data(n, n_in);
        let mut m = model(n_in, 8192);
        // A first partial fit so that the model has optimizer state to keep.
        let mut cfg = TrainConfig::default();
        cfg.batch_size = 32;
        m.partial_fit(&x, n, Targets::Labels(&y), &cfg).unwrap();
        let before = m.clone();
        let bytes = m.to_bytes();
        let cfg0 = cfg.clone();
        limit_address_space(48 * MIB);
        let mut cfg2 = cfg.clone();
        cfg2.max_iter = 2;
        assert_oom(m.fit(&x, n, Targets::Labels(&y), &cfg2, None, None), "fit");
        still_usable(&m, &before, &bytes, n_in);
        cfg2.warm_start = true;
        cfg2.early_stopping = true;
        assert_oom(m.fit(&x, n, Targets::Labels(&y), &cfg2, None, None), "fit (warm start, early stopping)");
        still_usable(&m, &before, &bytes, n_in);
        assert_oom(m.partial_fit(&x, n, Targets::Labels(&y), &cfg), "partial_fit");
        still_usable(&m, &before, &bytes, n_in);
        assert_eq!(cfg, cfg0, "the config changed");
        super::case_ok();
    }

    #[test]
    fn predict_out_of_memory_keeps_the_output() {
        let case = "fallible::predict_out_of_memory_keeps_the_output";
        if !is_child(case) {
            return run_child(case);
        }
        // A 65 536-wide hidden layer: predict's default workspace (256 rows
        // of it, twice) is 128 MiB.
        let n_in = 16;
        let m = model(n_in, 65536);
        let before = m.clone();
        let bytes = m.to_bytes();
        let (x, _) = data(300, n_in);
        let mut out = vec![f32::NAN; 300 * 10];
        let guard: Vec<u32> = out.iter().map(|v| v.to_bits()).collect();
        limit_address_space(48 * MIB);
        assert_oom(m.predict_proba(&x, 300), "predict_proba");
        let mut ws = Workspace::new(&m, 256);
        assert_oom(m.predict_into(&x, 300, &mut ws, &mut out), "predict_into");
        assert!(out.iter().map(|v| v.to_bits()).eq(guard), "the output buffer changed");
        assert_oom(Workspace::try_new(&m, 256), "Workspace::try_new");
        still_usable(&m, &before, &bytes, n_in);
        super::case_ok();
    }

    #[test]
    fn load_csv_and_idx_out_of_memory() {
        let case = "fallible::load_csv_and_idx_out_of_memory";
        if !is_child(case) {
            return run_child(case);
        }
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("oom_files");
        std::fs::create_dir_all(&dir).unwrap();
        // A 100 MB model file, a 40 MB CSV, a 40 MB IDX file: each above
        // glibc's largest mmap threshold (32 MiB), so that no freed heap
        // memory from making them can serve the reads.
        let model_path = dir.join("big.nnk");
        model(784, 32768).save(&model_path).unwrap();
        let csv = dir.join("big.csv");
        let row = "0.125,0.25,0.5,1\n";
        std::fs::write(&csv, row.repeat(40 * (1 << 20) / row.len())).unwrap();
        let idx = dir.join("big-idx1-ubyte");
        let n = 40u32 << 20;
        let mut b = vec![0u8, 0, 8, 1];
        b.extend_from_slice(&n.to_be_bytes());
        b.resize(8 + n as usize, 7);
        std::fs::write(&idx, &b).unwrap();
        drop(b);
        limit_address_space(16 * MIB);
        assert_oom(Mlp::load(&model_path), "Mlp::load");
        assert_oom(read_csv(&csv, -1), "read_csv");
        assert_oom(read_idx(&idx), "read_idx");
        super::case_ok();
    }

    #[test]
    fn gemm_with_large_shapes_under_a_tight_limit() {
        let case = "fallible::gemm_with_large_shapes_under_a_tight_limit";
        if !is_child(case) {
            return run_child(case);
        }
        // 1536³: operands of 9 MiB each, held by the caller; the kernels'
        // own buffers are bounded (a few MiB of packing per thread).
        let n = 1536;
        let a: Vec<f32> = (0..n * n).map(|i| (i % 7) as f32 - 3.0).collect();
        let b: Vec<f32> = (0..n * n).map(|i| (i % 5) as f32 - 2.0).collect();
        let mut c = vec![0.0f32; n * n];
        limit_address_space(12 * MIB);
        for t in [1, 2] {
            super::product_into(nnkern::par::Par::Threads(t), &a, &b, n, &mut c);
            let want: f32 = (0..n).map(|p| a[p] * b[p * n]).sum();
            assert_eq!(c[0], want);
        }
        super::case_ok();
    }

    /// The products' own scratch (GEMM packing, the sparse product's
    /// accumulator blocks) is reserved before anything is written: when it
    /// cannot be, the call is an error and C is untouched; once memory is
    /// back, the same call works.
    #[test]
    fn product_scratch_out_of_memory_leaves_c_untouched() {
        let case = "fallible::product_scratch_out_of_memory_leaves_c_untouched";
        if !is_child(case) {
            return run_child(case);
        }
        use nnkern::gemm::{Backend, GemmOptions, MatMut, MatRef, SparseRows, gemm_with, spmm};
        use nnkern::par::Par;
        // f64 1024³ on one thread packs B in blocks of about 2 MiB.
        let n = 1024;
        let a: Vec<f64> = (0..n * n).map(|i| (i % 7) as f64 - 3.0).collect();
        let b: Vec<f64> = (0..n * n).map(|i| (i % 5) as f64 - 2.0).collect();
        let mut c = vec![1.0f64; n * n];
        let mut o = GemmOptions::default();
        o.backend = Some(Backend::Native);
        o.par = Par::Seq;
        let dense = |c: &mut [f64], o: &GemmOptions| {
            let (av, bv) = (MatRef::row_major(&a, n, n, n).unwrap(), MatRef::row_major(&b, n, n, n).unwrap());
            gemm_with(1.0, av, bv, 1.0, MatMut::row_major(c, n, n, n).unwrap(), o)
        };
        // A 4096×64 sparse S (all stored) times a 64×1024 B on 8 tasks:
        // 128 KiB of accumulator block each.
        let (sm, sk) = (4096, 64);
        let sd: Vec<f32> = (0..sm * sk).map(|i| (i % 3) as f32 + 1.0).collect();
        let s = SparseRows::from_dense(&sd, sm, sk).unwrap();
        let sb: Vec<f32> = (0..sk * n).map(|i| (i % 4) as f32 - 1.0).collect();
        let mut sc = vec![2.0f32; sm * n];
        let mut so = GemmOptions::default();
        so.par = Par::Threads(8);
        let sparse = |c: &mut [f32], o: &GemmOptions| {
            let bv = MatRef::row_major(&sb, sk, n, n).unwrap();
            spmm(1.0, &s, bv, 1.0, MatMut::row_major(c, sm, n, n).unwrap(), o)
        };

        // Under the limit, memory is used up first: the allocator may still
        // hold free, already mapped space (this thread's arena), which the
        // limit does not see. Nothing may allocate until the ballast goes.
        let mut ballast: Vec<Vec<u8>> = Vec::with_capacity(1 << 16);
        limit_address_space(64 << 10);
        for size in [1 << 16, 1 << 12, 1 << 8] {
            while ballast.len() < ballast.capacity() {
                let mut v = Vec::new();
                if v.try_reserve_exact(size).is_err() {
                    break;
                }
                ballast.push(v);
            }
        }
        let (rd, rs) = (dense(&mut c, &o), sparse(&mut sc, &so));
        drop(ballast);
        super::lift_address_space_limit();
        assert_oom(rd, "gemm");
        assert!(c.iter().all(|&x| x.to_bits() == 1.0f64.to_bits()), "a failed gemm wrote C");
        assert_oom(rs, "spmm");
        assert!(sc.iter().all(|&x| x.to_bits() == 2.0f32.to_bits()), "a failed spmm wrote C");

        dense(&mut c, &o).unwrap();
        for (i, j) in [(0, 0), (1, 2), (n - 1, n - 1), (517, 33)] {
            let want = 1.0 + (0..n).map(|p| a[i * n + p] * b[p * n + j]).sum::<f64>();
            assert_eq!(c[i * n + j], want, "C[{i},{j}]");
        }
        sparse(&mut sc, &so).unwrap();
        for (i, j) in [(0, 0), (1, 2), (sm - 1, n - 1), (2049, 517)] {
            let want = 2.0 + (0..sk).map(|p| sd[i * sk + p] * sb[p * n + j]).sum::<f32>();
            assert_eq!(sc[i * n + j], want, "S·B[{i},{j}]");
        }
        super::case_ok();
    }
}
