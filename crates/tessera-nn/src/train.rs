//! Static sparse masks per layer and a training loop step that ties network, optimiser,
//! schedule and masks together.

use ndarray::{Array1, ArrayView1, ArrayView2, Axis, Slice};
use tessera_core::RejectInput;
use tessera_sparse::Mask;

use crate::error::{Error, Result};
use crate::loss::{Loss, Targets};
use crate::model::{DenseLayer, Mlp, StepBuffers};
use crate::optim::{LrSchedule, Optimizer, OptimizerConfig};
use crate::Float;

pub use tessera_sparse::MaskPolicy;

/// One optional [`Mask`] per dense layer over its weight matrix (row-major `[out, in]`,
/// PyTorch order); biases are never masked.
#[derive(Debug, Clone)]
pub struct MaskSet {
    masks: Vec<Option<Mask>>,
    ranges: Vec<std::ops::Range<usize>>,
    num_params: usize,
    policy: MaskPolicy,
}

impl MaskSet {
    /// Checks one entry per layer, each `None` or a mask of `fan_out·fan_in` entries.
    pub fn new<F: Float>(
        mlp: &Mlp<F>,
        masks: Vec<Option<Mask>>,
        policy: MaskPolicy,
    ) -> Result<Self> {
        if masks.len() != mlp.num_layers() {
            return Err(Error::shape(
                "masks",
                format!("{} entries (one per layer)", mlp.num_layers()),
                format!("{} entries", masks.len()),
            ));
        }
        for (j, (mask, layer)) in masks.iter().zip(mlp.layers()).enumerate() {
            if let Some(m) = mask {
                if m.len() != layer.fan_in * layer.fan_out {
                    return Err(Error::shape(
                        "masks",
                        format!(
                            "layer {j}: {} entries ({}x{})",
                            layer.fan_in * layer.fan_out,
                            layer.fan_out,
                            layer.fan_in
                        ),
                        format!("{} entries", m.len()),
                    ));
                }
            }
        }
        Ok(Self {
            masks,
            ranges: mlp.layers().iter().map(DenseLayer::weight_range).collect(),
            num_params: mlp.num_params(),
            policy,
        })
    }

    /// The masks, one per layer.
    pub fn masks(&self) -> &[Option<Mask>] {
        &self.masks
    }

    /// The policy.
    pub fn policy(&self) -> MaskPolicy {
        self.policy
    }

    /// Overall weight density: kept weights over all weights, unmasked layers counting as
    /// dense (biases excluded).
    pub fn weight_density(&self) -> f64 {
        let (kept, total) =
            self.masks
                .iter()
                .zip(&self.ranges)
                .fold((0usize, 0usize), |(k, t), (m, r)| {
                    let n = r.len();
                    (k + m.as_ref().map_or(n, Mask::count_ones), t + n)
                });
        kept as f64 / total.max(1) as f64
    }

    /// Zeroes pruned entries of a flat vector in the parameter layout (parameters, gradients,
    /// optimiser state).
    pub fn apply_to_flat<F: Float>(&self, values: &mut Array1<F>) -> Result<()> {
        if values.len() != self.num_params {
            return Err(Error::shape(
                "values",
                format!("length {}", self.num_params),
                format!("length {}", values.len()),
            ));
        }
        let flat = values
            .as_slice_mut()
            .ok_or_else(|| Error::invalid("values", "non-contiguous", "must be contiguous"))?;
        for (mask, range) in self.masks.iter().zip(&self.ranges) {
            if let Some(m) = mask {
                m.apply(&mut flat[range.clone()])?;
            }
        }
        Ok(())
    }

    /// `w ← w ⊙ m` on the network's parameters.
    pub fn apply_to_params<F: Float>(&self, mlp: &mut Mlp<F>) -> Result<()> {
        if mlp.num_params() != self.num_params {
            return Err(Error::shape(
                "mlp",
                format!("{} parameters", self.num_params),
                format!("{} parameters", mlp.num_params()),
            ));
        }
        let mut params = mlp.params_mut();
        for (mask, range) in self.masks.iter().zip(&self.ranges) {
            if let Some(m) = mask {
                let mut slot = params.slice_axis_mut(Axis(0), Slice::from(range.clone()));
                let flat = slot
                    .as_slice_mut()
                    .expect("parameter slices are contiguous");
                m.apply(flat)?;
            }
        }
        Ok(())
    }
}

/// Optimiser + schedule + optional masks: one call per training step.
#[derive(Debug, Clone)]
pub struct Trainer<F> {
    optimizer: Optimizer<F>,
    schedule: LrSchedule,
    masks: Option<MaskSet>,
    step: usize,
    /// Activations and gradients reused from step to step (a step allocates nothing of the
    /// network's size after the first).
    buffers: StepBuffers<F>,
    grad: Array1<F>,
}

impl<F: Float> Trainer<F> {
    /// A trainer for `mlp`; masks (if any) are applied to the parameters right away.
    pub fn new(
        mlp: &mut Mlp<F>,
        optimizer: OptimizerConfig,
        schedule: LrSchedule,
        masks: Option<MaskSet>,
    ) -> Result<Self> {
        let optimizer = Optimizer::new(optimizer, mlp)?;
        if let Some(m) = &masks {
            m.apply_to_params(mlp)?;
        }
        Ok(Self {
            optimizer,
            schedule,
            masks,
            step: 0,
            buffers: StepBuffers::default(),
            grad: Array1::zeros(0),
        })
    }

    /// The optimiser (for per-layer multipliers and state).
    pub fn optimizer_mut(&mut self) -> &mut Optimizer<F> {
        &mut self.optimizer
    }

    /// The optimiser.
    pub fn optimizer(&self) -> &Optimizer<F> {
        &self.optimizer
    }

    /// Steps taken.
    pub fn steps(&self) -> usize {
        self.step
    }

    /// The learning rate the next step uses.
    pub fn current_lr(&self) -> f64 {
        self.schedule.lr_at(self.step)
    }

    /// Forward, backward and update on one batch; returns the loss before the update.
    pub fn step(
        &mut self,
        mlp: &mut Mlp<F>,
        x: ArrayView2<'_, F>,
        targets: &Targets<'_, F>,
        loss: Loss,
    ) -> Result<F> {
        let mut grad = std::mem::take(&mut self.grad);
        let result = mlp
            .loss_and_gradient_into(x, targets, loss, &mut self.buffers, &mut grad)
            .and_then(|value| self.apply_gradient(mlp, &mut grad).map(|()| value));
        self.grad = grad;
        result
    }

    /// An update from a gradient computed elsewhere (e.g. through
    /// [`Mlp::backward_from_logit_grad`] with an external loss).
    pub fn step_with_gradient(&mut self, mlp: &mut Mlp<F>, mut grad: Array1<F>) -> Result<()> {
        self.apply_gradient(mlp, &mut grad)
    }

    fn apply_gradient(&mut self, mlp: &mut Mlp<F>, grad: &mut Array1<F>) -> Result<()> {
        if let Some(m) = &self.masks {
            if m.policy.mask_gradients {
                m.apply_to_flat(grad)?;
            }
        }
        let lr = self.schedule.lr_at(self.step);
        self.optimizer.step(mlp, grad.view(), lr)?;
        if let Some(m) = &self.masks {
            m.apply_to_params(mlp)?;
            if m.policy.mask_optimizer_state {
                for state in self.optimizer.state_mut() {
                    m.apply_to_flat(state)?;
                }
            }
        }
        self.step += 1;
        Ok(())
    }

    /// The same as [`Trainer::step_with_gradient`] from a gradient view.
    pub fn step_with_gradient_view(
        &mut self,
        mlp: &mut Mlp<F>,
        grad: ArrayView1<'_, F>,
    ) -> Result<()> {
        self.step_with_gradient(mlp, grad.to_owned())
    }
}
