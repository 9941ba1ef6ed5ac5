//! The calling thread's handling of subnormal numbers.
//!
//! An Intel core takes a microcode assist, on the order of a hundred cycles,
//! for each vector operation whose input or result is subnormal (below
//! `f32::MIN_POSITIVE` in magnitude), unless the thread flushes them to zero.
//! Training meets them for real: under L2, Adam drives the weights of inputs
//! that are always zero (MNIST's border pixels, 11 000 of the first layer's
//! 100 000 weights) and their first moments down through the subnormal range,
//! where rounding then keeps them. On the Xeon (Sapphire Rapids class) this
//! was measured on, a batch-32 MNIST epoch took 1.12 s with gradual
//! underflow and 0.31 s with subnormals flushed, the same test accuracy.
//!
//! [`FlushDenormals`] sets, for its lifetime, flush-to-zero and
//! denormals-are-zero (MXCSR's FTZ and DAZ bits) on the calling thread, and
//! puts the previous mode back when dropped (also on unwinding). TensorFlow
//! and XLA run their CPU kernels in this mode. nnkern's trainer does by
//! default (`TrainConfig::flush_denormals`, `Workspace::with_flush_denormals`),
//! and its worker threads take the mode of the thread that hands them work,
//! so results stay independent of the thread count in either mode.
//!
//! On targets other than x86-64 this is a no-op: AArch64 cores (NEON) handle
//! subnormals in hardware at or near full speed, and [`flushing`] reports
//! `false` there.
//!
//! Rust's own model assumes the default floating-point environment: a value
//! the compiler folds at build time, or an operation it moves across the
//! switch, keeps gradual underflow. That decides, at most, whether a number
//! below `f32::MIN_POSITIVE` is kept or flushed to zero; no nnkern result
//! depends on which, and a given binary always takes the same choice.

use std::marker::PhantomData;

#[cfg(target_arch = "x86_64")]
mod imp {
    /// MXCSR's flush-to-zero (bit 15) and denormals-are-zero (bit 6) flags.
    const FTZ: u32 = 1 << 15;
    const DAZ: u32 = 1 << 6;

    /// The flags this CPU takes: DAZ is missing on the oldest x86-64 cores
    /// (and setting an unsupported MXCSR bit faults); every core with AVX has it.
    fn bits() -> u32 {
        if std::arch::is_x86_feature_detected!("avx") { FTZ | DAZ } else { FTZ }
    }

    fn read() -> u32 {
        let mut v: u32 = 0;
        // SAFETY: `stmxcsr` stores the 32-bit MXCSR at the address given,
        // which is that of the local `v`; it changes nothing else.
        unsafe {
            core::arch::asm!("stmxcsr [{}]", in(reg) &mut v as *mut u32, options(nostack, preserves_flags));
        }
        v
    }

    fn write(v: u32) {
        // SAFETY: `ldmxcsr` loads MXCSR from the local `v`. Callers change
        // only the FTZ and DAZ bits of a value just read, and only to bits
        // this CPU supports (`bits`), so it cannot fault. Exceptions stay
        // masked and the rounding mode stays as it was. See the module doc
        // for what the switch means to the compiler's model.
        unsafe {
            core::arch::asm!("ldmxcsr [{}]", in(reg) &v as *const u32, options(nostack, preserves_flags, readonly));
        }
    }

    pub(super) fn flushing() -> bool {
        read() & FTZ != 0
    }

    /// Sets the mode; returns the previous flag bits to restore.
    pub(super) fn set(on: bool) -> Option<u32> {
        let cur = read();
        let want = if on { bits() } else { 0 };
        if cur & (FTZ | DAZ) == want {
            return None;
        }
        write((cur & !(FTZ | DAZ)) | want);
        Some(cur & (FTZ | DAZ))
    }

    pub(super) fn restore(prev: u32) {
        write((read() & !(FTZ | DAZ)) | prev);
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod imp {
    pub(super) fn flushing() -> bool {
        false
    }
    pub(super) fn set(_on: bool) -> Option<u32> {
        None
    }
    pub(super) fn restore(_prev: u32) {}
}

/// Whether the calling thread flushes subnormal numbers to zero now
/// (always `false` off x86-64).
pub fn flushing() -> bool {
    imp::flushing()
}

/// While alive, the calling thread flushes subnormal inputs and results to
/// zero (`on = true`) or keeps IEEE gradual underflow (`on = false`); dropping
/// it restores the mode it found. Guards nest. It is not `Send`: it must be
/// dropped on the thread that made it.
#[must_use = "the mode is restored as soon as the guard is dropped"]
#[derive(Debug)]
pub struct FlushDenormals {
    prev: Option<u32>,
    _not_send: PhantomData<*const ()>,
}

impl FlushDenormals {
    /// Sets the calling thread's mode (a no-op off x86-64, or when the thread
    /// is in that mode already).
    pub fn new(on: bool) -> FlushDenormals {
        FlushDenormals { prev: imp::set(on), _not_send: PhantomData }
    }
}

impl Drop for FlushDenormals {
    fn drop(&mut self) {
        if let Some(p) = self.prev {
            imp::restore(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hint::black_box;

    /// 1e-30 · 1e-10 = 1e-40 is subnormal in f32.
    fn tiny_product() -> f32 {
        black_box(1e-30f32) * black_box(1e-10f32)
    }

    #[test]
    fn guards_set_nest_and_restore() {
        let before = flushing();
        {
            let _on = FlushDenormals::new(true);
            assert_eq!(flushing(), cfg!(target_arch = "x86_64"));
            {
                let _off = FlushDenormals::new(false);
                assert!(!flushing());
                assert!(tiny_product().is_subnormal());
            }
            assert_eq!(flushing(), cfg!(target_arch = "x86_64"));
            let again = FlushDenormals::new(true);
            drop(again);
            assert_eq!(flushing(), cfg!(target_arch = "x86_64"), "a no-op guard restores nothing");
        }
        assert_eq!(flushing(), before);
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn flushed_results_and_inputs_are_zero() {
        let sub = black_box(f32::from_bits(1 << 20));
        assert!(sub.is_subnormal());
        {
            let _g = FlushDenormals::new(true);
            assert_eq!(tiny_product(), 0.0, "FTZ: a subnormal result is zero");
            if std::arch::is_x86_feature_detected!("avx") {
                assert_eq!(black_box(sub) * black_box(1.0f32), 0.0, "DAZ: a subnormal input is zero");
            }
        }
        assert!(tiny_product().is_subnormal(), "gradual underflow again after the guard");
        assert_eq!(black_box(sub) * black_box(1.0f32), sub);
    }

    #[test]
    fn a_panic_restores_the_mode() {
        let before = flushing();
        let r = std::panic::catch_unwind(|| {
            let _g = FlushDenormals::new(!before);
            panic!("inside the guard");
        });
        assert!(r.is_err());
        assert_eq!(flushing(), before);
    }
}
