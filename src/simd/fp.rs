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
//! [`FlushDenormals`] sets, for its lifetime, flush-to-zero (MXCSR's FTZ
//! bit) on the calling thread: a result below `f32::MIN_POSITIVE` in
//! magnitude becomes zero, so no new subnormal arises, and none reaches the
//! weights. It puts the previous mode back when dropped (also on unwinding).
//! TensorFlow and XLA flush in their CPU kernels; nnkern's trainer does by
//! default (`TrainConfig::flush_denormals`, `Workspace::with_flush_denormals`).
//! Its worker threads take the FTZ and DAZ bits of the thread that hands them
//! work, so results stay independent of the thread count in any mode.
//! Subnormal *inputs* (DAZ) are left alone: a caller's data are read as given.
//!
//! On targets other than x86-64 this is a no-op: AArch64 cores (NEON) handle
//! subnormals in hardware at or near full speed, and [`flushing`] reports
//! `false` there.
//!
//! Rust assumes the default floating-point environment. Its documentation
//! (`_mm_setcsr`) names the exception masks, the rounding mode and DAZ as
//! undefined behaviour to change; this module changes none of them, only FTZ,
//! and copies a caller's existing DAZ bit to the pool's workers. What FTZ
//! leaves to the compiler: an expression it folds at build time, or moves
//! across the switch, keeps gradual underflow, so such a result may stay
//! subnormal where the same operation at run time gives zero. Both are valid
//! approximations; the trainer's results are still reproducible for a build
//! and a seed, and independent of the thread count.

use std::marker::PhantomData;

// Miri cannot run inline assembly: under it the mode is the IEEE default,
// as off x86-64.
#[cfg(all(target_arch = "x86_64", not(miri)))]
mod imp {
    /// MXCSR's flush-to-zero (bit 15) and denormals-are-zero (bit 6) flags.
    pub(super) const FTZ: u32 = 1 << 15;
    const DAZ: u32 = 1 << 6;

    fn read() -> u32 {
        let mut v: u32 = 0;
        // SAFETY: `stmxcsr` stores the 32-bit MXCSR at the address given,
        // which is that of the local `v`; it changes nothing else.
        unsafe {
            core::arch::asm!("stmxcsr [{}]", in(reg) &mut v as *mut u32, options(nostack, preserves_flags));
        }
        v
    }

    /// The FTZ and DAZ bits now in force.
    pub(super) fn mode() -> u32 {
        read() & (FTZ | DAZ)
    }

    /// Replaces the FTZ and DAZ bits with those of `bits`, keeping the rest.
    pub(super) fn set_mode(bits: u32) {
        let v = (read() & !(FTZ | DAZ)) | (bits & (FTZ | DAZ));
        // SAFETY: `ldmxcsr` loads MXCSR from the local `v`: the value just
        // read with only FTZ and DAZ replaced. Callers pass a mode read on
        // this or another thread (where those bits were accepted already)
        // with at most FTZ changed, and FTZ exists on every x86-64 core, so it
        // cannot fault. The exception masks and the rounding mode stay as
        // they were. See the module doc for what the switch means to the
        // compiler's model.
        unsafe {
            core::arch::asm!("ldmxcsr [{}]", in(reg) &v as *const u32, options(nostack, preserves_flags, readonly));
        }
    }
}

#[cfg(any(not(target_arch = "x86_64"), miri))]
mod imp {
    /// No flush bit to set: every mode is the IEEE default.
    pub(super) const FTZ: u32 = 0;
    pub(super) fn mode() -> u32 {
        0
    }
    pub(super) fn set_mode(_bits: u32) {}
}

/// Whether the calling thread flushes subnormal numbers to zero now
/// (always `false` off x86-64).
pub fn flushing() -> bool {
    imp::mode() & imp::FTZ != 0
}

/// While alive, the calling thread flushes subnormal results to zero
/// (`on = true`) or keeps IEEE gradual underflow (`on = false`); dropping it
/// restores the mode it found. Guards nest when dropped in reverse order of
/// creation (as scopes do; `mem::forget` on one leaves its mode in force). It
/// is not `Send`: it must be dropped on the thread that made it.
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
        let cur = imp::mode();
        FlushDenormals::switch(cur, if on { cur | imp::FTZ } else { cur & !imp::FTZ })
    }

    /// Copies the whole subnormal mode (FTZ and DAZ) of another thread, as
    /// [`mode`] read it: the pool's workers run each task in its caller's.
    pub(crate) fn with_mode(m: Mode) -> FlushDenormals {
        FlushDenormals::switch(imp::mode(), m.0)
    }

    /// Goes from mode `cur` to `want`, remembering `cur` if they differ.
    fn switch(cur: u32, want: u32) -> FlushDenormals {
        let prev = (cur != want).then(|| {
            imp::set_mode(want);
            cur
        });
        FlushDenormals { prev, _not_send: PhantomData }
    }
}

/// A thread's subnormal mode (its FTZ and DAZ bits), to hand to another thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Mode(u32);

/// The calling thread's subnormal mode.
pub(crate) fn mode() -> Mode {
    Mode(imp::mode())
}

impl Drop for FlushDenormals {
    fn drop(&mut self) {
        if let Some(p) = self.prev {
            imp::set_mode(p);
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
    fn flushed_results_are_zero_and_inputs_kept() {
        let sub = black_box(f32::from_bits(1 << 20));
        assert!(sub.is_subnormal());
        {
            let _g = FlushDenormals::new(true);
            assert_eq!(tiny_product(), 0.0, "FTZ: a subnormal result is zero");
            assert_eq!(black_box(sub) + black_box(1.0f32), 1.0);
            // 2⁻¹²⁹ · 2¹⁰ = 2⁻¹¹⁹, a normal result from a subnormal input.
            assert_eq!(black_box(sub) * black_box(1024.0f32), 2f32.powi(-119), "no DAZ: the input is read");
        }
        assert!(tiny_product().is_subnormal(), "gradual underflow again after the guard");
        assert_eq!(black_box(sub) * black_box(1024.0f32), 2f32.powi(-119));
    }

    #[test]
    fn a_copied_mode_is_restored() {
        let before = mode();
        {
            let _on = FlushDenormals::new(true);
            let flushing_mode = mode();
            drop(_on);
            let _copy = FlushDenormals::with_mode(flushing_mode);
            assert_eq!(mode(), flushing_mode);
        }
        assert_eq!(mode(), before);
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
