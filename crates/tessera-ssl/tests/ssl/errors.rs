//! Bad input returns an error that names the parameter, for every public entry point.

use ndarray::{array, Array2, Array3};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tessera_ssl::*;

fn names(result: Result<impl std::fmt::Debug>, parameter: &str) {
    let err = result.expect_err("bad input must be rejected");
    let text = err.to_string();
    assert!(
        text.contains(parameter),
        "`{parameter}` not named in: {text}"
    );
}

#[test]
fn scalar_parameters() {
    let p = array![[0.25_f64, 0.75]];
    for t in [0.0, -0.5, f64::NAN, f64::INFINITY] {
        names(sharpen(p.view(), t), "temperature");
        names(guess_labels(&[p.view()], t), "temperature");
        names(
            MixMatch::new(MixMatchConfig {
                temperature: t,
                ..Default::default()
            }),
            "temperature",
        );
        names(
            ReMixMatch::<f64>::new(
                ReMixMatchConfig {
                    temperature: t,
                    ..Default::default()
                },
                2,
            ),
            "temperature",
        );
    }
    for tau in [-0.01, 1.01, f64::NAN] {
        names(pseudo_labels(p.view(), tau), "threshold");
        names(
            FixMatch::new(FixMatchConfig {
                threshold: tau,
                lambda_u: 1.0,
            }),
            "threshold",
        );
    }
    names(
        MixMatch::new(MixMatchConfig {
            alpha: 0.0,
            ..Default::default()
        }),
        "alpha",
    );
    names(
        MixMatch::new(MixMatchConfig {
            lambda_u: -1.0,
            ..Default::default()
        }),
        "lambda_u",
    );
    names(
        ReMixMatch::<f32>::new(
            ReMixMatchConfig {
                lambda_u1: f64::NAN,
                ..Default::default()
            },
            2,
        ),
        "lambda_u1",
    );
    names(
        ReMixMatch::<f32>::new(
            ReMixMatchConfig {
                history: 0,
                ..Default::default()
            },
            2,
        ),
        "history",
    );
    names(
        MeanTeacher::new(MeanTeacherConfig {
            decay: 1.5,
            lambda_ccost: 1.0,
        }),
        "decay",
    );
    names(
        DeepCoTraining::new(DeepCoTrainingConfig {
            epsilon: -0.02,
            ..Default::default()
        }),
        "epsilon",
    );
    names(
        ema_update(array![0.0_f64].view_mut(), array![1.0].view(), 1.5),
        "alpha",
    );
    let mt = MeanTeacher::new(MeanTeacherConfig::default()).unwrap();
    names(mt.loss(p.view(), p.view(), p.view(), -1.0), "ramp");
}

#[test]
fn probabilities_where_required() {
    let logits = array![[2.0_f64, -1.0]];
    names(sharpen(logits.view(), 0.5), "probabilities");
    names(pseudo_labels(logits.view(), 0.9), "probabilities");
    names(soft_cross_entropy(logits.view(), logits.view()), "targets");
    names(
        mse_probabilities(logits.view(), array![[-0.5, 1.5]].view()),
        "targets",
    );
    let mut da = DistributionAlignment::<f64>::new(2, 128).unwrap();
    names(
        da.observe_unlabelled(logits.view()),
        "unlabelled_probabilities",
    );
    names(da.observe_labelled(logits.view()), "labelled_targets");
    let mixmatch = MixMatch::new(MixMatchConfig::default()).unwrap();
    let x = Array2::<f64>::zeros((1, 3));
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    names(
        mixmatch.build_batch(
            x.view(),
            logits.view(),
            &[x.view()],
            &[logits.view()],
            &mut rng,
        ),
        "labelled_targets",
    );
}

#[test]
fn non_finite_values() {
    let nan = array![[f64::NAN, 0.0]];
    let ok = array![[0.0_f64, 0.0]];
    let q = array![[0.5_f64, 0.5]];
    names(softmax(nan.view()).map_err(Error::from), "logits");
    names(soft_cross_entropy(nan.view(), q.view()), "logits");
    names(jensen_shannon(ok.view(), nan.view()), "logits_b");
    names(
        view_difference(ok.view(), ok.view(), nan.view(), ok.view()),
        "logits_f_on_adv_g",
    );
    names(guess_labels(&[ok.view(), nan.view()], 0.5), "view_logits");
    let mut teacher = EmaTeacher::new(array![0.0_f64, 0.0].view(), 0.99).unwrap();
    names(teacher.update(array![f64::INFINITY, 0.0].view()), "student");
    let mixmatch = MixMatch::new(MixMatchConfig::default()).unwrap();
    let x = Array3::<f64>::zeros((1, 2, 2));
    let mut bad_x = x.clone();
    bad_x[[0, 1, 1]] = f64::NEG_INFINITY;
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    names(
        mixmatch.build_batch(bad_x.view(), q.view(), &[x.view()], &[ok.view()], &mut rng),
        "labelled_inputs",
    );
    names(
        mixmatch.build_batch(x.view(), q.view(), &[bad_x.view()], &[ok.view()], &mut rng),
        "unlabelled_views",
    );
    names(
        mixmatch.build_batch(x.view(), q.view(), &[x.view()], &[nan.view()], &mut rng),
        "view_logits",
    );
}

#[test]
fn mismatched_batches_and_empty_views() {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let x = Array3::<f64>::zeros((2, 2, 2));
    let y = array![[1.0, 0.0], [0.0, 1.0]];
    let y_short = array![[1.0, 0.0]];
    let u = Array3::<f64>::zeros((3, 2, 2));
    let u_other_item = Array3::<f64>::zeros((3, 2, 5));
    let z_u = Array2::<f64>::zeros((3, 2));
    let z_wrong = Array2::<f64>::zeros((4, 2));
    let mixmatch = MixMatch::new(MixMatchConfig::default()).unwrap();
    names(
        mixmatch.build_batch(
            x.view(),
            y_short.view(),
            &[u.view()],
            &[z_u.view()],
            &mut rng,
        ),
        "labelled_targets",
    );
    names(
        mixmatch.build_batch(
            x.view(),
            y.view(),
            &[u_other_item.view()],
            &[z_u.view()],
            &mut rng,
        ),
        "unlabelled_views",
    );
    names(
        mixmatch.build_batch(x.view(), y.view(), &[u.view()], &[z_wrong.view()], &mut rng),
        "unlabelled_logits",
    );
    names(
        mixmatch.build_batch::<f64, _, _>(x.view(), y.view(), &[], &[], &mut rng),
        "K = 0",
    );
    let batch = mixmatch
        .build_batch(
            x.view(),
            y.view(),
            &[u.view(), u.view()],
            &[z_u.view(), z_u.view()],
            &mut rng,
        )
        .unwrap();
    names(
        mixmatch.loss(&batch, z_u.view(), z_u.view(), 1.0),
        "labelled_logits",
    );
    names(
        mixmatch.loss(&batch, y.view(), z_u.view(), 1.0),
        "unlabelled_logits",
    );

    let mut remixmatch = ReMixMatch::<f64>::new(ReMixMatchConfig::default(), 2).unwrap();
    names(
        remixmatch.build_batch(x.view(), y.view(), u.view(), &[], z_u.view(), &mut rng),
        "K = 0",
    );
    names(
        remixmatch.build_batch(
            x.view(),
            y.view(),
            u.view(),
            &[u.view()],
            z_wrong.view(),
            &mut rng,
        ),
        "weak_logits",
    );
    let u_two = Array3::<f64>::zeros((2, 2, 2));
    names(
        remixmatch.build_batch(
            x.view(),
            y.view(),
            u.view(),
            &[u_two.view()],
            z_u.view(),
            &mut rng,
        ),
        "strong_views",
    );
    assert_eq!(
        remixmatch.alignment().unlabelled_batches(),
        0,
        "failed builds leave the window"
    );
    let three_classes = array![[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]];
    let z3 = Array2::<f64>::zeros((3, 3));
    names(
        remixmatch.build_batch(
            x.view(),
            three_classes.view(),
            u.view(),
            &[u.view()],
            z3.view(),
            &mut rng,
        ),
        "labelled_targets",
    );

    let fixmatch = FixMatch::new(FixMatchConfig::default()).unwrap();
    names(
        fixmatch.loss(y.view(), y.view(), z_u.view(), z_wrong.view()),
        "strong_logits",
    );
    let pseudo = pseudo_labels(y.view(), 0.5).unwrap();
    names(masked_cross_entropy(z_u.view(), &pseudo), "pseudo");
    names(jensen_shannon(z_u.view(), z_wrong.view()), "logits_b");
    names(softmax_backward(y.view(), z_u.view()), "grad_probabilities");
    names(one_hot::<f32>(&[2], 2), "labels");
    names(DistributionAlignment::<f32>::new(0, 1), "classes");
    let mt = MeanTeacher::new(MeanTeacherConfig::default()).unwrap();
    names(
        mt.loss(z_u.view(), z_wrong.view(), y.view(), 1.0),
        "teacher_logits",
    );
    let empty = Array2::<f64>::zeros((0, 2));
    names(softmax(empty.view()).map_err(Error::from), "logits");
}
