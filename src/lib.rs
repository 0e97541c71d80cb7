#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

#[cfg(feature = "augment")]
pub use tessera_augment as augment;
#[cfg(feature = "data")]
pub use tessera_data as data;
#[cfg(feature = "fft")]
pub use tessera_fft as fft;
#[cfg(feature = "gmm")]
pub use tessera_gmm as gmm;
#[cfg(feature = "gpu")]
pub use tessera_gpu as gpu;
#[cfg(feature = "lanczos")]
pub use tessera_lanczos as lanczos;
#[cfg(feature = "nn")]
pub use tessera_nn as nn;
#[cfg(feature = "sparse")]
pub use tessera_sparse as sparse;
#[cfg(feature = "spectro")]
pub use tessera_spectro as spectro;
#[cfg(feature = "spline")]
pub use tessera_spline as spline;
#[cfg(feature = "ssl")]
pub use tessera_ssl as ssl;

/// The shared vocabulary every crate builds on: the sealed `Float`, `InputError` and the
/// boundary checks (tessera-core).
pub use tessera_core::{check, softmax, Float, InputError, RejectInput};
