//! The trainer's distributed side in a build without the `mpi` feature: a
//! type with no values, so every distributed branch of the trainer is dead
//! code the compiler removes.

use super::opt_state::OptState;
use super::train::{History, TrainConfig};
use crate::error::Result;
use std::ops::Range;

/// No distributed fit exists without the `mpi` feature.
pub(crate) enum Dist {}

#[allow(clippy::unused_self, clippy::needless_pass_by_ref_mut)]
impl Dist {
    pub(crate) fn join(_: &TrainConfig) -> Result<Option<Dist>> {
        Ok(None)
    }
    pub(crate) fn rank(&self) -> (usize, usize) {
        match *self {}
    }
    pub(crate) fn agree<T>(&mut self, _: Result<T>) -> Result<T> {
        match *self {}
    }
    pub(crate) fn start<P>(
        &mut self,
        _: Result<P>,
        _: impl Fn(&P) -> (usize, usize),
        _: &mut super::Mlp,
        _: &TrainConfig,
        _: usize,
    ) -> Result<P> {
        match *self {}
    }
    pub(crate) fn share_state(&mut self, _: &mut OptState) {
        match *self {}
    }
    pub(crate) fn steps(&self, _: usize, _: usize) -> usize {
        match *self {}
    }
    pub(crate) fn global_batch(&self, _: usize) -> usize {
        match *self {}
    }
    pub(crate) fn rows(&self, _: usize, _: usize, _: usize, _: usize) -> (Range<usize>, usize) {
        match *self {}
    }
    pub(crate) fn n_total(&self) -> usize {
        match *self {}
    }
    pub(crate) fn validation(&mut self, _: Option<(f64, f64)>, _: usize) -> (Option<f64>, Option<f64>) {
        match *self {}
    }
    pub(crate) fn any(&mut self, _: bool) -> bool {
        match *self {}
    }
    pub(crate) fn report(&self, _: &mut History, _: f64) {
        match *self {}
    }
    pub(crate) fn sum(&mut self, _: &mut [f64]) {
        match *self {}
    }
    pub(crate) fn reduce<R>(&mut self, _: &mut [f32], _: impl FnOnce(&mut Reduce) -> R) -> R {
        match *self {}
    }
    pub(crate) fn step(
        &mut self,
        _: &mut [f32],
        _: (crate::optim::StepRule, crate::optim::StepRule),
        _: (f32, f32, Option<f32>),
        _: &mut OptState,
        _: crate::par::Par,
    ) -> Result<()> {
        match *self {}
    }
    pub(crate) fn gather_state(&mut self, _: &mut OptState) {
        match *self {}
    }
    pub(crate) fn count_samples(&mut self, _: usize) {
        match *self {}
    }
}

/// The reduce-scatter's sink of a build without the `mpi` feature: never
/// made (no [`Dist`] exists), so it does nothing.
pub(crate) struct Reduce;

#[allow(clippy::unused_self)]
impl Reduce {
    pub(crate) fn zero_unsent(&mut self) {}
}

impl super::train::GradSink for Reduce {
    fn part(&mut self, _: Range<usize>) -> &mut [f32] {
        &mut []
    }
}
