//! Exact Hessian- and Gauss–Newton-vector products of a `Sequential` against finite
//! differences of gradients, a finite-difference Jacobian, and `Mlp`'s own operator.

use approx::assert_abs_diff_eq;
use ndarray::{Array1, Array2, ArrayD, ArrayViewD};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tessera_nn::layers::{
    AvgPool2d, BatchNorm, Conv2d, Dense, Flatten, Gelu, GlobalAvgPool, LayerNorm, MaxPool2d, Relu,
    Tanh,
};
use tessera_nn::{
    Activation, Cache, Chain, Context, Error, Layer, LinearOperator, Loss, Mlp, MlpConfig,
    Recorded, Residual, Sequential, Targets,
};

use crate::layers::random_tensor;

fn gradient_at(
    model: &Sequential<f64>,
    p: &[f64],
    x: &ArrayD<f64>,
    targets: &Targets<'_, f64>,
    loss: Loss,
) -> Vec<f64> {
    let mut b: Vec<f64> = model.buffers().to_vec();
    let trace = model
        .forward_with(p, &mut b, x.view(), Context::eval())
        .unwrap();
    let (_, g) =
        tessera_nn::loss_and_logit_gradient(trace.logits().unwrap(), targets, loss).unwrap();
    model
        .backward_at(p, &trace, Some(g.into_dyn().view()), &[], true, false)
        .unwrap()
        .params
        .unwrap()
        .to_vec()
}

/// Column j of the Hessian by central differences of the gradient.
fn fd_hessian(
    model: &Sequential<f64>,
    x: &ArrayD<f64>,
    targets: &Targets<'_, f64>,
    loss: Loss,
) -> Array2<f64> {
    let p: Vec<f64> = model.params().to_vec();
    let n = p.len();
    let h = 1e-5;
    let mut hess = Array2::zeros((n, n));
    for j in 0..n {
        let mut up = p.clone();
        up[j] += h;
        let mut down = p.clone();
        down[j] -= h;
        let gu = gradient_at(model, &up, x, targets, loss);
        let gd = gradient_at(model, &down, x, targets, loss);
        for i in 0..n {
            hess[[i, j]] = (gu[i] - gd[i]) / (2.0 * h);
        }
    }
    hess
}

fn assert_close(a: &Array2<f64>, b: &Array2<f64>, tol: f64, what: &str) {
    let scale = b.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    let worst = a
        .iter()
        .zip(b.iter())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    assert!(
        worst < tol * scale,
        "{what}: off by {worst:e} (scale {scale:e})"
    );
}

fn perturbed(mut model: Sequential<f64>, seed: u64) -> Sequential<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for p in model.params_mut().iter_mut() {
        *p += rng.random_range(-0.3..0.3);
    }
    for b in model.buffers_mut().iter_mut() {
        *b += rng.random_range(0.1..0.5);
    }
    model
}

#[test]
fn hessian_of_a_dense_network_with_norms_and_residuals_matches_finite_differences() {
    let block = Residual::new(
        Chain::new(&[5])
            .unwrap()
            .push("fc", Dense::new(5, 5).unwrap())
            .unwrap()
            .push("act", Gelu)
            .unwrap()
            .push("ln", LayerNorm::new(&[5]).unwrap())
            .unwrap(),
        0.3,
    )
    .unwrap()
    .with_activation(Tanh)
    .unwrap();
    let model = perturbed(
        Sequential::new(&[3], 1)
            .unwrap()
            .push("fc1", Dense::new(3, 5).unwrap())
            .unwrap()
            .push("bn", BatchNorm::new(5).unwrap())
            .unwrap()
            .push("act", Tanh)
            .unwrap()
            .push("block", block)
            .unwrap()
            .push("fc2", Dense::new(5, 3).unwrap())
            .unwrap(),
        2,
    );
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let x = random_tensor(&[4, 3], &mut rng);
    let labels = [0usize, 2, 1, 2];
    let targets = Targets::Hard(&labels);
    let op = model
        .hessian_operator(x.view(), targets, Loss::SoftmaxCrossEntropy)
        .unwrap();
    let dense = op.to_dense().unwrap();
    let fd = fd_hessian(&model, &x, &targets, Loss::SoftmaxCrossEntropy);
    assert_close(&dense, &fd, 1e-6, "Hessian");
    assert_close(&dense, &dense.t().to_owned(), 1e-10, "symmetry");
    // The operator's gradient is the model's.
    let g = gradient_at(
        &model,
        model.params().as_slice().unwrap(),
        &x,
        &targets,
        Loss::SoftmaxCrossEntropy,
    );
    for (a, b) in op.gradient().iter().zip(&g) {
        assert_abs_diff_eq!(*a, *b, epsilon = 1e-12);
    }
}

#[test]
fn hessian_of_a_small_cnn_matches_finite_differences() {
    let model = perturbed(
        Sequential::new(&[2, 5, 5], 4)
            .unwrap()
            .push("conv", Conv2d::square(2, 2, 3, 1, 1).unwrap())
            .unwrap()
            .push("bn", BatchNorm::new(2).unwrap())
            .unwrap()
            .push("relu", Relu)
            .unwrap()
            .push("pool", MaxPool2d::new([2, 2], [1, 1], [0, 0]).unwrap())
            .unwrap()
            .push("conv2", Conv2d::square(2, 2, 2, 2, 1).unwrap())
            .unwrap()
            .push("act", Gelu)
            .unwrap()
            .push("avg", AvgPool2d::new([2, 2], [1, 1], [0, 0]).unwrap())
            .unwrap()
            .push("gap", GlobalAvgPool)
            .unwrap()
            .push("fc", Dense::new(2, 3).unwrap())
            .unwrap(),
        5,
    );
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let x = random_tensor(&[3, 2, 5, 5], &mut rng);
    let soft = Array2::from_shape_fn((3, 3), |(i, j)| 0.2 + 0.1 * ((i + 2 * j) % 3) as f64);
    let targets = Targets::Soft(soft.view());
    let op = model
        .hessian_operator(x.view(), targets, Loss::SoftmaxCrossEntropy)
        .unwrap();
    let dense = op.to_dense().unwrap();
    let fd = fd_hessian(&model, &x, &targets, Loss::SoftmaxCrossEntropy);
    assert_close(&dense, &fd, 1e-6, "CNN Hessian");
}

#[test]
fn gauss_newton_equals_j_transpose_h_j() {
    let model = perturbed(
        Sequential::new(&[1, 4, 4], 7)
            .unwrap()
            .push("conv", Conv2d::square(1, 2, 3, 1, 0).unwrap())
            .unwrap()
            .push("act", Tanh)
            .unwrap()
            .push("flat", Flatten)
            .unwrap()
            .push("fc", Dense::new(8, 2).unwrap())
            .unwrap(),
        8,
    );
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let x = random_tensor(&[3, 1, 4, 4], &mut rng);
    let y = random_tensor(&[3, 2], &mut rng)
        .into_dimensionality::<ndarray::Ix2>()
        .unwrap();
    let targets = Targets::Soft(y.view());
    let op = model
        .gauss_newton_operator(x.view(), targets, Loss::Mse)
        .unwrap();
    let dense = op.to_dense().unwrap();
    // J by central differences of the logits; MSE's logit Hessian is 2/(B·K)·I.
    let p: Vec<f64> = model.params().to_vec();
    let n = p.len();
    let logits_at = |q: &[f64]| -> Vec<f64> {
        let mut b: Vec<f64> = model.buffers().to_vec();
        let t = model
            .forward_with(q, &mut b, x.view(), Context::eval())
            .unwrap();
        t.output().iter().copied().collect()
    };
    let m = logits_at(&p).len();
    let mut jac = Array2::zeros((m, n));
    for j in 0..n {
        let (mut up, mut down) = (p.clone(), p.clone());
        up[j] += 1e-6;
        down[j] -= 1e-6;
        let (a, b) = (logits_at(&up), logits_at(&down));
        for i in 0..m {
            jac[[i, j]] = (a[i] - b[i]) / 2e-6;
        }
    }
    let want = jac.t().dot(&jac) * (2.0 / m as f64);
    assert_close(&dense, &want, 1e-7, "GGN");
    // A linear operator for Lanczos.
    let v = Array1::from_elem(n, 0.5);
    let mut out = Array1::zeros(n);
    op.apply(v.view(), out.view_mut());
    let direct = op.product(v.view()).unwrap();
    assert_eq!(out, direct);
    assert_eq!(op.dim(), n);
}

#[test]
fn hessian_agrees_with_mlp_curvature_operator() {
    let config = MlpConfig::new(4, vec![5, 5], 3).with_activation(Activation::Gelu);
    let mlp = Mlp::<f64>::new(config, 10).unwrap();
    let mut model = Sequential::new(&[4], 0)
        .unwrap()
        .push("fc1", Dense::new(4, 5).unwrap())
        .unwrap()
        .push("a1", Gelu)
        .unwrap()
        .push("fc2", Dense::new(5, 5).unwrap())
        .unwrap()
        .push("a2", Gelu)
        .unwrap()
        .push("fc3", Dense::new(5, 3).unwrap())
        .unwrap();
    model.set_params(mlp.params()).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let x: Array2<f64> = Array2::from_shape_fn((6, 4), |_| rng.random_range(-1.0..1.0));
    let labels = [0usize, 1, 2, 0, 1, 2];
    for kind in [true, false] {
        let (ours, theirs) = if kind {
            (
                model
                    .hessian_operator(
                        x.view().into_dyn(),
                        Targets::Hard(&labels),
                        Loss::SoftmaxCrossEntropy,
                    )
                    .unwrap()
                    .to_dense()
                    .unwrap(),
                mlp.hessian_operator(x.view(), Targets::Hard(&labels), Loss::SoftmaxCrossEntropy)
                    .unwrap()
                    .to_dense(),
            )
        } else {
            (
                model
                    .gauss_newton_operator(
                        x.view().into_dyn(),
                        Targets::Hard(&labels),
                        Loss::SoftmaxCrossEntropy,
                    )
                    .unwrap()
                    .to_dense()
                    .unwrap(),
                mlp.gauss_newton_operator(
                    x.view(),
                    Targets::Hard(&labels),
                    Loss::SoftmaxCrossEntropy,
                )
                .unwrap()
                .to_dense(),
            )
        };
        assert_close(
            &ours,
            &theirs,
            1e-12,
            if kind { "H vs Mlp" } else { "G vs Mlp" },
        );
    }
}

/// `y = x²` without an R-operator: a user layer that declines curvature products.
#[derive(Debug)]
struct Square;

impl Layer<f64> for Square {
    fn kind(&self) -> &'static str {
        "Square"
    }
    fn output_shape(&self, input: &[usize]) -> tessera_nn::Result<Vec<usize>> {
        Ok(input.to_vec())
    }
    fn forward(
        &self,
        _params: &[f64],
        _buffers: &mut [f64],
        input: ArrayViewD<'_, f64>,
        _ctx: Context,
    ) -> tessera_nn::Result<(ArrayD<f64>, Cache<f64>)> {
        Ok((input.mapv(|v| v * v), Cache::empty()))
    }
    fn backward(
        &self,
        rec: &Recorded<'_, f64>,
        grad_output: ArrayViewD<'_, f64>,
        _grad_params: Option<&mut [f64]>,
        want_input: bool,
    ) -> tessera_nn::Result<Option<ArrayD<f64>>> {
        Ok(want_input.then(|| &grad_output * &rec.input.mapv(|v| 2.0 * v)))
    }
}

#[test]
fn layers_without_an_r_operator_decline_with_an_error() {
    let model = Sequential::new(&[3], 0)
        .unwrap()
        .push("sq", Square)
        .unwrap()
        .push("fc", Dense::new(3, 2).unwrap())
        .unwrap();
    let x = ArrayD::from_elem(ndarray::IxDyn(&[2, 3]), 0.5);
    // Gradients work…
    let mut m = model.clone();
    assert!(m
        .loss_and_gradient(
            x.view(),
            &Targets::Hard(&[0, 1]),
            Loss::SoftmaxCrossEntropy,
            tessera_nn::Mode::Eval
        )
        .is_ok());
    // …curvature does not, and says which layer.
    let err = model
        .hessian_operator(x.view(), Targets::Hard(&[0, 1]), Loss::SoftmaxCrossEntropy)
        .unwrap_err();
    assert!(
        matches!(&err, Error::Unsupported { layer, .. } if layer == "Square"),
        "{err}"
    );
    assert!(model
        .gauss_newton_operator(x.view(), Targets::Hard(&[0, 1]), Loss::SoftmaxCrossEntropy)
        .is_err());
}
