//! Pruning criteria: random, magnitude (layer-wise and global top-k), SNIP $|g \odot w|$ and
//! an "oracle" that picks the mask with the lowest loss.
//!
//! Every top-k selection keeps the `k` largest scores; among equal scores the lower flat index
//! (and, globally, the earlier layer) wins, so results never depend on sort stability or
//! thread timing.

use std::cmp::Ordering;
use tessera_core::{check, RejectInput};

use ndarray::{ArrayD, ArrayViewD, Zip};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::error::{Error, Result};
use crate::mask::Mask;
use crate::sampling::exact_kept_count;
use crate::Float;

/// Orders (score, index) pairs best first: larger score, then smaller index.
fn best_first<F: Float>(a: &(F, usize), b: &(F, usize)) -> Ordering {
    b.0.partial_cmp(&a.0)
        .unwrap_or(Ordering::Equal)
        .then(a.1.cmp(&b.1))
}

/// Keeps the `kept` largest of `scores` (ties: lower index first). Scores must be finite.
pub fn top_k_mask<F: Float>(scores: &[F], kept: usize) -> Result<Mask> {
    check::finite_values("scores", scores.iter().copied())?;
    if kept > scores.len() {
        return Err(Error::invalid(
            "kept",
            kept,
            format!("cannot keep more than the {} entries", scores.len()),
        ));
    }
    let mut mask = Mask::zeros(scores.len());
    if kept == 0 {
        return Ok(mask);
    }
    let mut pairs: Vec<(F, usize)> = scores.iter().copied().zip(0..).collect();
    // O(n) selection instead of a full sort: only membership in the top k matters.
    pairs.select_nth_unstable_by(kept - 1, best_first);
    for &(_, i) in &pairs[..kept] {
        mask.set(i, true)?;
    }
    Ok(mask)
}

/// Keeps the `kept` largest scores over all layers together (ties: earlier layer, then lower
/// index). Returns one mask per layer.
pub fn global_top_k_masks<F: Float>(scores: &[&[F]], kept: usize) -> Result<Vec<Mask>> {
    if scores.is_empty() {
        return Err(Error::invalid(
            "scores",
            "[]",
            "at least one layer is needed",
        ));
    }
    let mut offsets = Vec::with_capacity(scores.len() + 1);
    offsets.push(0usize);
    for s in scores {
        check::finite_values("scores", s.iter().copied())?;
        offsets.push(offsets.last().copied().unwrap_or(0) + s.len());
    }
    let flat: Vec<F> = scores.iter().flat_map(|s| s.iter().copied()).collect();
    let global = top_k_mask(&flat, kept)?;
    let mut masks: Vec<Mask> = scores.iter().map(|s| Mask::zeros(s.len())).collect();
    let mut layer = 0;
    for i in global.iter_ones() {
        while i >= offsets[layer + 1] {
            layer += 1;
        }
        masks[layer].set(i - offsets[layer], true)?;
    }
    Ok(masks)
}

fn flat_values<F: Float>(name: &'static str, w: &ArrayViewD<'_, F>) -> Result<Vec<F>> {
    let values: Vec<F> = w.iter().copied().collect();
    check::finite_values(name, values.iter().copied())?;
    Ok(values)
}

/// Layer-wise magnitude pruning: keeps the `round(density · n)` weights of largest $|w|$.
pub fn magnitude_mask<F: Float>(weights: ArrayViewD<'_, F>, density: f64) -> Result<Mask> {
    check::density("density", density)?;
    let scores: Vec<F> = flat_values("weights", &weights)?
        .into_iter()
        .map(|w| w.abs())
        .collect();
    top_k_mask(&scores, exact_kept_count(scores.len(), density))
}

/// Global magnitude pruning: keeps the `round(density · N)` weights of largest $|w|$ over
/// all layers ($N$ = total weight count).
pub fn global_magnitude_masks<F: Float>(
    weights: &[ArrayViewD<'_, F>],
    density: f64,
) -> Result<Vec<Mask>> {
    check::density("density", density)?;
    let scores: Vec<Vec<F>> = weights
        .iter()
        .map(|w| {
            Ok(flat_values("weights", w)?
                .into_iter()
                .map(|v| v.abs())
                .collect())
        })
        .collect::<Result<_>>()?;
    global_from_scores(&scores, density)
}

fn global_from_scores<F: Float>(scores: &[Vec<F>], density: f64) -> Result<Vec<Mask>> {
    let total: usize = scores.iter().map(Vec::len).sum();
    let refs: Vec<&[F]> = scores.iter().map(Vec::as_slice).collect();
    global_top_k_masks(&refs, exact_kept_count(total, density))
}

/// SNIP connection sensitivity $s = |g \odot w|$ (Lee et al., 2019), element-wise.
pub fn snip_scores<F: Float>(
    weights: ArrayViewD<'_, F>,
    gradients: ArrayViewD<'_, F>,
) -> Result<ArrayD<F>> {
    if weights.shape() != gradients.shape() {
        return Err(Error::shape(
            "gradients",
            weights.shape(),
            gradients.shape(),
        ));
    }
    check::finite_values("weights", weights.iter().copied())?;
    check::finite_values("gradients", gradients.iter().copied())?;
    Ok(Zip::from(&weights)
        .and(&gradients)
        .map_collect(|&w, &g| (w * g).abs()))
}

/// Layer-wise SNIP: keeps the `round(density · n)` weights of largest $|g \odot w|$.
pub fn snip_mask<F: Float>(
    weights: ArrayViewD<'_, F>,
    gradients: ArrayViewD<'_, F>,
    density: f64,
) -> Result<Mask> {
    check::density("density", density)?;
    let scores = snip_scores(weights, gradients)?;
    let flat: Vec<F> = scores.iter().copied().collect();
    top_k_mask(&flat, exact_kept_count(flat.len(), density))
}

/// Global SNIP (as in the paper): keeps the `round(density · N)` largest $|g \odot w|$ over
/// all layers.
pub fn global_snip_masks<F: Float>(
    weights: &[ArrayViewD<'_, F>],
    gradients: &[ArrayViewD<'_, F>],
    density: f64,
) -> Result<Vec<Mask>> {
    check::density("density", density)?;
    if weights.len() != gradients.len() {
        return Err(Error::shape(
            "gradients",
            format!("{} layers", weights.len()),
            format!("{} layers", gradients.len()),
        ));
    }
    let scores: Vec<Vec<F>> = weights
        .iter()
        .zip(gradients)
        .map(|(w, g)| Ok(snip_scores(w.view(), g.view())?.iter().copied().collect()))
        .collect::<Result<_>>()?;
    global_from_scores(&scores, density)
}

/// How the oracle finds candidate masks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OracleSearch {
    /// Every mask with exactly `kept` ones, in lexicographic order of kept index sets
    /// (refused above `max_candidates` masks).
    Exhaustive {
        /// Upper bound on $\binom{n}{k}$ before the search is refused.
        max_candidates: usize,
    },
    /// `candidates` exact-count masks drawn uniformly from a `ChaCha8Rng` seeded with `seed`
    /// (duplicates are possible and evaluated again).
    Sampled {
        /// Number of masks to evaluate.
        candidates: usize,
        /// Seed of the random candidates.
        seed: u64,
    },
}

/// Every candidate the oracle evaluated, and the best one.
#[derive(Debug, Clone, PartialEq)]
pub struct OracleResult {
    /// The candidate masks in evaluation order.
    pub masks: Vec<Mask>,
    /// The loss of each candidate.
    pub losses: Vec<f64>,
    /// Index (into `masks`) of the lowest loss; the first one on ties.
    pub best: usize,
}

impl OracleResult {
    /// The lowest-loss mask.
    pub fn best_mask(&self) -> &Mask {
        &self.masks[self.best]
    }

    /// The lowest loss.
    pub fn best_loss(&self) -> f64 {
        self.losses[self.best]
    }
}

/// $\binom{n}{k}$, or `None` on overflow.
fn binomial(n: usize, k: usize) -> Option<usize> {
    let k = k.min(n - k);
    let mut acc: u128 = 1;
    for i in 0..k {
        acc = acc * (n - i) as u128 / (i + 1) as u128;
        if acc > usize::MAX as u128 {
            return None;
        }
    }
    usize::try_from(acc).ok()
}

/// Oracle pruning: evaluates `loss` on candidate masks of `len` entries with exactly `kept`
/// ones and returns all of them with the lowest-loss one marked. The closure sees the mask
/// (apply it to a copy of the weights and evaluate the network); a NaN loss is an error.
pub fn oracle_mask<L>(
    len: usize,
    kept: usize,
    search: OracleSearch,
    mut loss: L,
) -> Result<OracleResult>
where
    L: FnMut(&Mask) -> f64,
{
    if len == 0 {
        return Err(Error::invalid(
            "len",
            len,
            "a mask needs at least one entry",
        ));
    }
    if kept > len {
        return Err(Error::invalid(
            "kept",
            kept,
            format!("cannot keep more than the {len} entries"),
        ));
    }
    let masks: Vec<Mask> = match search {
        OracleSearch::Exhaustive { max_candidates } => {
            let count = binomial(len, kept).filter(|&c| c <= max_candidates);
            let Some(count) = count else {
                return Err(Error::invalid(
                    "search",
                    format!("Exhaustive {{ max_candidates: {max_candidates} }}"),
                    format!("C({len}, {kept}) masks exceed the limit; use Sampled"),
                ));
            };
            let mut masks = Vec::with_capacity(count);
            let mut combo: Vec<usize> = (0..kept).collect();
            loop {
                let mut mask = Mask::zeros(len);
                for &i in &combo {
                    mask.set(i, true)?;
                }
                masks.push(mask);
                // Next k-combination in lexicographic order.
                let Some(pos) = (0..kept).rev().find(|&p| combo[p] < len - kept + p) else {
                    break;
                };
                combo[pos] += 1;
                for p in pos + 1..kept {
                    combo[p] = combo[p - 1] + 1;
                }
            }
            masks
        }
        OracleSearch::Sampled { candidates, seed } => {
            if candidates == 0 {
                return Err(Error::invalid(
                    "candidates",
                    candidates,
                    "at least one candidate is needed",
                ));
            }
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            (0..candidates)
                .map(|_| Mask::with_kept_count(len, kept, &mut rng))
                .collect()
        }
    };
    let mut losses = Vec::with_capacity(masks.len());
    for (i, mask) in masks.iter().enumerate() {
        let value = loss(mask);
        if value.is_nan() {
            return Err(Error::non_finite("loss", i, value));
        }
        losses.push(value);
    }
    let best = (0..losses.len())
        .min_by(|&a, &b| losses[a].total_cmp(&losses[b]).then(a.cmp(&b)))
        .unwrap_or(0);
    Ok(OracleResult {
        masks,
        losses,
        best,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{array, ArrayD, IxDyn};

    #[test]
    fn top_k_breaks_ties_by_index() {
        let m = top_k_mask(&[1.0f64, 3.0, 3.0, 2.0, 3.0], 2).unwrap();
        assert_eq!(m.to_bools(), [false, true, true, false, false]);
        assert!(top_k_mask(&[1.0f32, f32::NAN], 1).is_err());
        assert!(top_k_mask(&[1.0f32], 2).is_err());
        assert_eq!(top_k_mask::<f32>(&[1.0, 2.0], 0).unwrap().count_ones(), 0);
    }

    #[test]
    fn magnitude_uses_absolute_values() {
        let w = array![[-5.0f32, 1.0], [0.5, 4.0]].into_dyn();
        let m = magnitude_mask(w.view(), 0.5).unwrap();
        assert_eq!(m.to_bools(), [true, false, false, true]);
        let nan = array![[f32::NAN, 1.0]].into_dyn();
        assert!(magnitude_mask(nan.view(), 0.5).is_err());
        assert!(magnitude_mask(w.view(), 0.0).is_err());
    }

    #[test]
    fn global_magnitude_splits_across_layers() {
        let a = array![1.0f64, 9.0, 2.0].into_dyn();
        let b = array![8.0f64, 3.0, 7.0].into_dyn();
        let masks = global_magnitude_masks(&[a.view(), b.view()], 0.5).unwrap();
        assert_eq!(masks[0].to_bools(), [false, true, false]);
        assert_eq!(masks[1].to_bools(), [true, false, true]);
        // Ties across layers: the earlier layer wins.
        let c = array![1.0f64, 1.0].into_dyn();
        let masks = global_magnitude_masks(&[c.view(), c.view()], 0.25).unwrap();
        assert_eq!(masks[0].to_bools(), [true, false]);
        assert_eq!(masks[1].to_bools(), [false, false]);
    }

    #[test]
    fn snip_scores_and_shape_errors() {
        let w = array![[1.0f64, -2.0], [3.0, 0.5]].into_dyn();
        let g = array![[-4.0f64, 1.0], [0.1, 10.0]].into_dyn();
        let s = snip_scores(w.view(), g.view()).unwrap();
        assert_eq!(s, array![[4.0, 2.0], [0.30000000000000004, 5.0]].into_dyn());
        let m = snip_mask(w.view(), g.view(), 0.5).unwrap();
        assert_eq!(m.to_bools(), [true, false, false, true]);
        let wrong = ArrayD::<f64>::zeros(IxDyn(&[4]));
        assert!(snip_scores(w.view(), wrong.view()).is_err());
        let masks = global_snip_masks(&[w.view()], &[g.view()], 0.25).unwrap();
        assert_eq!(masks[0].to_bools(), [false, false, false, true]);
    }

    #[test]
    fn exhaustive_oracle_finds_the_minimum() {
        // Loss = sum of |target − kept| over a fixed target: the oracle recovers the target.
        let target = [false, true, false, true, true, false];
        let result = oracle_mask(
            6,
            3,
            OracleSearch::Exhaustive {
                max_candidates: 100,
            },
            |m| {
                m.to_bools()
                    .iter()
                    .zip(&target)
                    .filter(|(a, b)| a != b)
                    .count() as f64
            },
        )
        .unwrap();
        assert_eq!(result.masks.len(), 20);
        assert_eq!(result.best_mask().to_bools(), target);
        assert_eq!(result.best_loss(), 0.0);
        let distinct: std::collections::HashSet<_> = result.masks.iter().collect();
        assert_eq!(distinct.len(), 20);
        assert!(oracle_mask(
            40,
            20,
            OracleSearch::Exhaustive {
                max_candidates: 1000
            },
            |_| 0.0
        )
        .is_err());
        assert!(oracle_mask(
            4,
            2,
            OracleSearch::Exhaustive { max_candidates: 10 },
            |_| { f64::NAN }
        )
        .is_err());
    }

    #[test]
    fn sampled_oracle_is_seeded() {
        let search = OracleSearch::Sampled {
            candidates: 16,
            seed: 3,
        };
        let loss = |m: &Mask| m.iter_ones().map(|i| i as f64).sum::<f64>();
        let a = oracle_mask(30, 5, search, loss).unwrap();
        let b = oracle_mask(30, 5, search, loss).unwrap();
        assert_eq!(a, b);
        assert!(a.masks.iter().all(|m| m.count_ones() == 5));
        let min = a.losses.iter().copied().fold(f64::INFINITY, f64::min);
        assert_eq!(a.best_loss(), min);
    }
}
