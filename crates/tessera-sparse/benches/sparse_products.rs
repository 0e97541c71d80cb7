//! Sparse × dense products of a masked 1024×1024 layer with a 1024×256 dense matrix:
//! dense GEMM (`ndarray::dot`, matrixmultiply), `sprs` CSR × dense, and ours, in one run;
//! plus the masked weight gradient against dense-then-mask.
//!
//! `cargo bench -p tessera-sparse --bench sparse_products`

use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tessera_sparse::{CsrMatrix, Mask};

const ROWS: usize = 1024;
const INNER: usize = 1024;
const COLS: usize = 256;
const DENSITIES: [f64; 4] = [0.5, 0.3, 0.1, 0.05];

fn random_matrix(rows: usize, cols: usize, rng: &mut ChaCha8Rng) -> Array2<f32> {
    Array2::from_shape_fn((rows, cols), |_| rng.random_range(-1.0f32..1.0))
}

fn products(c: &mut Criterion) {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let x = random_matrix(INNER, COLS, &mut rng);
    let w_full = random_matrix(ROWS, INNER, &mut rng);
    let mut group = c.benchmark_group("spmm_1024x1024_x_1024x256_f32");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    // Dense GEMM cost does not depend on the density: one measurement is the baseline.
    group.bench_function("dense_ndarray_dot", |b| {
        b.iter(|| black_box(w_full.dot(&x)))
    });
    for density in DENSITIES {
        let mask = Mask::exact_count(ROWS * INNER, density, &mut rng).expect("valid density");
        let mut w = w_full.clone();
        mask.apply_view(w.view_mut()).expect("same size");
        let ours = CsrMatrix::from_masked(w.view(), &mask).expect("same size");
        let theirs = sprs::CsMat::csr_from_dense(w.view(), 0.0);
        group.bench_with_input(BenchmarkId::new("sprs", density), &density, |b, _| {
            b.iter(|| black_box(&theirs * &x))
        });
        group.bench_with_input(BenchmarkId::new("tessera", density), &density, |b, _| {
            b.iter(|| black_box(ours.matmul(x.view()).expect("shapes agree")))
        });
        group.bench_with_input(
            BenchmarkId::new("tessera_1_thread", density),
            &density,
            |b, _| {
                single_thread()
                    .install(|| b.iter(|| black_box(ours.matmul(x.view()).expect("shapes agree"))))
            },
        );
    }
    group.finish();
}

/// A one-thread rayon pool, for a like-for-like comparison with the single-threaded dense
/// GEMM and `sprs`.
fn single_thread() -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("a one-thread pool")
}

fn gradients(c: &mut Criterion) {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let dy = random_matrix(ROWS, COLS, &mut rng);
    let x = random_matrix(INNER, COLS, &mut rng);
    let mut group = c.benchmark_group("masked_gradient_1024x256_x_256x1024_f32");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    group.bench_function("dense_dot_unmasked", |b| {
        b.iter(|| black_box(dy.dot(&x.t())))
    });
    for density in [0.3, 0.1] {
        let mask = Mask::exact_count(ROWS * INNER, density, &mut rng).expect("valid density");
        let pattern = CsrMatrix::<f32>::zeros_like_mask(ROWS, INNER, &mask).expect("same size");
        group.bench_with_input(BenchmarkId::new("tessera", density), &density, |b, _| {
            b.iter(|| {
                black_box(
                    pattern
                        .masked_gradient(dy.view(), x.view())
                        .expect("shapes"),
                )
            })
        });
        group.bench_with_input(
            BenchmarkId::new("tessera_1_thread", density),
            &density,
            |b, _| {
                single_thread().install(|| {
                    b.iter(|| {
                        black_box(
                            pattern
                                .masked_gradient(dy.view(), x.view())
                                .expect("shapes"),
                        )
                    })
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, products, gradients);
criterion_main!(benches);
