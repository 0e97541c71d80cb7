//! Sparse × dense products of masked layers (`W · B`, three layer shapes, densities 0.5 down
//! to 0.005) and the masked weight gradient, one benchmark group per implementation:
//!
//! - `spmm_sprs/<shape>`: sprs 0.11 alone, on its two fastest paths for a row-major operand
//!   (`&CsMat * &Array2`, and `csr_mulacc_dense_rowmaj` into a reused output zeroed in the
//!   timed region). These groups contain nothing else and run first, before tessera's rayon
//!   pools exist, so that nothing else runs while sprs is timed (the earlier bench timed sprs
//!   in the same group as the multi-threaded product and reported sprs several times slower
//!   than it is on its own);
//! - `spmm_tessera_1_thread/<shape>` and `spmm_tessera_2_threads/<shape>`: `CsrMatrix::matmul`
//!   in a rayon pool of that size, created for the group and dropped after it;
//! - `masked_gradient_dense_then_mask/<shape>` (matrixmultiply GEMM, then the mask) and
//!   `masked_gradient_tessera_{1_thread,2_threads}/<shape>`.
//!
//! Ratios are the quotient of two groups' medians for the same shape and density, and they are
//! only meaningful on a quiet machine: under load, criterion's mean wall time grows faster
//! than linearly with the length of a call (a 12 ms call is preempted several times, a 3 ms
//! one rarely), so the slower contender looks slower still. On 2026-11-30 at load average ~10
//! this bench put sprs at 100–125 ms for the 1024×1024 layer at density 0.1, against
//! 11–17 ms best-of-15 in `examples/vs_sprs.rs` (interleaved runs, same process), whose ratios
//! are the ones to quote on a shared machine.
//!
//! `cargo bench -p tessera-sparse --bench sparse_products`

use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tessera_sparse::{CsrMatrix, Mask};

/// (rows of W, columns of W = rows of B, columns of B).
const SHAPES: [(usize, usize, usize); 3] = [(1024, 1024, 256), (512, 2304, 128), (4096, 1024, 64)];
const DENSITIES: [f64; 6] = [0.5, 0.3, 0.1, 0.05, 0.01, 0.005];

fn random_matrix(rows: usize, cols: usize, rng: &mut ChaCha8Rng) -> Array2<f32> {
    Array2::from_shape_fn((rows, cols), |_| rng.random_range(-1.0f32..1.0))
}

/// One product to time: the masked weight in both formats, its mask and the dense operands.
struct Case {
    shape: String,
    density: f64,
    ours: CsrMatrix<f32>,
    theirs: sprs::CsMat<f32>,
    mask: Mask,
    b: Array2<f32>,
    dy: Array2<f32>,
}

/// The same cases (same seed) for every group.
fn cases() -> Vec<Case> {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut cases = Vec::new();
    for (m, k, n) in SHAPES {
        let b = random_matrix(k, n, &mut rng);
        let dy = random_matrix(m, n, &mut rng);
        for density in DENSITIES {
            let mask = Mask::exact_count(m * k, density, &mut rng).expect("valid density");
            let mut w = random_matrix(m, k, &mut rng);
            mask.apply_view(w.view_mut()).expect("same size");
            let ours = CsrMatrix::from_masked(w.view(), &mask).expect("same size");
            let theirs = sprs::CsMat::new(
                (m, k),
                ours.indptr().to_vec(),
                ours.indices().to_vec(),
                ours.values().to_vec(),
            );
            cases.push(Case {
                shape: format!("{m}x{k}_x_{k}x{n}"),
                density,
                ours,
                theirs,
                mask,
                b: b.clone(),
                dy: dy.clone(),
            });
        }
    }
    cases
}

fn configure(
    c: &mut Criterion,
    name: String,
) -> criterion::BenchmarkGroup<'_, criterion::measurement::WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    group
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a rayon pool")
}

fn sprs_products(c: &mut Criterion) {
    let cases = cases();
    for chunk in cases.chunk_by(|a, b| a.shape == b.shape) {
        let mut group = configure(c, format!("spmm_sprs/{}", chunk[0].shape));
        for case in chunk {
            group.bench_with_input(
                BenchmarkId::new("mul", case.density),
                case,
                |bench, case| bench.iter(|| black_box(&case.theirs * &case.b)),
            );
            let mut out = Array2::<f32>::zeros((case.ours.dim().0, case.b.ncols()));
            group.bench_with_input(
                BenchmarkId::new("mulacc", case.density),
                case,
                |bench, case| {
                    bench.iter(|| {
                        out.fill(0.0);
                        sprs::prod::csr_mulacc_dense_rowmaj(
                            case.theirs.view(),
                            case.b.view(),
                            out.view_mut(),
                        );
                        black_box(&out);
                    })
                },
            );
        }
        group.finish();
    }
}

fn tessera_products(c: &mut Criterion) {
    let cases = cases();
    for (threads, label) in [(1, "1_thread"), (2, "2_threads")] {
        let pool = pool(threads);
        for chunk in cases.chunk_by(|a, b| a.shape == b.shape) {
            let mut group = configure(c, format!("spmm_tessera_{label}/{}", chunk[0].shape));
            for case in chunk {
                group.bench_with_input(
                    BenchmarkId::from_parameter(case.density),
                    case,
                    |bench, case| {
                        pool.install(|| {
                            bench.iter(|| {
                                black_box(case.ours.matmul(case.b.view()).expect("shapes agree"))
                            })
                        })
                    },
                );
            }
            group.finish();
        }
    }
}

fn gradients(c: &mut Criterion) {
    let cases = cases();
    for chunk in cases.chunk_by(|a, b| a.shape == b.shape) {
        let mut group = configure(
            c,
            format!("masked_gradient_dense_then_mask/{}", chunk[0].shape),
        );
        for case in chunk {
            group.bench_with_input(
                BenchmarkId::from_parameter(case.density),
                case,
                |bench, case| {
                    bench.iter(|| {
                        let mut g = case.dy.dot(&case.b.t());
                        case.mask.apply_view(g.view_mut()).expect("same size");
                        black_box(g)
                    })
                },
            );
        }
        group.finish();
    }
    for (threads, label) in [(1, "1_thread"), (2, "2_threads")] {
        let pool = pool(threads);
        for chunk in cases.chunk_by(|a, b| a.shape == b.shape) {
            let mut group = configure(
                c,
                format!("masked_gradient_tessera_{label}/{}", chunk[0].shape),
            );
            for case in chunk {
                group.bench_with_input(
                    BenchmarkId::from_parameter(case.density),
                    case,
                    |bench, case| {
                        pool.install(|| {
                            bench.iter(|| {
                                black_box(
                                    case.ours
                                        .masked_gradient(case.dy.view(), case.b.view())
                                        .expect("shapes agree"),
                                )
                            })
                        })
                    },
                );
            }
            group.finish();
        }
    }
}

// sprs first: none of the tessera pools exists yet while it is timed.
criterion_group!(benches, sprs_products, tessera_products, gradients);
criterion_main!(benches);
