#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod check;
pub mod error;
pub mod float;
pub mod mask;
pub mod softmax;

pub use error::{InputError, RejectInput, ShapeText};
pub use float::Float;
pub use mask::{LogitMask, MaskCombine};
