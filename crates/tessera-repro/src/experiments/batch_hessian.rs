//! `batch-hessian`: learning rates as a function of batch size.
//!
//! Paper: D. Granziol, S. Zohren, S. Roberts, *Learning Rates as a Function of Batch Size: A
//! Random Matrix Theory Approach to Neural Network Training*, JMLR 23(173), 2022. The Hessian
//! of a mini-batch of size `B` is the full-data Hessian plus a random-matrix perturbation
//! whose extremal eigenvalues move outwards like `1/B`, so the batch `λ_max(B) ≈ λ_full + c/B`
//! exceeds the full-data one and shrinks towards it as `B` grows. The largest stable SGD step
//! `2/λ_max(B)` therefore grows linearly with `B` while the noise term dominates; for Adam the
//! paper derives a square-root rule.
//!
//! Our miniature: a ReLU MLP `64 → [64, 64] → 10` (SP) on the 8×8 digits (all 1797 images are
//! the "full set"; the digits are chosen because the effect concerns the curvature of the
//! training loss, not generalisation, and the full-data Hessian then stays cheap), partially
//! trained by SGD (cached baseline). At those parameters: λ_max of mini-batch Hessians (exact
//! Hessian-vector products, tessera-nn; thick-restart Lanczos, tessera-lanczos) for batch sizes
//! 16 … 1024 over several random batches, and of the full-data Hessian; SLQ spectral densities
//! (tessera-lanczos `Slq`) of some of them; the fit `λ_full + c·(1/B − 1/N)`
//! (tessera-lanczos `BatchSharpnessFit`); and the largest stable learning rate of short SGD and
//! Adam runs from the trained parameters, found by bisection in log₂ lr.

use std::fmt::Write as _;

use anyhow::{ensure, Context as _, Result};
use ndarray::{Array1, Array2, Axis};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tessera_lanczos::{
    BatchSharpnessFit, DensityConfig, Slq, SlqConfig, StopRule, TopEigen, TopEigenConfig, Which,
};
use tessera_nn::{Loss, LrSchedule, Mlp, MlpConfig, OptimizerConfig, Targets, Trainer};

use crate::harness::train::{train_classifier, LabelledData, TrainSpec};
use crate::harness::{
    evaluate_chunked, fmt_mean_std, linear_fit, markdown_table, mean_std, plot, Claim, Context,
    Expectation, Experiment, Outcome, ResultsCsv, Series, Verdict,
};

/// The experiment's name (`--only batch-hessian`).
pub const NAME: &str = "batch-hessian";

/// Settings of one run of the experiment.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    /// Hidden widths of the MLP.
    pub hidden: Vec<usize>,
    /// SGD steps of the baseline training. The paper's rules assume that the batch noise
    /// `c/B` dominates `λ_full`; after 300 steps (train loss 0.12) we measured
    /// `B_crit = c/λ_full ≈ 4`, below every batch size, so the baseline is trained to
    /// convergence (train loss ≈ 0.007), where `B_crit ≈ 45` (both reported in the section).
    pub train_steps: usize,
    /// Learning rate of the baseline training.
    pub train_lr: f64,
    /// Batch size of the baseline training.
    pub train_batch: usize,
    /// Mini-batch sizes whose Hessians are measured (each `<` the data set size).
    pub batch_sizes: Vec<usize>,
    /// Random mini-batches per batch size for `λ_max(B)`.
    pub batches_per_size: usize,
    /// Batch sizes that also get an SLQ density (the full set always does).
    pub density_batch_sizes: Vec<usize>,
    /// Lanczos steps per SLQ probe.
    pub slq_steps: usize,
    /// SLQ probes per density.
    pub slq_probes: usize,
    /// Relative residual tolerance of the top eigenpair.
    pub lanczos_tol: f32,
    /// Batch sizes at which the largest stable SGD and Adam rates are measured (values `≥ N`
    /// mean the full set).
    pub bisect_batch_sizes: Vec<usize>,
    /// Optimiser steps of each probe run.
    pub probe_steps: usize,
    /// Bisection halvings of the log₂ bracket after it is found.
    pub bisect_iters: usize,
    /// Divergence: non-finite loss, or full-data loss above this factor × the loss at the
    /// trained parameters, at any of the probe run's checks.
    pub divergence_factor: f64,
    /// Exponent fits use the batch sizes `B ≤ N / exponent_fit_divisor` (the noise-dominated
    /// range; near `N` the finite-population term makes λ saturate).
    pub exponent_fit_divisor: usize,
    /// Tolerance of the SGD exponent test: `|e − 1| ≤ tol`.
    pub sgd_exponent_tol: f64,
    /// Tolerance of the Adam exponent test: `|e − 0.5| ≤ tol`.
    pub adam_exponent_tol: f64,
}

impl Params {
    /// A few seconds on two cores.
    pub fn quick() -> Self {
        Self {
            batches_per_size: 3,
            density_batch_sizes: vec![16, 128],
            slq_steps: 40,
            slq_probes: 4,
            bisect_batch_sizes: vec![16, 32, 64, 128, 256],
            probe_steps: 60,
            bisect_iters: 5,
            ..Self::full()
        }
    }

    /// Every batch size from 16 to the full set.
    pub fn full() -> Self {
        Self {
            hidden: vec![64, 64],
            train_steps: 3000,
            train_lr: 0.1,
            train_batch: 64,
            batch_sizes: vec![16, 32, 64, 128, 256, 512, 1024],
            batches_per_size: 5,
            density_batch_sizes: vec![16, 64, 256, 1024],
            slq_steps: 80,
            slq_probes: 10,
            lanczos_tol: 1e-3,
            bisect_batch_sizes: vec![16, 32, 64, 128, 256, 512, 1024, usize::MAX],
            probe_steps: 100,
            bisect_iters: 6,
            divergence_factor: 3.0,
            exponent_fit_divisor: 4,
            sgd_exponent_tol: 0.35,
            adam_exponent_tol: 0.2,
        }
    }
}

/// Which optimiser a probe run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opt {
    Sgd,
    Adam,
}

impl Opt {
    fn config(self) -> OptimizerConfig {
        match self {
            Opt::Sgd => OptimizerConfig::sgd(),
            Opt::Adam => OptimizerConfig::adam(),
        }
    }

    fn label(self) -> &'static str {
        match self {
            Opt::Sgd => "SGD",
            Opt::Adam => "Adam",
        }
    }
}

struct Setup<'a> {
    params: &'a Params,
    x: Array2<f32>,
    y: Vec<usize>,
    /// The trained network.
    mlp: Mlp<f32>,
    /// Full-data loss at the trained parameters.
    loss0: f64,
}

impl Setup<'_> {
    fn n(&self) -> usize {
        self.y.len()
    }

    fn hessian_top(&self, idx: Option<&[usize]>, seed: u64) -> Result<(f64, usize)> {
        let (xb, yb) = self.batch(idx);
        let h =
            self.mlp
                .hessian_operator(xb.view(), Targets::Hard(&yb), Loss::SoftmaxCrossEntropy)?;
        let mut cfg = TopEigenConfig::new(1, Which::LargestAlgebraic, self.params.lanczos_tol);
        cfg.seed = seed;
        let pairs = TopEigen::new(cfg)?.compute(&h)?;
        Ok((f64::from(pairs.values[0]), pairs.matvecs))
    }

    fn density(&self, idx: Option<&[usize]>, seed: u64) -> Result<(Vec<f64>, Vec<f64>)> {
        let (xb, yb) = self.batch(idx);
        let h =
            self.mlp
                .hessian_operator(xb.view(), Targets::Hard(&yb), Loss::SoftmaxCrossEntropy)?;
        let slq = Slq::new(SlqConfig {
            steps: self.params.slq_steps.min(self.mlp.num_params()),
            rule: StopRule::fixed(self.params.slq_probes),
            seed,
            ..SlqConfig::default()
        })?;
        let dens = slq.spectral_density(&h)?;
        let smooth = dens.smoothed(&DensityConfig::default())?;
        Ok((
            smooth.grid.iter().map(|&v| f64::from(v)).collect(),
            smooth.density.iter().map(|&v| f64::from(v)).collect(),
        ))
    }

    fn batch(&self, idx: Option<&[usize]>) -> (Array2<f32>, Vec<usize>) {
        match idx {
            Some(i) => (
                self.x.select(Axis(0), i),
                i.iter().map(|&k| self.y[k]).collect(),
            ),
            None => (self.x.clone(), self.y.clone()),
        }
    }

    /// Whether `steps` updates at `lr` with batch size `batch` from the trained parameters
    /// diverge (non-finite loss, or full-data loss > factor × loss0 at a check).
    fn diverges(&self, opt: Opt, batch: usize, lr: f64, seed: u64) -> Result<bool> {
        let mut mlp = self.mlp.clone();
        let mut trainer = Trainer::new(&mut mlp, opt.config(), LrSchedule::constant(lr)?, None)?;
        let n = self.n();
        let batch = batch.min(n);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut order: Vec<usize> = (0..n).collect();
        let mut cursor = n;
        let steps = self.params.probe_steps;
        let check_every = (steps / 4).max(1);
        let limit = self.params.divergence_factor * self.loss0;
        for step in 1..=steps {
            if cursor + batch > n {
                order.shuffle(&mut rng);
                cursor = 0;
            }
            let idx = &order[cursor..cursor + batch];
            cursor += batch;
            let (xb, yb) = self.batch(Some(idx));
            let (loss, grad) =
                mlp.loss_and_gradient(xb.view(), &Targets::Hard(&yb), Loss::SoftmaxCrossEntropy)?;
            if !loss.is_finite() || grad.iter().any(|g| !g.is_finite()) {
                return Ok(true);
            }
            trainer.step_with_gradient(&mut mlp, grad)?;
            if mlp.params().iter().any(|v| !v.is_finite()) {
                return Ok(true);
            }
            if step % check_every == 0 || step == steps {
                let (full, _) = evaluate_chunked(&mlp, self.x.view(), &self.y, 2048)?;
                if !full.is_finite() || full > limit {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// The largest stable learning rate of `opt` at batch size `batch` (see [`bisect_max_lr`]).
    fn max_stable_lr(&self, opt: Opt, batch: usize, guess: f64, seed: u64) -> Result<(f64, usize)> {
        bisect_max_lr(guess, self.params.bisect_iters, |lr| {
            self.diverges(opt, batch, lr, seed)
        })
        .with_context(|| format!("{} at B={batch}", opt.label()))
    }
}

/// The largest rate for which `diverges(lr)` is false, by bisection in log₂ lr: from `guess`,
/// step two octaves at a time until a stable rate and a diverging one bracket the threshold,
/// then halve the bracket `iters` times; returns the bracket's geometric midpoint and the
/// number of `diverges` calls.
pub fn bisect_max_lr(
    guess: f64,
    iters: usize,
    mut diverges: impl FnMut(f64) -> Result<bool>,
) -> Result<(f64, usize)> {
    let mut runs = 0usize;
    let mut probe = |log2: f64| -> Result<bool> {
        runs += 1;
        diverges(2f64.powf(log2))
    };
    let start = guess.log2();
    ensure!(
        start.is_finite(),
        "bisection guess {guess} is not a positive finite rate"
    );
    let (mut lo, mut hi);
    if probe(start)? {
        hi = start;
        lo = start - 2.0;
        let mut tries = 0;
        while probe(lo)? {
            hi = lo;
            lo -= 2.0;
            tries += 1;
            ensure!(tries < 10, "no stable rate down to 2^{lo}");
        }
    } else {
        lo = start;
        hi = start + 2.0;
        let mut tries = 0;
        while !probe(hi)? {
            lo = hi;
            hi += 2.0;
            tries += 1;
            ensure!(tries < 10, "no divergence up to 2^{hi}");
        }
    }
    for _ in 0..iters {
        let mid = 0.5 * (lo + hi);
        if probe(mid)? {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Ok((2f64.powf(0.5 * (lo + hi)), runs))
}

/// Spearman rank correlation of two equally long samples without ties (ranks by sorting).
pub fn spearman(a: &[f64], b: &[f64]) -> f64 {
    let rank = |v: &[f64]| {
        let mut idx: Vec<usize> = (0..v.len()).collect();
        idx.sort_by(|&i, &j| v[i].total_cmp(&v[j]));
        let mut r = vec![0.0; v.len()];
        for (k, &i) in idx.iter().enumerate() {
            r[i] = k as f64;
        }
        r
    };
    let n = a.len().min(b.len());
    if n < 2 {
        return f64::NAN;
    }
    let (ra, rb) = (rank(&a[..n]), rank(&b[..n]));
    let d2: f64 = ra.iter().zip(&rb).map(|(x, y)| (x - y) * (x - y)).sum();
    let n = n as f64;
    1.0 - 6.0 * d2 / (n * (n * n - 1.0))
}

/// Coefficient of determination of `predicted` against `observed`.
pub fn r_squared(observed: &[f64], predicted: &[f64]) -> f64 {
    let (m, _) = mean_std(observed);
    let ss_tot: f64 = observed.iter().map(|o| (o - m) * (o - m)).sum();
    let ss_res: f64 = observed
        .iter()
        .zip(predicted)
        .map(|(o, p)| (o - p) * (o - p))
        .sum();
    if ss_tot == 0.0 {
        f64::NAN
    } else {
        1.0 - ss_res / ss_tot
    }
}

/// The experiment (registered in [`crate::experiments::all`]).
#[derive(Debug, Clone, Copy)]
pub struct BatchHessian;

impl Experiment for BatchHessian {
    fn name(&self) -> &'static str {
        NAME
    }

    fn paper(&self) -> &'static str {
        "Granziol, Zohren & Roberts, Learning Rates as a Function of Batch Size: A Random \
         Matrix Theory Approach to Neural Network Training, JMLR 23, 2022"
    }

    fn about(&self) -> &'static str {
        "mini-batch Hessian spectra, lambda_max(B) = lambda_full + c/B, predicted vs measured max SGD/Adam learning rates"
    }

    fn run(&self, ctx: &Context) -> Result<Outcome> {
        run(ctx, &ctx.mode.pick(Params::quick, Params::full))
    }
}

fn train_baseline(
    ctx: &Context,
    params: &Params,
    x: &Array2<f32>,
    y: &[usize],
) -> Result<Mlp<f32>> {
    let cfg = MlpConfig::new(x.ncols(), params.hidden.clone(), 10);
    let init_seed = ctx.seed_for(&"batch-hessian init");
    let key = (
        "batch-hessian baseline",
        &cfg,
        params.train_steps,
        params.train_lr,
        params.train_batch,
        init_seed,
    );
    let flat = ctx.baseline_cache().get_or_train(&key, || {
        let mut mlp = Mlp::<f32>::new(cfg.clone(), init_seed)?;
        let mut trainer = Trainer::new(
            &mut mlp,
            OptimizerConfig::sgd(),
            LrSchedule::constant(params.train_lr)?,
            None,
        )?;
        let spec = TrainSpec {
            steps: params.train_steps,
            batch_size: params.train_batch,
            eval_steps: Vec::new(),
            divergence_factor: 10.0,
            loss: Loss::SoftmaxCrossEntropy,
        };
        let bar = ctx.progress(params.train_steps as u64, "batch-hessian baseline");
        let log = train_classifier(
            &mut mlp,
            &mut trainer,
            LabelledData {
                x: x.view(),
                labels: y,
            },
            &spec,
            ctx.seed_for(&"batch-hessian order"),
            Some(&bar),
            |_, _| Ok(()),
        )?;
        bar.finish_and_clear();
        ensure!(
            !log.status.diverged(),
            "baseline training diverged: {:?}",
            log.status
        );
        Ok(mlp.params().to_vec())
    })?;
    let mut mlp = Mlp::<f32>::new(cfg, init_seed)?;
    mlp.set_params(Array1::from(flat).view())?;
    Ok(mlp)
}

fn run(ctx: &Context, params: &Params) -> Result<Outcome> {
    let ds = tessera_data::load_digits().context("loading the 8x8 digits")?;
    let x = ds.flattened();
    let y = ds.labels.clone();
    let n = y.len();
    ensure!(
        params.batch_sizes.iter().all(|&b| b >= 1 && b < n),
        "batch_sizes {:?} must lie in 1..{n}",
        params.batch_sizes
    );
    let mlp = train_baseline(ctx, params, &x, &y)?;
    let (loss0, acc0) = evaluate_chunked(&mlp, x.view(), &y, 2048)?;
    let setup = Setup {
        params,
        x,
        y,
        mlp,
        loss0,
    };
    let mut csv = ResultsCsv::new(&["kind", "optimizer", "batch", "index", "value", "extra"]);
    csv.row(&[&"baseline_train_loss", &"", &n, &"", &loss0, &""]);
    csv.row(&[&"baseline_train_accuracy", &"", &n, &"", &acc0, &""]);
    csv.row(&[&"num_params", &"", &"", &"", &setup.mlp.num_params(), &""]);

    // ---- λ_max(B) ----
    let bar = ctx.progress(
        (params.batch_sizes.len() * params.batches_per_size + 1) as u64,
        "batch-hessian lambda_max",
    );
    let (lambda_full, mv_full) = setup.hessian_top(None, ctx.seed_for(&"top full"))?;
    bar.inc(1);
    csv.row(&[&"lambda_max_full", &"", &n, &"", &lambda_full, &mv_full]);
    let mut rng = ChaCha8Rng::seed_from_u64(ctx.seed_for(&"batch-hessian batches"));
    let mut batches: Vec<Vec<Vec<usize>>> = Vec::new();
    let mut lam_mean = Vec::new();
    let mut lam_std = Vec::new();
    for &b in &params.batch_sizes {
        let mut per = Vec::new();
        let mut idx_list = Vec::new();
        for i in 0..params.batches_per_size {
            let mut order: Vec<usize> = (0..n).collect();
            order.shuffle(&mut rng);
            order.truncate(b);
            let (lam, mv) = setup.hessian_top(Some(&order), ctx.seed_for(&("top", b, i)))?;
            csv.row(&[&"lambda_max_batch", &"", &b, &i, &lam, &mv]);
            per.push(lam);
            idx_list.push(order);
            bar.inc(1);
        }
        let (m, s) = mean_std(&per);
        lam_mean.push(m);
        lam_std.push(s);
        batches.push(idx_list);
    }
    bar.finish_and_clear();
    let fit = BatchSharpnessFit::fit(&params.batch_sizes, &lam_mean, Some(n))?;
    let fitted: Vec<f64> = params
        .batch_sizes
        .iter()
        .map(|&b| fit.predict_lambda_max(b))
        .collect::<std::result::Result<_, _>>()?;
    let fit_r2 = r_squared(&lam_mean, &fitted);
    csv.row(&[&"fit_lambda_full", &"", &"", &"", &fit.lambda_full, &""]);
    csv.row(&[&"fit_noise_c", &"", &"", &"", &fit.noise, &""]);
    csv.row(&[&"fit_r2", &"", &"", &"", &fit_r2, &""]);
    let b_crit = fit.noise / fit.lambda_full;
    csv.row(&[
        &"critical_batch_c_over_lambda_full",
        &"",
        &"",
        &"",
        &b_crit,
        &"",
    ]);

    // ---- densities ----
    let mut dens_series = Vec::new();
    let dens_bar = ctx.progress(
        (params.density_batch_sizes.len() + 1) as u64,
        "batch-hessian SLQ",
    );
    for &b in &params.density_batch_sizes {
        let bi = params
            .batch_sizes
            .iter()
            .position(|&v| v == b)
            .with_context(|| format!("density batch size {b} is not in batch_sizes"))?;
        let (grid, dens) = setup.density(Some(&batches[bi][0]), ctx.seed_for(&("slq", b)))?;
        for (g, d) in grid.iter().zip(&dens) {
            csv.row(&[&"density", &"", &b, g, d, &""]);
        }
        dens_series.push((format!("B = {b}"), grid, dens));
        dens_bar.inc(1);
    }
    let (grid, dens) = setup.density(None, ctx.seed_for(&("slq", n)))?;
    for (g, d) in grid.iter().zip(&dens) {
        csv.row(&[&"density", &"", &n, g, d, &""]);
    }
    dens_series.push((format!("full (N = {n})"), grid, dens));
    dens_bar.finish_and_clear();

    // ---- maximal stable learning rates ----
    let bisect: Vec<usize> = params
        .bisect_batch_sizes
        .iter()
        .map(|&b| b.min(n))
        .collect();
    let lambda_at = |b: usize| -> f64 {
        if b >= n {
            lambda_full
        } else {
            params
                .batch_sizes
                .iter()
                .position(|&v| v == b)
                .map_or(f64::NAN, |i| lam_mean[i])
        }
    };
    let mut measured: Vec<(Opt, Vec<f64>)> = Vec::new();
    let lr_bar = ctx.progress((2 * bisect.len()) as u64, "batch-hessian bisection");
    for opt in [Opt::Sgd, Opt::Adam] {
        let mut lrs = Vec::new();
        let mut guess = match opt {
            Opt::Sgd => 2.0 / lambda_at(bisect[0]),
            Opt::Adam => 1e-2,
        };
        for &b in &bisect {
            if opt == Opt::Sgd {
                let lam = lambda_at(b);
                if lam.is_finite() && lam > 0.0 {
                    guess = 2.0 / lam;
                }
            }
            let (lr, runs) =
                setup.max_stable_lr(opt, b, guess, ctx.seed_for(&("probe", opt.label(), b)))?;
            csv.row(&[&"max_stable_lr", &opt.label(), &b, &"", &lr, &runs]);
            if opt == Opt::Sgd {
                csv.row(&[
                    &"predicted_max_lr",
                    &"SGD",
                    &b,
                    &"",
                    &(2.0 / lambda_at(b)),
                    &"",
                ]);
            }
            lrs.push(lr);
            guess = lr;
            lr_bar.inc(1);
        }
        measured.push((opt, lrs));
    }
    lr_bar.finish_and_clear();
    let predicted: Vec<f64> = bisect.iter().map(|&b| 2.0 / lambda_at(b)).collect();
    let fit_idx: Vec<usize> = (0..bisect.len())
        .filter(|&i| bisect[i] * params.exponent_fit_divisor <= n)
        .collect();
    let exponent = |lrs: &[f64]| {
        let lx: Vec<f64> = fit_idx.iter().map(|&i| (bisect[i] as f64).ln()).collect();
        let ly: Vec<f64> = fit_idx.iter().map(|&i| lrs[i].ln()).collect();
        linear_fit(&lx, &ly)
    };
    let (e_sgd, _, r2_sgd) = exponent(&measured[0].1);
    let (e_adam, _, r2_adam) = exponent(&measured[1].1);
    let (e_pred, _, _) = exponent(&predicted);
    csv.row(&[&"exponent", &"SGD", &"", &"", &e_sgd, &r2_sgd]);
    csv.row(&[&"exponent", &"Adam", &"", &"", &e_adam, &r2_adam]);
    csv.row(&[&"exponent", &"predicted 2/lambda", &"", &"", &e_pred, &""]);
    csv.write(ctx.path("results.csv"))?;

    // ---- plots ----
    plot::density(
        ctx.path("spectral_density.svg"),
        "SLQ spectral density of batch Hessians",
        "eigenvalue",
        &dens_series,
        true,
    )?;
    let bx: Vec<f64> = params.batch_sizes.iter().map(|&b| b as f64).collect();
    plot::lines_with_band(
        ctx.path("lambda_max_vs_batch.svg"),
        "lambda_max of the mini-batch Hessian",
        "batch size B",
        "lambda_max",
        &[
            Series {
                label: "measured (mean ± std over batches)".into(),
                x: bx.clone(),
                mean: lam_mean.clone(),
                std: Some(lam_std.clone()),
            },
            Series {
                label: format!(
                    "fit {:.3} + {:.1}·(1/B − 1/N), R² {:.3}",
                    fit.lambda_full, fit.noise, fit_r2
                ),
                x: bx.clone(),
                mean: fitted.clone(),
                std: None,
            },
            Series {
                label: "full-data lambda_max".into(),
                x: bx.clone(),
                mean: vec![lambda_full; bx.len()],
                std: None,
            },
        ],
        true,
    )?;
    let lx: Vec<f64> = bisect.iter().map(|&b| b as f64).collect();
    plot::lines_with_band(
        ctx.path("max_lr_vs_batch.svg"),
        "largest stable learning rate",
        "batch size B",
        "learning rate",
        &[
            Series {
                label: "SGD predicted 2/lambda_max(B)".into(),
                x: lx.clone(),
                mean: predicted.clone(),
                std: None,
            },
            Series {
                label: format!("SGD measured (exponent {e_sgd:.2})"),
                x: lx.clone(),
                mean: measured[0].1.clone(),
                std: None,
            },
            Series {
                label: format!("Adam measured (exponent {e_adam:.2})"),
                x: lx.clone(),
                mean: measured[1].1.clone(),
                std: None,
            },
        ],
        true,
    )?;

    // ---- claims ----
    let below: Vec<usize> = (0..params.batch_sizes.len()).collect();
    let all_above = below.iter().all(|&i| lam_mean[i] > lambda_full);
    let rho = spearman(&bx, &lam_mean);
    let decreasing = rho <= -0.9;
    let claim_a = Claim::new(
        "Mini-batch Hessians are sharper than the full-data Hessian and approach it as B grows",
        format!(
            "lambda_max(B={}) = {} … (B={}) = {} vs full {:.3}; Spearman(B, lambda) = {rho:.2}; \
             fit lambda_full + c(1/B - 1/N): lambda_full {:.3}, c {:.1}, R² {fit_r2:.3}",
            params.batch_sizes[0],
            fmt_mean_std(lam_mean[0], lam_std[0], 3),
            params.batch_sizes[params.batch_sizes.len() - 1],
            fmt_mean_std(lam_mean[lam_mean.len() - 1], lam_std[lam_std.len() - 1], 3),
            lambda_full,
            fit.lambda_full,
            fit.noise
        ),
        "reproduced if the mean lambda_max(B) exceeds the full-data lambda_max at every B < N \
         and Spearman(B, mean lambda_max(B)) <= -0.9; partly if only one holds",
        Verdict::from_tests(all_above && decreasing, all_above || decreasing),
    )
    .paper("lambda_max(B) = lambda_full + c/B, batch spectra broader (VGG-16/CIFAR-100, Figs. 4-6)")
    .expect(Expectation::Always);
    let ratios: Vec<f64> = measured[0]
        .1
        .iter()
        .zip(&predicted)
        .map(|(m, p)| m / p)
        .collect();
    let within = ratios.iter().filter(|r| (0.5..=2.0).contains(*r)).count();
    let claim_b = Claim::new(
        "The maximal stable SGD learning rate is predicted by 2/lambda_max(B) within 2x",
        format!(
            "measured/predicted at B = {:?}: {}",
            bisect,
            ratios
                .iter()
                .map(|r| format!("{r:.2}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        format!(
            "measured = bisection ({} halvings, {}-step runs, diverged = non-finite or full loss \
             > {}x the trained loss); reproduced if every ratio lies in [0.5, 2], partly if at \
             least half do",
            params.bisect_iters, params.probe_steps, params.divergence_factor
        ),
        Verdict::from_tests(within == ratios.len(), 2 * within >= ratios.len()),
    )
    .paper("max lr = 2/lambda_max(B) (Section 5)")
    .expect(Expectation::FullOnly);
    let fit_range: Vec<usize> = fit_idx.iter().map(|&i| bisect[i]).collect();
    let claim_c = Claim::new(
        "The maximal stable SGD learning rate grows linearly with the batch size",
        format!(
            "log-log exponent {e_sgd:.2} (R² {r2_sgd:.2}) over B = {fit_range:?}; \
             2/lambda_max(B) gives {e_pred:.2}"
        ),
        format!(
            "least-squares slope of ln lr_max against ln B over B <= N/{}: reproduced if \
             |e - 1| <= {}, partly if |e - 1| <= {}",
            params.exponent_fit_divisor,
            params.sgd_exponent_tol,
            2.0 * params.sgd_exponent_tol
        ),
        Verdict::from_tests(
            (e_sgd - 1.0).abs() <= params.sgd_exponent_tol,
            (e_sgd - 1.0).abs() <= 2.0 * params.sgd_exponent_tol,
        ),
    )
    .paper("SGD: linear scaling, exponent 1")
    .expect(Expectation::FullOnly);
    let claim_d = Claim::new(
        "The maximal stable Adam learning rate grows like the square root of the batch size",
        format!("log-log exponent {e_adam:.2} (R² {r2_adam:.2}) over B = {fit_range:?}"),
        format!(
            "least-squares slope of ln lr_max against ln B over B <= N/{}: reproduced if \
             |e - 0.5| <= {}, partly if |e - 0.5| <= {}",
            params.exponent_fit_divisor,
            params.adam_exponent_tol,
            2.0 * params.adam_exponent_tol
        ),
        Verdict::from_tests(
            (e_adam - 0.5).abs() <= params.adam_exponent_tol,
            (e_adam - 0.5).abs() <= 2.0 * params.adam_exponent_tol,
        ),
    )
    .paper("Adam: square-root scaling, exponent 0.5")
    .expect(Expectation::FullOnly);

    // ---- report ----
    let mut section = String::new();
    writeln!(
        section,
        "MLP 64 → {:?} → 10 (SP, ReLU, {} parameters) on the 8×8 digits, N = {n} (the full \
         set), trained by SGD (lr {}, batch {}, {} steps): train loss {loss0:.3}, accuracy \
         {:.1}%. λ_max by Lanczos (tol {}) on exact Hessian-vector products, {} random batches \
         per B; SLQ densities with {} probes × {} steps. Max stable rates: bisection in log₂ lr \
         from the trained parameters, runs of {} steps, diverged = non-finite loss or full-data \
         loss > {}× the trained loss.\n",
        params.hidden,
        setup.mlp.num_params(),
        params.train_lr,
        params.train_batch,
        params.train_steps,
        100.0 * acc0,
        params.lanczos_tol,
        params.batches_per_size,
        params.slq_probes,
        params.slq_steps,
        params.probe_steps,
        params.divergence_factor
    )?;
    let rows: Vec<Vec<String>> = params
        .batch_sizes
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            vec![
                b.to_string(),
                fmt_mean_std(lam_mean[i], lam_std[i], 3),
                format!("{:.3}", fitted[i]),
            ]
        })
        .chain(std::iter::once(vec![
            format!("{n} (full)"),
            format!("{lambda_full:.3}"),
            format!("{:.3}", fit.lambda_full),
        ]))
        .collect();
    section.push_str(&markdown_table(&["B", "λ_max(B)", "fit"], &rows));
    writeln!(
        section,
        "\nFit λ_max(B) = λ_full + c·(1/B − 1/N): λ_full = {:.3} (measured {lambda_full:.3}), \
         c = {:.2}, R² = {fit_r2:.3}. The noise term c/B exceeds λ_full below the critical \
         batch size B_crit = c/λ_full = {b_crit:.1}; the linear rule is the paper's prediction \
         for B ≪ B_crit, and 2/λ_max(B) saturates at 2/λ_full for B ≫ B_crit.\n",
        fit.lambda_full, fit.noise
    )?;
    let rows: Vec<Vec<String>> = bisect
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            vec![
                if b >= n {
                    format!("{n} (full)")
                } else {
                    b.to_string()
                },
                format!("{:.4}", predicted[i]),
                format!("{:.4}", measured[0].1[i]),
                format!("{:.2}", ratios[i]),
                format!("{:.5}", measured[1].1[i]),
            ]
        })
        .collect();
    section.push_str(&markdown_table(
        &[
            "B",
            "SGD 2/λ_max(B)",
            "SGD measured",
            "measured/predicted",
            "Adam measured",
        ],
        &rows,
    ));
    writeln!(
        section,
        "\nExponents of lr_max ∝ B^e over B ≤ N/{}: SGD {e_sgd:.2} (paper: 1), Adam {e_adam:.2} \
         (paper: 0.5); from 2/λ_max(B): {e_pred:.2}. Paper (Granziol et al. 2022): batch \
         Hessian spectra broaden like 1/B around the full-data spectrum, so the maximal SGD \
         rate scales linearly and Adam's like √B up to a critical batch size.\n",
        params.exponent_fit_divisor
    )?;
    section.push_str(
        "![density](spectral_density.svg) ![lambda_max](lambda_max_vs_batch.svg) \
         ![max lr](max_lr_vs_batch.svg)\n",
    );
    Ok(Outcome {
        section,
        claims: vec![claim_a, claim_b, claim_c, claim_d],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_over_b_fit_on_synthetic_data() {
        let n = 2000;
        let b = [16usize, 32, 64, 128, 256, 512, 1024];
        let lam: Vec<f64> = b
            .iter()
            .map(|&x| 1.5 + 30.0 * (1.0 / x as f64 - 1.0 / n as f64))
            .collect();
        let fit = BatchSharpnessFit::fit(&b, &lam, Some(n)).unwrap();
        assert!((fit.lambda_full - 1.5).abs() < 1e-9 && (fit.noise - 30.0).abs() < 1e-7);
        let pred: Vec<f64> = b
            .iter()
            .map(|&x| fit.predict_lambda_max(x).unwrap())
            .collect();
        assert!((r_squared(&lam, &pred) - 1.0).abs() < 1e-12);
        // A flat prediction explains nothing.
        let flat = vec![lam.iter().sum::<f64>() / lam.len() as f64; lam.len()];
        assert!(r_squared(&lam, &flat).abs() < 1e-12);
    }

    #[test]
    fn spearman_of_monotone_and_reversed() {
        let a = [1.0, 2.0, 3.0, 4.0];
        assert!((spearman(&a, &[10.0, 20.0, 25.0, 90.0]) - 1.0).abs() < 1e-12);
        assert!((spearman(&a, &[9.0, 5.0, 2.0, 1.0]) + 1.0).abs() < 1e-12);
        // One swap of neighbours: 1 − 6·2/(4·15) = 0.8.
        assert!((spearman(&a, &[1.0, 3.0, 2.0, 4.0]) - 0.8).abs() < 1e-12);
        assert!(spearman(&[1.0], &[1.0]).is_nan());
    }

    #[test]
    fn bisection_finds_a_known_threshold() {
        for (guess, threshold) in [(1e-3, 0.37), (10.0, 0.37), (0.37, 0.37), (0.5, 2e-4)] {
            let (lr, runs) = bisect_max_lr(guess, 8, |lr| Ok(lr > threshold)).unwrap();
            // Final bracket: 2 octaves / 2^8; the midpoint is within half of it.
            let err = (lr / threshold).log2().abs();
            assert!(err <= 2.0 / 256.0, "guess {guess}: {lr} vs {threshold}");
            assert!(runs >= 9);
        }
        assert!(bisect_max_lr(0.0, 4, |_| Ok(false)).is_err());
        assert!(bisect_max_lr(1.0, 4, |_| Ok(false)).is_err());
        assert!(bisect_max_lr(1.0, 4, |_| Ok(true)).is_err());
    }

    #[test]
    fn probe_runs_detect_divergence() {
        let ds = tessera_data::load_digits().unwrap();
        let x = ds.flattened().slice(ndarray::s![..64, ..]).to_owned();
        let y: Vec<usize> = ds.labels[..64].to_vec();
        let params = Params {
            probe_steps: 4,
            ..Params::quick()
        };
        let mlp = Mlp::<f32>::new(MlpConfig::new(64, vec![16], 10), 3).unwrap();
        let (loss0, _) = evaluate_chunked(&mlp, x.view(), &y, 64).unwrap();
        let setup = Setup {
            params: &params,
            x,
            y,
            mlp,
            loss0,
        };
        for opt in [Opt::Sgd, Opt::Adam] {
            assert!(
                !setup.diverges(opt, 16, 1e-5, 1).unwrap(),
                "{opt:?} tiny lr"
            );
            assert!(setup.diverges(opt, 16, 1e4, 1).unwrap(), "{opt:?} huge lr");
        }
    }
}
