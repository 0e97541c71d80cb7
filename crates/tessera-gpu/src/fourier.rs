//! EfficientTrain's low-frequency crop of image batches on the GPU (Wang et al., "EfficientTrain:
//! Exploring Generalized Curriculum Learning for Training Visual Backbones", ICCV 2023;
//! reference code `LeapLabTHU/EfficientTrain`), equal to tessera-augment's
//! `FourierCrop::crop_batch`.
//!
//! A channel $x \in \mathbb{R}^{H \times W}$ becomes
//! $y = \Re\,\mathrm{ifft2}\big(\tfrac{B_1 B_2}{H W}\, F[\kappa_r, \kappa_c]\big)$ with
//! $F = \mathrm{fft2}(x)$ and the kept bins $\kappa$ of tessera-augment's `kept_bins` (per axis
//! of length $n$ cropped to $m$: $0 \dots \lceil m/2 \rceil - 1$, then $n - \lfloor m/2 \rfloor
//! \dots n - 1$, so an even $m$ keeps frequency $-m/2$ in its Nyquist slot). The scale and the
//! $1/(B_1 B_2)$ of the inverse fold into one factor $1/(HW)$, applied before the
//! (unnormalised) inverse, as on the CPU.
//!
//! On the device: one batched 2-D real FFT (cuFFT R2C, $H \times (W/2+1)$ per channel), a gather
//! of the kept bins (columns beyond $W/2$ through Hermitian symmetry), one batched 2-D complex
//! inverse FFT of the $B_1 \times B_2$ spectra (C2C: the cropped spectrum is not Hermitian when
//! a Nyquist slot holds $-m/2$, so C2R would drop its imaginary part's contribution), and the
//! real part.

use std::sync::Mutex;

use cudarc::cufft::{sys::cufftType, sys::float2, CudaFft, FftDirection};
use cudarc::driver::{CudaSlice, PushKernelArg};
use ndarray::{Array4, ArrayView4};
use tessera_core::check;

use crate::context::{as_i32, as_i64};
use crate::kernels::FOURIER;
use crate::launch::config_for;
use crate::{GpuContext, GpuError, InputError, Result};

/// The sizes and kept bins of a crop, checked (needs no device).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FourierCropShape {
    height: usize,
    width: usize,
    kept_rows: Vec<usize>,
    kept_cols: Vec<usize>,
}

impl FourierCropShape {
    /// A crop of `height × width` channels keeping the row bins `kept_rows` and column bins
    /// `kept_cols` in output order (tessera-augment's `kept_bins(height, out_height)` and
    /// `kept_bins(width, out_width)`).
    ///
    /// # Errors
    /// A zero size, no kept bins or more than the axis holds, a bin outside its axis, sizes
    /// beyond what cuFFT indexes.
    pub fn new(
        height: usize,
        width: usize,
        kept_rows: &[usize],
        kept_cols: &[usize],
    ) -> Result<Self> {
        check::positive_size("height", height)?;
        check::positive_size("width", width)?;
        check::element_count("height × width", &[height, width], i32::MAX as usize)?;
        for (name, kept, n) in [
            ("kept_rows", kept_rows, height),
            ("kept_cols", kept_cols, width),
        ] {
            check::non_empty(name, kept.len())?;
            check::size_at_most(name, kept.len(), n)?;
            if let Some(&bad) = kept.iter().find(|&&k| k >= n) {
                return Err(InputError::invalid(name, bad, format!("bins must be < {n}")).into());
            }
        }
        Ok(FourierCropShape {
            height,
            width,
            kept_rows: kept_rows.to_vec(),
            kept_cols: kept_cols.to_vec(),
        })
    }

    /// Output `(out_height, out_width)`.
    pub fn output_size(&self) -> (usize, usize) {
        (self.kept_rows.len(), self.kept_cols.len())
    }

    /// The factor applied to the kept bins: $1/(HW)$, rounded as tessera-augment rounds it.
    pub fn scale(&self) -> f32 {
        1.0 / ((self.height * self.width) as f64) as f32
    }

    /// Checks a batch `(batch, channels, height, width)` and returns the channel count
    /// `batch · channels`.
    ///
    /// # Errors
    /// An empty batch, another spatial size, non-finite values, more channels than cuFFT
    /// batches.
    pub fn check_images(&self, images: &ArrayView4<'_, f32>) -> Result<usize> {
        let (batch, channels, h, w) = images.dim();
        if (h, w) != (self.height, self.width) {
            return Err(InputError::shape(
                "images",
                format!("(batch, channels, {}, {})", self.height, self.width),
                images.shape(),
            )
            .into());
        }
        let items = check::element_count("images", &[batch, channels], i32::MAX as usize)?;
        check::non_empty("images", items)?;
        check::element_count("images", &[items, h, w], isize::MAX as usize / 8)?;
        check::finite("images", images)?;
        Ok(items)
    }
}

/// A checked crop with its kept bins on the device and cached cuFFT plans.
pub struct FourierCropPlan {
    shape: FourierCropShape,
    kept_rows: CudaSlice<i32>,
    kept_cols: CudaSlice<i32>,
    /// `(items, forward R2C, inverse C2C)` for the last item count.
    plans: Mutex<Option<(usize, CudaFft, CudaFft)>>,
}

impl std::fmt::Debug for FourierCropPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FourierCropPlan")
            .field("shape", &self.shape)
            .finish_non_exhaustive()
    }
}

impl FourierCropPlan {
    /// Uploads the kept bins of `shape`.
    ///
    /// # Errors
    /// [`GpuError::Unavailable`] without cuFFT; device errors.
    pub fn new(context: &GpuContext, shape: FourierCropShape) -> Result<Self> {
        context.require_cufft()?;
        let rows: Vec<i32> = shape.kept_rows.iter().map(|&k| k as i32).collect();
        let cols: Vec<i32> = shape.kept_cols.iter().map(|&k| k as i32).collect();
        Ok(FourierCropPlan {
            kept_rows: context.upload(&rows)?,
            kept_cols: context.upload(&cols)?,
            shape,
            plans: Mutex::new(None),
        })
    }

    /// The checked shape.
    pub fn shape(&self) -> &FourierCropShape {
        &self.shape
    }

    /// Crops a batch `(batch, channels, height, width)` to `(batch, channels, out_height,
    /// out_width)`, as tessera-augment's `crop_batch` does.
    ///
    /// # Errors
    /// See [`FourierCropShape::check_images`]; an output that is not finite
    /// ([`GpuError::Overflow`]); device and cuFFT errors.
    pub fn crop_batch(
        &self,
        context: &GpuContext,
        images: ArrayView4<'_, f32>,
    ) -> Result<Array4<f32>> {
        let (device, items) = self.upload_images(context, images)?;
        let (batch, channels, _, _) = images.dim();
        let out = self.crop_on_device(context, &device, items)?;
        let values = context.download(&out)?;
        if values.iter().any(|v| !v.is_finite()) {
            return Err(GpuError::Overflow {
                name: "images",
                message: "the Fourier crop of finite images is not finite: the spectrum overflows \
                          f32; scale the images down"
                    .into(),
            });
        }
        let (bh, bw) = self.shape.output_size();
        Array4::from_shape_vec((batch, channels, bh, bw), values).map_err(|e| GpuError::Driver {
            operation: "shaping the output",
            message: e.to_string(),
        })
    }

    /// Checks a batch ([`FourierCropShape::check_images`]) and copies it to the device for
    /// [`FourierCropPlan::crop_on_device`]: the buffer and its channel count.
    ///
    /// # Errors
    /// See [`FourierCropShape::check_images`]; device errors.
    pub fn upload_images(
        &self,
        context: &GpuContext,
        images: ArrayView4<'_, f32>,
    ) -> Result<(CudaSlice<f32>, usize)> {
        let items = self.shape.check_images(&images)?;
        let host = images.as_standard_layout();
        Ok((context.upload(host.as_slice().unwrap_or(&[]))?, items))
    }

    /// The crop of `items` channels already on the device (`items × height × width`, row-major),
    /// left on the device (`items × out_height × out_width`). Does not check the values.
    ///
    /// # Errors
    /// A buffer of another length, zero items; device and cuFFT errors.
    pub fn crop_on_device(
        &self,
        context: &GpuContext,
        images: &CudaSlice<f32>,
        items: usize,
    ) -> Result<CudaSlice<f32>> {
        let (h, w) = (self.shape.height, self.shape.width);
        let (bh, bw) = self.shape.output_size();
        check::non_empty("items", items)?;
        let pixels = check::element_count("images", &[items, h, w], isize::MAX as usize / 8)?;
        check::length("images", images.len(), pixels)?;
        let items_i32 = as_i32("items", items)?;
        let (h_i32, w_i32) = (h as i32, w as i32);
        let (bh_i32, bw_i32) = (bh as i32, bw as i32);
        let half = w / 2 + 1;
        let mut spectrum = context.zeros::<float2>(items * h * half)?;
        let mut cropped = context.zeros::<float2>(items * bh * bw)?;
        let mut inverse = context.zeros::<float2>(items * bh * bw)?;
        let mut cached = self.plans.lock().unwrap_or_else(|e| e.into_inner());
        if cached.as_ref().map(|(n, _, _)| *n) != Some(items) {
            let forward = CudaFft::plan_many(
                &[h_i32, w_i32],
                None,
                1,
                h_i32 * w_i32,
                None,
                1,
                h_i32 * half as i32,
                cufftType::CUFFT_R2C,
                items_i32,
                context.stream().clone(),
            )
            .map_err(GpuError::library(
                "cuFFT",
                "planning the batched 2-D real FFT",
            ))?;
            let backward = CudaFft::plan_many(
                &[bh_i32, bw_i32],
                None,
                1,
                bh_i32 * bw_i32,
                None,
                1,
                bh_i32 * bw_i32,
                cufftType::CUFFT_C2C,
                items_i32,
                context.stream().clone(),
            )
            .map_err(GpuError::library(
                "cuFFT",
                "planning the batched 2-D inverse FFT",
            ))?;
            *cached = Some((items, forward, backward));
        }
        let Some((_, forward, backward)) = cached.as_ref() else {
            return Err(GpuError::Driver {
                operation: "caching the cuFFT plans",
                message: "no plan".into(),
            });
        };
        forward
            .exec_r2c(images, &mut spectrum)
            .map_err(GpuError::library("cuFFT", "the batched 2-D real FFT"))?;

        let function = context.function(&FOURIER, "fourier_gather")?;
        let mut launch = context.stream().launch_builder(&function);
        let items_i64 = as_i64("items", items)?;
        let scale = self.shape.scale();
        launch
            .arg(&spectrum)
            .arg(&items_i64)
            .arg(&h_i32)
            .arg(&w_i32)
            .arg(&self.kept_rows)
            .arg(&bh_i32)
            .arg(&self.kept_cols)
            .arg(&bw_i32)
            .arg(&scale)
            .arg(&mut cropped);
        // SAFETY: arguments match fourier_gather in order and type; spectrum holds items × h ×
        // (w/2 + 1) values, kept_rows bh values < h and kept_cols bw values < w (checked by
        // FourierCropShape), cropped items × bh × bw.
        unsafe { launch.launch(config_for(items * bh * bw)) }
            .map_err(GpuError::driver("launching fourier_gather"))?;
        drop(spectrum);
        backward
            .exec_c2c(&mut cropped, &mut inverse, FftDirection::Inverse)
            .map_err(GpuError::library("cuFFT", "the batched 2-D inverse FFT"))?;
        drop(cached);

        let mut out = context.zeros::<f32>(items * bh * bw)?;
        let function = context.function(&FOURIER, "fourier_real_part")?;
        let mut launch = context.stream().launch_builder(&function);
        let count = as_i64("images", items * bh * bw)?;
        launch.arg(&inverse).arg(&count).arg(&mut out);
        // SAFETY: arguments match fourier_real_part; inverse and out hold count values.
        unsafe { launch.launch(config_for(items * bh * bw)) }
            .map_err(GpuError::driver("launching fourier_real_part"))?;
        Ok(out)
    }
}
