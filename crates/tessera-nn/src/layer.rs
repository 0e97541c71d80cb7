//! The [`Layer`] trait: one stage of a network, stateless with respect to its parameters.
//!
//! A layer owns only its hyper-parameters (sizes, stride, scale). Its learnable parameters are
//! a slice of the model's one flat parameter vector (what Lanczos, pruning masks, RiFT and the
//! optimisers operate on), its non-learnable buffers (batch-norm running statistics) a slice of
//! a second flat vector, and every method receives those slices — the same contract as
//! [`tessera_core::LogitMask`]. Layers are therefore `Send + Sync` and object-safe, and a
//! [`crate::Sequential`] keeps them as `Box<dyn Layer<F>>`.
//!
//! Tensors are batch-first [`ArrayD`]s: `(batch, features)` for dense layers,
//! `(batch, channels, height, width)` (NCHW, PyTorch's layout) for images and
//! `(batch, tokens, features)` for sequences.
//!
//! Passes:
//! - [`Layer::forward`] returns the output and a [`Cache`] of whatever the backward pass needs
//!   beyond the input and output (batch-norm statistics, pooling arg-maxes, dropout masks);
//! - [`Layer::backward`] maps $\partial L/\partial y$ to $\partial L/\partial x$ and *adds*
//!   $\partial L/\partial \theta$ into the layer's slice of a flat gradient vector;
//! - [`Layer::forward_tangent`] and [`Layer::backward_tangent`] are Pearlmutter's (1994)
//!   R-operator: the directional derivative $R\{y\} = J_\theta v + J_x R\{x\}$ of the output
//!   along a parameter direction $v$ and an input tangent, and the directional derivative of
//!   the backward pass, which together give exact Hessian-vector products (and, with the
//!   ordinary backward pass, Gauss–Newton-vector products). Layers that do not implement them
//!   return [`Error::Unsupported`].

use std::fmt::Debug;

use ndarray::{ArrayD, ArrayViewD};
use rand::{Rng, RngCore};
use tessera_core::RejectInput;

use crate::error::{Error, Result};
use crate::Float;

/// Training or evaluation behaviour (batch norm's statistics, dropout).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Mode {
    /// Batch statistics (and running-statistic updates), dropout active.
    Train,
    /// Running statistics, dropout off.
    #[default]
    Eval,
}

/// What a forward pass is run with: the mode, and the seed of this pass's randomness (dropout
/// masks). A container derives each child's seed from its own, so one seed per pass fixes
/// every mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Context {
    /// Train or eval.
    pub mode: Mode,
    /// Seed of the pass's random draws.
    pub seed: u64,
}

impl Context {
    /// Evaluation mode (no randomness is drawn).
    pub fn eval() -> Self {
        Self {
            mode: Mode::Eval,
            seed: 0,
        }
    }

    /// Training mode with the seed of this pass's dropout masks.
    pub fn train(seed: u64) -> Self {
        Self {
            mode: Mode::Train,
            seed,
        }
    }

    /// The same mode with the seed of child `index` (SplitMix64 of the pair, so children draw
    /// independent streams).
    pub fn child(&self, index: usize) -> Self {
        Self {
            mode: self.mode,
            seed: splitmix64(self.seed ^ splitmix64(index as u64 + 1)),
        }
    }
}

/// SplitMix64's finaliser (Steele et al. 2014): a bijective mix of a 64-bit word.
pub(crate) fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// How a parameter tensor is initialised.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    /// `U(−bound, bound)`; PyTorch's default for dense and convolution weights and biases is
    /// `bound = 1/√fan_in` (kaiming_uniform with `a = √5`).
    Uniform {
        /// Half-width of the interval.
        bound: f64,
    },
    /// `N(0, std²)`.
    Normal {
        /// Standard deviation.
        std: f64,
    },
    /// Every entry `value` (batch-norm scale 1, shift 0).
    Constant(f64),
}

impl Init {
    /// PyTorch's default for a layer with `fan_in` inputs per output: `U(±1/√fan_in)`.
    pub fn pytorch_default(fan_in: usize) -> Self {
        Init::Uniform {
            bound: 1.0 / (fan_in.max(1) as f64).sqrt(),
        }
    }

    /// Fills `out` with draws from `rng` (or the constant).
    pub fn fill<F: Float>(&self, rng: &mut dyn RngCore, out: &mut [F]) {
        match *self {
            Init::Uniform { bound } => {
                for v in out.iter_mut() {
                    let u: f64 = rng.random::<f64>();
                    *v = F::from_f64_rounded(bound * (2.0 * u - 1.0));
                }
            }
            Init::Normal { std } => {
                for v in out.iter_mut() {
                    let z: f64 = rng.sample(rand_distr::StandardNormal);
                    *v = F::from_f64_rounded(std * z);
                }
            }
            Init::Constant(c) => out.fill(F::from_f64_rounded(c)),
        }
    }
}

/// A named parameter tensor of a layer, in the order the layer's slice holds them.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamSpec {
    /// Local name (`"weight"`, `"bias"`; a container prefixes its children's names:
    /// `"conv1.weight"`).
    pub name: String,
    /// Shape (PyTorch's: dense `[out, in]`, conv `[out, in, kh, kw]`), row-major in the slice.
    pub shape: Vec<usize>,
    /// Initialisation.
    pub init: Init,
}

impl ParamSpec {
    /// The same spec named `"{prefix}.{name}"`, as a container names its children's.
    pub fn prefixed(mut self, prefix: &str) -> Self {
        self.name = format!("{prefix}.{}", self.name);
        self
    }

    /// A parameter spec.
    pub fn new(name: impl Into<String>, shape: Vec<usize>, init: Init) -> Self {
        Self {
            name: name.into(),
            shape,
            init,
        }
    }

    /// Number of entries (the product of the shape).
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the tensor has no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A named non-learnable buffer of a layer (batch norm's `running_mean`, `running_var`).
#[derive(Debug, Clone, PartialEq)]
pub struct BufferSpec {
    /// Local name.
    pub name: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Initial value of every entry.
    pub init: f64,
}

impl BufferSpec {
    /// The same spec named `"{prefix}.{name}"`, as a container names its children's.
    pub fn prefixed(mut self, prefix: &str) -> Self {
        self.name = format!("{prefix}.{}", self.name);
        self
    }

    /// A buffer spec.
    pub fn new(name: impl Into<String>, shape: Vec<usize>, init: f64) -> Self {
        Self {
            name: name.into(),
            shape,
            init,
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the buffer has no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What a layer keeps from its forward pass for the backward and R-operator passes, beyond
/// its input and output: tensors (normalised activations, inverse standard deviations,
/// dropout masks), indices (pooling arg-maxes, flags) and the caches of child layers (for
/// containers such as [`crate::Residual`]).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Cache<F> {
    /// Saved tensors, in an order the layer defines.
    pub tensors: Vec<ArrayD<F>>,
    /// Saved indices or flags.
    pub indices: Vec<usize>,
    /// Caches of child layers.
    pub children: Vec<Cache<F>>,
}

impl<F> Cache<F> {
    /// An empty cache (point-wise layers need only their input and output).
    pub fn empty() -> Self {
        Self {
            tensors: Vec::new(),
            indices: Vec::new(),
            children: Vec::new(),
        }
    }

    /// A cache holding `tensors`.
    pub fn with_tensors(tensors: Vec<ArrayD<F>>) -> Self {
        Self {
            tensors,
            indices: Vec::new(),
            children: Vec::new(),
        }
    }

    /// Saved tensor `i`, or an error naming the layer if the cache does not come from it.
    pub fn tensor(&self, i: usize, layer: &str) -> Result<&ArrayD<F>> {
        self.tensors.get(i).ok_or_else(|| foreign_cache(layer))
    }

    /// Saved index `i`, or an error naming the layer if the cache does not come from it.
    pub fn index(&self, i: usize, layer: &str) -> Result<usize> {
        self.indices
            .get(i)
            .copied()
            .ok_or_else(|| foreign_cache(layer))
    }

    /// Child cache `i`, or an error naming the layer if the cache does not come from it.
    pub fn child(&self, i: usize, layer: &str) -> Result<&Cache<F>> {
        self.children.get(i).ok_or_else(|| foreign_cache(layer))
    }
}

fn foreign_cache(layer: &str) -> Error {
    Error::invalid(
        "cache",
        layer.to_string(),
        "the cache does not come from this layer's forward pass",
    )
}

/// One layer's forward pass as the backward and R-operator passes see it.
#[derive(Debug, Clone)]
pub struct Recorded<'a, F> {
    /// The layer's slice of the flat parameters.
    pub params: &'a [F],
    /// The layer's slice of the flat buffers (after the forward pass).
    pub buffers: &'a [F],
    /// The forward input.
    pub input: ArrayViewD<'a, F>,
    /// The forward output.
    pub output: ArrayViewD<'a, F>,
    /// What the forward pass saved.
    pub cache: &'a Cache<F>,
}

/// A direction for the R-operator: the layer's slice `v` of a flat parameter direction and the
/// tangent $R\{x\}$ of its input (`None` when it is zero, e.g. the network input, so layers
/// skip that term).
#[derive(Debug, Clone)]
pub struct Tangent<'a, F> {
    /// The layer's slice of the parameter direction.
    pub params: &'a [F],
    /// $R\{x\}$, or `None` for zero.
    pub input: Option<ArrayViewD<'a, F>>,
}

/// One stage of a network. See the [module docs](self) for the contract.
///
/// Shapes passed to [`Layer::output_shape`] are per example (no batch dimension); tensors
/// passed to the passes are batch-first.
pub trait Layer<F: Float>: Debug + Send + Sync {
    /// The layer's type name, for errors and summaries (`"Conv2d"`).
    fn kind(&self) -> &'static str;

    /// The per-example output shape for a per-example input shape, or a shape error naming
    /// the offending parameter (channel mismatch, kernel larger than the padded input).
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>>;

    /// The learnable parameters, in their order in the layer's slice.
    fn parameters(&self) -> Vec<ParamSpec> {
        Vec::new()
    }

    /// Length of the layer's parameter slice.
    fn parameter_count(&self) -> usize {
        self.parameters().iter().map(ParamSpec::len).sum()
    }

    /// Writes the initial parameters into `out` (length [`Layer::parameter_count`]), drawing
    /// from `rng`; by default each [`ParamSpec`]'s [`Init`] in order.
    fn init_parameters(&self, rng: &mut dyn RngCore, out: &mut [F]) -> Result<()> {
        check_len("parameters", out.len(), self.parameter_count())?;
        let mut offset = 0;
        for spec in self.parameters() {
            let n = spec.len();
            spec.init.fill(rng, &mut out[offset..offset + n]);
            offset += n;
        }
        Ok(())
    }

    /// The non-learnable buffers, in their order in the layer's buffer slice.
    fn buffers(&self) -> Vec<BufferSpec> {
        Vec::new()
    }

    /// Length of the layer's buffer slice.
    fn buffer_count(&self) -> usize {
        self.buffers().iter().map(BufferSpec::len).sum()
    }

    /// Writes the initial buffers into `out` (length [`Layer::buffer_count`]).
    fn init_buffers(&self, out: &mut [F]) -> Result<()> {
        check_len("buffers", out.len(), self.buffer_count())?;
        let mut offset = 0;
        for spec in self.buffers() {
            let n = spec.len();
            out[offset..offset + n].fill(F::from_f64_rounded(spec.init));
            offset += n;
        }
        Ok(())
    }

    /// Whether the output depends on the mode (batch norm, dropout): such layers are not a
    /// fixed function of their input in training mode, so curvature operators run in eval
    /// mode.
    fn is_mode_dependent(&self) -> bool {
        false
    }

    /// The forward pass of a batch: the output and what backward needs. In
    /// [`Mode::Train`] a layer may update its `buffers` (running statistics); in
    /// [`Mode::Eval`] it must not.
    fn forward(
        &self,
        params: &[F],
        buffers: &mut [F],
        input: ArrayViewD<'_, F>,
        ctx: Context,
    ) -> Result<(ArrayD<F>, Cache<F>)>;

    /// The backward pass: given `grad_output` $= \partial L/\partial y$, adds
    /// $\partial L/\partial\theta$ into `grad_params` (the layer's slice of a flat gradient;
    /// `None` skips the parameter gradient, e.g. for adversarial attacks) and returns
    /// $\partial L/\partial x$ when `want_input` (else `None`).
    fn backward(
        &self,
        rec: &Recorded<'_, F>,
        grad_output: ArrayViewD<'_, F>,
        grad_params: Option<&mut [F]>,
        want_input: bool,
    ) -> Result<Option<ArrayD<F>>>;

    /// The backward pass with extra gradients `hooks` — `(path, ∂L/∂(output at path))` — added
    /// at layers inside this one, for losses on inner activations. A path names an inner layer
    /// relative to this one (`"conv1"` in a chain, `"shortcut.proj"` in a residual block, nested
    /// with dots). Containers ([`crate::Chain`], [`crate::Residual`]) route them; other layers
    /// have no inner layers and reject any hook with an error naming it.
    fn backward_with_hooks(
        &self,
        rec: &Recorded<'_, F>,
        grad_output: ArrayViewD<'_, F>,
        hooks: &[Hook<'_, F>],
        grad_params: Option<&mut [F]>,
        want_input: bool,
    ) -> Result<Option<ArrayD<F>>> {
        match hooks.first() {
            None => self.backward(rec, grad_output, grad_params, want_input),
            Some((path, _)) => Err(Error::invalid(
                "hooks",
                path.to_string(),
                format!("{} has no inner layers to hook", self.kind()),
            )),
        }
    }

    /// The output of the inner layer at `path` (as in [`Layer::backward_with_hooks`]) in the
    /// recorded forward pass, or `None` where no inner layer has that path (every path, for
    /// layers that are not containers).
    fn inner_output<'a>(&self, rec: &Recorded<'a, F>, path: &str) -> Option<ArrayViewD<'a, F>> {
        let _ = (rec, path);
        None
    }

    /// Forward R-pass: $R\{y\} = J_\theta v + J_x R\{x\}$ for the direction `tangent`, with a
    /// cache for [`Layer::backward_tangent`]. Layers without an R-operator return
    /// [`Error::Unsupported`].
    fn forward_tangent(
        &self,
        rec: &Recorded<'_, F>,
        tangent: &Tangent<'_, F>,
    ) -> Result<(ArrayD<F>, Cache<F>)> {
        let _ = (rec, tangent);
        Err(unsupported(self.kind(), "forward_tangent (R-operator)"))
    }

    /// Backward R-pass: given $\delta = \partial L/\partial y$ (`grad_output`) and its
    /// directional derivative $R\{\delta\}$ (`grad_output_tangent`), adds
    /// $R\{\partial L/\partial\theta\}$ into `hvp_params` (the layer's slice of the
    /// Hessian-vector product) and returns $R\{\partial L/\partial x\}$ when `want_input`.
    /// `tangent_cache` is what [`Layer::forward_tangent`] returned for the same direction.
    #[allow(clippy::too_many_arguments)]
    fn backward_tangent(
        &self,
        rec: &Recorded<'_, F>,
        tangent: &Tangent<'_, F>,
        tangent_cache: &Cache<F>,
        grad_output: ArrayViewD<'_, F>,
        grad_output_tangent: ArrayViewD<'_, F>,
        hvp_params: &mut [F],
        want_input: bool,
    ) -> Result<Option<ArrayD<F>>> {
        let _ = (
            rec,
            tangent,
            tangent_cache,
            grad_output,
            grad_output_tangent,
            hvp_params,
            want_input,
        );
        Err(unsupported(self.kind(), "backward_tangent (R-operator)"))
    }
}

/// An extra gradient for a loss on an inner activation: the path of the layer whose output it
/// is the gradient of (`"block.conv1"`), and $\partial L/\partial(\text{that output})$.
pub type Hook<'h, F> = (&'h str, ArrayViewD<'h, F>);

/// The error a layer returns for an operation it does not implement.
pub fn unsupported(layer: &str, operation: &str) -> Error {
    Error::Unsupported {
        layer: layer.to_string(),
        operation: operation.to_string(),
    }
}

pub(crate) fn check_len(name: &'static str, found: usize, expected: usize) -> Result<()> {
    if found != expected {
        return Err(Error::shape(
            name,
            format!("length {expected}"),
            format!("length {found}"),
        ));
    }
    Ok(())
}
