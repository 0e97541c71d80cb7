//! Criterion benches: a MixMatch batch of SSLH-sized spectrograms (64 mel bands × 431 frames,
//! ESC-10) and the losses on a (256, 10) batch of logits.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use ndarray::{Array2, Array3};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tessera_ssl::{
    jensen_shannon, mse_probabilities, sharpen, soft_cross_entropy, softmax, MixMatch,
    MixMatchConfig,
};

fn random_matrix(rng: &mut ChaCha8Rng, rows: usize, cols: usize) -> Array2<f32> {
    Array2::from_shape_fn((rows, cols), |_| rng.random_range(-3.0..3.0))
}

fn mixmatch_batch(c: &mut Criterion) {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let (batch, mels, frames, classes) = (32, 64, 431, 10);
    let labelled = Array3::<f32>::from_shape_fn((batch, mels, frames), |(b, m, t)| {
        ((b * 7 + m * 3 + t) % 97) as f32 - 80.0
    });
    let targets =
        Array2::<f32>::from_shape_fn(
            (batch, classes),
            |(b, k)| {
                if k == b % classes {
                    1.0
                } else {
                    0.0
                }
            },
        );
    let views = [labelled.mapv(|v| v + 1.0), labelled.mapv(|v| v - 1.0)];
    let logits = [
        random_matrix(&mut rng, batch, classes),
        random_matrix(&mut rng, batch, classes),
    ];
    let mixmatch = MixMatch::new(MixMatchConfig::default()).unwrap();
    let mut group = c.benchmark_group("mixmatch");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3));
    group.bench_function("build_batch 32+2x32 of 64x431", |b| {
        b.iter(|| {
            mixmatch
                .build_batch(
                    labelled.view(),
                    targets.view(),
                    &[views[0].view(), views[1].view()],
                    &[logits[0].view(), logits[1].view()],
                    &mut rng,
                )
                .unwrap()
        })
    });
    group.finish();
}

fn losses(c: &mut Criterion) {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let z = random_matrix(&mut rng, 256, 10);
    let other = random_matrix(&mut rng, 256, 10);
    let q = softmax(other.view()).unwrap();
    let mut group = c.benchmark_group("losses 256x10");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(2));
    group.bench_function("soft_cross_entropy", |b| {
        b.iter(|| soft_cross_entropy(z.view(), q.view()).unwrap())
    });
    group.bench_function("mse_probabilities", |b| {
        b.iter(|| mse_probabilities(z.view(), q.view()).unwrap())
    });
    group.bench_function("jensen_shannon", |b| {
        b.iter(|| jensen_shannon(z.view(), other.view()).unwrap())
    });
    group.bench_function("sharpen", |b| b.iter(|| sharpen(q.view(), 0.5).unwrap()));
    group.finish();
}

criterion_group!(benches, mixmatch_batch, losses);
criterion_main!(benches);
