//! Fully connected layer `y = x Wᵀ + b` on the last axis.

use ndarray::{ArrayD, ArrayViewD, Axis};
use tessera_core::RejectInput;

use crate::error::{Error, Result};
use crate::gemm::gemm;
use crate::layer::{Cache, Context, Init, Layer, ParamSpec, Recorded, Tangent};
use crate::layers::util::check_grad_outputs;
use crate::layers::util::{
    as_matrix, check_backward_slices, check_like, check_slices, check_tangent_slices, from_matrix,
    param_matrix,
};
use crate::Float;

/// `y = x Wᵀ + b` with `W` of shape `[out, in]` (PyTorch's `nn.Linear`), applied to the last
/// axis of a `(batch, …, in)` tensor. Parameters `weight [out, in]`, `bias [out]`, both
/// initialised `U(±1/√in)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Dense {
    in_features: usize,
    out_features: usize,
    bias: bool,
}

impl Dense {
    /// A dense layer with a bias.
    pub fn new(in_features: usize, out_features: usize) -> Result<Self> {
        if in_features == 0 {
            return Err(Error::invalid("in_features", 0, "must be at least 1"));
        }
        if out_features == 0 {
            return Err(Error::invalid("out_features", 0, "must be at least 1"));
        }
        Ok(Self {
            in_features,
            out_features,
            bias: true,
        })
    }

    /// Without a bias term.
    pub fn without_bias(mut self) -> Self {
        self.bias = false;
        self
    }

    /// Inputs per row.
    pub fn in_features(&self) -> usize {
        self.in_features
    }

    /// Outputs per row.
    pub fn out_features(&self) -> usize {
        self.out_features
    }

    fn rows(&self, x: &ArrayViewD<'_, impl Sized>) -> Result<usize> {
        let shape = x.shape();
        if shape.len() < 2 || shape[shape.len() - 1] != self.in_features {
            return Err(Error::shape(
                "input",
                format!("(batch, …, {})", self.in_features),
                format!("{shape:?}"),
            ));
        }
        if shape[0] == 0 {
            return Err(Error::invalid(
                "input",
                "batch of 0",
                "batch must not be empty",
            ));
        }
        Ok(shape[..shape.len() - 1].iter().product())
    }

    fn out_shape(&self, input: &[usize]) -> Vec<usize> {
        let mut s = input.to_vec();
        if let Some(last) = s.last_mut() {
            *last = self.out_features;
        }
        s
    }

    fn split<'a, F>(&self, p: &'a [F]) -> (&'a [F], &'a [F]) {
        p.split_at(self.in_features * self.out_features)
    }

    /// `x Wᵀ (+ b)` of rows `x`, accumulated into `out` with factor `beta`.
    fn affine<F: Float>(
        &self,
        x: &ArrayViewD<'_, F>,
        rows: usize,
        p: &[F],
        beta: F,
        out: &mut ndarray::Array2<F>,
    ) {
        let (w, b) = self.split(p);
        let xm = as_matrix(x.view(), rows, self.in_features);
        let w = param_matrix(w, self.out_features, self.in_features);
        gemm(F::one(), &xm, &w.t(), beta, out);
        if self.bias {
            let b = ndarray::ArrayView1::from(b);
            *out += &b;
        }
    }

    /// Adds `δᵀx` and `Σδ` into the parameter-shaped `g`.
    fn param_grad<F: Float>(
        &self,
        delta: &ndarray::ArrayView2<'_, F>,
        x: &ArrayViewD<'_, F>,
        rows: usize,
        g: &mut [F],
        with_bias: bool,
    ) {
        let (gw, gb) = g.split_at_mut(self.in_features * self.out_features);
        let xm = as_matrix(x.view(), rows, self.in_features);
        let mut gw = ndarray::ArrayViewMut2::from_shape((self.out_features, self.in_features), gw)
            .expect("weight slice");
        gemm(F::one(), &delta.t(), &xm, F::one(), &mut gw);
        if self.bias && with_bias {
            for (g, s) in gb.iter_mut().zip(delta.sum_axis(Axis(0))) {
                *g += s;
            }
        }
    }
}

impl<F: Float> Layer<F> for Dense {
    fn kind(&self) -> &'static str {
        "Dense"
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        if input.last() != Some(&self.in_features) {
            return Err(Error::shape(
                "input",
                format!("(…, {}) per example", self.in_features),
                format!("{input:?}"),
            ));
        }
        Ok(self.out_shape(input))
    }

    fn parameters(&self) -> Vec<ParamSpec> {
        let init = Init::pytorch_default(self.in_features);
        let mut specs = vec![ParamSpec::new(
            "weight",
            vec![self.out_features, self.in_features],
            init,
        )];
        if self.bias {
            specs.push(ParamSpec::new("bias", vec![self.out_features], init));
        }
        specs
    }

    fn forward(
        &self,
        params: &[F],
        _buffers: &mut [F],
        input: ArrayViewD<'_, F>,
        _ctx: Context,
    ) -> Result<(ArrayD<F>, Cache<F>)> {
        check_slices(
            Layer::<F>::parameter_count(self),
            &[("params", params.len())],
        )?;
        let rows = self.rows(&input)?;
        #[cfg(feature = "cuda")]
        {
            let (w, b) = self.split(params);
            let x = as_matrix(input.view(), rows, self.in_features);
            let bias = self.bias.then_some(b);
            if let Some(out) = super::gpu::dense_forward(x.view(), w, self.out_features, bias)? {
                let shape = self.out_shape(input.shape());
                return Ok((from_matrix(out, &shape), Cache::empty()));
            }
        }
        let mut out = ndarray::Array2::zeros((rows, self.out_features));
        self.affine(&input, rows, params, F::zero(), &mut out);
        Ok((
            from_matrix(out, &self.out_shape(input.shape())),
            Cache::empty(),
        ))
    }

    fn backward(
        &self,
        rec: &Recorded<'_, F>,
        grad_output: ArrayViewD<'_, F>,
        grad_params: Option<&mut [F]>,
        want_input: bool,
    ) -> Result<Option<ArrayD<F>>> {
        check_backward_slices(
            Layer::<F>::parameter_count(self),
            rec,
            grad_params.as_ref().map(|g| g.len()),
        )?;
        let rows = self.rows(&rec.input)?;
        check_like("grad_output", &grad_output, rec.output.shape())?;
        let delta = as_matrix(grad_output, rows, self.out_features);
        #[cfg(feature = "cuda")]
        {
            let (w, _) = self.split(rec.params);
            let x = as_matrix(rec.input.view(), rows, self.in_features);
            let request = tessera_gpu::BackwardRequest {
                params: grad_params.is_some(),
                bias: self.bias,
                input: want_input,
            };
            let shape = rec.input.shape();
            if let Some(grads) =
                super::gpu::dense_backward(x.view(), w, delta.view(), request, shape)?
            {
                if let Some(g) = grad_params {
                    grads.add_into(g);
                }
                return Ok(grads.input);
            }
        }
        if let Some(g) = grad_params {
            self.param_grad(&delta.view(), &rec.input, rows, g, true);
        }
        if !want_input {
            return Ok(None);
        }
        let (w, _) = self.split(rec.params);
        let w = param_matrix(w, self.out_features, self.in_features);
        let mut dx = ndarray::Array2::zeros((rows, self.in_features));
        gemm(F::one(), &delta, &w, F::zero(), &mut dx);
        Ok(Some(from_matrix(dx, rec.input.shape())))
    }

    fn forward_tangent(
        &self,
        rec: &Recorded<'_, F>,
        tangent: &Tangent<'_, F>,
    ) -> Result<(ArrayD<F>, Cache<F>)> {
        check_tangent_slices(Layer::<F>::parameter_count(self), rec, tangent, None)?;
        let rows = self.rows(&rec.input)?;
        let mut out = ndarray::Array2::zeros((rows, self.out_features));
        // J_θ v: the layer applied to x with parameters v (the map is linear in θ).
        self.affine(&rec.input, rows, tangent.params, F::zero(), &mut out);
        if let Some(rx) = &tangent.input {
            check_like("input tangent", rx, rec.input.shape())?;
            let (w, _) = self.split(rec.params);
            let w = param_matrix(w, self.out_features, self.in_features);
            let rxm = as_matrix(rx.view(), rows, self.in_features);
            gemm(F::one(), &rxm, &w.t(), F::one(), &mut out);
        }
        Ok((from_matrix(out, rec.output.shape()), Cache::empty()))
    }

    fn backward_tangent(
        &self,
        rec: &Recorded<'_, F>,
        tangent: &Tangent<'_, F>,
        _tangent_cache: &Cache<F>,
        grad_output: ArrayViewD<'_, F>,
        grad_output_tangent: ArrayViewD<'_, F>,
        hvp_params: &mut [F],
        want_input: bool,
    ) -> Result<Option<ArrayD<F>>> {
        crate::layers::util::check_r_backward_slices(self, rec, tangent, hvp_params)?;
        let rows = self.rows(&rec.input)?;
        check_grad_outputs(&grad_output, &grad_output_tangent, rec.output.shape())?;
        let delta = as_matrix(grad_output, rows, self.out_features);
        let r_delta = as_matrix(grad_output_tangent, rows, self.out_features);
        // R{∂L/∂W} = R{δ}ᵀx + δᵀR{x};  R{∂L/∂b} = ΣR{δ}.
        self.param_grad(&r_delta.view(), &rec.input, rows, hvp_params, true);
        if let Some(rx) = &tangent.input {
            self.param_grad(&delta.view(), rx, rows, hvp_params, false);
        }
        if !want_input {
            return Ok(None);
        }
        // R{∂L/∂x} = R{δ}W + δV.
        let (w, _) = self.split(rec.params);
        let (v, _) = self.split(tangent.params);
        let w = param_matrix(w, self.out_features, self.in_features);
        let v = param_matrix(v, self.out_features, self.in_features);
        let mut dx = ndarray::Array2::zeros((rows, self.in_features));
        gemm(F::one(), &r_delta, &w, F::zero(), &mut dx);
        gemm(F::one(), &delta, &v, F::one(), &mut dx);
        Ok(Some(from_matrix(dx, rec.input.shape())))
    }
}
