//! Local complexity (Humayun, Balestriero & Baraniuk 2024): how many neuron boundaries cross a
//! small cross-polytope around each input.

use ndarray::{s, Array1, Array2, ArrayView1, ArrayView2, Axis};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;
use tessera_core::{check, Float, RejectInput};

use crate::error::{Error, Result};
use crate::net::{check_batch, LayerInfo, PiecewiseLinear};

/// Settings of [`LocalComplexityEstimator`].
#[derive(Debug, Clone, PartialEq)]
pub struct LocalComplexityConfig {
    /// Radius `r` of the cross-polytope (> 0). The paper uses 0.005 on images and 0.05–5 on
    /// MNIST-sized MLPs.
    pub radius: f64,
    /// Number of vertices `P` (even, ≥ 2): `P/2` orthonormal directions, each taken both ways.
    pub num_vertices: usize,
    /// Seed of the shared orthonormal frame.
    pub seed: u64,
    /// Also count sign changes of the output layer's pre-activations (the logits), as the
    /// reference code does.
    pub include_output: bool,
    /// Most forward rows (inputs × vertices) in one chunk; bounds memory. The chunking, not the
    /// thread count, decides what is computed together, so results do not depend on the pool.
    pub max_rows_per_chunk: usize,
}

impl Default for LocalComplexityConfig {
    /// `P = 40`, `r = 0.005` (the paper's image setting), seed 0, output layer not counted,
    /// chunks of at most 4,096 rows.
    fn default() -> Self {
        Self {
            radius: 0.005,
            num_vertices: 40,
            seed: 0,
            include_output: false,
            max_rows_per_chunk: 4096,
        }
    }
}

impl LocalComplexityConfig {
    fn validate(&self, input_dim: usize) -> Result<()> {
        check::positive("radius", self.radius)?;
        if self.num_vertices == 0 || self.num_vertices % 2 == 1 {
            return Err(Error::invalid(
                "num_vertices",
                self.num_vertices,
                "P must be even and at least 2 (P/2 directions, each taken both ways)",
            ));
        }
        if self.num_vertices / 2 > input_dim {
            return Err(Error::invalid(
                "num_vertices",
                self.num_vertices,
                format!("P/2 orthonormal directions need P/2 <= input_dim = {input_dim}"),
            ));
        }
        check::positive_size("max_rows_per_chunk", self.max_rows_per_chunk)?;
        Ok(())
    }
}

/// Local complexity of a batch: per input and counted layer, the number of neurons whose
/// pre-activation sign is not constant over the `P` vertices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalComplexity {
    counts: Array2<usize>,
    layers: Vec<usize>,
    widths: Vec<usize>,
}

impl LocalComplexity {
    /// `(batch, counted layers)` neuron counts.
    pub fn counts(&self) -> ArrayView2<'_, usize> {
        self.counts.view()
    }

    /// The counted layers (indices into the model's layers): every layer with a kink, plus the
    /// output layer when asked.
    pub fn layers(&self) -> &[usize] {
        &self.layers
    }

    /// Widths of the counted layers.
    pub fn widths(&self) -> &[usize] {
        &self.widths
    }

    /// Counts divided by the layer widths: the fraction of each layer's neurons whose boundary
    /// enters the neighbourhood.
    pub fn fractions(&self) -> Array2<f64> {
        let mut f = self.counts.mapv(|c| c as f64);
        for (mut col, &w) in f.axis_iter_mut(Axis(1)).zip(&self.widths) {
            col.mapv_inplace(|v| v / w as f64);
        }
        f
    }

    /// Per-input total over the counted layers.
    pub fn totals(&self) -> Array1<usize> {
        self.counts.sum_axis(Axis(1))
    }

    /// Mean total over the batch.
    pub fn mean_total(&self) -> f64 {
        let n = self.counts.nrows().max(1);
        self.counts.iter().sum::<usize>() as f64 / n as f64
    }

    /// Per-layer means over the batch.
    pub fn mean_per_layer(&self) -> Array1<f64> {
        let n = self.counts.nrows().max(1) as f64;
        self.counts.mapv(|c| c as f64).sum_axis(Axis(0)) / n
    }
}

/// Local complexity with one seeded orthonormal frame `v_1 … v_{P/2}` shared by all inputs:
///
/// $$\mathrm{LC}_\ell(x) = \\#\\{ i : \operatorname{sign} z_{\ell,i}(x \pm r v_p) \text{ not constant over the } P \text{ vertices} \\}$$
#[derive(Debug, Clone)]
pub struct LocalComplexityEstimator<F> {
    config: LocalComplexityConfig,
    frame: Array2<F>,
}

impl<F: Float> LocalComplexityEstimator<F> {
    /// Checks `config` and draws the frame for inputs of `input_dim` features: `P/2` Gaussian
    /// vectors from `ChaCha8Rng::seed_from_u64(seed)`, orthonormalised by Gram–Schmidt (twice,
    /// so the frame is orthonormal to rounding).
    pub fn new(config: LocalComplexityConfig, input_dim: usize) -> Result<Self> {
        check::positive_size("input_dim", input_dim)?;
        config.validate(input_dim)?;
        let frame = orthonormal_frame(config.num_vertices / 2, input_dim, config.seed)?;
        Ok(Self {
            frame: frame.mapv(F::from_f64_rounded),
            config,
        })
    }

    /// The settings.
    pub fn config(&self) -> &LocalComplexityConfig {
        &self.config
    }

    /// The directions `v_p`, `(P/2, input_dim)`, orthonormal rows.
    pub fn frame(&self) -> ArrayView2<'_, F> {
        self.frame.view()
    }

    /// The `P` vertices around `x`, `(P, input_dim)`: `x + r·v_1, …, x + r·v_{P/2}`, then
    /// `x − r·v_1, …`.
    pub fn vertices(&self, x: ArrayView1<'_, F>) -> Result<Array2<F>> {
        check::length("x", x.len(), self.frame.ncols())?;
        check::finite("x", &x)?;
        Ok(self.vertices_unchecked(x))
    }

    fn vertices_unchecked(&self, x: ArrayView1<'_, F>) -> Array2<F> {
        let half = self.frame.nrows();
        let r = F::from_f64_rounded(self.config.radius);
        let mut v = Array2::zeros((2 * half, x.len()));
        for p in 0..half {
            let dir = self.frame.row(p);
            v.row_mut(p).assign(&(&x + &dir.mapv(|e| r * e)));
            v.row_mut(p + half).assign(&(&x - &dir.mapv(|e| r * e)));
        }
        v
    }

    /// Local complexity of every row of `x` under `model`: one forward pass of `B·P` rows,
    /// split into chunks of at most `max_rows_per_chunk` rows that run in parallel on the rayon
    /// pool. Counts are integers computed chunk by chunk, so they are identical for every
    /// number of threads.
    pub fn compute<M: PiecewiseLinear<F> + ?Sized>(
        &self,
        model: &M,
        x: ArrayView2<'_, F>,
    ) -> Result<LocalComplexity> {
        let d = model.input_dim();
        if d != self.frame.ncols() {
            return Err(Error::shape(
                "model",
                format!("input_dim {} (the frame's)", self.frame.ncols()),
                format!("input_dim {d}"),
            ));
        }
        check_batch(x, d)?;
        let info = model.layer_info();
        let last = info.len().saturating_sub(1);
        let layers: Vec<usize> = (0..info.len())
            .filter(|&l| info[l].activation.has_kink() || (l == last && self.config.include_output))
            .collect();
        let widths: Vec<usize> = layers.iter().map(|&l| info[l].width).collect();
        let p = self.config.num_vertices;
        check::element_count("batch × num_vertices", &[x.nrows(), p, d], usize::MAX / 16)?;
        #[cfg(feature = "cuda")]
        if let Some(counts) = self.counts_on_gpu(model, x, &layers, &info)? {
            return Ok(LocalComplexity {
                counts,
                layers,
                widths,
            });
        }
        let counts = self.counts_on_cpu(model, x, &layers, &info)?;
        Ok(LocalComplexity {
            counts,
            layers,
            widths,
        })
    }

    /// `(batch, layers.len())` counts of checked input, chunk by chunk on the rayon pool.
    fn counts_on_cpu<M: PiecewiseLinear<F> + ?Sized>(
        &self,
        model: &M,
        x: ArrayView2<'_, F>,
        layers: &[usize],
        info: &[LayerInfo],
    ) -> Result<Array2<usize>> {
        let d = model.input_dim();
        let p = self.config.num_vertices;
        let per_chunk = (self.config.max_rows_per_chunk / p).max(1);
        let batch = x.nrows();
        let starts: Vec<usize> = (0..batch).step_by(per_chunk).collect();
        let chunks = starts
            .par_iter()
            .map(|&start| {
                let end = (start + per_chunk).min(batch);
                let rows = x.slice(s![start..end, ..]);
                let mut vertices = Array2::zeros(((end - start) * p, d));
                for (i, row) in rows.outer_iter().enumerate() {
                    vertices
                        .slice_mut(s![i * p..(i + 1) * p, ..])
                        .assign(&self.vertices_unchecked(row));
                }
                let pres = model.pre_activations(vertices.view())?;
                if pres.len() != info.len() {
                    return Err(Error::shape(
                        "pre_activations",
                        format!("{} layers", info.len()),
                        format!("{} layers", pres.len()),
                    ));
                }
                let mut counts = Array2::zeros((end - start, layers.len()));
                for (slot, &l) in layers.iter().enumerate() {
                    let pre = &pres[l];
                    if pre.dim() != ((end - start) * p, info[l].width) {
                        return Err(Error::shape(
                            "pre_activations",
                            format!("({}, {})", (end - start) * p, info[l].width),
                            format!("{:?}", pre.dim()),
                        ));
                    }
                    for i in 0..end - start {
                        counts[[i, slot]] = sign_changes(pre.slice(s![i * p..(i + 1) * p, ..]));
                    }
                }
                Ok(counts)
            })
            .collect::<Result<Vec<Array2<usize>>>>()?;
        let views: Vec<_> = chunks.iter().map(|c| c.view()).collect();
        ndarray::concatenate(Axis(0), &views).map_err(|e| Error::Unsupported {
            reason: format!("internal shape error: {e}"),
        })
    }

    /// The counts on the default CUDA device (feature `cuda`) when the model is a
    /// [`PiecewiseLinearNet<f32>`](crate::PiecewiseLinearNet) and a device is present, else
    /// `None`. The counts are exactly [`Self::counts_on_cpu`]'s: either the GPU's
    /// pre-activations of a probe sample equal this CPU's bit for bit (same summation order),
    /// or the vertices whose signs the GPU's error bounds leave open are recomputed here.
    #[cfg(feature = "cuda")]
    fn counts_on_gpu<M: PiecewiseLinear<F> + ?Sized>(
        &self,
        model: &M,
        x: ArrayView2<'_, F>,
        layers: &[usize],
        info: &[LayerInfo],
    ) -> Result<Option<Array2<usize>>> {
        use std::any::Any;
        let Some(context) = tessera_gpu::default_context() else {
            return Ok(None);
        };
        // `F` is generic and this crate has no unsafe code: downcasts of owned values find the
        // f32 case (the GPU kernels are f32 only).
        let Some(net) = model
            .as_net()
            .and_then(|net| (net as &dyn Any).downcast_ref::<crate::PiecewiseLinearNet<f32>>())
        else {
            return Ok(None);
        };
        let Some(frame) = (&self.frame as &dyn Any).downcast_ref::<Array2<f32>>() else {
            return Ok(None);
        };
        let Ok(x32) = (Box::new(x.to_owned()) as Box<dyn Any>).downcast::<Array2<f32>>() else {
            return Ok(None);
        };
        let gpu_layers: Vec<tessera_gpu::LcLayer<'_>> = net
            .layers()
            .iter()
            .map(|l| tessera_gpu::LcLayer {
                weight: l.weight(),
                bias: l.bias(),
                negative_slope: f32::from_f64_rounded(l.activation().negative_slope()),
                skip_from: l.skip_from(),
            })
            .collect();
        let radius = f32::from_f64_rounded(self.config.radius);
        let result = tessera_gpu::LcNetwork::new(context, &gpu_layers)
            .and_then(|gpu| gpu.counts(context, frame.view(), radius, x32.view(), layers));
        let gpu = match result {
            Ok(gpu) => gpu,
            // No device, or input the f32 path rejects (a radius beyond f32): the CPU decides.
            Err(e) if e.is_unavailable() || matches!(e, tessera_gpu::GpuError::Input(_)) => {
                return Ok(None)
            }
            Err(e) => return Err(e.into()),
        };
        let mut counts = gpu.counts;
        // The GPU sums in this machine's GEMM order; where its pre-activations of the first
        // sample's vertices equal the CPU's bit for bit, every value does and its counts are
        // the CPU's. Otherwise (another GEMM) the vertices its error bounds leave open are
        // recomputed here.
        let probe = model.pre_activations(self.vertices_unchecked(x.row(0)).view())?;
        let same_arithmetic = gpu.probe.len() == layers.len()
            && layers.iter().zip(&gpu.probe).all(|(&l, gpu_pre)| {
                probe[l].dim() == gpu_pre.dim()
                    && probe[l]
                        .iter()
                        .zip(gpu_pre)
                        .all(|(c, g)| c.to_f64_exact().to_bits() == f64::from(*g).to_bits())
            });
        if same_arithmetic {
            return Ok(Some(counts));
        }
        let sign = |v: &F| i8::from(*v > F::zero()) - i8::from(*v < F::zero());
        for open in &gpu.uncertain {
            // The CPU's own pre-activations of the vertices the bounds left open (a row's
            // values do not depend on the other rows of its batch).
            let rows = self
                .vertices_unchecked(x.row(open.sample))
                .select(Axis(0), &open.vertices);
            let pres = if open.vertices.is_empty() {
                layers
                    .iter()
                    .map(|&l| Array2::zeros((0, info[l].width)))
                    .collect()
            } else {
                model.pre_activations(rows.view())?
            };
            let cpu_signs: Vec<Array2<i8>> = layers.iter().map(|&l| pres[l].map(sign)).collect();
            let views: Vec<_> = cpu_signs.iter().map(|a| a.view()).collect();
            for (slot, count) in open.resolve(&views)?.into_iter().enumerate() {
                if let Some(count) = count {
                    counts[[open.sample, slot]] = count;
                }
            }
        }
        Ok(Some(counts))
    }

    /// The first layer's local complexity in closed form, for each row of `x`:
    ///
    /// $$\\#\\{ i : |w_i \cdot x + b_i| < r \max_p |w_i \cdot v_p| \\}$$
    ///
    /// (the hyperplane of neuron `i` meets the cross-polytope iff its distance along the
    /// worst direction is below `r`). Equals [`LocalComplexityEstimator::compute`]'s first
    /// layer except on the null set where a vertex lies exactly on a hyperplane.
    pub fn first_layer_closed_form(
        &self,
        weight: ArrayView2<'_, F>,
        bias: ArrayView1<'_, F>,
        x: ArrayView2<'_, F>,
    ) -> Result<Array1<usize>> {
        let d = self.frame.ncols();
        if weight.ncols() != d {
            return Err(Error::shape(
                "weight",
                format!("(width, {d})"),
                format!("{:?}", weight.dim()),
            ));
        }
        check::length("bias", bias.len(), weight.nrows())?;
        check::finite("weight", &weight)?;
        check::finite("bias", &bias)?;
        check_batch(x, d)?;
        let r = F::from_f64_rounded(self.config.radius);
        // max_p |w_i·v_p| is shared by every input: one product for the whole batch.
        let wv = weight.dot(&self.frame.t());
        let reach: Vec<F> = wv
            .outer_iter()
            .map(|row| r * row.iter().fold(F::zero(), |m, v| m.max(v.abs())))
            .collect();
        let pre = x.dot(&weight.t()) + bias;
        Ok(pre
            .outer_iter()
            .map(|row| row.iter().zip(&reach).filter(|(a, &m)| a.abs() < m).count())
            .collect())
    }
}

/// Neurons (columns) whose sign (−, 0, + as `torch.sign`) differs between rows.
fn sign_changes<F: Float>(pre: ArrayView2<'_, F>) -> usize {
    let sign = |v: F| (v > F::zero()) as i8 - (v < F::zero()) as i8;
    let first = pre.row(0);
    let mut changed = vec![false; pre.ncols()];
    for row in pre.outer_iter().skip(1) {
        for ((c, &v), &v0) in changed.iter_mut().zip(row.iter()).zip(first.iter()) {
            *c |= sign(v) != sign(v0);
        }
    }
    changed.iter().filter(|&&c| c).count()
}

/// `k` orthonormal rows in `R^d` from Gaussian draws (modified Gram–Schmidt, applied twice).
pub fn orthonormal_frame(k: usize, d: usize, seed: u64) -> Result<Array2<f64>> {
    check::positive_size("k", k)?;
    if k > d {
        return Err(Error::invalid(
            "k",
            k,
            format!("at most d = {d} orthonormal directions exist"),
        ));
    }
    check::element_count("frame", &[k, d], 1 << 31)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut q = Array2::<f64>::zeros((k, d));
    for p in 0..k {
        // A Gaussian draw is dependent on the previous rows with probability 0; redraw anyway
        // rather than divide by a vanishing norm.
        for _attempt in 0..8 {
            let mut v: Array1<f64> = (0..d).map(|_| StandardNormal.sample(&mut rng)).collect();
            let norm0 = v.dot(&v).sqrt();
            for _pass in 0..2 {
                for prev in q.slice(s![..p, ..]).outer_iter() {
                    let c = prev.dot(&v);
                    v.scaled_add(-c, &prev);
                }
            }
            let norm = v.dot(&v).sqrt();
            if norm > 1e-8 * norm0 {
                q.row_mut(p).assign(&(v / norm));
                break;
            }
        }
    }
    Ok(q)
}
