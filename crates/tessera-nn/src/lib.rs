#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod activation;
pub mod attack;
pub mod curvature;
pub mod error;
mod gemm;
pub mod groups;
mod io;
pub mod layer;
pub mod layers;
pub mod loss;
pub mod model;
pub mod optim;
pub mod param;
pub mod rift;
pub mod sequential;
pub mod storage;
pub mod train;

pub use activation::Activation;
pub use curvature::{Curvature, CurvatureOperator};
pub use error::{Error, InputError, Result};
pub use groups::{pattern_matches, ParamGroups};
pub use io::tensor_values as safetensors_tensor_values;
pub use layer::{
    BufferSpec, Cache, Context, Hook, Init, Layer, Mode, ParamSpec, Recorded, Tangent,
};
pub use loss::{
    confident_entropy_and_logit_gradient, entropy_and_logit_gradient, prediction_entropies,
};
pub use loss::{loss_and_logit_gradient, softmax, Loss, Targets, MAX_DENSE_TARGET_ENTRIES};
pub use model::{
    DenseLayer, ForwardTrace, Mlp, MlpConfig, ResidualConfig, MAX_BRANCH_SCALE, MAX_INIT_GAIN,
    MAX_MLP_PARAMETERS,
};
pub use optim::{AdamConfig, Decay, LrSchedule, Optimizer, OptimizerConfig, SgdConfig};
pub use param::{LayerRole, LayerScaling, OptimizerFamily, Parameterization};
pub use rift::{
    all_module_criticalities, default_alphas, interpolation_curve, least_critical_module,
    module_robust_criticality, InterpolationPoint, ModuleCriticality, MrcConfig,
};
pub use sequential::{
    Chain, Gradients, NamedRange, Residual, Sequential, SequentialCurvature, Trace,
};
pub use storage::{recycled_storage_bytes, release_recycled_storage};
pub use tessera_core::Float;
pub use tessera_lanczos::LinearOperator;
pub use tessera_sparse::Mask;
pub use train::{MaskPolicy, MaskSet, Trainer};
