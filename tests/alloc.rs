//! "No allocation per batch": a counting allocator shows that the number of
//! heap allocations of `fit` does not grow with the number of batches (the
//! workspaces are sized once per fit). One thread: the allocations of a
//! thread pool's job queue are outside the trainer's control.

use nnkern::nn::data::{Scaler, read_csv};
use nnkern::nn::{Layer, Mlp, SparseInput, Targets, Task, TrainConfig};
use nnkern::ops::Activation;
use nnkern::par::Par;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static A: Counting = Counting;

#[test]
fn fit_allocates_per_fit_not_per_batch() {
    let ds = read_csv(concat!(env!("CARGO_MANIFEST_DIR"), "/data/digits.csv"), -1).unwrap();
    let (mut tr, _) = ds.split(0.2, 0).unwrap();
    Scaler::standard(&tr.x, tr.d).transform(&mut tr.x);
    let y = tr.labels().unwrap();
    let count = |batch: usize, epochs: usize, sparse_input: SparseInput| {
        let mut m =
            Mlp::new(tr.d, &[Layer { units: 32, activation: Activation::Relu }], 10, Task::MultiClass, 0).unwrap();
        let cfg =
            TrainConfig { batch_size: batch, max_iter: epochs, par: Par::Seq, sparse_input, ..Default::default() };
        // Once to warm the per-thread GEMM packing buffers, then counted.
        m.fit(&tr.x, tr.n, Targets::Labels(&y), &cfg, None, None).unwrap();
        let before = ALLOCS.load(Ordering::Relaxed);
        m.fit(&tr.x, tr.n, Targets::Labels(&y), &cfg, None, None).unwrap();
        ALLOCS.load(Ordering::Relaxed) - before
    };
    // 1437 samples: 90 batches of 16 against 12 of 128, same epochs.
    for mode in [SparseInput::Dense, SparseInput::Sparse] {
        let (small, large) = (count(16, 2, mode), count(128, 2, mode));
        println!("{mode:?}: allocations per fit: batch 16 → {small}, batch 128 → {large}");
        assert_eq!(small, large, "{mode:?}: allocations must not depend on the number of batches");
        assert!(small < 100, "{mode:?}: {small} allocations for one fit");
    }
}
