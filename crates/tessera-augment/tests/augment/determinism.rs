//! The batch Fourier crop splits images over the rayon pool: the result must not depend on the
//! pool size (issue 12: bit-identical results for 1, 2 and 4 threads).

use ndarray::Array4;
use tessera_augment::{FourierCrop, FourierCropConfig};
use tessera_testing::in_rayon_pool;

#[test]
fn batch_fourier_crop_is_bit_identical_for_1_2_and_4_threads() {
    let images = Array4::from_shape_fn((5, 3, 16, 16), |(b, c, y, x)| {
        ((b * 31 + c * 17 + y * 5 + x * 3) % 23) as f64 / 23.0 - 0.5
    });
    let crop = FourierCrop::<f64>::new(FourierCropConfig::square(16, 10)).unwrap();
    let one = in_rayon_pool(1, || crop.crop_batch(images.view()).unwrap());
    for threads in [2, 4] {
        let many = in_rayon_pool(threads, || crop.crop_batch(images.view()).unwrap());
        assert_eq!(one.shape(), many.shape());
        assert!(
            one.iter()
                .zip(many.iter())
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "{threads} threads changed the bits"
        );
    }
}
