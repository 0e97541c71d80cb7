//! Local complexity of a piecewise-linear network on the GPU (Humayun, Balestriero & Baraniuk,
//! "Deep Networks Always Grok and Here is Why", ICML 2024; reference code
//! `AhmedImtiazPrio/grok-adversarial`), equal to tessera-spline's
//! `LocalComplexityEstimator::compute` on a `PiecewiseLinearNet<f32>`.
//!
//! For every sample $x$ the $P$ vertices $x \pm r v_p$ of a cross-polytope (an orthonormal
//! frame $v_1 \dots v_{P/2}$ shared by all samples) go through the network, and for every
//! counted layer $\ell$
//!
//! $$\mathrm{LC}_\ell(x) = \\#\\{ i : \operatorname{sign} z_{\ell,i}(x \pm r v_p) \text{ not constant over the } P \text{ vertices} \\},$$
//!
//! with $\operatorname{sign}(0) = 0$ (as `torch.sign`): a vertex exactly on a neuron's
//! hyperplane differs from both sides.
//!
//! **Exact counts.** Counts are integers, and a pre-activation within rounding of 0 can change
//! sign between two summation orders. Two mechanisms make the counts the CPU's:
//!
//! 1. The forward kernel sums as the CPU's f32 GEMM (matrixmultiply, used by ndarray) does:
//!    blocks of [`CPU_GEMM_KC`] terms accumulated with fused multiply-adds where
//!    [`cpu_gemm_is_fused`], added block by block, then bias and skip. Where that is the host's
//!    arithmetic the pre-activations are the CPU's bit for bit; [`LcCounts::probe`] lets a
//!    caller check it on one sample and then take [`LcCounts::counts`] as they are.
//! 2. Every pre-activation also carries a bound $|z_{gpu} - z_{cpu}| \le e$ valid for any CPU
//!    summation order, fused or not (see `kernels/local_complexity.cu`). A neuron whose sign
//!    pattern the bounds do not settle marks its sample open ([`LcCounts::uncertain`]), naming
//!    the vertices the CPU must recompute; [`UncertainSample::resolve`] merges the CPU's signs
//!    of those with the GPU's settled ones. The bound is a worst case: on MNIST-sized layers
//!    nearly every sample is open, so this path is exact but not fast.

use cudarc::driver::{CudaSlice, PushKernelArg};
use ndarray::{Array2, ArrayView1, ArrayView2};
use tessera_core::check;

use crate::context::{as_i32, as_i64};
use crate::kernels::LOCAL_COMPLEXITY;
use crate::launch::config_for;
use crate::{GpuContext, GpuError, InputError, Result};

/// One affine layer `pre = W·h + b (+ h_skip)`, `post = pre > 0 ? pre : slope·pre`, as
/// tessera-spline's `AffineLayer` (ReLU: slope 0; identity: slope 1).
#[derive(Debug, Clone, Copy)]
pub struct LcLayer<'a> {
    /// `W`, `[out, in]` (PyTorch order).
    pub weight: ArrayView2<'a, f32>,
    /// `b`, `[out]`.
    pub bias: ArrayView1<'a, f32>,
    /// Slope of the activation for `pre ≤ 0`.
    pub negative_slope: f32,
    /// Node added back before the activation: 0 is the input, `k` the output of layer `k − 1`.
    pub skip_from: Option<usize>,
}

/// Counts of [`LcNetwork::counts`].
#[derive(Debug, Clone, PartialEq)]
pub struct LcCounts {
    /// `(samples, counted layers)`: the number of neurons whose sign changes over the vertices.
    pub counts: Array2<usize>,
    /// Samples (ascending) with a count the error bounds left open; their entries in `counts`
    /// are the GPU's own until [`UncertainSample::resolve`] settles them.
    pub uncertain: Vec<UncertainSample>,
    /// Per counted layer, the pre-activations of the first sample's `P` vertices,
    /// `(P, width)`: a caller can compare them with its own forward pass, and where they are
    /// equal bit for bit (the forward kernel sums in the CPU GEMM's order) take `counts` as
    /// they are.
    pub probe: Vec<Array2<f32>>,
}

/// A sample with a count the error bounds left open, and what the CPU needs to settle it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UncertainSample {
    /// The sample (row of `x`).
    pub sample: usize,
    /// Its vertices (`0..P`, ascending) whose pre-activations the CPU must recompute: each
    /// holds an unsettled value in a neuron whose count is open.
    pub vertices: Vec<usize>,
    /// Per counted layer: `None` where the count is settled, else the GPU's signs (−1, 0, +1)
    /// of the sample's `P × width` pre-activations, equal to the CPU's on every vertex outside
    /// `vertices`.
    pub signs: Vec<Option<Array2<i8>>>,
}

impl UncertainSample {
    /// The exact counts of the open layers, given the CPU's signs of the pre-activations of
    /// `vertices` (rows in that order) for every counted layer (`cpu_signs[slot]` is
    /// `(vertices.len(), width)`; layers whose count is settled are not read): per counted
    /// layer, `Some(count)` where it was open.
    ///
    /// # Errors
    /// A `cpu_signs` list or array of another shape.
    pub fn resolve(&self, cpu_signs: &[ArrayView2<'_, i8>]) -> Result<Vec<Option<usize>>> {
        check::length("cpu_signs", cpu_signs.len(), self.signs.len())?;
        self.signs
            .iter()
            .zip(cpu_signs)
            .map(|(gpu, cpu)| {
                let Some(gpu) = gpu else { return Ok(None) };
                if cpu.dim() != (self.vertices.len(), gpu.ncols()) {
                    return Err(InputError::shape(
                        "cpu_signs",
                        format!("({}, {})", self.vertices.len(), gpu.ncols()),
                        cpu.shape(),
                    )
                    .into());
                }
                let mut merged = gpu.clone();
                for (row, &vertex) in self.vertices.iter().enumerate() {
                    merged.row_mut(vertex).assign(&cpu.row(row));
                }
                let first = merged.row(0);
                let changed = (0..merged.ncols())
                    .filter(|&i| merged.column(i).iter().any(|&v| v != first[i]))
                    .count();
                Ok(Some(changed))
            })
            .collect()
    }
}

/// The constants of the forward error bound of one layer with `fan_in` inputs (see
/// `kernels/local_complexity.cu`): `(gamma, safety, underflow)` as the kernel takes them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ErrorBound {
    /// $\gamma_m = m u / (1 - m u)$ with $m$ = fan-in + 2 and $u = 2^{-24}$, rounded up.
    pub gamma: f32,
    /// Factor covering the rounding of the bound's own computation.
    pub safety: f32,
    /// Absolute term covering products and sums in the subnormal range.
    pub underflow: f32,
}

/// Largest fan-in the bound is computed for ($m u \le 1/2$).
pub const MAX_FAN_IN: usize = (1 << 23) - 2;

impl ErrorBound {
    /// The bound's constants for a layer with `fan_in` inputs.
    ///
    /// # Errors
    /// `fan_in` above [`MAX_FAN_IN`], where the bound would no longer hold.
    pub fn for_fan_in(fan_in: usize) -> Result<Self> {
        check::size_at_most("weight columns", fan_in, MAX_FAN_IN)?;
        let unit = f64::powi(2.0, -24);
        let m = (fan_in + 2) as f64;
        let gamma = m * unit / (1.0 - m * unit);
        // A few ulps of headroom over every rounding of the f64 → f32 conversions.
        let gamma = (gamma * (1.0 + f64::powi(2.0, -20))) as f32;
        let safety = (1.0 + 4.0 * f64::from(gamma) + 128.0 * unit) as f32;
        let underflow = (4.0 * (m + 4.0) * f64::powi(2.0, -149)) as f32;
        Ok(ErrorBound {
            gamma,
            safety,
            underflow,
        })
    }
}

/// Widths of the nodes `[input, out 0, out 1, …]` of `layers` after checking them as
/// tessera-spline's `PiecewiseLinearNet::new` does (needs no device).
///
/// # Errors
/// No layers, an empty or non-finite weight or bias, a bias of another length, a layer whose
/// fan-in is not the previous width, a skip from a later node or of another width, a
/// non-finite slope, sizes beyond what the kernels index.
pub fn check_network(layers: &[LcLayer<'_>]) -> Result<Vec<usize>> {
    check::non_empty("layers", layers.len())?;
    let mut widths = vec![layers[0].weight.ncols()];
    for (j, layer) in layers.iter().enumerate() {
        let (out, fan_in) = layer.weight.dim();
        check::positive_size("weight rows", out)?;
        check::positive_size("weight columns", fan_in)?;
        if fan_in != widths[j] {
            return Err(InputError::shape(
                "layers",
                format!("layer {j} with {} inputs", widths[j]),
                format!("{fan_in} inputs"),
            )
            .into());
        }
        check::length("bias", layer.bias.len(), out)?;
        check::finite("weight", &layer.weight)?;
        check::finite("bias", &layer.bias)?;
        check::finite_scalar("negative_slope", f64::from(layer.negative_slope))?;
        check::element_count("weight", &[out, fan_in], i32::MAX as usize)?;
        ErrorBound::for_fan_in(fan_in)?;
        if let Some(k) = layer.skip_from {
            if k > j || widths[k] != out {
                return Err(InputError::invalid(
                    "skip_from",
                    k,
                    format!("layer {j} may add back node 0..={j} of width {out} only"),
                )
                .into());
            }
        }
        widths.push(out);
    }
    Ok(widths)
}

/// Checks a query of [`LcNetwork::counts`] against the node widths from [`check_network`]
/// (needs no device).
///
/// # Errors
/// A frame that is empty, not `(P/2, input_dim)` or non-finite; a radius that is not finite
/// and positive; a batch `x` that is empty, not `(B, input_dim)` or non-finite; a counted
/// layer index out of range.
pub fn check_query(
    node_widths: &[usize],
    frame: ArrayView2<'_, f32>,
    radius: f32,
    x: ArrayView2<'_, f32>,
    counted: &[usize],
) -> Result<()> {
    let input_dim = node_widths.first().copied().unwrap_or(0);
    let layers = node_widths.len().saturating_sub(1);
    if frame.nrows() == 0 || frame.ncols() != input_dim {
        return Err(
            InputError::shape("frame", format!("(P/2 >= 1, {input_dim})"), frame.shape()).into(),
        );
    }
    check::finite("frame", &frame)?;
    check::positive("radius", f64::from(radius))?;
    check::finite_scalar("radius", f64::from(radius))?;
    if x.ncols() != input_dim {
        return Err(InputError::shape("x", format!("(batch, {input_dim})"), x.shape()).into());
    }
    check::non_empty_batch("x", x.shape())?;
    check::finite("x", &x)?;
    if let Some(&bad) = counted.iter().find(|&&l| l >= layers) {
        return Err(InputError::invalid(
            "counted",
            bad,
            format!("layer indices must be < {layers}"),
        )
        .into());
    }
    as_i32("frame", frame.nrows() * 2)?;
    as_i32("x", input_dim)?;
    Ok(())
}

/// The k-block of the CPU's f32 GEMM (matrixmultiply's `S_KC`, unless it was built with
/// `MATMUL_SGEMM_KC` set): the forward kernel sums in blocks of this many terms, as it does.
pub const CPU_GEMM_KC: usize = 256;

/// Whether the CPU's f32 GEMM (matrixmultiply) uses its fused multiply-add kernels on this
/// machine: AVX2 + FMA (or AVX-512) on x86-64, NEON on AArch64.
pub fn cpu_gemm_is_fused() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("fma") && std::is_x86_feature_detected!("avx2")
            || std::is_x86_feature_detected!("avx512f")
    }
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("neon")
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

/// Floats of device memory one chunk of vertices may use (1 GiB): bounds memory for any batch.
const CHUNK_FLOATS: usize = 1 << 28;

struct DeviceLayer {
    /// `W` transposed, `fan_in × width` row-major.
    weight_t: CudaSlice<f32>,
    bias: CudaSlice<f32>,
    fan_in: i32,
    width: i32,
    slope: f32,
    skip_from: Option<usize>,
    bound: ErrorBound,
}

/// A checked network with its weights on the device.
pub struct LcNetwork {
    layers: Vec<DeviceLayer>,
    node_widths: Vec<usize>,
}

impl std::fmt::Debug for LcNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LcNetwork")
            .field("node_widths", &self.node_widths)
            .finish_non_exhaustive()
    }
}

/// A node (input or a layer's output) of one chunk: values and their error bounds.
struct Node {
    values: CudaSlice<f32>,
    errors: CudaSlice<f32>,
}

impl LcNetwork {
    /// Checks `layers` ([`check_network`]) and uploads them.
    ///
    /// # Errors
    /// See [`check_network`]; device errors.
    pub fn new(context: &GpuContext, layers: &[LcLayer<'_>]) -> Result<Self> {
        let node_widths = check_network(layers)?;
        let layers = layers
            .iter()
            .map(|layer| {
                // Transposed (fan_in × width): see lc_dense_forward.
                let weight_t = layer.weight.t().as_standard_layout().into_owned();
                let (width, fan_in) = layer.weight.dim();
                Ok(DeviceLayer {
                    weight_t: context.upload(weight_t.as_slice().unwrap_or(&[]))?,
                    bias: context.upload(&layer.bias.to_vec())?,
                    fan_in: as_i32("weight columns", fan_in)?,
                    width: as_i32("weight rows", width)?,
                    slope: layer.negative_slope,
                    skip_from: layer.skip_from,
                    bound: ErrorBound::for_fan_in(fan_in)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(LcNetwork {
            layers,
            node_widths,
        })
    }

    /// Widths of the nodes `[input, out 0, out 1, …]`.
    pub fn node_widths(&self) -> &[usize] {
        &self.node_widths
    }

    /// Local complexity of every row of `x` with the vertices `x ± radius·frame[p]` (in
    /// tessera-spline's order: `+v_1 … +v_{P/2}`, then `−v_1 …`), counted on the layers
    /// `counted` (indices into the layers), as a `(samples, counted.len())` array.
    ///
    /// # Errors
    /// See [`check_query`]; device errors.
    pub fn counts(
        &self,
        context: &GpuContext,
        frame: ArrayView2<'_, f32>,
        radius: f32,
        x: ArrayView2<'_, f32>,
        counted: &[usize],
    ) -> Result<LcCounts> {
        check_query(&self.node_widths, frame, radius, x, counted)?;
        let samples = x.nrows();
        let n_vertices = 2 * frame.nrows();
        // Per vertex row: every node's values and bounds, the counted layers' pre-activations
        // and bounds kept to the end of the chunk, and the current layer's.
        let per_row: usize = 4 * self.node_widths.iter().sum::<usize>()
            + 2 * self.node_widths.iter().max().copied().unwrap_or(1);
        let per_sample = check::element_count("x", &[n_vertices, per_row], CHUNK_FLOATS)?;
        let chunk = (CHUNK_FLOATS / per_sample).max(1);
        let frame_host = frame.as_standard_layout();
        let device_frame = context.upload(frame_host.as_slice().unwrap_or(&[]))?;
        let mut counts = Array2::zeros((samples, counted.len()));
        let mut uncertain = Vec::new();
        let mut probe = Vec::new();
        let mut start = 0;
        while start < samples {
            let end = (start + chunk).min(samples);
            let rows = x.slice(ndarray::s![start..end, ..]);
            let query = ChunkQuery {
                frame: &device_frame,
                kc: CPU_GEMM_KC as i32,
                fused: i32::from(cpu_gemm_is_fused()),
                n_vertices,
                radius,
                counted,
                probe: start == 0,
            };
            let chunk_result = self.chunk_counts(context, &query, rows)?;
            counts
                .slice_mut(ndarray::s![start..end, ..])
                .assign(&chunk_result.counts);
            uncertain.extend(chunk_result.uncertain.into_iter().map(|mut u| {
                u.sample += start;
                u
            }));
            if start == 0 {
                probe = chunk_result.probe;
            }
            start = end;
        }
        Ok(LcCounts {
            counts,
            uncertain,
            probe,
        })
    }

    /// The counts and open samples of one chunk (sample indices relative to the chunk).
    fn chunk_counts(
        &self,
        context: &GpuContext,
        query: &ChunkQuery<'_>,
        x: ArrayView2<'_, f32>,
    ) -> Result<LcCounts> {
        let (samples, dim) = x.dim();
        let n_vertices = query.n_vertices;
        let rows = samples * n_vertices;
        let host = x.as_standard_layout();
        let device_x = context.upload(host.as_slice().unwrap_or(&[]))?;
        let mut vertices = context.zeros::<f32>(rows * dim)?;
        let function = context.function(&LOCAL_COMPLEXITY, "lc_vertices")?;
        let mut launch = context.stream().launch_builder(&function);
        let samples_i64 = as_i64("x", samples)?;
        let (dim_i32, half_i32) = (as_i32("x", dim)?, as_i32("frame", n_vertices / 2)?);
        launch
            .arg(&device_x)
            .arg(&samples_i64)
            .arg(&dim_i32)
            .arg(query.frame)
            .arg(&half_i32)
            .arg(&query.radius)
            .arg(&mut vertices);
        // SAFETY: arguments match lc_vertices in order and type; x holds samples × dim values,
        // frame half × dim, vertices samples × 2·half × dim, and the kernel indexes within them.
        unsafe { launch.launch(config_for(rows * dim)) }
            .map_err(GpuError::driver("launching lc_vertices"))?;
        let mut nodes = vec![Node {
            values: vertices,
            errors: context.zeros::<f32>(rows * dim)?,
        }];
        let slots = query.counted.len();
        let mut outputs = CountBuffers {
            counts: context.zeros::<i32>((samples * slots).max(1))?,
            flags: context.zeros::<i32>((samples * slots).max(1))?,
            vertex_flags: context.zeros::<i32>(rows)?,
        };
        // The counted layers' pre-activations, kept until the open samples' signs are read.
        let mut kept: Vec<Option<CudaSlice<f32>>> = (0..slots).map(|_| None).collect();
        let rows_i64 = as_i64("x", rows)?;
        for (j, layer) in self.layers.iter().enumerate() {
            let width = layer.width as usize;
            let mut pre = context.zeros::<f32>(rows * width)?;
            let mut pre_error = context.zeros::<f32>(rows * width)?;
            let mut post = Node {
                values: context.zeros::<f32>(rows * width)?,
                errors: context.zeros::<f32>(rows * width)?,
            };
            let input = &nodes[j];
            // Without a skip the kernel reads no skip value; any valid buffer stands in.
            let skip = layer.skip_from.map_or(input, |k| &nodes[k]);
            let has_skip = i32::from(layer.skip_from.is_some());
            let function = context.function(&LOCAL_COMPLEXITY, "lc_dense_forward")?;
            let mut launch = context.stream().launch_builder(&function);
            launch
                .arg(&input.values)
                .arg(&input.errors)
                .arg(&rows_i64)
                .arg(&layer.fan_in)
                .arg(&layer.weight_t)
                .arg(&layer.bias)
                .arg(&layer.width)
                .arg(&skip.values)
                .arg(&skip.errors)
                .arg(&has_skip)
                .arg(&query.kc)
                .arg(&query.fused)
                .arg(&layer.slope)
                .arg(&layer.bound.gamma)
                .arg(&layer.bound.safety)
                .arg(&layer.bound.underflow)
                .arg(&mut pre)
                .arg(&mut pre_error)
                .arg(&mut post.values)
                .arg(&mut post.errors);
            // SAFETY: arguments match lc_dense_forward in order and type; the input node holds
            // rows × fan_in values (checked by check_network), weight_t fan_in × width, bias
            // width, a skip node rows × width (same width, checked), and the four outputs
            // rows × width each.
            unsafe { launch.launch(config_for(rows * width)) }
                .map_err(GpuError::driver("launching lc_dense_forward"))?;
            let layer_slots: Vec<usize> = (0..slots).filter(|&s| query.counted[s] == j).collect();
            for &slot in &layer_slots {
                let shape = LayerShape {
                    samples,
                    n_vertices,
                    width,
                    slot,
                    slots,
                };
                count_layer(context, (&pre, &pre_error), shape, &mut outputs)?;
            }
            if let Some(&slot) = layer_slots.first() {
                kept[slot] = Some(pre);
            }
            nodes.push(post);
        }
        drop(nodes);
        let counts = context.download(&outputs.counts)?;
        let flags = context.download(&outputs.flags)?;
        let vertex_flags = context.download(&outputs.vertex_flags)?;
        // The first slot of each slot's layer: where that layer's pre-activations are kept.
        let firsts: Vec<usize> = (0..slots)
            .map(|slot| {
                (0..slot)
                    .find(|&o| query.counted[o] == query.counted[slot])
                    .unwrap_or(slot)
            })
            .collect();
        // The counted layers' pre-activations, downloaded where an open sample or the probe reads them.
        let mut signs: Vec<Option<Vec<f32>>> = (0..slots).map(|_| None).collect();
        for slot in 0..slots {
            let first = firsts[slot];
            let open = (0..samples).any(|s| flags[s * slots + slot] != 0);
            if (open || query.probe) && signs[first].is_none() {
                if let Some(pre) = &kept[first] {
                    signs[first] = Some(context.download(pre)?);
                }
            }
        }
        let mut result = LcCounts {
            counts: Array2::from_shape_fn((samples, slots), |(s, slot)| {
                counts[s * slots + slot] as usize
            }),
            uncertain: Vec::new(),
            probe: Vec::new(),
        };
        if query.probe {
            for slot in 0..slots {
                let first = firsts[slot];
                let width = self.node_widths[query.counted[slot] + 1];
                if let Some(pre) = &signs[first] {
                    let values = pre[..n_vertices * width].to_vec();
                    result.probe.push(
                        Array2::from_shape_vec((n_vertices, width), values).map_err(|e| {
                            GpuError::Driver {
                                operation: "shaping the probe",
                                message: e.to_string(),
                            }
                        })?,
                    );
                }
            }
        }
        for s in 0..samples {
            let open: Vec<bool> = (0..slots)
                .map(|slot| flags[s * slots + slot] != 0)
                .collect();
            if !open.contains(&true) {
                continue;
            }
            let vertices = (0..n_vertices)
                .filter(|&p| vertex_flags[s * n_vertices + p] != 0)
                .collect();
            let sample_signs = (0..slots)
                .map(|slot| {
                    let first = firsts[slot];
                    let width = self.node_widths[query.counted[slot] + 1];
                    match (&signs[first], open[slot]) {
                        (Some(pre), true) => {
                            let block = &pre[s * n_vertices * width..(s + 1) * n_vertices * width];
                            Some(Array2::from_shape_fn((n_vertices, width), |(p, i)| {
                                let z = block[p * width + i];
                                i8::from(z > 0.0) - i8::from(z < 0.0)
                            }))
                        }
                        _ => None,
                    }
                })
                .collect();
            result.uncertain.push(UncertainSample {
                sample: s,
                vertices,
                signs: sample_signs,
            });
        }
        Ok(result)
    }
}

/// The query shared by every chunk.
struct ChunkQuery<'a> {
    frame: &'a CudaSlice<f32>,
    kc: i32,
    fused: i32,
    n_vertices: usize,
    radius: f32,
    counted: &'a [usize],
    /// Whether this chunk holds the probe sample (the first).
    probe: bool,
}

/// The outputs the counting kernels fill: `(samples, slots)` counts and open flags, and the
/// `(samples, P)` vertex flags.
struct CountBuffers {
    counts: CudaSlice<i32>,
    flags: CudaSlice<i32>,
    vertex_flags: CudaSlice<i32>,
}

/// Sizes of one counting pass.
#[derive(Clone, Copy)]
struct LayerShape {
    samples: usize,
    n_vertices: usize,
    width: usize,
    slot: usize,
    slots: usize,
}

/// Fills column `slot` of the counts and open flags from one layer's pre-activations, and
/// marks the vertices the CPU must recompute.
fn count_layer(
    context: &GpuContext,
    (pre, pre_error): (&CudaSlice<f32>, &CudaSlice<f32>),
    shape: LayerShape,
    outputs: &mut CountBuffers,
) -> Result<()> {
    let LayerShape {
        samples,
        n_vertices,
        width,
        slot,
        slots,
    } = shape;
    let mut status = context.zeros::<i32>(samples * width)?;
    let samples_i64 = as_i64("x", samples)?;
    let (vertices_i32, width_i32) = (as_i32("frame", n_vertices)?, as_i32("weight rows", width)?);
    let function = context.function(&LOCAL_COMPLEXITY, "lc_neuron_changes")?;
    let mut launch = context.stream().launch_builder(&function);
    launch
        .arg(pre)
        .arg(pre_error)
        .arg(&samples_i64)
        .arg(&vertices_i32)
        .arg(&width_i32)
        .arg(&mut status);
    // SAFETY: arguments match lc_neuron_changes; pre and pre_error hold samples × n_vertices ×
    // width values, status samples × width.
    unsafe { launch.launch(config_for(samples * width)) }
        .map_err(GpuError::driver("launching lc_neuron_changes"))?;
    let (slot_i32, slots_i32) = (as_i32("counted", slot)?, as_i32("counted", slots)?);
    let function = context.function(&LOCAL_COMPLEXITY, "lc_sample_counts")?;
    let mut launch = context.stream().launch_builder(&function);
    launch
        .arg(&status)
        .arg(&samples_i64)
        .arg(&width_i32)
        .arg(&slot_i32)
        .arg(&slots_i32)
        .arg(&mut outputs.counts)
        .arg(&mut outputs.flags);
    // SAFETY: arguments match lc_sample_counts; status holds samples × width values, counts
    // and flags samples × slots with slot < slots.
    unsafe { launch.launch(config_for(samples)) }
        .map_err(GpuError::driver("launching lc_sample_counts"))?;
    let function = context.function(&LOCAL_COMPLEXITY, "lc_vertex_flags")?;
    let mut launch = context.stream().launch_builder(&function);
    launch
        .arg(pre)
        .arg(pre_error)
        .arg(&status)
        .arg(&samples_i64)
        .arg(&vertices_i32)
        .arg(&width_i32)
        .arg(&mut outputs.vertex_flags);
    // SAFETY: arguments match lc_vertex_flags; pre and pre_error hold samples × n_vertices ×
    // width values, status samples × width, vertex_flags samples × n_vertices.
    unsafe { launch.launch(config_for(samples * n_vertices)) }
        .map_err(GpuError::driver("launching lc_vertex_flags"))?;
    Ok(())
}
