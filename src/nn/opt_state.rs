//! The optimizer state a model keeps between fits (`warm_start`,
//! `partial_fit`). A leaf: the model stores it without knowing the trainer,
//! and the trainer updates it.

use crate::error::Result;
use crate::simd::AlignedVec;

/// Optimizer state kept between `fit` calls for `warm_start`/`partial_fit`
/// (opaque; still nameable as `nnkern::nn::train::OptState`, where it was
/// defined before).
#[derive(Debug, Clone, PartialEq)]
pub struct OptState {
    /// First state buffer (momentum velocity, Adam's `m`, RMSprop's mean
    /// square), as long as the parameters or empty.
    pub(crate) s1: AlignedVec,
    /// Second state buffer (Adam's `v`), as long as the parameters or empty.
    pub(crate) s2: AlignedVec,
    /// Optimizer steps taken (Adam's bias correction).
    pub(crate) t: u64,
    /// Training samples seen (the "invscaling" schedule).
    pub(crate) samples_seen: u64,
    /// The learning rate of the "adaptive" schedule.
    pub(crate) lr: f32,
}

impl OptState {
    /// A state before any step, without buffers, at learning rate `lr`.
    pub(crate) fn fresh(lr: f32) -> OptState {
        OptState { s1: AlignedVec::default(), s2: AlignedVec::default(), t: 0, samples_seen: 0, lr }
    }

    /// A zeroed state with buffers of `s1_len` and `s2_len` values, or
    /// [`crate::Error::OutOfMemory`] naming `what`.
    pub(crate) fn try_zeros(s1_len: usize, s2_len: usize, lr: f32, what: &'static str) -> Result<OptState> {
        Ok(OptState {
            s1: AlignedVec::try_zeros(s1_len, what)?,
            s2: AlignedVec::try_zeros(s2_len, what)?,
            ..OptState::fresh(lr)
        })
    }

    /// Copies `o` in place (the buffers have `o`'s lengths: no allocation).
    pub(crate) fn copy_from(&mut self, o: &OptState) {
        self.s1.clone_from(&o.s1);
        self.s2.clone_from(&o.s2);
        (self.t, self.samples_seen, self.lr) = (o.t, o.samples_seen, o.lr);
    }
}
