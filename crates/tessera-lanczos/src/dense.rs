//! Dense reference spectra through LAPACK (`ndarray-linalg`, feature `lapack`).

use ndarray::Array2;
use ndarray_linalg::{EigValsh, Lapack, Scalar, UPLO};
use tessera_core::RejectInput;

use crate::error::{Error, Result};
use crate::operator::LinearOperator;
use crate::util::{apply_batch_checked, check_operator};
use crate::Float;

/// Largest dimension [`dense_spectrum`] materialises (`n²` entries).
pub const DENSE_SPECTRUM_MAX_DIM: usize = 8192;

/// All eigenvalues (ascending) of a small symmetric operator: materialises `A` with `n`
/// operator applications (one blocked product), checks symmetry to `1e3·ε·max|a_ij|·√n`,
/// and calls LAPACK `syevd` on the symmetric part.
pub fn dense_spectrum<F, O>(op: &O) -> Result<ndarray::Array1<F>>
where
    F: Float + Lapack + Scalar<Real = F>,
    O: LinearOperator<F> + ?Sized,
{
    let n = check_operator(op)?;
    if n > DENSE_SPECTRUM_MAX_DIM {
        return Err(Error::invalid(
            "op.dim()",
            n,
            format!("dense_spectrum materialises n² entries; use at most {DENSE_SPECTRUM_MAX_DIM}"),
        ));
    }
    let eye = Array2::<F>::eye(n);
    let mut a = Array2::zeros((n, n));
    apply_batch_checked(op, eye.view(), &mut a, 1)?;
    let scale = a.iter().fold(<F as Float>::from_f64_rounded(0.0), |m, v| {
        m.max(num_traits::Float::abs(*v))
    });
    let asym = a
        .indexed_iter()
        .fold(<F as Float>::from_f64_rounded(0.0), |m, ((i, j), &v)| {
            m.max(num_traits::Float::abs(v - a[[j, i]]))
        });
    let allowed = <F as Float>::from_f64_rounded(1e3)
        * F::epsilon()
        * scale
        * num_traits::Float::sqrt(F::from_count(n));
    if asym > allowed {
        return Err(Error::invalid(
            "op",
            format!("max |a_ij − a_ji| = {asym}"),
            "the operator must be symmetric",
        ));
    }
    let sym = (&a + &a.t()) * <F as Float>::from_f64_rounded(0.5);
    sym.eigvalsh(UPLO::Lower)
        .map_err(|e| Error::invalid("op", "LAPACK eigvalsh", e.to_string()))
}
