//! Every gradient of the attention kernel and of both masks against central finite
//! differences, in f64.

use ndarray::{Array3, Array4};
use tessera_gmm::{
    attention_backward, attention_forward, ElementwiseMask, GaussianMixtureMask, LogitMask,
    MaskCombine, MaskRef, TokenGrid,
};
use tessera_testing::{assert_all_close, central_difference_gradient};

use crate::common::{random4, random_vec};

const BATCH: usize = 2;
const HEADS: usize = 2;
const D_HEAD: usize = 3;
const D_VALUE: usize = 2;
const H: f64 = 1e-6;

/// L = Σ W ⊙ attention(q, k, v; mask).
fn loss(
    q: &Array4<f64>,
    k: &Array4<f64>,
    v: &Array4<f64>,
    w: &Array4<f64>,
    mask: Option<MaskRef<'_, f64>>,
) -> f64 {
    let (out, _) = attention_forward(q.view(), k.view(), v.view(), mask).unwrap();
    (&out * w).sum()
}

fn mask_ref<'a>(mask: Option<&'a dyn LogitMask<f64>>, p: &'a [f64]) -> Option<MaskRef<'a, f64>> {
    mask.map(|m| MaskRef::new(m, p))
}

fn with_entries(a: &Array4<f64>, x: &[f64]) -> Array4<f64> {
    Array4::from_shape_vec(a.raw_dim(), x.to_vec()).unwrap()
}

fn check_gradients(mask: Option<&dyn LogitMask<f64>>, params: &[f64], tokens: usize, what: &str) {
    let shape = (BATCH, HEADS, tokens, D_HEAD);
    let q = random4(shape, 1, 1.0);
    let k = random4(shape, 2, 1.0);
    let v = random4((BATCH, HEADS, tokens, D_VALUE), 3, 1.0);
    let w = random4((BATCH, HEADS, tokens, D_VALUE), 4, 1.0);
    let (_, cache) =
        attention_forward(q.view(), k.view(), v.view(), mask_ref(mask, params)).unwrap();
    let mut grad_params = vec![0.0; params.len()];
    let grads = attention_backward(
        &cache,
        q.view(),
        k.view(),
        v.view(),
        w.view(),
        mask_ref(mask, params),
        &mut grad_params,
    )
    .unwrap();

    let flat = |a: &Array4<f64>| a.iter().copied().collect::<Vec<_>>();
    let fd_q = central_difference_gradient(
        |x| loss(&with_entries(&q, x), &k, &v, &w, mask_ref(mask, params)),
        &flat(&q),
        H,
    );
    let fd_k = central_difference_gradient(
        |x| loss(&q, &with_entries(&k, x), &v, &w, mask_ref(mask, params)),
        &flat(&k),
        H,
    );
    let fd_v = central_difference_gradient(
        |x| loss(&q, &k, &with_entries(&v, x), &w, mask_ref(mask, params)),
        &flat(&v),
        H,
    );
    assert_all_close(
        &grads.q,
        &with_entries(&q, &fd_q),
        1e-6,
        1e-8,
        &format!("{what}: dQ"),
    );
    assert_all_close(
        &grads.k,
        &with_entries(&k, &fd_k),
        1e-6,
        1e-8,
        &format!("{what}: dK"),
    );
    assert_all_close(
        &grads.v,
        &with_entries(&v, &fd_v),
        1e-6,
        1e-8,
        &format!("{what}: dV"),
    );
    if mask.is_some() {
        let fd_p =
            central_difference_gradient(|p| loss(&q, &k, &v, &w, mask_ref(mask, p)), params, H);
        assert_all_close(
            &ndarray::arr1(&grad_params),
            &ndarray::arr1(&fd_p),
            1e-6,
            1e-8,
            &format!("{what}: mask parameters"),
        );
        assert!(
            grad_params.iter().any(|g| g.abs() > 1e-6),
            "{what}: all mask gradients ~0"
        );
    }
}

/// α and σ of moderate size, so that every Gaussian varies over the grid.
fn gmm_params(mask: &GaussianMixtureMask) -> Vec<f64> {
    let kh = mask.kernels() * LogitMask::<f64>::heads(mask);
    let mut p = random_vec(kh, 10, -1.5, 1.5);
    p.extend(random_vec(kh, 11, 0.6, 2.5));
    // One negative σ: only σ² enters, but its gradient's sign must follow σ.
    p[kh] = -p[kh];
    p
}

#[test]
fn plain_attention_gradients_match_finite_differences() {
    check_gradients(None, &[], 7, "no mask");
}

#[test]
fn gmm_gradients_match_finite_differences_in_both_modes() {
    let grid = TokenGrid::new(3, 4).unwrap().with_extra_tokens(1).unwrap();
    for combine in [MaskCombine::Multiply, MaskCombine::Add] {
        let gmm = GaussianMixtureMask::new(grid, HEADS, 3, 0)
            .unwrap()
            .with_combine(combine);
        let params = gmm_params(&gmm);
        check_gradients(
            Some(&gmm),
            &params,
            grid.tokens(),
            &format!("gmm {combine:?}"),
        );
    }
}

#[test]
fn gmm_gradients_at_the_reference_initialisation() {
    let grid = TokenGrid::square(3).unwrap();
    let gmm = GaussianMixtureMask::new(grid, HEADS, 5, 7).unwrap();
    let mut params = vec![0.0; LogitMask::<f64>::parameter_count(&gmm)];
    gmm.initial_parameters(&mut params).unwrap();
    check_gradients(Some(&gmm), &params, grid.tokens(), "gmm at init");
}

#[test]
fn elm_gradients_match_finite_differences_in_both_modes() {
    let tokens = 5;
    for combine in [MaskCombine::Multiply, MaskCombine::Add] {
        let elm = ElementwiseMask::new(tokens, HEADS)
            .unwrap()
            .with_combine(combine);
        // Zero (the initialisation) and a random point.
        check_gradients(
            Some(&elm),
            &[0.0; 25],
            tokens,
            &format!("elm {combine:?} at 0"),
        );
        let params = random_vec(tokens * tokens, 12, -2.0, 2.0);
        check_gradients(Some(&elm), &params, tokens, &format!("elm {combine:?}"));
    }
}

#[test]
fn gmm_mask_gradient_alone_matches_finite_differences() {
    // L = Σ W ⊙ G directly, without attention: isolates the per-class reduction.
    let grid = TokenGrid::new(4, 3).unwrap().with_extra_tokens(2).unwrap();
    let gmm = GaussianMixtureMask::new(grid, 3, 2, 0).unwrap();
    let params = gmm_params(&gmm);
    let n = grid.tokens();
    let w = Array3::from_shape_vec((3, n, n), random_vec(3 * n * n, 5, -1.0, 1.0)).unwrap();
    let f = |p: &[f64]| (&tessera_gmm::mask_array(&gmm, p).unwrap() * &w).sum();
    let fd = central_difference_gradient(f, &params, H);
    let mut grad = vec![0.0; params.len()];
    gmm.accumulate_gradient(&params, w.view(), &mut grad)
        .unwrap();
    assert_all_close(
        &ndarray::arr1(&grad),
        &ndarray::arr1(&fd),
        1e-6,
        1e-8,
        "dG → dα, dσ",
    );
    // It accumulates.
    gmm.accumulate_gradient(&params, w.view(), &mut grad)
        .unwrap();
    assert_all_close(
        &ndarray::arr1(&grad),
        &ndarray::arr1(&fd).mapv(|g| 2.0 * g),
        1e-6,
        1e-8,
        "twice",
    );
}
