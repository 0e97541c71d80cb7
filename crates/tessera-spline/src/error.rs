//! Errors of this crate.

pub use tessera_core::InputError;

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Bad input: a parameter out of range, a shape mismatch, a non-finite value.
    #[error(transparent)]
    Input(#[from] InputError),
    /// The network could not be run or read (tessera-nn).
    #[error(transparent)]
    Nn(#[from] tessera_nn::Error),
    /// The model is not a network of affine layers and piecewise-linear activations that this
    /// crate can analyse (a GELU, a residual block in the exact partition, ...).
    #[error("unsupported model: {reason}")]
    Unsupported {
        /// What is not supported, and what is.
        reason: String,
    },
    /// The GPU path failed for a reason other than a missing device (feature `cuda`).
    #[cfg(feature = "cuda")]
    #[error(transparent)]
    Gpu(#[from] tessera_gpu::GpuError),
    /// Reading a file failed.
    #[error("i/o error on `{path}`: {source}")]
    Io {
        /// The file involved.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A safetensors buffer could not be read or does not describe a network.
    #[error("safetensors: {reason}")]
    Safetensors {
        /// What went wrong.
        reason: String,
    },
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;
