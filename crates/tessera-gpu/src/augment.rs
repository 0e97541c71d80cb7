//! Batch augmentations on device tensors, equal to tessera-augment's: mixup
//! ($x' = \lambda x_i + (1-\lambda) x_{\pi(i)}$, Zhang et al. 2018; MixMatch's
//! $\lambda' = \max(\lambda, 1-\lambda)$ is drawn by the caller) and the rectangle fills of
//! CutOutSpec and SpecAugment (Park et al. 2019).
//!
//! The random draws stay with tessera-augment's samplers on the host (partners, lambdas,
//! boxes, masks), so a seed gives the same augmentation on either device; only the
//! memory-bound arithmetic runs here. That is why these take device tensors: sending a host
//! batch to the device for one elementwise pass would cost more in transfers than it saves.

use std::ops::Range;

use cudarc::driver::PushKernelArg;
use tessera_core::check;

use crate::context::{as_i32, as_i64};
use crate::kernels::AUGMENT;
use crate::launch::config_for;
use crate::{DeviceTensor, GpuContext, GpuError, InputError, Result};

/// A time × frequency rectangle of a spectrogram: bins `freq`, frames `time`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rectangle {
    /// Frequency bins covered.
    pub freq: Range<usize>,
    /// Time frames covered.
    pub time: Range<usize>,
}

/// Checks a mixup call and returns `(batch, values per item)`.
///
/// # Errors
/// Tensors of different shapes, an empty batch, `partners` or `lambdas` not one per item, a
/// partner out of range, a lambda outside [0, 1] or non-finite.
pub fn check_mixup(
    shape: &[usize],
    other_shape: &[usize],
    partners: &[usize],
    lambdas: &[f32],
) -> Result<(usize, usize)> {
    check::shape("other", other_shape, shape)?;
    let batch = check::non_empty_batch("inputs", shape)?;
    check::length("partners", partners.len(), batch)?;
    check::length("lambdas", lambdas.len(), batch)?;
    if let Some(&bad) = partners.iter().find(|&&p| p >= batch) {
        return Err(
            InputError::invalid("partners", bad, format!("must be < batch = {batch}")).into(),
        );
    }
    for &lambda in lambdas {
        check::probability("lambdas", f64::from(lambda))?;
    }
    let per_item = shape[1..].iter().product();
    Ok((batch, per_item))
}

/// Mixup of two device batches: item `i` of the result is
/// `lambdas[i] · inputs[i] + (1 − lambdas[i]) · other[partners[i]]` (tessera-augment's
/// `Mixup::mix_batch` with `other = inputs` and a shuffled `partners`, or `mix_with`).
///
/// # Errors
/// As [`check_mixup`]; device errors.
pub fn mixup(
    context: &GpuContext,
    inputs: &DeviceTensor,
    other: &DeviceTensor,
    partners: &[usize],
    lambdas: &[f32],
) -> Result<DeviceTensor> {
    let (batch, per_item) = check_mixup(inputs.shape(), other.shape(), partners, lambdas)?;
    let partners: Vec<i64> = partners.iter().map(|&p| p as i64).collect();
    let partners = context.upload(&partners)?;
    let lambdas = context.upload(lambdas)?;
    let mut out = context.zeros::<f32>(batch * per_item)?;
    let function = context.function(&AUGMENT, "mixup")?;
    let mut launch = context.stream().launch_builder(&function);
    let (batch_i64, per_item_i64) = (as_i64("inputs", batch)?, as_i64("inputs", per_item)?);
    launch
        .arg(&inputs.data)
        .arg(&other.data)
        .arg(&partners)
        .arg(&lambdas)
        .arg(&batch_i64)
        .arg(&per_item_i64)
        .arg(&mut out);
    // SAFETY: arguments match `mixup` in order and type; both inputs and `out` hold
    // batch × per_item values, partners (< batch, checked) and lambdas hold batch.
    unsafe { launch.launch(config_for(batch * per_item)) }
        .map_err(GpuError::driver("launching mixup"))?;
    Ok(DeviceTensor::from_parts(out, inputs.shape().to_vec()))
}

/// A checked rectangle fill, flattened for the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RectangleLaunch {
    /// Items.
    pub batch: usize,
    /// Spectrograms per item (the product of the axes between batch and frequency).
    pub planes: usize,
    /// Frequency bins.
    pub n_freq: usize,
    /// Time frames.
    pub n_time: usize,
    /// `(freq_start, freq_end, time_start, time_end)` of every rectangle, back to back.
    pub rects: Vec<i32>,
    /// Item `b`'s rectangles are `offsets[b] .. offsets[b + 1]`.
    pub offsets: Vec<i32>,
}

/// Checks a rectangle fill and flattens it for the kernel.
///
/// # Errors
/// A tensor of rank < 3, an empty batch, not one rectangle list per item, a rectangle outside
/// the spectrogram or reversed, a non-finite fill, sizes beyond `i32`.
pub fn check_rectangles(
    shape: &[usize],
    rectangles: &[Vec<Rectangle>],
    fill: f32,
) -> Result<RectangleLaunch> {
    if shape.len() < 3 {
        return Err(InputError::shape("spectrograms", "(batch, ..., freq, time)", shape).into());
    }
    let batch = check::non_empty_batch("spectrograms", shape)?;
    check::length("rectangles", rectangles.len(), batch)?;
    check::finite_scalar("fill", f64::from(fill))?;
    let (n_freq, n_time) = (shape[shape.len() - 2], shape[shape.len() - 1]);
    as_i32("spectrograms", n_freq)?;
    as_i32("spectrograms", n_time)?;
    let planes = shape[1..shape.len() - 2].iter().product();
    let mut rects = Vec::new();
    let mut offsets = vec![0i32];
    for item in rectangles {
        for r in item {
            let inside = r.freq.start <= r.freq.end
                && r.freq.end <= n_freq
                && r.time.start <= r.time.end
                && r.time.end <= n_time;
            if !inside {
                return Err(InputError::invalid(
                    "rectangles",
                    format!("{r:?}"),
                    format!("ranges must lie within {n_freq} bins and {n_time} frames"),
                )
                .into());
            }
            rects.extend([r.freq.start, r.freq.end, r.time.start, r.time.end].map(|v| v as i32));
        }
        offsets.push(as_i32("rectangles", rects.len() / 4)?);
    }
    if rects.is_empty() {
        // The kernel never reads it, but a buffer must exist.
        rects.extend([0; 4]);
    }
    Ok(RectangleLaunch {
        batch,
        planes,
        n_freq,
        n_time,
        rects,
        offsets,
    })
}

/// Fills, in place, the rectangles of each item (every channel of an item gets the item's
/// rectangles) with `fill`: CutOutSpec's box, or SpecAugment's time masks (all bins) and
/// frequency masks (the item's valid frames).
///
/// # Errors
/// As [`check_rectangles`]; device errors.
pub fn fill_rectangles(
    context: &GpuContext,
    spectrograms: &mut DeviceTensor,
    rectangles: &[Vec<Rectangle>],
    fill: f32,
) -> Result<()> {
    let RectangleLaunch {
        batch,
        planes,
        n_freq,
        n_time,
        rects,
        offsets,
    } = check_rectangles(spectrograms.shape(), rectangles, fill)?;
    let rects = context.upload(&rects)?;
    let offsets = context.upload(&offsets)?;
    let function = context.function(&AUGMENT, "fill_rectangles")?;
    let mut launch = context.stream().launch_builder(&function);
    let (batch_i64, planes_i64) = (batch as i64, planes as i64);
    let (n_freq_i32, n_time_i32) = (n_freq as i32, n_time as i32);
    let work = spectrograms.len();
    launch
        .arg(&mut spectrograms.data)
        .arg(&batch_i64)
        .arg(&planes_i64)
        .arg(&n_freq_i32)
        .arg(&n_time_i32)
        .arg(&rects)
        .arg(&offsets)
        .arg(&fill);
    // SAFETY: arguments match `fill_rectangles`; the tensor holds batch × planes × n_freq ×
    // n_time values, offsets batch + 1 entries indexing rects (4 ints per rectangle).
    unsafe { launch.launch(config_for(work)) }
        .map_err(GpuError::driver("launching fill_rectangles"))?;
    Ok(())
}
