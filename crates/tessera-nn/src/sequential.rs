//! Composition: [`Chain`] (a named stack of layers, itself a [`Layer`]), [`Residual`]
//! (Inception-ResNet blocks `y = φ(shortcut(x) + s·F(x))`) and [`Sequential`], the model that
//! owns the flat parameter and buffer vectors.

mod curvature;

use std::ops::Range;
use std::sync::Arc;

use ndarray::{Array1, ArrayD, ArrayView1, ArrayView2, ArrayViewD, ArrayViewMut1, Ix2, IxDyn};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tessera_core::{check, RejectInput};

pub use curvature::SequentialCurvature;

use crate::error::{Error, Result};
use crate::layer::{
    check_len, splitmix64, BufferSpec, Cache, Context, Hook, Layer, Mode, ParamSpec, Recorded,
    Tangent,
};
use crate::loss::{loss_and_logit_gradient, Loss, Targets};
use crate::storage;
use crate::Float;

/// One named layer of a [`Chain`] with its slices of the flat vectors.
#[derive(Debug, Clone)]
struct Entry<F> {
    name: String,
    layer: Arc<dyn Layer<F>>,
    params: Range<usize>,
    buffers: Range<usize>,
    output_shape: Vec<usize>,
}

/// A named stack of layers applied in order, stateless like every [`Layer`]: its parameters
/// are the concatenation of its layers' slices, named `"{layer}.{param}"`.
#[derive(Debug, Clone)]
pub struct Chain<F> {
    input_shape: Vec<usize>,
    entries: Vec<Entry<F>>,
}

fn check_name(name: &str, taken: impl Iterator<Item = String>) -> Result<()> {
    if name.is_empty() || name.contains('.') || name.chars().any(char::is_whitespace) {
        return Err(Error::invalid(
            "name",
            format!("{name:?}"),
            "layer names are non-empty, without dots or whitespace",
        ));
    }
    for t in taken {
        if t == name {
            return Err(Error::invalid(
                "name",
                format!("{name:?}"),
                "a layer of that name already exists",
            ));
        }
    }
    Ok(())
}

/// Every layer's output (or tangent) and cache.
type Outputs<F> = (Vec<ArrayD<F>>, Vec<Cache<F>>);
/// Views of every layer's output (or tangent) and cache.
type OutputViews<'a, F> = (Vec<ArrayViewD<'a, F>>, Vec<&'a Cache<F>>);
/// A residual block's saved branch output, pre-activation sum and shortcut output.
type BlockParts<'a, F> = (&'a ArrayD<F>, Option<&'a ArrayD<F>>, Option<&'a ArrayD<F>>);

/// Hook gradients of one chain sorted by layer: those on a layer's own output, and those for
/// layers inside it (with the layer's name taken off their paths).
struct RoutedHooks<'h, F> {
    on_output: Vec<Option<ArrayViewD<'h, F>>>,
    inside: Vec<Vec<Hook<'h, F>>>,
}

impl<F> RoutedHooks<'_, F> {
    fn none() -> Self {
        Self {
            on_output: Vec::new(),
            inside: Vec::new(),
        }
    }
}

/// The slice checks of a container's passes: its recorded parameters, the direction (with a
/// `tangent`), the length `out_len` of the gradient or product slice it writes, when given, and
/// its buffers, which it hands on to its children.
fn check_container_slices<F: Float>(
    layer: &dyn Layer<F>,
    rec: &Recorded<'_, F>,
    tangent: Option<&Tangent<'_, F>>,
    out_len: Option<usize>,
) -> Result<()> {
    let expected = layer.parameter_count();
    match tangent {
        Some(t) => crate::layers::util::check_tangent_slices(expected, rec, t, out_len)?,
        None => crate::layers::util::check_backward_slices(expected, rec, out_len)?,
    }
    check_len("buffers", rec.buffers.len(), layer.buffer_count())
}

/// Splits a hook path at its first dot: the layer's name and the path inside it.
fn split_path(path: &str) -> (&str, Option<&str>) {
    match path.split_once('.') {
        Some((name, rest)) => (name, Some(rest)),
        None => (path, None),
    }
}

/// A chain's forward pass as its other passes read it: the chain's parameter and buffer
/// slices, its input, and every layer's output and cache (`outputs[i]`, `caches[i]`).
struct ChainRecord<'r, 'a, F> {
    params: &'a [F],
    buffers: &'a [F],
    input: ArrayViewD<'a, F>,
    outputs: &'r [ArrayViewD<'a, F>],
    caches: &'r [&'a Cache<F>],
}

impl<'r, 'a, F: Float> ChainRecord<'r, 'a, F> {
    /// A container's record `rec` with its layers' `outputs` and `caches` (from its cache).
    fn of(
        rec: &Recorded<'a, F>,
        outputs: &'r [ArrayViewD<'a, F>],
        caches: &'r [&'a Cache<F>],
    ) -> Self {
        Self {
            params: rec.params,
            buffers: rec.buffers,
            input: rec.input.clone(),
            outputs,
            caches,
        }
    }

    /// What layer `i` (`entry`) recorded, or `None` when the slices do not fit the chain.
    fn layer(&self, i: usize, entry: &Entry<F>) -> Option<Recorded<'a, F>> {
        Some(Recorded {
            params: self.params.get(entry.params.clone())?,
            buffers: self.buffers.get(entry.buffers.clone())?,
            input: match i.checked_sub(1) {
                None => self.input.clone(),
                Some(previous) => self.outputs.get(previous)?.clone(),
            },
            output: self.outputs.get(i)?.clone(),
            cache: self.caches.get(i)?,
        })
    }

    /// [`ChainRecord::layer`], or an error when the record does not come from this chain.
    fn layer_or_error(&self, i: usize, entry: &Entry<F>) -> Result<Recorded<'a, F>> {
        self.layer(i, entry).ok_or_else(|| {
            Error::invalid(
                "cache",
                entry.name.clone(),
                "the recorded pass does not come from this chain",
            )
        })
    }
}

/// What [`Chain::backward_impl`] returns: the input gradient and, when kept, the gradient at
/// every layer output.
struct BackwardOut<F> {
    input: Option<ArrayD<F>>,
    deltas: Vec<Option<ArrayD<F>>>,
}

impl<F: Float> Chain<F> {
    /// An empty chain for per-example inputs of `input_shape` (no batch dimension).
    pub fn new(input_shape: &[usize]) -> Result<Self> {
        if input_shape.contains(&0) {
            return Err(Error::invalid(
                "input_shape",
                format!("{input_shape:?}"),
                "dimensions must be at least 1",
            ));
        }
        Ok(Self {
            input_shape: input_shape.to_vec(),
            entries: Vec::new(),
        })
    }

    /// Appends `layer` under `name` (unique, no dots), checking that it accepts the current
    /// output shape.
    pub fn push(mut self, name: &str, layer: impl Layer<F> + 'static) -> Result<Self> {
        self.add(name, Arc::new(layer))?;
        Ok(self)
    }

    /// Appends a shared layer (see [`Chain::push`]).
    pub fn add(&mut self, name: &str, layer: Arc<dyn Layer<F>>) -> Result<()> {
        check_name(name, self.entries.iter().map(|e| e.name.clone()))?;
        let output_shape = layer.output_shape(self.output_shape())?;
        if output_shape.contains(&0) {
            return Err(Error::invalid(
                "layer",
                format!("{name} ({})", layer.kind()),
                format!("produces an empty output shape {output_shape:?}"),
            ));
        }
        let p0 = self.entries.last().map_or(0, |e| e.params.end);
        let b0 = self.entries.last().map_or(0, |e| e.buffers.end);
        let params = p0..p0 + layer.parameter_count();
        let buffers = b0..b0 + layer.buffer_count();
        self.entries.push(Entry {
            name: name.to_string(),
            layer,
            params,
            buffers,
            output_shape,
        });
        Ok(())
    }

    /// Per-example input shape.
    pub fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }

    /// Per-example output shape (the input shape of an empty chain).
    pub fn output_shape(&self) -> &[usize] {
        self.entries
            .last()
            .map_or(&self.input_shape, |e| &e.output_shape)
    }

    /// Number of layers.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the chain has no layers (the identity).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Layer names in order.
    pub fn names(&self) -> Vec<&str> {
        self.entries.iter().map(|e| e.name.as_str()).collect()
    }

    /// The index of the layer called `name`.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.entries.iter().position(|e| e.name == name)
    }

    /// Layer `i`.
    pub fn layer_at(&self, i: usize) -> Option<&dyn Layer<F>> {
        self.entries.get(i).map(|e| e.layer.as_ref())
    }

    /// Range of layer `i`'s slice in the chain's parameters.
    pub fn param_range(&self, i: usize) -> Option<Range<usize>> {
        self.entries.get(i).map(|e| e.params.clone())
    }

    /// Range of layer `i`'s slice in the chain's buffers.
    pub fn buffer_range(&self, i: usize) -> Option<Range<usize>> {
        self.entries.get(i).map(|e| e.buffers.clone())
    }

    fn total_params(&self) -> usize {
        self.entries.last().map_or(0, |e| e.params.end)
    }

    fn total_buffers(&self) -> usize {
        self.entries.last().map_or(0, |e| e.buffers.end)
    }

    /// All layer outputs and caches of a forward pass.
    pub(crate) fn forward_all(
        &self,
        params: &[F],
        buffers: &mut [F],
        x: ArrayViewD<'_, F>,
        ctx: Context,
    ) -> Result<Outputs<F>> {
        check_len("params", params.len(), self.total_params())?;
        check_len("buffers", buffers.len(), self.total_buffers())?;
        let mut outputs: Vec<ArrayD<F>> = Vec::with_capacity(self.entries.len());
        let mut caches = Vec::with_capacity(self.entries.len());
        for (i, e) in self.entries.iter().enumerate() {
            let input = if i == 0 {
                x.view()
            } else {
                outputs[i - 1].view()
            };
            let (out, cache) = e.layer.forward(
                &params[e.params.clone()],
                &mut buffers[e.buffers.clone()],
                input,
                ctx.child(i),
            )?;
            outputs.push(out);
            caches.push(cache);
        }
        Ok((outputs, caches))
    }

    /// Sorts `hooks` by the layer their path starts with; a hook on a layer's own output must
    /// have that output's shape (`outputs[i]`), one per layer.
    fn route_hooks<'s>(
        &self,
        hooks: &'s [(&str, ArrayViewD<'_, F>)],
        outputs: &[ArrayViewD<'_, F>],
    ) -> Result<RoutedHooks<'s, F>> {
        let n = self.entries.len();
        let mut routed = RoutedHooks {
            on_output: vec![None; n],
            inside: vec![Vec::new(); n],
        };
        for (path, g) in hooks {
            let (name, rest) = split_path(path);
            let i = self.position(name).ok_or_else(|| {
                Error::invalid("hooks", path.to_string(), "no layer has that path")
            })?;
            match rest {
                Some(rest) => routed.inside[i].push((rest, g.view())),
                None => {
                    crate::layers::util::check_like("hooks", g, outputs[i].shape())?;
                    if routed.on_output[i].is_some() {
                        return Err(Error::invalid(
                            "hooks",
                            path.to_string(),
                            "one hook per layer",
                        ));
                    }
                    routed.on_output[i] = Some(g.view());
                }
            }
        }
        Ok(routed)
    }

    /// The output of the layer at `path` (a name of this chain, then paths inside it).
    fn output_at_path<'a>(
        &self,
        record: &ChainRecord<'_, 'a, F>,
        path: &str,
    ) -> Option<ArrayViewD<'a, F>> {
        let (name, rest) = split_path(path);
        let i = self.position(name)?;
        let Some(rest) = rest else {
            return record.outputs.get(i).cloned();
        };
        let e = &self.entries[i];
        e.layer.inner_output(&record.layer(i, e)?, rest)
    }

    /// Reverse pass over all layers. `outputs[i]` is layer `i`'s output; `grad_output` is
    /// ∂L/∂(last output) (`None`: only hook gradients); `hooks.on_output[i]`, when given, is
    /// added to ∂L/∂(output i), and `hooks.inside[i]` go to layer `i`'s
    /// [`Layer::backward_with_hooks`].
    fn backward_impl(
        &self,
        record: &ChainRecord<'_, '_, F>,
        grad_output: Option<ArrayViewD<'_, F>>,
        hooks: &RoutedHooks<'_, F>,
        mut grad_params: Option<&mut [F]>,
        want_input: bool,
        keep_deltas: bool,
    ) -> Result<BackwardOut<F>> {
        let n = self.entries.len();
        if n == 0 {
            return Ok(BackwardOut {
                input: grad_output.map(|g| g.to_owned()),
                deltas: Vec::new(),
            });
        }
        let mut deltas: Vec<Option<ArrayD<F>>> = if keep_deltas {
            vec![None; n]
        } else {
            Vec::new()
        };
        let mut pending: Option<ArrayD<F>> = grad_output.map(|g| g.to_owned());
        for i in (0..n).rev() {
            if let Some(Some(extra)) = hooks.on_output.get(i) {
                pending = Some(match pending {
                    Some(mut p) => {
                        p += extra;
                        p
                    }
                    None => extra.to_owned(),
                });
            }
            let inside = hooks.inside.get(i).map_or(&[][..], Vec::as_slice);
            let e = &self.entries[i];
            let rec = record.layer_or_error(i, e)?;
            let delta = match pending.take() {
                Some(d) => d,
                None if !inside.is_empty() => storage::array_filled(rec.output.shape(), F::zero()),
                None => continue,
            };
            let gp = grad_params.as_deref_mut().map(|g| &mut g[e.params.clone()]);
            let need_input = i > 0 || want_input;
            pending = if inside.is_empty() {
                e.layer.backward(&rec, delta.view(), gp, need_input)?
            } else {
                e.layer
                    .backward_with_hooks(&rec, delta.view(), inside, gp, need_input)?
            };
            if keep_deltas {
                deltas[i] = Some(delta);
            } else {
                storage::recycle_array(delta);
            }
        }
        Ok(BackwardOut {
            input: if want_input { pending } else { None },
            deltas,
        })
    }

    /// Forward R-pass over all layers: every layer output's tangent and tangent cache.
    fn tangent_all(
        &self,
        record: &ChainRecord<'_, '_, F>,
        v: &[F],
        rx: Option<ArrayViewD<'_, F>>,
    ) -> Result<Outputs<F>> {
        let n = self.entries.len();
        let mut tangents: Vec<ArrayD<F>> = Vec::with_capacity(n);
        let mut tcaches = Vec::with_capacity(n);
        for (i, e) in self.entries.iter().enumerate() {
            let rec = record.layer_or_error(i, e)?;
            let input_tangent = if i == 0 {
                rx.as_ref().map(|r| r.view())
            } else {
                Some(tangents[i - 1].view())
            };
            let t = Tangent {
                params: &v[e.params.clone()],
                input: input_tangent,
            };
            let (out, tc) = e.layer.forward_tangent(&rec, &t)?;
            tangents.push(out);
            tcaches.push(tc);
        }
        Ok((tangents, tcaches))
    }

    /// Backward R-pass. `deltas[i]` (∂L/∂(output i)), when given, saves recomputing them.
    #[allow(clippy::too_many_arguments)]
    fn backward_tangent_impl(
        &self,
        record: &ChainRecord<'_, '_, F>,
        v: &[F],
        rx: Option<ArrayViewD<'_, F>>,
        tangents: &[ArrayViewD<'_, F>],
        tcaches: &[&Cache<F>],
        deltas: Option<&[Option<ArrayD<F>>]>,
        grad_output: ArrayViewD<'_, F>,
        grad_output_tangent: ArrayViewD<'_, F>,
        hvp: &mut [F],
        want_input: bool,
    ) -> Result<Option<ArrayD<F>>> {
        let n = self.entries.len();
        if n == 0 {
            return Ok(want_input.then(|| grad_output_tangent.to_owned()));
        }
        let mut delta: Option<ArrayD<F>> = None;
        let mut r_delta = grad_output_tangent.to_owned();
        for i in (0..n).rev() {
            let e = &self.entries[i];
            let rec = record.layer_or_error(i, e)?;
            let t = Tangent {
                params: &v[e.params.clone()],
                input: if i == 0 {
                    rx.as_ref().map(|r| r.view())
                } else {
                    Some(tangents[i - 1].view())
                },
            };
            let need_input = i > 0 || want_input;
            let d_here: ArrayViewD<'_, F> = match (deltas, &delta) {
                (Some(ds), _) => match ds.get(i) {
                    Some(Some(d)) => d.view(),
                    _ => {
                        return Err(Error::invalid(
                            "deltas",
                            i,
                            "missing the output gradient of this layer",
                        ))
                    }
                },
                (None, Some(d)) => d.view(),
                (None, None) => grad_output.view(),
            };
            let r_in = e.layer.backward_tangent(
                &rec,
                &t,
                tcaches[i],
                d_here.view(),
                r_delta.view(),
                &mut hvp[e.params.clone()],
                need_input,
            )?;
            if i == 0 {
                return Ok(if want_input { r_in } else { None });
            }
            if deltas.is_none() {
                delta = e.layer.backward(&rec, d_here.view(), None, true)?;
            }
            r_delta = r_in.ok_or_else(|| {
                Error::invalid(
                    "layer",
                    e.name.clone(),
                    "backward_tangent returned no input tangent",
                )
            })?;
        }
        Ok(None)
    }

    fn views_of<'a>(&self, rec: &Recorded<'a, F>) -> Result<OutputViews<'a, F>> {
        let n = self.entries.len();
        if n == 0 {
            return Ok((Vec::new(), Vec::new()));
        }
        if rec.cache.tensors.len() != n - 1 || rec.cache.children.len() != n {
            return Err(Error::invalid(
                "cache",
                "Chain",
                "the cache does not come from this chain's forward pass",
            ));
        }
        let cache: &'a Cache<F> = rec.cache;
        let mut outs: Vec<ArrayViewD<'a, F>> = cache.tensors.iter().map(|t| t.view()).collect();
        outs.push(rec.output.clone());
        Ok((outs, cache.children.iter().collect()))
    }

    fn tangent_views<'a>(&self, out_tangent_cache: &'a Cache<F>) -> Result<OutputViews<'a, F>> {
        let n = self.entries.len();
        if n > 0
            && (out_tangent_cache.tensors.len() != n - 1 || out_tangent_cache.children.len() != n)
        {
            return Err(Error::invalid(
                "tangent_cache",
                "Chain",
                "the tangent cache does not come from this chain's forward_tangent",
            ));
        }
        Ok((
            out_tangent_cache.tensors.iter().map(|t| t.view()).collect(),
            out_tangent_cache.children.iter().collect(),
        ))
    }
}

impl<F: Float> Layer<F> for Chain<F> {
    fn kind(&self) -> &'static str {
        "Chain"
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        if input != self.input_shape.as_slice() {
            return Err(Error::shape(
                "input",
                format!("{:?} per example", self.input_shape),
                format!("{input:?}"),
            ));
        }
        Ok(self.output_shape().to_vec())
    }

    fn parameters(&self) -> Vec<ParamSpec> {
        self.entries
            .iter()
            .flat_map(|e| {
                e.layer
                    .parameters()
                    .into_iter()
                    .map(|p| p.prefixed(&e.name))
            })
            .collect()
    }

    fn parameter_count(&self) -> usize {
        self.total_params()
    }

    fn init_parameters(&self, rng: &mut dyn rand::RngCore, out: &mut [F]) -> Result<()> {
        check_len("parameters", out.len(), self.total_params())?;
        for e in &self.entries {
            e.layer.init_parameters(rng, &mut out[e.params.clone()])?;
        }
        Ok(())
    }

    fn buffers(&self) -> Vec<BufferSpec> {
        self.entries
            .iter()
            .flat_map(|e| e.layer.buffers().into_iter().map(|b| b.prefixed(&e.name)))
            .collect()
    }

    fn buffer_count(&self) -> usize {
        self.total_buffers()
    }

    fn init_buffers(&self, out: &mut [F]) -> Result<()> {
        check_len("buffers", out.len(), self.total_buffers())?;
        for e in &self.entries {
            e.layer.init_buffers(&mut out[e.buffers.clone()])?;
        }
        Ok(())
    }

    fn is_mode_dependent(&self) -> bool {
        self.entries.iter().any(|e| e.layer.is_mode_dependent())
    }

    fn forward(
        &self,
        params: &[F],
        buffers: &mut [F],
        input: ArrayViewD<'_, F>,
        ctx: Context,
    ) -> Result<(ArrayD<F>, Cache<F>)> {
        let (mut outputs, caches) = self.forward_all(params, buffers, input.view(), ctx)?;
        let out = outputs.pop().unwrap_or_else(|| input.to_owned());
        Ok((
            out,
            Cache {
                tensors: outputs,
                indices: Vec::new(),
                children: caches,
            },
        ))
    }

    fn backward(
        &self,
        rec: &Recorded<'_, F>,
        grad_output: ArrayViewD<'_, F>,
        grad_params: Option<&mut [F]>,
        want_input: bool,
    ) -> Result<Option<ArrayD<F>>> {
        self.backward_with_hooks(rec, grad_output, &[], grad_params, want_input)
    }

    fn backward_with_hooks(
        &self,
        rec: &Recorded<'_, F>,
        grad_output: ArrayViewD<'_, F>,
        hooks: &[Hook<'_, F>],
        grad_params: Option<&mut [F]>,
        want_input: bool,
    ) -> Result<Option<ArrayD<F>>> {
        check_container_slices(self, rec, None, grad_params.as_ref().map(|g| g.len()))?;
        let (outs, caches) = self.views_of(rec)?;
        let routed = self.route_hooks(hooks, &outs)?;
        Ok(self
            .backward_impl(
                &ChainRecord::of(rec, &outs, &caches),
                Some(grad_output),
                &routed,
                grad_params,
                want_input,
                false,
            )?
            .input)
    }

    fn inner_output<'a>(&self, rec: &Recorded<'a, F>, path: &str) -> Option<ArrayViewD<'a, F>> {
        let (outs, caches) = self.views_of(rec).ok()?;
        self.output_at_path(&ChainRecord::of(rec, &outs, &caches), path)
    }

    fn forward_tangent(
        &self,
        rec: &Recorded<'_, F>,
        tangent: &Tangent<'_, F>,
    ) -> Result<(ArrayD<F>, Cache<F>)> {
        check_container_slices(self, rec, Some(tangent), None)?;
        let (outs, caches) = self.views_of(rec)?;
        let (mut tangents, tcaches) = self.tangent_all(
            &ChainRecord::of(rec, &outs, &caches),
            tangent.params,
            tangent.input.as_ref().map(|t| t.view()),
        )?;
        let out = match tangents.pop() {
            Some(t) => t,
            None => tangent
                .input
                .as_ref()
                .map_or_else(|| ArrayD::zeros(rec.input.raw_dim()), |t| t.to_owned()),
        };
        Ok((
            out,
            Cache {
                tensors: tangents,
                indices: Vec::new(),
                children: tcaches,
            },
        ))
    }

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
        check_container_slices(self, rec, Some(tangent), Some(hvp_params.len()))?;
        let (outs, caches) = self.views_of(rec)?;
        let (tangents, tcaches) = self.tangent_views(tangent_cache)?;
        self.backward_tangent_impl(
            &ChainRecord::of(rec, &outs, &caches),
            tangent.params,
            tangent.input.as_ref().map(|t| t.view()),
            &tangents,
            &tcaches,
            None,
            grad_output,
            grad_output_tangent,
            hvp_params,
            want_input,
        )
    }
}

/// A residual block `y = φ(shortcut(x) + s·F(x))` (He et al. 2016; the branch scale `s` of
/// Szegedy et al. 2017, Inception-ResNet, who use `s ∈ [0.1, 0.3]`). `F` is a [`Chain`], the
/// shortcut the identity or a projection chain (a strided 1×1 convolution, say), `φ` an
/// optional point-wise layer (ReLU). Parameter names: the branch's own (`"conv1.weight"`),
/// then `"shortcut.…"`, then `"activation.…"`.
#[derive(Debug, Clone)]
pub struct Residual<F> {
    branch: Chain<F>,
    shortcut: Option<Chain<F>>,
    activation: Option<Arc<dyn Layer<F>>>,
    scale: f64,
}

impl<F: Float> Residual<F> {
    /// A block with branch `F`, identity shortcut, branch scale `scale` (finite) and no
    /// activation. With the identity shortcut the branch must map its input shape to itself
    /// (checked when the block is added to a chain, after any [`Residual::with_shortcut`]).
    pub fn new(branch: Chain<F>, scale: f64) -> Result<Self> {
        if !scale.is_finite() {
            return Err(Error::invalid("branch_scale", scale, "must be finite"));
        }
        for reserved in ["shortcut", "activation"] {
            if branch.position(reserved).is_some() {
                return Err(Error::invalid(
                    "branch",
                    reserved,
                    "the branch may not have a layer of that name (reserved for the block)",
                ));
            }
        }
        Ok(Self {
            branch,
            shortcut: None,
            activation: None,
            scale,
        })
    }

    /// Replaces the identity shortcut by a chain (with the branch's input and output shapes).
    pub fn with_shortcut(mut self, shortcut: Chain<F>) -> Result<Self> {
        self.shortcut = Some(shortcut);
        self.check_shapes()?;
        Ok(self)
    }

    /// Applies `activation` after the sum (it must keep the shape).
    pub fn with_activation(mut self, activation: impl Layer<F> + 'static) -> Result<Self> {
        let shape = activation.output_shape(self.branch.output_shape())?;
        if shape != self.branch.output_shape() {
            return Err(Error::shape(
                "activation",
                format!("{:?}", self.branch.output_shape()),
                format!("{shape:?}"),
            ));
        }
        self.activation = Some(Arc::new(activation));
        Ok(self)
    }

    /// The branch scale `s`.
    pub fn branch_scale(&self) -> f64 {
        self.scale
    }

    /// The branch `F`.
    pub fn branch(&self) -> &Chain<F> {
        &self.branch
    }

    fn check_shapes(&self) -> Result<()> {
        let (i, o) = (self.branch.input_shape(), self.branch.output_shape());
        match &self.shortcut {
            None if i != o => Err(Error::shape(
                "branch",
                format!("output shape {i:?} (the identity shortcut's)"),
                format!("{o:?}"),
            )),
            Some(s) if s.input_shape() != i || s.output_shape() != o => Err(Error::shape(
                "shortcut",
                format!("{i:?} → {o:?} (the branch's)"),
                format!("{:?} → {:?}", s.input_shape(), s.output_shape()),
            )),
            _ => Ok(()),
        }
    }

    /// `(branch, shortcut, activation)` ranges of a slice of the block's parameters or buffers.
    fn ranges(&self, params: bool) -> [Range<usize>; 3] {
        let count = |l: &dyn Layer<F>| {
            if params {
                l.parameter_count()
            } else {
                l.buffer_count()
            }
        };
        let a = count(&self.branch);
        let b = a + self.shortcut.as_ref().map_or(0, |s| count(s));
        let c = b + self.activation.as_ref().map_or(0, |s| count(s.as_ref()));
        [0..a, a..b, b..c]
    }

    fn parts<'a>(&self, rec: &Recorded<'a, F>) -> Result<BlockParts<'a, F>> {
        let fb = rec.cache.tensor(0, "Residual")?;
        let z = rec.cache.tensor(1, "Residual")?;
        let sc = rec.cache.tensor(2, "Residual")?;
        Ok((
            fb,
            self.activation.is_some().then_some(z),
            self.shortcut.is_some().then_some(sc),
        ))
    }

    /// Hooks for layers of the branch (their paths as they are) and of the shortcut chain
    /// (`"shortcut."` taken off).
    #[allow(clippy::type_complexity)]
    fn route_hooks<'s>(
        &self,
        hooks: &'s [Hook<'_, F>],
    ) -> Result<(Vec<Hook<'s, F>>, Vec<Hook<'s, F>>)> {
        let (mut branch, mut shortcut) = (Vec::new(), Vec::new());
        for (path, g) in hooks {
            match split_path(path) {
                ("shortcut", Some(rest)) if self.shortcut.is_some() => {
                    shortcut.push((rest, g.view()))
                }
                ("shortcut" | "activation", _) => {
                    return Err(Error::invalid(
                        "hooks",
                        path.to_string(),
                        "a residual block's sum and shortcut are hooked through the block itself \
                         or a layer inside its shortcut chain",
                    ))
                }
                _ => branch.push((*path, g.view())),
            }
        }
        Ok((branch, shortcut))
    }

    /// The forward pass of one child (`part`: 0 branch, 1 shortcut, 2 activation) as its own
    /// backward and R-operator passes see it.
    fn child_record<'a>(
        &self,
        rec: &Recorded<'a, F>,
        part: usize,
        input: ArrayViewD<'a, F>,
        output: ArrayViewD<'a, F>,
    ) -> Result<Recorded<'a, F>> {
        Ok(Recorded {
            params: &rec.params[self.ranges(true)[part].clone()],
            buffers: &rec.buffers[self.ranges(false)[part].clone()],
            input,
            output,
            cache: rec.cache.child(part, "Residual")?,
        })
    }

    /// The branch's, then the shortcut's and the activation's specs under their prefixes.
    fn child_specs<S>(
        &self,
        specs: impl Fn(&dyn Layer<F>) -> Vec<S>,
        prefixed: impl Fn(S, &str) -> S,
    ) -> Vec<S> {
        let mut out = specs(&self.branch);
        if let Some(s) = &self.shortcut {
            out.extend(specs(s).into_iter().map(|p| prefixed(p, "shortcut")));
        }
        if let Some(a) = &self.activation {
            out.extend(
                specs(a.as_ref())
                    .into_iter()
                    .map(|p| prefixed(p, "activation")),
            );
        }
        out
    }

    /// Runs `init` on each child's part of `out` (parameters or buffers).
    fn init_children(
        &self,
        params: bool,
        out: &mut [F],
        mut init: impl FnMut(&dyn Layer<F>, &mut [F]) -> Result<()>,
    ) -> Result<()> {
        let [rb, rs, ra] = self.ranges(params);
        check_len(
            if params { "parameters" } else { "buffers" },
            out.len(),
            ra.end,
        )?;
        init(&self.branch, &mut out[rb])?;
        if let Some(s) = &self.shortcut {
            init(s, &mut out[rs])?;
        }
        if let Some(a) = &self.activation {
            init(a.as_ref(), &mut out[ra])?;
        }
        Ok(())
    }
}

/// The input gradient (or its tangent) of a block: the branch's plus the shortcut's, when both
/// were asked for.
fn sum_of_paths<F: Float>(
    branch: Option<ArrayD<F>>,
    shortcut: Option<ArrayD<F>>,
) -> Option<ArrayD<F>> {
    match (branch, shortcut) {
        (Some(mut a), Some(b)) => {
            a += &b;
            Some(a)
        }
        _ => None,
    }
}

fn empty<F: Float>() -> ArrayD<F> {
    ArrayD::zeros(IxDyn(&[0]))
}

impl<F: Float> Layer<F> for Residual<F> {
    fn kind(&self) -> &'static str {
        "Residual"
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        self.check_shapes()?;
        Layer::<F>::output_shape(&self.branch, input)
    }

    fn parameters(&self) -> Vec<ParamSpec> {
        self.child_specs(|l| l.parameters(), ParamSpec::prefixed)
    }

    fn parameter_count(&self) -> usize {
        self.ranges(true)[2].end
    }

    fn init_parameters(&self, rng: &mut dyn rand::RngCore, out: &mut [F]) -> Result<()> {
        self.init_children(true, out, |l, o| l.init_parameters(rng, o))
    }

    fn buffers(&self) -> Vec<BufferSpec> {
        self.child_specs(|l| l.buffers(), BufferSpec::prefixed)
    }

    fn buffer_count(&self) -> usize {
        self.ranges(false)[2].end
    }

    fn init_buffers(&self, out: &mut [F]) -> Result<()> {
        self.init_children(false, out, |l, o| l.init_buffers(o))
    }

    fn is_mode_dependent(&self) -> bool {
        self.branch.is_mode_dependent()
            || self
                .shortcut
                .as_ref()
                .is_some_and(|s| s.is_mode_dependent())
            || self
                .activation
                .as_ref()
                .is_some_and(|a| a.is_mode_dependent())
    }

    fn forward(
        &self,
        params: &[F],
        buffers: &mut [F],
        input: ArrayViewD<'_, F>,
        ctx: Context,
    ) -> Result<(ArrayD<F>, Cache<F>)> {
        let [pb, ps, pa] = self.ranges(true);
        let [bb, bs, ba] = self.ranges(false);
        check_len("params", params.len(), pa.end)?;
        check_len("buffers", buffers.len(), ba.end)?;
        let (fb, cb) =
            self.branch
                .forward(&params[pb], &mut buffers[bb], input.view(), ctx.child(0))?;
        let (sc, cs) = match &self.shortcut {
            Some(s) => {
                let (o, c) =
                    s.forward(&params[ps], &mut buffers[bs], input.view(), ctx.child(1))?;
                (Some(o), c)
            }
            None => (None, Cache::empty()),
        };
        let s = F::from_f64_rounded(self.scale);
        let mut z = match &sc {
            Some(o) => o.clone(),
            None => input.to_owned(),
        };
        z.zip_mut_with(&fb, |a, &b| *a += s * b);
        let (out, z_saved, ca) = match &self.activation {
            Some(a) => {
                let (o, c) = a.forward(&params[pa], &mut buffers[ba], z.view(), ctx.child(2))?;
                (o, z, c)
            }
            None => (z, empty(), Cache::empty()),
        };
        Ok((
            out,
            Cache {
                tensors: vec![fb, z_saved, sc.unwrap_or_else(empty)],
                indices: Vec::new(),
                children: vec![cb, cs, ca],
            },
        ))
    }

    fn backward(
        &self,
        rec: &Recorded<'_, F>,
        grad_output: ArrayViewD<'_, F>,
        grad_params: Option<&mut [F]>,
        want_input: bool,
    ) -> Result<Option<ArrayD<F>>> {
        self.backward_with_hooks(rec, grad_output, &[], grad_params, want_input)
    }

    fn backward_with_hooks(
        &self,
        rec: &Recorded<'_, F>,
        grad_output: ArrayViewD<'_, F>,
        hooks: &[Hook<'_, F>],
        mut grad_params: Option<&mut [F]>,
        want_input: bool,
    ) -> Result<Option<ArrayD<F>>> {
        check_container_slices(self, rec, None, grad_params.as_ref().map(|g| g.len()))?;
        let (branch_hooks, shortcut_hooks) = self.route_hooks(hooks)?;
        let [pb, ps, pa] = self.ranges(true);
        let (fb, z, sc) = self.parts(rec)?;
        let dz = match (&self.activation, z) {
            (Some(a), Some(z)) => {
                let arec = self.child_record(rec, 2, z.view(), rec.output.clone())?;
                let gp = grad_params.as_deref_mut().map(|g| &mut g[pa]);
                a.backward(&arec, grad_output, gp, true)?.ok_or_else(|| {
                    Error::invalid("activation", a.kind(), "returned no input gradient")
                })?
            }
            _ => grad_output.to_owned(),
        };
        let s = F::from_f64_rounded(self.scale);
        let d_branch = dz.mapv(|v| v * s);
        let brec = self.child_record(rec, 0, rec.input.clone(), fb.view())?;
        let gp = grad_params.as_deref_mut().map(|g| &mut g[pb]);
        let dx_branch = self.branch.backward_with_hooks(
            &brec,
            d_branch.view(),
            &branch_hooks,
            gp,
            want_input,
        )?;
        let dx_short = match (&self.shortcut, sc) {
            (Some(short), Some(sc)) => {
                let srec = self.child_record(rec, 1, rec.input.clone(), sc.view())?;
                let gp = grad_params.map(|g| &mut g[ps]);
                short.backward_with_hooks(&srec, dz.view(), &shortcut_hooks, gp, want_input)?
            }
            _ => want_input.then_some(dz),
        };
        Ok(sum_of_paths(dx_branch, dx_short))
    }

    fn inner_output<'a>(&self, rec: &Recorded<'a, F>, path: &str) -> Option<ArrayViewD<'a, F>> {
        let (fb, _, sc) = self.parts(rec).ok()?;
        match split_path(path) {
            ("shortcut", Some(rest)) => {
                let short = self.shortcut.as_ref()?;
                let srec = self
                    .child_record(rec, 1, rec.input.clone(), sc?.view())
                    .ok()?;
                short.inner_output(&srec, rest)
            }
            ("shortcut" | "activation", None) => None,
            _ => {
                let brec = self
                    .child_record(rec, 0, rec.input.clone(), fb.view())
                    .ok()?;
                self.branch.inner_output(&brec, path)
            }
        }
    }

    fn forward_tangent(
        &self,
        rec: &Recorded<'_, F>,
        tangent: &Tangent<'_, F>,
    ) -> Result<(ArrayD<F>, Cache<F>)> {
        check_container_slices(self, rec, Some(tangent), None)?;
        let [pb, ps, pa] = self.ranges(true);
        let (fb, z, sc) = self.parts(rec)?;
        let brec = self.child_record(rec, 0, rec.input.clone(), fb.view())?;
        let rx = tangent.input.as_ref().map(|t| t.view());
        let (r_fb, tb) = self.branch.forward_tangent(
            &brec,
            &Tangent {
                params: &tangent.params[pb],
                input: rx.clone(),
            },
        )?;
        let (r_sc, ts) = match (&self.shortcut, sc) {
            (Some(short), Some(sc)) => {
                let srec = self.child_record(rec, 1, rec.input.clone(), sc.view())?;
                let (o, c) = short.forward_tangent(
                    &srec,
                    &Tangent {
                        params: &tangent.params[ps],
                        input: rx.clone(),
                    },
                )?;
                (Some(o), c)
            }
            _ => (rx.map(|r| r.to_owned()), Cache::empty()),
        };
        let s = F::from_f64_rounded(self.scale);
        let mut rz = r_fb.mapv(|v| v * s);
        if let Some(r) = &r_sc {
            rz += r;
        }
        let (out, rz_saved, ta) = match (&self.activation, z) {
            (Some(a), Some(z)) => {
                let arec = self.child_record(rec, 2, z.view(), rec.output.clone())?;
                let (o, c) = a.forward_tangent(
                    &arec,
                    &Tangent {
                        params: &tangent.params[pa],
                        input: Some(rz.view()),
                    },
                )?;
                (o, rz, c)
            }
            _ => (rz, empty(), Cache::empty()),
        };
        Ok((
            out,
            Cache {
                tensors: vec![rz_saved],
                indices: Vec::new(),
                children: vec![tb, ts, ta],
            },
        ))
    }

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
        check_container_slices(self, rec, Some(tangent), Some(hvp_params.len()))?;
        let [pb, ps, pa] = self.ranges(true);
        let (fb, z, sc) = self.parts(rec)?;
        let (dz, rdz) = match (&self.activation, z) {
            (Some(a), Some(z)) => {
                let arec = self.child_record(rec, 2, z.view(), rec.output.clone())?;
                let rz = tangent_cache.tensor(0, "Residual")?;
                let dz = a.backward(&arec, grad_output.view(), None, true)?;
                let rdz = a.backward_tangent(
                    &arec,
                    &Tangent {
                        params: &tangent.params[pa.clone()],
                        input: Some(rz.view()),
                    },
                    tangent_cache.child(2, "Residual")?,
                    grad_output.view(),
                    grad_output_tangent.view(),
                    &mut hvp_params[pa],
                    true,
                )?;
                match (dz, rdz) {
                    (Some(d), Some(r)) => (d, r),
                    _ => {
                        return Err(Error::invalid(
                            "activation",
                            a.kind(),
                            "returned no input gradient",
                        ))
                    }
                }
            }
            _ => (grad_output.to_owned(), grad_output_tangent.to_owned()),
        };
        let s = F::from_f64_rounded(self.scale);
        let brec = self.child_record(rec, 0, rec.input.clone(), fb.view())?;
        let rx = tangent.input.as_ref().map(|t| t.view());
        let r_branch = self.branch.backward_tangent(
            &brec,
            &Tangent {
                params: &tangent.params[pb.clone()],
                input: rx.clone(),
            },
            tangent_cache.child(0, "Residual")?,
            dz.mapv(|v| v * s).view(),
            rdz.mapv(|v| v * s).view(),
            &mut hvp_params[pb],
            want_input,
        )?;
        let r_short = match (&self.shortcut, sc) {
            (Some(short), Some(sc)) => {
                let srec = self.child_record(rec, 1, rec.input.clone(), sc.view())?;
                short.backward_tangent(
                    &srec,
                    &Tangent {
                        params: &tangent.params[ps.clone()],
                        input: rx,
                    },
                    tangent_cache.child(1, "Residual")?,
                    dz.view(),
                    rdz.view(),
                    &mut hvp_params[ps],
                    want_input,
                )?
            }
            _ => want_input.then_some(rdz),
        };
        Ok(sum_of_paths(r_branch, r_short))
    }
}

/// Every layer output of one forward pass of a [`Sequential`] (what backward, the curvature
/// operators and tessera-spline read), with the caches the backward pass needs.
#[derive(Debug, Clone)]
pub struct Trace<F: 'static> {
    input: ArrayD<F>,
    outputs: Vec<ArrayD<F>>,
    caches: Vec<Cache<F>>,
    names: Vec<String>,
    mode: Mode,
}

/// A trace hands its tensors back to [`crate::storage`] for the next pass to reuse.
impl<F: 'static> Drop for Trace<F> {
    fn drop(&mut self) {
        fn recycle_all<F: 'static>(trace: &mut Trace<F>) {
            storage::recycle_array(std::mem::replace(
                &mut trace.input,
                ArrayD::from_shape_vec(IxDyn(&[0]), Vec::new()).expect("empty"),
            ));
            std::mem::take(&mut trace.outputs)
                .into_iter()
                .for_each(storage::recycle_array);
            std::mem::take(&mut trace.caches)
                .into_iter()
                .for_each(storage::recycle_cache);
        }
        recycle_all(self);
    }
}

impl<F: Float> Trace<F> {
    /// Views of every layer's output and cache.
    fn layer_views(&self) -> OutputViews<'_, F> {
        (
            self.outputs.iter().map(|o| o.view()).collect(),
            self.caches.iter().collect(),
        )
    }

    /// The network input.
    pub fn input(&self) -> ArrayViewD<'_, F> {
        self.input.view()
    }

    /// The network output (the input for an empty network).
    pub fn output(&self) -> ArrayViewD<'_, F> {
        self.outputs.last().unwrap_or(&self.input).view()
    }

    /// The output as a `(batch, classes)` matrix, or a shape error.
    pub fn logits(&self) -> Result<ArrayView2<'_, F>> {
        let out = self.output();
        let shape = out.shape().to_vec();
        out.into_dimensionality::<Ix2>().map_err(|_| {
            Error::shape(
                "output",
                "(batch, classes) for a loss on the logits",
                format!("{shape:?}"),
            )
        })
    }

    /// Number of layers.
    pub fn len(&self) -> usize {
        self.outputs.len()
    }

    /// Whether the network had no layers.
    pub fn is_empty(&self) -> bool {
        self.outputs.is_empty()
    }

    /// Every layer's output in order (a layer's input is the previous output: the
    /// pre-activation of an activation layer is the output before it).
    pub fn outputs(&self) -> &[ArrayD<F>] {
        &self.outputs
    }

    /// Output of layer `i`.
    pub fn output_at(&self, i: usize) -> Option<ArrayViewD<'_, F>> {
        self.outputs.get(i).map(|o| o.view())
    }

    /// Output of the top-level layer called `name`.
    pub fn get(&self, name: &str) -> Option<ArrayViewD<'_, F>> {
        let i = self.names.iter().position(|n| n == name)?;
        self.output_at(i)
    }

    /// The cache of layer `i` (batch-norm statistics, pooling arg-maxes, …).
    pub fn cache_at(&self, i: usize) -> Option<&Cache<F>> {
        self.caches.get(i)
    }

    /// The mode of the pass.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Layer names in order.
    pub fn names(&self) -> &[String] {
        &self.names
    }
}

/// Gradients from [`Sequential::backward_with`].
#[derive(Debug, Clone)]
pub struct Gradients<F> {
    /// ∂L/∂θ in the flat layout (when asked for).
    pub params: Option<Array1<F>>,
    /// ∂L/∂x (when asked for).
    pub input: Option<ArrayD<F>>,
}

/// One named tensor of a model's flat parameter (or buffer) vector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedRange {
    /// Full name, `"{layer}.{param}"` (`"block2.conv.weight"`).
    pub name: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Range in the flat vector.
    pub range: Range<usize>,
}

/// A network: a [`Chain`] of named layers with the one flat parameter vector (and a flat
/// buffer vector) it runs on.
///
/// Parameters are laid out layer by layer in each layer's declared order and named
/// `"{layer}.{param}"` (nested containers add their own segments), as PyTorch's
/// `state_dict` keys, which [`NamedRange`]s, the parameter groups, optimisers and safetensors
/// checkpoints use.
#[derive(Debug, Clone)]
pub struct Sequential<F> {
    chain: Chain<F>,
    params: Array1<F>,
    buffers: Array1<F>,
    rng: ChaCha8Rng,
    seed: u64,
    passes: u64,
}

impl<F: Float> Sequential<F> {
    /// An empty network for per-example inputs of `input_shape`; the parameters of every layer
    /// pushed are drawn, in push order, from `ChaCha8Rng::seed_from_u64(seed)`, and the
    /// dropout masks of training passes derive from `seed` too.
    pub fn new(input_shape: &[usize], seed: u64) -> Result<Self> {
        Ok(Self {
            chain: Chain::new(input_shape)?,
            params: Array1::zeros(0),
            buffers: Array1::zeros(0),
            rng: ChaCha8Rng::seed_from_u64(seed),
            seed,
            passes: 0,
        })
    }

    /// Appends a layer under `name` (builder style).
    pub fn push(mut self, name: &str, layer: impl Layer<F> + 'static) -> Result<Self> {
        self.add(name, Arc::new(layer))?;
        Ok(self)
    }

    /// Appends a shared layer under `name` and initialises its parameters and buffers.
    pub fn add(&mut self, name: &str, layer: Arc<dyn Layer<F>>) -> Result<()> {
        let mut chain = self.chain.clone();
        chain.add(name, layer.clone())?;
        let np = layer.parameter_count();
        let nb = layer.buffer_count();
        let mut p = vec![F::zero(); np];
        layer.init_parameters(&mut self.rng, &mut p)?;
        let mut b = vec![F::zero(); nb];
        layer.init_buffers(&mut b)?;
        self.params = self.params.iter().copied().chain(p).collect();
        self.buffers = self.buffers.iter().copied().chain(b).collect();
        self.chain = chain;
        Ok(())
    }

    /// The layers.
    pub fn chain(&self) -> &Chain<F> {
        &self.chain
    }

    /// Per-example input shape.
    pub fn input_shape(&self) -> &[usize] {
        self.chain.input_shape()
    }

    /// Per-example output shape.
    pub fn output_shape(&self) -> &[usize] {
        self.chain.output_shape()
    }

    /// Number of top-level layers.
    pub fn len(&self) -> usize {
        self.chain.len()
    }

    /// Whether the network has no layers.
    pub fn is_empty(&self) -> bool {
        self.chain.is_empty()
    }

    /// Top-level layer names in order.
    pub fn names(&self) -> Vec<&str> {
        self.chain.names()
    }

    /// The top-level layer called `name`.
    pub fn layer(&self, name: &str) -> Option<&dyn Layer<F>> {
        self.chain
            .position(name)
            .and_then(|i| self.chain.layer_at(i))
    }

    /// Number of learnable parameters.
    pub fn num_params(&self) -> usize {
        self.params.len()
    }

    /// The flat parameters.
    pub fn params(&self) -> ArrayView1<'_, F> {
        self.params.view()
    }

    /// Mutable flat parameters (non-finite values are caught by the next forward pass).
    pub fn params_mut(&mut self) -> ArrayViewMut1<'_, F> {
        self.params.view_mut()
    }

    /// Replaces all parameters; checks length and finiteness.
    pub fn set_params(&mut self, params: ArrayView1<'_, F>) -> Result<()> {
        check_len("params", params.len(), self.params.len())?;
        check::finite("params", &params)?;
        self.params.assign(&params);
        Ok(())
    }

    /// Number of buffer entries.
    pub fn num_buffers(&self) -> usize {
        self.buffers.len()
    }

    /// The flat buffers (running statistics).
    pub fn buffers(&self) -> ArrayView1<'_, F> {
        self.buffers.view()
    }

    /// Mutable flat buffers.
    pub fn buffers_mut(&mut self) -> ArrayViewMut1<'_, F> {
        self.buffers.view_mut()
    }

    /// Replaces all buffers; checks length and finiteness.
    pub fn set_buffers(&mut self, buffers: ArrayView1<'_, F>) -> Result<()> {
        check_len("buffers", buffers.len(), self.buffers.len())?;
        check::finite("buffers", &buffers)?;
        self.buffers.assign(&buffers);
        Ok(())
    }

    /// Every named parameter tensor with its range in the flat vector.
    pub fn parameter_layout(&self) -> Vec<NamedRange> {
        let mut offset = 0;
        Layer::<F>::parameters(&self.chain)
            .into_iter()
            .map(|p| {
                let range = offset..offset + p.len();
                offset = range.end;
                NamedRange {
                    name: p.name,
                    shape: p.shape,
                    range,
                }
            })
            .collect()
    }

    /// Every named buffer with its range in the flat buffer vector.
    pub fn buffer_layout(&self) -> Vec<NamedRange> {
        let mut offset = 0;
        Layer::<F>::buffers(&self.chain)
            .into_iter()
            .map(|b| {
                let range = offset..offset + b.len();
                offset = range.end;
                NamedRange {
                    name: b.name,
                    shape: b.shape,
                    range,
                }
            })
            .collect()
    }

    /// The parameter tensor called `name` (`"conv1.weight"`), shaped.
    pub fn param(&self, name: &str) -> Result<ArrayViewD<'_, F>> {
        let entry = self
            .parameter_layout()
            .into_iter()
            .find(|e| e.name == name)
            .ok_or_else(|| Error::invalid("name", name.to_string(), "no parameter of that name"))?;
        Ok(
            ArrayViewD::from_shape(IxDyn(&entry.shape), &self.params_slice()[entry.range])
                .expect("the range holds the shape's entries"),
        )
    }

    fn check_input(&self, x: &ArrayViewD<'_, F>, params: &[F]) -> Result<()> {
        crate::layers::util::check_batch("x", x, self.input_shape())?;
        check::finite("x", x)?;
        check::finite_slice("params", params)?;
        Ok(())
    }

    /// Forward pass of a batch (`(batch, …input_shape)`), keeping every layer output. In
    /// [`Mode::Train`] batch norms update their running statistics and dropout draws a fresh
    /// mask (from the model seed and a pass counter).
    pub fn forward(&mut self, x: ArrayViewD<'_, F>, mode: Mode) -> Result<Trace<F>> {
        let ctx = match mode {
            Mode::Train => {
                self.passes += 1;
                Context::train(splitmix64(self.seed ^ splitmix64(self.passes)))
            }
            Mode::Eval => Context::eval(),
        };
        let mut buffers = self.buffers.clone();
        let trace = self.forward_with(
            self.params_slice(),
            buffers.as_slice_mut().expect("owned vector"),
            x,
            ctx,
        )?;
        self.buffers = buffers;
        Ok(trace)
    }

    /// Evaluation-mode forward pass (no state changes).
    pub fn forward_eval(&self, x: ArrayViewD<'_, F>) -> Result<Trace<F>> {
        let mut buffers = self.buffers.clone();
        self.forward_with(
            self.params_slice(),
            buffers.as_slice_mut().expect("owned vector"),
            x,
            Context::eval(),
        )
    }

    /// The evaluation-mode output of a batch.
    pub fn predict(&self, x: ArrayViewD<'_, F>) -> Result<ArrayD<F>> {
        let mut trace = self.forward_eval(x)?;
        Ok(match trace.outputs.pop() {
            Some(out) => out,
            None => std::mem::replace(&mut trace.input, ArrayD::zeros(IxDyn(&[0]))),
        })
    }

    /// Forward pass with explicit parameters and buffers (for finite differences, weight
    /// interpolation, functional use); `buffers` receives the running-statistic updates of a
    /// training pass.
    pub fn forward_with(
        &self,
        params: &[F],
        buffers: &mut [F],
        x: ArrayViewD<'_, F>,
        ctx: Context,
    ) -> Result<Trace<F>> {
        check_len("params", params.len(), self.params.len())?;
        check_len("buffers", buffers.len(), self.buffers.len())?;
        self.check_input(&x, params)?;
        let (outputs, caches) = self.chain.forward_all(params, buffers, x.view(), ctx)?;
        Ok(Trace {
            input: storage::map(&x, |&v| v),
            outputs,
            caches,
            names: self.chain.names().into_iter().map(String::from).collect(),
            mode: ctx.mode,
        })
    }

    fn check_trace(&self, trace: &Trace<F>) -> Result<()> {
        if trace.outputs.len() != self.chain.len()
            || trace.input.shape().get(1..) != Some(self.input_shape())
        {
            return Err(Error::shape(
                "trace",
                format!("a trace of this network ({} layers)", self.chain.len()),
                format!("{} layers", trace.outputs.len()),
            ));
        }
        Ok(())
    }

    /// ∂L/∂θ from `grad_output` $= \partial L/\partial(\text{output})$.
    pub fn backward(&self, trace: &Trace<F>, grad_output: ArrayViewD<'_, F>) -> Result<Array1<F>> {
        let g = self.backward_with(trace, Some(grad_output), &[], true, false)?;
        Ok(g.params.unwrap_or_else(|| Array1::zeros(self.num_params())))
    }

    /// The general backward pass: `grad_output` at the output (or `None`), `hooks` — extra
    /// gradients `(layer path, ∂L/∂(that layer's output))` for losses on intermediate
    /// activations, at top-level layers (`"conv1"`) or inside containers (`"block.conv1"`,
    /// `"block.shortcut.proj"`; [`Sequential::output_of`] reads those outputs) — and which
    /// gradients to compute (`want_params = false` skips the parameter gradient, e.g. for
    /// adversarial examples).
    pub fn backward_with(
        &self,
        trace: &Trace<F>,
        grad_output: Option<ArrayViewD<'_, F>>,
        hooks: &[(&str, ArrayViewD<'_, F>)],
        want_params: bool,
        want_input: bool,
    ) -> Result<Gradients<F>> {
        self.backward_at(
            self.params_slice(),
            trace,
            grad_output,
            hooks,
            want_params,
            want_input,
        )
    }

    /// The model's parameters as a slice (the vector is owned, so always contiguous).
    fn params_slice(&self) -> &[F] {
        self.params.as_slice().expect("owned vector")
    }

    /// The record of a forward pass `trace` at `params` (`views`: its
    /// [`Trace::layer_views`]), as the chain's passes read it.
    fn record<'r, 'a>(
        &'a self,
        params: &'a [F],
        trace: &'a Trace<F>,
        views: &'r OutputViews<'a, F>,
    ) -> ChainRecord<'r, 'a, F> {
        ChainRecord {
            params,
            buffers: self.buffers.as_slice().expect("owned vector"),
            input: trace.input.view(),
            outputs: &views.0,
            caches: &views.1,
        }
    }

    /// The output of the layer at `path` in `trace`: a top-level name (`"conv1"`, as
    /// [`Trace::get`]) or a path into a container (`"block.conv1"`, `"block.shortcut.proj"`),
    /// the paths [`Sequential::backward_with`]'s hooks take.
    pub fn output_of<'a>(&'a self, trace: &'a Trace<F>, path: &str) -> Result<ArrayViewD<'a, F>> {
        self.check_trace(trace)?;
        let views = trace.layer_views();
        self.chain
            .output_at_path(&self.record(self.params_slice(), trace, &views), path)
            .ok_or_else(|| Error::invalid("path", path.to_string(), "no layer has that path"))
    }

    /// [`Sequential::backward_with`] at explicit parameters (those of a
    /// [`Sequential::forward_with`] pass).
    pub fn backward_at(
        &self,
        params: &[F],
        trace: &Trace<F>,
        grad_output: Option<ArrayViewD<'_, F>>,
        hooks: &[(&str, ArrayViewD<'_, F>)],
        want_params: bool,
        want_input: bool,
    ) -> Result<Gradients<F>> {
        check_len("params", params.len(), self.params.len())?;
        self.check_trace(trace)?;
        if let Some(g) = &grad_output {
            crate::layers::util::check_like("grad_output", g, trace.output().shape())?;
            check::finite_values("grad_output", g.iter().copied())?;
        }
        for (_, g) in hooks {
            check::finite_values("hooks", g.iter().copied())?;
        }
        let views = trace.layer_views();
        let routed = self.chain.route_hooks(hooks, &views.0)?;
        let mut grad = want_params.then(|| Array1::zeros(self.params.len()));
        let out = self.chain.backward_impl(
            &self.record(params, trace, &views),
            grad_output,
            &routed,
            grad.as_mut()
                .map(|g| g.as_slice_mut().expect("owned vector")),
            want_input,
            false,
        )?;
        Ok(Gradients {
            params: grad,
            input: out
                .input
                .or_else(|| want_input.then(|| ArrayD::zeros(trace.input.raw_dim()))),
        })
    }

    /// Loss of a batch on the output logits `(batch, classes)` and its gradient with respect
    /// to the flat parameters, in `mode` (a training pass updates running statistics).
    pub fn loss_and_gradient(
        &mut self,
        x: ArrayViewD<'_, F>,
        targets: &Targets<'_, F>,
        loss: Loss,
        mode: Mode,
    ) -> Result<(F, Array1<F>)> {
        let trace = self.forward(x, mode)?;
        let (value, g) = loss_and_logit_gradient(trace.logits()?, targets, loss)?;
        let grad = self.backward(&trace, g.into_dyn().view())?;
        Ok((value, grad))
    }

    /// Evaluation-mode loss of a batch.
    pub fn loss(&self, x: ArrayViewD<'_, F>, targets: &Targets<'_, F>, loss: Loss) -> Result<F> {
        let trace = self.forward_eval(x)?;
        Ok(loss_and_logit_gradient(trace.logits()?, targets, loss)?.0)
    }

    /// Evaluation-mode loss and its gradient with respect to the input only (no parameter
    /// gradient is computed): what FGSM/PGD attacks need.
    pub fn input_gradient(
        &self,
        x: ArrayViewD<'_, F>,
        targets: &Targets<'_, F>,
        loss: Loss,
    ) -> Result<(F, ArrayD<F>)> {
        let trace = self.forward_eval(x)?;
        let (value, g) = loss_and_logit_gradient(trace.logits()?, targets, loss)?;
        let grads = self.backward_with(&trace, Some(g.into_dyn().view()), &[], false, true)?;
        Ok((
            value,
            grads
                .input
                .unwrap_or_else(|| ArrayD::zeros(trace.input.raw_dim())),
        ))
    }

    /// Fraction of rows whose arg-max output is the target class (evaluation mode).
    pub fn accuracy(&self, x: ArrayViewD<'_, F>, targets: &Targets<'_, F>) -> Result<f64> {
        let trace = self.forward_eval(x)?;
        let logits = trace.logits()?;
        targets.validate(logits.nrows(), logits.ncols(), Loss::Mse)?;
        Ok(crate::model::accuracy_of(logits, targets))
    }
}
