//! `unlearnable`: class-wise convolution makes a training set unlearnable (CUDA).
//!
//! Sadasivan, Soltanolkotabi and Feizi, "CUDA: Convolution-based Unlearnable Datasets"
//! (CVPR 2023; code: vinusankars/Convolution-based-Unlearnability). Every class owns a random
//! 3×3 filter derived from a secret key (entries `U(0, p_b)`, one tap set to 1); each training
//! image is convolved with its class's filter and max-normalised. A network trained on such a
//! set learns the class-wise blur, an easy shortcut, instead of the content, and its accuracy
//! on clean test images collapses (ImageNet-100: 80.66% → 8.96%).
//!
//! The miniature: the generated shapes task (tessera-data, 10 classes), a small CNN
//! (conv–BN–ReLU–max-pool blocks, global average pooling, dense head) trained with Adam on
//! (a) clean images, (b) the CUDA set (tessera-augment's `ClassWiseConvolution`), and (c) a
//! control blurred by filters drawn from the same distribution but one per *image*, not per
//! class; all tested on clean images. The blur parameter `p_b` is swept for (b) and (c). An MLP
//! trained the same way is the ablation the paper does not run.
//!
//! `small_cnn` is shared with the `efficienttrain` experiment.

use std::fmt::Write as _;

use anyhow::{Context as _, Result};
use ndarray::{Array4, ArrayView4};
use tessera_augment::{ClassWiseConvolution, ClassWiseConvolutionConfig};
use tessera_nn::layers::{BatchNorm, Conv2d, Dense, Flatten, GlobalAvgPool, MaxPool2d, Relu};
use tessera_nn::{AdamConfig, Decay, Loss, LrSchedule, Optimizer, OptimizerConfig, Sequential};

use crate::experiments::batch_hessian::spearman;
use crate::harness::train::TrainSpec;
use crate::harness::ShapesTask;
use crate::harness::{
    evaluate_sequential, fmt_mean_std, markdown_table, mean_std, plot, train_sequential, Claim,
    Context, Examples, Expectation, Experiment, Outcome, ResultsCsv, Series, Verdict,
};

/// A small CNN for `(channels, height, width)` inputs: per entry `w` of `widths` a block
/// conv 3×3 (padding 1) → batch norm → ReLU, with a 2×2 max-pool after every block but the
/// last, then global average pooling and a dense layer to `n_classes` logits. The parameter
/// count does not depend on the spatial size, so the same parameters serve any input size
/// (what the EfficientTrain curriculum needs).
///
/// # Errors
/// Empty `widths`, or sizes the layers reject (e.g. an input too small for the pools).
pub(crate) fn small_cnn(
    input: [usize; 3],
    widths: &[usize],
    n_classes: usize,
    seed: u64,
) -> Result<Sequential<f32>> {
    anyhow::ensure!(!widths.is_empty(), "small_cnn: widths is empty");
    let mut model = Sequential::<f32>::new(&input, seed)?;
    let mut in_channels = input[0];
    for (i, &w) in widths.iter().enumerate() {
        model = model
            .push(
                &format!("conv{i}"),
                Conv2d::square(in_channels, w, 3, 1, 1)?,
            )?
            .push(&format!("bn{i}"), BatchNorm::new(w)?)?
            .push(&format!("relu{i}"), Relu)?;
        if i + 1 < widths.len() {
            model = model.push(&format!("pool{i}"), MaxPool2d::square(2)?)?;
        }
        in_channels = w;
    }
    model = model
        .push("gap", GlobalAvgPool)?
        .push("fc", Dense::new(in_channels, n_classes)?)?;
    Ok(model)
}

/// A one-hidden-layer ReLU MLP on flattened images (the ablation).
fn small_mlp(
    input: [usize; 3],
    hidden: usize,
    n_classes: usize,
    seed: u64,
) -> Result<Sequential<f32>> {
    let features = input.iter().product();
    Ok(Sequential::<f32>::new(&input, seed)?
        .push("flatten", Flatten)?
        .push("fc1", Dense::new(features, hidden)?)?
        .push("relu", Relu)?
        .push("fc2", Dense::new(hidden, n_classes)?)?)
}

/// Sizes of the run.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    /// The generated-shapes task (classes, images per class, size, noise).
    pub task: ShapesTask,
    /// CNN block widths.
    pub widths: Vec<usize>,
    /// MLP hidden width.
    pub mlp_hidden: usize,
    /// The paper's blur parameter, used for the main comparison.
    pub blur_main: f64,
    /// Blur parameters of the sweep (class-wise and per-image filters).
    pub blur_sweep: Vec<f64>,
    /// Seeds per cell.
    pub seeds: usize,
    /// Training epochs.
    pub epochs: usize,
    /// Mini-batch size.
    pub batch: usize,
    /// Adam learning rate (cosine decay to 0).
    pub lr: f64,
    /// Number of evaluations of the clean test accuracy during training (main runs).
    pub curve_points: usize,
}

impl Params {
    /// The CI smoke test.
    pub fn quick() -> Self {
        Params {
            task: ShapesTask {
                train_per_class: 30,
                test_per_class: 20,
                ..Self::full().task
            },
            blur_sweep: vec![0.3, 1.0],
            seeds: 1,
            epochs: 10,
            ..Self::full()
        }
    }

    /// The reported run.
    pub fn full() -> Self {
        Params {
            task: ShapesTask::reported(),
            widths: vec![16, 32, 32],
            mlp_hidden: 128,
            blur_main: 0.3,
            blur_sweep: vec![0.0, 0.1, 0.3, 0.6, 1.0],
            seeds: 3,
            epochs: 15,
            batch: 32,
            lr: 3e-3,
            curve_points: 6,
        }
    }
}

/// The CUDA unlearnable-dataset experiment.
#[derive(Debug, Clone, Copy)]
pub struct Unlearnable;

impl Experiment for Unlearnable {
    fn name(&self) -> &'static str {
        "unlearnable"
    }

    fn paper(&self) -> &'static str {
        "Sadasivan et al., CUDA: Convolution-based Unlearnable Datasets, CVPR 2023"
    }

    fn about(&self) -> &'static str {
        "class-wise random blur filters on the training set collapse clean test accuracy; \
         per-image random blur does not"
    }

    fn run(&self, ctx: &Context) -> Result<Outcome> {
        run(ctx, &ctx.mode.pick(Params::quick, Params::full))
    }
}

/// How the training images were perturbed.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Perturbation {
    /// Unchanged.
    Clean,
    /// CUDA: the filter of the image's class.
    ClassWise(f64),
    /// Control: a filter of its own for every image, same distribution.
    PerImage(f64),
}

impl Perturbation {
    fn name(self) -> &'static str {
        match self {
            Perturbation::Clean => "clean",
            Perturbation::ClassWise(_) => "class-wise",
            Perturbation::PerImage(_) => "per-image",
        }
    }

    fn blur(self) -> Option<f64> {
        match self {
            Perturbation::Clean => None,
            Perturbation::ClassWise(b) | Perturbation::PerImage(b) => Some(b),
        }
    }
}

/// The convolution with blur parameter `blur` and key `key` (3×3, 8-bit quantised, as the
/// paper).
fn convolution(key: u64, blur: f64) -> Result<ClassWiseConvolution> {
    ClassWiseConvolution::new(ClassWiseConvolutionConfig {
        key,
        kernel_size: 3,
        blur_parameter: blur,
        quantize: true,
    })
    .with_context(|| format!("class-wise convolution with blur_parameter = {blur}"))
}

/// The training images under `perturbation`: class-wise filters from `class_key`, per-image
/// filters from `image_key` (filter `i` for image `i`: the "class" index of the per-image
/// convolution is the image index, so every image draws an independent filter).
fn perturb(
    images: ArrayView4<'_, f32>,
    labels: &[usize],
    perturbation: Perturbation,
    class_key: u64,
    image_key: u64,
) -> Result<Array4<f32>> {
    Ok(match perturbation {
        Perturbation::Clean => images.to_owned(),
        Perturbation::ClassWise(b) => convolution(class_key, b)?.apply_batch(images, labels)?,
        Perturbation::PerImage(b) => {
            let index: Vec<usize> = (0..labels.len()).collect();
            convolution(image_key, b)?.apply_batch(images, &index)?
        }
    })
}

/// One training run's numbers.
#[derive(Debug, Clone)]
struct RunResult {
    arch: &'static str,
    perturbation: Perturbation,
    seed: usize,
    /// Accuracy on the training set as trained on (perturbed).
    train_acc: f64,
    /// Accuracy on clean test images.
    clean_test_acc: f64,
    /// Accuracy on test images convolved with their class's filter (class-wise runs only).
    poisoned_test_acc: Option<f64>,
    /// (step, clean test accuracy) during training.
    curve: Vec<(usize, f64)>,
}

/// The test inputs shared by every run.
struct TestSets<'a> {
    clean: Examples<'a>,
}

#[allow(clippy::too_many_arguments)]
fn train_one(
    ctx: &Context,
    p: &Params,
    arch: &'static str,
    perturbation: Perturbation,
    seed: usize,
    train: &Examples<'_>,
    test: &TestSets<'_>,
    poisoned_test: Option<&Examples<'_>>,
    curve: bool,
    bar: &indicatif::ProgressBar,
) -> Result<RunResult> {
    let input = [3, p.task.image_size, p.task.image_size];
    let init = ctx.seed_for(&("init", arch, seed));
    let mut model = match arch {
        "cnn" => small_cnn(input, &p.widths, p.task.n_classes, init)?,
        _ => small_mlp(input, p.mlp_hidden, p.task.n_classes, init)?,
    };
    let n = train.labels.len();
    let steps = steps_for(p, n);
    let mut optimizer =
        Optimizer::for_sequential(OptimizerConfig::Adam(AdamConfig::default()), &model)?;
    let schedule = LrSchedule::new(
        p.lr,
        Decay::Cosine {
            total_steps: steps,
            final_lr: 0.0,
        },
    )?;
    let eval_steps = if curve {
        crate::harness::log_spaced_steps(steps, p.curve_points)
    } else {
        Vec::new()
    };
    let spec = TrainSpec {
        steps,
        batch_size: p.batch,
        eval_steps,
        divergence_factor: 1e3,
        loss: Loss::SoftmaxCrossEntropy,
    };
    let mut points = Vec::new();
    let log = train_sequential(
        &mut model,
        &mut optimizer,
        &schedule,
        train,
        &spec,
        ctx.seed_for(&(
            "batches",
            arch,
            perturbation.name(),
            perturbation.blur().map(f64::to_bits),
            seed,
        )),
        Some(bar),
        |_, xb| Ok(xb),
        |step, m| {
            points.push((step, evaluate_sequential(m, &test.clean, 256)?.1));
            Ok(())
        },
    )?;
    anyhow::ensure!(
        !log.status.diverged(),
        "{arch} on {} images (seed {seed}) diverged: {:?}",
        perturbation.name(),
        log.status
    );
    Ok(RunResult {
        arch,
        perturbation,
        seed,
        train_acc: evaluate_sequential(&model, train, 256)?.1,
        clean_test_acc: evaluate_sequential(&model, &test.clean, 256)?.1,
        poisoned_test_acc: match poisoned_test {
            Some(t) => Some(evaluate_sequential(&model, t, 256)?.1),
            None => None,
        },
        curve: points,
    })
}

/// Optimiser steps for `epochs` passes over `n` examples.
fn steps_for(p: &Params, n: usize) -> usize {
    (p.epochs * n).div_ceil(p.batch.clamp(1, n.max(1))).max(1)
}

/// How much of the clean model's gain over chance a perturbation destroys:
/// `(clean − perturbed) / (clean − chance)` (1 = down to chance, 0 = no loss).
pub fn relative_drop(clean: f64, perturbed: f64, chance: f64) -> f64 {
    (clean - perturbed) / (clean - chance)
}

fn run(ctx: &Context, p: &Params) -> Result<Outcome> {
    anyhow::ensure!(p.seeds >= 1, "seeds = {} must be at least 1", p.seeds);
    anyhow::ensure!(
        p.blur_sweep.contains(&p.blur_main),
        "blur_main = {} must be one of blur_sweep {:?}",
        p.blur_main,
        p.blur_sweep
    );
    let (train_set, test_set) = p.task.train_test(ctx)?;
    let chance = 1.0 / p.task.n_classes as f64;
    let class_key = ctx.seed_for(&"cuda-key");
    let image_key = ctx.seed_for(&"per-image-key");
    let test = TestSets {
        clean: Examples {
            x: test_set.images.view().into_dyn(),
            labels: &test_set.labels,
        },
    };

    // Every (arch, perturbation) cell: CNN over the sweep, MLP at the main blur.
    let mut cells: Vec<(&'static str, Perturbation)> = vec![("cnn", Perturbation::Clean)];
    for &b in &p.blur_sweep {
        cells.push(("cnn", Perturbation::ClassWise(b)));
        cells.push(("cnn", Perturbation::PerImage(b)));
    }
    for pert in [
        Perturbation::Clean,
        Perturbation::ClassWise(p.blur_main),
        Perturbation::PerImage(p.blur_main),
    ] {
        cells.push(("mlp", pert));
    }
    let n_train = train_set.labels.len();
    let bar = ctx.progress(
        (cells.len() * p.seeds * steps_for(p, n_train)) as u64,
        "unlearnable",
    );
    let mut results = Vec::new();
    for &(arch, pert) in &cells {
        let x = perturb(
            train_set.images.view(),
            &train_set.labels,
            pert,
            class_key,
            image_key,
        )?;
        let train = Examples {
            x: x.view().into_dyn(),
            labels: &train_set.labels,
        };
        let poisoned_x = match pert {
            Perturbation::ClassWise(b) => Some(
                convolution(class_key, b)?.apply_batch(test_set.images.view(), &test_set.labels)?,
            ),
            _ => None,
        };
        let poisoned_test = poisoned_x.as_ref().map(|x| Examples {
            x: x.view().into_dyn(),
            labels: &test_set.labels,
        });
        let main = pert.blur().is_none_or(|b| b == p.blur_main);
        for seed in 0..p.seeds {
            results.push(train_one(
                ctx,
                p,
                arch,
                pert,
                seed,
                &train,
                &test,
                poisoned_test.as_ref(),
                main && arch == "cnn",
                &bar,
            )?);
        }
    }
    bar.finish_and_clear();

    // Every number.
    let mut csv = ResultsCsv::new(&[
        "record",
        "arch",
        "perturbation",
        "blur_parameter",
        "seed",
        "step",
        "train_accuracy",
        "clean_test_accuracy",
        "poisoned_test_accuracy",
    ]);
    let blur_cell = |r: &RunResult| {
        r.perturbation
            .blur()
            .map_or(String::new(), |b| b.to_string())
    };
    for r in &results {
        let poisoned = r.poisoned_test_acc.map_or(String::new(), |a| a.to_string());
        csv.row(&[
            &"run",
            &r.arch,
            &r.perturbation.name(),
            &blur_cell(r),
            &r.seed,
            &"",
            &r.train_acc,
            &r.clean_test_acc,
            &poisoned,
        ]);
        for &(step, acc) in &r.curve {
            csv.row(&[
                &"curve",
                &r.arch,
                &r.perturbation.name(),
                &blur_cell(r),
                &r.seed,
                &step,
                &"",
                &acc,
                &"",
            ]);
        }
    }
    csv.write(ctx.path("results.csv"))?;

    let select = |arch: &str, pert: Perturbation| -> Vec<&RunResult> {
        results
            .iter()
            .filter(|r| r.arch == arch && r.perturbation == pert)
            .collect()
    };
    let stat = |rs: &[&RunResult], f: &dyn Fn(&RunResult) -> f64| {
        mean_std(&rs.iter().map(|r| f(r)).collect::<Vec<_>>())
    };
    let pct = |(m, s): (f64, f64)| fmt_mean_std(100.0 * m, 100.0 * s, 1);

    // Summary table of the main blur.
    let mut rows = Vec::new();
    for arch in ["cnn", "mlp"] {
        for pert in [
            Perturbation::Clean,
            Perturbation::ClassWise(p.blur_main),
            Perturbation::PerImage(p.blur_main),
        ] {
            let rs = select(arch, pert);
            let poisoned: Vec<f64> = rs.iter().filter_map(|r| r.poisoned_test_acc).collect();
            rows.push(vec![
                arch.to_string(),
                pert.name().to_string(),
                pert.blur().map_or("—".into(), |b| b.to_string()),
                pct(stat(&rs, &|r| r.train_acc)),
                pct(stat(&rs, &|r| r.clean_test_acc)),
                if poisoned.is_empty() {
                    "—".into()
                } else {
                    pct(mean_std(&poisoned))
                },
            ]);
        }
    }
    // The sweep table and plot.
    let mut sweep_rows = Vec::new();
    let mut cw_series = (Vec::new(), Vec::new());
    let mut pi_series = (Vec::new(), Vec::new());
    let mut cw_train = (Vec::new(), Vec::new());
    let clean_cnn = stat(&select("cnn", Perturbation::Clean), &|r| r.clean_test_acc);
    for &b in &p.blur_sweep {
        let cw = select("cnn", Perturbation::ClassWise(b));
        let pi = select("cnn", Perturbation::PerImage(b));
        let (cm, cs) = stat(&cw, &|r| r.clean_test_acc);
        let (pm, ps) = stat(&pi, &|r| r.clean_test_acc);
        let (tm, ts) = stat(&cw, &|r| r.train_acc);
        cw_series.0.push(100.0 * cm);
        cw_series.1.push(100.0 * cs);
        pi_series.0.push(100.0 * pm);
        pi_series.1.push(100.0 * ps);
        cw_train.0.push(100.0 * tm);
        cw_train.1.push(100.0 * ts);
        sweep_rows.push(vec![
            b.to_string(),
            pct((cm, cs)),
            pct((tm, ts)),
            pct(stat(&cw, &|r| r.poisoned_test_acc.unwrap_or(f64::NAN))),
            pct((pm, ps)),
            pct(stat(&pi, &|r| r.train_acc)),
        ]);
    }
    let xs = p.blur_sweep.clone();
    let series = vec![
        Series {
            label: "class-wise (CUDA): clean test".into(),
            x: xs.clone(),
            mean: cw_series.0.clone(),
            std: Some(cw_series.1),
        },
        Series {
            label: "class-wise (CUDA): train".into(),
            x: xs.clone(),
            mean: cw_train.0,
            std: Some(cw_train.1),
        },
        Series {
            label: "per-image filters: clean test".into(),
            x: xs.clone(),
            mean: pi_series.0,
            std: Some(pi_series.1),
        },
        Series {
            label: "clean training: clean test".into(),
            x: xs.clone(),
            mean: vec![100.0 * clean_cnn.0; xs.len()],
            std: Some(vec![100.0 * clean_cnn.1; xs.len()]),
        },
        Series {
            label: "chance".into(),
            x: xs.clone(),
            mean: vec![100.0 * chance; xs.len()],
            std: None,
        },
    ];
    plot::lines_with_band(
        ctx.path("blur_sweep.svg"),
        "CNN accuracy against the blur parameter p_b",
        "blur parameter p_b",
        "accuracy, %",
        &series,
        false,
    )?;
    // Clean test accuracy during training, main runs.
    let mut curve_series = Vec::new();
    for pert in [
        Perturbation::Clean,
        Perturbation::ClassWise(p.blur_main),
        Perturbation::PerImage(p.blur_main),
    ] {
        let rs = select("cnn", pert);
        let Some(first) = rs.first() else { continue };
        let (mut x, mut mean, mut std) = (Vec::new(), Vec::new(), Vec::new());
        for (i, &(step, _)) in first.curve.iter().enumerate() {
            let v: Vec<f64> = rs
                .iter()
                .filter_map(|r| r.curve.get(i).map(|c| 100.0 * c.1))
                .collect();
            let (m, s) = mean_std(&v);
            x.push(step as f64);
            mean.push(m);
            std.push(s);
        }
        curve_series.push(Series {
            label: format!("trained on {} images", pert.name()),
            x,
            mean,
            std: Some(std),
        });
    }
    plot::lines_with_band(
        ctx.path("clean_test_during_training.svg"),
        &format!(
            "CNN clean test accuracy during training (p_b = {})",
            p.blur_main
        ),
        "step",
        "clean test accuracy, %",
        &curve_series,
        true,
    )?;

    // Claims.
    let main_cw = select("cnn", Perturbation::ClassWise(p.blur_main));
    let main_pi = select("cnn", Perturbation::PerImage(p.blur_main));
    let (acc_cw, sd_cw) = stat(&main_cw, &|r| r.clean_test_acc);
    let (acc_pi, sd_pi) = stat(&main_pi, &|r| r.clean_test_acc);
    let drop_cw = relative_drop(clean_cnn.0, acc_cw, chance);
    let drop_pi = relative_drop(clean_cnn.0, acc_pi, chance);
    let mut claims = vec![Claim::new(
        "a CNN trained on the class-wise-convolved set collapses towards chance on clean test \
         images, while the same CNN trained on clean images or on per-image random filters does not",
        format!(
            "clean test accuracy (p_b = {}): clean {} %, CUDA {} %, per-image {} % (chance {:.0} %); \
             share of the clean model's gain over chance lost: CUDA {:.2}, per-image {:.2}",
            p.blur_main,
            pct(clean_cnn),
            pct((acc_cw, sd_cw)),
            pct((acc_pi, sd_pi)),
            100.0 * chance,
            drop_cw,
            drop_pi
        ),
        "lost share = (clean − perturbed)/(clean − chance) of the seed means; reproduced if CUDA \
         loses ≥ 0.75 and the per-image control ≤ 0.25; partly if CUDA loses ≥ 0.25 and more than \
         the control by > 2 std of the CUDA runs' accuracy",
        Verdict::from_tests(
            drop_cw >= 0.75 && drop_pi <= 0.25,
            drop_cw >= 0.25 && acc_pi - acc_cw > 2.0 * sd_cw,
        ),
    )
    .paper("ImageNet-100: clean test accuracy 80.66% → 8.96%")
    .expect(Expectation::Never)];

    let (tr_cw, tr_sd) = stat(&main_cw, &|r| r.train_acc);
    let (pt_cw, pt_sd) = stat(&main_cw, &|r| r.poisoned_test_acc.unwrap_or(f64::NAN));
    claims.push(
        Claim::new(
            "the poisoned model still fits its training set: it learns the class-wise filters \
             (a shortcut) instead of the content",
            format!(
                "CUDA CNN (p_b = {}): training accuracy {} %, accuracy on test images convolved \
                 with their class's filter {} %, on clean test images {} %",
                p.blur_main,
                pct((tr_cw, tr_sd)),
                pct((pt_cw, pt_sd)),
                pct((acc_cw, sd_cw))
            ),
            "reproduced if the mean training accuracy ≥ 90% and the accuracy on class-wise \
             filtered test images exceeds the clean test accuracy by > 20 pp; partly if the \
             training accuracy ≥ 70%",
            Verdict::from_tests(tr_cw >= 0.9 && pt_cw - acc_cw > 0.2, tr_cw >= 0.7),
        )
        .paper("training accuracy of CUDA-trained models stays high (shortcut learning)")
        .expect(Expectation::Never),
    );

    let rho = spearman(&p.blur_sweep, &cw_series.0);
    let (first_acc, last_acc) = (
        cw_series.0.first().copied().unwrap_or(f64::NAN),
        cw_series.0.last().copied().unwrap_or(f64::NAN),
    );
    claims.push(
        Claim::new(
            "a larger blur parameter makes the collapse stronger (lower clean test accuracy)",
            format!(
                "CUDA CNN clean test accuracy over p_b = {:?}: {} % (Spearman ρ = {rho:.2})",
                p.blur_sweep,
                cw_series
                    .0
                    .iter()
                    .map(|a| format!("{a:.1}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "Spearman ρ(p_b, mean clean test accuracy) over the sweep: reproduced if ρ ≤ −0.8; \
             partly if the accuracy at the largest p_b is below that at the smallest",
            Verdict::from_tests(rho <= -0.8, last_acc < first_acc),
        )
        .paper("the blur parameter p_b trades the collapse against visibility (the issue's reading; no number quoted)")
        .expect(Expectation::Never),
    );

    let mlp_clean = stat(&select("mlp", Perturbation::Clean), &|r| r.clean_test_acc);
    let mlp_cw = stat(&select("mlp", Perturbation::ClassWise(p.blur_main)), &|r| {
        r.clean_test_acc
    });
    let mlp_pi = stat(&select("mlp", Perturbation::PerImage(p.blur_main)), &|r| {
        r.clean_test_acc
    });
    let mlp_drop = relative_drop(mlp_clean.0, mlp_cw.0, chance);
    let mlp_drop_pi = relative_drop(mlp_clean.0, mlp_pi.0, chance);
    claims.push(
        Claim::new(
            "(ablation, not in the paper) an MLP trained on the class-wise-convolved set collapses \
             the same way",
            format!(
                "MLP clean test accuracy: clean {} %, CUDA {} %, per-image {} %; lost share CUDA \
                 {mlp_drop:.2}, per-image {mlp_drop_pi:.2}",
                pct(mlp_clean),
                pct(mlp_cw),
                pct(mlp_pi)
            ),
            "the CNN claim's test on the MLP: reproduced if CUDA loses ≥ 0.75 of the gain and \
             the per-image control ≤ 0.25; partly if CUDA loses ≥ 0.25 and more than the control",
            Verdict::from_tests(
                mlp_drop >= 0.75 && mlp_drop_pi <= 0.25,
                mlp_drop >= 0.25 && mlp_drop > mlp_drop_pi,
            ),
        )
        .expect(Expectation::Never),
    );

    let mut section = String::new();
    let _ = writeln!(
        section,
        "Shapes task ({} classes, 3×{s}×{s} images, pixel noise std {}, {} training and {} test \
         images per class; the noise makes the content harder to learn, as natural images are), \
         CNN {:?} (conv 3×3–BN–ReLU blocks, 2×2 max-pool between, global average pooling, dense \
         head) and a one-hidden-layer MLP ({} units), Adam at lr {} with cosine decay, {} epochs \
         of batches of {}, {} seed(s) per cell. CUDA: one 3×3 filter per class from a secret key, \
         entries U(0, p_b) and one tap set to 1, depthwise on every channel, max-normalised and \
         quantised to 8 bits (tessera-augment). Control: filters from the same distribution, one \
         per image. Every model is tested on clean test images; the CUDA models also on test \
         images convolved with their class's filter.\n",
        p.task.n_classes,
        p.task.noise_std,
        p.task.train_per_class,
        p.task.test_per_class,
        p.widths,
        p.mlp_hidden,
        p.lr,
        p.epochs,
        p.batch,
        p.seeds,
        s = p.task.image_size,
    );
    section.push_str(&markdown_table(
        &[
            "model",
            "training images",
            "p_b",
            "train acc. %",
            "clean test acc. %",
            "class-wise filtered test acc. %",
        ],
        &rows,
    ));
    let _ = writeln!(section, "\nThe blur sweep (CNN):\n");
    section.push_str(&markdown_table(
        &[
            "p_b",
            "CUDA: clean test %",
            "CUDA: train %",
            "CUDA: filtered test %",
            "per-image: clean test %",
            "per-image: train %",
        ],
        &sweep_rows,
    ));
    let _ = writeln!(
        section,
        "\n![accuracy against the blur parameter](unlearnable/blur_sweep.svg)\n\n\
         ![clean test accuracy during training](unlearnable/clean_test_during_training.svg)\n\n\
         Files: `results.csv` (`run` rows: one per training run; `curve` rows: clean test \
         accuracy during the main CNN runs)."
    );
    Ok(Outcome { section, claims })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_drop_by_hand() {
        assert!((relative_drop(0.9, 0.1, 0.1) - 1.0).abs() < 1e-12);
        assert!((relative_drop(0.9, 0.9, 0.1)).abs() < 1e-12);
        assert!((relative_drop(0.9, 0.5, 0.1) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn small_cnn_works_at_several_input_sizes_with_the_same_parameter_count() -> Result<()> {
        let a = small_cnn([3, 16, 16], &[4, 8], 5, 1)?;
        let b = small_cnn([3, 10, 10], &[4, 8], 5, 1)?;
        assert_eq!(a.num_params(), b.num_params());
        assert_eq!(a.params(), b.params());
        assert_eq!(a.output_shape(), &[5]);
        let x = ndarray::Array4::<f32>::from_elem((2, 3, 10, 10), 0.5);
        assert_eq!(b.predict(x.view().into_dyn())?.shape(), &[2, 5]);
        assert!(small_cnn([3, 16, 16], &[], 5, 1).is_err());
        Ok(())
    }

    #[test]
    fn per_image_filters_differ_between_images_of_a_class_and_class_wise_ones_do_not() -> Result<()>
    {
        let images = ndarray::Array4::<f32>::from_shape_fn((4, 1, 8, 8), |(_, _, i, j)| {
            ((i * 8 + j) % 7) as f32 / 7.0
        });
        let labels = [0, 0, 1, 1];
        let cw = perturb(images.view(), &labels, Perturbation::ClassWise(0.5), 1, 2)?;
        let pi = perturb(images.view(), &labels, Perturbation::PerImage(0.5), 1, 2)?;
        // Identical inputs: class-wise gives equal outputs within a class, per-image does not.
        assert_eq!(
            cw.index_axis(ndarray::Axis(0), 0),
            cw.index_axis(ndarray::Axis(0), 1)
        );
        assert_ne!(
            cw.index_axis(ndarray::Axis(0), 1),
            cw.index_axis(ndarray::Axis(0), 2)
        );
        assert_ne!(
            pi.index_axis(ndarray::Axis(0), 0),
            pi.index_axis(ndarray::Axis(0), 1)
        );
        let clean = perturb(images.view(), &labels, Perturbation::Clean, 1, 2)?;
        assert_eq!(clean, images);
        Ok(())
    }
}
