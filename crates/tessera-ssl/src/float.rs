//! The floating-point element types this crate works with (`f32` and `f64`).

/// Element type of every array in this crate: implemented for `f32` and `f64`.
///
/// It is `tessera_augment::Float` (arithmetic, conversions, scalar broadcasting, `Send +
/// Sync`) re-exported under this crate's name, so that the MixMatch and ReMixMatch batch
/// builders can hand their arrays to `tessera_augment`'s mixup without extra bounds.
/// [`of`](tessera_augment::Float::of) converts an `f64` constant into `Self`.
pub trait Float: tessera_augment::Float {}

impl<T: tessera_augment::Float> Float for T {}
