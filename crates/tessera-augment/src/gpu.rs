//! Feature `cuda`: mixup, CutOutSpec and SpecAugment on batches already on the device
//! (`tessera_gpu::DeviceTensor`). The random draws are this crate's own, in the same order as
//! the CPU entry points, so a seed gives the same augmentation on either device; only the
//! elementwise work runs on the GPU. Host batches are not routed there: one memory-bound pass
//! would cost more in transfers than it saves.

use ndarray::{Array1, Array2, ArrayView2};
use rand::seq::SliceRandom;
use rand::Rng;
use tessera_gpu::{DeviceTensor, GpuContext, GpuError, Rectangle};

use crate::{mix_items, CutOutSpec, Error, ItemMasks, Mixup, Result, SpecAugment, SpecBox};

impl From<GpuError> for Error {
    fn from(e: GpuError) -> Self {
        match e {
            GpuError::Input(input) => Error::Input(input),
            other => Error::Gpu(other.to_string()),
        }
    }
}

/// A mixed batch whose inputs stay on the device.
#[derive(Debug)]
pub struct DeviceMixed {
    /// Mixed inputs, same shape as the inputs.
    pub inputs: DeviceTensor,
    /// Mixed targets (host; small).
    pub targets: Array2<f32>,
    /// The coefficient of each item.
    pub lambdas: Array1<f32>,
    /// The partner of each item.
    pub permutation: Vec<usize>,
}

impl Mixup {
    /// [`Mixup::mix_batch`] for inputs on the device: the same permutation and lambdas for the
    /// same `rng` state, and the same mixed values.
    ///
    /// # Errors
    /// `targets` not one row per item, non-finite targets; device errors.
    pub fn mix_batch_device<R: Rng + ?Sized>(
        &self,
        context: &GpuContext,
        inputs: &DeviceTensor,
        targets: ArrayView2<f32>,
        rng: &mut R,
    ) -> Result<DeviceMixed> {
        let batch = inputs.shape().first().copied().unwrap_or(0);
        tessera_core::check::shape("targets", &[targets.nrows()], &[batch])?;
        tessera_core::check::finite("targets", &targets)?;
        let mut permutation: Vec<usize> = (0..batch).collect();
        permutation.shuffle(rng);
        let lambdas = self.sample_lambdas::<f32, R>(batch, rng);
        let lambda_slice = lambdas.as_slice().unwrap_or(&[]);
        let mixed =
            tessera_gpu::augment::mixup(context, inputs, inputs, &permutation, lambda_slice)?;
        let partner_targets = targets.select(ndarray::Axis(0), &permutation);
        let targets = mix_items(
            targets.view(),
            targets.view(),
            partner_targets.view(),
            partner_targets.view(),
            lambdas.view(),
        )?
        .1;
        Ok(DeviceMixed {
            inputs: mixed,
            targets,
            lambdas,
            permutation,
        })
    }
}

impl From<&SpecBox> for Rectangle {
    fn from(region: &SpecBox) -> Self {
        Rectangle {
            freq: region.freq.clone(),
            time: region.time.clone(),
        }
    }
}

impl ItemMasks {
    /// The cells these masks cover, as rectangles of a spectrogram with `n_freq` bins: each
    /// time mask over all bins, each frequency mask over the valid frames.
    pub fn rectangles(&self, n_freq: usize) -> Vec<Rectangle> {
        let time = self.time.iter().map(|t| Rectangle {
            freq: 0..n_freq,
            time: t.clone(),
        });
        let freq = self.freq.iter().map(|f| Rectangle {
            freq: f.clone(),
            time: 0..self.valid_length,
        });
        time.chain(freq).collect()
    }
}

/// `(n_freq, n_time)` of a device batch `(batch, ..., freq, time)`.
fn spec_axes(shape: &[usize]) -> (usize, usize) {
    match shape {
        [.., f, t] => (*f, *t),
        _ => (0, 0),
    }
}

impl CutOutSpec {
    /// [`CutOutSpec::apply_batch`] in place on a device batch `(batch, ..., freq, time)`: the
    /// same boxes for the same `rng` state (returned), filled on the device.
    ///
    /// # Errors
    /// A tensor of rank < 3 or an empty batch; device errors.
    pub fn apply_batch_device<R: Rng + ?Sized>(
        &self,
        context: &GpuContext,
        spectrograms: &mut DeviceTensor,
        rng: &mut R,
    ) -> Result<Vec<SpecBox>> {
        let (n_freq, n_time) = spec_axes(spectrograms.shape());
        let batch = tessera_core::check::non_empty_batch("spectrograms", spectrograms.shape())?;
        if spectrograms.shape().len() < 3 {
            return Err(tessera_core::InputError::shape(
                "spectrograms",
                "(batch, ..., freq, time)",
                spectrograms.shape(),
            )
            .into());
        }
        let boxes: Vec<SpecBox> = (0..batch)
            .map(|_| self.sample_box(n_freq, n_time, rng))
            .collect();
        let rectangles: Vec<Vec<Rectangle>> = boxes.iter().map(|b| vec![b.into()]).collect();
        tessera_gpu::augment::fill_rectangles(
            context,
            spectrograms,
            &rectangles,
            self.fill_value() as f32,
        )?;
        Ok(boxes)
    }
}

impl SpecAugment {
    /// [`SpecAugment::apply_masks`] in place on a device batch `(batch, freq, time)`.
    ///
    /// # Errors
    /// Not one mask set per item, masks outside the spectrogram or the valid frames; device
    /// errors.
    pub fn apply_masks_device(
        &self,
        context: &GpuContext,
        spectrograms: &mut DeviceTensor,
        masks: &[ItemMasks],
    ) -> Result<()> {
        let (n_freq, n_time) = spec_axes(spectrograms.shape());
        crate::spectrogram::check_masks(masks, n_freq, n_time)?;
        let rectangles: Vec<Vec<Rectangle>> = masks.iter().map(|m| m.rectangles(n_freq)).collect();
        tessera_gpu::augment::fill_rectangles(
            context,
            spectrograms,
            &rectangles,
            self.fill_value() as f32,
        )?;
        Ok(())
    }

    /// [`SpecAugment::apply_batch`] in place on a device batch `(batch, freq, time)`: the same
    /// masks for the same `rng` state (returned).
    ///
    /// # Errors
    /// As [`SpecAugment::sample_masks`] and [`SpecAugment::apply_masks_device`].
    pub fn apply_batch_device<R: Rng + ?Sized>(
        &self,
        context: &GpuContext,
        spectrograms: &mut DeviceTensor,
        valid_lengths: Option<&[usize]>,
        rng: &mut R,
    ) -> Result<Vec<ItemMasks>> {
        let shape = spectrograms.shape().to_vec();
        if shape.len() != 3 || shape[0] == 0 {
            return Err(tessera_core::InputError::shape(
                "spectrograms",
                "(batch > 0, freq, time)",
                &shape[..],
            )
            .into());
        }
        let masks = self.sample_masks(shape[0], shape[1], shape[2], valid_lengths, rng)?;
        self.apply_masks_device(context, spectrograms, &masks)?;
        Ok(masks)
    }
}
