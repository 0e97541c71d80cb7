//! `lr-transfer`: why do learning rates transfer across widths?
//!
//! Paper: L. Noci, A. Meterez, T. Hofmann, A. Orvieto, *Why do Learning Rates Transfer?
//! Reconciling Optimization and Scaling Limits for Deep Learning*, arXiv:2402.17457, 2024.
//! Under μP the learning rate tuned on a narrow network stays optimal on wide ones, and the
//! sharpness — the largest eigenvalue of the *preconditioned* Hessian `D^½ H D^½` (`D` the
//! per-layer learning-rate multipliers) — follows the same trajectory at every width for a
//! sustained period ("super consistency"); under NTK parameterisation the sharpness curves of
//! different widths separate (wide networks stay lazy and do not sharpen), and the optimal
//! learning rate moves.
//!
//! Our miniature: ReLU MLPs `64 → [w, w] → 10` on the 8×8 digits (the effect concerns the
//! optimisation of the training loss, not generalisation, so the easy data set suffices and
//! keeps width 1024 affordable on two cores), trained by plain SGD with the per-layer
//! learning-rate multipliers of SP, NTK and μP (tessera-nn `Parameterization`). For every
//! parameterisation and width we sweep the base learning rate on a log₂ grid and record the
//! full training loss after a fixed number of steps; the optimum `lr*` is the parabolic
//! refinement (in log₂ lr) of the grid minimum. The sharpness is tracked along the runs at the
//! learning rate that is optimal on the grid at the narrowest width (the "tuned small,
//! transferred wide" setting), by thick-restart Lanczos (tessera-lanczos `top_eigenpairs`) on
//! exact Hessian-vector products (tessera-nn `hessian_operator`) on a fixed batch, wrapped in
//! the preconditioning operator of this file (`PreconditionedOperator`, a `LinearOperator`
//! built on the public API: tessera-nn has no preconditioned curvature operator).

use std::fmt::Write as _;

use anyhow::{ensure, Context as _, Result};
use ndarray::{Array1, Array2, ArrayView1, ArrayViewMut1, Axis};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use tessera_lanczos::{LinearOperator, TopEigen, TopEigenConfig, Which};
use tessera_nn::{
    CurvatureOperator, Loss, LrSchedule, Mlp, MlpConfig, Optimizer, OptimizerConfig,
    Parameterization, Targets, Trainer,
};

use crate::harness::train::DivergenceDetector;
use crate::harness::{
    evaluate_chunked, fmt_mean_std, markdown_table, mean_std, plot, Claim, Context, Expectation,
    Experiment, Outcome, ResultsCsv, Series, Verdict,
};

/// The experiment's name (`--only lr-transfer`).
pub const NAME: &str = "lr-transfer";

/// The three parameterisations, in report order.
const PARAMETERIZATIONS: [Parameterization; 3] = [
    Parameterization::Standard,
    Parameterization::Ntk,
    Parameterization::MuP,
];

/// Short label of a parameterisation.
fn label(p: Parameterization) -> &'static str {
    match p {
        Parameterization::Standard => "SP",
        Parameterization::Ntk => "NTK",
        Parameterization::MuP => "muP",
    }
}

/// Settings of one run of the experiment.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    /// Hidden widths `w` of the `64 → [w; hidden_layers] → 10` networks.
    pub widths: Vec<usize>,
    /// Number of hidden layers (≥ 2, so that μP's hidden-layer scaling is exercised).
    pub hidden_layers: usize,
    /// SGD steps per run.
    pub steps: usize,
    /// Mini-batch size.
    pub batch: usize,
    /// Seeds per (parameterisation, width, learning rate); losses and sharpness are averaged.
    pub seeds: usize,
    /// Inclusive log₂ learning-rate grid per parameterisation (step 1 octave). The grids were
    /// placed once from a pilot so that each contains its optimum with room on both sides;
    /// they are part of the set-up, not of the verdicts.
    pub lr_grids: Vec<(Parameterization, i32, i32)>,
    /// Number of sharpness checkpoints, evenly spaced over `0..=steps`.
    pub sharpness_checkpoints: usize,
    /// Rows of the fixed batch on which the Hessian is taken.
    pub sharpness_batch: usize,
    /// Relative residual tolerance of the Lanczos top eigenpair.
    pub lanczos_tol: f32,
    /// Divergence: non-finite loss or mini-batch loss above this factor × the first one.
    pub divergence_factor: f64,
    /// Closeness threshold of the μP sharpness curves (claim 2): mean max/min ratio.
    pub close_ratio: f64,
    /// Margin (octaves) by which μP's spread of `log₂ lr*` must undercut SP's/NTK's (claim 1).
    pub spread_margin: f64,
}

impl Params {
    /// Widths 64…256, one seed: well under 25 s on two cores.
    pub fn quick() -> Self {
        Self {
            widths: vec![64, 128, 256],
            seeds: 1,
            sharpness_checkpoints: 16,
            ..Self::full()
        }
    }

    /// Widths 64…1024, two seeds.
    pub fn full() -> Self {
        Self {
            widths: vec![64, 128, 256, 512, 1024],
            hidden_layers: 2,
            steps: 150,
            batch: 64,
            seeds: 2,
            lr_grids: vec![
                (Parameterization::Standard, -4, 1),
                (Parameterization::Ntk, -1, 5),
                (Parameterization::MuP, -4, 1),
            ],
            sharpness_checkpoints: 11,
            sharpness_batch: 256,
            lanczos_tol: 1e-3,
            divergence_factor: 5.0,
            close_ratio: 1.5,
            spread_margin: 0.5,
        }
    }

    fn grid(&self, p: Parameterization) -> Result<Vec<i32>> {
        let &(_, lo, hi) = self
            .lr_grids
            .iter()
            .find(|(q, _, _)| *q == p)
            .with_context(|| format!("lr_grids has no entry for {p:?}"))?;
        ensure!(
            lo + 2 <= hi,
            "lr_grids: {p:?} grid {lo}..={hi} needs ≥ 3 points"
        );
        Ok((lo..=hi).collect())
    }

    fn checkpoints(&self) -> Vec<usize> {
        let c = self.sharpness_checkpoints.max(2);
        let mut v: Vec<usize> = (0..c).map(|i| i * self.steps / (c - 1)).collect();
        v.dedup();
        v
    }
}

/// `v ↦ D^½ H D^½ v`: the Hessian preconditioned by the per-parameter learning-rate
/// multipliers `D` of the optimiser. Plain SGD with multipliers `D` and base rate `η` is stable
/// on a quadratic iff `η·λ_max(D^½ H D^½) < 2`, so this is the sharpness to compare with
/// `2/η` (Noci et al., § 2).
#[derive(Debug)]
pub struct PreconditionedOperator<'a> {
    inner: CurvatureOperator<'a, f32>,
    sqrt_d: Array1<f32>,
}

impl<'a> PreconditionedOperator<'a> {
    /// Wraps `inner` with `D^½ = sqrt_d` (one entry per parameter, all finite and ≥ 0).
    pub fn new(inner: CurvatureOperator<'a, f32>, sqrt_d: Array1<f32>) -> Result<Self> {
        ensure!(
            sqrt_d.len() == inner.num_params(),
            "sqrt_d has length {}, the operator has {} parameters",
            sqrt_d.len(),
            inner.num_params()
        );
        ensure!(
            sqrt_d.iter().all(|v| v.is_finite() && *v >= 0.0),
            "sqrt_d must be finite and >= 0"
        );
        Ok(Self { inner, sqrt_d })
    }
}

impl LinearOperator<f32> for PreconditionedOperator<'_> {
    fn dim(&self) -> usize {
        self.sqrt_d.len()
    }

    fn apply(&self, x: ArrayView1<'_, f32>, mut y: ArrayViewMut1<'_, f32>) {
        let scaled = &x * &self.sqrt_d;
        self.inner.apply(scaled.view(), y.view_mut());
        y *= &self.sqrt_d;
    }
}

/// `D^½` of an SGD optimiser for `mlp`: the square roots of the parameterisation's
/// per-layer learning-rate multipliers, spread over the flat parameter layout.
pub fn sqrt_lr_multipliers(mlp: &Mlp<f32>) -> Result<Array1<f32>> {
    let opt = Optimizer::new(OptimizerConfig::sgd(), mlp)?;
    let mut s = Array1::<f32>::zeros(mlp.num_params());
    for (layer, &(mw, mb)) in mlp.layers().iter().zip(opt.parameterization_multipliers()) {
        s.slice_mut(ndarray::s![layer.weight_range()])
            .fill(mw.sqrt() as f32);
        s.slice_mut(ndarray::s![layer.bias_range()])
            .fill(mb.sqrt() as f32);
    }
    Ok(s)
}

/// The vertex of the parabola through the grid minimum and its two neighbours, in grid
/// coordinates (`x[k] ± 1`); the grid point itself at an edge or when a neighbour is not
/// finite. Returns `(x*, at_edge)`; `None` when no value is finite.
pub fn refined_argmin(x: &[f64], y: &[f64]) -> Option<(f64, bool)> {
    let k = y
        .iter()
        .enumerate()
        .filter(|(_, v)| v.is_finite())
        .min_by(|a, b| a.1.total_cmp(b.1))?
        .0;
    if k == 0 || k + 1 == y.len() {
        return Some((x[k], true));
    }
    let (a, b, c) = (y[k - 1], y[k], y[k + 1]);
    if !(a.is_finite() && c.is_finite()) {
        return Some((x[k], false));
    }
    let curvature = a - 2.0 * b + c;
    if curvature <= 0.0 {
        return Some((x[k], false));
    }
    let h = 0.5 * (x[k + 1] - x[k - 1]);
    let offset = 0.5 * (a - c) / curvature;
    Some((x[k] + offset.clamp(-0.5, 0.5) * h, false))
}

/// One training run's result.
#[derive(Debug, Clone)]
struct RunResult {
    /// Full training loss after the run (∞ when it diverged).
    final_loss: f64,
    /// Step at which it diverged, if it did.
    diverged_at: Option<usize>,
    /// `(step, λ_max(D^½HD^½), Lanczos matvecs)` at the checkpoints reached.
    sharpness: Vec<(usize, f64, usize)>,
}

/// The data: all 1797 digits, rows in [0, 1].
struct Data {
    x: Array2<f32>,
    y: Vec<usize>,
    /// The fixed batch of the Hessian.
    xs: Array2<f32>,
    ys: Vec<usize>,
}

fn load_data(params: &Params, seed: u64) -> Result<Data> {
    let ds = tessera_data::load_digits().context("loading the 8x8 digits")?;
    let x = ds.flattened();
    let y = ds.labels.clone();
    let mut order: Vec<usize> = (0..y.len()).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let pick = &order[..params.sharpness_batch.min(y.len())];
    let xs = x.select(Axis(0), pick);
    let ys = pick.iter().map(|&i| y[i]).collect();
    Ok(Data { x, y, xs, ys })
}

fn sharpness(mlp: &Mlp<f32>, data: &Data, tol: f32, seed: u64) -> Result<(f64, usize)> {
    let sqrt_d = sqrt_lr_multipliers(mlp)?;
    let h = mlp.hessian_operator(
        data.xs.view(),
        Targets::Hard(&data.ys),
        Loss::SoftmaxCrossEntropy,
    )?;
    let op = PreconditionedOperator::new(h, sqrt_d)?;
    let mut cfg = TopEigenConfig::new(1, Which::LargestAlgebraic, tol);
    cfg.seed = seed;
    cfg.max_matvecs = Some(600);
    match TopEigen::new(cfg)?.compute(&op) {
        Ok(pairs) => Ok((f64::from(pairs.values[0]), pairs.matvecs)),
        // A non-converged Lanczos is recorded as a missing point, not an error.
        Err(tessera_lanczos::Error::NotConverged { .. }) => Ok((f64::NAN, 600)),
        Err(e) => Err(e.into()),
    }
}

/// One SGD run; sharpness at `checkpoints` when given.
fn train_run(
    params: &Params,
    data: &Data,
    p: Parameterization,
    width: usize,
    lr: f64,
    seed: u64,
    checkpoints: Option<&[usize]>,
) -> Result<RunResult> {
    let cfg = MlpConfig::new(data.x.ncols(), vec![width; params.hidden_layers], 10)
        .with_parameterization(p);
    let mut mlp = Mlp::<f32>::new(cfg, seed)?;
    let mut trainer = Trainer::new(
        &mut mlp,
        OptimizerConfig::sgd(),
        LrSchedule::constant(lr)?,
        None,
    )?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x0BA7_C4E5);
    let n = data.y.len();
    let batch = params.batch.min(n);
    let mut order: Vec<usize> = (0..n).collect();
    let mut cursor = n;
    let mut detector = DivergenceDetector::new(params.divergence_factor);
    let mut out = RunResult {
        final_loss: f64::INFINITY,
        diverged_at: None,
        sharpness: Vec::new(),
    };
    let wants = |t: usize| checkpoints.is_some_and(|c| c.contains(&t));
    for step in 0..=params.steps {
        if wants(step) {
            let (lam, mv) = sharpness(&mlp, data, params.lanczos_tol, seed ^ step as u64)?;
            out.sharpness.push((step, lam, mv));
        }
        if step == params.steps {
            break;
        }
        if cursor + batch > n {
            order.shuffle(&mut rng);
            cursor = 0;
        }
        let idx = &order[cursor..cursor + batch];
        cursor += batch;
        let xb = data.x.select(Axis(0), idx);
        let yb: Vec<usize> = idx.iter().map(|&i| data.y[i]).collect();
        let (loss, grad) =
            mlp.loss_and_gradient(xb.view(), &Targets::Hard(&yb), Loss::SoftmaxCrossEntropy)?;
        let finite_grad = grad.iter().all(|g| g.is_finite());
        let observed = if finite_grad {
            f64::from(loss)
        } else {
            f64::NAN
        };
        if detector.observe(step, observed).is_some() {
            out.diverged_at = Some(step);
            return Ok(out);
        }
        trainer.step_with_gradient(&mut mlp, grad)?;
        if mlp.params().iter().any(|v| !v.is_finite()) {
            out.diverged_at = Some(step);
            return Ok(out);
        }
    }
    let (loss, _) = evaluate_chunked(&mlp, data.x.view(), &data.y, 1024)?;
    if loss.is_finite() {
        out.final_loss = loss;
    } else {
        out.diverged_at = Some(params.steps);
    }
    Ok(out)
}

/// Everything measured for one parameterisation.
#[derive(Debug, Clone)]
struct ParamResult {
    p: Parameterization,
    grid: Vec<i32>,
    /// `[width][lr][seed]` final losses.
    losses: Vec<Vec<Vec<f64>>>,
    /// `(log₂ lr*, at_edge)` per width (`None`: every run diverged).
    lr_star: Vec<Option<(f64, bool)>>,
    /// The transferred learning rate (grid optimum at the narrowest width), log₂.
    transfer_k: i32,
    /// `[width][seed]` sharpness trajectories at the transferred rate.
    sharp: Vec<Vec<RunResult>>,
}

fn mean_finite_or_inf(v: &[f64]) -> f64 {
    if v.iter().all(|x| x.is_finite()) {
        v.iter().sum::<f64>() / v.len() as f64
    } else {
        f64::INFINITY
    }
}

fn run_parameterization(
    ctx: &Context,
    params: &Params,
    data: &Data,
    p: Parameterization,
) -> Result<ParamResult> {
    let grid = params.grid(p)?;
    let checkpoints = params.checkpoints();
    let runs_total = (params.widths.len() * grid.len() * params.seeds + params.seeds) as u64;
    let bar = ctx.progress(runs_total, &format!("{NAME} {}", label(p)));
    let seed_of = |width: usize, s: usize| ctx.seed_for(&("lr-transfer", width, s));
    let mut losses = Vec::new();
    let mut lr_star = Vec::new();
    let mut sharp = Vec::new();
    let mut transfer_k = grid[0];
    for (wi, &width) in params.widths.iter().enumerate() {
        let first = wi == 0;
        let jobs: Vec<(usize, usize)> = (0..grid.len())
            .flat_map(|g| (0..params.seeds).map(move |s| (g, s)))
            .collect();
        let results: Vec<Result<RunResult>> = jobs
            .par_iter()
            .map(|&(g, s)| {
                let lr = 2f64.powi(grid[g]);
                let cp = (!first && grid[g] == transfer_k).then_some(checkpoints.as_slice());
                let r = train_run(params, data, p, width, lr, seed_of(width, s), cp);
                bar.inc(1);
                r
            })
            .collect();
        let mut per_lr = vec![vec![f64::INFINITY; params.seeds]; grid.len()];
        let mut sharp_runs: Vec<Option<RunResult>> = vec![None; params.seeds];
        for (&(g, s), r) in jobs.iter().zip(results) {
            let r = r?;
            per_lr[g][s] = r.final_loss;
            if !first && grid[g] == transfer_k {
                sharp_runs[s] = Some(r);
            }
        }
        let mean_loss: Vec<f64> = per_lr.iter().map(|v| mean_finite_or_inf(v)).collect();
        let xs: Vec<f64> = grid.iter().map(|&k| f64::from(k)).collect();
        let star = refined_argmin(&xs, &mean_loss);
        if first {
            // The grid optimum at the narrowest width is the rate transferred to the others.
            let k = mean_loss
                .iter()
                .enumerate()
                .filter(|(_, v)| v.is_finite())
                .min_by(|a, b| a.1.total_cmp(b.1))
                .map(|(i, _)| grid[i])
                .with_context(|| format!("{p:?}: every run at width {width} diverged"))?;
            transfer_k = k;
            let runs: Vec<Result<RunResult>> = (0..params.seeds)
                .into_par_iter()
                .map(|s| {
                    let r = train_run(
                        params,
                        data,
                        p,
                        width,
                        2f64.powi(k),
                        seed_of(width, s),
                        Some(&checkpoints),
                    );
                    bar.inc(1);
                    r
                })
                .collect();
            sharp_runs = runs
                .into_iter()
                .map(|r| r.map(Some))
                .collect::<Result<_>>()?;
        }
        losses.push(per_lr);
        lr_star.push(star);
        sharp.push(sharp_runs.into_iter().flatten().collect());
    }
    bar.finish_and_clear();
    Ok(ParamResult {
        p,
        grid,
        losses,
        lr_star,
        transfer_k,
        sharp,
    })
}

/// Mean sharpness over seeds per checkpoint for one width (NaN where a seed is missing).
fn mean_sharpness(runs: &[RunResult], checkpoints: &[usize]) -> (Vec<f64>, Vec<f64>) {
    let mut mean = Vec::new();
    let mut std = Vec::new();
    for &t in checkpoints {
        let vals: Vec<f64> = runs
            .iter()
            .map(|r| {
                r.sharpness
                    .iter()
                    .find(|(s, _, _)| *s == t)
                    .map_or(f64::NAN, |x| x.1)
            })
            .collect();
        if vals.is_empty() || vals.iter().any(|v| !v.is_finite()) {
            mean.push(f64::NAN);
            std.push(f64::NAN);
        } else {
            let (m, s) = mean_std(&vals);
            mean.push(m);
            std.push(s);
        }
    }
    (mean, std)
}

/// `max_w λ̄(w) / min_w λ̄(w)`, where `λ̄(w)` is the mean of width `w`'s curve over the
/// checkpoints `t ≥ steps/2` (time-averaging first removes most of the edge-of-stability
/// oscillation, which is not a width effect). Widths with a missing or non-positive value in
/// that window are left out; NaN when fewer than two widths remain.
pub fn spread_ratio(curves: &[Vec<f64>], checkpoints: &[usize], steps: usize) -> f64 {
    let means: Vec<f64> = curves
        .iter()
        .filter_map(|c| {
            let window: Vec<f64> = checkpoints
                .iter()
                .enumerate()
                .filter(|(_, &t)| 2 * t >= steps)
                .map(|(i, _)| c.get(i).copied().unwrap_or(f64::NAN))
                .collect();
            let ok = !window.is_empty() && window.iter().all(|v| v.is_finite() && *v > 0.0);
            ok.then(|| window.iter().sum::<f64>() / window.len() as f64)
        })
        .collect();
    if means.len() < 2 {
        return f64::NAN;
    }
    let max = means.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let min = means.iter().copied().fold(f64::INFINITY, f64::min);
    max / min
}

/// The experiment (registered in [`crate::experiments::all`]).
#[derive(Debug, Clone, Copy)]
pub struct LrTransfer;

impl Experiment for LrTransfer {
    fn name(&self) -> &'static str {
        NAME
    }

    fn paper(&self) -> &'static str {
        "Noci, Meterez, Hofmann & Orvieto, Why do Learning Rates Transfer? Reconciling \
         Optimization and Scaling Limits for Deep Learning, 2024"
    }

    fn about(&self) -> &'static str {
        "SP/NTK/muP MLPs of widths 64..1024: loss vs learning rate, and preconditioned sharpness along training"
    }

    fn run(&self, ctx: &Context) -> Result<Outcome> {
        run(ctx, &ctx.mode.pick(Params::quick, Params::full))
    }
}

fn run(ctx: &Context, params: &Params) -> Result<Outcome> {
    ensure!(params.hidden_layers >= 2, "hidden_layers must be >= 2");
    ensure!(params.widths.len() >= 2, "need at least two widths");
    let data = load_data(params, ctx.seed_for(&"lr-transfer data"))?;
    let checkpoints = params.checkpoints();
    let mut results = Vec::new();
    for p in PARAMETERIZATIONS {
        results.push(run_parameterization(ctx, params, &data, p)?);
    }

    // ---- numbers ----
    let mut csv = ResultsCsv::new(&[
        "kind",
        "parameterization",
        "width",
        "seed",
        "log2_lr",
        "step",
        "value",
        "extra",
    ]);
    let mut spreads = Vec::new();
    let mut ratios = Vec::new();
    let mut init_ratios = Vec::new();
    let mut sharp_means: Vec<Vec<(Vec<f64>, Vec<f64>)>> = Vec::new();
    for r in &results {
        let name = label(r.p);
        for (wi, &w) in params.widths.iter().enumerate() {
            for (g, &k) in r.grid.iter().enumerate() {
                for (s, &l) in r.losses[wi][g].iter().enumerate() {
                    csv.row(&[&"final_loss", &name, &w, &s, &k, &params.steps, &l, &""]);
                }
            }
            let (star, edge) = r.lr_star[wi].unwrap_or((f64::NAN, true));
            csv.row(&[&"log2_lr_star", &name, &w, &"", &"", &"", &star, &edge]);
            for (s, run) in r.sharp[wi].iter().enumerate() {
                for &(t, lam, mv) in &run.sharpness {
                    csv.row(&[&"sharpness", &name, &w, &s, &r.transfer_k, &t, &lam, &mv]);
                }
                if let Some(d) = run.diverged_at {
                    csv.row(&[
                        &"sharpness_run_diverged",
                        &name,
                        &w,
                        &s,
                        &r.transfer_k,
                        &d,
                        &"",
                        &"",
                    ]);
                }
            }
        }
        let stars: Vec<f64> = r.lr_star.iter().flatten().map(|s| s.0).collect();
        let spread = if stars.len() == params.widths.len() {
            stars.iter().copied().fold(f64::NEG_INFINITY, f64::max)
                - stars.iter().copied().fold(f64::INFINITY, f64::min)
        } else {
            f64::NAN
        };
        csv.row(&[
            &"log2_lr_star_spread",
            &name,
            &"",
            &"",
            &"",
            &"",
            &spread,
            &"",
        ]);
        let means: Vec<(Vec<f64>, Vec<f64>)> = r
            .sharp
            .iter()
            .map(|runs| mean_sharpness(runs, &checkpoints))
            .collect();
        let curves: Vec<Vec<f64>> = means.iter().map(|m| m.0.clone()).collect();
        let ratio = spread_ratio(&curves, &checkpoints, params.steps);
        let init: Vec<f64> = curves.iter().map(|c| c[0]).collect();
        let init_ratio = init.iter().copied().fold(f64::NEG_INFINITY, f64::max)
            / init.iter().copied().fold(f64::INFINITY, f64::min);
        csv.row(&[
            &"sharpness_ratio_second_half",
            &name,
            &"",
            &"",
            &r.transfer_k,
            &"",
            &ratio,
            &"",
        ]);
        csv.row(&[
            &"sharpness_ratio_init",
            &name,
            &"",
            &"",
            &r.transfer_k,
            &0,
            &init_ratio,
            &"",
        ]);
        spreads.push(spread);
        ratios.push(ratio);
        init_ratios.push(init_ratio);
        sharp_means.push(means);
    }
    csv.write(ctx.path("results.csv"))?;

    // ---- plots ----
    for r in &results {
        let name = label(r.p);
        let series: Vec<Series> = params
            .widths
            .iter()
            .enumerate()
            .map(|(wi, &w)| {
                let stats: Vec<(f64, f64)> = r.losses[wi]
                    .iter()
                    .map(|v| {
                        if v.iter().all(|x| x.is_finite()) {
                            mean_std(v)
                        } else {
                            (f64::NAN, f64::NAN)
                        }
                    })
                    .collect();
                Series {
                    label: format!("width {w}"),
                    x: r.grid.iter().map(|&k| 2f64.powi(k)).collect(),
                    mean: stats.iter().map(|s| s.0).collect(),
                    std: (params.seeds > 1).then(|| stats.iter().map(|s| s.1).collect()),
                }
            })
            .collect();
        plot::lines_with_band(
            ctx.path(&format!("loss_vs_lr_{}.svg", name.to_lowercase())),
            &format!("{name}: training loss after {} SGD steps", params.steps),
            "base learning rate",
            "training loss",
            &series,
            true,
        )?;
    }
    for (r, means) in results.iter().zip(&sharp_means) {
        let name = label(r.p);
        let x: Vec<f64> = checkpoints.iter().map(|&t| t as f64).collect();
        let mut series: Vec<Series> = params
            .widths
            .iter()
            .zip(means)
            .map(|(&w, (m, s))| Series {
                label: format!("width {w}"),
                x: x.clone(),
                mean: m.clone(),
                std: (params.seeds > 1).then(|| s.clone()),
            })
            .collect();
        let lr = 2f64.powi(r.transfer_k);
        series.push(Series {
            label: "2/lr (edge of stability)".into(),
            x: x.clone(),
            mean: vec![2.0 / lr; x.len()],
            std: None,
        });
        plot::lines_with_band(
            ctx.path(&format!("sharpness_{}.svg", name.to_lowercase())),
            &format!(
                "{name}: lambda_max(D^1/2 H D^1/2) at lr = 2^{}",
                r.transfer_k
            ),
            "SGD step",
            "preconditioned sharpness",
            &series,
            false,
        )?;
    }

    // ---- claims ----
    let (sp, ntk, mup) = (spreads[0], spreads[1], spreads[2]);
    let m = params.spread_margin;
    let beats_sp = mup + m <= sp;
    let beats_ntk = mup + m <= ntk;
    let claim1 = Claim::new(
        "The optimal learning rate moves less across widths under muP than under SP and NTK",
        format!(
            "spread of log2 lr* over widths {:?}: SP {sp:.2}, NTK {ntk:.2}, muP {mup:.2} octaves",
            params.widths
        ),
        format!(
            "spread = max - min over widths of log2 lr* (parabolic refinement of the grid \
             minimum of the mean final training loss); reproduced if muP's spread + {m} <= \
             both SP's and NTK's, partly if it undercuts one of them by that margin"
        ),
        Verdict::from_tests(beats_sp && beats_ntk, beats_sp || beats_ntk),
    )
    .paper("muP: optimum fixed across widths; SP/NTP: optimum shifts (Fig. 1)")
    .expect(Expectation::FullOnly);
    let (r_ntk, r_mup) = (ratios[1], ratios[2]);
    let closer = r_mup < r_ntk;
    let close = r_mup <= params.close_ratio;
    let claim2 = Claim::new(
        "Under muP the sharpness curves of different widths stay close during training; under NTK they spread",
        format!(
            "max/min across widths of the sharpness averaged over the second half of training: \
             muP {r_mup:.2}, NTK {r_ntk:.2} (SP {:.2}); at initialisation muP {:.2}, NTK {:.2}, SP {:.2}",
            ratios[0], init_ratios[2], init_ratios[1], init_ratios[0]
        ),
        format!(
            "R = max_w / min_w of the mean over checkpoints t >= T/2 of lambda(t, w) (seed \
             means), at the rate optimal at the narrowest width; reproduced if R_muP < R_NTK and \
             R_muP <= {}, partly if only R_muP < R_NTK",
            params.close_ratio
        ),
        Verdict::from_tests(closer && close, closer),
    )
    .paper("muP: super-consistent sharpness across widths; NTP: width-dependent (Fig. 1, 3)")
    .expect(Expectation::FullOnly);

    // ---- report ----
    let mut section = String::new();
    writeln!(
        section,
        "ReLU MLPs 64 → [w, w] → 10 on the 8×8 digits (all 1797 images), plain SGD, batch {}, \
         {} steps, {} seed(s) per point; base learning rates on a log₂ grid per \
         parameterisation (SP 2^{}..2^{}, NTK 2^{}..2^{}, μP 2^{}..2^{}). Sharpness = λ_max of \
         D^½ H D^½ (D = the parameterisation's per-layer SGD learning-rate multipliers) on a \
         fixed batch of {} images, by Lanczos (tol {}) on exact Hessian-vector products, at the \
         rate that is optimal on the grid at width {} (tuned small, transferred wide). The \
         preconditioned operator is a `LinearOperator` wrapper in this experiment's file.\n",
        params.batch,
        params.steps,
        params.seeds,
        params.lr_grids[0].1,
        params.lr_grids[0].2,
        params.lr_grids[1].1,
        params.lr_grids[1].2,
        params.lr_grids[2].1,
        params.lr_grids[2].2,
        params.sharpness_batch,
        params.lanczos_tol,
        params.widths[0]
    )?;
    let mut header = vec!["parameterization".to_string()];
    header.extend(params.widths.iter().map(|w| format!("log2 lr* (w={w})")));
    header.push("spread".into());
    header.push("transferred lr".into());
    let rows: Vec<Vec<String>> = results
        .iter()
        .zip(&spreads)
        .map(|(r, s)| {
            let mut row = vec![label(r.p).to_string()];
            row.extend(r.lr_star.iter().map(|x| match x {
                Some((v, true)) => format!("{v:.2} (edge)"),
                Some((v, false)) => format!("{v:.2}"),
                None => "all diverged".into(),
            }));
            row.push(format!("{s:.2}"));
            row.push(format!("2^{}", r.transfer_k));
            row
        })
        .collect();
    let header_refs: Vec<&str> = header.iter().map(String::as_str).collect();
    section.push_str(&markdown_table(&header_refs, &rows));
    section.push('\n');
    let mut rows = Vec::new();
    for (r, means) in results.iter().zip(&sharp_means) {
        for (&w, (m, s)) in params.widths.iter().zip(means) {
            let mut row = vec![label(r.p).to_string(), w.to_string()];
            row.extend(
                m.iter()
                    .zip(s)
                    .map(|(&a, &b)| fmt_mean_std(a, if params.seeds > 1 { b } else { 0.0 }, 2)),
            );
            rows.push(row);
        }
    }
    let mut header = vec!["param".to_string(), "width".to_string()];
    header.extend(checkpoints.iter().map(|t| format!("t={t}")));
    let header_refs: Vec<&str> = header.iter().map(String::as_str).collect();
    section.push_str("\nPreconditioned sharpness along training:\n\n");
    section.push_str(&markdown_table(&header_refs, &rows));
    writeln!(
        section,
        "\nMax/min across widths of the sharpness averaged over the second half: SP {:.2}, NTK {:.2}, \
         μP {:.2}. Paper (Noci et al. 2024, Fig. 1): under μP the loss-vs-lr curves share their \
         optimum and the sharpness curves superimpose across widths; under NTP the optimum moves \
         and the sharpness depends on width (wider networks are lazier and sharpen less).\n",
        ratios[0], ratios[1], ratios[2]
    )?;
    for r in &results {
        let n = label(r.p).to_lowercase();
        writeln!(
            section,
            "![loss vs lr {n}](loss_vs_lr_{n}.svg) ![sharpness {n}](sharpness_{n}.svg)"
        )?;
    }
    Ok(Outcome {
        section,
        claims: vec![claim1, claim2],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preconditioned_operator_matches_explicit_product() {
        let cfg = MlpConfig::new(3, vec![4, 5], 2).with_parameterization(Parameterization::MuP);
        let mlp = Mlp::<f32>::new(cfg, 7).unwrap();
        let x = Array2::from_shape_fn((6, 3), |(i, j)| ((i * 3 + j) as f32 * 0.37).sin());
        let y = vec![0, 1, 1, 0, 1, 0];
        let h = mlp
            .hessian_operator(x.view(), Targets::Hard(&y), Loss::SoftmaxCrossEntropy)
            .unwrap();
        let dense = h.to_dense();
        let sqrt_d = sqrt_lr_multipliers(&mlp).unwrap();
        // μP multipliers are not all 1 (they scale with width), so D matters.
        assert!(sqrt_d.iter().any(|&v| (v - 1.0).abs() > 0.1));
        let n = dense.nrows();
        let explicit =
            Array2::from_shape_fn((n, n), |(i, j)| sqrt_d[i] * dense[[i, j]] * sqrt_d[j]);
        let op = PreconditionedOperator::new(h, sqrt_d.clone()).unwrap();
        let v = Array1::from_shape_fn(n, |i| ((i as f32) * 0.71).cos());
        let mut got = Array1::zeros(n);
        op.apply(v.view(), got.view_mut());
        let want = explicit.dot(&v);
        let scale = want.iter().fold(0f32, |a, b| a.max(b.abs())).max(1e-6);
        for (a, b) in got.iter().zip(&want) {
            assert!((a - b).abs() <= 1e-4 * scale, "{a} vs {b}");
        }
        assert!(PreconditionedOperator::new(
            mlp.hessian_operator(x.view(), Targets::Hard(&y), Loss::SoftmaxCrossEntropy)
                .unwrap(),
            Array1::zeros(n + 1)
        )
        .is_err());
    }

    #[test]
    fn multipliers_follow_the_parameterisation() {
        let sp = Mlp::<f32>::new(MlpConfig::new(3, vec![8, 8], 2), 1).unwrap();
        assert!(sqrt_lr_multipliers(&sp).unwrap().iter().all(|&v| v == 1.0));
        let mup = Mlp::<f32>::new(
            MlpConfig::new(3, vec![8, 8], 2).with_parameterization(Parameterization::MuP),
            1,
        )
        .unwrap();
        let s = sqrt_lr_multipliers(&mup).unwrap();
        // Hidden weights: multiplier n_in = 8.
        let hidden = mup.layers()[1].weight_range();
        assert!((s[hidden.start] - 8f32.sqrt()).abs() < 1e-6);
        // Output bias: multiplier 1.
        let out_bias = mup.layers()[2].bias_range();
        assert!((s[out_bias.start] - 1.0).abs() < 1e-6);
    }

    #[test]
    fn refined_argmin_finds_the_vertex() {
        let x = [-2.0, -1.0, 0.0, 1.0, 2.0];
        // Parabola with vertex at 0.3.
        let y: Vec<f64> = x
            .iter()
            .map(|v: &f64| (v - 0.3) * (v - 0.3) + 1.0)
            .collect();
        let (v, edge) = refined_argmin(&x, &y).unwrap();
        assert!((v - 0.3).abs() < 1e-12 && !edge);
        let y = [5.0, 4.0, 3.0, 2.0, 1.0];
        assert_eq!(refined_argmin(&x, &y), Some((2.0, true)));
        let y = [f64::INFINITY, 1.0, 0.5, f64::INFINITY, f64::INFINITY];
        assert_eq!(refined_argmin(&x, &y), Some((0.0, false)));
        assert_eq!(refined_argmin(&x, &[f64::INFINITY; 5]), None);
    }

    #[test]
    fn spread_ratio_uses_second_half() {
        let cp = [0, 5, 10];
        let curves = vec![vec![1.0, 1.0, 2.0], vec![4.0, 1.0, 5.0]];
        // t=5 and t=10 are in the second half of 10 steps: means 1.5 and 3.
        assert!((spread_ratio(&curves, &cp, 10) - 2.0).abs() < 1e-12);
        // A width with a missing point in the window is left out.
        let curves = vec![
            vec![1.0, f64::NAN, 2.0],
            vec![4.0, 1.0, 3.0],
            vec![0.0, 2.0, 2.0],
        ];
        assert!((spread_ratio(&curves, &cp, 10) - 1.0).abs() < 1e-12);
        assert!(spread_ratio(&[vec![1.0, 1.0, 1.0]], &cp, 10).is_nan());
    }
}
