//! Feature `cuda`: [`LogMelSpectrogram::compute_batch`] on `f32` runs on tessera-gpu when a
//! CUDA device is present (the process-wide `tessera_gpu::default_context`), and on the CPU
//! otherwise or when `TESSERA_DEVICE=cpu`. The device plan is built from this plan's own
//! window and filterbank, so both devices compute the same transform.

use std::any::Any;
use std::sync::{Arc, OnceLock};

use ndarray::{Array3, ArrayView2};
use tessera_gpu::{DbReference, DbScale, GpuError, LogMelPlan, LogMelPlanConfig, Padding};

use crate::{Error, Float, LogMelSpectrogram, PadMode, Reference, Result};

/// The device plan of a [`LogMelSpectrogram`], made on first use and shared by its clones;
/// `None` once making it found no usable device.
pub(crate) type GpuPlanSlot = Arc<OnceLock<Option<LogMelPlan>>>;

impl LogMelSpectrogram<f32> {
    /// The tessera-gpu plan config of this transform: the same window, filterbank, exponent
    /// and dB conversion.
    pub fn gpu_plan_config(&self) -> LogMelPlanConfig {
        let mel = self.mel();
        let stft = mel.stft();
        let db = self.db();
        LogMelPlanConfig {
            n_fft: stft.n_fft(),
            hop_length: stft.hop_length(),
            window: stft.window().to_vec(),
            center: stft.center(),
            padding: match mel.config().pad_mode {
                PadMode::Constant => Padding::Zeros,
                PadMode::Reflect => Padding::Reflect,
            },
            filterbank: mel.filterbank().clone(),
            power: mel.config().power as f32,
            db: Some(DbScale {
                amin: db.amin as f32,
                reference: match db.reference {
                    Reference::Value(r) => DbReference::Value(r as f32),
                    Reference::Max => DbReference::Max,
                },
                top_db: db.top_db.map(|t| t as f32),
            }),
        }
    }
}

impl From<GpuError> for Error {
    fn from(e: GpuError) -> Self {
        match e {
            GpuError::Input(input) => Error::Input(input),
            other => Error::Gpu(other.to_string()),
        }
    }
}

/// The batch on the device, or `None` to run it on the CPU (not `f32`, no device).
pub(crate) fn try_log_mel_batch<T: Float>(
    plan: &LogMelSpectrogram<T>,
    signals: ArrayView2<T>,
) -> Result<Option<Array3<T>>> {
    // `T` is f32 or f64 (sealed); the device computes in f32 only. Downcasting through `Any`
    // reaches the f32 plan without unsafe code.
    let Some(plan32) = (plan as &dyn Any).downcast_ref::<LogMelSpectrogram<f32>>() else {
        return Ok(None);
    };
    let Some(context) = tessera_gpu::default_context() else {
        return Ok(None);
    };
    let device_plan = plan
        .gpu
        .get_or_init(|| LogMelPlan::new(context, plan32.gpu_plan_config()).ok());
    let Some(device_plan) = device_plan else {
        return Ok(None);
    };
    let standard = signals.as_standard_layout();
    let Some(samples) = standard.as_slice().and_then(T::as_f32_slice) else {
        return Ok(None);
    };
    let view = ArrayView2::from_shape(signals.dim(), samples)
        .map_err(|e| Error::Gpu(format!("viewing the batch: {e}")))?;
    match device_plan.compute_batch(context, view) {
        Ok(out) => {
            let boxed: Box<dyn Any> = Box::new(out);
            Ok(boxed.downcast::<Array3<T>>().ok().map(|b| *b))
        }
        Err(e) if e.is_unavailable() => Ok(None),
        Err(e) => Err(e.into()),
    }
}
