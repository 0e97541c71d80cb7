//! One training step (forward, backward, SGD update) of the issue's small CNN on a batch of
//! 128 f32 images of 3×32×32: conv 3×3 3→32, batch norm, ReLU, 2×2 max-pool, conv 3×3 32→64,
//! batch norm, ReLU, 2×2 max-pool, global average pool, dense 64→10; and one exact
//! Gauss–Newton-vector product of the same network on a batch of 32.
//!
//! The step runs in rayon pools of 1 and 2 threads. `TESSERA_NN_BEST_OF=R` prints the best of
//! `R` runs of 3 steps per thread count (after 2 warm-up steps) and exits, for side-by-side
//! comparisons with `scripts/bench_layers_torch.py`:
//!
//! ```text
//! TESSERA_NN_BEST_OF=5 cargo bench -p tessera-nn --bench layers
//! python3 scripts/bench_layers_torch.py --threads 1 2
//! ```

use std::time::{Duration, Instant};

use criterion::Criterion;
use ndarray::{Array1, ArrayD, IxDyn};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tessera_nn::layers::{BatchNorm, Conv2d, Dense, GlobalAvgPool, MaxPool2d, Relu};
use tessera_nn::{LinearOperator, Loss, Mode, Optimizer, OptimizerConfig, Sequential, Targets};

fn network() -> Sequential<f32> {
    Sequential::new(&[3, 32, 32], 0)
        .and_then(|n| n.push("conv1", Conv2d::square(3, 32, 3, 1, 1)?))
        .and_then(|n| n.push("bn1", BatchNorm::new(32)?))
        .and_then(|n| n.push("relu1", Relu))
        .and_then(|n| n.push("pool1", MaxPool2d::square(2)?))
        .and_then(|n| n.push("conv2", Conv2d::square(32, 64, 3, 1, 1)?))
        .and_then(|n| n.push("bn2", BatchNorm::new(64)?))
        .and_then(|n| n.push("relu2", Relu))
        .and_then(|n| n.push("pool2", MaxPool2d::square(2)?))
        .and_then(|n| n.push("gap", GlobalAvgPool))
        .and_then(|n| n.push("fc", Dense::new(64, 10)?))
        .unwrap()
}

fn batch(n: usize) -> (ArrayD<f32>, Vec<usize>) {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let x = ArrayD::from_shape_fn(IxDyn(&[n, 3, 32, 32]), |_| rng.random_range(-1.0..1.0));
    let labels = (0..n).map(|_| rng.random_range(0..10)).collect();
    (x, labels)
}

fn step(net: &mut Sequential<f32>, opt: &mut Optimizer<f32>, x: &ArrayD<f32>, labels: &[usize]) {
    let (_, grad) = net
        .loss_and_gradient(
            x.view(),
            &Targets::Hard(labels),
            Loss::SoftmaxCrossEntropy,
            Mode::Train,
        )
        .unwrap();
    opt.step_sequential(net, grad.view(), 0.01).unwrap();
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
}

fn best_of(repeats: usize) {
    let (x, labels) = batch(128);
    for threads in [1, 2] {
        let mut net = network();
        let mut opt = Optimizer::for_sequential(OptimizerConfig::sgd(), &net).unwrap();
        let best = pool(threads).install(|| {
            (0..2).for_each(|_| step(&mut net, &mut opt, &x, &labels));
            (0..repeats)
                .map(|_| {
                    let start = Instant::now();
                    (0..3).for_each(|_| step(&mut net, &mut opt, &x, &labels));
                    start.elapsed().as_secs_f64() / 3.0
                })
                .fold(f64::INFINITY, f64::min)
        });
        println!("tessera cnn threads={threads} best_ms={:.2}", best * 1e3);
    }
}

fn main() {
    if let Some(repeats) = std::env::var("TESSERA_NN_BEST_OF")
        .ok()
        .and_then(|r| r.parse::<usize>().ok())
    {
        best_of(repeats.max(1));
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    let mut group = c.benchmark_group("cnn_3x32x32_b128_f32");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5))
        .warm_up_time(Duration::from_secs(1));
    let (x, labels) = batch(128);
    for threads in [1, 2] {
        let pool = pool(threads);
        let mut net = network();
        let mut opt = Optimizer::for_sequential(OptimizerConfig::sgd(), &net).unwrap();
        group.bench_function(format!("sgd_step_{threads}t"), |b| {
            b.iter(|| pool.install(|| step(&mut net, &mut opt, &x, &labels)))
        });
    }
    let net = network();
    let (x, labels) = batch(32);
    let op = net
        .gauss_newton_operator(x.view(), Targets::Hard(&labels), Loss::SoftmaxCrossEntropy)
        .unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let v: Array1<f32> = (0..op.dim()).map(|_| rng.random_range(-1.0..1.0)).collect();
    let mut gv = Array1::zeros(op.dim());
    group.bench_function("ggn_vector_b32", |b| {
        b.iter(|| op.apply(v.view(), gv.view_mut()))
    });
    group.finish();
    c.final_summary();
}
