//! What a fit trains on: dense rows, or the rows of a sparse matrix
//! ([`SparseRows`], e.g. from scipy's CSR through
//! [`SparseRows::from_csr`]). A sparse input is never made dense as a
//! whole: the sparse first-layer path reads its nonzeros, and the dense path
//! scatters one mini-batch at a time.

use super::Mlp;
use crate::error::{Error, Result, shape};
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

    /// Checks the shape against `m` and that every value is finite.
    pub(crate) fn check(&self, m: &Mlp) -> Result<()> {
        match self {
            Inputs::Dense { x, n_samples } => m.check_input(x, *n_samples),
            Inputs::Sparse(s) => {
                if s.cols() != m.n_inputs() {
                    return Err(shape(format!(
                        "the sparse input has {} columns, the model takes {}",
                        s.cols(),
                        m.n_inputs()
                    )));
                }
                for r in 0..s.rows() {
                    let (ix, v) = s.row(r);
                    if let Some(j) = v.iter().position(|v| !v.is_finite()) {
                        return Err(Error::NonFinite(format!("x[{r}][{}] = {} is not finite", ix[j], v[j])));
                    }
                }
                Ok(())
            }
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

    /// The nonzeros of every row (a copy: the trainer's own).
    pub(crate) fn to_sparse(self, n_inputs: usize) -> Result<SparseRows> {
        match self {
            Inputs::Dense { x, n_samples } => SparseRows::from_dense(x, n_samples, n_inputs),
            Inputs::Sparse(s) => s.try_clone(),
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
