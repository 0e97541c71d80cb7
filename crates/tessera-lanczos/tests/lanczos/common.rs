//! Test matrices with known spectra: `Q·diag(λ)·Qᵀ` with `Q` a product of random Householder
//! reflectors (dense, orthogonal), and quantiles of the semicircle and Marchenko–Pastur laws.
#![allow(dead_code)]

use approx::assert_abs_diff_eq;
use ndarray::{Array1, Array2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// `Q·diag(λ)·Qᵀ` with `Q = H_1⋯H_r`, `H = I − 2uuᵀ`, `u` random unit vectors.
pub fn rotated(spectrum: &Array1<f64>, reflectors: usize, seed: u64) -> Array2<f64> {
    let n = spectrum.len();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut a = Array2::from_diag(spectrum);
    for _ in 0..reflectors {
        let mut u = Array1::from_shape_fn(n, |_| rng.random::<f64>() - 0.5);
        let nu = u.dot(&u).sqrt();
        u /= nu;
        // H A H = A − 2u(Aᵀu)ᵀ − 2(Au)uᵀ + 4(uᵀAu)uuᵀ for symmetric A.
        let au = a.dot(&u);
        let uau = u.dot(&au);
        let uc = u.view().insert_axis(ndarray::Axis(1));
        let auc = au.view().insert_axis(ndarray::Axis(1));
        a = &a - &(uc.dot(&auc.t()) * 2.0) - &(auc.dot(&uc.t()) * 2.0)
            + &(uc.dot(&uc.t()) * (4.0 * uau));
    }
    // Exact symmetry (rounding leaves ~1e-16 asymmetry).
    let at = a.t().to_owned();
    (&a + &at) * 0.5
}

/// `n` quantiles `F⁻¹((i + ½)/n)` of a distribution by bisection on its CDF over `[lo, hi]`.
fn quantiles(n: usize, lo: f64, hi: f64, cdf: impl Fn(f64) -> f64) -> Array1<f64> {
    Array1::from_shape_fn(n, |i| {
        let target = (i as f64 + 0.5) / n as f64;
        let (mut a, mut b) = (lo, hi);
        for _ in 0..80 {
            let m = 0.5 * (a + b);
            if cdf(m) < target {
                a = m;
            } else {
                b = m;
            }
        }
        0.5 * (a + b)
    })
}

/// Quantiles of the semicircle law on [−2, 2] (the limit spectrum of (G+Gᵀ)/√(2n)).
pub fn semicircle_spectrum(n: usize) -> Array1<f64> {
    quantiles(n, -2.0, 2.0, |x: f64| {
        0.5 + x * (4.0 - x * x).max(0.0).sqrt() / (4.0 * std::f64::consts::PI)
            + (x / 2.0).asin() / std::f64::consts::PI
    })
}

/// Quantiles of the Marchenko–Pastur law with ratio `q < 1` (mean 1), CDF by a fine
/// trapezoid rule in the angle variable `x = c − r·cos φ` (smooth integrand).
pub fn marchenko_pastur_spectrum(n: usize, q: f64) -> Array1<f64> {
    let (a, b) = ((1.0 - q.sqrt()).powi(2), (1.0 + q.sqrt()).powi(2));
    let (c, r) = (0.5 * (a + b), 0.5 * (b - a));
    let steps = 200_000;
    let h = std::f64::consts::PI / steps as f64;
    let integrand = |phi: f64| {
        let x = c - r * phi.cos();
        r * r * phi.sin().powi(2) / (2.0 * std::f64::consts::PI * q * x)
    };
    let mut xs = Vec::with_capacity(steps + 1);
    let mut cum = Vec::with_capacity(steps + 1);
    let mut acc = 0.0;
    for k in 0..=steps {
        let phi = k as f64 * h;
        if k > 0 {
            acc += 0.5 * h * (integrand(phi - h) + integrand(phi));
        }
        xs.push(c - r * phi.cos());
        cum.push(acc);
    }
    assert_abs_diff_eq!(acc, 1.0, epsilon = 1e-8);
    Array1::from_shape_fn(n, |i| {
        let target = (i as f64 + 0.5) / n as f64;
        let k = cum.partition_point(|&v| v < target).clamp(1, steps);
        let t = (target - cum[k - 1]) / (cum[k] - cum[k - 1]);
        xs[k - 1] + t * (xs[k] - xs[k - 1])
    })
}

/// diag(linspace(0, 1, n − 5) ∪ {5, 10, 20, 50, 100}).
pub fn spiked_spectrum(n: usize) -> Array1<f64> {
    let mut v: Vec<f64> = Array1::linspace(0.0, 1.0, n - 5).to_vec();
    v.extend([5.0, 10.0, 20.0, 50.0, 100.0]);
    Array1::from(v)
}

/// Eigenvalues of a small symmetric matrix by cyclic Jacobi rotations (independent of the
/// crate's Householder/QL code), ascending.
pub fn jacobi_eigenvalues(a: &Array2<f64>) -> Vec<f64> {
    let n = a.nrows();
    let mut m = a.clone();
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| m[[i, j]].powi(2))
            .sum();
        let total: f64 = m.iter().map(|v| v * v).sum();
        if off <= 1e-30 * total.max(1e-300) {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                if m[[p, q]].abs() < 1e-300 {
                    continue;
                }
                let theta = (m[[q, q]] - m[[p, p]]) / (2.0 * m[[p, q]]);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (mkp, mkq) = (m[[k, p]], m[[k, q]]);
                    m[[k, p]] = c * mkp - s * mkq;
                    m[[k, q]] = s * mkp + c * mkq;
                }
                for k in 0..n {
                    let (mpk, mqk) = (m[[p, k]], m[[q, k]]);
                    m[[p, k]] = c * mpk - s * mqk;
                    m[[q, k]] = s * mpk + c * mqk;
                }
            }
        }
    }
    let mut d: Vec<f64> = (0..n).map(|i| m[[i, i]]).collect();
    d.sort_by(|a, b| a.partial_cmp(b).unwrap());
    d
}

/// Number of eigenvalues of the symmetric tridiagonal (d, e) below x (Sturm sequence).
pub fn sturm_count(d: &[f64], e: &[f64], x: f64) -> usize {
    let mut count = 0;
    let mut q = 1.0;
    for i in 0..d.len() {
        let e2 = if i > 0 { e[i - 1] * e[i - 1] } else { 0.0 };
        q = d[i] - x - if i > 0 { e2 / q } else { 0.0 };
        if q == 0.0 {
            q = 1e-300;
        }
        if q < 0.0 {
            count += 1;
        }
    }
    count
}

/// Eigenvalues of a symmetric tridiagonal by bisection on Sturm counts, ascending.
pub fn bisection_eigenvalues(d: &[f64], e: &[f64]) -> Vec<f64> {
    let n = d.len();
    let bound = (0..n)
        .map(|i| {
            d[i].abs()
                + if i > 0 { e[i - 1].abs() } else { 0.0 }
                + if i + 1 < n { e[i].abs() } else { 0.0 }
        })
        .fold(0.0, f64::max)
        + 1.0;
    (0..n)
        .map(|k| {
            let (mut lo, mut hi) = (-bound, bound);
            for _ in 0..200 {
                let mid = 0.5 * (lo + hi);
                if sturm_count(d, e, mid) > k {
                    hi = mid;
                } else {
                    lo = mid;
                }
            }
            0.5 * (lo + hi)
        })
        .collect()
}
