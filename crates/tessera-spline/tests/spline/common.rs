//! Seeded fixtures shared by the test modules.

use ndarray::{Array1, Array2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use tessera_spline::{PiecewiseLinearNet, PlActivation, Point, Polygon};

/// A network with Gaussian weights `N(0, 2/fan_in)` and biases `N(0, 0.25)`, so that lines do
/// not all pass through the origin.
pub fn random_net(dims: &[usize], hidden: PlActivation, seed: u64) -> PiecewiseLinearNet<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let params = dims
        .windows(2)
        .map(|w| {
            let std = (2.0 / w[0] as f64).sqrt();
            let weight =
                Array2::from_shape_fn((w[1], w[0]), |_| std * rng.sample::<f64, _>(StandardNormal));
            let bias = Array1::from_shape_fn(w[1], |_| 0.5 * rng.sample::<f64, _>(StandardNormal));
            (weight, bias)
        })
        .collect();
    PiecewiseLinearNet::from_arrays(params, hidden).expect("valid random net")
}

pub fn gaussian(n: usize, seed: u64) -> Array1<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Array1::from_shape_fn(n, |_| rng.sample::<f64, _>(StandardNormal))
}

pub fn gaussian_matrix(rows: usize, cols: usize, seed: u64) -> Array2<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Array2::from_shape_fn((rows, cols), |_| rng.sample::<f64, _>(StandardNormal))
}

/// A uniformly weighted random convex combination of the polygon's vertices (strictly inside).
pub fn interior_point(poly: &Polygon, rng: &mut ChaCha8Rng) -> Point {
    let v = poly.vertices();
    let weights: Vec<f64> = v.iter().map(|_| rng.random::<f64>() + 0.05).collect();
    let total: f64 = weights.iter().sum();
    let mut u = [0.0, 0.0];
    for (p, w) in v.iter().zip(&weights) {
        u[0] += p[0] * w / total;
        u[1] += p[1] * w / total;
    }
    u
}

/// `n × n` points of a regular grid strictly inside `[lo, hi]²` (cell centres).
pub fn grid(lo: f64, hi: f64, n: usize) -> Vec<Point> {
    let h = (hi - lo) / n as f64;
    (0..n)
        .flat_map(|i| (0..n).map(move |j| [lo + (i as f64 + 0.5) * h, lo + (j as f64 + 0.5) * h]))
        .collect()
}
