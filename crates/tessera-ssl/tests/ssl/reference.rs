//! Against naive references: every gradient against central finite differences (f64), the
//! batch builders against an independent reconstruction from their permutation and λ, and the
//! closed forms of the EMA and of the alignment window.

use approx::assert_abs_diff_eq;
use ndarray::{array, concatenate, Array1, Array2, Array3, ArrayView2, Axis};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tessera_ssl::*;

use crate::numerical_grad;

fn assert_grad_close(analytic: &Array2<f64>, numeric: &Array2<f64>, what: &str) {
    assert_eq!(analytic.shape(), numeric.shape(), "{what}");
    let scale = numeric.iter().fold(1e-3_f64, |m, v| m.max(v.abs()));
    assert_abs_diff_eq!(analytic, numeric, epsilon = 1e-6 * scale);
}

fn logits(seed: u64, rows: usize, classes: usize, spread: f64) -> Array2<f64> {
    use rand::Rng;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Array2::from_shape_fn((rows, classes), |_| rng.random_range(-spread..spread))
}

fn probabilities(seed: u64, rows: usize, classes: usize) -> Array2<f64> {
    softmax(logits(seed, rows, classes, 3.0).view()).unwrap()
}

#[test]
fn soft_cross_entropy_gradient_and_value() {
    let z = logits(1, 5, 4, 4.0);
    let mut q = probabilities(2, 5, 4);
    q.row_mut(0).assign(&array![0.0, 1.0, 0.0, 0.0]);
    let loss = soft_cross_entropy(z.view(), q.view()).unwrap();
    let naive = |z: &Array2<f64>| {
        let mut total = 0.0;
        for b in 0..z.nrows() {
            let norm: f64 = z.row(b).iter().map(|v| v.exp()).sum();
            for c in 0..z.ncols() {
                total -= q[[b, c]] * (z[[b, c]].exp() / norm).ln();
            }
        }
        total / z.nrows() as f64
    };
    assert_abs_diff_eq!(loss.value, naive(&z), epsilon = 1e-13);
    assert_grad_close(&loss.grad, &numerical_grad(&z, naive), "soft CE");
}

#[test]
fn mse_gradient_and_value() {
    let z = logits(3, 6, 3, 2.0);
    let q = probabilities(4, 6, 3);
    let loss = mse_probabilities(z.view(), q.view()).unwrap();
    let naive = |z: &Array2<f64>| {
        let p = softmax(z.view()).unwrap();
        (&p - &q).mapv(|d| d * d).sum() / z.len() as f64
    };
    assert_abs_diff_eq!(loss.value, naive(&z), epsilon = 1e-14);
    assert_grad_close(&loss.grad, &numerical_grad(&z, naive), "MSE");
}

#[test]
fn jensen_shannon_gradient_and_entropy_form() {
    let a = logits(5, 4, 5, 3.0);
    let b = logits(6, 4, 5, 3.0);
    let loss = jensen_shannon(a.view(), b.view()).unwrap();
    let entropy = |p: &Array2<f64>| -> Array1<f64> {
        p.rows()
            .into_iter()
            .map(|r| -r.iter().map(|&v| v * v.ln()).sum::<f64>())
            .collect()
    };
    let naive = |a: &Array2<f64>, b: &Array2<f64>| {
        let p = softmax(a.view()).unwrap();
        let r = softmax(b.view()).unwrap();
        let m = (&p + &r) * 0.5;
        (entropy(&m) - (entropy(&p) + entropy(&r)) * 0.5)
            .mean()
            .unwrap()
    };
    assert_abs_diff_eq!(loss.value, naive(&a, &b), epsilon = 1e-14);
    assert_grad_close(&loss.grad_a, &numerical_grad(&a, |a| naive(a, &b)), "JS a");
    assert_grad_close(&loss.grad_b, &numerical_grad(&b, |b| naive(&a, b)), "JS b");
}

#[test]
fn view_difference_gradients() {
    let f = logits(7, 3, 4, 2.0);
    let g = logits(8, 3, 4, 2.0);
    let fa = logits(9, 3, 4, 2.0);
    let ga = logits(10, 3, 4, 2.0);
    let loss = view_difference(f.view(), g.view(), fa.view(), ga.view()).unwrap();
    let value = |f: &Array2<f64>, g: &Array2<f64>, fa: &Array2<f64>, ga: &Array2<f64>| {
        let (pf, pg) = (softmax(f.view()).unwrap(), softmax(g.view()).unwrap());
        let (lfa, lga) = (
            log_softmax(fa.view()).unwrap(),
            log_softmax(ga.view()).unwrap(),
        );
        -((&pg * &lfa).sum() + (&pf * &lga).sum()) / f.nrows() as f64
    };
    assert_abs_diff_eq!(loss.value, value(&f, &g, &fa, &ga), epsilon = 1e-13);
    assert_grad_close(
        &loss.grad_f,
        &numerical_grad(&f, |x| value(x, &g, &fa, &ga)),
        "dif f",
    );
    assert_grad_close(
        &loss.grad_g,
        &numerical_grad(&g, |x| value(&f, x, &fa, &ga)),
        "dif g",
    );
    assert_grad_close(
        &loss.grad_f_on_adv_g,
        &numerical_grad(&fa, |x| value(&f, &g, x, &ga)),
        "dif f adv",
    );
    assert_grad_close(
        &loss.grad_g_on_adv_f,
        &numerical_grad(&ga, |x| value(&f, &g, &fa, x)),
        "dif g adv",
    );
    let dct = DeepCoTraining::new(DeepCoTrainingConfig::default()).unwrap();
    let weighted = dct
        .view_difference(f.view(), g.view(), fa.view(), ga.view())
        .unwrap();
    assert_abs_diff_eq!(weighted.value, 0.5 * loss.value, epsilon = 1e-15);
    let cot = dct.co_training(f.view(), g.view()).unwrap();
    let js = jensen_shannon(f.view(), g.view()).unwrap();
    assert_abs_diff_eq!(cot.value, js.value, epsilon = 1e-15);
}

#[test]
fn fixmatch_masked_loss_gradient_and_whole_batch_mean() {
    let weak = array![
        [6.0, 0.0, 0.0],
        [0.0, 0.1, 0.0],
        [0.0, 0.0, 9.0],
        [1.0, 1.0, 0.0]
    ];
    let strong = logits(11, 4, 3, 2.0);
    let labelled = logits(12, 2, 3, 2.0);
    let targets = array![[1.0, 0.0, 0.0], [0.2, 0.3, 0.5]];
    let fixmatch = FixMatch::new(FixMatchConfig {
        threshold: 0.95,
        lambda_u: 2.0,
    })
    .unwrap();
    let loss = fixmatch
        .loss(labelled.view(), targets.view(), weak.view(), strong.view())
        .unwrap();
    // Items 0 and 2 are confident (0.995 and 0.9998), items 1 and 3 are not.
    assert_eq!(loss.pseudo.mask, array![1.0, 0.0, 1.0, 0.0]);
    assert_eq!(loss.pseudo.labels, vec![0, 1, 2, 0]);
    let unlabelled = |z: &Array2<f64>| {
        let lp = log_softmax(z.view()).unwrap();
        -(lp[[0, 0]] + lp[[2, 2]]) / 4.0
    };
    assert_abs_diff_eq!(loss.unlabelled, unlabelled(&strong), epsilon = 1e-14);
    assert_grad_close(
        &loss.grad_strong,
        &numerical_grad(&strong, |z| 2.0 * unlabelled(z)),
        "FixMatch strong",
    );
    let supervised = |z: &Array2<f64>| soft_cross_entropy(z.view(), targets.view()).unwrap().value;
    assert_grad_close(
        &loss.grad_labelled,
        &numerical_grad(&labelled, supervised),
        "FixMatch labelled",
    );
    assert_abs_diff_eq!(
        loss.value,
        (loss.supervised + 2.0 * loss.unlabelled),
        epsilon = 1e-14
    );
}

#[test]
fn mean_teacher_loss_gradient() {
    let student = logits(13, 5, 3, 2.0);
    let teacher = logits(14, 5, 3, 2.0);
    let targets = array![[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]];
    let mt = MeanTeacher::new(MeanTeacherConfig::default()).unwrap();
    let loss = mt
        .loss(student.view(), teacher.view(), targets.view(), 0.7)
        .unwrap();
    let q = softmax(teacher.view()).unwrap();
    let value = |z: &Array2<f64>| {
        let labelled = z.slice_axis(Axis(0), (..2).into()).to_owned();
        soft_cross_entropy(labelled.view(), targets.view())
            .unwrap()
            .value
            + 0.7 * mse_probabilities(z.view(), q.view()).unwrap().value
    };
    assert_abs_diff_eq!(loss.value, value(&student), epsilon = 1e-14);
    assert_grad_close(
        &loss.grad_student,
        &numerical_grad(&student, value),
        "Mean Teacher",
    );
}

#[test]
fn sharpen_matches_power_formula_and_guess_matches_mean_of_softmax() {
    let p = probabilities(15, 6, 5);
    for t in [0.25, 0.5, 1.0, 2.0] {
        let sharp = sharpen(p.view(), t).unwrap();
        for (row, out) in p.rows().into_iter().zip(sharp.rows()) {
            let powered: Vec<f64> = row.iter().map(|v| v.powf(1.0 / t)).collect();
            let total: f64 = powered.iter().sum();
            for (o, w) in out.iter().zip(&powered) {
                assert_abs_diff_eq!(*o, w / total, epsilon = 1e-14);
            }
        }
    }
    let views = [
        logits(16, 6, 5, 2.0),
        logits(17, 6, 5, 2.0),
        logits(18, 6, 5, 2.0),
    ];
    let guess = guess_labels(&[views[0].view(), views[1].view(), views[2].view()], 0.5).unwrap();
    let mean = views
        .iter()
        .map(|z| softmax(z.view()).unwrap())
        .fold(Array2::<f64>::zeros((6, 5)), |acc, p| acc + p)
        / 3.0;
    let expected = mean.mapv(|v| v * v);
    for (row, out) in expected.rows().into_iter().zip(guess.rows()) {
        let total = row.sum();
        for (o, e) in out.iter().zip(row.iter()) {
            assert_abs_diff_eq!(*o, e / total, epsilon = 1e-14);
        }
    }
}

/// Rebuilds X' and U' from the batch's permutation and λ with plain loops.
#[test]
fn mixmatch_batch_matches_an_independent_reconstruction() {
    let labelled =
        Array3::<f64>::from_shape_fn((3, 2, 2), |(b, i, j)| 10.0 * b as f64 + (2 * i + j) as f64);
    let targets = array![[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
    let view_1 = labelled
        .mapv(|v| -v - 100.0)
        .slice_axis(Axis(0), (..2).into())
        .to_owned();
    let view_2 = labelled
        .mapv(|v| v + 100.0)
        .slice_axis(Axis(0), (..2).into())
        .to_owned();
    let z1 = array![[2.0, 0.0, 0.0], [0.0, 0.0, 1.0]];
    let z2 = array![[1.0, 0.5, 0.0], [0.0, 2.0, 1.0]];
    let mixmatch = MixMatch::new(MixMatchConfig::default()).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let batch = mixmatch
        .build_batch(
            labelled.view(),
            targets.view(),
            &[view_1.view(), view_2.view()],
            &[z1.view(), z2.view()],
            &mut rng,
        )
        .unwrap();
    let guesses = guess_labels(&[z1.view(), z2.view()], 0.5).unwrap();
    assert_eq!(batch.guesses, guesses);
    let u_hat = concatenate(Axis(0), &[view_1.view(), view_2.view()]).unwrap();
    let q_hat = concatenate(Axis(0), &[guesses.view(), guesses.view()]).unwrap();
    let all = concatenate(Axis(0), &[labelled.view(), u_hat.view()]).unwrap();
    let all_targets = concatenate(Axis(0), &[targets.view(), q_hat.view()]).unwrap();
    let mut sorted = batch.permutation.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        (0..7).collect::<Vec<_>>(),
        "a shuffle of the concatenation"
    );
    for i in 0..7 {
        let (own, own_target, mixed, mixed_target, lambda) = if i < 3 {
            (
                labelled.index_axis(Axis(0), i),
                targets.row(i),
                batch.labelled_inputs.index_axis(Axis(0), i),
                batch.labelled_targets.row(i),
                batch.labelled_lambdas[i],
            )
        } else {
            (
                u_hat.index_axis(Axis(0), i - 3),
                q_hat.row(i - 3),
                batch.unlabelled_inputs.index_axis(Axis(0), i - 3),
                batch.unlabelled_targets.row(i - 3),
                batch.unlabelled_lambdas[i - 3],
            )
        };
        assert!((0.5..=1.0).contains(&lambda));
        let partner = all.index_axis(Axis(0), batch.permutation[i]);
        let partner_target = all_targets.row(batch.permutation[i]);
        let mut to_own = 0.0;
        let mut to_partner = 0.0;
        for ((m, o), w) in mixed.iter().zip(own.iter()).zip(partner.iter()) {
            assert_abs_diff_eq!(*m, (lambda * o + (1.0 - lambda) * w), epsilon = 1e-12);
            to_own += (m - o).powi(2);
            to_partner += (m - w).powi(2);
        }
        assert!(
            to_own <= to_partner + 1e-12,
            "item {i} is closer to its own source"
        );
        for ((m, o), w) in mixed_target
            .iter()
            .zip(own_target.iter())
            .zip(partner_target.iter())
        {
            assert_abs_diff_eq!(*m, (lambda * o + (1.0 - lambda) * w), epsilon = 1e-12);
        }
        assert_abs_diff_eq!(mixed_target.sum(), 1.0, epsilon = 1e-12);
    }
}

#[test]
fn mixmatch_loss_gradients() {
    let x = Array2::<f64>::from_shape_fn((2, 3), |(b, j)| (b + j) as f64);
    let y = array![[1.0, 0.0], [0.0, 1.0]];
    let u = Array2::<f64>::from_shape_fn((3, 3), |(b, j)| (b * j) as f64);
    let zu = array![[0.3, -0.2], [1.0, 0.0], [0.0, 0.5]];
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for unlabelled_loss in [SoftTargetLoss::Mse, SoftTargetLoss::SoftCrossEntropy] {
        let mixmatch = MixMatch::new(MixMatchConfig {
            lambda_u: 3.0,
            unlabelled_loss,
            ..Default::default()
        })
        .unwrap();
        let batch = mixmatch
            .build_batch(
                x.view(),
                y.view(),
                &[u.view(), u.view()],
                &[zu.view(), zu.view()],
                &mut rng,
            )
            .unwrap();
        let z_x = logits(20, 2, 2, 2.0);
        let z_u = logits(21, 6, 2, 2.0);
        let loss = mixmatch.loss(&batch, z_x.view(), z_u.view(), 0.5).unwrap();
        let unlabelled = |z: &Array2<f64>| match unlabelled_loss {
            SoftTargetLoss::Mse => {
                mse_probabilities(z.view(), batch.unlabelled_targets.view())
                    .unwrap()
                    .value
            }
            _ => {
                soft_cross_entropy(z.view(), batch.unlabelled_targets.view())
                    .unwrap()
                    .value
            }
        };
        assert_grad_close(
            &loss.grad_unlabelled,
            &numerical_grad(&z_u, |z| 1.5 * unlabelled(z)),
            "MixMatch L_u",
        );
        let supervised = |z: &Array2<f64>| {
            soft_cross_entropy(z.view(), batch.labelled_targets.view())
                .unwrap()
                .value
        };
        assert_grad_close(
            &loss.grad_labelled,
            &numerical_grad(&z_x, supervised),
            "MixMatch L_x",
        );
        assert_abs_diff_eq!(
            loss.value,
            supervised(&z_x) + 1.5 * unlabelled(&z_u),
            epsilon = 1e-13
        );
    }
}

#[test]
fn remixmatch_batch_anchors_aligns_and_mixes() {
    let classes = 3;
    let x = Array2::<f64>::from_shape_fn((2, 4), |(b, j)| (b * 4 + j) as f64);
    let y = array![[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]];
    let weak = Array2::<f64>::from_elem((3, 4), 50.0);
    let strong_1 = Array2::<f64>::from_elem((3, 4), -50.0);
    let strong_2 = Array2::<f64>::from_elem((3, 4), 200.0);
    let weak_logits = array![[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.5]];
    let mut recipe = ReMixMatch::<f64>::new(ReMixMatchConfig::default(), classes).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let batch = recipe
        .build_batch(
            x.view(),
            y.view(),
            weak.view(),
            &[strong_1.view(), strong_2.view()],
            weak_logits.view(),
            &mut rng,
        )
        .unwrap();
    // Alignment with one batch in each window: p(y) = (.5, .5, 0), p̃(y) = mean of the weak
    // predictions.
    let p = softmax(weak_logits.view()).unwrap();
    let mean_u = p.mean_axis(Axis(0)).unwrap();
    let ratio = array![0.5, 0.5, 0.0] / &mean_u;
    let mut aligned = &p * &ratio;
    for mut row in aligned.rows_mut() {
        let s = row.sum();
        row /= s;
    }
    for (a, b) in batch.aligned.iter().zip(aligned.iter()) {
        assert_abs_diff_eq!(a, b, epsilon = 1e-14);
    }
    assert_eq!(batch.guesses, sharpen(aligned.view(), 0.5).unwrap());
    assert_eq!(batch.unlabelled_inputs.shape(), &[9, 4]); // weak + 2 strong views
    assert_eq!(batch.strong_inputs, strong_1);
    assert_eq!(batch.permutation.len(), 11);
    assert!(batch.unlabelled_lambdas.iter().all(|&l| l >= 0.5));
    for row in batch.unlabelled_targets.rows() {
        assert_abs_diff_eq!(row.sum(), 1.0, epsilon = 1e-12);
    }
    assert_eq!(recipe.alignment().unlabelled_batches(), 1);

    let z_x = logits(30, 2, 3, 2.0);
    let z_u = logits(31, 9, 3, 2.0);
    let z_s = logits(32, 3, 3, 2.0);
    let loss = recipe
        .loss(&batch, z_x.view(), z_u.view(), z_s.view(), 1.0)
        .unwrap();
    let l_u1 = |z: &Array2<f64>| {
        soft_cross_entropy(z.view(), batch.guesses.view())
            .unwrap()
            .value
    };
    assert_grad_close(
        &loss.grad_strong,
        &numerical_grad(&z_s, |z| 0.5 * l_u1(z)),
        "ReMixMatch L_u1",
    );
    let l_u = |z: &Array2<f64>| {
        soft_cross_entropy(z.view(), batch.unlabelled_targets.view())
            .unwrap()
            .value
    };
    assert_grad_close(
        &loss.grad_unlabelled,
        &numerical_grad(&z_u, |z| 1.5 * l_u(z)),
        "ReMixMatch L_u",
    );
    assert_abs_diff_eq!(
        loss.value,
        loss.supervised + 1.5 * loss.unlabelled + 0.5 * loss.strong,
        epsilon = 1e-13
    );

    // Without the weak view in the mix, only the strong views are mixed.
    let mut strong_only = ReMixMatch::<f64>::new(
        ReMixMatchConfig {
            include_weak_in_mix: false,
            ..Default::default()
        },
        classes,
    )
    .unwrap();
    let batch = strong_only
        .build_batch(
            x.view(),
            y.view(),
            weak.view(),
            &[strong_1.view()],
            weak_logits.view(),
            &mut rng,
        )
        .unwrap();
    assert_eq!(batch.unlabelled_inputs.shape(), &[3, 4]);
}

#[test]
fn ema_closed_form_for_a_constant_student() {
    // θ'_n = c + (θ'_0 − c)·Π α_t; α_0 = 0 makes the first update a copy, so with a
    // constant student the teacher is c from then on. Start from a later step with a
    // pure-decay schedule to see the geometric closed form.
    let c = array![2.0_f64, -1.0];
    let mut teacher = EmaTeacher::new(array![10.0, 10.0].view(), 0.9).unwrap();
    teacher.update(c.view()).unwrap();
    assert_eq!(teacher.params(), c.view());
    let start = array![10.0, 10.0];
    let mut manual = start.clone();
    let decay = 0.9_f64;
    for _ in 0..50 {
        ema_update(manual.view_mut(), c.view(), decay).unwrap();
    }
    for k in 0..2 {
        let closed = c[k] + (start[k] - c[k]) * decay.powi(50);
        assert_abs_diff_eq!(manual[k], closed, epsilon = 1e-12);
    }
    // With decay capping at step 9 (α_9 = 0.9): Π_{t=1}^{n} α_t = 1/10 · 0.9^{n-9} for n ≥ 9.
    let mut teacher = EmaTeacher::new(array![0.0_f64].view(), 0.9).unwrap();
    teacher.update(array![10.0].view()).unwrap(); // copy: 10
    for _ in 1..30 {
        teacher.update(array![0.0].view()).unwrap();
    }
    // Student 0 from step 1 on: teacher = 10 · Π_{t=1}^{29} α_t.
    let product: f64 = (1..30).map(|t| ema_alpha(t, 0.9)).product();
    assert_abs_diff_eq!(teacher.params()[0], 10.0 * product, epsilon = 1e-12);
    assert_abs_diff_eq!(product, 0.1 * 0.9_f64.powi(20), epsilon = 1e-15);
}

#[test]
fn alignment_window_of_128_evicts_the_first_batch() {
    let mut da = DistributionAlignment::<f64>::new(2, 128).unwrap();
    da.observe_unlabelled(array![[1.0, 0.0], [1.0, 0.0]].view())
        .unwrap();
    for _ in 0..127 {
        da.observe_unlabelled(array![[0.25, 0.75], [0.25, 0.75]].view())
            .unwrap();
    }
    let with_first = da.unlabelled_marginal().unwrap();
    assert_abs_diff_eq!(with_first[0], (1.0 + 127.0 * 0.25) / 128.0, epsilon = 1e-14);
    da.observe_unlabelled(array![[0.25, 0.75], [0.25, 0.75]].view())
        .unwrap();
    assert_eq!(da.unlabelled_batches(), 128);
    let without_first = da.unlabelled_marginal().unwrap();
    assert_abs_diff_eq!(without_first[0], 0.25, epsilon = 1e-14);
}

type LossFn<F> = fn(ArrayView2<F>, ArrayView2<F>) -> Result<LossAndGradient<F>>;

#[test]
fn f32_paths_agree_with_f64() {
    let z = logits(40, 4, 3, 2.0);
    let q = probabilities(41, 4, 3);
    let z32 = z.mapv(|v| v as f32);
    let q32 = q.mapv(|v| v as f32);
    let pairs: [(LossFn<f64>, LossFn<f32>); 2] = [
        (soft_cross_entropy, soft_cross_entropy),
        (mse_probabilities, mse_probabilities),
    ];
    for (f64_loss, f32_loss) in pairs {
        let a = f64_loss(z.view(), q.view()).unwrap();
        let b = f32_loss(z32.view(), q32.view()).unwrap();
        assert_abs_diff_eq!(a.value, b.value as f64, epsilon = 1e-5);
        for (x, y) in a.grad.iter().zip(b.grad.iter()) {
            assert_abs_diff_eq!(*x, *y as f64, epsilon = 1e-5);
        }
    }
    let s64 = sharpen(q.view(), 0.5).unwrap();
    let s32 = sharpen(q32.view(), 0.5).unwrap();
    for (x, y) in s64.iter().zip(s32.iter()) {
        assert_abs_diff_eq!(*x, *y as f64, epsilon = 1e-5);
    }
}
