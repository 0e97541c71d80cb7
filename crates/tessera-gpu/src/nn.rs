//! tessera-nn's `Dense` and `Conv2d` layers on the device (f32): forward passes and the
//! gradients of the backward pass with respect to the input and the parameters, in the CPU
//! layers' layouts, so that a training step can run on the GPU and fall back to the CPU.
//!
//! - Dense, `y = x Wᵀ + b` with `W` of shape `out × in` (PyTorch's `nn.Linear`): forward
//!   $Y = XW^\top$, then the bias (and optionally a ReLU) by `nn_bias_add`; backward
//!   $\partial W = \delta^\top X$, $\partial b = \sum_\text{rows}\delta$ (`nn_bias_grad`),
//!   $\partial X = \delta W$. Three cuBLAS GEMMs through [`crate::dense`].
//! - Conv2d (cross-correlation over NCHW, zero padding, strides) by the im2col lowering
//!   (Chellapilla, Puri & Simard 2006, "High performance convolutional neural networks for
//!   document processing"; Caffe's `im2col`): every image's receptive fields become a
//!   $K \times P$ matrix ($K = C k_h k_w$, $P = o_h o_w$), the output of image $b$ is
//!   $Y_b = W\,\mathrm{cols}(x_b)$ (one strided-batched GEMM for the whole batch, `W` shared),
//!   the weight gradient is $\sum_b \delta_b\,\mathrm{cols}(x_b)^\top$ (one strided-batched
//!   GEMM of per-image products, summed over images by `nn_sum_batch`) and the input gradient
//!   $\mathrm{col2im}(W^\top\delta_b)$ (one strided-batched GEMM, then a gather with one
//!   thread per input pixel, so no atomics).
//!
//! The element-wise kernels (bias, im2col, col2im) reproduce the CPU's arithmetic exactly;
//! the GEMMs sum in cuBLAS's order, so results agree with tessera-nn to rounding (≈1e-6
//! relative), not bit for bit. Parameters are the layers' flat slices: Dense `weight [out, in]`
//! then `bias [out]`; Conv2d `weight [out, C, kh, kw]` then `bias [out]`.

use cudarc::driver::PushKernelArg;
use ndarray::{Array1, Array2, Array4, ArrayView2, ArrayView4};
use tessera_core::check;

use crate::context::{as_i32, as_i64};
use crate::dense::{check_matrix_shape, gemm, matmul, DeviceMatrix, GemmShape};
use crate::kernels::NN;
use crate::launch::config_for;
use crate::{GpuContext, GpuError, InputError, Result};

/// Adds `bias[c]` to every element of channel `c` of `values` viewed as
/// `(outer, channels, inner)`, then applies a ReLU when `relu` is set.
fn bias_add(
    context: &GpuContext,
    values: &mut DeviceMatrix<f32>,
    outer: usize,
    channels: usize,
    inner: usize,
    bias: &DeviceMatrix<f32>,
    relu: bool,
) -> Result<()> {
    let function = context.function(&NN, "nn_bias_add")?;
    let mut launch = context.stream().launch_builder(&function);
    let (outer_i64, channels_i32, inner_i64) = (
        as_i64("outer", outer)?,
        as_i32("channels", channels)?,
        as_i64("inner", inner)?,
    );
    let relu_i32 = i32::from(relu);
    launch
        .arg(&mut values.data)
        .arg(&outer_i64)
        .arg(&channels_i32)
        .arg(&inner_i64)
        .arg(&bias.data)
        .arg(&relu_i32);
    // SAFETY: the arguments match nn_bias_add's parameters in order and type; the callers
    // pass values of outer × channels × inner elements and a bias of `channels`.
    unsafe { launch.launch(config_for(outer * channels * inner)) }
        .map_err(GpuError::driver("launching nn_bias_add"))?;
    Ok(())
}

/// Per-channel sums of `delta` viewed as `(outer, channels, inner)`, as a `1 × channels`
/// matrix.
fn bias_grad(
    context: &GpuContext,
    delta: &DeviceMatrix<f32>,
    outer: usize,
    channels: usize,
    inner: usize,
) -> Result<DeviceMatrix<f32>> {
    let mut grad = DeviceMatrix::zeros(context, 1, channels)?;
    let function = context.function(&NN, "nn_bias_grad")?;
    let mut launch = context.stream().launch_builder(&function);
    let (outer_i64, channels_i32, inner_i64) = (
        as_i64("outer", outer)?,
        as_i32("channels", channels)?,
        as_i64("inner", inner)?,
    );
    launch
        .arg(&delta.data)
        .arg(&outer_i64)
        .arg(&channels_i32)
        .arg(&inner_i64)
        .arg(&mut grad.data);
    // SAFETY: the arguments match nn_bias_grad; delta holds outer × channels × inner
    // elements (checked by the callers) and grad `channels`.
    unsafe { launch.launch(config_for(channels)) }
        .map_err(GpuError::driver("launching nn_bias_grad"))?;
    Ok(grad)
}

/// A non-finite value in a result computed from finite input.
fn overflow(name: &'static str, what: &str, values: &[f32]) -> Result<()> {
    match values.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(index) => Err(GpuError::Overflow {
            name,
            message: format!(
                "{what} has the non-finite value {} at flat index {index}: the layer's sums \
                 overflow f32",
                values[index]
            ),
        }),
    }
}

fn download_checked(
    context: &GpuContext,
    matrix: &DeviceMatrix<f32>,
    name: &'static str,
    what: &str,
) -> Result<Array2<f32>> {
    let host = matrix.download(context)?;
    overflow(name, what, host.as_slice().unwrap_or(&[]))?;
    Ok(host)
}

/// Gradients of a layer's backward pass; each is `None` when it was not asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerGradients<W, B, X> {
    /// Gradient of the weight, in the weight's layout.
    pub weight: Option<W>,
    /// Gradient of the bias.
    pub bias: Option<B>,
    /// Gradient of the input.
    pub input: Option<X>,
}

/// What a backward pass computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackwardRequest {
    /// The parameter gradients (weight, and bias when the layer has one).
    pub params: bool,
    /// Whether the layer has a bias.
    pub bias: bool,
    /// The gradient of the input.
    pub input: bool,
}

/// Checks the operands of a dense layer without a device: `x` is `rows × in`, `weight`
/// holds `out · in` values (`[out, in]` row-major), `bias` (if any) `out`; all finite.
///
/// # Errors
/// An empty batch, mismatched lengths or non-finite values, naming the parameter.
pub fn check_dense(
    x: ArrayView2<'_, f32>,
    weight: &[f32],
    out_features: usize,
    bias: Option<&[f32]>,
) -> Result<()> {
    let (rows, in_features) = x.dim();
    check_matrix_shape("input", rows, in_features)?;
    check_matrix_shape("weight", out_features, in_features)?;
    check::length("weight", weight.len(), out_features * in_features)?;
    if let Some(bias) = bias {
        check::length("bias", bias.len(), out_features)?;
        check::finite_values("bias", bias.iter().copied())?;
    }
    check::finite("input", &x)?;
    check::finite_values("weight", weight.iter().copied())?;
    Ok(())
}

/// Dense forward on device buffers: `x` (`rows × in`), `weight` (`out × in`), `bias`
/// (`1 × out`); returns `rows × out` (with a ReLU when `relu`).
///
/// # Errors
/// Shapes that do not chain, buffers of another context, device errors.
pub fn dense_forward_device(
    context: &GpuContext,
    x: &DeviceMatrix<f32>,
    weight: &DeviceMatrix<f32>,
    bias: Option<&DeviceMatrix<f32>>,
    relu: bool,
) -> Result<DeviceMatrix<f32>> {
    let mut y = matmul(context, x, false, weight, true)?;
    let (rows, out) = y.dim();
    let zeros;
    let bias = match bias {
        Some(bias) => {
            bias.check_context(context, "bias")?;
            check::shape("bias", &[bias.rows(), bias.cols()], &[1, out])?;
            Some(bias)
        }
        // A zero bias keeps one kernel for the ReLU (x + 0 = x exactly).
        None if relu => {
            zeros = DeviceMatrix::zeros(context, 1, out)?;
            Some(&zeros)
        }
        None => None,
    };
    if let Some(bias) = bias {
        bias_add(context, &mut y, rows, out, 1, bias, relu)?;
    }
    Ok(y)
}

/// tessera-nn's `Dense` forward, `x Wᵀ + b` (then `max(·, 0)` when `relu`), on the device:
/// `x` is `rows × in`, `weight` the flat `[out, in]` parameters, `bias` `out` values.
///
/// # Errors
/// See [`check_dense`]; [`GpuError::Overflow`] when finite input overflows f32; device errors.
pub fn dense_forward(
    context: &GpuContext,
    x: ArrayView2<'_, f32>,
    weight: &[f32],
    out_features: usize,
    bias: Option<&[f32]>,
    relu: bool,
) -> Result<Array2<f32>> {
    check_dense(x, weight, out_features, bias)?;
    let in_features = x.ncols();
    let weight = upload_matrix(context, "weight", weight, out_features, in_features)?;
    let bias = bias
        .map(|b| upload_matrix(context, "bias", b, 1, out_features))
        .transpose()?;
    let x = DeviceMatrix::upload(context, "input", x)?;
    let y = dense_forward_device(context, &x, &weight, bias.as_ref(), relu)?;
    download_checked(context, &y, "input", "the dense layer's output")
}

fn upload_matrix(
    context: &GpuContext,
    name: &'static str,
    values: &[f32],
    rows: usize,
    cols: usize,
) -> Result<DeviceMatrix<f32>> {
    let view = ArrayView2::from_shape((rows, cols), values)
        .map_err(|_| InputError::shape(name, [rows, cols], [values.len()]))?;
    DeviceMatrix::upload(context, name, view)
}

/// Dense backward on device buffers: with `delta = ∂L/∂y` (`rows × out`), the weight
/// gradient `δᵀx` (`out × in`), the bias gradient `Σ_rows δ` (`1 × out`) and the input
/// gradient `δW` (`rows × in`), as `request` asks.
///
/// # Errors
/// Shapes that do not chain, buffers of another context, device errors.
pub fn dense_backward_device(
    context: &GpuContext,
    x: &DeviceMatrix<f32>,
    weight: &DeviceMatrix<f32>,
    delta: &DeviceMatrix<f32>,
    request: BackwardRequest,
) -> Result<LayerGradients<DeviceMatrix<f32>, DeviceMatrix<f32>, DeviceMatrix<f32>>> {
    check::shape(
        "grad_output",
        &[delta.rows(), delta.cols()],
        &[x.rows(), weight.rows()],
    )?;
    let weight_grad = request
        .params
        .then(|| matmul(context, delta, true, x, false))
        .transpose()?;
    let bias_gradient = (request.params && request.bias)
        .then(|| bias_grad(context, delta, delta.rows(), delta.cols(), 1))
        .transpose()?;
    let input = request
        .input
        .then(|| matmul(context, delta, false, weight, false))
        .transpose()?;
    Ok(LayerGradients {
        weight: weight_grad,
        bias: bias_gradient,
        input,
    })
}

/// tessera-nn's `Dense` backward on the device: the gradients (not accumulated: the caller
/// adds them to its gradient slices) of the weight (`out × in`), the bias and the input
/// (`rows × in`) for `grad_output` (`rows × out`).
///
/// # Errors
/// See [`check_dense`]; a `grad_output` of another shape or with non-finite values;
/// [`GpuError::Overflow`]; device errors.
pub fn dense_backward(
    context: &GpuContext,
    x: ArrayView2<'_, f32>,
    weight: &[f32],
    grad_output: ArrayView2<'_, f32>,
    request: BackwardRequest,
) -> Result<LayerGradients<Array2<f32>, Array1<f32>, Array2<f32>>> {
    let out_features = grad_output.ncols();
    check_dense(x, weight, out_features, None)?;
    check::shape(
        "grad_output",
        grad_output.shape(),
        &[x.nrows(), out_features],
    )?;
    check::finite("grad_output", &grad_output)?;
    let weight = upload_matrix(context, "weight", weight, out_features, x.ncols())?;
    let x = DeviceMatrix::upload(context, "input", x)?;
    let delta = DeviceMatrix::upload(context, "grad_output", grad_output)?;
    let device = dense_backward_device(context, &x, &weight, &delta, request)?;
    download_gradients(context, device, Ok)
}

fn download_gradients<Y>(
    context: &GpuContext,
    device: LayerGradients<DeviceMatrix<f32>, DeviceMatrix<f32>, DeviceMatrix<f32>>,
    shape_input: impl FnOnce(Array2<f32>) -> Result<Y>,
) -> Result<LayerGradients<Array2<f32>, Array1<f32>, Y>> {
    let weight = device
        .weight
        .map(|w| download_checked(context, &w, "grad_output", "the weight gradient"))
        .transpose()?;
    let bias = device
        .bias
        .map(|b| {
            download_checked(context, &b, "grad_output", "the bias gradient")
                .map(|b| b.into_iter().collect::<Array1<f32>>())
        })
        .transpose()?;
    let input = device
        .input
        .map(|x| {
            download_checked(context, &x, "grad_output", "the input gradient").and_then(shape_input)
        })
        .transpose()?;
    Ok(LayerGradients {
        weight,
        bias,
        input,
    })
}

/// The shape of one 2-D convolution (tessera-nn's `Conv2d` on `channels × height × width`
/// images).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeometry {
    /// Input channels `C`.
    pub channels: usize,
    /// Input height `H`.
    pub height: usize,
    /// Input width `W`.
    pub width: usize,
    /// Output channels `O`.
    pub out_channels: usize,
    /// Kernel `[kh, kw]`.
    pub kernel: [usize; 2],
    /// Stride `[sh, sw]` (≥ 1).
    pub stride: [usize; 2],
    /// Zero padding `[ph, pw]`.
    pub padding: [usize; 2],
}

/// A checked [`ConvGeometry`] with its derived sizes and the kernels' `int` arguments.
#[derive(Debug, Clone, Copy)]
struct Conv {
    g: ConvGeometry,
    out_h: usize,
    out_w: usize,
    /// C, H, W, kh, kw, sh, sw, ph, pw, oh, ow as the kernels take them.
    ints: [i32; 11],
}

impl Conv {
    fn rows(&self) -> usize {
        self.g.channels * self.g.kernel[0] * self.g.kernel[1]
    }
    fn positions(&self) -> usize {
        self.out_h * self.out_w
    }
    fn image_in(&self) -> usize {
        self.g.channels * self.g.height * self.g.width
    }
    fn image_out(&self) -> usize {
        self.g.out_channels * self.positions()
    }
}

impl ConvGeometry {
    /// The output size `(oh, ow)`: $o = \lfloor (i + 2p - k)/s \rfloor + 1$.
    ///
    /// # Errors
    /// A zero channel count, side, kernel side or stride; a kernel larger than the padded
    /// input; sizes beyond the kernels' `int` arguments.
    pub fn output_size(&self) -> Result<(usize, usize)> {
        let conv = self.checked()?;
        Ok((conv.out_h, conv.out_w))
    }

    fn checked(&self) -> Result<Conv> {
        check::positive_size("channels", self.channels)?;
        check::positive_size("height", self.height)?;
        check::positive_size("width", self.width)?;
        check::positive_size("out_channels", self.out_channels)?;
        if self.kernel.contains(&0) {
            return Err(InputError::invalid(
                "kernel",
                format!("{:?}", self.kernel),
                "every side must be at least 1",
            )
            .into());
        }
        if self.stride.contains(&0) {
            return Err(InputError::invalid(
                "stride",
                format!("{:?}", self.stride),
                "every stride must be at least 1",
            )
            .into());
        }
        let padded = [
            self.height
                .saturating_add(self.padding[0].saturating_mul(2)),
            self.width.saturating_add(self.padding[1].saturating_mul(2)),
        ];
        if self.kernel[0] > padded[0] || self.kernel[1] > padded[1] {
            return Err(InputError::invalid(
                "kernel",
                format!("{:?}", self.kernel),
                format!("must fit in the padded input {}×{}", padded[0], padded[1]),
            )
            .into());
        }
        let out_h = (padded[0] - self.kernel[0]) / self.stride[0] + 1;
        let out_w = (padded[1] - self.kernel[1]) / self.stride[1] + 1;
        let mut ints = [0i32; 11];
        for (slot, (name, value)) in ints.iter_mut().zip([
            ("channels", self.channels),
            ("height", self.height),
            ("width", self.width),
            ("kernel", self.kernel[0]),
            ("kernel", self.kernel[1]),
            ("stride", self.stride[0]),
            ("stride", self.stride[1]),
            ("padding", self.padding[0]),
            ("padding", self.padding[1]),
            ("height", out_h),
            ("width", out_w),
        ]) {
            *slot = as_i32(name, value)?;
        }
        as_i32("out_channels", self.out_channels)?;
        let conv = Conv {
            g: *self,
            out_h,
            out_w,
            ints,
        };
        // Per-image matrices are GEMM operands with i32 sides.
        check_matrix_shape("kernel", conv.rows(), conv.positions())?;
        check_matrix_shape("weight", self.out_channels, conv.rows())?;
        Ok(conv)
    }
}

/// Checks a convolution's operands without a device: `x` is `(batch, C, H, W)` as the
/// geometry says, `weight` holds `O·C·kh·kw` values, `bias` (if any) `O`; all finite.
///
/// # Errors
/// See [`ConvGeometry::output_size`]; an empty batch, other shapes or lengths, non-finite
/// values.
pub fn check_conv2d(
    geometry: &ConvGeometry,
    x: ArrayView4<'_, f32>,
    weight: &[f32],
    bias: Option<&[f32]>,
) -> Result<(usize, usize)> {
    let conv = geometry.checked()?;
    let (batch, c, h, w) = x.dim();
    check::non_empty("input", batch)?;
    check::shape(
        "input",
        &[c, h, w],
        &[geometry.channels, geometry.height, geometry.width],
    )?;
    check::length("weight", weight.len(), geometry.out_channels * conv.rows())?;
    check::element_count(
        "input",
        &[batch, conv.rows(), conv.positions()],
        i64::MAX as usize,
    )?;
    if let Some(bias) = bias {
        check::length("bias", bias.len(), geometry.out_channels)?;
        check::finite_values("bias", bias.iter().copied())?;
    }
    check::finite("input", &x)?;
    check::finite_values("weight", weight.iter().copied())?;
    Ok((conv.out_h, conv.out_w))
}

/// Launches `nn_im2col` (`accumulate` = `None`) or `nn_col2im` over `work` output
/// elements: both take `(input, batch, C, H, W, kh, kw, sh, sw, ph, pw, oh, ow, …, output)`.
fn launch_unroll(
    context: &GpuContext,
    name: &'static str,
    conv: &Conv,
    input: &DeviceMatrix<f32>,
    accumulate: Option<i32>,
    output: &mut DeviceMatrix<f32>,
    work: usize,
) -> Result<()> {
    let function = context.function(&NN, name)?;
    let mut launch = context.stream().launch_builder(&function);
    let batch_i64 = as_i64("input", input.rows())?;
    launch.arg(&input.data).arg(&batch_i64);
    for value in &conv.ints {
        launch.arg(value);
    }
    if let Some(accumulate) = &accumulate {
        launch.arg(accumulate);
    }
    launch.arg(&mut output.data);
    // SAFETY: the arguments match nn_im2col (without `accumulate`) and nn_col2im (with it)
    // in order and type. For im2col, input holds batch × C·H·W values and output
    // batch × C·kh·kw × oh·ow = `work`; for col2im the two the other way round, output again
    // `work` values; the callers allocate them so, and the kernels' indices stay inside
    // (checked on the CPU by the host-shim tests).
    unsafe { launch.launch(config_for(work)) }.map_err(GpuError::driver(name))?;
    Ok(())
}

/// The unrolled receptive fields of every image of `x` (`batch × C·H·W`), laid out
/// `(batch, C·kh·kw, oh·ow)`.
fn im2col(context: &GpuContext, conv: &Conv, x: &DeviceMatrix<f32>) -> Result<DeviceMatrix<f32>> {
    let work = x.rows() * conv.rows() * conv.positions();
    let mut cols = DeviceMatrix::zeros(context, x.rows(), conv.rows() * conv.positions())?;
    launch_unroll(context, "nn_im2col", conv, x, None, &mut cols, work)?;
    Ok(cols)
}

/// Checks the geometry and that `x` (`batch × C·H·W`) and `weight` (`O × C·kh·kw`) fit it
/// and belong to `context`.
fn checked_buffers(
    context: &GpuContext,
    geometry: &ConvGeometry,
    x: &DeviceMatrix<f32>,
    weight: &DeviceMatrix<f32>,
) -> Result<Conv> {
    let conv = geometry.checked()?;
    check::shape("input", &[x.rows(), x.cols()], &[x.rows(), conv.image_in()])?;
    let expected = [geometry.out_channels, conv.rows()];
    check::shape("weight", &[weight.rows(), weight.cols()], &expected)?;
    x.check_context(context, "input")?;
    weight.check_context(context, "weight")?;
    Ok(conv)
}

/// `output_b = op(W)·input_b` for every image `b` (rows of `input` and `output`, each a
/// row-major matrix with `positions` columns) in one strided-batched GEMM that shares `W`.
fn per_image_product(
    context: &GpuContext,
    weight: &DeviceMatrix<f32>,
    transpose: bool,
    input: &DeviceMatrix<f32>,
    positions: usize,
    output: &mut DeviceMatrix<f32>,
) -> Result<()> {
    let (m, k) = if transpose {
        (weight.cols(), weight.rows())
    } else {
        (weight.rows(), weight.cols())
    };
    let shape = GemmShape {
        stride_a: 0,
        stride_b: k * positions,
        stride_c: m * positions,
        batch: input.rows(),
        ..GemmShape::single(m, positions, k, transpose, false)
    };
    gemm(
        context,
        &shape,
        1.0,
        &weight.data.as_view(),
        &input.data.as_view(),
        0.0,
        &mut output.data.as_view_mut(),
    )
}

/// Conv2d forward on device buffers: `x` is `batch × C·H·W` (NCHW rows), `weight`
/// `O × C·kh·kw`, `bias` `1 × O`; returns `batch × O·oh·ow`.
///
/// # Errors
/// See [`ConvGeometry::output_size`]; buffers of other shapes or contexts; device errors.
pub fn conv2d_forward_device(
    context: &GpuContext,
    geometry: &ConvGeometry,
    x: &DeviceMatrix<f32>,
    weight: &DeviceMatrix<f32>,
    bias: Option<&DeviceMatrix<f32>>,
) -> Result<DeviceMatrix<f32>> {
    let conv = checked_buffers(context, geometry, x, weight)?;
    let (batch, p, o) = (x.rows(), conv.positions(), geometry.out_channels);
    let cols = im2col(context, &conv, x)?;
    let mut y = DeviceMatrix::zeros(context, batch, conv.image_out())?;
    per_image_product(context, weight, false, &cols, p, &mut y)?;
    if let Some(bias) = bias {
        bias.check_context(context, "bias")?;
        check::shape("bias", &[bias.rows(), bias.cols()], &[1, o])?;
        bias_add(context, &mut y, batch, o, p, bias, false)?;
    }
    Ok(y)
}

/// tessera-nn's `Conv2d` forward on the device: `x` NCHW, `weight` the flat
/// `[O, C, kh, kw]` parameters, `bias` `O` values; returns `(batch, O, oh, ow)`.
///
/// # Errors
/// See [`check_conv2d`]; [`GpuError::Overflow`]; device errors.
pub fn conv2d_forward(
    context: &GpuContext,
    geometry: &ConvGeometry,
    x: ArrayView4<'_, f32>,
    weight: &[f32],
    bias: Option<&[f32]>,
) -> Result<Array4<f32>> {
    let (out_h, out_w) = check_conv2d(geometry, x, weight, bias)?;
    let batch = x.dim().0;
    let (x_device, weight) = upload_conv(context, geometry, x, weight)?;
    let bias = bias
        .map(|b| upload_matrix(context, "bias", b, 1, geometry.out_channels))
        .transpose()?;
    let y = conv2d_forward_device(context, geometry, &x_device, &weight, bias.as_ref())?;
    let y = download_checked(context, &y, "input", "the convolution's output")?;
    reshape4(y, [batch, geometry.out_channels, out_h, out_w])
}

fn upload_conv(
    context: &GpuContext,
    geometry: &ConvGeometry,
    x: ArrayView4<'_, f32>,
    weight: &[f32],
) -> Result<(DeviceMatrix<f32>, DeviceMatrix<f32>)> {
    let batch = x.dim().0;
    let k = geometry.channels * geometry.kernel[0] * geometry.kernel[1];
    let x = x.as_standard_layout();
    let image = geometry.channels * geometry.height * geometry.width;
    let x = upload_matrix(context, "input", x.as_slice().unwrap_or(&[]), batch, image)?;
    let weight = upload_matrix(context, "weight", weight, geometry.out_channels, k)?;
    Ok((x, weight))
}

fn reshape4(values: Array2<f32>, shape: [usize; 4]) -> Result<Array4<f32>> {
    values
        .into_shape_with_order(shape)
        .map_err(|e| GpuError::Driver {
            operation: "shaping a downloaded tensor",
            message: e.to_string(),
        })
}

/// Most per-image partial weight gradients held at once (floats; 256 MiB in f32).
const PARTIAL_GRADIENT_FLOATS: usize = 1 << 26;

/// $\sum_b \delta_b\,\mathrm{cols}_b^\top$ (`O × K`): per-image products in one
/// strided-batched GEMM over chunks of images (the `(batch, O, P)` layout of δ gives no single
/// GEMM over images and positions), each chunk's partials summed in image order by
/// `nn_sum_batch` into the result.
fn weight_grad(
    context: &GpuContext,
    delta: &DeviceMatrix<f32>,
    cols: &DeviceMatrix<f32>,
    o: usize,
    k: usize,
    p: usize,
) -> Result<DeviceMatrix<f32>> {
    let batch = delta.rows();
    let chunk = (PARTIAL_GRADIENT_FLOATS / (o * k)).clamp(1, batch);
    let mut partials = DeviceMatrix::zeros(context, chunk, o * k)?;
    let mut grad = DeviceMatrix::zeros(context, o, k)?;
    let function = context.function(&NN, "nn_sum_batch")?;
    for first in (0..batch).step_by(chunk) {
        let images = chunk.min(batch - first);
        let shape = GemmShape {
            stride_a: o * p,
            stride_b: k * p,
            stride_c: o * k,
            batch: images,
            ..GemmShape::single(o, k, p, false, true)
        };
        gemm(
            context,
            &shape,
            1.0,
            &delta.data.slice(first * o * p..(first + images) * o * p),
            &cols.data.slice(first * k * p..(first + images) * k * p),
            0.0,
            &mut partials.data.as_view_mut(),
        )?;
        let mut launch = context.stream().launch_builder(&function);
        let (images_i64, len_i64) = (as_i64("input", images)?, as_i64("weight", o * k)?);
        let accumulate = i32::from(first > 0);
        launch
            .arg(&partials.data)
            .arg(&images_i64)
            .arg(&len_i64)
            .arg(&accumulate)
            .arg(&mut grad.data);
        // SAFETY: the arguments match nn_sum_batch; partials holds chunk ≥ images × O·K values
        // and grad O·K, the kernel's flat output range.
        unsafe { launch.launch(config_for(o * k)) }
            .map_err(GpuError::driver("launching nn_sum_batch"))?;
    }
    Ok(grad)
}

/// Conv2d backward on device buffers (layouts as [`conv2d_forward_device`]): with
/// `delta = ∂L/∂y` (`batch × O·oh·ow`), the weight gradient $\sum_b \delta_b
/// \mathrm{cols}(x_b)^\top$ (`O × C·kh·kw`), the bias gradient (`1 × O`) and the input
/// gradient (`batch × C·H·W`), as `request` asks.
///
/// # Errors
/// See [`ConvGeometry::output_size`]; buffers of other shapes or contexts; device errors.
pub fn conv2d_backward_device(
    context: &GpuContext,
    geometry: &ConvGeometry,
    x: &DeviceMatrix<f32>,
    weight: &DeviceMatrix<f32>,
    delta: &DeviceMatrix<f32>,
    request: BackwardRequest,
) -> Result<LayerGradients<DeviceMatrix<f32>, DeviceMatrix<f32>, DeviceMatrix<f32>>> {
    let conv = checked_buffers(context, geometry, x, weight)?;
    let (batch, k, p, o) = (
        x.rows(),
        conv.rows(),
        conv.positions(),
        geometry.out_channels,
    );
    check::shape(
        "grad_output",
        &[delta.rows(), delta.cols()],
        &[batch, conv.image_out()],
    )?;
    delta.check_context(context, "grad_output")?;
    let mut gradients = LayerGradients {
        weight: None,
        bias: None,
        input: None,
    };
    if request.params {
        let cols = im2col(context, &conv, x)?;
        gradients.weight = Some(weight_grad(context, delta, &cols, o, k, p)?);
        if request.bias {
            gradients.bias = Some(bias_grad(context, delta, batch, o, p)?);
        }
    }
    if request.input {
        let mut cols = DeviceMatrix::zeros(context, batch, k * p)?;
        per_image_product(context, weight, true, delta, p, &mut cols)?;
        let mut dx = DeviceMatrix::zeros(context, batch, conv.image_in())?;
        let work = batch * conv.image_in();
        launch_unroll(context, "nn_col2im", &conv, &cols, Some(0), &mut dx, work)?;
        gradients.input = Some(dx);
    }
    Ok(gradients)
}

/// tessera-nn's `Conv2d` backward on the device: the gradients (not accumulated) of the
/// flat weight `[O, C, kh, kw]` (as an `O × C·kh·kw` matrix), the bias and the NCHW input for
/// `grad_output` of shape `(batch, O, oh, ow)`.
///
/// # Errors
/// See [`check_conv2d`]; a `grad_output` of another shape or with non-finite values;
/// [`GpuError::Overflow`]; device errors.
pub fn conv2d_backward(
    context: &GpuContext,
    geometry: &ConvGeometry,
    x: ArrayView4<'_, f32>,
    weight: &[f32],
    grad_output: ArrayView4<'_, f32>,
    request: BackwardRequest,
) -> Result<LayerGradients<Array2<f32>, Array1<f32>, Array4<f32>>> {
    let (out_h, out_w) = check_conv2d(geometry, x, weight, None)?;
    let (batch, c, h, w) = x.dim();
    check::shape(
        "grad_output",
        grad_output.shape(),
        &[batch, geometry.out_channels, out_h, out_w],
    )?;
    check::finite("grad_output", &grad_output)?;
    let (x_device, weight) = upload_conv(context, geometry, x, weight)?;
    let delta = grad_output.as_standard_layout();
    let delta = upload_matrix(
        context,
        "grad_output",
        delta.as_slice().unwrap_or(&[]),
        batch,
        geometry.out_channels * out_h * out_w,
    )?;
    let device = conv2d_backward_device(context, geometry, &x_device, &weight, &delta, request)?;
    download_gradients(context, device, |dx| reshape4(dx, [batch, c, h, w]))
}
