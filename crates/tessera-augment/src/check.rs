//! Input validation shared by every transform.

use ndarray::{ArrayBase, ArrayView, ArrayView2, Data, Dimension};

use crate::{Error, Float, Result};

/// Errors on the first NaN or infinity of `array`, naming the parameter.
pub(crate) fn finite<F: Float, S: Data<Elem = F>, D: Dimension>(
    name: &'static str,
    array: &ArrayBase<S, D>,
) -> Result<()> {
    // The contiguous fast path keeps this scan at memory speed on large batches.
    let position = match array.as_slice() {
        Some(slice) => slice.iter().position(|v| !v.is_finite()),
        None => array.iter().position(|v| !v.is_finite()),
    };
    match position {
        None => Ok(()),
        Some(index) => Err(Error::NonFinite {
            name,
            value: array
                .iter()
                .nth(index)
                .map(|v| v.to_string())
                .unwrap_or_default(),
            index,
        }),
    }
}

/// A probability in `[0, 1]`.
pub(crate) fn probability(name: &'static str, p: f64) -> Result<()> {
    if (0.0..=1.0).contains(&p) {
        Ok(())
    } else {
        Err(Error::invalid(name, p, "must be a probability in [0, 1]"))
    }
}

/// A finite value `> 0`.
pub(crate) fn positive(name: &'static str, value: f64) -> Result<()> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(Error::invalid(name, value, "must be finite and > 0"))
    }
}

/// A finite scalar.
pub(crate) fn finite_scalar(name: &'static str, value: f64) -> Result<()> {
    if value.is_finite() {
        Ok(())
    } else {
        Err(Error::invalid(name, value, "must be finite"))
    }
}

/// A range `[low, high]` with `lower_bound <= low <= high <= upper_bound`, both finite.
pub(crate) fn range(
    name: &'static str,
    (low, high): (f64, f64),
    lower_bound: f64,
    upper_bound: f64,
) -> Result<()> {
    if low.is_finite()
        && high.is_finite()
        && lower_bound <= low
        && low <= high
        && high <= upper_bound
    {
        Ok(())
    } else {
        Err(Error::invalid(
            name,
            format!("({low}, {high})"),
            format!("must satisfy {lower_bound} <= low <= high <= {upper_bound}"),
        ))
    }
}

/// A batch must have at least one item.
pub(crate) fn non_empty_batch(name: &'static str, shape: &[usize]) -> Result<usize> {
    match shape.first() {
        Some(&n) if n > 0 => Ok(n),
        _ => Err(Error::shape(
            name,
            "a non-empty batch (first axis length >= 1)",
            shape,
        )),
    }
}

/// Validates two (inputs, targets) operands of a pairwise mix (same input shapes, one target
/// row per item, everything finite) and returns the batch size. An operand that is the same
/// view as its twin (mixing a batch with itself) is scanned for non-finite values once.
pub(crate) fn pair_batch<F: Float, D: Dimension>(
    inputs_a: &ArrayView<F, D>,
    targets_a: &ArrayView2<F>,
    inputs_b: &ArrayView<F, D>,
    targets_b: &ArrayView2<F>,
) -> Result<usize> {
    let batch = non_empty_batch("inputs_a", inputs_a.shape())?;
    if inputs_b.shape() != inputs_a.shape() {
        return Err(Error::shape(
            "inputs_b",
            format!("the shape of inputs_a {:?}", inputs_a.shape()),
            inputs_b.shape(),
        ));
    }
    if targets_a.nrows() != batch {
        return Err(Error::shape(
            "targets_a",
            format!("[{batch}, classes] (one row per item)"),
            targets_a.shape(),
        ));
    }
    if targets_b.shape() != targets_a.shape() {
        return Err(Error::shape(
            "targets_b",
            format!("the shape of targets_a {:?}", targets_a.shape()),
            targets_b.shape(),
        ));
    }
    finite("inputs_a", inputs_a)?;
    finite("targets_a", targets_a)?;
    if inputs_b.as_ptr() != inputs_a.as_ptr() || inputs_b.strides() != inputs_a.strides() {
        finite("inputs_b", inputs_b)?;
    }
    if targets_b.as_ptr() != targets_a.as_ptr() || targets_b.strides() != targets_a.strides() {
        finite("targets_b", targets_b)?;
    }
    Ok(batch)
}
