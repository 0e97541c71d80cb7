//! Input validation specific to this crate (paired batches); the generic checks come from
//! tessera-core.

use ndarray::{ArrayView, ArrayView2, Dimension};
use tessera_core::RejectInput;

pub(crate) use tessera_core::check::{
    finite, finite_scalar, non_empty_batch, positive, positive_size, probability, range,
    size_at_most,
};

use crate::{Error, Float, Result};

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

/// Errors when a transform of finite `input` produced a non-finite `output` (see
/// [`tessera_core::check::overflowed`]).
pub(crate) fn no_overflow<F: Float, D: Dimension, E: Dimension>(
    name: &'static str,
    input: &ArrayView<F, D>,
    output: &ArrayView<F, E>,
    transform: &str,
) -> Result<()> {
    if output.iter().all(|v| v.is_finite()) {
        return Ok(());
    }
    Err(tessera_core::check::overflowed(name, input, transform).into())
}
