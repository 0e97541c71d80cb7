//! Routing of the `Dense` and `Conv2d` forward and backward passes to tessera-gpu (feature
//! `cuda`): for `f32` layers large enough to pay for the host↔device copies, when a device
//! is usable. Every function returns `Ok(None)` when the CPU should run instead: another
//! element type, a small layer, no device, or a device that reports itself unavailable.
//!
//! Results agree with the CPU layers to rounding (cuBLAS sums in another order), so a run
//! that uses the device is not bit-identical to a CPU run; `TESSERA_DEVICE=cpu` keeps the
//! CPU's determinism.

use ndarray::{Array2, ArrayD, ArrayView2, ArrayView4, ArrayViewD, IxDyn};
use tessera_gpu::{BackwardRequest, ConvGeometry, GpuContext};

use crate::error::Result;
use crate::Float;

/// Fewest multiply–adds of a product worth the copies to and from the device (every layer
/// call uploads its operands and downloads its result).
pub(crate) const GPU_MIN_FMAS: usize = 1 << 22;

/// `value` as a `B` when the types agree (moves through `Any`: this crate has no `unsafe`
/// and the element type is only known to be `F: 'static`).
fn cast<A: 'static, B: 'static>(value: A) -> Option<B> {
    let boxed: Box<dyn std::any::Any> = Box::new(value);
    boxed.downcast::<B>().ok().map(|b| *b)
}

fn slice32<F: Float>(values: &[F]) -> Option<Vec<f32>> {
    cast(values.to_vec())
}

/// The device for an `F` product of `fmas` multiply–adds, if it should run there.
fn device_for<F: Float>(fmas: usize) -> Option<&'static GpuContext> {
    if std::any::TypeId::of::<F>() != std::any::TypeId::of::<f32>() || fmas < GPU_MIN_FMAS {
        return None;
    }
    tessera_gpu::default_context()
}

/// `Ok(None)` (run on the CPU) for an unavailable device, the error otherwise.
fn outcome<T>(result: tessera_gpu::Result<T>) -> Result<Option<T>> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(e) if e.is_unavailable() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Gradients of a backward pass, in `F`, to be added to the layer's gradient slices.
pub(crate) struct Gradients<F> {
    /// Weight gradient, flat in the weight's layout.
    pub weight: Option<Vec<F>>,
    /// Bias gradient.
    pub bias: Option<Vec<F>>,
    /// Input gradient.
    pub input: Option<ArrayD<F>>,
}

impl<F: Float> Gradients<F> {
    /// Adds the parameter gradients into `grad` (weight first, then bias, as the flat
    /// parameter vector lays them out).
    pub fn add_into(&self, grad: &mut [F]) {
        let weight = self.weight.iter().flatten();
        let bias = self.bias.iter().flatten();
        for (g, &v) in grad.iter_mut().zip(weight.chain(bias)) {
            *g += v;
        }
    }
}

fn gradients<F: Float, X: ndarray::Dimension>(
    g: tessera_gpu::LayerGradients<Array2<f32>, ndarray::Array1<f32>, ndarray::Array<f32, X>>,
    input_shape: &[usize],
) -> Option<Gradients<F>> {
    // The casts cannot fail (F is f32 here); `?` turns a failure into "run on the CPU".
    let weight = match g.weight {
        Some(w) => Some(cast::<Vec<f32>, Vec<F>>(w.into_iter().collect())?),
        None => None,
    };
    let bias = match g.bias {
        Some(b) => Some(cast::<Vec<f32>, Vec<F>>(b.to_vec())?),
        None => None,
    };
    let input = match g.input {
        Some(dx) => {
            let dx = dx.into_shape_with_order(IxDyn(input_shape)).ok()?;
            Some(cast::<ArrayD<f32>, ArrayD<F>>(dx)?)
        }
        None => None,
    };
    Some(Gradients {
        weight,
        bias,
        input,
    })
}

/// `x Wᵀ + b` on the device; `x` is `rows × in`.
pub(crate) fn dense_forward<F: Float>(
    x: ArrayView2<'_, F>,
    weight: &[F],
    out_features: usize,
    bias: Option<&[F]>,
) -> Result<Option<Array2<F>>> {
    let Some(context) = device_for::<F>(x.len() * out_features) else {
        return Ok(None);
    };
    let (Some(x), Some(weight)) = (
        cast::<Array2<F>, Array2<f32>>(x.to_owned()),
        slice32(weight),
    ) else {
        return Ok(None);
    };
    let bias = bias.and_then(slice32);
    let y = outcome(tessera_gpu::nn::dense_forward(
        context,
        x.view(),
        &weight,
        out_features,
        bias.as_deref(),
        false,
    ))?;
    Ok(y.and_then(cast))
}

/// The dense layer's gradients on the device for `delta = ∂L/∂y` (`rows × out`).
pub(crate) fn dense_backward<F: Float>(
    x: ArrayView2<'_, F>,
    weight: &[F],
    delta: ArrayView2<'_, F>,
    request: BackwardRequest,
    input_shape: &[usize],
) -> Result<Option<Gradients<F>>> {
    let work = if request.params || request.input {
        x.len() * delta.ncols()
    } else {
        0
    };
    let Some(context) = device_for::<F>(work) else {
        return Ok(None);
    };
    let (Some(x), Some(weight), Some(delta)) = (
        cast::<Array2<F>, Array2<f32>>(x.to_owned()),
        slice32(weight),
        cast::<Array2<F>, Array2<f32>>(delta.to_owned()),
    ) else {
        return Ok(None);
    };
    let g = outcome(tessera_gpu::nn::dense_backward(
        context,
        x.view(),
        &weight,
        delta.view(),
        request,
    ))?;
    Ok(g.and_then(|g| gradients(g, input_shape)))
}

fn fmas(geometry: &ConvGeometry, batch: usize) -> usize {
    let [kh, kw] = geometry.kernel;
    let out = geometry.output_size().map(|(oh, ow)| oh * ow).unwrap_or(0);
    batch * geometry.out_channels * geometry.channels * kh * kw * out
}

fn input32<F: Float>(x: ArrayViewD<'_, F>) -> Option<ndarray::Array4<f32>> {
    let x = cast::<ArrayD<F>, ArrayD<f32>>(x.to_owned())?;
    x.into_dimensionality().ok()
}

/// The convolution's output `(batch, O, oh, ow)` on the device.
pub(crate) fn conv2d_forward<F: Float>(
    geometry: &ConvGeometry,
    x: ArrayViewD<'_, F>,
    weight: &[F],
    bias: Option<&[F]>,
) -> Result<Option<ArrayD<F>>> {
    let Some(context) = device_for::<F>(fmas(geometry, x.shape()[0])) else {
        return Ok(None);
    };
    let (Some(x), Some(weight)) = (input32(x), slice32(weight)) else {
        return Ok(None);
    };
    let bias = bias.and_then(slice32);
    let view: ArrayView4<'_, f32> = x.view();
    let y = outcome(tessera_gpu::nn::conv2d_forward(
        context,
        geometry,
        view,
        &weight,
        bias.as_deref(),
    ))?;
    Ok(y.map(|y| y.into_dyn()).and_then(cast))
}

/// The convolution's gradients on the device for `delta = ∂L/∂y`.
pub(crate) fn conv2d_backward<F: Float>(
    geometry: &ConvGeometry,
    x: ArrayViewD<'_, F>,
    weight: &[F],
    delta: ArrayViewD<'_, F>,
    request: BackwardRequest,
) -> Result<Option<Gradients<F>>> {
    let work = if request.params || request.input {
        fmas(geometry, x.shape()[0])
    } else {
        0
    };
    let Some(context) = device_for::<F>(work) else {
        return Ok(None);
    };
    let input_shape = x.shape().to_vec();
    let (Some(x), Some(weight), Some(delta)) = (input32(x), slice32(weight), input32(delta)) else {
        return Ok(None);
    };
    let g = outcome(tessera_gpu::nn::conv2d_backward(
        context,
        geometry,
        x.view(),
        &weight,
        delta.view(),
        request,
    ))?;
    Ok(g.and_then(|g| gradients(g, &input_shape)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::{Conv2d, Dense};
    use crate::{Context, Layer, Recorded};

    /// The f32 layer (on the device when there is one, large enough to be routed) against the
    /// same layer in f64 on the CPU (never routed): forward output, parameter and input
    /// gradients agree to f32 rounding.
    fn check_layer<L: Layer<f32> + Layer<f64>>(layer: &L, input_shape: &[usize]) {
        let n = Layer::<f64>::parameter_count(layer);
        let value = |i: usize, salt: usize| {
            (((i * 7919 + salt * 104729) % 2003) as f64 / 1001.0 - 1.0) * 0.5
        };
        let params: Vec<f64> = (0..n).map(|i| value(i, 1)).collect();
        let len: usize = input_shape.iter().product();
        let x = ArrayD::from_shape_vec(IxDyn(input_shape), (0..len).map(|i| value(i, 2)).collect())
            .unwrap();
        let (y, _) = layer
            .forward(&params, &mut [], x.view(), Context::eval())
            .unwrap();
        let delta = y.mapv(|v| (v * 3.0).sin());
        let run = |params: &[f64], x: &ArrayD<f64>| -> (ArrayD<f64>, Vec<f64>, ArrayD<f64>) {
            let (y, c) = layer
                .forward(params, &mut [], x.view(), Context::eval())
                .unwrap();
            let rec = Recorded {
                params,
                buffers: &[],
                input: x.view(),
                output: y.view(),
                cache: &c,
            };
            let mut g = vec![0.0; params.len()];
            let dx = layer
                .backward(&rec, delta.view(), Some(&mut g), true)
                .unwrap()
                .unwrap();
            (y, g, dx)
        };
        let (y64, g64, dx64) = run(&params, &x);
        let p32: Vec<f32> = params.iter().map(|&v| v as f32).collect();
        let x32 = x.mapv(|v| v as f32);
        let (y32, c32) = layer
            .forward(&p32, &mut [], x32.view(), Context::eval())
            .unwrap();
        let d32 = delta.mapv(|v| v as f32);
        let rec = Recorded {
            params: &p32,
            buffers: &[],
            input: x32.view(),
            output: y32.view(),
            cache: &c32,
        };
        let mut g32 = vec![0.5f32; n];
        let dx32 = layer
            .backward(&rec, d32.view(), Some(&mut g32), true)
            .unwrap()
            .unwrap();
        let close =
            |a: &mut dyn Iterator<Item = f64>, b: &mut dyn Iterator<Item = f64>, what: &str| {
                let worst = a
                    .zip(b)
                    .fold(0.0f64, |m, (p, q)| m.max((p - q).abs() / q.abs().max(1.0)));
                assert!(worst < 1e-4, "{what}: {worst}");
            };
        close(
            &mut y32.iter().map(|&v| f64::from(v)),
            &mut y64.iter().copied(),
            "output",
        );
        // Gradients are added to what the slice held (0.5 here).
        close(
            &mut g32.iter().map(|&v| f64::from(v) - 0.5),
            &mut g64.iter().copied(),
            "parameter gradient",
        );
        close(
            &mut dx32.iter().map(|&v| f64::from(v)),
            &mut dx64.iter().copied(),
            "input gradient",
        );
    }

    #[test]
    fn routed_layers_agree_with_the_cpu_in_f64() {
        let dense = Dense::new(256, 128).unwrap();
        const { assert!(128 * 256 * 128 >= GPU_MIN_FMAS) };
        check_layer(&dense, &[128, 256]);
        let conv = Conv2d::square(16, 32, 3, 1, 1).unwrap();
        check_layer(&conv, &[2, 16, 24, 24]);
        // Below the threshold and in f64 nothing is routed.
        assert!(device_for::<f32>(GPU_MIN_FMAS - 1).is_none());
        assert!(device_for::<f64>(usize::MAX).is_none());
    }
}
