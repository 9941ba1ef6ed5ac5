//! One thread against `T` threads on MNIST (784-128(relu)-10, Adam), in one
//! process, alternating fit by fit, so that the machine's slow and fast
//! phases (seconds long on a shared VM) hit both alike: each pair's ratio is
//! taken from two fits run back to back. Also checks that both give the same
//! loss curve, bit for bit.
//!
//! `cargo run --release -p nnkern-bench --example threads_cmp -- MNIST_DIR [BATCH=256] [PAIRS=6] [EPOCHS=3] [T=2] [sparse|dense]`
use nnkern::nn::data::load_mnist;
use nnkern::nn::train::SparseInput;
use nnkern::par::Par;
use nnkern::{Activation, Layer, Mlp, Targets, Task, TrainConfig};

fn main() -> nnkern::Result<()> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let dir = a.first().expect("usage: threads_cmp MNIST_DIR [BATCH] [PAIRS] [EPOCHS] [T] [sparse|dense]");
    let num = |i: usize, d: usize| a.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let (batch, pairs, epochs, threads) = (num(1, 256), num(2, 6), num(3, 3).max(2), num(4, 2));
    let sparse = match a.get(5).map(String::as_str) {
        Some("dense") => SparseInput::Dense,
        _ => SparseInput::Auto,
    };
    let (train, _) = load_mnist(dir)?;
    let y = train.labels()?;
    let fit = |t: usize| -> nnkern::Result<(f64, Vec<f64>)> {
        let hidden = [Layer { units: 128, activation: Activation::Relu }];
        let mut m = Mlp::new(train.d, &hidden, 10, Task::MultiClass, 1)?;
        let cfg = TrainConfig {
            batch_size: batch,
            max_iter: epochs,
            n_iter_no_change: usize::MAX - 1,
            par: Par::Threads(t),
            sparse_input: sparse,
            ..Default::default()
        };
        let h = m.fit(&train.x, train.n, Targets::Labels(&y), &cfg, None, None)?;
        // The first epoch also builds the sparse copy of the inputs.
        let mut s: Vec<f64> = h.epochs[1..].iter().map(|e| e.seconds).collect();
        s.sort_by(f64::total_cmp);
        Ok((s[s.len() / 2], h.epochs.iter().map(|e| e.loss).collect()))
    };
    let mut ratios = Vec::new();
    println!("batch {batch}, {epochs} epochs per fit, 1 thread against {threads} (median epoch after the first)");
    for p in 0..pairs {
        let order = if p % 2 == 0 { [1, threads] } else { [threads, 1] };
        let mut r = [(0.0, Vec::new()), (0.0, Vec::new())];
        for t in order {
            r[usize::from(t != 1)] = fit(t)?;
        }
        assert!(
            r[0].1.iter().zip(&r[1].1).all(|(x, y)| x.to_bits() == y.to_bits()),
            "the loss curves differ: {:?} against {:?}",
            r[0].1,
            r[1].1
        );
        ratios.push(r[0].0 / r[1].0);
        println!("pair {p}: 1 thread {:.4} s, {threads} threads {:.4} s, ratio {:.2}", r[0].0, r[1].0, r[0].0 / r[1].0);
    }
    ratios.sort_by(f64::total_cmp);
    println!("median ratio (1-thread time / {threads}-thread time): {:.2}", ratios[ratios.len() / 2]);
    Ok(())
}
