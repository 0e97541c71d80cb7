//! Bad input and thread-count independence (issue 12).

use ndarray::Array2;
use tessera_lanczos::{power_iteration, top_eigenpairs, PowerConfig, SymmetricMatrix, Which};

fn in_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(f)
}

fn bits(v: impl IntoIterator<Item = f64>) -> Vec<u64> {
    v.into_iter().map(f64::to_bits).collect()
}

/// Exactly symmetric, large enough for the parallel triangle product (several blocks).
fn symmetric(n: usize) -> Array2<f64> {
    Array2::from_shape_fn((n, n), |(i, j)| {
        let (p, q) = (i.min(j), i.max(j));
        ((p * 7919 + q * 104_729) % 1009) as f64 / 97.0 - 5.0 + if p == q { 3.0 } else { 0.0 }
    })
}

#[test]
fn symmetric_paths_are_bit_identical_for_1_2_and_4_threads() {
    let a = symmetric(800);
    let packed = SymmetricMatrix::from_dense(a.view()).unwrap();
    let power = PowerConfig {
        max_iterations: 30,
        tol: 1e-14,
        ..Default::default()
    };
    let run = || {
        let dense = top_eigenpairs(&a, 2, Which::LargestAlgebraic, 1e-8).unwrap();
        let tri = top_eigenpairs(&packed, 2, Which::LargestAlgebraic, 1e-8).unwrap();
        let p_dense = power_iteration(&a, &power).unwrap();
        let p_tri = power_iteration(&packed, &power).unwrap();
        let mut out = bits(dense.values.iter().copied());
        out.extend(bits(dense.vectors.iter().copied()));
        out.extend(bits(tri.values.iter().copied()));
        out.extend(bits(tri.vectors.iter().copied()));
        out.extend(bits([p_dense.value, p_tri.value]));
        out.extend(bits(p_dense.vector.iter().copied()));
        out.extend(bits(p_tri.vector.iter().copied()));
        out
    };
    let one = in_pool(1, run);
    assert_eq!(one, in_pool(2, run), "1 vs 2 threads");
    assert_eq!(one, in_pool(4, run), "1 vs 4 threads");
}

#[test]
fn eigen_residual_rejects_non_finite_theta_and_x() {
    use tessera_lanczos::eigen_residual;
    let a = Array2::from_diag(&ndarray::arr1(&[1.0f64, 2.0, 3.0]));
    let x = ndarray::arr1(&[0.0, 0.0, 1.0]);
    for theta in [f64::NAN, f64::INFINITY] {
        let e = eigen_residual(&a, theta, x.view()).unwrap_err();
        assert!(e.to_string().contains("theta"), "{e}");
    }
    let bad = ndarray::arr1(&[0.0, f64::NAN, 1.0]);
    assert!(eigen_residual(&a, 3.0, bad.view()).is_err());
    assert_eq!(eigen_residual(&a, 3.0, x.view()).unwrap(), 0.0);
}

#[test]
fn non_symmetric_dense_matrices_are_rejected() {
    use tessera_lanczos::{Lanczos, LanczosConfig};
    // Upper triangular with eigenvalues 1..=50: not symmetric.
    let n = 50;
    let a = Array2::from_shape_fn((n, n), |(i, j)| {
        if i == j {
            (i + 1) as f64
        } else if j > i {
            1.0
        } else {
            0.0
        }
    });
    let e = top_eigenpairs(&a, 1, Which::LargestAlgebraic, 1e-8).unwrap_err();
    assert!(e.to_string().contains("symmetric"), "{e}");
    let e = power_iteration(&a, &PowerConfig::default()).unwrap_err();
    assert!(e.to_string().contains("symmetric"), "{e}");
    let lanczos = Lanczos::new(LanczosConfig::default()).unwrap();
    let start = ndarray::Array1::<f64>::ones(n);
    let e = lanczos.run(&a, start.view()).unwrap_err();
    assert!(e.to_string().contains("symmetric"), "{e}");
    // Rounding-level asymmetry is accepted.
    let mut s = Array2::from_diag(&ndarray::Array1::linspace(1.0, 50.0, n));
    s[[0, 1]] = 1.0;
    s[[1, 0]] = 1.0 + 1e-15;
    assert!(top_eigenpairs(&s, 1, Which::LargestAlgebraic, 1e-8).is_ok());
}
