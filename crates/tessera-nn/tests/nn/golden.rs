//! Golden values from an independent numpy implementation (`tests/data/make_fixtures.py`):
//! forward pass, soft-target cross-entropy, gradient, dense Hessian (finite differences of the
//! numpy gradient) and three steps of SGD-Nesterov and AdamW with μP multipliers.

use approx::assert_abs_diff_eq;
use ndarray::{Array1, Array2};
use tessera_nn::{
    Activation, AdamConfig, Loss, LrSchedule, Mlp, MlpConfig, OptimizerConfig, Parameterization,
    ResidualConfig, SgdConfig, Targets, Trainer,
};

fn load1(name: &str) -> Array1<f64> {
    tessera_testing::fixture!(&format!("{name}.npy"))
}

fn load2(name: &str) -> Array2<f64> {
    tessera_testing::fixture!(&format!("{name}.npy"))
}

fn network() -> Mlp<f64> {
    let config = MlpConfig::new(3, vec![5], 4)
        .with_activation(Activation::Gelu)
        .with_parameterization(Parameterization::MuP)
        .with_residual(ResidualConfig {
            blocks_per_stage: 1,
            branch_scale: 0.2,
            branch_depth: 2,
        });
    let mut mlp = Mlp::new(config, 0).unwrap();
    mlp.set_params(load1("params").view()).unwrap();
    mlp
}

use tessera_testing::max_abs_diff;

#[test]
fn forward_loss_and_gradient_match_numpy() {
    let mlp = network();
    let x = load2("x");
    let y = load2("soft_targets");
    let trace = mlp.forward(x.view()).unwrap();
    let logits = load2("logits");
    assert!(max_abs_diff(trace.logits().iter().copied(), logits.iter().copied()) < 1e-13);
    let pre = load2("pre_activation_2");
    assert!(
        max_abs_diff(
            trace.pre_activation(2).unwrap().iter().copied(),
            pre.iter().copied()
        ) < 1e-13
    );
    let (loss, grad) = mlp
        .loss_and_gradient(
            x.view(),
            &Targets::Soft(y.view()),
            Loss::SoftmaxCrossEntropy,
        )
        .unwrap();
    assert_abs_diff_eq!(loss, load1("loss")[0], epsilon = 1e-13);
    assert!(max_abs_diff(grad.iter().copied(), load1("gradient").iter().copied()) < 1e-13);
}

#[test]
fn dense_hessian_matches_numpy_finite_differences() {
    let mlp = network();
    let x = load2("x");
    let y = load2("soft_targets");
    let op = mlp
        .hessian_operator(x.view(), Targets::Soft(y.view()), Loss::SoftmaxCrossEntropy)
        .unwrap();
    let h = op.to_dense();
    let reference = load2("hessian");
    let scale = reference.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let err = max_abs_diff(h.iter().copied(), reference.iter().copied());
    assert!(
        err < 1e-8 * scale.max(1.0),
        "max error {err}, scale {scale}"
    );
}

#[test]
fn optimiser_trajectories_match_numpy() {
    let x = load2("x");
    let y = load2("soft_targets");
    let targets = Targets::Soft(y.view());
    let sgd = OptimizerConfig::Sgd(SgdConfig {
        momentum: 0.9,
        nesterov: true,
        weight_decay: 0.01,
    });
    let adamw = OptimizerConfig::Adam(AdamConfig {
        weight_decay: 0.1,
        decoupled: true,
        ..AdamConfig::default()
    });
    for (config, fixture) in [(sgd, "sgd_nesterov_3_steps"), (adamw, "adamw_3_steps")] {
        let mut mlp = network();
        let mut trainer =
            Trainer::new(&mut mlp, config, LrSchedule::constant(0.01).unwrap(), None).unwrap();
        for _ in 0..3 {
            trainer
                .step(&mut mlp, x.view(), &targets, Loss::SoftmaxCrossEntropy)
                .unwrap();
        }
        let expected = load1(fixture);
        let err = max_abs_diff(mlp.params().iter().copied(), expected.iter().copied());
        assert!(err < 1e-12, "{fixture}: max error {err}");
    }
}
