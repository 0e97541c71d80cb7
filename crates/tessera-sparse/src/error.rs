//! Errors of this crate.

pub use tessera_core::InputError;

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Bad input: a parameter out of range, a shape mismatch, a non-finite value.
    #[error(transparent)]
    Input(#[from] InputError),
    /// The GPU path failed after a device was found (feature `cuda`): a driver or library
    /// error, or an overflow the device detected.
    #[cfg(feature = "cuda")]
    #[error("GPU: {0}")]
    Gpu(String),
    /// A safetensors buffer could not be written or read, or does not hold masks.
    #[error("safetensors error in {context}: {message}")]
    Safetensors {
        /// What was being read or written.
        context: String,
        /// The underlying message.
        message: String,
    },
    /// Reading or writing a file failed.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file involved.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;
