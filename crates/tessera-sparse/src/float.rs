//! The scalar types the numerical routines accept (`f32` and `f64`).

/// Floating-point scalars usable by this crate: implemented for `f32` and `f64`.
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
    + 'static
{
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
        + 'static
{
}
