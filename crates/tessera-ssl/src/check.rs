//! Input validation shared by every routine of this crate.

use ndarray::{ArrayBase, ArrayView2, Data, Dimension};

use crate::{Error, Float, Result};

/// Errors on the first NaN or infinity of `array`, naming the parameter.
pub(crate) fn finite<F: Float, S: Data<Elem = F>, D: Dimension>(
    name: &'static str,
    array: &ArrayBase<S, D>,
) -> Result<()> {
    match array.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        None => Ok(()),
        Some((index, value)) => Err(Error::NonFinite {
            name,
            value: value.to_string(),
            index,
        }),
    }
}

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
    let rounding = F::epsilon() * F::of(16.0 * classes.max(1) as f64);
    rounding.max(F::of(1e-6))
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

/// A finite scalar `> 0`.
pub(crate) fn positive(name: &'static str, value: f64) -> Result<()> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(Error::invalid(name, value, "must be finite and > 0"))
    }
}

/// A finite scalar `>= 0`.
pub(crate) fn non_negative(name: &'static str, value: f64) -> Result<()> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(Error::invalid(name, value, "must be finite and >= 0"))
    }
}

/// A probability in `[0, 1]`.
pub(crate) fn unit_interval(name: &'static str, value: f64) -> Result<()> {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(Error::invalid(name, value, "must lie in [0, 1]"))
    }
}
