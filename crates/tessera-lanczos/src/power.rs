//! Power iteration for the dominant (largest-magnitude) eigenpair, with a residual stop, an
//! optional relative-change stop, and a deflated variant for the top few (PyHessian's
//! `eigenvalues(top_n)` recipe: each new iterate is orthogonalised against the pairs found).
//!
//! PyHessian stops on the relative change of the Rayleigh quotient alone. On spectra that
//! are symmetric about zero (a Wigner matrix) the iterate oscillates between the two ends and
//! the quotient can stall far from any eigenvalue; the residual test `‖A·v − λ·v‖ ≤ tol·|λ|`
//! cannot be fooled that way, so it is the default and the relative-change rule is opt-in.

use ndarray::{Array1, Array2, Axis};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tessera_core::RejectInput;

use crate::error::{Error, Result};
use crate::operator::{LinearOperator, Prepared};
use crate::util::{
    apply_checked, cgs2, check_finite, check_operator, check_tolerance, gaussian, norm,
};
use crate::Float;

/// Configuration of [`power_iteration`].
#[derive(Debug, Clone)]
pub struct PowerConfig<F> {
    /// Maximum operator applications per eigenpair (≥ 1).
    pub max_iterations: usize,
    /// Residual tolerance: stop when `‖A·v − λ·v‖ ≤ tol·|λ|`.
    pub tol: F,
    /// Optional relative-change stop `|λ_k − λ_{k−1}| ≤ rtol·|λ_k|` (PyHessian's rule; not a
    /// certificate of convergence).
    pub relative_change_tol: Option<F>,
    /// Seed of the random start vector.
    pub seed: u64,
    /// Start vector (overrides the seed).
    pub start: Option<Array1<F>>,
}

impl<F: Float> Default for PowerConfig<F> {
    fn default() -> Self {
        Self {
            max_iterations: 1000,
            tol: F::from_f64_rounded(1e-6),
            relative_change_tol: None,
            seed: 0x0090_17E2,
            start: None,
        }
    }
}

/// Why power iteration stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerStop {
    /// The residual test passed: `(value, vector)` is an eigenpair to the tolerance.
    Residual,
    /// The Rayleigh quotient stopped changing (not a convergence certificate; check
    /// [`PowerResult::residual`]).
    RelativeChange,
    /// The iteration budget ran out.
    MaxIterations,
}

/// An eigenpair estimate from power iteration.
#[derive(Debug, Clone)]
pub struct PowerResult<F> {
    /// Rayleigh quotient `λ = vᵀA·v`.
    pub value: F,
    /// Unit vector `v`.
    pub vector: Array1<F>,
    /// `‖A·v − λ·v‖`.
    pub residual: F,
    /// Operator applications spent.
    pub matvecs: usize,
    /// Why it stopped.
    pub stop: PowerStop,
}

impl<F> PowerResult<F> {
    /// Whether the residual test passed.
    pub fn converged(&self) -> bool {
        self.stop == PowerStop::Residual
    }
}

/// The dominant eigenpair of `op` by power iteration.
///
/// ```
/// use ndarray::{Array1, Array2};
/// use tessera_lanczos::{power_iteration, PowerConfig};
/// let a = Array2::from_diag(&Array1::from(vec![1.0f64, 2.0, -4.0]));
/// let r = power_iteration(&a, &PowerConfig { tol: 1e-10, ..Default::default() }).unwrap();
/// assert!(r.converged() && (r.value + 4.0).abs() < 1e-9);
/// ```
pub fn power_iteration<F: Float, O: LinearOperator<F> + ?Sized>(
    op: &O,
    config: &PowerConfig<F>,
) -> Result<PowerResult<F>> {
    deflated_power_iteration(op, 1, config).map(|mut v| v.remove(0))
}

/// The `count` largest-magnitude eigenpairs, one after the other, each iterate kept
/// orthogonal to the vectors already found (equivalent to power iteration on the deflated
/// operator `(I − VVᵀ)·A·(I − VVᵀ)`).
pub fn deflated_power_iteration<F: Float, O: LinearOperator<F> + ?Sized>(
    op: &O,
    count: usize,
    config: &PowerConfig<F>,
) -> Result<Vec<PowerResult<F>>> {
    let n = check_operator(op)?;
    if count == 0 || count > n {
        return Err(Error::invalid(
            "count",
            count,
            format!("must be in 1..={n}"),
        ));
    }
    if config.max_iterations == 0 {
        return Err(Error::invalid("max_iterations", 0, "must be ≥ 1"));
    }
    check_tolerance("tol", config.tol)?;
    if let Some(r) = config.relative_change_tol {
        check_tolerance("relative_change_tol", r)?;
    }
    let op = &Prepared::new(op);
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut found = Array2::<F>::zeros((0, n));
    let mut results = Vec::with_capacity(count);
    let mut w = Array1::zeros(n);
    for index in 0..count {
        let mut v = match (&config.start, index) {
            (Some(s), 0) => {
                if s.len() != n {
                    return Err(Error::shape(
                        "start",
                        format!("length {}", n),
                        format!("length {}", s.len()),
                    ));
                }
                check_finite("start", s.iter())?;
                s.clone()
            }
            _ => gaussian(n, &mut rng),
        };
        cgs2(found.view(), &mut v);
        let nv = norm(v.view());
        if nv == F::zero() {
            return Err(Error::invalid(
                "start",
                "the zero vector",
                "must be non-zero (and not in the span of found vectors)",
            ));
        }
        v.mapv_inplace(|x| x / nv);
        let mut previous: Option<F> = None;
        let mut result = None;
        for it in 1..=config.max_iterations {
            apply_checked(op, v.view(), w.view_mut(), it)?;
            cgs2(found.view(), &mut w);
            let lambda = v.dot(&w);
            let mut r = w.clone();
            r.scaled_add(-lambda, &v);
            let residual = norm(r.view());
            let stop = if residual <= config.tol * lambda.abs() {
                Some(PowerStop::Residual)
            } else if matches!((previous, config.relative_change_tol), (Some(p), Some(rt)) if (lambda - p).abs() <= rt * lambda.abs())
            {
                Some(PowerStop::RelativeChange)
            } else if it == config.max_iterations {
                Some(PowerStop::MaxIterations)
            } else {
                None
            };
            if let Some(stop) = stop {
                result = Some(PowerResult {
                    value: lambda,
                    vector: v.clone(),
                    residual,
                    matvecs: it,
                    stop,
                });
                break;
            }
            previous = Some(lambda);
            let nw = norm(w.view());
            // nw = 0 would mean λ = 0 and residual 0, which stopped above.
            v.assign(&w.mapv(|x| x / nw));
        }
        let result = result.expect("the loop always stops by max_iterations");
        found
            .push(Axis(0), result.vector.view())
            .expect("row length matches");
        results.push(result);
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;

    #[test]
    fn deflation_finds_top_three_by_magnitude() {
        let d = Array1::from(vec![0.1f64, -3.0, 0.5, 10.0, 1.0, -0.2, 6.0]);
        let a = Array2::from_diag(&d);
        let r = deflated_power_iteration(
            &a,
            3,
            &PowerConfig {
                tol: 1e-9,
                max_iterations: 5000,
                ..Default::default()
            },
        )
        .unwrap();
        for (res, want) in r.iter().zip([10.0f64, 6.0, -3.0]) {
            assert!(res.converged(), "{:?}", res.stop);
            assert_abs_diff_eq!(res.value, want, epsilon = 1e-7);
        }
        assert_abs_diff_eq!(r[1].vector.dot(&r[0].vector), 0.0, epsilon = 1e-12);
    }

    #[test]
    fn relative_change_can_stall_where_residual_does_not() {
        // Spectrum symmetric about 0: ±1 dominant, the quotient hovers near 0.
        let n = 200;
        let d = Array1::from_shape_fn(
            n,
            |i| if i % 2 == 0 { 1.0 } else { -1.0 } * (1.0 - i as f64 / (2.0 * n as f64)),
        );
        let a = Array2::from_diag(&d);
        let cfg = PowerConfig {
            tol: 1e-8,
            relative_change_tol: Some(1e-3),
            max_iterations: 300,
            ..Default::default()
        };
        let r = power_iteration(&a, &cfg).unwrap();
        assert_eq!(r.stop, PowerStop::RelativeChange);
        assert!(r.value.abs() < 0.9, "stalled value {}", r.value);
        assert!(r.residual > 1e-2);
        let r = power_iteration(
            &a,
            &PowerConfig {
                relative_change_tol: None,
                ..cfg
            },
        )
        .unwrap();
        assert_ne!(r.stop, PowerStop::RelativeChange);
    }

    #[test]
    fn bad_input() {
        let a = Array2::<f64>::eye(3);
        assert!(deflated_power_iteration(&a, 4, &PowerConfig::default()).is_err());
        assert!(power_iteration(
            &a,
            &PowerConfig {
                max_iterations: 0,
                ..Default::default()
            }
        )
        .is_err());
        assert!(power_iteration(
            &a,
            &PowerConfig {
                tol: f64::NAN,
                ..Default::default()
            }
        )
        .is_err());
        assert!(power_iteration(
            &a,
            &PowerConfig {
                start: Some(Array1::zeros(3)),
                ..Default::default()
            }
        )
        .is_err());
        assert!(power_iteration(
            &a,
            &PowerConfig {
                start: Some(Array1::ones(2)),
                ..Default::default()
            }
        )
        .is_err());
    }
}
