//! Shared training helpers for f32 MLPs on tessera-nn: log-spaced evaluation steps, a
//! mini-batch training loop with evaluation hooks and divergence detection, chunked
//! evaluation, and a cache of trained baselines.

use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{Context as _, Result};
use indicatif::ProgressBar;
use ndarray::{Array1, Array2, ArrayView2, Axis};
use ndarray_npy::{read_npy, write_npy};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tessera_nn::{loss_and_logit_gradient, Loss, Mlp, Targets, Trainer};

/// 64-bit FNV-1a hash (stable across platforms and Rust versions).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// `count` steps spaced evenly in log scale over `1..=total`, rounded, deduplicated, strictly
/// increasing, always ending at `total` (and starting at 1 when `count ≥ 2`). Fewer than
/// `count` values come back when rounding merges steps. Empty for `count = 0` or `total = 0`.
pub fn log_spaced_steps(total: usize, count: usize) -> Vec<usize> {
    if count == 0 || total == 0 {
        return Vec::new();
    }
    if count == 1 {
        return vec![total];
    }
    let ln_total = (total as f64).ln();
    let mut steps: Vec<usize> = (0..count)
        .map(|i| {
            let s = (ln_total * i as f64 / (count - 1) as f64).exp().round() as usize;
            s.clamp(1, total)
        })
        .collect();
    steps.dedup();
    if steps.last() != Some(&total) {
        steps.push(total);
    }
    steps
}

/// How a training run ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RunStatus {
    /// Every step was taken.
    Finished,
    /// The loss at `step` was non-finite or above the divergence threshold; the run stopped.
    Diverged {
        /// The step (0-based) whose mini-batch loss tripped the detector.
        step: usize,
        /// That loss (may be NaN or infinite).
        loss: f64,
    },
}

impl RunStatus {
    /// Whether the run diverged.
    pub fn diverged(&self) -> bool {
        matches!(self, RunStatus::Diverged { .. })
    }
}

/// Divergence = a non-finite loss, or a loss above `factor` × the first loss observed.
#[derive(Debug, Clone, Copy)]
pub struct DivergenceDetector {
    /// The threshold factor over the initial loss.
    pub factor: f64,
    initial: Option<f64>,
}

impl DivergenceDetector {
    /// A detector with threshold `factor` × initial loss.
    pub fn new(factor: f64) -> Self {
        DivergenceDetector {
            factor,
            initial: None,
        }
    }

    /// The first loss observed (the reference), if any.
    pub fn initial(&self) -> Option<f64> {
        self.initial
    }

    /// Observes the loss of `step`; `Some(RunStatus::Diverged)` when it diverged. A
    /// non-finite first loss counts as divergence too.
    pub fn observe(&mut self, step: usize, loss: f64) -> Option<RunStatus> {
        if !loss.is_finite() {
            return Some(RunStatus::Diverged { step, loss });
        }
        let initial = *self.initial.get_or_insert(loss);
        if loss > self.factor * initial {
            return Some(RunStatus::Diverged { step, loss });
        }
        None
    }
}

/// Settings of [`train_classifier`].
#[derive(Debug, Clone, PartialEq)]
pub struct TrainSpec {
    /// Optimiser steps to take.
    pub steps: usize,
    /// Mini-batch size (clamped to the training set size); batches are drawn without
    /// replacement from a fresh shuffle each epoch.
    pub batch_size: usize,
    /// Steps after which the hook runs (step `s` = after `s` updates; 0 = before training).
    pub eval_steps: Vec<usize>,
    /// Divergence threshold over the first mini-batch loss (see [`DivergenceDetector`]).
    pub divergence_factor: f64,
    /// The loss.
    pub loss: Loss,
}

/// A training set: inputs (one row per example) and their class labels.
#[derive(Debug, Clone, Copy)]
pub struct LabelledData<'a> {
    /// Inputs, shape `(examples, features)`.
    pub x: ArrayView2<'a, f32>,
    /// One class index per row of `x`.
    pub labels: &'a [usize],
}

/// What [`train_classifier`] returns.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainLog {
    /// Finished or diverged.
    pub status: RunStatus,
    /// The mini-batch loss of every step taken (before its update).
    pub losses: Vec<f64>,
    /// Updates actually applied.
    pub steps_done: usize,
}

/// Trains `mlp` with `trainer` on `(x, labels)` by mini-batch steps, shuffled by `seed`;
/// `hook(step, mlp)` runs at every step in `spec.eval_steps` (not after a divergence). A
/// diverging run stops and is recorded in [`TrainLog::status`]; it is not an error. The
/// progress bar (if any) advances by one per step.
///
/// # Errors
/// An error from tessera-nn (shapes, labels) or from the hook.
pub fn train_classifier(
    mlp: &mut Mlp<f32>,
    trainer: &mut Trainer<f32>,
    data: LabelledData<'_>,
    spec: &TrainSpec,
    seed: u64,
    progress: Option<&ProgressBar>,
    mut hook: impl FnMut(usize, &Mlp<f32>) -> Result<()>,
) -> Result<TrainLog> {
    let LabelledData { x, labels } = data;
    let n = x.nrows();
    anyhow::ensure!(n > 0, "train_classifier: empty training set (x has 0 rows)");
    anyhow::ensure!(
        labels.len() == n,
        "train_classifier: labels has {} entries, x has {n} rows",
        labels.len()
    );
    run_minibatches(
        mlp,
        n,
        spec,
        seed,
        progress,
        |mlp, _, idx| {
            let xb = x.select(Axis(0), idx);
            let yb: Vec<usize> = idx.iter().map(|&i| labels[i]).collect();
            let result = trainer.step(mlp, xb.view(), &Targets::Hard(&yb), spec.loss);
            loss_or_divergence(result.map(f64::from), || {
                Ok(mlp.params().iter().any(|v| !v.is_finite())
                    || mlp.predict(xb.view())?.iter().any(|v| !v.is_finite()))
            })
        },
        &mut hook,
    )
}

/// The loss of a training step, or NaN when the step failed because the model blew up
/// (`blown()`: non-finite parameters or logits, which tessera-nn rejects): a divergence, not
/// an error. Any other failure is an error.
pub(crate) fn loss_or_divergence(
    result: std::result::Result<f64, tessera_nn::Error>,
    blown: impl FnOnce() -> Result<bool>,
) -> Result<f64> {
    match result {
        Ok(loss) => Ok(loss),
        Err(e) if !blown()? => Err(e.into()),
        Err(_) => Ok(f64::NAN),
    }
}

/// The mini-batch loop shared by [`train_classifier`] and
/// [`crate::harness::train_sequential`]: a fresh shuffle (by `seed`) of `0..n` each epoch,
/// `spec.steps` batches of `spec.batch_size` indices (clamped to `1..=n`) handed to
/// `step(model, step, indices)`, which applies one update and returns the batch loss (NaN when
/// the model blew up); `hook(step, model)` at every step in `spec.eval_steps` (0 = before
/// training); a diverging run stops (see [`DivergenceDetector`]).
///
/// # Errors
/// An error from `step` or `hook`.
pub(crate) fn run_minibatches<M: ?Sized>(
    model: &mut M,
    n: usize,
    spec: &TrainSpec,
    seed: u64,
    progress: Option<&ProgressBar>,
    mut step_fn: impl FnMut(&mut M, usize, &[usize]) -> Result<f64>,
    mut hook: impl FnMut(usize, &M) -> Result<()>,
) -> Result<TrainLog> {
    let batch = spec.batch_size.clamp(1, n.max(1));
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut order: Vec<usize> = (0..n).collect();
    let mut cursor = n;
    let mut detector = DivergenceDetector::new(spec.divergence_factor);
    let mut losses = Vec::with_capacity(spec.steps);
    if spec.eval_steps.contains(&0) {
        hook(0, model)?;
    }
    for step in 0..spec.steps {
        if cursor + batch > n {
            order.shuffle(&mut rng);
            cursor = 0;
        }
        let idx = &order[cursor..cursor + batch];
        cursor += batch;
        let loss = step_fn(model, step, idx)?;
        losses.push(loss);
        if let Some(bar) = progress {
            bar.inc(1);
        }
        if let Some(status) = detector.observe(step, loss) {
            if let Some(bar) = progress {
                bar.inc((spec.steps - step - 1) as u64);
            }
            return Ok(TrainLog {
                status,
                losses,
                steps_done: step + 1,
            });
        }
        if spec.eval_steps.contains(&(step + 1)) {
            hook(step + 1, model)?;
        }
    }
    Ok(TrainLog {
        status: RunStatus::Finished,
        losses,
        steps_done: spec.steps,
    })
}

/// Mean softmax cross-entropy and accuracy of `model` on `(x, y)`, evaluated `chunk` rows at a
/// time (bounded memory). Non-finite logits give a non-finite loss, not an error.
///
/// # Errors
/// Shapes or labels that tessera-nn rejects, or an empty set.
pub fn evaluate_chunked(
    model: &Mlp<f32>,
    x: ArrayView2<'_, f32>,
    y: &[usize],
    chunk: usize,
) -> Result<(f64, f64)> {
    let n = x.nrows();
    anyhow::ensure!(n > 0, "evaluate_chunked: empty set (x has 0 rows)");
    anyhow::ensure!(
        y.len() == n,
        "evaluate_chunked: y has {} labels, x has {n} rows",
        y.len()
    );
    chunked_loss_and_accuracy(y, chunk, |rows| {
        Ok(model.predict(x.slice(ndarray::s![rows, ..]))?)
    })
}

/// Mean softmax cross-entropy and accuracy of the logits `predict(rows)` returns for each
/// chunk of `chunk` consecutive examples, against `labels` (shared by [`evaluate_chunked`] and
/// [`crate::harness::evaluate_sequential`]). Non-finite logits give a non-finite loss, not an
/// error.
///
/// # Errors
/// An error from `predict`, or logits of the wrong shape.
pub(crate) fn chunked_loss_and_accuracy(
    labels: &[usize],
    chunk: usize,
    mut predict: impl FnMut(std::ops::Range<usize>) -> Result<Array2<f32>>,
) -> Result<(f64, f64)> {
    let n = labels.len();
    let chunk = chunk.max(1);
    let (mut loss_sum, mut correct) = (0.0f64, 0usize);
    let mut start = 0;
    while start < n {
        let end = (start + chunk).min(n);
        let logits = predict(start..end)?;
        let ys = &labels[start..end];
        if logits.iter().all(|v| v.is_finite()) {
            let (loss, _) = loss_and_logit_gradient(
                logits.view(),
                &Targets::Hard(ys),
                Loss::SoftmaxCrossEntropy,
            )?;
            loss_sum += f64::from(loss) * (end - start) as f64;
        } else {
            loss_sum = f64::NAN;
        }
        correct += crate::harness::predicted_classes(logits.view())
            .iter()
            .zip(ys)
            .filter(|(p, y)| p == y)
            .count();
        start = end;
    }
    Ok((loss_sum / n as f64, correct as f64 / n as f64))
}

/// FNV-1a of the running executable, computed once: cached baselines are only reused by the
/// very binary that trained them, so a code change can never serve a stale baseline.
fn binary_fingerprint() -> u64 {
    static FINGERPRINT: OnceLock<u64> = OnceLock::new();
    *FINGERPRINT.get_or_init(|| {
        std::env::current_exe()
            .and_then(std::fs::read)
            .map(|bytes| fnv1a(&bytes))
            .unwrap_or(0)
    })
}

/// Trained baselines (flat parameter vectors) stored as `.npy` under a folder, keyed by a
/// stable hash: FNV-1a of the `Debug` string of the parameters that determine them, and of
/// the running binary (so a rebuilt binary retrains). Beside each `<key>.npy` a `<key>.txt`
/// holds the `Debug` string, checked on every hit so that a hash collision retrains.
#[derive(Debug, Clone)]
pub struct BaselineCache {
    dir: PathBuf,
}

impl BaselineCache {
    /// A cache in `dir` (created on first store).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        BaselineCache { dir: dir.into() }
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn key_of(key_params: &impl Debug) -> (String, String) {
        let text = format!("{key_params:?}|binary={:016x}", binary_fingerprint());
        (format!("{:016x}", fnv1a(text.as_bytes())), text)
    }

    /// The stored vector for `key_params`, or `train()`'s result, stored for next time.
    ///
    /// # Errors
    /// `train` fails, or the cache folder cannot be written.
    pub fn get_or_train(
        &self,
        key_params: &impl Debug,
        train: impl FnOnce() -> Result<Vec<f32>>,
    ) -> Result<Vec<f32>> {
        let (key, text) = Self::key_of(key_params);
        let npy = self.dir.join(format!("{key}.npy"));
        let txt = self.dir.join(format!("{key}.txt"));
        if std::fs::read_to_string(&txt).is_ok_and(|t| t == text) {
            if let Ok(stored) = read_npy::<_, Array1<f32>>(&npy) {
                return Ok(stored.to_vec());
            }
        }
        let params = train()?;
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("cannot create {}", self.dir.display()))?;
        write_npy(&npy, &Array1::from(params.clone()))
            .with_context(|| format!("cannot write {}", npy.display()))?;
        std::fs::write(&txt, text).with_context(|| format!("cannot write {}", txt.display()))?;
        Ok(params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;
    use tessera_nn::{LrSchedule, MlpConfig, OptimizerConfig};

    #[test]
    fn fnv1a_known_values() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn log_spaced_steps_properties() {
        assert_eq!(log_spaced_steps(1000, 4), vec![1, 10, 100, 1000]);
        assert_eq!(log_spaced_steps(5, 10), vec![1, 2, 3, 4, 5]);
        assert_eq!(log_spaced_steps(7, 1), vec![7]);
        assert!(log_spaced_steps(0, 3).is_empty());
        assert!(log_spaced_steps(10, 0).is_empty());
        for (total, count) in [(3000, 17), (12, 12), (999, 2), (64, 7)] {
            let s = log_spaced_steps(total, count);
            assert_eq!(*s.last().unwrap(), total);
            assert_eq!(s[0], 1);
            assert!(s.windows(2).all(|w| w[0] < w[1]), "{s:?}");
            assert!(s.len() <= count);
        }
    }

    #[test]
    fn divergence_detection() {
        let mut d = DivergenceDetector::new(10.0);
        assert_eq!(d.observe(0, 2.0), None);
        assert_eq!(d.observe(1, 19.9), None);
        assert_eq!(
            d.observe(2, 20.5),
            Some(RunStatus::Diverged {
                step: 2,
                loss: 20.5
            })
        );
        assert_eq!(d.initial(), Some(2.0));
        let mut d = DivergenceDetector::new(10.0);
        assert!(d.observe(0, 1.0).is_none());
        assert!(d.observe(5, f64::NAN).unwrap().diverged());
        assert!(DivergenceDetector::new(10.0)
            .observe(0, f64::INFINITY)
            .is_some());
    }

    fn toy() -> (Array2<f32>, Vec<usize>) {
        let x = Array2::from_shape_fn((40, 2), |(i, j)| {
            let c = if i % 2 == 0 { 1.0 } else { -1.0 };
            c + 0.1 * ((i * 7 + j * 3) % 5) as f32
        });
        let y = (0..40).map(|i| i % 2).collect();
        (x, y)
    }

    /// Trains a fresh toy MLP (`hidden` widths, init seed 1) by SGD at a constant `lr` for
    /// `steps` batches of 8 (shuffle seed 3); `hook` runs at `eval_steps`.
    fn train_toy(
        hidden: Vec<usize>,
        lr: f64,
        steps: usize,
        eval_steps: Vec<usize>,
        hook: impl FnMut(usize, &Mlp<f32>) -> Result<()>,
    ) -> (Mlp<f32>, TrainLog) {
        let (x, y) = toy();
        let mut mlp = Mlp::<f32>::new(MlpConfig::new(2, hidden, 2), 1).unwrap();
        let mut trainer = Trainer::new(
            &mut mlp,
            OptimizerConfig::sgd(),
            LrSchedule::constant(lr).unwrap(),
            None,
        )
        .unwrap();
        let spec = TrainSpec {
            steps,
            batch_size: 8,
            eval_steps,
            divergence_factor: 10.0,
            loss: Loss::SoftmaxCrossEntropy,
        };
        let data = LabelledData {
            x: x.view(),
            labels: &y,
        };
        let log = train_classifier(&mut mlp, &mut trainer, data, &spec, 3, None, hook).unwrap();
        (mlp, log)
    }

    #[test]
    fn training_loop_learns_and_hooks_run() {
        let (x, y) = toy();
        let mut seen = Vec::new();
        let (mlp, log) = train_toy(vec![8], 0.1, 50, vec![0, 10, 50], |s, _| {
            seen.push(s);
            Ok(())
        });
        assert_eq!(seen, vec![0, 10, 50]);
        assert_eq!(log.status, RunStatus::Finished);
        assert_eq!(log.losses.len(), 50);
        let (loss, acc) = evaluate_chunked(&mlp, x.view(), &y, 7).unwrap();
        assert_eq!(acc, 1.0);
        // Chunked and whole-set evaluation agree.
        let whole = f64::from(
            mlp.loss(x.view(), &Targets::Hard(&y), Loss::SoftmaxCrossEntropy)
                .unwrap(),
        );
        assert!((loss - whole).abs() < 1e-5, "{loss} vs {whole}");
    }

    #[test]
    fn a_huge_learning_rate_is_recorded_as_divergence() {
        let (_, log) = train_toy(vec![16, 16], 1e4, 100, vec![], |_, _| Ok(()));
        assert!(log.status.diverged(), "{:?}", log.status);
        assert!(log.steps_done < 100);
    }

    #[test]
    fn baseline_cache_trains_once() {
        let dir = std::env::temp_dir().join(format!("tessera-repro-cache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let cache = BaselineCache::new(&dir);
        let mut calls = 0;
        let a = cache
            .get_or_train(&("dense", 64), || {
                calls += 1;
                Ok(vec![1.0, 2.5])
            })
            .unwrap();
        let b = cache
            .get_or_train(&("dense", 64), || {
                calls += 1;
                Ok(vec![0.0])
            })
            .unwrap();
        let c = cache
            .get_or_train(&("dense", 128), || Ok(vec![7.0]))
            .unwrap();
        assert_eq!(calls, 1);
        assert_eq!(a, b);
        assert_eq!(c, vec![7.0]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
