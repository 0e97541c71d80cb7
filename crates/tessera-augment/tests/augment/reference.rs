//! Transforms against naive, independent re-implementations.

use approx::assert_abs_diff_eq;
use ndarray::{Array1, Array2, Array3, Array4, Axis};
use num_complex::Complex;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tessera_augment::{
    depthwise_correlate, resample_nearest, CutOutSpec, FourierCrop, LambdaRule, LambdaScope, Mixup,
    SpecAugment,
};

/// O(n²) DFT of a complex vector (sign −1 forward, +1 inverse, no normalisation).
fn dft(x: &[Complex<f64>], inverse: bool) -> Vec<Complex<f64>> {
    let n = x.len();
    let sign = if inverse { 1.0 } else { -1.0 };
    (0..n)
        .map(|k| {
            x.iter()
                .enumerate()
                .map(|(j, &v)| {
                    let angle = sign * 2.0 * std::f64::consts::PI * (j * k % n) as f64 / n as f64;
                    v * Complex::new(angle.cos(), angle.sin())
                })
                .sum()
        })
        .collect()
}

fn dft2(x: &Array2<Complex<f64>>, inverse: bool) -> Array2<Complex<f64>> {
    let mut out = x.clone();
    for mut row in out.rows_mut() {
        let t = dft(&row.to_vec(), inverse);
        row.assign(&Array1::from(t));
    }
    for mut col in out.columns_mut() {
        let t = dft(&col.to_vec(), inverse);
        col.assign(&Array1::from(t));
    }
    out
}

/// numpy's fftshift along both axes: element at k moves to (k + n/2) mod n.
fn shift(x: &Array2<Complex<f64>>, inverse: bool) -> Array2<Complex<f64>> {
    let (h, w) = x.dim();
    let (sh, sw) = if inverse {
        (h - h / 2, w - w / 2)
    } else {
        (h / 2, w / 2)
    };
    Array2::from_shape_fn((h, w), |(i, j)| x[[(i + h - sh) % h, (j + w - sw) % w]])
}

/// fftshift → centre crop (start n/2 − m/2) → ifftshift → scale → real(ifft2), all naive.
fn naive_crop(x: &Array2<f64>, bh: usize, bw: usize) -> Array2<f64> {
    let (h, w) = x.dim();
    let spectrum = dft2(&x.mapv(|v| Complex::new(v, 0.0)), false);
    let shifted = shift(&spectrum, false);
    let (r0, c0) = (h / 2 - bh / 2, w / 2 - bw / 2);
    let centre = Array2::from_shape_fn((bh, bw), |(i, j)| shifted[[r0 + i, c0 + j]]);
    let unshifted = shift(&centre, true);
    let scale = (bh as f64 / h as f64) * (bw as f64 / w as f64) / (bh * bw) as f64;
    dft2(&unshifted, true).mapv(|v| v.re * scale)
}

#[test]
fn fourier_crop_equals_naive_shift_crop_for_every_parity() {
    let mut rng = ChaCha8Rng::seed_from_u64(17);
    for &(h, w) in &[(8usize, 8usize), (9, 7), (10, 11), (5, 6)] {
        for bh in 1..=h {
            for bw in [1, w / 2, w - 1, w] {
                let bw = bw.max(1);
                let image =
                    Array3::from_shape_fn((1, h, w), |_| rand::Rng::random::<f64>(&mut rng));
                let plan = FourierCrop::<f64>::new(crate::crop_config(h, w, bh, bw)).unwrap();
                let ours = plan.crop(image.view()).unwrap();
                let naive = naive_crop(&image.index_axis(Axis(0), 0).to_owned(), bh, bw);
                let diff = ours
                    .index_axis(Axis(0), 0)
                    .iter()
                    .zip(naive.iter())
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f64::max);
                assert!(diff < 1e-10, "({h},{w})->({bh},{bw}): {diff}");
            }
        }
    }
}

#[test]
fn batch_crop_equals_per_image_crop() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let images = Array4::from_shape_fn((5, 3, 12, 10), |_| rand::Rng::random::<f32>(&mut rng));
    let plan = FourierCrop::<f32>::new(crate::crop_config(12, 10, 6, 7)).unwrap();
    let batch = plan.crop_batch(images.view()).unwrap();
    for (i, image) in images.outer_iter().enumerate() {
        assert_eq!(batch.index_axis(Axis(0), i), plan.crop(image).unwrap());
    }
    // A non-standard layout (a transposed view) gives the same result.
    let permuted = images
        .view()
        .permuted_axes([1, 0, 2, 3])
        .as_standard_layout()
        .into_owned();
    let view = permuted.view().permuted_axes([1, 0, 2, 3]);
    assert!(!view.is_standard_layout());
    assert_eq!(plan.crop_batch(view).unwrap(), batch);
}

#[test]
fn mixup_equals_elementwise_formula() {
    let mixup = Mixup::new(0.75, LambdaRule::MixMatch, LambdaScope::PerItem).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let x = Array3::from_shape_fn((6, 4, 5), |_| rand::Rng::random::<f64>(&mut rng));
    let y = Array2::from_shape_fn((6, 3), |(i, j)| if i % 3 == j { 1.0 } else { 0.0 });
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mixed = mixup.mix_batch(x.view(), y.view(), &mut rng).unwrap();
    for ((i, j, k), &value) in mixed.inputs.indexed_iter() {
        let l = mixed.lambdas[i];
        let p = mixed.permutation[i];
        let expected = l * x[[i, j, k]] + (1.0 - l) * x[[p, j, k]];
        assert_abs_diff_eq!(value, expected, epsilon = 1e-14);
    }
    for ((i, c), &value) in mixed.targets.indexed_iter() {
        let l = mixed.lambdas[i];
        let expected = l * y[[i, c]] + (1.0 - l) * y[[mixed.permutation[i], c]];
        assert_abs_diff_eq!(value, expected, epsilon = 1e-14);
    }
}

#[test]
fn cutoutspec_changes_only_its_box() {
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let specs = Array3::from_shape_fn((4, 64, 100), |_| rand::Rng::random::<f64>(&mut rng));
    let cut = CutOutSpec::sslh_strong();
    let out = cut
        .apply_batch(specs.view(), &mut ChaCha8Rng::seed_from_u64(2))
        .unwrap();
    let mut replay = ChaCha8Rng::seed_from_u64(2);
    for i in 0..4 {
        let region = cut.sample_box(64, 100, &mut replay);
        for ((f, t), &v) in out.index_axis(Axis(0), i).indexed_iter() {
            if region.freq.contains(&f) && region.time.contains(&t) {
                assert_eq!(v, -80.0);
            } else {
                assert_eq!(v, specs[[i, f, t]]);
            }
        }
    }
}

#[test]
fn specaugment_equals_naive_masking() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let specs = Array3::from_shape_fn((3, 20, 40), |_| rand::Rng::random::<f32>(&mut rng));
    let aug = SpecAugment::new(tessera_augment::SpecAugmentConfig {
        n_time_masks: 2,
        max_time_width: 10,
        n_freq_masks: 2,
        max_freq_width: 5,
        fill_value: -1.0,
    })
    .unwrap();
    let lengths = [40, 25, 3];
    let masks = aug
        .sample_masks(3, 20, 40, Some(&lengths), &mut ChaCha8Rng::seed_from_u64(4))
        .unwrap();
    let out = aug.apply_masks(specs.view(), &masks).unwrap();
    for ((i, f, t), &v) in out.indexed_iter() {
        let m = &masks[i];
        let masked = t < m.valid_length
            && (m.time.iter().any(|r| r.contains(&t)) || m.freq.iter().any(|r| r.contains(&f)));
        assert_eq!(v, if masked { -1.0 } else { specs[[i, f, t]] });
    }
}

#[test]
fn nearest_resampling_equals_torch_formula() {
    // torch: idx = arange(0, n, 1/rate).round().clamp(max=n-1), round half to even.
    let x = Array1::from_iter((0..37).map(|v| v as f64));
    for rate in [0.25, 0.5, 0.73, 1.0, 1.3, 1.75] {
        let step = 1.0 / rate;
        let mut expected = Vec::new();
        let mut t = 0.0f64;
        let mut j = 0usize;
        while t < 37.0 {
            expected.push((t.round_ties_even() as usize).min(36) as f64);
            j += 1;
            t = j as f64 * step;
        }
        assert_eq!(
            resample_nearest(x.view(), rate).unwrap().to_vec(),
            expected,
            "rate {rate}"
        );
    }
}

#[test]
fn depthwise_correlation_with_5x5_filter_equals_direct_sum() {
    let image = Array3::from_shape_fn((1, 7, 6), |(_, i, j)| ((i * 7 + j * 3) % 11) as f64);
    let filter = Array2::from_shape_fn((5, 5), |(a, b)| ((a + 2 * b) % 4) as f64);
    let out = depthwise_correlate(image.view(), filter.view());
    for i in 0..7isize {
        for j in 0..6isize {
            let mut sum = 0.0;
            for a in 0..5isize {
                for b in 0..5isize {
                    let (y, x) = (i + a - 2, j + b - 2);
                    if (0..7).contains(&y) && (0..6).contains(&x) {
                        sum +=
                            filter[[a as usize, b as usize]] * image[[0, y as usize, x as usize]];
                    }
                }
            }
            assert_eq!(out[[0, i as usize, j as usize]], sum);
        }
    }
}
