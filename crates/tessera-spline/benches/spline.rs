//! Criterion benches: local complexity of 1,024 points with P = 40 on a 784→[200]×4 MLP (the
//! paper's MNIST setting), and the exact partition of a 784→[64]×3 net on a plane through three
//! inputs (small sample sizes: the CI machine is shared).

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tessera_nn::{Mlp, MlpConfig};
use tessera_spline::{
    LocalComplexityConfig, LocalComplexityEstimator, Partition2d, PartitionConfig, Plane, Polygon,
};

fn inputs(rows: usize, seed: u64) -> Array2<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Array2::from_shape_fn((rows, 784), |_| rng.random::<f32>())
}

fn benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("spline");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));

    let mlp = Mlp::<f32>::new(MlpConfig::new(784, vec![200; 4], 10), 0).expect("mlp");
    let x = inputs(1024, 1);
    let est = LocalComplexityEstimator::new(
        LocalComplexityConfig {
            radius: 0.05,
            num_vertices: 40,
            ..LocalComplexityConfig::default()
        },
        784,
    )
    .expect("estimator");
    group.bench_function("lc_1024pts_P40_784x200x4_f32", |b| {
        b.iter(|| est.compute(&mlp, x.view()).expect("lc"))
    });

    let net = Mlp::<f64>::new(MlpConfig::new(784, vec![64; 3], 10), 2).expect("mlp");
    let x3 = inputs(3, 3).mapv(f64::from);
    let plane = Plane::through_points(x3.row(0), x3.row(1), x3.row(2)).expect("plane");
    let domain = Polygon::rectangle([-1.0, -1.0], [2.0, 2.0]).expect("domain");
    group.bench_function("partition2d_784x64x3", |b| {
        b.iter(|| {
            Partition2d::compute(&net, &plane, &domain, PartitionConfig::default())
                .expect("partition")
        })
    });
    group.finish();
}

criterion_group!(spline, benches);
criterion_main!(spline);
