//! Times one SGD training step (forward + backward + update) of a 784→512→512→10 ReLU MLP on a
//! batch of 256 with softmax cross-entropy, and one Hessian-vector product on the same batch.
//! `benches/compare/nn_numpy.py` runs it beside the same step written in numpy.
//!
//! `cargo run --release -p tessera-nn --example step_throughput -- [steps] [f32|f64]`
//! prints `step_ms <median>` and `hvp_ms <median>` (milliseconds).

use std::time::Instant;

use ndarray::{Array1, Array2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tessera_nn::{
    Float, LinearOperator, Loss, LrSchedule, Mlp, MlpConfig, OptimizerConfig, Targets, Trainer,
};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn run<F: Float>(steps: usize) -> tessera_nn::Result<(f64, f64)> {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let x = Array2::from_shape_fn((256, 784), |_| {
        F::from_f64_rounded(rng.random_range(0.0..1.0))
    });
    let labels: Vec<usize> = (0..256).map(|_| rng.random_range(0..10)).collect();
    let targets = Targets::Hard(&labels);
    let mut mlp = Mlp::<F>::new(MlpConfig::new(784, vec![512, 512], 10), 0)?;
    let mut trainer = Trainer::new(
        &mut mlp,
        OptimizerConfig::sgd(),
        LrSchedule::constant(0.01)?,
        None,
    )?;
    let mut times = Vec::with_capacity(steps);
    for i in 0..steps + 2 {
        let start = Instant::now();
        trainer.step(&mut mlp, x.view(), &targets, Loss::SoftmaxCrossEntropy)?;
        if i >= 2 {
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    let op = mlp.hessian_operator(x.view(), targets, Loss::SoftmaxCrossEntropy)?;
    let v: Array1<F> = (0..op.dim())
        .map(|_| F::from_f64_rounded(rng.random_range(-1.0..1.0)))
        .collect();
    let mut hv = Array1::zeros(op.dim());
    let mut hvp_times = Vec::new();
    for i in 0..(steps / 2).max(3) + 1 {
        let start = Instant::now();
        op.apply(v.view(), hv.view_mut());
        if i >= 1 {
            hvp_times.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    Ok((median(times), median(hvp_times)))
}

fn main() -> tessera_nn::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let steps = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(20);
    let precision = args.get(2).map(String::as_str).unwrap_or("f32");
    let (step_ms, hvp_ms) = match precision {
        "f64" => run::<f64>(steps)?,
        _ => run::<f32>(steps)?,
    };
    println!("precision {precision}");
    println!("step_ms {step_ms:.3}");
    println!("hvp_ms {hvp_ms:.3}");
    Ok(())
}
