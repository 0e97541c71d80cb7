//! Property tests (proptest) against independent references: Jacobi rotations, Sturm-sequence
//! bisection, Cauchy interlacing.

use crate::common;

use common::*;
use ndarray::{Array1, Array2};
use proptest::prelude::*;
use tessera_lanczos::*;

fn tridiagonal() -> impl Strategy<Value = (Vec<f64>, Vec<f64>)> {
    (1usize..30).prop_flat_map(|n| {
        (
            prop::collection::vec(-10.0f64..10.0, n),
            prop::collection::vec(prop_oneof![Just(0.0), -5.0f64..5.0, 1e-9f64..1e-7], n - 1),
        )
    })
}

fn symmetric(max_n: usize) -> impl Strategy<Value = Array2<f64>> {
    (2usize..max_n).prop_flat_map(|n| {
        prop::collection::vec(-3.0f64..3.0, n * n).prop_map(move |v| {
            let a = Array2::from_shape_vec((n, n), v).unwrap();
            (&a + &a.t()) * 0.5
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn tridiagonal_eigen_matches_bisection_and_jacobi((d, e) in tridiagonal()) {
        let n = d.len();
        let eig = tridiagonal_eigen(Array1::from(d.clone()).view(), Array1::from(e.clone()).view(), EigenvectorMode::Full).unwrap();
        let scale = d.iter().chain(&e).fold(1.0f64, |m, v| m.max(v.abs()));
        let bis = bisection_eigenvalues(&d, &e);
        let mut t = Array2::zeros((n, n));
        for i in 0..n {
            t[[i, i]] = d[i];
            if i + 1 < n { t[[i, i + 1]] = e[i]; t[[i + 1, i]] = e[i]; }
        }
        let jac = jacobi_eigenvalues(&t);
        for i in 0..n {
            prop_assert!((eig.values[i] - bis[i]).abs() < 1e-12 * scale * n as f64, "{} vs {}", eig.values[i], bis[i]);
            prop_assert!((eig.values[i] - jac[i]).abs() < 1e-12 * scale * n as f64);
        }
        let v = eig.vectors.unwrap();
        let resid = t.dot(&v) - &v * &eig.values;
        prop_assert!(resid.iter().all(|r| r.abs() < 1e-12 * scale * n as f64));
        let first = eig.first_components.unwrap();
        let only_first = tridiagonal_eigen(Array1::from(d).view(), Array1::from(e).view(), EigenvectorMode::FirstComponents).unwrap();
        for i in 0..n {
            prop_assert!((only_first.first_components.as_ref().unwrap()[i].abs() - first[i].abs()).abs() < 1e-10);
        }
    }

    #[test]
    fn golub_welsch_weights_nonnegative_sum_one(
        alpha in prop::collection::vec(-4.0f64..4.0, 1..40),
        seed in any::<u64>(),
    ) {
        let n = alpha.len();
        let beta: Vec<f64> = (0..n.saturating_sub(1)).map(|k| 0.1 + ((seed >> (k % 60)) & 7) as f64).collect();
        let (x, w) = golub_welsch(Array1::from(alpha).view(), Array1::from(beta).view()).unwrap();
        prop_assert!(w.iter().all(|&v| v >= 0.0));
        prop_assert!((w.sum() - 1.0).abs() < 1e-13);
        prop_assert!(x.windows(2).into_iter().all(|p| p[0] <= p[1]));
    }

    #[test]
    fn ritz_values_interlace_and_lie_in_spectrum(a in symmetric(25), seed in any::<u64>()) {
        let n = a.nrows();
        let exact = jacobi_eigenvalues(&a);
        let start = Array1::from_shape_fn(n, |i| (((seed >> (i % 60)) & 3) as f64) - 1.3);
        let l = Lanczos::new(LanczosConfig { steps: n, ..Default::default() }).unwrap();
        let dec = l.run(&a, start.view()).unwrap();
        let scale = exact.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        let tol = 1e-10 * scale;
        let mut previous: Option<Vec<f64>> = None;
        for m in 1..=dec.steps() {
            let ritz = tridiagonal_eigen(ndarray::ArrayView1::from(&dec.alpha.as_slice().unwrap()[..m]), ndarray::ArrayView1::from(&dec.beta.as_slice().unwrap()[..m - 1]), EigenvectorMode::None).unwrap().values.to_vec();
            prop_assert!(ritz.iter().all(|&r| r >= exact[0] - tol && r <= exact[n - 1] + tol));
            if let Some(p) = &previous {
                // Cauchy: θ_i^{(m)} ≤ θ_i^{(m−1)} ≤ θ_{i+1}^{(m)}.
                for i in 0..m - 1 {
                    prop_assert!(ritz[i] <= p[i] + tol && p[i] <= ritz[i + 1] + tol);
                }
            }
            previous = Some(ritz);
        }
    }

    #[test]
    fn top_eigenpairs_match_jacobi(a in symmetric(40), k in 1usize..4, which in 0usize..3) {
        let n = a.nrows();
        let k = k.min(n);
        let exact = jacobi_eigenvalues(&a);
        let which = [Which::LargestAlgebraic, Which::SmallestAlgebraic, Which::LargestMagnitude][which];
        let pairs = top_eigenpairs(&a, k, which, 1e-10).unwrap();
        let mut want: Vec<f64> = exact.clone();
        match which {
            Which::LargestAlgebraic => want.reverse(),
            Which::SmallestAlgebraic => {}
            Which::LargestMagnitude => want.sort_by(|x, y| y.abs().partial_cmp(&x.abs()).unwrap()),
        }
        let scale = exact.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        for i in 0..k {
            if which == Which::LargestMagnitude {
                prop_assert!((pairs.values[i].abs() - want[i].abs()).abs() < 1e-8 * scale);
            } else {
                prop_assert!((pairs.values[i] - want[i]).abs() < 1e-8 * scale, "{:?} vs {:?}", pairs.values, &want[..k]);
            }
        }
    }

    #[test]
    fn dense_symmetric_eigen_matches_jacobi(a in symmetric(30)) {
        let (vals, vecs) = symmetric_eigen(a.view()).unwrap();
        let jac = jacobi_eigenvalues(&a);
        for (x, y) in vals.iter().zip(&jac) {
            prop_assert!((x - y).abs() < 1e-11);
        }
        let recon = vecs.dot(&Array2::from_diag(&vals)).dot(&vecs.t());
        prop_assert!(recon.iter().zip(a.iter()).all(|(x, y)| (x - y).abs() < 1e-11));
    }

    #[test]
    fn smoothed_density_integrates_to_one(
        probes in prop::collection::vec(prop::collection::vec((-50.0f64..50.0, 0.01f64..1.0), 1..20), 1..6),
        bw in 0usize..3,
    ) {
        let nodes: Vec<Array1<f64>> = probes.iter().map(|p| p.iter().map(|x| x.0).collect()).collect();
        let weights: Vec<Array1<f64>> = probes.iter().map(|p| {
            let s: f64 = p.iter().map(|x| x.1).sum();
            p.iter().map(|x| x.1 / s).collect()
        }).collect();
        let d = SpectralDensity::from_quadrature(nodes, weights).unwrap();
        let bandwidth = [Bandwidth::SpanOverSteps, Bandwidth::PyHessian, Bandwidth::Fixed(0.5)][bw];
        let s = d.smoothed(&DensityConfig { bandwidth, ..Default::default() }).unwrap();
        prop_assert!((s.mass_on_grid - 1.0).abs() < 1e-3, "mass {}", s.mass_on_grid);
        prop_assert!((s.integral() - 1.0).abs() < 1e-10);
        prop_assert!(s.density.iter().all(|&v| v >= 0.0));
        prop_assert!((d.cdf(f64::INFINITY) - 1.0).abs() < 1e-12);
    }
}
