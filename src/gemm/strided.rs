//! One pointer-plus-strides type, with one `rs`/`cs` vocabulary, for every raw
//! operand of the GEMM nest: the problem's A, B and C (`driver::Problem`), a
//! block's and a tile's panels (`driver::Block`, `kernel::Tile`) and the
//! sparse product's B and C (`sparse::Job`).

use crate::ptr::{ConstPtr, MutPtr};

/// An operand at `ptr` whose element `(i, j)` is at `ptr + i·rs + j·cs`
/// (elements, any sign). `P` is `ConstPtr`/`MutPtr` where a call's tasks share
/// the operand, `*const T`/`*mut T` inside one task. Only moving the pointer
/// is offered here (wrapping arithmetic); the kernels dereference it, within
/// the ranges the driver validated.
#[derive(Clone, Copy)]
pub(crate) struct Strided<P> {
    /// Element `(0, 0)`.
    pub ptr: P,
    /// Row stride: from `(i, j)` to `(i + 1, j)`.
    pub rs: isize,
    /// Column stride: from `(i, j)` to `(i, j + 1)`.
    pub cs: isize,
}

/// A pointer that moves by a count of elements (wrapping arithmetic).
pub(crate) trait Offset: Copy {
    /// The pointer moved by `count` elements.
    fn offset_by(self, count: isize) -> Self;
}

impl<T> Offset for *const T {
    #[inline(always)]
    fn offset_by(self, count: isize) -> Self {
        self.wrapping_offset(count)
    }
}

impl<T> Offset for *mut T {
    #[inline(always)]
    fn offset_by(self, count: isize) -> Self {
        self.wrapping_offset(count)
    }
}

impl<T> Offset for ConstPtr<T> {
    #[inline(always)]
    fn offset_by(self, count: isize) -> Self {
        self.wrapping_offset(count)
    }
}

impl<T> Offset for MutPtr<T> {
    #[inline(always)]
    fn offset_by(self, count: isize) -> Self {
        self.wrapping_offset(count)
    }
}

impl<P: Offset> Strided<P> {
    /// The pointer to element `(i, j)`.
    #[inline(always)]
    pub fn at(&self, i: usize, j: usize) -> P {
        self.ptr.offset_by(i as isize * self.rs + j as isize * self.cs)
    }

    /// The operand from element `(i, j)` on (same strides).
    #[inline(always)]
    pub fn shift(self, i: usize, j: usize) -> Self {
        Strided { ptr: self.at(i, j), ..self }
    }

    /// The transpose: the strides swapped.
    #[inline(always)]
    pub fn t(self) -> Self {
        Strided { ptr: self.ptr, rs: self.cs, cs: self.rs }
    }
}

impl<T> Strided<ConstPtr<T>> {
    /// The same operand on the raw pointer.
    #[inline(always)]
    pub fn get(self) -> Strided<*const T> {
        Strided { ptr: self.ptr.get(), rs: self.rs, cs: self.cs }
    }
}

impl<T> Strided<MutPtr<T>> {
    /// The same operand on the raw pointer.
    #[inline(always)]
    pub fn get(self) -> Strided<*mut T> {
        Strided { ptr: self.ptr.get(), rs: self.rs, cs: self.cs }
    }
}
