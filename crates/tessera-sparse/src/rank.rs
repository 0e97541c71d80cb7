//! Rank correlations for the oracle-pruning analysis: Kendall $\tau_b$ (Knight's
//! $O(n \log n)$ algorithm), Spearman $\rho$ and the anomaly ratio.

use std::cmp::Ordering;
use tessera_core::{check, RejectInput};

use crate::error::{Error, Result};
use crate::Float;

fn check_pair<F: Float>(x: &[F], y: &[F]) -> Result<(Vec<f64>, Vec<f64>)> {
    if x.len() != y.len() {
        return Err(Error::shape("y", x.len(), y.len()));
    }
    if x.len() < 2 {
        return Err(Error::invalid(
            "x",
            format!("length {}", x.len()),
            "a rank correlation needs at least two observations",
        ));
    }
    check::finite_values("x", x.iter().copied())?;
    check::finite_values("y", y.iter().copied())?;
    // `+ 0.0` turns −0 into +0 so that the sorts (total order) and the tie tests (`==`)
    // agree on which values are equal.
    let to_f64 = |v: &[F]| {
        v.iter()
            .map(|a| a.to_f64().unwrap_or(f64::NAN) + 0.0)
            .collect()
    };
    Ok((to_f64(x), to_f64(y)))
}

/// Pairs `n(n−1)/2` summed over runs of equal values in a sorted sequence.
fn tied_pairs(sorted: impl Iterator<Item = f64>) -> u64 {
    let mut total = 0u64;
    let mut run = 0u64;
    let mut previous: Option<f64> = None;
    for v in sorted {
        if previous == Some(v) {
            run += 1;
        } else {
            total += run * (run.saturating_sub(1)) / 2;
            run = 1;
        }
        previous = Some(v);
    }
    total + run * (run.saturating_sub(1)) / 2
}

/// Sorts `values` ascending and returns the number of exchanges (inversions) a bubble sort
/// would have made, by merge sort.
fn sort_counting_inversions(values: &mut [f64]) -> u64 {
    let mut buffer = values.to_vec();
    let mut swaps = 0u64;
    let n = values.len();
    let mut width = 1;
    // Bottom-up merge sort ping-ponging between `values` and `buffer`.
    let mut from_values = true;
    while width < n {
        {
            let (src, dst): (&[f64], &mut [f64]) = if from_values {
                (&*values, &mut buffer)
            } else {
                (&buffer, values)
            };
            let mut start = 0;
            while start < n {
                let mid = (start + width).min(n);
                let end = (start + 2 * width).min(n);
                let (mut i, mut j, mut k) = (start, mid, start);
                while i < mid && j < end {
                    if src[j] < src[i] {
                        swaps += (mid - i) as u64;
                        dst[k] = src[j];
                        j += 1;
                    } else {
                        dst[k] = src[i];
                        i += 1;
                    }
                    k += 1;
                }
                dst[k..k + (mid - i)].copy_from_slice(&src[i..mid]);
                k += mid - i;
                dst[k..k + (end - j)].copy_from_slice(&src[j..end]);
                start = end;
            }
        }
        from_values = !from_values;
        width *= 2;
    }
    if !from_values {
        values.copy_from_slice(&buffer);
    }
    swaps
}

/// Kendall's $\tau_b$ with ties, by Knight's (1966) $O(n \log n)$ algorithm:
///
/// $\tau_b = (n_c - n_d) / \sqrt{(n_0 - n_1)(n_0 - n_2)}$ with $n_0 = n(n-1)/2$, $n_1$ and
/// $n_2$ the pairs tied in `x` and in `y`. Matches `scipy.stats.kendalltau` (variant `b`).
/// Errors on unequal lengths, fewer than two values, NaN/∞, or a constant input (τ
/// undefined).
pub fn kendall_tau_b<F: Float>(x: &[F], y: &[F]) -> Result<f64> {
    let (x, y) = check_pair(x, y)?;
    let n = x.len() as u64;
    let mut order: Vec<usize> = (0..x.len()).collect();
    order.sort_by(|&a, &b| x[a].total_cmp(&x[b]).then(y[a].total_cmp(&y[b])));
    let x_sorted: Vec<f64> = order.iter().map(|&i| x[i]).collect();
    let pairs_sorted: Vec<(f64, f64)> = order.iter().map(|&i| (x[i], y[i])).collect();
    let x_ties = tied_pairs(x_sorted.iter().copied());
    // Pairs tied in both x and y (consecutive after the lexicographic sort).
    let mut joint_ties = 0u64;
    let mut run = 1u64;
    for w in pairs_sorted.windows(2) {
        if w[0] == w[1] {
            run += 1;
        } else {
            joint_ties += run * (run - 1) / 2;
            run = 1;
        }
    }
    joint_ties += run * (run - 1) / 2;
    let mut y_by_x: Vec<f64> = pairs_sorted.iter().map(|p| p.1).collect();
    let discordant = sort_counting_inversions(&mut y_by_x);
    let y_ties = tied_pairs(y_by_x.iter().copied());
    let total = n * (n - 1) / 2;
    if x_ties == total {
        return Err(Error::invalid("x", "constant", "Kendall τ is undefined"));
    }
    if y_ties == total {
        return Err(Error::invalid("y", "constant", "Kendall τ is undefined"));
    }
    // Concordant − discordant = total − x_ties − y_ties + joint_ties − 2·discordant.
    let numerator =
        total as f64 - x_ties as f64 - y_ties as f64 + joint_ties as f64 - 2.0 * discordant as f64;
    let denominator = ((total - x_ties) as f64).sqrt() * ((total - y_ties) as f64).sqrt();
    Ok((numerator / denominator).clamp(-1.0, 1.0))
}

/// Ranks 1..=n with ties given their average rank (`scipy.stats.rankdata(method="average")`).
pub fn average_ranks<F: Float>(values: &[F]) -> Result<Vec<f64>> {
    check::finite_values("values", values.iter().copied())?;
    let v: Vec<f64> = values
        .iter()
        .map(|a| a.to_f64().unwrap_or(f64::NAN) + 0.0)
        .collect();
    let mut order: Vec<usize> = (0..v.len()).collect();
    order.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut ranks = vec![0.0; v.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && v[order[end]] == v[order[start]] {
            end += 1;
        }
        // Ranks start+1 ..= end share their mean.
        let rank = (start + 1 + end) as f64 / 2.0;
        for &i in &order[start..end] {
            ranks[i] = rank;
        }
        start = end;
    }
    Ok(ranks)
}

/// Spearman's $\rho$: the Pearson correlation of average ranks (ties handled as
/// `scipy.stats.spearmanr`). Errors like [`kendall_tau_b`].
pub fn spearman_rho<F: Float>(x: &[F], y: &[F]) -> Result<f64> {
    let (x, y) = check_pair(x, y)?;
    let (rx, ry) = (average_ranks(&x)?, average_ranks(&y)?);
    let mean = (rx.len() as f64 + 1.0) / 2.0;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in rx.iter().zip(&ry) {
        let (da, db) = (a - mean, b - mean);
        sxy += da * db;
        sxx += da * da;
        syy += db * db;
    }
    if sxx == 0.0 {
        return Err(Error::invalid("x", "constant", "Spearman ρ is undefined"));
    }
    if syy == 0.0 {
        return Err(Error::invalid("y", "constant", "Spearman ρ is undefined"));
    }
    Ok((sxy / (sxx.sqrt() * syy.sqrt())).clamp(-1.0, 1.0))
}

/// Whether a smaller or a larger retrained metric is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Objective {
    /// Losses: smaller is better.
    Minimise,
    /// Accuracies: larger is better.
    Maximise,
}

/// The anomaly ratio of an oracle-pruning study.
///
/// For $M$ masks with loss right after pruning $p_i$ and metric after retraining $r_i$, let
/// $T = \arg\min_i p_i$ (the masks an oracle would pick; several on ties) and $r^*$ the best
/// retrained metric within $T$. The ratio is the share of the *other* masks that are
/// strictly better than $r^*$ after retraining:
///
/// $\text{anomaly} = |\{ i \notin T : r_i \succ r^* \}| \,/\, (M - |T|)$.
///
/// 0 means the oracle's choice stays best after retraining; values near 1 mean pruned loss
/// predicts retrained quality badly. Errors on fewer than two masks, mismatched lengths,
/// NaN/∞, or all masks tied at the minimum pruned loss.
pub fn anomaly_ratio<F: Float>(
    pruned_loss: &[F],
    retrained: &[F],
    objective: Objective,
) -> Result<f64> {
    let (p, r) = check_pair(pruned_loss, retrained)?;
    let min_p = p.iter().copied().fold(f64::INFINITY, f64::min);
    let in_t: Vec<bool> = p.iter().map(|&v| v == min_p).collect();
    let better = |a: f64, b: f64| match objective {
        Objective::Minimise => a.partial_cmp(&b) == Some(Ordering::Less),
        Objective::Maximise => a.partial_cmp(&b) == Some(Ordering::Greater),
    };
    let reference = r
        .iter()
        .zip(&in_t)
        .filter(|(_, &t)| t)
        .map(|(&v, _)| v)
        .reduce(|a, b| if better(b, a) { b } else { a })
        .expect("the minimum is attained");
    let others = in_t.iter().filter(|&&t| !t).count();
    if others == 0 {
        return Err(Error::invalid(
            "pruned_loss",
            "all equal",
            "every mask ties at the lowest pruned loss; the anomaly ratio is undefined",
        ));
    }
    let beating = r
        .iter()
        .zip(&in_t)
        .filter(|(&v, &t)| !t && better(v, reference))
        .count();
    Ok(beating as f64 / others as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;

    #[test]
    fn perfect_and_reversed_orders() {
        let x = [1.0f64, 2.0, 3.0, 4.0];
        assert_eq!(kendall_tau_b(&x, &x).unwrap(), 1.0);
        let rev = [4.0f64, 3.0, 2.0, 1.0];
        assert_eq!(kendall_tau_b(&x, &rev).unwrap(), -1.0);
        assert_abs_diff_eq!(spearman_rho(&x, &rev).unwrap(), -1.0, epsilon = 1e-15);
    }

    #[test]
    fn small_tie_case_by_hand() {
        // x = [1, 1, 2], y = [1, 2, 2]: n0 = 3, n1 = 1, n2 = 1, pairs (0,2) concordant,
        // (1,2) and (0,1) tied: τ_b = 1 / sqrt(2·2) = 0.5.
        let tau = kendall_tau_b(&[1.0f64, 1.0, 2.0], &[1.0, 2.0, 2.0]).unwrap();
        assert_abs_diff_eq!(tau, 0.5, epsilon = 1e-15);
        assert_eq!(
            average_ranks(&[3.0f32, 1.0, 3.0, 2.0]).unwrap(),
            [3.5, 1.0, 3.5, 2.0]
        );
    }

    #[test]
    fn errors() {
        assert!(kendall_tau_b(&[1.0f64, 1.0], &[1.0, 2.0]).is_err());
        assert!(kendall_tau_b(&[1.0f64], &[1.0]).is_err());
        assert!(kendall_tau_b(&[1.0f64, 2.0], &[1.0]).is_err());
        assert!(kendall_tau_b(&[1.0f64, f64::NAN], &[1.0, 2.0]).is_err());
        assert!(spearman_rho(&[1.0f64, 2.0], &[3.0, 3.0]).is_err());
        assert!(anomaly_ratio(&[1.0f64, 1.0], &[1.0, 2.0], Objective::Minimise).is_err());
    }

    #[test]
    fn anomaly_ratio_counts_masks_beating_the_oracle_pick() {
        let pruned = [0.5f64, 0.1, 0.9, 0.3];
        let retrained = [0.2f64, 0.4, 0.6, 0.3];
        // Oracle pick: mask 1 (0.4 after retraining); masks 0 and 3 beat it, mask 2 does not.
        let r = anomaly_ratio(&pruned, &retrained, Objective::Minimise).unwrap();
        assert_abs_diff_eq!(r, 2.0 / 3.0, epsilon = 1e-15);
        let acc = [0.8f64, 0.6, 0.4, 0.7];
        let r = anomaly_ratio(&pruned, &acc, Objective::Maximise).unwrap();
        assert_abs_diff_eq!(r, 2.0 / 3.0, epsilon = 1e-15);
    }
}
