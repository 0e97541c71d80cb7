//! `inception-scaling`: residual scaling in deep, wide residual MLPs (Szegedy et al., 2017).
//!
//! Szegedy, Ioffe, Vanhoucke and Alemi, "Inception-v4, Inception-ResNet and the Impact of
//! Residual Connections on Learning" (AAAI 2017), §3.3: with more than about 1000 filters the
//! residual variants "became unstable and the network has just 'died' early in the training";
//! scaling the residual branch by 0.1–0.3 before the addition stabilised training without
//! hurting accuracy.
//!
//! The miniature: ReLU MLPs on the 8×8 digits with `blocks` Inception-ResNet blocks
//! `h ← ReLU(h + s·F(h))` (F = dense–ReLU–dense, He initialisation) at several widths, trained
//! by SGD with momentum at one fixed learning rate, for s ∈ {1, 0.3, 0.1} and several seeds.
//! Every run records whether it diverged (non-finite loss, or a loss above
//! `divergence_factor` × its first loss), its loss spikes, its test accuracy, and the growth
//! of the activations' RMS through the blocks at initialisation (the forward-signal mechanism).

use std::fmt::Write as _;

use anyhow::Result;
use ndarray::Axis;
use tessera_data::{load_digits, stratified_split};
use tessera_nn::{
    Loss, LrSchedule, Mlp, MlpConfig, OptimizerConfig, ResidualConfig, SgdConfig, Trainer,
};

use crate::harness::train::{train_classifier, LabelledData, TrainSpec};
use crate::harness::{
    evaluate_chunked, fmt_mean_std, linear_fit, markdown_table, mean_std, plot, Claim, Context,
    Expectation, Experiment, Outcome, ResultsCsv, RunStatus, Series, Verdict,
};

/// Sizes of the run.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    /// Hidden widths.
    pub widths: Vec<usize>,
    /// Residual blocks after the first hidden layer (each has two dense layers).
    pub blocks: usize,
    /// Branch scales s.
    pub scales: Vec<f64>,
    /// Seeds per (width, scale).
    pub seeds: usize,
    /// SGD steps.
    pub steps: usize,
    /// Mini-batch size.
    pub batch: usize,
    /// The fixed learning rate.
    pub lr: f64,
    /// SGD momentum.
    pub momentum: f64,
    /// Divergence threshold over the first mini-batch loss.
    pub divergence_factor: f64,
    /// A spike: a loss above `spike_factor` × the median of the previous `spike_window` losses
    /// and at least `spike_min_rise` nats above it.
    pub spike_factor: f64,
    /// Window of the spike median.
    pub spike_window: usize,
    /// Minimal absolute rise of a spike, nats.
    pub spike_min_rise: f64,
}

impl Params {
    /// The CI smoke test.
    pub fn quick() -> Self {
        Params {
            widths: vec![32, 128],
            blocks: 6,
            seeds: 2,
            steps: 200,
            ..Self::full()
        }
    }

    /// The reported run.
    pub fn full() -> Self {
        Params {
            widths: vec![32, 64, 128, 256],
            blocks: 8,
            scales: vec![1.0, 0.3, 0.1],
            seeds: 3,
            steps: 400,
            batch: 64,
            lr: 0.05,
            momentum: 0.9,
            divergence_factor: 10.0,
            spike_factor: 2.0,
            spike_window: 20,
            spike_min_rise: 0.5,
        }
    }
}

/// The Inception-ResNet residual-scaling experiment.
#[derive(Debug, Clone, Copy)]
pub struct InceptionScaling;

impl Experiment for InceptionScaling {
    fn name(&self) -> &'static str {
        "inception-scaling"
    }

    fn paper(&self) -> &'static str {
        "Szegedy et al., Inception-v4, Inception-ResNet and the Impact of Residual Connections \
         on Learning, AAAI 2017"
    }

    fn about(&self) -> &'static str {
        "deep wide residual MLPs at a fixed LR: divergences without branch scaling, none with s = 0.1-0.3"
    }

    fn run(&self, ctx: &Context) -> Result<Outcome> {
        run(ctx, &ctx.mode.pick(Params::quick, Params::full))
    }
}

/// Loss spikes of a run (see [`Params::spike_factor`]).
pub fn count_spikes(losses: &[f64], factor: f64, window: usize, min_rise: f64) -> usize {
    let mut spikes = 0;
    for t in window.max(1)..losses.len() {
        let mut recent: Vec<f64> = losses[t - window.max(1)..t].to_vec();
        recent.sort_by(f64::total_cmp);
        let median = recent[recent.len() / 2];
        let l = losses[t];
        if l.is_finite() && l > factor * median && l - median > min_rise {
            spikes += 1;
        }
    }
    spikes
}

/// RMS of every residual block's output at initialisation on `x`, divided by the RMS after
/// the first hidden layer (layer 0): the forward gain through the blocks.
fn block_gains(mlp: &Mlp<f32>, x: ndarray::ArrayView2<'_, f32>, blocks: usize) -> Result<Vec<f64>> {
    let trace = mlp.forward(x)?;
    let rms = |a: ndarray::ArrayView2<'_, f32>| {
        (a.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() / a.len().max(1) as f64).sqrt()
    };
    let base = rms(trace.activation(0).expect("layer 0 exists"));
    // Block b (1-based) closes at dense layer 2b (layer 0 is the input layer, then pairs).
    Ok((1..=blocks)
        .map(|b| rms(trace.activation(2 * b).expect("block layer exists")) / base)
        .collect())
}

/// (width, seed, RMS gain after each block) of one network at initialisation.
type GainCurve = (usize, usize, Vec<f64>);

struct RunResult {
    width: usize,
    scale: f64,
    seed: usize,
    status: RunStatus,
    spikes: usize,
    init_loss: f64,
    final_loss: f64,
    test_acc: f64,
    gain: f64,
}

impl RunResult {
    fn unstable(&self) -> bool {
        self.status.diverged() || self.spikes > 0
    }
}

fn run(ctx: &Context, p: &Params) -> Result<Outcome> {
    let digits = load_digits()?;
    let x_all = digits.flattened();
    let split = stratified_split(
        &digits.labels,
        digits.n_classes(),
        0.8,
        ctx.seed_for(&"split"),
    )?;
    let x_train = x_all.select(Axis(0), &split.labelled);
    let y_train: Vec<usize> = split.labelled.iter().map(|&i| digits.labels[i]).collect();
    let x_test = x_all.select(Axis(0), &split.unlabelled);
    let y_test: Vec<usize> = split.unlabelled.iter().map(|&i| digits.labels[i]).collect();
    let n_classes = digits.n_classes();
    let probe = x_train
        .slice(ndarray::s![..256.min(x_train.nrows()), ..])
        .to_owned();

    let total = p.widths.len() * p.scales.len() * p.seeds;
    let bar = ctx.progress((total * p.steps) as u64, "inception-scaling");
    let mut results = Vec::new();
    // Per scale: (width, seed, RMS gain after each block) at initialisation.
    let mut gain_curves: Vec<(f64, Vec<GainCurve>)> =
        p.scales.iter().map(|&s| (s, Vec::new())).collect();
    for &width in &p.widths {
        for (si, &scale) in p.scales.iter().enumerate() {
            for seed in 0..p.seeds {
                let config = MlpConfig::new(x_train.ncols(), vec![width], n_classes).with_residual(
                    ResidualConfig {
                        blocks_per_stage: p.blocks,
                        branch_scale: scale,
                        branch_depth: 2,
                    },
                );
                let mut mlp = Mlp::<f32>::new(config, ctx.seed_for(&("init", width, scale, seed)))?;
                let gains = block_gains(&mlp, probe.view(), p.blocks)?;
                gain_curves[si].1.push((width, seed, gains.clone()));
                let mut trainer = Trainer::new(
                    &mut mlp,
                    OptimizerConfig::Sgd(SgdConfig {
                        momentum: p.momentum,
                        ..SgdConfig::default()
                    }),
                    LrSchedule::constant(p.lr)?,
                    None,
                )?;
                let spec = TrainSpec {
                    steps: p.steps,
                    batch_size: p.batch,
                    eval_steps: Vec::new(),
                    divergence_factor: p.divergence_factor,
                    loss: Loss::SoftmaxCrossEntropy,
                };
                let log = train_classifier(
                    &mut mlp,
                    &mut trainer,
                    LabelledData {
                        x: x_train.view(),
                        labels: &y_train,
                    },
                    &spec,
                    ctx.seed_for(&("batches", width, scale, seed)),
                    Some(&bar),
                    |_, _| Ok(()),
                )?;
                let tail = (p.steps / 10).max(1);
                let final_loss = if log.status.diverged() {
                    f64::NAN
                } else {
                    mean_std(&log.losses[log.losses.len().saturating_sub(tail)..]).0
                };
                // A diverged network predicts nothing useful: count it at chance.
                let test_acc = if log.status.diverged() {
                    1.0 / n_classes as f64
                } else {
                    evaluate_chunked(&mlp, x_test.view(), &y_test, 512)?.1
                };
                results.push(RunResult {
                    width,
                    scale,
                    seed,
                    status: log.status,
                    spikes: count_spikes(
                        &log.losses,
                        p.spike_factor,
                        p.spike_window,
                        p.spike_min_rise,
                    ),
                    init_loss: log.losses.first().copied().unwrap_or(f64::NAN),
                    final_loss,
                    test_acc,
                    gain: gains.last().copied().unwrap_or(f64::NAN),
                });
            }
        }
    }
    bar.finish_and_clear();

    // Every number.
    let mut csv = ResultsCsv::new(&[
        "record",
        "width",
        "branch_scale",
        "seed",
        "block",
        "diverged",
        "diverged_step",
        "spikes",
        "initial_loss",
        "final_train_loss",
        "test_accuracy",
        "init_rms_gain",
    ]);
    for r in &results {
        let step = match r.status {
            RunStatus::Diverged { step, .. } => step.to_string(),
            RunStatus::Finished => String::new(),
        };
        csv.row(&[
            &"run",
            &r.width,
            &r.scale,
            &r.seed,
            &p.blocks,
            &r.status.diverged(),
            &step,
            &r.spikes,
            &r.init_loss,
            &r.final_loss,
            &r.test_acc,
            &r.gain,
        ]);
    }
    for (scale, curves) in &gain_curves {
        for (width, seed, c) in curves {
            for (b, g) in c.iter().enumerate() {
                csv.row(&[
                    &"init-gain",
                    width,
                    scale,
                    seed,
                    &(b + 1),
                    &"",
                    &"",
                    &"",
                    &"",
                    &"",
                    &"",
                    g,
                ]);
            }
        }
    }
    csv.write(ctx.path("results.csv"))?;

    // Per (scale, width) summaries.
    let select = |scale: f64, width: Option<usize>| -> Vec<&RunResult> {
        results
            .iter()
            .filter(|r| r.scale == scale && width.is_none_or(|w| r.width == w))
            .collect()
    };
    let frac_unstable = |rs: &[&RunResult]| {
        rs.iter().filter(|r| r.unstable()).count() as f64 / rs.len().max(1) as f64
    };
    let mut rows = Vec::new();
    let mut acc_series = Vec::new();
    for &scale in &p.scales {
        let mut xs = Vec::new();
        let mut ms = Vec::new();
        let mut ss = Vec::new();
        for &width in &p.widths {
            let rs = select(scale, Some(width));
            let accs: Vec<f64> = rs.iter().map(|r| r.test_acc).collect();
            let (m, s) = mean_std(&accs);
            let inits: Vec<f64> = rs.iter().map(|r| r.init_loss).collect();
            let gains: Vec<f64> = rs.iter().map(|r| r.gain).collect();
            let div = rs.iter().filter(|r| r.status.diverged()).count();
            let spiky = rs
                .iter()
                .filter(|r| !r.status.diverged() && r.spikes > 0)
                .count();
            rows.push(vec![
                format!("{scale}"),
                width.to_string(),
                format!("{div}/{}", rs.len()),
                format!("{spiky}/{}", rs.len()),
                fmt_mean_std(mean_std(&inits).0, mean_std(&inits).1, 2),
                fmt_mean_std(mean_std(&gains).0, mean_std(&gains).1, 1),
                fmt_mean_std(100.0 * m, 100.0 * s, 1),
            ]);
            xs.push(width as f64);
            ms.push(100.0 * m);
            ss.push(100.0 * s);
        }
        acc_series.push(Series {
            label: format!("s = {scale}"),
            x: xs,
            mean: ms,
            std: Some(ss),
        });
    }
    plot::lines_with_band(
        ctx.path("accuracy_vs_width.svg"),
        &format!(
            "test accuracy after {} SGD steps at lr {} ({} residual blocks); diverged = chance",
            p.steps, p.lr, p.blocks
        ),
        "width",
        "test accuracy, %",
        &acc_series,
        true,
    )?;
    let gain_series: Vec<Series> = gain_curves
        .iter()
        .map(|(scale, curves)| {
            let blocks = curves.first().map_or(0, |c| c.2.len());
            let (mut mean, mut std) = (Vec::new(), Vec::new());
            for b in 0..blocks {
                let v: Vec<f64> = curves.iter().map(|c| c.2[b].log2()).collect();
                let (m, s) = mean_std(&v);
                mean.push(m);
                std.push(s);
            }
            Series {
                label: format!("s = {scale}"),
                x: (1..=blocks).map(|b| b as f64).collect(),
                mean,
                std: Some(std),
            }
        })
        .collect();
    plot::lines_with_band(
        ctx.path("init_gain_vs_depth.svg"),
        "activation RMS at initialisation, relative to the first hidden layer",
        "residual block",
        "log2 RMS gain",
        &gain_series,
        false,
    )?;

    // Claims.
    let unscaled = select(1.0, None);
    let scaled: Vec<&RunResult> = results.iter().filter(|r| r.scale <= 0.3).collect();
    let f1 = frac_unstable(&unscaled);
    let fs = frac_unstable(&scaled);
    let per_scale = p
        .scales
        .iter()
        .map(|&s| {
            let rs = select(s, None);
            format!(
                "s={s}: {}/{} unstable",
                rs.iter().filter(|r| r.unstable()).count(),
                rs.len()
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let mut claims = vec![Claim::new(
        "without residual scaling deep wide residual nets become unstable at a fixed learning \
         rate; scaling the branch by 0.1–0.3 stabilises them",
        per_scale,
        "unstable = diverged or ≥ 1 loss spike; reproduced if ≥ 50% of s = 1 runs are unstable \
         and no s ≤ 0.3 run is; partly if the unstable share is larger at s = 1 than at s ≤ 0.3",
        Verdict::from_tests(f1 >= 0.5 && fs == 0.0, f1 > fs),
    )
    .paper("> 1000 filters: unstable, 'died' early in training; s ∈ [0.1, 0.3] stable")
    .expect(Expectation::Always)];

    let (w_lo, w_hi) = (p.widths[0], *p.widths.last().expect("widths is not empty"));
    let u_lo = frac_unstable(&select(1.0, Some(w_lo)));
    let u_hi = frac_unstable(&select(1.0, Some(w_hi)));
    claims.push(
        Claim::new(
            "the instability of unscaled residual nets appears as the width grows",
            format!(
                "s = 1: unstable share {:.0}% at width {w_lo}, {:.0}% at width {w_hi}",
                100.0 * u_lo,
                100.0 * u_hi
            ),
            "reproduced if the unstable share at the largest width exceeds the smallest width's; \
             partly if it is equal and positive",
            Verdict::from_tests(u_hi > u_lo, u_hi == u_lo && u_hi > 0.0),
        )
        .paper("instability only beyond ~1000 filters")
        .expect(Expectation::Never),
    );

    let acc_of = |rs: &[&RunResult]| mean_std(&rs.iter().map(|r| r.test_acc).collect::<Vec<_>>());
    let best_scaled = p
        .scales
        .iter()
        .filter(|&&s| s <= 0.3)
        .map(|&s| (s, acc_of(&select(s, None))))
        .max_by(|a, b| a.1 .0.total_cmp(&b.1 .0));
    let (a1, s1) = acc_of(&unscaled);
    if let Some((sb, (ab, sdb))) = best_scaled {
        claims.push(
            Claim::new(
                "scaling the residuals does not cost accuracy",
                format!(
                    "test accuracy: s = 1 {} %, s = {sb} {} % (diverged runs count at chance)",
                    fmt_mean_std(100.0 * a1, 100.0 * s1, 1),
                    fmt_mean_std(100.0 * ab, 100.0 * sdb, 1)
                ),
                "reproduced if the best scaled setting's mean accuracy ≥ the unscaled mean − 1 std \
                 of the unscaled runs; partly if within 2 std",
                Verdict::from_tests(ab >= a1 - s1, ab >= a1 - 2.0 * s1),
            )
            .paper("scaling did not seem to compromise the final accuracy")
            .expect(Expectation::Always),
        );
    }

    // The mechanism: forward-signal growth per block at initialisation.
    let slope_of = |scale: f64| -> (f64, f64) {
        let (_, curves) = gain_curves
            .iter()
            .find(|(s, _)| *s == scale)
            .expect("scale is in the list");
        let mut xs = Vec::new();
        let mut ys = Vec::new();
        for (_, _, c) in curves {
            for (b, g) in c.iter().enumerate() {
                xs.push((b + 1) as f64);
                ys.push(g.ln());
            }
        }
        let (slope, _, r2) = linear_fit(&xs, &ys);
        (slope.exp(), r2)
    };
    let (g1, r21) = slope_of(1.0);
    let smallest = p.scales.iter().copied().fold(f64::INFINITY, f64::min);
    let (gs, _) = slope_of(smallest);
    claims.push(
        Claim::new(
            "our mechanism: without scaling the activations grow geometrically with depth at \
             initialisation (He init: about ×√2 per block), with s = 0.1 they barely grow",
            format!("RMS gain per block: s = 1 ×{g1:.2} (r² {r21:.2}), s = {smallest} ×{gs:.3}"),
            "fit of ln RMS against block index: reproduced if s = 1 gains > ×1.2 per block with \
             r² > 0.9 and the smallest s gains < ×1.05; partly if s = 1 gains more than the \
             smallest s",
            Verdict::from_tests(g1 > 1.2 && r21 > 0.9 && gs < 1.05, g1 > gs),
        )
        // Quick mode (2 seeds, 6 blocks) measured r² 0.89 < 0.9: expected in full mode only.
        .expect(Expectation::FullOnly),
    );

    // Divergence timing, for the mechanism paragraph.
    let div_steps: Vec<f64> = unscaled
        .iter()
        .filter_map(|r| match r.status {
            RunStatus::Diverged { step, .. } => Some(step as f64),
            RunStatus::Finished => None,
        })
        .collect();
    let spikes_unscaled: usize = unscaled.iter().map(|r| r.spikes).sum();
    let total_gain = mean_std(&unscaled.iter().map(|r| r.gain).collect::<Vec<_>>()).0;
    let total_small = mean_std(
        &select(smallest, None)
            .iter()
            .map(|r| r.gain)
            .collect::<Vec<_>>(),
    )
    .0;
    let width_note = if u_hi > u_lo {
        format!(
            "At s = 1 the unstable share grows from {:.0}% at width {w_lo} to {:.0}% at width \
             {w_hi}, in the direction of the paper's width threshold.",
            100.0 * u_lo,
            100.0 * u_hi
        )
    } else {
        format!(
            "Width plays no visible role here (unstable share at s = 1: {:.0}% at width {w_lo}, \
             {:.0}% at width {w_hi}): with He initialisation the forward gain per block does not \
             depend on the width, so our miniature does not show the paper's width threshold.",
            100.0 * u_lo,
            100.0 * u_hi
        )
    };
    let mechanism = if div_steps.is_empty() && spikes_unscaled == 0 {
        "No s = 1 run diverged or spiked here, so this run shows only the forward-signal growth, \
         not an instability."
            .to_string()
    } else if !div_steps.is_empty() {
        let (m, _) = mean_std(&div_steps);
        let early = div_steps
            .iter()
            .filter(|&&s| s < 0.1 * p.steps as f64)
            .count();
        format!(
            "{} of {} s = 1 runs diverged, on average at step {m:.0} of {} ({early} within the \
             first 10% of training). The cause in our miniature is the **forward-signal growth \
             at initialisation**: each unscaled block multiplies the activations' RMS by about \
             ×{g1:.2}, so after {} blocks their RMS is ×{total_gain:.0} that of the first hidden \
             layer (s = {smallest}: ×{total_small:.1}); logits and gradients grow with it, and \
             one SGD step at the shared learning rate overshoots. This is an early blow-up driven by depth × branch scale, not the \
             paper's failure, where very wide networks trained with batch normalisation 'died' \
             (the layer before pooling output only zeros) after tens of thousands of iterations.",
            div_steps.len(),
            unscaled.len(),
            p.steps,
            p.blocks
        )
    } else {
        format!(
            "No s = 1 run diverged, but they showed {spikes_unscaled} loss spikes in all. Each \
             unscaled block multiplies the activations' RMS by about ×{g1:.2} at initialisation, \
             which makes the effective step much larger than in the scaled nets: our miniature \
             shows this forward-signal growth and the spiky training it causes, not the paper's \
             late 'dying' of very wide batch-normalised networks."
        )
    };

    let mut section = String::new();
    let _ = writeln!(
        section,
        "ReLU MLPs on the 8×8 digits (80/20 split): input → width, then {} Inception-ResNet \
         blocks `h ← ReLU(h + s·F(h))`, F = dense–ReLU–dense, He initialisation (PyTorch layout), \
         SGD with momentum {} at the fixed learning rate {} for {} steps of {} examples, {} \
         seed(s) per cell. Diverged = non-finite loss or a loss above {}× the first one; a spike = \
         a loss above {}× the median of the previous {} losses and more than {} nats above it. \
         The paper saw the instability in Inception-ResNet with more than ~1000 filters per \
         layer; ours has at most {} units, so the comparison is qualitative.\n",
        p.blocks,
        p.momentum,
        p.lr,
        p.steps,
        p.batch,
        p.seeds,
        p.divergence_factor,
        p.spike_factor,
        p.spike_window,
        p.spike_min_rise,
        w_hi
    );
    section.push_str(&markdown_table(
        &[
            "s",
            "width",
            "diverged",
            "spiky (not diverged)",
            "initial loss",
            "RMS gain at init",
            "test acc. %",
        ],
        &rows,
    ));
    let _ = writeln!(
        section,
        "\n**Which mechanism our miniature shows.** {mechanism} {width_note}\n\n\
         ![accuracy against width](inception-scaling/accuracy_vs_width.svg)\n\n\
         ![activation growth at initialisation](inception-scaling/init_gain_vs_depth.svg)\n\n\
         Files: `results.csv` (`run` rows: one per training run, `init_rms_gain` through all \
         blocks; `init-gain` rows: the RMS gain after each block at initialisation, relative to \
         the first hidden layer)."
    );
    Ok(Outcome { section, claims })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spikes_are_counted_against_the_recent_median() {
        let mut losses = vec![1.0; 30];
        losses[25] = 3.0; // 3× the median and 2 nats above: a spike
        losses[27] = 1.4; // too small a rise
        assert_eq!(count_spikes(&losses, 2.0, 20, 0.5), 1);
        let small = vec![0.01, 0.01, 0.01, 0.05];
        assert_eq!(count_spikes(&small, 2.0, 3, 0.5), 0);
    }
}
