//! One SGD training step (forward + backward + update) of a 784→512→512→10 ReLU MLP on a batch
//! of 256, and one exact Hessian-vector product on the same batch.
//!
//! The f32 step also runs in rayon pools of 1 and 2 threads (`sgd_step_1t`, `sgd_step_2t`), the
//! thread counts `scripts/bench_nn_torch.py` times PyTorch at. For a side-by-side comparison
//! without criterion's statistics, `TESSERA_NN_BEST_OF=R` makes this binary print the best of
//! `R` runs of 10 steps per thread count (after 10 warm-up steps) and exit
//! (`TESSERA_NN_THREADS=N` keeps one thread count):
//!
//! ```text
//! TESSERA_NN_BEST_OF=10 cargo bench -p tessera-nn --bench nn
//! python3 scripts/bench_nn_torch.py --threads 1 2
//! ```

use std::time::{Duration, Instant};

use criterion::Criterion;
use ndarray::{Array1, Array2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tessera_nn::{
    Float, LinearOperator, Loss, LrSchedule, Mlp, MlpConfig, OptimizerConfig, Targets, Trainer,
};

/// The benchmark's network, trainer and batch (uniform inputs in [0, 1), random labels).
fn setup<F: Float>() -> (Mlp<F>, Trainer<F>, Array2<F>, Vec<usize>) {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let x = Array2::from_shape_fn((256, 784), |_| {
        F::from_f64_rounded(rng.random_range(0.0..1.0))
    });
    let labels: Vec<usize> = (0..256).map(|_| rng.random_range(0..10)).collect();
    let mut mlp = Mlp::<F>::new(MlpConfig::new(784, vec![512, 512], 10), 0).unwrap();
    let trainer = Trainer::new(
        &mut mlp,
        OptimizerConfig::sgd(),
        LrSchedule::constant(0.01).unwrap(),
        None,
    )
    .unwrap();
    (mlp, trainer, x, labels)
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
}

fn bench_precision<F: Float>(c: &mut Criterion, name: &str) {
    let (mut mlp, mut trainer, x, labels) = setup::<F>();
    let targets = Targets::Hard(&labels);
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
    if name == "f32" {
        for threads in [1, 2] {
            // One `install` per step costs a few µs against milliseconds of work.
            let pool = pool(threads);
            group.bench_function(format!("sgd_step_{threads}t"), |b| {
                b.iter(|| {
                    pool.install(|| {
                        trainer
                            .step(&mut mlp, x.view(), &targets, Loss::SoftmaxCrossEntropy)
                            .unwrap()
                    })
                })
            });
        }
    }
    let op = mlp
        .hessian_operator(x.view(), targets, Loss::SoftmaxCrossEntropy)
        .unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let v: Array1<F> = (0..op.dim())
        .map(|_| F::from_f64_rounded(rng.random_range(-1.0..1.0)))
        .collect();
    let mut hv = Array1::zeros(op.dim());
    group.bench_function("hvp", |b| b.iter(|| op.apply(v.view(), hv.view_mut())));
    group.finish();
}

/// Best of `repeats` runs of 10 f32 steps, per thread count, in milliseconds per step.
fn best_of(repeats: usize) {
    let (mut mlp, mut trainer, x, labels) = setup::<f32>();
    let targets = Targets::Hard(&labels);
    // `TESSERA_NN_THREADS=1` (or 2) times one thread count only (e.g. under `perf stat`).
    let only: Option<usize> = std::env::var("TESSERA_NN_THREADS")
        .ok()
        .and_then(|t| t.parse().ok());
    for threads in [1, 2]
        .into_iter()
        .filter(|t| only.map_or(true, |o| o == *t))
    {
        let best = pool(threads).install(|| {
            let mut step = || {
                trainer
                    .step(&mut mlp, x.view(), &targets, Loss::SoftmaxCrossEntropy)
                    .unwrap();
            };
            (0..10).for_each(|_| step());
            (0..repeats)
                .map(|_| {
                    let start = Instant::now();
                    (0..10).for_each(|_| step());
                    start.elapsed().as_secs_f64() / 10.0
                })
                .fold(f64::INFINITY, f64::min)
        });
        println!("tessera threads={threads} best_ms={:.3}", best * 1e3);
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
    bench_precision::<f32>(&mut c, "f32");
    bench_precision::<f64>(&mut c, "f64");
    c.final_summary();
}
