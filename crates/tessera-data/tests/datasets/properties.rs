//! Property tests of splits, folds, batches and crop/pad.

use proptest::prelude::*;
use tessera_data::{
    class_counts, fold_splits, stratified_folds, stratified_split, BatchConfig, MiniBatches,
};

fn labels_strategy() -> impl Strategy<Value = (Vec<usize>, usize)> {
    (1usize..8)
        .prop_flat_map(|n_classes| (prop::collection::vec(0..n_classes, 1..200), Just(n_classes)))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn splits_are_disjoint_complete_and_stratified(
        (labels, n_classes) in labels_strategy(),
        fraction in 0.01f64..=1.0,
        seed in any::<u64>(),
    ) {
        let split = stratified_split(&labels, n_classes, fraction, seed).unwrap();
        let mut all: Vec<usize> = split.labelled.iter().chain(&split.unlabelled).copied().collect();
        all.sort_unstable();
        prop_assert_eq!(all, (0..labels.len()).collect::<Vec<_>>());
        let totals = class_counts(&labels, n_classes).unwrap();
        let chosen: Vec<usize> = split.labelled.iter().map(|&i| labels[i]).collect();
        let picked = class_counts(&chosen, n_classes).unwrap();
        for (c, (&total, &got)) in totals.iter().zip(&picked).enumerate() {
            if total == 0 {
                prop_assert_eq!(got, 0);
            } else {
                // Within rounding of the fraction, and never a class without a label.
                prop_assert!(got >= 1, "class {} has no labelled item", c);
                prop_assert!((got as f64 - fraction * total as f64).abs() <= 0.5 + 1e-9 || got == 1);
            }
        }
        prop_assert_eq!(&split, &stratified_split(&labels, n_classes, fraction, seed).unwrap());
    }

    #[test]
    fn stratified_folds_spread_each_class_evenly(
        (labels, n_classes) in labels_strategy(),
        n_folds in 2usize..7,
        seed in any::<u64>(),
    ) {
        let folds = stratified_folds(&labels, n_classes, n_folds, seed).unwrap();
        prop_assert!(folds.iter().all(|&f| f < n_folds));
        let sizes: Vec<usize> = (0..n_folds).map(|f| folds.iter().filter(|&&x| x == f).count()).collect();
        prop_assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1);
        for class in 0..n_classes {
            let per_fold: Vec<usize> = (0..n_folds)
                .map(|f| (0..labels.len()).filter(|&i| labels[i] == class && folds[i] == f).count())
                .collect();
            prop_assert!(per_fold.iter().max().unwrap() - per_fold.iter().min().unwrap() <= 1);
        }
        if folds.iter().any(|&f| f != folds[0]) {
            for round in fold_splits(&folds).unwrap() {
                prop_assert_eq!(round.train.len() + round.test.len(), labels.len());
                prop_assert!(round.test.iter().all(|&i| folds[i] == round.test_fold));
                prop_assert!(round.train.iter().all(|&i| folds[i] != round.test_fold));
            }
        }
    }

    #[test]
    fn epochs_cover_every_item_once(
        n in 1usize..100,
        batch_size in 1usize..40,
        shuffle in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let config = BatchConfig { batch_size, shuffle, drop_last: false, seed };
        let mut batches = MiniBatches::new(n, config).unwrap();
        for _ in 0..2 {
            let epoch = batches.epoch();
            prop_assert!(epoch.iter().all(|b| !b.is_empty() && b.len() <= batch_size));
            let mut all = epoch.concat();
            all.sort_unstable();
            prop_assert_eq!(all, (0..n).collect::<Vec<_>>());
        }
        let mut dropping = MiniBatches::new(n, BatchConfig { drop_last: true, ..config }).unwrap();
        let epoch = dropping.epoch();
        prop_assert_eq!(epoch.len(), n / batch_size);
        prop_assert!(epoch.iter().all(|b| b.len() == batch_size));
        // The endless stream: every window of n consecutive items starting at an epoch
        // boundary is a permutation.
        let mut stream = MiniBatches::new(n, config).unwrap();
        let items: Vec<usize> = (0..(2 * n).div_ceil(batch_size)).flat_map(|_| stream.next_batch()).collect();
        let mut first: Vec<usize> = items[..n].to_vec();
        first.sort_unstable();
        prop_assert_eq!(first, (0..n).collect::<Vec<_>>());
    }
}

#[cfg(feature = "wav")]
mod audio {
    use ndarray::Array1;
    use proptest::prelude::*;
    use tessera_data::{fit_length, resample, FitMode};

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn fit_length_keeps_a_contiguous_run(
            signal in prop::collection::vec(0.5f32..1.0, 1..300),
            length in 1usize..400,
            centre in any::<bool>(),
        ) {
            let mode = if centre { FitMode::Center } else { FitMode::Start };
            let fitted = fit_length(Array1::from(signal.clone()).view(), length, mode);
            prop_assert_eq!(fitted.len(), length);
            let kept: Vec<f32> = fitted.iter().copied().filter(|&x| x != 0.0).collect();
            prop_assert_eq!(kept.len(), signal.len().min(length));
            // The kept samples are a contiguous run of the input.
            let found = signal.windows(kept.len()).any(|w| w == kept.as_slice());
            prop_assert!(found);
        }

        #[test]
        fn resampled_length_is_the_ceiling_of_the_ratio(
            n in 1usize..5_000,
            from in prop::sample::select(vec![8_000u32, 16_000, 22_050, 32_000, 44_100, 48_000]),
            to in prop::sample::select(vec![8_000u32, 16_000, 22_050, 44_100]),
        ) {
            let signal = Array1::from_iter((0..n).map(|t| ((t % 17) as f32 - 8.0) / 10.0));
            let out = resample(signal.view(), from, to).unwrap();
            prop_assert_eq!(out.len() as u64, (n as u64 * u64::from(to)).div_ceil(u64::from(from)));
            prop_assert!(out.iter().all(|x| x.is_finite()));
        }
    }
}
