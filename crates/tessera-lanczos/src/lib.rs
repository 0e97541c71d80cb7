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

pub mod csr;
pub use csr::CsrMatrix;

pub mod lanczos;
pub use lanczos::{Lanczos, LanczosConfig, LanczosDecomposition, Reorthogonalization};

pub mod eigs;
pub use eigs::{eigen_residual, top_eigenpairs, EigenPairs, TopEigen, TopEigenConfig, Which};

mod util;
