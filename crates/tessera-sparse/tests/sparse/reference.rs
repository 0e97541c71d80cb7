//! Comparisons with naive, independent references.

use approx::assert_abs_diff_eq;
use ndarray::{Array2, ArrayD, IxDyn};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tessera_sparse::{
    global_magnitude_masks, kendall_tau_b, layer_densities, magnitude_mask, spearman_rho,
    Allocation, CsrMatrix, LayerShape, Mask,
};

/// O(n²) Kendall τ-b straight from the definition.
fn kendall_naive(x: &[f64], y: &[f64]) -> f64 {
    let (mut concordant, mut discordant, mut tx, mut ty) = (0i64, 0i64, 0i64, 0i64);
    for i in 0..x.len() {
        for j in i + 1..x.len() {
            let (dx, dy) = (x[i] - x[j], y[i] - y[j]);
            if dx == 0.0 && dy == 0.0 {
                continue;
            } else if dx == 0.0 {
                tx += 1;
            } else if dy == 0.0 {
                ty += 1;
            } else if (dx > 0.0) == (dy > 0.0) {
                concordant += 1;
            } else {
                discordant += 1;
            }
        }
    }
    let (c, d) = (concordant as f64, discordant as f64);
    (c - d) / ((c + d + tx as f64) * (c + d + ty as f64)).sqrt()
}

/// Spearman ρ with ranks found by counting (rank = #smaller + (#equal + 1) / 2).
fn spearman_naive(x: &[f64], y: &[f64]) -> f64 {
    let ranks = |v: &[f64]| -> Vec<f64> {
        v.iter()
            .map(|&a| {
                let smaller = v.iter().filter(|&&b| b < a).count() as f64;
                let equal = v.iter().filter(|&&b| b == a).count() as f64;
                smaller + (equal + 1.0) / 2.0
            })
            .collect()
    };
    let (rx, ry) = (ranks(x), ranks(y));
    let n = x.len() as f64;
    let (mx, my) = (rx.iter().sum::<f64>() / n, ry.iter().sum::<f64>() / n);
    let cov: f64 = rx.iter().zip(&ry).map(|(a, b)| (a - mx) * (b - my)).sum();
    let vx: f64 = rx.iter().map(|a| (a - mx).powi(2)).sum();
    let vy: f64 = ry.iter().map(|b| (b - my).powi(2)).sum();
    cov / (vx * vy).sqrt()
}

#[test]
fn rank_correlations_match_naive_definitions() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for n in [2usize, 3, 10, 57, 300] {
        let x: Vec<f64> = (0..n).map(|_| rng.random_range(0..6) as f64).collect();
        let y: Vec<f64> = x
            .iter()
            .map(|&v| v + rng.random_range(0..4) as f64)
            .collect();
        if x.iter().all(|&v| v == x[0]) || y.iter().all(|&v| v == y[0]) {
            continue;
        }
        assert_abs_diff_eq!(
            kendall_tau_b(&x, &y).unwrap(),
            kendall_naive(&x, &y),
            epsilon = 1e-12
        );
        assert_abs_diff_eq!(
            spearman_rho(&x, &y).unwrap(),
            spearman_naive(&x, &y),
            epsilon = 1e-12
        );
    }
}

/// The epsilon loop as an exhaustive search: try making the k layers with the largest raw
/// score dense for k = 0, 1, ... and take the first k whose remaining densities are ≤ 1.
fn erk_by_search(layers: &[LayerShape], density: f64) -> Vec<f64> {
    let raw: Vec<f64> = layers
        .iter()
        .map(|l| l.dims().iter().sum::<usize>() as f64 / l.numel() as f64)
        .collect();
    let sizes: Vec<f64> = layers.iter().map(|l| l.numel() as f64).collect();
    let total: f64 = sizes.iter().sum();
    let mut order: Vec<usize> = (0..layers.len()).collect();
    order.sort_by(|&a, &b| raw[b].partial_cmp(&raw[a]).unwrap());
    for k in 0..=layers.len() {
        let dense = &order[..k];
        let dense_size: f64 = dense.iter().map(|&i| sizes[i]).sum();
        let sparse: Vec<usize> = order[k..].to_vec();
        let divisor: f64 = sparse.iter().map(|&i| raw[i] * sizes[i]).sum();
        let eps = (density * total - dense_size) / divisor;
        if sparse.iter().all(|&i| eps * raw[i] <= 1.0) {
            return (0..layers.len())
                .map(|i| {
                    if dense.contains(&i) {
                        1.0
                    } else {
                        eps * raw[i]
                    }
                })
                .collect();
        }
    }
    unreachable!("k = all layers always works")
}

#[test]
fn erk_matches_exhaustive_search() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for _ in 0..50 {
        let count = rng.random_range(1..7);
        let layers: Vec<LayerShape> = (0..count)
            .map(|i| {
                let dims: Vec<usize> = if rng.random_bool(0.5) {
                    vec![rng.random_range(1..200), rng.random_range(1..200)]
                } else {
                    vec![rng.random_range(1..64), rng.random_range(1..64), 3, 3]
                };
                LayerShape::new(format!("l{i}"), &dims).unwrap()
            })
            .collect();
        let density = rng.random_range(0.01..1.0);
        let ours = layer_densities(&layers, density, Allocation::ERK, &[]).unwrap();
        let reference = erk_by_search(&layers, density);
        for (a, b) in ours.densities.iter().zip(&reference) {
            assert_abs_diff_eq!(*a, *b, epsilon = 1e-12);
        }
    }
}

fn masked_dense(w: &Array2<f64>, mask: &Mask) -> Array2<f64> {
    mask.masked(w).unwrap()
}

#[test]
fn products_match_dense_with_mask_on_awkward_shapes() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    // Widths around every panel size, a single column, and a 1-row matrix.
    for &(m, k, n) in &[
        (7, 5, 1),
        (1, 9, 3),
        (13, 70, 65),
        (20, 33, 129),
        (5, 4, 8),
        (9, 17, 31),
    ] {
        for density in [0.05, 0.5, 1.0] {
            let w = Array2::from_shape_fn((m, k), |_| rng.random_range(-1.0..1.0));
            let mask = Mask::bernoulli(m * k, density, &mut rng).unwrap();
            let a = CsrMatrix::from_masked(w.view(), &mask).unwrap();
            let wm = masked_dense(&w, &mask);
            let b = Array2::from_shape_fn((k, n), |_| rng.random_range(-1.0..1.0));
            let x = Array2::from_shape_fn((n, k), |_| rng.random_range(-1.0..1.0));
            let diff = (&a.matmul(b.view()).unwrap() - &wm.dot(&b)).mapv(f64::abs);
            assert!(diff.iter().all(|&d| d < 1e-12), "{m}×{k}·{k}×{n}");
            let diff = (&a.matmul_transposed_from_left(x.view()).unwrap() - &x.dot(&wm.t()))
                .mapv(f64::abs);
            assert!(diff.iter().all(|&d| d < 1e-12), "{n}×{k}·({m}×{k})ᵀ");
            let dy = Array2::from_shape_fn((m, n), |_| rng.random_range(-1.0..1.0));
            let g = a.masked_gradient(dy.view(), b.view()).unwrap();
            let expected = masked_dense(&dy.dot(&b.t()), &mask);
            let diff = (&g.to_dense() - &expected).mapv(f64::abs);
            assert!(diff.iter().all(|&d| d < 1e-12), "gradient {m}×{k}");
            assert_eq!(g.mask(), mask);
        }
    }
}

#[test]
fn magnitude_pruning_matches_a_full_sort() {
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    // Values on a coarse grid so that ties are common.
    let layers: Vec<ArrayD<f32>> = [vec![12, 7], vec![4, 3, 3, 3], vec![50]]
        .iter()
        .map(|d| ArrayD::from_shape_fn(IxDyn(d), |_| rng.random_range(-8..8) as f32))
        .collect();
    let density = 0.3;
    // Reference: sort (|w| desc, layer asc, index asc) and take the first round(d·N).
    let mut all: Vec<(f32, usize, usize)> = layers
        .iter()
        .enumerate()
        .flat_map(|(l, w)| w.iter().enumerate().map(move |(i, v)| (v.abs(), l, i)))
        .collect();
    all.sort_by(|a, b| {
        b.0.partial_cmp(&a.0)
            .unwrap()
            .then((a.1, a.2).cmp(&(b.1, b.2)))
    });
    let keep = (density * all.len() as f64).round() as usize;
    let views: Vec<_> = layers.iter().map(|w| w.view()).collect();
    let masks = global_magnitude_masks(&views, density).unwrap();
    let mut expected: Vec<Vec<bool>> = layers.iter().map(|w| vec![false; w.len()]).collect();
    for &(_, l, i) in &all[..keep] {
        expected[l][i] = true;
    }
    for (m, e) in masks.iter().zip(&expected) {
        assert_eq!(&m.to_bools(), e);
    }
    // Layer-wise: same rule inside one layer.
    let layer = &layers[0];
    let mut one: Vec<(f32, usize)> = layer.iter().map(|v| v.abs()).zip(0..).collect();
    one.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap().then(a.1.cmp(&b.1)));
    let k = (density * one.len() as f64).round() as usize;
    let mask = magnitude_mask(layer.view(), density).unwrap();
    let mut e = vec![false; layer.len()];
    for &(_, i) in &one[..k] {
        e[i] = true;
    }
    assert_eq!(mask.to_bools(), e);
}
