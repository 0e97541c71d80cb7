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
//! sign between two summation orders, so the kernels also carry a forward error bound
//! $|z_{gpu} - z_{cpu}| \le e$ (valid for any CPU summation order, fused or not; see
//! `kernels/local_complexity.cu`). A neuron whose sign pattern the bounds do not settle marks
//! its sample [`LcCounts::uncertain`]; the caller recomputes those samples on the CPU (as
//! tessera-spline's `cuda` routing does), so the combined result is the CPU's, exactly. On
//! random inputs such samples are rare; inputs that put vertices exactly on hyperplanes (small
//! integers, dyadic weights) make them common.

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LcCounts {
    /// `(samples, counted layers)`: the number of neurons whose sign changes over the vertices.
    pub counts: Array2<usize>,
    /// Samples (ascending) whose rows the error bounds could not certify; their counts are the
    /// GPU's own, and a caller that needs the CPU's exact result recomputes them there.
    pub uncertain: Vec<usize>,
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
        let per_row: usize = 2 * self.node_widths.iter().sum::<usize>()
            + 3 * self.node_widths.iter().max().copied().unwrap_or(1);
        let per_sample = check::element_count("x", &[n_vertices, per_row], CHUNK_FLOATS)?;
        let chunk = (CHUNK_FLOATS / per_sample).max(1);
        let frame_host = frame.as_standard_layout();
        let device_frame = context.upload(frame_host.as_slice().unwrap_or(&[]))?;
        let mut counts = Array2::zeros((samples, counted.len()));
        let mut uncertain = Vec::new();
        let mut start = 0;
        while start < samples {
            let end = (start + chunk).min(samples);
            let rows = x.slice(ndarray::s![start..end, ..]);
            let (chunk_counts, chunk_flags) =
                self.chunk_counts(context, &device_frame, n_vertices, radius, rows, counted)?;
            let slots = counted.len();
            for s in 0..end - start {
                for slot in 0..slots {
                    counts[[start + s, slot]] = chunk_counts[s * slots + slot] as usize;
                }
                if chunk_flags[s * slots..(s + 1) * slots]
                    .iter()
                    .any(|&f| f != 0)
                {
                    uncertain.push(start + s);
                }
            }
            start = end;
        }
        Ok(LcCounts { counts, uncertain })
    }

    /// Counts and uncertainty flags, both `(samples, counted.len())` row-major, of one chunk.
    fn chunk_counts(
        &self,
        context: &GpuContext,
        frame: &CudaSlice<f32>,
        n_vertices: usize,
        radius: f32,
        x: ArrayView2<'_, f32>,
        counted: &[usize],
    ) -> Result<(Vec<i32>, Vec<i32>)> {
        let (samples, dim) = x.dim();
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
            .arg(frame)
            .arg(&half_i32)
            .arg(&radius)
            .arg(&mut vertices);
        // SAFETY: arguments match lc_vertices in order and type; x holds samples × dim values,
        // frame half × dim, vertices samples × 2·half × dim, and the kernel indexes within them.
        unsafe { launch.launch(config_for(rows * dim)) }
            .map_err(GpuError::driver("launching lc_vertices"))?;
        let mut nodes = vec![Node {
            values: vertices,
            errors: context.zeros::<f32>(rows * dim)?,
        }];
        let slots = counted.len();
        let mut counts = context.zeros::<i32>((samples * slots).max(1))?;
        let mut flags = context.zeros::<i32>((samples * slots).max(1))?;
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
            for (slot, _) in counted.iter().enumerate().filter(|(_, &l)| l == j) {
                self.count_layer(
                    context,
                    (&pre, &pre_error),
                    samples,
                    n_vertices,
                    width,
                    slot,
                    slots,
                    (&mut counts, &mut flags),
                )?;
            }
            nodes.push(post);
        }
        Ok((context.download(&counts)?, context.download(&flags)?))
    }

    /// Fills column `slot` of the counts and flags from one layer's pre-activations.
    #[allow(clippy::too_many_arguments)]
    fn count_layer(
        &self,
        context: &GpuContext,
        (pre, pre_error): (&CudaSlice<f32>, &CudaSlice<f32>),
        samples: usize,
        n_vertices: usize,
        width: usize,
        slot: usize,
        slots: usize,
        (counts, flags): (&mut CudaSlice<i32>, &mut CudaSlice<i32>),
    ) -> Result<()> {
        let mut status = context.zeros::<i32>(samples * width)?;
        let samples_i64 = as_i64("x", samples)?;
        let (vertices_i32, width_i32) =
            (as_i32("frame", n_vertices)?, as_i32("weight rows", width)?);
        let function = context.function(&LOCAL_COMPLEXITY, "lc_neuron_changes")?;
        let mut launch = context.stream().launch_builder(&function);
        launch
            .arg(pre)
            .arg(pre_error)
            .arg(&samples_i64)
            .arg(&vertices_i32)
            .arg(&width_i32)
            .arg(&mut status);
        // SAFETY: arguments match lc_neuron_changes; pre and pre_error hold samples ×
        // n_vertices × width values, status samples × width.
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
            .arg(counts)
            .arg(flags);
        // SAFETY: arguments match lc_sample_counts; status holds samples × width values, counts
        // and flags samples × slots with slot < slots.
        unsafe { launch.launch(config_for(samples)) }
            .map_err(GpuError::driver("launching lc_sample_counts"))?;
        Ok(())
    }
}
