//! The input-error vocabulary shared by every tessera crate.
//!
//! Each crate has its own error enum for what is specific to it and wraps [`InputError`] with
//! `#[error(transparent)] Input(#[from] InputError)`, as linfa's algorithm crates wrap
//! linfa's error. [`RejectInput`] gives every such enum the same constructors
//! (`Error::invalid(..)`, `Error::shape(..)`, `Error::non_finite(..)`, `Error::too_large(..)`).

use std::fmt;

/// Bad input: the parameter it concerns, the offending value and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// A parameter is outside its valid range or inconsistent with another one.
    #[error("invalid parameter `{name}` = {value}: {expected}")]
    Invalid {
        /// Parameter name.
        name: &'static str,
        /// The offending value, formatted.
        value: String,
        /// What a valid value looks like (or why this one is not).
        expected: String,
    },
    /// An array or collection does not have the shape or length the call needs.
    #[error("shape mismatch for `{name}`: expected {expected}, found {found}")]
    Shape {
        /// Parameter name.
        name: &'static str,
        /// The shape that was needed.
        expected: String,
        /// The shape that was given.
        found: String,
    },
    /// An input holds NaN or ±∞ where the maths needs finite values.
    #[error("non-finite value in `{name}` at flat index {index}: {value}")]
    NonFinite {
        /// Parameter name.
        name: &'static str,
        /// Flat (row-major, or iteration order) index of the first offending entry.
        index: usize,
        /// The offending value, formatted.
        value: String,
    },
    /// A size (or a size computed from several) exceeds what the call can allocate or
    /// represent; checked before anything is allocated.
    #[error("`{name}` = {value} is too large: the limit is {limit}")]
    TooLarge {
        /// Parameter name.
        name: &'static str,
        /// The requested size, formatted (`overflow` when the product does not fit `usize`).
        value: String,
        /// The limit, formatted.
        limit: String,
    },
}

impl InputError {
    /// An [`InputError::Invalid`].
    pub fn invalid(
        name: &'static str,
        value: impl fmt::Display,
        expected: impl Into<String>,
    ) -> Self {
        InputError::Invalid {
            name,
            value: value.to_string(),
            expected: expected.into(),
        }
    }

    /// An [`InputError::Shape`]; both shapes are either text or concrete shapes
    /// (see [`ShapeText`]).
    pub fn shape(name: &'static str, expected: impl ShapeText, found: impl ShapeText) -> Self {
        InputError::Shape {
            name,
            expected: expected.shape_text(),
            found: found.shape_text(),
        }
    }

    /// An [`InputError::NonFinite`].
    pub fn non_finite(name: &'static str, index: usize, value: impl fmt::Display) -> Self {
        InputError::NonFinite {
            name,
            index,
            value: value.to_string(),
        }
    }

    /// An [`InputError::TooLarge`].
    pub fn too_large(
        name: &'static str,
        value: impl fmt::Display,
        limit: impl fmt::Display,
    ) -> Self {
        InputError::TooLarge {
            name,
            value: value.to_string(),
            limit: limit.to_string(),
        }
    }

    /// The same error about a parameter renamed by `rename` (for wrappers whose argument names
    /// differ from those of the shared check they call).
    pub fn map_name(mut self, rename: impl FnOnce(&'static str) -> &'static str) -> Self {
        let (InputError::Invalid { name, .. }
        | InputError::Shape { name, .. }
        | InputError::NonFinite { name, .. }
        | InputError::TooLarge { name, .. }) = &mut self;
        *name = rename(name);
        self
    }

    /// The name of the parameter the error is about.
    pub fn name(&self) -> &'static str {
        match self {
            InputError::Invalid { name, .. }
            | InputError::Shape { name, .. }
            | InputError::NonFinite { name, .. }
            | InputError::TooLarge { name, .. } => name,
        }
    }
}

/// Constructors of the shared input errors for every error type that wraps [`InputError`],
/// so that a crate writes `Error::invalid("hop_length", hop, "must be > 0")` for its own enum.
pub trait RejectInput: From<InputError> {
    /// Wraps [`InputError::invalid`].
    fn invalid(name: &'static str, value: impl fmt::Display, expected: impl Into<String>) -> Self {
        InputError::invalid(name, value, expected).into()
    }

    /// Wraps [`InputError::shape`].
    fn shape(name: &'static str, expected: impl ShapeText, found: impl ShapeText) -> Self {
        InputError::shape(name, expected, found).into()
    }

    /// Wraps [`InputError::non_finite`].
    fn non_finite(name: &'static str, index: usize, value: impl fmt::Display) -> Self {
        InputError::non_finite(name, index, value).into()
    }

    /// Wraps [`InputError::too_large`].
    fn too_large(name: &'static str, value: impl fmt::Display, limit: impl fmt::Display) -> Self {
        InputError::too_large(name, value, limit).into()
    }
}

impl<E: From<InputError>> RejectInput for E {}

/// A shape in an error message: either a description (`"(batch, 40)"`, `"one row per item"`)
/// or a concrete shape (`&[usize]`, `(usize, usize)`, a length).
pub trait ShapeText {
    /// The text that goes into the message.
    fn shape_text(&self) -> String;
}

impl ShapeText for str {
    fn shape_text(&self) -> String {
        self.to_owned()
    }
}

impl ShapeText for String {
    fn shape_text(&self) -> String {
        self.clone()
    }
}

impl ShapeText for usize {
    fn shape_text(&self) -> String {
        self.to_string()
    }
}

impl ShapeText for [usize] {
    fn shape_text(&self) -> String {
        format!("{self:?}")
    }
}

impl<const N: usize> ShapeText for [usize; N] {
    fn shape_text(&self) -> String {
        format!("{self:?}")
    }
}

impl ShapeText for Vec<usize> {
    fn shape_text(&self) -> String {
        format!("{self:?}")
    }
}

impl ShapeText for (usize, usize) {
    fn shape_text(&self) -> String {
        format!("{self:?}")
    }
}

impl ShapeText for (usize, usize, usize) {
    fn shape_text(&self) -> String {
        format!("{self:?}")
    }
}

impl ShapeText for (usize, usize, usize, usize) {
    fn shape_text(&self) -> String {
        format!("{self:?}")
    }
}

impl<T: ShapeText + ?Sized> ShapeText for &T {
    fn shape_text(&self) -> String {
        (**self).shape_text()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    enum CrateError {
        #[error(transparent)]
        Input(#[from] InputError),
    }

    #[test]
    fn messages_name_parameter_value_and_expectation() {
        let e = InputError::invalid("hop_length", 0, "must be > 0");
        assert_eq!(
            e.to_string(),
            "invalid parameter `hop_length` = 0: must be > 0"
        );
        assert_eq!(e.name(), "hop_length");
        let e = InputError::shape("x", "(batch, 40)", &[3usize, 7][..]);
        assert_eq!(
            e.to_string(),
            "shape mismatch for `x`: expected (batch, 40), found [3, 7]"
        );
        let e = InputError::shape("y", 3usize, (2usize, 5usize)).map_name(|_| "z");
        assert_eq!(e.name(), "z");
        assert_eq!(
            e.to_string(),
            "shape mismatch for `z`: expected 3, found (2, 5)"
        );
        let e = InputError::non_finite("signal", 4, f64::NAN);
        assert_eq!(
            e.to_string(),
            "non-finite value in `signal` at flat index 4: NaN"
        );
        let e = InputError::too_large("n_fft", "overflow", 1usize << 40);
        assert!(e.to_string().contains("limit is 1099511627776"), "{e}");
    }

    #[test]
    fn crate_errors_get_the_constructors_and_display_transparently() {
        let e = CrateError::invalid("alpha", -1.0, "must be > 0");
        assert_eq!(e.to_string(), "invalid parameter `alpha` = -1: must be > 0");
        let CrateError::Input(inner) = CrateError::shape("m", [2usize, 2], vec![3usize]);
        assert_eq!(
            inner,
            InputError::Shape {
                name: "m",
                expected: "[2, 2]".into(),
                found: "[3]".into()
            }
        );
    }
}
