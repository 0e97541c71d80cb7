//! GPU hot paths against the CPU crates: batched log-mel of 256 × 10 s clips (issue target:
//! at least 2× faster than torch.stft + mel matmul, timed by scripts/gpu_vs_torch.py), the
//! CSR product of random pruning's layer shapes, and mixup on device tensors. Every GPU timing
//! synchronises the stream before the clock stops. Without a device it prints
//! `skipped: no CUDA device` and exits.

use std::time::{Duration, Instant};

use criterion::{black_box, Criterion};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tessera_gpu::{DeviceTensor, GpuContext, LogMelPlan};
use tessera_spectro::{LogMelConfig, LogMelSpectrogram};

/// Times `work` on the device: the stream is synchronised inside every iteration.
fn device_timed(context: &GpuContext, iterations: u64, mut work: impl FnMut()) -> Duration {
    context.synchronize().expect("sync");
    let start = Instant::now();
    for _ in 0..iterations {
        work();
    }
    context.synchronize().expect("sync");
    start.elapsed()
}

fn log_mel(c: &mut Criterion, context: &GpuContext) {
    let sample_rate = 22_050.0;
    let plan = LogMelSpectrogram::<f32>::new(LogMelConfig::librosa(sample_rate)).expect("plan");
    let device_plan = LogMelPlan::new(context, plan.gpu_plan_config()).expect("device plan");
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let clips = Array2::from_shape_fn((256, 10 * 22_050), |_| rng.random_range(-0.5f32..0.5));
    let on_device = DeviceTensor::from_host(context, clips.view().into_dyn()).expect("upload");
    let mut group = c.benchmark_group("log_mel_256x10s");
    group.sample_size(10);
    group.bench_function("gpu_device_resident", |b| {
        b.iter_custom(|iterations| {
            device_timed(context, iterations, || {
                black_box(
                    device_plan
                        .compute_batch_device(context, &on_device)
                        .expect("gpu"),
                );
            })
        })
    });
    group.bench_function("gpu_with_transfers", |b| {
        b.iter(|| {
            black_box(
                device_plan
                    .compute_batch(context, clips.view())
                    .expect("gpu"),
            )
        })
    });
    std::env::set_var(tessera_gpu::DEVICE_ENV, "cpu");
    group.bench_function("cpu_tessera_spectro", |b| {
        b.iter(|| black_box(plan.compute_batch(clips.view()).expect("cpu")))
    });
    std::env::remove_var(tessera_gpu::DEVICE_ENV);
    group.finish();
}

fn sparse(c: &mut Criterion, context: &GpuContext) {
    let mut group = c.benchmark_group("csr_matmul");
    group.sample_size(20);
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    for (nrows, ncols, n) in [(1024, 1024, 256), (512, 2304, 128), (4096, 1024, 64)] {
        for density in [0.1, 0.01] {
            let weights = Array2::from_shape_fn((nrows, ncols), |_| rng.random_range(-1.0f32..1.0));
            let keep: Vec<bool> = (0..nrows * ncols)
                .map(|_| rng.random_bool(density))
                .collect();
            let mask = tessera_sparse::Mask::from_bools(&keep);
            let w = tessera_sparse::CsrMatrix::from_masked(weights.view(), &mask).expect("csr");
            let b = Array2::from_shape_fn((ncols, n), |_| rng.random_range(-1.0f32..1.0));
            let device = w.to_device(context).expect("upload");
            let name = format!("{nrows}x{ncols}x{n}_d{density}");
            group.bench_function(format!("gpu/{name}"), |bench| {
                bench.iter(|| black_box(device.matmul(context, b.view()).expect("gpu")))
            });
            group.bench_function(format!("cpu/{name}"), |bench| {
                bench.iter(|| {
                    black_box(
                        w.matmul_with(b.view(), tessera_sparse::SpmmKernel::Auto)
                            .expect("cpu"),
                    )
                })
            });
        }
    }
    group.finish();
}

fn mixup(c: &mut Criterion, context: &GpuContext) {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let x = ndarray::Array4::from_shape_fn((256, 1, 64, 431), |_| rng.random_range(-80.0f32..0.0));
    let device_x = DeviceTensor::from_host(context, x.view().into_dyn()).expect("upload");
    let partners: Vec<usize> = (0..256).rev().collect();
    let lambdas: Vec<f32> = (0..256).map(|_| rng.random_range(0.0..1.0)).collect();
    let mut group = c.benchmark_group("mixup_256x64x431");
    group.bench_function("gpu_device_resident", |b| {
        b.iter_custom(|iterations| {
            device_timed(context, iterations, || {
                black_box(
                    tessera_gpu::augment::mixup(context, &device_x, &device_x, &partners, &lambdas)
                        .expect("gpu"),
                );
            })
        })
    });
    let targets = Array2::<f32>::zeros((256, 10));
    let lambdas = ndarray::Array1::from(lambdas);
    let partner_x = x.select(ndarray::Axis(0), &partners);
    group.bench_function("cpu_tessera_augment", |b| {
        b.iter(|| {
            black_box(
                tessera_augment::mix_items(
                    x.view(),
                    targets.view(),
                    partner_x.view(),
                    targets.view(),
                    lambdas.view(),
                )
                .expect("cpu"),
            )
        })
    });
    group.finish();
}

fn main() {
    let context = match GpuContext::new(0) {
        Ok(context) => context,
        Err(e) => {
            println!("skipped: no CUDA device ({e})");
            return;
        }
    };
    println!("device: {}", context.device_name());
    let mut c = Criterion::default().configure_from_args();
    log_mel(&mut c, &context);
    sparse(&mut c, &context);
    mixup(&mut c, &context);
    c.final_summary();
}
