//! Criterion benches: top-5 eigenpairs and SLQ on a dense n = 1000 operator with a known
//! spectrum, and one product with a dense and a packed symmetric n = 2000 matrix (small sample
//! sizes: the CI machine is shared).

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use ndarray::{Array1, Array2};
use tessera_lanczos::{
    top_eigenpairs, tridiagonal_eigen, EigenvectorMode, LinearOperator, Slq, SlqConfig, StopRule,
    SymmetricMatrix, Which,
};

/// Symmetric n × n matrix `A = D + u·uᵀ/n` style with a semicircle-like spread (cheap to build).
fn test_matrix(n: usize) -> Array2<f64> {
    let d = Array1::from_shape_fn(n, |i| {
        2.0 * (std::f64::consts::PI * (i as f64 + 0.5) / n as f64).cos()
    });
    let u = Array1::from_shape_fn(n, |i| ((i * 7919) % 101) as f64 / 101.0 - 0.5);
    let mut a = Array2::from_diag(&d);
    for i in 0..n {
        for j in 0..n {
            a[[i, j]] += u[i] * u[j] / n as f64;
        }
    }
    a
}

fn benches(c: &mut Criterion) {
    let a = test_matrix(1000);
    let mut group = c.benchmark_group("lanczos");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3));
    group.bench_function("top5_LA_tol1e-8_n1000", |b| {
        b.iter(|| top_eigenpairs(&a, 5, Which::LargestAlgebraic, 1e-8).unwrap())
    });
    let slq = Slq::new(SlqConfig {
        steps: 100,
        rule: StopRule::fixed(10),
        ..Default::default()
    })
    .unwrap();
    group.bench_function("slq_density_nv10_m100_n1000", |b| {
        b.iter(|| slq.spectral_density(&a).unwrap())
    });
    let alpha = Array1::from_shape_fn(200, |i| (i as f64).sin());
    let beta = Array1::from_shape_fn(199, |i| 1.0 + (i as f64).cos().abs());
    group.bench_function("tridiagonal_first_components_m200", |b| {
        b.iter(|| {
            tridiagonal_eigen(alpha.view(), beta.view(), EigenvectorMode::FirstComponents).unwrap()
        })
    });
    let big = test_matrix(2000);
    let packed = SymmetricMatrix::from_upper(big.view()).unwrap();
    let x = Array1::from_shape_fn(2000, |i| (i as f64 * 0.1).sin());
    let mut y = Array1::zeros(2000);
    group.bench_function("matvec_dense_n2000", |b| {
        b.iter(|| big.apply(x.view(), y.view_mut()))
    });
    group.bench_function("matvec_symmetric_packed_n2000", |b| {
        b.iter(|| packed.apply(x.view(), y.view_mut()))
    });
    group.finish();
}

criterion_group!(lanczos, benches);
criterion_main!(lanczos);
