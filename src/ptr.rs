//! The one raw-pointer type that crosses threads (after matrixmultiply's
//! `src/ptr.rs`).
//!
//! A kernel that splits its output over worker threads hands each task the
//! same base pointers; each task then reads the inputs and writes its own
//! disjoint part of the output. Raw pointers are neither `Send` nor `Sync`, so
//! they travel in [`Ptr`], which comes in two forms:
//!
//! * [`ConstPtr`] (`Ptr<*const T>`): read-only. It is made from a shared slice
//!   or from another `ConstPtr`, and never gives out a writable pointer.
//! * [`MutPtr`] (`Ptr<*mut T>`): writable. Its only constructor takes
//!   `&mut [T]`, so a writable pointer cannot come from a shared borrow (that
//!   is undefined behaviour under Rust's aliasing rules even when nothing
//!   writes; Miri checks it).
//!
//! This module is a leaf: it uses no other module of the crate. It holds the
//! crate's only `unsafe impl Send`/`Sync`.

/// A raw pointer that may cross to a worker thread. `P` is `*const T` or
/// `*mut T`; use the aliases [`ConstPtr`] and [`MutPtr`].
///
/// Dereferencing stays `unsafe` and each site says why it holds: the pointee
/// must be valid, and no two threads may write (or write and read) the same
/// element.
#[derive(Debug)]
#[repr(transparent)]
pub(crate) struct Ptr<P>(P);

/// A read-only raw pointer that may cross threads.
pub(crate) type ConstPtr<T> = Ptr<*const T>;
/// A writable raw pointer that may cross threads.
pub(crate) type MutPtr<T> = Ptr<*mut T>;

impl<P: Copy> Clone for Ptr<P> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<P: Copy> Copy for Ptr<P> {}

// SAFETY: a `ConstPtr` only reads; sharing reads of `T` between threads is
// what `T: Sync` allows. The pointee's lifetime is the constructing caller's
// borrow, which outlives the scoped tasks it hands the pointer to.
unsafe impl<T: Sync> Send for Ptr<*const T> {}
// SAFETY: as above (a shared `ConstPtr` gives only reads).
unsafe impl<T: Sync> Sync for Ptr<*const T> {}
// SAFETY: a `MutPtr` comes from an exclusive borrow held by the caller for the
// whole parallel call; tasks write disjoint elements (each dereferencing site
// states its range), so moving it to a thread is moving `&mut T` parts, which
// `T: Send` allows.
unsafe impl<T: Send> Send for Ptr<*mut T> {}
// SAFETY: as above; tasks that share one `MutPtr` touch disjoint elements.
unsafe impl<T: Send> Sync for Ptr<*mut T> {}

impl<T> Ptr<*const T> {
    /// The start of `s`, read-only.
    #[inline(always)]
    pub fn from_slice(s: &[T]) -> Self {
        Ptr(s.as_ptr())
    }

    /// A null pointer (an absent optional operand).
    #[inline(always)]
    pub fn null() -> Self {
        Ptr(core::ptr::null())
    }

    /// The raw pointer.
    #[inline(always)]
    pub fn get(self) -> *const T {
        self.0
    }

    /// Whether this is the null pointer.
    #[inline(always)]
    pub fn is_null(self) -> bool {
        self.0.is_null()
    }

    /// The pointer moved by `count` elements (wrapping arithmetic: computing
    /// it is safe, dereferencing it needs it in bounds).
    #[inline(always)]
    pub fn wrapping_offset(self, count: isize) -> Self {
        Ptr(self.0.wrapping_offset(count))
    }

    /// `len` elements from here as a shared slice.
    ///
    /// # Safety
    /// The elements must be valid, initialised and not written by anyone for
    /// `'a`.
    #[inline(always)]
    pub unsafe fn slice<'a>(self, len: usize) -> &'a [T] {
        if len == 0 {
            return &[];
        }
        // SAFETY: the caller's contract.
        unsafe { core::slice::from_raw_parts(self.0, len) }
    }
}

impl<T> Ptr<*mut T> {
    /// The start of `s`, writable: only an exclusive borrow gives one.
    #[inline(always)]
    pub fn from_mut_slice(s: &mut [T]) -> Self {
        Ptr(s.as_mut_ptr())
    }

    /// A null pointer (an absent optional output).
    #[inline(always)]
    pub fn null() -> Self {
        Ptr(core::ptr::null_mut())
    }

    /// The raw pointer.
    #[inline(always)]
    pub fn get(self) -> *mut T {
        self.0
    }

    /// Whether this is the null pointer.
    #[inline(always)]
    pub fn is_null(self) -> bool {
        self.0.is_null()
    }

    /// The pointer moved by `count` elements (wrapping arithmetic).
    #[inline(always)]
    pub fn wrapping_offset(self, count: isize) -> Self {
        Ptr(self.0.wrapping_offset(count))
    }

    /// `len` elements from here as an exclusive slice.
    ///
    /// # Safety
    /// The elements must be valid and initialised, and no other live
    /// reference (on any thread) may cover them for `'a`.
    #[inline(always)]
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn slice_mut<'a>(self, len: usize) -> &'a mut [T] {
        if len == 0 {
            return &mut [];
        }
        // SAFETY: the caller's contract.
        unsafe { core::slice::from_raw_parts_mut(self.0, len) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<X: Send + Sync>() {}

    #[test]
    fn both_forms_cross_threads_and_split_disjointly() {
        assert_send_sync::<ConstPtr<f32>>();
        assert_send_sync::<MutPtr<f64>>();
        let src: Vec<f32> = (0..1000).map(|i| i as f32).collect();
        let mut dst = vec![0.0f32; 1000];
        let (s, d) = (ConstPtr::from_slice(&src), MutPtr::from_mut_slice(&mut dst));
        std::thread::scope(|sc| {
            for t in 0..4isize {
                sc.spawn(move || {
                    // SAFETY: thread t reads and writes only [250t, 250t+250).
                    let (a, b) =
                        unsafe { (s.wrapping_offset(250 * t).slice(250), d.wrapping_offset(250 * t).slice_mut(250)) };
                    for (y, x) in b.iter_mut().zip(a) {
                        *y = 2.0 * x;
                    }
                });
            }
        });
        assert!(dst.iter().enumerate().all(|(i, &y)| y == 2.0 * i as f32));
        // SAFETY: zero elements are never dereferenced.
        assert!(unsafe { MutPtr::<f32>::null().slice_mut(0) }.is_empty());
        assert!(ConstPtr::<f32>::null().is_null() && MutPtr::<f32>::null().is_null());
    }
}
