//! The `cuda` feature: [`crate::attention_forward`] and [`crate::attention_backward`] run on
//! tessera-gpu for `f32` when a CUDA device is present, and on the CPU otherwise (no device,
//! `TESSERA_DEVICE=cpu`, `f64`, or tessera-gpu reporting `Unavailable`).
//!
//! Inputs are checked here first, exactly as on the CPU, so that errors are the same on both
//! devices. Any mask goes to the device as its materialised `(heads, tokens, tokens)` values
//! (the `LogitMask` trait object cannot say whether it is a Gaussian mixture), and its
//! parameter gradient is formed on the CPU from the device's mask gradient by the mask's own
//! `accumulate_gradient`.

use std::any::{Any, TypeId};

use ndarray::{Array, Array3, Array4, ArrayView, ArrayView3, ArrayView4, Dimension};
use tessera_core::{Float, MaskCombine};
use tessera_gpu::gmm_attention::{self as gpu, AttentionMask};
use tessera_gpu::GpuError;

use crate::{Error, Result};

/// The context to route to, or `None` for the CPU: `F` must be `f32` and a device present.
fn device_for<F: Float>() -> Option<&'static tessera_gpu::GpuContext> {
    if TypeId::of::<F>() != TypeId::of::<f32>() {
        return None;
    }
    tessera_gpu::default_context()
}

/// An `F` array as `f32`. This crate forbids `unsafe`, so the element type is changed by
/// boxing the owned array as `Any` and downcasting it (a move, no conversion); `None` when `F`
/// is not `f32`.
fn to_f32<F: Float, D: Dimension + 'static>(a: ArrayView<'_, F, D>) -> Option<Array<f32, D>> {
    let boxed: Box<dyn Any> = Box::new(a.to_owned());
    boxed.downcast::<Array<f32, D>>().ok().map(|a| *a)
}

/// An `f32` array as `F` (the inverse of [`to_f32`]).
fn from_f32<F: Float, D: Dimension + 'static>(a: Array<f32, D>) -> Option<Array<F, D>> {
    let boxed: Box<dyn Any> = Box::new(a);
    boxed.downcast::<Array<F, D>>().ok().map(|a| *a)
}

/// The device's description of a materialised mask.
fn dense(mask: &Option<(Array3<f32>, MaskCombine)>) -> Option<AttentionMask<'_>> {
    mask.as_ref().map(|(g, combine)| AttentionMask::Dense {
        values: g.view(),
        combine: *combine,
    })
}

/// `Some(result)` from the device, or `None` to run on the CPU.
fn routed<T>(result: std::result::Result<T, GpuError>) -> Option<Result<T>> {
    match result {
        Ok(value) => Some(Ok(value)),
        Err(e) if e.is_unavailable() => None,
        Err(GpuError::Input(e)) => Some(Err(Error::Input(e))),
        Err(e) => Some(Err(Error::Gpu(e))),
    }
}

/// The checked forward inputs on the device: output and probabilities, or `None` for the CPU.
pub(crate) fn forward<F: Float>(
    q: ArrayView4<'_, F>,
    k: ArrayView4<'_, F>,
    v: ArrayView4<'_, F>,
    mask: Option<(ArrayView3<'_, F>, MaskCombine)>,
) -> Option<Result<(Array4<F>, Array4<F>)>> {
    let context = device_for::<F>()?;
    let (q, k, v) = (to_f32(q)?, to_f32(k)?, to_f32(v)?);
    let mask = match mask {
        Some((g, combine)) => Some((to_f32(g)?, combine)),
        None => None,
    };
    let mask = dense(&mask);
    let result = routed(gpu::attention_forward(
        context,
        q.view(),
        k.view(),
        v.view(),
        mask.as_ref(),
    ))?;
    Some(result.and_then(|out| {
        let output = from_f32(out.output);
        let probabilities = from_f32(out.probabilities);
        output.zip(probabilities).ok_or_else(not_f32)
    }))
}

/// The gradients of `q`, `k`, `v` and of the mask values on the device, or `None` for the CPU.
pub(crate) type Gradients<F> = (Array4<F>, Array4<F>, Array4<F>, Option<Array3<F>>);

/// The checked backward inputs on the device, or `None` for the CPU.
pub(crate) fn backward<F: Float>(
    probabilities: ArrayView4<'_, F>,
    q: ArrayView4<'_, F>,
    k: ArrayView4<'_, F>,
    v: ArrayView4<'_, F>,
    grad_output: ArrayView4<'_, F>,
    mask: Option<(ArrayView3<'_, F>, MaskCombine)>,
) -> Option<Result<Gradients<F>>> {
    let context = device_for::<F>()?;
    let (q, k, v) = (to_f32(q)?, to_f32(k)?, to_f32(v)?);
    let (probabilities, grad_output) = (to_f32(probabilities)?, to_f32(grad_output)?);
    let mask = match mask {
        Some((g, combine)) => Some((to_f32(g)?, combine)),
        None => None,
    };
    let mask = dense(&mask);
    let result = routed(gpu::attention_backward(
        context,
        q.view(),
        k.view(),
        v.view(),
        probabilities.view(),
        grad_output.view(),
        mask.as_ref(),
    ))?;
    Some(result.and_then(|g| {
        let grad_mask = match g.mask {
            Some(dg) => Some(from_f32(dg).ok_or_else(not_f32)?),
            None => None,
        };
        match (from_f32(g.q), from_f32(g.k), from_f32(g.v)) {
            (Some(dq), Some(dk), Some(dv)) => Ok((dq, dk, dv, grad_mask)),
            _ => Err(not_f32()),
        }
    }))
}

/// Unreachable after [`device_for`] admitted `f32`; an error rather than a panic all the same.
fn not_f32() -> Error {
    Error::Input(tessera_core::InputError::invalid(
        "F",
        "not f32",
        "the CUDA path takes f32 only",
    ))
}

#[cfg(test)]
mod tests {
    use approx::assert_abs_diff_eq;
    use ndarray::Array4;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use tessera_core::{LogitMask, MaskCombine};

    use crate::{attention_backward, attention_forward, GaussianMixtureMask, MaskRef, TokenGrid};

    fn largest_difference(a: &Array4<f32>, b: &Array4<f64>) -> f64 {
        a.iter()
            .zip(b)
            .map(|(&x, &y)| (f64::from(x) - y).abs() / y.abs().max(1e-2))
            .fold(0.0, f64::max)
    }

    /// Whichever device `f32` runs on (the GPU when one is present), it agrees with the `f64`
    /// path, which always stays on the CPU.
    #[test]
    fn f32_attention_on_any_device_matches_f64_on_the_cpu() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let grid = TokenGrid::new(3, 2)
            .and_then(|g| g.with_extra_tokens(1))
            .expect("grid");
        for combine in [MaskCombine::Multiply, MaskCombine::Add] {
            let mask = GaussianMixtureMask::new(grid, 2, 3, 9)
                .expect("mask")
                .with_combine(combine);
            let shape = (3, 2, grid.tokens(), 4);
            let q = Array4::from_shape_fn(shape, |_| rng.random_range(-1.0..1.0f64));
            let k = Array4::from_shape_fn(shape, |_| rng.random_range(-1.0..1.0f64));
            let v = Array4::from_shape_fn(shape, |_| rng.random_range(-1.0..1.0f64));
            let grad_out = Array4::from_shape_fn(shape, |_| rng.random_range(-1.0..1.0f64));
            let params: Vec<f64> = (0..12).map(|_| rng.random_range(0.3..2.0)).collect();
            let params32: Vec<f32> = params.iter().map(|&p| p as f32).collect();
            let narrow = |a: &Array4<f64>| a.mapv(|x| x as f32);

            let mask64 = Some(MaskRef::new(&mask as &dyn LogitMask<f64>, &params));
            let (out64, cache64) =
                attention_forward(q.view(), k.view(), v.view(), mask64).expect("f64");
            let mut grad64 = vec![0.0; 12];
            let g64 = attention_backward(
                &cache64,
                q.view(),
                k.view(),
                v.view(),
                grad_out.view(),
                mask64,
                &mut grad64,
            )
            .expect("f64 backward");

            let (q32, k32, v32, go32) = (narrow(&q), narrow(&k), narrow(&v), narrow(&grad_out));
            let mask32 = Some(MaskRef::new(&mask as &dyn LogitMask<f32>, &params32));
            let (out32, cache32) =
                attention_forward(q32.view(), k32.view(), v32.view(), mask32).expect("f32");
            let mut grad32 = vec![0.0f32; 12];
            let g32 = attention_backward(
                &cache32,
                q32.view(),
                k32.view(),
                v32.view(),
                go32.view(),
                mask32,
                &mut grad32,
            )
            .expect("f32 backward");

            assert!(largest_difference(&out32, &out64) < 1e-4);
            assert!(largest_difference(&g32.q, &g64.q) < 1e-4);
            assert!(largest_difference(&g32.k, &g64.k) < 1e-4);
            assert!(largest_difference(&g32.v, &g64.v) < 1e-4);
            let scale = grad64.iter().fold(1e-2f64, |m, g| m.max(g.abs()));
            for (a, b) in grad32.iter().zip(&grad64) {
                assert_abs_diff_eq!(f64::from(*a), *b, epsilon = 1e-4 * scale);
            }
        }
    }
}
