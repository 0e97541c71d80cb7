//! The scalar trait every algorithm of this crate is generic over (`f32` and `f64`).

/// Floating-point scalars the crate works with: implemented for `f32` and `f64`.
pub trait Float:
    num_traits::Float
    + num_traits::FromPrimitive
    + num_traits::NumAssign
    + ndarray::ScalarOperand
    + ndarray::LinalgScalar
    + std::fmt::Debug
    + std::fmt::Display
    + std::iter::Sum
    + Send
    + Sync
    + crate::gemv::DenseKernel
    + 'static
{
    /// Converts an `f64` constant (exact for the constants this crate uses).
    fn c(x: f64) -> Self {
        <Self as num_traits::FromPrimitive>::from_f64(x).expect("f64 converts to every Float")
    }

    /// Converts a count to this scalar.
    fn from_count(n: usize) -> Self {
        <Self as num_traits::FromPrimitive>::from_usize(n).expect("usize converts to every Float")
    }

    /// Widens to `f64` (for reporting and for accumulations done in double precision).
    fn as_f64(self) -> f64 {
        num_traits::ToPrimitive::to_f64(&self).expect("Float converts to f64")
    }
}

impl<T> Float for T where
    T: num_traits::Float
        + num_traits::FromPrimitive
        + num_traits::NumAssign
        + ndarray::ScalarOperand
        + ndarray::LinalgScalar
        + std::fmt::Debug
        + std::fmt::Display
        + std::iter::Sum
        + Send
        + Sync
        + crate::gemv::DenseKernel
        + 'static
{
}
