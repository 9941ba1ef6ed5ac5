//! Sparse × dense products for inputs that are mostly zeros (image pixels,
//! one-hot and bag-of-words features): `C ← alpha·S·B + beta·C`, where `S`
//! is given by its nonzeros in compressed rows ([`SparseRows`]) and `B`, `C`
//! are dense f32 matrices.
//!
//! A dense GEMM spends `2·m·k·n` flops whatever the values; this product
//! spends `2·nnz(S)·n`. For MNIST (19% of the pixels are nonzero) the first
//! layer's forward product and its weight gradient cost a fifth of the dense
//! ones. The trainer chooses it from the data's density
//! (`TrainConfig::sparse_input`).
//!
//! * Each row of `C` is accumulated in registers, a strip of up to 8 vectors
//!   of columns at a time (with B beyond 32 KiB: slices of 4 vectors, two
//!   rows in step), over the row's nonzeros in their stored order
//!   (increasing column of `S`) with one FMA per nonzero and vector, then
//!   scaled and written once. Work is split over rows of `C` only, so the
//!   bits do not depend on the thread count.
//! * `Sᵀ·B` for a mini-batch of rows of `S` ([`spmm_t_rows`], the weight
//!   gradient of a sparse first layer) runs from the rows themselves: for
//!   batches of up to 64 rows each of C's rows is summed in registers over
//!   the batch rows a bitmask names; for larger ones C's rows go in blocks,
//!   each row of `S` adding `v·B[t]` to the block's row of each of its
//!   nonzeros. Either way in increasing `t`: the bits of [`spmm`] on the
//!   transpose, without building it. The trainer can take each finished row
//!   of C for its optimizer step instead of storing it (`RowSink`).
//! * Zeros of `S` are skipped, so `0·∞` and `0·NaN` from `B` are not formed
//!   (a dense GEMM would give NaN there). NaN and ±∞ stored in `S` count as
//!   nonzeros and propagate as in a dense product.
//! * Error bound, as for the dense GEMM (asserted by the tests against an f64
//!   oracle): `|c − ĉ| ≤ (nnz_i + 2)·ε·(|alpha|·Σ_p |s_ip·b_pj| + |beta·c_ij|)`
//!   where `nnz_i` is the number of nonzeros of row `i` of `S`.
//!
//! ```
//! use nnkern::gemm::{spmm, MatMut, MatRef, SparseRows};
//! let s = SparseRows::from_dense(&[0.0, 2.0, 0.0, 1.0, 0.0, 0.0], 2, 3)?; // 2×3
//! let b = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];                               // 3×2
//! let mut c = [0.0f32; 4];
//! spmm(1.0, &s, MatRef::row_major(&b, 3, 2, 2)?, 0.0, MatMut::row_major(&mut c, 2, 2, 2)?, &Default::default())?;
//! assert_eq!(c, [6.0, 8.0, 1.0, 2.0]);
//! # Ok::<(), nnkern::Error>(())
//! ```

use super::kernel::{Epilogue, NoEpilogue};
use super::strided::Strided;
use super::{GemmOptions, MatMut, MatRef, scratch};
use crate::error::{Result, invalid, overflow, shape};
use crate::ptr::{ConstPtr, MutPtr};
use crate::simd::{Isa, IsaToken, IsaVisitor, Real};
use crate::simd::{Token, WithToken};

/// Nonzeros per thread below which [`SparseRows::transpose_rows_from_with`]
/// stays on one thread (tens of microseconds of work; under Miri, 4, so that
/// the parallel path runs on what it can afford).
pub(crate) const MIN_NNZ_PER_THREAD: usize = if cfg!(miri) { 4 } else { 8192 };

/// The nonzeros of a `rows × cols` matrix, row by row (compressed sparse
/// rows): row `r` holds the column indices `idx[ptr[r]..ptr[r+1]]`, increasing,
/// and their values. Invariant, relied on by the unchecked indexing of the
/// products and the transpose: every stored column index is below `cols`
/// (every way of filling one guarantees it; a constructor from raw arrays
/// would have to check it). Built from dense rows ([`SparseRows::push_dense_row`]) or
/// as the transpose of another ([`SparseRows::transpose_from`]); the buffers
/// are kept between fills, so refilling one of the same size allocates nothing.
#[derive(Debug, Clone)]
pub struct SparseRows {
    rows: usize,
    cols: usize,
    ptr: Vec<usize>,
    /// Column indices; only `..nnz` is meaningful (the rest is write-ahead room).
    idx: Vec<u32>,
    /// Values; as `idx`.
    val: Vec<f32>,
    nnz: usize,
    /// Per-thread column counts and cursors of a parallel transpose
    /// ([`SparseRows::transpose_rows_from_with`]), kept between calls.
    work: Vec<usize>,
}

impl Default for SparseRows {
    /// The empty `0 × 0` matrix.
    fn default() -> Self {
        SparseRows { rows: 0, cols: 0, ptr: vec![0], idx: Vec::new(), val: Vec::new(), nnz: 0, work: Vec::new() }
    }
}

impl PartialEq for SparseRows {
    /// Same shape and same nonzeros (positions and value bits); the spare
    /// room of the buffers is ignored.
    fn eq(&self, o: &Self) -> bool {
        self.rows == o.rows
            && self.cols == o.cols
            && self.ptr[..=self.rows] == o.ptr[..=o.rows]
            && self.idx[..self.nnz] == o.idx[..o.nnz]
            && self.val[..self.nnz].iter().zip(&o.val[..o.nnz]).all(|(a, b)| a.to_bits() == b.to_bits())
    }
}

impl SparseRows {
    /// An empty `0 × cols` matrix, ready for [`SparseRows::push_dense_row`].
    /// Errors if `cols` exceeds `u32::MAX`.
    pub fn new(cols: usize) -> Result<SparseRows> {
        let mut s = SparseRows::default();
        s.clear(cols)?;
        Ok(s)
    }

    /// The nonzeros of the dense row-major `rows × cols` matrix `x`.
    pub fn from_dense(x: &[f32], rows: usize, cols: usize) -> Result<SparseRows> {
        let need = rows.checked_mul(cols).ok_or_else(|| overflow("rows × cols overflows usize"))?;
        if x.len() != need {
            return Err(shape(format!("x has {} elements, expected {rows}×{cols} = {need}", x.len())));
        }
        let mut s = SparseRows::new(cols)?;
        crate::mem::try_reserve(&mut s.ptr, rows, "a sparse matrix's row pointers")?;
        // One pass over x: each row's nonzeros are found in a scratch row,
        // then appended. The buffers grow to the density seen so far, so they
        // hold about the nonzeros, and are never zero-filled first (a data
        // set's nonzeros are tens of MB: writing them twice, and counting
        // them in a pass of their own, took as long as the scan).
        let what = "a sparse matrix's nonzeros";
        let (mut ix, mut vs) = (crate::mem::try_vec(cols, 0u32, what)?, crate::mem::try_vec(cols, 0f32, what)?);
        for r in 0..rows {
            let n = scan_row(&x[r * cols..(r + 1) * cols], &mut ix, &mut vs);
            if s.idx.capacity() - s.idx.len() < n || s.val.capacity() - s.val.len() < n {
                // The rest at this density so far, plus an eighth.
                let rest = (s.nnz + n) / (r + 1) * (rows - r);
                let more = rest + rest / 8 + n;
                crate::mem::try_reserve(&mut s.idx, more, what)?;
                crate::mem::try_reserve(&mut s.val, more, what)?;
                crate::sys::advise_huge_pages(
                    s.idx.as_ptr() as *const u8,
                    crate::mem::bytes_of::<u32>(s.idx.capacity()),
                );
                crate::sys::advise_huge_pages(
                    s.val.as_ptr() as *const u8,
                    crate::mem::bytes_of::<f32>(s.val.capacity()),
                );
            }
            s.idx.extend_from_slice(&ix[..n]);
            s.val.extend_from_slice(&vs[..n]);
            s.nnz += n;
            s.rows += 1;
            s.ptr.push(s.nnz);
        }
        Ok(s)
    }

    /// A `rows × cols` matrix from compressed sparse rows (scipy's CSR):
    /// row `r`'s column indices are `indices[indptr[r]..indptr[r + 1]]`,
    /// strictly increasing (sorted, no duplicates: scipy's canonical form),
    /// with their `data`. Explicit zeros (±0) are dropped, as
    /// [`SparseRows::from_dense`] drops them, so the same matrix gives the
    /// same nonzeros either way. Refused: `indptr` of a length other than
    /// `rows + 1`, not starting at 0, decreasing, beyond `indices.len()` or
    /// not ending there; `data` of another length than `indices`; a column
    /// index `≥ cols`, out of order or repeated; `cols` beyond `u32::MAX`.
    pub fn from_csr(rows: usize, cols: usize, indptr: &[usize], indices: &[u32], data: &[f32]) -> Result<SparseRows> {
        if rows.checked_add(1) != Some(indptr.len()) || indptr[0] != 0 || indptr[rows] != indices.len() {
            return Err(shape(format!(
                "indptr must hold rows + 1 = {} offsets from 0 to nnz = {}; it has {} ({:?}…{:?})",
                rows as u128 + 1,
                indices.len(),
                indptr.len(),
                indptr.first(),
                indptr.last()
            )));
        }
        if data.len() != indices.len() {
            return Err(shape(format!("{} values for {} column indices", data.len(), indices.len())));
        }
        for r in 0..rows {
            let (a, b) = (indptr[r], indptr[r + 1]);
            if a > b {
                return Err(invalid(format!("indptr decreases at row {r}: {a} > {b}")));
            }
            if b > indices.len() {
                return Err(invalid(format!("indptr[{}] = {b} is beyond nnz = {}", r + 1, indices.len())));
            }
            let ix = &indices[a..b];
            if let Some(&c) = ix.iter().find(|&&c| c as usize >= cols) {
                return Err(invalid(format!("row {r}: column index {c} ≥ {cols} columns")));
            }
            if ix.windows(2).any(|w| w[0] >= w[1]) {
                return Err(invalid(format!(
                    "row {r}: column indices not strictly increasing (sort them and sum duplicates first: \
                     scipy's X.sort_indices() and X.sum_duplicates())"
                )));
            }
        }
        let mut s = SparseRows::new(cols)?;
        let nnz = data.iter().filter(|v| v.to_bits() << 1 != 0).count();
        crate::mem::try_reserve(&mut s.ptr, rows, "a sparse matrix's row pointers")?;
        s.grow(nnz)?;
        let mut n = 0;
        for r in 0..rows {
            for k in indptr[r]..indptr[r + 1] {
                if data[k].to_bits() << 1 != 0 {
                    s.idx[n] = indices[k];
                    s.val[n] = data[k];
                    n += 1;
                }
            }
            s.ptr.push(n);
        }
        s.rows = rows;
        s.nnz = n;
        Ok(s)
    }

    /// A copy (without the spare room), or [`crate::Error::OutOfMemory`].
    pub fn try_clone(&self) -> Result<SparseRows> {
        let what = "a sparse matrix's copy";
        Ok(SparseRows {
            rows: self.rows,
            cols: self.cols,
            ptr: crate::mem::try_to_vec(&self.ptr[..=self.rows], what)?,
            idx: crate::mem::try_to_vec(&self.idx[..self.nnz], what)?,
            val: crate::mem::try_to_vec(&self.val[..self.nnz], what)?,
            nnz: self.nnz,
            work: Vec::new(),
        })
    }

    /// Empties the matrix and sets its width, keeping the buffers.
    pub fn clear(&mut self, cols: usize) -> Result<()> {
        if u32::try_from(cols).is_err() {
            return Err(invalid(format!("{cols} columns: sparse column indices are 32-bit")));
        }
        self.rows = 0;
        self.cols = cols;
        self.nnz = 0;
        self.ptr.clear();
        self.ptr.push(0);
        Ok(())
    }

    /// Reserves room for `rows` more rows and `nnz` more nonzeros (plus the
    /// one row of write-ahead room [`SparseRows::push_dense_row`] needs), so
    /// that the fills up to that size allocate nothing. Errors, keeping the
    /// matrix, if the memory cannot be had.
    pub fn reserve(&mut self, rows: usize, nnz: usize) -> Result<()> {
        crate::mem::try_reserve(&mut self.ptr, rows, "a sparse matrix's row pointers")?;
        let need = self
            .nnz
            .checked_add(nnz)
            .and_then(|n| n.checked_add(self.cols))
            .ok_or_else(|| crate::Error::out_of_memory(usize::MAX, "a sparse matrix's nonzeros"))?;
        self.grow(need)
    }

    /// Grows the value buffers to `need`, fallibly; on failure both keep
    /// their length.
    fn grow(&mut self, need: usize) -> Result<()> {
        if self.idx.len() < need {
            let what = "a sparse matrix's nonzeros";
            let (gi, gv) = (need - self.idx.len(), need - self.val.len());
            crate::mem::try_reserve(&mut self.idx, gi, what)?;
            crate::mem::try_reserve(&mut self.val, gv, what)?;
            self.idx.resize(need, 0);
            self.val.resize(need, 0.0);
        }
        Ok(())
    }

    /// Appends one row given densely (`row.len()` must equal the width); its
    /// nonzeros are kept: every value but ±0, so NaN and ±∞ are kept too.
    /// Allocates only when the reserved room (`cols` more nonzeros) is short.
    pub fn push_dense_row(&mut self, row: &[f32]) -> Result<()> {
        if row.len() != self.cols {
            return Err(shape(format!("a row of {} values for a sparse matrix of {} columns", row.len(), self.cols)));
        }
        let start = self.nnz;
        let end = start + self.cols;
        self.grow(end)?;
        if self.ptr.len() == self.ptr.capacity() {
            let more = self.ptr.len();
            crate::mem::try_reserve(&mut self.ptr, more, "a sparse matrix's row pointers")?;
        }
        let n = scan_row(row, &mut self.idx[start..end], &mut self.val[start..end]);
        self.nnz = start + n;
        self.rows += 1;
        self.ptr.push(self.nnz);
        Ok(())
    }

    /// Makes `self` the transpose of `s` (compressed columns of `s`), each
    /// list in increasing row order. Errors if `s` has more rows than 32-bit
    /// indices hold. Allocates only to grow.
    pub fn transpose_from(&mut self, s: &SparseRows) -> Result<()> {
        if u32::try_from(s.rows).is_err() {
            return Err(invalid(format!("{} rows: sparse column indices are 32-bit", s.rows)));
        }
        self.transpose_with(s, s.rows, s.nnz, |r| r)
    }

    /// Makes `self` the transpose of the matrix formed by the rows `rows` of
    /// `s`, in that order (a gathered mini-batch, transposed): row `c` of
    /// `self` lists the positions `t` in `rows` whose row of `s` has a nonzero
    /// in column `c`, increasing. Errors if a row index is out of range.
    /// Allocates only to grow.
    pub fn transpose_rows_from(&mut self, s: &SparseRows, rows: &[usize]) -> Result<()> {
        self.transpose_rows_from_with(s, rows, crate::par::Par::Seq)
    }

    /// [`SparseRows::transpose_rows_from`] on up to `par` threads: each
    /// takes a contiguous range of `rows` and writes its part of every
    /// column's list (its rows come after those of the threads before it),
    /// so the result is the same for any thread count. A batch of fewer than
    /// 8192 nonzeros per thread stays on one.
    pub fn transpose_rows_from_with(&mut self, s: &SparseRows, rows: &[usize], par: crate::par::Par) -> Result<()> {
        if let Some(&r) = rows.iter().find(|&&r| r >= s.rows) {
            return Err(shape(format!("row {r} of a sparse matrix of {} rows", s.rows)));
        }
        if u32::try_from(rows.len()).is_err() {
            return Err(invalid(format!("{} rows: sparse column indices are 32-bit", rows.len())));
        }
        s.prefetch_rows(rows);
        let total: usize = rows.iter().map(|&r| s.ptr[r + 1] - s.ptr[r]).sum();
        let nt = par.threads().min(total / MIN_NNZ_PER_THREAD).min(rows.len()).max(1);
        if nt == 1 {
            return self.transpose_with(s, rows.len(), total, |t| rows[t]);
        }
        self.transpose_rows_par(s, rows, total, nt)
    }

    /// The parallel transpose of [`SparseRows::transpose_rows_from_with`]
    /// on `nt ≥ 2` tasks; `rows` are valid rows of `s`, `total` their nonzeros.
    fn transpose_rows_par(&mut self, s: &SparseRows, rows: &[usize], total: usize, nt: usize) -> Result<()> {
        let (n, cols) = (rows.len(), s.cols);
        let words = nt * cols;
        let more = words.saturating_sub(self.work.len());
        crate::mem::try_reserve(&mut self.work, more, "a sparse transpose")?;
        self.start_transpose(cols, n, total)?;
        self.nnz = total;
        self.work.clear();
        self.work.resize(words, 0);
        let range = |t: usize| (t * n / nt, (t + 1) * n / nt);
        // Pass 1: task t counts the nonzeros of its rows in every column.
        let pw = MutPtr::from_mut_slice(&mut self.work);
        crate::par::run_tasks(nt, |t| {
            // SAFETY: task t owns counts[t·cols .. (t+1)·cols], inside `work`
            // (nt·cols long); no other reference to it lives meanwhile.
            let cnt = unsafe { pw.wrapping_offset((t * cols) as isize).slice_mut(cols) };
            let (r0, r1) = range(t);
            for &r in &rows[r0..r1] {
                for &c in &s.idx[s.ptr[r]..s.ptr[r + 1]] {
                    cnt[c as usize] += 1;
                }
            }
        });
        // Column starts, and each task's cursor in each column (its count
        // replaced by where its first nonzero there goes).
        let mut at = 0;
        for c in 0..cols {
            self.ptr[c] = at;
            for t in 0..nt {
                let k = self.work[t * cols + c];
                self.work[t * cols + c] = at;
                at += k;
            }
        }
        self.ptr[cols] = at;
        debug_assert_eq!(at, total);
        // Pass 2: task t writes its rows' nonzeros at its cursors.
        let (pw, pi, pv) = (
            MutPtr::from_mut_slice(&mut self.work),
            MutPtr::from_mut_slice(&mut self.idx),
            MutPtr::from_mut_slice(&mut self.val),
        );
        crate::par::run_tasks(nt, |t| {
            // SAFETY: as in pass 1, task t owns its cursors.
            let cur = unsafe { pw.wrapping_offset((t * cols) as isize).slice_mut(cols) };
            let (r0, r1) = range(t);
            for (&r, tt) in rows[r0..r1].iter().zip(r0..) {
                let q = s.ptr[r]..s.ptr[r + 1];
                for (&c, &v) in s.idx[q.clone()].iter().zip(&s.val[q]) {
                    let q = cur[c as usize];
                    cur[c as usize] = q + 1;
                    // SAFETY: task t's cursor of column c runs over the slots
                    // that the counts of pass 1 gave it, which no other task's
                    // cursor reaches, all below `total` ≤ the length of `idx`
                    // and `val` (grown above); nothing else reads or writes
                    // them meanwhile.
                    unsafe {
                        *pi.get().add(q) = tt as u32;
                        *pv.get().add(q) = v;
                    }
                }
            }
        });
        Ok(())
    }

    /// Makes room for a transpose of `rows` rows (the other matrix's
    /// columns), `cols` columns and `total` nonzeros, then sets the shape and
    /// zeroes the row pointers. Running out of memory leaves `self` as it was.
    fn start_transpose(&mut self, rows: usize, cols: usize, total: usize) -> Result<()> {
        let more = (rows + 1).saturating_sub(self.ptr.len());
        crate::mem::try_reserve(&mut self.ptr, more, "a sparse transpose")?;
        self.grow(total)?;
        self.rows = rows;
        self.cols = cols;
        self.ptr.clear();
        self.ptr.resize(rows + 1, 0);
        Ok(())
    }

    /// `row(t)` (for `t < n`, a row of `s`) must give the same row in both
    /// passes: the fill relies on the counts of the first; `total` is the
    /// nonzeros of those rows. The memory is reserved first: running out of
    /// it leaves `self` as it was.
    fn transpose_with(&mut self, s: &SparseRows, n: usize, total: usize, row: impl Fn(usize) -> usize) -> Result<()> {
        debug_assert_eq!(total, (0..n).map(|t| s.ptr[row(t) + 1] - s.ptr[row(t)]).sum::<usize>());
        self.start_transpose(s.cols, n, total)?;
        // The two passes below index without bounds checks (the checks cost
        // measurably, see BENCHMARKS.md): every index of `s` is below
        // `s.cols` (its invariant), so `c + 1 ≤ s.cols` is inside `ptr`;
        // the fill cursor of column c stays below the start of column c + 1,
        // at most `nnz`, the length of `idx` and `val` after `grow`.
        let pp = self.ptr.as_mut_ptr();
        for t in 0..n {
            let r = row(t);
            for &c in &s.idx[s.ptr[r]..s.ptr[r + 1]] {
                // SAFETY: c < s.cols, and ptr holds s.cols + 1 elements.
                unsafe { *pp.add(c as usize + 1) += 1 };
            }
        }
        self.nnz = total;
        debug_assert!(self.idx.len() >= total && self.val.len() >= total);
        for c in 0..s.cols {
            self.ptr[c + 1] += self.ptr[c];
        }
        // ptr[c] is now the start of column c; used as the fill cursor, then
        // shifted back.
        let (pp, pi, pv) = (self.ptr.as_mut_ptr(), self.idx.as_mut_ptr(), self.val.as_mut_ptr());
        for t in 0..n {
            let r = row(t);
            let q = s.ptr[r]..s.ptr[r + 1];
            for (&c, &v) in s.idx[q.clone()].iter().zip(&s.val[q]) {
                // SAFETY: c < s.cols (ptr holds s.cols + 1); the cursor q of
                // column c is below the start of column c + 1 ≤ nnz, and idx
                // and val hold at least nnz elements (grown above).
                unsafe {
                    let cur = pp.add(c as usize);
                    let q = *cur;
                    *pi.add(q) = t as u32;
                    *pv.add(q) = v;
                    *cur = q + 1;
                }
            }
        }
        for c in (0..s.cols).rev() {
            self.ptr[c + 1] = self.ptr[c];
        }
        self.ptr[0] = 0;
        Ok(())
    }

    /// Asks for the cache lines of the rows `rows` all at once (a hint:
    /// indices out of range are skipped, nothing is read). Rows picked at
    /// random from a large data set come from memory, and their misses then
    /// overlap instead of being met one row at a time; the trainer asks for
    /// the next mini-batch's rows during the optimizer step (or, where the
    /// first layer's step is fused into its backward pass, just before it; in halves,
    /// [`SparseRows::prefetch_rows_halves`]) where the data set's nonzeros
    /// exceed half of L3 ([`SparseRows::beyond_l3`]).
    pub fn prefetch_rows(&self, rows: &[usize]) {
        for &r in rows {
            if r >= self.rows {
                continue;
            }
            self.prefetch_nz(self.ptr[r]..self.ptr[r + 1]);
        }
    }

    /// Asks for every 64-byte line of the indices and values of the
    /// nonzeros `q` (16 of either per line). A hint: nothing is read.
    #[inline(always)]
    fn prefetch_nz(&self, q: std::ops::Range<usize>) {
        for p in (q.start & !15..q.end).step_by(16) {
            crate::simd::prefetch(self.idx.as_ptr().wrapping_add(p) as *const u8);
            crate::simd::prefetch(self.val.as_ptr().wrapping_add(p) as *const u8);
        }
    }

    /// [`SparseRows::prefetch_rows`] for the forward product of
    /// [`spmm_halves_epilogue`] on up to `par` threads: with two or more,
    /// one thread asks for the first half of each row's nonzeros (columns
    /// below `cols/2`) and another for the second, as the product's two tasks
    /// read them on two threads (with more, the product's other tasks ask
    /// for their rows themselves), so that each core's cache gets its own
    /// half and the waits for memory run on two cores.
    pub(crate) fn prefetch_rows_halves(&self, rows: &[usize], par: crate::par::Par) {
        if par.threads() < 2 {
            return self.prefetch_rows(rows);
        }
        let half = (self.cols / 2) as u32;
        crate::par::run_tasks(2, |t| {
            for &r in rows {
                if r >= self.rows {
                    continue;
                }
                let (q0, q1) = (self.ptr[r], self.ptr[r + 1]);
                let mid = q0 + self.idx[q0..q1].partition_point(|&p| p < half);
                self.prefetch_nz(if t == 0 { q0..mid } else { mid..q1 });
            }
        });
    }

    /// Whether this matrix's nonzeros (indices, values and row starts) take
    /// more than half of the last-level cache (or its size is unknown):
    /// then rows picked at random come from memory, and are worth asking
    /// for ahead ([`SparseRows::prefetch_rows`]); from a large L3 they come
    /// fast enough that the prefetch costs more than it saves (MNIST's 75 MB
    /// on a Xeon with 480 MiB of L3: 6% of a batch-256 epoch, BENCHMARKS.md).
    pub(crate) fn beyond_l3(&self) -> bool {
        let bytes = self.idx.len() * 4 + self.val.len() * 4 + self.ptr.len() * std::mem::size_of::<usize>();
        crate::sys::l3_cache_bytes().is_none_or(|l3| bytes > l3 / 2)
    }

    /// Rows.
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// Columns.
    pub fn cols(&self) -> usize {
        self.cols
    }
    /// Stored nonzeros.
    pub fn nnz(&self) -> usize {
        self.nnz
    }
    /// Nonzeros per element (0 for an empty matrix).
    pub fn density(&self) -> f64 {
        let all = self.rows as f64 * self.cols as f64;
        if all == 0.0 { 0.0 } else { self.nnz as f64 / all }
    }
    /// Row `r`: its column indices (increasing) and values.
    ///
    /// # Panics
    /// If `r ≥ rows()`, as slice indexing does.
    pub fn row(&self, r: usize) -> (&[u32], &[f32]) {
        let (a, b) = (self.ptr[r], self.ptr[r + 1]);
        (&self.idx[a..b], &self.val[a..b])
    }
    /// The dense row-major `rows × cols` matrix.
    pub fn to_dense(&self) -> Vec<f32> {
        let mut d = vec![0.0; self.rows * self.cols];
        for r in 0..self.rows {
            let (ix, v) = self.row(r);
            for (&c, &v) in ix.iter().zip(v) {
                d[r * self.cols + c as usize] = v;
            }
        }
        d
    }
}

/// Writes the nonzeros of `row` (column index, value) to the front of `idx`
/// and `val` (each at least `row.len()` long) and returns their count. Runs
/// with the ISA kernels use now ([`Isa::current`], so a forced one too):
/// whole groups of 16 with AVX-512, of 8 with AVX2, where the ISA's row of
/// the table has it, the rest portably.
fn scan_row(row: &[f32], idx: &mut [u32], val: &mut [f32]) -> usize {
    scan_row_on(Isa::current(), row, idx, val)
}

/// [`scan_row`] on `isa` (its vector path only if this CPU has it).
fn scan_row_on(isa: Isa, row: &[f32], idx: &mut [u32], val: &mut [f32]) -> usize {
    struct Scan<'a>(&'a [f32], &'a mut [u32], &'a mut [f32]);
    impl IsaVisitor for Scan<'_> {
        type Output = usize;
        fn visit<S: IsaToken>(self) -> usize {
            let Scan(row, idx, val) = self;
            #[cfg(target_arch = "x86_64")]
            if S::AVX512F && S::detect().is_some() {
                // SAFETY: AVX-512F is present (this ISA's token was detected
                // and its row says it has AVX-512F); the slices are as long
                // as the contract says.
                let n = unsafe { crate::simd::x86::scan_row_avx512(row, idx, val) };
                return scan_row_scalar(row, idx, val, row.len() / 16 * 16, n);
            }
            #[cfg(target_arch = "x86_64")]
            if S::AVX2 && S::detect().is_some() {
                // SAFETY: AVX2 is present (this ISA's token was detected and
                // its row says it has AVX2); the slices are as long as the
                // contract says.
                let n = unsafe { crate::simd::x86::scan_row_avx2(row, idx, val) };
                return scan_row_scalar(row, idx, val, row.len() / 8 * 8, n);
            }
            scan_row_scalar(row, idx, val, 0, 0)
        }
    }
    isa.visit(Scan(row, idx, val))
}

/// Portable [`scan_row`] from column `c0`, with `n` nonzeros already written.
/// Branch-free: every value is written at the next free slot, which advances
/// only past nonzeros; all-zero groups of 8 are skipped whole.
fn scan_row_scalar(row: &[f32], idx: &mut [u32], val: &mut [f32], c0: usize, mut n: usize) -> usize {
    for (g, chunk) in row[c0..].chunks(8).enumerate() {
        if chunk.iter().fold(0u32, |a, v| a | (v.to_bits() << 1)) == 0 {
            continue;
        }
        for (o, &v) in chunk.iter().enumerate() {
            idx[n] = (c0 + g * 8 + o) as u32;
            val[n] = v;
            n += usize::from(v.to_bits() << 1 != 0);
        }
    }
    n
}

/// `C ← alpha·S·B + beta·C` (`S` m×k sparse, `B` k×n, `C` m×n, any strides).
/// `beta == 0` never reads C; `alpha == 0` never reads B. Options: the thread
/// policy (`opts.par`) and the instruction set (`opts.isa`); the backend
/// choice does not apply.
///
/// # Errors
/// [`crate::Error::ShapeMismatch`] when the shapes disagree;
/// [`crate::Error::OutOfMemory`] when the scratch cannot be allocated (C is
/// then untouched).
pub fn spmm(
    alpha: f32,
    s: &SparseRows,
    b: MatRef<'_, f32>,
    beta: f32,
    c: MatMut<'_, f32>,
    opts: &GemmOptions,
) -> Result<()> {
    spmm_epilogue(alpha, s, None, b, beta, c, NoEpilogue, opts)
}

/// [`spmm`] on the rows `rows` of `S` (in that order; C has `rows.len()`
/// rows): `C[t] = alpha·S[rows[t]]·B + beta·C[t]`. A mini-batch of a data set
/// whose nonzeros were found once ([`SparseRows::from_dense`]) multiplies
/// without being copied; the rows' lines are prefetched together, since rows
/// picked at random from a large data set come from memory.
pub fn spmm_rows(
    alpha: f32,
    s: &SparseRows,
    rows: &[usize],
    b: MatRef<'_, f32>,
    beta: f32,
    c: MatMut<'_, f32>,
    opts: &GemmOptions,
) -> Result<()> {
    spmm_epilogue(alpha, s, Some(rows), b, beta, c, NoEpilogue, opts)
}

/// Rows of C per accumulator block.
const ROW_BLOCK: usize = 32;
/// Columns of C per panel (a multiple of every ISA's lanes).
const PANEL: usize = 1024;
/// B at most this large (bytes of its `k` rows, padded to whole vectors)
/// takes the direct row-by-row loop, larger B the blocked loop: half the
/// L2 cache of a core, within 256 KiB to 512 KiB (256 KiB where the size is
/// unknown; larger bounds are unmeasured). Read from B's rows at random, a B
/// of half of L2 stays there beside the rest of a training step (a Zen 3's 512 KiB L2: 256 KiB; a
/// Zen 4's 1 MiB: 512 KiB, MNIST's 784 × 128 weights of 400 KiB run about
/// 13% faster direct than blocked there, BENCHMARKS.md). The loops sum in
/// the same order, so the choice never changes the bits.
fn direct_b_bytes() -> usize {
    static BYTES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *BYTES.get_or_init(|| crate::sys::l2_cache_bytes().map_or(MIN_DIRECT_B_BYTES, direct_b_bytes_for))
}

/// The direct loop's bound for an L2 cache of `l2` bytes.
fn direct_b_bytes_for(l2: usize) -> usize {
    (l2 / 2).clamp(MIN_DIRECT_B_BYTES, MAX_DIRECT_B_BYTES)
}
/// The direct loop's bound on any machine: B beyond it is always blocked.
const MAX_DIRECT_B_BYTES: usize = 512 << 10;
/// The direct loop's bound where L2's size is unknown, and its least.
const MIN_DIRECT_B_BYTES: usize = 256 << 10;
/// B larger than this (and at most [`direct_b_bytes`]) takes the sliced
/// direct loop: B no longer fits in L1, so it is read in column slices that do.
const SLICED_B_BYTES: usize = 32 << 10;
/// Vectors of columns per slice of the sliced direct loop.
const SLICE: usize = 4;
/// The sliced loop's copy of one slice of B takes at most this many bytes.
const SLICE_COPY_BYTES: usize = 64 << 10;
/// Vectors of columns per register strip.
const STRIP: usize = 8;

/// Runs `$call` with the constants `$mv` (the strip's vectors, 1 to
/// [`STRIP`]) and `$tail` (whether its last vector is partial) bound to
/// `$nv` and `$part`: one monomorphised call per strip shape.
macro_rules! by_strip {
    ($nv:expr, $part:expr, |$mv:ident, $tail:ident| $call:expr) => {
        by_strip!(@arms ($nv, $part), $mv, $tail, $call, 1 2 3 4 5 6 7 8)
    };
    (@arms $key:expr, $mv:ident, $tail:ident, $call:expr, $($n:literal)*) => {
        match $key {
            $(
                ($n, false) => {
                    const $mv: usize = $n;
                    const $tail: bool = false;
                    $call
                }
                ($n, true) => {
                    const $mv: usize = $n;
                    const $tail: bool = true;
                    $call
                }
            )*
            _ => unreachable!("a strip has 1 to {STRIP} vectors"),
        }
    };
}

/// [`spmm`] / [`spmm_rows`] with `epi` applied to each strip of C while in
/// registers (`epi` in C's coordinates; it is called transposed: kernel rows
/// are C's columns).
///
/// When B (its `k` rows, padded) takes at most half of L2 ([`direct_b_bytes`]:
/// 256 to 512 KiB), each row of C takes
/// all its nonzeros at once, a strip of up to 8 vectors of columns at a time
/// in registers (the direct loop); past 32 KiB (beyond L1), B goes in copied
/// slices of 4 vectors of columns and C's rows in pairs (the sliced direct
/// loop; when B has unit column stride, `alpha != 0`, B holds at least one
/// whole slice of columns and a slice's copy takes at most 64 KiB). Larger B
/// is blocked: C's rows go in
/// blocks of 32, accumulated in a cache-resident buffer; `k` goes in blocks
/// of rows of B of 32 KiB. Within a block, each row of C takes its nonzeros
/// in that range of `k` with a strip of up to 8 vectors of accumulators in
/// registers and B's rows read from L1.
/// B streams through once per block of C's rows, and every element of C
/// sums its terms in increasing `k`, whatever the blocking or the threads
/// (work is split over C's rows only).
#[allow(clippy::too_many_arguments)]
pub(crate) fn spmm_epilogue<E: Epilogue<f32>>(
    alpha: f32,
    s: &SparseRows,
    rows: Option<&[usize]>,
    b: MatRef<'_, f32>,
    beta: f32,
    mut c: MatMut<'_, f32>,
    epi: E,
    opts: &GemmOptions,
) -> Result<()> {
    let (m, k, n) = check_spmm(s, rows, &b, &c)?;
    let isa = opts.resolve_isa()?;
    if m == 0 || n == 0 {
        return Ok(());
    }
    if let Some(rs) = rows {
        s.prefetch_rows(rs);
    }
    let job = Job {
        s,
        rows,
        b: Strided { ptr: b.ptr(), rs: b.rs, cs: b.cs },
        n,
        j0: 0,
        c: Strided { ptr: c.ptr_mut(), rs: c.rs, cs: c.cs },
        alpha,
        beta: if beta == 0.0 { None } else { Some(beta) },
        epi: epi.transposed(),
        kr: (0, s.cols),
    };
    let nnz = rows.map_or(s.nnz, |rs| rs.iter().map(|&r| s.ptr[r + 1] - s.ptr[r]).sum());
    let flops = 2 * nnz.max(m) * n;
    let nt = opts.par.threads().min((flops / super::driver::MIN_FLOPS_PER_THREAD).max(1)).min(m).max(1);
    // Each task's scratch: its accumulator block (or the sliced loop's B
    // slice), then its row cursors. Bounded by the constants whatever the
    // shapes, and still allocated fallibly, before any task writes C.
    let rb = ROW_BLOCK.min(m.div_ceil(nt));
    let acc_len = acc_len(rb, n.min(PANEL), k);
    tasks_with_scratch(nt, acc_len, rb, |t, acc, cur| {
        let (r0, r1) = (m * t / nt, m * (t + 1) / nt);
        // Panels of at most PANEL columns keep the accumulator block
        // bounded (32 rows × PANEL) whatever n is.
        let mut j0 = 0;
        while j0 < n {
            let panel = job.panel(j0, PANEL.min(n - j0));
            // SAFETY (of the kernel's accesses): the views were validated
            // at construction and the row selection above; the panel's
            // columns are inside B and C; this task writes only C's rows
            // r0..r1; B and S are only read.
            isa.run(Rows { job: &panel, r0, r1, acc: &mut *acc, cur: &mut *cur });
            j0 += PANEL;
        }
    })
}

/// B (its `k × n` floats) from which [`spmm_halves_epilogue`] sums in
/// halves; smaller B, which costs little to share between cores, is summed
/// in one pass by [`spmm_epilogue`]. A constant, so that the order depends on
/// the shapes only, never on the machine or the threads (under Miri, 64
/// bytes, so that its small shapes take the halves).
const HALVES_B_BYTES: usize = if cfg!(miri) { 64 } else { 128 << 10 };

/// `C = epi(S·B)` (or of the rows `rows` of S) as [`spmm_epilogue`] with
/// `alpha = 1` and `beta = 0` where B takes less than 128 KiB
/// ([`HALVES_B_BYTES`]); from there every element of C is summed in two halves
/// of S's columns: `epi(s_lo + s_hi)`, where `s_lo` sums the terms of the
/// columns below `k/2` and `s_hi` those from `k/2` on, each from zero in
/// increasing `k` (so the bits differ from [`spmm_epilogue`]'s in the last
/// place only where that sum rounds differently, within the same bound).
/// That order lets two threads each read only one half of B's rows (the
/// rows of a layer's weights whose gradient and optimizer update the same
/// thread computes: [`spmm_t_rows`], and with it the trainer's fused step
/// of the first layer, or else `optim`'s flat split, split there too, for
/// two threads), instead of both reading all of B, which then moved between
/// the cores' caches at every training step. One thread sums `s_lo` into C,
/// then adds `s_hi` in the write-out; two or more put `s_hi` in scratch and
/// add it in a second pass over C's rows: the same bits for any thread count.
///
/// # Errors
/// As [`spmm_epilogue`]; [`crate::Error::OutOfMemory`] before C is written.
pub(crate) fn spmm_halves_epilogue<E: Epilogue<f32>>(
    s: &SparseRows,
    rows: Option<&[usize]>,
    b: MatRef<'_, f32>,
    mut c: MatMut<'_, f32>,
    epi: E,
    opts: &GemmOptions,
) -> Result<()> {
    let (m, k, n) = check_spmm(s, rows, &b, &c)?;
    if k.saturating_mul(n).saturating_mul(4) < HALVES_B_BYTES {
        return spmm_epilogue(1.0, s, rows, b, 0.0, c, epi, opts);
    }
    let isa = opts.resolve_isa()?;
    if m == 0 || n == 0 {
        return Ok(());
    }
    let half = k / 2;
    let lo = Job {
        s,
        rows,
        b: Strided { ptr: b.ptr(), rs: b.rs, cs: b.cs },
        n,
        j0: 0,
        c: Strided { ptr: c.ptr_mut(), rs: c.rs, cs: c.cs },
        alpha: 1.0,
        beta: None,
        epi: NoEpilogue,
        kr: (0, half),
    };
    // The second half adds C's first (beta = 1: fma(1, c, s_hi) = c + s_hi
    // exactly rounded) and applies the epilogue.
    let hi =
        Job { s, rows, b: lo.b, n, j0: 0, c: lo.c, alpha: 1.0, beta: Some(1.0), epi: epi.transposed(), kr: (half, k) };
    let nnz = rows.map_or(s.nnz, |rs| rs.iter().map(|&r| s.ptr[r + 1] - s.ptr[r]).sum());
    let flops = 2 * nnz.max(m) * n;
    let nt = opts.par.threads().min((flops / super::driver::MIN_FLOPS_PER_THREAD).max(1));
    // Pairs of tasks, one per half, each pair over a group of C's rows.
    let groups = (nt / 2).min(m);
    let rb = ROW_BLOCK.min(m.div_ceil(groups.max(1)));
    let acc_len = acc_len(rb, n.min(PANEL), k);
    if groups == 0 {
        if let Some(rs) = rows {
            s.prefetch_rows(rs);
        }
        return tasks_with_scratch(1, acc_len, rb, |_, acc, cur| {
            // SAFETY: the views were validated above, and this (only) task
            // writes all of C; `acc` and `cur` are sized for all its rows.
            unsafe {
                run_panels(isa, &lo, 0, m, &mut *acc, &mut *cur);
                run_panels(isa, &hi, 0, m, acc, cur);
            }
        });
    }
    // s_hi of a block of at most HALVES_ROWS rows of a panel of at most
    // PANEL columns (rows padded to whole lines, from a line), in a region
    // of the scratch after the 2·groups tasks' parts: bounded whatever m
    // and n are.
    let np = n.min(PANEL).div_ceil(MAX_F32_LANES) * MAX_F32_LANES;
    let mb = m.min(HALVES_ROWS);
    let p_len = mb * np + MAX_F32_LANES;
    let tasks = 2 * groups;
    let words = task_words(acc_len, rb);
    scratch::with_parts_and(tasks, words, scratch::words_of::<f32>(p_len), "sparse product scratch", |parts, p| {
        // SAFETY: the region's words are initialized and 8-byte aligned, so
        // they hold p_len f32 (any bits are valid).
        let p = unsafe { core::slice::from_raw_parts_mut(p.as_mut_ptr() as *mut f32, p_len) };
        let skip = p.as_ptr().align_offset(64).min(MAX_F32_LANES);
        let p = &mut p[skip..skip + mb * np];
        let mut j0 = 0;
        while j0 < n {
            let w = PANEL.min(n - j0);
            let (lo, hi) = (lo.panel(j0, w), hi.panel(j0, w));
            let mut i0 = 0;
            while i0 < m {
                let i1 = (i0 + mb).min(m);
                // Row i of the block is row i − i0 of the scratch (the
                // pointer is only offset, never read outside the block).
                let pw = MutPtr::from_mut_slice(&mut *p).wrapping_offset(-((i0 * np) as isize));
                let to_p = Job { c: Strided { ptr: pw, rs: np as isize, cs: 1 }, kr: (half, k), ..lo };
                run_with_parts(parts, tasks, acc_len, rb, |t, acc, cur| {
                    let g = t / 2;
                    let (r0, r1) = (i0 + (i1 - i0) * g / groups, i0 + (i1 - i0) * (g + 1) / groups);
                    let j = if t % 2 == 0 { &lo } else { &to_p };
                    // Each task asks for its half of its rows' nonzeros
                    // itself (all at once: rows from a large data set come
                    // from memory; asked for by another core, they would
                    // come from that core's cache).
                    for i in r0..r1 {
                        s.prefetch_nz(j.nz(j.row(i)));
                    }
                    // SAFETY (of the kernel's accesses): the views were
                    // validated above, and the panel's columns are inside B
                    // and C; task t writes rows r0..r1 (its group's, inside
                    // the block) of C (even t) or of the scratch (odd t),
                    // which holds the block's rows, np ≥ w floats each, from
                    // a line; B and S are only read; `acc` and `cur` are
                    // sized for rb ≥ r1 − r0 rows.
                    isa.run(Rows { job: j, r0, r1, acc, cur });
                });
                let split = nt.min(i1 - i0);
                let pc = ConstPtr::from_slice(&*p);
                crate::par::run_tasks(split, |t| {
                    let (r0, r1) = (i0 + (i1 - i0) * t / split, i0 + (i1 - i0) * (t + 1) / split);
                    // SAFETY (of Combine's accesses): rows r0..r1 of C are
                    // inside C and this task's; the scratch holds np ≥ w
                    // floats of each of the block's rows.
                    isa.run(Combine { job: &hi, p: pc, np, i0, r0, r1 });
                });
                i0 = i1;
            }
            j0 += PANEL;
        }
    })
}

/// Rows per block of [`spmm_halves_epilogue`]'s second half in scratch (a
/// training batch of up to 256 rows is one block).
const HALVES_ROWS: usize = 256;

/// Rows `r0..r1` of `j`'s destination, in panels of at most [`PANEL`]
/// columns (so that the accumulator block stays bounded).
///
/// # Safety
/// `j`'s views are valid (B and S only read), rows `r0..r1` of its
/// destination are the caller's to write, and `acc`, `cur` are as long as
/// [`Rows`] needs for those rows.
unsafe fn run_panels<E: Epilogue<f32>>(
    isa: Isa,
    j: &Job<'_, E>,
    r0: usize,
    r1: usize,
    acc: &mut [f32],
    cur: &mut [usize],
) {
    let mut j0 = 0;
    while j0 < j.n {
        let panel = j.panel(j0, PANEL.min(j.n - j0));
        // SAFETY (of the kernel's accesses): the caller's contract; the
        // panel's columns are inside B and the destination.
        isa.run(Rows { job: &panel, r0, r1, acc: &mut *acc, cur: &mut *cur });
        j0 += PANEL;
    }
}

/// Rows `r0..r1` of C from `s_hi` in scratch (`p`, rows of `np` from row
/// `i0`): the write-out of [`spmm_halves_epilogue`]'s second half.
struct Combine<'a, 'b, E> {
    job: &'b Job<'a, E>,
    p: ConstPtr<f32>,
    np: usize,
    i0: usize,
    r0: usize,
    r1: usize,
}

impl<E: Epilogue<f32>> WithToken for Combine<'_, '_, E> {
    type Output = ();
    #[inline(always)]
    fn with_token<S: Token>(self, s: S) {
        let Combine { job, p, np, i0, r0, r1 } = self;
        for i in r0..r1 {
            // SAFETY: row i − i0 of the scratch holds np ≥ n floats (padded
            // to whole vectors) and row i of C is this task's (the caller's
            // split).
            unsafe { write_row(s, job, i, p.wrapping_offset(((i - i0) * np) as isize).slice(np)) };
        }
    }
}

/// Checks `C = S·B` (or the rows `rows` of S): S m×k, B k×n, C m×n, every
/// row inside S. Returns `(m, k, n)`.
fn check_spmm(
    s: &SparseRows,
    rows: Option<&[usize]>,
    b: &MatRef<'_, f32>,
    c: &MatMut<'_, f32>,
) -> Result<(usize, usize, usize)> {
    let (k, n) = (s.cols, b.cols);
    let m = rows.map_or(s.rows, |r| r.len());
    if b.rows != k || c.rows != m || c.cols != n {
        return Err(shape(format!(
            "spmm: S is {m}×{k}, B is {}×{}, C is {}×{}; need S m×k, B k×n, C m×n",
            b.rows, b.cols, c.rows, c.cols
        )));
    }
    if let Some(&r) = rows.and_then(|rs| rs.iter().find(|&&r| r >= s.rows)) {
        return Err(shape(format!("row {r} of a sparse matrix of {} rows", s.rows)));
    }
    Ok((m, k, n))
}

/// `C ← alpha·Sᵀ_b·B + beta·C` where `S_b` is the rows `rows` of S (in that
/// order; `m = rows.len()`, B is m×n, C is `S.cols()`×n): the weight gradient
/// `dW = Xᵀ·dZ` of a layer whose input is a mini-batch of a sparse data set,
/// straight from the data set's rows, without transposing them
/// ([`SparseRows::transpose_rows_from`] and [`spmm`] give the same bits, at
/// the cost of the transpose).
///
/// For a batch of up to 64 rows (with B of unit column stride and `alpha ≠
/// 0`), each task
/// first writes its range of `S_b`'s columns transposed: per column, the
/// batch rows' values and a bitmask of the rows that have one; then each
/// row of C is summed in registers, a strip of up to 8 vectors at a time,
/// over the set bits, each term loading its row of B. For larger batches
/// C's rows (S's columns) go in blocks of 64 KiB, accumulated in a buffer
/// that stays in L2; for each block, each row `t` of `S_b` takes its nonzeros in
/// the block's range of columns (a cursor per row), with row `t` of B held in
/// registers, a strip of up to 8 vectors at a time, and each nonzero `(p, v)`
/// adds `v·B[t]` to row `p` of the block. Every element of C sums its terms
/// from zero in increasing `t`, one FMA each, before alpha, beta and the
/// store: the order of [`spmm`] on the transpose, so the bits are its bits,
/// whatever the blocking or the threads (work is split over C's rows).
/// Zeros of S are skipped, so `0·∞` and `0·NaN` from B are not formed. Error
/// bound: [`spmm`]'s, with `nnz_i` the nonzeros of column `i` of `S_b`.
///
/// ```
/// use nnkern::gemm::{spmm_t_rows, MatMut, MatRef, SparseRows};
/// let s = SparseRows::from_dense(&[0.0, 2.0, 0.0, 1.0, 0.0, 0.0], 2, 3)?; // 2×3
/// let b = [1.0f32, 2.0, 3.0, 4.0];                                         // rows [1, 0]: 2×2
/// let mut c = [0.0f32; 6];                                                 // 3×2
/// spmm_t_rows(1.0, &s, &[1, 0], MatRef::row_major(&b, 2, 2, 2)?, 0.0, MatMut::row_major(&mut c, 3, 2, 2)?, &Default::default())?;
/// assert_eq!(c, [1.0, 2.0, 6.0, 8.0, 0.0, 0.0]); // row 1 of S, then row 0
/// # Ok::<(), nnkern::Error>(())
/// ```
pub fn spmm_t_rows(
    alpha: f32,
    s: &SparseRows,
    rows: &[usize],
    b: MatRef<'_, f32>,
    beta: f32,
    c: MatMut<'_, f32>,
    opts: &GemmOptions,
) -> Result<()> {
    if c.rows != s.cols {
        return Err(shape(format!("spmm_t: C has {} rows, Sᵀ_b has {}", c.rows, s.cols)));
    }
    spmm_t_epilogue(alpha, s, rows, 0, b, beta, c, NoEpilogue, opts)
}

/// [`spmm_t_rows`] for the rows `lo .. lo + C.rows` of the product only (C
/// holds those), with `epi` applied to each strip of C while in registers
/// (`epi` in C's coordinates, called transposed, as [`spmm_epilogue`]'s).
#[allow(clippy::too_many_arguments)]
pub(crate) fn spmm_t_epilogue<E: Epilogue<f32>>(
    alpha: f32,
    s: &SparseRows,
    rows: &[usize],
    lo: usize,
    b: MatRef<'_, f32>,
    beta: f32,
    mut c: MatMut<'_, f32>,
    epi: E,
    opts: &GemmOptions,
) -> Result<()> {
    let (k, n) = (c.rows, c.cols);
    let c = Strided { ptr: c.ptr_mut(), rs: c.rs, cs: c.cs };
    spmm_t_run(alpha, s, rows, lo, b, beta, c, (k, n), epi, &ToC, opts)
}

/// What takes the finished rows of [`spmm_t_into`]'s product in place of
/// C: the trainer's optimizer step, which so reads the first layer's weight
/// gradient from the product's block while it is in cache, and never
/// writes it to memory.
pub(crate) trait RowSink: Sync {
    /// The rows and columns it takes: the product's `k × n`.
    fn dims(&self) -> (usize, usize);
    /// Takes row `i` of the product (`S_bᵀ·B`'s row `lo + i`), columns
    /// `j0 .. j0 + n`, from `g`.
    ///
    /// # Safety
    /// `g` holds `n` values, rounded up to whole vectors of `S`; `i` is
    /// below the call's row count and `j0 + n` at most its column count;
    /// each `(i, column)` of the call is taken once, by one task, and the
    /// tasks of one call take disjoint rows.
    unsafe fn take_row<S: Token>(&self, s: S, i: usize, j0: usize, g: *const f32, n: usize);
}

/// Rows `lo .. lo + k` of `S_bᵀ·B` (`k × B.cols`), each handed to `sink`
/// once complete instead of written to a C: the same sums as
/// [`spmm_t_epilogue`] with `alpha = 1`, `beta = 0` and no epilogue, so
/// the same bits as the rows it would write, for any thread count.
pub(crate) fn spmm_t_into<K: RowSink>(
    s: &SparseRows,
    rows: &[usize],
    lo: usize,
    k: usize,
    b: MatRef<'_, f32>,
    sink: &K,
    opts: &GemmOptions,
) -> Result<()> {
    if sink.dims() != (k, b.cols) {
        return Err(shape(format!("spmm_t: the sink takes {:?}, the product is {k}×{}", sink.dims(), b.cols)));
    }
    // No C: the job's C pointer is never dereferenced (`ToSink` writes
    // nothing through it).
    let c = Strided { ptr: MutPtr::null(), rs: 0, cs: 1 };
    spmm_t_run(1.0, s, rows, lo, b, 0.0, c, (k, b.cols), NoEpilogue, &ToSink(sink), opts)
}

/// [`spmm_t_epilogue`] and [`spmm_t_into`]: rows `lo .. lo + k` of the
/// product, `n` columns, each row's block written out by `out`.
#[allow(clippy::too_many_arguments)]
fn spmm_t_run<E: Epilogue<f32>, O: TOut>(
    alpha: f32,
    s: &SparseRows,
    rows: &[usize],
    lo: usize,
    b: MatRef<'_, f32>,
    beta: f32,
    c: Strided<MutPtr<f32>>,
    (k, cn): (usize, usize),
    epi: E,
    out: &O,
    opts: &GemmOptions,
) -> Result<()> {
    let (m, n) = (rows.len(), b.cols);
    if b.rows != m || cn != n || lo.checked_add(k).is_none_or(|hi| hi > s.cols) {
        return Err(shape(format!(
            "spmm_t: S_b is {m}×{}, B is {}×{}, C is {}×{} from row {lo}; need B m×n and C at most {}×n",
            s.cols,
            b.rows,
            b.cols,
            k,
            cn,
            s.cols.saturating_sub(lo)
        )));
    }
    if let Some(&r) = rows.iter().find(|&&r| r >= s.rows) {
        return Err(shape(format!("row {r} of a sparse matrix of {} rows", s.rows)));
    }
    let isa = opts.resolve_isa()?;
    if k == 0 || n == 0 {
        return Ok(());
    }
    let job = Job {
        s,
        rows: Some(rows),
        b: Strided { ptr: b.ptr(), rs: b.rs, cs: b.cs },
        n,
        j0: 0,
        c,
        alpha,
        beta: if beta == 0.0 { None } else { Some(beta) },
        epi: epi.transposed(),
        kr: (0, s.cols),
    };
    let nnz: usize = rows.iter().map(|&r| s.ptr[r + 1] - s.ptr[r]).sum();
    let flops = 2 * nnz.max(k) * n;
    let nt = opts.par.threads().min((flops / super::driver::MIN_FLOPS_PER_THREAD).max(1)).min(k).max(1);
    let np = n.min(PANEL).div_ceil(MAX_F32_LANES) * MAX_F32_LANES;
    if m <= T_BITS_MAX_ROWS && job.b.cs == 1 && alpha != 0.0 {
        // Each task's scratch: one padded row of a panel, then its rows'
        // values of S_b (m each); a bitmask per row. Allocated fallibly,
        // before any task writes C.
        let per = k.div_ceil(nt);
        let acc_len = np + MAX_F32_LANES + per * m;
        return tasks_with_scratch(nt, acc_len, per, |t, acc, bits| {
            let (r0, r1) = (k * t / nt, k * (t + 1) / nt);
            let skip = acc.as_ptr().align_offset(64).min(MAX_F32_LANES);
            let (row, xt) = acc[skip..].split_at_mut(np);
            let mut j0 = 0;
            while j0 < n {
                let panel = job.panel(j0, PANEL.min(n - j0));
                // SAFETY (of the kernel's accesses): as TRows' below; the
                // task's rows r0..r1 are at most `per`.
                isa.run(TBits { job: &panel, lo, r0, r1, row: &mut *row, xt: &mut *xt, bits: &mut *bits, out });
                j0 += PANEL;
            }
        });
    }
    // Each task's scratch: its block of C's rows (at least one padded row of
    // a panel), then a cursor per row of S_b; allocated fallibly, before any
    // task writes C.
    // (The block starts on a 64-byte line: MAX_F32_LANES floats more.)
    let acc_len = T_BLOCK_FLOATS.max(np) + MAX_F32_LANES;
    tasks_with_scratch(nt, acc_len, m, |t, acc, cur| {
        let (r0, r1) = (k * t / nt, k * (t + 1) / nt);
        // The block starts on a 64-byte line (split loads and stores of a
        // misaligned block made the trainer's epoch 40% slower).
        let skip = acc.as_ptr().align_offset(64).min(MAX_F32_LANES);
        let acc = &mut acc[skip..acc_len - MAX_F32_LANES + skip];
        let mut j0 = 0;
        while j0 < n {
            let panel = job.panel(j0, PANEL.min(n - j0));
            // SAFETY (of the kernel's accesses): the views and the rows were
            // validated above; the panel's columns are inside B and C (or
            // the sink's columns); this task writes only C's rows r0..r1
            // (hands only those to the sink); B and S are only read.
            isa.run(TRows { job: &panel, lo, r0, r1, acc: &mut *acc, cur: &mut *cur, out });
            j0 += PANEL;
        }
    })
}

/// [`TRows`]' write-out of a finished row: into C (`ToC`) or to a
/// [`RowSink`] (`ToSink`).
trait TOut: Sync {
    /// Row `i` of the job's C from its accumulators at `a`.
    ///
    /// # Safety
    /// [`write_cols`]' contract for columns `0 .. j.n` (or the sink's).
    unsafe fn row<S: Token, E: Epilogue<f32>>(&self, s: S, j: &Job<'_, E>, i: usize, a: *const f32);
}

/// Writes the rows into C.
struct ToC;

impl TOut for ToC {
    #[inline(always)]
    unsafe fn row<S: Token, E: Epilogue<f32>>(&self, s: S, j: &Job<'_, E>, i: usize, a: *const f32) {
        // SAFETY: the caller's contract is write_cols'.
        unsafe { write_cols(s, j, i, a, 0, j.n) }
    }
}

/// Hands the rows to a [`RowSink`].
struct ToSink<'k, K>(&'k K);

impl<K: RowSink> TOut for ToSink<'_, K> {
    #[inline(always)]
    unsafe fn row<S: Token, E: Epilogue<f32>>(&self, s: S, j: &Job<'_, E>, i: usize, a: *const f32) {
        // SAFETY: `a` holds the panel's j.n values padded to whole vectors;
        // row i and the panel's columns are inside the call's product, and
        // the calling task owns row i (TRows' contract).
        unsafe { self.0.take_row(s, i, j.j0, a, j.n) }
    }
}

/// Batches of at most this many rows (the bits of a `usize`) take
/// [`TBits`]: each of C's rows summed in registers from the batch rows a
/// bitmask names, instead of [`TRows`]' block of accumulators in memory.
const T_BITS_MAX_ROWS: usize = usize::BITS as usize;

/// Rows `r0..r1` of `S_bᵀ·B` for a batch of at most [`T_BITS_MAX_ROWS`]
/// rows, B with unit column stride, `alpha ≠ 0`. First the task's part of
/// `S_b`, transposed: for each of its rows (a column of S) the values of
/// the batch rows (`xt`, m per row; only those with a nonzero are written)
/// and a bitmask of which batch rows have one (`bits`). Then each row of C,
/// a strip of up to [`STRIP`] vectors at a time, as a sum in registers over
/// the set bits in increasing `t`, from zero: the operations and order of
/// [`TRows`] (whose block starts at zero and adds each batch row's terms in
/// turn), so the same bits; but each term loads only its row of B, where
/// TRows also loads and stores the block's row (this CPU's loads bound both:
/// BENCHMARKS.md).
struct TBits<'a, 'b, E, O> {
    job: &'b Job<'a, E>,
    lo: usize,
    r0: usize,
    r1: usize,
    /// One padded row of the panel, 64-byte aligned.
    row: &'b mut [f32],
    /// At least `(r1 − r0)·m` floats.
    xt: &'b mut [f32],
    /// At least `r1 − r0` words.
    bits: &'b mut [usize],
    out: &'b O,
}

impl<E: Epilogue<f32>, O: TOut> WithToken for TBits<'_, '_, E, O> {
    type Output = ();
    #[inline(always)]
    fn with_token<S: Token>(self, s: S) {
        let TBits { job: j, lo, r0, r1, row, xt, bits, out } = self;
        let l = S::F32_LANES;
        let sp = j.s;
        let (n, m, nr) = (j.n, j.rows.map_or(0, |r| r.len()), r1 - r0);
        debug_assert!(m <= T_BITS_MAX_ROWS && j.b.cs == 1 && j.alpha != 0.0);
        debug_assert!(xt.len() >= nr * m && bits.len() >= nr && row.len() >= n.div_ceil(l) * l);
        bits[..nr].fill(0);
        let (base, end) = (lo + r0, lo + r1);
        for t in 0..m {
            let r = j.row(t);
            let q = sp.ptr[r]..sp.ptr[r + 1];
            let first = q.start + sp.idx[q.clone()].partition_point(|&p| (p as usize) < base);
            for (&p, &v) in sp.idx[first..q.end].iter().zip(&sp.val[first..q.end]) {
                let p = p as usize;
                if p >= end {
                    break;
                }
                // Each column of a row of S once (strictly increasing).
                xt[(p - base) * m + t] = v;
                bits[p - base] |= 1 << t;
            }
        }
        let (nvec, tail) = (n.div_ceil(l), n % l);
        let rp = row.as_mut_ptr();
        for i in 0..nr {
            let x = &xt[i * m..(i + 1) * m];
            let mut v0 = 0;
            while v0 < nvec {
                let nv = (nvec - v0).min(STRIP);
                let part = tail != 0 && v0 + nv == nvec;
                let mt = if part { tail } else { l };
                let bp = j.b.ptr.get().wrapping_add(v0 * l);
                // SAFETY: for every set bit t (< m), vectors v0 .. v0+nv of
                // row t of B (of the last, its first `mt` columns) are inside
                // B; `row` holds nvec whole vectors.
                unsafe {
                    by_strip!(nv, part, |MV, TAIL| bits_strip::<S, MV, TAIL>(
                        s,
                        bits[i],
                        x,
                        bp,
                        j.b.rs,
                        mt,
                        rp.add(v0 * l)
                    ))
                };
                v0 += nv;
            }
            // SAFETY: `row` holds the n padded sums of row r0 + i of C,
            // which is inside C and this task's.
            unsafe { out.row(s, j, r0 + i, row.as_ptr()) };
        }
    }
}

/// `out[..MV vectors] = Σ_t x[t]·b[t·rs ..][..MV vectors]` over the set
/// bits `t` of `bits`, in increasing `t`, from zero (the last vector of
/// `b` only its first `m < lanes` columns with `TAIL`).
///
/// # Safety
/// For every set bit `t`, `x[t]` exists and `b + t·rs` holds those
/// columns; `out` holds `MV` whole vectors.
#[inline(always)]
unsafe fn bits_strip<S: Token, const MV: usize, const TAIL: bool>(
    s: S,
    mut bits: usize,
    x: &[f32],
    b: *const f32,
    rs: isize,
    m: usize,
    out: *mut f32,
) {
    let l = S::F32_LANES;
    let mut acc = [s.splat_f32s(0.0); MV];
    while bits != 0 {
        let t = bits.trailing_zeros() as usize;
        bits &= bits - 1;
        let xv = s.splat_f32s(x[t]);
        let br = b.wrapping_offset(t as isize * rs);
        for (q, a) in acc.iter_mut().enumerate() {
            // SAFETY: row t of B holds these columns (caller contract).
            let bq = unsafe {
                if TAIL && q == MV - 1 { f32::load_partial(s, br.add(q * l), m) } else { f32::load(s, br.add(q * l)) }
            };
            *a = s.mul_add_e_f32s(xv, bq, *a);
        }
    }
    for (q, a) in acc.into_iter().enumerate() {
        // SAFETY: `out` holds MV whole vectors (caller contract).
        unsafe { f32::store(s, out.add(q * l), a) };
    }
}

/// Floats of [`spmm_t_rows`]'s block of C's rows (batches of more than
/// [`T_BITS_MAX_ROWS`] rows): 64 KiB. Each visit of a
/// row of `S_b` to a block costs a cursor scan and a load of its row of B,
/// so blocks that fit L1 (16 KiB) are slower; from 48 KiB up to the whole
/// of MNIST's 784×100 gradient (313 KiB) they take the same time (measured
/// on a Zen 4: BENCHMARKS.md).
const T_BLOCK_FLOATS: usize = 16384;

struct TRows<'a, 'b, E, O> {
    job: &'b Job<'a, E>,
    /// The product's row of C's row 0 (S's column).
    lo: usize,
    r0: usize,
    r1: usize,
    /// At least `T_BLOCK_FLOATS` and one padded row.
    acc: &'b mut [f32],
    /// One per row of S_b.
    cur: &'b mut [usize],
    /// Where the finished rows go.
    out: &'b O,
}

impl<E: Epilogue<f32>, O: TOut> WithToken for TRows<'_, '_, E, O> {
    type Output = ();
    /// Rows `r0..r1` of C in blocks: see [`spmm_t_rows`].
    #[inline(always)]
    fn with_token<S: Token>(self, s: S) {
        let TRows { job: j, lo, r0, r1, acc, cur, out } = self;
        let l = S::F32_LANES;
        let sp = j.s;
        let n = j.n;
        let np = n.div_ceil(l) * l;
        let cb = (acc.len() / np).max(1);
        debug_assert!(acc.len() >= np && cur.len() >= j.rows.map_or(0, |r| r.len()));
        let m = j.rows.map_or(0, |r| r.len());
        // Each row's cursor: its first nonzero in column lo + r0 or later.
        for (t, cur) in cur.iter_mut().enumerate().take(m) {
            let r = j.row(t);
            let q = sp.ptr[r]..sp.ptr[r + 1];
            *cur = q.start + sp.idx[q].partition_point(|&p| (p as usize) < lo + r0);
        }
        let (nvec, tail) = (n.div_ceil(l), n % l);
        let mut c0 = r0;
        while c0 < r1 {
            let c1 = (c0 + cb).min(r1);
            let block = &mut acc[..(c1 - c0) * np];
            block.fill(0.0);
            // alpha = 0 never reads B (0·NaN must not reach C).
            let (base, end) = (lo + c0, lo + c1);
            for t in 0..if j.alpha == 0.0 { 0 } else { m } {
                let r = j.row(t);
                let e = sp.ptr[r + 1];
                let q0 = cur[t];
                let mut q = q0;
                while q < e && (sp.idx[q] as usize) < end {
                    q += 1;
                }
                if q == q0 {
                    continue;
                }
                cur[t] = q;
                let (ix, vs) = (&sp.idx[q0..q], &sp.val[q0..q]);
                let brow = j.b.ptr.get().wrapping_offset(t as isize * j.b.rs);
                if j.b.cs != 1 {
                    for col in 0..n {
                        // SAFETY: (t, col) is inside B.
                        let bv = unsafe { *brow.wrapping_offset(col as isize * j.b.cs) };
                        for (&p, &v) in ix.iter().zip(vs) {
                            let a = &mut block[(p as usize - base) * np + col];
                            *a = v.mul_add(bv, *a);
                        }
                    }
                    continue;
                }
                let ap = block.as_mut_ptr();
                let mut v0 = 0;
                while v0 < nvec {
                    let nv = (nvec - v0).min(STRIP);
                    let part = tail != 0 && v0 + nv == nvec;
                    let mt = if part { tail } else { l };
                    // SAFETY: vectors v0 .. v0+nv of row t of B (of the last,
                    // its first `mt` columns) are inside B; every p is in
                    // base..end, so row p − base of the block (np floats) is
                    // inside.
                    unsafe {
                        by_strip!(nv, part, |MV, TAIL| t_strip::<S, MV, TAIL>(
                            s,
                            brow.add(v0 * l),
                            mt,
                            ix,
                            vs,
                            ap.add(v0 * l),
                            np,
                            base
                        ))
                    };
                    v0 += nv;
                }
            }
            for i in c0..c1 {
                // SAFETY: the block's row i − c0 holds n padded accumulators;
                // row i of C is inside C and this task's.
                unsafe { out.row(s, j, i, block.as_ptr().add((i - c0) * np)) };
            }
            c0 = c1;
        }
    }
}

/// `a[(p − base)·np ..][..MV vectors] += v·b[..MV vectors]` over the
/// nonzeros `(p, v)`, in order, with `b` (the last vector of only `m < lanes`
/// columns with `TAIL`) held in registers.
///
/// # Safety
/// `b` holds those columns; every `p` is at least `base`, and `a` holds row
/// `p − base` of `np` floats from it, `MV` whole vectors each.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn t_strip<S: Token, const MV: usize, const TAIL: bool>(
    s: S,
    b: *const f32,
    m: usize,
    ix: &[u32],
    vs: &[f32],
    a: *mut f32,
    np: usize,
    base: usize,
) {
    let l = S::F32_LANES;
    // SAFETY: b holds MV vectors, the last partial with TAIL (caller contract).
    let bv: [S::f32s; MV] = core::array::from_fn(|q| unsafe {
        if TAIL && q == MV - 1 { f32::load_partial(s, b.add(q * l), m) } else { f32::load(s, b.add(q * l)) }
    });
    for (&p, &v) in ix.iter().zip(vs) {
        let x = s.splat_f32s(v);
        let ap = a.wrapping_add((p as usize - base) * np);
        for (q, &bq) in bv.iter().enumerate() {
            // SAFETY: row p − base of `a` holds MV whole vectors (caller contract).
            unsafe {
                let y = s.mul_add_e_f32s(x, bq, f32::load(s, ap.add(q * l)));
                f32::store(s, ap.add(q * l), y);
            }
        }
    }
}

/// Runs `task(t, acc, cur)` for each of `nt` tasks, each with its own
/// scratch of `acc_len` floats and `cur_len` cursors (the thread's reused
/// buffer, grown fallibly before any task runs: an allocation failure is
/// an error with nothing written).
fn tasks_with_scratch(
    nt: usize,
    acc_len: usize,
    cur_len: usize,
    task: impl Fn(usize, &mut [f32], &mut [usize]) + Sync,
) -> Result<()> {
    let words = task_words(acc_len, cur_len);
    scratch::with_parts(nt, words, "sparse product scratch", |parts| run_with_parts(parts, nt, acc_len, cur_len, task))
}

/// Words of one task's scratch: `acc_len` floats, then `cur_len` cursors.
fn task_words(acc_len: usize, cur_len: usize) -> usize {
    scratch::words_of::<f32>(acc_len) + scratch::words_of::<usize>(cur_len)
}

/// [`tasks_with_scratch`]'s tasks on `parts` (at least `nt` of at least
/// [`task_words`] words each): task `t` takes part `t` only.
fn run_with_parts(
    parts: scratch::Parts,
    nt: usize,
    acc_len: usize,
    cur_len: usize,
    task: impl Fn(usize, &mut [f32], &mut [usize]) + Sync,
) {
    crate::par::run_tasks(nt, |t| {
        // SAFETY: task t takes part t only.
        let part = unsafe { parts.part(t) };
        let (acc, cur) = part.split_at_mut(scratch::words_of::<f32>(acc_len));
        // SAFETY: the words are initialized and 8-byte aligned, so they
        // hold acc_len f32 and cur_len usize (any bits are valid for
        // both); the two halves are disjoint and borrowed for this task
        // only.
        let (acc, cur) = unsafe {
            (
                core::slice::from_raw_parts_mut(acc.as_mut_ptr() as *mut f32, acc_len),
                core::slice::from_raw_parts_mut(cur.as_mut_ptr() as *mut usize, cur_len),
            )
        };
        task(t, acc, cur)
    })
}

/// The widest vector of f32 lanes any ISA has (AVX-512).
const MAX_F32_LANES: usize = 16;

/// f32 elements of a task's scratch for `rb` rows of C, panels of `np`
/// columns and `k` rows of B: the accumulator block (rows padded to whole
/// vectors) or the sliced loop's copy of one slice of B, whichever is larger.
fn acc_len(rb: usize, np: usize, k: usize) -> usize {
    let block = rb * np.div_ceil(MAX_F32_LANES) * MAX_F32_LANES;
    let slice = k.saturating_mul(SLICE * MAX_F32_LANES).min(SLICE_COPY_BYTES / 4);
    block.max(slice)
}

struct Job<'a, E> {
    s: &'a SparseRows,
    rows: Option<&'a [usize]>,
    b: Strided<ConstPtr<f32>>,
    /// Columns of this panel.
    n: usize,
    /// First column of this panel in C (for the epilogue's coordinates).
    j0: usize,
    /// From C's exclusive borrow; the call's tasks write disjoint rows.
    c: Strided<MutPtr<f32>>,
    alpha: f32,
    beta: Option<f32>,
    epi: E,
    /// The columns of S (rows of B) whose terms this job sums: all of
    /// them, or one half of [`spmm_halves_epilogue`].
    kr: (usize, usize),
}

impl<'a, E: Copy> Job<'a, E> {
    /// Columns `j0 .. j0 + n` of the whole problem (pointers offset; nothing
    /// dereferenced).
    fn panel(&self, j0: usize, n: usize) -> Job<'a, E> {
        Job { b: self.b.shift(0, j0), c: self.c.shift(0, j0), n, j0, ..*self }
    }
}

impl<E> Job<'_, E> {
    /// The row of S behind row `t` of C.
    #[inline(always)]
    fn row(&self, t: usize) -> usize {
        self.rows.map_or(t, |r| r[t])
    }

    /// The nonzeros of row `r` of S in the job's columns [`Job::kr`].
    #[inline(always)]
    fn nz(&self, r: usize) -> std::ops::Range<usize> {
        let sp = self.s;
        let q = sp.ptr[r]..sp.ptr[r + 1];
        let (lo, hi) = self.kr;
        // An end at column 0 or k is the row's own (a search costs a chain
        // of dependent loads, once per row and half); all columns, the row.
        let at = |c: usize| q.start + sp.idx[q.clone()].partition_point(|&p| (p as usize) < c);
        (if lo == 0 { q.start } else { at(lo) })..(if hi >= sp.cols { q.end } else { at(hi) })
    }
}

struct Rows<'a, 'b, E> {
    job: &'b Job<'a, E>,
    r0: usize,
    r1: usize,
    /// At least [`acc_len`] elements.
    acc: &'b mut [f32],
    /// At least `ROW_BLOCK.min(r1 - r0)` elements.
    cur: &'b mut [usize],
}

impl<E: Epilogue<f32>> WithToken for Rows<'_, '_, E> {
    type Output = ();
    /// Chooses the loop for rows `r0..r1` by the size of B (its `k` rows,
    /// padded): up to half of L2 ([`direct_b_bytes`]) the direct loop, [`direct`], or
    /// past 32 KiB (beyond L1) its sliced variant, [`sliced`]; larger B the
    /// blocked loop, [`blocked`]. All sum each element's terms in the same
    /// order, so the choice never changes the bits (measurements in
    /// BENCHMARKS.md, "Design measurements").
    #[inline(always)]
    fn with_token<S: Token>(self, s: S) {
        let Rows { job: j, r0, r1, acc, cur } = self;
        let l = S::F32_LANES;
        let (k, n) = (j.s.cols, j.n);
        // Accumulator rows padded to whole vectors.
        let np = n.div_ceil(l) * l;
        debug_assert!(l <= MAX_F32_LANES && acc.len() >= ROW_BLOCK.min(r1 - r0) * np);
        let b_bytes = k.saturating_mul(np).saturating_mul(4);
        // The sliced loop also needs a whole slice of columns (narrower B
        // would multiply padding) and a slice copy of at most 64 KiB (so
        // that it stays near L1).
        let slice_bytes = k.saturating_mul(SLICE * l * 4);
        // SAFETY (of the three loops): rows r0..r1 of C are this task's;
        // S's indices are < k and B's first n columns of its k rows are
        // inside B (unit column stride where the loop needs it); `acc` and
        // `cur` are as long as `Rows` says.
        unsafe {
            if j.b.cs == 1 && b_bytes <= direct_b_bytes() {
                if b_bytes > SLICED_B_BYTES && n >= SLICE * l && slice_bytes <= SLICE_COPY_BYTES && j.alpha != 0.0 {
                    sliced(s, j, r0, r1, acc);
                } else {
                    direct(s, j, r0, r1, &mut acc[..np]);
                }
            } else {
                blocked(s, j, r0, r1, acc, cur);
            }
        }
    }
}

/// The direct loop: each row of C takes all its nonzeros at once, strip by
/// strip from zero into `a` (one padded row), with no accumulator block, no
/// k blocks and no cursor scans.
///
/// # Safety
/// Rows `r0..r1` of C are inside C and this task's; B has unit column stride
/// and its first `n` columns of its `k` rows are inside it; `a` holds `n`
/// rounded up to whole vectors.
#[inline(always)]
unsafe fn direct<S: Token, E: Epilogue<f32>>(s: S, j: &Job<'_, E>, r0: usize, r1: usize, a: &mut [f32]) {
    let sp = j.s;
    for i in r0..r1 {
        let r = j.row(i);
        // alpha = 0 never reads B (0·NaN must not reach C).
        let q = if j.alpha == 0.0 { sp.ptr[r]..sp.ptr[r] } else { j.nz(r) };
        let (ix, vs) = (&sp.idx[q.clone()], &sp.val[q]);
        // SAFETY: rows ix of B (unit column stride, p < k) and the padded
        // row `a` are inside; row i of C is inside C and this task's.
        unsafe {
            strips::<S, E, true>(s, j, ix, vs, a);
            write_row(s, j, i, a);
        }
    }
}

/// The blocked loop: C's rows in blocks of [`ROW_BLOCK`] accumulated in
/// `acc`, `k` in blocks of rows of B of 32 KiB; within a block each row of
/// C takes its nonzeros in that range of `k` (`cur`: each row's cursor).
///
/// # Safety
/// Rows `r0..r1` of C are inside C and this task's; B's first `n` columns
/// of its `k` rows are inside it; `acc` holds `ROW_BLOCK.min(r1 - r0)` rows
/// of `n` rounded up to whole vectors, `cur` that many cursors.
#[inline(always)]
unsafe fn blocked<S: Token, E: Epilogue<f32>>(
    s: S,
    j: &Job<'_, E>,
    r0: usize,
    r1: usize,
    acc: &mut [f32],
    cur: &mut [usize],
) {
    let l = S::F32_LANES;
    let sp = j.s;
    let (k, n) = (sp.cols, j.n);
    let np = n.div_ceil(l) * l;
    let rb = ROW_BLOCK.min(r1 - r0);
    debug_assert!(acc.len() >= rb * np && cur.len() >= rb);
    let cur = &mut cur[..rb];
    cur.fill(0);
    // Rows of B per k block: 32 KiB of them, at least 8 (the size measured
    // best, see BENCHMARKS.md, "Design measurements").
    let kb = (8192 / np).max(8);
    let mut i0 = r0;
    while i0 < r1 {
        let i1 = (i0 + rb).min(r1);
        let acc = &mut acc[..(i1 - i0) * np];
        acc.fill(0.0);
        for (t, c) in cur.iter_mut().enumerate().take(i1 - i0) {
            *c = j.nz(j.row(i0 + t)).start;
        }
        // alpha = 0 never reads B (0·NaN must not reach C). The k blocks
        // cover the job's columns of S (the cursors stop at their end).
        let kend = j.kr.1.min(k);
        let mut k0 = if j.alpha == 0.0 { kend } else { j.kr.0 };
        while k0 < kend {
            let k1 = (k0 + kb).min(kend);
            for t in 0..i1 - i0 {
                let e = sp.ptr[j.row(i0 + t) + 1];
                let q0 = cur[t];
                let mut q = q0;
                while q < e && (sp.idx[q] as usize) < k1 {
                    q += 1;
                }
                if q == q0 {
                    continue;
                }
                cur[t] = q;
                let (ix, vs) = (&sp.idx[q0..q], &sp.val[q0..q]);
                let a = &mut acc[t * np..(t + 1) * np];
                if j.b.cs != 1 {
                    for (col, a) in a[..n].iter_mut().enumerate() {
                        for (&p, &v) in ix.iter().zip(vs) {
                            // SAFETY: (p, col) is inside B (p < k by construction).
                            let bv = unsafe { *j.b.at(p as usize, col).get() };
                            *a = v.mul_add(bv, *a);
                        }
                    }
                    continue;
                }
                // SAFETY: rows ix of B (unit column stride, p < k) and the
                // padded accumulator row are inside.
                unsafe { strips::<S, E, false>(s, j, ix, vs, a) };
            }
            k0 = k1;
        }
        for i in i0..i1 {
            let a = &acc[(i - i0) * np..(i - i0 + 1) * np];
            // SAFETY: row i of C is inside C and belongs to this task.
            unsafe { write_row(s, j, i, a) };
        }
        i0 = i1;
    }
}

/// `a[..n] (+)= Σ v·B[p, ..n]` over the nonzeros `(p, v)` (`FROM_ZERO`:
/// overwrite, never reading `a`), in strips of up to 8 vectors held in
/// registers.
///
/// # Safety
/// B has unit column stride and its first `n` columns of rows `ix` are
/// inside it; `a` holds `n` rounded up to whole vectors.
#[inline(always)]
unsafe fn strips<S: Token, E, const FROM_ZERO: bool>(s: S, j: &Job<'_, E>, ix: &[u32], vs: &[f32], a: &mut [f32]) {
    let l = S::F32_LANES;
    let n = j.n;
    // Vectors of columns, the last one partial when `n` is not a multiple of
    // the lanes: it joins the last strip (one pass over the nonzeros less).
    let (nvec, tail) = (n.div_ceil(l), n % l);
    let mut v0 = 0;
    while v0 < nvec {
        let nv = (nvec - v0).min(STRIP);
        let part = tail != 0 && v0 + nv == nvec;
        let m = if part { tail } else { l };
        // SAFETY: vectors v0 .. v0+nv of rows ix of B (of the last, its
        // first `m` columns) and of the padded `a` are inside.
        unsafe { by_strip!(nv, part, |MV, TAIL| strip::<S, E, MV, TAIL, FROM_ZERO>(s, j, v0 * l, m, ix, vs, a)) };
        v0 += nv;
    }
}

/// `a[c0 ..] (+)= Σ v·B[p, c0 ..]` over the nonzeros `(p, v)`: `MV`
/// vectors, the last of them of only `m < lanes` columns with `TAIL`, the
/// strip held in registers.
///
/// # Safety
/// B has unit column stride and those columns of rows `ix` are inside it;
/// `a` holds `c0 + MV·lanes` elements.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn strip<S: Token, E, const MV: usize, const TAIL: bool, const FROM_ZERO: bool>(
    s: S,
    j: &Job<'_, E>,
    c0: usize,
    m: usize,
    ix: &[u32],
    vs: &[f32],
    a: &mut [f32],
) {
    let l = S::F32_LANES;
    let ap = a.as_mut_ptr().wrapping_add(c0);
    let mut acc: [S::f32s; MV] = core::array::from_fn(|q| {
        if FROM_ZERO {
            s.splat_f32s(0.0)
        } else {
            // SAFETY: `a` holds the strip (caller contract).
            unsafe { f32::load(s, ap.add(q * l)) }
        }
    });
    let b = j.b.ptr.get().wrapping_add(c0);
    for (&p, &v) in ix.iter().zip(vs) {
        let bp = b.wrapping_offset(p as isize * j.b.rs);
        let x = s.splat_f32s(v);
        for (q, a) in acc.iter_mut().enumerate() {
            // SAFETY: the strip's columns of row p of B (c0 .. c0 +
            // (MV − 1)·lanes + m with TAIL) are inside B.
            let bv = unsafe {
                if TAIL && q == MV - 1 { f32::load_partial(s, bp.add(q * l), m) } else { f32::load(s, bp.add(q * l)) }
            };
            *a = s.mul_add_e_f32s(x, bv, *a);
        }
    }
    for (q, &v) in acc.iter().enumerate() {
        // SAFETY: as above.
        unsafe { f32::store(s, ap.add(q * l), v) };
    }
}

/// The direct loop for B beyond L1 (MNIST's `dW = Xᵀ·dZ` at batch 256: dZ
/// takes 128 KiB): B's columns go in slices of `SLICE` vectors, each copied
/// (zero-padded) into `pk` (`k` rows of 4 vectors: 32 KiB for a 256-row B
/// with AVX2, 64 KiB with AVX-512; at most `SLICE_COPY_BYTES`, checked by
/// the caller); every row of C takes its nonzeros against the
/// slice from L1, two rows at a time in step (eight independent FMA chains),
/// then writes those columns. Each element of C still sums its terms from
/// zero in increasing `k`: the bits of the direct loop. Faster than the
/// direct loop once B leaves L1 (see BENCHMARKS.md, "Design measurements").
///
/// # Safety
/// Rows `r0..r1` of C are inside C and this task's; B has unit column stride
/// and its first `n` columns of its `k` rows are inside it; `alpha != 0`.
#[inline(always)]
unsafe fn sliced<S: Token, E: Epilogue<f32>>(s: S, j: &Job<'_, E>, r0: usize, r1: usize, pk: &mut [f32]) {
    let l = S::F32_LANES;
    let sp = j.s;
    let (k, n) = (sp.cols, j.n);
    let w = SLICE * l;
    let pk = &mut pk[..k * w];
    let row = |i: usize| {
        let q = j.nz(j.row(i));
        (&sp.idx[q.clone()], &sp.val[q])
    };
    let mut c0 = 0;
    while c0 < n {
        let m = w.min(n - c0);
        for (p, dst) in pk.chunks_exact_mut(w).take(k).enumerate() {
            let src = j.b.ptr.get().wrapping_offset(p as isize * j.b.rs).wrapping_add(c0);
            // SAFETY: columns c0 .. c0+m of row p < k of B are inside B
            // (unit column stride); dst holds w ≥ m elements.
            unsafe { core::ptr::copy_nonoverlapping(src, dst.as_mut_ptr(), m) };
            dst[m..].fill(0.0);
        }
        let pb = pk.as_ptr();
        let mut i = r0;
        while i < r1 {
            let (ix0, vs0) = row(i);
            let mut a0 = [s.splat_f32s(0.0); SLICE];
            if i + 1 < r1 {
                let (ix1, vs1) = row(i + 1);
                let mut a1 = [s.splat_f32s(0.0); SLICE];
                let both = ix0.len().min(ix1.len());
                for ((&p0, &x0), (&p1, &x1)) in ix0.iter().zip(vs0).zip(ix1.iter().zip(vs1)) {
                    // SAFETY: p0, p1 < k (indices of S), and pk holds k rows of w.
                    unsafe {
                        slice_fma(s, &mut a0, pb.add(p0 as usize * w), x0);
                        slice_fma(s, &mut a1, pb.add(p1 as usize * w), x1);
                    }
                }
                // SAFETY (of these three): the indices are < k, and pk holds
                // k rows of w; a1 holds SLICE whole vectors ≥ m columns and
                // row i+1 is this task's.
                unsafe {
                    slice_row(s, &mut a1, pb, w, &ix1[both..], &vs1[both..]);
                    slice_row(s, &mut a0, pb, w, &ix0[both..], &vs0[both..]);
                    write_cols(s, j, i + 1, a1.as_ptr() as *const f32, c0, c0 + m);
                }
            } else {
                // SAFETY: as above.
                unsafe { slice_row(s, &mut a0, pb, w, ix0, vs0) };
            }
            // SAFETY: a0 holds SLICE whole vectors ≥ m columns; row i is this task's.
            unsafe { write_cols(s, j, i, a0.as_ptr() as *const f32, c0, c0 + m) };
            i += 2;
        }
        c0 += w;
    }
}

/// `a += Σ v·pk[p·w ..][..SLICE vectors]` over the nonzeros `(p, v)`, in order.
///
/// # Safety
/// Every `p` is below the number of rows of `w` floats that `pk` holds.
#[inline(always)]
unsafe fn slice_row<S: Token>(s: S, a: &mut [S::f32s; SLICE], pk: *const f32, w: usize, ix: &[u32], vs: &[f32]) {
    for (&p, &x) in ix.iter().zip(vs) {
        // SAFETY: row p of pk is inside (caller contract).
        unsafe { slice_fma(s, a, pk.add(p as usize * w), x) };
    }
}

/// `a += x·b[..SLICE vectors]`.
///
/// # Safety
/// `b` holds `SLICE` whole vectors.
#[inline(always)]
unsafe fn slice_fma<S: Token>(s: S, a: &mut [S::f32s; SLICE], b: *const f32, x: f32) {
    let l = S::F32_LANES;
    let x = s.splat_f32s(x);
    for (q, a) in a.iter_mut().enumerate() {
        // SAFETY: vector q < SLICE of b is inside (caller contract).
        *a = s.mul_add_e_f32s(x, unsafe { f32::load(s, b.add(q * l)) }, *a);
    }
}

/// Row `i` of C from its accumulators `a` (padded to whole vectors): alpha,
/// beta·C, the epilogue and the store, a strip of up to 8 vectors at a time
/// (one epilogue call per strip).
///
/// # Safety
/// Row `i` of C is inside C and written by this task only.
#[inline(always)]
unsafe fn write_row<S: Token, E: Epilogue<f32>>(s: S, j: &Job<'_, E>, i: usize, a: &[f32]) {
    debug_assert!(a.len() >= j.n);
    // SAFETY: `a` holds the row's n columns, padded (caller contract).
    unsafe { write_cols(s, j, i, a.as_ptr(), 0, j.n) }
}

/// Columns `lo .. hi` of row `i` of C from their accumulators at `a`
/// (`a[q]` is column `lo + q`, padded to whole vectors), as [`write_row`].
///
/// # Safety
/// Row `i` of C is inside C and written by this task only; `lo ≤ hi ≤ n`;
/// `a` holds `hi − lo` rounded up to whole vectors.
#[inline(always)]
unsafe fn write_cols<S: Token, E: Epilogue<f32>>(s: S, j: &Job<'_, E>, i: usize, a: *const f32, lo: usize, hi: usize) {
    let l = S::F32_LANES;
    let cp = j.c.ptr.get().wrapping_offset(i as isize * j.c.rs);
    if j.c.cs != 1 {
        for col in lo..hi {
            // SAFETY: a holds hi − lo accumulators.
            let x = unsafe { *a.add(col - lo) };
            let p = cp.wrapping_offset(col as isize * j.c.cs);
            let mut x = x * j.alpha;
            if let Some(beta) = j.beta {
                // SAFETY: (i, col) is inside C.
                x = beta.mul_add(unsafe { *p }, x);
            }
            if !E::IS_NONE {
                // SAFETY: (col, i) of the transposed problem is (i, col) of C.
                x = unsafe { j.epi.apply_scalar(x, j.j0 + col, i) };
            }
            // SAFETY: (i, col) is inside C and belongs to this task.
            unsafe { *p = x };
        }
        return;
    }
    let mut c0 = lo;
    while c0 < hi {
        let nv = ((hi - c0) / l).min(STRIP);
        let ap = a.wrapping_add(c0 - lo);
        // SAFETY: columns c0 .. c0+width of row i are inside C; `a` is padded.
        unsafe {
            match nv {
                0 => write_strip::<S, E, 1>(s, j, i, cp, ap, c0, hi - c0),
                8 => write_strip::<S, E, 8>(s, j, i, cp, ap, c0, 8 * l),
                7 => write_strip::<S, E, 7>(s, j, i, cp, ap, c0, 7 * l),
                6 => write_strip::<S, E, 6>(s, j, i, cp, ap, c0, 6 * l),
                5 => write_strip::<S, E, 5>(s, j, i, cp, ap, c0, 5 * l),
                4 => write_strip::<S, E, 4>(s, j, i, cp, ap, c0, 4 * l),
                3 => write_strip::<S, E, 3>(s, j, i, cp, ap, c0, 3 * l),
                2 => write_strip::<S, E, 2>(s, j, i, cp, ap, c0, 2 * l),
                _ => write_strip::<S, E, 1>(s, j, i, cp, ap, c0, l),
            }
        }
        c0 += if nv == 0 { hi - c0 } else { nv * l };
    }
}

/// Columns `c0 .. c0+m` of row `i` (`MV` vectors; only a strip of one vector
/// may be partial, `m < lanes`) from their accumulators at `a`.
///
/// # Safety
/// Those columns of row `i` of C (at `cp`, unit column stride) are inside C;
/// `a` holds `MV` whole vectors.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn write_strip<S: Token, E: Epilogue<f32>, const MV: usize>(
    s: S,
    j: &Job<'_, E>,
    i: usize,
    cp: *mut f32,
    a: *const f32,
    c0: usize,
    m: usize,
) {
    let l = S::F32_LANES;
    let full = m >= MV * l;
    // SAFETY: `a` holds MV whole vectors.
    let mut acc = [core::array::from_fn::<_, MV, _>(|q| unsafe { f32::load(s, a.add(q * l)) }); 1];
    if j.alpha != 1.0 {
        let al = s.splat_f32s(j.alpha);
        for v in acc[0].iter_mut() {
            *v = s.mul_f32s(*v, al);
        }
    }
    if let Some(beta) = j.beta {
        let be = s.splat_f32s(beta);
        for (q, v) in acc[0].iter_mut().enumerate() {
            // SAFETY: columns c0 .. c0+m of row i are inside C.
            let cv = unsafe { if full { f32::load(s, cp.add(c0 + q * l)) } else { f32::load_upto(s, cp.add(c0), m) } };
            *v = s.mul_add_e_f32s(be, cv, *v);
        }
    }
    if !E::IS_NONE {
        // SAFETY: kernel rows c0 .. c0+m and kernel column i are inside C.
        unsafe { j.epi.apply_tile(s, &mut acc, j.j0 + c0, i, m) };
    }
    for (q, &v) in acc[0].iter().enumerate() {
        // SAFETY: columns c0 .. c0+m of row i are inside C.
        unsafe { if full { f32::store(s, cp.add(c0 + q * l), v) } else { f32::store_upto(s, cp.add(c0), m, v) } }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every ISA's row scan finds the nonzeros of the portable one: lengths
    /// across the vector groups and their tails, NaN and ±∞ kept, ±0
    /// dropped, rows all zero and all nonzero.
    #[test]
    fn row_scan_is_the_same_on_every_isa() {
        let mut rnd = crate::simd::xorshift(0x2545_f491_4f6c_dd1du64);
        let specials = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -0.0, 0.0, f32::from_bits(1), -1.5];
        for len in (0..70).chain([100, 784]) {
            for density in [0.0, 0.1, 0.5, 1.0] {
                let row: Vec<f32> = (0..len)
                    .map(|_| {
                        let r = rnd();
                        if (r % 1000) as f64 >= density * 1000.0 {
                            0.0
                        } else if r % 13 == 0 {
                            specials[(r >> 20) as usize % specials.len()]
                        } else {
                            (r >> 40) as f32 / (1u64 << 24) as f32 + 0.25
                        }
                    })
                    .collect();
                let (mut ix0, mut v0) = (vec![0u32; len], vec![0f32; len]);
                let n0 = scan_row_scalar(&row, &mut ix0, &mut v0, 0, 0);
                let want: Vec<(u32, u32)> = row
                    .iter()
                    .enumerate()
                    .filter(|(_, v)| v.to_bits() << 1 != 0)
                    .map(|(c, v)| (c as u32, v.to_bits()))
                    .collect();
                assert_eq!(n0, want.len());
                for &isa in Isa::all().iter().filter(|i| i.is_available()) {
                    let (mut ix, mut v) = (vec![u32::MAX; len], vec![f32::NAN; len]);
                    let n = scan_row_on(isa, &row, &mut ix, &mut v);
                    let got: Vec<(u32, u32)> = ix[..n].iter().zip(&v[..n]).map(|(&c, v)| (c, v.to_bits())).collect();
                    assert_eq!(got, want, "{} len {len} density {density}", isa.name());
                }
            }
        }
    }

    /// The split prefetch reads only inside the matrix on any thread count:
    /// rows out of range skipped, empty rows, rows with nonzeros on one side
    /// of `cols/2` only, or across it.
    #[test]
    fn prefetch_in_halves_stays_inside_the_rows() {
        let x = [0.0, 1.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 3.0, 0.0, 0.0, 0.0, 4.0, 5.0, 6.0, 7.0];
        let s = SparseRows::from_dense(&x, 4, 4).unwrap();
        for t in [1, 2, 3] {
            s.prefetch_rows_halves(&[0, 1, 2, 3, 4, usize::MAX, 3, 0], crate::par::Par::Threads(t));
        }
        assert_eq!(s.to_dense(), x);
    }

    #[test]
    fn prefetch_pays_only_beyond_half_of_l3() {
        let s = SparseRows::from_dense(&[0.0, 1.0, 2.0, 0.0], 2, 2).unwrap();
        // A few bytes sit in any L3; an unknown L3 counts as too small.
        assert_eq!(s.beyond_l3(), crate::sys::l3_cache_bytes().is_none());
    }

    #[test]
    fn direct_loop_bound_is_half_of_l2_within_its_limits() {
        assert_eq!(direct_b_bytes_for(512 << 10), 256 << 10); // Zen 3
        assert_eq!(direct_b_bytes_for(1 << 20), 512 << 10); // Zen 4, Skylake-SP
        assert_eq!(direct_b_bytes_for(2 << 20), 512 << 10); // Sapphire Rapids: the cap
        assert_eq!(direct_b_bytes_for(64 << 10), MIN_DIRECT_B_BYTES);
        assert_eq!(direct_b_bytes_for(32 << 20), MAX_DIRECT_B_BYTES);
        assert!((MIN_DIRECT_B_BYTES..=MAX_DIRECT_B_BYTES).contains(&direct_b_bytes()));
    }
}
