//! Errors of this crate.

pub use tessera_core::InputError;

/// Everything that can go wrong in this crate.
///
/// Every variant names the offending parameter so that a caller can tell which argument
/// to fix without reading the source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Bad input: a parameter out of range, a shape mismatch, a non-finite value.
    #[error(transparent)]
    Input(#[from] InputError),
    /// The GPU path failed after a device was found (feature `cuda`): a driver or library
    /// error.
    #[cfg(feature = "cuda")]
    #[error("GPU: {0}")]
    Gpu(String),
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;
