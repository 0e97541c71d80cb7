//! The network: a checked configuration, the flat parameter vector, forward and backward.

use std::ops::Range;
use tessera_core::{check, RejectInput};

use crate::gemm::gemm;
use ndarray::parallel::prelude::*;
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

/// The most parameters an [`Mlp`] may have (2^28: 2 GiB of `f64`); larger configs are an
/// error from [`Mlp::new`], checked before allocating.
pub const MAX_MLP_PARAMETERS: usize = 1 << 28;

/// The largest accepted [`MlpConfig::init_gain`]: larger gains overflow the forward pass.
pub const MAX_INIT_GAIN: f64 = 1e3;

/// The largest accepted `|branch_scale|` of a [`ResidualConfig`].
pub const MAX_BRANCH_SCALE: f64 = 1e3;

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
            if !(r.branch_scale.is_finite() && r.branch_scale.abs() <= MAX_BRANCH_SCALE) {
                return Err(Error::invalid(
                    "branch_scale",
                    r.branch_scale,
                    format!("must be finite with |branch_scale| ≤ {MAX_BRANCH_SCALE}"),
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
            if !(g.is_finite() && g > 0.0 && g <= MAX_INIT_GAIN) {
                return Err(Error::invalid(
                    "init_gain",
                    g,
                    format!("must be finite, > 0 and ≤ {MAX_INIT_GAIN}"),
                ));
            }
        }
        self.parameter_count()?;
        Ok(())
    }

    /// The number of parameters of the network (weights and biases), computed with checked
    /// arithmetic; more than [`MAX_MLP_PARAMETERS`] (or an overflow) is an error, before
    /// anything is allocated.
    pub fn parameter_count(&self) -> Result<usize> {
        let too_large = || {
            Error::too_large(
                "parameter count",
                format!(
                    "input_dim {}, hidden_widths {:?}, output_dim {}",
                    self.input_dim, self.hidden_widths, self.output_dim
                ),
                MAX_MLP_PARAMETERS,
            )
        };
        // fan_in·fan_out weights + fan_out biases, times `repeat` layers.
        let layer = |fan_in: usize, fan_out: usize, repeat: usize| {
            fan_in
                .checked_mul(fan_out)
                .and_then(|w| w.checked_add(fan_out))
                .and_then(|p| p.checked_mul(repeat))
        };
        let mut total = 0usize;
        let mut previous = self.input_dim;
        for &width in &self.hidden_widths {
            let mut stage = layer(previous, width, 1);
            if let Some(r) = &self.residual {
                let branch_layers = r.blocks_per_stage.checked_mul(r.branch_depth);
                stage = stage.and_then(|p| {
                    branch_layers
                        .and_then(|k| layer(width, width, k))
                        .and_then(|q| p.checked_add(q))
                });
            }
            total = stage
                .and_then(|p| total.checked_add(p))
                .filter(|&t| t <= MAX_MLP_PARAMETERS)
                .ok_or_else(too_large)?;
            previous = width;
        }
        layer(previous, self.output_dim, 1)
            .and_then(|p| total.checked_add(p))
            .filter(|&t| t <= MAX_MLP_PARAMETERS)
            .ok_or_else(too_large)
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

/// Arrays one training step needs, kept between steps (see [`crate::Trainer`]): every layer's
/// pre-activation and activation, and the per-node gradients of the backward pass.
#[derive(Debug, Clone, Default)]
pub(crate) struct StepBuffers<F> {
    pre: Vec<Array2<F>>,
    act: Vec<Array2<F>>,
    spare: Vec<Option<Array2<F>>>,
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
        check::finite("params", &params)?;
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
        check::finite("x", &x)?;
        check::finite("params", &self.params)?;
        Ok(())
    }

    /// Forward pass of a batch (rows are examples), keeping every layer's pre-activation and
    /// activation.
    pub fn forward(&self, x: ArrayView2<'_, F>) -> Result<ForwardTrace<F>> {
        self.check_input(x)?;
        let mut trace = ForwardTrace {
            input: x.to_owned(),
            pre_activations: Vec::with_capacity(self.layers.len()),
            activations: Vec::with_capacity(self.layers.len()),
        };
        self.forward_into(x, &mut trace.pre_activations, &mut trace.activations);
        Ok(trace)
    }

    /// The forward recursion on a checked batch, into `pre` and `act` (one array per layer),
    /// reusing arrays of the right shape from an earlier call: a training loop allocates them
    /// once.
    fn forward_into(
        &self,
        x: ArrayView2<'_, F>,
        pre: &mut Vec<Array2<F>>,
        act: &mut Vec<Array2<F>>,
    ) {
        let batch = x.nrows();
        let n = self.layers.len();
        for buffers in [&mut *pre, &mut *act] {
            buffers.truncate(n);
            for (j, layer) in self.layers.iter().enumerate() {
                match buffers.get(j) {
                    Some(a) if a.dim() == (batch, layer.fan_out) => {}
                    Some(_) => buffers[j] = Array2::zeros((batch, layer.fan_out)),
                    None => buffers.push(Array2::zeros((batch, layer.fan_out))),
                }
            }
        }
        for (j, layer) in self.layers.iter().enumerate() {
            let s = F::from_f64_rounded(layer.branch_scale);
            let m = F::from_f64_rounded(layer.forward_multiplier);
            let (done, rest) = act.split_at_mut(j);
            let node = |k: usize| if k == 0 { x.view() } else { done[k - 1].view() };
            // β = 0: the product overwrites the buffer.
            gemm(s * m, &node(j), &self.w(j).t(), F::zero(), &mut pre[j]);
            let skip = layer.skip_from.map(node);
            bias_and_activation(
                &mut pre[j],
                &mut rest[0],
                self.b(j),
                skip,
                s,
                layer.activation,
            );
        }
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
        let mut grad = Array1::zeros(self.params.len());
        let value =
            self.loss_and_gradient_into(x, targets, loss, &mut StepBuffers::default(), &mut grad)?;
        Ok((value, grad))
    }

    /// [`Mlp::loss_and_gradient`] into a caller's gradient vector (every entry is overwritten),
    /// reusing the activation buffers of earlier calls: one training step allocates nothing
    /// of the network's size.
    pub(crate) fn loss_and_gradient_into(
        &self,
        x: ArrayView2<'_, F>,
        targets: &Targets<'_, F>,
        loss: Loss,
        buffers: &mut StepBuffers<F>,
        grad: &mut Array1<F>,
    ) -> Result<F> {
        self.check_input(x)?;
        if grad.len() != self.params.len() {
            *grad = Array1::zeros(self.params.len());
        }
        let StepBuffers { pre, act, spare } = buffers;
        self.forward_into(x, pre, act);
        let logits = act.last().expect("a network has at least one layer");
        let (value, logit_grad) = loss_and_logit_gradient(logits.view(), targets, loss)?;
        self.backward_core(x, pre, act, logit_grad.view(), Some(grad), false, spare);
        Ok(value)
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
        let input = self.backward_core(
            trace.input.view(),
            &trace.pre_activations,
            &trace.activations,
            logit_grad,
            Some(&mut grad),
            want_input,
            &mut Vec::new(),
        );
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
        self.check_input(x)?;
        let (mut pre, mut act) = (Vec::new(), Vec::new());
        self.forward_into(x, &mut pre, &mut act);
        let logits = act.last().expect("a network has at least one layer");
        let (value, logit_grad) = loss_and_logit_gradient(logits.view(), targets, loss)?;
        let input = self
            .backward_core(
                x,
                &pre,
                &act,
                logit_grad.view(),
                None,
                true,
                &mut Vec::new(),
            )
            .expect("input gradient requested");
        Ok((value, input))
    }

    /// The reverse-mode pass over a forward pass's `pre` and `act` of input `x`. Writes the
    /// flat parameter gradient into `grad` when given (every entry is overwritten) and returns
    /// `∂L/∂x` when `want_input`. `spare` keeps the per-node gradient arrays between calls, so
    /// that a training loop reuses them.
    #[allow(clippy::too_many_arguments)]
    fn backward_core(
        &self,
        x: ArrayView2<'_, F>,
        pre: &[Array2<F>],
        act: &[Array2<F>],
        logit_grad: ArrayView2<'_, F>,
        mut grad: Option<&mut Array1<F>>,
        want_input: bool,
        spare: &mut Vec<Option<Array2<F>>>,
    ) -> Option<Array2<F>> {
        let n = self.layers.len();
        let node = |k: usize| if k == 0 { x.view() } else { act[k - 1].view() };
        spare.resize(n + 1, None);
        // Gradient with respect to node k of [input, activation(0), ...], accumulated from the
        // next layer and from residual skips.
        let mut pending: Vec<Option<Array2<F>>> = vec![None; n + 1];
        pending[n] = Some(logit_grad.to_owned());
        for j in (0..n).rev() {
            let layer = &self.layers[j];
            let mut delta = pending[j + 1]
                .take()
                .expect("every node feeds the next layer");
            let sm = F::from_f64_rounded(layer.branch_scale * layer.forward_multiplier);
            let s = F::from_f64_rounded(layer.branch_scale);
            // `delta` becomes ∂L/∂pre (the dense output z enters pre scaled by s), and the
            // bias gradient its column sums times s, in one pass.
            match grad.as_deref_mut() {
                Some(grad) => {
                    let (mut gw, mut gb) = split_layer_mut(grad.view_mut(), layer);
                    activation_backward(&mut delta, &pre[j], layer.activation, Some(&mut gb));
                    gb.mapv_inplace(|v| v * s);
                    gemm(sm, &delta.t(), &node(j), F::zero(), &mut gw);
                }
                None => activation_backward(&mut delta, &pre[j], layer.activation, None),
            }
            if let Some(k) = layer.skip_from {
                add_into(&mut pending[k], delta.view());
            }
            if j > 0 || want_input {
                let shape = (delta.nrows(), layer.fan_in);
                match &mut pending[j] {
                    // A residual skip already put a gradient here: add the product to it.
                    Some(acc) => {
                        let mut back = Array2::zeros(shape);
                        gemm(sm, &delta, &self.w(j), F::zero(), &mut back);
                        *acc += &back;
                    }
                    slot @ None => {
                        let mut back = match spare[j].take() {
                            Some(buffer) if buffer.dim() == shape && j > 0 => buffer,
                            _ => Array2::zeros(shape),
                        };
                        gemm(sm, &delta, &self.w(j), F::zero(), &mut back);
                        *slot = Some(back);
                    }
                }
            }
            spare[j + 1] = Some(delta);
        }
        pending[0].take()
    }
}

/// Row × column count from which an element-wise pass is split across the rayon pool (a
/// task costs a few µs, a row of 512 ReLUs a fraction of one).
const PARALLEL_MIN_ELEMENTS: usize = 1 << 15;

fn parallel_worthwhile(elements: usize) -> bool {
    parallel_worthwhile_at(elements, rayon::current_num_threads())
}

fn parallel_worthwhile_at(elements: usize, threads: usize) -> bool {
    elements >= PARALLEL_MIN_ELEMENTS && threads > 1
}

/// `pre ← pre + b` (or `pre ← pre + (a_skip + s·b)` closing a residual block), then
/// `act ← φ(pre)`, row by row, split over rows across the rayon pool for large batches. Each
/// entry sees the same operations in the same order as unfused passes would.
fn bias_and_activation<F: Float>(
    pre: &mut Array2<F>,
    act: &mut Array2<F>,
    bias: ArrayView1<'_, F>,
    skip: Option<ArrayView2<'_, F>>,
    s: F,
    activation: Activation,
) {
    let bias = bias.to_vec();
    let row = |mut p: ArrayViewMut1<'_, F>,
               mut a: ArrayViewMut1<'_, F>,
               skip: Option<ArrayView1<'_, F>>| {
        let (p, a) = (
            p.as_slice_mut().expect("own arrays are contiguous"),
            a.as_slice_mut().expect("own arrays are contiguous"),
        );
        match skip {
            None => p.iter_mut().zip(&bias).for_each(|(p, &b)| *p += b),
            Some(skip) => Zip::from(&skip)
                .and(&mut *p)
                .and(&bias)
                .for_each(|&a, p, &b| *p += a + s * b),
        }
        apply_activation(p, a, activation);
    };
    let parallel = parallel_worthwhile(pre.len());
    match skip {
        None => {
            let zip = Zip::from(pre.rows_mut()).and(act.rows_mut());
            if parallel {
                zip.par_for_each(|p, a| row(p, a, None));
            } else {
                zip.for_each(|p, a| row(p, a, None));
            }
        }
        Some(skip) => {
            let zip = Zip::from(pre.rows_mut())
                .and(act.rows_mut())
                .and(skip.rows());
            if parallel {
                zip.par_for_each(|p, a, k| row(p, a, Some(k)));
            } else {
                zip.for_each(|p, a, k| row(p, a, Some(k)));
            }
        }
    }
}

/// `a ← φ(p)` with the activation chosen once per row, so each loop is a plain map the
/// compiler vectorises.
fn apply_activation<F: Float>(p: &[F], a: &mut [F], activation: Activation) {
    fn map<F: Float>(p: &[F], a: &mut [F], f: impl Fn(F) -> F) {
        a.iter_mut().zip(p).for_each(|(a, &p)| *a = f(p));
    }
    match activation {
        Activation::Identity => a.copy_from_slice(p),
        Activation::Relu => map(p, a, |v| Activation::Relu.value(v)),
        Activation::Gelu => map(p, a, |v| Activation::Gelu.value(v)),
    }
}

/// One row of [`activation_backward`]: `d ← d ⊙ f(p)` and `g ← g + d`, in one loop.
fn backward_row<F: Float>(d: &mut [F], p: &[F], g: Option<&mut [F]>, f: impl Fn(F) -> F) {
    match g {
        Some(g) => d.iter_mut().zip(p).zip(g).for_each(|((d, &p), g)| {
            *d *= f(p);
            *g += *d;
        }),
        None => d.iter_mut().zip(p).for_each(|(d, &p)| *d *= f(p)),
    }
}

/// `delta ← delta ⊙ φ'(pre)` and, when asked, `bias_grad ← Σ_rows delta` (each column summed
/// from zero in row order, as `sum_axis(Axis(0))` does), in one pass split over column blocks
/// across the rayon pool: every column is still summed by one thread in the same order, so
/// the sums do not depend on the number of threads.
fn activation_backward<F: Float>(
    delta: &mut Array2<F>,
    pre: &Array2<F>,
    activation: Activation,
    bias_grad: Option<&mut ArrayViewMut1<'_, F>>,
) {
    let cols = delta.ncols();
    let threads = rayon::current_num_threads();
    let block = if parallel_worthwhile(delta.len()) {
        cols.div_ceil(threads).next_multiple_of(16).max(16)
    } else {
        cols.max(1)
    };
    let pass =
        |mut d: ArrayViewMut2<'_, F>, p: ArrayView2<'_, F>, mut g: Option<ArrayViewMut1<'_, F>>| {
            if let Some(g) = g.as_mut() {
                g.fill(F::zero());
            }
            let mut g = g
                .as_mut()
                .map(|g| g.as_slice_mut().expect("bias slots are contiguous"));
            for (mut d, p) in d.rows_mut().into_iter().zip(p.rows()) {
                let d = d.as_slice_mut().expect("rows of own arrays are contiguous");
                let p = p.to_slice().expect("rows of own arrays are contiguous");
                let g = g.as_deref_mut();
                match activation {
                    Activation::Identity => {
                        if let Some(g) = g {
                            g.iter_mut().zip(&*d).for_each(|(g, &d)| *g += d);
                        }
                    }
                    Activation::Relu => backward_row(d, p, g, |v| Activation::Relu.derivative(v)),
                    Activation::Gelu => backward_row(d, p, g, |v| Activation::Gelu.derivative(v)),
                }
            }
        };
    match bias_grad {
        Some(gb) => {
            let blocks = delta
                .axis_chunks_iter_mut(Axis(1), block)
                .into_par_iter()
                .zip(pre.axis_chunks_iter(Axis(1), block))
                .zip(gb.axis_chunks_iter_mut(Axis(0), block));
            blocks.for_each(|((d, p), g)| pass(d, p, Some(g)));
        }
        None => {
            if activation != Activation::Identity {
                let blocks = delta
                    .axis_chunks_iter_mut(Axis(1), block)
                    .into_par_iter()
                    .zip(pre.axis_chunks_iter(Axis(1), block));
                blocks.for_each(|(d, p)| pass(d, p, None));
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MlpConfig;

    /// Large enough that the element-wise passes split across the pool, with residual
    /// blocks (the skip path) and GELU (a non-trivial derivative).
    fn case() -> (Mlp<f64>, Array2<f64>, Vec<usize>) {
        let config = MlpConfig::new(8, vec![256], 5)
            .with_activation(Activation::Gelu)
            .with_residual(crate::model::ResidualConfig {
                blocks_per_stage: 1,
                branch_scale: 0.3,
                branch_depth: 2,
            });
        let mlp = Mlp::new(config, 4).unwrap();
        let x = Array2::from_shape_fn((160, 8), |(i, j)| ((i * 7 + j * 3) as f64 * 0.37).sin());
        let labels = (0..160).map(|i| (i * 3) % 5).collect();
        (mlp, x, labels)
    }

    #[test]
    fn parallel_element_wise_passes_equal_one_thread_bit_for_bit() {
        let (mlp, x, labels) = case();
        assert!(parallel_worthwhile_at(160 * 256, 2));
        let targets = Targets::Hard(&labels);
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let (value, grad) = mlp
                    .loss_and_gradient(x.view(), &targets, Loss::SoftmaxCrossEntropy)
                    .unwrap();
                let (_, input) = mlp
                    .loss_and_input_gradient(x.view(), &targets, Loss::SoftmaxCrossEntropy)
                    .unwrap();
                let trace = mlp.forward(x.view()).unwrap();
                (value, grad, input, trace.activations().to_vec())
            })
        };
        let one = run(1);
        for threads in [2, 3] {
            assert_eq!(run(threads), one, "{threads} threads");
        }
    }

    #[test]
    fn step_buffers_are_reused_across_batch_sizes() {
        let (mlp, x, labels) = case();
        let mut buffers = StepBuffers::default();
        let mut grad = Array1::zeros(0);
        for rows in [160, 7, 160] {
            let (x, t) = (
                x.slice(ndarray::s![..rows, ..]),
                Targets::Hard(&labels[..rows]),
            );
            // A stale gradient must be overwritten, not added to.
            grad.fill(f64::NAN);
            let value = mlp
                .loss_and_gradient_into(x, &t, Loss::SoftmaxCrossEntropy, &mut buffers, &mut grad)
                .unwrap();
            let (want_value, want) = mlp
                .loss_and_gradient(x, &t, Loss::SoftmaxCrossEntropy)
                .unwrap();
            assert_eq!((value, &grad), (want_value, &want), "{rows} rows");
        }
    }
}
