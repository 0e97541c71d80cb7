//! Ramp-up schedules for the unlabelled-loss weights.
//!
//! With progress $t = \mathrm{clamp}(\text{step} / \text{length}, 0, 1)$:
//! linear $t$; sigmoid-shaped $e^{-5(1-t)^2}$ (Laine & Aila 2017, Mean Teacher, SSLH's
//! `exp_increase`); cosine $\tfrac12(1 - \cos \pi t)$. Every ramp is 0 at $t = 0$ (except the
//! sigmoid, $e^{-5} \approx 0.0067$) and exactly 1 from $t = 1$ on; a length of 0 means "already
//! ramped" (1 at every step), as in the Mean Teacher code.

use crate::{Error, Result};
use tessera_core::RejectInput;

/// The shape of a ramp-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RampKind {
    /// $t$.
    Linear,
    /// $e^{-5(1-t)^2}$.
    Sigmoid,
    /// $\tfrac12(1 - \cos \pi t)$.
    Cosine,
}

impl RampKind {
    /// The ramp at progress `t` (clamped to $[0, 1]$). Errors on NaN.
    pub fn at(self, t: f64) -> Result<f64> {
        if t.is_nan() {
            return Err(Error::invalid("t", t, "ramp progress must not be NaN"));
        }
        let t = t.clamp(0.0, 1.0);
        Ok(match self {
            RampKind::Linear => t,
            RampKind::Sigmoid => (-5.0 * (1.0 - t) * (1.0 - t)).exp(),
            RampKind::Cosine => 0.5 * (1.0 - (std::f64::consts::PI * t).cos()),
        })
    }
}

/// A ramp-up over `length` steps that scales a target weight, e.g. $\lambda_u$.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RampUp {
    kind: RampKind,
    length: u64,
}

impl RampUp {
    /// A ramp of `kind` reaching 1 after `length` steps (0 = no ramp).
    pub fn new(kind: RampKind, length: u64) -> Self {
        RampUp { kind, length }
    }

    /// The ramp factor in $[0, 1]$ at `step`.
    pub fn factor(&self, step: u64) -> f64 {
        if self.length == 0 {
            return 1.0;
        }
        let t = step as f64 / self.length as f64;
        // t is never NaN here (length > 0), so `at` cannot fail.
        self.kind.at(t).unwrap_or(1.0)
    }

    /// The kind of this ramp.
    pub fn kind(&self) -> RampKind {
        self.kind
    }

    /// The number of steps to reach 1.
    pub fn length(&self) -> u64 {
        self.length
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;

    #[test]
    fn endpoints_and_midpoints() {
        for kind in [RampKind::Linear, RampKind::Sigmoid, RampKind::Cosine] {
            assert_eq!(kind.at(1.0).unwrap(), 1.0);
            assert_eq!(kind.at(7.0).unwrap(), 1.0);
            assert_eq!(kind.at(-3.0).unwrap(), kind.at(0.0).unwrap());
            assert!(kind.at(f64::NAN).is_err());
        }
        assert_eq!(RampKind::Linear.at(0.25).unwrap(), 0.25);
        assert_abs_diff_eq!(
            RampKind::Sigmoid.at(0.5).unwrap(),
            (-1.25_f64).exp(),
            epsilon = 1e-15
        );
        assert_abs_diff_eq!(
            RampKind::Sigmoid.at(0.0).unwrap(),
            (-5.0_f64).exp(),
            epsilon = 1e-15
        );
        assert_abs_diff_eq!(RampKind::Cosine.at(0.5).unwrap(), 0.5, epsilon = 1e-15);
        assert_eq!(RampKind::Cosine.at(0.0).unwrap(), 0.0);
        let ramp = RampUp::new(RampKind::Linear, 10);
        assert_eq!(ramp.factor(5), 0.5);
        assert_eq!(ramp.factor(50), 1.0);
        assert_eq!(RampUp::new(RampKind::Sigmoid, 0).factor(0), 1.0);
    }
}
