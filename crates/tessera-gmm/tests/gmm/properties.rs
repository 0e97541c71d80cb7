//! The kernel against a naive implementation, and properties of the masks and attention.

use approx::assert_abs_diff_eq;
use ndarray::{Array4, Axis};
use proptest::prelude::*;
use tessera_gmm::{
    attention_backward, attention_forward, mask_array, ElementwiseMask, GaussianMixtureMask,
    LogitMask, MaskCombine, MaskRef, TokenGrid,
};
use tessera_testing::assert_all_close;

use crate::common::{naive_attention, naive_gmm_mask, random4, random_vec};

#[test]
fn forward_matches_the_naive_implementation_in_every_mode() {
    let grid = TokenGrid::new(3, 3).unwrap().with_extra_tokens(1).unwrap();
    let (b, h, n) = (3, 4, grid.tokens());
    let q = random4((b, h, n, 5), 1, 1.5);
    let k = random4((b, h, n, 5), 2, 1.5);
    let v = random4((b, h, n, 3), 3, 1.0);
    let (plain, _) = attention_forward(q.view(), k.view(), v.view(), None).unwrap();
    assert_all_close(
        &plain,
        &naive_attention(&q, &k, &v, None),
        1e-12,
        1e-14,
        "plain",
    );
    for combine in [MaskCombine::Multiply, MaskCombine::Add] {
        let gmm = GaussianMixtureMask::new(grid, h, 3, 9)
            .unwrap()
            .with_combine(combine);
        let mut params = vec![0.0; LogitMask::<f64>::parameter_count(&gmm)];
        gmm.initial_parameters(&mut params).unwrap();
        let g = naive_gmm_mask(grid, h, 3, &params, combine);
        assert_all_close(
            &mask_array(&gmm, &params).unwrap(),
            &g,
            1e-13,
            1e-15,
            "mask",
        );
        let (out, cache) = attention_forward(
            q.view(),
            k.view(),
            v.view(),
            Some(MaskRef::new(&gmm, &params)),
        )
        .unwrap();
        let what = format!("{combine:?}");
        assert_all_close(
            &out,
            &naive_attention(&q, &k, &v, Some((&g, combine))),
            1e-12,
            1e-14,
            &what,
        );
        assert_all_close(
            &cache.mask().unwrap().to_owned(),
            &g,
            0.0,
            0.0,
            "cached mask",
        );
    }
}

#[test]
fn multiplicative_mixture_with_unit_weights_and_huge_widths_is_plain_attention() {
    let grid = TokenGrid::square(4).unwrap();
    let (heads, kernels) = (3, 4);
    let gmm = GaussianMixtureMask::new(grid, heads, kernels, 0).unwrap();
    // α of each head sums to 1 (some negative), σ → ∞: G → 1 everywhere.
    let mut alpha = random_vec(kernels * heads, 4, -1.0, 1.0);
    for h in 0..heads {
        let sum: f64 = (0..kernels).map(|k| alpha[k * heads + h]).sum();
        alpha[h] += 1.0 - sum;
    }
    let mut params = alpha;
    params.extend(std::iter::repeat(1e9).take(kernels * heads));
    let q = random4((2, heads, 16, 4), 5, 1.0);
    let k = random4((2, heads, 16, 4), 6, 1.0);
    let v = random4((2, heads, 16, 4), 7, 1.0);
    let (plain, _) = attention_forward(q.view(), k.view(), v.view(), None).unwrap();
    let (masked, _) = attention_forward(
        q.view(),
        k.view(),
        v.view(),
        Some(MaskRef::new(&gmm, &params)),
    )
    .unwrap();
    assert_all_close(&masked, &plain, 1e-12, 1e-13, "σ → ∞");
    // A finite σ does change the result (the test can fail).
    let mut narrow = params.clone();
    narrow[kernels * heads..].fill(1.0);
    let (changed, _) = attention_forward(
        q.view(),
        k.view(),
        v.view(),
        Some(MaskRef::new(&gmm, &narrow)),
    )
    .unwrap();
    assert!((&changed - &plain).iter().any(|d| d.abs() > 1e-3));
}

#[test]
fn kernel_view_holds_the_mask_as_a_function_of_the_offset() {
    let grid = TokenGrid::new(3, 5).unwrap().with_extra_tokens(1).unwrap();
    let gmm = GaussianMixtureMask::new(grid, 2, 3, 1).unwrap();
    let mut params = vec![0.0; LogitMask::<f64>::parameter_count(&gmm)];
    gmm.initial_parameters(&mut params).unwrap();
    let kernel = gmm.kernel(&params).unwrap();
    assert_eq!(kernel.shape(), &[2, 5, 9]);
    let g = mask_array(&gmm, &params).unwrap();
    for i in 1..grid.tokens() {
        for j in 1..grid.tokens() {
            let (ri, ci) = grid.position(i).unwrap();
            let (rj, cj) = grid.position(j).unwrap();
            for h in 0..2 {
                let at = [h, 2 + rj - ri, 4 + cj - ci];
                assert_eq!(kernel[at], g[[h, i, j]]);
            }
        }
    }
}

#[test]
fn initialisation_is_seeded_and_follows_the_reference_distributions() {
    let grid = TokenGrid::square(2).unwrap();
    let gmm = GaussianMixtureMask::new(grid, 40, 50, 3).unwrap();
    let count = LogitMask::<f64>::parameter_count(&gmm);
    let (mut a, mut b) = (vec![0.0; count], vec![0.0; count]);
    gmm.initial_parameters(&mut a).unwrap();
    gmm.initial_parameters(&mut b).unwrap();
    assert_eq!(a, b);
    let other = GaussianMixtureMask::new(grid, 40, 50, 4).unwrap();
    other.initial_parameters(&mut b).unwrap();
    assert_ne!(a, b);
    let stats = |x: &[f64]| {
        let m = x.iter().sum::<f64>() / x.len() as f64;
        let v = x.iter().map(|y| (y - m).powi(2)).sum::<f64>() / (x.len() - 1) as f64;
        (m, v.sqrt())
    };
    let (alpha, sigma) = a.split_at(count / 2);
    let ((ma, sa), (ms, ss)) = (stats(alpha), stats(sigma));
    // 2000 draws each: standard errors 0.045 (α mean), 0.22 (σ mean).
    assert_abs_diff_eq!(ma, 0.0, epsilon = 0.2);
    assert_abs_diff_eq!(sa, 2.0, epsilon = 0.15);
    assert_abs_diff_eq!(ms, 10.0, epsilon = 1.0);
    assert_abs_diff_eq!(ss, 10.0, epsilon = 0.7);
    // The alpha/sigma views read the halves.
    assert_eq!(gmm.alpha(&a).unwrap()[[1, 0]], a[40]);
    assert_eq!(gmm.sigma(&a).unwrap()[[0, 1]], a[count / 2 + 1]);
    let packed = gmm
        .parameters_from(gmm.alpha(&a).unwrap(), gmm.sigma(&a).unwrap())
        .unwrap();
    assert_eq!(packed, a);
}

#[test]
fn elm_starts_at_zero_and_is_shared_across_heads() {
    let elm = ElementwiseMask::new(4, 3).unwrap();
    let mut p = vec![1.0; 16];
    LogitMask::<f64>::initial_parameters(&elm, &mut p).unwrap();
    assert!(p.iter().all(|&x| x == 0.0));
    let p = random_vec(16, 1, -1.0, 1.0);
    let g = mask_array(&elm, &p).unwrap();
    for h in 0..3 {
        assert_eq!(
            g.index_axis(Axis(0), h).iter().copied().collect::<Vec<_>>(),
            p
        );
    }
}

#[test]
fn results_are_identical_bit_for_bit_on_any_number_of_threads() {
    let grid = TokenGrid::square(3).unwrap();
    let (b, h, n) = (21, 3, 9);
    let gmm = GaussianMixtureMask::new(grid, h, 5, 2).unwrap();
    let mut params = vec![0.0f32; LogitMask::<f32>::parameter_count(&gmm)];
    gmm.initial_parameters(&mut params).unwrap();
    let q = random4((b, h, n, 4), 1, 1.0).mapv(|x| x as f32);
    let k = random4((b, h, n, 4), 2, 1.0).mapv(|x| x as f32);
    let v = random4((b, h, n, 4), 3, 1.0).mapv(|x| x as f32);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let m = Some(MaskRef::new(&gmm, &params));
            let (out, cache) = attention_forward(q.view(), k.view(), v.view(), m).unwrap();
            let mut gp = vec![0.0f32; params.len()];
            let g =
                attention_backward(&cache, q.view(), k.view(), v.view(), out.view(), m, &mut gp)
                    .unwrap();
            (out, g.q, g.k, g.v, gp)
        })
    };
    let one = run(1);
    for threads in [2, 5] {
        let other = run(threads);
        assert_eq!(one.0, other.0);
        assert_eq!(one.1, other.1);
        assert_eq!(one.2, other.2);
        assert_eq!(one.3, other.3);
        assert_eq!(one.4, other.4, "mask gradients with {threads} threads");
    }
}

#[test]
fn permuted_input_views_give_the_same_result() {
    // A (batch, tokens, heads, d) array seen as (batch, heads, tokens, d), as a projection
    // layer would hand it over.
    let base = random4((2, 6, 3, 4), 8, 1.0);
    let q = base.view().permuted_axes([0, 2, 1, 3]);
    let contiguous: Array4<f64> = q.as_standard_layout().to_owned();
    let (a, _) = attention_forward(q, q, q, None).unwrap();
    let (b, _) = attention_forward(
        contiguous.view(),
        contiguous.view(),
        contiguous.view(),
        None,
    )
    .unwrap();
    assert_eq!(a, b);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn gmm_mask_is_symmetric_translation_invariant_with_diagonal_sum_of_alpha(
        rows in 2usize..6, cols in 2usize..6, extra in 0usize..2,
        kernels in 1usize..4, seed in 0u64..1000,
    ) {
        let heads = 2;
        let grid = TokenGrid::new(rows, cols).unwrap().with_extra_tokens(extra).unwrap();
        let gmm = GaussianMixtureMask::new(grid, heads, kernels, seed).unwrap();
        let mut params = random_vec(kernels * heads, seed, -2.0, 2.0);
        params.extend(random_vec(kernels * heads, seed + 1, 0.3, 4.0));
        let g = mask_array(&gmm, &params).unwrap();
        let n = grid.tokens();
        for hh in 0..heads {
            let plane = g.index_axis(Axis(0), hh);
            prop_assert_eq!(plane.t(), plane);
            let alpha_sum: f64 = (0..kernels).map(|k| params[k * heads + hh]).sum();
            for i in extra..n {
                assert_abs_diff_eq!(plane[[i, i]], alpha_sum, epsilon = 1e-12);
            }
            for i in 0..extra {
                prop_assert!(plane.row(i).iter().all(|&x| x == 1.0));
                prop_assert!(plane.column(i).iter().all(|&x| x == 1.0));
            }
            // Shifting both tokens by one row or one column keeps the value.
            for i in extra..n {
                for j in extra..n {
                    let (ri, ci) = grid.position(i).unwrap();
                    let (rj, cj) = grid.position(j).unwrap();
                    if ri + 1 < rows && rj + 1 < rows {
                        prop_assert_eq!(plane[[i, j]], plane[[i + cols, j + cols]]);
                    }
                    if ci + 1 < cols && cj + 1 < cols {
                        prop_assert_eq!(plane[[i, j]], plane[[i + 1, j + 1]]);
                    }
                }
            }
        }
    }

    #[test]
    fn attention_rows_are_distributions(
        tokens in 1usize..12, d in 1usize..6, scale in 0.1f64..50.0, seed in 0u64..1000,
    ) {
        let q = random4((2, 2, tokens, d), seed, scale);
        let k = random4((2, 2, tokens, d), seed + 1, scale);
        let (_, cache) = attention_forward(q.view(), k.view(), k.view(), None).unwrap();
        for row in cache.probabilities().rows() {
            prop_assert!(row.iter().all(|&p| (0.0..=1.0).contains(&p)));
            assert_abs_diff_eq!(row.sum(), 1.0, epsilon = 1e-12);
        }
    }
}

#[test]
fn pictures_draw_one_cell_per_mask_entry_and_per_kernel_offset() {
    let grid = TokenGrid::square(3).unwrap().with_extra_tokens(1).unwrap();
    let gmm = GaussianMixtureMask::new(grid, 2, 5, 4).unwrap();
    let mut params = vec![0.0; LogitMask::<f64>::parameter_count(&gmm)];
    gmm.initial_parameters(&mut params).unwrap();
    // Background, cells, a 32-step colour bar.
    let mask = tessera_gmm::mask_svg(&gmm, &params).unwrap();
    assert_eq!(mask.matches("<rect").count(), 1 + 2 * 10 * 10 + 32);
    assert!(mask.contains("head 0") && mask.contains("head 1"));
    let kernel = tessera_gmm::kernel_svg(&gmm, &params).unwrap();
    assert_eq!(kernel.matches("<rect").count(), 1 + 2 * 5 * 5 + 32);
    // The scale is symmetric in the largest |G|, which is printed.
    let g = mask_array(&gmm, &params).unwrap();
    let largest = g.iter().fold(0.0f64, |m: f64, v: &f64| m.max(v.abs()));
    assert!(mask.contains(&format!("{largest:.3}")), "{largest}");
    let mut bad = params.clone();
    bad[0] = f64::NAN;
    assert!(tessera_gmm::mask_svg(&gmm, &bad).is_err());
    assert!(tessera_gmm::kernel_svg(&gmm, &bad).is_err());
}
