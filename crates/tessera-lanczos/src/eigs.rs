//! A few extreme eigenpairs of a symmetric operator by thick-restart Lanczos (Wu & Simon,
//! 2000), the restarted scheme that is mathematically equivalent to ARPACK's implicitly
//! restarted Lanczos (Sorensen, 1992; Lehoucq, Sorensen & Yang, 1998) but simpler: after each
//! cycle the wanted Ritz vectors (and a few of their neighbours) are kept, the residual
//! vector is appended, and the Lanczos recurrence continues with full reorthogonalisation.

use ndarray::{s, Array1, Array2, ArrayView1, Axis};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tessera_core::RejectInput;

use crate::error::{Error, Result};
use crate::operator::{LinearOperator, Prepared};
use crate::tridiagonal::{householder_tridiagonalise, tridiagonal_eigen, EigenvectorMode};
use crate::util::{
    apply_checked, cgs2, check_finite, check_operator, check_tolerance, gaussian, norm,
};
use crate::Float;

/// Which end of the spectrum [`top_eigenpairs`] looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// Largest eigenvalues (ARPACK `'LA'`), returned in descending order.
    LargestAlgebraic,
    /// Smallest eigenvalues (`'SA'`), returned in ascending order.
    SmallestAlgebraic,
    /// Largest in absolute value (`'LM'`), returned by descending magnitude.
    LargestMagnitude,
}

impl Which {
    /// Indices of `theta` ordered from most to least wanted.
    fn order<F: Float>(self, theta: &Array1<F>) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..theta.len()).collect();
        let key = |i: usize| match self {
            Which::LargestAlgebraic => -theta[i],
            Which::SmallestAlgebraic => theta[i],
            Which::LargestMagnitude => -theta[i].abs(),
        };
        idx.sort_by(|&a, &b| key(a).partial_cmp(&key(b)).expect("finite Ritz values"));
        idx
    }
}

/// Configuration of [`TopEigen`].
#[derive(Debug, Clone)]
pub struct TopEigenConfig<F> {
    /// Number of eigenpairs `k ≥ 1` (at most `n`).
    pub k: usize,
    /// Which end of the spectrum.
    pub which: Which,
    /// Relative residual tolerance: every returned pair satisfies
    /// `‖A·x − θ·x‖ = |β_m·s_{m,i}| ≤ tol·max(|θ|, ε^{2/3}·‖T‖)` (ARPACK's test). `0` means `ε`.
    pub tol: F,
    /// Lanczos basis size `m` per cycle; `None` chooses `max(2k + 1, 30)` (scipy's `ncv`
    /// default is `max(2k + 1, 20)`; 30 saves ~5 % of the products on hard spectra), capped
    /// at `n`. Must exceed `k` when given.
    pub basis_size: Option<usize>,
    /// Budget of operator applications before giving up with [`Error::NotConverged`];
    /// `None` = `max(100·m, 10·n)`.
    pub max_matvecs: Option<usize>,
    /// Seed of the random start vector (ignored when `start` is given).
    pub seed: u64,
    /// Start vector (any non-zero vector; normalised internally).
    pub start: Option<Array1<F>>,
}

impl<F: Float> TopEigenConfig<F> {
    /// `k` eigenpairs at the `which` end with tolerance `tol`, other fields default.
    pub fn new(k: usize, which: Which, tol: F) -> Self {
        Self {
            k,
            which,
            tol,
            basis_size: None,
            max_matvecs: None,
            seed: 0x5EED_1A9C,
            start: None,
        }
    }
}

/// Eigenpairs found by [`top_eigenpairs`].
#[derive(Debug, Clone)]
pub struct EigenPairs<F> {
    /// Eigenvalues in the order of [`Which`].
    pub values: Array1<F>,
    /// Unit eigenvectors as columns (`n × k`).
    pub vectors: Array2<F>,
    /// Residual norms `‖A·x_i − θ_i·x_i‖` (= `|β_m·s_{m,i}|`).
    pub residuals: Array1<F>,
    /// Operator applications spent.
    pub matvecs: usize,
    /// Restarts performed.
    pub restarts: usize,
}

/// A checked top-eigenpair plan.
#[derive(Debug, Clone)]
pub struct TopEigen<F> {
    config: TopEigenConfig<F>,
}

/// The `k` eigenpairs of the symmetric `op` at the `which` end of the spectrum, each with
/// relative residual at most `tol` (see [`TopEigenConfig::tol`]).
///
/// ```
/// use ndarray::{Array1, Array2};
/// use tessera_lanczos::{top_eigenpairs, Which};
/// let a = Array2::from_diag(&Array1::linspace(1.0f64, 100.0, 100));
/// let pairs = top_eigenpairs(&a, 3, Which::LargestAlgebraic, 1e-10).unwrap();
/// assert!((pairs.values[0] - 100.0).abs() < 1e-8 && (pairs.values[2] - 98.0).abs() < 1e-8);
/// ```
pub fn top_eigenpairs<F: Float, O: LinearOperator<F> + ?Sized>(
    op: &O,
    k: usize,
    which: Which,
    tol: F,
) -> Result<EigenPairs<F>> {
    TopEigen::new(TopEigenConfig::new(k, which, tol))?.compute(op)
}

impl<F: Float> TopEigen<F> {
    /// Checks the operator-independent parts of the configuration.
    pub fn new(config: TopEigenConfig<F>) -> Result<Self> {
        if config.k == 0 {
            return Err(Error::invalid(
                "k",
                0,
                "at least one eigenpair must be requested",
            ));
        }
        check_tolerance("tol", config.tol)?;
        if let Some(m) = config.basis_size {
            if m <= config.k {
                return Err(Error::invalid(
                    "basis_size",
                    m,
                    format!("must exceed k = {}", config.k),
                ));
            }
        }
        if config.max_matvecs == Some(0) {
            return Err(Error::invalid("max_matvecs", 0, "must be ≥ 1"));
        }
        if let Some(s) = &config.start {
            check_finite("start", s.iter())?;
            if norm(s.view()) == F::zero() {
                return Err(Error::invalid(
                    "start",
                    "the zero vector",
                    "must be non-zero",
                ));
            }
        }
        Ok(Self { config })
    }

    /// Runs thick-restart Lanczos on `op`.
    pub fn compute<O: LinearOperator<F> + ?Sized>(&self, op: &O) -> Result<EigenPairs<F>> {
        let n = check_operator(op)?;
        let cfg = &self.config;
        let k = cfg.k;
        if k > n {
            return Err(Error::invalid(
                "k",
                k,
                format!("must not exceed the dimension n = {n}"),
            ));
        }
        let m = cfg.basis_size.unwrap_or((2 * k + 1).max(30)).min(n);
        let max_matvecs = cfg.max_matvecs.unwrap_or((100 * m).max(10 * n));
        let tol = if cfg.tol == F::zero() {
            F::epsilon()
        } else {
            cfg.tol
        };
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let start = match &cfg.start {
            Some(s) if s.len() != n => {
                return Err(Error::shape(
                    "start",
                    format!("length {}", n),
                    format!("length {}", s.len()),
                ))
            }
            Some(s) => s.clone(),
            None => gaussian(n, &mut rng),
        };
        // Asked once the input is known to be valid: a dense matrix checks its symmetry here.
        let op = &Prepared::new(op);
        let breakdown_tol = F::from_f64_rounded(100.0) * F::epsilon();
        let eps23 = F::epsilon().powf(F::from_f64_rounded(2.0 / 3.0));

        // Rows 0..m are the basis, row m the next (residual) direction.
        let mut basis = Array2::<F>::zeros((m + 1, n));
        let s_norm = norm(start.view());
        basis.row_mut(0).assign(&start.mapv(|v| v / s_norm));
        // The projection VᵀAV is kept tridiagonal (restarts re-tridiagonalise the kept
        // block), so every check is a tridiagonal eigenproblem.
        let mut projected = Tridiagonal::new(m);
        let mut first_new = 0;
        let mut matvecs = 0;
        let mut restarts = 0;
        let mut norm_estimate = F::zero();
        let mut w = Array1::zeros(n);
        let finish = |basis: &Array2<F>, a: &Assessment<F>, matvecs: usize, restarts: usize| {
            let wanted = &a.order[..k];
            EigenPairs {
                values: Array1::from_iter(wanted.iter().map(|&i| a.theta[i])),
                vectors: basis
                    .slice_axis(Axis(0), (0..a.size).into())
                    .t()
                    .dot(&a.vectors().select(Axis(1), wanted)),
                residuals: Array1::from_iter(wanted.iter().map(|&i| a.residuals[i])),
                matvecs,
                restarts,
            }
        };
        let criterion = Criterion {
            which: cfg.which,
            k,
            tol,
            eps23,
        };
        loop {
            // Extend the basis to m vectors (or to n, where the Krylov space is complete).
            let mut residual_beta = F::zero();
            let mut size = m;
            for j in first_new..m {
                matvecs += 1;
                apply_checked(op, basis.row(j), w.view_mut(), matvecs)?;
                let h = cgs2(basis.slice_axis(Axis(0), (0..=j).into()), &mut w);
                projected.diag[j] = h[j];
                let beta = norm(w.view());
                let coupling_before = if j > 0 {
                    projected.off[j - 1].abs()
                } else {
                    F::zero()
                };
                norm_estimate = norm_estimate.max(coupling_before + h[j].abs() + beta);
                if j + 1 == n {
                    // The basis spans the whole space: the projection is exact.
                    size = j + 1;
                    break;
                }
                let coupled = beta > breakdown_tol * norm_estimate;
                let next = if coupled {
                    w.mapv(|v| v / beta)
                } else {
                    // Invariant subspace: continue with a fresh direction, uncoupled.
                    fresh_direction(basis.slice_axis(Axis(0), (0..=j).into()), &mut rng)
                };
                basis.row_mut(j + 1).assign(&next);
                let beta = if coupled { beta } else { F::zero() };
                if j + 1 < m {
                    projected.off[j] = beta;
                    // Early exit: once the basis holds 2k vectors, test the Ritz pairs after
                    // every step. Ritz values and last eigenvector components of the
                    // tridiagonal projection cost O(j²), far less than a product with A; the
                    // vectors are formed only when the test passes.
                    if coupled && j + 1 >= 2 * k {
                        let size = j + 1;
                        let quick =
                            criterion.assess(&projected, size, beta, norm_estimate, false)?;
                        if quick.n_converged == k {
                            let a =
                                criterion.assess(&projected, size, beta, norm_estimate, true)?;
                            return Ok(finish(&basis, &a, matvecs, restarts));
                        }
                    }
                } else {
                    residual_beta = beta;
                }
            }

            let a = criterion.assess(&projected, size, residual_beta, norm_estimate, true)?;
            if a.n_converged == k || size == n {
                return Ok(finish(&basis, &a, matvecs, restarts));
            }
            if matvecs >= max_matvecs {
                return Err(Error::NotConverged {
                    method: "top_eigenpairs (thick-restart Lanczos)",
                    matvecs,
                    worst_residual: a.worst_relative_residual.to_string(),
                    tolerance: tol.to_string(),
                });
            }

            // Thick restart: keep the p most wanted Ritz vectors, append the residual vector.
            // The kept block diag(θ) with couplings c_i = β·s_{m,i} to the residual is an
            // arrowhead; an orthogonal change of basis Q inside the kept block makes it
            // tridiagonal with a single coupling ‖c‖ to the residual, so the projection stays
            // tridiagonal. Q is folded into the combination of basis rows at no O(n) cost.
            let keep = keep_count(k, m, a.n_converged);
            let kept = &a.order[..keep];
            let s = a.vectors();
            let theta: Vec<F> = kept.iter().map(|&i| a.theta[i]).collect();
            let couplings: Vec<F> = kept
                .iter()
                .map(|&i| residual_beta * s[[size - 1, i]])
                .collect();
            let (diag, off, rotation) = tridiagonalise_arrowhead(&theta, &couplings);
            let combination = s.select(Axis(1), kept).dot(&rotation);
            let new_rows = combination
                .t()
                .dot(&basis.slice_axis(Axis(0), (0..size).into()));
            let residual_row = basis.row(m).to_owned();
            basis
                .slice_axis_mut(Axis(0), (0..keep).into())
                .assign(&new_rows);
            basis.row_mut(keep).assign(&residual_row);
            projected.diag[..keep].copy_from_slice(&diag);
            projected.off[..keep].copy_from_slice(&off);
            first_new = keep;
            restarts += 1;
        }
    }
}

/// A symmetric tridiagonal matrix of at most `m` rows: `diag[i]`, and `off[i]` coupling
/// `i` and `i + 1`.
struct Tridiagonal<F> {
    diag: Vec<F>,
    off: Vec<F>,
}

impl<F: Float> Tridiagonal<F> {
    fn new(m: usize) -> Self {
        Self {
            diag: vec![F::zero(); m],
            off: vec![F::zero(); m],
        }
    }
}

/// For the arrowhead `[[diag(θ), c], [cᵀ, ·]]` of a thick restart: an orthogonal `Q` (`p × p`)
/// such that `Qᵀ·diag(θ)·Q` is tridiagonal (`diag`, `off[..p−1]`) and `Qᵀc = off[p−1]·e_p`,
/// i.e. only the last kept vector couples to the residual. Householder reduction of the
/// arrowhead with the residual ordered first (no reflector touches that index), then the
/// order reversed.
fn tridiagonalise_arrowhead<F: Float>(theta: &[F], couplings: &[F]) -> (Vec<F>, Vec<F>, Array2<F>) {
    let p = theta.len();
    let mut arrow = Array2::<F>::zeros((p + 1, p + 1));
    for i in 0..p {
        arrow[[i + 1, i + 1]] = theta[i];
        arrow[[i + 1, 0]] = couplings[i];
        arrow[[0, i + 1]] = couplings[i];
    }
    let (d, e, q) = householder_tridiagonalise(arrow.view());
    // Householder index i ≥ 1 becomes kept position p − i; index 0 (the residual) comes last.
    let diag = (0..p).map(|r| d[p - r]).collect();
    let off = (0..p).map(|r| e[p - 1 - r]).collect();
    let rotation = Array2::from_shape_fn((p, p), |(t, r)| q[[t + 1, p - r]]);
    (diag, off, rotation)
}

/// The acceptance test shared by the early and the end-of-cycle checks.
struct Criterion<F> {
    which: Which,
    k: usize,
    tol: F,
    eps23: F,
}

/// Ritz values (and, when asked for, vectors) of the leading `size × size` projection and
/// their residuals.
struct Assessment<F> {
    size: usize,
    theta: Array1<F>,
    vectors: Option<Array2<F>>,
    order: Vec<usize>,
    residuals: Array1<F>,
    n_converged: usize,
    worst_relative_residual: F,
}

impl<F> Assessment<F> {
    fn vectors(&self) -> &Array2<F> {
        self.vectors
            .as_ref()
            .expect("assessments that feed a restart or the result carry vectors")
    }
}

impl<F: Float> Criterion<F> {
    fn assess(
        &self,
        projected: &Tridiagonal<F>,
        size: usize,
        residual_beta: F,
        norm_estimate: F,
        with_vectors: bool,
    ) -> Result<Assessment<F>> {
        let diag = ArrayView1::from(&projected.diag[..size]);
        let off = ArrayView1::from(&projected.off[..size - 1]);
        let (theta, last, vectors) = if with_vectors {
            let eig = tridiagonal_eigen(diag, off, EigenvectorMode::Full)?;
            let vectors = eig.vectors.expect("vectors were requested");
            (eig.values, vectors.row(size - 1).to_owned(), Some(vectors))
        } else {
            // The last components of T are the first components of T in reversed order.
            let eig = tridiagonal_eigen(
                diag.slice(s![..;-1]),
                off.slice(s![..;-1]),
                EigenvectorMode::FirstComponents,
            )?;
            let last = eig
                .first_components
                .expect("first components were requested");
            (eig.values, last, None)
        };
        let order = self.which.order(&theta);
        let residuals = last.mapv(|s| (residual_beta * s).abs());
        let scale = |i: usize| theta[i].abs().max(self.eps23 * norm_estimate);
        let wanted = &order[..self.k.min(size)];
        let n_converged = wanted
            .iter()
            .filter(|&&i| residuals[i] <= self.tol * scale(i))
            .count();
        let worst_relative_residual = wanted
            .iter()
            .map(|&i| residuals[i] / scale(i))
            .fold(F::zero(), F::max);
        Ok(Assessment {
            size,
            theta,
            vectors,
            order,
            residuals,
            n_converged,
            worst_relative_residual,
        })
    }
}

/// How many Ritz vectors a thick restart keeps: the `k` wanted plus half of the remaining
/// room, and more once some have converged (so converged vectors stop costing room), never
/// the whole basis.
fn keep_count(k: usize, m: usize, n_converged: usize) -> usize {
    let extra = (m - k) / 2 + n_converged.min((m - k) / 4);
    (k + extra).min(m - 1).max(k)
}

/// A random unit vector orthogonal to the rows of `basis` (which has fewer rows than columns).
fn fresh_direction<F: Float>(basis: ndarray::ArrayView2<'_, F>, rng: &mut ChaCha8Rng) -> Array1<F> {
    loop {
        let mut r = gaussian(basis.ncols(), rng);
        let before = norm(r.view());
        cgs2(basis, &mut r);
        let after = norm(r.view());
        // After two Gram–Schmidt passes any remainder well above rounding is a valid new
        // direction; a vanishing one (probability zero) is simply redrawn.
        if after > F::from_f64_rounded(1e-6) * before {
            return r.mapv(|v| v / after);
        }
    }
}

/// `‖A·x − θ·x‖` for a claimed eigenpair (one operator application), for checking results.
/// A non-finite `theta` or `x` is an error (never a residual of 0).
pub fn eigen_residual<F: Float, O: LinearOperator<F> + ?Sized>(
    op: &O,
    theta: F,
    x: ArrayView1<'_, F>,
) -> Result<F> {
    let n = check_operator(op)?;
    tessera_core::check::finite_scalar("theta", theta.to_f64_exact())?;
    tessera_core::check::finite("x", &x)?;
    if x.len() != n {
        return Err(Error::shape(
            "x",
            format!("length {}", n),
            format!("length {}", x.len()),
        ));
    }
    let mut y = Array1::zeros(n);
    apply_checked(op, x, y.view_mut(), 1)?;
    y.scaled_add(-theta, &x);
    Ok(norm(y.view()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operator::FnOperator;
    use approx::assert_abs_diff_eq;
    use ndarray::{ArrayView1, ArrayViewMut1};

    #[test]
    fn diagonal_all_ends() {
        let d = Array1::from_shape_fn(300, |i| {
            (i as f64 - 150.0) * 0.01 + if i == 3 { -5.0 } else { 0.0 }
        });
        let a = Array2::from_diag(&d);
        let mut sorted = d.to_vec();
        sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let la = top_eigenpairs(&a, 4, Which::LargestAlgebraic, 1e-10).unwrap();
        for i in 0..4 {
            assert_abs_diff_eq!(la.values[i], sorted[299 - i], epsilon = 1e-9);
            let r = eigen_residual(&a, la.values[i], la.vectors.column(i)).unwrap();
            assert!(r <= 1e-10 * la.values[i].abs() * 1.01 + 1e-14, "{r}");
            assert_abs_diff_eq!(r, la.residuals[i], epsilon = 1e-9);
        }
        let sa = top_eigenpairs(&a, 2, Which::SmallestAlgebraic, 1e-10).unwrap();
        assert_abs_diff_eq!(sa.values[0], -6.47, epsilon = 1e-9);
        assert_abs_diff_eq!(sa.values[1], sorted[1], epsilon = 1e-9);
        let lm = top_eigenpairs(&a, 1, Which::LargestMagnitude, 1e-10).unwrap();
        assert_abs_diff_eq!(lm.values[0], -6.47, epsilon = 1e-9);
    }

    #[test]
    fn arrowhead_becomes_tridiagonal_with_one_coupling() {
        let theta = [3.0f64, -1.0, 0.5, 2.0, 2.0 + 1e-9];
        let couplings = [0.3f64, -1e-12, 0.7, 0.2, 1e-3];
        let (diag, off, q) = tridiagonalise_arrowhead(&theta, &couplings);
        let p = theta.len();
        let t = q
            .t()
            .dot(&Array2::from_diag(&Array1::from(theta.to_vec())))
            .dot(&q);
        for i in 0..p {
            for j in 0..p {
                let want = match i.abs_diff(j) {
                    0 => diag[i],
                    1 => off[i.min(j)],
                    _ => 0.0,
                };
                assert_abs_diff_eq!(t[[i, j]], want, epsilon = 1e-14);
            }
        }
        let qc = q.t().dot(&Array1::from(couplings.to_vec()));
        let c_norm = couplings.iter().map(|c| c * c).sum::<f64>().sqrt();
        for i in 0..p - 1 {
            assert_abs_diff_eq!(qc[i], 0.0, epsilon = 1e-15);
        }
        assert_abs_diff_eq!(qc[p - 1], off[p - 1], epsilon = 1e-15);
        assert_abs_diff_eq!(off[p - 1].abs(), c_norm, epsilon = 1e-15);
        assert_abs_diff_eq!(q.t().dot(&q), Array2::<f64>::eye(p), epsilon = 1e-14);
    }

    #[test]
    fn many_restarts_with_a_small_basis() {
        let d = Array1::from_shape_fn(400, |i| (i as f64 * 0.37).sin() * 3.0 + i as f64 * 1e-3);
        let a = Array2::from_diag(&d);
        let mut sorted = d.to_vec();
        sorted.sort_by(|a, b| b.partial_cmp(a).unwrap());
        let mut config = TopEigenConfig::new(3, Which::LargestAlgebraic, 1e-10);
        config.basis_size = Some(8);
        let pairs = TopEigen::new(config).unwrap().compute(&a).unwrap();
        assert!(pairs.restarts > 5, "restarts {}", pairs.restarts);
        for i in 0..3 {
            assert_abs_diff_eq!(pairs.values[i], sorted[i], epsilon = 1e-9);
            let r = eigen_residual(&a, pairs.values[i], pairs.vectors.column(i)).unwrap();
            assert!(r <= 1e-10 * sorted[i].abs() * 1.01 + 1e-14, "{r}");
            assert_abs_diff_eq!(r, pairs.residuals[i], epsilon = 1e-9);
        }
        let gram = pairs.vectors.t().dot(&pairs.vectors);
        assert_abs_diff_eq!(gram, Array2::<f64>::eye(3), epsilon = 1e-12);
    }

    #[test]
    fn small_operator_complete_space() {
        let a = ndarray::arr2(&[[2.0f32, 1.0], [1.0, 2.0]]);
        let p = top_eigenpairs(&a, 2, Which::LargestAlgebraic, 1e-6).unwrap();
        assert_abs_diff_eq!(p.values[0], 3.0, epsilon = 1e-5);
        assert_abs_diff_eq!(p.values[1], 1.0, epsilon = 1e-5);
    }

    #[test]
    fn bad_input() {
        let a = Array2::<f64>::eye(4);
        assert!(top_eigenpairs(&a, 0, Which::LargestAlgebraic, 1e-8)
            .unwrap_err()
            .to_string()
            .contains("`k`"));
        assert!(top_eigenpairs(&a, 5, Which::LargestAlgebraic, 1e-8)
            .unwrap_err()
            .to_string()
            .contains("n = 4"));
        assert!(top_eigenpairs(&a, 1, Which::LargestAlgebraic, -1.0).is_err());
        assert!(top_eigenpairs(
            &Array2::<f64>::zeros((3, 4)),
            1,
            Which::LargestAlgebraic,
            1e-8
        )
        .is_err());
        let mut c = TopEigenConfig::new(2, Which::LargestAlgebraic, 1e-8);
        c.basis_size = Some(2);
        assert!(TopEigen::new(c).is_err());
        let bad = FnOperator::new(50, |_x: ArrayView1<f64>, mut y: ArrayViewMut1<f64>| {
            y.fill(f64::INFINITY)
        })
        .unwrap();
        assert!(matches!(
            top_eigenpairs(&bad, 1, Which::LargestAlgebraic, 1e-8),
            Err(Error::NotConverged { .. }) | Err(Error::NonFiniteOperatorOutput { .. })
        ));
    }
}
