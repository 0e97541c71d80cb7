//! Property tests (proptest) of the invariants every SSL building block must keep.

use ndarray::{Array1, Array2, Array3};
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tessera_ssl::*;

use crate::numerical_grad;

fn matrix(rows: usize, cols: usize, spread: f64) -> impl Strategy<Value = Array2<f64>> {
    prop::collection::vec(-spread..spread, rows * cols)
        .prop_map(move |v| Array2::from_shape_vec((rows, cols), v).unwrap())
}

/// (logits, other logits) of a random shape.
fn logit_pair() -> impl Strategy<Value = (Array2<f64>, Array2<f64>)> {
    (1usize..5, 2usize..6).prop_flat_map(|(r, c)| (matrix(r, c, 6.0), matrix(r, c, 6.0)))
}

fn close(a: &Array2<f64>, b: &Array2<f64>, tol: f64) -> bool {
    a.iter().zip(b.iter()).all(|(x, y)| (x - y).abs() <= tol)
}

fn row_sums_vanish(grad: &Array2<f64>) -> bool {
    grad.rows().into_iter().all(|r| r.sum().abs() < 1e-12)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn sharpen_keeps_distributions_and_argmax((z, _) in logit_pair(), t in 0.05f64..4.0) {
        let p = softmax(z.view()).unwrap();
        let s = sharpen(p.view(), t).unwrap();
        let identity = sharpen(p.view(), 1.0).unwrap();
        prop_assert!(close(&identity, &p, 1e-12));
        for (row, out) in p.rows().into_iter().zip(s.rows()) {
            prop_assert!((out.sum() - 1.0).abs() < 1e-12);
            let argmax = |r: ndarray::ArrayView1<f64>| r.iter().enumerate().fold(0, |b, (i, v)| if *v > r[b] { i } else { b });
            prop_assert!(out[argmax(row)] >= out.iter().cloned().fold(0.0, f64::max) - 1e-12);
            // Lower temperature ⇒ the top class gains mass.
            let top = row.iter().cloned().fold(0.0, f64::max);
            let sharp_top = out.iter().cloned().fold(0.0, f64::max);
            if t < 1.0 { prop_assert!(sharp_top >= top - 1e-12); } else { prop_assert!(sharp_top <= top + 1e-12); }
        }
    }

    #[test]
    fn sharpen_tends_to_one_hot(z in matrix(3, 4, 5.0)) {
        let p = softmax(z.view()).unwrap();
        let s = sharpen(p.view(), 1e-4).unwrap();
        for (row, out) in p.rows().into_iter().zip(s.rows()) {
            let mut sorted: Vec<f64> = row.to_vec();
            sorted.sort_by(|a, b| b.partial_cmp(a).unwrap());
            // With a clear winner (ratio ≥ 1.01) the 1e-4 temperature gives a one-hot row.
            if sorted[0] >= 1.01 * sorted[1] {
                let top = out.iter().cloned().fold(0.0, f64::max);
                prop_assert!((top - 1.0).abs() < 1e-12, "{out}");
            }
        }
    }

    #[test]
    fn soft_cross_entropy_gradient_matches_finite_differences((z, t) in logit_pair()) {
        let q = softmax(t.view()).unwrap();
        let loss = soft_cross_entropy(z.view(), q.view()).unwrap();
        let numeric = numerical_grad(&z, |z| soft_cross_entropy(z.view(), q.view()).unwrap().value);
        prop_assert!(close(&loss.grad, &numeric, 1e-7));
        prop_assert!(row_sums_vanish(&loss.grad));
        // Gibbs: CE(q, p) ≥ H(q).
        let entropy: f64 = -q.iter().filter(|&&v| v > 0.0).map(|v| v * v.ln()).sum::<f64>() / z.nrows() as f64;
        prop_assert!(loss.value >= entropy - 1e-12);
    }

    #[test]
    fn mse_gradient_matches_finite_differences((z, t) in logit_pair()) {
        let q = softmax(t.view()).unwrap();
        let loss = mse_probabilities(z.view(), q.view()).unwrap();
        let numeric = numerical_grad(&z, |z| mse_probabilities(z.view(), q.view()).unwrap().value);
        prop_assert!(close(&loss.grad, &numeric, 1e-8));
        prop_assert!(row_sums_vanish(&loss.grad));
        prop_assert!(loss.value >= 0.0);
    }

    #[test]
    fn jensen_shannon_is_bounded_symmetric_and_its_gradient_checks((a, b) in logit_pair()) {
        let ab = jensen_shannon(a.view(), b.view()).unwrap();
        let ba = jensen_shannon(b.view(), a.view()).unwrap();
        prop_assert!((ab.value - ba.value).abs() < 1e-12);
        prop_assert!(ab.value >= 0.0 && ab.value <= std::f64::consts::LN_2 + 1e-12);
        prop_assert!(close(&ab.grad_a, &ba.grad_b, 1e-12));
        let numeric = numerical_grad(&a, |a| jensen_shannon(a.view(), b.view()).unwrap().value);
        prop_assert!(close(&ab.grad_a, &numeric, 1e-8));
        prop_assert!(row_sums_vanish(&ab.grad_a) && row_sums_vanish(&ab.grad_b));
    }

    #[test]
    fn view_difference_gradient_matches_finite_differences((a, b) in logit_pair(), shift in -1.0f64..1.0) {
        let fa = &a + shift;
        let ga = b.mapv(|v| v * 0.5);
        let loss = view_difference(a.view(), b.view(), fa.view(), ga.view()).unwrap();
        let numeric = numerical_grad(&b, |g| view_difference(a.view(), g.view(), fa.view(), ga.view()).unwrap().value);
        prop_assert!(close(&loss.grad_g, &numeric, 1e-7));
        let numeric = numerical_grad(&ga, |x| view_difference(a.view(), b.view(), fa.view(), x.view()).unwrap().value);
        prop_assert!(close(&loss.grad_g_on_adv_f, &numeric, 1e-7));
    }

    #[test]
    fn fixmatch_mask_is_threshold_on_max_probability((z, s) in logit_pair(), tau in 0.0f64..=1.0, higher in 0.0f64..=1.0) {
        let p = softmax(z.view()).unwrap();
        let pseudo = pseudo_labels(p.view(), tau).unwrap();
        for (b, row) in p.rows().into_iter().enumerate() {
            let max = row.iter().cloned().fold(0.0, f64::max);
            prop_assert_eq!(pseudo.mask[b] == 1.0, max >= tau);
            prop_assert_eq!(row[pseudo.labels[b]], max);
        }
        // A higher threshold keeps a subset.
        let stricter = pseudo_labels(p.view(), tau.max(higher)).unwrap();
        prop_assert!(stricter.mask.iter().zip(pseudo.mask.iter()).all(|(s, m)| s <= m));
        let loss = masked_cross_entropy(s.view(), &pseudo).unwrap();
        let numeric = numerical_grad(&s, |x| masked_cross_entropy(x.view(), &pseudo).unwrap().value);
        prop_assert!(close(&loss.grad, &numeric, 1e-7));
        // Whole-batch mean: equals the unmasked mean of the per-item masked losses.
        let per_item: f64 = (0..s.nrows()).map(|b| {
            let row = s.row(b).insert_axis(ndarray::Axis(0));
            let lp = log_softmax(row).unwrap();
            -pseudo.mask[b] * lp[[0, pseudo.labels[b]]]
        }).sum();
        prop_assert!((loss.value - per_item / s.nrows() as f64).abs() < 1e-12);
    }

    #[test]
    fn mixmatch_batch_invariants(
        labelled in 1usize..5,
        unlabelled in 1usize..5,
        k in 1usize..4,
        seed in any::<u64>(),
    ) {
        let classes = 3;
        let x = Array3::<f64>::from_shape_fn((labelled, 2, 3), |(b, i, j)| (b * 6 + i * 3 + j) as f64);
        let y = Array2::<f64>::from_shape_fn((labelled, classes), |(b, c)| if c == b % classes { 1.0 } else { 0.0 });
        let views: Vec<Array3<f64>> = (0..k).map(|v| Array3::from_elem((unlabelled, 2, 3), -(v as f64) - 1.0)).collect();
        let logits: Vec<Array2<f64>> = (0..k).map(|v| Array2::from_shape_fn((unlabelled, classes), |(b, c)| ((b + c + v) % 4) as f64)).collect();
        let view_refs: Vec<_> = views.iter().map(|v| v.view()).collect();
        let logit_refs: Vec<_> = logits.iter().map(|v| v.view()).collect();
        let mixmatch = MixMatch::new(MixMatchConfig::default()).unwrap();
        let build = |seed| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            mixmatch.build_batch(x.view(), y.view(), &view_refs, &logit_refs, &mut rng).unwrap()
        };
        let batch = build(seed);
        prop_assert_eq!(batch.unlabelled_inputs.shape(), &[k * unlabelled, 2, 3]);
        let mut sorted = batch.permutation.clone();
        sorted.sort_unstable();
        prop_assert_eq!(sorted, (0..labelled + k * unlabelled).collect::<Vec<_>>());
        for targets in [&batch.labelled_targets, &batch.unlabelled_targets] {
            for row in targets.rows() {
                prop_assert!((row.sum() - 1.0).abs() < 1e-12);
                prop_assert!(row.iter().all(|&v| v >= 0.0));
            }
        }
        prop_assert!(batch.labelled_lambdas.iter().chain(batch.unlabelled_lambdas.iter()).all(|&l| (0.5..=1.0).contains(&l)));
        let again = build(seed);
        prop_assert_eq!(again.permutation, batch.permutation);
        prop_assert_eq!(again.unlabelled_inputs, batch.unlabelled_inputs);
    }

    #[test]
    fn ema_is_the_running_mean_then_decays(values in prop::collection::vec(-5.0f64..5.0, 1..40)) {
        let decay = 0.95; // α_t caps at t = 19
        let mut teacher = EmaTeacher::new(Array1::from_elem(1, 123.0).view(), decay).unwrap();
        let mut reference = 123.0;
        for (t, v) in values.iter().enumerate() {
            teacher.update(Array1::from_elem(1, *v).view()).unwrap();
            let alpha = (1.0 - 1.0 / (t as f64 + 1.0)).min(decay);
            reference = alpha * reference + (1.0 - alpha) * v;
            if t < 20 {
                let mean = values[..=t].iter().sum::<f64>() / (t + 1) as f64;
                prop_assert!((teacher.params()[0] - mean).abs() < 1e-12);
            }
        }
        prop_assert!((teacher.params()[0] - reference).abs() < 1e-12);
    }

    #[test]
    fn alignment_gives_distributions_and_is_identity_when_marginals_agree(z in matrix(4, 3, 3.0)) {
        let p = softmax(z.view()).unwrap();
        let mean = p.mean_axis(ndarray::Axis(0)).unwrap();
        let mut da = DistributionAlignment::with_labelled_marginal(mean.view(), 128).unwrap();
        da.observe_unlabelled(p.view()).unwrap();
        let aligned = da.align(p.view()).unwrap();
        prop_assert!(close(&aligned, &p, 1e-12));
        let mut skewed = DistributionAlignment::with_labelled_marginal(ndarray::array![0.6, 0.3, 0.1].view(), 128).unwrap();
        skewed.observe_unlabelled(p.view()).unwrap();
        let aligned = skewed.align(p.view()).unwrap();
        for row in aligned.rows() {
            prop_assert!((row.sum() - 1.0).abs() < 1e-12);
        }
    }

    #[test]
    fn ramps_rise_from_start_to_one(a in 0.0f64..1.0, b in 0.0f64..1.0) {
        let (low, high) = if a <= b { (a, b) } else { (b, a) };
        for kind in [RampKind::Linear, RampKind::Sigmoid, RampKind::Cosine] {
            let (l, h) = (kind.at(low).unwrap(), kind.at(high).unwrap());
            prop_assert!(l <= h + 1e-15 && (0.0..=1.0).contains(&l) && (0.0..=1.0).contains(&h));
        }
    }
}
