//! Every layer's input and parameter gradients, and its R-operator (forward and backward
//! tangents), against central finite differences in f64; convolution against a naive direct
//! convolution; batch-norm train/eval semantics; bad-input errors.

use approx::assert_abs_diff_eq;
use ndarray::{ArrayD, ArrayViewD, IxDyn};
use proptest::prelude::*;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tessera_nn::layers::{
    AvgPool2d, BatchNorm, Conv2d, Dropout, Flatten, Gelu, GlobalAvgPool, LayerNorm, LeakyRelu,
    MaxPool2d, Relu, Tanh,
};
use tessera_nn::{Cache, Context, Error, Layer, Recorded, Tangent};
use tessera_testing::central_difference_gradient;

pub(crate) fn random_tensor(shape: &[usize], rng: &mut ChaCha8Rng) -> ArrayD<f64> {
    ArrayD::from_shape_fn(IxDyn(shape), |_| rng.random_range(-1.5..1.5))
}

fn max_rel_err(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs() / (1.0 + x.abs().max(y.abs())))
        .fold(0.0, f64::max)
}

/// A layer with parameters, buffers, an input and upstream weights `c`, checked on
/// `f(θ, x) = Σ c ⊙ layer(θ, x)`.
pub(crate) struct Probe<'l> {
    pub layer: &'l dyn Layer<f64>,
    pub params: Vec<f64>,
    pub buffers: Vec<f64>,
    pub x: ArrayD<f64>,
    pub ctx: Context,
}

impl<'l> Probe<'l> {
    pub fn new(layer: &'l dyn Layer<f64>, input: &[usize], ctx: Context, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut params = vec![0.0; layer.parameter_count()];
        layer.init_parameters(&mut rng, &mut params).unwrap();
        // Move away from the constant initialisations (γ = 1, β = 0) so every term counts.
        for p in params.iter_mut() {
            *p += rng.random_range(-0.4..0.4);
        }
        let mut buffers = vec![0.0; layer.buffer_count()];
        layer.init_buffers(&mut buffers).unwrap();
        for b in buffers.iter_mut() {
            *b += rng.random_range(0.1..0.5);
        }
        let x = random_tensor(input, &mut rng);
        Self {
            layer,
            params,
            buffers,
            x,
            ctx,
        }
    }

    pub fn forward(&self, params: &[f64], x: ArrayViewD<'_, f64>) -> (ArrayD<f64>, Cache<f64>) {
        let mut buffers = self.buffers.clone();
        self.layer
            .forward(params, &mut buffers, x, self.ctx)
            .unwrap()
    }

    /// Checks ∂f/∂x and ∂f/∂θ by central differences, and the R-operator when the layer has
    /// one (`with_r_op`).
    pub fn check(&self, with_r_op: bool, tol: f64) {
        let kind = self.layer.kind();
        let (out, cache) = self.forward(&self.params, self.x.view());
        let mut rng = ChaCha8Rng::seed_from_u64(99);
        let c = random_tensor(out.shape(), &mut rng);
        let f = |p: &[f64], x: &[f64]| -> f64 {
            let xv = ArrayViewD::from_shape(self.x.raw_dim(), x).unwrap();
            let (y, _) = self.forward(p, xv);
            (&y * &c).sum()
        };
        let x_flat: Vec<f64> = self.x.iter().copied().collect();
        let mut grad_params = vec![0.0; self.params.len()];
        let rec = Recorded {
            params: &self.params,
            buffers: &self.buffers,
            input: self.x.view(),
            output: out.view(),
            cache: &cache,
        };
        let dx = self
            .layer
            .backward(&rec, c.view(), Some(&mut grad_params), true)
            .unwrap()
            .unwrap();
        let h = 1e-5;
        let fd_x = central_difference_gradient(|x| f(&self.params, x), &x_flat, h);
        let dx_flat: Vec<f64> = dx.iter().copied().collect();
        let e = max_rel_err(&dx_flat, &fd_x);
        assert!(e < tol, "{kind}: input gradient off by {e:e}");
        if !self.params.is_empty() {
            let fd_p = central_difference_gradient(|p| f(p, &x_flat), &self.params, h);
            let e = max_rel_err(&grad_params, &fd_p);
            assert!(e < tol, "{kind}: parameter gradient off by {e:e}");
        }
        // Without the parameter gradient the input gradient is the same.
        let dx2 = self
            .layer
            .backward(&rec, c.view(), None, true)
            .unwrap()
            .unwrap();
        assert_eq!(dx, dx2, "{kind}: input gradient depends on grad_params");
        if with_r_op {
            self.check_r_op(&c, &out, &cache, tol);
        }
    }

    fn check_r_op(&self, c: &ArrayD<f64>, out: &ArrayD<f64>, cache: &Cache<f64>, tol: f64) {
        let kind = self.layer.kind();
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let v: Vec<f64> = (0..self.params.len())
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        let rx = random_tensor(self.x.shape(), &mut rng);
        let r_delta = random_tensor(out.shape(), &mut rng);
        let rec = Recorded {
            params: &self.params,
            buffers: &self.buffers,
            input: self.x.view(),
            output: out.view(),
            cache,
        };
        let tangent = Tangent {
            params: &v,
            input: Some(rx.view()),
        };
        let (ry, tcache) = self.layer.forward_tangent(&rec, &tangent).unwrap();
        let h = 1e-5;
        let shifted = |t: f64| -> (Vec<f64>, ArrayD<f64>, ArrayD<f64>, Cache<f64>) {
            let p: Vec<f64> = self.params.iter().zip(&v).map(|(a, b)| a + t * b).collect();
            let x = &self.x + &(&rx * t);
            let (y, cache) = self.forward(&p, x.view());
            (p, x, y, cache)
        };
        let (_, _, y_up, _) = shifted(h);
        let (_, _, y_down, _) = shifted(-h);
        let fd_ry: Vec<f64> = y_up
            .iter()
            .zip(y_down.iter())
            .map(|(a, b)| (a - b) / (2.0 * h))
            .collect();
        let ry_flat: Vec<f64> = ry.iter().copied().collect();
        let e = max_rel_err(&ry_flat, &fd_ry);
        assert!(e < tol, "{kind}: forward tangent off by {e:e}");

        // Backward tangent: the derivative along t of backward(θ + tv, x + t·R{x}, c + t·R{δ}).
        let mut hvp = vec![0.0; self.params.len()];
        let r_dx = self
            .layer
            .backward_tangent(
                &rec,
                &tangent,
                &tcache,
                c.view(),
                r_delta.view(),
                &mut hvp,
                true,
            )
            .unwrap()
            .unwrap();
        let backward_at = |t: f64| -> (Vec<f64>, ArrayD<f64>) {
            let (p, x, y, cache) = shifted(t);
            let d = c + &(&r_delta * t);
            let rec = Recorded {
                params: &p,
                buffers: &self.buffers,
                input: x.view(),
                output: y.view(),
                cache: &cache,
            };
            let mut g = vec![0.0; p.len()];
            let dx = self
                .layer
                .backward(&rec, d.view(), Some(&mut g), true)
                .unwrap()
                .unwrap();
            (g, dx)
        };
        let (g_up, dx_up) = backward_at(h);
        let (g_down, dx_down) = backward_at(-h);
        let fd_hvp: Vec<f64> = g_up
            .iter()
            .zip(&g_down)
            .map(|(a, b)| (a - b) / (2.0 * h))
            .collect();
        let e = max_rel_err(&hvp, &fd_hvp);
        assert!(e < tol, "{kind}: R{{∂L/∂θ}} off by {e:e}");
        let fd_rdx: Vec<f64> = dx_up
            .iter()
            .zip(dx_down.iter())
            .map(|(a, b)| (a - b) / (2.0 * h))
            .collect();
        let r_dx_flat: Vec<f64> = r_dx.iter().copied().collect();
        let e = max_rel_err(&r_dx_flat, &fd_rdx);
        assert!(e < tol, "{kind}: R{{∂L/∂x}} off by {e:e}");
    }
}

#[test]
fn dense_gradients_and_r_operator() {
    let layer = tessera_nn::layers::Dense::new(4, 3).unwrap();
    Probe::new(&layer, &[5, 4], Context::eval(), 1).check(true, 1e-7);
    // On a sequence tensor (batch, tokens, features), and without bias.
    let layer = tessera_nn::layers::Dense::new(4, 2).unwrap().without_bias();
    Probe::new(&layer, &[2, 3, 4], Context::eval(), 2).check(true, 1e-7);
}

#[test]
fn pointwise_gradients_and_r_operator() {
    let layers: Vec<Box<dyn Layer<f64>>> = vec![
        Box::new(Relu),
        Box::new(LeakyRelu::new(0.1).unwrap()),
        Box::new(Gelu),
        Box::new(Tanh),
    ];
    for (i, layer) in layers.iter().enumerate() {
        Probe::new(layer.as_ref(), &[3, 2, 4], Context::eval(), 10 + i as u64).check(true, 1e-6);
    }
}

#[test]
fn pooling_and_reshape_gradients_and_r_operator() {
    let layers: Vec<Box<dyn Layer<f64>>> = vec![
        Box::new(MaxPool2d::square(2).unwrap()),
        Box::new(MaxPool2d::new([3, 2], [2, 1], [1, 1]).unwrap()),
        Box::new(AvgPool2d::square(2).unwrap()),
        Box::new(AvgPool2d::new([3, 3], [2, 2], [1, 1]).unwrap()),
        Box::new(GlobalAvgPool),
        Box::new(Flatten),
    ];
    for (i, layer) in layers.iter().enumerate() {
        Probe::new(
            layer.as_ref(),
            &[2, 3, 5, 6],
            Context::eval(),
            20 + i as u64,
        )
        .check(true, 1e-7);
    }
}

#[test]
fn batch_norm_gradients() {
    // 2-D (batch, channels, H, W) and 1-D (batch, features), train and eval.
    let bn = BatchNorm::new(3).unwrap();
    Probe::new(&bn, &[4, 3, 2, 3], Context::train(1), 30).check(false, 1e-6);
    Probe::new(&bn, &[4, 3, 2, 3], Context::eval(), 31).check(true, 1e-7);
    Probe::new(&bn, &[5, 3], Context::train(1), 32).check(false, 1e-6);
    Probe::new(&bn, &[5, 3], Context::eval(), 33).check(true, 1e-7);
    let plain = BatchNorm::new(3).unwrap().without_affine();
    Probe::new(&plain, &[4, 3, 2], Context::train(1), 34).check(false, 1e-6);
}

#[test]
fn batch_norm_declines_the_r_operator_in_training_mode() {
    let bn = BatchNorm::new(2).unwrap();
    let probe = Probe::new(&bn, &[4, 2], Context::train(0), 35);
    let (out, cache) = probe.forward(&probe.params, probe.x.view());
    let rec = Recorded {
        params: &probe.params,
        buffers: &probe.buffers,
        input: probe.x.view(),
        output: out.view(),
        cache: &cache,
    };
    let v = vec![0.0; probe.params.len()];
    let err = bn
        .forward_tangent(
            &rec,
            &Tangent {
                params: &v,
                input: None,
            },
        )
        .unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err}");
}

#[test]
fn layer_norm_gradients_and_r_operator() {
    let ln = LayerNorm::new(&[4]).unwrap();
    Probe::new(&ln, &[3, 4], Context::eval(), 40).check(true, 1e-6);
    let ln = LayerNorm::new(&[2, 3]).unwrap();
    Probe::new(&ln, &[2, 2, 2, 3], Context::eval(), 41).check(true, 1e-6);
    let ln = LayerNorm::new(&[5]).unwrap().without_affine();
    Probe::new(&ln, &[2, 5], Context::eval(), 42).check(true, 1e-6);
}

#[test]
fn dropout_gradients_and_masks() {
    let d = Dropout::new(0.5).unwrap();
    Probe::new(&d, &[4, 6], Context::train(3), 50).check(true, 1e-8);
    // A seed fixes the mask; another seed changes it; eval mode is the identity.
    let x = ArrayD::from_elem(IxDyn(&[8, 16]), 1.0);
    let run = |ctx| {
        Layer::<f64>::forward(&d, &[], &mut [], x.view(), ctx)
            .unwrap()
            .0
    };
    assert_eq!(run(Context::train(5)), run(Context::train(5)));
    assert_ne!(run(Context::train(5)), run(Context::train(6)));
    assert_eq!(run(Context::eval()), x);
    let kept = run(Context::train(5)).iter().filter(|&&v| v != 0.0).count();
    assert!((40..=88).contains(&kept), "kept {kept} of 128 at p = 0.5");
    assert!(run(Context::train(5)).iter().all(|&v| v == 0.0 || v == 2.0));
}

/// Direct convolution by the definition (cross-correlation with zero padding).
pub(crate) fn naive_conv(
    x: &ArrayD<f64>,
    w: &ArrayD<f64>,
    b: Option<&[f64]>,
    stride: [usize; 2],
    padding: [usize; 2],
) -> ArrayD<f64> {
    let (n, c, h, wd) = (x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3]);
    let (o, kh, kw) = (w.shape()[0], w.shape()[2], w.shape()[3]);
    let oh = (h + 2 * padding[0] - kh) / stride[0] + 1;
    let ow = (wd + 2 * padding[1] - kw) / stride[1] + 1;
    let mut y = ArrayD::zeros(IxDyn(&[n, o, oh, ow]));
    for bi in 0..n {
        for oc in 0..o {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut s = b.map_or(0.0, |b| b[oc]);
                    for ic in 0..c {
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let iy = (oy * stride[0] + ky) as isize - padding[0] as isize;
                                let ix = (ox * stride[1] + kx) as isize - padding[1] as isize;
                                if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < wd {
                                    s +=
                                        w[[oc, ic, ky, kx]] * x[[bi, ic, iy as usize, ix as usize]];
                                }
                            }
                        }
                    }
                    y[[bi, oc, oy, ox]] = s;
                }
            }
        }
    }
    y
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn conv_matches_naive_and_finite_differences(
        c in 1usize..3, o in 1usize..3, kh in 1usize..4, kw in 1usize..4,
        sh in 1usize..3, sw in 1usize..3, ph in 0usize..2, pw in 0usize..2,
        h in 3usize..6, w in 3usize..6, batch in 1usize..3, seed in 0u64..1000,
    ) {
        let conv = Conv2d::new(c, o, [kh, kw], [sh, sw], [ph, pw]).unwrap();
        let probe = Probe::new(&conv, &[batch, c, h, w], Context::eval(), seed);
        let (y, _) = probe.forward(&probe.params, probe.x.view());
        let nw = o * c * kh * kw;
        let weight = ArrayD::from_shape_vec(IxDyn(&[o, c, kh, kw]), probe.params[..nw].to_vec()).unwrap();
        let want = naive_conv(&probe.x, &weight, Some(&probe.params[nw..]), [sh, sw], [ph, pw]);
        prop_assert_eq!(y.shape(), want.shape());
        for (a, b) in y.iter().zip(want.iter()) {
            prop_assert!((a - b).abs() < 1e-12, "{} vs {}", a, b);
        }
        probe.check(true, 1e-7);
    }

    #[test]
    fn max_pool_gradients_over_shapes(
        k in 1usize..4, s in 1usize..3, h in 3usize..7, w in 3usize..7, seed in 0u64..1000,
    ) {
        // Distinct values 0.01 apart: a central difference (step 1e-5) never crosses a tie, which
        // random inputs occasionally did (two entries of a window within the step).
        let distinct_inputs = |probe: &mut Probe<'_>| {
            let mut order: Vec<usize> = (0..probe.x.len()).collect();
            order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
            probe.x = ArrayD::from_shape_vec(
                probe.x.raw_dim(),
                order.iter().map(|&i| 0.01 * i as f64 - 0.5).collect(),
            )
            .unwrap();
        };
        let pool = MaxPool2d::new([k, k], [s, s], [k / 2, 0]).unwrap();
        let mut probe = Probe::new(&pool, &[2, 2, h, w], Context::eval(), seed);
        distinct_inputs(&mut probe);
        probe.check(true, 1e-7);
        // The 2×2 / stride-2 loop of its own.
        let halving = MaxPool2d::square(2).unwrap();
        let mut probe = Probe::new(&halving, &[2, 2, h, w], Context::eval(), seed);
        distinct_inputs(&mut probe);
        probe.check(true, 1e-7);
    }
}

#[test]
fn batch_norm_train_and_eval_semantics() {
    let bn = BatchNorm::new(2).unwrap();
    // Channel 0 holds 1, 2, 3, 4 over (batch 2 × positions 2); channel 1 holds 10 × that.
    let x = ArrayD::from_shape_vec(
        IxDyn(&[2, 2, 2]),
        vec![1.0, 2.0, 10.0, 20.0, 3.0, 4.0, 30.0, 40.0],
    )
    .unwrap();
    let params = [1.0, 1.0, 0.0, 0.0];
    let mut buffers = vec![0.0, 0.0, 1.0, 1.0];
    let (y, _) = bn
        .forward(&params, &mut buffers, x.view(), Context::train(0))
        .unwrap();
    // Batch statistics: mean 2.5, biased variance 1.25 (channel 0).
    let want0 = (1.0 - 2.5) / (1.25f64 + 1e-5).sqrt();
    assert_abs_diff_eq!(y[[0, 0, 0]], want0, epsilon = 1e-12);
    // Channel 1 is ten times channel 0: the same up to the eps term.
    assert_abs_diff_eq!(y[[0, 1, 0]], want0, epsilon = 1e-5);
    // Running statistics: momentum 0.1, unbiased variance 5/3 (channel 0), 500/3 (channel 1).
    assert_abs_diff_eq!(buffers[0], 0.25, epsilon = 1e-12);
    assert_abs_diff_eq!(buffers[1], 2.5, epsilon = 1e-12);
    assert_abs_diff_eq!(buffers[2], 0.9 + 0.1 * 5.0 / 3.0, epsilon = 1e-12);
    assert_abs_diff_eq!(buffers[3], 0.9 + 0.1 * 500.0 / 3.0, epsilon = 1e-12);
    // Eval mode uses the running statistics and leaves them alone.
    let before = buffers.clone();
    let (ye, _) = bn
        .forward(&params, &mut buffers, x.view(), Context::eval())
        .unwrap();
    assert_eq!(buffers, before);
    let want = (1.0 - 0.25) / (before[2] + 1e-5).sqrt();
    assert_abs_diff_eq!(ye[[0, 0, 0]], want, epsilon = 1e-12);
    // A batch of one without positions has no variance: a clear error in training mode,
    // fine in eval mode.
    let one = ArrayD::from_elem(IxDyn(&[1, 2]), 1.0);
    let err = bn
        .forward(&params, &mut buffers, one.view(), Context::train(0))
        .unwrap_err();
    assert!(err.to_string().contains("more than one value"), "{err}");
    assert!(bn
        .forward(&params, &mut buffers, one.view(), Context::eval())
        .is_ok());
}

#[test]
fn bad_inputs_are_errors_naming_the_parameter() {
    let name_of = |e: Error| match e {
        Error::Input(i) => i.name(),
        other => panic!("expected an input error, got {other}"),
    };
    // Zero stride, zero kernel, zero channels.
    assert_eq!(
        name_of(Conv2d::square(3, 4, 3, 0, 1).unwrap_err()),
        "stride"
    );
    assert_eq!(
        name_of(Conv2d::square(3, 4, 0, 1, 1).unwrap_err()),
        "kernel_size"
    );
    assert_eq!(
        name_of(Conv2d::square(0, 4, 3, 1, 1).unwrap_err()),
        "in_channels"
    );
    assert_eq!(
        name_of(MaxPool2d::new([2, 2], [0, 1], [0, 0]).unwrap_err()),
        "stride"
    );
    assert_eq!(
        name_of(MaxPool2d::new([2, 2], [2, 2], [2, 0]).unwrap_err()),
        "padding"
    );
    // Kernel larger than the padded input.
    let conv = Conv2d::square(3, 4, 5, 1, 0).unwrap();
    assert_eq!(
        name_of(Layer::<f64>::output_shape(&conv, &[3, 4, 4]).unwrap_err()),
        "kernel_size"
    );
    let x = ArrayD::<f64>::zeros(IxDyn(&[2, 3, 4, 4]));
    let p = vec![0.0; Layer::<f64>::parameter_count(&conv)];
    assert_eq!(
        name_of(
            conv.forward(&p, &mut [], x.view(), Context::eval())
                .unwrap_err()
        ),
        "kernel_size"
    );
    // Channel mismatch.
    let conv = Conv2d::square(2, 4, 3, 1, 1).unwrap();
    let p = vec![0.0; Layer::<f64>::parameter_count(&conv)];
    assert_eq!(
        name_of(
            conv.forward(&p, &mut [], x.view(), Context::eval())
                .unwrap_err()
        ),
        "input"
    );
    let bn = BatchNorm::new(4).unwrap();
    assert_eq!(
        name_of(Layer::<f64>::output_shape(&bn, &[3, 4, 4]).unwrap_err()),
        "input"
    );
    // Empty batch, wrong rank.
    let empty = ArrayD::<f64>::zeros(IxDyn(&[0, 3, 4, 4]));
    let conv = Conv2d::square(3, 4, 3, 1, 1).unwrap();
    let p = vec![0.0; Layer::<f64>::parameter_count(&conv)];
    assert!(conv
        .forward(&p, &mut [], empty.view(), Context::eval())
        .is_err());
    let flat = ArrayD::<f64>::zeros(IxDyn(&[2, 48]));
    assert!(conv
        .forward(&p, &mut [], flat.view(), Context::eval())
        .is_err());
    assert!(Layer::<f64>::output_shape(&GlobalAvgPool, &[3]).is_err());
    assert_eq!(name_of(Dropout::new(1.0).unwrap_err()), "p");
    assert_eq!(
        name_of(LayerNorm::new(&[]).unwrap_err()),
        "normalized_shape"
    );
    assert_eq!(
        name_of(BatchNorm::new(3).unwrap().with_momentum(1.5).unwrap_err()),
        "momentum"
    );
}

#[test]
fn slices_of_the_wrong_length_are_errors_not_panics() {
    let x = ArrayD::<f64>::zeros(IxDyn(&[2, 3, 4, 4]));
    let layers: Vec<Box<dyn Layer<f64>>> = vec![
        Box::new(Conv2d::square(3, 2, 3, 1, 1).unwrap()),
        Box::new(BatchNorm::new(3).unwrap()),
        Box::new(LayerNorm::new(&[4]).unwrap()),
        Box::new(tessera_nn::layers::Dense::new(4, 2).unwrap()),
    ];
    for layer in &layers {
        let n = layer.parameter_count();
        let mut buffers = vec![1.0; layer.buffer_count()];
        assert!(layer
            .forward(&vec![0.0; n + 1], &mut buffers, x.view(), Context::eval())
            .is_err());
        let p = vec![0.1; n];
        let (y, cache) = layer
            .forward(&p, &mut buffers, x.view(), Context::eval())
            .unwrap();
        let rec = Recorded {
            params: &p,
            buffers: &buffers,
            input: x.view(),
            output: y.view(),
            cache: &cache,
        };
        let mut short = vec![0.0; n - 1];
        assert!(layer
            .backward(&rec, y.view(), Some(&mut short), true)
            .is_err());
        let t = Tangent {
            params: &short,
            input: None,
        };
        assert!(layer.forward_tangent(&rec, &t).is_err());
    }
    let bn = BatchNorm::new(3).unwrap();
    assert!(bn
        .forward(&[1.0; 6], &mut [0.0; 2], x.view(), Context::eval())
        .is_err());
}

/// The 2×2 / stride-2 max-pool has its own loop: against a direct pool over odd sizes (the last
/// row and column are dropped), ties (the first maximum in row-major order wins), NaN (never
/// chosen) and −∞ (a window of only −∞ and NaN points at its first element).
#[test]
fn max_pool_2x2_matches_a_direct_pool_with_ties_nan_and_infinity() {
    let pool = MaxPool2d::square(2).unwrap();
    let (batch, channels, h, w) = (2, 3, 5, 7);
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut x = ArrayD::from_shape_fn(IxDyn(&[batch, channels, h, w]), |_| {
        f64::from(rng.random_range(0..3u8))
    });
    x[[0, 0, 0, 0]] = f64::NAN;
    x[[0, 1, 2, 2]] = f64::NAN;
    for (y, xx) in [(0, 2), (0, 3), (1, 2), (1, 3)] {
        x[[1, 2, y, xx]] = if y == 0 { f64::NEG_INFINITY } else { f64::NAN };
    }
    let (out, cache) =
        Layer::<f64>::forward(&pool, &[], &mut [], x.view(), Context::eval()).unwrap();
    assert_eq!(out.shape(), &[batch, channels, 2, 3]);
    let mut expected_source = Vec::new();
    for n in 0..batch {
        for c in 0..channels {
            for oy in 0..2 {
                for ox in 0..3 {
                    let mut best = (f64::NEG_INFINITY, (2 * oy, 2 * ox));
                    for (dy, dx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                        let v = x[[n, c, 2 * oy + dy, 2 * ox + dx]];
                        if v > best.0 {
                            best = (v, (2 * oy + dy, 2 * ox + dx));
                        }
                    }
                    assert_eq!(out[[n, c, oy, ox]].to_bits(), best.0.to_bits());
                    expected_source.push((n, c, best.1));
                }
            }
        }
    }
    assert_eq!(out[[1, 2, 0, 1]], f64::NEG_INFINITY);
    // The backward pass sends each output's gradient to the element the forward pass chose.
    let grad = ArrayD::from_shape_fn(out.raw_dim(), |i| {
        1.0 + (i[3] + 3 * (i[2] + 2 * (i[1] + 3 * i[0]))) as f64
    });
    let rec = Recorded {
        params: &[],
        buffers: &[],
        input: x.view(),
        output: out.view(),
        cache: &cache,
    };
    let dx = Layer::<f64>::backward(&pool, &rec, grad.view(), None, true)
        .unwrap()
        .unwrap();
    let mut want = ArrayD::<f64>::zeros(x.raw_dim());
    for (k, (n, c, (y, xx))) in expected_source.into_iter().enumerate() {
        want[[n, c, y, xx]] += 1.0 + k as f64;
    }
    assert_eq!(dx, want);
    // An arg-max outside its own plane (a cache from elsewhere) is an error, not a panic or a
    // gradient in the wrong plane.
    let mut foreign = cache.clone();
    foreign.indices[0] = 5 * 7 + 1;
    let message = Layer::<f64>::backward(
        &pool,
        &Recorded {
            cache: &foreign,
            ..rec.clone()
        },
        grad.view(),
        None,
        true,
    )
    .unwrap_err()
    .to_string();
    assert!(message.contains("cache"), "{message}");
    let mut far = cache.clone();
    far.indices[0] = usize::MAX;
    assert!(Layer::<f64>::backward(
        &pool,
        &Recorded { cache: &far, ..rec },
        grad.view(),
        None,
        true,
    )
    .is_err());
}

/// Batch norm over a tensor with an empty spatial dimension is an error naming the input, in
/// both modes (it used to reach a chunking of size zero).
#[test]
fn batch_norm_rejects_empty_spatial_dimensions() {
    let bn = BatchNorm::new(3).unwrap();
    let params = [1.0, 1.0, 1.0, 0.0, 0.0, 0.0];
    let x = ArrayD::<f64>::zeros(IxDyn(&[2, 3, 0, 4]));
    for ctx in [Context::train(0), Context::eval()] {
        let mut buffers = vec![0.0, 0.0, 0.0, 1.0, 1.0, 1.0];
        let message = bn
            .forward(&params, &mut buffers, x.view(), ctx)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("input") && message.contains("[2, 3, 0, 4]"),
            "{message}"
        );
    }
}
