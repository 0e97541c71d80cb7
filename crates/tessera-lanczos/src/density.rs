//! Spectral density estimates from stochastic Lanczos quadrature (Lin, Saad & Yang, 2016;
//! Ghorbani, Krishnan & Xiao, 2019; PyHessian, Yao et al., 2020): the raw per-probe Gauss
//! rules, a Gaussian-smoothed density on a grid, moments, the cumulative distribution, and
//! the Wasserstein-1 distance to a set of eigenvalues.

use ndarray::{Array1, ArrayView1};
use tessera_core::RejectInput;

use crate::error::{Error, Result};
use crate::util::check_finite;
use crate::Float;

/// The spectral measure estimate `φ(t) ≈ (1/N)·Σ_probes Σ_j w_j·δ(t − θ_j)`.
#[derive(Debug, Clone)]
pub struct SpectralDensity<F> {
    nodes: Vec<Array1<F>>,
    weights: Vec<Array1<F>>,
}

/// Width of the Gaussian kernel used by [`SpectralDensity::smoothed`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bandwidth<F> {
    /// `σ = (λ_max − λ_min)/m` with `m` the largest number of nodes of a probe (default).
    SpanOverSteps,
    /// PyHessian's choice: variance `σ² = 1e-5·max(1, λ_max − λ_min)`.
    PyHessian,
    /// A fixed `σ > 0`.
    Fixed(F),
}

/// Grid and kernel of a smoothed density.
#[derive(Debug, Clone, Copy)]
pub struct DensityConfig<F> {
    /// Kernel width rule.
    pub bandwidth: Bandwidth<F>,
    /// Number of grid points; `None` picks a spacing of `σ/4` (at least 512 points).
    pub grid_points: Option<usize>,
    /// Padding of the grid beyond the extreme nodes, in units of σ (≥ 4).
    pub padding_sigmas: F,
}

impl<F: Float> Default for DensityConfig<F> {
    fn default() -> Self {
        Self {
            bandwidth: Bandwidth::SpanOverSteps,
            grid_points: None,
            padding_sigmas: F::from_f64_rounded(4.0),
        }
    }
}

/// A density sampled on a uniform grid.
#[derive(Debug, Clone)]
pub struct SmoothedDensity<F> {
    /// Grid points (uniform, ascending).
    pub grid: Array1<F>,
    /// Density values, normalised so the trapezoid integral over the grid is 1.
    pub density: Array1<F>,
    /// Kernel standard deviation used.
    pub sigma: F,
    /// Trapezoid integral of the analytic mixture over the grid before normalisation (≥
    /// `1 − 3.2e-5` with 4σ padding; a check of the grid).
    pub mass_on_grid: F,
}

impl<F: Float> SpectralDensity<F> {
    /// From per-probe nodes and weights (weights non-negative, summing to 1 per probe).
    pub fn from_quadrature(nodes: Vec<Array1<F>>, weights: Vec<Array1<F>>) -> Result<Self> {
        if nodes.is_empty() {
            return Err(Error::invalid(
                "nodes",
                "[]",
                "at least one probe is needed",
            ));
        }
        if nodes.len() != weights.len() {
            return Err(Error::shape(
                "weights",
                format!("length {}", nodes.len()),
                format!("length {}", weights.len()),
            ));
        }
        for (p, (x, w)) in nodes.iter().zip(&weights).enumerate() {
            if x.is_empty() || x.len() != w.len() {
                return Err(Error::invalid(
                    "weights",
                    format!("probe {p}: {} nodes, {} weights", x.len(), w.len()),
                    "every probe needs as many weights as nodes (≥ 1)",
                ));
            }
            check_finite("nodes", x.iter())?;
            check_finite("weights", w.iter())?;
            if let Some(bad) = w.iter().find(|&&v| v < F::zero()) {
                return Err(Error::invalid(
                    "weights",
                    bad,
                    format!("probe {p}: weights must be ≥ 0"),
                ));
            }
            let total: F = w.sum();
            if (total - F::one()).abs()
                > F::from_f64_rounded(1e3) * F::epsilon() * F::from_count(w.len()).max(F::one())
            {
                return Err(Error::invalid(
                    "weights",
                    total,
                    format!("probe {p}: weights must sum to 1"),
                ));
            }
        }
        Ok(Self { nodes, weights })
    }

    /// Nodes of each probe.
    pub fn nodes(&self) -> &[Array1<F>] {
        &self.nodes
    }

    /// Weights of each probe.
    pub fn weights(&self) -> &[Array1<F>] {
        &self.weights
    }

    /// Number of probes.
    pub fn probes(&self) -> usize {
        self.nodes.len()
    }

    /// `(min node, max node)`.
    pub fn span(&self) -> (F, F) {
        self.all_points()
            .fold((F::infinity(), F::neg_infinity()), |(lo, hi), (t, _)| {
                (lo.min(t), hi.max(t))
            })
    }

    fn all_points(&self) -> impl Iterator<Item = (F, F)> + '_ {
        let scale = F::one() / F::from_count(self.nodes.len());
        self.nodes
            .iter()
            .zip(&self.weights)
            .flat_map(move |(x, w)| x.iter().zip(w.iter()).map(move |(&t, &wt)| (t, wt * scale)))
    }

    /// Normalised moment `∫ t^p dφ(t) ≈ tr(A^p)/n`.
    pub fn moment(&self, p: i32) -> F {
        self.all_points().map(|(t, w)| w * t.powi(p)).sum()
    }

    /// Cumulative distribution `φ((−∞, x])`, the estimated fraction of eigenvalues ≤ `x`.
    pub fn cdf(&self, x: F) -> F {
        self.all_points()
            .filter(|&(t, _)| t <= x)
            .map(|(_, w)| w)
            .sum()
    }

    /// Wasserstein-1 distance `∫|Φ(t) − G(t)| dt` between this measure and the uniform
    /// measure on `eigenvalues` (e.g. an exact spectrum).
    pub fn wasserstein1(&self, eigenvalues: ArrayView1<'_, F>) -> Result<F> {
        if eigenvalues.is_empty() {
            return Err(Error::invalid(
                "eigenvalues",
                "[]",
                "at least one eigenvalue is needed",
            ));
        }
        check_finite("eigenvalues", eigenvalues.iter())?;
        let e = -F::one() / F::from_count(eigenvalues.len());
        let mut points: Vec<(F, F)> = self.all_points().collect();
        points.extend(eigenvalues.iter().map(|&t| (t, e)));
        points.sort_by(|a, b| a.0.partial_cmp(&b.0).expect("finite points"));
        let mut cdf_difference = F::zero();
        let mut distance = F::zero();
        for pair in points.windows(2) {
            cdf_difference += pair[0].1;
            distance += cdf_difference.abs() * (pair[1].0 - pair[0].0);
        }
        Ok(distance)
    }

    /// The Gaussian-smoothed density on a grid.
    pub fn smoothed(&self, config: &DensityConfig<F>) -> Result<SmoothedDensity<F>> {
        if !config.padding_sigmas.is_finite() || config.padding_sigmas < F::from_f64_rounded(4.0) {
            return Err(Error::invalid(
                "padding_sigmas",
                config.padding_sigmas,
                "must be finite and ≥ 4",
            ));
        }
        let (lo, hi) = self.span();
        let span = hi - lo;
        let steps = self
            .nodes
            .iter()
            .map(|x| x.len())
            .max()
            .expect("at least one probe");
        let sigma = match config.bandwidth {
            Bandwidth::SpanOverSteps => span / F::from_count(steps),
            Bandwidth::PyHessian => (F::from_f64_rounded(1e-5) * span.max(F::one())).sqrt(),
            Bandwidth::Fixed(s) => {
                if !s.is_finite() || s <= F::zero() {
                    return Err(Error::invalid(
                        "bandwidth",
                        s,
                        "Fixed(σ) needs a finite σ > 0",
                    ));
                }
                s
            }
        };
        // A single distinct node has zero span: fall back to a width relative to its size.
        let sigma = if sigma > F::zero() {
            sigma
        } else {
            F::from_f64_rounded(1e-3) * lo.abs().max(F::one())
        };
        let (a, b) = (
            lo - config.padding_sigmas * sigma,
            hi + config.padding_sigmas * sigma,
        );
        let points = match config.grid_points {
            Some(p) if p < 2 => return Err(Error::invalid("grid_points", p, "must be ≥ 2")),
            Some(p) => p,
            None => {
                let by_spacing = ((b - a) / (sigma / F::from_f64_rounded(4.0)))
                    .ceil()
                    .to_f64_exact();
                (by_spacing as usize + 1).clamp(512, 1 << 22)
            }
        };
        let grid = Array1::linspace(a, b, points);
        let two_s2 = F::from_f64_rounded(2.0) * sigma * sigma;
        let norm = F::one() / (sigma * F::from_f64_rounded(std::f64::consts::TAU).sqrt());
        let cutoff = F::from_f64_rounded(8.0) * sigma;
        let mut density = Array1::<F>::zeros(points);
        let h = (b - a) / F::from_count(points - 1);
        for (t, w) in self.all_points() {
            // Only grid points within 8σ contribute more than e^{-32}.
            let first = ((t - cutoff - a) / h).floor().max(F::zero()).to_f64_exact() as usize;
            let last =
                (((t + cutoff - a) / h).ceil().to_f64_exact().max(0.0) as usize).min(points - 1);
            for i in first..=last {
                let d = grid[i] - t;
                density[i] += w * norm * (-(d * d) / two_s2).exp();
            }
        }
        let mass = trapezoid(&density, h);
        density.mapv_inplace(|v| v / mass);
        Ok(SmoothedDensity {
            grid,
            density,
            sigma,
            mass_on_grid: mass,
        })
    }
}

/// Trapezoid rule on a uniform grid with spacing `h`.
pub(crate) fn trapezoid<F: Float>(values: &Array1<F>, h: F) -> F {
    let n = values.len();
    if n < 2 {
        return F::zero();
    }
    let inner: F = values.iter().copied().sum();
    h * (inner - (values[0] + values[n - 1]) / F::from_f64_rounded(2.0))
}

impl<F: Float> SmoothedDensity<F> {
    /// Trapezoid integral of the (normalised) density over the grid: 1 up to rounding.
    pub fn integral(&self) -> F {
        let n = self.grid.len();
        let h = (self.grid[n - 1] - self.grid[0]) / F::from_count(n - 1);
        trapezoid(&self.density, h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;
    use ndarray::arr1;

    fn two_probe() -> SpectralDensity<f64> {
        SpectralDensity::from_quadrature(
            vec![arr1(&[0.0, 1.0]), arr1(&[2.0])],
            vec![arr1(&[0.5, 0.5]), arr1(&[1.0])],
        )
        .unwrap()
    }

    #[test]
    fn moments_cdf_w1() {
        let d = two_probe();
        assert_abs_diff_eq!(d.moment(1), (0.25 + 1.0), epsilon = 1e-15);
        assert_abs_diff_eq!(d.cdf(0.5), 0.25, epsilon = 1e-15);
        assert_abs_diff_eq!(d.cdf(2.0), 1.0, epsilon = 1e-15);
        // Measure {0: 1/4, 1: 1/4, 2: 1/2} vs uniform {0, 1, 2}: |1/4 − 1/3| + |1/2 − 2/3|.
        let w = d.wasserstein1(arr1(&[0.0, 1.0, 2.0]).view()).unwrap();
        assert_abs_diff_eq!(w, 1.0 / 12.0 + 1.0 / 6.0, epsilon = 1e-15);
        assert!(d.wasserstein1(arr1(&[]).view()).is_err());
    }

    #[test]
    fn smoothed_mass_and_peak() {
        let d = two_probe();
        for bw in [
            Bandwidth::SpanOverSteps,
            Bandwidth::PyHessian,
            Bandwidth::Fixed(0.1),
        ] {
            let s = d
                .smoothed(&DensityConfig {
                    bandwidth: bw,
                    ..Default::default()
                })
                .unwrap();
            assert_abs_diff_eq!(s.mass_on_grid, 1.0, epsilon = 1e-4);
            assert_abs_diff_eq!(s.integral(), 1.0, epsilon = 1e-12);
            assert!(
                s.grid[0] <= -4.0 * s.sigma + 1e-12
                    && *s.grid.last().unwrap() >= 2.0 + 4.0 * s.sigma - 1e-12
            );
        }
        assert!(d
            .smoothed(&DensityConfig {
                padding_sigmas: 3.0,
                ..Default::default()
            })
            .is_err());
        assert!(d
            .smoothed(&DensityConfig {
                bandwidth: Bandwidth::Fixed(0.0),
                ..Default::default()
            })
            .is_err());
    }

    #[test]
    fn bad_quadrature() {
        assert!(SpectralDensity::<f64>::from_quadrature(vec![], vec![]).is_err());
        assert!(SpectralDensity::from_quadrature(vec![arr1(&[1.0])], vec![arr1(&[0.5])]).is_err());
        assert!(SpectralDensity::from_quadrature(
            vec![arr1(&[1.0, 2.0])],
            vec![arr1(&[1.5, -0.5])]
        )
        .is_err());
        assert!(
            SpectralDensity::from_quadrature(vec![arr1(&[f64::NAN])], vec![arr1(&[1.0])]).is_err()
        );
    }
}
