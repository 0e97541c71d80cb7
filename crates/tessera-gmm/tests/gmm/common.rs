//! Fixtures and a naive reference implementation of masked attention.

use ndarray::{Array3, Array4};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tessera_gmm::{MaskCombine, TokenGrid};

pub fn random4(shape: (usize, usize, usize, usize), seed: u64, scale: f64) -> Array4<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Array4::from_shape_fn(shape, |_| scale * rng.random_range(-1.0..1.0))
}

pub fn random_vec(len: usize, seed: u64, low: f64, high: f64) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..len).map(|_| rng.random_range(low..high)).collect()
}

/// The GMM mask by its definition, pair by pair, in f64.
pub fn naive_gmm_mask(
    grid: TokenGrid,
    heads: usize,
    kernels: usize,
    params: &[f64],
    combine: MaskCombine,
) -> Array3<f64> {
    let n = grid.tokens();
    let (alpha, sigma) = params.split_at(kernels * heads);
    Array3::from_shape_fn((heads, n, n), |(h, i, j)| {
        match grid.squared_distance(i, j) {
            None => match combine {
                MaskCombine::Multiply => 1.0,
                MaskCombine::Add => 0.0,
            },
            Some(d2) => (0..kernels)
                .map(|k| {
                    let s = sigma[k * heads + h];
                    alpha[k * heads + h] * (-(d2 as f64) / (2.0 * (s * s + 1e-5))).exp()
                })
                .sum(),
        }
    })
}

/// Masked attention with loops and an independent softmax.
pub fn naive_attention(
    q: &Array4<f64>,
    k: &Array4<f64>,
    v: &Array4<f64>,
    mask: Option<(&Array3<f64>, MaskCombine)>,
) -> Array4<f64> {
    let (b, h, n, d) = q.dim();
    let dv = v.dim().3;
    let mut out = Array4::zeros((b, h, n, dv));
    for bi in 0..b {
        for hi in 0..h {
            for i in 0..n {
                let mut logits: Vec<f64> = (0..n)
                    .map(|j| {
                        let s: f64 = (0..d).map(|c| q[[bi, hi, i, c]] * k[[bi, hi, j, c]]).sum();
                        let s = s / (d as f64).sqrt();
                        match mask {
                            Some((g, MaskCombine::Multiply)) => g[[hi, i, j]] * s,
                            Some((g, MaskCombine::Add)) => g[[hi, i, j]] + s,
                            None => s,
                        }
                    })
                    .collect();
                let m = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                logits.iter_mut().for_each(|x| *x = (*x - m).exp());
                let z: f64 = logits.iter().sum();
                for c in 0..dv {
                    out[[bi, hi, i, c]] = (0..n).map(|j| logits[j] / z * v[[bi, hi, j, c]]).sum();
                }
            }
        }
    }
    out
}
