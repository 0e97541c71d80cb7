//! Errors of this crate.

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A parameter is outside its valid range.
    #[error("invalid parameter `{name}` = {value}: {reason}")]
    InvalidParameter {
        /// Parameter name.
        name: &'static str,
        /// The offending value, formatted.
        value: String,
        /// Why it is invalid.
        reason: String,
    },
    /// An array does not have the shape the network or the call needs.
    #[error("shape mismatch for `{name}`: expected {expected}, got {actual}")]
    ShapeMismatch {
        /// Parameter name.
        name: &'static str,
        /// The shape that was needed.
        expected: String,
        /// The shape that was given.
        actual: String,
    },
    /// An input or parameter holds NaN or ±∞ where the maths needs finite values.
    #[error("non-finite value in `{name}` at flat index {index}: {value}")]
    NonFinite {
        /// Parameter name.
        name: &'static str,
        /// Flat (row-major) index of the first offending entry.
        index: usize,
        /// The offending value, formatted.
        value: String,
    },
    /// Reading or writing a file failed.
    #[error("i/o error on `{path}`: {source}")]
    Io {
        /// The file involved.
        path: String,
        /// The underlying error.
        source: std::io::Error,
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

pub(crate) fn invalid(
    name: &'static str,
    value: impl ToString,
    reason: impl Into<String>,
) -> Error {
    Error::InvalidParameter {
        name,
        value: value.to_string(),
        reason: reason.into(),
    }
}

pub(crate) fn shape_mismatch(
    name: &'static str,
    expected: impl Into<String>,
    actual: impl Into<String>,
) -> Error {
    Error::ShapeMismatch {
        name,
        expected: expected.into(),
        actual: actual.into(),
    }
}

/// Errs with [`Error::NonFinite`] at the first NaN/∞ of `values`.
pub(crate) fn check_finite<'a, F: crate::Float>(
    name: &'static str,
    values: impl IntoIterator<Item = &'a F>,
) -> Result<()> {
    match values.into_iter().enumerate().find(|(_, v)| !v.is_finite()) {
        None => Ok(()),
        Some((index, value)) => Err(Error::NonFinite {
            name,
            index,
            value: value.to_string(),
        }),
    }
}
