//! The scenarios `tests/mpi.rs` runs under `mpirun` (feature `mpi`): each
//! rank prints lines `rank R: ...` that the test compares across ranks and
//! against a single-process fit.
//!
//! `mpirun -np 2 target/release/examples/mpi_check SCENARIO`, with SCENARIO
//! one of `bits`, `epochs`, `local`, `bad-data`, `mismatch`, `empty-shard`,
//! `bad-comm`, `early-stopping`, `clip`, `collectives`, `bad-collectives`.

use mpi::traits::Communicator;
use nnkern::nn::data::{Scaler, read_csv};
use nnkern::nn::dist::{Comm, Distributed, Shard};
use nnkern::nn::{History, Layer, Mlp, Targets, Task, TrainConfig};
use nnkern::{Activation, Result};

/// FNV-1a over the parameters' bits.
fn hash(m: &Mlp) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for i in 0..m.layers().len() {
        let (w, b) = m.layer_params(i);
        for v in w.iter().chain(b) {
            for byte in v.to_bits().to_le_bytes() {
                h = (h ^ byte as u64).wrapping_mul(0x100_0000_01b3);
            }
        }
    }
    h
}

struct Digits {
    x: Vec<f32>,
    y: Vec<u32>,
    n: usize,
    d: usize,
    xte: Vec<f32>,
    yte: Vec<u32>,
    nte: usize,
}

fn digits() -> Digits {
    let ds = read_csv(concat!(env!("CARGO_MANIFEST_DIR"), "/data/digits.csv"), -1).expect("data/digits.csv");
    let (mut tr, mut te) = ds.split(0.2, 0).expect("split");
    let sc = Scaler::standard(&tr.x, tr.d);
    sc.transform(&mut tr.x);
    sc.transform(&mut te.x);
    let (y, yte) = (tr.labels().expect("labels"), te.labels().expect("labels"));
    Digits { x: tr.x, y, n: tr.n, d: tr.d, xte: te.x, yte, nte: te.n }
}

fn model(d: usize, hidden: usize) -> Mlp {
    Mlp::new(d, &[Layer { units: hidden, activation: Activation::Relu }], 10, Task::MultiClass, 7).expect("model")
}

fn config(dist: Option<Distributed>) -> TrainConfig {
    TrainConfig { batch_size: 64, max_iter: 3, random_state: 3, distributed: dist, ..Default::default() }
}

fn curve(h: &History) -> String {
    h.epochs.iter().map(|e| format!("{:.9e}", e.loss)).collect::<Vec<_>>().join(",")
}

/// All ranks run on this machine: a distributed fit's collectives went
/// through shared memory where NNKERN_MPI_SHM=1 forces it, as rings where
/// 0 does.
fn assert_transport(r: &Result<History>) {
    let forced = std::env::var("NNKERN_MPI_SHM").ok();
    if let (Ok(History { distributed: Some(d), .. }), Some(on)) = (r, forced.as_deref().map(|v| v == "1")) {
        assert_eq!(d.shared_memory, on, "shared memory in use (NNKERN_MPI_SHM={forced:?})");
    }
}

/// The reduce-scatter's buckets (digits' 64-32-10 model, every rank on
/// this machine): through shared memory 1; as rings one (one node), and
/// with `NNKERN_MPI_BUCKET_KB=1` (256 values) one per layer, the first
/// layer's 2 048 weights in 8 pieces after its biases; with `64`, one per
/// layer.
fn assert_buckets(r: &Result<History>) {
    if let Ok(History { distributed: Some(d), .. }) = r {
        let kb = std::env::var("NNKERN_MPI_BUCKET_KB").ok();
        let want = match (d.shared_memory, kb.as_deref()) {
            (false, Some("1")) => 10,
            (false, Some("64")) => 2,
            _ => 1,
        };
        assert_eq!(d.buckets, want, "buckets (NNKERN_MPI_BUCKET_KB={kb:?}, shared memory {})", d.shared_memory);
    }
}

/// What a rank prints about a fit's result.
fn outcome(r: Result<History>, m: &Mlp, data: &Digits) -> String {
    match r {
        Ok(h) => format!(
            "ok hash {:016x} epochs {} loss {} acc {:.6}",
            hash(m),
            h.epochs.len(),
            curve(&h),
            m.score(&data.xte, data.nte, &Targets::Labels(&data.yte)).expect("score")
        ),
        Err(e) => format!("error {} {e}", e.code()),
    }
}

fn main() {
    let scenario = std::env::args().nth(1).expect("usage: mpi_check SCENARIO");
    let (universe, _) = mpi::initialize_with_threading(mpi::Threading::Funneled).expect("MPI_Init");
    let world = universe.world();
    let (rank, size) = (world.rank() as usize, world.size() as usize);
    let data = digits();
    let whole = Some(Distributed { comm: Comm::of(&world), shard: Shard::Whole });
    let say = |s: String| println!("rank {rank}: {s}");
    match scenario.as_str() {
        // A 3-epoch fit: every rank's weights, and (rank 0) the same fit in
        // one process with the same global batch.
        "bits" => {
            let mut m = model(data.d, 32);
            let h = m.fit(&data.x, data.n, Targets::Labels(&data.y), &config(whole), None, None);
            if let Ok(h) = &h {
                // One rank is the single-process fit: no report.
                let r = h.distributed.map(|r| (r.ranks, r.rank, r.samples > 0));
                assert_eq!(r, (size > 1).then_some((size, rank, true)));
            }
            assert_transport(&h);
            assert_buckets(&h);
            say(outcome(h, &m, &data));
            if rank == 0 {
                let mut single = model(data.d, 32);
                let h = single.fit(&data.x, data.n, Targets::Labels(&data.y), &config(None), None, None);
                println!("single: {}", outcome(h, &single, &data));
            }
        }
        // One epoch at a time (partial_fit keeps the optimizer state): every
        // rank's weights after every epoch.
        "epochs" => {
            let mut m = model(data.d, 32);
            for e in 1..=3 {
                let r = m.partial_fit(&data.x, data.n, Targets::Labels(&data.y), &config(whole));
                assert_transport(&r);
                say(format!("epoch {e} {}", outcome(r, &m, &data)));
            }
        }
        // Each rank passes its own half.
        "local" => {
            let (lo, hi) = (rank * data.n / size, (rank + 1) * data.n / size);
            let x = &data.x[lo * data.d..hi * data.d];
            let mut m = model(data.d, 32);
            let cfg = config(Some(Distributed { comm: Comm::of(&world), shard: Shard::Local }));
            let r = m.fit(x, hi - lo, Targets::Labels(&data.y[lo..hi]), &cfg, None, None);
            say(outcome(r, &m, &data));
        }
        // Rank 1's data has a NaN.
        "bad-data" => {
            let mut x = data.x.clone();
            if rank == 1 {
                x[5 * data.d + 3] = f32::NAN;
            }
            let mut m = model(data.d, 32);
            let r = m.fit(&x, data.n, Targets::Labels(&data.y), &config(whole), None, None);
            say(outcome(r, &m, &data));
        }
        // Rank 1's model is wider.
        "mismatch" => {
            let mut m = model(data.d, if rank == 1 { 33 } else { 32 });
            let r = m.fit(&data.x, data.n, Targets::Labels(&data.y), &config(whole), None, None);
            say(outcome(r, &m, &data));
        }
        // Local shards, rank 1's empty.
        "empty-shard" => {
            let n = if rank == 1 { 0 } else { data.n };
            let mut m = model(data.d, 32);
            let cfg = config(Some(Distributed { comm: Comm::of(&world), shard: Shard::Local }));
            let r = m.fit(&data.x[..n * data.d], n, Targets::Labels(&data.y[..n]), &cfg, None, None);
            say(outcome(r, &m, &data));
        }
        // A Fortran handle no communicator has.
        "bad-comm" => {
            let mut m = model(data.d, 32);
            let comm = Comm::from_fortran(987_654).expect("a Fortran integer");
            let cfg = config(Some(Distributed { comm, shard: Shard::Whole }));
            let r = m.fit(&data.x, data.n, Targets::Labels(&data.y), &cfg, None, None);
            assert_transport(&r);
            say(outcome(r, &m, &data));
        }
        // Early stopping on the held-out score: the same epoch on every rank.
        "early-stopping" => {
            let mut m = model(data.d, 32);
            let cfg =
                TrainConfig { max_iter: 200, early_stopping: true, n_iter_no_change: 2, tol: 1e-2, ..config(whole) };
            let r = m.fit(&data.x, data.n, Targets::Labels(&data.y), &cfg, None, None);
            let stopped = r.as_ref().map(|h| (h.stopped_early, h.restored_epoch)).ok();
            say(format!("{} stopped {stopped:?}", outcome(r, &m, &data)));
        }
        // Clipping by the global norm, L1 and L2 in the gradient.
        "clip" => {
            let cfg = TrainConfig { clip_norm: Some(0.5), l1: 1e-3, alpha: 1e-2, ..config(whole) };
            let mut m = model(data.d, 32);
            let r = m.fit(&data.x, data.n, Targets::Labels(&data.y), &cfg, None, None);
            assert_transport(&r);
            say(outcome(r, &m, &data));
            if rank == 0 {
                let mut single = model(data.d, 32);
                let cfg = TrainConfig { distributed: None, ..cfg };
                let h = single.fit(&data.x, data.n, Targets::Labels(&data.y), &cfg, None, None);
                println!("single: {}", outcome(h, &single, &data));
            }
        }
        // The collectives alone, on 784-128-10's gradient (101 770 floats,
        // 407 KB): all-reduce, and reduce-scatter + all-gather (what a step
        // uses), median of 200 after 20 warm-ups.
        "collectives" => {
            use mpi::collective::SystemOperation;
            use mpi::traits::CommunicatorCollectives;
            let n = 101_770usize.next_multiple_of(16 * size);
            let g = vec![1.0f32; n];
            let mut r = vec![0.0f32; n];
            let mut part = vec![0.0f32; n / size];
            let time = |f: &mut dyn FnMut()| {
                let mut t: Vec<f64> = (0..220)
                    .map(|_| {
                        world.barrier();
                        let t0 = std::time::Instant::now();
                        f();
                        t0.elapsed().as_secs_f64() * 1e6
                    })
                    .skip(20)
                    .collect();
                t.sort_by(f64::total_cmp);
                t[t.len() / 2]
            };
            let ar = time(&mut || world.all_reduce_into(&g[..], &mut r[..], SystemOperation::sum()));
            let rs = time(&mut || {
                world.reduce_scatter_block_into(&g[..], &mut part[..], SystemOperation::sum());
                world.all_gather_into(&part[..], &mut r[..]);
            });
            say(format!("{n} floats: all-reduce {ar:.0} us, reduce-scatter + all-gather {rs:.0} us (median)"));
            // The trainer's own collectives (what a step runs), as send-receive
            // rings and through shared memory.
            for shared in [false, true] {
                let t =
                    nnkern::nn::dist::time_collectives(Comm::of(&world), 101_770, 200, shared).expect("collectives");
                say(format!(
                    "101770 floats, the trainer's {}: reduce-scatter {:.0} us + all-gather {:.0} us (median)",
                    if t.shared_memory { "shared memory" } else { "rings" },
                    t.reduce_scatter_us,
                    t.all_gather_us
                ));
            }
        }
        // time_collectives refuses bad arguments on every rank alike, before
        // any collective (the job would hang otherwise).
        "bad-collectives" => {
            use nnkern::nn::dist::time_collectives;
            for (n, reps) in [(0usize, 10usize), (1000, 0), (1 << 31, 10)] {
                let r = time_collectives(Comm::of(&world), n, reps, true);
                say(format!(
                    "n {n} reps {reps}: {}",
                    r.map_or_else(|e| format!("error {} {e}", e.code()), |_| "ok".into())
                ));
            }
            let bad = time_collectives(Comm::from_fortran(987_654).expect("a Fortran integer"), 1000, 10, true);
            say(format!("bad comm: {}", bad.map_or_else(|e| format!("error {} {e}", e.code()), |_| "ok".into())));
        }
        s => panic!("unknown scenario {s}"),
    }
}
