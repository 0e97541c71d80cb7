//! The integration tests of tessera-augment, as one test binary (one link of the
//! dependencies instead of one per file).

mod determinism;
mod errors;
mod golden;
mod properties;
mod reference;
mod robustness;

/// The config of a Fourier crop from `height × width` to `out_height × out_width`.
fn crop_config(
    height: usize,
    width: usize,
    out_height: usize,
    out_width: usize,
) -> tessera_augment::FourierCropConfig {
    tessera_augment::FourierCropConfig {
        height,
        width,
        out_height,
        out_width,
    }
}
