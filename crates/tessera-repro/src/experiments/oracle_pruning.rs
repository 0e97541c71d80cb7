//! `oracle-pruning`: does the loss right after pruning predict the quality after retraining?
//!
//! Paper: S. Feng, K. Tao, H. Wang (Westlake University), *Is Oracle Pruning the True
//! Oracle?*, arXiv:2412.00143, 2024 (project page fscdc.github.io/Oracle-Pruning-Sanity-Check).
//! Oracle pruning keeps the weights whose removal raises the training loss least. The paper
//! prunes one pretrained network with many different masks, retrains every pruned network and
//! measures the Kendall rank correlation between the train loss right after pruning and the
//! test performance after retraining. It finds the correlation strong on toy settings
//! (LeNet5-Mini on MNIST) and weak or absent on harder tasks (CIFAR, ImageNet), and weaker
//! when retraining is longer.
//!
//! Our miniature: an f32 ReLU MLP pretrained with Adam on an easy task (the 8×8 digits) and a
//! harder one (MNIST-1D, Greydanus 2020); many random masks at one sparsity, either
//! unstructured (per-layer exact-count random masks over all weight matrices) or neuron-level
//! (whole hidden units removed: their incoming row and outgoing column); every pruned network
//! is retrained by masked fine-tuning (Adam from the pretrained weights, the mask re-applied
//! after every step, the same mini-batch order for every mask) and evaluated after a short and
//! after longer retraining. Kendall τ-b (tessera-sparse) between pruned train loss and
//! retrained test loss per setting, with bootstrap resamples of the masks for the
//! uncertainty; the anomaly ratio (tessera-sparse) per setting.

use std::fmt::Write as _;

use anyhow::{bail, ensure, Context as _, Result};
use ndarray::{Array2, ArrayView2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use tessera_nn::{
    Loss, LrSchedule, Mask, MaskPolicy, MaskSet, Mlp, MlpConfig, OptimizerConfig, Trainer,
};
use tessera_sparse::{anomaly_ratio, kendall_tau_b, spearman_rho, Objective};

use crate::harness::train::{train_classifier, LabelledData, TrainSpec};
use crate::harness::{
    evaluate_chunked, fmt_mean_std, markdown_table, mean_std, plot, Claim, Context, Expectation,
    Experiment, Mode, Outcome, ResultsCsv, RunStatus, Series, Verdict,
};

/// The experiment's name (`--only oracle-pruning`).
pub const NAME: &str = "oracle-pruning";

/// Kendall τ below which a rank correlation counts as weak in the third claim.
pub const WEAK_TAU: f64 = 0.3;

/// One-sided level of the bootstrap bounds (5th / 95th percentiles).
const ONE_SIDED_LEVEL: f64 = 0.05;

/// Everything that sets the size of the experiment.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    /// Hidden widths of the MLP (input and output sizes come from the task).
    pub hidden: Vec<usize>,
    /// Fraction pruned: of the weights of every layer (unstructured), or of the units of every
    /// hidden layer (neuron-level).
    pub sparsity: f64,
    /// Masks drawn per (task, pruning kind).
    pub masks: usize,
    /// Mini-batch size of pretraining and retraining.
    pub batch_size: usize,
    /// Adam learning rate of pretraining and retraining (constant).
    pub lr: f64,
    /// Pretraining steps.
    pub pretrain_steps: usize,
    /// Retraining lengths (optimiser steps) at which the retrained network is evaluated, in
    /// increasing order; the first is the "short" and the last the "long" retraining.
    pub retrain_steps: Vec<usize>,
    /// Fraction of the 1797 digits kept for training (stratified), the rest is the test set.
    pub digits_train_fraction: f64,
    /// MNIST-1D training examples.
    pub mnist1d_train: usize,
    /// MNIST-1D test examples.
    pub mnist1d_test: usize,
    /// Bootstrap resamples of the masks.
    pub bootstrap: usize,
    /// Rows per forward pass in evaluations.
    pub eval_chunk: usize,
}

impl Params {
    /// The smoke-test size (≈ 20 s on two cores).
    pub fn quick() -> Self {
        Params {
            hidden: vec![64, 64],
            sparsity: 0.5,
            masks: 100,
            batch_size: 128,
            lr: 1e-3,
            pretrain_steps: 1500,
            retrain_steps: vec![10, 30, 100],
            digits_train_fraction: 0.8,
            mnist1d_train: 4000,
            mnist1d_test: 1000,
            bootstrap: 1000,
            eval_chunk: 2048,
        }
    }

    /// The full size (a few minutes on two cores).
    pub fn full() -> Self {
        Params {
            masks: 160,
            pretrain_steps: 4000,
            retrain_steps: vec![10, 30, 100, 300, 1000],
            bootstrap: 2000,
            ..Self::quick()
        }
    }

    /// The parameters of a mode.
    pub fn for_mode(mode: Mode) -> Self {
        mode.pick(Self::quick, Self::full)
    }

    fn validate(&self) -> Result<()> {
        ensure!(
            self.sparsity > 0.0 && self.sparsity < 1.0,
            "sparsity = {} must lie in (0, 1)",
            self.sparsity
        );
        ensure!(self.masks >= 3, "masks = {} must be at least 3", self.masks);
        ensure!(
            self.retrain_steps.len() >= 2
                && self.retrain_steps[0] >= 1
                && self.retrain_steps.windows(2).all(|w| w[0] < w[1]),
            "retrain_steps = {:?} must hold at least two increasing lengths ≥ 1",
            self.retrain_steps
        );
        ensure!(
            self.bootstrap >= 100,
            "bootstrap = {} must be at least 100",
            self.bootstrap
        );
        ensure!(
            !self.hidden.is_empty(),
            "hidden = {:?} needs at least one hidden layer",
            self.hidden
        );
        Ok(())
    }

    fn short(&self) -> usize {
        self.retrain_steps[0]
    }

    fn long(&self) -> usize {
        *self.retrain_steps.last().expect("validated: non-empty")
    }
}

/// The experiment (registered in [`crate::experiments::all`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct OraclePruning;

impl Experiment for OraclePruning {
    fn name(&self) -> &'static str {
        NAME
    }

    fn paper(&self) -> &'static str {
        "Feng, Tao & Wang (Westlake University), Is Oracle Pruning the True Oracle?, arXiv:2412.00143, 2024"
    }

    fn about(&self) -> &'static str {
        "Kendall τ between loss right after pruning and test loss after retraining, over many masks; anomaly ratio"
    }

    fn run(&self, ctx: &Context) -> Result<Outcome> {
        run_with(ctx, &Params::for_mode(ctx.mode))
    }
}

// ---------------------------------------------------------------------------------------------
// Masks

/// How masks remove weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PruneKind {
    /// Random individual weights: exactly `round((1 − s)·n)` kept per weight matrix.
    Unstructured,
    /// Random whole hidden units: exactly `round(s·width)` removed per hidden layer.
    Neuron,
}

impl PruneKind {
    /// Both kinds, in report order.
    pub const ALL: [PruneKind; 2] = [PruneKind::Unstructured, PruneKind::Neuron];

    /// Short name (CSV, file names).
    pub fn name(self) -> &'static str {
        match self {
            PruneKind::Unstructured => "unstructured",
            PruneKind::Neuron => "neuron",
        }
    }
}

/// Per-layer random masks with exactly `round((1 − sparsity)·n)` kept weights in each weight
/// matrix; `shapes` are `(fan_in, fan_out)` per dense layer.
///
/// # Errors
/// `sparsity` outside `[0, 1)`.
pub fn unstructured_masks<R: Rng + ?Sized>(
    shapes: &[(usize, usize)],
    sparsity: f64,
    rng: &mut R,
) -> Result<Vec<Option<Mask>>> {
    ensure!(
        (0.0..1.0).contains(&sparsity),
        "sparsity = {sparsity} must lie in [0, 1)"
    );
    shapes
        .iter()
        .map(|&(fan_in, fan_out)| {
            Mask::exact_count(fan_in * fan_out, 1.0 - sparsity, rng)
                .map(Some)
                .map_err(|e| anyhow::anyhow!("unstructured mask: {e}"))
        })
        .collect()
}

/// Units removed from each hidden layer by a neuron-level mask at `sparsity`:
/// `round(sparsity · width)`.
pub fn units_removed(width: usize, sparsity: f64) -> usize {
    ((sparsity * width as f64).round() as usize).min(width)
}

/// Neuron-level masks: in every hidden layer (all layers but the last of `shapes`, given as
/// `(fan_in, fan_out)`), exactly [`units_removed`] units chosen uniformly at random lose their
/// incoming weights (row of this layer's matrix) and their outgoing weights (column of the
/// next layer's). Biases are not masked, but a removed unit's output reaches nothing and gets
/// no gradient. Returns the masks and the sorted removed units of each hidden layer.
///
/// # Errors
/// Fewer than two layers, mismatched consecutive shapes, `sparsity` outside `[0, 1)`, or a
/// sparsity that would remove every unit of a layer.
pub fn neuron_masks<R: Rng + ?Sized>(
    shapes: &[(usize, usize)],
    sparsity: f64,
    rng: &mut R,
) -> Result<NeuronMasks> {
    ensure!(
        shapes.len() >= 2,
        "shapes has {} layers; neuron pruning needs a hidden layer",
        shapes.len()
    );
    ensure!(
        (0.0..1.0).contains(&sparsity),
        "sparsity = {sparsity} must lie in [0, 1)"
    );
    for (l, w) in shapes.windows(2).enumerate() {
        ensure!(
            w[0].1 == w[1].0,
            "shapes: layer {l} has {} outputs but layer {} has {} inputs",
            w[0].1,
            l + 1,
            w[1].0
        );
    }
    let mut keep: Vec<Vec<bool>> = shapes.iter().map(|&(i, o)| vec![true; i * o]).collect();
    let mut removed_all = Vec::with_capacity(shapes.len() - 1);
    for l in 0..shapes.len() - 1 {
        let (fan_in, width) = shapes[l];
        let k = units_removed(width, sparsity);
        ensure!(
            k < width,
            "sparsity = {sparsity} removes all {width} units of hidden layer {l}"
        );
        let mut removed = rand::seq::index::sample(rng, width, k).into_vec();
        removed.sort_unstable();
        let (next_in, next_out) = shapes[l + 1];
        for &u in &removed {
            keep[l][u * fan_in..(u + 1) * fan_in].fill(false);
            for r in 0..next_out {
                keep[l + 1][r * next_in + u] = false;
            }
        }
        removed_all.push(removed);
    }
    let masks = keep.iter().map(|k| Some(Mask::from_bools(k))).collect();
    Ok(NeuronMasks {
        masks,
        removed: removed_all,
    })
}

/// What [`neuron_masks`] returns.
#[derive(Debug, Clone, PartialEq)]
pub struct NeuronMasks {
    /// One mask per dense layer.
    pub masks: Vec<Option<Mask>>,
    /// The removed units of each hidden layer, sorted.
    pub removed: Vec<Vec<usize>>,
}

// ---------------------------------------------------------------------------------------------
// Data and training

/// The two tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskKind {
    /// The 8×8 digits (easy: logistic regression ≈ 96%).
    Digits,
    /// MNIST-1D (harder: an MLP reaches ≈ 68% at 4000 training examples).
    Mnist1d,
}

impl TaskKind {
    /// Both tasks, easy first.
    pub const ALL: [TaskKind; 2] = [TaskKind::Digits, TaskKind::Mnist1d];

    /// Short name (CSV, file names).
    pub fn name(self) -> &'static str {
        match self {
            TaskKind::Digits => "digits",
            TaskKind::Mnist1d => "mnist1d",
        }
    }
}

/// A classification task's train and test sets (rows are examples).
#[derive(Debug, Clone)]
pub struct TaskData {
    /// Which task.
    pub kind: TaskKind,
    /// Training inputs.
    pub x_train: Array2<f32>,
    /// Training labels.
    pub y_train: Vec<usize>,
    /// Test inputs.
    pub x_test: Array2<f32>,
    /// Test labels.
    pub y_test: Vec<usize>,
    /// Number of classes.
    pub classes: usize,
}

fn load_task(kind: TaskKind, p: &Params, seed: u64) -> Result<TaskData> {
    match kind {
        TaskKind::Digits => {
            let d = tessera_data::load_digits().context("loading the 8×8 digits")?;
            let split = tessera_data::stratified_split(
                &d.labels,
                d.n_classes(),
                p.digits_train_fraction,
                seed,
            )
            .context("splitting the digits")?;
            let x = d.flattened();
            let pick = |idx: &[usize]| -> (Array2<f32>, Vec<usize>) {
                (
                    x.select(ndarray::Axis(0), idx),
                    idx.iter().map(|&i| d.labels[i]).collect(),
                )
            };
            let (x_train, y_train) = pick(&split.labelled);
            let (x_test, y_test) = pick(&split.unlabelled);
            Ok(TaskData {
                kind,
                x_train,
                y_train,
                x_test,
                y_test,
                classes: d.n_classes(),
            })
        }
        TaskKind::Mnist1d => load_mnist1d(p, seed),
    }
}

fn load_mnist1d(p: &Params, seed: u64) -> Result<TaskData> {
    let total = p.mnist1d_train + p.mnist1d_test;
    ensure!(
        p.mnist1d_train > 0 && p.mnist1d_test > 0,
        "mnist1d_train = {} and mnist1d_test = {} must both be positive",
        p.mnist1d_train,
        p.mnist1d_test
    );
    let config = tessera_data::Mnist1dConfig {
        num_samples: total,
        // The generator keeps floor(n·f) examples for training: aim half an example above
        // the wanted count so that rounding cannot lose one.
        train_split: (p.mnist1d_train as f64 + 0.5) / total as f64,
        seed,
        ..tessera_data::Mnist1dConfig::default()
    };
    let data = tessera_data::Mnist1d::generate(&config).context("generating MNIST-1D")?;
    ensure!(
        data.train.len() == p.mnist1d_train,
        "MNIST-1D split gave {} training examples, expected {}",
        data.train.len(),
        p.mnist1d_train
    );
    Ok(TaskData {
        kind: TaskKind::Mnist1d,
        classes: data.train.n_classes(),
        x_train: data.train.x,
        y_train: data.train.labels,
        x_test: data.test.x,
        y_test: data.test.labels,
    })
}

/// What the pruned and retrained network scored at one retraining length.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Checkpoint {
    /// Retraining steps taken.
    pub steps: usize,
    /// Loss on the whole training set.
    pub train_loss: f64,
    /// Accuracy on the training set.
    pub train_acc: f64,
    /// Loss on the test set.
    pub test_loss: f64,
    /// Accuracy on the test set.
    pub test_acc: f64,
}

/// One mask's numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct MaskRecord {
    /// The seed the mask was drawn from.
    pub seed: u64,
    /// Overall weight density of the mask (biases excluded).
    pub density: f64,
    /// Train loss right after pruning (no retraining).
    pub pruned_train_loss: f64,
    /// Train accuracy right after pruning.
    pub pruned_train_acc: f64,
    /// Test loss right after pruning.
    pub pruned_test_loss: f64,
    /// Test accuracy right after pruning.
    pub pruned_test_acc: f64,
    /// One entry per retraining length of [`Params::retrain_steps`] (NaN after a divergence).
    pub checkpoints: Vec<Checkpoint>,
    /// Whether retraining finished or diverged.
    pub status: RunStatus,
}

fn layer_shapes(mlp: &Mlp<f32>) -> Vec<(usize, usize)> {
    mlp.layers().iter().map(|l| (l.fan_in, l.fan_out)).collect()
}

fn train_spec(p: &Params, steps: usize, eval_steps: Vec<usize>) -> TrainSpec {
    TrainSpec {
        steps,
        batch_size: p.batch_size,
        eval_steps,
        divergence_factor: 10.0,
        loss: Loss::SoftmaxCrossEntropy,
    }
}

/// Pretrains the dense network of a task (Adam, constant learning rate).
fn pretrain(task: &TaskData, p: &Params, init_seed: u64, order_seed: u64) -> Result<Vec<f32>> {
    let config = MlpConfig::new(task.x_train.ncols(), p.hidden.clone(), task.classes);
    let mut mlp = Mlp::<f32>::new(config, init_seed)?;
    let mut trainer = Trainer::new(
        &mut mlp,
        OptimizerConfig::adam(),
        LrSchedule::constant(p.lr)?,
        None,
    )?;
    let log = train_classifier(
        &mut mlp,
        &mut trainer,
        LabelledData {
            x: task.x_train.view(),
            labels: &task.y_train,
        },
        &train_spec(p, p.pretrain_steps, Vec::new()),
        order_seed,
        None,
        |_, _| Ok(()),
    )?;
    if let RunStatus::Diverged { step, loss } = log.status {
        bail!(
            "pretraining on {} diverged at step {step} (loss {loss})",
            task.kind.name()
        );
    }
    Ok(mlp.params().to_vec())
}

fn evaluate(
    mlp: &Mlp<f32>,
    x: ArrayView2<'_, f32>,
    y: &[usize],
    chunk: usize,
) -> Result<(f64, f64)> {
    evaluate_chunked(mlp, x, y, chunk)
}

/// Prunes `base` with one mask drawn from `mask_seed`, records the losses right after pruning,
/// retrains with the mask re-applied after every step (mini-batch order from `order_seed`,
/// shared by every mask) and evaluates at every retraining length.
pub fn run_mask(
    base: &Mlp<f32>,
    task: &TaskData,
    kind: PruneKind,
    p: &Params,
    mask_seed: u64,
    order_seed: u64,
) -> Result<MaskRecord> {
    let mut rng = ChaCha8Rng::seed_from_u64(mask_seed);
    let shapes = layer_shapes(base);
    let masks = match kind {
        PruneKind::Unstructured => unstructured_masks(&shapes, p.sparsity, &mut rng)?,
        PruneKind::Neuron => neuron_masks(&shapes, p.sparsity, &mut rng)?.masks,
    };
    Ok(prune_and_retrain(base, task, masks, p, mask_seed, order_seed)?.0)
}

/// The work of [`run_mask`] for given masks; also returns the retrained network.
fn prune_and_retrain(
    base: &Mlp<f32>,
    task: &TaskData,
    masks: Vec<Option<Mask>>,
    p: &Params,
    mask_seed: u64,
    order_seed: u64,
) -> Result<(MaskRecord, Mlp<f32>)> {
    let mut mlp = base.clone();
    let set = MaskSet::new(&mlp, masks, MaskPolicy::default())?;
    let density = set.weight_density();
    // `Trainer::new` applies the mask to the weights: this is the pruned network.
    let mut trainer = Trainer::new(
        &mut mlp,
        OptimizerConfig::adam(),
        LrSchedule::constant(p.lr)?,
        Some(set),
    )?;
    let chunk = p.eval_chunk;
    let (pruned_train_loss, pruned_train_acc) =
        evaluate(&mlp, task.x_train.view(), &task.y_train, chunk)?;
    let (pruned_test_loss, pruned_test_acc) =
        evaluate(&mlp, task.x_test.view(), &task.y_test, chunk)?;
    let mut checkpoints = Vec::with_capacity(p.retrain_steps.len());
    let log = train_classifier(
        &mut mlp,
        &mut trainer,
        LabelledData {
            x: task.x_train.view(),
            labels: &task.y_train,
        },
        &train_spec(p, p.long(), p.retrain_steps.clone()),
        order_seed,
        None,
        |steps, m| {
            let (train_loss, train_acc) = evaluate(m, task.x_train.view(), &task.y_train, chunk)?;
            let (test_loss, test_acc) = evaluate(m, task.x_test.view(), &task.y_test, chunk)?;
            checkpoints.push(Checkpoint {
                steps,
                train_loss,
                train_acc,
                test_loss,
                test_acc,
            });
            Ok(())
        },
    )?;
    // A diverged run reaches none of the later checkpoints: record them as NaN.
    for &steps in &p.retrain_steps[checkpoints.len()..] {
        checkpoints.push(Checkpoint {
            steps,
            train_loss: f64::NAN,
            train_acc: f64::NAN,
            test_loss: f64::NAN,
            test_acc: f64::NAN,
        });
    }
    let record = MaskRecord {
        seed: mask_seed,
        density,
        pruned_train_loss,
        pruned_train_acc,
        pruned_test_loss,
        pruned_test_acc,
        checkpoints,
        status: log.status,
    };
    Ok((record, mlp))
}

/// Runs every mask of one (task, kind) setting in parallel over the rayon pool. Each mask is
/// computed from its own seed alone, so the records do not depend on the number of threads.
pub fn run_masks(
    base: &Mlp<f32>,
    task: &TaskData,
    kind: PruneKind,
    p: &Params,
    mask_seeds: &[u64],
    order_seed: u64,
    progress: &indicatif::ProgressBar,
) -> Result<Vec<MaskRecord>> {
    mask_seeds
        .par_iter()
        .map(|&seed| {
            // Each mask runs on a one-thread pool of its own: its products are too small to
            // gain from splitting across the workers that already run other masks (splitting
            // only added scheduling overhead, ~25% of the CPU time); results are bit-identical.
            let single = rayon::ThreadPoolBuilder::new()
                .num_threads(1)
                .build()
                .context("building a one-thread pool")?;
            let record = single.install(|| run_mask(base, task, kind, p, seed, order_seed));
            progress.inc(1);
            record
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Statistics

/// Linear-interpolation quantile (`numpy.quantile`'s default) of finite values; NaN when there
/// are none.
pub fn quantile(values: &[f64], q: f64) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let pos = q.clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

/// Rank statistics of one (task, kind, retraining length).
#[derive(Debug, Clone, PartialEq)]
pub struct RankStats {
    /// Masks with finite numbers (the others diverged).
    pub n: usize,
    /// Kendall τ-b(pruned train loss, retrained test loss).
    pub tau_loss: f64,
    /// Kendall τ-b(pruned train loss, retrained test error = 1 − accuracy).
    pub tau_error: f64,
    /// Spearman ρ(pruned train loss, retrained test loss).
    pub rho_loss: f64,
    /// Share of masks beating, by retrained test loss, the mask with the lowest pruned loss.
    pub anomaly_loss: f64,
    /// The same by retrained test accuracy.
    pub anomaly_acc: f64,
    /// Mean and std of the retrained test accuracy over masks.
    pub test_acc: (f64, f64),
    /// Mean and std of the retrained test loss over masks.
    pub test_loss: (f64, f64),
    /// Bootstrap replicates of `tau_loss` (NaN where a resample made τ undefined).
    pub tau_loss_boot: Vec<f64>,
}

impl RankStats {
    /// Sample std of the finite bootstrap replicates of τ.
    pub fn tau_boot_std(&self) -> f64 {
        let finite: Vec<f64> = self
            .tau_loss_boot
            .iter()
            .copied()
            .filter(|v| v.is_finite())
            .collect();
        mean_std(&finite).1
    }
}

/// `(pruned train loss, retrained test loss, retrained test accuracy)` of the masks whose
/// checkpoint `c` is finite.
fn finite_triples(records: &[MaskRecord], c: usize) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let mut out = (Vec::new(), Vec::new(), Vec::new());
    for r in records {
        let cp = &r.checkpoints[c];
        if r.pruned_train_loss.is_finite() && cp.test_loss.is_finite() && cp.test_acc.is_finite() {
            out.0.push(r.pruned_train_loss);
            out.1.push(cp.test_loss);
            out.2.push(cp.test_acc);
        }
    }
    out
}

/// Rank statistics of every checkpoint of a setting, with `reps` bootstrap resamples of the
/// masks drawn from `seed`; the same resampled masks serve every checkpoint (paired), so the
/// difference between two retraining lengths is bootstrapped correctly.
pub fn rank_stats(
    records: &[MaskRecord],
    checkpoints: usize,
    reps: usize,
    seed: u64,
) -> Result<Vec<RankStats>> {
    ensure!(!records.is_empty(), "rank_stats: no masks");
    let n_all = records.len();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let resamples: Vec<Vec<usize>> = (0..reps)
        .map(|_| (0..n_all).map(|_| rng.random_range(0..n_all)).collect())
        .collect();
    (0..checkpoints)
        .map(|c| {
            let (pruned, loss, acc) = finite_triples(records, c);
            ensure!(
                pruned.len() >= 3,
                "checkpoint {c}: only {} masks with finite numbers",
                pruned.len()
            );
            let error: Vec<f64> = acc.iter().map(|a| 1.0 - a).collect();
            let tau_loss = kendall_tau_b(&pruned, &loss)?;
            // Accuracy can be constant over masks (e.g. 100% train fit): τ undefined → NaN.
            let tau_error = kendall_tau_b(&pruned, &error).unwrap_or(f64::NAN);
            let rho_loss = spearman_rho(&pruned, &loss)?;
            let anomaly_loss = anomaly_ratio(&pruned, &loss, Objective::Minimise)?;
            let anomaly_acc = anomaly_ratio(&pruned, &acc, Objective::Maximise)?;
            // Bootstrap over the original mask indices; masks whose checkpoint is not finite
            // are dropped from each resample.
            let tau_loss_boot = resamples
                .iter()
                .map(|idx| {
                    let (mut x, mut y) = (Vec::with_capacity(n_all), Vec::with_capacity(n_all));
                    for &i in idx {
                        let r = &records[i];
                        let v = r.checkpoints[c].test_loss;
                        if r.pruned_train_loss.is_finite() && v.is_finite() {
                            x.push(r.pruned_train_loss);
                            y.push(v);
                        }
                    }
                    kendall_tau_b(&x, &y).unwrap_or(f64::NAN)
                })
                .collect();
            Ok(RankStats {
                n: pruned.len(),
                tau_loss,
                tau_error,
                rho_loss,
                anomaly_loss,
                anomaly_acc,
                test_acc: mean_std(&acc),
                test_loss: mean_std(&loss),
                tau_loss_boot,
            })
        })
        .collect()
}

/// One directional comparison `a − b` of two τ's, expected positive.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// What is compared, e.g. "neuron, short: digits − mnist1d".
    pub label: String,
    /// Point estimate `τ_a − τ_b`.
    pub delta: f64,
    /// Bootstrap std of the difference.
    pub std: f64,
    /// 5th percentile of the bootstrap differences (one-sided 95% lower bound).
    pub lower: f64,
    /// 95th percentile (one-sided 95% upper bound).
    pub upper: f64,
}

impl Comparison {
    /// From point estimates and bootstrap replicates (paired or independent, replicate by
    /// replicate); NaN replicates are dropped.
    pub fn new(label: String, a: f64, b: f64, a_boot: &[f64], b_boot: &[f64]) -> Self {
        let diffs: Vec<f64> = a_boot
            .iter()
            .zip(b_boot)
            .map(|(x, y)| x - y)
            .filter(|d| d.is_finite())
            .collect();
        Comparison {
            label,
            delta: a - b,
            std: mean_std(&diffs).1,
            lower: quantile(&diffs, ONE_SIDED_LEVEL),
            upper: quantile(&diffs, 1.0 - ONE_SIDED_LEVEL),
        }
    }

    /// Significantly positive: the one-sided 95% lower bound is above 0.
    pub fn significant(&self) -> bool {
        self.lower > 0.0
    }

    /// Significantly negative (against the claim): the one-sided 95% upper bound is below 0.
    pub fn contradicts(&self) -> bool {
        self.upper < 0.0
    }
}

/// The verdict rule of the two τ claims, fixed before any run: reproduced when every
/// comparison is significantly positive; partly when at least one is and none is significantly
/// negative; otherwise not reproduced.
pub fn verdict_of(comparisons: &[Comparison]) -> Verdict {
    let all = !comparisons.is_empty() && comparisons.iter().all(Comparison::significant);
    let some = comparisons.iter().any(Comparison::significant)
        && !comparisons.iter().any(Comparison::contradicts);
    Verdict::from_tests(all, some)
}

// ---------------------------------------------------------------------------------------------
// The run

struct Setting {
    task: TaskKind,
    kind: PruneKind,
    records: Vec<MaskRecord>,
    stats: Vec<RankStats>,
}

struct Dense {
    task: TaskKind,
    train: (f64, f64),
    test: (f64, f64),
    n_train: usize,
    n_test: usize,
    params: usize,
}

fn run_with(ctx: &Context, p: &Params) -> Result<Outcome> {
    p.validate()?;
    let cache = ctx.baseline_cache();
    let mut settings: Vec<Setting> = Vec::new();
    let mut dense_rows: Vec<Dense> = Vec::new();
    let total = (TaskKind::ALL.len() * PruneKind::ALL.len() * p.masks) as u64;
    let bar = ctx.progress(total, "oracle-pruning masks");
    for task_kind in TaskKind::ALL {
        let data_seed = ctx.seed_for(&("data", task_kind.name()));
        let task = load_task(task_kind, p, data_seed)?;
        let init_seed = ctx.seed_for(&("init", task_kind.name()));
        let pretrain_order = ctx.seed_for(&("pretrain-order", task_kind.name()));
        let key = (
            NAME,
            task_kind.name(),
            data_seed,
            init_seed,
            pretrain_order,
            &p.hidden,
            p.pretrain_steps,
            p.batch_size,
            p.lr,
            p.digits_train_fraction,
            p.mnist1d_train,
            p.mnist1d_test,
        );
        let params = cache.get_or_train(&key, || pretrain(&task, p, init_seed, pretrain_order))?;
        let config = MlpConfig::new(task.x_train.ncols(), p.hidden.clone(), task.classes);
        let mut base = Mlp::<f32>::new(config, init_seed)?;
        base.set_params(ndarray::ArrayView1::from(&params[..]))?;
        dense_rows.push(Dense {
            task: task_kind,
            train: evaluate(&base, task.x_train.view(), &task.y_train, p.eval_chunk)?,
            test: evaluate(&base, task.x_test.view(), &task.y_test, p.eval_chunk)?,
            n_train: task.y_train.len(),
            n_test: task.y_test.len(),
            params: base.num_params(),
        });
        let order_seed = ctx.seed_for(&("retrain-order", task_kind.name()));
        for kind in PruneKind::ALL {
            let seeds: Vec<u64> = (0..p.masks)
                .map(|i| ctx.seed_for(&("mask", task_kind.name(), kind.name(), i)))
                .collect();
            let records = run_masks(&base, &task, kind, p, &seeds, order_seed, &bar)?;
            let boot_seed = ctx.seed_for(&("bootstrap", task_kind.name(), kind.name()));
            let stats = rank_stats(&records, p.retrain_steps.len(), p.bootstrap, boot_seed)?;
            settings.push(Setting {
                task: task_kind,
                kind,
                records,
                stats,
            });
        }
    }
    bar.finish_and_clear();
    write_results(ctx, p, &settings, &dense_rows)?;
    draw_plots(ctx, p, &settings)?;
    let claims = claims(p, &settings);
    let section = section(p, &settings, &dense_rows);
    Ok(Outcome { section, claims })
}

fn find(settings: &[Setting], task: TaskKind, kind: PruneKind) -> &Setting {
    settings
        .iter()
        .find(|s| s.task == task && s.kind == kind)
        .expect("every (task, kind) setting is run")
}

/// `a − b` of the loss-rank τ, with its bootstrap.
fn tau_loss_comparison(label: String, a: &RankStats, b: &RankStats) -> Comparison {
    Comparison::new(
        label,
        a.tau_loss,
        b.tau_loss,
        &a.tau_loss_boot,
        &b.tau_loss_boot,
    )
}

fn task_comparisons(p: &Params, settings: &[Setting]) -> Vec<Comparison> {
    let last = p.retrain_steps.len() - 1;
    let mut out = Vec::new();
    for kind in PruneKind::ALL {
        let easy = find(settings, TaskKind::Digits, kind);
        let hard = find(settings, TaskKind::Mnist1d, kind);
        for (c, len) in [(0, "short"), (last, "long")] {
            let (a, b) = (&easy.stats[c], &hard.stats[c]);
            out.push(tau_loss_comparison(
                format!(
                    "{}, {len} ({} steps): digits − mnist1d",
                    kind.name(),
                    p.retrain_steps[c]
                ),
                a,
                b,
            ));
        }
    }
    out
}

fn length_comparisons(p: &Params, settings: &[Setting]) -> Vec<Comparison> {
    let last = p.retrain_steps.len() - 1;
    settings
        .iter()
        .map(|s| {
            let (a, b) = (&s.stats[0], &s.stats[last]);
            tau_loss_comparison(
                format!(
                    "{}, {}: {} − {} steps",
                    s.task.name(),
                    s.kind.name(),
                    p.short(),
                    p.long()
                ),
                a,
                b,
            )
        })
        .collect()
}

fn fmt_comparisons(cs: &[Comparison]) -> String {
    cs.iter()
        .map(|c| {
            format!(
                "{}: Δτ = {:+.3} (boot. std {:.3}, 5th pct {:+.3})",
                c.label, c.delta, c.std, c.lower
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn claims(p: &Params, settings: &[Setting]) -> Vec<Claim> {
    let rule = "one-sided 95% bootstrap over masks (resampled with replacement, paired across \
                retraining lengths, independent across tasks): a comparison is significant when \
                the 5th percentile of the bootstrap Δτ is > 0. Reproduced: every comparison \
                significant; partly: at least one significant and none significantly < 0 \
                (95th percentile < 0); otherwise not reproduced";
    let by_task = task_comparisons(p, settings);
    let by_length = length_comparisons(p, settings);
    let mut out = vec![
        Claim::new(
            "τ(pruned train loss, retrained test loss) falls as the task gets harder (digits → MNIST-1D)",
            fmt_comparisons(&by_task),
            format!(
                "Δτ = τ_digits − τ_mnist1d for each pruning kind at the shortest and longest \
                 retraining (4 comparisons, {} masks each, {} resamples); {rule}",
                p.masks, p.bootstrap
            ),
            verdict_of(&by_task),
        )
        .paper("rising task complexity a primary factor; correlation negligible from ResNet56/CIFAR-10 up (abstract, no τ quoted here)"),
        Claim::new(
            "τ(pruned train loss, retrained test loss) falls as retraining gets longer",
            fmt_comparisons(&by_length),
            format!(
                "Δτ = τ_short − τ_long ({} vs {} retraining steps) for each task and pruning \
                 kind (4 comparisons, {} masks each, {} resamples); {rule}",
                p.short(),
                p.long(),
                p.masks,
                p.bootstrap
            ),
            verdict_of(&by_length),
        )
        .paper("the retraining stage must be accounted for (abstract); the length effect is the issue's reading, no number quoted")
        // Every full-mode comparison clears 0 by several bootstrap stds; the quick run's
        // 100-step "long" retraining is too short to require it.
        .expect(Expectation::FullOnly),
    ];
    // The paper's headline on the harder task after long retraining.
    let last = p.retrain_steps.len() - 1;
    let hard: Vec<&RankStats> = PruneKind::ALL
        .iter()
        .map(|&k| &find(settings, TaskKind::Mnist1d, k).stats[last])
        .collect();
    let upper: Vec<f64> = hard
        .iter()
        .map(|s| quantile(&s.tau_loss_boot, 1.0 - ONE_SIDED_LEVEL))
        .collect();
    let weak_all = upper.iter().all(|&u| u < WEAK_TAU);
    let weak_some = hard.iter().any(|s| s.tau_loss < WEAK_TAU);
    let ours = PruneKind::ALL
        .iter()
        .zip(&hard)
        .zip(&upper)
        .map(|((k, s), u)| {
            format!(
                "{}: τ = {:.3} (95th pct {:.3}), anomaly ratio {:.2}",
                k.name(),
                s.tau_loss,
                u,
                s.anomaly_loss
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    out.push(
        Claim::new(
            "on the harder task after long retraining, pruned loss barely predicts retrained test loss",
            ours,
            format!(
                "MNIST-1D, {} retraining steps, both pruning kinds: reproduced when the one-sided \
                 95% bootstrap upper bound of τ is < {WEAK_TAU} for both kinds; partly when the \
                 point estimate is < {WEAK_TAU} for at least one kind",
                p.long()
            ),
            Verdict::from_tests(weak_all, weak_some),
        )
        .paper("\"barely correlated\" on modern networks and datasets (abstract)"),
    );
    out
}

// ---------------------------------------------------------------------------------------------
// Output

fn write_results(ctx: &Context, p: &Params, settings: &[Setting], dense: &[Dense]) -> Result<()> {
    let mut csv = ResultsCsv::new(&[
        "task",
        "kind",
        "mask",
        "mask_seed",
        "density",
        "pruned_train_loss",
        "pruned_train_acc",
        "pruned_test_loss",
        "pruned_test_acc",
        "retrain_steps",
        "train_loss",
        "train_acc",
        "test_loss",
        "test_acc",
        "status",
    ]);
    for s in settings {
        for (i, r) in s.records.iter().enumerate() {
            let status = match r.status {
                RunStatus::Finished => "finished".to_string(),
                RunStatus::Diverged { step, .. } => format!("diverged at {step}"),
            };
            for cp in &r.checkpoints {
                csv.row(&[
                    &s.task.name(),
                    &s.kind.name(),
                    &i,
                    &r.seed,
                    &r.density,
                    &r.pruned_train_loss,
                    &r.pruned_train_acc,
                    &r.pruned_test_loss,
                    &r.pruned_test_acc,
                    &cp.steps,
                    &cp.train_loss,
                    &cp.train_acc,
                    &cp.test_loss,
                    &cp.test_acc,
                    &status,
                ]);
            }
        }
    }
    csv.write(ctx.path("results.csv"))?;

    let mut summary = ResultsCsv::new(&[
        "task",
        "kind",
        "retrain_steps",
        "masks",
        "tau_test_loss",
        "tau_test_loss_boot_std",
        "tau_test_loss_p05",
        "tau_test_loss_p95",
        "tau_test_error",
        "spearman_test_loss",
        "anomaly_test_loss",
        "anomaly_test_acc",
        "test_acc_mean",
        "test_acc_std",
        "test_loss_mean",
        "test_loss_std",
    ]);
    for s in settings {
        for (st, steps) in s.stats.iter().zip(&p.retrain_steps) {
            summary.row(&[
                &s.task.name(),
                &s.kind.name(),
                steps,
                &st.n,
                &st.tau_loss,
                &st.tau_boot_std(),
                &quantile(&st.tau_loss_boot, ONE_SIDED_LEVEL),
                &quantile(&st.tau_loss_boot, 1.0 - ONE_SIDED_LEVEL),
                &st.tau_error,
                &st.rho_loss,
                &st.anomaly_loss,
                &st.anomaly_acc,
                &st.test_acc.0,
                &st.test_acc.1,
                &st.test_loss.0,
                &st.test_loss.1,
            ]);
        }
    }
    summary.write(ctx.path("summary.csv"))?;

    let mut base = ResultsCsv::new(&[
        "task",
        "n_train",
        "n_test",
        "params",
        "dense_train_loss",
        "dense_train_acc",
        "dense_test_loss",
        "dense_test_acc",
    ]);
    for d in dense {
        base.row(&[
            &d.task.name(),
            &d.n_train,
            &d.n_test,
            &d.params,
            &d.train.0,
            &d.train.1,
            &d.test.0,
            &d.test.1,
        ]);
    }
    base.write(ctx.path("dense.csv"))?;
    Ok(())
}

fn scatter_file(s: &Setting, steps: usize) -> String {
    format!("scatter_{}_{}_{steps}.svg", s.task.name(), s.kind.name())
}

fn draw_plots(ctx: &Context, p: &Params, settings: &[Setting]) -> Result<()> {
    let last = p.retrain_steps.len() - 1;
    for s in settings {
        let best_pruned = s
            .records
            .iter()
            .map(|r| r.pruned_train_loss)
            .fold(f64::INFINITY, f64::min);
        for c in [0, last] {
            let steps = p.retrain_steps[c];
            let point = |r: &MaskRecord| (r.pruned_train_loss, r.checkpoints[c].test_loss);
            let (oracle, others): (Vec<&MaskRecord>, Vec<&MaskRecord>) = s
                .records
                .iter()
                .partition(|r| r.pruned_train_loss == best_pruned);
            let groups = vec![
                (
                    format!("masks (τ = {:.2})", s.stats[c].tau_loss),
                    others.iter().map(|r| point(r)).collect(),
                ),
                (
                    format!(
                        "oracle's pick (anomaly ratio {:.2})",
                        s.stats[c].anomaly_loss
                    ),
                    oracle.iter().map(|r| point(r)).collect(),
                ),
            ];
            plot::scatter(
                ctx.path(&scatter_file(s, steps)),
                &format!(
                    "{}, {} pruning ({} masks), {steps} retraining steps",
                    s.task.name(),
                    s.kind.name(),
                    s.records.len()
                ),
                "train loss right after pruning",
                &format!("test loss after {steps} retraining steps"),
                &groups,
            )?;
        }
    }
    let x: Vec<f64> = p.retrain_steps.iter().map(|&s| s as f64).collect();
    let series: Vec<Series> = settings
        .iter()
        .map(|s| Series {
            label: format!("{}, {}", s.task.name(), s.kind.name()),
            x: x.clone(),
            mean: s.stats.iter().map(|st| st.tau_loss).collect(),
            std: Some(s.stats.iter().map(RankStats::tau_boot_std).collect()),
        })
        .collect();
    plot::lines_with_band(
        ctx.path("tau.svg"),
        "Kendall τ(pruned train loss, retrained test loss) ± bootstrap std",
        "retraining steps",
        "Kendall τ-b",
        &series,
        true,
    )?;
    let anomaly: Vec<Series> = settings
        .iter()
        .map(|s| Series {
            label: format!("{}, {}", s.task.name(), s.kind.name()),
            x: x.clone(),
            mean: s.stats.iter().map(|st| st.anomaly_loss).collect(),
            std: None,
        })
        .collect();
    plot::lines_with_band(
        ctx.path("anomaly.svg"),
        "anomaly ratio (masks beating the lowest-pruned-loss mask after retraining)",
        "retraining steps",
        "anomaly ratio",
        &anomaly,
        true,
    )?;
    Ok(())
}

fn section(p: &Params, settings: &[Setting], dense: &[Dense]) -> String {
    let mut out = String::new();
    let hidden = p
        .hidden
        .iter()
        .map(|w| w.to_string())
        .collect::<Vec<_>>()
        .join("→");
    let _ = writeln!(
        out,
        "Setup: ReLU MLP input→{hidden}→10 (f32), pretrained with Adam (lr {}, batch {}, {} \
         steps). Per task and pruning kind, {} random masks at sparsity {}: unstructured \
         (exactly {:.0}% of every weight matrix kept) or neuron-level (units removed per hidden \
         layer: exactly {}, incoming and outgoing weights). Each pruned network is \
         retrained by masked fine-tuning (fresh Adam, lr {}, the mask re-applied after every \
         step, the same mini-batch order for every mask) and evaluated after {:?} steps. τ is \
         Kendall's τ-b between the train loss right after pruning and the test loss after \
         retraining (positive = the oracle's ordering survives); uncertainties are the std of \
         {} bootstrap resamples of the masks. The anomaly ratio is the share of masks that, \
         after retraining, beat the mask with the lowest pruned loss (0 = the oracle's pick \
         stays best; ≈ 0.5 = no better than a random pick).\n",
        p.lr,
        p.batch_size,
        p.pretrain_steps,
        p.masks,
        p.sparsity,
        100.0 * (1.0 - p.sparsity),
        p.hidden
            .iter()
            .map(|&w| format!("{} of {w}", units_removed(w, p.sparsity)))
            .collect::<Vec<_>>()
            .join(", "),
        p.lr,
        p.retrain_steps,
        p.bootstrap,
    );
    let rows: Vec<Vec<String>> = dense
        .iter()
        .map(|d| {
            vec![
                d.task.name().to_string(),
                format!("{} / {}", d.n_train, d.n_test),
                d.params.to_string(),
                format!("{:.4}", d.train.0),
                format!("{:.1}%", 100.0 * d.train.1),
                format!("{:.4}", d.test.0),
                format!("{:.1}%", 100.0 * d.test.1),
            ]
        })
        .collect();
    out.push_str("Dense (pretrained) networks:\n\n");
    out.push_str(&markdown_table(
        &[
            "task",
            "train / test",
            "parameters",
            "train loss",
            "train acc",
            "test loss",
            "test acc",
        ],
        &rows,
    ));
    out.push('\n');
    let dense_acc = |task: TaskKind| {
        dense
            .iter()
            .find(|d| d.task == task)
            .map_or(f64::NAN, |d| d.test.1)
    };
    let mut rows = Vec::new();
    for s in settings {
        let (pl_mean, pl_std) = mean_std(
            &s.records
                .iter()
                .map(|r| r.pruned_train_loss)
                .collect::<Vec<_>>(),
        );
        let (pa, _) = mean_std(
            &s.records
                .iter()
                .map(|r| r.pruned_test_acc)
                .collect::<Vec<_>>(),
        );
        for (st, steps) in s.stats.iter().zip(&p.retrain_steps) {
            rows.push(vec![
                s.task.name().to_string(),
                s.kind.name().to_string(),
                fmt_mean_std(pl_mean, pl_std, 3),
                format!("{:.1}%", 100.0 * pa),
                steps.to_string(),
                format!(
                    "{:.1}% ± {:.1}",
                    100.0 * st.test_acc.0,
                    100.0 * st.test_acc.1
                ),
                format!("{:.0}%", 100.0 * st.test_acc.0 / dense_acc(s.task)),
                fmt_mean_std(st.tau_loss, st.tau_boot_std(), 3),
                format!("{:.3}", st.tau_error),
                format!("{:.3}", st.rho_loss),
                format!("{:.2}", st.anomaly_loss),
                format!("{:.2}", st.anomaly_acc),
            ]);
        }
    }
    out.push_str("Per setting and retraining length:\n\n");
    out.push_str(&markdown_table(
        &[
            "task",
            "pruning",
            "pruned train loss",
            "pruned test acc",
            "retrain steps",
            "retrained test acc",
            "of dense acc",
            "τ (test loss)",
            "τ (test error)",
            "Spearman ρ",
            "anomaly (loss)",
            "anomaly (acc)",
        ],
        &rows,
    ));
    out.push('\n');
    let mut rows = Vec::new();
    for c in task_comparisons(p, settings)
        .iter()
        .chain(&length_comparisons(p, settings))
    {
        rows.push(vec![
            c.label.clone(),
            format!("{:+.3}", c.delta),
            format!("{:.3}", c.std),
            format!("[{:+.3}, {:+.3}]", c.lower, c.upper),
            if c.significant() {
                "yes".into()
            } else if c.contradicts() {
                "no (significantly < 0)".into()
            } else {
                "no".into()
            },
        ]);
    }
    out.push_str("Comparisons behind the claims (Δτ expected > 0):\n\n");
    out.push_str(&markdown_table(
        &[
            "comparison",
            "Δτ",
            "bootstrap std",
            "5th–95th pct",
            "significant",
        ],
        &rows,
    ));
    out.push('\n');
    let recovered = |task: TaskKind, c: usize| {
        let accs: Vec<f64> = PruneKind::ALL
            .iter()
            .map(|&k| find(settings, task, k).stats[c].test_acc.0)
            .collect();
        mean_std(&accs).0 / dense_acc(task)
    };
    for (c, steps) in [(0, p.short()), (p.retrain_steps.len() - 1, p.long())] {
        let (easy, hard) = (
            recovered(TaskKind::Digits, c),
            recovered(TaskKind::Mnist1d, c),
        );
        let _ = writeln!(
            out,
            "After {steps} retraining steps the pruned networks are back at {:.0}% of the dense \
             test accuracy on digits and {:.0}% on MNIST-1D{}",
            100.0 * easy,
            100.0 * hard,
            if hard < easy {
                ": the tasks are compared at equal steps, and at equal steps the MNIST-1D \
                 networks are still further from recovery, i.e. closer to their pruned state.\n"
            } else {
                ".\n"
            }
        );
    }
    out.push('\n');
    let _ = writeln!(
        out,
        "![τ against retraining length]({NAME}/tau.svg)\n\n![anomaly ratio]({NAME}/anomaly.svg)\n"
    );
    let (short, long) = (p.short(), p.long());
    let rows: Vec<Vec<String>> = settings
        .iter()
        .map(|s| {
            let img = |steps| {
                format!(
                    "![{} {} {steps}]({NAME}/{})",
                    s.task.name(),
                    s.kind.name(),
                    scatter_file(s, steps)
                )
            };
            vec![
                format!("{}, {}", s.task.name(), s.kind.name()),
                img(short),
                img(long),
            ]
        })
        .collect();
    out.push_str(&markdown_table(
        &[
            "setting",
            &format!("after {short} retraining steps"),
            &format!("after {long} retraining steps"),
        ],
        &rows,
    ));
    let _ = writeln!(
        out,
        "\nThe paper (Feng, Tao & Wang 2024) prunes one pretrained network with many weight \
         or filter combinations (exactly or approximately oracle), retrains every pruned model \
         (37K trained models from LeNet5 on MNIST to ViT and TinyLLaVA) and finds the pruned \
         train loss negligibly correlated with the retrained performance from ResNet56 on \
         CIFAR-10 upwards, with rising task complexity a primary factor; it concludes that \
         pruning criteria must account for retraining. Our masks are random draws (the \
         oracle's search space, sampled), our networks tiny MLPs. Every number per mask is in \
         `{NAME}/results.csv`, the per-setting statistics in `{NAME}/summary.csv`, the dense \
         baselines in `{NAME}/dense.csv`."
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shapes() -> Vec<(usize, usize)> {
        vec![(6, 10), (10, 7), (7, 3)]
    }

    #[test]
    fn neuron_masks_remove_exactly_the_requested_units() {
        for (seed, sparsity) in [(1u64, 0.5), (2, 0.3), (3, 0.0), (4, 0.86)] {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let s = shapes();
            let NeuronMasks { masks, removed } = neuron_masks(&s, sparsity, &mut rng).unwrap();
            assert_eq!(masks.len(), 3);
            assert_eq!(removed.len(), 2);
            for (l, units) in removed.iter().enumerate() {
                let width = s[l].1;
                assert_eq!(units.len(), units_removed(width, sparsity), "layer {l}");
                assert_eq!(
                    units.len(),
                    (sparsity * width as f64).round() as usize,
                    "layer {l}"
                );
                // Rows of this layer: removed units lose all incoming weights, others keep all.
                let m = masks[l].as_ref().unwrap();
                let (fan_in, _) = s[l];
                for u in 0..width {
                    let kept = (0..fan_in).filter(|&i| m.get(u * fan_in + i)).count();
                    let incoming_cols_removed = if l == 0 {
                        0
                    } else {
                        (0..fan_in).filter(|i| removed[l - 1].contains(i)).count()
                    };
                    if units.contains(&u) {
                        assert_eq!(kept, 0);
                    } else {
                        assert_eq!(kept, fan_in - incoming_cols_removed);
                    }
                }
            }
            // The output layer keeps exactly the columns of surviving last-hidden units.
            let out = masks[2].as_ref().unwrap();
            let survivors = 7 - removed[1].len();
            assert_eq!(out.count_ones(), 3 * survivors);
            // Overall: layer 1 keeps (10 − r0)(7 − r1) weights.
            let mid = masks[1].as_ref().unwrap();
            assert_eq!(
                mid.count_ones(),
                (10 - removed[0].len()) * (7 - removed[1].len())
            );
        }
    }

    #[test]
    fn neuron_masks_reject_bad_inputs() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        assert!(neuron_masks(&[(3, 4)], 0.5, &mut rng).is_err());
        assert!(neuron_masks(&[(3, 4), (5, 2)], 0.5, &mut rng).is_err());
        assert!(neuron_masks(&shapes(), 1.0, &mut rng).is_err());
        // 0.96·7 rounds to 7 = every unit of the second hidden layer.
        assert!(neuron_masks(&shapes(), 0.96, &mut rng).is_err());
    }

    #[test]
    fn unstructured_masks_hit_the_density_per_layer() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let masks = unstructured_masks(&shapes(), 0.5, &mut rng).unwrap();
        for (m, (i, o)) in masks.iter().zip(shapes()) {
            assert_eq!(
                m.as_ref().unwrap().count_ones(),
                (0.5 * (i * o) as f64).round() as usize
            );
        }
        assert!(unstructured_masks(&shapes(), 1.0, &mut rng).is_err());
    }

    #[test]
    fn quantile_interpolates_like_numpy() {
        let v = [3.0, 1.0, 2.0, 4.0, f64::NAN];
        assert_eq!(quantile(&v, 0.0), 1.0);
        assert_eq!(quantile(&v, 1.0), 4.0);
        // numpy.quantile([1, 2, 3, 4], 0.05) = 1.15.
        assert!((quantile(&v, 0.05) - 1.15).abs() < 1e-12);
        assert!((quantile(&v, 0.5) - 2.5).abs() < 1e-12);
        assert!(quantile(&[f64::NAN], 0.5).is_nan());
    }

    fn cmp(lower: f64, upper: f64) -> Comparison {
        Comparison {
            label: String::new(),
            delta: 0.5 * (lower + upper),
            std: 0.1,
            lower,
            upper,
        }
    }

    #[test]
    fn verdict_rule() {
        assert_eq!(
            verdict_of(&[cmp(0.01, 0.2), cmp(0.1, 0.3)]),
            Verdict::Reproduced
        );
        assert_eq!(
            verdict_of(&[cmp(0.01, 0.2), cmp(-0.1, 0.3)]),
            Verdict::Partly
        );
        assert_eq!(
            verdict_of(&[cmp(0.01, 0.2), cmp(-0.3, -0.1)]),
            Verdict::NotReproduced
        );
        assert_eq!(
            verdict_of(&[cmp(-0.1, 0.2), cmp(-0.1, 0.3)]),
            Verdict::NotReproduced
        );
        assert_eq!(verdict_of(&[]), Verdict::NotReproduced);
    }

    #[test]
    fn comparison_from_replicates() {
        let a = [0.5, 0.6, 0.7, f64::NAN];
        let b = [0.1, 0.1, 0.1, 0.1];
        let c = Comparison::new("x".into(), 0.6, 0.1, &a, &b);
        assert!((c.delta - 0.5).abs() < 1e-12);
        assert!((c.std - 0.1).abs() < 1e-12);
        assert!(c.significant() && !c.contradicts());
    }

    fn record(pruned: f64, test_loss: f64, test_acc: f64) -> MaskRecord {
        MaskRecord {
            seed: 0,
            density: 0.5,
            pruned_train_loss: pruned,
            pruned_train_acc: 0.5,
            pruned_test_loss: pruned,
            pruned_test_acc: 0.5,
            checkpoints: vec![Checkpoint {
                steps: 1,
                train_loss: test_loss,
                train_acc: test_acc,
                test_loss,
                test_acc,
            }],
            status: RunStatus::Finished,
        }
    }

    #[test]
    fn rank_stats_on_a_hand_made_example() {
        // Pruned losses 0.1 < 0.3 < 0.5 < 0.9; retrained test losses 0.4, 0.3, 0.2, 0.6.
        // The oracle's pick (pruned 0.1) retrains to 0.4; masks with 0.3 and 0.2 beat it:
        // anomaly = 2/3. Pairs: (0,1) d, (0,2) d, (0,3) c, (1,2) d, (1,3) c, (2,3) c → τ = 0.
        let records = vec![
            record(0.1, 0.4, 0.70),
            record(0.3, 0.3, 0.80),
            record(0.5, 0.2, 0.75),
            record(0.9, 0.6, 0.60),
            // A diverged mask is left out.
            record(0.2, f64::NAN, f64::NAN),
        ];
        let stats = rank_stats(&records, 1, 200, 7).unwrap();
        let s = &stats[0];
        assert_eq!(s.n, 4);
        assert!(s.tau_loss.abs() < 1e-12, "{}", s.tau_loss);
        assert!((s.anomaly_loss - 2.0 / 3.0).abs() < 1e-12);
        // By accuracy the pick (0.70) is beaten by 0.80 and 0.75.
        assert!((s.anomaly_acc - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(s.tau_loss_boot.len(), 200);
        assert!(s.tau_boot_std() > 0.0);
        // A perfectly ordered set has τ = 1, anomaly 0, and every resample τ = 1 or NaN.
        let ordered: Vec<MaskRecord> = (0..6)
            .map(|i| record(i as f64, 1.0 + i as f64, 0.9 - 0.1 * i as f64))
            .collect();
        let s = &rank_stats(&ordered, 1, 50, 1).unwrap()[0];
        assert!((s.tau_loss - 1.0).abs() < 1e-12, "{}", s.tau_loss);
        assert_eq!(s.anomaly_loss, 0.0);
        assert!(s
            .tau_loss_boot
            .iter()
            .all(|&t| (t - 1.0).abs() < 1e-12 || t.is_nan()));
    }

    fn toy_task() -> TaskData {
        let make = |n: usize, offset: usize| {
            let x = Array2::from_shape_fn((n, 5), |(i, j)| {
                let c = ((i + offset) % 3) as f32;
                (c - 1.0) * 0.8 + 0.3 * (((i + offset) * 7 + j * 5) % 11) as f32 / 11.0
            });
            let y = (0..n).map(|i| (i + offset) % 3).collect();
            (x, y)
        };
        let (x_train, y_train) = make(60, 0);
        let (x_test, y_test) = make(30, 1);
        TaskData {
            kind: TaskKind::Digits,
            x_train,
            y_train,
            x_test,
            y_test,
            classes: 3,
        }
    }

    fn toy_params() -> Params {
        Params {
            hidden: vec![8, 8],
            masks: 6,
            batch_size: 16,
            lr: 1e-2,
            pretrain_steps: 30,
            retrain_steps: vec![2, 5],
            bootstrap: 100,
            ..Params::quick()
        }
    }

    /// The toy network after `pretrain` (init seed 1, data order 2).
    fn pretrained_base(task: &TaskData, p: &Params) -> Mlp<f32> {
        let params = pretrain(task, p, 1, 2).unwrap();
        let mut base = Mlp::<f32>::new(MlpConfig::new(5, p.hidden.clone(), 3), 1).unwrap();
        base.set_params(ndarray::ArrayView1::from(&params[..]))
            .unwrap();
        base
    }

    #[test]
    fn masked_retraining_keeps_pruned_weights_zero_and_records_every_checkpoint() {
        let task = toy_task();
        let p = toy_params();
        let base = pretrained_base(&task, &p);
        let shapes = layer_shapes(&base);
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let unstructured = unstructured_masks(&shapes, p.sparsity, &mut rng).unwrap();
        let neuron = neuron_masks(&shapes, p.sparsity, &mut rng).unwrap().masks;
        for masks in [unstructured, neuron] {
            let (r, retrained) = prune_and_retrain(&base, &task, masks.clone(), &p, 11, 3).unwrap();
            assert_eq!(r.status, RunStatus::Finished);
            assert_eq!(
                r.checkpoints.iter().map(|c| c.steps).collect::<Vec<_>>(),
                vec![2, 5]
            );
            assert!(r.pruned_train_loss.is_finite());
            assert!(r.checkpoints.iter().all(|c| c.test_loss.is_finite()));
            let (mut pruned, mut moved) = (0, 0);
            for (layer, mask) in masks.iter().enumerate() {
                let mask = mask.as_ref().unwrap();
                let before = base.weight(layer).unwrap();
                let after = retrained.weight(layer).unwrap();
                for (i, (&w0, &w1)) in before.iter().zip(after.iter()).enumerate() {
                    if mask.get(i) {
                        moved += usize::from(w0 != w1);
                    } else {
                        assert_eq!(w1, 0.0, "layer {layer}, weight {i} not pruned");
                        pruned += 1;
                    }
                }
            }
            assert!(pruned > 0);
            // Retraining changed the kept weights.
            assert!(moved > 0);
            assert!((r.density - (1.0 - pruned as f64 / base_weights(&base) as f64)).abs() < 1e-12);
        }
    }

    fn base_weights(mlp: &Mlp<f32>) -> usize {
        layer_shapes(mlp).iter().map(|&(i, o)| i * o).sum()
    }

    #[test]
    fn results_do_not_depend_on_the_thread_count() {
        let task = toy_task();
        let p = toy_params();
        let base = pretrained_base(&task, &p);
        let seeds: Vec<u64> = (100..106).collect();
        let bar = indicatif::ProgressBar::hidden();
        let run = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| run_masks(&base, &task, PruneKind::Neuron, &p, &seeds, 3, &bar))
                .unwrap()
        };
        let one = run(1);
        let three = run(3);
        assert_eq!(one, three);
        // Different masks give different pruned losses (the setting is not degenerate).
        assert!(one
            .windows(2)
            .any(|w| w[0].pruned_train_loss != w[1].pruned_train_loss));
    }
}
