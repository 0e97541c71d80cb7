//! Configurations that `new()` accepts never panic later (issue 12).

use ndarray::{Array1, Array2};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tessera_augment::{
    AdditiveNoise, CutMix, Gain, LambdaScope, ShiftMode, TimeShift, MAX_GAIN_DB, MAX_SNR_DB,
    MAX_TIME_SHIFT,
};

#[test]
fn extreme_gain_and_noise_ranges_are_rejected_or_errors() {
    for range in [
        (f64::MIN, f64::MAX),
        (-1e300, 1e300),
        (0.0, MAX_GAIN_DB + 1.0),
    ] {
        let e = Gain::new(range).unwrap_err();
        assert!(e.to_string().contains("gain_db"), "{e}");
    }
    for range in [
        (f64::MIN, f64::MAX),
        (-1e300, 1e300),
        (-MAX_SNR_DB - 1.0, 0.0),
    ] {
        let e = AdditiveNoise::new(range).unwrap_err();
        assert!(e.to_string().contains("snr_db"), "{e}");
    }
    // The widest accepted gain overflows f32 for a loud waveform: an error, not ∞.
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let loud = Array1::from_elem(16, 1e30f32);
    let gain = Gain::new((MAX_GAIN_DB, MAX_GAIN_DB)).unwrap();
    let e = gain.apply(loud.view(), &mut rng).unwrap_err();
    assert!(e.to_string().contains("gain_db"), "{e}");
    // Widest accepted ranges on ordinary input work.
    let x = Array1::from_shape_fn(64, |i| (i as f32 * 0.3).sin());
    let (y, _) = Gain::new((-MAX_GAIN_DB, -MAX_GAIN_DB))
        .unwrap()
        .apply(x.view(), &mut rng)
        .unwrap();
    assert!(y.iter().all(|v| v.is_finite()));
    let noise = AdditiveNoise::new((-MAX_SNR_DB, MAX_SNR_DB)).unwrap();
    for _ in 0..8 {
        let (y, _) = noise.apply(x.view(), &mut rng).unwrap();
        assert!(y.iter().all(|v| v.is_finite()));
    }
}

#[test]
fn huge_time_shift_is_rejected() {
    for max_shift in [usize::MAX, MAX_TIME_SHIFT + 1] {
        let e = TimeShift::new(max_shift, ShiftMode::Roll).unwrap_err();
        assert!(e.to_string().contains("max_shift"), "{e}");
    }
    let shift = TimeShift::new(MAX_TIME_SHIFT, ShiftMode::Pad(0.0)).unwrap();
    let x = Array2::<f32>::ones((2, 10));
    let (y, _) = shift
        .apply(x.view(), &mut ChaCha8Rng::seed_from_u64(3))
        .unwrap();
    assert_eq!(y.dim(), (2, 10));
}

#[test]
fn cutmix_box_on_an_empty_grid_is_an_error() {
    let cut = CutMix::new(1.0, LambdaScope::PerBatch).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    for (rows, cols) in [(0, 0), (0, 5), (5, 0)] {
        let e = cut.sample_box(rows, cols, &mut rng).unwrap_err();
        assert!(
            e.to_string()
                .contains(if rows == 0 { "rows" } else { "cols" }),
            "{e}"
        );
    }
    let b = cut.sample_box(4, 6, &mut rng).unwrap();
    assert!(b.rows.end <= 4 && b.cols.end <= 6);
}

#[test]
fn finite_inputs_that_overflow_the_transform_are_errors_not_infinities() {
    use ndarray::{Array3, Array4};
    use tessera_augment::{
        ClassWiseConvolution, ClassWiseConvolutionConfig, FourierCrop, FourierCropConfig,
    };
    // f32 pixels near f32::MAX: every FFT bin sums 256 of them, and a 3×3 filter with weights
    // summing to more than 1 sums 9 of them; both overflow f32.
    let huge = Array3::<f32>::from_elem((1, 16, 16), 3.0e38);
    let crop = FourierCrop::<f32>::new(FourierCropConfig::square(16, 8)).unwrap();
    let e = crop.crop(huge.view()).unwrap_err();
    assert!(
        e.to_string().contains("image") && e.to_string().contains("overflow"),
        "{e}"
    );
    let e = crop
        .crop_channel(huge.index_axis(ndarray::Axis(0), 0))
        .unwrap_err();
    assert!(
        e.to_string().contains("channel") && e.to_string().contains("overflow"),
        "{e}"
    );
    let batch = Array4::<f32>::from_elem((2, 1, 16, 16), 3.0e38);
    let e = crop.crop_batch(batch.view()).unwrap_err();
    assert!(
        e.to_string().contains("images") && e.to_string().contains("overflow"),
        "{e}"
    );
    // Ordinary values still go through, in f32 and f64.
    let ordinary = Array3::<f32>::from_elem((1, 16, 16), 0.5);
    assert!(crop
        .crop(ordinary.view())
        .unwrap()
        .iter()
        .all(|v| v.is_finite()));

    let conv = ClassWiseConvolution::new(ClassWiseConvolutionConfig::paper(7)).unwrap();
    // The paper's filters (blur parameter 0.3) have weights in [0, 1] around a unit centre, so a
    // 3×3 sum of f32::MAX pixels overflows for every class.
    let big = Array3::<f32>::from_elem((3, 8, 8), f32::MAX);
    for class in 0..3 {
        let e = conv.apply(big.view(), class).unwrap_err();
        assert!(
            e.to_string().contains("image") && e.to_string().contains("overflow"),
            "{e}"
        );
    }
    let big_batch = Array4::<f32>::from_elem((2, 3, 8, 8), f32::MAX);
    let e = conv.apply_batch(big_batch.view(), &[0, 1]).unwrap_err();
    assert!(
        e.to_string().contains("images") && e.to_string().contains("overflow"),
        "{e}"
    );
    let fine = Array3::<f32>::from_elem((3, 8, 8), 0.5);
    assert!(conv
        .apply(fine.view(), 0)
        .unwrap()
        .iter()
        .all(|v| v.is_finite()));
}
