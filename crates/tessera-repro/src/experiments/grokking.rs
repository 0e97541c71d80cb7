//! `grokking`: local complexity of an MLP's spline partition over a long training run, and
//! delayed robustness (Humayun, Balestriero & Baraniuk, "Deep Networks Always Grok and Here is
//! Why", ICML 2024, arXiv:2402.15555; reference code github.com/AhmedImtiazPrio/grok-adversarial,
//! `train_mlp_mnist.py` and `local_complexity.py`).
//!
//! The paper's claims: trained long enough, a network "groks" adversarial examples — its
//! robust accuracy keeps rising long after clean test accuracy has plateaued (delayed
//! robustness) — and the local complexity (LC: the density of the spline partition's region
//! boundaries) around the training points rises during fitting and then falls again long after
//! the training set is interpolated, as the boundaries migrate away from the data towards the
//! decision boundary.
//!
//! The miniature: the reference MNIST setting (1,000 training points, a ReLU MLP of width 200
//! with 4 linear layers, MSE on one-hot targets, AdamW lr 10⁻³, weight decay 0.01, batch 200)
//! on the 8×8 digits (64 inputs instead of 784, so a step costs about a tenth and 10⁵ steps fit
//! on two cores), evaluated at log-spaced steps: train/test accuracy, ℓ∞-PGD accuracy on test
//! points, and LC (tessera-spline, the paper's cross-polytope estimate) around training, test
//! and uniformly random points; then exact 2-D partitions through three training points at
//! the LC peak and at the end.

use std::fmt::Write as _;

use anyhow::{Context as _, Result};
use ndarray::{Array1, Array2, ArrayView2, Axis};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tessera_data::load_digits;
use tessera_nn::attack::{mlp_robust_accuracy, Norm, PgdConfig};
use tessera_nn::{AdamConfig, Loss, LrSchedule, Mlp, MlpConfig, OptimizerConfig, Targets, Trainer};
use tessera_spline::{
    LocalComplexityConfig, LocalComplexityEstimator, Partition2d, PartitionConfig, Plane, Polygon,
    SvgOptions,
};

use crate::harness::train::{train_classifier, LabelledData, TrainSpec};
use crate::harness::{
    evaluate_chunked, log_spaced_steps, markdown_table, plot, Claim, Context, Expectation,
    Experiment, Outcome, ResultsCsv, Series, Verdict,
};

/// Sizes of the run.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    /// Training points (the rest of the 1,797 digits is the test set).
    pub train_points: usize,
    /// Hidden width.
    pub width: usize,
    /// Linear layers (the reference's "depth": depth − 1 hidden ReLU layers).
    pub depth: usize,
    /// Initialisation gain of the Gaussian init, std = gain/√fan_in (1/√3 matches the
    /// standard deviation of PyTorch's default `nn.Linear` init that the reference uses).
    pub init_gain: f64,
    /// AdamW steps.
    pub steps: usize,
    /// Mini-batch size.
    pub batch: usize,
    /// Learning rate.
    pub lr: f64,
    /// AdamW's decoupled weight decay.
    pub weight_decay: f64,
    /// Log-spaced evaluation points requested (fewer after rounding merges small steps).
    pub evals: usize,
    /// Points of each kind (train, test, random) whose LC is measured.
    pub lc_points: usize,
    /// Radius r of the cross-polytope.
    pub lc_radius: f64,
    /// Vertices P of the cross-polytope (P/2 orthonormal directions).
    pub lc_vertices: usize,
    /// Test points attacked by PGD at every evaluation.
    pub adv_points: usize,
    /// ℓ∞ radius of the attack (pixels lie in [0, 1]).
    pub pgd_epsilon: f64,
    /// PGD steps (step size ε/4, random start, clamped to [0, 1]).
    pub pgd_steps: usize,
    /// The 2-D partition's domain is the triangle (−m, −m), (1 + 2m, −m), (−m, 1 + 2m) in
    /// plane coordinates, where the three training points sit at (0, 0), (1, 0) and (0, 1):
    /// their convex hull with a margin m.
    pub partition_margin: f64,
}

impl Params {
    /// The CI smoke test.
    pub fn quick() -> Self {
        Params {
            steps: 3_000,
            evals: 14,
            lc_points: 96,
            adv_points: 200,
            ..Self::full()
        }
    }

    /// The reported run.
    pub fn full() -> Self {
        Params {
            train_points: 1_000,
            width: 200,
            depth: 4,
            init_gain: 1.0 / 3f64.sqrt(),
            steps: 100_000,
            batch: 200,
            lr: 1e-3,
            weight_decay: 0.01,
            evals: 36,
            lc_points: 256,
            lc_radius: 0.1,
            lc_vertices: 32,
            adv_points: 400,
            pgd_epsilon: 0.1,
            pgd_steps: 10,
            partition_margin: 0.05,
        }
    }
}

/// The grokking / local-complexity experiment.
#[derive(Debug, Clone, Copy)]
pub struct Grokking;

impl Experiment for Grokking {
    fn name(&self) -> &'static str {
        "grokking"
    }

    fn paper(&self) -> &'static str {
        "Humayun, Balestriero & Baraniuk, Deep Networks Always Grok and Here is Why, ICML 2024"
    }

    fn about(&self) -> &'static str {
        "long MLP run on 8x8 digits: local complexity around training points rises then falls; \
         PGD accuracy keeps rising after test accuracy plateaus"
    }

    fn run(&self, ctx: &Context) -> Result<Outcome> {
        run(ctx, &ctx.mode.pick(Params::quick, Params::full))
    }
}

/// Everything measured at one evaluation step.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalRecord {
    /// Optimiser steps taken.
    pub step: usize,
    /// MSE on the whole training set.
    pub train_mse: f64,
    /// Accuracy on the training set.
    pub train_acc: f64,
    /// Accuracy on the test set.
    pub test_acc: f64,
    /// Clean accuracy on the attacked test subset.
    pub adv_clean_acc: f64,
    /// PGD accuracy on the attacked test subset.
    pub adv_acc: f64,
    /// Mean LC (hidden layers summed) around training points.
    pub lc_train: f64,
    /// Mean LC around test points.
    pub lc_test: f64,
    /// Mean LC around uniformly random points of [0, 1]^d.
    pub lc_random: f64,
    /// Mean LC around training points per hidden layer.
    pub lc_train_layers: Vec<f64>,
    /// ‖θ‖₂ of all parameters.
    pub weight_norm: f64,
}

/// The tests of the two claims, from the evaluation curves.
#[derive(Debug, Clone, PartialEq)]
pub struct Analysis {
    /// Index of the first evaluation with train accuracy ≥ [`SATURATED`], if any.
    pub saturated: Option<usize>,
    /// Index of the LC-around-training-points peak.
    pub peak: usize,
    /// LC peak ≥ 1.2 × the first LC.
    pub rises: bool,
    /// Final LC ≤ 0.8 × the peak.
    pub falls: bool,
    /// Final LC ≤ 0.8 × the largest LC at or after saturation.
    pub falls_after_saturation: bool,
    /// Index of the first evaluation with test accuracy within [`PLATEAU_TOL`] of its maximum.
    pub plateau: usize,
    /// Final PGD accuracy minus the PGD accuracy at the plateau.
    pub adv_gain: f64,
    /// Final step ≥ [`LONG_AFTER`] × the plateau step.
    pub long_after: bool,
}

/// Train accuracy counted as saturated (interpolation of the training set).
pub const SATURATED: f64 = 0.999;
/// Test accuracy within this of its maximum counts as plateaued.
pub const PLATEAU_TOL: f64 = 0.01;
/// "Long after": at least this factor in steps after the plateau.
pub const LONG_AFTER: f64 = 10.0;
/// Relative change that counts as a rise or a fall of LC.
pub const LC_CHANGE: f64 = 0.2;
/// PGD accuracy gain after the plateau for "reproduced" / "partly".
pub const ADV_GAIN_FULL: f64 = 0.10;
/// See [`ADV_GAIN_FULL`].
pub const ADV_GAIN_PARTLY: f64 = 0.03;

impl Analysis {
    /// Computes the tests; `records` must not be empty.
    pub fn of(records: &[EvalRecord]) -> Result<Self> {
        anyhow::ensure!(!records.is_empty(), "grokking: no evaluation records");
        let last = records.len() - 1;
        let lc: Vec<f64> = records.iter().map(|r| r.lc_train).collect();
        let peak = argmax(&lc);
        let saturated = records.iter().position(|r| r.train_acc >= SATURATED);
        let rises = lc[peak] >= (1.0 + LC_CHANGE) * lc[0] && lc[peak] > 0.0;
        let falls = lc[last] <= (1.0 - LC_CHANGE) * lc[peak] && lc[peak] > 0.0;
        let falls_after_saturation = saturated.is_some_and(|s| {
            let post_max = lc[s..].iter().copied().fold(f64::NEG_INFINITY, f64::max);
            post_max > 0.0 && lc[last] <= (1.0 - LC_CHANGE) * post_max
        });
        let best_test = records
            .iter()
            .map(|r| r.test_acc)
            .fold(f64::NEG_INFINITY, f64::max);
        let plateau = records
            .iter()
            .position(|r| r.test_acc >= best_test - PLATEAU_TOL)
            .unwrap_or(last);
        let adv_gain = records[last].adv_acc - records[plateau].adv_acc;
        let long_after = records[last].step as f64 >= LONG_AFTER * records[plateau].step as f64;
        Ok(Analysis {
            saturated,
            peak,
            rises,
            falls,
            falls_after_saturation,
            plateau,
            adv_gain,
            long_after,
        })
    }

    /// Claim (a): reproduced if LC rises, falls, and falls after saturation; partly if it
    /// falls and either rises first or falls after saturation.
    pub fn lc_verdict(&self) -> Verdict {
        Verdict::from_tests(
            self.rises && self.falls && self.falls_after_saturation,
            self.falls && (self.rises || self.falls_after_saturation),
        )
    }

    /// Claim (b): reproduced if PGD accuracy gains ≥ 10 pp after the plateau and the run goes
    /// on ≥ 10× the plateau step; partly if it gains ≥ 3 pp.
    pub fn robustness_verdict(&self) -> Verdict {
        Verdict::from_tests(
            self.adv_gain >= ADV_GAIN_FULL && self.long_after,
            self.adv_gain >= ADV_GAIN_PARTLY,
        )
    }
}

fn argmax(v: &[f64]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

/// Rows `idx` of `x` and their labels.
fn subset(x: ArrayView2<'_, f32>, labels: &[usize], idx: &[usize]) -> (Array2<f32>, Vec<usize>) {
    (
        x.select(Axis(0), idx),
        idx.iter().map(|&i| labels[i]).collect(),
    )
}

/// The first `n` rows of `x` (all of them if fewer).
fn head(x: &Array2<f32>, n: usize) -> ArrayView2<'_, f32> {
    x.slice(ndarray::s![..n.min(x.nrows()), ..])
}

/// Everything the evaluation hook needs, fixed before training.
struct Probe<'a> {
    x_train: &'a Array2<f32>,
    y_train: &'a [usize],
    x_test: &'a Array2<f32>,
    y_test: &'a [usize],
    x_random: Array2<f32>,
    lc: LocalComplexityEstimator<f32>,
    lc_points: usize,
    pgd: PgdConfig,
    adv_points: usize,
    pgd_seed: u64,
}

impl Probe<'_> {
    fn evaluate(&self, step: usize, mlp: &Mlp<f32>) -> Result<EvalRecord> {
        let (_, train_acc) = evaluate_chunked(mlp, self.x_train.view(), self.y_train, 1024)?;
        let (_, test_acc) = evaluate_chunked(mlp, self.x_test.view(), self.y_test, 1024)?;
        let train_mse =
            f64::from(mlp.loss(self.x_train.view(), &Targets::Hard(self.y_train), Loss::Mse)?);
        let n_adv = self.adv_points.min(self.x_test.nrows());
        // The same random start at every evaluation: the curve's steps are the model's.
        let mut rng = ChaCha8Rng::seed_from_u64(self.pgd_seed);
        let robust = mlp_robust_accuracy(
            mlp,
            head(self.x_test, n_adv),
            &self.y_test[..n_adv],
            &self.pgd,
            &mut rng,
        )
        .with_context(|| format!("PGD at step {step}"))?;
        let lc_train = self
            .lc
            .compute(mlp, head(self.x_train, self.lc_points))
            .with_context(|| format!("local complexity (train) at step {step}"))?;
        let lc_test = self
            .lc
            .compute(mlp, head(self.x_test, self.lc_points))
            .with_context(|| format!("local complexity (test) at step {step}"))?;
        let lc_random = self
            .lc
            .compute(mlp, self.x_random.view())
            .with_context(|| format!("local complexity (random) at step {step}"))?;
        let weight_norm = mlp
            .params()
            .iter()
            .map(|&v| f64::from(v) * f64::from(v))
            .sum::<f64>()
            .sqrt();
        Ok(EvalRecord {
            step,
            train_mse,
            train_acc,
            test_acc,
            adv_clean_acc: robust.clean,
            adv_acc: robust.robust,
            lc_train: lc_train.mean_total(),
            lc_test: lc_test.mean_total(),
            lc_random: lc_random.mean_total(),
            lc_train_layers: lc_train.mean_per_layer().to_vec(),
            weight_norm,
        })
    }
}

/// What one training run produced: the evaluation records and a parameter snapshot at each.
#[derive(Debug)]
pub struct RunData {
    /// One record per evaluation step.
    pub records: Vec<EvalRecord>,
    /// The flat parameters at each evaluation step.
    pub snapshots: Vec<Array1<f32>>,
    /// The trained model (its parameters are the last snapshot's).
    pub mlp: Mlp<f32>,
    /// Training inputs (rows), for the partition planes.
    pub x_train: Array2<f32>,
    /// Training labels.
    pub y_train: Vec<usize>,
    /// Test-set size.
    pub test_points: usize,
}

/// Trains the MLP and evaluates it at log-spaced steps.
pub fn train_and_probe(ctx: &Context, p: &Params) -> Result<RunData> {
    anyhow::ensure!(p.depth >= 2, "grokking: depth = {} must be ≥ 2", p.depth);
    anyhow::ensure!(p.lc_points > 0, "grokking: lc_points must be ≥ 1");
    let digits = load_digits()?;
    let x_all = digits.flattened();
    let n = x_all.nrows();
    anyhow::ensure!(
        p.train_points > 0 && p.train_points < n,
        "grokking: train_points = {} must lie in 1..{n} (the digits have {n} images)",
        p.train_points
    );
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(ctx.seed_for(&"split")));
    let (x_train, y_train) = subset(x_all.view(), &digits.labels, &order[..p.train_points]);
    let (x_test, y_test) = subset(x_all.view(), &digits.labels, &order[p.train_points..]);
    let d = x_train.ncols();
    let classes = digits.n_classes();

    let mut rng = ChaCha8Rng::seed_from_u64(ctx.seed_for(&"random-points"));
    let x_random = Array2::from_shape_fn((p.lc_points, d), |_| rng.random::<f32>());
    let lc = LocalComplexityEstimator::new(
        LocalComplexityConfig {
            radius: p.lc_radius,
            num_vertices: p.lc_vertices,
            seed: ctx.seed_for(&"lc-frame"),
            include_output: false,
            ..LocalComplexityConfig::default()
        },
        d,
    )
    .context("grokking: local-complexity settings")?;
    let probe = Probe {
        x_train: &x_train,
        y_train: &y_train,
        x_test: &x_test,
        y_test: &y_test,
        x_random,
        lc,
        lc_points: p.lc_points,
        pgd: PgdConfig::new(Norm::LInf, p.pgd_epsilon, p.pgd_epsilon / 4.0, p.pgd_steps)
            .with_clamp(0.0, 1.0),
        adv_points: p.adv_points,
        pgd_seed: ctx.seed_for(&"pgd-start"),
    };

    let config = MlpConfig::new(d, vec![p.width; p.depth - 1], classes).with_init_gain(p.init_gain);
    let mut mlp = Mlp::<f32>::new(config, ctx.seed_for(&"init"))?;
    let mut trainer = Trainer::new(
        &mut mlp,
        OptimizerConfig::Adam(AdamConfig {
            weight_decay: p.weight_decay,
            decoupled: true,
            ..AdamConfig::default()
        }),
        LrSchedule::constant(p.lr)?,
        None,
    )?;
    let spec = TrainSpec {
        steps: p.steps,
        batch_size: p.batch,
        eval_steps: log_spaced_steps(p.steps, p.evals),
        divergence_factor: f64::INFINITY,
        loss: Loss::Mse,
    };
    let bar = ctx.progress(p.steps as u64, "grokking");
    let mut records = Vec::new();
    let mut snapshots = Vec::new();
    let log = train_classifier(
        &mut mlp,
        &mut trainer,
        LabelledData {
            x: x_train.view(),
            labels: &y_train,
        },
        &spec,
        ctx.seed_for(&"batches"),
        Some(&bar),
        |step, mlp| {
            records.push(probe.evaluate(step, mlp)?);
            snapshots.push(mlp.params().to_owned());
            Ok(())
        },
    )?;
    bar.finish_and_clear();
    anyhow::ensure!(
        !log.status.diverged(),
        "grokking: training diverged ({:?}) at lr {}",
        log.status,
        p.lr
    );
    Ok(RunData {
        records,
        snapshots,
        mlp,
        test_points: x_test.nrows(),
        x_train,
        y_train,
    })
}

/// Indices of the first training points of classes 0, 1 and 2 (three different classes).
fn partition_anchors(labels: &[usize]) -> Result<[usize; 3]> {
    let mut out = [0; 3];
    for (c, slot) in out.iter_mut().enumerate() {
        *slot = labels
            .iter()
            .position(|&l| l == c)
            .with_context(|| format!("grokking: no training point of class {c}"))?;
    }
    Ok(out)
}

/// The exact partition of the plane through the three anchors under the parameters `params`;
/// returns the number of regions and distinct patterns, and writes the SVG.
fn draw_partition(
    ctx: &Context,
    data: &RunData,
    params: &Array1<f32>,
    plane: &Plane,
    domain: &Polygon,
    file: &str,
    title: String,
) -> Result<(usize, usize, usize)> {
    let mut mlp = data.mlp.clone();
    mlp.set_params(params.view())?;
    let part = Partition2d::compute::<f32, _>(&mlp, plane, domain, PartitionConfig::default())
        .with_context(|| format!("exact partition for {file}"))?;
    let svg = part.to_svg(&SvgOptions {
        width: 520,
        region_edges: true,
        boundary_width: 2.0,
        markers: vec![[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]],
        title: Some(title),
    })?;
    std::fs::write(ctx.path(file), svg)
        .with_context(|| format!("cannot write {}", ctx.path(file).display()))?;
    Ok((
        part.num_regions(),
        part.num_distinct_patterns(),
        part.decision_boundary().len(),
    ))
}

fn pct(v: f64) -> String {
    format!("{:.1}", 100.0 * v)
}

fn run(ctx: &Context, p: &Params) -> Result<Outcome> {
    let data = train_and_probe(ctx, p)?;
    let records = &data.records;
    let a = Analysis::of(records)?;
    let last = records.len() - 1;

    // Exact partitions at the LC peak and at the end.
    let anchors = partition_anchors(&data.y_train)?;
    let row = |i: usize| data.x_train.row(anchors[i]);
    let plane = Plane::through_points(row(0), row(1), row(2))?;
    let m = p.partition_margin;
    let domain = Polygon::new(vec![[-m, -m], [1.0 + 2.0 * m, -m], [-m, 1.0 + 2.0 * m]])?;
    let mut partitions = Vec::new();
    for (tag, i) in [("early", a.peak), ("late", last)] {
        let file = format!("partition_{tag}.svg");
        let title = format!(
            "step {} ({tag}): plane through training digits 0, 1, 2",
            records[i].step
        );
        let counts = draw_partition(
            ctx,
            &data,
            &data.snapshots[i],
            &plane,
            &domain,
            &file,
            title,
        )?;
        partitions.push((tag, i, file, counts));
    }

    // Every number.
    let layers = records.first().map_or(0, |r| r.lc_train_layers.len());
    let mut header: Vec<String> = [
        "step",
        "train_mse",
        "train_acc",
        "test_acc",
        "adv_clean_acc",
        "adv_acc",
        "lc_train",
        "lc_test",
        "lc_random",
        "weight_norm",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    header.extend((0..layers).map(|l| format!("lc_train_layer{}", l + 1)));
    let header_refs: Vec<&str> = header.iter().map(String::as_str).collect();
    let mut csv = ResultsCsv::new(&header_refs);
    for r in records {
        let mut cells = vec![
            r.step.to_string(),
            r.train_mse.to_string(),
            r.train_acc.to_string(),
            r.test_acc.to_string(),
            r.adv_clean_acc.to_string(),
            r.adv_acc.to_string(),
            r.lc_train.to_string(),
            r.lc_test.to_string(),
            r.lc_random.to_string(),
            r.weight_norm.to_string(),
        ];
        cells.extend(r.lc_train_layers.iter().map(f64::to_string));
        csv.row_strings(cells);
    }
    csv.write(ctx.path("results.csv"))?;
    let mut pcsv = ResultsCsv::new(&[
        "snapshot",
        "step",
        "regions",
        "distinct_patterns",
        "boundary_edges",
    ]);
    for (tag, i, _, (regions, patterns, edges)) in &partitions {
        pcsv.row(&[tag, &records[*i].step, regions, patterns, edges]);
    }
    pcsv.write(ctx.path("partitions.csv"))?;

    // Figures.
    let steps: Vec<f64> = records.iter().map(|r| r.step as f64).collect();
    let series = |label: String, f: &dyn Fn(&EvalRecord) -> f64| Series {
        label,
        x: steps.clone(),
        mean: records.iter().map(f).collect(),
        std: None,
    };
    let lc_max = records
        .iter()
        .flat_map(|r| [r.lc_train, r.lc_test, r.lc_random])
        .fold(0.0f64, f64::max)
        .max(f64::MIN_POSITIVE);
    plot::lines_with_band(
        ctx.path("lc_and_accuracy.svg"),
        &format!("LC (÷ {lc_max:.1}) and accuracies over training"),
        "optimisation step",
        "accuracy / normalised LC",
        &[
            series("LC train".into(), &|r: &EvalRecord| r.lc_train / lc_max),
            series("LC test".into(), &|r: &EvalRecord| r.lc_test / lc_max),
            series("LC random".into(), &|r: &EvalRecord| r.lc_random / lc_max),
            series("train acc.".into(), &|r: &EvalRecord| r.train_acc),
            series("test acc.".into(), &|r: &EvalRecord| r.test_acc),
            series(
                format!("PGD acc. (ε = {})", p.pgd_epsilon),
                &|r: &EvalRecord| r.adv_acc,
            ),
        ],
        true,
    )?;
    plot::lines_with_band(
        ctx.path("lc.svg"),
        &format!(
            "local complexity, r = {}, P = {} (hidden neurons cut)",
            p.lc_radius, p.lc_vertices
        ),
        "optimisation step",
        "mean LC (neurons)",
        &[
            series("train points".into(), &|r: &EvalRecord| r.lc_train),
            series("test points".into(), &|r: &EvalRecord| r.lc_test),
            series("random points".into(), &|r: &EvalRecord| r.lc_random),
        ],
        true,
    )?;

    // Claims.
    let sat_text = a.saturated.map_or_else(
        || "train accuracy never reached 99.9%".to_string(),
        |s| format!("train acc. ≥ 99.9% from step {}", records[s].step),
    );
    let post_sat_max = a.saturated.map_or(f64::NAN, |s| {
        records[s..]
            .iter()
            .map(|r| r.lc_train)
            .fold(f64::NEG_INFINITY, f64::max)
    });
    let claims =
        vec![
        Claim::new(
            "local complexity around training points rises, then falls; the descent comes \
             after the training set is fit",
            format!(
                "LC train {:.2} at step {} → peak {:.2} at step {} → {:.2} at step {}; {sat_text} \
                 (max LC from then on {:.2})",
                records[0].lc_train,
                records[0].step,
                records[a.peak].lc_train,
                records[a.peak].step,
                records[last].lc_train,
                records[last].step,
                post_sat_max
            ),
            "rise: peak ≥ 1.2 × first; fall: final ≤ 0.8 × peak; after saturation: final ≤ 0.8 × \
             the largest LC from the first step with train acc. ≥ 99.9% on; reproduced if all \
             three, partly if fall and one of the others",
            a.lc_verdict(),
        )
        .paper("MNIST MLP: LC around training points ascends, then descends long after \
                interpolation (Fig. 1, 5)")
        .expect(Expectation::FullOnly),
        Claim::new(
            "delayed robustness: PGD accuracy keeps improving long after test accuracy has \
             plateaued",
            format!(
                "test acc. plateau ({} %) at step {}; PGD acc. {} % there → {} % at step {} \
                 ({:+.1} pp)",
                pct(records[a.plateau].test_acc),
                records[a.plateau].step,
                pct(records[a.plateau].adv_acc),
                pct(records[last].adv_acc),
                records[last].step,
                100.0 * a.adv_gain
            ),
            "plateau = first step with test acc. within 1 pp of its maximum; reproduced if PGD \
             acc. gains ≥ 10 pp from the plateau to the end and the end is ≥ 10× the plateau \
             step; partly if it gains ≥ 3 pp",
            a.robustness_verdict(),
        )
        .paper("MNIST MLP: adversarial accuracy rises after ~10⁴ steps, test accuracy \
                plateaued long before (Fig. 1)")
        .expect(Expectation::FullOnly),
    ];

    // Section.
    let mut section = String::new();
    let _ = writeln!(
        section,
        "A ReLU MLP {d} → {w}×{h} → 10 (the reference's width {w}, depth {depth}; Gaussian \
         init with PyTorch's default standard deviation) trained on {n} of the 8×8 digits \
         (pixels in [0, 1]; the other {t} are the test set) with MSE on one-hot targets, AdamW \
         (lr {lr}, weight decay {wd}), batch {b}, for {s} steps — the reference MNIST setting \
         (`train_mlp_mnist.py`) on 64-pixel images, so that 10⁵ steps fit on two CPU cores. At \
         {e} log-spaced steps: accuracies, ℓ∞-PGD accuracy on {na} test points (ε = {eps}, \
         {ps} steps of ε/4, random start, clamped to [0, 1]) and local complexity (LC; \
         tessera-spline: one shared orthonormal frame, P = {pv} cross-polytope vertices at \
         radius r = {r}, the number of hidden neurons whose sign changes over the vertices, \
         summed over the {layers} hidden layers) around {nl} training, {nl} test and {nl} \
         uniformly random points of [0, 1]^{d}.\n\n\
         **Tests, stated before the run.** (a) rise: peak LC around training points ≥ 1.2 × \
         its first value; fall: final ≤ 0.8 × peak; after saturation: final ≤ 0.8 × the largest \
         LC from the first step with train accuracy ≥ 99.9%. (b) plateau = the first step with \
         test accuracy within 1 pp of its maximum; PGD accuracy must gain ≥ 10 pp from there to \
         the end, with the end ≥ 10× the plateau step (≥ 3 pp: partly).\n",
        d = data.x_train.ncols(),
        w = p.width,
        h = p.depth - 1,
        depth = p.depth,
        n = p.train_points,
        t = data.test_points,
        lr = p.lr,
        wd = p.weight_decay,
        b = p.batch,
        s = p.steps,
        e = records.len(),
        na = p.adv_points.min(data.test_points),
        eps = p.pgd_epsilon,
        ps = p.pgd_steps,
        pv = p.lc_vertices,
        r = p.lc_radius,
        nl = p.lc_points,
    );
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|r| {
            vec![
                r.step.to_string(),
                format!("{:.4}", r.train_mse),
                pct(r.train_acc),
                pct(r.test_acc),
                pct(r.adv_acc),
                format!("{:.2}", r.lc_train),
                format!("{:.2}", r.lc_test),
                format!("{:.2}", r.lc_random),
                format!("{:.1}", r.weight_norm),
            ]
        })
        .collect();
    section.push_str(&markdown_table(
        &[
            "step",
            "train MSE",
            "train acc. %",
            "test acc. %",
            "PGD acc. %",
            "LC train",
            "LC test",
            "LC random",
            "‖θ‖₂",
        ],
        &rows,
    ));
    let _ = writeln!(
        section,
        "\n![LC and accuracies](grokking/lc_and_accuracy.svg)\n\n\
         ![local complexity](grokking/lc.svg)\n"
    );
    let _ = writeln!(
        section,
        "**Exact partitions** of the plane through the first training digits 0, 1 and 2 \
         (markers at (0, 0), (1, 0), (0, 1) in plane coordinates; the domain is their \
         triangle with a margin of {m}), regions coloured by activation pattern, decision \
         boundary in black: at the LC peak (left) and at the end (right).\n"
    );
    for (tag, i, _, (regions, patterns, edges)) in &partitions {
        let _ = writeln!(
            section,
            "- {tag}, step {}: {regions} regions ({patterns} distinct patterns), {edges} \
             decision-boundary edges",
            records[*i].step
        );
    }
    let _ = writeln!(
        section,
        "\n<img src=\"grokking/{}\" width=\"48%\"> <img src=\"grokking/{}\" width=\"48%\">\n\n\
         Files: `results.csv` (one row per evaluation; per-layer LC around training points), \
         `partitions.csv`.",
        partitions[0].2, partitions[1].2
    );
    Ok(Outcome { section, claims })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(step: usize, train_acc: f64, test_acc: f64, adv_acc: f64, lc: f64) -> EvalRecord {
        EvalRecord {
            step,
            train_mse: 0.0,
            train_acc,
            test_acc,
            adv_clean_acc: test_acc,
            adv_acc,
            lc_train: lc,
            lc_test: lc,
            lc_random: lc,
            lc_train_layers: vec![lc],
            weight_norm: 1.0,
        }
    }

    #[test]
    fn rise_then_fall_after_saturation_is_reproduced() {
        let recs = vec![
            record(1, 0.1, 0.1, 0.0, 10.0),
            record(10, 0.8, 0.7, 0.05, 20.0),
            record(100, 1.0, 0.95, 0.10, 30.0),
            record(1000, 1.0, 0.955, 0.2, 25.0),
            record(10000, 1.0, 0.95, 0.3, 12.0),
        ];
        let a = Analysis::of(&recs).unwrap();
        assert_eq!(a.peak, 2);
        assert_eq!(a.saturated, Some(2));
        assert_eq!(a.lc_verdict(), Verdict::Reproduced);
        // Plateau at step 100 (0.95 is within 1 pp of 0.955); PGD gains 20 pp, 100× later.
        assert_eq!(a.plateau, 2);
        assert!((a.adv_gain - 0.2).abs() < 1e-12);
        assert_eq!(a.robustness_verdict(), Verdict::Reproduced);
    }

    #[test]
    fn a_fall_before_saturation_only_is_partly_and_flat_is_not() {
        // Rises and falls, but the training set is never fit.
        let recs = vec![
            record(1, 0.1, 0.1, 0.0, 10.0),
            record(10, 0.5, 0.5, 0.0, 30.0),
            record(100, 0.9, 0.9, 0.02, 10.0),
        ];
        let a = Analysis::of(&recs).unwrap();
        assert_eq!(a.saturated, None);
        assert_eq!(a.lc_verdict(), Verdict::Partly);
        // The plateau is the last step: no gain, not long after.
        assert_eq!(a.robustness_verdict(), Verdict::NotReproduced);
        let flat = vec![
            record(1, 1.0, 0.9, 0.1, 10.0),
            record(1000, 1.0, 0.9, 0.14, 10.0),
        ];
        let a = Analysis::of(&flat).unwrap();
        assert_eq!(a.lc_verdict(), Verdict::NotReproduced);
        assert_eq!(a.robustness_verdict(), Verdict::Partly);
        assert!(Analysis::of(&[]).is_err());
    }

    #[test]
    fn a_tiny_run_produces_records_and_partitions() {
        let dir =
            std::env::temp_dir().join(format!("tessera-grokking-test-{}", std::process::id()));
        let ctx = Context::new(&dir, "grokking", 7, crate::harness::Mode::Quick).unwrap();
        let p = Params {
            width: 12,
            depth: 3,
            steps: 12,
            batch: 50,
            evals: 3,
            lc_points: 4,
            lc_vertices: 4,
            adv_points: 8,
            pgd_steps: 2,
            ..Params::full()
        };
        let outcome = run(&ctx, &p).unwrap();
        assert_eq!(outcome.claims.len(), 2);
        assert!(ctx.path("partition_early.svg").exists());
        assert!(ctx.path("partition_late.svg").exists());
        let csv = std::fs::read_to_string(ctx.path("results.csv")).unwrap();
        assert_eq!(csv.lines().count(), 1 + 3);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
