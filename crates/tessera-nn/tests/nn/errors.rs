//! Bad input gives an `Err` naming the parameter and the value, never a panic.

use ndarray::{Array1, Array2};
use tessera_nn::InputError;
use tessera_nn::{
    interpolation_curve, module_robust_criticality, AdamConfig, Error, Loss, LrSchedule, Mask,
    MaskPolicy, MaskSet, Mlp, MlpConfig, MrcConfig, Optimizer, OptimizerConfig, ResidualConfig,
    SgdConfig, Targets, Trainer,
};

fn message<T: std::fmt::Debug>(r: tessera_nn::Result<T>) -> String {
    r.unwrap_err().to_string()
}

fn net() -> Mlp<f64> {
    Mlp::new(MlpConfig::new(3, vec![4], 2), 0).unwrap()
}

#[test]
fn bad_configs() {
    let m = message(Mlp::<f64>::new(MlpConfig::new(3, vec![4, 0], 2), 0));
    assert!(m.contains("hidden_widths") && m.contains("layer 1"), "{m}");
    assert!(message(Mlp::<f64>::new(MlpConfig::new(0, vec![4], 2), 0)).contains("input_dim"));
    assert!(message(Mlp::<f32>::new(MlpConfig::new(3, vec![4], 0), 0)).contains("output_dim"));
    let residual = |depth, scale| {
        MlpConfig::new(3, vec![4], 2).with_residual(ResidualConfig {
            blocks_per_stage: 1,
            branch_scale: scale,
            branch_depth: depth,
        })
    };
    assert!(message(Mlp::<f64>::new(residual(3, 0.1), 0)).contains("branch_depth"));
    assert!(message(Mlp::<f64>::new(residual(1, f64::NAN), 0)).contains("branch_scale"));
    let gain = MlpConfig::new(3, vec![4], 2).with_init_gain(0.0);
    assert!(message(Mlp::<f64>::new(gain, 0)).contains("init_gain"));
}

#[test]
fn bad_inputs_and_parameters() {
    let mut mlp = net();
    let m = message(mlp.forward(Array2::zeros((2, 4)).view()));
    assert!(m.contains("`x`") && m.contains("(2, 4)"), "{m}");
    assert!(message(mlp.forward(Array2::zeros((0, 3)).view())).contains("empty"));
    let mut x = Array2::zeros((2, 3));
    x[[1, 2]] = f64::NAN;
    let m = message(mlp.forward(x.view()));
    assert!(
        m.contains("`x`") && m.contains("index 5") && m.contains("NaN"),
        "{m}"
    );
    let x = Array2::zeros((2, 3));
    mlp.params_mut()[3] = f64::INFINITY;
    let m = message(mlp.forward(x.view()));
    assert!(m.contains("params") && m.contains("inf"), "{m}");
    let mut bad = mlp.params().to_owned();
    assert!(message(mlp.set_params(bad.view())).contains("params"));
    bad[3] = 0.0;
    mlp.set_params(bad.view()).unwrap();
    assert!(message(mlp.set_params(Array1::zeros(5).view())).contains("length"));
    assert!(message(mlp.weight(2)).contains("layer"));
    assert!(message(mlp.bias_mut(7)).contains("layer"));
}

#[test]
fn bad_targets_and_gradients() {
    let mlp = net();
    let x = Array2::zeros((2, 3));
    let ce = Loss::SoftmaxCrossEntropy;
    assert!(message(mlp.loss(x.view(), &Targets::Hard(&[0]), ce)).contains("targets"));
    let m = message(mlp.loss(x.view(), &Targets::Hard(&[0, 2]), ce));
    assert!(m.contains("targets") && m.contains('2'), "{m}");
    let soft = Array2::from_elem((2, 3), 0.3);
    assert!(message(mlp.loss(x.view(), &Targets::Soft(soft.view()), Loss::Mse)).contains("(2, 2)"));
    let trace = mlp.forward(x.view()).unwrap();
    let m = message(mlp.backward_from_logit_grad(&trace, Array2::zeros((2, 3)).view()));
    assert!(m.contains("logit_grad"), "{m}");
    let mut g = Array2::zeros((2, 2));
    g[[0, 0]] = f64::NAN;
    assert!(message(mlp.backward_from_logit_grad(&trace, g.view())).contains("logit_grad"));
    let other = Mlp::<f64>::new(MlpConfig::new(3, vec![4, 4], 2), 0).unwrap();
    assert!(
        message(other.backward_from_logit_grad(&trace, Array2::zeros((2, 2)).view()))
            .contains("trace")
    );
    let labels = [0usize, 1];
    let op = mlp
        .hessian_operator(x.view(), Targets::Hard(&labels), ce)
        .unwrap();
    assert!(message(op.product(Array1::zeros(3).view())).contains("`v`"));
}

#[test]
fn bad_learning_rates_and_optimiser_settings() {
    for lr in [0.0, -0.1, f64::NAN] {
        assert!(message(LrSchedule::constant(lr)).contains("base_lr"));
    }
    let mut mlp = net();
    let mut opt = Optimizer::new(OptimizerConfig::sgd(), &mlp).unwrap();
    let g = Array1::zeros(mlp.num_params());
    let m = message(opt.step(&mut mlp, g.view(), 0.0));
    assert!(m.contains("`lr`") && m.contains('0'), "{m}");
    assert!(message(opt.step(&mut mlp, Array1::zeros(3).view(), 0.1)).contains("grad"));
    assert!(message(opt.set_layer_lr_multiplier(5, 1.0)).contains("layer"));
    assert!(message(opt.set_layer_lr_multiplier(0, -1.0)).contains("multiplier"));
    let sgd = |momentum, nesterov| {
        OptimizerConfig::Sgd(SgdConfig {
            momentum,
            nesterov,
            weight_decay: 0.0,
        })
    };
    assert!(message(Optimizer::new(sgd(1.0, false), &mlp)).contains("momentum"));
    assert!(message(Optimizer::new(sgd(0.0, true), &mlp)).contains("nesterov"));
    let adam = OptimizerConfig::Adam(AdamConfig {
        eps: 0.0,
        ..AdamConfig::default()
    });
    assert!(message(Optimizer::new(adam, &mlp)).contains("eps"));
}

#[test]
fn bad_masks_and_rift_settings() {
    let mlp = net();
    let m = message(MaskSet::new(&mlp, vec![None], MaskPolicy::default()));
    assert!(m.contains("masks"), "{m}");
    let m = message(MaskSet::new(
        &mlp,
        vec![Some(Mask::ones(11)), None],
        MaskPolicy::default(),
    ));
    assert!(m.contains("layer 0") && m.contains("12"), "{m}");
    let x = Array2::zeros((2, 3));
    let labels = [0usize, 1];
    let t = Targets::Hard(&labels);
    let ce = Loss::SoftmaxCrossEntropy;
    let bad = MrcConfig {
        epsilon: 0.0,
        ..MrcConfig::default()
    };
    assert!(
        message(module_robust_criticality(&mlp, x.view(), &t, ce, 0, &bad)).contains("epsilon")
    );
    assert!(message(module_robust_criticality(
        &mlp,
        x.view(),
        &t,
        ce,
        9,
        &MrcConfig::default()
    ))
    .contains("layer"));
    let other = Mlp::<f64>::new(MlpConfig::new(3, vec![5], 2), 0).unwrap();
    assert!(
        message(interpolation_curve(&mlp, &other, x.view(), &t, ce, &[0.5])).contains("fine_tuned")
    );
    assert!(message(interpolation_curve(
        &mlp,
        &mlp,
        x.view(),
        &t,
        ce,
        &[f64::NAN]
    ))
    .contains("alphas"));
    let mut copy = mlp.clone();
    let mut trainer = Trainer::new(
        &mut copy,
        OptimizerConfig::sgd(),
        LrSchedule::constant(0.1).unwrap(),
        None,
    )
    .unwrap();
    assert!(matches!(
        trainer.optimizer_mut().set_trainable_layers(&[4]),
        Err(Error::Input(InputError::Invalid { name: "layers", .. }))
    ));
}
