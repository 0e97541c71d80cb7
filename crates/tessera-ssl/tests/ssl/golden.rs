//! Golden values from numpy (`tests/data/make_fixtures.py`): values in float64, gradients by
//! complex-step differentiation, so they are independent of the analytic gradients here.

use approx::assert_abs_diff_eq;
use ndarray::{Array1, Array2, ArrayD, Ix1, Ix2};
use tessera_ssl::*;

fn load(name: &str) -> ArrayD<f64> {
    tessera_testing::fixture!(&format!("{name}.npy"))
}

fn matrix(name: &str) -> Array2<f64> {
    load(name).into_dimensionality::<Ix2>().unwrap()
}

fn vector(name: &str) -> Array1<f64> {
    load(name).into_dimensionality::<Ix1>().unwrap()
}

fn scalar(name: &str) -> f64 {
    vector(name)[0]
}

fn assert_close(actual: &Array2<f64>, expected: &Array2<f64>, tol: f64, what: &str) {
    tessera_testing::assert_all_close(actual, expected, 0.0, tol, what);
}

#[test]
fn sharpen_and_guess() {
    let q = matrix("targets");
    assert_close(
        &sharpen(q.view(), 0.5).unwrap(),
        &matrix("sharpen_t05"),
        1e-14,
        "T=0.5",
    );
    assert_close(
        &sharpen(q.view(), 0.3).unwrap(),
        &matrix("sharpen_t03"),
        1e-14,
        "T=0.3",
    );
    let (a, b) = (matrix("logits_a"), matrix("logits_b"));
    let guess = guess_labels(&[a.view(), b.view()], 0.5).unwrap();
    assert_close(&guess, &matrix("guess_t05"), 1e-14, "guess");
}

#[test]
fn losses_and_gradients() {
    let (a, b, q) = (matrix("logits_a"), matrix("logits_b"), matrix("targets"));
    let ce = soft_cross_entropy(a.view(), q.view()).unwrap();
    assert_abs_diff_eq!(ce.value, scalar("soft_ce_value"), epsilon = 1e-13);
    assert_close(&ce.grad, &matrix("soft_ce_grad"), 1e-14, "soft CE grad");
    let mse = mse_probabilities(a.view(), q.view()).unwrap();
    assert_abs_diff_eq!(mse.value, scalar("mse_value"), epsilon = 1e-14);
    assert_close(&mse.grad, &matrix("mse_grad"), 1e-14, "MSE grad");
    let js = jensen_shannon(a.view(), b.view()).unwrap();
    assert_abs_diff_eq!(js.value, scalar("js_value"), epsilon = 1e-14);
    assert_close(&js.grad_a, &matrix("js_grad_a"), 1e-14, "JS grad a");
    assert_close(&js.grad_b, &matrix("js_grad_b"), 1e-14, "JS grad b");
}

#[test]
fn view_difference_loss() {
    let (f, g, fa, ga) = (
        matrix("logits_a"),
        matrix("logits_b"),
        matrix("logits_c"),
        matrix("logits_d"),
    );
    let loss = view_difference(f.view(), g.view(), fa.view(), ga.view()).unwrap();
    assert_abs_diff_eq!(loss.value, scalar("dif_value"), epsilon = 1e-13);
    assert_close(&loss.grad_f, &matrix("dif_grad_f"), 1e-14, "grad f");
    assert_close(&loss.grad_g, &matrix("dif_grad_g"), 1e-14, "grad g");
    assert_close(
        &loss.grad_f_on_adv_g,
        &matrix("dif_grad_f_on_adv_g"),
        1e-14,
        "grad f adv",
    );
    assert_close(
        &loss.grad_g_on_adv_f,
        &matrix("dif_grad_g_on_adv_f"),
        1e-14,
        "grad g adv",
    );
}

#[test]
fn fixmatch_pseudo_labels_and_masked_loss() {
    let weak = matrix("fixmatch_weak");
    let pseudo = pseudo_labels(weak.view(), 0.95).unwrap();
    let labels: Vec<usize> = vector("fixmatch_labels")
        .iter()
        .map(|&l| l as usize)
        .collect();
    assert_eq!(pseudo.labels, labels);
    assert_eq!(pseudo.mask, vector("fixmatch_mask"));
    assert!(
        pseudo.mask.sum() >= 1.0 && pseudo.mask.sum() < 6.0,
        "fixture mixes both cases"
    );
    let strong = matrix("logits_c");
    let loss = masked_cross_entropy(strong.view(), &pseudo).unwrap();
    assert_abs_diff_eq!(loss.value, scalar("fixmatch_value"), epsilon = 1e-14);
    assert_close(
        &loss.grad,
        &matrix("fixmatch_grad"),
        1e-14,
        "masked CE grad",
    );
}

#[test]
fn distribution_alignment_with_a_two_batch_window() {
    let mut da = DistributionAlignment::<f64>::new(5, 2).unwrap();
    let mut aligned = Array2::zeros((0, 0));
    for i in 0..3 {
        let labelled = matrix(&format!("da_labelled_{i}"));
        let unlabelled = matrix(&format!("da_unlabelled_{i}"));
        aligned = da
            .observe_and_align(labelled.view(), unlabelled.view())
            .unwrap();
    }
    assert_close(&aligned, &matrix("da_aligned_2"), 1e-14, "aligned");
}

#[test]
fn ema_teacher_sequence() {
    let students = matrix("ema_students");
    let mut teacher = EmaTeacher::new(vector("ema_initial").view(), 0.9).unwrap();
    for student in students.rows() {
        teacher.update(student).unwrap();
    }
    let expected = vector("ema_final");
    for (a, e) in teacher.params().iter().zip(expected.iter()) {
        assert_abs_diff_eq!(*a, *e, epsilon = 1e-14);
    }
}
