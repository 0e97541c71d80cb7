//! Large logits, and bad input: every error names its parameter.

use approx::assert_abs_diff_eq;
use ndarray::{Array3, Array4};
use tessera_gmm::{
    attention_backward, attention_forward, ElementwiseMask, Error, GaussianMixtureMask, InputError,
    LogitMask, MaskRef, TokenGrid,
};

use crate::common::random4;

fn name(e: Error) -> &'static str {
    e.into_input().name()
}

#[test]
fn huge_logits_neither_overflow_nor_lose_their_gradients() {
    for scale in [1e2, 1e4] {
        let q = random4((1, 2, 9, 4), 1, scale);
        let k = random4((1, 2, 9, 4), 2, scale);
        let v = random4((1, 2, 9, 4), 3, 1.0);
        let grid = TokenGrid::square(3).unwrap();
        let gmm = GaussianMixtureMask::new(grid, 2, 2, 0).unwrap();
        let params = [1.0, -0.5, 0.3, 2.0, 1.0, 3.0, 0.5, 2.0];
        let m = Some(MaskRef::new(&gmm, &params));
        let (out, cache) = attention_forward(q.view(), k.view(), v.view(), m).unwrap();
        assert!(out.iter().all(|x| x.is_finite()));
        for row in cache.probabilities().rows() {
            assert_abs_diff_eq!(row.sum(), 1.0, epsilon = 1e-12);
        }
        let mut gp = vec![0.0; params.len()];
        let g = attention_backward(&cache, q.view(), k.view(), v.view(), out.view(), m, &mut gp)
            .unwrap();
        assert!(g
            .q
            .iter()
            .chain(&g.k)
            .chain(&g.v)
            .chain(&gp)
            .all(|x| x.is_finite()));
    }
    // f32 logits of 1e4 (exp would overflow at 89).
    let q = random4((1, 1, 4, 2), 4, 1e4).mapv(|x| x as f32);
    let (out, cache) = attention_forward(q.view(), q.view(), q.view(), None).unwrap();
    assert!(out.iter().all(|x| x.is_finite()));
    assert!(cache.probabilities().iter().all(|p| p.is_finite()));
}

#[test]
fn grids_reject_bad_sizes() {
    assert_eq!(
        name(TokenGrid::square_for_tokens(50, 0).unwrap_err()),
        "tokens"
    );
    assert_eq!(
        name(TokenGrid::square_for_tokens(3, 5).unwrap_err()),
        "extra"
    );
    assert_eq!(name(TokenGrid::new(0, 3).unwrap_err()), "rows");
    assert_eq!(name(TokenGrid::new(3, 0).unwrap_err()), "cols");
    let e = TokenGrid::square(4)
        .unwrap()
        .with_extra_tokens(usize::MAX)
        .unwrap_err();
    assert!(matches!(
        e.into_input(),
        InputError::TooLarge { name: "tokens", .. }
    ));
}

#[test]
fn masks_reject_bad_configurations_and_parameters() {
    let grid = TokenGrid::square(3).unwrap();
    assert_eq!(
        name(GaussianMixtureMask::new(grid, 2, 0, 0).unwrap_err()),
        "kernels"
    );
    assert_eq!(
        name(GaussianMixtureMask::new(grid, 0, 5, 0).unwrap_err()),
        "heads"
    );
    assert_eq!(name(ElementwiseMask::new(0, 2).unwrap_err()), "tokens");
    let gmm = GaussianMixtureMask::new(grid, 2, 2, 0).unwrap();
    let mut out = Array3::<f64>::zeros((2, 9, 9));
    let good = [1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0];
    let mut bad = good;
    bad[5] = f64::NAN;
    let e = gmm.mask(&bad, out.view_mut()).unwrap_err();
    assert_eq!(e, InputError::non_finite("sigma", 1, f64::NAN));
    bad = good;
    bad[0] = f64::INFINITY;
    assert_eq!(gmm.mask(&bad, out.view_mut()).unwrap_err().name(), "alpha");
    assert_eq!(
        gmm.mask(&good[..7], out.view_mut()).unwrap_err().name(),
        "parameters"
    );
    let mut wrong = Array3::<f64>::zeros((3, 9, 9));
    assert_eq!(
        gmm.mask(&good, wrong.view_mut()).unwrap_err().name(),
        "mask"
    );
    let mut g = [0.0; 8];
    assert_eq!(
        gmm.accumulate_gradient(&good, wrong.view(), &mut g)
            .unwrap_err()
            .name(),
        "grad_mask"
    );
    assert_eq!(
        gmm.accumulate_gradient(&good, out.view(), &mut g[..3])
            .unwrap_err()
            .name(),
        "grad_parameters"
    );
    out[[0, 1, 1]] = f64::NAN;
    assert_eq!(
        gmm.accumulate_gradient(&good, out.view(), &mut g)
            .unwrap_err()
            .name(),
        "grad_mask"
    );
    assert_eq!(name(gmm.kernel(&bad).unwrap_err()), "alpha");
    let mut short = [0.0; 3];
    assert_eq!(
        gmm.initial_parameters(&mut short).unwrap_err().name(),
        "parameters"
    );
}

#[test]
fn attention_rejects_bad_shapes_values_and_masks() {
    let q = random4((2, 3, 9, 4), 1, 1.0);
    let fwd = |q: &Array4<f64>, k: &Array4<f64>, v: &Array4<f64>| {
        attention_forward(q.view(), k.view(), v.view(), None).map(|_| ())
    };
    assert_eq!(
        name(fwd(&Array4::zeros((0, 3, 9, 4)), &q, &q).unwrap_err()),
        "q"
    );
    assert_eq!(
        name(fwd(&q, &random4((2, 3, 9, 5), 2, 1.0), &q).unwrap_err()),
        "k"
    );
    assert_eq!(
        name(fwd(&q, &q, &random4((2, 3, 8, 4), 2, 1.0)).unwrap_err()),
        "v"
    );
    assert_eq!(
        name(fwd(&q, &q, &Array4::zeros((2, 3, 9, 0))).unwrap_err()),
        "v"
    );
    let mut nan = q.clone();
    nan[[1, 2, 3, 0]] = f64::NAN;
    assert_eq!(name(fwd(&q, &nan, &q).unwrap_err()), "k");

    // A mask for 2 heads on attention with 3 heads, or for 16 tokens on 9.
    let grid = TokenGrid::square(3).unwrap();
    let two_heads = GaussianMixtureMask::new(grid, 2, 2, 0).unwrap();
    let p2 = vec![1.0; 8];
    let e = attention_forward(
        q.view(),
        q.view(),
        q.view(),
        Some(MaskRef::new(&two_heads, &p2)),
    )
    .unwrap_err();
    assert_eq!(name(e), "mask");
    let big = GaussianMixtureMask::new(TokenGrid::square(4).unwrap(), 3, 2, 0).unwrap();
    let p3 = vec![1.0; 12];
    let e =
        attention_forward(q.view(), q.view(), q.view(), Some(MaskRef::new(&big, &p3))).unwrap_err();
    assert_eq!(name(e), "mask");
    let gmm = GaussianMixtureMask::new(grid, 3, 2, 0).unwrap();
    let e =
        attention_forward(q.view(), q.view(), q.view(), Some(MaskRef::new(&gmm, &p2))).unwrap_err();
    assert_eq!(name(e), "mask parameters");
    let mut p = vec![1.0; 12];
    p[7] = f64::NEG_INFINITY;
    let e =
        attention_forward(q.view(), q.view(), q.view(), Some(MaskRef::new(&gmm, &p))).unwrap_err();
    assert_eq!(name(e), "sigma");

    // Backward: shapes, grad_output values, the mask of the forward pass.
    p[7] = 1.0;
    let m = Some(MaskRef::new(&gmm, &p));
    let (out, cache) = attention_forward(q.view(), q.view(), q.view(), m).unwrap();
    let mut gp = vec![0.0; 12];
    let bwd = |grad: &Array4<f64>, mask, gp: &mut [f64]| {
        attention_backward(&cache, q.view(), q.view(), q.view(), grad.view(), mask, gp).map(|_| ())
    };
    assert_eq!(
        name(bwd(&random4((2, 3, 9, 3), 1, 1.0), m, &mut gp).unwrap_err()),
        "grad_output"
    );
    let mut bad_grad = out.clone();
    bad_grad[[0, 0, 0, 0]] = f64::INFINITY;
    assert_eq!(name(bwd(&bad_grad, m, &mut gp).unwrap_err()), "grad_output");
    assert_eq!(name(bwd(&out, None, &mut gp).unwrap_err()), "mask");
    assert_eq!(
        name(bwd(&out, m, &mut gp[..4]).unwrap_err()),
        "grad_mask_parameters"
    );
    let additive = gmm.clone().with_combine(tessera_gmm::MaskCombine::Add);
    let e = bwd(&out, Some(MaskRef::new(&additive, &p)), &mut gp).unwrap_err();
    assert_eq!(name(e), "mask");
    let e = attention_backward(
        &cache,
        random4((2, 3, 9, 5), 1, 1.0).view(),
        q.view(),
        q.view(),
        out.view(),
        m,
        &mut gp,
    )
    .unwrap_err();
    assert_eq!(name(e), "q");
    bwd(&out, m, &mut gp).unwrap();
}

#[test]
fn cache_parts_round_trip_and_are_checked() {
    use tessera_gmm::{attention_backward_view, AttentionCacheView, MaskCombine};
    let grid = TokenGrid::square(2).unwrap();
    let gmm = GaussianMixtureMask::new(grid, 2, 1, 0).unwrap();
    let params = [0.5, -1.0, 1.0, 2.0];
    let q = random4((3, 2, 4, 2), 1, 1.0);
    let m = Some(MaskRef::new(&gmm, &params));
    let (out, cache) = attention_forward(q.view(), q.view(), q.view(), m).unwrap();
    let mut direct = vec![0.0; 4];
    let g1 = attention_backward(
        &cache,
        q.view(),
        q.view(),
        q.view(),
        out.view(),
        m,
        &mut direct,
    )
    .unwrap();
    let (p, mask) = cache.into_parts();
    let (g, combine) = mask.unwrap();
    let view = AttentionCacheView::new(p.view(), Some((g.view(), combine))).unwrap();
    let mut from_parts = vec![0.0; 4];
    let g2 = attention_backward_view(
        view,
        q.view(),
        q.view(),
        q.view(),
        out.view(),
        m,
        &mut from_parts,
    )
    .unwrap();
    assert_eq!(g1.q, g2.q);
    assert_eq!(direct, from_parts);
    let e = AttentionCacheView::new(
        p.view(),
        Some((g.slice(ndarray::s![..1, .., ..]), MaskCombine::Add)),
    )
    .unwrap_err();
    assert_eq!(name(e), "mask");
    let e = AttentionCacheView::new(p.slice(ndarray::s![.., .., .., ..3]), None).unwrap_err();
    assert_eq!(name(e), "probabilities");
}
