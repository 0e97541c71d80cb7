//! `Sequential`, `Chain` and `Residual`: whole-network gradients against finite differences,
//! hooks on intermediate activations, names and layouts, agreement with `Mlp`, errors.

use approx::assert_abs_diff_eq;
use ndarray::{Array2, ArrayD, ArrayViewD, IxDyn};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tessera_nn::layers::{
    BatchNorm, Conv2d, Dense, Dropout, Flatten, Gelu, GlobalAvgPool, MaxPool2d, Relu, Tanh,
};
use tessera_nn::{
    Chain, Context, Error, Loss, Mlp, MlpConfig, Mode, Residual, Sequential, Targets,
};
use tessera_testing::central_difference_gradient;

use crate::layers::random_tensor;

fn max_rel_err(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs() / (1.0 + x.abs().max(y.abs())))
        .fold(0.0, f64::max)
}

/// conv → BN → ReLU → residual(conv → BN → ReLU → conv, s = 0.2, ReLU after the sum,
/// projection shortcut) → max-pool → GAP → dense: every kind of composition.
pub(crate) fn small_cnn(seed: u64) -> Sequential<f64> {
    let block = Residual::new(
        Chain::new(&[3, 4, 4])
            .unwrap()
            .push("conv1", Conv2d::square(3, 4, 3, 1, 1).unwrap())
            .unwrap()
            .push("bn", BatchNorm::new(4).unwrap())
            .unwrap()
            .push("act", Gelu)
            .unwrap()
            .push("conv2", Conv2d::square(4, 4, 1, 1, 0).unwrap())
            .unwrap(),
        0.2,
    )
    .unwrap()
    .with_shortcut(
        Chain::new(&[3, 4, 4])
            .unwrap()
            .push("proj", Conv2d::square(3, 4, 1, 1, 0).unwrap())
            .unwrap(),
    )
    .unwrap()
    .with_activation(Relu)
    .unwrap();
    Sequential::new(&[2, 4, 4], seed)
        .unwrap()
        .push("conv", Conv2d::square(2, 3, 3, 1, 1).unwrap())
        .unwrap()
        .push("bn", BatchNorm::new(3).unwrap())
        .unwrap()
        .push("relu", Relu)
        .unwrap()
        .push("block", block)
        .unwrap()
        .push("pool", MaxPool2d::square(2).unwrap())
        .unwrap()
        .push("gap", GlobalAvgPool)
        .unwrap()
        .push("fc", Dense::new(4, 3).unwrap())
        .unwrap()
}

fn perturb_buffers(model: &mut Sequential<f64>, rng: &mut ChaCha8Rng) {
    for b in model.buffers_mut().iter_mut() {
        *b += rng.random_range(0.1..0.4);
    }
}

#[test]
fn names_and_layouts_follow_the_layers() {
    let model = small_cnn(0);
    let names: Vec<String> = model
        .parameter_layout()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(
        names,
        [
            "conv.weight",
            "conv.bias",
            "bn.weight",
            "bn.bias",
            "block.conv1.weight",
            "block.conv1.bias",
            "block.bn.weight",
            "block.bn.bias",
            "block.conv2.weight",
            "block.conv2.bias",
            "block.shortcut.proj.weight",
            "block.shortcut.proj.bias",
            "fc.weight",
            "fc.bias",
        ]
    );
    let layout = model.parameter_layout();
    assert_eq!(layout[0].shape, [3, 2, 3, 3]);
    assert_eq!(layout.last().unwrap().range.end, model.num_params());
    let buffers: Vec<String> = model.buffer_layout().into_iter().map(|e| e.name).collect();
    assert_eq!(
        buffers,
        [
            "bn.running_mean",
            "bn.running_var",
            "block.bn.running_mean",
            "block.bn.running_var"
        ]
    );
    assert_eq!(model.output_shape(), [3]);
    assert_eq!(model.param("fc.weight").unwrap().shape(), [3, 4]);
    // PyTorch's default init: U(±1/√fan_in) for weights and biases; BN γ = 1, β = 0.
    let bound = 1.0 / (2.0f64 * 9.0).sqrt();
    assert!(model
        .param("conv.weight")
        .unwrap()
        .iter()
        .all(|w| w.abs() <= bound));
    assert!(model.param("bn.weight").unwrap().iter().all(|&g| g == 1.0));
    assert!(model.param("bn.bias").unwrap().iter().all(|&b| b == 0.0));
    // Same seed, same parameters.
    assert_eq!(small_cnn(0).params(), model.params());
    assert_ne!(small_cnn(1).params(), model.params());
}

fn loss_gradient_check(mode: Mode) {
    let mut model = small_cnn(3);
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    perturb_buffers(&mut model, &mut rng);
    for p in model.params_mut().iter_mut() {
        *p += rng.random_range(-0.2..0.2);
    }
    let x = random_tensor(&[2, 2, 4, 4], &mut rng);
    let labels = [0usize, 2];
    let targets = Targets::Hard(&labels);
    let ctx = match mode {
        Mode::Train => Context::train(11),
        Mode::Eval => Context::eval(),
    };
    let buffers: Vec<f64> = model.buffers().to_vec();
    let loss_at = |p: &[f64]| -> f64 {
        let mut b = buffers.clone();
        let trace = model.forward_with(p, &mut b, x.view(), ctx).unwrap();
        tessera_nn::loss_and_logit_gradient(
            trace.logits().unwrap(),
            &targets,
            Loss::SoftmaxCrossEntropy,
        )
        .unwrap()
        .0
    };
    let params: Vec<f64> = model.params().to_vec();
    let mut b = buffers.clone();
    let trace = model.forward_with(&params, &mut b, x.view(), ctx).unwrap();
    let (_, g) = tessera_nn::loss_and_logit_gradient(
        trace.logits().unwrap(),
        &targets,
        Loss::SoftmaxCrossEntropy,
    )
    .unwrap();
    let grads = model
        .backward_at(&params, &trace, Some(g.into_dyn().view()), &[], true, true)
        .unwrap();
    let grad = grads.params.unwrap();
    let fd = central_difference_gradient(loss_at, &params, 1e-5);
    let e = max_rel_err(grad.as_slice().unwrap(), &fd);
    assert!(e < 1e-6, "{mode:?}: parameter gradient off by {e:e}");
    // Input gradient.
    let x_flat: Vec<f64> = x.iter().copied().collect();
    let fd_x = central_difference_gradient(
        |xs| {
            let xv = ArrayViewD::from_shape(x.raw_dim(), xs).unwrap();
            let mut b = buffers.clone();
            let trace = model.forward_with(&params, &mut b, xv, ctx).unwrap();
            tessera_nn::loss_and_logit_gradient(
                trace.logits().unwrap(),
                &targets,
                Loss::SoftmaxCrossEntropy,
            )
            .unwrap()
            .0
        },
        &x_flat,
        1e-5,
    );
    let dx: Vec<f64> = grads.input.unwrap().iter().copied().collect();
    let e = max_rel_err(&dx, &fd_x);
    assert!(e < 1e-6, "{mode:?}: input gradient off by {e:e}");
}

#[test]
fn cnn_gradients_match_finite_differences_in_train_mode() {
    loss_gradient_check(Mode::Train);
}

#[test]
fn cnn_gradients_match_finite_differences_in_eval_mode() {
    loss_gradient_check(Mode::Eval);
}

#[test]
fn hooks_add_losses_on_intermediate_activations() {
    let model = Sequential::new(&[4], 5)
        .unwrap()
        .push("fc1", Dense::new(4, 6).unwrap())
        .unwrap()
        .push("act", Tanh)
        .unwrap()
        .push("fc2", Dense::new(6, 3).unwrap())
        .unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let x = random_tensor(&[5, 4], &mut rng);
    let c = random_tensor(&[5, 6], &mut rng);
    let labels = [0usize, 1, 2, 1, 0];
    let targets = Targets::Hard(&labels);
    // L = CE(logits) + Σ c ⊙ tanh-activation.
    let total = |p: &[f64]| -> f64 {
        let trace = model
            .forward_with(p, &mut [], x.view(), Context::eval())
            .unwrap();
        let ce = tessera_nn::loss_and_logit_gradient(
            trace.logits().unwrap(),
            &targets,
            Loss::SoftmaxCrossEntropy,
        )
        .unwrap()
        .0;
        ce + (&trace.get("act").unwrap() * &c).sum()
    };
    let trace = model.forward_eval(x.view()).unwrap();
    let (_, g) = tessera_nn::loss_and_logit_gradient(
        trace.logits().unwrap(),
        &targets,
        Loss::SoftmaxCrossEntropy,
    )
    .unwrap();
    let grads = model
        .backward_with(
            &trace,
            Some(g.into_dyn().view()),
            &[("act", c.view())],
            true,
            false,
        )
        .unwrap();
    let params: Vec<f64> = model.params().to_vec();
    let fd = central_difference_gradient(total, &params, 1e-6);
    let e = max_rel_err(grads.params.unwrap().as_slice().unwrap(), &fd);
    assert!(e < 1e-7, "hooked gradient off by {e:e}");
    // A hook alone (no output gradient) only reaches the layers below it.
    let only = model
        .backward_with(&trace, None, &[("act", c.view())], true, false)
        .unwrap()
        .params
        .unwrap();
    let fc2 = &model.parameter_layout()[2].range;
    assert!(only.as_slice().unwrap()[fc2.start..]
        .iter()
        .all(|&g| g == 0.0));
    assert!(only.iter().any(|&g| g != 0.0));
    // Unknown hook names and wrong shapes are errors.
    assert!(model
        .backward_with(&trace, None, &[("nope", c.view())], true, false)
        .is_err());
    assert!(model
        .backward_with(&trace, None, &[("fc2", c.view())], true, false)
        .is_err());
}

#[test]
fn sequential_dense_relu_equals_mlp() {
    let mlp = Mlp::<f64>::new(MlpConfig::new(5, vec![7, 6], 4), 8).unwrap();
    let mut model = Sequential::new(&[5], 0)
        .unwrap()
        .push("fc1", Dense::new(5, 7).unwrap())
        .unwrap()
        .push("relu1", Relu)
        .unwrap()
        .push("fc2", Dense::new(7, 6).unwrap())
        .unwrap()
        .push("relu2", Relu)
        .unwrap()
        .push("fc3", Dense::new(6, 4).unwrap())
        .unwrap();
    // Both use the flat layout W (row-major [out, in]) then b, layer by layer.
    model.set_params(mlp.params()).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let x: Array2<f64> = Array2::from_shape_fn((6, 5), |_| rng.random_range(-1.0..1.0));
    let labels = [0usize, 1, 2, 3, 1, 0];
    let targets = Targets::Hard(&labels);
    let logits = model.predict(x.view().into_dyn()).unwrap();
    let want = mlp.predict(x.view()).unwrap();
    for (a, b) in logits.iter().zip(want.iter()) {
        assert_abs_diff_eq!(*a, *b, epsilon = 1e-12);
    }
    let (l1, g1) = model
        .loss_and_gradient(
            x.view().into_dyn(),
            &targets,
            Loss::SoftmaxCrossEntropy,
            Mode::Eval,
        )
        .unwrap();
    let (l2, g2) = mlp
        .loss_and_gradient(x.view(), &targets, Loss::SoftmaxCrossEntropy)
        .unwrap();
    assert_abs_diff_eq!(l1, l2, epsilon = 1e-12);
    for (a, b) in g1.iter().zip(g2.iter()) {
        assert_abs_diff_eq!(*a, *b, epsilon = 1e-12);
    }
    // Input gradients agree with Mlp's.
    let (_, dx) = model
        .input_gradient(x.view().into_dyn(), &targets, Loss::SoftmaxCrossEntropy)
        .unwrap();
    let trace = mlp.forward(x.view()).unwrap();
    let (_, lg) =
        tessera_nn::loss_and_logit_gradient(trace.logits(), &targets, Loss::SoftmaxCrossEntropy)
            .unwrap();
    let (_, want_dx) = mlp.backward_with_input_grad(&trace, lg.view()).unwrap();
    for (a, b) in dx.iter().zip(want_dx.iter()) {
        assert_abs_diff_eq!(*a, *b, epsilon = 1e-12);
    }
}

#[test]
fn training_passes_update_running_statistics_and_redraw_dropout() {
    let mut model = Sequential::<f64>::new(&[3, 4, 4], 1)
        .unwrap()
        .push("bn", BatchNorm::new(3).unwrap())
        .unwrap()
        .push("drop", Dropout::new(0.5).unwrap())
        .unwrap()
        .push("flat", Flatten)
        .unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let x = random_tensor(&[2, 3, 4, 4], &mut rng).mapv(|v| v + 3.0);
    let before = model.buffers().to_owned();
    let t_eval = model.forward(x.view(), Mode::Eval).unwrap();
    assert_eq!(model.buffers(), before.view());
    let t1 = model.forward(x.view(), Mode::Train).unwrap();
    assert_ne!(model.buffers(), before.view());
    // Running means moved a tenth of the way to the batch means (about 3).
    assert!(model
        .buffers()
        .iter()
        .take(3)
        .all(|&m| (0.2..0.4).contains(&m)));
    let t2 = model.forward(x.view(), Mode::Train).unwrap();
    assert_ne!(
        t1.output(),
        t2.output(),
        "dropout masks differ between passes"
    );
    assert_eq!(t_eval.output().shape(), [2, 48]);
    assert_eq!(t1.mode(), Mode::Train);
    // Trace accessors.
    assert_eq!(t1.len(), 3);
    assert_eq!(t1.names(), ["bn", "drop", "flat"]);
    assert_eq!(t1.get("bn").unwrap().shape(), [2, 3, 4, 4]);
}

#[test]
fn building_and_running_reject_bad_input() {
    let name_of = |e: Error| match e {
        Error::Input(i) => i.name(),
        other => panic!("expected an input error, got {other}"),
    };
    let model = Sequential::<f64>::new(&[4], 0)
        .unwrap()
        .push("fc", Dense::new(4, 3).unwrap())
        .unwrap();
    // Names: duplicate, dotted, empty.
    assert_eq!(name_of(model.clone().push("fc", Relu).unwrap_err()), "name");
    assert_eq!(
        name_of(model.clone().push("a.b", Relu).unwrap_err()),
        "name"
    );
    assert_eq!(name_of(model.clone().push("", Relu).unwrap_err()), "name");
    // A layer that does not accept the current shape.
    assert_eq!(
        name_of(
            model
                .clone()
                .push("fc2", Dense::new(5, 2).unwrap())
                .unwrap_err()
        ),
        "input"
    );
    assert_eq!(
        name_of(
            model
                .clone()
                .push("bn", BatchNorm::new(5).unwrap())
                .unwrap_err()
        ),
        "input"
    );
    // Wrong input shape, empty batch, non-finite input.
    let bad = ArrayD::<f64>::zeros(IxDyn(&[2, 5]));
    assert_eq!(name_of(model.forward_eval(bad.view()).unwrap_err()), "x");
    let empty = ArrayD::<f64>::zeros(IxDyn(&[0, 4]));
    assert_eq!(name_of(model.forward_eval(empty.view()).unwrap_err()), "x");
    let mut nan = ArrayD::<f64>::zeros(IxDyn(&[2, 4]));
    nan[[1, 2]] = f64::NAN;
    assert_eq!(name_of(model.forward_eval(nan.view()).unwrap_err()), "x");
    // A residual branch that changes the shape needs a shortcut.
    let branch = Chain::<f64>::new(&[4])
        .unwrap()
        .push("fc", Dense::new(4, 3).unwrap())
        .unwrap();
    let block = Residual::new(branch, 0.1).unwrap();
    assert_eq!(
        name_of(model.clone().push("block", block).unwrap_err()),
        "branch"
    );
    let ok = Chain::<f64>::new(&[4])
        .unwrap()
        .push("fc", Dense::new(4, 4).unwrap())
        .unwrap();
    assert_eq!(
        name_of(Residual::new(ok, f64::NAN).unwrap_err()),
        "branch_scale"
    );
    // Train-mode BN on a batch of one through the model.
    let mut bn = Sequential::<f64>::new(&[4], 0)
        .unwrap()
        .push("bn", BatchNorm::new(4).unwrap())
        .unwrap();
    let one = ArrayD::<f64>::zeros(IxDyn(&[1, 4]));
    assert!(bn.forward(one.view(), Mode::Train).is_err());
    assert!(bn.forward(one.view(), Mode::Eval).is_ok());
    // Losses need (batch, classes) logits.
    let conv = Sequential::<f64>::new(&[1, 3, 3], 0)
        .unwrap()
        .push("conv", Conv2d::square(1, 2, 3, 1, 1).unwrap())
        .unwrap();
    let x = ArrayD::<f64>::zeros(IxDyn(&[2, 1, 3, 3]));
    assert_eq!(
        name_of(
            conv.loss(x.view(), &Targets::Hard(&[0, 1]), Loss::SoftmaxCrossEntropy)
                .unwrap_err()
        ),
        "output"
    );
}

/// Recycled storage (tessera_nn::storage) changes nothing: training steps on tensors large
/// enough to be recycled give bit-identical losses and gradients whether their buffers are
/// fresh or reused from the previous step, and the storage is bounded and releasable.
#[test]
fn recycled_storage_gives_identical_steps() {
    let model = || {
        Sequential::<f64>::new(&[3, 16, 16], 4)
            .unwrap()
            .push("conv", Conv2d::square(3, 8, 3, 1, 1).unwrap())
            .unwrap()
            .push("bn", BatchNorm::new(8).unwrap())
            .unwrap()
            .push("relu", Relu)
            .unwrap()
            .push("pool", MaxPool2d::square(2).unwrap())
            .unwrap()
            .push("gap", GlobalAvgPool)
            .unwrap()
            .push("fc", Dense::new(8, 3).unwrap())
            .unwrap()
    };
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let x = random_tensor(&[16, 3, 16, 16], &mut rng);
    let labels: Vec<usize> = (0..16).map(|i| i % 3).collect();
    let step = |net: &mut Sequential<f64>| {
        net.loss_and_gradient(
            x.view(),
            &Targets::Hard(&labels),
            Loss::SoftmaxCrossEntropy,
            Mode::Train,
        )
        .unwrap()
    };
    tessera_nn::release_recycled_storage();
    let (mut fresh, mut reused) = (model(), model());
    let first = step(&mut fresh);
    assert!(tessera_nn::recycled_storage_bytes() > 0);
    assert!(tessera_nn::recycled_storage_bytes() <= tessera_nn::storage::MAX_KEPT_BYTES);
    // `reused` runs on the buffers `fresh` gave back (holding stale values).
    let second = step(&mut reused);
    assert_eq!(first.0.to_bits(), second.0.to_bits());
    assert_eq!(first.1, second.1);
    assert_eq!(fresh.buffers(), reused.buffers());
    tessera_nn::release_recycled_storage();
    assert_eq!(tessera_nn::recycled_storage_bytes(), 0);
    let third = step(&mut model());
    assert_eq!(first.1, third.1);
}

/// Hooks reach layers inside containers: a loss on the output of a layer inside a residual
/// block's branch and on one inside its shortcut chain, with and without a loss on the logits,
/// against finite differences of the same losses read back with `output_of`.
#[test]
fn hooks_reach_layers_inside_residual_blocks() {
    let model = small_cnn(3);
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let x = random_tensor(&[3, 2, 4, 4], &mut rng);
    let labels = [0usize, 2, 1];
    let targets = Targets::Hard(&labels);
    let trace = model.forward_eval(x.view()).unwrap();
    let bn_shape = model
        .output_of(&trace, "block.bn")
        .unwrap()
        .shape()
        .to_vec();
    let proj_shape = model
        .output_of(&trace, "block.shortcut.proj")
        .unwrap()
        .shape()
        .to_vec();
    assert_eq!(bn_shape, [3, 4, 4, 4]);
    assert_eq!(
        model.output_of(&trace, "relu").unwrap(),
        trace.get("relu").unwrap()
    );
    let c_bn = random_tensor(&bn_shape, &mut rng);
    let c_proj = random_tensor(&proj_shape, &mut rng);
    let params: Vec<f64> = model.params().to_vec();
    let buffers: Vec<f64> = model.buffers().to_vec();
    for with_logits in [false, true] {
        // L = [CE(logits)] + Σ c_bn ⊙ block.bn + Σ c_proj ⊙ block.shortcut.proj.
        let total = |p: &[f64]| -> f64 {
            let mut b = buffers.clone();
            let t = model
                .forward_with(p, &mut b, x.view(), Context::eval())
                .unwrap();
            let inner = (&model.output_of(&t, "block.bn").unwrap() * &c_bn).sum()
                + (&model.output_of(&t, "block.shortcut.proj").unwrap() * &c_proj).sum();
            let ce = tessera_nn::loss_and_logit_gradient(
                t.logits().unwrap(),
                &targets,
                Loss::SoftmaxCrossEntropy,
            )
            .unwrap()
            .0;
            inner + if with_logits { ce } else { 0.0 }
        };
        let (_, g) = tessera_nn::loss_and_logit_gradient(
            trace.logits().unwrap(),
            &targets,
            Loss::SoftmaxCrossEntropy,
        )
        .unwrap();
        let g = g.into_dyn();
        let grads = model
            .backward_with(
                &trace,
                with_logits.then(|| g.view()),
                &[
                    ("block.bn", c_bn.view()),
                    ("block.shortcut.proj", c_proj.view()),
                ],
                true,
                true,
            )
            .unwrap();
        let fd = central_difference_gradient(total, &params, 1e-6);
        let e = max_rel_err(grads.params.unwrap().as_slice().unwrap(), &fd);
        assert!(
            e < 1e-7,
            "with_logits {with_logits}: hooked gradient off by {e:e}"
        );
    }
    // A hook inside the block leaves the layers above it untouched.
    let only = model
        .backward_with(&trace, None, &[("block.conv1", c_bn.view())], true, false)
        .unwrap()
        .params
        .unwrap();
    let layout = model.parameter_layout();
    let fc = layout.iter().find(|r| r.name == "fc.weight").unwrap();
    let conv2 = layout
        .iter()
        .find(|r| r.name == "block.conv2.weight")
        .unwrap();
    let conv1 = layout
        .iter()
        .find(|r| r.name == "block.conv1.weight")
        .unwrap();
    assert!(only.as_slice().unwrap()[fc.range.clone()]
        .iter()
        .all(|&g| g == 0.0));
    assert!(only.as_slice().unwrap()[conv2.range.clone()]
        .iter()
        .all(|&g| g == 0.0));
    assert!(only.as_slice().unwrap()[conv1.range.clone()]
        .iter()
        .any(|&g| g != 0.0));
    // Paths that name no layer, the block's own sum and shortcut, layers without inner
    // layers, and wrong shapes are errors naming the hooks.
    let name_of = |e: Error| match e {
        Error::Input(e) => e.name().to_string(),
        other => panic!("unexpected error {other}"),
    };
    for bad in [
        "block.nope",
        "block.activation",
        "block.shortcut",
        "fc.weight",
        "nope.conv1",
    ] {
        let err = model
            .backward_with(&trace, None, &[(bad, c_bn.view())], true, false)
            .unwrap_err();
        assert_eq!(name_of(err), "hooks", "{bad}");
        if bad != "block.activation" && bad != "block.shortcut" {
            assert!(model.output_of(&trace, bad).is_err(), "{bad}");
        }
    }
    let wrong = random_tensor(&[3, 4, 4, 5], &mut rng);
    let err = model
        .backward_with(&trace, None, &[("block.bn", wrong.view())], true, false)
        .unwrap_err();
    assert_eq!(name_of(err), "hooks");
}
