//! Log-mel throughput of the librosa preset, for `benches/compare/librosa_logmel.py`.
//!
//! ```text
//! cargo run --release -p tessera-spectro --example logmel_throughput -- [clips.npy] [--check out.npy]
//! ```
//! `clips.npy` is a float32 array of shape (clips, samples) at 22.05 kHz (without it, 32
//! seeded noise clips of 10 s are generated). Prints `single_thread_clips_per_s`,
//! `batch_clips_per_s` and the rayon thread count; `--check PATH` also writes the log-mel of
//! the first clip so the caller can compare it with librosa.

use std::time::Instant;

use ndarray::{Array2, Array3, Axis};
use ndarray_npy::{read_npy, write_npy};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tessera_spectro::{LogMelConfig, LogMelSpectrogram};

/// CPU seconds (user + system, all threads) this process has used so far, from
/// `/proc/self/stat` (Linux, 100 ticks per second); `None` elsewhere. On a shared machine
/// this shows whether a slow batch was starved of cores or did extra work.
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// Runs `work` (which processes `clips` clips) until at least `min_seconds` have passed and
/// returns clips per second.
fn throughput(clips: usize, min_seconds: f64, mut work: impl FnMut()) -> f64 {
    work(); // warm-up: page in buffers, build FFT twiddles in caches
    let start = Instant::now();
    let mut rounds = 0usize;
    while rounds == 0 || start.elapsed().as_secs_f64() < min_seconds {
        work();
        rounds += 1;
    }
    (rounds * clips) as f64 / start.elapsed().as_secs_f64()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut input = None;
    let mut check = None;
    while let Some(arg) = args.next() {
        if arg == "--check" {
            check = Some(args.next().ok_or("--check needs a path")?);
        } else {
            input = Some(arg);
        }
    }
    let clips: Array2<f32> = match &input {
        Some(path) => read_npy(path)?,
        None => {
            let mut rng = ChaCha8Rng::seed_from_u64(7);
            Array2::from_shape_simple_fn((32, 220_500), || rng.random_range(-0.5f32..0.5))
        }
    };
    let plan = LogMelSpectrogram::<f32>::new(LogMelConfig::librosa(22050.0))?;
    let n = clips.nrows();
    if let Some(path) = check {
        write_npy(path, &plan.compute(clips.row(0))?)?;
    }
    let cpu_start = process_cpu_seconds();
    let wall_start = Instant::now();
    let single = throughput(n, 3.0, || {
        for clip in clips.outer_iter() {
            std::hint::black_box(plan.compute(clip).expect("valid clip"));
        }
    });
    let single_cpu = cpu_start.zip(process_cpu_seconds()).map(|(a, b)| b - a);
    let single_wall = wall_start.elapsed().as_secs_f64();
    let cpu_start = process_cpu_seconds();
    let wall_start = Instant::now();
    let mut last: Option<Array3<f32>> = None;
    let batch = throughput(n, 3.0, || {
        last = Some(plan.compute_batch(clips.view()).expect("valid clips"));
    });
    let batch_cpu = cpu_start.zip(process_cpu_seconds()).map(|(a, b)| b - a);
    let batch_wall = wall_start.elapsed().as_secs_f64();
    let shape = last
        .map(|b| b.index_axis(Axis(0), 0).dim())
        .unwrap_or_default();
    println!(
        "clips={n} samples={} log_mel_shape={shape:?}",
        clips.ncols()
    );
    println!("threads={}", rayon::current_num_threads());
    println!("single_thread_clips_per_s={single:.3}");
    println!("batch_clips_per_s={batch:.3}");
    println!("batch_speedup={:.3}", batch / single);
    if let (Some(single_cpu), Some(batch_cpu)) = (single_cpu, batch_cpu) {
        // Clips per CPU-second: equal values mean the batch path does no extra work, so its
        // speed-up on idle cores is the number of cores it gets.
        println!(
            "single_thread_cpu_utilisation={:.3}",
            single_cpu / single_wall
        );
        println!("batch_cpu_utilisation={:.3}", batch_cpu / batch_wall);
        println!(
            "single_thread_clips_per_cpu_s={:.3}",
            single * single_wall / single_cpu
        );
        println!(
            "batch_clips_per_cpu_s={:.3}",
            batch * batch_wall / batch_cpu
        );
    }
    Ok(())
}
