//! The FMA probe of the timing examples: this core's peak, to set GEMM
//! rates against.

use std::hint::black_box;
use std::time::Instant;

/// Best-of-5 FMA throughput (GFLOP/s) of 12 independent accumulators on the
/// widest vectors pulp offers here.
pub fn peak() -> f64 {
    struct Probe;
    impl pulp::WithSimd for Probe {
        type Output = f64;
        #[inline(always)]
        fn with_simd<S: pulp::Simd>(self, s: S) -> f64 {
            let mut acc = [s.splat_f32s(0.0); 12];
            let x = s.splat_f32s(black_box(0.999));
            let y = s.splat_f32s(black_box(1e-7));
            let iters = 2_000_000usize;
            let t = Instant::now();
            for _ in 0..iters {
                for a in acc.iter_mut() {
                    *a = s.mul_add_f32s(*a, x, y);
                }
            }
            let el = t.elapsed().as_secs_f64();
            black_box(acc);
            let lanes = core::mem::size_of::<S::f32s>() / 4;
            (2 * 12 * lanes * iters) as f64 / el / 1e9
        }
    }
    (0..5).map(|_| pulp::Arch::new().dispatch(Probe)).fold(0.0, f64::max)
}
