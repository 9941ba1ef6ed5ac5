//! Data-parallel training over MPI (feature `mpi`): the configuration a
//! caller sets ([`Distributed`], [`Shard`]) and the trainer's side of it.
//!
//! Each rank computes the gradient of its share of every global mini-batch;
//! the gradients are summed with a reduce-scatter, each rank applies the
//! optimizer to its own slice of the parameters (a sharded optimizer,
//! ZeRO stage 1: half the optimizer work on 2 ranks), and an all-gather
//! hands every rank the updated parameters. Every parameter is therefore
//! computed by exactly one rank and copied bit for bit to the others: the
//! ranks hold identical models after every step (the ring's order of
//! summation only has to agree with one process's to rounding).
//!
//! **Transport.** When every rank runs on one node, the two collectives go
//! through a window of shared memory (MPI-3 `MPI_Win_allocate_shared`):
//! each rank writes what the others need into its own segment and, after a
//! barrier, reads theirs in place. Otherwise (ranks on several machines)
//! they are rings of `p − 1` send-receive steps between neighbouring ranks.
//! `NNKERN_MPI_SHM=0` in every rank's environment (`mpirun -x
//! NNKERN_MPI_SHM=0`) keeps the rings on one node too; with two ranks both
//! give the same bits. [`DistReport::shared_memory`] says which ran.
//!
//! **Buckets.** Across nodes, the rings start while the backward pass is
//! still running: the gradient goes in buckets (each layer's, the last
//! first, and the first layer's weights, the largest, in pieces of about
//! 128 KiB computed a few rows at a time), each bucket's ring posted
//! (nonblocking send-receives) as soon as its values are final and driven
//! between the pieces, so the network moves one bucket while the cores
//! compute the next. Every value is summed in the order of its part's
//! ring either way, so the sums' bits never depend on the buckets; the
//! first layer's weight gradient in pieces has the bits of the whole with
//! sparse input, and with dense input (GEMMs of fewer rows) agrees within
//! the GEMM bound. The pieces are computed alike through shared memory and
//! as rings, so both transports keep giving the same bits. Within one node
//! the bytes are copied by the ranks' own cores, so nothing can overlap and
//! every bucket costs a message's latency: one bucket there.
//! `NNKERN_MPI_BUCKET_KB` (rank 0's) sets the size (`0`: one bucket);
//! [`DistReport::buckets`] says how many went.
//!
//! Before every phase that ends in a collective, the ranks agree on a
//! status: a rank that fails a check (bad data, a different model or
//! config, an empty shard) makes every rank return the same error, and a
//! rank that fails inside an epoch keeps taking part in the collectives
//! until the epoch's end, where all ranks return its error.
//!
//! **When it pays.** Each step moves `2(p−1)/p` times the gradient's size
//! per rank (407 KB for 784-128-10 on 2 ranks) and computes `B/p` samples
//! of a global batch `B`. Distributing pays when the compute saved,
//! `B·c·(1 − 1/p)` for `c` seconds per sample, exceeds the collectives'
//! time: on a 2-core Zen 4 over shared memory (c ≈ 3.3 µs, a step's
//! collectives 45–60 µs) from a global batch of about 30 (measured: 0.31–1.15×
//! the epoch rate at 32, 0.85–1.98× at 256 (median 1.56× over 20 rounds; the
//! VM has slow phases when both cores are busy), 1.82–2.12× at 1024); over
//! 10, 25 and 100 Gb/s links
//! from about 200, 80 and 20 for any p, and half the ideal speed-up needs
//! `B ≥ p·t_comm/c` (p = 8: 1380, 550, 140). BENCHMARKS.md has the figures.

use super::model::Mlp;
use super::opt_state::OptState;
use super::train::History;
use super::train::TrainConfig;
use crate::comm::{BucketPlan, ReduceInBuckets, Team};
pub use crate::comm::{Comm, is_running};
use crate::error::{Error, Result};
use crate::optim::{StepRule, add_l1, clip_to, grad_sum_sq};
use crate::par::Par;
use crate::simd::AlignedVec;
use std::ops::Range;
use std::os::raw::c_int;

/// What the data each rank passes to `fit` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Shard {
    /// Every rank passes the whole data set (the same rows, in the same
    /// order). All ranks shuffle with the same seed, so the global order of
    /// the samples is that of one process; rank `r` of `p` trains on rows
    /// `[r·b/p, (r+1)·b/p)` of each global batch of `b = batch_size` rows.
    /// The validation set is the same on every rank and scored by each.
    #[default]
    Whole,
    /// Each rank passes its own part of the data (say, the files of its
    /// machine). Each shuffles its own part; a global batch of
    /// `batch_size` rows takes from every rank in proportion to the size of
    /// its part, and an epoch has `⌈N/batch_size⌉` steps for `N` rows in all.
    /// Validation scores (given per rank, or held out of each rank's part)
    /// are averaged over the ranks, weighted by their sizes.
    Local,
}

/// The distributed mode of a fit ([`TrainConfig::distributed`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Distributed {
    /// The ranks that train together. Every rank of it calls the same fit
    /// with the same model shape and config (checked).
    pub comm: Comm,
    /// Whether each rank passes the whole data or its own part.
    pub shard: Shard,
}

impl Distributed {
    /// Over `MPI_COMM_WORLD`, every rank passing the whole data.
    pub fn world() -> Distributed {
        Distributed { comm: Comm::world(), shard: Shard::Whole }
    }
}

/// How a distributed fit went, in [`History::distributed`](super::History).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct DistReport {
    /// The number of ranks.
    pub ranks: usize,
    /// This rank.
    pub rank: usize,
    /// Seconds this rank spent in collectives (communication and waiting
    /// for the other ranks).
    pub communication_seconds: f64,
    /// Seconds of the whole fit on this rank.
    pub seconds: f64,
    /// Training samples this rank computed gradients of.
    pub samples: u64,
    /// Whether the step's collectives went through shared memory (every rank
    /// on one node), rather than send-receive rings.
    pub shared_memory: bool,
    /// The buckets each step's reduce-scatter sent as rings, each as soon
    /// as the backward pass made its values final: across nodes one per
    /// layer, the first layer's weights in pieces of about 128 KiB; 1 when
    /// every rank runs on one node (the ranks' own cores copy the bytes
    /// there, so nothing can overlap) and through shared memory.
    /// `NNKERN_MPI_BUCKET_KB` sets the size (`0`: one bucket).
    pub buckets: usize,
}

impl DistReport {
    /// The share of the fit spent in collectives.
    pub fn communication_share(&self) -> f64 {
        if self.seconds > 0.0 { self.communication_seconds / self.seconds } else { 0.0 }
    }
}

/// The collectives of one distributed step timed alone
/// ([`time_collectives`]): median microseconds per call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CollectiveTimes {
    /// Summing the gradient and scattering its parts (reduce-scatter).
    pub reduce_scatter_us: f64,
    /// Handing every rank the updated parameters (all-gather).
    pub all_gather_us: f64,
    /// Whether they went through shared memory (every rank on one node).
    pub shared_memory: bool,
}

/// Times the collectives a distributed step runs, on vectors of `n` floats
/// split as a fit splits its parameters, over `comm`: `reps` calls of each
/// after two warm-ups, each input freshly written and a barrier before each;
/// median per call. `shared_memory`: through shared memory where every rank
/// runs on one node (else the send-receive rings). Collective: every rank
/// of `comm` calls it with the same arguments. A diagnostic for the cost
/// model in the module's docs.
///
/// # Errors
/// [`Error::InvalidArgument`] when `n` or `reps` is 0, MPI is not running
/// or `comm` is not valid; [`Error::Overflow`] when `n` exceeds MPI's 32-bit
/// counts; [`Error::OutOfMemory`] for the buffers. Every rank passing the
/// same arguments gets the same error.
pub fn time_collectives(comm: Comm, n: usize, reps: usize, shared_memory: bool) -> Result<CollectiveTimes> {
    // The same arguments on every rank: each rank returns the same error
    // before any collective.
    if n == 0 || reps == 0 {
        return Err(Error::InvalidArgument(format!(
            "time_collectives needs n > 0 floats and reps > 0 calls (n = {n}, reps = {reps})"
        )));
    }
    if c_int::try_from(n).is_err() {
        return Err(Error::Overflow(format!("{n} floats: MPI counts are 32-bit")));
    }
    let mut team = Team::join(comm)?;
    let (counts, displs) = slices(n, team.size)?;
    let shared = shared_memory && team.share_memory_forced(n)?;
    let (rs, ag) = team.time_collectives(&counts, &displs, reps)?;
    Ok(CollectiveTimes { reduce_scatter_us: 1e6 * rs, all_gather_us: 1e6 * ag, shared_memory: shared })
}

/// The ranks' slices of `n` parameters (`counts`, `displs`): equal parts,
/// multiples of 16 values (whole cache lines and vectors), the last one
/// shorter. [`Error::Overflow`] when `n` exceeds MPI's 32-bit counts.
fn slices(n: usize, p: usize) -> Result<(Vec<c_int>, Vec<c_int>)> {
    if c_int::try_from(n).is_err() {
        return Err(Error::Overflow(format!("{n} parameters: MPI counts and offsets are 32-bit")));
    }
    // n < 2³¹, so (r + 1)·part stays far inside usize and every value below
    // fits a c_int (each is at most n).
    let part = n.div_ceil(p).next_multiple_of(16);
    let counts = (0..p).map(|r| (n.min((r + 1) * part) - n.min(r * part)) as c_int).collect();
    let displs = (0..p).map(|r| n.min(r * part) as c_int).collect();
    Ok((counts, displs))
}

/// FNV-1a over a string: the fingerprint the ranks compare.
fn fingerprint(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
}

/// The status codes exchanged before a phase (0: fine).
const OK: u64 = 0;

/// A distributed fit's team and its slice of the parameters.
pub(crate) struct Dist {
    team: Team,
    shard: Shard,
    /// Every rank's training rows (after any held-out split).
    n_train: Vec<usize>,
    /// Whether any rank validates.
    any_val: bool,
    /// The parameter slices, one per rank (`counts`, `displs`).
    counts: Vec<c_int>,
    displs: Vec<c_int>,
    /// This rank's slice of the summed gradient.
    gs: AlignedVec,
    /// The reduce-scatter's buckets.
    plan: Option<BucketPlan>,
    /// Each layer's weights `(start, end)` and the end of its biases.
    layers: Vec<(usize, usize, usize)>,
    /// Samples this rank has computed gradients of.
    samples: u64,
}

impl Dist {
    /// The team of a fit with `cfg`, or `None` when the fit is not
    /// distributed or runs on a single rank (then it is exactly the
    /// single-process fit). Collective over the communicator.
    pub(crate) fn join(cfg: &TrainConfig) -> Result<Option<Dist>> {
        let Some(d) = cfg.distributed else { return Ok(None) };
        let team = Team::join(d.comm)?;
        if team.size == 1 {
            return Ok(None);
        }
        Ok(Some(Dist {
            team,
            shard: d.shard,
            n_train: Vec::new(),
            any_val: false,
            counts: Vec::new(),
            displs: Vec::new(),
            gs: AlignedVec::default(),
            plan: None,
            layers: Vec::new(),
            samples: 0,
        }))
    }

    /// This rank and the number of ranks.
    pub(crate) fn rank(&self) -> (usize, usize) {
        (self.team.rank, self.team.size)
    }

    /// Whether every rank passes the whole data.
    pub(crate) fn whole(&self) -> bool {
        self.shard == Shard::Whole
    }

    /// Makes every rank return the same error when any rank's `local` is
    /// one: the lowest failing rank's kind and message, naming the rank.
    pub(crate) fn agree<T>(&mut self, local: Result<T>) -> Result<T> {
        let code = match &local {
            Ok(_) => OK,
            Err(e) => e.code() as u64,
        };
        let all = self.team.all_gather_u64(&[code]);
        self.settle(local, &all, 1, 0)
    }

    /// The error of the lowest rank whose status (`all[r·stride + at]`) is
    /// not OK, on every rank; else `local`.
    fn settle<T>(&mut self, local: Result<T>, all: &[u64], stride: usize, at: usize) -> Result<T> {
        let Some(root) = (0..self.team.size).find(|&r| all[r * stride + at] != OK) else { return local };
        let code = all[root * stride + at] as i32;
        let mut msg = match &local {
            Err(e) if root == self.team.rank => e.message().into_owned().into_bytes(),
            _ => Vec::new(),
        };
        self.team.broadcast_bytes(root, &mut msg);
        let msg = format!("on rank {root} of {}: {}", self.team.size, String::from_utf8_lossy(&msg));
        Err(remote_error(code, msg))
    }

    /// The start of a fit: agrees on `plan` (every rank's checks passed, the
    /// model and config are the same on every rank, no shard is empty),
    /// then gives every rank rank 0's parameters and, when the optimizer
    /// state is kept, rank 0's state.
    pub(crate) fn start<P>(
        &mut self,
        plan: Result<P>,
        sizes: impl Fn(&P) -> (usize, usize),
        m: &mut Mlp,
        cfg: &TrainConfig,
        n_samples: usize,
    ) -> Result<P> {
        let (n_train, n_val) = plan.as_ref().map_or((0, 0), &sizes);
        let common = TrainConfig { par: Par::Default, distributed: None, ..cfg.clone() };
        let shape = format!("{} {:?} {:?} {} {common:?}", m.n_inputs, m.layers, m.task, m.params.len());
        let code = match &plan {
            Ok(_) => OK,
            Err(e) => e.code() as u64,
        };
        let mine = [code, fingerprint(&shape), n_train as u64, n_val as u64, n_samples as u64];
        let all = self.team.all_gather_u64(&mine);
        let plan = self.settle(plan, &all, mine.len(), 0)?;
        let (p, row) = (self.team.size, |r: usize| &all[r * mine.len()..(r + 1) * mine.len()]);
        if let Some(r) = (1..p).find(|&r| row(r)[1] != row(0)[1]) {
            return Err(Error::InvalidArgument(format!(
                "ranks 0 and {r} of {p} differ in the model's shape or the training config: every rank must fit \
                 the same model with the same config"
            )));
        }
        if self.whole() {
            if let Some(r) = (1..p).find(|&r| row(r)[4] != row(0)[4] || row(r)[3] != row(0)[3]) {
                return Err(Error::InvalidArgument(format!(
                    "ranks 0 and {r} of {p} pass different numbers of samples ({} and {}) or validation samples \
                     ({} and {}): with Shard::Whole every rank passes the whole data",
                    row(0)[4],
                    row(r)[4],
                    row(0)[3],
                    row(r)[3]
                )));
            }
            if (row(0)[2] as usize) < p {
                return Err(Error::InvalidArgument(format!(
                    "{} training samples cannot be shared by {p} ranks: some rank would have none",
                    row(0)[2]
                )));
            }
        } else if let Some(r) = (0..p).find(|&r| row(r)[2] == 0) {
            return Err(Error::InvalidArgument(format!(
                "rank {r} of {p} has no training samples (an empty shard): every rank needs at least one"
            )));
        }
        self.n_train = (0..p).map(|r| row(r)[2] as usize).collect();
        self.any_val = (0..p).any(|r| row(r)[3] > 0);
        let n = m.params.len();
        (self.counts, self.displs) = slices(n, p)?;
        let mine = self.counts[self.team.rank] as usize;
        self.layers = m.offsets.iter().zip(&m.layers).map(|(&(w0, b0), l)| (w0, b0, b0 + l.units)).collect();
        self.team.share_memory(n, &self.counts, &self.displs)?;
        // Rank 0's bucket size, on every rank (the buckets' rings must match).
        let per = self.agree(bucket_floats(self.team.one_node()))?;
        let per = self.team.all_gather_u64(&[per as u64])[0];
        let (ranges, first_rows) = buckets(m, usize::try_from(per).unwrap_or(usize::MAX));
        // Every rank has its buffers before any rank goes on to collectives.
        let bufs = (|| {
            let gs = AlignedVec::try_zeros(mine, "this rank's gradient slice")?;
            Ok((gs, BucketPlan::new(ranges, &self.counts, &self.displs, first_rows)?))
        })();
        let (gs, buckets) = self.agree(bufs)?;
        (self.gs, self.plan) = (gs, Some(buckets));
        self.team.broadcast_f32(&mut m.params);
        Ok(plan)
    }

    /// Gives every rank rank 0's optimizer state buffers (a warm start).
    pub(crate) fn share_state(&mut self, s: &mut OptState) {
        self.team.broadcast_f32(&mut s.s1);
        self.team.broadcast_f32(&mut s.s2);
    }

    /// Steps in an epoch over `n_local` rows of this rank with global batch
    /// `batch`.
    pub(crate) fn steps(&self, n_local: usize, batch: usize) -> usize {
        if self.whole() { n_local.div_ceil(batch) } else { self.n_train.iter().sum::<usize>().div_ceil(batch) }
    }

    /// The global batch size of the configuration (`0`: min(200, N)).
    pub(crate) fn global_batch(&self, cfg_batch: usize) -> usize {
        let n: usize = if self.whole() { self.n_train[0] } else { self.n_train.iter().sum() };
        if cfg_batch == 0 { n.min(200) } else { cfg_batch.min(n) }
    }

    /// Where this rank's rows of step `s` (of `steps`) lie in its epoch
    /// order of `n` rows, and the global batch's size.
    pub(crate) fn rows(&self, n: usize, batch: usize, s: usize, steps: usize) -> (Range<usize>, usize) {
        let (r, p) = self.rank();
        if self.whole() {
            let (lo, hi) = (s * batch, ((s + 1) * batch).min(n));
            let b = hi - lo;
            (lo + r * b / p..lo + (r + 1) * b / p, b)
        } else {
            let part = |n: usize, s: usize| n * s / steps;
            let b = self.n_train.iter().map(|&n| part(n, s + 1) - part(n, s)).sum();
            (part(n, s)..part(n, s + 1), b)
        }
    }

    /// The training rows of all ranks together (with whole data: of one).
    pub(crate) fn n_total(&self) -> usize {
        if self.whole() { self.n_train[0] } else { self.n_train.iter().sum() }
    }

    /// The validation loss and score of the epoch: this rank's (`local`,
    /// over `n` samples) with whole data, else the mean over the ranks
    /// weighted by their validation sizes.
    pub(crate) fn validation(&mut self, local: Option<(f64, f64)>, n: usize) -> (Option<f64>, Option<f64>) {
        if self.whole() || !self.any_val {
            return (local.map(|v| v.0), local.map(|v| v.1));
        }
        let (l, s) = local.unwrap_or((0.0, 0.0));
        let mut t = [l * n as f64, s * n as f64, n as f64];
        self.team.sum_f64(&mut t);
        (Some(t[0] / t[2]), Some(t[1] / t[2]))
    }

    /// Whether `flag` is set on any rank.
    pub(crate) fn any(&mut self, flag: bool) -> bool {
        let mut t = [flag as u8 as f64];
        self.team.sum_f64(&mut t);
        t[0] > 0.0
    }

    /// Puts this rank's report of a fit of `seconds` into `hist`.
    pub(crate) fn report(&self, hist: &mut History, seconds: f64) {
        hist.distributed = Some(DistReport {
            ranks: self.team.size,
            rank: self.team.rank,
            communication_seconds: self.team.seconds,
            seconds,
            samples: self.samples,
            shared_memory: self.team.shared_memory(),
            buckets: match &self.plan {
                Some(p) if !self.team.shared_memory() => p.len(),
                _ => 1,
            },
        });
    }

    /// Counts `n` samples this rank computed gradients of.
    pub(crate) fn count_samples(&mut self, n: usize) {
        self.samples += n as u64;
    }

    /// Sums `v` over the ranks (the same bits on every rank).
    pub(crate) fn sum(&mut self, v: &mut [f64]) {
        self.team.sum_f64(v)
    }

    /// The step's reduce-scatter of `grad` (this rank's gradient of its
    /// share, laid out as the parameters), which `backward` fills through
    /// the sink it is lent, bucket by bucket; when this returns, this
    /// rank's slice of the sum is ready for [`Dist::step`]. Collective:
    /// every rank calls it in the same step.
    pub(crate) fn reduce<R>(&mut self, grad: &mut [f32], backward: impl FnOnce(&mut ReduceInBuckets<'_>) -> R) -> R {
        let plan = self.plan.as_mut().expect("Dist::start made the bucket plan");
        self.team.reduce_in_buckets(plan, grad, &mut self.gs, backward)
    }

    /// The optimizer step of a global batch of `b` rows from the summed
    /// gradient's slice of this rank ([`Dist::reduce`], of gradients each
    /// scaled by `share/b`): adds to this rank's slice the L2 term
    /// `l2_grad·W` and the L1 subgradient `l1/b·sign(W)` over the weights
    /// (`weights`: each layer's `(start, end)` of its weights, biases after
    /// them up to the next layer's), clips by the global norm, applies
    /// `rule_w` to the weights and `rule_b` to the biases of the slice, and
    /// all-gathers the parameters.
    pub(crate) fn step(
        &mut self,
        params: &mut [f32],
        (rule_w, rule_b): (StepRule, StepRule),
        (l2_grad, l1, clip): (f32, f32, Option<f32>),
        st: &mut OptState,
        par: Par,
    ) -> Result<()> {
        let rank = self.team.rank;
        let lo = self.displs[rank] as usize;
        let hi = lo + self.counts[rank] as usize;
        // The update runs on this rank's slice of `params` in place; the
        // all-gather then hands it to the others and theirs to this rank.
        let (gs, ps, layers) = (&mut self.gs[..], &mut params[lo..hi], &self.layers[..]);
        for &(w0, b0, _) in layers {
            // This rank's part of the layer's weights (empty if none).
            let a = w0.clamp(lo, hi);
            let z = b0.clamp(a, hi);
            let (g, w) = (&mut gs[a - lo..z - lo], &ps[a - lo..z - lo]);
            if l2_grad != 0.0 {
                g.iter_mut().zip(w).for_each(|(g, &w)| *g += l2_grad * w);
            }
            if l1 != 0.0 {
                add_l1(g, w, l1);
            }
        }
        if let Some(c) = clip {
            // The norm of the whole gradient, from every rank's slice.
            let mut sq = [grad_sum_sq(gs)];
            self.team.sum_f64(&mut sq);
            clip_to(gs, sq[0].sqrt(), c).map_err(|_| Error::Diverged("gradient norm is not finite".into()))?;
        }
        for &(w0, b0, end) in layers {
            for (r, a, z) in [(rule_w, w0, b0), (rule_b, b0, end)] {
                let (a, z) = (a.max(lo), z.min(hi));
                if a >= z {
                    continue;
                }
                let (s1, s2) = (st.s1.get_mut(a..z).unwrap_or_default(), st.s2.get_mut(a..z).unwrap_or_default());
                r.apply(&mut ps[a - lo..z - lo], &gs[a - lo..z - lo], s1, s2, par)?;
            }
        }
        self.team.all_gather_in_place(&self.counts, &self.displs, params);
        Ok(())
    }

    /// Gives every rank the whole optimizer state: each rank updated only
    /// its slice of the state buffers.
    pub(crate) fn gather_state(&mut self, st: &mut OptState) {
        let n: usize = self.counts.iter().map(|&c| c as usize).sum();
        for buf in [&mut st.s1, &mut st.s2] {
            if buf.len() == n && n > 0 {
                self.team.all_gather_in_place(&self.counts, &self.displs, buf);
            }
        }
    }
}

/// Gradient values per bucket of the reduce-scatter, about (`usize::MAX`:
/// one bucket, sent after the whole backward pass): `NNKERN_MPI_BUCKET_KB`
/// KiB where set (`0`: one bucket); else one bucket when every rank runs
/// on one node (`one_node`), 32 Ki floats (128 KiB) across nodes.
///
/// Within a node the bytes are copied by the ranks' own cores (shared
/// memory, or the loopback's network stack), so no transfer can run while
/// they compute, and every bucket adds a message's latency: on a 2-core
/// Zen 4 VM buckets of 128 KiB made the epoch 0–14% slower over shared
/// memory and 10–40% slower over loopback TCP (BENCHMARKS.md). Across
/// nodes the network card moves a bucket while the cores compute the next.
/// Rank 0's value is taken on every rank.
///
/// # Errors
/// [`Error::InvalidArgument`] when `NNKERN_MPI_BUCKET_KB` is set to
/// anything but a whole number of KiB.
fn bucket_floats(one_node: bool) -> Result<usize> {
    let Ok(v) = std::env::var("NNKERN_MPI_BUCKET_KB") else {
        return Ok(if one_node { usize::MAX } else { 1 << 15 });
    };
    match v.trim().parse::<usize>() {
        Ok(0) => Ok(usize::MAX),
        Ok(kb) => Ok(kb.saturating_mul(256)),
        Err(_) => Err(Error::InvalidArgument(format!(
            "NNKERN_MPI_BUCKET_KB={v:?}: the reduce-scatter's bucket size is a whole number of KiB (0: one bucket)"
        ))),
    }
}

/// The most pieces the first layer's weight gradient is cut into.
const MAX_PIECES: usize = 1024;

/// The reduce-scatter's buckets for `m`, in the order the backward pass
/// makes them final: each layer's weights and biases from the last layer
/// down, and the first layer (the largest, with most inputs) in pieces of
/// about `per` values: its biases first, then its weight gradient a few
/// rows at a time (the returned rows per piece). `per = usize::MAX`: one
/// bucket.
fn buckets(m: &Mlp, per: usize) -> (Vec<(usize, usize)>, Option<usize>) {
    let n = m.params.len();
    if per == usize::MAX {
        return (vec![(0, n)], None);
    }
    let ends = |i: usize| (m.offsets[i].0, m.offsets[i].1 + m.layers[i].units);
    let mut v: Vec<(usize, usize)> = (1..m.layers.len()).rev().map(ends).collect();
    let ((w0, b0), u, n_in) = (m.offsets[0], m.layers[0].units, m.n_inputs);
    let pieces = (b0 - w0).div_ceil(per).min(n_in).min(MAX_PIECES);
    if pieces < 2 {
        v.push(ends(0));
        return (v, None);
    }
    let rows = n_in.div_ceil(pieces);
    v.push((b0, b0 + u));
    v.extend((0..n_in).step_by(rows).map(|a| (w0 + a * u, w0 + (a + rows).min(n_in) * u)));
    (v, Some(rows))
}

impl super::train::GradSink for ReduceInBuckets<'_> {
    fn part(&mut self, r: Range<usize>) -> &mut [f32] {
        ReduceInBuckets::part(self, r.start, r.end)
    }
    fn ready(&mut self, r: Range<usize>) {
        ReduceInBuckets::ready(self, r.start, r.end)
    }
    fn first_rows(&self) -> Option<usize> {
        ReduceInBuckets::first_rows(self)
    }
}

/// The error a rank gets for another rank's `code` and `message`.
fn remote_error(code: i32, message: String) -> Error {
    use crate::Status;
    match Status::from_code(code) {
        Some(Status::NNK_ERR_NULL_POINTER) => Error::NullPointer(message),
        Some(Status::NNK_ERR_SHAPE) => Error::ShapeMismatch(message),
        Some(Status::NNK_ERR_OVERFLOW) => Error::Overflow(message),
        Some(Status::NNK_ERR_NON_FINITE) => Error::NonFinite(message),
        Some(Status::NNK_ERR_UNSUPPORTED) => Error::Unsupported(message),
        Some(Status::NNK_ERR_IO) => Error::Io { kind: std::io::ErrorKind::Other, path: None, message },
        Some(Status::NNK_ERR_FORMAT) => Error::Format(message),
        Some(Status::NNK_ERR_DIVERGED) => Error::Diverged(message),
        Some(Status::NNK_ERR_PANIC) => Error::Panic(message),
        Some(Status::NNK_ERR_OUT_OF_MEMORY) => Error::OutOfMemory { bytes: 0, what: "memory on another rank" },
        _ => Error::InvalidArgument(message),
    }
}
