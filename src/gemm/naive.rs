//! Reference GEMMs: the benchmark baseline and the test oracle.

use super::view::{MatMut, MatRef};
use crate::simd::Real;

/// Naive `C = alpha·A·B + beta·C` as an i-k-j triple loop accumulating in `T`
/// (the "naive loop" of the benchmarks). `beta == 0` does not read C.
/// Shapes must agree (panics otherwise).
pub fn gemm_naive<T: Real>(alpha: T, a: MatRef<'_, T>, b: MatRef<'_, T>, beta: T, mut c: MatMut<'_, T>) {
    let (m, n, k) = (c.rows, c.cols, a.cols);
    assert!(a.rows == m && b.rows == k && b.cols == n, "gemm_naive: shape mismatch");
    let at = |i: usize, j: usize, rs: isize, cs: isize| i as isize * rs + j as isize * cs;
    let (co, crs, ccs) = (c.offset as isize, c.rs, c.cs);
    for i in 0..m {
        for j in 0..n {
            let idx = (co + at(i, j, crs, ccs)) as usize;
            c.data[idx] = if beta == T::ZERO { T::ZERO } else { beta * c.data[idx] };
        }
        for p in 0..k {
            let aip = alpha * *a.get(i, p);
            for j in 0..n {
                let idx = (co + at(i, j, crs, ccs)) as usize;
                c.data[idx] = c.data[idx] + aip * *b.get(p, j);
            }
        }
    }
    let _ = c.rb_mut();
}

/// The test oracle: `alpha·A·B + beta·C` computed in f64 for every element, and
/// for each element the bound scale `|alpha|·Σ_p |A(i,p)|·|B(p,j)| + |beta·C(i,j)|`.
///
/// Returns `(values, scales)` row-major `m × n`. With `beta == 0`, C is not read.
/// A correctly rounded `T` GEMM of any summation order satisfies
/// `|result − value| ≤ (k + 2)·ε_T·scale` (Higham, Accuracy and Stability, §3.1).
pub fn gemm_reference<T: Real>(
    alpha: T,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    beta: T,
    c: &MatRef<'_, T>,
) -> (Vec<f64>, Vec<f64>) {
    let (m, n, k) = (c.rows, c.cols, a.cols);
    assert!(a.rows == m && b.rows == k && b.cols == n, "gemm_reference: shape mismatch");
    let mut val = vec![0.0; m * n];
    let mut scale = vec![0.0; m * n];
    let (al, be) = (alpha.to_f64(), beta.to_f64());
    for i in 0..m {
        for j in 0..n {
            let (mut s, mut sa) = (0.0f64, 0.0f64);
            if al != 0.0 {
                for p in 0..k {
                    let x = a.get(i, p).to_f64() * b.get(p, j).to_f64();
                    s += x;
                    sa += x.abs();
                }
            }
            let cterm = if be == 0.0 { 0.0 } else { be * c.get(i, j).to_f64() };
            val[i * n + j] = al * s + cterm;
            scale[i * n + j] = al.abs() * sa + cterm.abs();
        }
    }
    (val, scale)
}
