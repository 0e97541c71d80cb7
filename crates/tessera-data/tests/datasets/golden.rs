//! Golden values from scikit-learn and scipy (`tests/data/make_fixtures.py`).

use std::path::PathBuf;

use ndarray::{Array1, Array2};
use ndarray_npy::read_npy;
use tessera_data::{digits_raw, load_digits};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

#[test]
fn digits_match_scikit_learn_load_digits() {
    let raw = digits_raw().unwrap();
    let targets: Array1<i64> = read_npy(fixture("digits_targets.npy")).unwrap();
    let sums: Array1<i64> = read_npy(fixture("digits_pixel_sums.npy")).unwrap();
    let first: Array2<i64> = read_npy(fixture("digits_first10.npy")).unwrap();
    assert_eq!(raw.labels.len(), 1797);
    for (i, (&label, &target)) in raw.labels.iter().zip(targets.iter()).enumerate() {
        assert_eq!(label as i64, target, "label of image {i}");
    }
    for (i, row) in raw.pixels.outer_iter().enumerate() {
        let sum: i64 = row.iter().map(|&p| i64::from(p)).sum();
        assert_eq!(sum, sums[i], "pixel sum of image {i}");
    }
    for i in 0..10 {
        for j in 0..64 {
            assert_eq!(
                i64::from(raw.pixels[[i, j]]),
                first[[i, j]],
                "pixel ({i}, {j})"
            );
        }
    }
    // The float view is the same data divided by 16, laid out as 8×8 rows.
    let images = load_digits().unwrap();
    assert_eq!(images.images[[0, 0, 1, 2]] * 16.0, first[[0, 10]] as f32);
}

#[cfg(feature = "wav")]
#[test]
fn resampling_matches_scipy_resample_poly_away_from_the_edges() {
    let params: Array2<f64> = read_npy(fixture("resample_params.npy")).unwrap();
    let expected: Array1<f64> = read_npy(fixture("resample_poly_44100_to_16000.npy")).unwrap();
    let input: Array1<f32> = (0..11_025)
        .map(|t| {
            params
                .outer_iter()
                .map(|p| {
                    p[1] * (2.0 * std::f64::consts::PI * p[0] * t as f64 / 44_100.0 + p[2]).sin()
                })
                .sum::<f64>() as f32
        })
        .collect();
    let output = tessera_data::resample(input.view(), 44_100, 16_000).unwrap();
    assert_eq!(output.len(), expected.len());
    // Both resamplers treat the signal's ends differently (zero history); compare the
    // middle 80%, where both must reproduce the band-limited signal.
    let n = output.len();
    let peak = expected.iter().fold(0f64, |a, &b| a.max(b.abs()));
    let worst = (n / 10..n - n / 10)
        .map(|i| (f64::from(output[i]) - expected[i]).abs())
        .fold(0f64, f64::max);
    assert!(worst < 2e-3 * peak, "max deviation {worst} (peak {peak})");
}
