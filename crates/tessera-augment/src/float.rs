//! The floating-point element types this crate works with (`f32` and `f64`).

/// Element type of every array in this crate: implemented for `f32` and `f64`.
///
/// A blanket trait so that one bound carries everything the transforms need: arithmetic
/// and conversions (`num_traits`), scalar broadcasting (`ndarray`), FFTs (`rustfft`) and
/// parallel iteration (`Send + Sync`).
pub trait Float:
    num_traits::Float
    + num_traits::FromPrimitive
    + num_traits::NumAssign
    + ndarray::ScalarOperand
    + rustfft::FftNum
    + std::fmt::Debug
    + std::fmt::Display
    + std::iter::Sum
    + Send
    + Sync
    + 'static
{
    /// Converts an `f64` into `Self` (exact for `f64`, rounded for `f32`).
    fn of(value: f64) -> Self {
        <Self as num_traits::FromPrimitive>::from_f64(value)
            .expect("every finite f64 converts to f32/f64")
    }

    /// Converts `self` into an `f64`.
    fn to_f64_lossless(self) -> f64 {
        num_traits::ToPrimitive::to_f64(&self).expect("f32/f64 always convert to f64")
    }
}

impl<T> Float for T where
    T: num_traits::Float
        + num_traits::FromPrimitive
        + num_traits::NumAssign
        + ndarray::ScalarOperand
        + rustfft::FftNum
        + std::fmt::Debug
        + std::fmt::Display
        + std::iter::Sum
        + Send
        + Sync
        + 'static
{
}
