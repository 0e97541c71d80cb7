//! One SGD training step (forward + backward + update) of a 784→512→512→10 ReLU MLP on a batch
//! of 256, and one exact Hessian-vector product on the same batch.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use ndarray::{Array1, Array2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tessera_nn::{
    Float, LinearOperator, Loss, LrSchedule, Mlp, MlpConfig, OptimizerConfig, Targets, Trainer,
};

fn bench_precision<F: Float>(c: &mut Criterion, name: &str) {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let x = Array2::from_shape_fn((256, 784), |_| {
        F::from_f64_rounded(rng.random_range(0.0..1.0))
    });
    let labels: Vec<usize> = (0..256).map(|_| rng.random_range(0..10)).collect();
    let targets = Targets::Hard(&labels);
    let mut mlp = Mlp::<F>::new(MlpConfig::new(784, vec![512, 512], 10), 0).unwrap();
    let mut trainer = Trainer::new(
        &mut mlp,
        OptimizerConfig::sgd(),
        LrSchedule::constant(0.01).unwrap(),
        None,
    )
    .unwrap();
    let mut group = c.benchmark_group(format!("mlp_784_512_512_10_b256_{name}"));
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    group.bench_function("sgd_step", |b| {
        b.iter(|| {
            trainer
                .step(&mut mlp, x.view(), &targets, Loss::SoftmaxCrossEntropy)
                .unwrap()
        })
    });
    let op = mlp
        .hessian_operator(x.view(), targets, Loss::SoftmaxCrossEntropy)
        .unwrap();
    let v: Array1<F> = (0..op.dim())
        .map(|_| F::from_f64_rounded(rng.random_range(-1.0..1.0)))
        .collect();
    let mut hv = Array1::zeros(op.dim());
    group.bench_function("hvp", |b| b.iter(|| op.apply(v.view(), hv.view_mut())));
    group.finish();
}

fn benches(c: &mut Criterion) {
    bench_precision::<f32>(c, "f32");
    bench_precision::<f64>(c, "f64");
}

criterion_group!(nn, benches);
criterion_main!(nn);
