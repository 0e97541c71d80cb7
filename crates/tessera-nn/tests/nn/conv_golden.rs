//! Golden values for a small conv net from PyTorch on the CPU in float64
//! (`tests/make_conv_fixtures.py`): training-mode forward, loss, every gradient, the running
//! statistics, an eval-mode forward, and one SGD, Adam and AdamW step; plus named
//! safetensors checkpoints.

use approx::assert_abs_diff_eq;
use ndarray::{Array1, Array2, Array4, ArrayD};
use tessera_nn::layers::{BatchNorm, Conv2d, Dense, GlobalAvgPool, MaxPool2d, Relu};
use tessera_nn::{
    AdamConfig, Loss, Mode, Optimizer, OptimizerConfig, ParamGroups, Sequential, SgdConfig, Targets,
};
use tessera_testing::assert_all_close;

fn load<D: ndarray::Dimension>(name: &str) -> ndarray::Array<f64, D> {
    tessera_testing::fixture!(&format!("conv/{name}.npy"))
}

fn network() -> Sequential<f64> {
    let mut net = Sequential::new(&[3, 8, 8], 0)
        .unwrap()
        .push("conv1", Conv2d::square(3, 4, 3, 1, 1).unwrap())
        .unwrap()
        .push("bn", BatchNorm::new(4).unwrap())
        .unwrap()
        .push("relu", Relu)
        .unwrap()
        .push("pool", MaxPool2d::square(2).unwrap())
        .unwrap()
        .push("conv2", Conv2d::square(4, 6, 3, 2, 1).unwrap())
        .unwrap()
        .push("relu2", Relu)
        .unwrap()
        .push("gap", GlobalAvgPool)
        .unwrap()
        .push("fc", Dense::new(6, 3).unwrap())
        .unwrap();
    net.set_params(load::<ndarray::Ix1>("params").view())
        .unwrap();
    net.set_buffers(load::<ndarray::Ix1>("buffers").view())
        .unwrap();
    net
}

fn data() -> (ArrayD<f64>, Vec<usize>) {
    let x: Array4<f64> = load("x");
    let labels: Array1<i64> = tessera_testing::fixture!("conv/labels.npy");
    (x.into_dyn(), labels.iter().map(|&l| l as usize).collect())
}

#[test]
fn forward_loss_gradients_and_running_statistics_match_pytorch() {
    let mut net = network();
    let (x, labels) = data();
    let targets = Targets::Hard(&labels);
    let trace = net.forward(x.view(), Mode::Train).unwrap();
    let logits: Array2<f64> = load("logits_train");
    assert_all_close(
        &trace.logits().unwrap(),
        &logits,
        1e-10,
        1e-12,
        "train logits",
    );
    let (loss, g) = tessera_nn::loss_and_logit_gradient(
        trace.logits().unwrap(),
        &targets,
        Loss::SoftmaxCrossEntropy,
    )
    .unwrap();
    let want_loss: ndarray::Array0<f64> = load("loss");
    assert_abs_diff_eq!(loss, want_loss[()], epsilon = 1e-12);
    let grad = net.backward(&trace, g.into_dyn().view()).unwrap();
    let want: Array1<f64> = load("grad");
    assert_all_close(&grad, &want, 1e-9, 1e-12, "gradient");
    let buffers: Array1<f64> = load("buffers_after");
    assert_all_close(&net.buffers(), &buffers, 1e-12, 1e-14, "running statistics");
    let eval: Array2<f64> = load("logits_eval");
    let out = net.predict(x.view()).unwrap();
    assert_all_close(&out, &eval.into_dyn(), 1e-10, 1e-12, "eval logits");
}

fn one_step(config: OptimizerConfig, lr: f64) -> Array1<f64> {
    let mut net = network();
    let (x, labels) = data();
    let (_, grad) = net
        .loss_and_gradient(
            x.view(),
            &Targets::Hard(&labels),
            Loss::SoftmaxCrossEntropy,
            Mode::Train,
        )
        .unwrap();
    let mut opt = Optimizer::for_sequential(config, &net).unwrap();
    opt.step_sequential(&mut net, grad.view(), lr).unwrap();
    net.params().to_owned()
}

#[test]
fn one_optimiser_step_matches_pytorch() {
    let sgd = one_step(
        OptimizerConfig::Sgd(SgdConfig {
            momentum: 0.9,
            nesterov: false,
            weight_decay: 1e-3,
        }),
        0.1,
    );
    assert_all_close(
        &sgd,
        &load::<ndarray::Ix1>("sgd_params"),
        1e-10,
        1e-12,
        "SGD step",
    );
    let adam = one_step(
        OptimizerConfig::Adam(AdamConfig {
            weight_decay: 1e-3,
            ..AdamConfig::default()
        }),
        0.01,
    );
    // Adam's first step is about lr·g/|g|: entries with tiny gradients amplify rounding.
    assert_all_close(
        &adam,
        &load::<ndarray::Ix1>("adam_params"),
        1e-8,
        1e-10,
        "Adam step",
    );
    let adamw = one_step(
        OptimizerConfig::Adam(AdamConfig {
            weight_decay: 0.1,
            decoupled: true,
            ..AdamConfig::default()
        }),
        0.01,
    );
    assert_all_close(
        &adamw,
        &load::<ndarray::Ix1>("adamw_params"),
        1e-8,
        1e-10,
        "AdamW step",
    );
}

#[test]
fn frozen_groups_and_group_multipliers_scale_the_step() {
    let mut net = network();
    let (x, labels) = data();
    let (_, grad) = net
        .loss_and_gradient(
            x.view(),
            &Targets::Hard(&labels),
            Loss::SoftmaxCrossEntropy,
            Mode::Eval,
        )
        .unwrap();
    let groups = ParamGroups::of(&net);
    let mut opt = Optimizer::for_sequential(OptimizerConfig::sgd(), &net).unwrap();
    opt.freeze(&groups, "conv1").unwrap();
    opt.set_group_lr_multiplier(&groups, "fc.weight", 0.5)
        .unwrap();
    assert!(opt.freeze(&groups, "conv3").is_err());
    let before = net.params().to_owned();
    opt.step_sequential(&mut net, grad.view(), 0.1).unwrap();
    for e in groups.entries() {
        for i in e.range.clone() {
            let want = match e.name.as_str() {
                "conv1.weight" | "conv1.bias" => before[i],
                "fc.weight" => before[i] - 0.05 * grad[i],
                _ => before[i] - 0.1 * grad[i],
            };
            assert_abs_diff_eq!(net.params()[i], want, epsilon = 1e-15);
        }
    }
    // Training only the batch-norm affine parameters (EcoTTA-style adaptation).
    let mut opt = Optimizer::for_sequential(OptimizerConfig::sgd(), &net).unwrap();
    opt.train_only(&groups, &["bn"]).unwrap();
    let before = net.params().to_owned();
    opt.step_sequential(&mut net, grad.view(), 0.1).unwrap();
    let changed: Vec<&str> = groups
        .entries()
        .iter()
        .filter(|e| e.range.clone().any(|i| net.params()[i] != before[i]))
        .map(|e| e.name.as_str())
        .collect();
    assert_eq!(changed, ["bn.weight", "bn.bias"]);
}

#[test]
fn safetensors_round_trip_by_name() {
    let mut net = network();
    let (x, _) = data();
    net.forward(x.view(), Mode::Train).unwrap();
    let bytes = net.to_safetensors().unwrap();
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<String> = tensors.names().into_iter().map(String::from).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "bn.bias",
            "bn.running_mean",
            "bn.running_var",
            "bn.weight",
            "conv1.bias",
            "conv1.weight",
            "conv2.bias",
            "conv2.weight",
            "fc.bias",
            "fc.weight"
        ]
    );
    assert_eq!(
        tensors.tensor("conv1.weight").unwrap().shape(),
        [4, 3, 3, 3]
    );
    let mut other = Sequential::<f64>::new(&[3, 8, 8], 9)
        .unwrap()
        .push("conv1", Conv2d::square(3, 4, 3, 1, 1).unwrap())
        .unwrap()
        .push("bn", BatchNorm::new(4).unwrap())
        .unwrap()
        .push("relu", Relu)
        .unwrap()
        .push("pool", MaxPool2d::square(2).unwrap())
        .unwrap()
        .push("conv2", Conv2d::square(4, 6, 3, 2, 1).unwrap())
        .unwrap()
        .push("relu2", Relu)
        .unwrap()
        .push("gap", GlobalAvgPool)
        .unwrap()
        .push("fc", Dense::new(6, 3).unwrap())
        .unwrap();
    other.load_safetensors(&bytes).unwrap();
    assert_eq!(other.params(), net.params());
    assert_eq!(other.buffers(), net.buffers());
    // A model with another shape refuses the checkpoint and stays unchanged.
    let mut wrong = Sequential::<f64>::new(&[3, 8, 8], 0)
        .unwrap()
        .push("conv1", Conv2d::square(3, 5, 3, 1, 1).unwrap())
        .unwrap();
    let before = wrong.params().to_owned();
    assert!(wrong.load_safetensors(&bytes).is_err());
    assert_eq!(wrong.params(), before.view());
    // f32 models read f64 checkpoints.
    let mut small = Sequential::<f32>::new(&[6], 0)
        .unwrap()
        .push("fc", Dense::new(6, 3).unwrap())
        .unwrap();
    small.load_safetensors(&bytes).unwrap();
    let fc = net.param("fc.weight").unwrap();
    for (&a, &b) in small.param("fc.weight").unwrap().iter().zip(fc.iter()) {
        assert_abs_diff_eq!(a as f64, b, epsilon = 1e-6);
    }
    assert!(net.load_safetensors(b"not a checkpoint").is_err());
}
