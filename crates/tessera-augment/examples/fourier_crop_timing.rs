//! Times the batched Fourier low-pass crop; used by `benches/compare/augment_numpy.py`.
//!
//! `cargo run --release -p tessera-augment --example fourier_crop_timing -- BATCH SIZE CROP REPEATS`
//! prints one line per precision: `f32 <median ms> <min ms>` and `f64 ...`, plus the mean of
//! the first output channel (a cheap cross-check with numpy on the same seeded-free data:
//! the crop preserves the mean, so it equals the input's).

use std::time::Instant;

use ndarray::Array4;
use tessera_augment::{Float, FourierCrop};

fn parse(args: &[String], index: usize, default: usize) -> usize {
    args.get(index)
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn time<F: Float>(batch: usize, size: usize, crop: usize, repeats: usize) -> (f64, f64, f64) {
    // A deterministic, non-trivial image: smooth ramps plus a checkerboard.
    let images = Array4::from_shape_fn((batch, 3, size, size), |(n, c, i, j)| {
        F::from_f64_rounded(
            ((n + 3 * c + i * j) % 17) as f64 / 16.0 + if (i + j) % 2 == 0 { 0.1 } else { 0.0 },
        )
    });
    let plan = FourierCrop::<F>::new(tessera_augment::FourierCropConfig {
        height: size,
        width: size,
        out_height: crop,
        out_width: crop,
    })
    .expect("valid crop");
    let mut out = plan.crop_batch(images.view()).expect("crop"); // warm-up (plans, pages)
    let mut times = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        let start = Instant::now();
        out = plan.crop_batch(images.view()).expect("crop");
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(|a, b| a.total_cmp(b));
    let mean = out
        .index_axis(ndarray::Axis(0), 0)
        .index_axis(ndarray::Axis(0), 0)
        .iter()
        .map(|v| v.to_f64_exact())
        .sum::<f64>()
        / (crop * crop) as f64;
    (times[times.len() / 2], times[0], mean)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let batch = parse(&args, 1, 32);
    let size = parse(&args, 2, 224);
    let crop = parse(&args, 3, 160);
    let repeats = parse(&args, 4, 10).max(1);
    let (median, min, mean) = time::<f32>(batch, size, crop, repeats);
    println!("f32 {median:.3} {min:.3} {mean:.6}");
    let (median, min, mean) = time::<f64>(batch, size, crop, repeats);
    println!("f64 {median:.3} {min:.3} {mean:.6}");
}
