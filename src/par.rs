//! Thread-count policy and the worker pool the kernels run on.
//!
//! * A process-wide default thread count: [`set_num_threads`] (also reachable from
//!   C as `nnk_set_num_threads`), else the `NNK_NUM_THREADS` environment variable
//!   (read once), else all cores.
//! * A per-call override through [`Par`].
//! * Kernels split work over output blocks only, never over a reduction
//!   dimension, so every result is bit-identical for any thread count.
//! * A call made from inside a worker of a rayon pool (ours or the caller's) runs
//!   serially: pools are never nested.
//! * A pool whose threads cannot be started (`RLIMIT_NPROC`, no memory for
//!   their stacks) is not an error: the caller's thread runs the tasks, with
//!   the same bits.
//! * Workers run each task in the subnormal mode (FTZ and DAZ) of the thread
//!   that handed it out ([`crate::simd::fp`]), so that mode, too, leaves
//!   results independent of the thread count.

use crate::error::{Error, Result};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

/// Parallelism of one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Par {
    /// Use the process-wide default ([`num_threads`]).
    #[default]
    Default,
    /// Exactly one thread: the caller's.
    Seq,
    /// At most this many threads (0 means the process-wide default).
    Threads(usize),
}

/// 0 = not set: fall back to the environment / core count.
static GLOBAL: AtomicUsize = AtomicUsize::new(0);
static ENV_DEFAULT: OnceLock<usize> = OnceLock::new();
static POOL: RwLock<Option<(usize, Arc<rayon::ThreadPool>)>> = RwLock::new(None);

/// Number of logical cores (at least 1).
pub fn available_cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

fn env_default() -> usize {
    *ENV_DEFAULT.get_or_init(|| {
        std::env::var("NNK_NUM_THREADS")
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .filter(|&n| n > 0)
            .unwrap_or_else(available_cores)
    })
}

/// The largest thread count [`set_num_threads`] (and `nnk_set_num_threads`) accepts.
pub const MAX_THREADS: usize = 1024;

/// Sets the process-wide default thread count; 0 restores the default
/// (`NNK_NUM_THREADS`, else all cores).
///
/// # Errors
/// [`Error::InvalidArgument`] above [`MAX_THREADS`]; the count is then unchanged.
pub fn set_num_threads(n: usize) -> Result<()> {
    if n > MAX_THREADS {
        return Err(Error::InvalidArgument(format!("thread count {n} > {MAX_THREADS}")));
    }
    SPAWN_FAILED_AT.store(0, Ordering::Relaxed);
    GLOBAL.store(n, Ordering::Relaxed);
    Ok(())
}

/// The process-wide default thread count now in force.
pub fn num_threads() -> usize {
    match GLOBAL.load(Ordering::Relaxed) {
        0 => env_default(),
        n => n,
    }
}

impl Par {
    /// The number of threads this policy allows for the calling thread (≥ 1);
    /// 1 when called from inside a rayon worker.
    pub fn threads(self) -> usize {
        if rayon::current_thread_index().is_some() {
            return 1;
        }
        match self {
            Par::Seq => 1,
            Par::Default | Par::Threads(0) => num_threads(),
            Par::Threads(n) => n,
        }
        .max(1)
    }
}

/// The smallest pool size whose threads could not be started (0: none
/// failed). Larger requests then run serially without trying again; a new
/// [`set_num_threads`] call clears it.
static SPAWN_FAILED_AT: AtomicUsize = AtomicUsize::new(0);

/// A pool of at least `n` workers, or `None` when its threads cannot be
/// started (`RLIMIT_NPROC`, no memory for their stacks, ...): the caller then
/// runs the tasks itself, which gives the same bits, since tasks never share
/// a reduction.
fn pool(n: usize) -> Option<Arc<rayon::ThreadPool>> {
    if let Some((size, p)) = POOL.read().unwrap_or_else(|e| e.into_inner()).as_ref() {
        if *size >= n {
            return Some(p.clone());
        }
    }
    let failed = SPAWN_FAILED_AT.load(Ordering::Relaxed);
    if failed != 0 && n >= failed {
        return None;
    }
    let mut w = POOL.write().unwrap_or_else(|e| e.into_inner());
    if let Some((size, p)) = w.as_ref() {
        if *size >= n {
            return Some(p.clone());
        }
    }
    match rayon::ThreadPoolBuilder::new().num_threads(n).thread_name(|i| format!("nnkern-{i}")).build() {
        Ok(p) => {
            let p = Arc::new(p);
            *w = Some((n, p.clone()));
            Some(p)
        }
        Err(_) => {
            SPAWN_FAILED_AT.store(n, Ordering::Relaxed);
            None
        }
    }
}

/// Runs `f(i)` for `i in 0..tasks` on up to `tasks` threads (the caller runs
/// task 0) and returns when all are done, every task in the caller's
/// subnormal mode. `tasks <= 1` runs inline.
pub(crate) fn run_tasks<F: Fn(usize) + Sync>(tasks: usize, f: F) {
    if tasks <= 1 {
        if tasks == 1 {
            f(0);
        }
        return;
    }
    let f = &f;
    let mode = crate::simd::fp::mode();
    // Under Miri, scoped threads instead of the pool: crossbeam-epoch, under
    // rayon, breaks Stacked Borrows (a known upstream issue), which would
    // hide the checks of our own tasks' pointers (tests/miri.rs).
    #[cfg(miri)]
    {
        std::thread::scope(|s| {
            for t in 1..tasks {
                s.spawn(move || {
                    let _mode = crate::simd::fp::FlushDenormals::with_mode(mode);
                    f(t)
                });
            }
            f(0);
        });
        return;
    }
    #[allow(unreachable_code)]
    let Some(p) = pool(tasks - 1) else {
        // No threads could be started: the tasks run here, in order. Each
        // writes its own part, so the bits are those of any thread count.
        (0..tasks).for_each(f);
        return;
    };
    // The caller's thread takes task 0, the pool's workers the rest.
    p.in_place_scope(|s| {
        for t in 1..tasks {
            s.spawn(move |_| {
                let _mode = crate::simd::fp::FlushDenormals::with_mode(mode);
                f(t)
            });
        }
        f(0);
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simd::fp::{FlushDenormals, Mode, mode};
    use std::sync::Mutex;

    /// Each task reports its thread's mode; the workers must take the caller's.
    fn modes(tasks: usize) -> Vec<Mode> {
        let seen = Mutex::new(vec![None; tasks]);
        run_tasks(tasks, |t| {
            // Slow enough that several workers take part.
            std::thread::sleep(std::time::Duration::from_millis(2));
            seen.lock().unwrap()[t] = Some(mode());
        });
        seen.into_inner().unwrap().into_iter().map(|m| m.expect("every task ran")).collect()
    }

    #[test]
    fn workers_take_the_callers_subnormal_mode() {
        for on in [true, false, true] {
            let _g = FlushDenormals::new(on);
            let want = mode();
            assert_eq!(modes(4), vec![want; 4], "caller flushing = {on}");
        }
    }
}
