//! Input validation specific to this crate (probability rows, logits); the generic checks
//! come from tessera-core.

use ndarray::{ArrayBase, ArrayView2, Data, Dimension};
use tessera_core::RejectInput;

pub(crate) use tessera_core::check::{
    finite, non_negative, positive, probability as unit_interval,
};

use crate::{Error, Float, Result};

/// A batch-first `(batch, classes)` array with at least one row and one column, all finite.
/// Returns `(batch, classes)`.
pub(crate) fn matrix<F: Float>(
    name: &'static str,
    array: &ArrayView2<F>,
) -> Result<(usize, usize)> {
    let (batch, classes) = array.dim();
    if batch == 0 || classes == 0 {
        return Err(Error::shape(
            name,
            "(batch, classes) with batch >= 1 and classes >= 1",
            array.shape(),
        ));
    }
    finite(name, array)?;
    Ok((batch, classes))
}

/// Logits: a non-empty finite `(batch, classes)` array.
pub(crate) fn logits<F: Float>(
    name: &'static str,
    array: &ArrayView2<F>,
) -> Result<(usize, usize)> {
    matrix(name, array)
}

/// How far from 1 a row sum may be before the row is rejected as a distribution: loose
/// enough for rows computed in `f32` by another library, tight enough to catch logits or
/// unnormalised scores passed by mistake.
pub(crate) fn probability_tolerance<F: Float>(classes: usize) -> F {
    let rounding = F::epsilon() * F::from_f64_rounded(16.0 * classes.max(1) as f64);
    rounding.max(F::from_f64_rounded(1e-6))
}

/// Rows that are probability distributions: finite, non-negative, summing to 1.
pub(crate) fn probability_rows<F: Float>(
    name: &'static str,
    array: &ArrayView2<F>,
) -> Result<(usize, usize)> {
    let (batch, classes) = matrix(name, array)?;
    let tolerance = probability_tolerance::<F>(classes);
    for (row, values) in array.rows().into_iter().enumerate() {
        if let Some(negative) = values.iter().find(|v| **v < F::zero()) {
            return Err(Error::NotProbability {
                name,
                row,
                reason: format!("negative entry {negative}"),
            });
        }
        let sum: F = values.iter().copied().sum();
        if (sum - F::one()).abs() > tolerance {
            return Err(Error::NotProbability {
                name,
                row,
                reason: format!("entries sum to {sum}, not 1 (tolerance {tolerance})"),
            });
        }
    }
    Ok((batch, classes))
}

/// `array` must have exactly the shape `expected`.
pub(crate) fn same_shape<F, S: Data<Elem = F>, D: Dimension>(
    name: &'static str,
    array: &ArrayBase<S, D>,
    expected: &[usize],
    what: &str,
) -> Result<()> {
    if array.shape() == expected {
        Ok(())
    } else {
        Err(Error::shape(
            name,
            format!("{expected:?} ({what})"),
            array.shape(),
        ))
    }
}
