//! Errors of this crate.

pub use tessera_core::InputError;

/// Everything that can go wrong in this crate.
///
/// Every variant names the offending parameter (and, where it helps, the value or the row)
/// so that a caller can tell which argument to fix without reading the source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Bad input: a parameter out of range, a shape mismatch, a non-finite value.
    #[error(transparent)]
    Input(#[from] InputError),
    /// A row that must be a probability distribution is not one.
    #[error("`{name}` row {row} is not a probability distribution: {reason}")]
    NotProbability {
        /// Parameter name.
        name: &'static str,
        /// The offending row (item of the batch).
        row: usize,
        /// What is wrong with it (negative entry, sum far from 1, ...).
        reason: String,
    },
    /// An error reported by `tessera-augment` (mixup).
    #[error(transparent)]
    Augment(#[from] tessera_augment::Error),
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;
