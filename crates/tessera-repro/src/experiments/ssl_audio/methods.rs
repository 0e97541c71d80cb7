//! The training recipes of `ssl-audio`: supervised (10% / 100%, ± mixup), Mean Teacher,
//! Deep Co-Training, MixMatch, ReMixMatch and FixMatch (± mixup where the paper has both),
//! each one optimiser step per mini-batch on the layer engine with the logit gradients of
//! tessera-ssl's losses.

use anyhow::{Context as _, Result};
use ndarray::{concatenate, s, Array2, Array4, ArrayView2, ArrayView4, Axis};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tessera_augment::{LambdaRule, LambdaScope, Mixup};
use tessera_nn::attack::fgsm_example;
use tessera_nn::layers::{BatchNorm, Conv2d, Dense, GlobalAvgPool, MaxPool2d, Relu};
use tessera_nn::{Loss, LrSchedule, Mode, Optimizer, OptimizerConfig, Sequential, Targets};
use tessera_ssl::{
    one_hot, soft_cross_entropy, DeepCoTraining, DeepCoTrainingConfig, FixMatch, FixMatchConfig,
    MeanTeacher, MeanTeacherConfig, MixMatch, MixMatchConfig, RampKind, RampUp, ReMixMatch,
    ReMixMatchConfig, SoftTargetLoss,
};

use super::augment::LogMelPool;
use super::features::Features;
use crate::harness::{evaluate_sequential, Examples};

/// One training recipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// Cross-entropy on the labelled 10% (`all = false`) or on every training label.
    Supervised {
        /// Every training label (the ceiling) instead of the labelled 10%.
        all: bool,
        /// Mixup of the labelled batch (α = 0.4).
        mixup: bool,
    },
    /// Mean Teacher (Tarvainen & Valpola 2017).
    MeanTeacher {
        /// Mixup of the labelled rows (α = 0.4).
        mixup: bool,
    },
    /// Deep Co-Training (Qiao et al. 2018).
    DeepCoTraining {
        /// Mixup of the labelled rows (α = 0.4).
        mixup: bool,
    },
    /// MixMatch (Berthelot et al. 2019); mixup is part of it.
    MixMatch,
    /// ReMixMatch (Berthelot et al. 2020); mixup is part of it.
    ReMixMatch,
    /// FixMatch (Sohn et al. 2020).
    FixMatch {
        /// Mixup of the labelled batch and of the confident strong views (α = 0.75, λ' =
        /// max(λ, 1 − λ)).
        mixup: bool,
    },
}

impl Method {
    /// Every recipe, in table order.
    pub const ALL: [Method; 12] = [
        Method::Supervised {
            all: false,
            mixup: false,
        },
        Method::Supervised {
            all: false,
            mixup: true,
        },
        Method::MeanTeacher { mixup: false },
        Method::MeanTeacher { mixup: true },
        Method::DeepCoTraining { mixup: false },
        Method::DeepCoTraining { mixup: true },
        Method::MixMatch,
        Method::ReMixMatch,
        Method::FixMatch { mixup: false },
        Method::FixMatch { mixup: true },
        Method::Supervised {
            all: true,
            mixup: false,
        },
        Method::Supervised {
            all: true,
            mixup: true,
        },
    ];

    /// The row label of the table (the paper's abbreviations).
    pub fn label(self) -> &'static str {
        match self {
            Method::Supervised {
                all: false,
                mixup: false,
            } => "Supervised 10%",
            Method::Supervised {
                all: false,
                mixup: true,
            } => "Supervised 10% + mixup",
            Method::Supervised {
                all: true,
                mixup: false,
            } => "Supervised 100%",
            Method::Supervised {
                all: true,
                mixup: true,
            } => "Supervised 100% + mixup",
            Method::MeanTeacher { mixup: false } => "MT",
            Method::MeanTeacher { mixup: true } => "MT + mixup",
            Method::DeepCoTraining { mixup: false } => "DCT",
            Method::DeepCoTraining { mixup: true } => "DCT + mixup",
            Method::MixMatch => "MM",
            Method::ReMixMatch => "RMM",
            Method::FixMatch { mixup: false } => "FM",
            Method::FixMatch { mixup: true } => "FM + mixup",
        }
    }

    /// Whether it uses the unlabelled 90%.
    pub fn is_ssl(self) -> bool {
        !matches!(self, Method::Supervised { .. })
    }

    /// Whether mixup is added to (or, for MM/RMM, part of) the recipe.
    pub fn has_mixup(self) -> bool {
        match self {
            Method::Supervised { mixup, .. }
            | Method::MeanTeacher { mixup }
            | Method::DeepCoTraining { mixup }
            | Method::FixMatch { mixup } => mixup,
            Method::MixMatch | Method::ReMixMatch => true,
        }
    }

    /// The same recipe without added mixup (MM and RMM are their own base).
    pub fn without_mixup(self) -> Method {
        match self {
            Method::Supervised { all, .. } => Method::Supervised { all, mixup: false },
            Method::MeanTeacher { .. } => Method::MeanTeacher { mixup: false },
            Method::DeepCoTraining { .. } => Method::DeepCoTraining { mixup: false },
            Method::FixMatch { .. } => Method::FixMatch { mixup: false },
            other => other,
        }
    }
}

/// Model and optimisation settings shared by every recipe.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    /// Channels of the first convolution (then ×2, ×4).
    pub width: usize,
    /// Optimiser steps.
    pub steps: usize,
    /// Labelled items per step.
    pub labelled_batch: usize,
    /// Unlabelled items per step.
    pub unlabelled_batch: usize,
    /// Adam learning rate (cosine decay to 0 after a short warm-up).
    pub lr: f64,
    /// Ramp-up of the unlabelled loss weights, as a fraction of `steps`.
    pub ramp_fraction: f64,
    /// Examples per evaluation chunk.
    pub eval_chunk: usize,
}

/// The miniature WideResNet/MobileNet: three conv–BN–ReLU stages (widths `w`, `2w`, `4w`,
/// max-pooling between), global average pooling, one dense classifier.
pub fn build_cnn(
    input: &[usize],
    width: usize,
    classes: usize,
    seed: u64,
) -> Result<Sequential<f32>> {
    let channels = input.first().copied().unwrap_or(1);
    let (w1, w2, w3) = (width, 2 * width, 4 * width);
    let model = Sequential::<f32>::new(input, seed)?
        .push(
            "conv1",
            Conv2d::square(channels, w1, 3, 1, 1)?.without_bias(),
        )?
        .push("bn1", BatchNorm::new(w1)?)?
        .push("relu1", Relu)?
        .push("pool1", MaxPool2d::new([2, 2], [2, 2], [0, 0])?)?
        .push("conv2", Conv2d::square(w1, w2, 3, 1, 1)?.without_bias())?
        .push("bn2", BatchNorm::new(w2)?)?
        .push("relu2", Relu)?
        .push("pool2", MaxPool2d::new([2, 2], [2, 2], [0, 0])?)?
        .push("conv3", Conv2d::square(w2, w3, 3, 1, 1)?.without_bias())?
        .push("bn3", BatchNorm::new(w3)?)?
        .push("relu3", Relu)?
        .push("gap", GlobalAvgPool)?
        .push("fc", Dense::new(w3, classes)?)?;
    Ok(model)
}

/// The result of one training run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunResult {
    /// Test error rate in [0, 1].
    pub error: f64,
    /// Mean training loss over the last tenth of the steps.
    pub final_loss: f64,
    /// FixMatch: mean share of confident pseudo-labels over the run (NaN otherwise).
    pub mask_rate: f64,
}

/// A sampler of mini-batches from a pool of indices: reshuffles after every pass.
struct Sampler {
    pool: Vec<usize>,
    order: Vec<usize>,
    cursor: usize,
}

impl Sampler {
    fn new(pool: &[usize]) -> Self {
        Sampler {
            pool: pool.to_vec(),
            order: Vec::new(),
            cursor: 0,
        }
    }

    fn next(&mut self, batch: usize, rng: &mut ChaCha8Rng) -> Vec<usize> {
        let mut out = Vec::with_capacity(batch);
        while out.len() < batch {
            if self.cursor >= self.order.len() {
                self.order = self.pool.clone();
                self.order.shuffle(rng);
                self.cursor = 0;
            }
            let take = (batch - out.len()).min(self.order.len() - self.cursor);
            out.extend_from_slice(&self.order[self.cursor..self.cursor + take]);
            self.cursor += take;
        }
        out
    }
}

/// A model with its optimiser.
struct Learner {
    model: Sequential<f32>,
    optimizer: Optimizer<f32>,
}

impl Learner {
    fn new(data: &Features, config: &TrainConfig, classes: usize, seed: u64) -> Result<Self> {
        let input = data.x_train.shape()[1..].to_vec();
        let model = build_cnn(&input, config.width, classes, seed)?;
        let optimizer = Optimizer::for_sequential(OptimizerConfig::adam(), &model)?;
        Ok(Learner { model, optimizer })
    }

    /// A training-mode forward pass of `x`; `loss` maps the logits to (value, ∂L/∂logits);
    /// then one optimiser step.
    fn step(
        &mut self,
        x: ArrayView4<'_, f32>,
        lr: f64,
        loss: impl FnOnce(ArrayView2<'_, f32>) -> Result<(f32, Array2<f32>)>,
    ) -> Result<f32> {
        let trace = self.model.forward(x.into_dyn(), Mode::Train)?;
        let (value, grad) = loss(trace.logits()?)?;
        let g = self.model.backward(&trace, grad.into_dyn().view())?;
        self.optimizer
            .step_sequential(&mut self.model, g.view(), lr)?;
        Ok(value)
    }

    fn logits(&self, x: ArrayView4<'_, f32>) -> Result<Array2<f32>> {
        Ok(self
            .model
            .predict(x.into_dyn())?
            .into_dimensionality::<ndarray::Ix2>()?)
    }
}

fn cat(parts: &[ArrayView4<'_, f32>]) -> Result<Array4<f32>> {
    Ok(concatenate(Axis(0), parts)?)
}

fn cat2(parts: &[ArrayView2<'_, f32>]) -> Result<Array2<f32>> {
    Ok(concatenate(Axis(0), parts)?)
}

/// `(x, y)` mixed with a shuffle of itself by `mixup`, or unchanged when `None`.
fn mixed_if(
    mixup: Option<&Mixup>,
    x: Array4<f32>,
    y: Array2<f32>,
    rng: &mut ChaCha8Rng,
) -> Result<(Array4<f32>, Array2<f32>)> {
    match mixup {
        Some(m) => {
            let mixed = m.mix_batch(x.view(), y.view(), rng)?;
            Ok((mixed.inputs, mixed.targets))
        }
        None => Ok((x, y)),
    }
}

/// Rows `a..b` of logits.
fn rows(z: ArrayView2<'_, f32>, a: usize, b: usize) -> ArrayView2<'_, f32> {
    z.slice_move(s![a..b, ..])
}

/// Trains `method` on `data` and returns its test error.
pub fn train(
    method: Method,
    data: &Features,
    config: &TrainConfig,
    seed: u64,
    progress: Option<&indicatif::ProgressBar>,
) -> Result<RunResult> {
    let classes = data.class_names.len();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let schedule = LrSchedule::new(
        config.lr,
        tessera_nn::Decay::Cosine {
            total_steps: config.steps.max(1),
            final_lr: 0.0,
        },
    )?;
    let weak = LogMelPool::weak(data.floor);
    let strong = LogMelPool::strong(data.floor);
    let ramp_len = (config.ramp_fraction * config.steps as f64).round() as u64;
    let sigmoid_ramp = RampUp::new(RampKind::Sigmoid, ramp_len);
    let linear_ramp = RampUp::new(RampKind::Linear, ramp_len);
    let supervised_mixup = Mixup::new(0.4, LambdaRule::Plain, LambdaScope::PerBatch)?;
    let match_mixup = Mixup::new(0.75, LambdaRule::MixMatch, LambdaScope::PerItem)?;

    let labelled_pool: Vec<usize> = match method {
        Method::Supervised { all: true, .. } => (0..data.y_train.len()).collect(),
        _ => data.labelled.clone(),
    };
    let mut labelled = Sampler::new(&labelled_pool);
    let mut unlabelled = Sampler::new(&data.unlabelled);
    let x = data.x_train.view();
    let take = |idx: &[usize]| x.select(Axis(0), idx);
    let targets_of = |idx: &[usize]| -> Result<Array2<f32>> {
        let labels: Vec<usize> = idx.iter().map(|&i| data.y_train[i]).collect();
        Ok(one_hot::<f32>(&labels, classes)?)
    };

    let mut learner = Learner::new(data, config, classes, seed ^ 0x5eed)?;
    // The second network of Deep Co-Training, or the teacher of Mean Teacher.
    let mut partner = match method {
        Method::DeepCoTraining { .. } => Some(Learner::new(data, config, classes, seed ^ 0xc0)?),
        _ => None,
    };
    let mean_teacher = MeanTeacher::new(MeanTeacherConfig::default())?;
    let mut ema = match method {
        Method::MeanTeacher { .. } => Some(mean_teacher.teacher(learner.model.params())?),
        _ => None,
    };
    let mut teacher_model = learner.model.clone();
    let dct = DeepCoTraining::new(DeepCoTrainingConfig::default())?;
    let mixmatch = MixMatch::new(MixMatchConfig {
        unlabelled_loss: SoftTargetLoss::SoftCrossEntropy,
        ..MixMatchConfig::default()
    })?;
    let mut remixmatch = ReMixMatch::<f32>::new(ReMixMatchConfig::default(), classes)?;
    let fixmatch = FixMatch::new(FixMatchConfig::default())?;

    let (bs, bu) = (config.labelled_batch, config.unlabelled_batch);
    let mut losses = Vec::with_capacity(config.steps);
    let mut mask_rates = Vec::new();
    for step in 0..config.steps {
        let lr = schedule.lr_at(step);
        let li = labelled.next(bs, &mut rng);
        let xs = take(&li);
        let ys = targets_of(&li)?;
        let loss = match method {
            Method::Supervised { mixup, .. } => {
                let (inputs, targets) =
                    mixed_if(mixup.then_some(&supervised_mixup), xs, ys, &mut rng)?;
                learner.step(inputs.view(), lr, |z| {
                    let l = soft_cross_entropy(z, targets.view())?;
                    Ok((l.value, l.grad))
                })?
            }
            Method::MeanTeacher { mixup } => {
                let ui = unlabelled.next(bu, &mut rng);
                let xu = take(&ui);
                let xs_student = if mixup {
                    xs.clone()
                } else {
                    weak.apply_batch(xs.view(), &mut rng)?
                };
                let (xs_in, ys_in) =
                    mixed_if(mixup.then_some(&supervised_mixup), xs_student, ys, &mut rng)?;
                let student_in =
                    cat(&[xs_in.view(), weak.apply_batch(xu.view(), &mut rng)?.view()])?;
                let teacher_in = cat(&[
                    if mixup {
                        xs_in.clone()
                    } else {
                        weak.apply_batch(xs.view(), &mut rng)?
                    }
                    .view(),
                    weak.apply_batch(xu.view(), &mut rng)?.view(),
                ])?;
                let teacher_logits = teacher_model
                    .predict(teacher_in.into_dyn().view())?
                    .into_dimensionality::<ndarray::Ix2>()?;
                let ramp = sigmoid_ramp.factor(step as u64);
                let value = learner.step(student_in.view(), lr, |z| {
                    let l = mean_teacher.loss(z, teacher_logits.view(), ys_in.view(), ramp)?;
                    Ok((l.value, l.grad_student))
                })?;
                let teacher = ema.as_mut().context("mean teacher state")?;
                teacher.update(learner.model.params())?;
                teacher_model.set_params(teacher.params())?;
                teacher_model.set_buffers(learner.model.buffers())?;
                value
            }
            Method::DeepCoTraining { mixup } => {
                let g = partner.as_mut().context("co-training partner")?;
                let ui = unlabelled.next(bu, &mut rng);
                let xu = take(&ui);
                let (xs_in, ys_in) =
                    mixed_if(mixup.then_some(&supervised_mixup), xs, ys, &mut rng)?;
                // FGSM examples of each network against its own predicted classes.
                let adversarial = |l: &Learner| -> Result<Array4<f32>> {
                    let own = crate::harness::predicted_classes(l.logits(xu.view())?.view());
                    let (_, grad) = l.model.input_gradient(
                        xu.view().into_dyn(),
                        &Targets::Hard(&own),
                        Loss::SoftmaxCrossEntropy,
                    )?;
                    let grad = grad.into_dimensionality::<ndarray::Ix4>()?;
                    Ok(fgsm_example(xu.view(), grad.view(), dct.config().epsilon)?)
                };
                let adv_f = adversarial(&learner)?;
                let adv_g = adversarial(g)?;
                let in_f = cat(&[xs_in.view(), xu.view(), adv_g.view()])?;
                let in_g = cat(&[xs_in.view(), xu.view(), adv_f.view()])?;
                let trace_f = learner.model.forward(in_f.into_dyn().view(), Mode::Train)?;
                let trace_g = g.model.forward(in_g.into_dyn().view(), Mode::Train)?;
                let (zf, zg) = (trace_f.logits()?, trace_g.logits()?);
                let (sf, uf, af) = (
                    rows(zf, 0, bs),
                    rows(zf, bs, bs + bu),
                    rows(zf, bs + bu, bs + 2 * bu),
                );
                let (sg, ug, ag) = (
                    rows(zg, 0, bs),
                    rows(zg, bs, bs + bu),
                    rows(zg, bs + bu, bs + 2 * bu),
                );
                let sup_f = soft_cross_entropy(sf, ys_in.view())?;
                let sup_g = soft_cross_entropy(sg, ys_in.view())?;
                let cot = dct.co_training(uf, ug)?;
                let dif = dct.view_difference(uf, ug, af, ag)?;
                let w = sigmoid_ramp.factor(step as u64) as f32;
                let grad_f = cat2(&[
                    sup_f.grad.view(),
                    ((&cot.grad_a + &dif.grad_f) * w).view(),
                    (&dif.grad_f_on_adv_g * w).view(),
                ])?;
                let grad_g = cat2(&[
                    sup_g.grad.view(),
                    ((&cot.grad_b + &dif.grad_g) * w).view(),
                    (&dif.grad_g_on_adv_f * w).view(),
                ])?;
                let pf = learner.model.backward(&trace_f, grad_f.into_dyn().view())?;
                let pg = g.model.backward(&trace_g, grad_g.into_dyn().view())?;
                learner
                    .optimizer
                    .step_sequential(&mut learner.model, pf.view(), lr)?;
                g.optimizer.step_sequential(&mut g.model, pg.view(), lr)?;
                sup_f.value + sup_g.value + w * (cot.value + dif.value)
            }
            Method::MixMatch => {
                let ui = unlabelled.next(bu, &mut rng);
                let xu = take(&ui);
                let xs_aug = weak.apply_batch(xs.view(), &mut rng)?;
                let v1 = weak.apply_batch(xu.view(), &mut rng)?;
                let v2 = weak.apply_batch(xu.view(), &mut rng)?;
                let (l1, l2) = (learner.logits(v1.view())?, learner.logits(v2.view())?);
                let batch = mixmatch.build_batch(
                    xs_aug.view(),
                    ys.view(),
                    &[v1.view(), v2.view()],
                    &[l1.view(), l2.view()],
                    &mut rng,
                )?;
                let input = cat(&[batch.labelled_inputs.view(), batch.unlabelled_inputs.view()])?;
                let ramp = linear_ramp.factor(step as u64);
                learner.step(input.view(), lr, |z| {
                    let n = z.nrows();
                    let l = mixmatch.loss(&batch, rows(z, 0, bs), rows(z, bs, n), ramp)?;
                    Ok((
                        l.value,
                        cat2(&[l.grad_labelled.view(), l.grad_unlabelled.view()])?,
                    ))
                })?
            }
            Method::ReMixMatch => {
                let ui = unlabelled.next(bu, &mut rng);
                let xu = take(&ui);
                let xs_aug = weak.apply_batch(xs.view(), &mut rng)?;
                let wu = weak.apply_batch(xu.view(), &mut rng)?;
                let s1 = strong.apply_batch(xu.view(), &mut rng)?;
                let s2 = strong.apply_batch(xu.view(), &mut rng)?;
                let weak_logits = learner.logits(wu.view())?;
                let batch = remixmatch.build_batch(
                    xs_aug.view(),
                    ys.view(),
                    wu.view(),
                    &[s1.view(), s2.view()],
                    weak_logits.view(),
                    &mut rng,
                )?;
                let nu = batch.unlabelled_inputs.shape()[0];
                let input = cat(&[
                    batch.labelled_inputs.view(),
                    batch.unlabelled_inputs.view(),
                    batch.strong_inputs.view(),
                ])?;
                let ramp = linear_ramp.factor(step as u64);
                learner.step(input.view(), lr, |z| {
                    let n = z.nrows();
                    let l = remixmatch.loss(
                        &batch,
                        rows(z, 0, bs),
                        rows(z, bs, bs + nu),
                        rows(z, bs + nu, n),
                        ramp,
                    )?;
                    let grad = cat2(&[
                        l.grad_labelled.view(),
                        l.grad_unlabelled.view(),
                        l.grad_strong.view(),
                    ])?;
                    Ok((l.value, grad))
                })?
            }
            Method::FixMatch { mixup } => {
                let ui = unlabelled.next(bu, &mut rng);
                let xu = take(&ui);
                let xs_aug = weak.apply_batch(xs.view(), &mut rng)?;
                let wu = weak.apply_batch(xu.view(), &mut rng)?;
                let su = strong.apply_batch(xu.view(), &mut rng)?;
                let weak_logits = learner.logits(wu.view())?;
                if mixup {
                    let pseudo = fixmatch.pseudo_labels(weak_logits.view())?;
                    mask_rates.push(f64::from(pseudo.mask_rate()));
                    let lab = match_mixup.mix_batch(xs_aug.view(), ys.view(), &mut rng)?;
                    let confident: Vec<usize> = (0..bu).filter(|&b| pseudo.mask[b] > 0.0).collect();
                    let unl = if confident.is_empty() {
                        None
                    } else {
                        let labels: Vec<usize> =
                            confident.iter().map(|&b| pseudo.labels[b]).collect();
                        let targets = one_hot::<f32>(&labels, classes)?;
                        let inputs = su.select(Axis(0), &confident);
                        Some(match_mixup.mix_batch(inputs.view(), targets.view(), &mut rng)?)
                    };
                    let input = match &unl {
                        Some(m) => cat(&[lab.inputs.view(), m.inputs.view()])?,
                        None => lab.inputs.clone(),
                    };
                    // The masked loss averages over the whole unlabelled batch.
                    let share = confident.len() as f32 / bu as f32;
                    let lambda_u = fixmatch.config().lambda_u as f32;
                    learner.step(input.view(), lr, |z| {
                        let n = z.nrows();
                        let ls = soft_cross_entropy(rows(z, 0, bs), lab.targets.view())?;
                        match &unl {
                            Some(m) => {
                                let lu = soft_cross_entropy(rows(z, bs, n), m.targets.view())?;
                                let w = share * lambda_u;
                                Ok((
                                    ls.value + w * lu.value,
                                    cat2(&[ls.grad.view(), (&lu.grad * w).view()])?,
                                ))
                            }
                            None => Ok((ls.value, ls.grad)),
                        }
                    })?
                } else {
                    let input = cat(&[xs_aug.view(), su.view()])?;
                    let mut rate = 0.0;
                    let value = learner.step(input.view(), lr, |z| {
                        let n = z.nrows();
                        let l = fixmatch.loss(
                            rows(z, 0, bs),
                            ys.view(),
                            weak_logits.view(),
                            rows(z, bs, n),
                        )?;
                        rate = f64::from(l.pseudo.mask_rate());
                        Ok((
                            l.value,
                            cat2(&[l.grad_labelled.view(), l.grad_strong.view()])?,
                        ))
                    })?;
                    mask_rates.push(rate);
                    value
                }
            }
        };
        losses.push(f64::from(loss));
        if let Some(bar) = progress {
            bar.inc(1);
        }
    }
    let (_, acc) = evaluate_sequential(
        &learner.model,
        &Examples {
            x: data.x_test.view().into_dyn(),
            labels: &data.y_test,
        },
        config.eval_chunk,
    )?;
    let tail = (losses.len() / 10).max(1);
    let final_loss = losses[losses.len().saturating_sub(tail)..]
        .iter()
        .sum::<f64>()
        / tail.min(losses.len()).max(1) as f64;
    let mask_rate = if mask_rates.is_empty() {
        f64::NAN
    } else {
        mask_rates.iter().sum::<f64>() / mask_rates.len() as f64
    };
    Ok(RunResult {
        error: 1.0 - acc,
        final_loss,
        mask_rate,
    })
}
