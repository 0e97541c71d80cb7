//! Errors of this crate.

/// Everything that can go wrong in this crate.
///
/// Every variant names the offending parameter so that a caller can tell which argument
/// to fix without reading the source.
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
    /// An array does not have the shape the operation needs.
    #[error("shape mismatch for `{name}`: expected {expected}, found {found}")]
    ShapeMismatch {
        /// Parameter name.
        name: &'static str,
        /// What was expected, formatted.
        expected: String,
        /// What was found, formatted.
        found: String,
    },
    /// An array contains NaN or an infinity.
    #[error("`{name}` contains a non-finite value ({value}) at flat index {index}")]
    NonFinite {
        /// Parameter name.
        name: &'static str,
        /// The first non-finite value, formatted.
        value: String,
        /// Its index in logical (row-major) order.
        index: usize,
    },
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;

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
        expected: impl Into<String>,
        found: impl std::fmt::Debug,
    ) -> Self {
        Error::ShapeMismatch {
            name,
            expected: expected.into(),
            found: format!("{found:?}"),
        }
    }
}
