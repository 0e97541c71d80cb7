//! The piecewise-linear network view every analysis of this crate reads: per-layer
//! pre-activations of a batch ([`PiecewiseLinear`]), implemented for tessera-nn's [`Mlp`] and
//! for a plain stack of affine layers ([`PiecewiseLinearNet`]).

use std::collections::HashMap;
use std::path::Path;

use ndarray::{Array1, Array2, ArrayView1, ArrayView2};
use safetensors::{Dtype, SafeTensors};
use tessera_core::{check, Float, RejectInput};
use tessera_nn::{Activation, Mlp};

use crate::error::{Error, Result};

/// The non-linearity after a layer: piecewise linear with at most one kink, at 0.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PlActivation {
    /// `max(0, z)`.
    Relu,
    /// `z` for `z > 0`, `slope·z` otherwise (`slope` finite and ≠ 1).
    LeakyRelu {
        /// Slope on the negative side.
        slope: f64,
    },
    /// `z`: no kink, so no boundary (a linear layer, or the output logits).
    Identity,
}

impl PlActivation {
    /// The slope for `z ≤ 0` (1 for the identity).
    pub fn negative_slope(self) -> f64 {
        match self {
            PlActivation::Relu => 0.0,
            PlActivation::LeakyRelu { slope } => slope,
            PlActivation::Identity => 1.0,
        }
    }

    /// Whether the activation has a kink at 0, i.e. its neurons cut the input space.
    pub fn has_kink(self) -> bool {
        self.negative_slope() != 1.0
    }

    /// `φ(z)`.
    pub fn apply<F: Float>(self, z: F) -> F {
        if z > F::zero() {
            z
        } else {
            z * F::from_f64_rounded(self.negative_slope())
        }
    }

    fn validate(self) -> Result<Self> {
        if let PlActivation::LeakyRelu { slope } = self {
            check::finite_scalar("slope", slope)?;
        }
        Ok(self)
    }
}

/// Width and activation of one layer of a piecewise-linear network.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LayerInfo {
    /// Neurons (rows of the weight matrix).
    pub width: usize,
    /// Non-linearity applied to the layer's pre-activations.
    pub activation: PlActivation,
}

/// A network whose every layer is affine followed by a [`PlActivation`], seen through what a
/// forward pass records. Local complexity and activation patterns need only
/// [`PiecewiseLinear::pre_activations`]; the exact partitions also need the affine maps
/// themselves ([`PiecewiseLinear::to_affine`]). Implement it to plug in another model.
pub trait PiecewiseLinear<F: Float>: Sync {
    /// Features per input row.
    fn input_dim(&self) -> usize;

    /// Width and activation of every layer, the output layer last (its activation is the
    /// identity: the logits).
    fn layer_info(&self) -> Vec<LayerInfo>;

    /// Every layer's pre-activations of the batch `x` (rows are inputs), in layer order, each
    /// `(batch, width)`.
    fn pre_activations(&self, x: ArrayView2<'_, F>) -> Result<Vec<Array2<F>>>;

    /// The network as explicit affine layers in `f64`, for the exact partitions.
    fn to_affine(&self) -> Result<PiecewiseLinearNet<f64>>;

    /// The model itself when it is a [`PiecewiseLinearNet`], whose forward pass is plain
    /// `W·h + b` per layer: the `cuda` feature routes only such models to the GPU, since
    /// another model's pre-activations may be computed differently (scaled weights, residual
    /// blocks) and the counts must equal its own.
    fn as_net(&self) -> Option<&PiecewiseLinearNet<F>> {
        None
    }
}

/// One affine layer `pre = W·h + b (+ h_skip)` followed by `φ(pre)`.
#[derive(Debug, Clone, PartialEq)]
pub struct AffineLayer<F> {
    weight: Array2<F>,
    bias: Array1<F>,
    activation: PlActivation,
    skip_from: Option<usize>,
}

impl<F: Float> AffineLayer<F> {
    /// A layer with weight `[out, in]` (PyTorch order) and bias `[out]`; entries must be finite.
    pub fn new(weight: Array2<F>, bias: Array1<F>, activation: PlActivation) -> Result<Self> {
        check::finite("weight", &weight)?;
        check::finite("bias", &bias)?;
        check::positive_size("weight rows", weight.nrows())?;
        check::positive_size("weight columns", weight.ncols())?;
        if bias.len() != weight.nrows() {
            return Err(Error::shape(
                "bias",
                format!("length {} (the weight's rows)", weight.nrows()),
                format!("length {}", bias.len()),
            ));
        }
        Ok(Self {
            weight,
            bias,
            activation: activation.validate()?,
            skip_from: None,
        })
    }

    /// Adds the identity skip `pre += h_k`, where `h_k` is entry `k` of the list
    /// `[input, output of layer 0, output of layer 1, …]` (a residual block closing here).
    pub fn with_skip_from(mut self, node: usize) -> Self {
        self.skip_from = Some(node);
        self
    }

    /// `W`, `[out, in]`.
    pub fn weight(&self) -> ArrayView2<'_, F> {
        self.weight.view()
    }

    /// `b`, `[out]`.
    pub fn bias(&self) -> ArrayView1<'_, F> {
        self.bias.view()
    }

    /// The non-linearity.
    pub fn activation(&self) -> PlActivation {
        self.activation
    }

    /// The node added back before the activation, if any.
    pub fn skip_from(&self) -> Option<usize> {
        self.skip_from
    }

    /// Neurons.
    pub fn width(&self) -> usize {
        self.weight.nrows()
    }

    /// Inputs.
    pub fn fan_in(&self) -> usize {
        self.weight.ncols()
    }
}

/// A network of affine layers with ReLU / leaky-ReLU / identity activations; the last layer is
/// linear (the logits). Built from arrays ([`PiecewiseLinearNet::new`]), from a safetensors file
/// written by tessera-nn ([`PiecewiseLinearNet::from_safetensors`]) or from an [`Mlp`]
/// ([`PiecewiseLinear::to_affine`]).
#[derive(Debug, Clone, PartialEq)]
pub struct PiecewiseLinearNet<F> {
    layers: Vec<AffineLayer<F>>,
}

impl<F: Float> PiecewiseLinearNet<F> {
    /// Checks that consecutive layers fit, that skips refer to earlier nodes of the same width,
    /// and that the last layer is linear.
    pub fn new(layers: Vec<AffineLayer<F>>) -> Result<Self> {
        check::non_empty("layers", layers.len())?;
        // Widths of the nodes [input, out 0, out 1, …].
        let mut node_widths = vec![layers[0].fan_in()];
        for (j, layer) in layers.iter().enumerate() {
            if layer.fan_in() != node_widths[j] {
                return Err(Error::shape(
                    "layers",
                    format!("layer {j} with {} inputs", node_widths[j]),
                    format!("{} inputs", layer.fan_in()),
                ));
            }
            if let Some(k) = layer.skip_from {
                if k > j || node_widths[k] != layer.width() {
                    return Err(Error::invalid(
                        "skip_from",
                        k,
                        format!(
                            "layer {j} may add back node 0..={j} of width {} only",
                            layer.width()
                        ),
                    ));
                }
            }
            node_widths.push(layer.width());
        }
        let last = layers.len() - 1;
        if layers[last].activation.has_kink() {
            return Err(Error::invalid(
                "layers",
                format!("{:?} on the last layer", layers[last].activation),
                "the last layer must be linear (the logits)",
            ));
        }
        Ok(Self { layers })
    }

    /// A network from `(weight [out, in], bias [out])` pairs with `hidden` after every layer but
    /// the last.
    pub fn from_arrays(params: Vec<(Array2<F>, Array1<F>)>, hidden: PlActivation) -> Result<Self> {
        let n = params.len();
        let layers = params
            .into_iter()
            .enumerate()
            .map(|(j, (w, b))| {
                let act = if j + 1 == n {
                    PlActivation::Identity
                } else {
                    hidden
                };
                AffineLayer::new(w, b, act)
            })
            .collect::<Result<Vec<_>>>()?;
        Self::new(layers)
    }

    /// Reads the tensors `layers.{j}.weight` `[out, in]` and `layers.{j}.bias` `[out]`
    /// (`j = 0, 1, …` until a weight is missing; F32 or F64), as tessera-nn's
    /// `Mlp::to_safetensors` writes them, with `hidden` after every layer but the last.
    pub fn from_safetensors(bytes: &[u8], hidden: PlActivation) -> Result<Self> {
        let st_err = |reason: String| Error::Safetensors { reason };
        let tensors = SafeTensors::deserialize(bytes).map_err(|e| st_err(e.to_string()))?;
        let read = |key: &str| -> Result<Option<(Vec<usize>, Vec<F>)>> {
            let view = match tensors.tensor(key) {
                Ok(v) => v,
                Err(_) => return Ok(None),
            };
            let values: Vec<F> = tessera_nn::safetensors_tensor_values(&view, key)?;
            Ok(Some((view.shape().to_vec(), values)))
        };
        let mut params = Vec::new();
        for j in 0.. {
            let wkey = format!("layers.{j}.weight");
            let bkey = format!("layers.{j}.bias");
            let Some((wshape, w)) = read(&wkey)? else {
                break;
            };
            let (bshape, b) =
                read(&bkey)?.ok_or_else(|| st_err(format!("tensor `{bkey}` is missing")))?;
            if wshape.len() != 2 || bshape != [wshape[0]] {
                return Err(Error::shape(
                    "safetensors",
                    format!("`{wkey}` [out, in] and `{bkey}` [out]"),
                    format!("{wshape:?} and {bshape:?}"),
                ));
            }
            check::finite_values("safetensors", w.iter().copied())
                .map_err(|e| e.map_name(|_| "weight"))?;
            let w = Array2::from_shape_vec((wshape[0], wshape[1]), w)
                .map_err(|e| st_err(e.to_string()))?;
            params.push((w, Array1::from(b)));
        }
        if params.is_empty() {
            return Err(st_err("no tensor `layers.0.weight`".into()));
        }
        Self::from_arrays(params, hidden)
    }

    /// [`PiecewiseLinearNet::from_safetensors`] of a file.
    pub fn from_safetensors_file(path: impl AsRef<Path>, hidden: PlActivation) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_safetensors(&bytes, hidden)
    }

    /// The layers in forward order.
    pub fn layers(&self) -> &[AffineLayer<F>] {
        &self.layers
    }

    /// Forward pass: every layer's pre-activations (the last is the logits).
    fn forward_pre(&self, x: ArrayView2<'_, F>) -> Vec<Array2<F>> {
        let mut pres: Vec<Array2<F>> = Vec::with_capacity(self.layers.len());
        let mut nodes: Vec<Array2<F>> = vec![x.to_owned()];
        for (j, layer) in self.layers.iter().enumerate() {
            let mut pre = nodes[j].dot(&layer.weight.t());
            pre += &layer.bias;
            if let Some(k) = layer.skip_from {
                pre += &nodes[k];
            }
            let act = layer.activation;
            nodes.push(pre.mapv(|v| act.apply(v)));
            pres.push(pre);
        }
        pres
    }

    /// The logits of a batch.
    pub fn predict(&self, x: ArrayView2<'_, F>) -> Result<Array2<F>> {
        check_batch(x, self.input_dim())?;
        let mut pres = self.forward_pre(x);
        Ok(pres.pop().unwrap_or_else(|| Array2::zeros((x.nrows(), 0))))
    }
}

/// A batch `(B ≥ 1, input_dim)` of finite values.
pub(crate) fn check_batch<F: Float>(x: ArrayView2<'_, F>, input_dim: usize) -> Result<()> {
    if x.ncols() != input_dim {
        return Err(Error::shape(
            "x",
            format!("(batch, {input_dim})"),
            format!("{:?}", x.dim()),
        ));
    }
    check::non_empty_batch("x", x.shape())?;
    check::finite("x", &x)?;
    Ok(())
}

impl<F: Float> PiecewiseLinear<F> for PiecewiseLinearNet<F> {
    fn input_dim(&self) -> usize {
        self.layers[0].fan_in()
    }

    fn layer_info(&self) -> Vec<LayerInfo> {
        self.layers
            .iter()
            .map(|l| LayerInfo {
                width: l.width(),
                activation: l.activation,
            })
            .collect()
    }

    fn pre_activations(&self, x: ArrayView2<'_, F>) -> Result<Vec<Array2<F>>> {
        check_batch(x, self.input_dim())?;
        Ok(self.forward_pre(x))
    }

    fn as_net(&self) -> Option<&PiecewiseLinearNet<F>> {
        Some(self)
    }

    fn to_affine(&self) -> Result<PiecewiseLinearNet<f64>> {
        Ok(PiecewiseLinearNet {
            layers: self
                .layers
                .iter()
                .map(|l| AffineLayer {
                    weight: l.weight.mapv(|v| v.to_f64_exact()),
                    bias: l.bias.mapv(|v| v.to_f64_exact()),
                    activation: l.activation,
                    skip_from: l.skip_from,
                })
                .collect(),
        })
    }
}

fn mlp_activation(act: Activation) -> Result<PlActivation> {
    // Compared by value rather than matched, so that variants added to tessera-nn later are
    // rejected here instead of breaking the build.
    if act == Activation::Relu {
        Ok(PlActivation::Relu)
    } else if act == Activation::Identity {
        Ok(PlActivation::Identity)
    } else {
        Err(Error::Unsupported {
            reason: format!(
                "activation {act:?} is not piecewise linear (supported: ReLU, identity; \
                 is_piecewise_linear = {})",
                act.is_piecewise_linear()
            ),
        })
    }
}

/// tessera-nn's MLP: pre-activations straight from its forward pass (residual blocks
/// included: their pre-activation `a_skip + s·z` is what the ReLU cuts). The exact partitions
/// ([`PiecewiseLinear::to_affine`]) take plain (non-residual) networks in standard
/// parameterisation, and check the extracted affine maps against the MLP's own forward pass.
impl<F: Float> PiecewiseLinear<F> for Mlp<F> {
    fn input_dim(&self) -> usize {
        self.config().input_dim
    }

    fn layer_info(&self) -> Vec<LayerInfo> {
        let hidden = mlp_activation(self.config().activation).unwrap_or(PlActivation::Identity);
        let n = self.num_layers();
        (0..n)
            .map(|l| LayerInfo {
                width: self.weight(l).map_or(0, |w| w.nrows()),
                activation: if l + 1 == n {
                    PlActivation::Identity
                } else {
                    hidden
                },
            })
            .collect()
    }

    fn pre_activations(&self, x: ArrayView2<'_, F>) -> Result<Vec<Array2<F>>> {
        mlp_activation(self.config().activation)?;
        let trace = self.forward(x)?;
        Ok(trace.pre_activations().to_vec())
    }

    fn to_affine(&self) -> Result<PiecewiseLinearNet<f64>> {
        let config = self.config();
        let hidden = mlp_activation(config.activation)?;
        if config.residual.is_some() {
            return Err(Error::Unsupported {
                reason: "the exact partition of a residual MLP (local complexity and \
                         activation patterns do support it); build a PiecewiseLinearNet with \
                         AffineLayer::with_skip_from instead"
                    .into(),
            });
        }
        let params = (0..self.num_layers())
            .map(|l| {
                Ok((
                    self.weight(l)?.mapv(|v| v.to_f64_exact()),
                    self.bias(l)?.mapv(|v| v.to_f64_exact()),
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        let net = PiecewiseLinearNet::from_arrays(params, hidden)?;
        verify_against_forward(self, &net)?;
        Ok(net)
    }
}

/// The raw weights are the affine maps only in standard parameterisation (other
/// parameterisations scale the product by a forward multiplier): probe both forward passes on
/// a few fixed points so that a mismatch is an error, not a wrong partition.
fn verify_against_forward<F: Float>(mlp: &Mlp<F>, net: &PiecewiseLinearNet<f64>) -> Result<()> {
    let d = mlp.config().input_dim;
    let probe = Array2::from_shape_fn((3, d), |(i, k)| {
        // A fixed, irregular pattern of inputs of moderate size.
        (((i * 7 + k * 13) % 17) as f64 - 8.0) / 8.0
    });
    let expected = mlp.pre_activations(probe.mapv(F::from_f64_rounded).view())?;
    let got = net.forward_pre(probe.mapv(|v| F::from_f64_rounded(v).to_f64_exact()).view());
    let tol = if F::NAME == "f32" { 1e-3 } else { 1e-9 };
    for (l, (e, g)) in expected.iter().zip(&got).enumerate() {
        let scale = g.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        for (a, b) in e.iter().zip(g.iter()) {
            if (a.to_f64_exact() - b).abs() > tol * scale {
                return Err(Error::Unsupported {
                    reason: format!(
                        "layer {l} of the MLP is not `weight·h + bias` (parameterisation \
                         {:?}); only the standard parameterisation has explicit affine maps",
                        mlp.config().parameterization
                    ),
                });
            }
        }
    }
    Ok(())
}

impl PiecewiseLinearNet<f64> {
    /// The parameters as safetensors bytes, `layers.{j}.weight` / `layers.{j}.bias` (F64), the
    /// layout tessera-nn writes (activations and skips are not stored).
    pub fn to_safetensors(&self) -> Result<Vec<u8>> {
        to_safetensors(self)
    }
}

fn to_safetensors(net: &PiecewiseLinearNet<f64>) -> Result<Vec<u8>> {
    let mut buffers: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (j, layer) in net.layers.iter().enumerate() {
        buffers.push((
            format!("layers.{j}.weight"),
            vec![layer.width(), layer.fan_in()],
            layer.weight.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ));
        buffers.push((
            format!("layers.{j}.bias"),
            vec![layer.width()],
            layer.bias.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ));
    }
    let views = buffers
        .iter()
        .map(|(name, shape, bytes)| {
            safetensors::tensor::TensorView::new(Dtype::F64, shape.clone(), bytes)
                .map(|v| (name.clone(), v))
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Safetensors {
            reason: e.to_string(),
        })?;
    let metadata = HashMap::from([("format".to_string(), "tessera-spline".to_string())]);
    safetensors::serialize(views, &Some(metadata)).map_err(|e| Error::Safetensors {
        reason: e.to_string(),
    })
}
