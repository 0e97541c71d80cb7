//! Log-mel throughput with the librosa preset: 32 clips of 10 s at 22.05 kHz (f32), one
//! clip at a time on one thread, and the whole batch with `compute_batch` (rayon).

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tessera_spectro::{LogMelConfig, LogMelSpectrogram};

const SAMPLE_RATE: f64 = 22050.0;
const CLIPS: usize = 32;
const CLIP_SECONDS: f64 = 10.0;

fn clips() -> Array2<f32> {
    let len = (SAMPLE_RATE * CLIP_SECONDS) as usize;
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    Array2::from_shape_simple_fn((CLIPS, len), || rng.random_range(-0.5f32..0.5))
}

fn logmel(c: &mut Criterion) {
    let plan =
        LogMelSpectrogram::<f32>::new(LogMelConfig::librosa(SAMPLE_RATE)).expect("preset is valid");
    let clips = clips();
    let mut group = c.benchmark_group("logmel_librosa_preset_32x10s");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(CLIPS as u64));
    group.bench_function("single_thread_loop", |b| {
        b.iter(|| {
            for clip in clips.outer_iter() {
                std::hint::black_box(plan.compute(clip).expect("valid clip"));
            }
        })
    });
    group.bench_function("compute_batch", |b| {
        b.iter(|| std::hint::black_box(plan.compute_batch(clips.view()).expect("valid clips")))
    });
    group.finish();
}

criterion_group!(benches, logmel);
criterion_main!(benches);
