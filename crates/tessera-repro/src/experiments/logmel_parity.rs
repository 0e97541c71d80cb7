//! `logmel-parity`: log-mel spectrograms of generated signals with every preset of
//! tessera-spectro, their shapes against the frame formula, f32/f64 and batch/single
//! agreement, the arrays as `.npy` and one spectrogram as an SVG heatmap.

use std::fmt::Write as _;

use anyhow::{anyhow, Context as _, Result};
use ndarray::{Array1, Array2, Axis};
use ndarray_npy::write_npy;
use plotters::prelude::*;
use tessera_spectro::{LogMelConfig, LogMelSpectrogram};

use crate::report::{markdown_table, write_csv, Context};

const SAMPLE_RATE: f64 = 22050.0;
const SEED: u64 = 2024;

/// SplitMix64: a seeded, platform-independent noise source. Written out because this
/// binary's dependency list is fixed and the few samples needed do not justify `rand`.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }
}

/// The three test signals, `seconds` long at 22.05 kHz.
fn signals(seconds: f64) -> Vec<(&'static str, Array1<f64>)> {
    let n = (SAMPLE_RATE * seconds) as usize;
    let tau = 2.0 * std::f64::consts::PI;
    // Linear chirp 100 Hz → 8 kHz: phase = 2π (f0 t + (f1 − f0) t² / (2T)).
    let chirp = Array1::from_shape_fn(n, |i| {
        let t = i as f64 / SAMPLE_RATE;
        0.5 * (tau * (100.0 * t + (8000.0 - 100.0) * t * t / (2.0 * seconds))).sin()
    });
    // 220 Hz with eight harmonics at 1/h amplitude.
    let harmonic = Array1::from_shape_fn(n, |i| {
        let t = i as f64 / SAMPLE_RATE;
        (1..=8)
            .map(|h| 0.3 / h as f64 * (tau * 220.0 * h as f64 * t).sin())
            .sum::<f64>()
    });
    // Silence, then a quarter-length burst of white noise in the middle, then silence.
    let mut rng = SplitMix64(SEED);
    let burst = Array1::from_shape_fn(n, |i| {
        let noise = 0.5 * rng.next_unit();
        if (3 * n / 8..5 * n / 8).contains(&i) {
            noise
        } else {
            0.0
        }
    });
    vec![
        ("chirp", chirp),
        ("harmonic", harmonic),
        ("noise_burst", burst),
    ]
}

/// A blue → yellow ramp (viridis-like endpoints) for values in [0, 1].
fn colour(v: f64) -> RGBColor {
    let stops = [
        (68.0, 1.0, 84.0),
        (59.0, 82.0, 139.0),
        (33.0, 145.0, 140.0),
        (94.0, 201.0, 98.0),
        (253.0, 231.0, 37.0),
    ];
    let x = v.clamp(0.0, 1.0) * (stops.len() - 1) as f64;
    let i = (x.floor() as usize).min(stops.len() - 2);
    let f = x - i as f64;
    let mix = |a: f64, b: f64| (a + (b - a) * f).round() as u8;
    RGBColor(
        mix(stops[i].0, stops[i + 1].0),
        mix(stops[i].1, stops[i + 1].1),
        mix(stops[i].2, stops[i + 1].2),
    )
}

fn draw_heatmap(path: &std::path::Path, log_mel: &Array2<f32>, title: &str) -> Result<()> {
    let (n_mels, frames) = log_mel.dim();
    let max = log_mel.iter().cloned().fold(f32::MIN, f32::max) as f64;
    let min = log_mel.iter().cloned().fold(f32::MAX, f32::min) as f64;
    let span = (max - min).max(1e-6);
    let root = SVGBackend::new(path, (900, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..frames as f64, 0.0..n_mels as f64)
        .map_err(|e| anyhow!("{e}"))?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc("frame")
        .y_desc("mel band")
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    chart
        .draw_series(log_mel.indexed_iter().map(|((m, t), &v)| {
            let (x, y) = (t as f64, m as f64);
            Rectangle::new(
                [(x, y), (x + 1.0, y + 1.0)],
                colour((v as f64 - min) / span).filled(),
            )
        }))
        .map_err(|e| anyhow!("{e}"))?;
    root.present().map_err(|e| anyhow!("{e}"))?;
    Ok(())
}

/// Runs the experiment.
pub fn run(ctx: &Context) -> Result<String> {
    let seconds = if ctx.quick { 1.0 } else { 2.0 };
    let inputs = signals(seconds);
    let presets: [(&str, LogMelConfig); 3] = [
        ("librosa", LogMelConfig::librosa(SAMPLE_RATE)),
        ("torchaudio", LogMelConfig::torchaudio(SAMPLE_RATE)),
        ("sslh", LogMelConfig::sslh(SAMPLE_RATE)),
    ];
    let mut rows = Vec::new();
    let mut csv = Vec::new();
    let mut worst_precision_gap = 0.0f64;
    let mut heatmap = None;
    for (preset, config) in &presets {
        let single = LogMelSpectrogram::<f32>::new(config.clone())?;
        let double = LogMelSpectrogram::<f64>::new(config.clone())?;
        let mel = &config.mel;
        let batch_input = ndarray::stack(
            Axis(0),
            &inputs
                .iter()
                .map(|(_, x)| x.mapv(|v| v as f32))
                .collect::<Vec<_>>()
                .iter()
                .map(|a| a.view())
                .collect::<Vec<_>>(),
        )?;
        let batch = single.compute_batch(batch_input.view())?;
        for (b, (name, signal)) in inputs.iter().enumerate() {
            let x32 = signal.mapv(|v| v as f32);
            let out32 = single.compute(x32.view())?;
            let out64 = double.compute(signal.view())?;
            anyhow::ensure!(
                batch.index_axis(Axis(0), b) == out32,
                "{preset}/{name}: batch differs from single"
            );
            // Compare within 80 dB of the peak: further down, f32 FFT rounding noise
            // (about 1e-7 of the peak amplitude) rather than the signal sets the value.
            let peak = out64.iter().cloned().fold(f64::MIN, f64::max);
            let gap = out32
                .iter()
                .zip(out64.iter())
                .filter(|(_, b)| **b >= peak - 80.0)
                .map(|(a, b)| (f64::from(*a) - b).abs())
                .fold(0.0, f64::max);
            worst_precision_gap = worst_precision_gap.max(gap);
            let n = signal.len();
            let formula = if mel.center {
                1 + (n + 2 * (mel.n_fft / 2) - mel.n_fft) / mel.hop_length
            } else {
                1 + (n - mel.n_fft) / mel.hop_length
            };
            let (n_mels, frames) = out32.dim();
            let lo = out32.iter().cloned().fold(f32::MAX, f32::min);
            let hi = out32.iter().cloned().fold(f32::MIN, f32::max);
            let file = format!("{preset}_{name}.npy");
            write_npy(ctx.path(&file), &out32).with_context(|| format!("writing {file}"))?;
            rows.push(vec![
                (*preset).to_string(),
                (*name).to_string(),
                format!("{n_mels}×{frames}"),
                format!("{formula}"),
                format!("{lo:.1} … {hi:.1}"),
                format!("{}", single.mel().empty_filters().len()),
                format!("{gap:.1e}"),
            ]);
            csv.push(vec![
                (*preset).to_string(),
                (*name).to_string(),
                n_mels.to_string(),
                frames.to_string(),
                formula.to_string(),
                format!("{lo}"),
                format!("{hi}"),
                single.mel().empty_filters().len().to_string(),
                format!("{gap:e}"),
            ]);
            anyhow::ensure!(
                frames == formula,
                "{preset}/{name}: {frames} frames, formula {formula}"
            );
            if *preset == "librosa" && *name == "chirp" {
                heatmap = Some(out32.clone());
            }
        }
    }
    write_csv(
        &ctx.path("logmel_parity.csv"),
        &[
            "preset",
            "signal",
            "n_mels",
            "frames",
            "frames_formula",
            "db_min",
            "db_max",
            "empty_filters",
            "max_abs_db_f32_vs_f64_within_80db",
        ],
        &csv,
    )?;
    let svg = ctx.path("librosa_chirp_logmel.svg");
    if let Some(log_mel) = &heatmap {
        draw_heatmap(
            &svg,
            log_mel,
            "log-mel (librosa preset) of a 100 Hz → 8 kHz chirp, dB",
        )?;
    }

    let mut section = String::new();
    let _ = writeln!(
        section,
        "Log-mel spectrograms (f32) of three generated {seconds} s signals at 22.05 kHz with each \
         preset of `tessera-spectro`. Frame counts are checked against \
         1 + ⌊(N + 2⌊n_fft/2⌋ − n_fft)/hop⌋; every batch result equals the clip-by-clip one; \
         the last column is the largest dB gap between the f32 and f64 paths over entries within 80 dB of the peak (below that, f32 rounding noise sets the value). Exactness \
         against librosa itself (≤ 1e-9 relative in f64) is pinned by the crate's golden tests.\n"
    );
    section.push_str(&markdown_table(
        &[
            "preset",
            "signal",
            "shape",
            "frames (formula)",
            "dB range",
            "empty filters",
            "max ΔdB f32 vs f64",
        ],
        &rows,
    ));
    let _ = writeln!(
        section,
        "\nThe torchaudio preset (n_fft 400, 128 HTK mels) leaves low filters empty at this rate, \
         as torchaudio itself does (it warns); tessera reports them instead of failing because the \
         preset opts in with `EmptyFilters::Allow`. Largest f32/f64 gap: {worst_precision_gap:.1e} dB.\n\n\
         ![librosa-preset log-mel of the chirp](logmel-parity/librosa_chirp_logmel.svg)\n\n\
         Files: `*.npy` (one per preset and signal), `logmel_parity.csv`, `librosa_chirp_logmel.svg`."
    );
    Ok(section)
}
