//! The softmax vector–Jacobian product; softmax and log-softmax themselves are tessera-core's
//! (re-exported here).
//!
//! $p_{ic} = e^{z_{ic}} / \sum_k e^{z_{ik}}$, computed as $e^{z_{ic} - \max_k z_{ik}}$ over its
//! row sum so that large logits never overflow; $\log p_{ic} = z_{ic} - \max_k z_{ik} - \log\sum_k
//! e^{z_{ik} - \max_k z_{ik}}$ is always finite for finite logits.
//!
//! Every loss of this crate is written as a function of probabilities and pulled back to the
//! logits with [`softmax_backward`]: $\partial L/\partial z_{ic} = p_{ic}\,(g_{ic} - \sum_k g_{ik}
//! p_{ik})$ where $g = \partial L / \partial p$.

use ndarray::{Array2, ArrayView2, Zip};

use crate::{check, Float, Result};

pub use tessera_core::softmax::{log_softmax, log_sum_exp, softmax};

pub(crate) fn softmax_unchecked<F: Float>(logits: ArrayView2<F>) -> Array2<F> {
    let mut out = logits.to_owned();
    tessera_core::softmax::softmax_rows_in_place(out.view_mut());
    out
}

pub(crate) fn log_softmax_unchecked<F: Float>(logits: ArrayView2<F>) -> Array2<F> {
    let mut out = logits.to_owned();
    for mut row in out.rows_mut() {
        let log_normaliser = log_sum_exp(row.view());
        row.mapv_inplace(|z| z - log_normaliser);
    }
    out
}

/// Pulls a gradient with respect to the probabilities back to the logits:
/// $\partial L/\partial z = p \odot (g - \langle g, p\rangle)$ row by row.
///
/// `probabilities` must be the softmax of the logits (rows summing to 1) and `grad_probabilities`
/// must have the same shape. Errors otherwise, or on non-finite values.
pub fn softmax_backward<F: Float>(
    probabilities: ArrayView2<F>,
    grad_probabilities: ArrayView2<F>,
) -> Result<Array2<F>> {
    check::probability_rows("probabilities", &probabilities)?;
    check::same_shape(
        "grad_probabilities",
        &grad_probabilities,
        probabilities.shape(),
        "the shape of probabilities",
    )?;
    check::finite("grad_probabilities", &grad_probabilities)?;
    Ok(softmax_backward_unchecked(
        probabilities,
        grad_probabilities,
    ))
}

pub(crate) fn softmax_backward_unchecked<F: Float>(
    probabilities: ArrayView2<F>,
    grad_probabilities: ArrayView2<F>,
) -> Array2<F> {
    let mut out = Array2::<F>::zeros(probabilities.raw_dim());
    Zip::from(out.rows_mut())
        .and(probabilities.rows())
        .and(grad_probabilities.rows())
        .for_each(|mut out, p, g| {
            let inner: F = p.iter().zip(g.iter()).map(|(&p, &g)| p * g).sum();
            Zip::from(&mut out)
                .and(&p)
                .and(&g)
                .for_each(|o, &p, &g| *o = p * (g - inner));
        });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;
    use ndarray::array;

    #[test]
    fn backward_matches_explicit_jacobian() {
        let z = array![[0.3_f64, -1.2, 2.0, 0.1]];
        let p = softmax(z.view()).unwrap();
        let g = array![[0.5_f64, -1.0, 2.0, 0.25]];
        let back = softmax_backward(p.view(), g.view()).unwrap();
        for c in 0..4 {
            let mut expected = 0.0;
            for k in 0..4 {
                let jacobian = if k == c {
                    p[[0, k]] * (1.0 - p[[0, c]])
                } else {
                    -p[[0, k]] * p[[0, c]]
                };
                expected += g[[0, k]] * jacobian;
            }
            assert_abs_diff_eq!(back[[0, c]], expected, epsilon = 1e-15);
        }
    }

    #[test]
    fn rejects_bad_input() {
        let nan = array![[0.0_f32, f32::NAN]];
        assert!(softmax(nan.view())
            .unwrap_err()
            .to_string()
            .contains("logits"));
        let empty = Array2::<f64>::zeros((0, 3));
        assert!(log_softmax(empty.view()).is_err());
        let not_p = array![[0.7_f64, 0.7]];
        let err = softmax_backward(not_p.view(), not_p.view()).unwrap_err();
        assert!(err.to_string().contains("probabilities"), "{err}");
    }
}
