//! Adversarial examples. FGSM (Goodfellow et al., 2015) from an input gradient; PGD and
//! adversarial training build on the same step.
//!
//! $x^{adv} = x + \epsilon\,\mathrm{sign}(\nabla_x \ell)$, used by Deep Co-Training
//! ($\epsilon = 0.02$, tessera-ssl) and by the robustness experiments.

use ndarray::{Array, ArrayView, Dimension, Zip};
use tessera_core::check;

use crate::{Float, Result};

/// The FGSM adversarial example $x + \epsilon\,\mathrm{sign}(g)$ for any array rank, with
/// $\mathrm{sign}(0) = 0$ (PyTorch's `sign`, as advertorch's `GradientSignAttack` uses, without
/// clipping).
///
/// `input_grad` is $\nabla_x \ell$ of the caller's model (e.g. the cross-entropy against its own
/// predicted or true labels). Errors when the shapes differ, a value is non-finite, or
/// $\epsilon < 0$.
pub fn fgsm_example<F: Float, D: Dimension>(
    inputs: ArrayView<F, D>,
    input_grad: ArrayView<F, D>,
    epsilon: f64,
) -> Result<Array<F, D>> {
    check::non_negative("epsilon", epsilon)?;
    check::shape("input_grad", input_grad.shape(), inputs.shape())?;
    check::finite("inputs", &inputs)?;
    check::finite("input_grad", &input_grad)?;
    let step = F::from_f64_rounded(epsilon);
    Ok(Zip::from(&inputs).and(&input_grad).map_collect(|&x, &g| {
        let sign = if g > F::zero() {
            F::one()
        } else if g < F::zero() {
            -F::one()
        } else {
            F::zero()
        };
        x + step * sign
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{array, Array3};

    #[test]
    fn fgsm_moves_by_epsilon_along_the_sign() {
        let x = Array3::<f64>::zeros((1, 2, 2));
        let g = array![[[0.3, -2.0], [0.0, 1e-30]]];
        let adv = fgsm_example(x.view(), g.view(), 0.02).unwrap();
        assert_eq!(adv, array![[[0.02, -0.02], [0.0, 0.02]]]);
        let err = fgsm_example(x.view(), g.view(), -0.1).unwrap_err();
        assert!(err.to_string().contains("epsilon"), "{err}");
        let wrong = Array3::<f64>::zeros((1, 2, 3));
        let err = fgsm_example(x.view(), wrong.view(), 0.1).unwrap_err();
        assert!(err.to_string().contains("input_grad"), "{err}");
    }
}
