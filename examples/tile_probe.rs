use nnkern::gemm::*;
use nnkern::par::Par;
fn main() {
    for &(m, n, k, ccol) in &[(16usize, 6usize, 256usize, true), (16, 6, 2048, true), (16, 12, 2048, true), (48, 6, 2048, true), (144, 6, 256, true), (144,48,256,true)] {
        let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 * 0.1).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 * 0.1).collect();
        let mut c = vec![0.0f32; m * n];
        let o = GemmOptions { backend: Some(Backend::Native), par: Par::Seq, isa: None };
        let reps = 20000;
        let mut best = f64::MAX;
        for _ in 0..5 {
            let t = std::time::Instant::now();
            for _ in 0..reps {
                let av = MatRef::col_major(&a, m, k, m).unwrap();
                let bv = MatRef::row_major(&b, k, n, n).unwrap();
                let cv = if ccol { MatMut::col_major(&mut c, m, n, m).unwrap() } else { MatMut::row_major(&mut c, m, n, n).unwrap() };
                gemm_with(1.0, av, bv, 0.0, cv, &o).unwrap();
            }
            best = best.min(t.elapsed().as_secs_f64() / reps as f64);
        }
        println!("{m}x{n}x{k}: {:.1} GFLOP/s ({:.2} us)", 2.0 * (m * n * k) as f64 / best / 1e9, best * 1e6);
    }
}
