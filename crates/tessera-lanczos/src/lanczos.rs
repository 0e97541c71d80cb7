//! Lanczos tridiagonalisation `A·V_m = V_m·T_m + β_m·v_{m+1}·e_mᵀ` with a choice of
//! reorthogonalisation, breakdown detection, optional basis retention, and a batched variant
//! that runs independent recurrences for many start vectors with one blocked operator
//! product per step (the fast path of stochastic Lanczos quadrature).

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis};
use rayon::prelude::*;
use tessera_core::RejectInput;

use crate::error::{Error, Result};
use crate::operator::{LinearOperator, Prepared};
use crate::tridiagonal::{golub_welsch, tridiagonal_eigen, EigenvectorMode, TridiagonalEigen};
use crate::util::{apply_batch_checked, apply_checked, cgs2, check_finite, check_operator, norm};
use crate::Float;

/// How Lanczos vectors are kept orthogonal in floating point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reorthogonalization {
    /// The plain three-term recurrence (cheapest; loses orthogonality once Ritz values
    /// converge, which duplicates them as "ghosts" but leaves quadrature usable).
    None,
    /// Classical Gram–Schmidt, twice, against the last `q` Lanczos vectors.
    Window(usize),
    /// Classical Gram–Schmidt, twice, against every previous Lanczos vector.
    #[default]
    Full,
}

/// Configuration of a [`Lanczos`] plan.
#[derive(Debug, Clone, Copy)]
pub struct LanczosConfig<F> {
    /// Number of steps `m ≥ 1` (at most `n` are taken: the Krylov space cannot be larger).
    pub steps: usize,
    /// Reorthogonalisation scheme.
    pub reorthogonalization: Reorthogonalization,
    /// Breakdown tolerance: stop when `β_j ≤ tol·max_i(|α_i| + β_i)`; `None` = `100·ε`.
    pub breakdown_tolerance: Option<F>,
    /// Keep the Lanczos vectors (returned as the columns of
    /// [`LanczosDecomposition::basis`]).
    pub keep_basis: bool,
}

impl<F: Float> Default for LanczosConfig<F> {
    fn default() -> Self {
        Self {
            steps: 100,
            reorthogonalization: Reorthogonalization::Full,
            breakdown_tolerance: None,
            keep_basis: false,
        }
    }
}

/// The result of a Lanczos run: the `m × m` tridiagonal `T = tridiag(β, α, β)` (truncated at
/// a breakdown, never padded) and optionally the basis.
#[derive(Debug, Clone)]
pub struct LanczosDecomposition<F> {
    /// Diagonal `α_1 … α_m`.
    pub alpha: Array1<F>,
    /// Off-diagonal `β_1 … β_{m−1}`.
    pub beta: Array1<F>,
    /// `β_m = ‖A·v_m − α_m·v_m − β_{m−1}·v_{m−1}‖` (the coupling to the next vector; tiny at
    /// a breakdown).
    pub residual_norm: F,
    /// Norm of the start vector before normalisation (`√n` for a Rademacher probe).
    pub start_norm: F,
    /// Lanczos vectors as columns (`n × m`) when [`LanczosConfig::keep_basis`] is set.
    pub basis: Option<Array2<F>>,
    /// Whether the run stopped early at an (numerically) invariant subspace.
    pub breakdown: bool,
    /// Operator applications spent (= `m`).
    pub matvecs: usize,
}

impl<F: Float> LanczosDecomposition<F> {
    /// Number of steps taken, the order of `T`.
    pub fn steps(&self) -> usize {
        self.alpha.len()
    }

    /// Eigen-decomposition of `T` (eigenvalues = Ritz values).
    pub fn tridiagonal_eigen(&self, mode: EigenvectorMode) -> Result<TridiagonalEigen<F>> {
        tridiagonal_eigen(self.alpha.view(), self.beta.view(), mode)
    }

    /// Gauss quadrature of the start vector's spectral measure: nodes (Ritz values) and
    /// weights (summing to 1), `vᵀf(A)v ≈ ‖v‖²·Σ_j w_j f(θ_j)`.
    pub fn quadrature(&self) -> Result<(Array1<F>, Array1<F>)> {
        golub_welsch(self.alpha.view(), self.beta.view())
    }
}

/// A Lanczos plan (checked configuration).
///
/// ```
/// use ndarray::{Array1, Array2};
/// use tessera_lanczos::{Lanczos, LanczosConfig};
/// let a = Array2::from_diag(&Array1::linspace(1.0f64, 10.0, 10));
/// let lanczos = Lanczos::new(LanczosConfig { steps: 10, ..Default::default() }).unwrap();
/// let dec = lanczos.run(&a, Array1::ones(10).view()).unwrap();
/// let ritz = dec.tridiagonal_eigen(tessera_lanczos::EigenvectorMode::None).unwrap().values;
/// assert!((ritz[9] - 10.0).abs() < 1e-12);
/// ```
#[derive(Debug, Clone)]
pub struct Lanczos<F> {
    config: LanczosConfig<F>,
    breakdown_tolerance: F,
}

impl<F: Float> Lanczos<F> {
    /// Checks the configuration.
    pub fn new(config: LanczosConfig<F>) -> Result<Self> {
        if config.steps == 0 {
            return Err(Error::invalid(
                "steps",
                0,
                "at least one Lanczos step is needed",
            ));
        }
        if let Reorthogonalization::Window(0) = config.reorthogonalization {
            return Err(Error::invalid(
                "reorthogonalization",
                "Window(0)",
                "the window must hold at least one vector (use None for no reorthogonalisation)",
            ));
        }
        let breakdown_tolerance = config
            .breakdown_tolerance
            .unwrap_or(F::from_f64_rounded(100.0) * F::epsilon());
        if !breakdown_tolerance.is_finite()
            || breakdown_tolerance < F::zero()
            || breakdown_tolerance >= F::one()
        {
            return Err(Error::invalid(
                "breakdown_tolerance",
                breakdown_tolerance,
                "must be finite and in [0, 1)",
            ));
        }
        Ok(Self {
            config,
            breakdown_tolerance,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &LanczosConfig<F> {
        &self.config
    }

    /// Runs Lanczos on `op` from `start` (normalised internally; must be non-zero, finite).
    pub fn run<O: LinearOperator<F> + ?Sized>(
        &self,
        op: &O,
        start: ArrayView1<'_, F>,
    ) -> Result<LanczosDecomposition<F>> {
        let n = check_operator(op)?;
        let mut state = self.start_state(n, start, "start")?;
        let op = &Prepared::new(op);
        let mut w = Array1::zeros(n);
        while !state.done {
            apply_checked(
                op,
                state.current.view(),
                w.view_mut(),
                state.alpha.len() + 1,
            )?;
            state.advance(w.clone(), self.breakdown_tolerance);
        }
        Ok(state.finish())
    }

    /// Runs independent Lanczos recurrences from every column of `starts` (`n × p`), applying
    /// the operator to all still-active vectors at once through
    /// [`LinearOperator::apply_batch`] and advancing the recurrences in parallel.
    pub fn run_batch<O: LinearOperator<F> + ?Sized>(
        &self,
        op: &O,
        starts: ArrayView2<'_, F>,
    ) -> Result<Vec<LanczosDecomposition<F>>> {
        let n = check_operator(op)?;
        if starts.nrows() != n {
            return Err(Error::shape(
                "starts.nrows()",
                format!("length {}", n),
                format!("length {}", starts.nrows()),
            ));
        }
        if starts.ncols() == 0 {
            return Err(Error::invalid(
                "starts.ncols()",
                0,
                "at least one start vector is needed",
            ));
        }
        let mut states = starts
            .axis_iter(Axis(1))
            .map(|s| self.start_state(n, s, "starts"))
            .collect::<Result<Vec<_>>>()?;
        let mut applications = 0;
        loop {
            let active: Vec<usize> = (0..states.len()).filter(|&i| !states[i].done).collect();
            if active.is_empty() {
                break;
            }
            let mut x = Array2::zeros((n, active.len()));
            for (c, &i) in active.iter().enumerate() {
                x.column_mut(c).assign(&states[i].current);
            }
            let mut y = Array2::zeros((n, active.len()));
            apply_batch_checked(op, x.view(), &mut y, applications + 1)?;
            applications += active.len();
            let tol = self.breakdown_tolerance;
            let mut work: Vec<(&mut LanczosState<F>, Array1<F>)> = Vec::with_capacity(active.len());
            let mut c = 0;
            for (i, s) in states.iter_mut().enumerate() {
                if c < active.len() && active[c] == i {
                    work.push((s, y.column(c).to_owned()));
                    c += 1;
                }
            }
            work.into_par_iter().for_each(|(s, w)| s.advance(w, tol));
        }
        Ok(states.into_iter().map(LanczosState::finish).collect())
    }

    fn start_state(
        &self,
        n: usize,
        start: ArrayView1<'_, F>,
        name: &'static str,
    ) -> Result<LanczosState<F>> {
        if start.len() != n {
            return Err(Error::shape(
                name,
                format!("length {}", n),
                format!("length {}", start.len()),
            ));
        }
        check_finite(name, start.iter())?;
        let start_norm = norm(start);
        if start_norm == F::zero() {
            return Err(Error::invalid(
                name,
                "the zero vector",
                "the start vector must be non-zero",
            ));
        }
        let steps = self.config.steps.min(n);
        let (rows, window) = match (self.config.keep_basis, self.config.reorthogonalization) {
            (true, _) | (false, Reorthogonalization::Full) => (steps, None),
            (false, Reorthogonalization::Window(q)) => (q.min(steps), Some(q.min(steps))),
            (false, Reorthogonalization::None) => (0, None),
        };
        let current = start.mapv(|v| v / start_norm);
        let mut stored = Array2::zeros((rows, n));
        if rows > 0 {
            stored.row_mut(0).assign(&current);
        }
        Ok(LanczosState {
            steps,
            reorth: self.config.reorthogonalization,
            keep_basis: self.config.keep_basis,
            window,
            stored,
            previous: None,
            current,
            alpha: Vec::with_capacity(steps),
            beta: Vec::with_capacity(steps),
            norm_estimate: F::zero(),
            residual: F::zero(),
            start_norm,
            breakdown: false,
            done: false,
        })
    }
}

/// One recurrence in progress.
struct LanczosState<F> {
    steps: usize,
    reorth: Reorthogonalization,
    keep_basis: bool,
    /// `Some(q)`: `stored` is a ring buffer of the last `q` vectors (row `j mod q`).
    window: Option<usize>,
    /// Stored Lanczos vectors as rows.
    stored: Array2<F>,
    previous: Option<Array1<F>>,
    current: Array1<F>,
    alpha: Vec<F>,
    beta: Vec<F>,
    norm_estimate: F,
    residual: F,
    start_norm: F,
    breakdown: bool,
    done: bool,
}

impl<F: Float> LanczosState<F> {
    /// One step given `w = A·v_j`.
    fn advance(&mut self, mut w: Array1<F>, breakdown_tolerance: F) {
        let j = self.alpha.len();
        let mut alpha = self.current.dot(&w);
        w.scaled_add(-alpha, &self.current);
        let beta_prev = if j > 0 { self.beta[j - 1] } else { F::zero() };
        if let Some(prev) = &self.previous {
            w.scaled_add(-beta_prev, prev);
        }
        match (self.reorth, self.window) {
            (Reorthogonalization::None, _) => {}
            (_, Some(q)) => {
                let filled = (j + 1).min(q);
                let h = cgs2(self.stored.slice_axis(Axis(0), (0..filled).into()), &mut w);
                alpha += h[j % q];
            }
            (Reorthogonalization::Full, None) => {
                let h = cgs2(self.stored.slice_axis(Axis(0), (0..=j).into()), &mut w);
                alpha += h[j];
            }
            (Reorthogonalization::Window(q), None) => {
                // The whole basis is kept: reorthogonalise against its last q rows.
                let lo = (j + 1).saturating_sub(q);
                let h = cgs2(self.stored.slice_axis(Axis(0), (lo..=j).into()), &mut w);
                alpha += h[j - lo];
            }
        }
        let beta = norm(w.view());
        self.alpha.push(alpha);
        self.norm_estimate = self
            .norm_estimate
            .max(alpha.abs() + beta_prev)
            .max(alpha.abs() + beta);
        if beta <= breakdown_tolerance * self.norm_estimate {
            self.breakdown = true;
            self.residual = beta;
            self.done = true;
            return;
        }
        if j + 1 == self.steps {
            self.residual = beta;
            self.done = true;
            return;
        }
        self.beta.push(beta);
        w.mapv_inplace(|v| v / beta);
        let next_row = match self.window {
            Some(q) => Some((j + 1) % q),
            None if self.stored.nrows() > 0 => Some(j + 1),
            None => None,
        };
        if let Some(r) = next_row {
            self.stored.row_mut(r).assign(&w);
        }
        self.previous = Some(std::mem::replace(&mut self.current, w));
    }

    fn finish(self) -> LanczosDecomposition<F> {
        let m = self.alpha.len();
        let basis = if self.keep_basis {
            Some(
                self.stored
                    .slice_axis(Axis(0), (0..m).into())
                    .t()
                    .to_owned(),
            )
        } else {
            None
        };
        LanczosDecomposition {
            alpha: Array1::from(self.alpha),
            beta: Array1::from(self.beta),
            residual_norm: self.residual,
            start_norm: self.start_norm,
            basis,
            breakdown: self.breakdown,
            matvecs: m,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operator::FnOperator;
    use approx::assert_abs_diff_eq;
    use ndarray::ArrayViewMut1;

    fn diag_op(d: Array1<f64>) -> Array2<f64> {
        Array2::from_diag(&d)
    }

    #[test]
    fn relation_holds_with_basis() {
        let n = 40;
        let a = Array2::from_shape_fn((n, n), |(i, j)| 1.0 / (1.0 + (i as f64 - j as f64).abs()));
        for reorth in [
            Reorthogonalization::None,
            Reorthogonalization::Window(3),
            Reorthogonalization::Full,
        ] {
            let l = Lanczos::new(LanczosConfig {
                steps: 12,
                reorthogonalization: reorth,
                keep_basis: true,
                ..Default::default()
            })
            .unwrap();
            let start = Array1::from_shape_fn(n, |i| 1.0 + (i as f64).sin());
            let d = l.run(&a, start.view()).unwrap();
            let v = d.basis.as_ref().unwrap();
            assert_eq!(v.dim(), (n, 12));
            // A V − V T has only its last column non-zero (= β_m v_{m+1}).
            let av = a.dot(v);
            let mut t = Array2::zeros((12, 12));
            for i in 0..12 {
                t[[i, i]] = d.alpha[i];
                if i + 1 < 12 {
                    t[[i, i + 1]] = d.beta[i];
                    t[[i + 1, i]] = d.beta[i];
                }
            }
            let r = &av - &v.dot(&t);
            for c in 0..11 {
                for x in r.column(c) {
                    assert_abs_diff_eq!(*x, 0.0, epsilon = 1e-12);
                }
            }
            assert_abs_diff_eq!(norm(r.column(11)), d.residual_norm, epsilon = 1e-10);
            let gram = v.t().dot(v);
            let worst = gram
                .indexed_iter()
                .map(|((i, j), g)| (g - if i == j { 1.0 } else { 0.0 }).abs())
                .fold(0.0, f64::max);
            if reorth == Reorthogonalization::Full {
                assert!(worst < 1e-13, "{worst}");
            }
        }
    }

    #[test]
    fn breakdown_truncates() {
        // Start vector in a 3-dimensional invariant subspace.
        let a = diag_op(Array1::from(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]));
        let start = Array1::from(vec![1.0, 1.0, 1.0, 0.0, 0.0, 0.0]);
        let l = Lanczos::new(LanczosConfig {
            steps: 6,
            ..Default::default()
        })
        .unwrap();
        let d = l.run(&a, start.view()).unwrap();
        assert!(d.breakdown);
        assert_eq!(d.steps(), 3);
        assert_eq!(d.beta.len(), 2);
        let ritz = d.tridiagonal_eigen(EigenvectorMode::None).unwrap().values;
        for (r, e) in ritz.iter().zip([1.0, 2.0, 3.0]) {
            assert_abs_diff_eq!(*r, e, epsilon = 1e-13);
        }
        // Zero operator: breakdown at the first step.
        let z = Array2::<f64>::zeros((4, 4));
        let d = l.run(&z, Array1::ones(4).view()).unwrap();
        assert!(d.breakdown && d.steps() == 1);
    }

    #[test]
    fn batch_matches_single() {
        let n = 30;
        let a = Array2::from_shape_fn((n, n), |(i, j)| {
            ((i + j) as f64).cos() + if i == j { 3.0 } else { 0.0 }
        });
        let a = &a + &a.t();
        let starts = Array2::from_shape_fn((n, 3), |(i, c)| ((i * (c + 2)) as f64).sin() + 0.1);
        for reorth in [
            Reorthogonalization::None,
            Reorthogonalization::Window(4),
            Reorthogonalization::Full,
        ] {
            let l = Lanczos::new(LanczosConfig {
                steps: 15,
                reorthogonalization: reorth,
                ..Default::default()
            })
            .unwrap();
            let batch = l.run_batch(&a, starts.view()).unwrap();
            for c in 0..3 {
                let single = l.run(&a, starts.column(c)).unwrap();
                assert_eq!(single.steps(), batch[c].steps());
                for (x, y) in single.alpha.iter().zip(&batch[c].alpha) {
                    assert_abs_diff_eq!(x, y, epsilon = 1e-10);
                }
            }
        }
    }

    #[test]
    fn bad_input() {
        assert!(Lanczos::<f64>::new(LanczosConfig {
            steps: 0,
            ..Default::default()
        })
        .unwrap_err()
        .to_string()
        .contains("steps"));
        assert!(Lanczos::<f64>::new(LanczosConfig {
            reorthogonalization: Reorthogonalization::Window(0),
            ..Default::default()
        })
        .is_err());
        assert!(Lanczos::<f64>::new(LanczosConfig {
            breakdown_tolerance: Some(f64::NAN),
            ..Default::default()
        })
        .is_err());
        let l = Lanczos::<f64>::new(LanczosConfig::default()).unwrap();
        let a = Array2::<f64>::eye(3);
        assert!(l
            .run(&a, Array1::zeros(3).view())
            .unwrap_err()
            .to_string()
            .contains("non-zero"));
        assert!(l.run(&a, Array1::ones(4).view()).is_err());
        assert!(l
            .run(&Array2::<f64>::zeros((3, 2)), Array1::ones(3).view())
            .is_err());
        let nan_op = FnOperator::new(3, |x: ArrayView1<f64>, mut y: ArrayViewMut1<f64>| {
            y.assign(&x);
            y[1] = f64::NAN;
        })
        .unwrap();
        let e = l.run(&nan_op, Array1::ones(3).view()).unwrap_err();
        assert!(
            matches!(
                e,
                Error::NonFiniteOperatorOutput {
                    application: 1,
                    index: 1,
                    ..
                }
            ),
            "{e}"
        );
        let e = l
            .run_batch(&nan_op, Array2::ones((3, 2)).view())
            .unwrap_err();
        assert!(matches!(e, Error::NonFiniteOperatorOutput { .. }), "{e}");
    }
}
