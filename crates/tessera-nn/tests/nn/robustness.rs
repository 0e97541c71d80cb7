//! Huge sizes, out-of-range labels and extreme scales are errors (issue 12).

use ndarray::array;
use tessera_nn::{
    Mlp, MlpConfig, ResidualConfig, Targets, MAX_BRANCH_SCALE, MAX_INIT_GAIN, MAX_MLP_PARAMETERS,
};

#[test]
fn huge_networks_are_errors_before_allocating() {
    for config in [
        MlpConfig::new(1 << 20, vec![1 << 20], 10),
        MlpConfig::new(1 << 32, vec![1 << 32], 10),
        MlpConfig::new(usize::MAX, vec![2], 2),
        MlpConfig::new(4, vec![4], 4).with_residual(ResidualConfig {
            blocks_per_stage: usize::MAX,
            branch_scale: 0.1,
            branch_depth: 2,
        }),
    ] {
        let e = Mlp::<f32>::new(config, 0).unwrap_err();
        assert!(e.to_string().contains("parameter count"), "{e}");
    }
    let config = MlpConfig::new(3, vec![5], 2);
    assert_eq!(config.parameter_count().unwrap(), 3 * 5 + 5 + 5 * 2 + 2);
    assert!(config.parameter_count().unwrap() <= MAX_MLP_PARAMETERS);
    assert_eq!(Mlp::<f32>::new(config, 0).unwrap().params().len(), 32);
}

#[test]
fn extreme_init_gain_and_branch_scale_are_rejected() {
    let e = Mlp::<f32>::new(MlpConfig::new(3, vec![4], 2).with_init_gain(1e300), 0).unwrap_err();
    assert!(e.to_string().contains("init_gain"), "{e}");
    assert!(Mlp::<f32>::new(
        MlpConfig::new(3, vec![4], 2).with_init_gain(MAX_INIT_GAIN),
        0
    )
    .is_ok());
    let e = Mlp::<f32>::new(
        MlpConfig::new(3, vec![4], 2).with_residual(ResidualConfig {
            blocks_per_stage: 1,
            branch_scale: 1e300,
            branch_depth: 1,
        }),
        0,
    )
    .unwrap_err();
    assert!(e.to_string().contains("branch_scale"), "{e}");
    assert!(MAX_BRANCH_SCALE.is_finite());
}

#[test]
fn hard_labels_outside_the_classes_are_an_error_in_to_dense() {
    let labels = [0usize, 3];
    let e = Targets::<f32>::Hard(&labels).to_dense(3).unwrap_err();
    assert!(e.to_string().contains("label 3"), "{e}");
    let e = Targets::<f32>::Hard(&labels).to_dense(1 << 40).unwrap_err();
    assert!(e.to_string().contains("dense targets"), "{e}");
    let soft = array![[0.5f32, 0.5]];
    assert!(Targets::Soft(soft.view()).to_dense(3).is_err());
    assert_eq!(
        Targets::<f32>::Hard(&labels).to_dense(4).unwrap().sum(),
        2.0
    );
}

#[test]
fn step_decay_stays_finite_at_huge_steps() {
    use tessera_nn::{Decay, LrSchedule};
    let s = LrSchedule::new(
        0.1,
        Decay::Step {
            every: 1,
            gamma: 0.5,
        },
    )
    .unwrap();
    for t in [0usize, 10, 1 << 31, (1 << 32) + 5, usize::MAX] {
        let lr = s.lr_at(t);
        assert!(lr.is_finite() && lr > 0.0 && lr <= 0.1, "t = {t}: {lr}");
    }
}
