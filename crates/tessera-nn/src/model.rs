//! The network: a checked configuration, the flat parameter vector, forward and backward.

use std::ops::Range;
use tessera_core::{check, RejectInput};

use crate::gemm::gemm;
use ndarray::{
    Array1, Array2, ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2, Axis, Slice, Zip,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use crate::activation::Activation;
use crate::error::{Error, Result};
use crate::loss::{argmax, loss_and_logit_gradient, Loss, Targets};
use crate::param::{LayerRole, OptimizerFamily, Parameterization};
use crate::Float;

/// Residual blocks after every hidden layer (Inception-ResNet scaling, Szegedy et al. 2017):
/// `h ← φ(h + s·F(h))`, with `F(h) = m·h Wᵀ + b` (`branch_depth = 1`) or
/// `F(h) = m₂·φ(m₁·h W₁ᵀ + b₁) W₂ᵀ + b₂` (`branch_depth = 2`), every branch layer of the
/// stage's width.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ResidualConfig {
    /// Residual blocks after each hidden layer.
    pub blocks_per_stage: usize,
    /// The branch scale `s` (Inception-ResNet uses 0.1–0.3).
    pub branch_scale: f64,
    /// Dense layers in each branch: 1 or 2.
    pub branch_depth: usize,
}

/// Everything that defines an [`Mlp`]'s architecture and parameterisation.
#[derive(Debug, Clone, PartialEq)]
pub struct MlpConfig {
    /// Features per input row.
    pub input_dim: usize,
    /// Width of each hidden layer (may be empty: a linear model).
    pub hidden_widths: Vec<usize>,
    /// Logits per row.
    pub output_dim: usize,
    /// Non-linearity after every hidden layer.
    pub activation: Activation,
    /// Optional residual blocks after every hidden layer.
    pub residual: Option<ResidualConfig>,
    /// SP, NTK or μP.
    pub parameterization: Parameterization,
    /// Initialisation gain `g`; `None` → [`Activation::default_gain`].
    pub init_gain: Option<f64>,
}

impl MlpConfig {
    /// A ReLU network in standard parameterisation without residual blocks.
    pub fn new(input_dim: usize, hidden_widths: Vec<usize>, output_dim: usize) -> Self {
        Self {
            input_dim,
            hidden_widths,
            output_dim,
            activation: Activation::Relu,
            residual: None,
            parameterization: Parameterization::Standard,
            init_gain: None,
        }
    }

    /// Sets the hidden non-linearity.
    pub fn with_activation(mut self, activation: Activation) -> Self {
        self.activation = activation;
        self
    }

    /// Sets the parameterisation.
    pub fn with_parameterization(mut self, parameterization: Parameterization) -> Self {
        self.parameterization = parameterization;
        self
    }

    /// Adds residual blocks.
    pub fn with_residual(mut self, residual: ResidualConfig) -> Self {
        self.residual = Some(residual);
        self
    }

    /// Sets the initialisation gain.
    pub fn with_init_gain(mut self, gain: f64) -> Self {
        self.init_gain = Some(gain);
        self
    }

    fn validate(&self) -> Result<()> {
        if self.input_dim == 0 {
            return Err(Error::invalid("input_dim", 0, "must be at least 1"));
        }
        if self.output_dim == 0 {
            return Err(Error::invalid("output_dim", 0, "must be at least 1"));
        }
        if let Some(i) = self.hidden_widths.iter().position(|&w| w == 0) {
            return Err(Error::invalid(
                "hidden_widths",
                format!("{:?}", self.hidden_widths),
                format!("width of hidden layer {i} is 0"),
            ));
        }
        if let Some(r) = &self.residual {
            if !r.branch_scale.is_finite() {
                return Err(Error::invalid(
                    "branch_scale",
                    r.branch_scale,
                    "must be finite",
                ));
            }
            if !(1..=2).contains(&r.branch_depth) {
                return Err(Error::invalid(
                    "branch_depth",
                    r.branch_depth,
                    "must be 1 or 2",
                ));
            }
        }
        if let Some(g) = self.init_gain {
            if !(g.is_finite() && g > 0.0) {
                return Err(Error::invalid("init_gain", g, "must be finite and > 0"));
            }
        }
        Ok(())
    }
}

/// One dense layer `z = m·(h Wᵀ) + b` followed by `a = φ(pre)`, where `pre = z` or, closing a
/// residual block, `pre = a_skip + s·z`.
#[derive(Debug, Clone, PartialEq)]
pub struct DenseLayer {
    /// Inputs.
    pub fan_in: usize,
    /// Outputs.
    pub fan_out: usize,
    /// Input, hidden or output layer (decides the μP scalings).
    pub role: LayerRole,
    /// Non-linearity after this layer (identity on the output layer).
    pub activation: Activation,
    /// For a layer closing a residual block: the index of the activation added back, in the
    /// list `[input, activation(0), activation(1), …]` (0 is the network input).
    pub skip_from: Option<usize>,
    /// The branch scale `s` (1 without a skip).
    pub branch_scale: f64,
    /// Forward multiplier `m` of the parameterisation.
    pub forward_multiplier: f64,
    /// Standard deviation of the raw weights at initialisation.
    pub init_std: f64,
    /// Offset of `W` (row-major `[fan_out, fan_in]`, PyTorch order) in the flat parameters.
    pub weight_offset: usize,
    /// Offset of `b` in the flat parameters (right after `W`).
    pub bias_offset: usize,
}

impl DenseLayer {
    /// Range of `W` in the flat parameters.
    pub fn weight_range(&self) -> Range<usize> {
        self.weight_offset..self.weight_offset + self.fan_in * self.fan_out
    }

    /// Range of `b` in the flat parameters.
    pub fn bias_range(&self) -> Range<usize> {
        self.bias_offset..self.bias_offset + self.fan_out
    }

    /// Range of `W` and `b` together.
    pub fn param_range(&self) -> Range<usize> {
        self.weight_offset..self.bias_offset + self.fan_out
    }
}

/// Every layer's pre-activations and activations of one forward pass (kept for backward and
/// Hessian passes, and read by tessera-spline).
#[derive(Debug, Clone)]
pub struct ForwardTrace<F> {
    pub(crate) input: Array2<F>,
    pub(crate) pre_activations: Vec<Array2<F>>,
    pub(crate) activations: Vec<Array2<F>>,
}

impl<F: Float> ForwardTrace<F> {
    /// The network input (batch × input_dim).
    pub fn input(&self) -> ArrayView2<'_, F> {
        self.input.view()
    }

    /// Number of dense layers.
    pub fn num_layers(&self) -> usize {
        self.pre_activations.len()
    }

    /// What layer `layer`'s non-linearity receives (`z`, or `a_skip + s·z` closing a residual
    /// block); `None` past the last layer.
    pub fn pre_activation(&self, layer: usize) -> Option<ArrayView2<'_, F>> {
        self.pre_activations.get(layer).map(|a| a.view())
    }

    /// Layer `layer`'s output `φ(pre)`; `None` past the last layer.
    pub fn activation(&self, layer: usize) -> Option<ArrayView2<'_, F>> {
        self.activations.get(layer).map(|a| a.view())
    }

    /// All pre-activations, layer by layer.
    pub fn pre_activations(&self) -> &[Array2<F>] {
        &self.pre_activations
    }

    /// All activations, layer by layer (the last is the logits).
    pub fn activations(&self) -> &[Array2<F>] {
        &self.activations
    }

    /// The logits (batch × output_dim).
    pub fn logits(&self) -> ArrayView2<'_, F> {
        self.activations
            .last()
            .expect("a network has at least one layer")
            .view()
    }

    /// Activation `k` of the list `[input, activation(0), …]`.
    pub(crate) fn node(&self, k: usize) -> ArrayView2<'_, F> {
        if k == 0 {
            self.input.view()
        } else {
            self.activations[k - 1].view()
        }
    }
}

/// A multilayer perceptron with all parameters in one flat vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Mlp<F> {
    config: MlpConfig,
    layers: Vec<DenseLayer>,
    params: Array1<F>,
}

impl<F: Float> Mlp<F> {
    /// Builds and initialises a network from a checked config; weights are drawn from
    /// `ChaCha8Rng::seed_from_u64(seed)`, biases start at 0.
    pub fn new(config: MlpConfig, seed: u64) -> Result<Self> {
        Self::with_rng(config, &mut ChaCha8Rng::seed_from_u64(seed))
    }

    /// Builds and initialises a network, drawing weights from `rng`.
    pub fn with_rng<R: Rng + ?Sized>(config: MlpConfig, rng: &mut R) -> Result<Self> {
        let layers = Self::layout(&config)?;
        let total = layers.last().map_or(0, |l| l.bias_offset + l.fan_out);
        let mut params = Array1::zeros(total);
        for layer in &layers {
            for w in params
                .slice_axis_mut(Axis(0), Slice::from(layer.weight_range()))
                .iter_mut()
            {
                let z: f64 = rng.sample(StandardNormal);
                *w = F::from_f64_rounded(layer.init_std * z);
            }
        }
        Ok(Self {
            config,
            layers,
            params,
        })
    }

    fn layout(config: &MlpConfig) -> Result<Vec<DenseLayer>> {
        config.validate()?;
        let gain = config
            .init_gain
            .unwrap_or_else(|| config.activation.default_gain());
        let mut layers: Vec<DenseLayer> = Vec::new();
        let mut offset = 0usize;
        let mut push = |fan_in: usize,
                        fan_out: usize,
                        role: LayerRole,
                        activation: Activation,
                        skip: Option<(usize, f64)>| {
            let scaling =
                config
                    .parameterization
                    .scaling(role, fan_in, fan_out, gain, OptimizerFamily::Sgd);
            let weight_offset = offset;
            let bias_offset = offset + fan_in * fan_out;
            offset = bias_offset + fan_out;
            layers.push(DenseLayer {
                fan_in,
                fan_out,
                role,
                activation,
                skip_from: skip.map(|(k, _)| k),
                branch_scale: skip.map_or(1.0, |(_, s)| s),
                forward_multiplier: scaling.forward_multiplier,
                init_std: scaling.init_std,
                weight_offset,
                bias_offset,
            });
        };
        let mut previous = config.input_dim;
        // Index of the current hidden state in [input, activation(0), activation(1), ...].
        let mut node = 0usize;
        for (stage, &width) in config.hidden_widths.iter().enumerate() {
            let role = if stage == 0 {
                LayerRole::Input
            } else {
                LayerRole::Hidden
            };
            push(previous, width, role, config.activation, None);
            node += 1;
            previous = width;
            if let Some(r) = &config.residual {
                for _ in 0..r.blocks_per_stage {
                    let skip = node;
                    if r.branch_depth == 2 {
                        push(width, width, LayerRole::Hidden, config.activation, None);
                        node += 1;
                    }
                    push(
                        width,
                        width,
                        LayerRole::Hidden,
                        config.activation,
                        Some((skip, r.branch_scale)),
                    );
                    node += 1;
                }
            }
        }
        push(
            previous,
            config.output_dim,
            LayerRole::Output,
            Activation::Identity,
            None,
        );
        Ok(layers)
    }

    /// The configuration the network was built from.
    pub fn config(&self) -> &MlpConfig {
        &self.config
    }

    /// The dense layers in forward order.
    pub fn layers(&self) -> &[DenseLayer] {
        &self.layers
    }

    /// Number of dense layers (hidden, residual-branch and output).
    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// Number of trainable parameters.
    pub fn num_params(&self) -> usize {
        self.params.len()
    }

    /// All parameters, flat: layer by layer, `W` (row-major `[out, in]`) then `b`.
    pub fn params(&self) -> ArrayView1<'_, F> {
        self.params.view()
    }

    /// Mutable flat parameters (non-finite values are caught by the next forward pass).
    pub fn params_mut(&mut self) -> ArrayViewMut1<'_, F> {
        self.params.view_mut()
    }

    /// Replaces all parameters; checks length and finiteness.
    pub fn set_params(&mut self, params: ArrayView1<'_, F>) -> Result<()> {
        if params.len() != self.params.len() {
            return Err(Error::shape(
                "params",
                format!("length {}", self.params.len()),
                format!("length {}", params.len()),
            ));
        }
        check::finite_values("params", params.iter().copied())?;
        self.params.assign(&params);
        Ok(())
    }

    fn check_layer(&self, layer: usize) -> Result<&DenseLayer> {
        self.layers.get(layer).ok_or_else(|| {
            Error::invalid(
                "layer",
                layer,
                format!("network has {} layers", self.layers.len()),
            )
        })
    }

    /// The layer description, or an error past the last layer.
    pub fn layer(&self, layer: usize) -> Result<&DenseLayer> {
        self.check_layer(layer)
    }

    /// Weight matrix of `layer` (`[fan_out, fan_in]`), a view into the flat parameters.
    pub fn weight(&self, layer: usize) -> Result<ArrayView2<'_, F>> {
        self.check_layer(layer)?;
        Ok(self.w(layer))
    }

    /// Mutable weight matrix of `layer`.
    pub fn weight_mut(&mut self, layer: usize) -> Result<ArrayViewMut2<'_, F>> {
        let l = self.check_layer(layer)?.clone();
        Ok(self
            .params
            .slice_axis_mut(Axis(0), Slice::from(l.weight_range()))
            .into_shape_with_order((l.fan_out, l.fan_in))
            .expect("weight slice is contiguous"))
    }

    /// Bias of `layer`, a view into the flat parameters.
    pub fn bias(&self, layer: usize) -> Result<ArrayView1<'_, F>> {
        let l = self.check_layer(layer)?;
        Ok(self.params.slice_axis(Axis(0), Slice::from(l.bias_range())))
    }

    /// Mutable bias of `layer`.
    pub fn bias_mut(&mut self, layer: usize) -> Result<ArrayViewMut1<'_, F>> {
        let range = self.check_layer(layer)?.bias_range();
        Ok(self.params.slice_axis_mut(Axis(0), Slice::from(range)))
    }

    pub(crate) fn w(&self, layer: usize) -> ArrayView2<'_, F> {
        let l = &self.layers[layer];
        self.params
            .slice_axis(Axis(0), Slice::from(l.weight_range()))
            .into_shape_with_order((l.fan_out, l.fan_in))
            .expect("weight slice is contiguous")
    }

    pub(crate) fn b(&self, layer: usize) -> ArrayView1<'_, F> {
        self.params
            .slice_axis(Axis(0), Slice::from(self.layers[layer].bias_range()))
    }

    /// Checks an input batch: shape `(B ≥ 1, input_dim)` and finite entries; also checks the
    /// parameters are finite.
    pub fn check_input(&self, x: ArrayView2<'_, F>) -> Result<()> {
        if x.ncols() != self.config.input_dim {
            return Err(Error::shape(
                "x",
                format!("(batch, {})", self.config.input_dim),
                format!("{:?}", x.dim()),
            ));
        }
        if x.nrows() == 0 {
            return Err(Error::invalid("x", "0 rows", "batch must not be empty"));
        }
        check::finite_values("x", x.iter().copied())?;
        Ok(check::finite_values("params", self.params.iter().copied())?)
    }

    /// Forward pass of a batch (rows are examples), keeping every layer's pre-activation and
    /// activation.
    pub fn forward(&self, x: ArrayView2<'_, F>) -> Result<ForwardTrace<F>> {
        self.check_input(x)?;
        let batch = x.nrows();
        let mut trace = ForwardTrace {
            input: x.to_owned(),
            pre_activations: Vec::with_capacity(self.layers.len()),
            activations: Vec::with_capacity(self.layers.len()),
        };
        for (j, layer) in self.layers.iter().enumerate() {
            let s = F::from_f64_rounded(layer.branch_scale);
            let m = F::from_f64_rounded(layer.forward_multiplier);
            let mut pre = Array2::zeros((batch, layer.fan_out));
            gemm(s * m, &trace.node(j), &self.w(j).t(), F::zero(), &mut pre);
            let bias = self.b(j);
            match layer.skip_from {
                Some(k) => {
                    Zip::from(pre.rows_mut())
                        .and(trace.node(k).rows())
                        .for_each(|mut row, skip| {
                            Zip::from(&mut row)
                                .and(&skip)
                                .and(&bias)
                                .for_each(|p, &a, &b| *p += a + s * b);
                        });
                }
                None => pre += &bias,
            }
            let act = layer.activation;
            let activation = if act == Activation::Identity {
                pre.clone()
            } else {
                pre.mapv(|v| act.value(v))
            };
            trace.pre_activations.push(pre);
            trace.activations.push(activation);
        }
        Ok(trace)
    }

    /// The logits of a batch.
    pub fn predict(&self, x: ArrayView2<'_, F>) -> Result<Array2<F>> {
        let mut trace = self.forward(x)?;
        Ok(trace.activations.pop().expect("at least one layer"))
    }

    /// Loss of a batch.
    pub fn loss(&self, x: ArrayView2<'_, F>, targets: &Targets<'_, F>, loss: Loss) -> Result<F> {
        let trace = self.forward(x)?;
        Ok(loss_and_logit_gradient(trace.logits(), targets, loss)?.0)
    }

    /// Loss and its gradient with respect to the flat parameters (mean over the batch).
    pub fn loss_and_gradient(
        &self,
        x: ArrayView2<'_, F>,
        targets: &Targets<'_, F>,
        loss: Loss,
    ) -> Result<(F, Array1<F>)> {
        let trace = self.forward(x)?;
        let (value, logit_grad) = loss_and_logit_gradient(trace.logits(), targets, loss)?;
        let (grad, _) = self.backward_impl(&trace, logit_grad.view(), false);
        Ok((value, grad))
    }

    /// Fraction of rows whose arg-max logit is the target class (the label, or the arg-max of
    /// a soft target row).
    pub fn accuracy(&self, x: ArrayView2<'_, F>, targets: &Targets<'_, F>) -> Result<f64> {
        let logits = self.predict(x)?;
        targets.validate(logits.nrows(), logits.ncols(), Loss::Mse)?;
        Ok(accuracy_of(logits.view(), targets))
    }

    /// Backward pass from an externally computed `∂L/∂logits` (e.g. a loss from tessera-ssl):
    /// the gradient with respect to the flat parameters.
    pub fn backward_from_logit_grad(
        &self,
        trace: &ForwardTrace<F>,
        logit_grad: ArrayView2<'_, F>,
    ) -> Result<Array1<F>> {
        self.check_logit_grad(trace, logit_grad)?;
        Ok(self.backward_impl(trace, logit_grad, false).0)
    }

    /// Like [`Mlp::backward_from_logit_grad`], also returning `∂L/∂x` (for FGSM-style
    /// adversarial examples).
    pub fn backward_with_input_grad(
        &self,
        trace: &ForwardTrace<F>,
        logit_grad: ArrayView2<'_, F>,
    ) -> Result<(Array1<F>, Array2<F>)> {
        self.check_logit_grad(trace, logit_grad)?;
        let (grad, input) = self.backward_impl(trace, logit_grad, true);
        Ok((grad, input.expect("input gradient requested")))
    }

    fn check_logit_grad(
        &self,
        trace: &ForwardTrace<F>,
        logit_grad: ArrayView2<'_, F>,
    ) -> Result<()> {
        if trace.num_layers() != self.layers.len() || trace.input.ncols() != self.config.input_dim {
            return Err(Error::shape(
                "trace",
                format!("a trace of this network ({} layers)", self.layers.len()),
                format!("{} layers", trace.num_layers()),
            ));
        }
        if logit_grad.dim() != trace.logits().dim() {
            return Err(Error::shape(
                "logit_grad",
                format!("{:?}", trace.logits().dim()),
                format!("{:?}", logit_grad.dim()),
            ));
        }
        Ok(check::finite_values(
            "logit_grad",
            logit_grad.iter().copied(),
        )?)
    }

    /// Reverse-mode pass; `logit_grad` is `∂L/∂logits`. Returns the flat parameter gradient and,
    /// when asked, `∂L/∂x`.
    pub(crate) fn backward_impl(
        &self,
        trace: &ForwardTrace<F>,
        logit_grad: ArrayView2<'_, F>,
        want_input: bool,
    ) -> (Array1<F>, Option<Array2<F>>) {
        let mut grad = Array1::zeros(self.params.len());
        let input = self.backward_into(trace, logit_grad, Some(&mut grad), want_input);
        (grad, input)
    }

    /// Loss of a batch and its gradient with respect to the input `x` only: the backward pass
    /// skips every parameter gradient (about a third of the work), which is what attacks
    /// need (see [`crate::attack`]).
    pub fn loss_and_input_gradient(
        &self,
        x: ArrayView2<'_, F>,
        targets: &Targets<'_, F>,
        loss: Loss,
    ) -> Result<(F, Array2<F>)> {
        let trace = self.forward(x)?;
        let (value, logit_grad) = loss_and_logit_gradient(trace.logits(), targets, loss)?;
        let input = self
            .backward_into(&trace, logit_grad.view(), None, true)
            .expect("input gradient requested");
        Ok((value, input))
    }

    /// The reverse-mode pass behind [`Mlp::backward_impl`]: writes the flat parameter
    /// gradient into `grad` when given (it must be zero on entry and have the parameters'
    /// length) and returns `∂L/∂x` when `want_input`.
    fn backward_into(
        &self,
        trace: &ForwardTrace<F>,
        logit_grad: ArrayView2<'_, F>,
        mut grad: Option<&mut Array1<F>>,
        want_input: bool,
    ) -> Option<Array2<F>> {
        let n = self.layers.len();
        // Gradient with respect to node k of [input, activation(0), ...], accumulated from the
        // next layer and from residual skips.
        let mut pending: Vec<Option<Array2<F>>> = vec![None; n + 1];
        pending[n] = Some(logit_grad.to_owned());
        for j in (0..n).rev() {
            let layer = &self.layers[j];
            let mut delta = pending[j + 1]
                .take()
                .expect("every node feeds the next layer");
            let act = layer.activation;
            if act != Activation::Identity {
                Zip::from(&mut delta)
                    .and(&trace.pre_activations[j])
                    .for_each(|d, &p| *d *= act.derivative(p));
            }
            // `delta` is ∂L/∂pre; the dense output z enters pre scaled by s.
            if let Some(k) = layer.skip_from {
                add_into(&mut pending[k], delta.view());
            }
            let sm = F::from_f64_rounded(layer.branch_scale * layer.forward_multiplier);
            let s = F::from_f64_rounded(layer.branch_scale);
            if let Some(grad) = grad.as_deref_mut() {
                let (mut gw, mut gb) = split_layer_mut(grad.view_mut(), layer);
                gemm(sm, &delta.t(), &trace.node(j), F::zero(), &mut gw);
                gb.assign(&delta.sum_axis(Axis(0)));
                gb.mapv_inplace(|v| v * s);
            }
            if j > 0 || want_input {
                let back = {
                    let mut back = Array2::zeros((delta.nrows(), layer.fan_in));
                    gemm(sm, &delta, &self.w(j), F::zero(), &mut back);
                    back
                };
                add_owned_into(&mut pending[j], back);
            }
        }
        pending[0].take()
    }
}

/// Splits the gradient slot of `layer` into its weight matrix and bias views.
pub(crate) fn split_layer_mut<'a, F: Float>(
    flat: ArrayViewMut1<'a, F>,
    layer: &DenseLayer,
) -> (ArrayViewMut2<'a, F>, ArrayViewMut1<'a, F>) {
    let slot = flat.slice_axis_move(Axis(0), Slice::from(layer.param_range()));
    let (w, b) = slot.split_at(Axis(0), layer.fan_in * layer.fan_out);
    (
        w.into_shape_with_order((layer.fan_out, layer.fan_in))
            .expect("weight slice is contiguous"),
        b,
    )
}

pub(crate) fn add_into<F: Float>(slot: &mut Option<Array2<F>>, value: ArrayView2<'_, F>) {
    match slot {
        Some(acc) => *acc += &value,
        None => *slot = Some(value.to_owned()),
    }
}

pub(crate) fn add_owned_into<F: Float>(slot: &mut Option<Array2<F>>, value: Array2<F>) {
    match slot {
        Some(acc) => *acc += &value,
        None => *slot = Some(value),
    }
}

/// Fraction of rows whose arg-max logit equals the target class.
pub(crate) fn accuracy_of<F: Float>(logits: ArrayView2<'_, F>, targets: &Targets<'_, F>) -> f64 {
    let correct = logits
        .axis_iter(Axis(0))
        .enumerate()
        .filter(|(i, row)| argmax(row.iter().copied()) == targets.class_of(*i))
        .count();
    correct as f64 / logits.nrows() as f64
}
