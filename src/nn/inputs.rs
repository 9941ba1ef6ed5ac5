//! What a fit trains on: dense rows, or the rows of a sparse matrix
//! ([`SparseRows`], e.g. from scipy's CSR through
//! [`SparseRows::from_csr`]). A sparse input is never made dense as a
//! whole: the sparse first-layer path reads its nonzeros, and the dense path
//! scatters one mini-batch at a time.

use super::Mlp;
use crate::error::{Result, shape};
use crate::gemm::SparseRows;

/// A fit's inputs, `n_samples × n_inputs`.
#[derive(Debug, Clone, Copy)]
pub enum Inputs<'a> {
    /// Row-major dense values.
    Dense {
        /// The values, `n_samples × n_inputs`.
        x: &'a [f32],
        /// Rows.
        n_samples: usize,
    },
    /// The nonzeros of each row.
    Sparse(&'a SparseRows),
}

impl<'a> Inputs<'a> {
    /// Rows.
    pub fn n_samples(&self) -> usize {
        match self {
            Inputs::Dense { n_samples, .. } => *n_samples,
            Inputs::Sparse(s) => s.rows(),
        }
    }

    /// Checks the shape against `m` (no pass over the values).
    pub(crate) fn check_shape(&self, m: &Mlp) -> Result<()> {
        match self {
            Inputs::Dense { x, n_samples } => m.check_input_shape(x, *n_samples),
            Inputs::Sparse(s) if s.cols() != m.n_inputs() => {
                Err(shape(format!("the sparse input has {} columns, the model takes {}", s.cols(), m.n_inputs())))
            }
            Inputs::Sparse(_) => Ok(()),
        }
    }

    /// Checks that every value is finite (rows of `n_inputs` values).
    pub(crate) fn check_finite(&self, n_inputs: usize) -> Result<()> {
        match self {
            Inputs::Dense { x, .. } => super::model::check_finite_rows(x, n_inputs),
            Inputs::Sparse(s) => check_sparse_finite(s),
        }
    }

    /// Fraction of nonzero values in up to 4 096 evenly spaced rows among
    /// `rows`.
    pub(crate) fn density(&self, rows: &[usize], n_inputs: usize) -> f64 {
        let take = rows.len().min(4096);
        if take == 0 || n_inputs == 0 {
            return 0.0;
        }
        let mut nz = 0usize;
        for t in 0..take {
            let r = rows[t * rows.len() / take];
            nz += match self {
                Inputs::Dense { x, .. } => {
                    x[r * n_inputs..(r + 1) * n_inputs].iter().filter(|v| v.to_bits() << 1 != 0).count()
                }
                Inputs::Sparse(s) => s.row(r).0.len(),
            };
        }
        nz as f64 / (take * n_inputs) as f64
    }

    /// The nonzeros of every row (a copy: the trainer's own), checked to be
    /// finite: dense inputs on the sparse path are checked here, on their
    /// nonzeros only (zeros are finite; on MNIST a fifth of the values),
    /// instead of by [`Inputs::check_finite`] over every value.
    pub(crate) fn to_sparse(self, n_inputs: usize) -> Result<SparseRows> {
        let s = match self {
            Inputs::Dense { x, n_samples } => SparseRows::from_dense(x, n_samples, n_inputs)?,
            Inputs::Sparse(s) => s.try_clone()?,
        };
        check_sparse_finite(&s)?;
        Ok(s)
    }

    /// Whether the inputs take more than half of the last-level cache (or
    /// its size is unknown): then rows picked at random come from memory and
    /// are worth asking for ahead ([`Inputs::prefetch_rows`]). From a large
    /// L3 they come fast enough that the prefetch loop, stalled on its
    /// outstanding misses, costs more than it saves: MNIST's 188 MB of dense
    /// rows on a Xeon with 480 MiB of L3, 8% of a batch-256 epoch
    /// (BENCHMARKS.md, twenty-ninth session); the sparse path's rule
    /// ([`SparseRows::beyond_l3`]).
    pub(crate) fn beyond_l3(&self) -> bool {
        match self {
            Inputs::Dense { x, .. } => crate::sys::l3_cache_bytes().is_none_or(|l3| std::mem::size_of_val(*x) > l3 / 2),
            Inputs::Sparse(s) => s.beyond_l3(),
        }
    }

    /// Starts fetching the inputs of `rows` into the caches (rows of
    /// `n_inputs` values; rows beyond the data are skipped): the trainer
    /// calls it for the next batch while a step's optimizer pass leaves the
    /// memory system idle, so the next gather reads from cache, not DRAM.
    pub(crate) fn prefetch_rows(&self, rows: &[usize], n_inputs: usize) {
        match self {
            Inputs::Dense { x, n_samples } => {
                for &r in rows.iter().filter(|&&r| r < *n_samples) {
                    let row = &x[r * n_inputs..(r + 1) * n_inputs];
                    // Every 64-byte line the row touches (16 values apart,
                    // and its last value's line).
                    for v in row.iter().step_by(16).chain(row.last()) {
                        crate::simd::prefetch_l2(v as *const f32);
                    }
                }
            }
            Inputs::Sparse(s) => s.prefetch_rows(rows),
        }
    }

    /// Row `r` written densely into `out` (`n_inputs` values).
    pub(crate) fn row_into(&self, r: usize, out: &mut [f32]) {
        let ni = out.len();
        match self {
            Inputs::Dense { x, .. } => out.copy_from_slice(&x[r * ni..(r + 1) * ni]),
            Inputs::Sparse(s) => {
                out.fill(0.0);
                let (ix, v) = s.row(r);
                for (&c, &v) in ix.iter().zip(v) {
                    out[c as usize] = v;
                }
            }
        }
    }
}

/// Errors on the first non-finite nonzero of `s`, in row-major order (the
/// message of the dense check: `x[row][column] = value is not finite`).
fn check_sparse_finite(s: &SparseRows) -> Result<()> {
    for r in 0..s.rows() {
        let (ix, v) = s.row(r);
        if let Some(j) = crate::simd::reduce::first_non_finite(v) {
            return Err(super::model::non_finite_input(r, ix[j] as usize, v[j]));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Dense and sparse inputs follow one rule: a few bytes sit in any L3,
    /// and an unknown L3 counts as too small (so the trainer prefetches).
    #[test]
    fn prefetch_pays_only_beyond_half_of_l3() {
        let x = [0.0, 1.0, 2.0, 0.0];
        let s = SparseRows::from_dense(&x, 2, 2).unwrap();
        let unknown = crate::sys::l3_cache_bytes().is_none();
        assert_eq!(Inputs::Dense { x: &x, n_samples: 2 }.beyond_l3(), unknown);
        assert_eq!(Inputs::Sparse(&s).beyond_l3(), unknown);
        // The dense prefetch skips rows beyond the data and reads nothing.
        Inputs::Dense { x: &x, n_samples: 2 }.prefetch_rows(&[1, 2, usize::MAX, 0], 2);
        Inputs::Sparse(&s).prefetch_rows(&[1, 2, usize::MAX, 0], 2);
    }
}
