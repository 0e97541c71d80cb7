//! Errors of this crate.

pub use tessera_core::InputError;

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Bad input: a parameter out of range, a shape mismatch, a non-finite value.
    #[error(transparent)]
    Input(#[from] InputError),
}

impl Error {
    /// The input error behind this error (every error of this crate is one today), for callers
    /// such as tessera-nn's attention layer that re-raise it in their own error type.
    pub fn into_input(self) -> InputError {
        match self {
            Error::Input(e) => e,
        }
    }
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;
