//! Checked strided matrix views over slices.
//!
//! A view is `rows × cols` elements where element `(i, j)` lives at
//! `data[offset + i·rs + j·cs]`. Strides are `isize` and may be negative (then
//! `offset` must point far enough into the slice) or, for inputs, zero
//! (broadcast). The constructors check, with overflow-checked arithmetic, that
//! every element lies inside the slice, so the kernels may use raw pointers
//! afterwards. Output views ([`MatMut`]) additionally reject strides under which
//! two elements share one address.

use crate::error::{Result, invalid, overflow, shape};
use crate::ptr::{ConstPtr, MutPtr};

/// Index range `[lo, hi]` touched by a strided view, or `None` if empty.
fn extent(offset: usize, rows: usize, cols: usize, rs: isize, cs: isize) -> Result<Option<(usize, usize)>> {
    if rows == 0 || cols == 0 {
        return Ok(None);
    }
    let ri = isize::try_from(rows - 1).map_err(|_| overflow("matrix rows exceed isize"))?;
    let ci = isize::try_from(cols - 1).map_err(|_| overflow("matrix cols exceed isize"))?;
    let r = ri.checked_mul(rs).ok_or_else(|| overflow("rows × row stride overflows isize"))?;
    let c = ci.checked_mul(cs).ok_or_else(|| overflow("cols × col stride overflows isize"))?;
    let off = isize::try_from(offset).map_err(|_| overflow("offset exceeds isize"))?;
    let lo = off
        .checked_add(r.min(0))
        .and_then(|x| x.checked_add(c.min(0)))
        .ok_or_else(|| overflow("view extent overflows isize"))?;
    let hi = off
        .checked_add(r.max(0))
        .and_then(|x| x.checked_add(c.max(0)))
        .ok_or_else(|| overflow("view extent overflows isize"))?;
    if lo < 0 {
        return Err(shape("view reaches before the start of the slice (negative stride without enough offset)"));
    }
    Ok(Some((lo as usize, hi as usize)))
}

/// An immutable strided matrix view.
#[derive(Debug, Clone, Copy)]
pub struct MatRef<'a, T> {
    pub(crate) data: &'a [T],
    pub(crate) offset: usize,
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    pub(crate) rs: isize,
    pub(crate) cs: isize,
}

/// A mutable strided matrix view (the GEMM output).
#[derive(Debug)]
pub struct MatMut<'a, T> {
    pub(crate) data: &'a mut [T],
    pub(crate) offset: usize,
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    pub(crate) rs: isize,
    pub(crate) cs: isize,
}

impl<'a, T> MatRef<'a, T> {
    /// General strided view: element `(i, j)` at `data[offset + i*rs + j*cs]`.
    /// Errors if any element would fall outside `data` or the arithmetic overflows.
    pub fn new(data: &'a [T], offset: usize, rows: usize, cols: usize, rs: isize, cs: isize) -> Result<Self> {
        if let Some((_, hi)) = extent(offset, rows, cols, rs, cs)? {
            if hi >= data.len() {
                return Err(shape(format!(
                    "a {rows}×{cols} view with strides ({rs}, {cs}) at offset {offset} needs {} elements, the slice has {}",
                    hi + 1,
                    data.len()
                )));
            }
        }
        Ok(MatRef { data, offset, rows, cols, rs, cs })
    }

    /// Row-major view with leading dimension `ld` (≥ `cols`).
    pub fn row_major(data: &'a [T], rows: usize, cols: usize, ld: usize) -> Result<Self> {
        if ld < cols && rows > 1 {
            return Err(invalid(format!("row-major leading dimension {ld} < cols {cols}")));
        }
        let ld = isize::try_from(ld).map_err(|_| overflow("leading dimension exceeds isize"))?;
        Self::new(data, 0, rows, cols, ld, 1)
    }

    /// Column-major view with leading dimension `ld` (≥ `rows`).
    pub fn col_major(data: &'a [T], rows: usize, cols: usize, ld: usize) -> Result<Self> {
        if ld < rows && cols > 1 {
            return Err(invalid(format!("column-major leading dimension {ld} < rows {rows}")));
        }
        let ld = isize::try_from(ld).map_err(|_| overflow("leading dimension exceeds isize"))?;
        Self::new(data, 0, rows, cols, 1, ld)
    }

    /// The transposed view (no copy).
    pub fn t(self) -> Self {
        MatRef { rows: self.cols, cols: self.rows, rs: self.cs, cs: self.rs, ..self }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }
    /// Row stride (elements).
    pub fn row_stride(&self) -> isize {
        self.rs
    }
    /// Column stride (elements).
    pub fn col_stride(&self) -> isize {
        self.cs
    }

    /// Element `(i, j)`; panics when out of range.
    pub fn get(&self, i: usize, j: usize) -> &T {
        assert!(i < self.rows && j < self.cols, "index ({i}, {j}) out of a {}×{} view", self.rows, self.cols);
        &self.data[(self.offset as isize + i as isize * self.rs + j as isize * self.cs) as usize]
    }

    /// Pointer to element (0, 0). Only dereferenced by kernels for in-range indices.
    pub(crate) fn ptr(&self) -> ConstPtr<T> {
        ConstPtr::from_slice(self.data).wrapping_offset(self.offset as isize)
    }
}

impl<'a, T> MatMut<'a, T> {
    /// General strided output view; like [`MatRef::new`] and, in addition,
    /// rejects strides that would map two elements to one address.
    pub fn new(data: &'a mut [T], offset: usize, rows: usize, cols: usize, rs: isize, cs: isize) -> Result<Self> {
        if let Some((_, hi)) = extent(offset, rows, cols, rs, cs)? {
            if hi >= data.len() {
                return Err(shape(format!(
                    "a {rows}×{cols} output view with strides ({rs}, {cs}) at offset {offset} needs {} elements, the slice has {}",
                    hi + 1,
                    data.len()
                )));
            }
            // Injectivity (sufficient condition): one stride dominates the span of the other.
            let (ars, acs) = (rs.unsigned_abs(), cs.unsigned_abs());
            let ok = (rows == 1 || ars > 0)
                && (cols == 1 || acs > 0)
                && (rows == 1
                    || cols == 1
                    || acs.checked_mul(cols).is_some_and(|span| ars >= span)
                    || ars.checked_mul(rows).is_some_and(|span| acs >= span));
            if !ok {
                return Err(invalid(format!(
                    "output strides ({rs}, {cs}) make elements of a {rows}×{cols} matrix overlap"
                )));
            }
        }
        Ok(MatMut { data, offset, rows, cols, rs, cs })
    }

    /// Row-major output view with leading dimension `ld` (≥ `cols`).
    pub fn row_major(data: &'a mut [T], rows: usize, cols: usize, ld: usize) -> Result<Self> {
        if ld < cols && rows > 1 {
            return Err(invalid(format!("row-major leading dimension {ld} < cols {cols}")));
        }
        let ld = isize::try_from(ld).map_err(|_| overflow("leading dimension exceeds isize"))?;
        Self::new(data, 0, rows, cols, ld, 1)
    }

    /// Column-major output view with leading dimension `ld` (≥ `rows`).
    pub fn col_major(data: &'a mut [T], rows: usize, cols: usize, ld: usize) -> Result<Self> {
        if ld < rows && cols > 1 {
            return Err(invalid(format!("column-major leading dimension {ld} < rows {rows}")));
        }
        let ld = isize::try_from(ld).map_err(|_| overflow("leading dimension exceeds isize"))?;
        Self::new(data, 0, rows, cols, 1, ld)
    }

    /// The transposed view (no copy).
    pub fn t(self) -> Self {
        MatMut { rows: self.cols, cols: self.rows, rs: self.cs, cs: self.rs, ..self }
    }

    /// Reborrows as a shorter-lived mutable view.
    pub fn rb_mut(&mut self) -> MatMut<'_, T> {
        MatMut { data: self.data, offset: self.offset, rows: self.rows, cols: self.cols, rs: self.rs, cs: self.cs }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Pointer to element (0, 0). Only dereferenced by kernels for in-range indices.
    /// Writable: it derives from the view's exclusive borrow.
    pub(crate) fn ptr_mut(&mut self) -> MutPtr<T> {
        MutPtr::from_mut_slice(self.data).wrapping_offset(self.offset as isize)
    }
}
