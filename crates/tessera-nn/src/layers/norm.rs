//! Batch normalisation (Ioffe & Szegedy 2015) and layer normalisation (Ba et al. 2016), with
//! PyTorch's conventions: eps 1e-5, momentum 0.1, the biased variance to normalise and the
//! unbiased one for the running variance.

use ndarray::{ArrayD, ArrayView3, ArrayViewD, ArrayViewMut3, IxDyn};
use rayon::prelude::*;
use tessera_core::RejectInput;

use crate::error::{Error, Result};
use crate::layer::{
    unsupported, BufferSpec, Cache, Context, Init, Layer, Mode, ParamSpec, Recorded, Tangent,
};
use crate::layers::util::{channel_sums, check_grad_outputs, lane_sum, plane_sum};
use crate::layers::util::{
    check_backward_slices, check_like, check_slices, check_tangent_slices, standard,
};
use crate::storage;
use crate::Float;

/// Batch normalisation over the channel axis 1 of a `(batch, C)`, `(batch, C, L)` or
/// `(batch, C, H, W)` tensor (PyTorch's `BatchNorm1d` / `BatchNorm2d`):
/// $y = \gamma\,(x-\mu)/\sqrt{\sigma^2+\epsilon} + \beta$ per channel.
///
/// In [`Mode::Train`] $\mu, \sigma^2$ are the batch statistics (biased variance) and the
/// buffers `running_mean`, `running_var` move towards them by `momentum` (the running
/// variance with the unbiased $n/(n-1)$ correction); in [`Mode::Eval`] the running statistics
/// are used, which makes the layer affine (and gives it an R-operator). Parameters `weight`
/// (γ, init 1) and `bias` (β, init 0) unless built without affine parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchNorm {
    channels: usize,
    eps: f64,
    momentum: f64,
    affine: bool,
}

/// `(batch, C, rest)` of a channel-second tensor.
fn bcs(shape: &[usize]) -> (usize, usize, usize) {
    (shape[0], shape[1], shape[2..].iter().product())
}

fn view3<'a, F: Float>(
    x: &'a ndarray::CowArray<'_, F, IxDyn>,
    shape: (usize, usize, usize),
) -> ArrayView3<'a, F> {
    ArrayView3::from_shape(shape, x.as_slice().expect("standard layout")).expect("b·c·s entries")
}

impl BatchNorm {
    /// Batch norm over `channels` channels with eps 1e-5, momentum 0.1 and affine parameters.
    pub fn new(channels: usize) -> Result<Self> {
        if channels == 0 {
            return Err(Error::invalid("num_features", 0, "must be at least 1"));
        }
        Ok(Self {
            channels,
            eps: 1e-5,
            momentum: 0.1,
            affine: true,
        })
    }

    /// Sets `eps > 0`.
    pub fn with_eps(mut self, eps: f64) -> Result<Self> {
        if !(eps.is_finite() && eps > 0.0) {
            return Err(Error::invalid("eps", eps, "must be finite and > 0"));
        }
        self.eps = eps;
        Ok(self)
    }

    /// Sets the running-statistics `momentum ∈ [0, 1]`.
    pub fn with_momentum(mut self, momentum: f64) -> Result<Self> {
        if !(momentum.is_finite() && (0.0..=1.0).contains(&momentum)) {
            return Err(Error::invalid("momentum", momentum, "must lie in [0, 1]"));
        }
        self.momentum = momentum;
        Ok(self)
    }

    /// Without γ and β.
    pub fn without_affine(mut self) -> Self {
        self.affine = false;
        self
    }

    /// Number of channels.
    pub fn channels(&self) -> usize {
        self.channels
    }

    fn check<F>(&self, x: &ArrayViewD<'_, F>) -> Result<(usize, usize, usize)> {
        let shape = x.shape();
        if shape.len() < 2 || shape[1] != self.channels {
            return Err(Error::shape(
                "input",
                format!("(batch, {}, …)", self.channels),
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
        if shape[2..].contains(&0) {
            return Err(Error::invalid(
                "input",
                format!("shape {shape:?}"),
                "every dimension after the channels must be at least 1",
            ));
        }
        Ok(bcs(shape))
    }

    fn gamma<F: Float>(&self, params: &[F]) -> Vec<F> {
        if self.affine {
            params[..self.channels].to_vec()
        } else {
            vec![F::one(); self.channels]
        }
    }

    /// The per-channel `(μ, 1/σ)` the forward pass normalised with, and whether it ran in
    /// training mode. The normalised input $\hat x = (x-\mu)/\sigma$ is recomputed from the
    /// input where needed, with the same operations as the forward pass (so bit for bit the
    /// same): keeping it would write and hold one more input-sized tensor per layer.
    fn cached<'a, F: Float>(&self, rec: &'a Recorded<'_, F>) -> Result<(&'a [F], &'a [F], bool)> {
        let mean = rec.cache.tensor(0, "BatchNorm")?;
        let inv = rec.cache.tensor(1, "BatchNorm")?;
        let train = rec.cache.index(0, "BatchNorm")? == 1;
        if mean.len() != self.channels || inv.len() != self.channels {
            return Err(Error::invalid(
                "cache",
                "BatchNorm",
                "the cache does not come from this layer's forward pass",
            ));
        }
        match (mean.as_slice(), inv.as_slice()) {
            (Some(mean), Some(inv)) => Ok((mean, inv, train)),
            _ => Err(Error::invalid(
                "cache",
                "BatchNorm",
                "the cached statistics are not contiguous vectors",
            )),
        }
    }

    /// $\hat x = (x-\mu)/\sigma$ of a standard-layout `(b, c, s)` input, as the forward pass
    /// computed it.
    fn normalised<F: Float>(x3: &ArrayView3<'_, F>, mean: &[F], inv: &[F]) -> Vec<F> {
        let (_, c, s) = x3.dim();
        let mut xhat = storage::overwritten(x3.len(), F::nan());
        xhat.par_chunks_exact_mut(s)
            .zip(x3.as_slice().expect("standard layout").par_chunks_exact(s))
            .enumerate()
            .for_each(|(i, (ph, px))| {
                let (m, iv) = (mean[i % c], inv[i % c]);
                for (h, &x) in ph.iter_mut().zip(px) {
                    *h = (x - m) * iv;
                }
            });
        xhat
    }

    /// Per channel `(Σ a, Σ a·b)` over batch and positions.
    fn sums<F: Float>(a: &ArrayView3<'_, F>, b: &ArrayView3<'_, F>) -> (Vec<F>, Vec<F>) {
        Self::sums_mapped(a, b, |_, y| y)
    }

    /// Per channel `(Σ δ, Σ δ·x̂)` with $\hat x$ recomputed from `x` on the fly (the same
    /// values and summation order as [`BatchNorm::sums`] of `δ` and $\hat x$).
    fn sums_with_normalised<F: Float>(
        d: &ArrayView3<'_, F>,
        x: &ArrayView3<'_, F>,
        mean: &[F],
        inv: &[F],
    ) -> (Vec<F>, Vec<F>) {
        Self::sums_mapped(d, x, |ch, x| (x - mean[ch]) * inv[ch])
    }

    /// Per channel `(Σ a, Σ a·f(channel, b))`. The plane of one (example, channel) is
    /// contiguous: each is summed on its own, in parallel, then per channel in batch order.
    fn sums_mapped<F: Float>(
        a: &ArrayView3<'_, F>,
        b: &ArrayView3<'_, F>,
        f: impl Fn(usize, F) -> F + Sync,
    ) -> (Vec<F>, Vec<F>) {
        let (_, c, s) = a.dim();
        let a = a.as_slice().expect("standard layout");
        let b = b.as_slice().expect("standard layout");
        let (plane_sums, plane_dots): (Vec<F>, Vec<F>) = a
            .par_chunks_exact(s)
            .zip(b.par_chunks_exact(s))
            .enumerate()
            .map(|(i, (pa, pb))| {
                let ch = i % c;
                (
                    plane_sum(pa),
                    lane_sum(pa.iter().zip(pb).map(|(&x, &y)| x * f(ch, y))),
                )
            })
            .unzip();
        (channel_sums(plane_sums, c), channel_sums(plane_dots, c))
    }
}

impl<F: Float> Layer<F> for BatchNorm {
    fn kind(&self) -> &'static str {
        "BatchNorm"
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        if input.is_empty() || input[0] != self.channels {
            return Err(Error::shape(
                "input",
                format!("({}, …) per example", self.channels),
                format!("{input:?}"),
            ));
        }
        Ok(input.to_vec())
    }

    fn parameters(&self) -> Vec<ParamSpec> {
        if !self.affine {
            return Vec::new();
        }
        vec![
            ParamSpec::new("weight", vec![self.channels], Init::Constant(1.0)),
            ParamSpec::new("bias", vec![self.channels], Init::Constant(0.0)),
        ]
    }

    fn buffers(&self) -> Vec<BufferSpec> {
        vec![
            BufferSpec::new("running_mean", vec![self.channels], 0.0),
            BufferSpec::new("running_var", vec![self.channels], 1.0),
        ]
    }

    fn is_mode_dependent(&self) -> bool {
        true
    }

    fn forward(
        &self,
        params: &[F],
        buffers: &mut [F],
        input: ArrayViewD<'_, F>,
        ctx: Context,
    ) -> Result<(ArrayD<F>, Cache<F>)> {
        check_slices(
            Layer::<F>::parameter_count(self),
            &[("params", params.len())],
        )?;
        crate::layer::check_len("buffers", buffers.len(), 2 * self.channels)?;
        let (b, c, s) = self.check(&input)?;
        let x = standard(input.view());
        let x3 = view3(&x, (b, c, s));
        let n = b * s;
        let eps = F::from_f64_rounded(self.eps);
        let (mean, inv, train) = match ctx.mode {
            Mode::Train => {
                if n < 2 {
                    return Err(Error::invalid(
                        "input",
                        format!("shape {:?}", input.shape()),
                        "batch norm in training mode needs more than one value per channel \
                         (a batch of one without spatial positions has no variance)",
                    ));
                }
                let count = F::from_count(n);
                let xs = x3.as_slice().expect("standard layout");
                let mut mean = channel_sums(xs.par_chunks_exact(s).map(plane_sum).collect(), c);
                mean.iter_mut().for_each(|m| *m /= count);
                // Two passes (mean, then squared deviations) for accuracy.
                let squared_deviations = xs
                    .par_chunks_exact(s)
                    .enumerate()
                    .map(|(i, plane)| {
                        let m = mean[i % c];
                        lane_sum(plane.iter().map(|&v| (v - m) * (v - m)))
                    })
                    .collect();
                let mut var = channel_sums(squared_deviations, c);
                var.iter_mut().for_each(|v| *v /= count);
                let mom = F::from_f64_rounded(self.momentum);
                let unbias = count / F::from_count(n - 1);
                let (rm, rv) = buffers.split_at_mut(c);
                for ch in 0..c {
                    rm[ch] = (F::one() - mom) * rm[ch] + mom * mean[ch];
                    rv[ch] = (F::one() - mom) * rv[ch] + mom * var[ch] * unbias;
                }
                let inv: Vec<F> = var.iter().map(|&v| F::one() / (v + eps).sqrt()).collect();
                (mean, inv, true)
            }
            Mode::Eval => {
                let (rm, rv) = buffers.split_at(c);
                let inv: Vec<F> = rv.iter().map(|&v| F::one() / (v + eps).sqrt()).collect();
                (rm.to_vec(), inv, false)
            }
        };
        let gamma = self.gamma(params);
        let mut out = storage::overwritten(b * c * s, F::nan());
        let xs = x3.as_slice().expect("standard layout");
        xs.par_chunks_exact(s)
            .zip(out.par_chunks_exact_mut(s))
            .enumerate()
            .for_each(|(i, (px, py))| {
                let ch = i % c;
                let beta = if self.affine {
                    params[c + ch]
                } else {
                    F::zero()
                };
                let (m, iv, g) = (mean[ch], inv[ch], gamma[ch]);
                for (&x, y) in px.iter().zip(py.iter_mut()) {
                    *y = g * ((x - m) * iv) + beta;
                }
            });
        let out = ArrayD::from_shape_vec(IxDyn(input.shape()), out).expect("same shape");
        let inv = ArrayD::from_shape_vec(IxDyn(&[c]), inv).expect("one per channel");
        let mean = ArrayD::from_shape_vec(IxDyn(&[c]), mean).expect("one per channel");
        Ok((
            out,
            Cache {
                tensors: vec![mean, inv],
                indices: vec![usize::from(train)],
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
        check_backward_slices(
            Layer::<F>::parameter_count(self),
            rec,
            grad_params.as_ref().map(|g| g.len()),
        )?;
        let (b, c, s) = self.check(&rec.input)?;
        check_like("grad_output", &grad_output, rec.input.shape())?;
        let (mean, inv, train) = self.cached(rec)?;
        let d = standard(grad_output);
        let d3 = view3(&d, (b, c, s));
        let x = standard(rec.input.view());
        let x3 = view3(&x, (b, c, s));
        let (sum_d, sum_dx) = Self::sums_with_normalised(&d3, &x3, mean, inv);
        if let Some(g) = grad_params {
            if self.affine {
                for ch in 0..c {
                    g[ch] += sum_dx[ch];
                    g[c + ch] += sum_d[ch];
                }
            }
        }
        if !want_input {
            return Ok(None);
        }
        let gamma = self.gamma(rec.params);
        let n = F::from_count(b * s);
        let mut dx = storage::overwritten(b * c * s, F::nan());
        let ds = d3.as_slice().expect("standard layout");
        let xs = x3.as_slice().expect("standard layout");
        ds.par_chunks_exact(s)
            .zip(xs.par_chunks_exact(s))
            .zip(dx.par_chunks_exact_mut(s))
            .enumerate()
            .for_each(|(i, ((pd, px), pdx))| {
                let ch = i % c;
                let k = gamma[ch] * inv[ch];
                if train {
                    // The batch statistics depend on x: the usual three-term formula.
                    let (md, mdx) = (sum_d[ch] / n, sum_dx[ch] / n);
                    let (m, iv) = (mean[ch], inv[ch]);
                    for ((&g, &x), o) in pd.iter().zip(px).zip(pdx.iter_mut()) {
                        *o = k * (g - md - ((x - m) * iv) * mdx);
                    }
                } else {
                    for (&g, o) in pd.iter().zip(pdx.iter_mut()) {
                        *o = k * g;
                    }
                }
            });
        Ok(Some(
            ArrayD::from_shape_vec(IxDyn(rec.input.shape()), dx).expect("same shape"),
        ))
    }

    fn forward_tangent(
        &self,
        rec: &Recorded<'_, F>,
        tangent: &Tangent<'_, F>,
    ) -> Result<(ArrayD<F>, Cache<F>)> {
        check_tangent_slices(Layer::<F>::parameter_count(self), rec, tangent, None)?;
        let (b, c, s) = self.check(&rec.input)?;
        let (mean, inv, train) = self.cached(rec)?;
        if train {
            return Err(unsupported(
                "BatchNorm",
                "the R-operator in training mode (use eval mode)",
            ));
        }
        let gamma = self.gamma(rec.params);
        let x = standard(rec.input.view());
        let xhat = Self::normalised(&view3(&x, (b, c, s)), mean, inv);
        let xh = ArrayView3::from_shape((b, c, s), &xhat[..]).expect("b·c·s");
        let rx = match &tangent.input {
            Some(rx) => {
                check_like("input tangent", rx, rec.input.shape())?;
                Some(standard(rx.view()))
            }
            None => None,
        };
        let mut out = ArrayD::zeros(IxDyn(rec.input.shape()));
        {
            let mut o = ArrayViewMut3::from_shape((b, c, s), out.as_slice_mut().expect("fresh"))
                .expect("b·c·s entries");
            let rx3 = rx.as_ref().map(|r| view3(r, (b, c, s)));
            for bi in 0..b {
                for ch in 0..c {
                    let (vg, vb) = if self.affine {
                        (tangent.params[ch], tangent.params[c + ch])
                    } else {
                        (F::zero(), F::zero())
                    };
                    for si in 0..s {
                        let mut r = vg * xh[[bi, ch, si]] + vb;
                        if let Some(rx3) = &rx3 {
                            r += gamma[ch] * inv[ch] * rx3[[bi, ch, si]];
                        }
                        o[[bi, ch, si]] = r;
                    }
                }
            }
        }
        Ok((out, Cache::empty()))
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
        let (b, c, s) = self.check(&rec.input)?;
        let (mean, inv, train) = self.cached(rec)?;
        if train {
            return Err(unsupported(
                "BatchNorm",
                "the R-operator in training mode (use eval mode)",
            ));
        }
        check_grad_outputs(&grad_output, &grad_output_tangent, rec.input.shape())?;
        let x = standard(rec.input.view());
        let xhat = Self::normalised(&view3(&x, (b, c, s)), mean, inv);
        let xh = ArrayView3::from_shape((b, c, s), &xhat[..]).expect("b·c·s");
        let d = standard(grad_output);
        let d3 = view3(&d, (b, c, s));
        let rd = standard(grad_output_tangent);
        let rd3 = view3(&rd, (b, c, s));
        if self.affine {
            // R{∂L/∂γ} = Σ R{δ} x̂ + Σ δ R{x}/σ;  R{∂L/∂β} = Σ R{δ}.
            let (sum_rd, sum_rdx) = Self::sums(&rd3, &xh);
            for ch in 0..c {
                hvp_params[ch] += sum_rdx[ch];
                hvp_params[c + ch] += sum_rd[ch];
            }
            if let Some(rx) = &tangent.input {
                check_like("input tangent", rx, rec.input.shape())?;
                let rx = standard(rx.view());
                let (_, sum_drx) = Self::sums(&d3, &view3(&rx, (b, c, s)));
                for ch in 0..c {
                    hvp_params[ch] += sum_drx[ch] * inv[ch];
                }
            }
        }
        if !want_input {
            return Ok(None);
        }
        // R{∂L/∂x} = (γ R{δ} + v_γ δ)/σ.
        let gamma = self.gamma(rec.params);
        let mut dx = ArrayD::zeros(IxDyn(rec.input.shape()));
        {
            let mut dxv = ArrayViewMut3::from_shape((b, c, s), dx.as_slice_mut().expect("fresh"))
                .expect("b·c·s entries");
            for bi in 0..b {
                for ch in 0..c {
                    let vg = if self.affine {
                        tangent.params[ch]
                    } else {
                        F::zero()
                    };
                    for si in 0..s {
                        dxv[[bi, ch, si]] =
                            (gamma[ch] * rd3[[bi, ch, si]] + vg * d3[[bi, ch, si]]) * inv[ch];
                    }
                }
            }
        }
        Ok(Some(dx))
    }
}

/// Layer normalisation over the trailing `normalized_shape` dimensions of each example
/// (PyTorch's `nn.LayerNorm`): $y = \gamma \odot (x-\mu)/\sqrt{\sigma^2+\epsilon} + \beta$ with
/// the mean and biased variance of each example's trailing block, eps 1e-5, `weight` (γ,
/// init 1) and `bias` (β, init 0) of shape `normalized_shape`. The same in train and eval
/// mode; it has a full R-operator.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerNorm {
    shape: Vec<usize>,
    eps: f64,
    affine: bool,
}

impl LayerNorm {
    /// Layer norm over trailing dimensions `normalized_shape` (non-empty, no zero).
    pub fn new(normalized_shape: &[usize]) -> Result<Self> {
        if normalized_shape.is_empty() || normalized_shape.contains(&0) {
            return Err(Error::invalid(
                "normalized_shape",
                format!("{normalized_shape:?}"),
                "must be non-empty without zero dimensions",
            ));
        }
        Ok(Self {
            shape: normalized_shape.to_vec(),
            eps: 1e-5,
            affine: true,
        })
    }

    /// Sets `eps > 0`.
    pub fn with_eps(mut self, eps: f64) -> Result<Self> {
        if !(eps.is_finite() && eps > 0.0) {
            return Err(Error::invalid("eps", eps, "must be finite and > 0"));
        }
        self.eps = eps;
        Ok(self)
    }

    /// Without γ and β.
    pub fn without_affine(mut self) -> Self {
        self.affine = false;
        self
    }

    fn width(&self) -> usize {
        self.shape.iter().product()
    }

    fn rows<F>(&self, x: &ArrayViewD<'_, F>) -> Result<usize> {
        let shape = x.shape();
        let k = self.shape.len();
        if shape.len() < k + 1 || shape[shape.len() - k..] != self.shape[..] {
            return Err(Error::shape(
                "input",
                format!(
                    "(batch, …, {})",
                    self.shape
                        .iter()
                        .map(|d| d.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
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
        Ok(shape.iter().product::<usize>() / self.width())
    }

    fn gamma<'a, F: Float>(&self, params: &'a [F], ones: &'a [F]) -> &'a [F] {
        if self.affine {
            &params[..self.width()]
        } else {
            ones
        }
    }

    fn cached<'a, F: Float>(&self, rec: &'a Recorded<'_, F>) -> Result<(&'a [F], &'a [F])> {
        let xhat = rec.cache.tensor(0, "LayerNorm")?;
        let inv = rec.cache.tensor(1, "LayerNorm")?;
        if xhat.shape() != rec.input.shape() {
            return Err(Error::invalid(
                "cache",
                "LayerNorm",
                "the cache does not come from this layer's forward pass",
            ));
        }
        Ok((
            xhat.as_slice().expect("fresh array"),
            inv.as_slice().expect("fresh array"),
        ))
    }
}

fn mean_of<F: Float>(v: impl Iterator<Item = F>, n: F) -> F {
    v.fold(F::zero(), |a, x| a + x) / n
}

impl<F: Float> Layer<F> for LayerNorm {
    fn kind(&self) -> &'static str {
        "LayerNorm"
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        let k = self.shape.len();
        if input.len() < k || input[input.len() - k..] != self.shape[..] {
            return Err(Error::shape(
                "input",
                format!("(…, {:?}) per example", self.shape),
                format!("{input:?}"),
            ));
        }
        Ok(input.to_vec())
    }

    fn parameters(&self) -> Vec<ParamSpec> {
        if !self.affine {
            return Vec::new();
        }
        vec![
            ParamSpec::new("weight", self.shape.clone(), Init::Constant(1.0)),
            ParamSpec::new("bias", self.shape.clone(), Init::Constant(0.0)),
        ]
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
        let d = self.width();
        let n = F::from_count(d);
        let eps = F::from_f64_rounded(self.eps);
        let x = standard(input.view());
        let xs = x.as_slice().expect("standard layout");
        let ones = vec![F::one(); d];
        let gamma = self.gamma(params, &ones);
        let mut xhat = vec![F::zero(); rows * d];
        let mut out = vec![F::zero(); rows * d];
        let mut inv = vec![F::zero(); rows];
        for r in 0..rows {
            let row = &xs[r * d..(r + 1) * d];
            let m = mean_of(row.iter().copied(), n);
            let var = mean_of(row.iter().map(|&v| (v - m) * (v - m)), n);
            let iv = F::one() / (var + eps).sqrt();
            inv[r] = iv;
            for j in 0..d {
                let h = (row[j] - m) * iv;
                xhat[r * d + j] = h;
                let beta = if self.affine {
                    params[d + j]
                } else {
                    F::zero()
                };
                out[r * d + j] = gamma[j] * h + beta;
            }
        }
        let shape = IxDyn(input.shape());
        Ok((
            ArrayD::from_shape_vec(shape.clone(), out).expect("same shape"),
            Cache::with_tensors(vec![
                ArrayD::from_shape_vec(shape, xhat).expect("same shape"),
                ArrayD::from_shape_vec(IxDyn(&[rows]), inv).expect("one per row"),
            ]),
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
        check_like("grad_output", &grad_output, rec.input.shape())?;
        let d = self.width();
        let n = F::from_count(d);
        let (xhat, inv) = self.cached(rec)?;
        let g = standard(grad_output);
        let gs = g.as_slice().expect("standard layout");
        if let Some(gp) = grad_params {
            if self.affine {
                for r in 0..rows {
                    for j in 0..d {
                        gp[j] += gs[r * d + j] * xhat[r * d + j];
                        gp[d + j] += gs[r * d + j];
                    }
                }
            }
        }
        if !want_input {
            return Ok(None);
        }
        let ones = vec![F::one(); d];
        let gamma = self.gamma(rec.params, &ones);
        let mut dx = vec![F::zero(); rows * d];
        for r in 0..rows {
            let xh = &xhat[r * d..(r + 1) * d];
            let gh: Vec<F> = (0..d).map(|j| gs[r * d + j] * gamma[j]).collect();
            let mg = mean_of(gh.iter().copied(), n);
            let mgx = mean_of(gh.iter().zip(xh).map(|(&a, &b)| a * b), n);
            for j in 0..d {
                dx[r * d + j] = inv[r] * (gh[j] - mg - xh[j] * mgx);
            }
        }
        Ok(Some(
            ArrayD::from_shape_vec(IxDyn(rec.input.shape()), dx).expect("same shape"),
        ))
    }

    fn forward_tangent(
        &self,
        rec: &Recorded<'_, F>,
        tangent: &Tangent<'_, F>,
    ) -> Result<(ArrayD<F>, Cache<F>)> {
        check_tangent_slices(Layer::<F>::parameter_count(self), rec, tangent, None)?;
        let rows = self.rows(&rec.input)?;
        let d = self.width();
        let (xhat, inv) = self.cached(rec)?;
        let ones = vec![F::one(); d];
        let gamma = self.gamma(rec.params, &ones);
        let rxhat = match &tangent.input {
            Some(rx) => {
                check_like("input tangent", rx, rec.input.shape())?;
                let rx = standard(rx.view());
                Some(layer_norm_rxhat(
                    rx.as_slice().expect("standard layout"),
                    xhat,
                    inv,
                    d,
                ))
            }
            None => None,
        };
        let mut out = vec![F::zero(); rows * d];
        for r in 0..rows {
            for j in 0..d {
                let i = r * d + j;
                let mut v = F::zero();
                if self.affine {
                    v += tangent.params[j] * xhat[i] + tangent.params[d + j];
                }
                if let Some(rh) = &rxhat {
                    v += gamma[j] * rh[i];
                }
                out[i] = v;
            }
        }
        Ok((
            ArrayD::from_shape_vec(IxDyn(rec.input.shape()), out).expect("same shape"),
            Cache::empty(),
        ))
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
        check_grad_outputs(&grad_output, &grad_output_tangent, rec.input.shape())?;
        let d = self.width();
        let n = F::from_count(d);
        let (xhat, inv) = self.cached(rec)?;
        let g = standard(grad_output);
        let gs = g.as_slice().expect("standard layout");
        let rg = standard(grad_output_tangent);
        let rgs = rg.as_slice().expect("standard layout");
        let rx = match &tangent.input {
            Some(rx) => {
                check_like("input tangent", rx, rec.input.shape())?;
                Some(standard(rx.view()).into_owned())
            }
            None => None,
        };
        let rxs = rx.as_ref().map(|r| r.as_slice().expect("standard layout"));
        let rxhat = rxs.map(|r| layer_norm_rxhat(r, xhat, inv, d));
        if self.affine {
            // R{∂L/∂γ} = Σ R{δ} x̂ + δ R{x̂};  R{∂L/∂β} = Σ R{δ}.
            for r in 0..rows {
                for j in 0..d {
                    let i = r * d + j;
                    let mut v = rgs[i] * xhat[i];
                    if let Some(rh) = &rxhat {
                        v += gs[i] * rh[i];
                    }
                    hvp_params[j] += v;
                    hvp_params[d + j] += rgs[i];
                }
            }
        }
        if !want_input {
            return Ok(None);
        }
        // ∂L/∂x = s·(g − mean g − x̂·mean(g x̂)) with g = γ δ and s = 1/σ; differentiate each
        // factor: R{s} = −s²·mean(x̂ R{x}), R{g} = γ R{δ} + v_γ δ.
        let ones = vec![F::one(); d];
        let gamma = self.gamma(rec.params, &ones);
        let mut out = vec![F::zero(); rows * d];
        for r in 0..rows {
            let sl = r * d..(r + 1) * d;
            let xh = &xhat[sl.clone()];
            let gh: Vec<F> = (0..d).map(|j| gs[r * d + j] * gamma[j]).collect();
            let rgh: Vec<F> = (0..d)
                .map(|j| {
                    let vg = if self.affine {
                        tangent.params[j]
                    } else {
                        F::zero()
                    };
                    rgs[r * d + j] * gamma[j] + gs[r * d + j] * vg
                })
                .collect();
            let s = inv[r];
            let mg = mean_of(gh.iter().copied(), n);
            let mgx = mean_of(gh.iter().zip(xh).map(|(&a, &b)| a * b), n);
            let mrg = mean_of(rgh.iter().copied(), n);
            let (rs, rh, m_g_rh) = match (&rxs, &rxhat) {
                (Some(rx), Some(rh)) => {
                    let rx = &rx[sl.clone()];
                    let rh = &rh[sl.clone()];
                    let rs = -s * s * mean_of(xh.iter().zip(rx).map(|(&a, &b)| a * b), n);
                    let m_g_rh = mean_of(gh.iter().zip(rh).map(|(&a, &b)| a * b), n);
                    (rs, Some(rh), m_g_rh)
                }
                _ => (F::zero(), None, F::zero()),
            };
            let mrgx = mean_of(rgh.iter().zip(xh).map(|(&a, &b)| a * b), n);
            for j in 0..d {
                let base = gh[j] - mg - xh[j] * mgx;
                let mut dbase = rgh[j] - mrg - xh[j] * (mrgx + m_g_rh);
                if let Some(rh) = rh {
                    dbase -= rh[j] * mgx;
                }
                out[r * d + j] = rs * base + s * dbase;
            }
        }
        Ok(Some(
            ArrayD::from_shape_vec(IxDyn(rec.input.shape()), out).expect("same shape"),
        ))
    }
}

/// `R{x̂} = s·(R{x} − mean R{x} − x̂·mean(x̂ R{x}))` row by row.
fn layer_norm_rxhat<F: Float>(rx: &[F], xhat: &[F], inv: &[F], d: usize) -> Vec<F> {
    let n = F::from_count(d);
    let mut out = vec![F::zero(); rx.len()];
    for (r, &s) in inv.iter().enumerate() {
        let sl = r * d..(r + 1) * d;
        let (rxr, xh) = (&rx[sl.clone()], &xhat[sl.clone()]);
        let m = mean_of(rxr.iter().copied(), n);
        let mx = mean_of(rxr.iter().zip(xh).map(|(&a, &b)| a * b), n);
        for j in 0..d {
            out[r * d + j] = s * (rxr[j] - m - xh[j] * mx);
        }
    }
    out
}
