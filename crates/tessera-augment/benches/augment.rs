//! mixup and CutOutSpec on a batch of 128 log-mel spectrograms of 64×431 (ESC-10 size), and
//! the Fourier low-pass crop of 32 images 3×224×224 → 160×160.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use ndarray::{Array2, Array3, Array4};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tessera_augment::{CutOutSpec, FourierCrop, LambdaRule, LambdaScope, Mixup};

fn spectrogram_batch() -> (Array3<f32>, Array2<f32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let specs = Array3::from_shape_fn((128, 64, 431), |_| rng.random::<f32>() * 80.0 - 80.0);
    let targets = Array2::from_shape_fn((128, 10), |(i, j)| if i % 10 == j { 1.0 } else { 0.0 });
    (specs, targets)
}

fn bench_spectrograms(c: &mut Criterion) {
    let (specs, targets) = spectrogram_batch();
    let mut group = c.benchmark_group("spectrogram_batch_128x64x431");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3));
    let mixup = Mixup::new(0.75, LambdaRule::MixMatch, LambdaScope::PerItem).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    group.bench_function("mixup_batch", |b| {
        b.iter(|| {
            mixup
                .mix_batch(specs.view(), targets.view(), &mut rng)
                .unwrap()
        })
    });
    let cut = CutOutSpec::sslh_weak();
    group.bench_function("cutoutspec_batch", |b| {
        b.iter(|| cut.apply_batch(specs.view(), &mut rng).unwrap())
    });
    group.finish();
}

fn bench_fourier(c: &mut Criterion) {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let images32 = Array4::from_shape_fn((32, 3, 224, 224), |_| rng.random::<f32>());
    let images64 = images32.mapv(f64::from);
    let plan32 = FourierCrop::<f32>::new(tessera_augment::FourierCropConfig {
        height: 224,
        width: 224,
        out_height: 160,
        out_width: 160,
    })
    .unwrap();
    let plan64 = FourierCrop::<f64>::new(tessera_augment::FourierCropConfig {
        height: 224,
        width: 224,
        out_height: 160,
        out_width: 160,
    })
    .unwrap();
    let mut group = c.benchmark_group("fourier_crop_32x3x224x224_to_160");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3));
    group.bench_function("f32", |b| {
        b.iter(|| plan32.crop_batch(images32.view()).unwrap())
    });
    group.bench_function("f64", |b| {
        b.iter(|| plan64.crop_batch(images64.view()).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench_spectrograms, bench_fourier);
criterion_main!(benches);
