//! Errors of this crate.

pub use tessera_core::InputError;

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Bad input: a parameter out of range, a shape mismatch, a non-finite value.
    #[error(transparent)]
    Input(#[from] InputError),
    /// A mask could not be built or applied (tessera-sparse).
    #[error(transparent)]
    Sparse(#[from] tessera_sparse::Error),
    /// An operator computation failed (tessera-lanczos).
    #[error(transparent)]
    Lanczos(#[from] tessera_lanczos::Error),
    /// A CUDA device error other than "no device" (feature `cuda`; an unavailable device
    /// means the CPU, not an error).
    #[cfg(feature = "cuda")]
    #[error(transparent)]
    Gpu(#[from] tessera_gpu::GpuError),
    /// Reading or writing a file failed.
    #[error("i/o error on `{path}`: {source}")]
    Io {
        /// The file involved.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A layer does not implement an operation (e.g. an R-operator pass for exact curvature).
    #[error("layer `{layer}` does not support {operation}")]
    Unsupported {
        /// The layer's kind (or name).
        layer: String,
        /// The operation asked for.
        operation: String,
    },
    /// A safetensors buffer could not be written or read, or does not match the network.
    #[error("safetensors: {reason}")]
    Safetensors {
        /// What went wrong.
        reason: String,
    },
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;
