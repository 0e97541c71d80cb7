//! Golden values from numpy/scipy (`tests/data/make_fixtures.py`).

use approx::{assert_abs_diff_eq, assert_relative_eq};
use ndarray::{Array1, Array2};
use ndarray_npy::read_npy;
use tessera_lanczos::*;

fn load1(name: &str) -> Array1<f64> {
    tessera_testing::fixture!(name)
}

#[test]
fn golub_welsch_reproduces_gauss_legendre() {
    for n in [5usize, 20, 64] {
        let alpha = Array1::zeros(n);
        let beta = Array1::from_shape_fn(n - 1, |k| {
            let k = (k + 1) as f64;
            k / (4.0 * k * k - 1.0).sqrt()
        });
        let (x, w) = golub_welsch(alpha.view(), beta.view()).unwrap();
        let (xr, wr) = (
            load1(&format!("legendre_{n}_nodes.npy")),
            load1(&format!("legendre_{n}_weights.npy")),
        );
        for i in 0..n {
            assert_abs_diff_eq!(x[i], xr[i], epsilon = 1e-14);
            // μ₀ = ∫₋₁¹ 1 dx = 2.
            assert_abs_diff_eq!(2.0 * w[i], wr[i], epsilon = 1e-14);
        }
    }
}

#[test]
fn golub_welsch_reproduces_gauss_hermite() {
    for n in [5usize, 20, 40] {
        let alpha = Array1::zeros(n);
        let beta = Array1::from_shape_fn(n - 1, |k| ((k + 1) as f64 / 2.0).sqrt());
        let (x, w) = golub_welsch(alpha.view(), beta.view()).unwrap();
        let (xr, wr) = (
            load1(&format!("hermite_{n}_nodes.npy")),
            load1(&format!("hermite_{n}_weights.npy")),
        );
        let mu0 = std::f64::consts::PI.sqrt();
        for i in 0..n {
            assert_abs_diff_eq!(x[i], xr[i], epsilon = 1e-13 * xr[i].abs().max(1.0));
            assert_abs_diff_eq!(mu0 * w[i], wr[i], epsilon = 1e-14);
        }
    }
}

#[test]
fn top_eigenpairs_matches_numpy_and_arpack() {
    let a: Array2<f64> = read_npy(format!(
        "{}/tests/data/spd_matrix.npy",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let eig = load1("spd_eigvals.npy");
    let arpack = load1("spd_eigsh_top4.npy");
    let n = eig.len();
    let pairs = top_eigenpairs(&a, 4, Which::LargestAlgebraic, 1e-10).unwrap();
    for i in 0..4 {
        assert_abs_diff_eq!(pairs.values[i], eig[n - 1 - i], epsilon = 1e-12);
        assert_abs_diff_eq!(pairs.values[i], arpack[i], epsilon = 1e-12);
    }
    let small = top_eigenpairs(&a, 2, Which::SmallestAlgebraic, 1e-10).unwrap();
    assert_abs_diff_eq!(small.values[0], eig[0], epsilon = 1e-12);
    assert_abs_diff_eq!(small.values[1], eig[1], epsilon = 1e-12);
}

#[test]
fn slq_traces_match_numpy() {
    let a: Array2<f64> = read_npy(format!(
        "{}/tests/data/spd_matrix.npy",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let traces = load1("spd_traces.npy");
    let eig = load1("spd_eigvals.npy");
    let n = eig.len();
    // m = 40 Gauss nodes integrate ln, x and 1/x on this spectrum (condition ≈ 40) to far below
    // the Hutchinson error of the probes, which 400 probes make small.
    let slq = Slq::new(SlqConfig {
        steps: 40,
        rule: StopRule {
            rtol: 1e-3,
            min_probes: 20,
            max_probes: 400,
            batch: 100,
            ..Default::default()
        },
        ..Default::default()
    })
    .unwrap();
    for (k, est) in [
        slq.trace(&a, |x| x).unwrap(),
        slq.log_det(&a).unwrap(),
        slq.trace_inverse(&a).unwrap(),
    ]
    .iter()
    .enumerate()
    {
        assert_abs_diff_eq!(
            est.value,
            traces[k],
            epsilon = 4.0 * est.std_error.max(1e-12)
        );
        assert_relative_eq!(est.value, traces[k], max_relative = 0.02);
    }
    let density = slq.spectral_density(&a).unwrap();
    let span = eig[n - 1] - eig[0];
    assert!(density.wasserstein1(eig.view()).unwrap() / span < 1e-2);
    // Normalised first and second moments match tr A / n and ‖A‖²_F / n.
    let fro2: f64 = a.iter().map(|v| v * v).sum();
    assert_abs_diff_eq!(
        density.moment(1),
        traces[0] / n as f64,
        epsilon = 0.02 * traces[0] / n as f64
    );
    assert_abs_diff_eq!(
        density.moment(2),
        fro2 / n as f64,
        epsilon = 0.03 * fro2 / n as f64
    );
}
