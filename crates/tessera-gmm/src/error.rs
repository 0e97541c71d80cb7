//! Errors of this crate.

pub use tessera_core::InputError;

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Bad input: a parameter out of range, a shape mismatch, a non-finite value.
    #[error(transparent)]
    Input(#[from] InputError),
    /// A device error on the CUDA path (the `cuda` feature): a driver or library failure, or
    /// logits that overflow `f32`. A missing device is not an error: the CPU runs instead.
    #[cfg(feature = "cuda")]
    #[error(transparent)]
    Gpu(tessera_gpu::GpuError),
}

impl Error {
    /// The input error behind this error, for callers such as tessera-nn's attention layer
    /// that re-raise it in their own error type. A device error (`cuda` feature) becomes an
    /// invalid `device` whose reason is the device's message, so that it is reported rather
    /// than lost.
    pub fn into_input(self) -> InputError {
        match self {
            Error::Input(e) => e,
            #[cfg(feature = "cuda")]
            Error::Gpu(e) => InputError::invalid("device", "cuda", e.to_string()),
        }
    }
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;
