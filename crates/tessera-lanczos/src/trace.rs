//! Stochastic trace estimation: Hutchinson (Rademacher probes) with its standard error,
//! Hutch++ (Meyer, Musco, Musco & Woodruff, 2021), and stochastic Lanczos quadrature (SLQ,
//! Ubaru, Chen & Saad, 2017) for `tr f(A)` — log-determinants, traces of inverses, any `f` —
//! with imate's adaptive stop rule: draw probes until `z·SE < atol + rtol·|mean|`.

use ndarray::{Array1, Array2, Axis};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tessera_core::RejectInput;

use crate::density::SpectralDensity;
use crate::error::{Error, Result};
use crate::lanczos::{Lanczos, LanczosConfig, Reorthogonalization};
use crate::operator::LinearOperator;
use crate::util::{
    apply_batch_checked, cgs2, check_operator, check_tolerance, gaussian, norm, rademacher,
};
use crate::Float;

/// The distribution of random probe vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Probe {
    /// Entries ±1 with equal probability (minimum-variance choice for Hutchinson).
    #[default]
    Rademacher,
    /// Standard normal entries.
    Gaussian,
}

impl Probe {
    fn matrix<F: Float>(self, n: usize, count: usize, rng: &mut ChaCha8Rng) -> Array2<F> {
        let mut z = Array2::zeros((n, count));
        for mut col in z.axis_iter_mut(Axis(1)) {
            col.assign(&match self {
                Probe::Rademacher => rademacher(n, rng),
                Probe::Gaussian => gaussian(n, rng),
            });
        }
        z
    }
}

/// When to stop drawing probes: after at least `min_probes`, as soon as
/// `z·SE ≤ atol + rtol·|mean|`, and at the latest after `max_probes`. Probes are drawn
/// `batch` at a time (one blocked operator product per step for the whole batch).
#[derive(Debug, Clone, Copy)]
pub struct StopRule<F> {
    /// Absolute error target.
    pub atol: F,
    /// Relative error target.
    pub rtol: F,
    /// Normal quantile of the confidence level (1.96 for 95 %).
    pub z: F,
    /// Minimum number of probes (≥ 2: the standard error needs two samples).
    pub min_probes: usize,
    /// Maximum number of probes.
    pub max_probes: usize,
    /// Probes per round.
    pub batch: usize,
}

impl<F: Float> Default for StopRule<F> {
    /// imate's defaults: rtol 1 %, 95 % confidence, 10 to 50 probes.
    fn default() -> Self {
        Self {
            atol: F::zero(),
            rtol: F::from_f64_rounded(1e-2),
            z: F::from_f64_rounded(1.959_963_984_540_054),
            min_probes: 10,
            max_probes: 50,
            batch: 10,
        }
    }
}

impl<F: Float> StopRule<F> {
    /// A rule that draws exactly `probes` probes in one batch.
    pub fn fixed(probes: usize) -> Self {
        Self {
            atol: F::zero(),
            rtol: F::zero(),
            z: F::one(),
            min_probes: probes,
            max_probes: probes,
            batch: probes,
        }
    }

    fn check(&self) -> Result<()> {
        check_tolerance("atol", self.atol)?;
        check_tolerance("rtol", self.rtol)?;
        check_tolerance("z", self.z)?;
        if self.min_probes < 2 {
            return Err(Error::invalid(
                "min_probes",
                self.min_probes,
                "must be ≥ 2 (the standard error needs two probes)",
            ));
        }
        if self.max_probes < self.min_probes {
            return Err(Error::invalid(
                "max_probes",
                self.max_probes,
                format!("must be ≥ min_probes = {}", self.min_probes),
            ));
        }
        if self.batch == 0 {
            return Err(Error::invalid("batch", 0, "must be ≥ 1"));
        }
        Ok(())
    }

    fn satisfied(&self, samples: &[F]) -> bool {
        let (mean, se) = mean_and_standard_error(samples);
        samples.len() >= self.min_probes && self.z * se <= self.atol + self.rtol * mean.abs()
    }

    /// Runs `draw(count)` (returning `count` samples) in rounds until the rule is met.
    fn run(&self, mut draw: impl FnMut(usize) -> Result<Vec<F>>) -> Result<(Vec<F>, bool)> {
        let mut samples: Vec<F> = Vec::with_capacity(self.max_probes);
        while samples.len() < self.max_probes {
            let want = self
                .batch
                .max(self.min_probes.saturating_sub(samples.len()))
                .min(self.max_probes - samples.len());
            samples.extend(draw(want)?);
            if self.satisfied(&samples) {
                return Ok((samples, true));
            }
        }
        Ok((samples, false))
    }
}

/// Sample mean and its standard error `s/√N` (sample standard deviation `s`, `N − 1` in the
/// denominator); `SE = ∞` for fewer than two samples.
pub fn mean_and_standard_error<F: Float>(samples: &[F]) -> (F, F) {
    let count = samples.len();
    if count == 0 {
        return (F::nan(), F::infinity());
    }
    let nf = F::from_count(count);
    let mean = samples.iter().copied().sum::<F>() / nf;
    if count < 2 {
        return (mean, F::infinity());
    }
    let var =
        samples.iter().map(|&x| (x - mean) * (x - mean)).sum::<F>() / F::from_count(count - 1);
    (mean, (var / nf).sqrt())
}

/// A stochastic trace estimate.
#[derive(Debug, Clone)]
pub struct TraceEstimate<F> {
    /// The estimate of the trace.
    pub value: F,
    /// Its standard error (sample standard deviation of the per-probe estimates over √probes).
    pub std_error: F,
    /// Probes used.
    pub probes: usize,
    /// Operator applications spent.
    pub matvecs: usize,
    /// Whether the stop rule was met (false: `max_probes` ran out first).
    pub converged: bool,
    /// The per-probe estimates.
    pub samples: Vec<F>,
}

impl<F: Float> TraceEstimate<F> {
    /// The estimate whose value is the mean of the per-probe `samples`.
    fn from_samples(samples: Vec<F>, matvecs: usize, converged: bool) -> Self {
        let (value, std_error) = mean_and_standard_error(&samples);
        TraceEstimate {
            value,
            std_error,
            probes: samples.len(),
            matvecs,
            converged,
            samples,
        }
    }
}

/// Hutchinson's estimator `tr A ≈ (1/N)·Σ zᵢᵀA·zᵢ` with Rademacher probes (Hutchinson, 1989);
/// for symmetric `A` its variance per probe is `2(‖A‖²_F − Σ a_ii²)`.
///
/// ```
/// use ndarray::{Array1, Array2};
/// use tessera_lanczos::{hutchinson, StopRule};
/// let a = Array2::from_diag(&Array1::linspace(1.0f64, 2.0, 100)); // diagonal: exact for Rademacher
/// let t = hutchinson(&a, &StopRule::fixed(4), 7).unwrap();
/// assert!((t.value - 150.0).abs() < 1e-9 && t.std_error < 1e-9);
/// ```
pub fn hutchinson<F: Float, O: LinearOperator<F> + ?Sized>(
    op: &O,
    rule: &StopRule<F>,
    seed: u64,
) -> Result<TraceEstimate<F>> {
    let n = check_operator(op)?;
    rule.check()?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut matvecs = 0;
    let (samples, converged) = rule.run(|count| {
        let z: Array2<F> = Probe::Rademacher.matrix(n, count, &mut rng);
        let mut az = Array2::zeros((n, count));
        apply_batch_checked(op, z.view(), &mut az, matvecs + 1)?;
        matvecs += count;
        Ok((0..count).map(|c| z.column(c).dot(&az.column(c))).collect())
    })?;
    Ok(TraceEstimate::from_samples(samples, matvecs, converged))
}

/// Hutch++ with a budget of `matvecs` operator applications (a multiple of 3, ≥ 3): a
/// sketch `Q = orth(A·S)` of `matvecs/3` Rademacher columns takes the top of the spectrum
/// exactly, `tr(QᵀAQ)`, and Hutchinson with `matvecs/3` probes estimates the deflated rest,
/// `tr((I−QQᵀ)A(I−QQᵀ))`. Error `O(1/matvecs)` instead of `O(1/√matvecs)` for matrices with
/// decaying spectra (Meyer et al., 2021). `std_error` is the Hutchinson part's.
pub fn hutch_plus_plus<F: Float, O: LinearOperator<F> + ?Sized>(
    op: &O,
    matvecs: usize,
    seed: u64,
) -> Result<TraceEstimate<F>> {
    let n = check_operator(op)?;
    if matvecs < 3 || matvecs % 3 != 0 {
        return Err(Error::invalid(
            "matvecs",
            matvecs,
            "must be a positive multiple of 3",
        ));
    }
    let s = matvecs / 3;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let sketch: Array2<F> = Probe::Rademacher.matrix(n, s, &mut rng);
    let mut y = Array2::zeros((n, s));
    apply_batch_checked(op, sketch.view(), &mut y, 1)?;
    // Orthonormal basis of range(A·S) as rows, dropping numerically dependent columns.
    let mut q = Array2::<F>::zeros((0, n));
    let drop_below = F::from_f64_rounded(1e3) * F::epsilon();
    for col in y.axis_iter(Axis(1)) {
        let mut v = col.to_owned();
        let before = norm(v.view());
        cgs2(q.view(), &mut v);
        let after = norm(v.view());
        if before > F::zero() && after > drop_below * before {
            q.push(Axis(0), v.mapv(|x| x / after).view())
                .expect("row length matches");
        }
    }
    let rank = q.nrows();
    let mut aq = Array2::zeros((n, rank));
    apply_batch_checked(op, q.t(), &mut aq, s + 1)?;
    let top: F = (0..rank).map(|c| q.row(c).dot(&aq.column(c))).sum();
    let mut g: Array2<F> = Probe::Rademacher.matrix(n, s, &mut rng);
    // G ← (I − QQᵀ)G
    let coeff = q.dot(&g);
    g -= &q.t().dot(&coeff);
    let mut ag = Array2::zeros((n, s));
    apply_batch_checked(op, g.view(), &mut ag, s + rank + 1)?;
    let samples: Vec<F> = (0..s).map(|c| g.column(c).dot(&ag.column(c))).collect();
    let (rest, se) = mean_and_standard_error(&samples);
    Ok(TraceEstimate {
        value: top + rest,
        std_error: if s >= 2 { se } else { F::infinity() },
        probes: s,
        matvecs: s + rank + s,
        converged: true,
        samples,
    })
}

/// Configuration of [`Slq`].
#[derive(Debug, Clone, Copy)]
pub struct SlqConfig<F> {
    /// Lanczos steps per probe `m` (80–100 is typical for densities).
    pub steps: usize,
    /// Reorthogonalisation of each probe's recurrence.
    pub reorthogonalization: Reorthogonalization,
    /// Probe distribution.
    pub probe: Probe,
    /// When to stop drawing probes (for densities: [`StopRule::fixed`]).
    pub rule: StopRule<F>,
    /// Seed of the probes (every call on the same plan draws the same probes, so e.g.
    /// `trace` and `log_det` share their sampling noise).
    pub seed: u64,
}

impl<F: Float> Default for SlqConfig<F> {
    /// `m = 100`, full reorthogonalisation, Rademacher probes, 10 probes (PyHessian's density
    /// setting).
    fn default() -> Self {
        Self {
            steps: 100,
            reorthogonalization: Reorthogonalization::Full,
            probe: Probe::Rademacher,
            rule: StopRule::fixed(10),
            seed: 0x51C0,
        }
    }
}

/// Stochastic Lanczos quadrature plan:
/// `tr f(A) ≈ (1/N)·Σ_probes ‖z‖²·Σ_j w_j f(θ_j)` with Gauss nodes `θ_j` and weights `w_j`
/// from `m` Lanczos steps started at each probe `z` (for Rademacher probes `‖z‖² = n`).
///
/// ```
/// use ndarray::{Array1, Array2};
/// use tessera_lanczos::{Slq, SlqConfig};
/// let a = Array2::from_diag(&Array1::linspace(1.0f64, 3.0, 200));
/// let slq = Slq::new(SlqConfig { steps: 30, ..Default::default() }).unwrap();
/// let logdet = slq.log_det(&a).unwrap();
/// let exact: f64 = (0..200).map(|i| (1.0 + 2.0 * i as f64 / 199.0).ln()).sum();
/// assert!((logdet.value - exact).abs() < 1e-8 * exact); // diagonal + Rademacher: exact
/// ```
#[derive(Debug, Clone)]
pub struct Slq<F> {
    config: SlqConfig<F>,
    lanczos: Lanczos<F>,
}

/// Per-probe Gauss quadrature rules of an SLQ run.
#[derive(Debug, Clone)]
pub struct SlqQuadrature<F> {
    /// Nodes (Ritz values) of each probe, ascending.
    pub nodes: Vec<Array1<F>>,
    /// Weights of each probe (each sums to 1).
    pub weights: Vec<Array1<F>>,
    /// `‖z‖²` of each probe.
    pub probe_norms_sq: Vec<F>,
    /// Operator dimension `n`.
    pub dim: usize,
    /// Operator applications spent.
    pub matvecs: usize,
}

impl<F: Float> SlqQuadrature<F> {
    /// Per-probe estimates `‖z‖²·Σ_j w_j f(θ_j)` of `tr f(A)`; errors when `f` is not finite
    /// at a node.
    pub fn samples(&self, f: &impl Fn(F) -> F) -> Result<Vec<F>> {
        self.nodes
            .iter()
            .zip(&self.weights)
            .zip(&self.probe_norms_sq)
            .map(|((nodes, weights), &nz)| {
                let mut acc = F::zero();
                for (&t, &w) in nodes.iter().zip(weights) {
                    let ft = f(t);
                    if !ft.is_finite() {
                        return Err(Error::NonFiniteFunctionValue {
                            node: t.to_string(),
                            value: ft.to_string(),
                            reason: "f must be finite on the spectrum (log-det and inverse need a positive definite operator)",
                        });
                    }
                    acc += w * ft;
                }
                Ok(nz * acc)
            })
            .collect()
    }

    /// The spectral density estimate of these rules.
    pub fn spectral_density(&self) -> Result<SpectralDensity<F>> {
        SpectralDensity::from_quadrature(self.nodes.clone(), self.weights.clone())
    }
}

impl<F: Float> Slq<F> {
    /// Checks the configuration.
    pub fn new(config: SlqConfig<F>) -> Result<Self> {
        config.rule.check()?;
        let lanczos = Lanczos::new(LanczosConfig {
            steps: config.steps,
            reorthogonalization: config.reorthogonalization,
            breakdown_tolerance: None,
            keep_basis: false,
        })?;
        Ok(Self { config, lanczos })
    }

    /// Runs `count` probes (one batched Lanczos) and returns their quadrature rules.
    fn quadrature_batch<O: LinearOperator<F> + ?Sized>(
        &self,
        op: &O,
        n: usize,
        count: usize,
        rng: &mut ChaCha8Rng,
    ) -> Result<SlqQuadrature<F>> {
        let z: Array2<F> = self.config.probe.matrix(n, count, rng);
        let runs = self.lanczos.run_batch(op, z.view())?;
        let mut out = SlqQuadrature {
            nodes: Vec::with_capacity(count),
            weights: Vec::with_capacity(count),
            probe_norms_sq: Vec::with_capacity(count),
            dim: n,
            matvecs: 0,
        };
        for run in runs {
            let (nodes, weights) = run.quadrature()?;
            out.matvecs += run.matvecs;
            out.probe_norms_sq.push(run.start_norm * run.start_norm);
            out.nodes.push(nodes);
            out.weights.push(weights);
        }
        Ok(out)
    }

    /// Quadrature rules for exactly `rule.max_probes` probes (the stop rule's error targets
    /// are not used: densities need every probe).
    pub fn quadrature<O: LinearOperator<F> + ?Sized>(&self, op: &O) -> Result<SlqQuadrature<F>> {
        let n = check_operator(op)?;
        let mut rng = ChaCha8Rng::seed_from_u64(self.config.seed);
        let mut all = SlqQuadrature {
            nodes: Vec::new(),
            weights: Vec::new(),
            probe_norms_sq: Vec::new(),
            dim: n,
            matvecs: 0,
        };
        while all.nodes.len() < self.config.rule.max_probes {
            let count = self
                .config
                .rule
                .batch
                .min(self.config.rule.max_probes - all.nodes.len());
            let more = self.quadrature_batch(op, n, count, &mut rng)?;
            all.nodes.extend(more.nodes);
            all.weights.extend(more.weights);
            all.probe_norms_sq.extend(more.probe_norms_sq);
            all.matvecs += more.matvecs;
        }
        Ok(all)
    }

    /// The SLQ spectral density of `op` (`rule.max_probes` probes).
    pub fn spectral_density<O: LinearOperator<F> + ?Sized>(
        &self,
        op: &O,
    ) -> Result<SpectralDensity<F>> {
        self.quadrature(op)?.spectral_density()
    }

    /// `tr f(A)` with the adaptive stop rule.
    pub fn trace<O: LinearOperator<F> + ?Sized>(
        &self,
        op: &O,
        f: impl Fn(F) -> F,
    ) -> Result<TraceEstimate<F>> {
        let n = check_operator(op)?;
        let mut rng = ChaCha8Rng::seed_from_u64(self.config.seed);
        let mut matvecs = 0;
        let (samples, converged) = self.config.rule.run(|count| {
            let q = self.quadrature_batch(op, n, count, &mut rng)?;
            matvecs += q.matvecs;
            q.samples(&f)
        })?;
        Ok(TraceEstimate::from_samples(samples, matvecs, converged))
    }

    /// `log det A = tr ln A` (A symmetric positive definite).
    pub fn log_det<O: LinearOperator<F> + ?Sized>(&self, op: &O) -> Result<TraceEstimate<F>> {
        self.trace(op, |x: F| if x > F::zero() { x.ln() } else { F::nan() })
    }

    /// `tr A⁻¹` (A symmetric positive definite).
    pub fn trace_inverse<O: LinearOperator<F> + ?Sized>(&self, op: &O) -> Result<TraceEstimate<F>> {
        self.trace(op, |x: F| if x > F::zero() { x.recip() } else { F::nan() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;

    #[test]
    fn stop_rule_validation() {
        let bad = [
            StopRule {
                min_probes: 1,
                ..StopRule::<f64>::default()
            },
            StopRule {
                max_probes: 5,
                ..StopRule::default()
            },
            StopRule {
                batch: 0,
                ..StopRule::default()
            },
            StopRule {
                rtol: -1.0,
                ..StopRule::default()
            },
        ];
        let a = Array2::<f64>::eye(4);
        for r in bad {
            assert!(hutchinson(&a, &r, 0).is_err());
        }
        assert!(hutch_plus_plus(&a, 4, 0)
            .unwrap_err()
            .to_string()
            .contains("matvecs"));
    }

    #[test]
    fn stop_rule_stops_early_when_precise() {
        // A = I + small off-diagonal part: tiny variance, stops after min_probes.
        let n = 50;
        let a = Array2::from_shape_fn((n, n), |(i, j)| {
            if i == j {
                1.0
            } else {
                1e-4 / (1.0 + (i + j) as f64)
            }
        });
        let t = hutchinson(&a, &StopRule::default(), 1).unwrap();
        assert!(t.converged && t.probes == 10 && t.matvecs == 10);
        assert_abs_diff_eq!(t.value, 50.0, epsilon = 0.01);
        // A noisy matrix with a strict tolerance runs to max_probes.
        let b = Array2::from_shape_fn((n, n), |(i, j)| ((i * 7 + j * 7) % 5) as f64 - 2.0);
        let t = hutchinson(
            &b,
            &StopRule {
                rtol: 1e-6,
                ..Default::default()
            },
            1,
        )
        .unwrap();
        assert!(!t.converged && t.probes == 50);
    }

    #[test]
    fn log_det_of_indefinite_is_an_error() {
        let a = Array2::from_diag(&Array1::from(vec![1.0, -1.0, 2.0]));
        let slq = Slq::new(SlqConfig {
            steps: 3,
            ..Default::default()
        })
        .unwrap();
        let e = slq.log_det(&a).unwrap_err();
        assert!(matches!(e, Error::NonFiniteFunctionValue { .. }), "{e}");
    }
}
