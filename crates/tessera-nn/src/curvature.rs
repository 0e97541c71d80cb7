//! Exact Hessian-vector and Gauss–Newton-vector products (Pearlmutter's R-operator) on a
//! fixed batch, as `tessera_lanczos::LinearOperator`s.

use crate::gemm::gemm;
use ndarray::{Array1, Array2, ArrayView1, ArrayView2, ArrayViewMut1, Axis, Slice, Zip};
use tessera_core::{check, RejectInput};
use tessera_lanczos::LinearOperator;

use crate::activation::Activation;
use crate::error::{Error, Result};
use crate::loss::{logit_hessian_vector, loss_and_logit_gradient, Loss, Targets};
use crate::model::{add_into, add_owned_into, split_layer_mut, ForwardTrace, Mlp};
use crate::Float;

/// Which curvature matrix an operator multiplies by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Curvature {
    /// The Hessian `H = ∇²_θ L` of the batch loss.
    Hessian,
    /// The generalised Gauss–Newton matrix `G = Jᵀ H_z J` (`J = ∂z/∂θ`, `H_z = ∇²_z L`),
    /// positive semi-definite for convex losses.
    GaussNewton,
}

/// What the two curvature operators ([`CurvatureOperator`] for an [`Mlp`],
/// [`SequentialCurvature`](crate::SequentialCurvature) for a `Sequential`) share: each writes
/// its product into a contiguous vector; the checked product, products into vectors of any
/// stride, the dense matrix and `LinearOperator::apply` are written once, here.
pub(crate) trait CurvatureProduct<F: Float> {
    /// The operator's type name, for the `LinearOperator` contract's panic message.
    const NAME: &'static str;

    /// Number of parameters (the operator is `n × n`).
    fn dimension(&self) -> usize;

    /// `out = C v` for contiguous `v` and `out` of length [`CurvatureProduct::dimension`].
    fn product_contiguous(&self, v: ArrayView1<'_, F>, out: ArrayViewMut1<'_, F>) -> Result<()>;

    /// Works for any strides of `v` and `out` (columns of a matrix included): the per-layer
    /// reshapes need contiguous vectors, so strided ones go through a contiguous copy.
    fn product_into(&self, v: ArrayView1<'_, F>, mut out: ArrayViewMut1<'_, F>) -> Result<()> {
        let v = v.as_standard_layout();
        if out.is_standard_layout() {
            self.product_contiguous(v.view(), out)
        } else {
            let mut tmp = Array1::zeros(out.len());
            self.product_contiguous(v.view(), tmp.view_mut())?;
            out.assign(&tmp);
            Ok(())
        }
    }

    /// The product with a checked direction (length and finiteness).
    fn checked_product(&self, v: ArrayView1<'_, F>) -> Result<Array1<F>> {
        if v.len() != self.dimension() {
            return Err(Error::shape(
                "v",
                format!("length {}", self.dimension()),
                format!("length {}", v.len()),
            ));
        }
        check::finite_values("v", v.iter().copied())?;
        let mut out = Array1::zeros(v.len());
        self.product_into(v, out.view_mut())?;
        Ok(out)
    }

    /// The whole matrix, column by column (`n` products).
    fn dense(&self) -> Result<Array2<F>> {
        let n = self.dimension();
        let mut dense = Array2::zeros((n, n));
        let mut e = Array1::zeros(n);
        for i in 0..n {
            e[i] = F::one();
            self.product_into(e.view(), dense.column_mut(i))?;
            e[i] = F::zero();
        }
        Ok(dense)
    }

    /// `LinearOperator::apply`, whose contract is to panic on lengths other than
    /// [`CurvatureProduct::dimension`]. A layer error cannot happen here: an MLP's products
    /// have no failure path, and `SequentialCurvature` runs one product at construction.
    fn apply_or_panic(&self, x: ArrayView1<'_, F>, y: ArrayViewMut1<'_, F>) {
        let n = self.dimension();
        assert!(
            x.len() == n && y.len() == n,
            "{}::apply: x and y must have length {n} (got {} and {})",
            Self::NAME,
            x.len(),
            y.len()
        );
        if let Err(e) = self.product_into(x, y) {
            panic!("{}::apply: {e}", Self::NAME);
        }
    }
}

/// `v ↦ H·v` or `v ↦ G·v` for one network at fixed parameters on a fixed batch. The forward
/// pass and the gradient are computed once, at construction; each product costs about two
/// forward and two backward passes (Pearlmutter 1994).
#[derive(Debug)]
pub struct CurvatureOperator<'a, F> {
    mlp: &'a Mlp<F>,
    targets: Targets<'a, F>,
    loss: Loss,
    kind: Curvature,
    trace: ForwardTrace<F>,
    loss_value: F,
    gradient: Array1<F>,
    /// ∂L/∂(output of layer j), for the φ'' term of the R-backward pass.
    output_grads: Vec<Array2<F>>,
    /// ∂L/∂pre_j.
    pre_grads: Vec<Array2<F>>,
}

impl<F: Float> Mlp<F> {
    /// The exact Hessian of the loss on the batch `(x, targets)` as an operator.
    pub fn hessian_operator<'a>(
        &'a self,
        x: ArrayView2<'_, F>,
        targets: Targets<'a, F>,
        loss: Loss,
    ) -> Result<CurvatureOperator<'a, F>> {
        CurvatureOperator::new(self, x, targets, loss, Curvature::Hessian)
    }

    /// The generalised Gauss–Newton matrix of the loss on the batch as an operator.
    pub fn gauss_newton_operator<'a>(
        &'a self,
        x: ArrayView2<'_, F>,
        targets: Targets<'a, F>,
        loss: Loss,
    ) -> Result<CurvatureOperator<'a, F>> {
        CurvatureOperator::new(self, x, targets, loss, Curvature::GaussNewton)
    }
}

impl<'a, F: Float> CurvatureOperator<'a, F> {
    /// Runs the forward and backward pass once and keeps what the products need.
    pub fn new(
        mlp: &'a Mlp<F>,
        x: ArrayView2<'_, F>,
        targets: Targets<'a, F>,
        loss: Loss,
        kind: Curvature,
    ) -> Result<Self> {
        let trace = mlp.forward(x)?;
        let (loss_value, logit_grad) = loss_and_logit_gradient(trace.logits(), &targets, loss)?;
        let n = mlp.num_layers();
        let mut output_grads = vec![Array2::zeros((0, 0)); n];
        let mut pre_grads = vec![Array2::zeros((0, 0)); n];
        let mut pending: Vec<Option<Array2<F>>> = vec![None; n + 1];
        pending[n] = Some(logit_grad.clone());
        for j in (0..n).rev() {
            let layer = &mlp.layers()[j];
            let out_grad = pending[j + 1]
                .take()
                .expect("every node feeds the next layer");
            let act = layer.activation;
            let mut delta = out_grad.clone();
            Zip::from(&mut delta)
                .and(&trace.pre_activations[j])
                .for_each(|d, &p| *d *= act.derivative(p));
            if let Some(k) = layer.skip_from {
                add_into(&mut pending[k], delta.view());
            }
            if j > 0 {
                let sm = F::from_f64_rounded(layer.branch_scale * layer.forward_multiplier);
                let mut back = Array2::zeros((delta.nrows(), layer.fan_in));
                gemm(sm, &delta, &mlp.w(j), F::zero(), &mut back);
                add_owned_into(&mut pending[j], back);
            }
            output_grads[j] = out_grad;
            pre_grads[j] = delta;
        }
        let (gradient, _) = mlp.backward_impl(&trace, logit_grad.view(), false);
        Ok(Self {
            mlp,
            targets,
            loss,
            kind,
            trace,
            loss_value,
            gradient,
            output_grads,
            pre_grads,
        })
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
        self.mlp.num_params()
    }

    /// The product with a checked direction (length and finiteness).
    pub fn product(&self, v: ArrayView1<'_, F>) -> Result<Array1<F>> {
        self.checked_product(v)
    }

    /// The whole matrix, column by column (for tiny networks and tests: `n` products).
    pub fn to_dense(&self) -> Array2<F> {
        self.dense()
            .expect("an MLP's curvature products have no failure path")
    }
}

impl<F: Float> CurvatureProduct<F> for CurvatureOperator<'_, F> {
    const NAME: &'static str = "CurvatureOperator";

    fn dimension(&self) -> usize {
        self.num_params()
    }

    fn product_contiguous(
        &self,
        v: ArrayView1<'_, F>,
        mut out: ArrayViewMut1<'_, F>,
    ) -> Result<()> {
        let mlp = self.mlp;
        let trace = &self.trace;
        let n = mlp.num_layers();
        let batch = trace.input.nrows();
        // Forward R-pass: directional derivatives R{pre_j} and R{a_k} (R{input} = 0).
        let mut r_nodes: Vec<Option<Array2<F>>> = vec![None; n + 1];
        let mut r_pre: Vec<Array2<F>> = Vec::with_capacity(n);
        for (j, layer) in mlp.layers().iter().enumerate() {
            let sm = F::from_f64_rounded(layer.branch_scale * layer.forward_multiplier);
            let s = F::from_f64_rounded(layer.branch_scale);
            let vw = v
                .slice_axis(Axis(0), Slice::from(layer.weight_range()))
                .into_shape_with_order((layer.fan_out, layer.fan_in))
                .expect("weight slice is contiguous");
            let vb = v.slice_axis(Axis(0), Slice::from(layer.bias_range()));
            let mut rpre = Array2::zeros((batch, layer.fan_out));
            gemm(sm, &trace.node(j), &vw.t(), F::zero(), &mut rpre);
            if let Some(ra) = &r_nodes[j] {
                gemm(sm, ra, &mlp.w(j).t(), F::one(), &mut rpre);
            }
            Zip::from(rpre.rows_mut()).for_each(|mut row| row.scaled_add(s, &vb));
            if let Some(k) = layer.skip_from {
                if let Some(ra_skip) = &r_nodes[k] {
                    rpre += ra_skip;
                }
            }
            let act = layer.activation;
            let ra = if act == Activation::Identity {
                rpre.clone()
            } else {
                let mut ra = rpre.clone();
                Zip::from(&mut ra)
                    .and(&trace.pre_activations[j])
                    .for_each(|r, &p| *r *= act.derivative(p));
                ra
            };
            r_nodes[j + 1] = Some(ra);
            r_pre.push(rpre);
        }
        let r_logits = r_nodes[n].take().expect("the output layer ran");
        let u = logit_hessian_vector(trace.logits(), &self.targets, self.loss, r_logits.view());
        if self.kind == Curvature::GaussNewton {
            let (g, _) = mlp.backward_impl(trace, u.view(), false);
            out.assign(&g);
            return Ok(());
        }
        // Backward R-pass: R{∂L/∂a} accumulated per node, R{∂L/∂θ} written per layer.
        let mut pending: Vec<Option<Array2<F>>> = vec![None; n + 1];
        pending[n] = Some(u);
        for j in (0..n).rev() {
            let layer = &mlp.layers()[j];
            let act = layer.activation;
            let mut r_delta = pending[j + 1]
                .take()
                .expect("every node feeds the next layer");
            Zip::from(&mut r_delta)
                .and(&trace.pre_activations[j])
                .for_each(|r, &p| *r *= act.derivative(p));
            if !act.is_piecewise_linear() {
                Zip::from(&mut r_delta)
                    .and(&self.output_grads[j])
                    .and(&trace.pre_activations[j])
                    .and(&r_pre[j])
                    .for_each(|r, &g, &p, &rp| *r += g * act.second_derivative(p) * rp);
            }
            if let Some(k) = layer.skip_from {
                add_into(&mut pending[k], r_delta.view());
            }
            let sm = F::from_f64_rounded(layer.branch_scale * layer.forward_multiplier);
            let s = F::from_f64_rounded(layer.branch_scale);
            let delta = &self.pre_grads[j];
            let (mut ow, mut ob) = split_layer_mut(out.view_mut(), layer);
            gemm(sm, &r_delta.t(), &trace.node(j), F::zero(), &mut ow);
            if let Some(ra) = &r_nodes[j] {
                gemm(sm, &delta.t(), ra, F::one(), &mut ow);
            }
            ob.assign(&r_delta.sum_axis(Axis(0)));
            ob.mapv_inplace(|x| x * s);
            if j > 0 {
                let vw = v
                    .slice_axis(Axis(0), Slice::from(layer.weight_range()))
                    .into_shape_with_order((layer.fan_out, layer.fan_in))
                    .expect("weight slice is contiguous");
                let mut back = Array2::zeros((batch, layer.fan_in));
                gemm(sm, &r_delta, &mlp.w(j), F::zero(), &mut back);
                gemm(sm, delta, &vw, F::one(), &mut back);
                add_owned_into(&mut pending[j], back);
            }
        }
        Ok(())
    }
}

impl<F: Float> LinearOperator<F> for CurvatureOperator<'_, F> {
    fn dim(&self) -> usize {
        self.num_params()
    }

    /// # Panics
    /// If `x` or `y` does not have length [`LinearOperator::dim`] (the trait's contract).
    fn apply(&self, x: ArrayView1<'_, F>, y: ArrayViewMut1<'_, F>) {
        self.apply_or_panic(x, y);
    }
}
