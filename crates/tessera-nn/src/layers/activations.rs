//! Point-wise non-linearities as layers (no parameters).

use ndarray::{ArrayD, ArrayViewD, Zip};

use crate::activation::Activation;
use tessera_core::RejectInput;

use crate::error::{Error, Result};
use crate::layer::{Cache, Context, Layer, Recorded, Tangent};
use crate::layers::util::check_grad_outputs;
use crate::layers::util::check_like;
use crate::storage;
use crate::Float;

/// A scalar function with its first and second derivatives.
trait Pointwise: Send + Sync {
    fn value<F: Float>(&self, x: F) -> F;
    fn derivative<F: Float>(&self, x: F) -> F;
    /// `None` when `φ'' ≡ 0` almost everywhere (the R-pass skips the curvature term).
    fn second_derivative<F: Float>(&self, x: F) -> Option<F>;
}

fn pointwise_forward<F: Float, P: Pointwise>(p: &P, input: ArrayViewD<'_, F>) -> ArrayD<F> {
    storage::map(&input, |&v| p.value(v))
}

fn pointwise_backward<F: Float, P: Pointwise>(
    p: &P,
    rec: &Recorded<'_, F>,
    grad_output: ArrayViewD<'_, F>,
    want_input: bool,
) -> Result<Option<ArrayD<F>>> {
    check_like("grad_output", &grad_output, rec.input.shape())?;
    if !want_input {
        return Ok(None);
    }
    Ok(Some(storage::zip_map(
        &grad_output,
        &rec.input,
        |&d, &x| d * p.derivative(x),
    )))
}

fn pointwise_tangent<F: Float, P: Pointwise>(
    p: &P,
    rec: &Recorded<'_, F>,
    tangent: &Tangent<'_, F>,
) -> Result<(ArrayD<F>, Cache<F>)> {
    let out = match &tangent.input {
        Some(rx) => {
            check_like("input tangent", rx, rec.input.shape())?;
            let mut r = rx.to_owned();
            Zip::from(&mut r)
                .and(&rec.input)
                .for_each(|r, &x| *r *= p.derivative(x));
            r
        }
        None => ArrayD::zeros(rec.input.raw_dim()),
    };
    Ok((out, Cache::empty()))
}

fn pointwise_backward_tangent<F: Float, P: Pointwise>(
    p: &P,
    rec: &Recorded<'_, F>,
    tangent: &Tangent<'_, F>,
    grad_output: ArrayViewD<'_, F>,
    grad_output_tangent: ArrayViewD<'_, F>,
    want_input: bool,
) -> Result<Option<ArrayD<F>>> {
    check_grad_outputs(&grad_output, &grad_output_tangent, rec.input.shape())?;
    if !want_input {
        return Ok(None);
    }
    // R{δ φ'(x)} = R{δ} φ'(x) + δ φ''(x) R{x}.
    let mut r = grad_output_tangent.to_owned();
    Zip::from(&mut r)
        .and(&rec.input)
        .for_each(|r, &x| *r *= p.derivative(x));
    if let Some(rx) = &tangent.input {
        check_like("input tangent", rx, rec.input.shape())?;
        if p.second_derivative(F::zero()).is_some() {
            Zip::from(&mut r)
                .and(&rec.input)
                .and(&grad_output)
                .and(rx)
                .for_each(|r, &x, &d, &t| {
                    *r += d * p.second_derivative(x).unwrap_or_else(F::zero) * t
                });
        }
    }
    Ok(Some(r))
}

macro_rules! pointwise_layer {
    ($ty:ident, $name:literal) => {
        impl<F: Float> Layer<F> for $ty {
            fn kind(&self) -> &'static str {
                $name
            }

            fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
                Ok(input.to_vec())
            }

            fn forward(
                &self,
                _params: &[F],
                _buffers: &mut [F],
                input: ArrayViewD<'_, F>,
                _ctx: Context,
            ) -> Result<(ArrayD<F>, Cache<F>)> {
                Ok((pointwise_forward(self, input), Cache::empty()))
            }

            fn backward(
                &self,
                rec: &Recorded<'_, F>,
                grad_output: ArrayViewD<'_, F>,
                _grad_params: Option<&mut [F]>,
                want_input: bool,
            ) -> Result<Option<ArrayD<F>>> {
                pointwise_backward(self, rec, grad_output, want_input)
            }

            fn forward_tangent(
                &self,
                rec: &Recorded<'_, F>,
                tangent: &Tangent<'_, F>,
            ) -> Result<(ArrayD<F>, Cache<F>)> {
                pointwise_tangent(self, rec, tangent)
            }

            fn backward_tangent(
                &self,
                rec: &Recorded<'_, F>,
                tangent: &Tangent<'_, F>,
                _tangent_cache: &Cache<F>,
                grad_output: ArrayViewD<'_, F>,
                grad_output_tangent: ArrayViewD<'_, F>,
                _hvp_params: &mut [F],
                want_input: bool,
            ) -> Result<Option<ArrayD<F>>> {
                pointwise_backward_tangent(
                    self,
                    rec,
                    tangent,
                    grad_output,
                    grad_output_tangent,
                    want_input,
                )
            }
        }
    };
}

/// `max(0, x)`; derivative 0 at 0, as PyTorch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Relu;

impl Pointwise for Relu {
    fn value<F: Float>(&self, x: F) -> F {
        Activation::Relu.value(x)
    }
    fn derivative<F: Float>(&self, x: F) -> F {
        Activation::Relu.derivative(x)
    }
    fn second_derivative<F: Float>(&self, _x: F) -> Option<F> {
        None
    }
}
pointwise_layer!(Relu, "Relu");

/// `x` for `x > 0`, `slope·x` otherwise (PyTorch's default slope is 0.01).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LeakyRelu {
    slope: f64,
}

impl LeakyRelu {
    /// A leaky ReLU with a finite negative-side `slope`.
    pub fn new(slope: f64) -> Result<Self> {
        if !slope.is_finite() {
            return Err(Error::invalid("slope", slope, "must be finite"));
        }
        Ok(Self { slope })
    }

    /// The negative-side slope.
    pub fn slope(&self) -> f64 {
        self.slope
    }
}

impl Default for LeakyRelu {
    fn default() -> Self {
        Self { slope: 0.01 }
    }
}

impl Pointwise for LeakyRelu {
    fn value<F: Float>(&self, x: F) -> F {
        if x > F::zero() {
            x
        } else {
            F::from_f64_rounded(self.slope) * x
        }
    }
    fn derivative<F: Float>(&self, x: F) -> F {
        if x > F::zero() {
            F::one()
        } else {
            F::from_f64_rounded(self.slope)
        }
    }
    fn second_derivative<F: Float>(&self, _x: F) -> Option<F> {
        None
    }
}
pointwise_layer!(LeakyRelu, "LeakyRelu");

/// GELU, tanh approximation (PyTorch `nn.GELU(approximate="tanh")`), as
/// [`Activation::Gelu`]: closed-form first and second derivatives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Gelu;

impl Pointwise for Gelu {
    fn value<F: Float>(&self, x: F) -> F {
        Activation::Gelu.value(x)
    }
    fn derivative<F: Float>(&self, x: F) -> F {
        Activation::Gelu.derivative(x)
    }
    fn second_derivative<F: Float>(&self, x: F) -> Option<F> {
        Some(Activation::Gelu.second_derivative(x))
    }
}
pointwise_layer!(Gelu, "Gelu");

/// `tanh x`; `φ' = 1 − tanh²x`, `φ'' = −2 tanh x (1 − tanh²x)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tanh;

impl Pointwise for Tanh {
    fn value<F: Float>(&self, x: F) -> F {
        x.tanh()
    }
    fn derivative<F: Float>(&self, x: F) -> F {
        let t = x.tanh();
        F::one() - t * t
    }
    fn second_derivative<F: Float>(&self, x: F) -> Option<F> {
        let t = x.tanh();
        Some(-F::from_f64_rounded(2.0) * t * (F::one() - t * t))
    }
}
pointwise_layer!(Tanh, "Tanh");
