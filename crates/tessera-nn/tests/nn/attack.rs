//! Attacks on trained networks: PGD's ε-ball and data-range guarantees, PGD against FGSM and
//! the clean loss, input gradients against finite differences, and adversarial training
//! against clean training on a task with robust and non-robust features.

use approx::assert_abs_diff_eq;
use ndarray::{Array2, ArrayView2, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use tessera_nn::attack::{
    adversarial_training_step, fgsm, mlp_objective, mlp_robust_accuracy, pgd, robust_accuracy,
    AdversarialTraining, Norm, PgdConfig,
};
use tessera_nn::{Float, Loss, LrSchedule, Mlp, MlpConfig, OptimizerConfig, Targets, Trainer};

/// Tsipras et al. (2019, "Robustness May Be at Odds with Accuracy"): label `s = ±1`; one
/// robust feature `x₀ = s` with probability 0.9 (else `−s`) and `WEAK` non-robust features
/// `x_k ~ N(η·s, 1)`. Together the weak features predict the label better than `x₀` does, but an
/// L∞ perturbation of ε > η flips their mean, while `x₀` keeps its sign for ε < 1.
const WEAK: usize = 24;
const ETA: f64 = 0.4;

fn robust_and_weak_features<F: Float>(n: usize, seed: u64) -> (Array2<F>, Vec<usize>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut x = Array2::zeros((n, WEAK + 1));
    let mut labels = Vec::with_capacity(n);
    for mut row in x.rows_mut() {
        let label = rng.random_range(0..2usize);
        let s = if label == 1 { 1.0 } else { -1.0 };
        let agree = rng.random::<f64>() < 0.9;
        row[0] = F::from_f64_rounded(if agree { s } else { -s });
        for k in 1..=WEAK {
            let noise: f64 = rng.sample(StandardNormal);
            row[k] = F::from_f64_rounded(ETA * s + noise);
        }
        labels.push(label);
    }
    (x, labels)
}

fn train_on_features(adversarial: Option<&AdversarialTraining>, seed: u64) -> Mlp<f64> {
    let (x, labels) = robust_and_weak_features::<f64>(256, seed);
    let mut mlp = Mlp::new(MlpConfig::new(WEAK + 1, vec![16], 2), seed).unwrap();
    let mut trainer = Trainer::new(
        &mut mlp,
        OptimizerConfig::sgd(),
        LrSchedule::constant(0.2).unwrap(),
        None,
    )
    .unwrap();
    let targets = Targets::Hard(&labels);
    let mut rng = ChaCha8Rng::seed_from_u64(seed + 1);
    for _ in 0..300 {
        match adversarial {
            Some(config) => {
                adversarial_training_step(
                    &mut trainer,
                    &mut mlp,
                    x.view(),
                    &targets,
                    Loss::SoftmaxCrossEntropy,
                    config,
                    &mut rng,
                )
                .unwrap();
            }
            None => {
                trainer
                    .step(&mut mlp, x.view(), &targets, Loss::SoftmaxCrossEntropy)
                    .unwrap();
            }
        }
    }
    mlp
}

fn ce_loss(mlp: &Mlp<f64>, x: ArrayView2<'_, f64>, labels: &[usize]) -> f64 {
    mlp.loss(x, &Targets::Hard(labels), Loss::SoftmaxCrossEntropy)
        .unwrap()
}

/// The seed is fixed once; the margins below come from the task's construction (see
/// `robust_and_weak_features`), not from a search over seeds.
const SEED: u64 = 2024;

#[test]
fn adversarial_training_raises_robust_accuracy_over_clean_training() {
    let attack = PgdConfig::new(Norm::LInf, 0.5, 0.2, 5);
    let clean = train_on_features(None, SEED);
    let robust = train_on_features(Some(&AdversarialTraining::new(attack)), SEED);
    let (x_test, labels) = robust_and_weak_features::<f64>(512, SEED + 100);
    let eval = PgdConfig::new(Norm::LInf, 0.5, 0.1, 10);
    let mut rng = ChaCha8Rng::seed_from_u64(SEED + 200);
    let clean_acc = mlp_robust_accuracy(&clean, x_test.view(), &labels, &eval, &mut rng).unwrap();
    let robust_acc = mlp_robust_accuracy(&robust, x_test.view(), &labels, &eval, &mut rng).unwrap();
    eprintln!("clean-trained {clean_acc:?}, adversarially trained {robust_acc:?}");
    // The clean model leans on the weak features: accurate, but not robust.
    assert!(clean_acc.clean > 0.93, "{clean_acc:?}");
    assert!(clean_acc.robust < 0.6, "{clean_acc:?}");
    // The adversarially trained one relies on x₀ (90% accurate, robust to ε = 0.5).
    assert!(robust_acc.robust > 0.8, "{robust_acc:?}");
    assert!(
        robust_acc.robust > clean_acc.robust + 0.25,
        "{robust_acc:?} vs {clean_acc:?}"
    );
    // Mixing in the clean loss trains as well (and reports both losses).
    let mixed = AdversarialTraining::new(attack).with_clean_weight(0.5);
    let (x, labels) = robust_and_weak_features::<f64>(64, SEED);
    let mut mlp = Mlp::new(MlpConfig::new(WEAK + 1, vec![8], 2), SEED).unwrap();
    let mut trainer = Trainer::new(
        &mut mlp,
        OptimizerConfig::sgd(),
        LrSchedule::constant(0.1).unwrap(),
        None,
    )
    .unwrap();
    let before = mlp.clone();
    let step = adversarial_training_step(
        &mut trainer,
        &mut mlp,
        x.view(),
        &Targets::Hard(&labels),
        Loss::SoftmaxCrossEntropy,
        &mixed,
        &mut rng,
    )
    .unwrap();
    let clean_loss = step.clean_loss.expect("clean weight 0.5 computes it");
    assert_abs_diff_eq!(
        clean_loss,
        ce_loss(&before, x.view(), &labels),
        epsilon = 1e-12
    );
    assert!(step.adversarial_loss > clean_loss);
    assert_ne!(mlp.params(), before.params());
}

#[test]
fn pgd_raises_the_loss_beyond_fgsm_on_a_trained_network() {
    let mlp = train_on_features(None, SEED);
    let (x, labels) = robust_and_weak_features::<f64>(128, SEED + 7);
    let targets = Targets::Hard(&labels);
    let clean = ce_loss(&mlp, x.view(), &labels);
    let objective = || mlp_objective(&mlp, targets, Loss::SoftmaxCrossEntropy);
    let mut rng = ChaCha8Rng::seed_from_u64(SEED + 8);
    for (norm, epsilon) in [(Norm::LInf, 0.2), (Norm::L2, 1.0)] {
        let one_step = if norm == Norm::LInf {
            fgsm(x.view(), epsilon, None, objective()).unwrap()
        } else {
            let single = PgdConfig::new(norm, epsilon, epsilon, 1).with_random_start(false);
            pgd(x.view(), &single, &mut rng, objective()).unwrap()
        };
        let config = PgdConfig::new(norm, epsilon, epsilon / 4.0, 20);
        let many = pgd(x.view(), &config, &mut rng, objective()).unwrap();
        let (one, pgd_loss) = (
            ce_loss(&mlp, one_step.view(), &labels),
            ce_loss(&mlp, many.view(), &labels),
        );
        eprintln!("{norm:?}: clean {clean}, one step {one}, PGD {pgd_loss}");
        assert!(
            clean < one && one < pgd_loss,
            "{norm:?}: clean {clean}, one step {one}, PGD {pgd_loss}"
        );
    }
}

fn check_ball_and_range<F: Float>(norm: Norm, epsilon: f64, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mlp = Mlp::<F>::new(MlpConfig::new(6, vec![10], 3), seed).unwrap();
    let x = Array2::from_shape_fn((9, 6), |_| F::from_f64_rounded(rng.random_range(0.0..=1.0)));
    let labels: Vec<usize> = (0..9).map(|i| i % 3).collect();
    let config = PgdConfig::new(norm, epsilon, epsilon / 3.0, 7).with_clamp(0.0, 1.0);
    let adv = pgd(
        x.view(),
        &config,
        &mut rng,
        mlp_objective(&mlp, Targets::Hard(&labels), Loss::SoftmaxCrossEntropy),
    )
    .unwrap();
    let delta = (&adv - &x).mapv(|v| v.to_f64_exact());
    let tol = 4.0 * F::epsilon().to_f64_exact();
    for row in delta.axis_iter(Axis(0)) {
        let size = match norm {
            Norm::LInf => row.fold(0.0f64, |m, v| m.max(v.abs())),
            Norm::L2 => row.dot(&row).sqrt(),
        };
        assert!(
            size <= epsilon * (1.0 + tol) + tol,
            "{norm:?}: ‖δ‖ = {size} > {epsilon}"
        );
    }
    assert!(adv.iter().all(|v| (F::zero()..=F::one()).contains(v)));
    // The attack moved the points (the clean point is no fixed point of the steps).
    assert!(delta.iter().any(|v| v.abs() > 0.1 * epsilon));
}

#[test]
fn pgd_stays_in_the_ball_and_the_data_range() {
    for seed in 0..4 {
        for (norm, epsilon) in [
            (Norm::LInf, 0.1),
            (Norm::LInf, 0.3),
            (Norm::L2, 0.5),
            (Norm::L2, 2.0),
        ] {
            check_ball_and_range::<f32>(norm, epsilon, seed);
            check_ball_and_range::<f64>(norm, epsilon, seed);
        }
    }
}

#[test]
fn input_gradient_alone_matches_finite_differences() {
    let mlp = Mlp::<f64>::new(MlpConfig::new(4, vec![5, 3], 3), 11).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let x = Array2::from_shape_fn((3, 4), |_| rng.random_range(-1.0..1.0));
    let labels = [0usize, 2, 1];
    let targets = Targets::Hard(&labels);
    let (value, grad) = mlp
        .loss_and_input_gradient(x.view(), &targets, Loss::SoftmaxCrossEntropy)
        .unwrap();
    assert_eq!(value, ce_loss(&mlp, x.view(), &labels));
    let fd = tessera_testing::central_difference_gradient(
        |flat| {
            let probe = Array2::from_shape_vec((3, 4), flat.to_vec()).unwrap();
            ce_loss(&mlp, probe.view(), &labels)
        },
        x.as_slice().unwrap(),
        1e-6,
    );
    let fd = Array2::from_shape_vec((3, 4), fd).unwrap();
    tessera_testing::assert_all_close(&grad, &fd, 1e-6, 1e-8, "∂L/∂x");
}

#[test]
fn attacks_reject_bad_input_with_named_errors() {
    let mlp = Mlp::<f64>::new(MlpConfig::new(3, vec![4], 2), 0).unwrap();
    let x = Array2::from_elem((2, 3), 0.5);
    let labels = [0usize, 1];
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let config = PgdConfig::new(Norm::L2, 0.1, 0.05, 2);
    let objective = || mlp_objective(&mlp, Targets::Hard(&labels), Loss::SoftmaxCrossEntropy);
    let message = |e: tessera_nn::Error| e.to_string();
    let wrong = Array2::from_elem((2, 4), 0.5);
    assert!(
        message(pgd(wrong.view(), &config, &mut rng, objective()).unwrap_err()).contains("`x`")
    );
    let negative = PgdConfig {
        epsilon: -1.0,
        ..config
    };
    assert!(
        message(pgd(x.view(), &negative, &mut rng, objective()).unwrap_err()).contains("`epsilon`")
    );
    assert!(
        message(fgsm(x.view(), f64::NAN, None, objective()).unwrap_err()).contains("`epsilon`")
    );
    let err = mlp_robust_accuracy(&mlp, x.view(), &[0], &config, &mut rng).unwrap_err();
    assert!(message(err).contains("`targets`"));
    let err = mlp_robust_accuracy(&mlp, x.view(), &[0, 5], &config, &mut rng).unwrap_err();
    assert!(message(err).contains("`targets`"));
    let short_logits = robust_accuracy(x.view(), &labels, &config, &mut rng, objective(), |_| {
        Ok(Array2::zeros((1, 2)))
    })
    .unwrap_err();
    assert!(message(short_logits).contains("`logits`"));
    let mut trainer = Trainer::new(
        &mut mlp.clone(),
        OptimizerConfig::sgd(),
        LrSchedule::constant(0.1).unwrap(),
        None,
    )
    .unwrap();
    let err = adversarial_training_step(
        &mut trainer,
        &mut mlp.clone(),
        x.view(),
        &Targets::Hard(&labels),
        Loss::SoftmaxCrossEntropy,
        &AdversarialTraining::new(PgdConfig { steps: 0, ..config }),
        &mut rng,
    )
    .unwrap_err();
    assert!(message(err).contains("`steps`"));
}

/// conv → ReLU → flatten → dense on 1×4×4 images: PGD through `Sequential::input_gradient`
/// keeps the 4-D examples in the ball and the data range and raises the loss.
#[test]
fn pgd_attacks_a_sequential_convnet() {
    use ndarray::{ArrayD, IxDyn};
    use tessera_nn::attack::{sequential_objective, sequential_robust_accuracy};
    use tessera_nn::layers::{Conv2d, Dense, Flatten, Relu};
    use tessera_nn::Sequential;
    let model = Sequential::<f64>::new(&[1, 4, 4], 9)
        .unwrap()
        .push("conv", Conv2d::square(1, 2, 3, 1, 1).unwrap())
        .unwrap()
        .push("relu", Relu)
        .unwrap()
        .push("flat", Flatten)
        .unwrap()
        .push("fc", Dense::new(32, 3).unwrap())
        .unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(10);
    let x = ArrayD::from_shape_fn(IxDyn(&[5, 1, 4, 4]), |_| rng.random_range(0.1..0.9));
    let labels = [0usize, 1, 2, 0, 1];
    let targets = Targets::Hard(&labels);
    let clean = model
        .loss(x.view(), &targets, Loss::SoftmaxCrossEntropy)
        .unwrap();
    for (norm, epsilon) in [(Norm::LInf, 0.05), (Norm::L2, 0.5)] {
        let config = PgdConfig::new(norm, epsilon, epsilon / 4.0, 10).with_clamp(0.0, 1.0);
        let objective = sequential_objective(&model, targets, Loss::SoftmaxCrossEntropy);
        let adv = pgd(x.view(), &config, &mut rng, objective).unwrap();
        assert_eq!(adv.shape(), x.shape());
        for (a, c) in adv.outer_iter().zip(x.outer_iter()) {
            let d = &a - &c;
            let size = match norm {
                Norm::LInf => d.fold(0.0f64, |m, v| m.max(v.abs())),
                Norm::L2 => d.iter().map(|v| v * v).sum::<f64>().sqrt(),
            };
            assert!(size <= epsilon * (1.0 + 1e-12), "{norm:?}: {size}");
        }
        assert!(adv.iter().all(|v| (0.0..=1.0).contains(v)));
        let attacked = model
            .loss(adv.view(), &targets, Loss::SoftmaxCrossEntropy)
            .unwrap();
        assert!(attacked > clean, "{norm:?}: {clean} → {attacked}");
    }
    let config = PgdConfig::new(Norm::LInf, 0.05, 0.02, 5);
    let acc = sequential_robust_accuracy(
        &model,
        x.view(),
        &labels,
        &config,
        &mut ChaCha8Rng::seed_from_u64(1),
    )
    .unwrap();
    // The robust accuracy is the accuracy on the very PGD examples the same draw makes.
    let adv = pgd(
        x.view(),
        &config,
        &mut ChaCha8Rng::seed_from_u64(1),
        sequential_objective(&model, targets, Loss::SoftmaxCrossEntropy),
    )
    .unwrap();
    let logits = model.predict(adv.view()).unwrap();
    let correct = logits
        .outer_iter()
        .zip(&labels)
        .filter(|(row, &l)| {
            row.iter()
                .enumerate()
                .fold(
                    (0, f64::NEG_INFINITY),
                    |b, (i, &v)| if v > b.1 { (i, v) } else { b },
                )
                .0
                == l
        })
        .count();
    assert_eq!(acc.robust, correct as f64 / 5.0);
    let wrong = ArrayD::<f64>::zeros(IxDyn(&[5, 2, 4, 4]));
    let objective = sequential_objective(&model, targets, Loss::SoftmaxCrossEntropy);
    assert!(pgd(wrong.view(), &config, &mut rng, objective).is_err());
}
