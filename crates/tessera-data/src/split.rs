//! Class-balanced (stratified) labelled/unlabelled splits and fold-based cross-validation.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tessera_core::RejectInput;

use crate::error::{Error, Result};

/// A labelled/unlabelled partition of a dataset's indices (both sorted ascending).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelledSplit {
    /// Indices whose labels the learner may use.
    pub labelled: Vec<usize>,
    /// Indices whose labels are hidden from the learner.
    pub unlabelled: Vec<usize>,
}

/// One cross-validation round: train on every fold but `test_fold`, test on `test_fold`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoldSplit {
    /// The held-out fold id.
    pub test_fold: usize,
    /// Indices of the training items (sorted).
    pub train: Vec<usize>,
    /// Indices of the test items (sorted).
    pub test: Vec<usize>,
}

fn check_labels(labels: &[usize], n_classes: usize) -> Result<()> {
    if labels.is_empty() {
        return Err(Error::invalid("labels", "[]", "need at least one item"));
    }
    if n_classes == 0 {
        return Err(Error::invalid("n_classes", 0, "must be at least 1"));
    }
    if let Some((index, &label)) = labels.iter().enumerate().find(|(_, &l)| l >= n_classes) {
        return Err(Error::invalid(
            "labels",
            format!("labels[{index}] = {label}"),
            format!("every label must be < n_classes = {n_classes}"),
        ));
    }
    Ok(())
}

/// Indices of each class, in ascending order.
fn indices_by_class(labels: &[usize], n_classes: usize) -> Vec<Vec<usize>> {
    let mut by_class = vec![Vec::new(); n_classes];
    for (index, &label) in labels.iter().enumerate() {
        by_class[label].push(index);
    }
    by_class
}

/// Splits `labels` into labelled and unlabelled items class by class.
///
/// Each class `c` with $n_c$ items contributes $k_c = \max(1, \mathrm{round}(f \cdot n_c))$
/// labelled items (at least one, so that semi-supervised learners see every class), drawn
/// uniformly at random from a ChaCha8 stream seeded with `seed`. `labelled_fraction` $f$ must
/// lie in $(0, 1]$; $f = 1$ labels everything.
///
/// # Errors
/// Empty `labels`, `n_classes == 0`, a label `>= n_classes`, or `labelled_fraction` outside
/// $(0, 1]$ (or not finite).
pub fn stratified_split(
    labels: &[usize],
    n_classes: usize,
    labelled_fraction: f64,
    seed: u64,
) -> Result<LabelledSplit> {
    check_labels(labels, n_classes)?;
    if !(labelled_fraction.is_finite() && labelled_fraction > 0.0 && labelled_fraction <= 1.0) {
        return Err(Error::invalid(
            "labelled_fraction",
            labelled_fraction,
            "must lie in (0, 1]",
        ));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut labelled = Vec::new();
    let mut unlabelled = Vec::new();
    for mut members in indices_by_class(labels, n_classes) {
        if members.is_empty() {
            continue;
        }
        members.shuffle(&mut rng);
        let wanted = (labelled_fraction * members.len() as f64).round() as usize;
        let take = wanted.clamp(1, members.len());
        labelled.extend_from_slice(&members[..take]);
        unlabelled.extend_from_slice(&members[take..]);
    }
    labelled.sort_unstable();
    unlabelled.sort_unstable();
    Ok(LabelledSplit {
        labelled,
        unlabelled,
    })
}

/// Assigns each item a fold id in `0..n_folds` so that every class is spread as evenly as
/// possible over the folds (stratified k-fold): each class is shuffled with a ChaCha8 stream
/// seeded with `seed` and dealt round-robin, starting where the previous class stopped so that
/// fold sizes also stay within one of each other.
///
/// # Errors
/// Empty `labels`, `n_classes == 0`, a label `>= n_classes`, or `n_folds < 2`.
pub fn stratified_folds(
    labels: &[usize],
    n_classes: usize,
    n_folds: usize,
    seed: u64,
) -> Result<Vec<usize>> {
    check_labels(labels, n_classes)?;
    if n_folds < 2 {
        return Err(Error::invalid("n_folds", n_folds, "must be at least 2"));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut folds = vec![0; labels.len()];
    let mut next_fold = 0;
    for mut members in indices_by_class(labels, n_classes) {
        members.shuffle(&mut rng);
        for index in members {
            folds[index] = next_fold;
            next_fold = (next_fold + 1) % n_folds;
        }
    }
    Ok(folds)
}

/// One [`FoldSplit`] per distinct fold id in `folds`, in ascending fold order (the
/// cross-validation protocol of ESC-50 and UrbanSound8K: train on k−1 official folds, test on
/// the remaining one).
///
/// # Errors
/// Empty `folds`, or fewer than two distinct fold ids.
pub fn fold_splits(folds: &[usize]) -> Result<Vec<FoldSplit>> {
    if folds.is_empty() {
        return Err(Error::invalid("folds", "[]", "need at least one item"));
    }
    let mut distinct: Vec<usize> = folds.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < 2 {
        return Err(Error::invalid(
            "folds",
            format!("{distinct:?}"),
            "cross-validation needs at least two distinct folds",
        ));
    }
    Ok(distinct
        .into_iter()
        .map(|test_fold| {
            let (test, train): (Vec<usize>, Vec<usize>) =
                (0..folds.len()).partition(|&i| folds[i] == test_fold);
            FoldSplit {
                test_fold,
                train,
                test,
            }
        })
        .collect())
}

/// Number of items of each class (`counts[c]` for `c < n_classes`).
///
/// # Errors
/// As [`stratified_split`] for the labels.
pub fn class_counts(labels: &[usize], n_classes: usize) -> Result<Vec<usize>> {
    check_labels(labels, n_classes)?;
    let mut counts = vec![0; n_classes];
    for &label in labels {
        counts[label] += 1;
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_percent_of_forty_per_class_gives_four_per_class() {
        let labels: Vec<usize> = (0..400).map(|i| i % 10).collect();
        let split = stratified_split(&labels, 10, 0.1, 3).unwrap();
        assert_eq!(split.labelled.len(), 40);
        assert_eq!(split.unlabelled.len(), 360);
        let chosen: Vec<usize> = split.labelled.iter().map(|&i| labels[i]).collect();
        assert_eq!(class_counts(&chosen, 10).unwrap(), vec![4; 10]);
    }

    #[test]
    fn every_class_keeps_at_least_one_label() {
        let labels = vec![0, 0, 1, 1, 1, 2];
        let split = stratified_split(&labels, 3, 0.01, 0).unwrap();
        let chosen: Vec<usize> = split.labelled.iter().map(|&i| labels[i]).collect();
        assert_eq!(class_counts(&chosen, 3).unwrap(), vec![1, 1, 1]);
    }

    #[test]
    fn bad_inputs_name_the_parameter() {
        let err = stratified_split(&[0, 1], 2, 0.0, 0)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("labelled_fraction") && err.contains('0'),
            "{err}"
        );
        let err = stratified_split(&[0, 1], 2, f64::NAN, 0)
            .unwrap_err()
            .to_string();
        assert!(err.contains("labelled_fraction"), "{err}");
        let err = stratified_split(&[0, 5], 2, 0.5, 0)
            .unwrap_err()
            .to_string();
        assert!(err.contains("labels[1] = 5"), "{err}");
        let err = stratified_split(&[], 2, 0.5, 0).unwrap_err().to_string();
        assert!(err.contains("labels"), "{err}");
        let err = stratified_folds(&[0, 1], 2, 1, 0).unwrap_err().to_string();
        assert!(err.contains("n_folds"), "{err}");
        let err = fold_splits(&[3, 3, 3]).unwrap_err().to_string();
        assert!(err.contains("folds"), "{err}");
    }

    #[test]
    fn fold_splits_follow_the_given_folds() {
        let folds = vec![1, 2, 1, 3, 2, 3];
        let splits = fold_splits(&folds).unwrap();
        assert_eq!(splits.len(), 3);
        assert_eq!(splits[0].test_fold, 1);
        assert_eq!(splits[0].test, vec![0, 2]);
        assert_eq!(splits[0].train, vec![1, 3, 4, 5]);
        assert_eq!(splits[2].test, vec![3, 5]);
    }
}
