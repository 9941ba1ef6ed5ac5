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
        Ok(Team { comm, rank: rank as usize, size: size as usize, seconds: 0.0 })
    }

    fn timed<R>(&mut self, f: impl FnOnce(ffi::MPI_Comm) -> R) -> R {
        let t = Instant::now();
        let r = f(self.comm);
        self.seconds += t.elapsed().as_secs_f64();
        r
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

    /// Every rank's part (`send`, `counts[rank]` values) into `recv` at
    /// `displs`, rank by rank: a ring of `p − 1` send-receive steps, each
    /// forwarding the part received in the step before.
    pub(crate) fn all_gather_f32(&mut self, send: &[f32], counts: &[c_int], displs: &[c_int], recv: &mut [f32]) {
        let (r, p) = (self.rank, self.size);
        debug_assert_eq!(send.len(), counts[r] as usize);
        // The parts lie one after another inside `recv` (so any two differ).
        let mut end = 0usize;
        for (&c, &d) in counts.iter().zip(displs) {
            let (c, d) = (usize::try_from(c).unwrap(), usize::try_from(d).unwrap());
            assert!(d >= end && d + c <= recv.len(), "all-gather parts overlap or leave the buffer");
            end = d + c;
        }
        let t = Instant::now();
        let at = displs[r] as usize;
        recv[at..at + send.len()].copy_from_slice(send);
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

/// The tag of the ring collectives' messages (on the fit's own communicator).
const RING_TAG: c_int = 0x6e6e;

impl Drop for Team {
    fn drop(&mut self) {
        if is_running() {
            // SAFETY: our own duplicate, freed once.
            unsafe { ffi::MPI_Comm_free(&mut self.comm) };
        }
    }
}
