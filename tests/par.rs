//! The thread-count policy: `NNK_NUM_THREADS`, `set_num_threads`, and calls
//! from inside a pool's worker running serially (pools never nest).

use nnkern::gemm::{GemmOptions, MatMut, MatRef, gemm_with};
use nnkern::par::{Par, available_cores, num_threads, set_num_threads};

/// The environment variable is read once, at the first use: checked in a
/// child process started with it set.
#[test]
fn nnk_num_threads_environment_variable() {
    if std::env::var("NNK_PAR_TEST_CHILD").is_ok() {
        assert_eq!(num_threads(), 3, "NNK_NUM_THREADS=3");
        assert_eq!(Par::Default.threads(), 3);
        assert_eq!(Par::Threads(0).threads(), 3);
        set_num_threads(5).unwrap();
        assert_eq!(num_threads(), 5);
        set_num_threads(0).unwrap();
        assert_eq!(num_threads(), 3, "0 restores the environment's value");
        // Like nnk_set_num_threads: above MAX_THREADS is an error and changes nothing.
        set_num_threads(7).unwrap();
        let e = set_num_threads(nnkern::par::MAX_THREADS + 1).unwrap_err();
        assert_eq!(e.status(), nnkern::error::Status::NNK_ERR_INVALID_ARG);
        assert!(e.to_string().contains("1025"), "{e}");
        assert_eq!(num_threads(), 7, "a refused count leaves the old one");
        set_num_threads(nnkern::par::MAX_THREADS).unwrap();
        assert_eq!(num_threads(), nnkern::par::MAX_THREADS);
        return;
    }
    for (value, want) in [("3", None), ("0", Some(available_cores())), ("lots", Some(available_cores()))] {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "nnk_num_threads_environment_variable", "--nocapture", "--test-threads", "1"])
            .env("NNK_PAR_TEST_CHILD", "1")
            .env("NNK_NUM_THREADS", value)
            .output()
            .unwrap();
        match want {
            Some(3) => {} // cannot tell the fallback from the value on a 3-core machine
            None => assert!(
                out.status.success() && String::from_utf8_lossy(&out.stdout).contains("1 passed"),
                "the child must run this test and pass: {}",
                String::from_utf8_lossy(&out.stderr)
            ),
            // An unusable value falls back to all cores: the child's first
            // assertion (3) fails, naming what it got.
            Some(n) => {
                let err = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
                assert!(!out.status.success() && err.contains(&format!("left: {n}")), "{value}: {err}");
            }
        }
    }
}

#[test]
fn calls_from_inside_a_pool_worker_run_serially_with_the_same_bits() {
    let (m, k, n) = (200, 300, 150);
    let a: Vec<f32> = (0..m * k).map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0).collect();
    let b: Vec<f32> = (0..k * n).map(|i| ((i * 53) % 97) as f32 / 48.0 - 1.0).collect();
    let run = |par: Par| {
        let mut c = vec![0.0f32; m * n];
        let opts = GemmOptions { par, ..Default::default() };
        gemm_with(
            1.0,
            MatRef::row_major(&a, m, k, k).unwrap(),
            MatRef::row_major(&b, k, n, n).unwrap(),
            0.0,
            MatMut::row_major(&mut c, m, n, n).unwrap(),
            &opts,
        )
        .unwrap();
        c
    };
    let outside = run(Par::Threads(4));
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    // Four tasks on two workers, each asking for 4 threads: they must run
    // serially (no nested pool, no deadlock) and give the same bits.
    let results: Vec<(usize, Vec<f32>)> = pool.install(|| {
        use rayon::prelude::*;
        (0..4).into_par_iter().map(|_| (Par::Threads(4).threads(), run(Par::Threads(4)))).collect()
    });
    for (t, c) in results {
        assert_eq!(t, 1, "a worker sees one thread");
        assert!(c.iter().zip(&outside).all(|(x, y)| x.to_bits() == y.to_bits()));
    }
}
