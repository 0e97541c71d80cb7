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
    /// Two inputs whose shapes must agree do not.
    #[error("shape mismatch for `{name}`: expected {expected}, got {got}")]
    ShapeMismatch {
        /// Parameter name.
        name: &'static str,
        /// The shape that was required, formatted.
        expected: String,
        /// The shape that was given, formatted.
        got: String,
    },
    /// An input holds NaN or ±∞ where the maths needs finite values.
    #[error("non-finite value in `{name}` at flat index {index}: {value}")]
    NonFinite {
        /// Parameter name.
        name: &'static str,
        /// Flat (row-major) index of the first offending entry.
        index: usize,
        /// The offending value, formatted.
        value: String,
    },
    /// A safetensors file could not be read or written.
    #[error("safetensors error in {context}: {message}")]
    Safetensors {
        /// What was being done (file or tensor name).
        context: String,
        /// The underlying message.
        message: String,
    },
    /// A file could not be read or written.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file involved.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// Shorthand for [`Error::InvalidParameter`].
    pub(crate) fn invalid(
        name: &'static str,
        value: impl std::fmt::Display,
        reason: impl Into<String>,
    ) -> Self {
        Error::InvalidParameter {
            name,
            value: value.to_string(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`Error::ShapeMismatch`].
    pub(crate) fn shape(
        name: &'static str,
        expected: impl std::fmt::Debug,
        got: impl std::fmt::Debug,
    ) -> Self {
        Error::ShapeMismatch {
            name,
            expected: format!("{expected:?}"),
            got: format!("{got:?}"),
        }
    }
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Errors with [`Error::NonFinite`] naming the first NaN/±∞ entry of `values`.
pub(crate) fn check_finite<F: num_traits::Float + std::fmt::Display>(
    name: &'static str,
    values: impl IntoIterator<Item = F>,
) -> Result<()> {
    for (index, v) in values.into_iter().enumerate() {
        if !v.is_finite() {
            return Err(Error::NonFinite {
                name,
                index,
                value: v.to_string(),
            });
        }
    }
    Ok(())
}

/// Errors unless `density` lies in (0, 1].
pub(crate) fn check_density(name: &'static str, density: f64) -> Result<()> {
    if density.is_finite() && density > 0.0 && density <= 1.0 {
        Ok(())
    } else {
        Err(Error::invalid(
            name,
            density,
            "a density must lie in (0, 1]",
        ))
    }
}
