//! Errors of this crate.

pub use tessera_core::InputError;

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Bad input: a parameter out of range, a shape mismatch, a non-finite value.
    #[error(transparent)]
    Input(#[from] InputError),
    /// A sparse operator could not be built or applied (tessera-sparse).
    #[cfg(feature = "sparse")]
    #[error(transparent)]
    Sparse(#[from] tessera_sparse::Error),
    /// A CUDA device error other than "no device" (feature `cuda`; an unavailable device
    /// means the CPU, not an error).
    #[cfg(feature = "cuda")]
    #[error(transparent)]
    Gpu(#[from] tessera_gpu::GpuError),
    /// The operator returned NaN or ±∞ (for example a Hessian-vector product that diverged).
    #[error(
        "the operator returned a non-finite value {value} at index {index} \
         (operator application number {application})"
    )]
    NonFiniteOperatorOutput {
        /// 1-based count of the operator application that produced it.
        application: usize,
        /// Index of the first offending entry.
        index: usize,
        /// The offending value, formatted.
        value: String,
    },
    /// A user function `f` evaluated at a quadrature node is not finite (e.g. `ln` of a
    /// non-positive Ritz value: the operator is not positive definite).
    #[error("f({node}) = {value} is not finite: {reason}")]
    NonFiniteFunctionValue {
        /// The quadrature node (Ritz value).
        node: String,
        /// The function value.
        value: String,
        /// Hint about the cause.
        reason: &'static str,
    },
    /// An iterative method used its whole budget without meeting its tolerance.
    #[error(
        "{method} did not converge after {matvecs} operator applications: \
         worst residual {worst_residual} > tolerance {tolerance}"
    )]
    NotConverged {
        /// Which algorithm.
        method: &'static str,
        /// Operator applications spent.
        matvecs: usize,
        /// The worst (scaled) residual reached.
        worst_residual: String,
        /// The tolerance it had to meet.
        tolerance: String,
    },
    /// The tridiagonal QL iteration did not deflate (never expected for finite input).
    #[error("symmetric eigensolver did not converge for eigenvalue {index} after {iterations} iterations")]
    EigenSolverFailed {
        /// Index of the eigenvalue being iterated on.
        index: usize,
        /// Iterations spent on it.
        iterations: usize,
    },
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;
