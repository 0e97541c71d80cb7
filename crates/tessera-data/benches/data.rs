//! Throughput of the generators, the resampler and the loader on a written tree.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use ndarray::Array1;
use tessera_data::{
    resample, stratified_split, write_wav_mono, ClipSpec, KeywordConfig, Shapes, ShapesConfig,
    SyntheticKeywords,
};

fn generators(c: &mut Criterion) {
    let mut group = c.benchmark_group("generate");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3));
    let keywords = SyntheticKeywords::new(KeywordConfig {
        clips_per_class: 10,
        ..KeywordConfig::default()
    })
    .unwrap();
    group.bench_function("keywords_100_clips_1s_16k", |b| {
        b.iter(|| keywords.generate())
    });
    let shapes = Shapes::new(ShapesConfig::default()).unwrap();
    group.bench_function("shapes_1000_images_3x32x32", |b| {
        b.iter(|| shapes.generate())
    });
    let labels: Vec<usize> = (0..50_000).map(|i| (i * 7) % 35).collect();
    group.bench_function("stratified_split_50k", |b| {
        b.iter(|| stratified_split(&labels, 35, 0.1, 1).unwrap())
    });
    group.finish();
}

fn resampling(c: &mut Criterion) {
    let mut group = c.benchmark_group("resample");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3));
    let five_seconds: Array1<f32> = (0..5 * 44_100)
        .map(|t| (t as f32 * 0.0625).sin() * 0.5)
        .collect();
    group.bench_function("esc_5s_44100_to_16000", |b| {
        b.iter(|| resample(five_seconds.view(), 44_100, 16_000).unwrap())
    });
    let four_seconds: Array1<f32> = (0..4 * 44_100)
        .map(|t| (t as f32 * 0.0625).sin() * 0.5)
        .collect();
    group.bench_function("us8k_4s_44100_to_22050", |b| {
        b.iter(|| resample(four_seconds.view(), 44_100, 22_050).unwrap())
    });
    group.finish();
}

fn loading(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("tessera-data-bench-{}", std::process::id()));
    for class in ["no", "yes"] {
        std::fs::create_dir_all(dir.join(class)).unwrap();
        for i in 0..50 {
            let clip: Array1<f32> = (0..16_000)
                .map(|t| ((t * (i + 3)) as f32 * 0.01).sin() * 0.3)
                .collect();
            write_wav_mono(
                dir.join(class).join(format!("{i}.wav")),
                clip.view(),
                16_000,
            )
            .unwrap();
        }
    }
    std::fs::write(dir.join("validation_list.txt"), "").unwrap();
    std::fs::write(dir.join("testing_list.txt"), "").unwrap();
    let index = tessera_data::speech_commands(&dir, &Default::default()).unwrap();
    let mut group = c.benchmark_group("load");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3));
    group.bench_function("speech_commands_100_wavs_16k", |b| {
        b.iter(|| index.load(&ClipSpec::speech_commands()).unwrap())
    });
    group.finish();
    std::fs::remove_dir_all(&dir).ok();
}

criterion_group!(benches, generators, resampling, loading);
criterion_main!(benches);
