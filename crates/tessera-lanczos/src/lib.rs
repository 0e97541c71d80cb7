#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod error;
pub use error::{Error, InputError, Result};

pub use tessera_core::Float;

pub mod operator;
pub use operator::{FnOperator, LinearOperator, RepeatedApply, ScaledOperator, ShiftedOperator};

pub mod tridiagonal;
pub use tridiagonal::{
    golub_welsch, symmetric_eigen, tridiagonal_eigen, EigenvectorMode, TridiagonalEigen,
};

#[cfg(feature = "sparse")]
pub use tessera_sparse::CsrMatrix;

pub mod symmetric;
pub use symmetric::SymmetricMatrix;

pub mod lanczos;
pub use lanczos::{Lanczos, LanczosConfig, LanczosDecomposition, Reorthogonalization};

pub mod eigs;
pub use eigs::{eigen_residual, top_eigenpairs, EigenPairs, TopEigen, TopEigenConfig, Which};

pub mod power;
pub use power::{deflated_power_iteration, power_iteration, PowerConfig, PowerResult, PowerStop};

pub mod trace;
pub use trace::{
    hutch_plus_plus, hutchinson, mean_and_standard_error, Probe, Slq, SlqConfig, SlqQuadrature,
    StopRule, TraceEstimate,
};

pub mod density;
pub use density::{Bandwidth, DensityConfig, SmoothedDensity, SpectralDensity};

pub mod lr;
pub use lr::{
    batch_scaled_lr, max_stable_sgd_lr, sharpness_scaled_lr, BatchSharpnessFit, OptimizerFamily,
};

#[cfg(feature = "lapack")]
pub mod dense;
#[cfg(feature = "lapack")]
pub use dense::{dense_spectrum, DENSE_SPECTRUM_MAX_DIM};

#[cfg(feature = "cuda")]
pub mod gpu;
#[cfg(feature = "cuda")]
pub use gpu::DenseGpuOperator;

#[doc(hidden)]
pub mod gemv;
mod util;
