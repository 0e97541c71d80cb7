//! Accuracy against known spectra and independent references (DESIGN.md § tessera-lanczos).
//! Test matrices are `Q·diag(λ)·Qᵀ` with known `λ`, n = 2000 as in DESIGN.md (the random-matrix
//! versions with numpy/scipy side by side live in `benches/compare/lanczos_scipy.py`).

use crate::common;
use approx::{assert_abs_diff_eq, assert_relative_eq};

use common::*;
use ndarray::{Array1, Array2, ArrayView1, ArrayViewMut1};
use tessera_lanczos::*;

const N: usize = 2000;

fn slq_density(a: &Array2<f64>) -> SpectralDensity<f64> {
    Slq::new(SlqConfig {
        steps: 100,
        rule: StopRule::fixed(10),
        ..Default::default()
    })
    .unwrap()
    .spectral_density(a)
    .unwrap()
}

#[test]
fn wigner_density_and_lambda_max() {
    let lambda = semicircle_spectrum(N);
    let a = rotated(&lambda, 6, 1);
    let density = slq_density(&a);
    let span = lambda[N - 1] - lambda[0];
    let w1 = density.wasserstein1(lambda.view()).unwrap() / span;
    assert!(w1 < 1e-2, "W1/span = {w1}");
    // The SLQ extreme nodes bracket the spectrum closely.
    let (lo, hi) = density.span();
    assert!(lo >= lambda[0] - 1e-9 && hi <= lambda[N - 1] + 1e-9);

    let pairs = top_eigenpairs(&a, 5, Which::LargestAlgebraic, 1e-8).unwrap();
    let rel = ((pairs.values[0] - lambda[N - 1]) / lambda[N - 1]).abs();
    assert!(rel < 1e-10, "λ_max relative error {rel}");
    for i in 0..5 {
        assert_relative_eq!(pairs.values[i], lambda[N - 1 - i], max_relative = 1e-9);
    }
    // ARPACK needed 206 (DESIGN.md, n = 2000).
    assert!(pairs.matvecs <= 206, "matvecs {}", pairs.matvecs);
    // The packed symmetric operator gives the same iteration up to rounding.
    let packed = SymmetricMatrix::from_dense(a.view()).unwrap();
    let same = top_eigenpairs(&packed, 5, Which::LargestAlgebraic, 1e-8).unwrap();
    assert_eq!(same.matvecs, pairs.matvecs);
    for i in 0..5 {
        assert_relative_eq!(same.values[i], pairs.values[i], max_relative = 1e-12);
    }
    // Ritz values interlace with the spectrum: none exceeds λ_max.
    assert!(pairs.values.iter().all(|&v| v <= lambda[N - 1] + 1e-12));
}

#[test]
fn marchenko_pastur_trace_and_log_det() {
    let lambda = marchenko_pastur_spectrum(N, 0.5);
    let a = rotated(&lambda, 6, 2);
    let exact_trace: f64 = lambda.sum();
    let exact_logdet: f64 = lambda.iter().map(|v| v.ln()).sum();
    let slq = Slq::new(SlqConfig {
        steps: 100,
        rule: StopRule::fixed(10),
        ..Default::default()
    })
    .unwrap();
    let t = slq.trace(&a, |x| x).unwrap();
    assert_relative_eq!(t.value, exact_trace, max_relative = 1e-2);
    let ld = slq.log_det(&a).unwrap();
    assert_relative_eq!(ld.value, exact_logdet, max_relative = 0.05);
    // The reported standard errors are honest: the errors lie within 4 SE.
    assert_abs_diff_eq!(t.value, exact_trace, epsilon = 4.0 * t.std_error);
    assert_abs_diff_eq!(ld.value, exact_logdet, epsilon = 4.0 * ld.std_error);
    let inv = slq.trace_inverse(&a).unwrap();
    let exact_inv: f64 = lambda.iter().map(|v| 1.0 / v).sum();
    assert_relative_eq!(inv.value, exact_inv, max_relative = 0.05);
    assert_eq!(t.matvecs, 1000);

    let pairs = top_eigenpairs(&a, 5, Which::LargestAlgebraic, 1e-8).unwrap();
    assert_relative_eq!(pairs.values[0], lambda[N - 1], max_relative = 1e-10);
    assert!(pairs.matvecs <= 169, "matvecs {}", pairs.matvecs);
}

#[test]
fn spiked_top5_and_other_ends() {
    let lambda = spiked_spectrum(N);
    let a = rotated(&lambda, 6, 3);
    let pairs = top_eigenpairs(&a, 5, Which::LargestAlgebraic, 1e-8).unwrap();
    for (i, want) in [100.0, 50.0, 20.0, 10.0, 5.0].iter().enumerate() {
        assert_relative_eq!(pairs.values[i], *want, max_relative = 1e-10);
        let r = eigen_residual(&a, pairs.values[i], pairs.vectors.column(i)).unwrap();
        assert!(r <= 1e-8 * want, "residual {r}");
    }
    assert!(pairs.matvecs <= 21, "matvecs {}", pairs.matvecs);
    let lm = top_eigenpairs(&a, 2, Which::LargestMagnitude, 1e-8).unwrap();
    assert_abs_diff_eq!(lm.values[0], 100.0, epsilon = 1e-8);
    assert_abs_diff_eq!(lm.values[1], 50.0, epsilon = 1e-8);
    // Smallest end through a shift: −A + 200 I has largest eigenvalues 200 − λ_min…
    let sa = top_eigenpairs(
        &ScaledOperator::new(&a, -1.0).unwrap(),
        1,
        Which::LargestAlgebraic,
        1e-8,
    )
    .unwrap();
    assert_abs_diff_eq!(sa.values[0], 0.0, epsilon = 1e-6);

    let power = deflated_power_iteration(
        &a,
        3,
        &PowerConfig {
            tol: 1e-10,
            ..Default::default()
        },
    )
    .unwrap();
    for (p, want) in power.iter().zip([100.0, 50.0, 20.0]) {
        assert!(p.converged(), "{} {:?}", p.value, p.stop);
        assert_relative_eq!(p.value, want, max_relative = 1e-10);
    }
}

#[test]
fn gauss_quadrature_moments_exact_up_to_2m_minus_1() {
    let n = 300;
    let m = 6;
    // Eigenvalues spread over three decades, so that degree 2m is visibly not integrated.
    let d = Array1::from_shape_fn(n, |i| 0.1 * 100f64.powf(i as f64 / n as f64));
    let a = Array2::from_diag(&d);
    let z = Array1::from_shape_fn(n, |i| if (i * 7919) % 3 == 0 { -1.0 } else { 1.0 });
    let l = Lanczos::new(LanczosConfig {
        steps: m,
        ..Default::default()
    })
    .unwrap();
    let dec = l.run(&a, z.view()).unwrap();
    let (nodes, weights) = dec.quadrature().unwrap();
    let nz2 = dec.start_norm * dec.start_norm;
    for p in 0..=(2 * m as i32) {
        let exact: f64 = d.iter().zip(&z).map(|(x, zi)| zi * zi * x.powi(p)).sum();
        let gauss = nz2
            * nodes
                .iter()
                .zip(&weights)
                .map(|(t, w)| w * t.powi(p))
                .sum::<f64>();
        let rel = ((gauss - exact) / exact).abs();
        if p < 2 * m as i32 {
            assert!(rel < 1e-12, "p = {p}: {rel}");
        } else {
            // Degree 2m is the first the m-point rule gets wrong (and it underestimates).
            assert!(rel > 1e-7 && gauss < exact, "p = {p}: {rel}");
        }
    }
}

#[test]
fn hutchinson_standard_error_matches_theory() {
    let n = 120;
    let a = Array2::from_shape_fn((n, n), |(i, j)| {
        ((i * 13 + j * 13 + i * j) % 17) as f64 / 17.0 - 0.5 + if i == j { 2.0 } else { 0.0 }
    });
    let a = (&a + &a.t()) * 0.5;
    let fro2: f64 = a.iter().map(|v| v * v).sum();
    let diag2: f64 = (0..n).map(|i| a[[i, i]].powi(2)).sum();
    let exact_trace: f64 = (0..n).map(|i| a[[i, i]]).sum();
    let nv = 10;
    let theory = (2.0 * (fro2 - diag2) / nv as f64).sqrt();
    // Empirical spread of the estimate over 400 independent runs: relative sampling error of a
    // standard deviation from 400 draws is about 1/√800 ≈ 3.5 %.
    let runs: Vec<f64> = (0..400)
        .map(|s| hutchinson(&a, &StopRule::fixed(nv), s).unwrap().value)
        .collect();
    let (mean, se_of_mean) = mean_and_standard_error(&runs);
    let spread = se_of_mean * (runs.len() as f64).sqrt();
    assert_relative_eq!(spread, theory, max_relative = 0.12);
    assert_abs_diff_eq!(mean, exact_trace, epsilon = 4.0 * se_of_mean);
    // The reported SE of a long run estimates the theory too.
    let long = hutchinson(&a, &StopRule::fixed(2000), 99).unwrap();
    let theory_long = (2.0 * (fro2 - diag2) / 2000.0).sqrt();
    assert_relative_eq!(long.std_error, theory_long, max_relative = 0.1);
}

#[test]
fn hutch_plus_plus_is_exact_on_low_rank_and_beats_hutchinson() {
    let n = 200;
    let spectrum = Array1::from_shape_fn(n, |i| if i < 5 { 10.0 * (i + 1) as f64 } else { 0.0 });
    let a = rotated(&spectrum, 4, 11);
    let t = hutch_plus_plus(&a, 30, 5).unwrap();
    assert_abs_diff_eq!(t.value, 150.0, epsilon = 1e-8);
    assert_eq!(t.matvecs, 10 + 5 + 10); // the sketch has rank 5: only 5 products for QᵀAQ
                                        // Decaying spectrum: Hutch++ error is smaller on average at equal budget.
    let decay = Array1::from_shape_fn(n, |i| 1.0 / (1.0 + i as f64).powi(2));
    let b = rotated(&decay, 4, 12);
    let exact: f64 = decay.sum();
    let (mut e_pp, mut e_h) = (0.0, 0.0);
    for s in 0..20 {
        e_pp += (hutch_plus_plus(&b, 30, s).unwrap().value - exact).powi(2);
        e_h += (hutchinson(&b, &StopRule::fixed(30), s).unwrap().value - exact).powi(2);
    }
    assert!(e_pp < 0.1 * e_h, "Hutch++ {e_pp} vs Hutchinson {e_h}");
}

#[test]
fn csr_laplacian_spectrum() {
    let n = 400;
    let mut t = Vec::new();
    for i in 0..n {
        t.push((i, i, 2.0));
        if i + 1 < n {
            t.push((i, i + 1, -1.0));
            t.push((i + 1, i, -1.0));
        }
    }
    let lap = CsrMatrix::from_triplets(n, n, &t).unwrap();
    let exact = |k: usize| 2.0 - 2.0 * (k as f64 * std::f64::consts::PI / (n as f64 + 1.0)).cos();
    let pairs = top_eigenpairs(&lap, 3, Which::LargestAlgebraic, 1e-10).unwrap();
    for i in 0..3 {
        assert_abs_diff_eq!(pairs.values[i], exact(n - i), epsilon = 1e-9);
    }
    // Spectral density of the Laplacian: arcsine law, W1 small.
    let all: Array1<f64> = (1..=n).map(exact).collect();
    let d = Slq::new(SlqConfig {
        steps: 60,
        ..Default::default()
    })
    .unwrap()
    .spectral_density(&lap)
    .unwrap();
    assert!(d.wasserstein1(all.view()).unwrap() / 4.0 < 2e-2);
}

#[test]
fn closures_and_f32() {
    let n = 500;
    let op = FnOperator::new(n, move |x: ArrayView1<f32>, mut y: ArrayViewMut1<f32>| {
        for i in 0..n {
            y[i] = (1.0 + i as f32 / n as f32) * x[i];
        }
    })
    .unwrap();
    let pairs = top_eigenpairs(&op, 2, Which::LargestAlgebraic, 1e-4f32).unwrap();
    assert_abs_diff_eq!(pairs.values[0], 1.0 + 499.0 / 500.0, epsilon = 1e-4);
    let slq = Slq::new(SlqConfig::<f32> {
        steps: 30,
        ..Default::default()
    })
    .unwrap();
    let t = slq.trace(&op, |x| x).unwrap();
    let exact: f32 = (0..n).map(|i| 1.0 + i as f32 / n as f32).sum();
    assert_abs_diff_eq!(t.value, exact, epsilon = 1e-3 * exact);
    let h = hutchinson(&op, &StopRule::fixed(3), 0).unwrap();
    assert_abs_diff_eq!(h.value, exact, epsilon = 1e-3 * exact);
}

#[test]
fn non_finite_operator_output_is_reported_everywhere() {
    let n = 40;
    let bad = FnOperator::new(n, |x: ArrayView1<f64>, mut y: ArrayViewMut1<f64>| {
        y.assign(&x);
        y[7] = f64::NAN;
    })
    .unwrap();
    let is_nonfinite = |e: Error| matches!(e, Error::NonFiniteOperatorOutput { index: 7, .. });
    assert!(is_nonfinite(
        top_eigenpairs(&bad, 2, Which::LargestAlgebraic, 1e-8).unwrap_err()
    ));
    assert!(is_nonfinite(
        power_iteration(&bad, &PowerConfig::default()).unwrap_err()
    ));
    assert!(is_nonfinite(
        hutchinson(&bad, &StopRule::default(), 0).unwrap_err()
    ));
    assert!(is_nonfinite(hutch_plus_plus(&bad, 9, 0).unwrap_err()));
    let slq = Slq::new(SlqConfig::default()).unwrap();
    assert!(is_nonfinite(slq.trace(&bad, |x| x).unwrap_err()));
    assert!(is_nonfinite(slq.spectral_density(&bad).unwrap_err()));
    let l = Lanczos::new(LanczosConfig::default()).unwrap();
    assert!(is_nonfinite(
        l.run(&bad, Array1::ones(n).view()).unwrap_err()
    ));
}

#[test]
fn bad_input_errors_name_the_parameter() {
    let a = Array2::<f64>::eye(5);
    let non_square = Array2::<f64>::zeros((5, 4));
    let msg = |e: Error| e.to_string();
    assert!(
        msg(top_eigenpairs(&non_square, 1, Which::LargestAlgebraic, 1e-8).unwrap_err())
            .contains("5×4")
    );
    assert!(
        msg(top_eigenpairs(&a, 6, Which::LargestAlgebraic, 1e-8).unwrap_err()).contains("`k` = 6")
    );
    assert!(msg(Lanczos::<f64>::new(LanczosConfig {
        steps: 0,
        ..Default::default()
    })
    .unwrap_err())
    .contains("`steps` = 0"));
    assert!(msg(Slq::<f64>::new(SlqConfig {
        steps: 0,
        ..Default::default()
    })
    .unwrap_err())
    .contains("steps"));
    assert!(msg(hutchinson(&non_square, &StopRule::default(), 0).unwrap_err()).contains("square"));
    assert!(
        msg(power_iteration(&non_square, &PowerConfig::default()).unwrap_err()).contains("square")
    );
    let csr = CsrMatrix::from_triplets(3, 4, &[(0, 3, 1.0)]).unwrap();
    assert!(
        msg(top_eigenpairs(&csr, 1, Which::LargestAlgebraic, 1e-8).unwrap_err()).contains("3×4")
    );
}

#[cfg(feature = "lapack")]
#[test]
fn dense_spectrum_matches_known_spectrum_and_lanczos() {
    let lambda = semicircle_spectrum(300);
    let a = rotated(&lambda, 6, 21);
    let dense = dense_spectrum(&a).unwrap();
    for (x, y) in dense.iter().zip(&lambda) {
        assert_abs_diff_eq!(x, y, epsilon = 1e-12);
    }
    let top = top_eigenpairs(&a, 3, Which::LargestAlgebraic, 1e-10).unwrap();
    for i in 0..3 {
        assert_abs_diff_eq!(top.values[i], dense[299 - i], epsilon = 1e-10);
    }
    let small = top_eigenpairs(&a, 3, Which::SmallestAlgebraic, 1e-10).unwrap();
    for i in 0..3 {
        assert_abs_diff_eq!(small.values[i], dense[i], epsilon = 1e-10);
    }
    let asym = Array2::from_shape_fn((3, 3), |(i, j)| (i * 3 + j) as f64);
    assert!(dense_spectrum(&asym)
        .unwrap_err()
        .to_string()
        .contains("symmetric"));
}
