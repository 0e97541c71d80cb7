//! Temperature sharpening and MixMatch label guessing.
//!
//! $\mathrm{Sharpen}(p, T)_c = p_c^{1/T} / \sum_k p_k^{1/T}$ (MixMatch, Berthelot et al. 2019,
//! eq. 7). Computed in log space, $\mathrm{softmax}((\log p - \max_k \log p_k)/T)$, so that
//! tiny temperatures give the one-hot of the arg-max (ties share the mass) instead of `0/0`.

use ndarray::{Array2, ArrayView2, Zip};
use tessera_core::RejectInput;

use crate::softmax::softmax_unchecked;
use crate::{check, Error, Float, Result};

/// Sharpens every row of `probabilities` with temperature `temperature` ($T$).
///
/// $T = 1$ returns the input (up to rounding), $T \to 0$ tends to the one-hot of each row's
/// arg-max, $T > 1$ flattens. Errors when $T \le 0$ or non-finite, or when a row is not a
/// probability distribution.
pub fn sharpen<F: Float>(probabilities: ArrayView2<F>, temperature: f64) -> Result<Array2<F>> {
    check::positive("temperature", temperature)?;
    check::probability_rows("probabilities", &probabilities)?;
    Ok(sharpen_unchecked(probabilities, temperature))
}

pub(crate) fn sharpen_unchecked<F: Float>(
    probabilities: ArrayView2<F>,
    temperature: f64,
) -> Array2<F> {
    let inverse_temperature = F::from_f64_rounded(1.0 / temperature);
    let mut out = probabilities.mapv(|p| p.ln());
    for mut row in out.rows_mut() {
        let max = row.iter().copied().fold(F::neg_infinity(), F::max);
        // Scaling (log p - max) rather than log p keeps the arg-max at exactly 0, so even an
        // inverse temperature that overflows leaves one finite entry per row.
        row.mapv_inplace(|log_p| {
            let centred = log_p - max;
            if centred == F::zero() {
                F::zero()
            } else {
                centred * inverse_temperature
            }
        });
    }
    tessera_core::softmax::softmax_rows_in_place(out.view_mut());
    out
}

/// The mean of the softmax of `K` sets of logits (one per augmented view), without
/// sharpening: $\bar p_b = \frac1K \sum_k \mathrm{softmax}(z_{b,k})$.
///
/// Errors when `view_logits` is empty (`K = 0`), the views differ in shape, or a value is
/// non-finite.
pub fn average_softmax<F: Float>(view_logits: &[ArrayView2<F>]) -> Result<Array2<F>> {
    let (batch, classes) = check_views(view_logits)?;
    Ok(average_softmax_unchecked(view_logits, batch, classes))
}

/// MixMatch label guessing: $q_b = \mathrm{Sharpen}(\frac1K \sum_k
/// \mathrm{softmax}(z_{b,k}), T)$ from the logits of `K` augmented views of one unlabelled
/// batch.
///
/// The guesses are targets: no gradient flows through them. Errors when `K = 0`, the views
/// differ in shape, a value is non-finite, or $T \le 0$.
pub fn guess_labels<F: Float>(
    view_logits: &[ArrayView2<F>],
    temperature: f64,
) -> Result<Array2<F>> {
    check::positive("temperature", temperature)?;
    let (batch, classes) = check_views(view_logits)?;
    let mean = average_softmax_unchecked(view_logits, batch, classes);
    Ok(sharpen_unchecked(mean.view(), temperature))
}

/// The most entries [`one_hot`] allocates (2^28).
pub const MAX_ONE_HOT_ENTRIES: usize = 1 << 28;

/// One-hot rows `(labels.len(), classes)` from class indices.
///
/// Errors when `classes == 0`, a label is `>= classes`, or the output would hold more than
/// [`MAX_ONE_HOT_ENTRIES`] entries (checked before allocating).
pub fn one_hot<F: Float>(labels: &[usize], classes: usize) -> Result<Array2<F>> {
    if classes == 0 {
        return Err(Error::invalid("classes", 0, "must be >= 1"));
    }
    tessera_core::check::element_count(
        "one-hot output (labels.len() × classes)",
        &[labels.len(), classes],
        MAX_ONE_HOT_ENTRIES,
    )?;
    let mut out = Array2::<F>::zeros((labels.len(), classes));
    for (row, &label) in labels.iter().enumerate() {
        if label >= classes {
            return Err(Error::invalid(
                "labels",
                label,
                format!("label of item {row} must be < classes = {classes}"),
            ));
        }
        out[[row, label]] = F::one();
    }
    Ok(out)
}

/// `K >= 1` views of identical `(batch, classes)` shape, all finite.
pub(crate) fn check_views<F: Float>(view_logits: &[ArrayView2<F>]) -> Result<(usize, usize)> {
    let first = view_logits.first().ok_or_else(|| {
        Error::invalid(
            "view_logits",
            "K = 0 views",
            "label guessing needs at least one augmented view (K >= 1)",
        )
    })?;
    let (batch, classes) = check::logits("view_logits", first)?;
    for view in &view_logits[1..] {
        check::same_shape(
            "view_logits",
            view,
            first.shape(),
            "every view like the first",
        )?;
        check::finite("view_logits", view)?;
    }
    Ok((batch, classes))
}

pub(crate) fn average_softmax_unchecked<F: Float>(
    view_logits: &[ArrayView2<F>],
    batch: usize,
    classes: usize,
) -> Array2<F> {
    let mut sum = Array2::<F>::zeros((batch, classes));
    for view in view_logits {
        let probabilities = softmax_unchecked(view.view());
        Zip::from(&mut sum)
            .and(&probabilities)
            .for_each(|s, &p| *s += p);
    }
    let k = F::from_f64_rounded(view_logits.len() as f64);
    sum.mapv_inplace(|s| s / k);
    sum
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;
    use ndarray::array;

    #[test]
    fn matches_the_power_formula() {
        let p = array![[0.1_f64, 0.2, 0.7], [0.5, 0.25, 0.25]];
        let sharp = sharpen(p.view(), 0.5).unwrap();
        for (row, sharp_row) in p.rows().into_iter().zip(sharp.rows()) {
            let powered: Vec<f64> = row.iter().map(|v| v.powf(2.0)).collect();
            let total: f64 = powered.iter().sum();
            for (s, q) in sharp_row.iter().zip(&powered) {
                assert_abs_diff_eq!(*s, q / total, epsilon = 1e-15);
            }
        }
    }

    #[test]
    fn tiny_temperature_is_one_hot_even_with_ties_and_zeros() {
        let p = array![[0.6_f64, 0.4, 0.0], [0.4, 0.2, 0.4]];
        let sharp = sharpen(p.view(), 1e-308).unwrap();
        assert_eq!(sharp, array![[1.0, 0.0, 0.0], [0.5, 0.0, 0.5]]);
    }

    #[test]
    fn guess_averages_then_sharpens() {
        let a = array![[2.0_f64, 0.0], [0.0, 0.0]];
        let b = array![[0.0_f64, 0.0], [0.0, 1.0]];
        let guess = guess_labels(&[a.view(), b.view()], 0.5).unwrap();
        let pa = softmax_unchecked(a.view());
        let pb = softmax_unchecked(b.view());
        let mean = (&pa + &pb) / 2.0;
        let expected = sharpen(mean.view(), 0.5).unwrap();
        for (g, e) in guess.iter().zip(expected.iter()) {
            assert_abs_diff_eq!(g, e, epsilon = 1e-15);
        }
    }

    #[test]
    fn errors_name_the_parameter() {
        let p = array![[0.5_f64, 0.5]];
        for t in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let err = sharpen(p.view(), t).unwrap_err();
            assert!(err.to_string().contains("temperature"), "{err}");
        }
        let logits = array![[1.0_f64, 2.0]];
        let err = sharpen(logits.view(), 0.5).unwrap_err();
        assert!(matches!(
            err,
            Error::NotProbability {
                name: "probabilities",
                row: 0,
                ..
            }
        ));
        let err = guess_labels::<f64>(&[], 0.5).unwrap_err();
        assert!(err.to_string().contains("K = 0"), "{err}");
        let other = array![[1.0_f64, 2.0, 3.0]];
        let err = guess_labels(&[logits.view(), other.view()], 0.5).unwrap_err();
        assert!(err.to_string().contains("view_logits"), "{err}");
        assert!(one_hot::<f32>(&[0, 3], 3).is_err());
        assert_eq!(one_hot::<f32>(&[1], 2).unwrap(), array![[0.0, 1.0]]);
    }
}
