//! The floating-point types every routine of this crate is generic over (`f32` and `f64`).

/// A real floating-point scalar usable by every plan of this crate: implemented for `f32`
/// and `f64` by a blanket impl.
pub trait Float:
    num_traits::Float
    + num_traits::FromPrimitive
    + num_traits::ToPrimitive
    + realfft::FftNum
    + ndarray::ScalarOperand
    + ndarray::LinalgScalar
    + std::fmt::Debug
    + std::fmt::Display
    + std::iter::Sum
    + std::ops::AddAssign
    + std::ops::MulAssign
    + std::ops::DivAssign
    + Send
    + Sync
    + 'static
{
    /// Converts an `f64` (a configuration value or a precomputed table entry) to `Self`,
    /// rounding to nearest for `f32`.
    fn from_f64_lossy(value: f64) -> Self;
    /// Converts `self` to `f64` exactly.
    fn to_f64_exact(self) -> f64;
}

impl<T> Float for T
where
    T: num_traits::Float
        + num_traits::FromPrimitive
        + num_traits::ToPrimitive
        + realfft::FftNum
        + ndarray::ScalarOperand
        + ndarray::LinalgScalar
        + std::fmt::Debug
        + std::fmt::Display
        + std::iter::Sum
        + std::ops::AddAssign
        + std::ops::MulAssign
        + std::ops::DivAssign
        + Send
        + Sync
        + 'static,
{
    fn from_f64_lossy(value: f64) -> Self {
        // Both f32 and f64 implement `FromPrimitive::from_f64` without failure (f32 rounds).
        <T as num_traits::FromPrimitive>::from_f64(value).unwrap_or_else(T::nan)
    }

    fn to_f64_exact(self) -> f64 {
        num_traits::ToPrimitive::to_f64(&self).unwrap_or(f64::NAN)
    }
}
