#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod error;
pub use error::{GpuError, InputError, Result};

pub mod kernels;
pub mod launch;

mod context;
pub use context::{default_context, default_context_status, GpuContext, DEVICE_ENV};

pub mod gmm_attention;

pub mod dense;
pub use dense::{matmul, matmul_into, DenseOperator, DeviceMatrix, Element};

pub mod logmel;
pub use logmel::{DbReference, DbScale, LogMelPlan, LogMelPlanConfig, Padding};

mod tensor;
pub use tensor::DeviceTensor;

pub mod augment;
pub use augment::Rectangle;

pub mod sparse;
pub use sparse::DeviceCsr;

pub mod nn;
pub use nn::{BackwardRequest, ConvGeometry, LayerGradients};

pub mod local_complexity;
pub use local_complexity::{LcCounts, LcLayer, LcNetwork, UncertainSample};

pub mod fourier;
pub use fourier::{FourierCropPlan, FourierCropShape};
