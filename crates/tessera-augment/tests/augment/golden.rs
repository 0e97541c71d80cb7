//! Fourier low-pass crop against numpy (`tests/data/make_fixtures.py`).

use ndarray::{Array3, ArrayView3};
use tessera_augment::FourierCrop;

const CASES: [&str; 5] = ["even", "odd_crop", "odd_image", "mixed", "full"];

fn load(kind: &str, case: &str) -> Array3<f64> {
    tessera_testing::fixture!(&format!("fourier_{kind}_{case}.npy"))
}

fn max_abs_diff(a: ArrayView3<f64>, b: ArrayView3<f64>) -> f64 {
    assert_eq!(a.shape(), b.shape());
    tessera_testing::max_abs_diff(a.iter().copied(), b.iter().copied())
}

#[test]
fn fourier_crop_matches_numpy_f64() {
    for case in CASES {
        let input = load("input", case);
        let expected = load("output", case);
        let (_, h, w) = input.dim();
        let (_, bh, bw) = expected.dim();
        let plan = FourierCrop::<f64>::new(crate::crop_config(h, w, bh, bw)).unwrap();
        let single = plan.crop(input.view()).unwrap();
        assert!(
            max_abs_diff(single.view(), expected.view()) < 1e-12,
            "{case}"
        );
        // The batched, parallel path agrees too.
        let batch = input.clone().insert_axis(ndarray::Axis(0));
        let batched = plan.crop_batch(batch.view()).unwrap();
        let batched = batched.index_axis(ndarray::Axis(0), 0);
        assert!(max_abs_diff(batched, expected.view()) < 1e-12, "{case}");
    }
}

#[test]
fn fourier_crop_matches_numpy_f32() {
    for case in CASES {
        let input = load("input", case).mapv(|v| v as f32);
        let expected = load("output", case);
        let (_, h, w) = input.dim();
        let (_, bh, bw) = expected.dim();
        let plan = FourierCrop::<f32>::new(crate::crop_config(h, w, bh, bw)).unwrap();
        let out = plan.crop(input.view()).unwrap().mapv(f64::from);
        assert!(max_abs_diff(out.view(), expected.view()) < 1e-5, "{case}");
    }
}
