//! Thread-count policy and the worker pool the kernels run on.
//!
//! * A process-wide default thread count: [`set_num_threads`] (also reachable from
//!   C as `nnk_set_num_threads`), else the `NNK_NUM_THREADS` environment variable
//!   (read once), else all cores.
//! * A per-call override through [`Par`].
//! * Kernels split work over output blocks only, never over a reduction
//!   dimension, so every result is bit-identical for any thread count. (The
//!   sparse forward product of a large layer sums its inputs in two fixed
//!   halves on any thread count, and two threads take one half each:
//!   `gemm::sparse::spmm_halves_epilogue`.)
//! * The kernels' threads are a team of our own (`run_tasks`): the caller
//!   runs the first task, each worker one other, and idle workers spin for
//!   200 µs before they park, so that a training step's many short parallel
//!   regions each cost about a microsecond to hand out, not a thread wake-up
//!   (tens of microseconds on a virtual machine).
//! * A call made from inside a worker (ours, or one of a rayon pool of the
//!   caller's) runs serially: pools are never nested.
//! * A pool whose threads cannot be started (`RLIMIT_NPROC`, no memory for
//!   their stacks) is not an error: the caller's thread runs the tasks, with
//!   the same bits.
//! * Workers run each task in the subnormal mode (FTZ and DAZ) of the thread
//!   that handed it out ([`crate::simd::fp`]), so that mode, too, leaves
//!   results independent of the thread count.

use crate::error::{Error, Result};
use crate::simd::fp::Mode;
use std::any::Any;
use std::cell::{Cell, UnsafeCell};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

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
static POOL: RwLock<Option<(usize, Arc<Team>)>> = RwLock::new(None);

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
    /// 1 when called from inside a rayon worker or one of nnkern's own.
    pub fn threads(self) -> usize {
        if rayon::current_thread_index().is_some() || IN_WORKER.with(Cell::get) {
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

thread_local! {
    /// Whether this thread is one of the team's workers (its calls run serially).
    static IN_WORKER: Cell<bool> = const { Cell::new(false) };
}

/// How long an idle worker waits for the next task before it parks. A
/// training step hands out a parallel region every few to a few hundred
/// microseconds; waking a parked thread costs tens of microseconds on a
/// virtual machine, a waiting one reads its mailbox within one.
const SPIN: Duration = Duration::from_micros(200);

/// The first part of [`SPIN`], spent in a tight loop; the rest yields the
/// core between looks at the mailbox, so that on a machine with more
/// runnable threads than cores (several processes, MPI ranks) the waiting
/// worker gives its time slice to them.
const TIGHT_SPIN: Duration = Duration::from_micros(10);

/// The caller's closure, its lifetime erased: only dereferenced by a worker
/// between the caller posting a task and the worker reporting it finished,
/// while the caller waits (see [`run_tasks`]).
type ErasedFn = *const (dyn Fn(usize) + Sync + 'static);

/// The placeholder closure of a slot that has had no task yet.
const NOOP: fn(usize) = |_| {};

/// One task handed to a worker.
#[derive(Clone, Copy)]
struct Job {
    f: ErasedFn,
    task: usize,
    mode: Mode,
}

/// One worker's mailbox. The caller writes `job` while the worker is idle
/// (`finished == posted`), then publishes it by storing a new number in
/// `posted`; the worker runs it and stores that number in `finished`.
struct Slot {
    posted: AtomicU64,
    finished: AtomicU64,
    job: UnsafeCell<Job>,
    /// A panic of the worker's task, for the caller to resume.
    panic: Mutex<Option<Box<dyn Any + Send>>>,
}

/// What the caller and the workers share.
struct Shared {
    slots: Box<[Slot]>,
    /// Set when the team is dropped: its workers then exit.
    shutdown: AtomicBool,
}

// SAFETY: `Slot::job` is written only by the one caller holding the team
// (`Team::busy`) while the slot's worker is idle, and read only by that
// worker after it acquires the `posted` store that follows the write; the
// closure it points to is `Sync` and outlives the read (the caller waits for
// `finished`).
unsafe impl Sync for Shared {}
// SAFETY: as above; the raw closure pointer is only used under that protocol.
unsafe impl Send for Shared {}

/// A team of `n` worker threads that spin between tasks ([`SPIN`]), so that
/// handing out a parallel region costs about a microsecond, not a wake-up.
struct Team {
    shared: Arc<Shared>,
    threads: Vec<std::thread::Thread>,
    handles: Vec<std::thread::JoinHandle<()>>,
    /// One caller at a time; another caller meanwhile runs its tasks itself.
    busy: AtomicBool,
    /// The number of the last job handed out (under `busy`).
    jobs: AtomicU64,
}

impl Team {
    /// Starts `n` workers; `None` if any cannot be started (those that were
    /// are told to exit).
    fn start(n: usize) -> Option<Team> {
        let slots = (0..n)
            .map(|_| Slot {
                posted: AtomicU64::new(0),
                finished: AtomicU64::new(0),
                job: UnsafeCell::new(Job {
                    f: &NOOP as &(dyn Fn(usize) + Sync),
                    task: 0,
                    mode: crate::simd::fp::mode(),
                }),
                panic: Mutex::new(None),
            })
            .collect();
        let shared = Arc::new(Shared { slots, shutdown: AtomicBool::new(false) });
        let mut team = Team {
            shared,
            threads: Vec::with_capacity(n),
            handles: Vec::with_capacity(n),
            busy: AtomicBool::new(false),
            jobs: AtomicU64::new(0),
        };
        for w in 0..n {
            let sh = team.shared.clone();
            // On failure, dropping the team stops the workers already started.
            let h = std::thread::Builder::new().name(format!("nnkern-{w}")).spawn(move || worker(sh, w)).ok()?;
            team.threads.push(h.thread().clone());
            team.handles.push(h);
        }
        Some(team)
    }
}

impl Drop for Team {
    /// Tells the workers to exit and waits for them (they are idle: the
    /// last caller waited for its tasks; none of them holds a `Team`).
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::Release);
        self.threads.iter().for_each(std::thread::Thread::unpark);
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

/// A worker: waits for tasks in its slot (spinning for [`SPIN`], then
/// parked), runs each in the caller's subnormal mode, reports it finished.
fn worker(sh: Arc<Shared>, w: usize) {
    IN_WORKER.with(|c| c.set(true));
    let slot = &sh.slots[w];
    let mut seen = 0u64;
    loop {
        let mut spins = 0u32;
        let mut idle_since: Option<Instant> = None;
        let job_no = loop {
            let p = slot.posted.load(Ordering::Acquire);
            if p != seen {
                break p;
            }
            if sh.shutdown.load(Ordering::Acquire) {
                return;
            }
            spins += 1;
            // The clock is read every 64 spins.
            if !spins.is_multiple_of(64) {
                std::hint::spin_loop();
                continue;
            }
            let idle = idle_since.get_or_insert_with(Instant::now).elapsed();
            if idle < TIGHT_SPIN {
                std::hint::spin_loop();
            } else if idle < SPIN {
                std::thread::yield_now();
                spins = 63;
            } else {
                // The caller unparks after posting, so a task posted after
                // the check above is not missed.
                std::thread::park();
            }
        };
        seen = job_no;
        // SAFETY: the caller wrote the job before its `posted` store, which
        // the load above acquired, and does not touch it until `finished`.
        let job = unsafe { *slot.job.get() };
        let r = catch_unwind(AssertUnwindSafe(|| {
            let _mode = crate::simd::fp::FlushDenormals::with_mode(job.mode);
            // SAFETY: the caller keeps the closure alive until `finished`.
            unsafe { (*job.f)(job.task) }
        }));
        if let Err(p) = r {
            *slot.panic.lock().unwrap_or_else(|e| e.into_inner()) = Some(p);
        }
        slot.finished.store(job_no, Ordering::Release);
    }
}

/// A team of at least `n` workers, or `None` when its threads cannot be
/// started (`RLIMIT_NPROC`, no memory for their stacks, ...): the caller then
/// runs the tasks itself, which gives the same bits, since tasks never share
/// a reduction.
fn pool(n: usize) -> Option<Arc<Team>> {
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
    match Team::start(n) {
        Some(p) => {
            let p = Arc::new(p);
            // The old team (if any) exits once its last user lets go of it.
            *w = Some((n, p.clone()));
            Some(p)
        }
        None => {
            SPAWN_FAILED_AT.store(n, Ordering::Relaxed);
            None
        }
    }
}

/// Runs `f(i)` for `i in 0..tasks` on up to `tasks` threads (the caller runs
/// task 0, the team's workers the others) and returns when all are done,
/// every task in the caller's subnormal mode. `tasks <= 1`, a call from a
/// worker, or a team busy with another caller's tasks runs them all here, in
/// order: each task writes its own part, so the bits are those of any thread
/// count. A panic in a task is resumed here once every task handed to a
/// worker has ended (tasks run here after the panicking one are skipped).
pub(crate) fn run_tasks<F: Fn(usize) + Sync>(tasks: usize, f: F) {
    if tasks <= 1 || IN_WORKER.with(Cell::get) {
        (0..tasks).for_each(&f);
        return;
    }
    let f = &f;
    let mode = crate::simd::fp::mode();
    // Under Miri, a team of its own for each call, stopped at its end, so
    // that Miri checks the hand-over of every task and no worker outlives
    // the test that started it.
    #[cfg(miri)]
    let team = Team::start(tasks - 1).map(Arc::new);
    #[cfg(not(miri))]
    let team = pool(tasks - 1);
    let Some(team) = team else {
        (0..tasks).for_each(f);
        return;
    };
    if team.busy.swap(true, Ordering::Acquire) {
        (0..tasks).for_each(f);
        return;
    }
    let job_no = team.jobs.fetch_add(1, Ordering::Relaxed) + 1;
    let dyn_f: &(dyn Fn(usize) + Sync) = f;
    // SAFETY: only the lifetime is erased; this function does not return
    // (nor unwind) before every worker given the pointer reports finished.
    let erased: ErasedFn = unsafe { std::mem::transmute::<*const (dyn Fn(usize) + Sync + '_), ErasedFn>(dyn_f) };
    let posted = tasks - 1;
    for t in 1..tasks {
        let slot = &team.shared.slots[t - 1];
        // SAFETY: the worker is idle (every earlier job of this team was
        // waited for before `busy` was released) and reads the job only after
        // the `posted` store below.
        unsafe { *slot.job.get() = Job { f: erased, task: t, mode } };
        slot.posted.store(job_no, Ordering::Release);
        team.threads[t - 1].unpark();
    }
    let mine = catch_unwind(AssertUnwindSafe(|| f(0)));
    let mut theirs = None;
    for slot in &team.shared.slots[..posted] {
        let mut spins = 0u32;
        while slot.finished.load(Ordering::Acquire) != job_no {
            spins = spins.saturating_add(1);
            if spins > 1024 {
                // A long task, or a descheduled worker: let it have the core.
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
        if let Some(p) = slot.panic.lock().unwrap_or_else(|e| e.into_inner()).take() {
            theirs.get_or_insert(p);
        }
    }
    team.busy.store(false, Ordering::Release);
    if let Err(p) = mine {
        resume_unwind(p);
    }
    if let Some(p) = theirs {
        resume_unwind(p);
    }
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

    /// Every task runs exactly once, for region after region handed out
    /// back to back (the team's workers are spinning then) and after the
    /// workers have parked.
    #[test]
    fn every_task_runs_once_in_short_regions_and_after_a_pause() {
        use std::sync::atomic::AtomicUsize;
        for round in 0..2 {
            for tasks in [2usize, 3, 4, 2] {
                for _ in 0..2000 {
                    let hits: Vec<AtomicUsize> = (0..tasks).map(|_| AtomicUsize::new(0)).collect();
                    run_tasks(tasks, |t| {
                        hits[t].fetch_add(1, Ordering::Relaxed);
                    });
                    assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1), "{tasks} tasks");
                }
            }
            if round == 0 {
                // Longer than SPIN: the workers park and must be woken.
                std::thread::sleep(SPIN * 5);
            }
        }
    }

    /// A task's panic reaches the caller once every task has ended, and the
    /// team works on afterwards.
    #[test]
    fn a_panicking_task_resumes_at_the_caller_and_the_team_goes_on() {
        for bad in [0usize, 1, 2] {
            let done = Mutex::new(Vec::new());
            let r = catch_unwind(AssertUnwindSafe(|| {
                run_tasks(3, |t| {
                    if t == bad {
                        panic!("task {t} fails");
                    }
                    std::thread::sleep(Duration::from_millis(5));
                    done.lock().unwrap().push(t);
                })
            }));
            let msg = r.expect_err("the panic must reach the caller");
            assert_eq!(msg.downcast_ref::<String>().map(String::as_str), Some(format!("task {bad} fails").as_str()));
            // Tasks run here in order (team busy with another test) stop at the panic.
            let d = done.into_inner().unwrap();
            assert!(!d.contains(&bad) && d.len() <= 2, "{d:?}");
        }
        let n = std::sync::atomic::AtomicUsize::new(0);
        run_tasks(3, |_| {
            n.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(n.into_inner(), 3);
    }

    /// Callers on several threads at once: one holds the team, the others
    /// run their tasks themselves; every region completes, each task once.
    #[test]
    fn concurrent_callers_each_get_all_their_tasks_run() {
        use std::sync::atomic::AtomicUsize;
        std::thread::scope(|s| {
            for c in 0..4 {
                s.spawn(move || {
                    for i in 0..500 {
                        let tasks = 2 + (c + i) % 3;
                        let hits: Vec<AtomicUsize> = (0..tasks).map(|_| AtomicUsize::new(0)).collect();
                        run_tasks(tasks, |t| {
                            hits[t].fetch_add(1, Ordering::Relaxed);
                        });
                        assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
                    }
                });
            }
        });
    }

    /// A call from inside a task runs serially (no nested team, no deadlock).
    #[test]
    fn nested_calls_run_serially() {
        let outer = Mutex::new(Vec::new());
        run_tasks(2, |t| {
            let inner = Mutex::new(Vec::new());
            run_tasks(3, |u| inner.lock().unwrap().push(u));
            let mut v = inner.into_inner().unwrap();
            v.sort();
            assert_eq!(v, vec![0, 1, 2]);
            outer.lock().unwrap().push((t, IN_WORKER.with(Cell::get), Par::Threads(4).threads()));
        });
        let mut v = outer.into_inner().unwrap();
        v.sort();
        assert_eq!(v.len(), 2);
        // Task 0 runs on the caller (4 threads allowed there), task 1 on a
        // worker (1), or on the caller too when another test's call holds
        // the team.
        assert_eq!(v[0], (0, false, 4));
        assert!(v[1] == (1, true, 1) || v[1] == (1, false, 4), "{:?}", v[1]);
    }
}
