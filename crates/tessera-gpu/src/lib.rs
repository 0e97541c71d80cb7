#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod error;
pub use error::{GpuError, InputError, Result};

pub mod kernels;
pub mod launch;

mod context;
pub use context::{default_context, default_context_status, GpuContext, DEVICE_ENV};

pub mod logmel;
pub use logmel::{DbReference, DbScale, LogMelPlan, LogMelPlanConfig, Padding};

pub mod local_complexity;
pub use local_complexity::{LcCounts, LcLayer, LcNetwork, UncertainSample};

pub mod fourier;
pub use fourier::{FourierCropPlan, FourierCropShape};
