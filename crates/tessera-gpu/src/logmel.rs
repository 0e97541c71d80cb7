//! Batched log-mel spectrograms on the GPU, equal to tessera-spectro's
//! `LogMelSpectrogram::compute_batch`: framing and window, a batched real FFT (cuFFT),
//! power, the mel projection, and decibels with a per-item reference and `top_db` floor.
//!
//! The plan takes the window and the filterbank as numbers (tessera-spectro hands over its
//! own, so both devices use the same), which keeps this crate free of a dependency on the CPU
//! crate that routes to it.

use std::sync::Mutex;

use cudarc::cufft::{sys::cufftType, sys::float2, CudaFft};
use cudarc::driver::{CudaSlice, PushKernelArg};
use ndarray::{Array2, Array3, ArrayView2};
use tessera_core::check;

use crate::context::{as_i32, as_i64};
use crate::kernels::LOGMEL;
use crate::launch::config_for;
use crate::{DeviceTensor, GpuContext, GpuError, InputError, Result};

/// How a centred STFT extends the signal by `pad` samples on each side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    /// Zeros (librosa's default).
    Zeros,
    /// Mirror without repeating the edge sample (`numpy.pad(mode="reflect")`).
    Reflect,
}

/// The dB reference.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DbReference {
    /// A fixed positive value.
    Value(f32),
    /// The maximum power of each item.
    Max,
}

/// Power to decibels: $10\log_{10}\max(a, S) - 10\log_{10}\max(a, ref)$, clipped below at
/// the item's maximum minus `top_db`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DbScale {
    /// Floor applied before the logarithm (> 0).
    pub amin: f32,
    /// The reference level.
    pub reference: DbReference,
    /// Dynamic range kept below each item's maximum, if any (≥ 0).
    pub top_db: Option<f32>,
}

/// Everything that defines the transform; see [`LogMelPlan::new`] for the checks.
#[derive(Debug, Clone, PartialEq)]
pub struct LogMelPlanConfig {
    /// FFT size (frame length).
    pub n_fft: usize,
    /// Hop between frames.
    pub hop_length: usize,
    /// The window, already zero-padded to `n_fft` values.
    pub window: Vec<f32>,
    /// Whether frames are centred (`n_fft / 2` samples of padding on each side).
    pub center: bool,
    /// The padding of centred frames.
    pub padding: Padding,
    /// Mel filterbank, `n_mels × (n_fft / 2 + 1)`.
    pub filterbank: Array2<f32>,
    /// Spectrogram exponent: 2 for power, 1 for magnitude, any other positive value.
    pub power: f32,
    /// Decibel conversion; `None` returns the mel spectrogram itself.
    pub db: Option<DbScale>,
}

/// A checked log-mel plan with its filterbank on the device and a cached cuFFT plan.
pub struct LogMelPlan {
    config: LogMelPlanConfig,
    weights: CudaSlice<f32>,
    offsets: CudaSlice<i32>,
    starts: CudaSlice<i32>,
    window: CudaSlice<f32>,
    fft: Mutex<Option<(usize, CudaFft)>>,
}

impl std::fmt::Debug for LogMelPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogMelPlan")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The nonzero span of every filter row, stored back to back (as tessera-spectro's sparse
/// filterbank sums them): `(weights, offsets, starts)`.
pub fn sparse_rows(filterbank: &Array2<f32>) -> (Vec<f32>, Vec<i32>, Vec<i32>) {
    let mut weights = Vec::new();
    let mut offsets = vec![0i32];
    let mut starts = Vec::with_capacity(filterbank.nrows());
    for row in filterbank.rows() {
        let first = row.iter().position(|&w| w != 0.0);
        let last = row.iter().rposition(|&w| w != 0.0);
        match (first, last) {
            (Some(first), Some(last)) => {
                starts.push(first as i32);
                weights.extend(row.iter().skip(first).take(last + 1 - first));
            }
            _ => starts.push(0),
        }
        offsets.push(weights.len() as i32);
    }
    (weights, offsets, starts)
}

/// How the power kernel raises $|X|^2$: 0 keeps it, 1 takes the square root, 2 raises it to
/// `power / 2`.
pub fn exponent_kind(power: f32) -> i32 {
    if power == 2.0 {
        0
    } else if power == 1.0 {
        1
    } else {
        2
    }
}

impl LogMelPlanConfig {
    /// Number of frames of a signal of `n_samples` samples (librosa's framing).
    ///
    /// # Errors
    /// A signal too short for the frame (uncentred), or for reflect padding (centred).
    pub fn frame_count(&self, n_samples: usize) -> Result<usize> {
        check::non_empty("signals", n_samples)?;
        if self.center {
            if self.padding == Padding::Reflect && self.n_fft / 2 >= n_samples {
                return Err(InputError::invalid(
                    "signals",
                    format!("{n_samples} samples per signal"),
                    format!(
                        "reflect padding needs more than n_fft / 2 = {}",
                        self.n_fft / 2
                    ),
                )
                .into());
            }
            Ok(1 + n_samples / self.hop_length)
        } else if n_samples < self.n_fft {
            Err(InputError::invalid(
                "signals",
                format!("{n_samples} samples per signal"),
                format!("an uncentred STFT needs at least n_fft = {}", self.n_fft),
            )
            .into())
        } else {
            Ok(1 + (n_samples - self.n_fft) / self.hop_length)
        }
    }

    /// Checks every field (done by [`LogMelPlan::new`]; callable without a device).
    ///
    /// # Errors
    /// As [`LogMelPlan::new`], less the device errors.
    pub fn check(&self) -> Result<()> {
        check::positive_size("n_fft", self.n_fft)?;
        check::positive_size("hop_length", self.hop_length)?;
        as_i32("n_fft", self.n_fft)?;
        as_i32("hop_length", self.hop_length)?;
        check::length("window", self.window.len(), self.n_fft)?;
        check::finite_values("window", self.window.iter().copied())?;
        let bins = self.n_fft / 2 + 1;
        if self.filterbank.ncols() != bins || self.filterbank.nrows() == 0 {
            return Err(InputError::shape(
                "filterbank",
                format!("[n_mels > 0, n_fft / 2 + 1 = {bins}]"),
                self.filterbank.shape(),
            )
            .into());
        }
        check::finite("filterbank", &self.filterbank)?;
        check::positive("power", f64::from(self.power))?;
        check::finite_scalar("power", f64::from(self.power))?;
        if let Some(db) = &self.db {
            check::positive("amin", f64::from(db.amin))?;
            check::finite_scalar("amin", f64::from(db.amin))?;
            if let DbReference::Value(r) = db.reference {
                check::positive("reference", f64::from(r))?;
                check::finite_scalar("reference", f64::from(r))?;
            }
            if let Some(top) = db.top_db {
                check::non_negative("top_db", f64::from(top))?;
                check::finite_scalar("top_db", f64::from(top))?;
            }
        }
        Ok(())
    }
}

/// The name of the tensor in an input error, as the caller knows it.
fn rename_input(error: GpuError, name: &'static str) -> GpuError {
    match error {
        GpuError::Input(input) => GpuError::Input(input.map_name(|_| name)),
        other => other,
    }
}

/// Values per chunk of the first stage of the per-item maximum.
pub const MAX_CHUNK: usize = 256;

impl LogMelPlan {
    /// Checks the config and uploads the window and the filterbank.
    ///
    /// # Errors
    /// Zero `n_fft` / `hop_length`, a window of another length, a filterbank that is not
    /// `n_mels × (n_fft / 2 + 1)`, non-finite numbers, a non-positive `power`, `amin` or
    /// reference, a negative `top_db`; [`GpuError::Unavailable`] without cuFFT.
    pub fn new(context: &GpuContext, config: LogMelPlanConfig) -> Result<Self> {
        config.check()?;
        context.require_cufft()?;
        let (weights, offsets, starts) = sparse_rows(&config.filterbank);
        // An all-zero filterbank still needs a (never read) weight buffer.
        let weights = if weights.is_empty() {
            vec![0.0]
        } else {
            weights
        };
        Ok(LogMelPlan {
            weights: context.upload(&weights)?,
            offsets: context.upload(&offsets)?,
            starts: context.upload(&starts)?,
            window: context.upload(&config.window)?,
            config,
            fft: Mutex::new(None),
        })
    }

    /// The plan's config.
    pub fn config(&self) -> &LogMelPlanConfig {
        &self.config
    }

    /// Log-mel spectrograms of the rows of `signals`, shape `(batch, n_mels, frames)`, as
    /// tessera-spectro's `compute_batch` returns them: uploads the batch, runs
    /// [`LogMelPlan::compute_batch_device`] and downloads the result.
    ///
    /// # Errors
    /// An empty batch, non-finite samples, signals too short for the framing, sizes beyond
    /// what cuFFT takes, a power spectrum that overflows `f32` ([`GpuError::Overflow`]), and
    /// device errors.
    pub fn compute_batch(
        &self,
        context: &GpuContext,
        signals: ArrayView2<f32>,
    ) -> Result<Array3<f32>> {
        let (batch, n_samples) = signals.dim();
        check::non_empty("signals", batch)?;
        self.config.frame_count(n_samples)?;
        let device_signals = DeviceTensor::from_host(context, signals.into_dyn())
            .map_err(|e| rename_input(e, "signals"))?;
        let out = self.compute_batch_device(context, &device_signals)?;
        out.to_host(context)?
            .into_dimensionality()
            .map_err(|e| GpuError::Driver {
                operation: "shaping the output",
                message: e.to_string(),
            })
    }

    /// The log-mel spectrograms of a device batch `(batch, samples)`, left on the device as
    /// `(batch, n_mels, frames)`. Waits once for the per-item maxima, which it checks for an
    /// overflow (a non-finite sample also shows there).
    ///
    /// # Errors
    /// As [`LogMelPlan::compute_batch`].
    pub fn compute_batch_device(
        &self,
        context: &GpuContext,
        signals: &DeviceTensor,
    ) -> Result<DeviceTensor> {
        let &[batch, n_samples] = signals.shape() else {
            return Err(InputError::shape("signals", "(batch, samples)", signals.shape()).into());
        };
        check::non_empty("signals", batch)?;
        let frames = self.config.frame_count(n_samples)?;
        let n_fft = self.config.n_fft;
        let bins = n_fft / 2 + 1;
        let n_mels = self.config.filterbank.nrows();
        let rows = batch.checked_mul(frames).ok_or_else(|| {
            InputError::too_large("signals", format!("{batch} × {frames} frames"), usize::MAX)
        })?;
        check::element_count("signals", &[rows, n_fft], i32::MAX as usize)?;
        let rows_i32 = as_i32("signals", rows)?;
        let per_item = n_mels * frames;

        let mut frame_buffer = context.zeros::<f32>(rows * n_fft)?;
        let pad = if self.config.center { n_fft / 2 } else { 0 };
        let function = context.function(&LOGMEL, "logmel_frames")?;
        let mut launch = context.stream().launch_builder(&function);
        let (batch_i64, samples_i64) = (as_i64("signals", batch)?, as_i64("signals", n_samples)?);
        let (n_fft_i32, hop_i32) = (n_fft as i32, self.config.hop_length as i32);
        let (frames_i32, pad_i32) = (as_i32("signals", frames)?, pad as i32);
        let reflect = i32::from(self.config.padding == Padding::Reflect);
        launch
            .arg(&signals.data)
            .arg(&batch_i64)
            .arg(&samples_i64)
            .arg(&self.window)
            .arg(&n_fft_i32)
            .arg(&hop_i32)
            .arg(&frames_i32)
            .arg(&pad_i32)
            .arg(&reflect)
            .arg(&mut frame_buffer);
        // SAFETY: the argument list matches logmel_frames's parameters in order and type;
        // signals holds batch × n_samples values, window n_fft, frames rows × n_fft, and the
        // kernel reads and writes only within those (its indices are checked on the CPU by the
        // host-shim tests).
        unsafe { launch.launch(config_for(rows * n_fft)) }
            .map_err(GpuError::driver("launching logmel_frames"))?;

        let mut spectrum = context.zeros::<float2>(rows * bins)?;
        {
            let mut cached = self.fft.lock().unwrap_or_else(|e| e.into_inner());
            if cached.as_ref().map(|(r, _)| *r) != Some(rows) {
                let plan = CudaFft::plan_1d(
                    n_fft_i32,
                    cufftType::CUFFT_R2C,
                    rows_i32,
                    context.stream().clone(),
                )
                .map_err(GpuError::library("cuFFT", "planning the batched real FFT"))?;
                *cached = Some((rows, plan));
            }
            if let Some((_, plan)) = cached.as_ref() {
                plan.exec_r2c(&frame_buffer, &mut spectrum)
                    .map_err(GpuError::library("cuFFT", "the batched real FFT"))?;
            }
        }
        drop(frame_buffer);

        let mut mel = context.zeros::<f32>(batch * per_item)?;
        let function = context.function(&LOGMEL, "logmel_power_mel")?;
        let mut launch = context.stream().launch_builder(&function);
        let (bins_i32, mels_i32) = (bins as i32, as_i32("filterbank", n_mels)?);
        let kind = exponent_kind(self.config.power);
        let half_power = self.config.power / 2.0;
        launch
            .arg(&spectrum)
            .arg(&batch_i64)
            .arg(&frames_i32)
            .arg(&bins_i32)
            .arg(&self.weights)
            .arg(&self.offsets)
            .arg(&self.starts)
            .arg(&mels_i32)
            .arg(&kind)
            .arg(&half_power)
            .arg(&mut mel);
        // SAFETY: arguments match logmel_power_mel; spectrum holds rows × bins values, the
        // sparse filter rows index within bins (built from an n_mels × bins filterbank), and
        // mel holds batch × n_mels × frames values.
        unsafe { launch.launch(config_for(batch * per_item)) }
            .map_err(GpuError::driver("launching logmel_power_mel"))?;
        drop(spectrum);

        let item_max = self.item_max(context, &mel, batch, per_item)?;
        let maxima = context.download(&item_max)?;
        if let Some((item, value)) = maxima.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(GpuError::Overflow {
                name: "signals",
                message: format!(
                    "the mel power of item {item} is {value}: the power spectrum overflows f32; \
                     scale the signal down (e.g. to [-1, 1])"
                ),
            });
        }
        if let Some(db) = &self.config.db {
            self.to_db(context, &mut mel, &item_max, batch, per_item, db)?;
        }
        Ok(DeviceTensor::from_parts(mel, vec![batch, n_mels, frames]))
    }

    /// Per-item maximum of `values` (`batch × per_item`) in two passes, propagating the first
    /// non-finite value of an item.
    fn item_max(
        &self,
        context: &GpuContext,
        values: &CudaSlice<f32>,
        batch: usize,
        per_item: usize,
    ) -> Result<CudaSlice<f32>> {
        let chunks = per_item.div_ceil(MAX_CHUNK);
        let mut partial = context.zeros::<f32>(batch * chunks)?;
        let function = context.function(&LOGMEL, "logmel_partial_max")?;
        let mut launch = context.stream().launch_builder(&function);
        let (batch_i64, per_item_i64) = (batch as i64, per_item as i64);
        let (chunk_i64, chunks_i64) = (MAX_CHUNK as i64, chunks as i64);
        launch
            .arg(values)
            .arg(&batch_i64)
            .arg(&per_item_i64)
            .arg(&chunk_i64)
            .arg(&chunks_i64)
            .arg(&mut partial);
        // SAFETY: arguments match logmel_partial_max; values holds batch × per_item values and
        // partial batch × chunks.
        unsafe { launch.launch(config_for(batch * chunks)) }
            .map_err(GpuError::driver("launching logmel_partial_max"))?;
        let mut item_max = context.zeros::<f32>(batch)?;
        let function = context.function(&LOGMEL, "logmel_item_max")?;
        let mut launch = context.stream().launch_builder(&function);
        launch
            .arg(&partial)
            .arg(&batch_i64)
            .arg(&chunks_i64)
            .arg(&mut item_max);
        // SAFETY: arguments match logmel_item_max; partial holds batch × chunks values and
        // item_max batch.
        unsafe { launch.launch(config_for(batch)) }
            .map_err(GpuError::driver("launching logmel_item_max"))?;
        Ok(item_max)
    }

    fn to_db(
        &self,
        context: &GpuContext,
        values: &mut CudaSlice<f32>,
        item_max: &CudaSlice<f32>,
        batch: usize,
        per_item: usize,
        db: &DbScale,
    ) -> Result<()> {
        let function = context.function(&LOGMEL, "logmel_to_db")?;
        let mut launch = context.stream().launch_builder(&function);
        let (batch_i64, per_item_i64) = (batch as i64, per_item as i64);
        let (is_max, reference) = match db.reference {
            DbReference::Max => (1i32, 1.0f32),
            DbReference::Value(r) => (0, r),
        };
        let (use_top, top) = match db.top_db {
            Some(t) => (1i32, t),
            None => (0, 0.0f32),
        };
        launch
            .arg(values)
            .arg(&batch_i64)
            .arg(&per_item_i64)
            .arg(item_max)
            .arg(&db.amin)
            .arg(&is_max)
            .arg(&reference)
            .arg(&use_top)
            .arg(&top);
        // SAFETY: arguments match logmel_to_db; values holds batch × per_item values and
        // item_max batch.
        unsafe { launch.launch(config_for(batch * per_item)) }
            .map_err(GpuError::driver("launching logmel_to_db"))?;
        Ok(())
    }
}
