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
    let kb: u64 = s.lines().find_map(|l| l.strip_prefix("VmSize:")).unwrap().trim().trim_end_matches("kB").trim().parse().unwrap();
    kb * 1024
}

/// Limits this process's address space to what it uses now plus `slack` bytes.
fn limit_address_space(slack: u64) {
    let lim = vm_size() + slack;
    let r = libc::rlimit { rlim_cur: lim, rlim_max: lim };
    // SAFETY: setrlimit reads the struct we pass; it changes only this process.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_AS, &r) };
    assert_eq!(rc, 0, "setrlimit(RLIMIT_AS)");
}

/// Runs test `case` of this binary in a child process and asserts that it
/// exited normally having printed `CASE OK`.
fn run_child(case: &str) {
    let o = Command::new(std::env::current_exe().unwrap())
        .args([case, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, case)
        .output()
        .unwrap();
    let out = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success() && out.contains("CASE OK"), "child for {case} failed ({:?}):\n{out}", o.status);
}

fn product(threads: Par, a: &[f32], b: &[f32], n: usize) -> Vec<f32> {
    let mut o = GemmOptions::default();
    o.backend = Some(Backend::Native);
    o.par = threads;
    let mut c = vec![0.0f32; n * n];
    let (av, bv) = (MatRef::row_major(a, n, n, n).unwrap(), MatRef::row_major(b, n, n, n).unwrap());
    gemm_with(1.0, av, bv, 0.0, MatMut::row_major(&mut c, n, n, n).unwrap(), &o).unwrap();
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
    let mut out = vec![0.0f32; n * n];
    limit_address_space(256 << 10);
    // The limit really stops threads: a plain spawn fails now.
    let probe = std::thread::Builder::new().spawn(|| ());
    assert!(probe.is_err(), "the address-space limit did not stop a thread spawn");
    for threads in [4, 3, 2] {
        let mut o = GemmOptions::default();
        o.backend = Some(Backend::Native);
        o.par = Par::Threads(threads);
        let (av, bv) = (MatRef::row_major(&a, n, n, n).unwrap(), MatRef::row_major(&b, n, n, n).unwrap());
        gemm_with(1.0, av, bv, 0.0, MatMut::row_major(&mut out, n, n, n).unwrap(), &o).unwrap();
        assert!(out.iter().zip(&seq).all(|(x, y)| x.to_bits() == y.to_bits()), "{threads} threads changed the bits");
    }
    println!("CASE OK");
}
