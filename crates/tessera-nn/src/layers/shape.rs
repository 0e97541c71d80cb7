//! Reshaping layers.

use ndarray::{ArrayD, ArrayViewD, IxDyn};
use tessera_core::RejectInput;

use crate::error::{Error, Result};
use crate::layer::{Cache, Context, Layer, Recorded, Tangent};
use crate::layers::util::check_grad_output_tangent;
use crate::layers::util::{check_like, standard};
use crate::Float;

/// `(batch, d1, d2, …) → (batch, d1·d2·…)` in row-major order (PyTorch's `nn.Flatten()`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flatten;

fn reshape<F: Float>(x: &ArrayViewD<'_, F>, shape: &[usize]) -> ArrayD<F> {
    standard(x.view())
        .into_owned()
        .into_shape_with_order(IxDyn(shape))
        .expect("same number of entries")
}

impl<F: Float> Layer<F> for Flatten {
    fn kind(&self) -> &'static str {
        "Flatten"
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        Ok(vec![input.iter().product()])
    }

    fn forward(
        &self,
        _params: &[F],
        _buffers: &mut [F],
        input: ArrayViewD<'_, F>,
        _ctx: Context,
    ) -> Result<(ArrayD<F>, Cache<F>)> {
        let shape = input.shape();
        if shape.is_empty() || shape[0] == 0 {
            return Err(Error::shape(
                "input",
                "(batch ≥ 1, …)",
                format!("{shape:?}"),
            ));
        }
        let flat = [shape[0], shape[1..].iter().product()];
        Ok((reshape(&input, &flat), Cache::empty()))
    }

    fn backward(
        &self,
        rec: &Recorded<'_, F>,
        grad_output: ArrayViewD<'_, F>,
        _grad_params: Option<&mut [F]>,
        want_input: bool,
    ) -> Result<Option<ArrayD<F>>> {
        check_like("grad_output", &grad_output, rec.output.shape())?;
        Ok(want_input.then(|| reshape(&grad_output, rec.input.shape())))
    }

    fn forward_tangent(
        &self,
        rec: &Recorded<'_, F>,
        tangent: &Tangent<'_, F>,
    ) -> Result<(ArrayD<F>, Cache<F>)> {
        let out = match &tangent.input {
            Some(rx) => {
                check_like("input tangent", rx, rec.input.shape())?;
                reshape(rx, rec.output.shape())
            }
            None => ArrayD::zeros(rec.output.raw_dim()),
        };
        Ok((out, Cache::empty()))
    }

    fn backward_tangent(
        &self,
        rec: &Recorded<'_, F>,
        _tangent: &Tangent<'_, F>,
        _tangent_cache: &Cache<F>,
        _grad_output: ArrayViewD<'_, F>,
        grad_output_tangent: ArrayViewD<'_, F>,
        _hvp_params: &mut [F],
        want_input: bool,
    ) -> Result<Option<ArrayD<F>>> {
        check_grad_output_tangent(&grad_output_tangent, rec.output.shape())?;
        Ok(want_input.then(|| reshape(&grad_output_tangent, rec.input.shape())))
    }
}
