//! Exact Hessian- and Gauss–Newton-vector products of a [`Sequential`] (Pearlmutter's
//! R-operator through the layers' [`Layer::forward_tangent`](crate::Layer::forward_tangent)
//! and [`Layer::backward_tangent`](crate::Layer::backward_tangent)).

use ndarray::{Array1, Array2, ArrayD, ArrayView1, ArrayViewD, ArrayViewMut1, Ix2};
use tessera_core::RejectInput;
use tessera_lanczos::LinearOperator;

use super::{RoutedHooks, Sequential, Trace};
use crate::curvature::{Curvature, CurvatureProduct};
use crate::error::{Error, Result};
use crate::layer::Cache;
use crate::loss::{logit_hessian_vector, loss_and_logit_gradient, Loss, Targets};
use crate::Float;

/// `v ↦ H·v` or `v ↦ G·v` for one [`Sequential`] at its current parameters on a fixed batch,
/// in evaluation mode (batch norm uses its running statistics, dropout is off, so the network
/// is a fixed function of its parameters). The forward pass, the gradient and every layer's
/// output gradient are computed once, at construction; each product is one forward R-pass and
/// one backward (R-)pass. Layers without an R-operator make the products fail with
/// [`Error::Unsupported`] (at construction, checked with a zero direction).
#[derive(Debug)]
pub struct SequentialCurvature<'a, F: 'static> {
    model: &'a Sequential<F>,
    targets: Targets<'a, F>,
    loss: Loss,
    kind: Curvature,
    trace: Trace<F>,
    loss_value: F,
    gradient: Array1<F>,
    /// ∂L/∂(output of layer i).
    deltas: Vec<Option<ArrayD<F>>>,
}

impl<F: Float> Sequential<F> {
    /// The exact Hessian of the loss on the batch `(x, targets)` as an operator.
    pub fn hessian_operator<'a>(
        &'a self,
        x: ArrayViewD<'_, F>,
        targets: Targets<'a, F>,
        loss: Loss,
    ) -> Result<SequentialCurvature<'a, F>> {
        SequentialCurvature::new(self, x, targets, loss, Curvature::Hessian)
    }

    /// The generalised Gauss–Newton matrix `JᵀH_zJ` of the loss on the batch as an operator.
    pub fn gauss_newton_operator<'a>(
        &'a self,
        x: ArrayViewD<'_, F>,
        targets: Targets<'a, F>,
        loss: Loss,
    ) -> Result<SequentialCurvature<'a, F>> {
        SequentialCurvature::new(self, x, targets, loss, Curvature::GaussNewton)
    }
}

impl<'a, F: Float> SequentialCurvature<'a, F> {
    /// Runs the forward and backward pass once and keeps what the products need.
    pub fn new(
        model: &'a Sequential<F>,
        x: ArrayViewD<'_, F>,
        targets: Targets<'a, F>,
        loss: Loss,
        kind: Curvature,
    ) -> Result<Self> {
        let trace = model.forward_eval(x)?;
        let (loss_value, logit_grad) = loss_and_logit_gradient(trace.logits()?, &targets, loss)?;
        let views = trace.layer_views();
        let mut gradient = Array1::zeros(model.num_params());
        let back = model.chain.backward_impl(
            &model.record(model.params_slice(), &trace, &views),
            Some(logit_grad.into_dyn().view()),
            &RoutedHooks::none(),
            Some(gradient.as_slice_mut().expect("owned vector")),
            false,
            true,
        )?;
        let op = Self {
            model,
            targets,
            loss,
            kind,
            trace,
            loss_value,
            gradient,
            deltas: back.deltas,
        };
        // Fail early, with the layer's own error, if some layer has no R-operator.
        let zero = Array1::zeros(op.num_params());
        let mut sink = Array1::zeros(op.num_params());
        op.product_contiguous(zero.view(), sink.view_mut())?;
        Ok(op)
    }

    /// Hessian or Gauss–Newton.
    pub fn kind(&self) -> Curvature {
        self.kind
    }

    /// The loss on the batch at the operator's parameters.
    pub fn loss_value(&self) -> F {
        self.loss_value
    }

    /// The gradient on the batch at the operator's parameters.
    pub fn gradient(&self) -> ArrayView1<'_, F> {
        self.gradient.view()
    }

    /// Number of parameters (the operator is `n × n`).
    pub fn num_params(&self) -> usize {
        self.model.num_params()
    }

    /// The product with a checked direction (length and finiteness).
    pub fn product(&self, v: ArrayView1<'_, F>) -> Result<Array1<F>> {
        self.checked_product(v)
    }

    /// The whole matrix, column by column (for tiny networks and tests: `n` products).
    pub fn to_dense(&self) -> Result<Array2<F>> {
        self.dense()
    }
}

impl<F: Float> CurvatureProduct<F> for SequentialCurvature<'_, F> {
    const NAME: &'static str = "SequentialCurvature";

    fn dimension(&self) -> usize {
        self.num_params()
    }

    fn product_contiguous(
        &self,
        v: ArrayView1<'_, F>,
        mut out: ArrayViewMut1<'_, F>,
    ) -> Result<()> {
        let model = self.model;
        let chain = &model.chain;
        let v = v.as_slice().expect("standard layout");
        let out = out.as_slice_mut().expect("standard layout");
        out.fill(F::zero());
        let trace = &self.trace;
        let views = trace.layer_views();
        let record = model.record(model.params_slice(), trace, &views);
        let (tangents, tcaches) = chain.tangent_all(&record, v, None)?;
        let logits = trace.logits()?;
        let r_logits = match tangents.last() {
            Some(t) => t.view().into_dimensionality::<Ix2>().map_err(|_| {
                Error::shape("output", "(batch, classes)", format!("{:?}", t.shape()))
            })?,
            None => return Ok(()),
        };
        let u = logit_hessian_vector(logits, &self.targets, self.loss, r_logits);
        match self.kind {
            Curvature::GaussNewton => {
                chain.backward_impl(
                    &record,
                    Some(u.into_dyn().view()),
                    &RoutedHooks::none(),
                    Some(out),
                    false,
                    false,
                )?;
            }
            Curvature::Hessian => {
                let tviews: Vec<ArrayViewD<'_, F>> = tangents.iter().map(|t| t.view()).collect();
                let tcs: Vec<&Cache<F>> = tcaches.iter().collect();
                let last = self
                    .deltas
                    .last()
                    .and_then(|d| d.as_ref())
                    .ok_or_else(|| Error::invalid("deltas", "none", "no output gradient"))?;
                chain.backward_tangent_impl(
                    &record,
                    v,
                    None,
                    &tviews,
                    &tcs,
                    Some(&self.deltas),
                    last.view(),
                    u.into_dyn().view(),
                    out,
                    false,
                )?;
            }
        }
        Ok(())
    }
}

impl<F: Float> LinearOperator<F> for SequentialCurvature<'_, F> {
    fn dim(&self) -> usize {
        self.num_params()
    }

    /// # Panics
    /// If `x` or `y` does not have length [`LinearOperator::dim`] (the trait's contract); a
    /// layer error cannot happen here, because construction ran one product successfully.
    fn apply(&self, x: ArrayView1<'_, F>, y: ArrayViewMut1<'_, F>) {
        self.apply_or_panic(x, y);
    }
}
