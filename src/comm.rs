//! The MPI edge (feature `mpi`): a communicator handle a caller can keep in a
//! [`TrainConfig`](crate::nn::TrainConfig), and the few collectives
//! data-parallel training needs, over the system MPI through rsmpi's raw
//! bindings (`mpi::ffi`).
//!
//! Every collective here is called by all ranks of the team in the same
//! order (the trainer agrees on a status before each phase, so no rank
//! leaves a collective for another to wait on). MPI errors are fatal on the
//! team's communicator: a failing or dead rank ends the job through MPI's
//! own abort, with MPI's message, never a hang.

use crate::error::{Error, Result};
use crate::simd::AlignedVec;
use mpi::ffi;
use std::os::raw::{c_int, c_void};
use std::time::Instant;

/// A communicator to train over: `MPI_COMM_WORLD`, or any communicator by its
/// Fortran handle (`MPI_Comm_c2f`, an integer that is portable across MPI
/// implementations and across the C ABI).
///
/// It does not own the communicator: the caller keeps it alive (not freed)
/// until the fits that use it return. Each fit works on its own duplicate
/// (`MPI_Comm_dup`), so nnkern's messages never mix with the caller's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Comm(Handle);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Handle {
    World,
    Fortran(i32),
}

impl Comm {
    /// `MPI_COMM_WORLD`.
    pub fn world() -> Comm {
        Comm(Handle::World)
    }

    /// The communicator whose Fortran handle (`MPI_Comm_c2f(comm)`) is `handle`.
    /// Whether it names a live intra-communicator is checked when a fit starts.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `handle` does not fit a Fortran integer.
    pub fn from_fortran(handle: i64) -> Result<Comm> {
        i32::try_from(handle)
            .map(|h| Comm(Handle::Fortran(h)))
            .map_err(|_| Error::InvalidArgument(format!("MPI communicator handle {handle} is not a Fortran handle")))
    }

    /// The handle of an rsmpi communicator (say `universe.world()` or a
    /// communicator split from it).
    pub fn of<C: mpi::raw::AsRaw<Raw = ffi::MPI_Comm>>(comm: &C) -> Comm {
        // SAFETY: `comm` is a live rsmpi communicator, so MPI is initialized
        // and its raw handle is valid; MPI_Comm_c2f only reads it.
        Comm(Handle::Fortran(unsafe { ffi::MPI_Comm_c2f(comm.as_raw()) }))
    }
}

impl std::fmt::Display for Comm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Handle::World => write!(f, "MPI_COMM_WORLD"),
            Handle::Fortran(h) => write!(f, "the MPI communicator of Fortran handle {h}"),
        }
    }
}

/// Whether MPI is initialized and not yet finalized.
pub fn is_running() -> bool {
    let (mut init, mut fin) = (0 as c_int, 0 as c_int);
    // SAFETY: both may be called at any time, before MPI_Init and after
    // MPI_Finalize; they write one int each.
    unsafe {
        ffi::MPI_Initialized(&mut init);
        ffi::MPI_Finalized(&mut fin);
    }
    init != 0 && fin == 0
}

/// Whether a raw handle is null (Open MPI's `MPI_Comm_f2c` returns a null
/// pointer for an index it does not know) or `MPI_COMM_NULL`.
fn is_null(c: ffi::MPI_Comm) -> bool {
    // SAFETY: reads an extern static that MPI sets up at load time.
    let null = unsafe { ffi::RSMPI_COMM_NULL };
    // SAFETY: `c` is a plain handle (a pointer or an integer); its bytes are
    // initialized and read only.
    let bytes =
        unsafe { std::slice::from_raw_parts((&c as *const ffi::MPI_Comm).cast::<u8>(), size_of::<ffi::MPI_Comm>()) };
    c == null || bytes.iter().all(|&b| b == 0)
}

/// A fit's own duplicate of the caller's communicator, with its rank and
/// size, and the time spent in its collectives. Freed on drop.
pub(crate) struct Team {
    comm: ffi::MPI_Comm,
    /// This process's rank.
    pub rank: usize,
    /// The number of ranks.
    pub size: usize,
    /// Seconds spent inside collectives (including waiting for the others).
    pub seconds: f64,
    /// The ranks' shared memory, when they all run on one node.
    shm: Option<Shm>,
    /// Whether every rank runs on one node (found by [`Team::share_memory`]).
    one_node: bool,
}

/// A window of shared memory (MPI-3, `MPI_Win_allocate_shared`) over the
/// team's ranks when they all run on one node: each rank's segment holds
/// two gradient slots and two parameter slots of `n` floats, used in turn
/// (so a rank never overwrites a slot another rank may still be reading:
/// the synchronisation of the next call lies between the two uses).
///
/// The reduce-scatter and all-gather then read the other ranks' values in
/// place, with plain loads, between barriers, instead of copying them
/// through MPI's send-receive (which on one node copies each message twice,
/// or pins pages for a single copy).
struct Shm {
    win: ffi::MPI_Win,
    /// The node's communicator (the team's ranks, in the same order).
    node: ffi::MPI_Comm,
    /// Every rank's segment, by rank.
    bases: Vec<*mut f32>,
    /// Floats per slot.
    n: usize,
    /// The slot the next reduce-scatter and all-gather use (0 or 1).
    rs_turn: usize,
    ag_turn: usize,
}

impl Shm {
    /// Takes the next of the two gradient slots (`params` false) or the two
    /// parameter slots: its index among the segment's four.
    fn next_slot(&mut self, params: bool) -> usize {
        let turn = if params { &mut self.ag_turn } else { &mut self.rs_turn };
        let t = *turn;
        *turn ^= 1;
        if params { 2 + t } else { t }
    }

    /// Rank `q`'s slot `s` (of [`Shm::next_slot`]): n floats.
    fn slot(&self, q: usize, s: usize) -> *mut f32 {
        debug_assert!(s < 4);
        // SAFETY: every segment holds 4 slots of n floats (allocated so),
        // and s < 4.
        unsafe { self.bases[q].add(s * self.n) }
    }
}

/// How the step's collectives travel when every rank runs on one node:
/// `NNKERN_MPI_SHM=0` keeps the rings, `1` takes the shared memory, and
/// anything else (the default) times both at the start of the fit and
/// takes the faster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ShmMode {
    Off,
    On,
    Auto,
}

/// The largest segment per rank (four slots) the shared memory takes: 256
/// MiB, a model of 16 Mi parameters; larger models keep the rings (the
/// segment is a shared mapping whose backing store, in the MPI session
/// directory or `/dev/shm`, is often small in containers).
const SHM_MAX_BYTES: usize = 256 << 20;

fn shm_mode() -> ShmMode {
    match std::env::var("NNKERN_MPI_SHM").as_deref().map(str::trim) {
        Ok("0") => ShmMode::Off,
        Ok("1") => ShmMode::On,
        _ => ShmMode::Auto,
    }
}

fn check(rc: c_int, what: &str) -> Result<()> {
    if rc == 0 { Ok(()) } else { Err(Error::InvalidArgument(format!("{what} failed with MPI error code {rc}"))) }
}

impl Team {
    /// Duplicates `c` (collective over `c`: every rank of it must call this).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when MPI is not running, or the handle names
    /// no live intra-communicator.
    pub(crate) fn join(c: Comm) -> Result<Team> {
        if !is_running() {
            return Err(Error::InvalidArgument(
                "distributed training needs MPI initialized (MPI_Init, or mpi::initialize in Rust) and not finalized"
                    .into(),
            ));
        }
        let raw = match c.0 {
            // SAFETY: reads an extern static that MPI sets up.
            Handle::World => unsafe { ffi::RSMPI_COMM_WORLD },
            // SAFETY: MPI is running; f2c maps any integer to a handle or null.
            Handle::Fortran(h) => unsafe { ffi::MPI_Comm_f2c(h) },
        };
        if is_null(raw) {
            return Err(Error::InvalidArgument(format!("{c} is not valid")));
        }
        let mut inter = 0 as c_int;
        // SAFETY: `raw` is a live communicator handle (not null); writes one int.
        check(unsafe { ffi::MPI_Comm_test_inter(raw, &mut inter) }, "MPI_Comm_test_inter")?;
        if inter != 0 {
            return Err(Error::InvalidArgument(format!(
                "{c} is an inter-communicator; training needs an intra-communicator"
            )));
        }
        // SAFETY: a zeroed handle is a valid place for MPI to write one into.
        let mut comm: ffi::MPI_Comm = unsafe { std::mem::zeroed() };
        // SAFETY: collective over `raw`, which every rank passes; writes the new handle.
        check(unsafe { ffi::MPI_Comm_dup(raw, &mut comm) }, "MPI_Comm_dup")?;
        // SAFETY: `comm` is our live duplicate; the error handler is MPI's own.
        unsafe { ffi::MPI_Comm_set_errhandler(comm, ffi::RSMPI_ERRORS_ARE_FATAL) };
        let (mut rank, mut size) = (0 as c_int, 0 as c_int);
        // SAFETY: live communicator; each writes one int.
        unsafe {
            ffi::MPI_Comm_rank(comm, &mut rank);
            ffi::MPI_Comm_size(comm, &mut size);
        }
        Ok(Team { comm, rank: rank as usize, size: size as usize, seconds: 0.0, shm: None, one_node: false })
    }

    /// Sets up the shared-memory collectives for vectors of `n` floats split
    /// as `counts` and `displs` when every rank of the team runs on one node
    /// and they are faster there than the rings (collective: every rank
    /// calls it with the same arguments).
    ///
    /// Both transports give the same bits, so the choice never changes a
    /// result. It is timed because it depends on the machine: on a 2-core
    /// VM (Zen 4) the shared memory took 45–54 µs per step where the rings
    /// took 56–62, but in runs where the two cores were slow to share
    /// memory, 250 µs against 85–124. `NNKERN_MPI_SHM` (on every rank:
    /// `mpirun -x`) forces it: `0` the rings, `1` the shared memory.
    /// Returns whether the shared memory is in use (the same answer on
    /// every rank).
    pub(crate) fn share_memory(&mut self, n: usize, counts: &[c_int], displs: &[c_int]) -> Result<bool> {
        self.share_memory_as(n, counts, displs, shm_mode())
    }

    /// [`Team::share_memory`] without the timed choice: the shared memory
    /// whenever every rank runs on one node.
    pub(crate) fn share_memory_forced(&mut self, n: usize) -> Result<bool> {
        self.share_memory_as(n, &[], &[], ShmMode::On)
    }

    fn share_memory_as(&mut self, n: usize, counts: &[c_int], displs: &[c_int], mode: ShmMode) -> Result<bool> {
        // n is the same on every rank: all return here alike.
        if self.size == 1 || self.shm.is_some() || n == 0 {
            return Ok(self.shm.is_some());
        }
        // SAFETY: a zeroed handle is a valid place for MPI to write one into.
        let mut node: ffi::MPI_Comm = unsafe { std::mem::zeroed() };
        // SAFETY: collective over the team's live communicator; key 0 keeps
        // the team's rank order; writes the new handle.
        let rc = unsafe {
            ffi::MPI_Comm_split_type(self.comm, ffi::RSMPI_COMM_TYPE_SHARED, 0, ffi::RSMPI_INFO_NULL, &mut node)
        };
        check(rc, "MPI_Comm_split_type")?;
        let mut node_size = 0 as c_int;
        // SAFETY: `node` is live; writes one int.
        unsafe { ffi::MPI_Comm_size(node, &mut node_size) };
        // Every rank's node is the whole team, and no rank turned it off.
        let all = self.all_gather_u64(&[(node_size as usize == self.size) as u64, (mode != ShmMode::Off) as u64]);
        self.one_node = all.iter().step_by(2).all(|&v| v != 0);
        // Four slots of n floats per rank, within SHM_MAX_BYTES (the same
        // on every rank: n is).
        let bytes = n.checked_mul(4 * size_of::<f32>()).filter(|&b| b <= SHM_MAX_BYTES);
        if all.contains(&0) || bytes.is_none() {
            // SAFETY: our own communicator, freed once (collective: every
            // rank took this branch, the vote being the same everywhere).
            unsafe { ffi::MPI_Comm_free(&mut node) };
            return Ok(false);
        }
        let bytes = bytes.unwrap_or(0);
        // SAFETY: a zeroed handle is a valid place for MPI to write one into.
        let mut win: ffi::MPI_Win = unsafe { std::mem::zeroed() };
        let mut base: *mut f32 = std::ptr::null_mut();
        // SAFETY: collective over `node` (every rank of the team, on one
        // node); MPI writes the segment's address and the window's handle.
        // A failure (no room for the segment, say) is fatal, as every MPI
        // error on the team's communicators (the node's inherits the
        // handler): the failing rank aborts the job with MPI's message, so
        // no rank is left waiting inside this collective.
        let rc = unsafe {
            ffi::MPI_Win_allocate_shared(
                bytes as ffi::MPI_Aint,
                size_of::<f32>() as c_int,
                ffi::RSMPI_INFO_NULL,
                node,
                (&mut base as *mut *mut f32).cast::<c_void>(),
                &mut win,
            )
        };
        assert_eq!(rc, 0, "MPI_Win_allocate_shared returned under MPI_ERRORS_ARE_FATAL");
        let mut bases = Vec::with_capacity(self.size);
        for r in 0..self.size {
            let (mut size, mut unit, mut b) = (0 as ffi::MPI_Aint, 0 as c_int, std::ptr::null_mut::<f32>());
            // SAFETY: `win` is live and `r` a rank of its communicator; MPI
            // writes rank r's segment size, unit and address. Its errors are
            // fatal (a window's default handler), so it returns 0.
            let rc = unsafe {
                ffi::MPI_Win_shared_query(win, r as c_int, &mut size, &mut unit, (&mut b as *mut *mut f32).cast())
            };
            assert!(rc == 0 && size as usize >= bytes && !b.is_null(), "MPI_Win_shared_query of rank {r}");
            bases.push(b);
        }
        // One passive-target epoch for the window's whole life; the
        // collectives synchronise with MPI_Win_sync and barriers.
        // SAFETY: `win` is live; no other epoch is open on it.
        unsafe { ffi::MPI_Win_lock_all(ffi::MPI_MODE_NOCHECK as c_int, win) };
        self.shm = Some(Shm { win, node, bases, n, rs_turn: 0, ag_turn: 0 });
        // Timed only where every rank leaves the choice to it.
        let auto = self.all_gather_u64(&[(mode == ShmMode::Auto) as u64]).iter().all(|&a| a != 0);
        if auto && n > 0 && counts.len() == self.size {
            let shm = self.shm.take();
            let spent = self.seconds;
            let rings = self.time_step_collectives(counts, displs, 16);
            // Back before any error returns (every rank returns it: the
            // buffers' failure is agreed), so that dropping the team frees
            // the window on every rank.
            self.shm = shm;
            let rings = rings?;
            let shared = self.time_step_collectives(counts, displs, 16)?;
            self.seconds = spent;
            // The slowest rank's time decides, the same on every rank.
            let all = self.all_gather_u64(&[(1e9 * rings) as u64, (1e9 * shared) as u64]);
            let (r, s) = all.chunks(2).fold((0, 0), |(r, s), c| (r.max(c[0]), s.max(c[1])));
            if s >= r {
                self.free_shm();
            }
        }
        Ok(self.shm.is_some())
    }

    /// Frees the shared memory (collective, where every rank has it).
    fn free_shm(&mut self) {
        if let Some(mut m) = self.shm.take() {
            // SAFETY: our own window (in its lock_all epoch) and node
            // communicator, each freed once; collective, and every rank
            // holds them (the ranks agreed to set them up).
            unsafe {
                ffi::MPI_Win_unlock_all(m.win);
                ffi::MPI_Win_free(&mut m.win);
                ffi::MPI_Comm_free(&mut m.node);
            }
        }
    }

    /// The median seconds of a reduce-scatter plus an all-gather of `n`
    /// floats split as `counts` and `displs` (a step's collectives),
    /// `reps` of them after two warm-ups, each input freshly written first
    /// (as a step's backward pass and update write them). Collective.
    pub(crate) fn time_step_collectives(&mut self, counts: &[c_int], displs: &[c_int], reps: usize) -> Result<f64> {
        let (rs, ag) = self.time_collectives(counts, displs, reps)?;
        Ok(rs + ag)
    }

    /// [`Team::time_step_collectives`], the reduce-scatter's and the
    /// all-gather's medians apart.
    pub(crate) fn time_collectives(&mut self, counts: &[c_int], displs: &[c_int], reps: usize) -> Result<(f64, f64)> {
        let n: usize = counts.iter().map(|&c| c as usize).sum();
        let (lo, mine) = (displs[self.rank] as usize, counts[self.rank] as usize);
        let widest = counts.iter().map(|&c| c as usize).max().unwrap_or(0);
        let zeros = crate::simd::AlignedVec::try_zeros;
        let bufs = (|| {
            Ok::<_, Error>((
                zeros(n, "the timed gradient")?,
                zeros(n, "the timed parameters")?,
                zeros(mine, "the timed gradient slice")?,
                zeros(2 * widest, "the timed ring buffers")?,
            ))
        })();
        // Every rank has its buffers before any rank enters a collective.
        let failed = self.all_gather_u64(&[bufs.is_err() as u64]).iter().position(|&f| f != 0);
        let (mut send, mut full, mut recv, mut work) = match (bufs, failed) {
            (Ok(b), None) => b,
            (Err(e), _) => return Err(e),
            // Another rank's buffers failed: about the same size as these.
            (Ok(_), Some(_)) => {
                return Err(Error::out_of_memory(
                    n.saturating_mul(8),
                    "another rank's buffers to time the collectives",
                ));
            }
        };
        // Each call: its input rewritten, a barrier, then the timed call.
        let median = |team: &mut Team, f: &mut dyn FnMut(&mut Team, f32) -> f64| {
            let mut t: Vec<f64> = (0..reps + 2).map(|i| f(team, i as f32)).skip(2).collect();
            t.sort_by(f64::total_cmp);
            t.get(t.len() / 2).copied().unwrap_or(0.0)
        };
        let rs = median(self, &mut |team, v| {
            send.fill(v);
            team.barrier();
            let t0 = Instant::now();
            team.reduce_scatter_sum(&send, counts, displs, &mut recv, &mut work);
            t0.elapsed().as_secs_f64()
        });
        let ag = median(self, &mut |team, v| {
            full[lo..lo + mine].fill(v);
            team.barrier();
            let t0 = Instant::now();
            team.all_gather_in_place(counts, displs, &mut full);
            t0.elapsed().as_secs_f64()
        });
        Ok((rs, ag))
    }

    /// A barrier over the team that also orders the shared memory: what any
    /// rank wrote to its segment before it is seen by every rank after it.
    fn shm_sync(&self, win: ffi::MPI_Win) {
        // SAFETY: `win` is the team's live window in its lock_all epoch;
        // the barrier is collective and every rank reaches it in the same
        // call of the same collective.
        unsafe {
            ffi::MPI_Win_sync(win);
            ffi::MPI_Barrier(self.comm);
            ffi::MPI_Win_sync(win);
        }
    }

    fn timed<R>(&mut self, f: impl FnOnce(ffi::MPI_Comm) -> R) -> R {
        let t = Instant::now();
        let r = f(self.comm);
        self.seconds += t.elapsed().as_secs_f64();
        r
    }

    /// Whether every rank runs on one node (known after [`Team::share_memory`]).
    pub(crate) fn one_node(&self) -> bool {
        self.one_node
    }

    /// Whether the collectives go through shared memory ([`Team::share_memory`]).
    pub(crate) fn shared_memory(&self) -> bool {
        self.shm.is_some()
    }

    /// A barrier over the team.
    pub(crate) fn barrier(&mut self) {
        // SAFETY: collective over the team's live communicator.
        self.timed(|comm| unsafe { ffi::MPI_Barrier(comm) });
    }

    /// Every rank's `mine` (each rank passes as many values), rank by rank.
    pub(crate) fn all_gather_u64(&mut self, mine: &[u64]) -> Vec<u64> {
        let n = mine.len();
        let mut all = vec![0u64; n * self.size];
        self.timed(|comm| {
            // SAFETY: `mine` holds n values, `all` n·size; distinct buffers;
            // collective that every rank calls with the same n.
            unsafe {
                ffi::MPI_Allgather(
                    mine.as_ptr().cast::<c_void>(),
                    n as c_int,
                    ffi::RSMPI_UINT64_T,
                    all.as_mut_ptr().cast::<c_void>(),
                    n as c_int,
                    ffi::RSMPI_UINT64_T,
                    comm,
                )
            }
        });
        all
    }

    /// Rank `root`'s bytes into every rank's `buf` (resized).
    pub(crate) fn broadcast_bytes(&mut self, root: usize, buf: &mut Vec<u8>) {
        let mut len = [buf.len() as u64];
        self.timed(|comm| {
            // SAFETY: one u64 in place; collective over the team with one root.
            unsafe { ffi::MPI_Bcast(len.as_mut_ptr().cast::<c_void>(), 1, ffi::RSMPI_UINT64_T, root as c_int, comm) }
        });
        buf.resize(len[0] as usize, 0);
        self.timed(|comm| {
            // SAFETY: `buf` holds `len` bytes on every rank.
            unsafe {
                ffi::MPI_Bcast(
                    buf.as_mut_ptr().cast::<c_void>(),
                    len[0] as c_int,
                    ffi::RSMPI_UINT8_T,
                    root as c_int,
                    comm,
                )
            }
        });
    }

    /// Rank 0's `buf` into every rank's (the same length everywhere).
    pub(crate) fn broadcast_f32(&mut self, buf: &mut [f32]) {
        for part in buf.chunks_mut(1 << 28) {
            self.timed(|comm| {
                // SAFETY: `part` is writable with its length, the same on every rank.
                unsafe {
                    ffi::MPI_Bcast(part.as_mut_ptr().cast::<c_void>(), part.len() as c_int, ffi::RSMPI_FLOAT, 0, comm)
                }
            });
        }
    }

    /// Sums `v` over the ranks, in place; every rank gets the same bits
    /// (rank 0 sums and broadcasts them).
    pub(crate) fn sum_f64(&mut self, v: &mut [f64]) {
        let send = v.to_vec();
        self.timed(|comm| {
            // SAFETY: distinct buffers of v.len() doubles; collective with the
            // same count everywhere; the result reaches root 0 only.
            unsafe {
                ffi::MPI_Reduce(
                    send.as_ptr().cast::<c_void>(),
                    v.as_mut_ptr().cast::<c_void>(),
                    v.len() as c_int,
                    ffi::RSMPI_DOUBLE,
                    ffi::RSMPI_SUM,
                    0,
                    comm,
                );
                ffi::MPI_Bcast(v.as_mut_ptr().cast::<c_void>(), v.len() as c_int, ffi::RSMPI_DOUBLE, 0, comm)
            }
        });
    }

    /// One step of a ring: `count_out` floats at `out` to the next rank,
    /// `count_in` floats from the previous one into `inp`.
    ///
    /// # Safety
    /// `out` is readable for `count_out` floats and `inp` writable for
    /// `count_in`; the two do not overlap; the previous rank sends
    /// `count_in` floats in the same step.
    unsafe fn ring_step(&self, out: *const f32, count_out: usize, inp: *mut f32, count_in: usize) {
        let (next, prev) = ((self.rank + 1) % self.size, (self.rank + self.size - 1) % self.size);
        // SAFETY: the caller's contract; the ring's neighbours exchange in
        // the same step with matching counts, so it cannot deadlock.
        unsafe {
            ffi::MPI_Sendrecv(
                out.cast::<c_void>(),
                count_out as c_int,
                ffi::RSMPI_FLOAT,
                next as c_int,
                RING_TAG,
                inp.cast::<c_void>(),
                count_in as c_int,
                ffi::RSMPI_FLOAT,
                prev as c_int,
                RING_TAG,
                self.comm,
                ffi::RSMPI_STATUS_IGNORE,
            )
        };
    }

    /// Sums `send` over the ranks and leaves this rank's part (`counts[rank]`
    /// values, the parts in rank order at `displs`) in `recv`.
    ///
    /// A ring of `p − 1` send-receive steps: part `c`'s partial sum starts
    /// at rank `c + 1`, travels the ring, each rank adding its own values,
    /// and ends summed at rank `c`. It moves what `MPI_Reduce_scatter` moves,
    /// but Open MPI 4.1's own took about twice as long on 2 ranks over
    /// shared memory (BENCHMARKS.md). Every part is summed by one rank.
    /// `work` holds at least twice the largest count.
    pub(crate) fn reduce_scatter_sum(
        &mut self,
        send: &[f32],
        counts: &[c_int],
        displs: &[c_int],
        recv: &mut [f32],
        work: &mut [f32],
    ) {
        let (r, p) = (self.rank, self.size);
        debug_assert_eq!(counts.iter().map(|&c| c as usize).sum::<usize>(), send.len());
        debug_assert_eq!(recv.len(), counts[r] as usize);
        let part = |c: usize| {
            let (d, n) = (displs[c] as usize, counts[c] as usize);
            d..d + n
        };
        if p == 1 {
            recv.copy_from_slice(&send[part(0)]);
            return;
        }
        let t = Instant::now();
        if self.shm.as_ref().is_some_and(|m| m.n == send.len()) {
            self.reduce_scatter_shm(send, counts, displs, recv);
            self.seconds += t.elapsed().as_secs_f64();
            return;
        }
        let widest = counts.iter().map(|&c| c as usize).max().unwrap_or(0);
        let (partial, incoming) = work[..2 * widest].split_at_mut(widest);
        for s in 0..p - 1 {
            let (c_out, c_in) = ((r + 2 * p - 1 - s) % p, (r + 2 * p - 2 - s) % p);
            let (n_out, n_in) = (counts[c_out] as usize, counts[c_in] as usize);
            // The first step sends this rank's own values of its part, the
            // later ones the partial sum it built in the step before.
            let out = if s == 0 { send[part(c_out)].as_ptr() } else { partial.as_ptr() };
            // SAFETY: `out` holds n_out floats (a part of `send`, or the
            // partial sum of that part), `incoming` at least n_in; the two are
            // distinct buffers; every rank runs the same steps.
            unsafe { self.ring_step(out, n_out, incoming.as_mut_ptr(), n_in) };
            let dst = if s == p - 2 { &mut recv[..] } else { &mut partial[..n_in] };
            for ((d, &a), &b) in dst.iter_mut().zip(&incoming[..n_in]).zip(&send[part(c_in)]) {
                *d = a + b;
            }
        }
        self.seconds += t.elapsed().as_secs_f64();
    }

    /// Every rank's part of `recv` (`counts[rank]` values at `displs[rank]`,
    /// filled by that rank) into every rank's `recv`, in place: a ring of
    /// `p − 1` send-receive steps, each forwarding the part received in the
    /// step before, or (one node) through the shared memory.
    pub(crate) fn all_gather_in_place(&mut self, counts: &[c_int], displs: &[c_int], recv: &mut [f32]) {
        let (r, p) = (self.rank, self.size);
        // The parts lie one after another inside `recv` (so any two differ).
        let mut end = 0usize;
        for (&c, &d) in counts.iter().zip(displs) {
            let (c, d) = (usize::try_from(c).unwrap(), usize::try_from(d).unwrap());
            assert!(d >= end && d + c <= recv.len(), "all-gather parts overlap or leave the buffer");
            end = d + c;
        }
        let t = Instant::now();
        if self.shm.as_ref().is_some_and(|m| m.n == recv.len()) {
            self.all_gather_shm(counts, displs, recv);
            self.seconds += t.elapsed().as_secs_f64();
            return;
        }
        let base = recv.as_mut_ptr();
        for s in 0..p - 1 {
            let (c_out, c_in) = ((r + p - s) % p, (r + 2 * p - 1 - s) % p);
            // SAFETY: the parts lie within `recv`, one after another
            // (asserted above), and c_out ≠ c_in for p > 1, so the send and
            // receive regions do not overlap; both come from one `&mut recv`.
            unsafe {
                self.ring_step(
                    base.add(displs[c_out] as usize),
                    counts[c_out] as usize,
                    base.add(displs[c_in] as usize),
                    counts[c_in] as usize,
                )
            };
        }
        self.seconds += t.elapsed().as_secs_f64();
    }
}

impl Team {
    /// [`Team::reduce_scatter_sum`] through the shared memory: each rank
    /// writes the parts of `send` that are not its own into its gradient
    /// slot; after a barrier it sums its own part from every rank's values
    /// (its own from `send`) in the ring's order, reading the others' slots
    /// in place.
    fn reduce_scatter_shm(&mut self, send: &[f32], counts: &[c_int], displs: &[c_int], recv: &mut [f32]) {
        let (r, p) = (self.rank, self.size);
        let Some(m) = self.shm.as_mut() else { return };
        let s = m.next_slot(false);
        let Some(m) = self.shm.as_ref() else { return };
        let win = m.win;
        let slot = |q: usize| m.slot(q, s);
        let part = |c: usize| (displs[c] as usize, counts[c] as usize);
        let mine = slot(r);
        for c in (0..p).filter(|&c| c != r) {
            let (d, k) = part(c);
            // SAFETY: `send` holds n floats and the part lies inside it; this
            // rank's slot is written by this rank only, and no rank reads it
            // until the barrier below (the last reads of this slot, two calls
            // ago, ended before every rank's barrier of the previous call).
            unsafe { std::ptr::copy_nonoverlapping(send.as_ptr().add(d), mine.add(d), k) };
        }
        self.shm_sync(win);
        let (d, k) = part(r);
        let theirs = |q: usize| -> &[f32] {
            // SAFETY: rank q wrote this part of its slot before the barrier
            // and writes that slot again only after the next call's barrier,
            // which this rank reaches after its reads here; n floats each.
            unsafe { std::slice::from_raw_parts(slot(q).add(d), k) }
        };
        let own = &send[d..d + k];
        let at = |q: usize| if q == r { own } else { theirs(q) };
        // The ring's order of summation, so both transports give the same
        // bits: rank r+1's values, plus rank r+2's, …, plus this rank's.
        let order = |i: usize| (r + 1 + i) % p;
        let out = &mut recv[..k];
        for ((o, &a), &b) in out.iter_mut().zip(at(order(0))).zip(at(order(1))) {
            *o = a + b;
        }
        for i in 2..p {
            for (o, &b) in out.iter_mut().zip(at(order(i))) {
                *o += b;
            }
        }
    }

    /// [`Team::all_gather_in_place`] through the shared memory: each rank
    /// writes its part into its parameter slot and, after a barrier, copies
    /// the others' parts from their slots.
    fn all_gather_shm(&mut self, counts: &[c_int], displs: &[c_int], recv: &mut [f32]) {
        let (r, p) = (self.rank, self.size);
        let Some(m) = self.shm.as_mut() else { return };
        let s = m.next_slot(true);
        let Some(m) = self.shm.as_ref() else { return };
        let win = m.win;
        let slot = |q: usize| m.slot(q, s);
        let (d, k) = (displs[r] as usize, counts[r] as usize);
        let own = &recv[d..d + k];
        // SAFETY: part r lies inside `recv` and inside the slot's n floats
        // (the caller checked the parts); only this rank writes its slot,
        // and the others read it only after the barrier below (their reads
        // two calls ago ended before the previous call's barrier).
        unsafe { std::ptr::copy_nonoverlapping(own.as_ptr(), slot(r).add(d), k) };
        self.shm_sync(win);
        for q in (0..p).filter(|&q| q != r) {
            let (d, k) = (displs[q] as usize, counts[q] as usize);
            // SAFETY: rank q wrote its part before the barrier and rewrites
            // this slot only after the next call's barrier; `recv` holds n
            // floats (checked by the caller) and is not shared.
            recv[d..d + k].copy_from_slice(unsafe { std::slice::from_raw_parts(slot(q).add(d), k) });
        }
    }
}

/// The tag of bucket 0's messages in a bucketed reduce-scatter; bucket `k`
/// sends with `BUCKET_TAG + k`, so that the buckets' rings never match each
/// other's messages whatever order they progress in.
const BUCKET_TAG: c_int = 1;
/// The most buckets a plan keeps: their tags stay below [`RING_TAG`] and
/// 32767, the least upper bound MPI guarantees (a plan of more is one
/// bucket).
const MAX_BUCKETS: usize = 20_000;

/// Where a bucket's ring stands in the current step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ring {
    /// Some of its gradient is not final yet.
    Filling,
    /// Ring step `s` is in flight (its send and receive posted).
    Step(usize),
    /// Summed: this rank's part of it is in the result.
    Done,
}

/// How a reduce-scatter of a gradient splits into buckets: ranges of the
/// gradient, each summed over the ranks by its own ring of nonblocking
/// send-receives (the steps of [`Team::reduce_scatter_sum`], on the
/// bucket's piece of every rank's part) as soon as all its values are
/// final, while the backward pass computes the rest. Every element is summed
/// in the same order as by [`Team::reduce_scatter_sum`] (its part's ring),
/// so the buckets never change the sum's bits. Made once per fit
/// ([`BucketPlan::new`]); its buffers serve every step.
pub(crate) struct BucketPlan {
    /// The buckets, ranges of the gradient.
    ranges: Vec<(usize, usize)>,
    /// Values of each bucket final so far in this step.
    filled: Vec<usize>,
    /// Each bucket's ring state and its send and receive requests.
    state: Vec<Ring>,
    reqs: Vec<[ffi::MPI_Request; 2]>,
    /// `MPI_Testsome`'s indices of completed requests (2 per bucket).
    index: Vec<c_int>,
    /// Each bucket's two ring buffers (partial sums, incoming values) in
    /// `work`: `width[k]` floats each from `offs[k]`.
    offs: Vec<usize>,
    width: Vec<usize>,
    work: AlignedVec,
    /// The ranks' parts of the gradient.
    counts: Vec<c_int>,
    displs: Vec<c_int>,
    /// Rows of the first layer's weight gradient to compute at a time.
    first_rows: Option<usize>,
}

impl BucketPlan {
    /// A plan for a gradient of `counts`' total, split among the ranks as
    /// `counts` and `displs`, in the buckets `ranges` (disjoint, covering
    /// the gradient; in the order they become final), the backward pass
    /// computing the first layer's weight gradient `first_rows` rows at a
    /// time.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when the ranges do not tile the gradient;
    /// [`Error::OutOfMemory`] for the ring buffers.
    pub(crate) fn new(
        mut ranges: Vec<(usize, usize)>,
        counts: &[c_int],
        displs: &[c_int],
        first_rows: Option<usize>,
    ) -> Result<BucketPlan> {
        let n: usize = counts.iter().map(|&c| c as usize).sum();
        let mut sorted = ranges.clone();
        sorted.sort_unstable();
        let tiles = sorted.first().is_some_and(|r| r.0 == 0)
            && sorted.windows(2).all(|w| w[0].1 == w[1].0 && w[0].0 < w[0].1)
            && sorted.last().is_some_and(|r| r.1 == n && r.0 < r.1);
        if !(tiles || n == 0) {
            return Err(Error::InvalidArgument(format!("buckets must tile the gradient of {n} values: {ranges:?}")));
        }
        let mut first_rows = first_rows;
        if ranges.len() > MAX_BUCKETS {
            // One bucket: no pieces either (nothing would overlap them).
            (ranges, first_rows) = (vec![(0, n)], None);
        }
        let nb = ranges.len();
        let mut plan = BucketPlan {
            ranges,
            filled: vec![0; nb],
            state: vec![Ring::Filling; nb],
            // SAFETY: reads an extern static that MPI sets up.
            reqs: vec![[unsafe { ffi::RSMPI_REQUEST_NULL }; 2]; nb],
            index: vec![0; 2 * nb],
            offs: Vec::with_capacity(nb),
            width: Vec::with_capacity(nb),
            work: AlignedVec::default(),
            counts: counts.to_vec(),
            displs: displs.to_vec(),
            first_rows,
        };
        let mut total = 0usize;
        for k in 0..nb {
            let widest = (0..counts.len()).map(|c| plan.piece(k, c).len()).max().unwrap_or(0);
            plan.offs.push(total);
            plan.width.push(widest);
            total += 2 * widest;
        }
        plan.work = AlignedVec::try_zeros(total, "the bucketed reduce-scatter's ring buffers")?;
        Ok(plan)
    }

    /// The number of buckets.
    pub(crate) fn len(&self) -> usize {
        self.ranges.len()
    }

    /// Bucket `k`'s piece of rank `c`'s part: a range of the gradient.
    fn piece(&self, k: usize, c: usize) -> std::ops::Range<usize> {
        let (a, z) = self.ranges[k];
        let (d, n) = (self.displs[c] as usize, self.counts[c] as usize);
        let lo = a.max(d);
        lo..z.min(d + n).max(lo)
    }
}

/// A reduce-scatter under way during a backward pass, lent to it by
/// [`Team::reduce_in_buckets`]: the backward pass writes the gradient
/// through [`ReduceInBuckets::part`] and says what is final with
/// [`ReduceInBuckets::ready`] (a bucket whose values are all final starts
/// its ring at once, and every call drives the rings in flight); at the
/// end every bucket not yet sent goes as it stands, and the rings complete,
/// leaving this rank's part of the sum in `recv`. Through shared memory
/// the exchange waits for the end (there the copies are the cost, and they
/// cannot overlap the computing on the same core).
///
/// It holds the gradient's exclusive borrow and hands out disjoint pieces
/// of it from one raw pointer, so MPI may read a bucket in flight while
/// the backward pass writes another. Dropped unfinished (only while a
/// panic unwinds through the backward pass), it aborts the job: the other
/// ranks would wait for its messages forever, and MPI must not be left
/// reading or writing memory about to be freed.
pub(crate) struct ReduceInBuckets<'a> {
    team: &'a mut Team,
    plan: &'a mut BucketPlan,
    /// The gradient (n floats), from its exclusive borrow.
    grad: *mut f32,
    /// The plan's ring buffers, from its exclusive borrow (one pointer for
    /// the step, since receives in flight write into it).
    work: *mut f32,
    n: usize,
    recv: &'a mut [f32],
    /// Whether the whole gradient goes in one exchange at the end: through
    /// shared memory, or as one bucket ([`Team::reduce_scatter_sum`]).
    at_end: bool,
    finished: bool,
    _grad: std::marker::PhantomData<&'a mut [f32]>,
}

impl Team {
    /// A reduce-scatter of `grad` (split as `plan` says) into this rank's
    /// part `recv`, in buckets as `backward` makes them final: `backward`
    /// writes the gradient through the [`ReduceInBuckets`] it is lent, and
    /// every ring is complete when this returns. Collective: every rank
    /// calls it in the same step.
    ///
    /// The sink is only lent, so it cannot be leaked with rings in flight:
    /// MPI never reads or writes the buffers after this returns. A panic
    /// inside `backward` aborts the job ([`ReduceInBuckets`]'s drop).
    pub(crate) fn reduce_in_buckets<R>(
        &mut self,
        plan: &mut BucketPlan,
        grad: &mut [f32],
        recv: &mut [f32],
        backward: impl FnOnce(&mut ReduceInBuckets<'_>) -> R,
    ) -> R {
        let n: usize = plan.counts.iter().map(|&c| c as usize).sum();
        assert!(grad.len() == n && recv.len() == plan.counts[self.rank] as usize, "bucketed reduce-scatter sizes");
        debug_assert!(self.size >= 2, "a reduce-scatter over one rank is a copy");
        plan.filled.fill(0);
        plan.state.fill(Ring::Filling);
        let at_end = self.shm.as_ref().is_some_and(|m| m.n == n) || plan.len() == 1;
        let work = plan.work.as_mut_ptr();
        let mut sink = ReduceInBuckets {
            team: self,
            plan,
            grad: grad.as_mut_ptr(),
            work,
            n,
            recv,
            at_end,
            finished: false,
            _grad: std::marker::PhantomData,
        };
        let r = backward(&mut sink);
        sink.finish();
        r
    }
}

impl ReduceInBuckets<'_> {
    /// Rows of the first layer's weight gradient to compute at a time
    /// ([`BucketPlan::first_rows`]).
    pub(crate) fn first_rows(&self) -> Option<usize> {
        self.plan.first_rows
    }

    /// The gradient's values `a..z` to write. They must not be in a bucket
    /// already sent (asserted).
    pub(crate) fn part(&mut self, a: usize, z: usize) -> &mut [f32] {
        assert!(a <= z && z <= self.n, "gradient range {a}..{z} of {}", self.n);
        let plan = &*self.plan;
        let sent = |k: usize| plan.state[k] != Ring::Filling;
        assert!(
            (0..plan.len()).all(|k| !sent(k) || plan.ranges[k].1 <= a || z <= plan.ranges[k].0),
            "gradient range {a}..{z} written after its bucket was sent"
        );
        // SAFETY: `grad` comes from the exclusive borrow this value holds
        // for its life, and a..z lies inside it; the returned borrow ends
        // before any other piece is handed out (it borrows self), and the
        // pieces MPI may be reading (buckets sent) do not overlap it
        // (asserted above).
        unsafe { std::slice::from_raw_parts_mut(self.grad.add(a), z - a) }
    }

    /// The gradient's values `a..z` are final for this step: each bucket
    /// they complete starts its ring, and the rings in flight are driven.
    pub(crate) fn ready(&mut self, a: usize, z: usize) {
        if self.at_end {
            return;
        }
        let t = Instant::now();
        for k in 0..self.plan.len() {
            let (lo, hi) = self.plan.ranges[k];
            let add = hi.min(z).saturating_sub(lo.max(a));
            if add > 0 {
                self.plan.filled[k] += add;
                debug_assert!(self.plan.filled[k] <= hi - lo, "gradient values made final twice");
                if self.plan.filled[k] == hi - lo {
                    self.post(k, 0);
                }
            }
        }
        self.drive(false);
        self.team.seconds += t.elapsed().as_secs_f64();
    }

    /// Zeros every value of a bucket not yet sent (a rank that failed this
    /// step takes part with a zero gradient).
    pub(crate) fn zero_unsent(&mut self) {
        for k in 0..self.plan.len() {
            if self.plan.state[k] == Ring::Filling {
                let (a, z) = self.plan.ranges[k];
                self.part(a, z).fill(0.0);
            }
        }
    }

    /// Sends every bucket not sent yet (as it stands), completes every
    /// ring and leaves this rank's part of the sum in `recv`. Called once;
    /// later calls do nothing.
    fn finish(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        if self.at_end {
            // The step's one exchange (shared memory, or the blocking rings
            // with one bucket's two ring buffers: twice the widest part); it
            // counts its own time.
            // SAFETY: nothing is in flight (nothing was sent before now);
            // the gradient's n floats, read only while this slice lives.
            let grad = unsafe { std::slice::from_raw_parts(self.grad, self.n) };
            let plan = &mut *self.plan;
            self.team.reduce_scatter_sum(grad, &plan.counts, &plan.displs, self.recv, &mut plan.work);
            return;
        }
        let t = Instant::now();
        for k in 0..self.plan.len() {
            if self.plan.state[k] == Ring::Filling {
                self.post(k, 0);
            }
        }
        self.drive(true);
        self.team.seconds += t.elapsed().as_secs_f64();
    }

    /// Posts ring step `s` of bucket `k`: the send to the next rank (this
    /// rank's values of its piece of part `c_out`, or the partial sum of the
    /// step before) and the receive from the previous one.
    fn post(&mut self, k: usize, s: usize) {
        let (r, p) = (self.team.rank, self.team.size);
        let (c_out, c_in) = ((r + 2 * p - 1 - s) % p, (r + 2 * p - 2 - s) % p);
        let (out, inp) = (self.plan.piece(k, c_out), self.plan.piece(k, c_in));
        let (off, w) = (self.plan.offs[k], self.plan.width[k]);
        // SAFETY: `out` lies inside the gradient (n floats); the bucket's
        // two buffers (partial sums, incoming) lie inside `work`, w floats
        // each from `off` (allocated so), and w ≥ every piece of the bucket.
        let (src, incoming) = unsafe {
            let partial = self.work.add(off).cast_const();
            (if s == 0 { self.grad.add(out.start).cast_const() } else { partial }, self.work.add(off + w))
        };
        let (next, prev) = ((r + 1) % p, (r + p - 1) % p);
        let tag = BUCKET_TAG + k as c_int;
        let comm = self.team.comm;
        let reqs = &mut self.plan.reqs[k];
        // SAFETY: the send reads out.len() floats at `src` (this rank's
        // values of a bucket whose values are all final, which `part` no
        // longer hands out, or the bucket's partial-sum buffer, which is not
        // written until this send completes); the receive writes
        // inp.len() ≤ w floats into the bucket's incoming buffer, which
        // nothing else touches until it completes. The previous rank posts
        // the matching send (its c_out is this rank's c_in) with the same
        // tag, and a piece of 0 values sends nothing on both sides. Both
        // complete in `drive` before the buffers are read or reused.
        unsafe {
            // The receive first: the previous rank's message then finds it
            // posted.
            if !inp.is_empty() {
                ffi::MPI_Irecv(
                    incoming.cast::<c_void>(),
                    inp.len() as c_int,
                    ffi::RSMPI_FLOAT,
                    prev as c_int,
                    tag,
                    comm,
                    &mut reqs[1],
                );
            }
            if !out.is_empty() {
                ffi::MPI_Isend(
                    src.cast::<c_void>(),
                    out.len() as c_int,
                    ffi::RSMPI_FLOAT,
                    next as c_int,
                    tag,
                    comm,
                    &mut reqs[0],
                );
            }
        }
        self.plan.state[k] = Ring::Step(s);
    }

    /// Drives the rings in flight: one progress call over every bucket's
    /// requests (`MPI_Testsome`; `wait`: `MPI_Waitall`, until every ring is
    /// done), then each bucket whose step completed sums what came in and
    /// posts its next step. One call for all buckets: with TCP every call
    /// polls the sockets, a system call.
    fn drive(&mut self, wait: bool) {
        let nreq = 2 * self.plan.len();
        // SAFETY: reads an extern static that MPI sets up.
        let null = unsafe { ffi::RSMPI_REQUEST_NULL };
        loop {
            let reqs = self.plan.reqs.as_mut_ptr().cast::<ffi::MPI_Request>();
            let mut done = 0 as c_int;
            // SAFETY: `reqs` holds 2 requests per bucket, contiguous (an
            // array of arrays), each posted or null; `index` holds as many
            // ints. MPI completes requests and sets them to null.
            unsafe {
                if wait {
                    ffi::MPI_Waitall(nreq as c_int, reqs, ffi::RSMPI_STATUSES_IGNORE);
                } else {
                    let index = self.plan.index.as_mut_ptr();
                    ffi::MPI_Testsome(nreq as c_int, reqs, &mut done, index, ffi::RSMPI_STATUSES_IGNORE);
                }
            }
            let mut more = false;
            for k in 0..self.plan.len() {
                if let Ring::Step(s) = self.plan.state[k]
                    && self.plan.reqs[k] == [null, null]
                {
                    more |= self.complete(k, s);
                }
            }
            // New steps posted: drive them too (at most p − 1 rounds).
            if !more {
                break;
            }
        }
    }

    /// Bucket `k`'s ring step `s` arrived (both requests complete):
    /// incoming + this rank's values of part `c_in`, into the partial sum,
    /// or at the last step into `recv`. Returns whether it posted the next
    /// step.
    fn complete(&mut self, k: usize, s: usize) -> bool {
        let (r, p) = (self.team.rank, self.team.size);
        let c_in = (r + 2 * p - 2 - s) % p;
        let inp = self.plan.piece(k, c_in);
        let (off, w) = (self.plan.offs[k], self.plan.width[k]);
        // SAFETY: the bucket's two buffers, w floats each from `off` inside
        // `work`, taken from its one raw pointer (other buckets' receives
        // may be writing elsewhere in it); both of this bucket's requests
        // completed, so MPI touches neither. This piece of the gradient is
        // final and only read; inp lies inside the n floats.
        let (partial, incoming, own) = unsafe {
            (
                std::slice::from_raw_parts_mut(self.work.add(off), w),
                std::slice::from_raw_parts(self.work.add(off + w), w),
                std::slice::from_raw_parts(self.grad.add(inp.start), inp.len()),
            )
        };
        let dst = if s == p - 2 {
            // c_in is this rank: a piece of it lies inside its part (an
            // empty one may start anywhere).
            let d = self.plan.displs[r] as usize;
            if inp.is_empty() { &mut [][..] } else { &mut self.recv[inp.start - d..][..inp.len()] }
        } else {
            &mut partial[..inp.len()]
        };
        for ((d, &a), &b) in dst.iter_mut().zip(&incoming[..inp.len()]).zip(own) {
            *d = a + b;
        }
        if s + 2 < p {
            self.post(k, s + 1);
            true
        } else {
            self.plan.state[k] = Ring::Done;
            false
        }
    }
}

impl Drop for ReduceInBuckets<'_> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        // Only a panic unwinding through the backward pass gets here
        // (reduce_in_buckets finishes otherwise). Rings in flight read and
        // write this rank's buffers, and the other ranks wait for their
        // messages: end the job.
        eprintln!("nnkern: a rank panicked during a distributed step; aborting the MPI job");
        // SAFETY: the team's live communicator; MPI_Abort ends every rank
        // and does not return.
        unsafe { ffi::MPI_Abort(self.team.comm, 1) };
        std::process::abort();
    }
}

/// The tag of the ring collectives' messages (on the fit's own communicator).
const RING_TAG: c_int = 0x6e6e;

impl Drop for Team {
    fn drop(&mut self) {
        if is_running() {
            if std::thread::panicking() {
                // A rank unwinding from a panic (its others are elsewhere):
                // freeing the window waits for every rank, and would hang
                // the job; left to the process's end (MPI's abort or exit).
                std::mem::forget(self.shm.take());
            }
            self.free_shm();
            // SAFETY: our own duplicate, freed once.
            unsafe { ffi::MPI_Comm_free(&mut self.comm) };
        }
    }
}
