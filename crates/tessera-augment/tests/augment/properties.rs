//! Property tests (proptest): invariants a wrong implementation would break.

use ndarray::{Array2, Array3, Axis};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tessera_augment::{
    ClassWiseConvolution, CutMix, CutOutSpec, Float, FourierCrop, LambdaRule, LambdaScope, Mixup,
    Occlusion, SpecAugment,
};

fn random_array3<F: Float>(shape: (usize, usize, usize), seed: u64) -> Array3<F> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Array3::from_shape_fn(shape, |_| {
        F::from_f64_rounded(rng.random::<f64>() * 4.0 - 2.0)
    })
}

/// Rows drawn from a softmax, so each sums to one.
fn soft_targets<F: Float>(batch: usize, classes: usize, seed: u64) -> Array2<F> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut t = Array2::from_shape_fn((batch, classes), |_| rng.random::<f64>().exp());
    for mut row in t.rows_mut() {
        let s = row.sum();
        row.mapv_inplace(|v| v / s);
    }
    t.mapv(F::from_f64_rounded)
}

fn check_mixup_convex<F: Float>(
    batch: usize,
    classes: usize,
    alpha: f64,
    mixmatch: bool,
    seed: u64,
    tol: f64,
) {
    let rule = if mixmatch {
        LambdaRule::MixMatch
    } else {
        LambdaRule::Plain
    };
    let mixup = Mixup::new(alpha, rule, LambdaScope::PerItem).unwrap();
    let a = random_array3::<F>((batch, 3, 4), seed);
    let b = random_array3::<F>((batch, 3, 4), seed + 1);
    let ya = soft_targets::<F>(batch, classes, seed + 2);
    let yb = soft_targets::<F>(batch, classes, seed + 3);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mixed = mixup
        .mix_with(a.view(), ya.view(), b.view(), yb.view(), &mut rng)
        .unwrap();
    let tol = F::from_f64_rounded(tol);
    for ((i, j, k), &v) in mixed.inputs.indexed_iter() {
        let (x, y) = (a[[i, j, k]], b[[i, j, k]]);
        assert!(v >= x.min(y) - tol && v <= x.max(y) + tol);
    }
    for (i, row) in mixed.targets.rows().into_iter().enumerate() {
        assert!((row.sum() - F::one()).abs() <= tol * F::from_f64_rounded(10.0));
        assert!(row.iter().all(|&v| v >= F::zero()));
        let l = mixed.lambdas[i];
        assert!(l >= F::zero() && l <= F::one());
        if mixmatch {
            assert!(l >= F::from_f64_rounded(0.5));
        }
    }
}

/// fftshift → centre crop → ifftshift with the crate's FFT-free rule spelled out: kept
/// input bin of output index k along an axis (n → m).
fn shifted_source_index(n: usize, m: usize, k: usize) -> usize {
    // ifftshift: out[k] = c[(k + m/2) % m]; crop: c[q] = s[n/2 - m/2 + q];
    // fftshift: s[p] = X[(p + n - n/2) % n].
    let q = (k + m / 2) % m;
    let p = n / 2 - m / 2 + q;
    (p + n - n / 2) % n
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn mixup_is_convex_f64(batch in 1usize..12, classes in 1usize..6, alpha in 0.05f64..4.0,
                           mixmatch: bool, seed in 0u64..1000) {
        check_mixup_convex::<f64>(batch, classes, alpha, mixmatch, seed, 1e-12);
    }

    #[test]
    fn mixup_is_convex_f32(batch in 1usize..12, classes in 1usize..6, alpha in 0.05f64..4.0,
                           mixmatch: bool, seed in 0u64..1000) {
        check_mixup_convex::<f32>(batch, classes, alpha, mixmatch, seed, 1e-5);
    }

    #[test]
    fn mixup_per_batch_shares_lambda(batch in 1usize..10, seed in 0u64..1000) {
        let mixup = Mixup::new(0.4, LambdaRule::Plain, LambdaScope::PerBatch).unwrap();
        let x = random_array3::<f64>((batch, 2, 2), seed);
        let y = soft_targets::<f64>(batch, 3, seed);
        let mixed = mixup.mix_batch(x.view(), y.view(), &mut ChaCha8Rng::seed_from_u64(seed)).unwrap();
        prop_assert!(mixed.lambdas.iter().all(|&l| l == mixed.lambdas[0]));
        let mut p = mixed.permutation.clone();
        p.sort_unstable();
        prop_assert_eq!(p, (0..batch).collect::<Vec<_>>());
    }

    #[test]
    fn fourier_crop_invariants(c in 1usize..3, h in 1usize..14, w in 1usize..14,
                               fh in 0.0f64..1.0, fw in 0.0f64..1.0, seed in 0u64..1000) {
        let bh = ((fh * h as f64).ceil() as usize).clamp(1, h);
        let bw = ((fw * w as f64).ceil() as usize).clamp(1, w);
        let x = random_array3::<f64>((c, h, w), seed);
        let plan = FourierCrop::<f64>::new(crate::crop_config(h, w, bh, bw)).unwrap();
        let y = plan.crop(x.view()).unwrap();
        // Mean preserved per channel.
        for (xc, yc) in x.outer_iter().zip(y.outer_iter()) {
            prop_assert!((xc.mean().unwrap() - yc.mean().unwrap()).abs() < 1e-12);
        }
        // Commutes with per-channel scaling.
        let scales: Vec<f64> = (0..c).map(|i| 0.5 + 1.7 * i as f64).collect();
        let mut scaled = x.clone();
        for (mut ch, &s) in scaled.outer_iter_mut().zip(&scales) {
            ch.mapv_inplace(|v| v * s);
        }
        let ys = plan.crop(scaled.view()).unwrap();
        for ((a, b), &s) in ys.outer_iter().zip(y.outer_iter()).zip(&scales) {
            for (&u, &v) in a.iter().zip(b.iter()) {
                prop_assert!((u - s * v).abs() < 1e-10);
            }
        }
        // Identity at full size.
        let full = FourierCrop::<f64>::new(crate::crop_config(h, w, h, w)).unwrap().crop(x.view()).unwrap();
        for (&u, &v) in full.iter().zip(x.iter()) {
            prop_assert!((u - v).abs() < 1e-12);
        }
        // The kept bins are those of fftshift → centre crop → ifftshift.
        let rows = tessera_augment::kept_bins(h, bh).unwrap();
        prop_assert_eq!(rows, (0..bh).map(|k| shifted_source_index(h, bh, k)).collect::<Vec<_>>());
    }

    #[test]
    fn cutoutspec_boxes_respect_size_and_seed(f in 1usize..80, t in 1usize..500,
                                              lo in 0.0f64..1.0, span in 0.0f64..1.0, seed: u64) {
        let hi = (lo + span).min(1.0);
        let cut = CutOutSpec::new((lo, hi), (lo, hi), -80.0).unwrap();
        let a = cut.sample_box(f, t, &mut ChaCha8Rng::seed_from_u64(seed));
        let b = cut.sample_box(f, t, &mut ChaCha8Rng::seed_from_u64(seed));
        prop_assert_eq!(&a, &b);
        prop_assert!(a.freq.end <= f && a.time.end <= t);
        prop_assert!(a.freq.len() as f64 <= hi * f as f64 + 1e-9);
        prop_assert!(a.time.len() as f64 <= hi * t as f64 + 1e-9);
        // Never below the lower bound unless no integer fits in [lo·n, hi·n].
        if (lo * f as f64).ceil() <= (hi * f as f64).floor() {
            prop_assert!(a.freq.len() as f64 >= lo * f as f64 - 1e-9);
        }
    }

    #[test]
    fn specaugment_masks_respect_size_padding_and_seed(batch in 1usize..5, f in 1usize..40,
            t in 1usize..120, n_masks in 0usize..4, width in 0usize..50, seed: u64) {
        let aug = SpecAugment::new(tessera_augment::SpecAugmentConfig { n_time_masks: n_masks, max_time_width: width, n_freq_masks: n_masks, max_freq_width: width / 2, fill_value: 0.0 }).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let lengths: Vec<usize> = (0..batch).map(|_| rng.random_range(0..=t)).collect();
        let a = aug.sample_masks(batch, f, t, Some(&lengths), &mut ChaCha8Rng::seed_from_u64(seed)).unwrap();
        let b = aug.sample_masks(batch, f, t, Some(&lengths), &mut ChaCha8Rng::seed_from_u64(seed)).unwrap();
        prop_assert_eq!(&a, &b);
        for (item, &len) in a.iter().zip(&lengths) {
            prop_assert_eq!(item.time.len(), n_masks);
            prop_assert!(item.time.iter().all(|r| r.len() <= width && r.end <= len));
            prop_assert!(item.freq.iter().all(|r| r.len() <= width / 2 && r.end <= f));
        }
        let specs = Array3::<f64>::from_elem((batch, f, t), 5.0);
        let out = aug.apply_masks(specs.view(), &a).unwrap();
        for (i, &len) in lengths.iter().enumerate() {
            let item = out.index_axis(Axis(0), i);
            prop_assert!(item.slice_axis(Axis(1), (len..).into()).iter().all(|&v| v == 5.0));
        }
    }

    #[test]
    fn occlusion_respects_size_and_seed(n in 1usize..2000, lo in 0.0f64..1.0, span in 0.0f64..1.0,
                                        seed: u64) {
        let hi = (lo + span).min(1.0);
        let occ = Occlusion::new((lo, hi), 0.0).unwrap();
        let x = ndarray::Array1::<f32>::ones(n);
        let (ya, ra) = occ.apply(x.view(), &mut ChaCha8Rng::seed_from_u64(seed)).unwrap();
        let (yb, rb) = occ.apply(x.view(), &mut ChaCha8Rng::seed_from_u64(seed)).unwrap();
        prop_assert_eq!(&ya, &yb);
        prop_assert_eq!(ra.clone(), rb);
        prop_assert!(ra.len() as f64 <= hi * n as f64 + 1e-9 && ra.end <= n);
    }

    #[test]
    fn cutmix_lambda_is_the_visible_share(batch in 1usize..6, h in 1usize..20, w in 1usize..20,
                                          alpha in 0.1f64..3.0, seed: u64) {
        let cutmix = CutMix::new(alpha, LambdaScope::PerItem).unwrap();
        let a = Array3::<f64>::ones((batch, h, w));
        let b = Array3::<f64>::zeros((batch, h, w));
        let ya = soft_targets::<f64>(batch, 3, seed);
        let yb = soft_targets::<f64>(batch, 3, seed + 1);
        let mixed = cutmix.mix_with(a.view(), ya.view(), b.view(), yb.view(),
                                    &mut ChaCha8Rng::seed_from_u64(seed)).unwrap();
        for i in 0..batch {
            let visible = mixed.inputs.index_axis(Axis(0), i).sum() / (h * w) as f64;
            prop_assert!((visible - mixed.lambdas[i]).abs() < 1e-12);
            prop_assert!((mixed.targets.row(i).sum() - 1.0).abs() < 1e-12);
        }
    }

    #[test]
    fn poison_filters_depend_only_on_key_and_class(key: u64, classes in proptest::collection::vec(0usize..1000, 1..8)) {
        let conv = ClassWiseConvolution::paper(key);
        let forward: Vec<_> = classes.iter().map(|&c| conv.filter::<f64>(c)).collect();
        // A fresh instance, queried in reverse order after unrelated queries.
        let other = ClassWiseConvolution::new(tessera_augment::ClassWiseConvolutionConfig { key, kernel_size: 3, blur_parameter: 0.3, quantize: false }).unwrap();
        let _ = other.filter::<f64>(123_456);
        let backward: Vec<_> = classes.iter().rev().map(|&c| other.filter::<f64>(c)).collect();
        for (f, b) in forward.iter().zip(backward.iter().rev()) {
            prop_assert_eq!(f, b);
        }
        // f32 filters are the f64 ones rounded.
        let single = conv.filter::<f32>(classes[0]);
        prop_assert_eq!(single, forward[0].mapv(|v| v as f32));
    }
}
