//! Shape checks and reshapes shared by the layers.

use ndarray::{ArrayD, ArrayView2, ArrayViewD, CowArray, Ix2, IxDyn};
use tessera_core::RejectInput;

use crate::error::{Error, Result};
use crate::Float;

/// `(batch, d1, d2, …)` for messages.
pub(crate) fn batch_shape_text(per_example: &[usize]) -> String {
    let mut s = String::from("(batch");
    for d in per_example {
        s.push_str(&format!(", {d}"));
    }
    s.push(')');
    s
}

/// Checks a batch-first tensor: rank `1 + per_example.len()`, batch ≥ 1, and every
/// per-example dimension as given.
pub(crate) fn check_batch(
    name: &'static str,
    x: &ArrayViewD<'_, impl Sized>,
    per_example: &[usize],
) -> Result<usize> {
    let shape = x.shape();
    if shape.len() != per_example.len() + 1 || shape[1..] != *per_example {
        return Err(Error::shape(
            name,
            batch_shape_text(per_example),
            format!("{shape:?}"),
        ));
    }
    if shape[0] == 0 {
        return Err(Error::invalid(
            name,
            "batch of 0",
            "batch must not be empty",
        ));
    }
    Ok(shape[0])
}

/// Checks that a gradient or tangent has the shape of the tensor it belongs to.
pub(crate) fn check_like(
    name: &'static str,
    x: &ArrayViewD<'_, impl Sized>,
    like: &[usize],
) -> Result<()> {
    if x.shape() != like {
        return Err(Error::shape(
            name,
            format!("{like:?}"),
            format!("{:?}", x.shape()),
        ));
    }
    Ok(())
}

/// The output tangent of an R-backward pass (`R{∂L/∂y}`) has the shape `like` of the output it
/// belongs to.
pub(crate) fn check_grad_output_tangent(
    grad_output_tangent: &ArrayViewD<'_, impl Sized>,
    like: &[usize],
) -> Result<()> {
    check_like("grad_output_tangent", grad_output_tangent, like)
}

/// Both output gradients of an R-backward pass (`∂L/∂y` and `R{∂L/∂y}`) have the shape `like`.
pub(crate) fn check_grad_outputs(
    grad_output: &ArrayViewD<'_, impl Sized>,
    grad_output_tangent: &ArrayViewD<'_, impl Sized>,
    like: &[usize],
) -> Result<()> {
    check_like("grad_output", grad_output, like)?;
    check_grad_output_tangent(grad_output_tangent, like)
}

/// The tensor as a `(rows, cols)` matrix (a view when it is contiguous, else a copy).
pub(crate) fn as_matrix<'a, F: Float>(
    x: ArrayViewD<'a, F>,
    rows: usize,
    cols: usize,
) -> CowArray<'a, F, Ix2> {
    if x.is_standard_layout() {
        CowArray::from(
            x.into_shape_with_order((rows, cols))
                .expect("a standard-layout tensor of rows·cols entries"),
        )
    } else {
        CowArray::from(
            x.as_standard_layout()
                .into_owned()
                .into_shape_with_order((rows, cols))
                .expect("a standard-layout tensor of rows·cols entries"),
        )
    }
}

/// A matrix back into a tensor of the given shape.
pub(crate) fn from_matrix<F: Float>(m: ndarray::Array2<F>, shape: &[usize]) -> ArrayD<F> {
    let m = if m.is_standard_layout() {
        m
    } else {
        m.as_standard_layout().into_owned()
    };
    m.into_shape_with_order(IxDyn(shape))
        .expect("same number of entries")
}

/// A parameter slice as a `(rows, cols)` matrix view.
pub(crate) fn param_matrix<F>(p: &[F], rows: usize, cols: usize) -> ArrayView2<'_, F> {
    ArrayView2::from_shape((rows, cols), p).expect("slice of rows·cols parameters")
}

/// The tensor's data as a contiguous standard-layout slice (a copy only when needed).
pub(crate) fn standard<'a, F: Float>(x: ArrayViewD<'a, F>) -> CowArray<'a, F, IxDyn> {
    if x.is_standard_layout() {
        CowArray::from(x)
    } else {
        CowArray::from(x.as_standard_layout().into_owned())
    }
}

/// Checks that every `(name, length)` slice handed to a layer has the layer's parameter count
/// (layers are public: a caller may pass any slices).
pub(crate) fn check_slices(expected: usize, slices: &[(&'static str, usize)]) -> Result<()> {
    for &(name, len) in slices {
        crate::layer::check_len(name, len, expected)?;
    }
    Ok(())
}

/// The slices of a backward pass: the recorded parameters and, when given, the gradient's
/// (`grad_params` = its length).
pub(crate) fn check_backward_slices<F>(
    expected: usize,
    rec: &crate::layer::Recorded<'_, F>,
    grad_params: Option<usize>,
) -> Result<()> {
    crate::layer::check_len("params", rec.params.len(), expected)?;
    match grad_params {
        Some(len) => crate::layer::check_len("grad_params", len, expected),
        None => Ok(()),
    }
}

/// The slices of a layer's R-backward pass: its recorded parameters, the parameter direction
/// and the Hessian-vector product's slice all have the layer's parameter count.
pub(crate) fn check_r_backward_slices<F: Float>(
    layer: &dyn crate::layer::Layer<F>,
    rec: &crate::layer::Recorded<'_, F>,
    tangent: &crate::layer::Tangent<'_, F>,
    hvp_params: &[F],
) -> Result<()> {
    check_tangent_slices(
        layer.parameter_count(),
        rec,
        tangent,
        Some(hvp_params.len()),
    )
}

/// The slices of an R-operator pass: the recorded parameters, the parameter direction and,
/// for the backward tangent, the Hessian-vector product's (`hvp_params` = its length).
pub(crate) fn check_tangent_slices<F>(
    expected: usize,
    rec: &crate::layer::Recorded<'_, F>,
    tangent: &crate::layer::Tangent<'_, F>,
    hvp_params: Option<usize>,
) -> Result<()> {
    crate::layer::check_len("params", rec.params.len(), expected)?;
    crate::layer::check_len("tangent.params", tangent.params.len(), expected)?;
    match hvp_params {
        Some(len) => crate::layer::check_len("hvp_params", len, expected),
        None => Ok(()),
    }
}

/// Eight independent partial sums over a plane, combined pairwise at the end: the adds no
/// longer wait on one another (a single running sum is bound by the add latency, which made
/// batch norm's reductions a tenth of a small CNN's training step, and a convolution's bias
/// gradient a twentieth). The order is fixed, so the
/// result does not depend on the thread that computes it.
pub(crate) fn lane_sum<F: Float>(values: impl Iterator<Item = F>) -> F {
    let mut lanes = [F::zero(); 8];
    for (k, v) in values.enumerate() {
        lanes[k % 8] += v;
    }
    ((lanes[0] + lanes[4]) + (lanes[2] + lanes[6]))
        + ((lanes[1] + lanes[5]) + (lanes[3] + lanes[7]))
}

pub(crate) fn plane_sum<F: Float>(plane: &[F]) -> F {
    let mut chunks = plane.chunks_exact(8);
    let mut lanes = [F::zero(); 8];
    for chunk in &mut chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane += v;
        }
    }
    let rest = lane_sum(chunks.remainder().iter().copied());
    ((lanes[0] + lanes[4]) + (lanes[2] + lanes[6]))
        + ((lanes[1] + lanes[5]) + (lanes[3] + lanes[7]))
        + rest
}

/// Per channel `Σ f(plane)` over the batch, the planes summed in parallel and then added per
/// channel in batch order (deterministic for any number of threads).
pub(crate) fn channel_sums<F: Float>(planes: Vec<F>, channels: usize) -> Vec<F> {
    let mut out = vec![F::zero(); channels];
    for (i, v) in planes.into_iter().enumerate() {
        out[i % channels] += v;
    }
    out
}
