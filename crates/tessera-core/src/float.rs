//! The one scalar trait every CPU crate of tessera is generic over.

/// Floating-point scalars the tessera crates compute with: implemented for `f32` and `f64`
/// only (sealed), so that code generic over it can rely on IEEE semantics and can hand
/// contiguous data to type-specific kernels ([`Float::as_f64_slice`] and friends).
///
/// Conversions have one spelling across the workspace:
/// [`Float::from_f64_rounded`] (an `f64` constant or statistic into `Self`, rounded to
/// nearest), [`Float::from_count`] (a count, rounded to nearest) and
/// [`Float::to_f64_exact`] (widening to `f64`, always exact).
pub trait Float:
    num_traits::Float
    + num_traits::FromPrimitive
    + num_traits::ToPrimitive
    + num_traits::NumAssign
    + num_traits::Signed
    + ndarray::ScalarOperand
    + ndarray::LinalgScalar
    + std::fmt::Debug
    + std::fmt::Display
    + std::fmt::LowerExp
    + std::iter::Sum
    + for<'a> std::iter::Sum<&'a Self>
    + Default
    + Send
    + Sync
    + sealed::Sealed
    + 'static
{
    /// `"f32"` or `"f64"`, for messages and reports.
    const NAME: &'static str;

    /// The `f64` value rounded to the nearest `Self` (exact for `f64`; values beyond the `f32`
    /// range become ±∞, as an `as` cast does).
    fn from_f64_rounded(value: f64) -> Self;

    /// A count rounded to the nearest `Self` (exact below 2²⁴ for `f32`, 2⁵³ for `f64`).
    fn from_count(count: usize) -> Self;

    /// Widens to `f64`; exact for both types.
    fn to_f64_exact(self) -> f64;

    /// The slice itself when `Self` is `f64`, for dispatch to `f64`-specific kernels.
    fn as_f64_slice(values: &[Self]) -> Option<&[f64]>;

    /// The slice itself when `Self` is `f64`, mutably.
    fn as_f64_slice_mut(values: &mut [Self]) -> Option<&mut [f64]>;

    /// The slice itself when `Self` is `f32`, for dispatch to `f32`-specific kernels.
    fn as_f32_slice(values: &[Self]) -> Option<&[f32]>;

    /// The slice itself when `Self` is `f32`, mutably.
    fn as_f32_slice_mut(values: &mut [Self]) -> Option<&mut [f32]>;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

impl Float for f64 {
    const NAME: &'static str = "f64";

    fn from_f64_rounded(value: f64) -> Self {
        value
    }

    fn from_count(count: usize) -> Self {
        count as f64
    }

    fn to_f64_exact(self) -> f64 {
        self
    }

    fn as_f64_slice(values: &[Self]) -> Option<&[f64]> {
        Some(values)
    }

    fn as_f64_slice_mut(values: &mut [Self]) -> Option<&mut [f64]> {
        Some(values)
    }

    fn as_f32_slice(_: &[Self]) -> Option<&[f32]> {
        None
    }

    fn as_f32_slice_mut(_: &mut [Self]) -> Option<&mut [f32]> {
        None
    }
}

impl Float for f32 {
    const NAME: &'static str = "f32";

    fn from_f64_rounded(value: f64) -> Self {
        value as f32
    }

    fn from_count(count: usize) -> Self {
        count as f32
    }

    fn to_f64_exact(self) -> f64 {
        f64::from(self)
    }

    fn as_f64_slice(_: &[Self]) -> Option<&[f64]> {
        None
    }

    fn as_f64_slice_mut(_: &mut [Self]) -> Option<&mut [f64]> {
        None
    }

    fn as_f32_slice(values: &[Self]) -> Option<&[f32]> {
        Some(values)
    }

    fn as_f32_slice_mut(values: &mut [Self]) -> Option<&mut [f32]> {
        Some(values)
    }
}

#[cfg(test)]
mod tests {
    use super::Float;

    fn round_trip<F: Float>(x: f64) -> f64 {
        F::from_f64_rounded(x).to_f64_exact()
    }

    #[test]
    fn conversions_round_to_nearest_and_widen_exactly() {
        assert_eq!(round_trip::<f64>(0.1), 0.1);
        assert_eq!(round_trip::<f32>(0.1), f64::from(0.1f32));
        assert_eq!(round_trip::<f32>(1e300), f64::INFINITY);
        assert_eq!(f32::from_count(16_777_217), 16_777_216.0);
        assert_eq!(f64::from_count(16_777_217), 16_777_217.0);
        assert_eq!(<f32 as Float>::NAME, "f32");
    }

    #[test]
    fn slices_downcast_to_their_own_type_only() {
        let mut a = [1.0f32, 2.0];
        assert_eq!(f32::as_f32_slice(&a), Some(&[1.0f32, 2.0][..]));
        assert!(f32::as_f64_slice(&a).is_none());
        assert!(f32::as_f64_slice_mut(&mut a).is_none());
        f32::as_f32_slice_mut(&mut a).expect("f32")[0] = 3.0;
        assert_eq!(a[0], 3.0);
        let mut b = [1.0f64];
        assert!(f64::as_f32_slice(&b).is_none());
        assert!(f64::as_f32_slice_mut(&mut b).is_none());
        assert_eq!(f64::as_f64_slice_mut(&mut b).map(|s| s.len()), Some(1));
    }
}
