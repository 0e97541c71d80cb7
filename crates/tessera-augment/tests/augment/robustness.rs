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
