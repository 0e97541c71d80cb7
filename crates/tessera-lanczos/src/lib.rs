#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod error;
pub use error::{Error, Result};

pub mod float;
pub use float::Float;

pub mod operator;
pub use operator::{FnOperator, LinearOperator, ScaledOperator, ShiftedOperator};

pub mod tridiagonal;
pub use tridiagonal::{golub_welsch, symmetric_eigen, tridiagonal_eigen, EigenvectorMode, TridiagonalEigen};

mod util;
