//! Multi-head self-attention layer: every input and parameter gradient (projections and
//! masks, both combinations) against finite differences in f64, the forward pass against a
//! naive implementation, initialisation, and bad input.

use ndarray::{Array2, Array3, ArrayD, IxDyn};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tessera_gmm::LogitMask;
use tessera_gmm::{ElementwiseMask, GaussianMixtureMask, MaskCombine, TokenGrid};
use tessera_nn::layers::attention::MultiHeadAttention;
use tessera_nn::{Cache, Context, Layer, Recorded};
use tessera_testing::{assert_all_close, central_difference_gradient};

const BATCH: usize = 2;
const DIM: usize = 4;
const HEADS: usize = 2;

fn random(len: usize, seed: u64, scale: f64) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..len)
        .map(|_| scale * rng.random_range(-1.0..1.0))
        .collect()
}

fn forward(
    layer: &MultiHeadAttention<f64>,
    params: &[f64],
    x: &ArrayD<f64>,
) -> (ArrayD<f64>, Cache<f64>) {
    layer
        .forward(params, &mut [], x.view(), Context::eval())
        .unwrap()
}

/// Parameters: PyTorch-default projections, the mask's own initial values perturbed so that
/// no gradient vanishes by symmetry (the ELM starts at 0).
fn parameters(layer: &MultiHeadAttention<f64>, seed: u64) -> Vec<f64> {
    let mut params = vec![0.0; Layer::<f64>::parameter_count(layer)];
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    layer.init_parameters(&mut rng, &mut params).unwrap();
    let offset = layer.mask_offset();
    let noise = random(params.len() - offset, seed + 1, 0.5);
    for (p, n) in params[offset..].iter_mut().zip(noise) {
        *p += n;
    }
    params
}

fn check_layer(layer: &MultiHeadAttention<f64>, tokens: usize, what: &str) {
    let params = parameters(layer, 3);
    let shape = IxDyn(&[BATCH, tokens, DIM]);
    let x = ArrayD::from_shape_vec(shape.clone(), random(BATCH * tokens * DIM, 4, 1.5)).unwrap();
    let w = ArrayD::from_shape_vec(shape.clone(), random(BATCH * tokens * DIM, 5, 1.0)).unwrap();
    let loss = |p: &[f64], x: &ArrayD<f64>| (&forward(layer, p, x).0 * &w).sum();

    let (y, cache) = forward(layer, &params, &x);
    let rec = Recorded {
        params: &params,
        buffers: &[],
        input: x.view(),
        output: y.view(),
        cache: &cache,
    };
    let mut grad = vec![0.0; params.len()];
    let dx = layer
        .backward(&rec, w.view(), Some(&mut grad), true)
        .unwrap()
        .unwrap();

    let fd_x = central_difference_gradient(
        |v| {
            loss(
                &params,
                &ArrayD::from_shape_vec(shape.clone(), v.to_vec()).unwrap(),
            )
        },
        x.as_slice().unwrap(),
        1e-6,
    );
    assert_all_close(
        &dx,
        &ArrayD::from_shape_vec(shape.clone(), fd_x).unwrap(),
        1e-6,
        1e-8,
        &format!("{what}: dL/dx"),
    );
    let fd_p = central_difference_gradient(|p| loss(p, &x), &params, 1e-6);
    let offset = layer.mask_offset();
    assert_all_close(
        &ndarray::arr1(&grad[..offset]),
        &ndarray::arr1(&fd_p[..offset]),
        1e-6,
        1e-8,
        &format!("{what}: projection gradients"),
    );
    assert_all_close(
        &ndarray::arr1(&grad[offset..]),
        &ndarray::arr1(&fd_p[offset..]),
        1e-6,
        1e-8,
        &format!("{what}: mask gradients"),
    );

    // Gradients accumulate; the input gradient alone and the parameter gradient alone agree.
    let dx_only = layer.backward(&rec, w.view(), None, true).unwrap().unwrap();
    assert_eq!(dx_only, dx);
    let mut twice = grad.clone();
    assert!(layer
        .backward(&rec, w.view(), Some(&mut twice), false)
        .unwrap()
        .is_none());
    for (t, g) in twice.iter().zip(&grad) {
        approx::assert_relative_eq!(*t, 2.0 * g, max_relative = 1e-12);
    }
}

#[test]
fn gradients_without_a_mask_match_finite_differences() {
    let layer = MultiHeadAttention::<f64>::new(DIM, HEADS).unwrap();
    check_layer(&layer, 5, "no mask");
}

#[test]
fn gradients_with_a_gmm_mask_match_finite_differences_in_both_modes() {
    let grid = TokenGrid::square(2).unwrap().with_extra_tokens(1).unwrap();
    for combine in [MaskCombine::Multiply, MaskCombine::Add] {
        let gmm = GaussianMixtureMask::new(grid, HEADS, 2, 11)
            .unwrap()
            .with_combine(combine);
        let layer = MultiHeadAttention::new(DIM, HEADS)
            .unwrap()
            .with_mask(Box::new(gmm))
            .unwrap();
        check_layer(&layer, grid.tokens(), &format!("gmm {combine:?}"));
    }
}

#[test]
fn gradients_with_an_elementwise_mask_match_finite_differences() {
    let elm = ElementwiseMask::new(4, HEADS).unwrap();
    let layer = MultiHeadAttention::new(DIM, HEADS)
        .unwrap()
        .with_mask(Box::new(elm))
        .unwrap();
    check_layer(&layer, 4, "elm");
}

/// The layer written out with loops: projections, per-head softmax(G ⊙ S), concatenation,
/// output projection.
fn naive(
    params: &[f64],
    x: &Array3<f64>,
    mask: Option<(&Array3<f64>, MaskCombine)>,
) -> Array3<f64> {
    let (b, n, d) = x.dim();
    let dh = d / HEADS;
    let proj = |i: usize, rows: &Array2<f64>| {
        let p = &params[i * (d * d + d)..(i + 1) * (d * d + d)];
        Array2::from_shape_fn((rows.nrows(), d), |(r, o)| {
            p[d * d + o] + (0..d).map(|c| rows[[r, c]] * p[o * d + c]).sum::<f64>()
        })
    };
    let mut y = Array3::zeros((b, n, d));
    for bi in 0..b {
        let xb = x.index_axis(ndarray::Axis(0), bi).to_owned();
        let (q, k, v) = (proj(0, &xb), proj(1, &xb), proj(2, &xb));
        let mut concat = Array2::zeros((n, d));
        for h in 0..HEADS {
            for i in 0..n {
                let logits: Vec<f64> = (0..n)
                    .map(|j| {
                        let s = (0..dh)
                            .map(|c| q[[i, h * dh + c]] * k[[j, h * dh + c]])
                            .sum::<f64>()
                            / (dh as f64).sqrt();
                        match mask {
                            Some((g, MaskCombine::Multiply)) => g[[h, i, j]] * s,
                            Some((g, MaskCombine::Add)) => g[[h, i, j]] + s,
                            None => s,
                        }
                    })
                    .collect();
                let z: f64 = logits.iter().map(|l| l.exp()).sum();
                for c in 0..dh {
                    concat[[i, h * dh + c]] = (0..n)
                        .map(|j| logits[j].exp() / z * v[[j, h * dh + c]])
                        .sum();
                }
            }
        }
        y.index_axis_mut(ndarray::Axis(0), bi)
            .assign(&proj(3, &concat));
    }
    y
}

#[test]
fn forward_matches_a_naive_implementation() {
    let grid = TokenGrid::new(2, 3).unwrap();
    let gmm = GaussianMixtureMask::new(grid, HEADS, 3, 5).unwrap();
    let masked = MultiHeadAttention::new(DIM, HEADS)
        .unwrap()
        .with_mask(Box::new(gmm.clone()))
        .unwrap();
    let params = parameters(&masked, 9);
    let x = Array3::from_shape_vec((3, 6, DIM), random(3 * 6 * DIM, 1, 1.0)).unwrap();
    let (y, _) = forward(&masked, &params, &x.clone().into_dyn());
    let g = tessera_gmm::mask_array(&gmm, &params[masked.mask_offset()..]).unwrap();
    let expected = naive(&params, &x, Some((&g, MaskCombine::Multiply)));
    assert_all_close(&y, &expected.into_dyn(), 1e-12, 1e-13, "masked layer");
    let plain = MultiHeadAttention::<f64>::new(DIM, HEADS).unwrap();
    let offset = plain.mask_offset();
    let (y, _) = forward(&plain, &params[..offset], &x.clone().into_dyn());
    assert_all_close(
        &y,
        &naive(&params, &x, None).into_dyn(),
        1e-12,
        1e-13,
        "plain layer",
    );
}

#[test]
fn initialisation_is_pytorch_default_and_the_mask_own() {
    let grid = TokenGrid::square(3).unwrap();
    let gmm = GaussianMixtureMask::new(grid, 4, 5, 21).unwrap();
    let layer = MultiHeadAttention::new(16, 4)
        .unwrap()
        .with_mask(Box::new(gmm.clone()))
        .unwrap();
    let specs = Layer::<f32>::parameters(&layer);
    let names: Vec<_> = specs.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "q.weight",
            "q.bias",
            "k.weight",
            "k.bias",
            "v.weight",
            "v.bias",
            "out.weight",
            "out.bias",
            "mask"
        ]
    );
    let count = Layer::<f32>::parameter_count(&layer);
    assert_eq!(count, 4 * (256 + 16) + 40);
    let mut params = vec![0.0f32; count];
    layer
        .init_parameters(&mut ChaCha8Rng::seed_from_u64(0), &mut params)
        .unwrap();
    let bound = 0.25f32;
    let projections = &params[..layer.mask_offset()];
    assert!(projections.iter().all(|p| p.abs() <= bound));
    assert!(projections.iter().any(|p| p.abs() > 0.9 * bound));
    let mut expected = vec![0.0f32; 40];
    LogitMask::<f32>::initial_parameters(&gmm, &mut expected).unwrap();
    assert_eq!(&params[layer.mask_offset()..], &expected[..]);
}

#[test]
fn bad_configurations_and_inputs_are_rejected() {
    let name = |e: tessera_nn::Error| match e {
        tessera_nn::Error::Input(i) => i.name(),
        other => panic!("not an input error: {other}"),
    };
    assert_eq!(
        name(MultiHeadAttention::<f64>::new(6, 4).unwrap_err()),
        "heads"
    );
    assert_eq!(
        name(MultiHeadAttention::<f64>::new(0, 1).unwrap_err()),
        "dim"
    );
    assert_eq!(
        name(MultiHeadAttention::<f64>::new(4, 0).unwrap_err()),
        "heads"
    );
    let grid = TokenGrid::square(2).unwrap();
    let three_heads = GaussianMixtureMask::new(grid, 3, 2, 0).unwrap();
    let e = MultiHeadAttention::<f64>::new(DIM, HEADS)
        .unwrap()
        .with_mask(Box::new(three_heads))
        .unwrap_err();
    assert_eq!(name(e), "mask");

    let gmm = GaussianMixtureMask::new(grid, HEADS, 2, 0).unwrap();
    let layer = MultiHeadAttention::new(DIM, HEADS)
        .unwrap()
        .with_mask(Box::new(gmm))
        .unwrap();
    let params = parameters(&layer, 1);
    let fwd = |x: ArrayD<f64>, p: &[f64]| layer.forward(p, &mut [], x.view(), Context::eval());
    // Five tokens for a mask over four; wrong feature size; 2-D input; empty batch.
    assert_eq!(
        name(fwd(ArrayD::zeros(IxDyn(&[1, 5, DIM])), &params).unwrap_err()),
        "input"
    );
    assert_eq!(
        name(fwd(ArrayD::zeros(IxDyn(&[1, 4, 3])), &params).unwrap_err()),
        "input"
    );
    assert_eq!(
        name(fwd(ArrayD::zeros(IxDyn(&[4, DIM])), &params).unwrap_err()),
        "input"
    );
    assert_eq!(
        name(fwd(ArrayD::zeros(IxDyn(&[0, 4, DIM])), &params).unwrap_err()),
        "input"
    );
    assert_eq!(
        name(fwd(ArrayD::zeros(IxDyn(&[1, 4, DIM])), &params[1..]).unwrap_err()),
        "params"
    );
    let mut nan = ArrayD::zeros(IxDyn(&[1, 4, DIM]));
    nan[[0, 2, 1]] = f64::NAN;
    assert_eq!(name(fwd(nan, &params).unwrap_err()), "input");
    let mut bad_sigma = params.clone();
    *bad_sigma.last_mut().unwrap() = f64::INFINITY;
    assert_eq!(
        name(fwd(ArrayD::zeros(IxDyn(&[1, 4, DIM])), &bad_sigma).unwrap_err()),
        "sigma"
    );
    assert!(Layer::<f64>::output_shape(&layer, &[5, DIM]).is_err());
    assert_eq!(
        Layer::<f64>::output_shape(&layer, &[4, DIM]).unwrap(),
        vec![4, DIM]
    );

    let x = ArrayD::from_shape_vec(IxDyn(&[1, 4, DIM]), random(4 * DIM, 2, 1.0)).unwrap();
    let (y, cache) = fwd(x.clone(), &params).unwrap();
    let rec = Recorded {
        params: &params,
        buffers: &[],
        input: x.view(),
        output: y.view(),
        cache: &cache,
    };
    let wrong = ArrayD::zeros(IxDyn(&[1, 4, 3]));
    assert_eq!(
        name(layer.backward(&rec, wrong.view(), None, true).unwrap_err()),
        "grad_output"
    );
    let mut short = vec![0.0; 3];
    assert!(layer
        .backward(&rec, y.view(), Some(&mut short), true)
        .is_err());
    let empty = Cache::empty();
    let foreign = Recorded {
        cache: &empty,
        ..rec.clone()
    };
    assert_eq!(
        name(layer.backward(&foreign, y.view(), None, true).unwrap_err()),
        "cache"
    );
    // R-operator passes are declined with a clear error.
    assert!(layer
        .forward_tangent(
            &rec,
            &tessera_nn::Tangent {
                params: &params,
                input: None
            }
        )
        .is_err());
}

#[test]
fn inside_a_sequential_the_mask_is_a_named_parameter_group_with_exact_gradients() {
    use tessera_nn::layers::Dense;
    use tessera_nn::Sequential;
    let grid = TokenGrid::square(2).unwrap().with_extra_tokens(1).unwrap();
    let gmm = GaussianMixtureMask::new(grid, HEADS, 2, 3).unwrap();
    let model = Sequential::<f64>::new(&[5, DIM], 7)
        .unwrap()
        .push(
            "attn",
            MultiHeadAttention::new(DIM, HEADS)
                .unwrap()
                .with_mask(Box::new(gmm))
                .unwrap(),
        )
        .unwrap()
        .push("head", Dense::new(DIM, 3).unwrap())
        .unwrap();
    let layout = model.parameter_layout();
    let mask = layout.iter().find(|r| r.name == "attn.mask").unwrap();
    assert_eq!(mask.range.len(), 8);
    let x = ArrayD::from_shape_vec(IxDyn(&[2, 5, DIM]), random(40, 8, 1.0)).unwrap();
    let w = ArrayD::from_shape_vec(IxDyn(&[2, 5, 3]), random(30, 9, 1.0)).unwrap();
    let params = model.params().to_vec();
    let loss = |p: &[f64]| {
        let t = model
            .forward_with(p, &mut [], x.view(), Context::eval())
            .unwrap();
        (&t.output() * &w).sum()
    };
    let trace = model.forward_eval(x.view()).unwrap();
    let grad = model.backward(&trace, w.view()).unwrap();
    let fd = central_difference_gradient(loss, &params, 1e-6);
    assert_all_close(
        &grad,
        &ndarray::arr1(&fd),
        1e-6,
        1e-8,
        "sequential gradients",
    );
}

mod shapes {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(12))]

        #[test]
        fn gradients_match_finite_differences_over_shapes(
            batch in 1usize..3, tokens in 1usize..5, heads in 1usize..3, d_head in 1usize..3,
            elm in any::<bool>(), seed in 0u64..100,
        ) {
            let dim = heads * d_head;
            let mut layer = MultiHeadAttention::<f64>::new(dim, heads).unwrap();
            if elm {
                let mask = ElementwiseMask::new(tokens, heads).unwrap().with_combine(MaskCombine::Add);
                layer = layer.with_mask(Box::new(mask)).unwrap();
            }
            let params = parameters(&layer, seed);
            let shape = IxDyn(&[batch, tokens, dim]);
            let n = batch * tokens * dim;
            let x = ArrayD::from_shape_vec(shape.clone(), random(n, seed + 7, 1.0)).unwrap();
            let w = ArrayD::from_shape_vec(shape.clone(), random(n, seed + 8, 1.0)).unwrap();
            let (y, cache) = forward(&layer, &params, &x);
            let rec = Recorded { params: &params, buffers: &[], input: x.view(), output: y.view(), cache: &cache };
            let mut grad = vec![0.0; params.len()];
            let dx = layer.backward(&rec, w.view(), Some(&mut grad), true).unwrap().unwrap();
            let fd_p = central_difference_gradient(|p| (&forward(&layer, p, &x).0 * &w).sum(), &params, 1e-6);
            let fd_x = central_difference_gradient(
                |v| (&forward(&layer, &params, &ArrayD::from_shape_vec(shape.clone(), v.to_vec()).unwrap()).0 * &w).sum(),
                x.as_slice().unwrap(),
                1e-6,
            );
            assert_all_close(&ndarray::arr1(&grad), &ndarray::arr1(&fd_p), 1e-6, 1e-8, "parameters");
            assert_all_close(&dx, &ArrayD::from_shape_vec(shape, fd_x).unwrap(), 1e-6, 1e-8, "input");
        }
    }
}
