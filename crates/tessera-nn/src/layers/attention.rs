//! Multi-head self-attention with an optional learnable logit mask (the GMM-mask paper's
//! layer), on `(batch, tokens, dim)` sequences.
//!
//! $Q = XW_q^\top + b_q$, $K = XW_k^\top + b_k$, $V = XW_v^\top + b_v$, split into `heads`
//! heads of `dim / heads` features; per head $O_h = \mathrm{softmax}(S'_h)V_h$ with
//! $S'_h = G_h \odot Q_hK_h^\top/\sqrt{d_h}$ or $Q_hK_h^\top/\sqrt{d_h} + G_h$ (the mask's
//! [`MaskCombine`](tessera_core::MaskCombine)); heads concatenated, then
//! $Y = OW_o^\top + b_o$. The attention itself is tessera-gmm's kernel
//! ([`tessera_gmm::attention_forward`]), the workspace's one implementation.

use ndarray::{Array2, ArrayD, ArrayView2, ArrayView4, ArrayViewD, Axis, Ix2, Ix3, Ix4, IxDyn};
use rand::RngCore;
use tessera_core::{check, LogitMask, RejectInput};
use tessera_gmm::{attention_backward_view, attention_forward, AttentionCacheView, MaskRef};

use crate::error::{Error, Result};
use crate::gemm::gemm;
use crate::layer::{Cache, Context, Init, Layer, ParamSpec, Recorded};
use crate::Float;

/// The four projections, each a `[dim, dim]` weight and a `[dim]` bias, in this order.
const PROJECTIONS: [&str; 4] = ["q", "k", "v", "out"];

/// Multi-head self-attention: parameters `q.weight [dim, dim]`, `q.bias [dim]`, then the
/// same for `k`, `v` and `out` (PyTorch's `nn.Linear` layout and default initialisation
/// `U(±1/√dim)`), then the mask's parameters as one group `mask` (initialised by the mask
/// itself: for the GMM mask the reference's seeded draws).
#[derive(Debug)]
pub struct MultiHeadAttention<F: Float> {
    dim: usize,
    heads: usize,
    mask: Option<Box<dyn LogitMask<F>>>,
}

impl<F: Float> MultiHeadAttention<F> {
    /// Attention over `dim` features split into `heads` heads, without a mask. Errors when a
    /// size is 0 or `heads` does not divide `dim`.
    pub fn new(dim: usize, heads: usize) -> Result<Self> {
        check::positive_size("dim", dim)?;
        check::positive_size("heads", heads)?;
        if dim % heads != 0 {
            return Err(Error::invalid(
                "heads",
                heads,
                format!("must divide dim = {dim}"),
            ));
        }
        check::element_count("dim * dim", &[dim, dim], 1 << 28)?;
        Ok(Self {
            dim,
            heads,
            mask: None,
        })
    }

    /// The same layer with a learnable logit mask (tessera-gmm's `GaussianMixtureMask` or
    /// `ElementwiseMask`, or any [`LogitMask`]) for as many heads; its parameters follow the
    /// projections' in the layer's slice.
    pub fn with_mask(self, mask: Box<dyn LogitMask<F>>) -> Result<Self> {
        if mask.heads() != self.heads {
            return Err(Error::shape(
                "mask",
                format!("a mask for {} heads", self.heads),
                format!("a mask for {} heads", mask.heads()),
            ));
        }
        Ok(Self {
            mask: Some(mask),
            ..self
        })
    }

    /// Feature dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of heads.
    pub fn heads(&self) -> usize {
        self.heads
    }

    /// The mask, if any.
    pub fn mask(&self) -> Option<&dyn LogitMask<F>> {
        self.mask.as_deref()
    }

    /// Where the mask's parameters start in the layer's slice (after the projections).
    pub fn mask_offset(&self) -> usize {
        4 * self.projection_len()
    }

    fn projection_len(&self) -> usize {
        self.dim * self.dim + self.dim
    }

    fn d_head(&self) -> usize {
        self.dim / self.heads
    }

    /// Weight `[dim, dim]` and bias of projection `i` in `params`.
    fn projection<'a>(&self, params: &'a [F], i: usize) -> (ArrayView2<'a, F>, &'a [F]) {
        let p = &params[i * self.projection_len()..(i + 1) * self.projection_len()];
        let (w, b) = p.split_at(self.dim * self.dim);
        let w = ArrayView2::from_shape((self.dim, self.dim), w)
            .expect("a projection slice holds dim·dim weights");
        (w, b)
    }

    fn mask_ref<'a>(&'a self, params: &'a [F]) -> Option<MaskRef<'a, F>> {
        self.mask
            .as_deref()
            .map(|m| MaskRef::new(m, &params[self.mask_offset()..]))
    }

    /// Checks a `(batch, tokens, dim)` input; returns `(batch, tokens)`.
    fn check_input(&self, x: &ArrayViewD<'_, F>) -> Result<(usize, usize)> {
        let shape = x.shape();
        let tokens_ok = |n: usize| self.mask.as_ref().map_or(true, |m| m.tokens() == n);
        if shape.len() != 3 || shape[2] != self.dim || !tokens_ok(shape[1]) {
            let tokens = self
                .mask
                .as_ref()
                .map_or("tokens".to_string(), |m| m.tokens().to_string());
            return Err(Error::shape(
                "input",
                format!("(batch, {tokens}, {})", self.dim),
                format!("{shape:?}"),
            ));
        }
        if shape[0] == 0 || shape[1] == 0 {
            return Err(Error::shape(
                "input",
                "a non-empty batch of non-empty sequences",
                format!("{shape:?}"),
            ));
        }
        Ok((shape[0], shape[1]))
    }

    /// `rows · Wᵀ + b` for projection `i`.
    fn project(&self, x: &ArrayView2<'_, F>, params: &[F], i: usize) -> Array2<F> {
        let (w, b) = self.projection(params, i);
        let mut y = Array2::zeros((x.nrows(), self.dim));
        gemm(F::one(), x, &w.t(), F::zero(), &mut y);
        y += &ArrayView2::from_shape((1, self.dim), b).expect("dim biases");
        y
    }

    /// `(batch · tokens, dim)` rows as `(batch, heads, tokens, d_head)` (a permuted view).
    fn split_heads<'a>(
        &self,
        m: ArrayView2<'a, F>,
        batch: usize,
        tokens: usize,
    ) -> ArrayView4<'a, F> {
        m.into_shape_with_order((batch, tokens, self.heads, self.d_head()))
            .expect("a standard-layout (batch·tokens, dim) matrix")
            .permuted_axes([0, 2, 1, 3])
    }

    /// `(batch, heads, tokens, d_head)` as `(batch · tokens, dim)` rows (heads concatenated).
    fn merge_heads(&self, a: ArrayView4<'_, F>) -> Array2<F> {
        let (batch, _, tokens, _) = a.dim();
        a.permuted_axes([0, 2, 1, 3])
            .as_standard_layout()
            .into_owned()
            .into_shape_with_order((batch * tokens, self.dim))
            .expect("a standard-layout (batch, tokens, heads, d_head) array")
    }

    /// Adds `δᵀ X` and `Σ δ` into projection `i`'s slice of `grad`.
    fn projection_grad(&self, delta: &Array2<F>, x: &ArrayView2<'_, F>, grad: &mut [F], i: usize) {
        let g = &mut grad[i * self.projection_len()..(i + 1) * self.projection_len()];
        let (gw, gb) = g.split_at_mut(self.dim * self.dim);
        let mut gw = ndarray::ArrayViewMut2::from_shape((self.dim, self.dim), gw)
            .expect("a projection slice holds dim·dim weights");
        gemm(F::one(), &delta.t(), x, F::one(), &mut gw);
        for (g, s) in gb.iter_mut().zip(delta.sum_axis(Axis(0))) {
            *g += s;
        }
    }
}

fn from_gmm(e: tessera_gmm::Error) -> Error {
    Error::Input(e.into_input())
}

/// Cache layout: tensors `[q, k, v, heads_out, probabilities, (mask)]` with the projections
/// and the concatenated head outputs as `(batch · tokens, dim)`; indices `[has_mask]`.
const LAYER: &str = "MultiHeadAttention";

impl<F: Float> Layer<F> for MultiHeadAttention<F> {
    fn kind(&self) -> &'static str {
        LAYER
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        let tokens_ok = |n: usize| self.mask.as_ref().map_or(true, |m| m.tokens() == n);
        match input {
            &[n, d] if d == self.dim && n > 0 && tokens_ok(n) => Ok(input.to_vec()),
            _ => Err(Error::shape(
                "input",
                format!("(tokens, {}) per example", self.dim),
                format!("{input:?}"),
            )),
        }
    }

    fn parameters(&self) -> Vec<ParamSpec> {
        let init = Init::pytorch_default(self.dim);
        let mut specs = Vec::new();
        for name in PROJECTIONS {
            specs.push(ParamSpec::new(
                format!("{name}.weight"),
                vec![self.dim, self.dim],
                init,
            ));
            specs.push(ParamSpec::new(format!("{name}.bias"), vec![self.dim], init));
        }
        if let Some(m) = &self.mask {
            // The mask draws its own initial values (see `init_parameters`); the spec's init
            // is what a mask at its neutral-free origin would be, for callers that ask.
            specs.push(ParamSpec::new(
                "mask",
                vec![m.parameter_count()],
                Init::Constant(0.0),
            ));
        }
        specs
    }

    fn init_parameters(&self, rng: &mut dyn RngCore, out: &mut [F]) -> Result<()> {
        let count = Layer::<F>::parameter_count(self);
        check::length("parameters", out.len(), count)?;
        let init = Init::pytorch_default(self.dim);
        let (projections, mask) = out.split_at_mut(self.mask_offset());
        init.fill(rng, projections);
        if let Some(m) = &self.mask {
            m.initial_parameters(mask)?;
        }
        Ok(())
    }

    fn forward(
        &self,
        params: &[F],
        _buffers: &mut [F],
        input: ArrayViewD<'_, F>,
        _ctx: Context,
    ) -> Result<(ArrayD<F>, Cache<F>)> {
        check::length("params", params.len(), Layer::<F>::parameter_count(self))?;
        let (batch, tokens) = self.check_input(&input)?;
        check::finite("input", &input)?;
        let x = input
            .as_standard_layout()
            .into_owned()
            .into_shape_with_order((batch * tokens, self.dim))
            .expect("a standard-layout (batch, tokens, dim) tensor");
        let [q, k, v] = [0, 1, 2].map(|i| self.project(&x.view(), params, i));
        let (heads_out, cache) = attention_forward(
            self.split_heads(q.view(), batch, tokens),
            self.split_heads(k.view(), batch, tokens),
            self.split_heads(v.view(), batch, tokens),
            self.mask_ref(params),
        )
        .map_err(from_gmm)?;
        let concat = self.merge_heads(heads_out.view());
        let y = self.project(&concat.view(), params, 3);
        let (probabilities, mask) = cache.into_parts();
        let indices = vec![usize::from(mask.is_some())];
        let mut tensors = vec![
            q.into_dyn(),
            k.into_dyn(),
            v.into_dyn(),
            concat.into_dyn(),
            probabilities.into_dyn(),
        ];
        tensors.extend(mask.map(|(g, _)| g.into_dyn()));
        let y = y
            .into_shape_with_order(IxDyn(&[batch, tokens, self.dim]))
            .expect("(batch·tokens, dim) rows");
        Ok((
            y,
            Cache {
                tensors,
                indices,
                children: Vec::new(),
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
        check::length(
            "params",
            rec.params.len(),
            Layer::<F>::parameter_count(self),
        )?;
        let (batch, tokens) = self.check_input(&rec.input)?;
        if grad_output.shape() != rec.input.shape() {
            return Err(Error::shape(
                "grad_output",
                format!("{:?}", rec.input.shape()),
                format!("{:?}", grad_output.shape()),
            ));
        }
        let cache = rec.cache;
        let has_mask = cache.index(0, LAYER)? == 1;
        let rows = batch * tokens;
        let matrix = |i: usize| -> Result<ArrayView2<'_, F>> {
            cache
                .tensor(i, LAYER)?
                .view()
                .into_dimensionality::<Ix2>()
                .ok()
                .filter(|m| m.dim() == (rows, self.dim) && m.is_standard_layout())
                .ok_or_else(|| Error::invalid("cache", LAYER, "does not fit the input"))
        };
        let [q, k, v, concat] = [matrix(0)?, matrix(1)?, matrix(2)?, matrix(3)?];
        let foreign = || Error::invalid("cache", LAYER, "does not fit the input");
        let probabilities = cache
            .tensor(4, LAYER)?
            .view()
            .into_dimensionality::<Ix4>()
            .map_err(|_| foreign())?;
        let mask_array = match (&self.mask, has_mask) {
            (Some(m), true) => Some((
                cache
                    .tensor(5, LAYER)?
                    .view()
                    .into_dimensionality::<Ix3>()
                    .map_err(|_| foreign())?,
                m.combine(),
            )),
            (None, false) => None,
            _ => return Err(foreign()),
        };
        let attention_cache =
            AttentionCacheView::new(probabilities, mask_array).map_err(from_gmm)?;

        let x = rec
            .input
            .as_standard_layout()
            .into_owned()
            .into_shape_with_order((rows, self.dim))
            .expect("a standard-layout (batch, tokens, dim) tensor");
        let dy = grad_output
            .as_standard_layout()
            .into_owned()
            .into_shape_with_order((rows, self.dim))
            .expect("a standard-layout (batch, tokens, dim) tensor");
        check::finite("grad_output", &dy)?;
        let (wo, _) = self.projection(rec.params, 3);
        let mut d_concat = Array2::zeros((rows, self.dim));
        gemm(F::one(), &dy, &wo, F::zero(), &mut d_concat);
        let d_heads = self.split_heads(d_concat.view(), batch, tokens);

        let mask_count = self.mask.as_ref().map_or(0, |m| m.parameter_count());
        let mut scratch_mask_grad;
        let mut grad_params = grad_params;
        if let Some(g) = grad_params.as_deref() {
            check::length("grad_params", g.len(), Layer::<F>::parameter_count(self))?;
        }
        let mask_grad: &mut [F] = match grad_params.as_deref_mut() {
            Some(g) => &mut g[self.mask_offset()..],
            None => {
                scratch_mask_grad = vec![F::zero(); mask_count];
                &mut scratch_mask_grad
            }
        };
        let grads = attention_backward_view(
            attention_cache,
            self.split_heads(q.view(), batch, tokens),
            self.split_heads(k.view(), batch, tokens),
            self.split_heads(v.view(), batch, tokens),
            d_heads,
            self.mask_ref(rec.params),
            mask_grad,
        )
        .map_err(from_gmm)?;
        let [dq, dk, dv] = [&grads.q, &grads.k, &grads.v].map(|g| self.merge_heads(g.view()));
        if let Some(g) = grad_params {
            self.projection_grad(&dy, &concat, g, 3);
            for (i, delta) in [&dq, &dk, &dv].into_iter().enumerate() {
                self.projection_grad(delta, &x.view(), g, i);
            }
        }
        if !want_input {
            return Ok(None);
        }
        let mut dx = Array2::zeros((rows, self.dim));
        for (i, delta) in [&dq, &dk, &dv].into_iter().enumerate() {
            let (w, _) = self.projection(rec.params, i);
            gemm(F::one(), delta, &w, F::one(), &mut dx);
        }
        Ok(Some(
            dx.into_shape_with_order(IxDyn(&[batch, tokens, self.dim]))
                .expect("(batch·tokens, dim) rows"),
        ))
    }
}
