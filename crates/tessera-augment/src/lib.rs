#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod check;
pub mod corruption;
pub mod cutmix;
pub mod error;
pub mod fourier;
#[cfg(feature = "cuda")]
pub mod gpu;
pub mod mixup;
pub mod poison;
pub mod pool;
mod region;
pub mod spectrogram;
pub mod waveform;

pub use corruption::{Corruption, MAX_PIXELATE_SIDE, MAX_SEVERITY};
pub use cutmix::{BoxRegion, CutMix, CutMixed};
pub use error::{Error, InputError, Result};
pub use fourier::{
    kept_bins, CurriculumStage, EfficientTrainSchedule, FourierCrop, FourierCropConfig,
};
pub use mixup::{mix_items, LambdaRule, LambdaScope, Mixed, Mixup};
pub use poison::{
    depthwise_correlate, ClassWiseConvolution, ClassWiseConvolutionConfig, PoisonedDataset,
};
pub use pool::{AudioAugment, AugmentPool, Domain};
pub use spectrogram::{
    CutOutSpec, ItemMasks, ShiftMode, SpecAugment, SpecAugmentConfig, SpecBox, TimeShift,
    MAX_MASKS, MAX_SAMPLED_MASKS, MAX_TIME_SHIFT,
};
pub use tessera_core::Float;
pub use waveform::{
    add_noise_at_snr, resample_nearest, AdditiveNoise, Align, Gain, Occlusion, SpeedPerturbation,
    MAX_GAIN_DB, MAX_SNR_DB, MAX_SPEED_RATE,
};
