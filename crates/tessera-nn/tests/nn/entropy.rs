//! The entropy loss of test-time adaptation (TENT): value and logit gradient against a closed
//! form for two classes and against finite differences, and one adaptation step through the
//! external-loss path.

use approx::assert_abs_diff_eq;
use ndarray::{array, Array2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tessera_nn::{
    confident_entropy_and_logit_gradient, entropy_and_logit_gradient, prediction_entropies,
    LrSchedule, Mlp, MlpConfig, OptimizerConfig, Trainer,
};

/// Two classes: with `d = a − b` and `p = σ(d)`, `H = −p log p − (1−p) log(1−p)` and
/// `dH/dd = −d·p(1−p)`, so `∂H/∂a = −d·p(1−p) = −∂H/∂b`.
#[test]
fn two_classes_match_the_closed_form() {
    let logits = array![[0.3f64, -1.2], [2.0, 2.0], [-4.0, 3.5]];
    let (value, grad) = entropy_and_logit_gradient(logits.view()).unwrap();
    let mut mean = 0.0;
    for (i, row) in logits.rows().into_iter().enumerate() {
        let d = row[0] - row[1];
        let p = 1.0 / (1.0 + (-d).exp());
        let h = -p * p.ln() - (1.0 - p) * (1.0 - p).ln();
        mean += h / 3.0;
        let dh = -d * p * (1.0 - p) / 3.0;
        assert_abs_diff_eq!(grad[[i, 0]], dh, epsilon = 1e-15);
        assert_abs_diff_eq!(grad[[i, 1]], -dh, epsilon = 1e-15);
    }
    assert_abs_diff_eq!(value, mean, epsilon = 1e-15);
    // Equal logits: maximal entropy ln 2 and a zero gradient (a stationary point).
    let per_row = prediction_entropies(logits.view()).unwrap();
    assert_abs_diff_eq!(per_row[1], 2f64.ln(), epsilon = 1e-15);
    for g in grad.row(1) {
        assert_abs_diff_eq!(*g, 0.0, epsilon = 1e-15);
    }
}

#[test]
fn gradient_matches_finite_differences_in_f64_and_f32() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let logits = Array2::from_shape_fn((4, 5), |_| rng.random_range(-3.0..3.0));
    let (_, grad) = entropy_and_logit_gradient(logits.view()).unwrap();
    let fd = tessera_testing::central_difference_gradient(
        |flat| {
            let z = Array2::from_shape_vec((4, 5), flat.to_vec()).unwrap();
            entropy_and_logit_gradient(z.view()).unwrap().0
        },
        logits.as_slice().unwrap(),
        1e-6,
    );
    let fd = Array2::from_shape_vec((4, 5), fd).unwrap();
    tessera_testing::assert_all_close(&grad, &fd, 1e-6, 1e-9, "∂H/∂z");
    // Row sums of the gradient vanish (softmax is shift invariant).
    for r in grad.rows() {
        assert_abs_diff_eq!(r.sum(), 0.0, epsilon = 1e-15);
    }
    let (value32, grad32) = entropy_and_logit_gradient(logits.mapv(|v| v as f32).view()).unwrap();
    let (value, _) = entropy_and_logit_gradient(logits.view()).unwrap();
    assert_abs_diff_eq!(f64::from(value32), value, epsilon = 1e-6);
    tessera_testing::assert_all_close(&grad32.mapv(f64::from), &grad, 1e-4, 1e-6, "f32");
    // Huge logits stay finite: a one-hot softmax has zero entropy and gradient.
    let (h, g) = entropy_and_logit_gradient(array![[1e4f64, 0.0, -1e4]].view()).unwrap();
    assert_eq!(h, 0.0);
    assert!(g.iter().all(|v| *v == 0.0));
}

#[test]
fn tent_steps_lower_the_entropy_of_the_predictions() {
    let mut mlp = Mlp::<f64>::new(MlpConfig::new(3, vec![8], 4), 3).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let x = Array2::from_shape_fn((16, 3), |_| rng.random_range(-1.0..1.0));
    let mut trainer = Trainer::new(
        &mut mlp,
        OptimizerConfig::sgd(),
        LrSchedule::constant(0.5).unwrap(),
        None,
    )
    .unwrap();
    let entropy = |mlp: &Mlp<f64>| {
        let logits = mlp.predict(x.view()).unwrap();
        entropy_and_logit_gradient(logits.view()).unwrap().0
    };
    let before = entropy(&mlp);
    for _ in 0..5 {
        let trace = mlp.forward(x.view()).unwrap();
        let (_, logit_grad) = entropy_and_logit_gradient(trace.logits()).unwrap();
        let grad = mlp
            .backward_from_logit_grad(&trace, logit_grad.view())
            .unwrap();
        trainer.step_with_gradient(&mut mlp, grad).unwrap();
    }
    let after = entropy(&mlp);
    assert!(after < before, "entropy {before} → {after}");
}

#[test]
fn entropy_rejects_empty_and_non_finite_logits() {
    let empty = Array2::<f64>::zeros((0, 3));
    let err = entropy_and_logit_gradient(empty.view()).unwrap_err();
    assert!(err.to_string().contains("`logits`"), "{err}");
    let nan = array![[0.0f32, f32::NAN]];
    let err = entropy_and_logit_gradient(nan.view()).unwrap_err();
    assert!(err.to_string().contains("`logits`"), "{err}");
    assert!(prediction_entropies(Array2::<f64>::zeros((2, 0)).view()).is_err());
}

#[test]
fn confident_entropy_is_the_entropy_loss_of_the_confident_rows() {
    let logits = ndarray::array![[5.0f64, 0.0, 0.0], [0.1, 0.0, 0.05], [0.0, 4.0, -1.0]];
    let threshold = 0.4 * 3f64.ln();
    let (loss, grad, kept) =
        confident_entropy_and_logit_gradient(logits.view(), threshold).unwrap();
    // Rows 0 and 2 are confident, row 1 (nearly uniform) is not.
    assert_eq!(kept, 2);
    assert!(grad.row(1).iter().all(|&v| v == 0.0));
    let confident = logits.select(ndarray::Axis(0), &[0, 2]);
    let (alone_loss, alone) = entropy_and_logit_gradient(confident.view()).unwrap();
    assert_abs_diff_eq!(loss, alone_loss, epsilon = 1e-15);
    for (i, row) in [0usize, 2].into_iter().enumerate() {
        for (a, b) in grad.row(row).iter().zip(alone.row(i)) {
            assert_abs_diff_eq!(*a, *b, epsilon = 1e-15);
        }
    }
    let (none_loss, none, none_kept) =
        confident_entropy_and_logit_gradient(logits.view(), 0.0).unwrap();
    assert_eq!((none_loss, none_kept), (0.0, 0));
    assert!(none.iter().all(|&v| v == 0.0));
    let err = confident_entropy_and_logit_gradient(logits.view(), f64::NAN)
        .unwrap_err()
        .to_string();
    assert!(err.contains("threshold"), "{err}");
}
