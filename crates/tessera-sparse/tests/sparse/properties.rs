//! Property tests (proptest).

use ndarray::Array2;
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tessera_sparse::{
    exact_kept_count, kendall_tau_b, layer_densities, Allocation, CsrMatrix, LayerShape, Mask,
};

fn layers_strategy() -> impl Strategy<Value = Vec<LayerShape>> {
    prop::collection::vec(
        prop_oneof![
            (1usize..300, 1usize..300).prop_map(|(o, i)| vec![o, i]),
            (1usize..64, 1usize..64, 1usize..6).prop_map(|(o, i, k)| vec![o, i, k, k]),
        ],
        1..8,
    )
    .prop_map(|dims| {
        dims.iter()
            .enumerate()
            .map(|(i, d)| LayerShape::new(format!("layer{i}"), d).unwrap())
            .collect()
    })
}

fn allocation_strategy() -> impl Strategy<Value = Allocation> {
    prop_oneof![
        Just(Allocation::Uniform),
        Just(Allocation::ErdosRenyi),
        Just(Allocation::ERK),
        (0.2f64..2.0).prop_map(|power| Allocation::ErdosRenyiKernel { power }),
    ]
}

/// O(n²) τ-b from the definition.
fn kendall_naive(x: &[f64], y: &[f64]) -> f64 {
    let (mut s, mut tx, mut ty, mut n0) = (0i64, 0i64, 0i64, 0i64);
    for i in 0..x.len() {
        for j in i + 1..x.len() {
            n0 += 1;
            let (a, b) = ((x[i] - x[j]).signum(), (y[i] - y[j]).signum());
            let (a, b) = (
                if x[i] == x[j] { 0.0 } else { a },
                if y[i] == y[j] { 0.0 } else { b },
            );
            s += (a * b) as i64;
            tx += i64::from(a == 0.0);
            ty += i64::from(b == 0.0);
        }
    }
    s as f64 / (((n0 - tx) * (n0 - ty)) as f64).sqrt()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn densities_are_valid_and_meet_the_target(
        layers in layers_strategy(),
        density in 0.001f64..=1.0,
        allocation in allocation_strategy(),
    ) {
        let result = layer_densities(&layers, density, allocation, &[]).unwrap();
        for &d in &result.densities {
            prop_assert!(d > 0.0 && d <= 1.0, "density {d}");
        }
        let total: f64 = layers.iter().map(|l| l.numel() as f64).sum();
        let kept = result.expected_kept(&layers);
        prop_assert!((kept - density * total).abs() <= 1e-12 * density * total,
            "{kept} vs {}", density * total);
        // A larger raw score never gets a lower density.
        for (a, la) in layers.iter().enumerate() {
            for (b, lb) in layers.iter().enumerate() {
                let (ra, rb) = (la.raw_score(allocation).unwrap(), lb.raw_score(allocation).unwrap());
                if ra > rb {
                    prop_assert!(result.densities[a] >= result.densities[b],
                        "raw {ra} > {rb} but density {} < {}", result.densities[a], result.densities[b]);
                }
            }
        }
    }

    #[test]
    fn overrides_keep_the_target_or_error(
        layers in layers_strategy(),
        density in 0.01f64..=1.0,
        fixed in 0.01f64..=1.0,
    ) {
        let first = layers[0].name().to_string();
        match layer_densities(&layers, density, Allocation::ERK, &[(first.as_str(), fixed)]) {
            Ok(result) => {
                prop_assert_eq!(result.densities[0], fixed);
                let total: f64 = layers.iter().map(|l| l.numel() as f64).sum();
                let kept = result.expected_kept(&layers);
                prop_assert!((kept - density * total).abs() <= 1e-12 * total);
                prop_assert!(result.densities.iter().all(|&d| d > 0.0 && d <= 1.0));
            }
            Err(e) => {
                // Only an unreachable budget may fail: check that it really is unreachable.
                prop_assert!(e.to_string().contains("unreachable"), "{}", e);
                let total: f64 = layers.iter().map(|l| l.numel() as f64).sum();
                let n0 = layers[0].numel() as f64;
                let budget = density * total - fixed * n0;
                prop_assert!(budget <= 1e-12 * total || budget > (total - n0) * (1.0 + 1e-12)
                    || layers.len() == 1);
            }
        }
    }

    #[test]
    fn exact_count_masks_have_round_d_n_ones(len in 0usize..5000, density in 0.001f64..=1.0, seed in any::<u64>()) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mask = Mask::exact_count(len, density, &mut rng).unwrap();
        prop_assert_eq!(mask.len(), len);
        prop_assert_eq!(mask.count_ones(), (density * len as f64).round() as usize);
        prop_assert_eq!(mask.count_ones(), exact_kept_count(len, density));
    }

    #[test]
    fn bernoulli_mask_mean_is_within_five_sigma(len in 1usize..20000, density in 0.01f64..=1.0, seed in any::<u64>()) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mask = Mask::bernoulli(len, density, &mut rng).unwrap();
        let n = len as f64;
        let sigma = (n * density * (1.0 - density)).sqrt();
        let deviation = (mask.count_ones() as f64 - n * density).abs();
        prop_assert!(deviation <= 5.0 * sigma + 1e-9, "{deviation} > 5·{sigma}");
    }

    #[test]
    fn sparse_products_equal_dense_with_mask(
        m in 0usize..24, k in 0usize..40, n in 0usize..70,
        density in prop_oneof![Just(0.0), Just(1.0), 0.0f64..1.0],
        empty_row in any::<prop::sample::Index>(),
        seed in any::<u64>(),
    ) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let w = Array2::from_shape_fn((m, k), |_| rng.random_range(-1.0f32..1.0));
        let mut keep: Vec<bool> = (0..m * k).map(|_| rng.random_bool(density)).collect();
        if m > 0 {
            let r = empty_row.index(m);
            keep[r * k..(r + 1) * k].fill(false);
        }
        let mask = Mask::from_bools(&keep);
        let a = CsrMatrix::from_masked(w.view(), &mask).unwrap();
        let wm = mask.masked(&w).unwrap();
        let b = Array2::from_shape_fn((k, n), |_| rng.random_range(-1.0f32..1.0));
        let tol = 1e-5 * (k.max(1) as f32);
        let ours = a.matmul(b.view()).unwrap();
        prop_assert_eq!(ours.dim(), (m, n));
        prop_assert!(ours.iter().zip(wm.dot(&b).iter()).all(|(x, y)| (x - y).abs() <= tol));
        let x = b.t().to_owned();
        let ours = a.matmul_transposed_from_left(x.view()).unwrap();
        prop_assert_eq!(ours.dim(), (n, m));
        prop_assert!(ours.iter().zip(x.dot(&wm.t()).iter()).all(|(p, q)| (p - q).abs() <= tol));
        let dy = Array2::from_shape_fn((m, n), |_| rng.random_range(-1.0f32..1.0));
        let g = a.masked_gradient(dy.view(), b.view()).unwrap().to_dense();
        let expected = mask.masked(&dy.dot(&b.t())).unwrap();
        let tol = 1e-5 * (n.max(1) as f32);
        prop_assert!(g.iter().zip(expected.iter()).all(|(p, q)| (p - q).abs() <= tol));
        let gb = a.masked_gradient_batch_major(dy.t(), b.t()).unwrap().to_dense();
        prop_assert!(gb.iter().zip(expected.iter()).all(|(p, q)| (p - q).abs() <= tol));
    }

    #[test]
    fn kendall_equals_the_quadratic_reference(
        pairs in prop::collection::vec((0i32..8, 0i32..8), 2..120),
    ) {
        let x: Vec<f64> = pairs.iter().map(|p| p.0 as f64).collect();
        let y: Vec<f64> = pairs.iter().map(|p| p.1 as f64).collect();
        let constant = |v: &[f64]| v.iter().all(|&a| a == v[0]);
        if constant(&x) || constant(&y) {
            prop_assert!(kendall_tau_b(&x, &y).is_err());
        } else {
            let tau = kendall_tau_b(&x, &y).unwrap();
            prop_assert!((tau - kendall_naive(&x, &y)).abs() < 1e-12);
        }
    }
}
