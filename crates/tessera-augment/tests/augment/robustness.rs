//! Configurations that `new()` accepts never panic later (issue 12).

use approx::assert_abs_diff_eq;
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

#[test]
fn pixelate_rejects_sides_its_area_matrices_cannot_hold() {
    use ndarray::{Array3, Array4};
    use tessera_augment::corruption::MAX_PIXELATE_SIDE;
    use tessera_augment::Corruption;
    // 4097 pixels in all, but a (⌊0.95·4097⌋ × 4097) weight matrix: an error, not an abort.
    let tall = Array3::<f32>::from_elem((1, MAX_PIXELATE_SIDE + 1, 1), 0.5);
    let e = Corruption::Pixelate.apply(tall.view(), 1, 0).unwrap_err();
    assert!(
        e.to_string().contains("`image`") && e.to_string().contains("4097"),
        "{e}"
    );
    let wide = Array4::<f64>::from_elem((2, 1, 1, usize::MAX >> 50), 0.5);
    let e = Corruption::Pixelate
        .apply_batch(wide.view(), 3, 0)
        .unwrap_err();
    assert!(e.to_string().contains("`images`"), "{e}");
    // The other corruptions take any size, and Pixelate an ordinary tall image.
    assert!(Corruption::Contrast.apply(tall.view(), 1, 0).is_ok());
    let y = Corruption::Pixelate
        .apply(Array3::<f32>::from_elem((1, 300, 2), 0.25).view(), 5, 0)
        .unwrap();
    for &v in y.iter() {
        assert_abs_diff_eq!(v, 0.25, epsilon = 1e-6);
    }
}

#[test]
fn huge_spec_augment_mask_counts_and_batches_are_errors() {
    use tessera_augment::spectrogram::{MAX_MASKS, MAX_SAMPLED_MASKS};
    use tessera_augment::{SpecAugment, SpecAugmentConfig};
    for (n_time_masks, n_freq_masks, name) in [
        (usize::MAX, 1, "n_time_masks"),
        (MAX_MASKS + 1, 1, "n_time_masks"),
        (1, usize::MAX, "n_freq_masks"),
    ] {
        let e = SpecAugment::new(SpecAugmentConfig {
            n_time_masks,
            n_freq_masks,
            ..SpecAugmentConfig::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains(&format!("`{name}`")), "{e}");
    }
    let most = SpecAugment::new(SpecAugmentConfig {
        n_time_masks: MAX_MASKS,
        n_freq_masks: MAX_MASKS,
        ..SpecAugmentConfig::default()
    })
    .unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let masks = most.sample_masks(2, 8, 16, None, &mut rng).unwrap();
    assert_eq!(masks[1].time.len(), MAX_MASKS);
    // A batch no spectrogram could have: an error naming it, not a capacity-overflow panic.
    let spec = SpecAugment::new(SpecAugmentConfig::default()).unwrap();
    for batch in [usize::MAX, usize::MAX / 3 + 1, MAX_SAMPLED_MASKS / 3 + 1] {
        let e = spec.sample_masks(batch, 8, 16, None, &mut rng).unwrap_err();
        assert!(e.to_string().contains("`batch`"), "{e}");
    }
    assert_eq!(
        spec.sample_masks(3, 8, 16, None, &mut rng).unwrap().len(),
        3
    );
}

#[test]
fn huge_fourier_crop_sizes_and_schedules_do_not_panic() {
    use tessera_augment::{EfficientTrainSchedule, FourierCrop, FourierCropConfig};
    // The sizes are checked before the kept bins are allocated.
    let e = FourierCrop::<f32>::new(FourierCropConfig::square(usize::MAX, usize::MAX)).unwrap_err();
    assert!(e.to_string().contains("`height`"), "{e}");
    let e = FourierCrop::<f64>::new(FourierCropConfig {
        height: 8,
        width: 1 << 40,
        out_height: 4,
        out_width: 1 << 39,
    })
    .unwrap_err();
    assert!(e.to_string().contains("`width`"), "{e}");
    // Epoch and size arithmetic is exact for any accepted schedule (no overflow).
    let huge = EfficientTrainSchedule::new(usize::MAX, usize::MAX).unwrap();
    let stages = huge.stages();
    assert_eq!(stages[0].start_epoch, 0);
    assert_eq!(stages[4].end_epoch, usize::MAX);
    assert_eq!(stages[4].crop_size, usize::MAX);
    let scaled = usize::try_from(160 * u128::from(u64::MAX) / 224).unwrap();
    assert_eq!(usize::MAX as u64, u64::MAX);
    assert_eq!(stages[0].crop_size, 2 * (scaled / 2));
    for pair in stages.windows(2) {
        assert_eq!(pair[0].end_epoch, pair[1].start_epoch);
        assert!(pair[0].crop_size <= pair[1].crop_size);
    }
    assert_eq!(huge.at_epoch(usize::MAX - 1).unwrap().stage, 4);
    assert!(huge.at_epoch(usize::MAX).is_err());
}

#[test]
fn extreme_speed_rates_and_loud_waveforms_are_errors() {
    use tessera_augment::waveform::MAX_SPEED_RATE;
    use tessera_augment::{add_noise_at_snr, resample_nearest, Align, SpeedPerturbation};
    for rates in [
        (1.0, f64::MAX),
        (0.5, MAX_SPEED_RATE * 2.0),
        (1.0, f64::INFINITY),
    ] {
        let e = SpeedPerturbation::new(rates, Align::Random, 0.0).unwrap_err();
        assert!(e.to_string().contains("`rates`"), "{e}");
    }
    let x = Array1::from_shape_fn(50, |i| i as f32);
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let fastest =
        SpeedPerturbation::new((MAX_SPEED_RATE, MAX_SPEED_RATE), Align::Left, 0.0).unwrap();
    assert_eq!(fastest.apply(x.view(), &mut rng).unwrap().0.len(), 50);
    for rate in [
        1e300,
        f64::INFINITY,
        f64::NAN,
        0.0,
        -1.0,
        MAX_SPEED_RATE * 1.5,
    ] {
        let e = fastest.apply_rate(x.view(), rate, &mut rng).unwrap_err();
        assert!(e.to_string().contains("`rate`"), "{rate}: {e}");
        let e = resample_nearest(x.view(), rate).unwrap_err();
        assert!(e.to_string().contains("`rate`"), "{rate}: {e}");
    }
    assert_eq!(resample_nearest(x.view(), 2.0).unwrap().len(), 100);
    // Finite samples whose power overflows f64: an error naming the waveform.
    let loud = Array1::from_elem(8, 1e200f64);
    let e = add_noise_at_snr(loud.view(), 10.0, &mut rng).unwrap_err();
    assert!(
        e.to_string().contains("`waveform`") && e.to_string().contains("overflow"),
        "{e}"
    );
}
