//! Shared training helpers for f32 layer-engine models ([`Sequential`]): a mini-batch training
//! loop with an evaluation hook and divergence detection, and chunked evaluation, for inputs of
//! any shape (the first axis indexes examples: NCHW images, `(N, features)` rows, token grids).
//! The MLP counterparts are in [`crate::harness::train`].

use anyhow::Result;
use indicatif::ProgressBar;
use ndarray::{ArrayViewD, Axis};
use tessera_nn::{LrSchedule, Mode, Optimizer, Sequential, Targets};

use crate::harness::train::{
    chunked_loss_and_accuracy, loss_or_divergence, run_minibatches, TrainLog, TrainSpec,
};

/// Examples stacked along axis 0 and their class labels.
#[derive(Debug, Clone)]
pub struct Examples<'a> {
    /// Inputs, axis 0 = examples (e.g. `(N, C, H, W)`).
    pub x: ArrayViewD<'a, f32>,
    /// One class index per example.
    pub labels: &'a [usize],
}

impl Examples<'_> {
    fn check(&self, what: &str) -> Result<usize> {
        let n = self.x.shape().first().copied().unwrap_or(0);
        anyhow::ensure!(n > 0, "{what}: empty set (x has 0 examples)");
        anyhow::ensure!(
            self.labels.len() == n,
            "{what}: labels has {} entries, x has {n} examples",
            self.labels.len()
        );
        Ok(n)
    }
}

/// Trains `model` by mini-batch steps of `optimizer` (learning rate `schedule.lr_at(step)`) in
/// training mode (batch-norm statistics update, dropout active), shuffled by `seed`;
/// `hook(step, model)` runs at every step in `spec.eval_steps` (step `s` = after `s`
/// updates). A diverging run (loss above `spec.divergence_factor` × the first, or non-finite
/// logits) stops and is recorded in [`TrainLog::status`]; it is not an error. `transform`
/// may rewrite each mini-batch before the step (augmentation; identity: `|_, xb| Ok(xb)`).
///
/// # Errors
/// An error from tessera-nn (shapes, labels), from `transform` or from the hook.
#[allow(clippy::too_many_arguments)]
pub fn train_sequential(
    model: &mut Sequential<f32>,
    optimizer: &mut Optimizer<f32>,
    schedule: &LrSchedule,
    data: &Examples<'_>,
    spec: &TrainSpec,
    seed: u64,
    progress: Option<&ProgressBar>,
    mut transform: impl FnMut(usize, ndarray::ArrayD<f32>) -> Result<ndarray::ArrayD<f32>>,
    mut hook: impl FnMut(usize, &Sequential<f32>) -> Result<()>,
) -> Result<TrainLog> {
    let n = data.check("train_sequential")?;
    run_minibatches(
        model,
        n,
        spec,
        seed,
        progress,
        |model, step, idx| {
            let xb = transform(step, data.x.select(Axis(0), idx))?;
            let yb: Vec<usize> = idx.iter().map(|&i| data.labels[i]).collect();
            let targets = Targets::Hard(&yb);
            let result = model
                .loss_and_gradient(xb.view(), &targets, spec.loss, Mode::Train)
                .and_then(|(value, grad)| {
                    optimizer.step_sequential(model, grad.view(), schedule.lr_at(step))?;
                    Ok(f64::from(value))
                });
            loss_or_divergence(result, || {
                Ok(model.params().iter().any(|v| !v.is_finite())
                    || model.predict(xb.view())?.iter().any(|v| !v.is_finite()))
            })
        },
        &mut hook,
    )
}

/// Mean softmax cross-entropy and accuracy of `model` (evaluation mode) on `data`, `chunk`
/// examples at a time (bounded memory). Non-finite logits give a non-finite loss, not an error.
///
/// # Errors
/// Shapes or labels that tessera-nn rejects, or an empty set.
pub fn evaluate_sequential(
    model: &Sequential<f32>,
    data: &Examples<'_>,
    chunk: usize,
) -> Result<(f64, f64)> {
    data.check("evaluate_sequential")?;
    chunked_loss_and_accuracy(data.labels, chunk, |rows| {
        let xs = data.x.slice_axis(Axis(0), rows.into());
        Ok(model.predict(xs)?.into_dimensionality::<ndarray::Ix2>()?)
    })
}

/// The arg-max class of each row of `(examples, classes)` logits (the first on ties; NaN never
/// wins).
pub fn predicted_classes(logits: ndarray::ArrayView2<'_, f32>) -> Vec<usize> {
    logits
        .axis_iter(Axis(0))
        .map(|row| {
            let mut best = 0;
            for (k, &v) in row.iter().enumerate() {
                if v > row[best] {
                    best = k;
                }
            }
            best
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::RunStatus;
    use ndarray::{Array2, Array4};
    use tessera_nn::layers::{Dense, Flatten, Relu};
    use tessera_nn::{Loss, OptimizerConfig};

    fn blobs() -> (Array4<f32>, Vec<usize>) {
        // Two classes told apart by the sign of the mean pixel.
        let n = 64;
        let mut x = Array4::<f32>::zeros((n, 1, 2, 2));
        let labels: Vec<usize> = (0..n).map(|i| i % 2).collect();
        for (i, mut img) in x.axis_iter_mut(Axis(0)).enumerate() {
            let sign = if labels[i] == 1 { 1.0 } else { -1.0 };
            img.iter_mut()
                .enumerate()
                .for_each(|(k, v)| *v = sign * (0.5 + 0.1 * ((i + k) % 5) as f32));
        }
        (x, labels)
    }

    #[test]
    fn training_learns_a_separable_task_and_evaluation_agrees_with_accuracy() -> Result<()> {
        let (x, labels) = blobs();
        let mut model = Sequential::<f32>::new(&[1, 2, 2], 3)?
            .push("flatten", Flatten)?
            .push("fc1", Dense::new(4, 8)?)?
            .push("relu", Relu)?
            .push("fc2", Dense::new(8, 2)?)?;
        let mut optimizer = Optimizer::for_sequential(OptimizerConfig::adam(), &model)?;
        let schedule = LrSchedule::constant(0.05)?;
        let spec = TrainSpec {
            steps: 60,
            batch_size: 16,
            eval_steps: vec![0, 60],
            divergence_factor: 1e6,
            loss: Loss::SoftmaxCrossEntropy,
        };
        let data = Examples {
            x: x.view().into_dyn(),
            labels: &labels,
        };
        let mut seen = Vec::new();
        let log = train_sequential(
            &mut model,
            &mut optimizer,
            &schedule,
            &data,
            &spec,
            1,
            None,
            |_, xb| Ok(xb),
            |step, _| {
                seen.push(step);
                Ok(())
            },
        )?;
        assert_eq!(log.status, RunStatus::Finished);
        assert_eq!(seen, vec![0, 60]);
        let (loss, acc) = evaluate_sequential(&model, &data, 7)?;
        assert!(loss.is_finite() && loss < log.losses[0]);
        assert_eq!(acc, 1.0);
        let direct = model.accuracy(x.view().into_dyn(), &Targets::Hard(&labels))?;
        assert_eq!(acc, direct);
        Ok(())
    }

    #[test]
    fn mismatched_labels_and_empty_sets_are_errors() {
        let model = Sequential::<f32>::new(&[3], 0)
            .and_then(|m| m.push("fc", Dense::new(3, 2)?))
            .expect("model");
        let x = Array2::<f32>::zeros((4, 3));
        let short = [0usize; 3];
        let bad = Examples {
            x: x.view().into_dyn(),
            labels: &short,
        };
        assert!(evaluate_sequential(&model, &bad, 2).is_err());
        let empty = Array2::<f32>::zeros((0, 3));
        let none = Examples {
            x: empty.view().into_dyn(),
            labels: &[],
        };
        assert!(evaluate_sequential(&model, &none, 2).is_err());
    }

    #[test]
    fn predicted_classes_takes_the_first_maximum() {
        let logits = ndarray::array![[1.0f32, 3.0, 3.0], [f32::NAN, 0.0, -1.0]];
        assert_eq!(predicted_classes(logits.view()), vec![1, 0]);
    }
}
