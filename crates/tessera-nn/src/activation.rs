//! Point-wise activation functions with their first and second derivatives.

use crate::Float;

/// The non-linearity applied after every hidden layer (the output layer is always linear).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Activation {
    /// `max(0, x)`; derivative 1 for `x > 0`, 0 otherwise (also at 0, as PyTorch); second
    /// derivative 0 (the Hessian is exact away from the kinks, a null set).
    Relu,
    /// GELU, tanh approximation (PyTorch `approximate="tanh"`, GPT-2, BERT):
    /// `½x(1 + tanh(√(2/π)(x + 0.044715x³)))`. Chosen over the erf form because its first and
    /// second derivatives are closed-form without a special-function dependency.
    Gelu,
    /// `x` (a deep linear network).
    Identity,
}

const GELU_K: f64 = 0.797_884_560_802_865_4; // √(2/π)
const GELU_C: f64 = 0.044_715;

impl Activation {
    /// `φ(x)`.
    #[inline]
    pub fn value<F: Float>(self, x: F) -> F {
        match self {
            Activation::Relu => {
                if x > F::zero() {
                    x
                } else {
                    F::zero()
                }
            }
            Activation::Gelu => {
                let u = F::from_f64_rounded(GELU_K) * (x + F::from_f64_rounded(GELU_C) * x * x * x);
                F::from_f64_rounded(0.5) * x * (F::one() + u.tanh())
            }
            Activation::Identity => x,
        }
    }

    /// `φ'(x)`.
    #[inline]
    pub fn derivative<F: Float>(self, x: F) -> F {
        match self {
            Activation::Relu => {
                if x > F::zero() {
                    F::one()
                } else {
                    F::zero()
                }
            }
            Activation::Gelu => {
                let k = F::from_f64_rounded(GELU_K);
                let c = F::from_f64_rounded(GELU_C);
                let t = (k * (x + c * x * x * x)).tanh();
                let du = k * (F::one() + F::from_f64_rounded(3.0) * c * x * x);
                F::from_f64_rounded(0.5) * (F::one() + t)
                    + F::from_f64_rounded(0.5) * x * (F::one() - t * t) * du
            }
            Activation::Identity => F::one(),
        }
    }

    /// `φ''(x)` (zero for ReLU and identity).
    #[inline]
    pub fn second_derivative<F: Float>(self, x: F) -> F {
        match self {
            Activation::Relu | Activation::Identity => F::zero(),
            Activation::Gelu => {
                let k = F::from_f64_rounded(GELU_K);
                let c = F::from_f64_rounded(GELU_C);
                let t = (k * (x + c * x * x * x)).tanh();
                let du = k * (F::one() + F::from_f64_rounded(3.0) * c * x * x);
                let ddu = F::from_f64_rounded(6.0) * k * c * x;
                (F::one() - t * t) * (du - x * t * du * du + F::from_f64_rounded(0.5) * x * ddu)
            }
        }
    }

    /// Whether `φ'' ≡ 0`, so the Hessian R-pass can skip the curvature-of-activation term.
    pub fn is_piecewise_linear(self) -> bool {
        !matches!(self, Activation::Gelu)
    }

    /// The default initialisation gain: √2 (He) for ReLU and GELU, 1 for identity.
    pub fn default_gain(self) -> f64 {
        match self {
            Activation::Relu | Activation::Gelu => std::f64::consts::SQRT_2,
            Activation::Identity => 1.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;

    #[test]
    fn derivatives_match_finite_differences() {
        let h = 1e-6;
        for act in [Activation::Gelu, Activation::Relu, Activation::Identity] {
            for &x in &[-3.0f64, -1.2, -0.3, 0.2, 0.7, 2.5] {
                let d1 = (act.value(x + h) - act.value(x - h)) / (2.0 * h);
                assert_abs_diff_eq!(d1, act.derivative(x), epsilon = 1e-8);
                let d2 = (act.derivative(x + h) - act.derivative(x - h)) / (2.0 * h);
                assert_abs_diff_eq!(d2, act.second_derivative(x), epsilon = 1e-7);
            }
        }
    }

    #[test]
    fn gelu_known_values() {
        // PyTorch gelu(approximate="tanh") at 1.0 and -1.0.
        assert_abs_diff_eq!(
            Activation::Gelu.value(1.0f64),
            0.841_191_990_607_477_2,
            epsilon = 1e-12
        );
        assert_abs_diff_eq!(
            Activation::Gelu.value(-1.0f64),
            -0.158_808_009_392_522_8,
            epsilon = 1e-12
        );
    }
}
