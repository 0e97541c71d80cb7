//! Checks against independent references: central finite differences of the loss (gradients)
//! and of the gradient (dense Hessians), a finite-difference Jacobian for the Gauss–Newton
//! matrix, and the closed-form Hessian of a linear least-squares model.

use approx::assert_abs_diff_eq;
use ndarray::{Array1, Array2, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tessera_nn::{
    Activation, LinearOperator, Loss, Mlp, MlpConfig, Parameterization, ResidualConfig, Targets,
};

fn random_matrix(rows: usize, cols: usize, rng: &mut ChaCha8Rng) -> Array2<f64> {
    Array2::from_shape_fn((rows, cols), |_| rng.random_range(-1.5..1.5))
}

fn soft_targets(rows: usize, cols: usize, rng: &mut ChaCha8Rng) -> Array2<f64> {
    let mut y = Array2::from_shape_fn((rows, cols), |_| rng.random_range(0.05..1.0));
    for mut row in y.axis_iter_mut(Axis(0)) {
        let s = row.sum();
        row /= s;
    }
    y
}

struct Case {
    mlp: Mlp<f64>,
    x: Array2<f64>,
    labels: Vec<usize>,
    soft: Array2<f64>,
}

fn case(
    activation: Activation,
    param: Parameterization,
    residual: Option<(usize, f64)>,
    seed: u64,
) -> Case {
    let (input, classes, batch) = (3, 3, 5);
    let mut config = MlpConfig::new(input, vec![4, 3], classes)
        .with_activation(activation)
        .with_parameterization(param);
    if let Some((depth, scale)) = residual {
        config = config.with_residual(ResidualConfig {
            blocks_per_stage: 1,
            branch_scale: scale,
            branch_depth: depth,
        });
    }
    let mut mlp = Mlp::new(config, seed).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(seed + 1000);
    // Non-zero biases so every bias path is exercised.
    for j in 0..mlp.num_layers() {
        for b in mlp.bias_mut(j).unwrap().iter_mut() {
            *b = rng.random_range(-0.3..0.3);
        }
    }
    let x = random_matrix(batch, input, &mut rng);
    let labels = (0..batch).map(|_| rng.random_range(0..classes)).collect();
    let soft = soft_targets(batch, classes, &mut rng);
    Case {
        mlp,
        x,
        labels,
        soft,
    }
}

fn targets<'a>(c: &'a Case, which: usize) -> (Targets<'a, f64>, Loss) {
    match which {
        0 => (Targets::Hard(&c.labels), Loss::SoftmaxCrossEntropy),
        1 => (Targets::Soft(c.soft.view()), Loss::SoftmaxCrossEntropy),
        _ => (Targets::Soft(c.soft.view()), Loss::Mse),
    }
}

fn finite_difference_gradient(c: &Case, t: &Targets<'_, f64>, loss: Loss, h: f64) -> Array1<f64> {
    let mut net = c.mlp.clone();
    let p0 = c.mlp.params().to_owned();
    Array1::from_shape_fn(p0.len(), |i| {
        let mut p = p0.clone();
        p[i] += h;
        net.set_params(p.view()).unwrap();
        let up = net.loss(c.x.view(), t, loss).unwrap();
        p[i] -= 2.0 * h;
        net.set_params(p.view()).unwrap();
        let down = net.loss(c.x.view(), t, loss).unwrap();
        (up - down) / (2.0 * h)
    })
}

fn finite_difference_hessian(c: &Case, t: &Targets<'_, f64>, loss: Loss, h: f64) -> Array2<f64> {
    let mut net = c.mlp.clone();
    let p0 = c.mlp.params().to_owned();
    let n = p0.len();
    let mut hess = Array2::zeros((n, n));
    for i in 0..n {
        let mut p = p0.clone();
        p[i] += h;
        net.set_params(p.view()).unwrap();
        let (_, up) = net.loss_and_gradient(c.x.view(), t, loss).unwrap();
        p[i] -= 2.0 * h;
        net.set_params(p.view()).unwrap();
        let (_, down) = net.loss_and_gradient(c.x.view(), t, loss).unwrap();
        hess.column_mut(i).assign(&((up - down) / (2.0 * h)));
    }
    hess
}

fn assert_close(a: &[f64], b: &[f64], rel: f64, what: &str) {
    let scale = b.iter().fold(1e-3f64, |m, v| m.max(v.abs()));
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= rel * scale,
            "{what}: entry {i}: {x} vs {y} (scale {scale})"
        );
    }
}

const ACTIVATIONS: [Activation; 3] = [Activation::Relu, Activation::Gelu, Activation::Identity];
const PARAMS: [Parameterization; 3] = [
    Parameterization::Standard,
    Parameterization::Ntk,
    Parameterization::MuP,
];
const RESIDUALS: [Option<(usize, f64)>; 3] = [None, Some((1, 0.3)), Some((2, 0.1))];

#[test]
fn gradients_match_finite_differences_for_every_layer_loss_and_parameterisation() {
    let mut seed = 0;
    for act in ACTIVATIONS {
        for param in PARAMS {
            for residual in RESIDUALS {
                seed += 1;
                let c = case(act, param, residual, seed);
                for which in 0..3 {
                    let (t, loss) = targets(&c, which);
                    let (_, grad) = c.mlp.loss_and_gradient(c.x.view(), &t, loss).unwrap();
                    let fd = finite_difference_gradient(&c, &t, loss, 1e-6);
                    assert_close(
                        grad.as_slice().unwrap(),
                        fd.as_slice().unwrap(),
                        1e-6,
                        &format!("{act:?} {param:?} {residual:?} loss {which}"),
                    );
                }
            }
        }
    }
}

#[test]
fn input_gradient_and_external_logit_gradient_match() {
    let c = case(Activation::Gelu, Parameterization::MuP, Some((2, 0.2)), 77);
    let (t, loss) = targets(&c, 1);
    let trace = c.mlp.forward(c.x.view()).unwrap();
    let (_, logit_grad) = tessera_nn::loss_and_logit_gradient(trace.logits(), &t, loss).unwrap();
    let (grad, input_grad) = c
        .mlp
        .backward_with_input_grad(&trace, logit_grad.view())
        .unwrap();
    let (_, reference) = c.mlp.loss_and_gradient(c.x.view(), &t, loss).unwrap();
    assert_eq!(grad, reference);
    let external = c
        .mlp
        .backward_from_logit_grad(&trace, logit_grad.view())
        .unwrap();
    assert_eq!(external, reference);
    let h = 1e-6;
    for i in 0..c.x.nrows() {
        for k in 0..c.x.ncols() {
            let mut xp = c.x.clone();
            xp[[i, k]] += h;
            let up = c.mlp.loss(xp.view(), &t, loss).unwrap();
            xp[[i, k]] -= 2.0 * h;
            let down = c.mlp.loss(xp.view(), &t, loss).unwrap();
            let fd = (up - down) / (2.0 * h);
            assert_abs_diff_eq!(fd, input_grad[[i, k]], epsilon = 1e-7);
        }
    }
}

#[test]
fn dense_hessian_from_hvp_matches_finite_differences_of_gradients() {
    let mut seed = 100;
    for act in ACTIVATIONS {
        for param in PARAMS {
            for residual in RESIDUALS {
                seed += 1;
                let c = case(act, param, residual, seed);
                for which in [0, 2] {
                    let (t, loss) = targets(&c, which);
                    let op = c.mlp.hessian_operator(c.x.view(), t, loss).unwrap();
                    let h = op.to_dense();
                    let fd = finite_difference_hessian(&c, &t, loss, 1e-5);
                    let what = format!("{act:?} {param:?} {residual:?} loss {which}");
                    assert_close(h.as_slice().unwrap(), fd.as_slice().unwrap(), 1e-6, &what);
                    // Exact symmetry up to rounding.
                    let asym = (&h - &h.t()).iter().fold(0.0f64, |m, v| m.max(v.abs()));
                    assert!(asym < 1e-12 * (1.0 + h.iter().fold(0.0f64, |m, v| m.max(v.abs()))));
                }
            }
        }
    }
}

/// `G = Jᵀ H_z J` with `J` from central differences of the logits and `H_z` written out here.
#[test]
fn gauss_newton_matches_finite_difference_jacobian() {
    for (seed, act) in [(5u64, Activation::Gelu), (6, Activation::Relu)] {
        let c = case(act, Parameterization::Ntk, Some((1, 0.25)), seed);
        for which in [1, 2] {
            let (t, loss) = targets(&c, which);
            let logits = c.mlp.predict(c.x.view()).unwrap();
            let (b, k) = logits.dim();
            let p0 = c.mlp.params().to_owned();
            let n = p0.len();
            let mut jac = Array2::<f64>::zeros((b * k, n));
            let mut net = c.mlp.clone();
            let h = 1e-6;
            for i in 0..n {
                let mut p = p0.clone();
                p[i] += h;
                net.set_params(p.view()).unwrap();
                let up = net.predict(c.x.view()).unwrap();
                p[i] -= 2.0 * h;
                net.set_params(p.view()).unwrap();
                let down = net.predict(c.x.view()).unwrap();
                let col = (up - down) / (2.0 * h);
                jac.column_mut(i)
                    .assign(&col.into_shape_with_order(b * k).unwrap());
            }
            let mut hz = Array2::<f64>::zeros((b * k, b * k));
            for r in 0..b {
                if loss == Loss::Mse {
                    for a in 0..k {
                        hz[[r * k + a, r * k + a]] = 2.0 / (b * k) as f64;
                    }
                } else {
                    let row = logits.row(r);
                    let max = row.fold(f64::MIN, |m, &v| m.max(v));
                    let e: Vec<f64> = row.iter().map(|v| (v - max).exp()).collect();
                    let s: f64 = e.iter().sum();
                    let p: Vec<f64> = e.iter().map(|v| v / s).collect();
                    for a in 0..k {
                        for bb in 0..k {
                            let d = if a == bb { p[a] } else { 0.0 };
                            hz[[r * k + a, r * k + bb]] = (d - p[a] * p[bb]) / b as f64;
                        }
                    }
                }
            }
            let reference = jac.t().dot(&hz).dot(&jac);
            let op = c.mlp.gauss_newton_operator(c.x.view(), t, loss).unwrap();
            let g = op.to_dense();
            assert_close(
                g.as_slice().unwrap(),
                reference.as_slice().unwrap(),
                1e-6,
                &format!("GGN {act:?} loss {which}"),
            );
        }
    }
}

/// A network without hidden layers under MSE is linear least squares:
/// `H = (2/(BK)) · (X̃ᵀX̃ ⊗ I_K)` in the parameter layout (W row-major, then b).
#[test]
fn linear_model_hessian_is_closed_form() {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let (b, d, k) = (7, 3, 2);
    let mlp = Mlp::<f64>::new(MlpConfig::new(d, vec![], k), 3).unwrap();
    let x = random_matrix(b, d, &mut rng);
    let y = random_matrix(b, k, &mut rng);
    let op = mlp
        .hessian_operator(x.view(), Targets::Soft(y.view()), Loss::Mse)
        .unwrap();
    let h = op.to_dense();
    // Feature index: weights W[o, i] at o*d + i, bias b[o] at k*d + o.
    let feature = |o: usize, i: Option<usize>| match i {
        Some(i) => o * d + i,
        None => k * d + o,
    };
    let mut reference = Array2::<f64>::zeros((k * d + k, k * d + k));
    for o in 0..k {
        let inputs: Vec<Option<usize>> = (0..d).map(Some).chain([None]).collect();
        for &i in &inputs {
            for &j in &inputs {
                let xi = |r: usize, i: Option<usize>| i.map_or(1.0, |i| x[[r, i]]);
                let s: f64 = (0..b).map(|r| xi(r, i) * xi(r, j)).sum();
                reference[[feature(o, i), feature(o, j)]] = 2.0 * s / (b * k) as f64;
            }
        }
    }
    assert_close(
        h.as_slice().unwrap(),
        reference.as_slice().unwrap(),
        1e-13,
        "linear least squares",
    );
    // And the operator works through the LinearOperator trait as well.
    let v = Array1::from_shape_fn(op.dim(), |i| (i as f64).sin());
    let mut hv = Array1::zeros(op.dim());
    op.apply(v.view(), hv.view_mut());
    assert_close(
        hv.as_slice().unwrap(),
        reference.dot(&v).as_slice().unwrap(),
        1e-13,
        "apply",
    );
}

#[test]
fn f32_hessian_agrees_with_f64() {
    let c = case(Activation::Gelu, Parameterization::MuP, Some((2, 0.2)), 31);
    let (t, loss) = targets(&c, 1);
    let h64 = c
        .mlp
        .hessian_operator(c.x.view(), t, loss)
        .unwrap()
        .to_dense();
    let mut m32 = Mlp::<f32>::new(c.mlp.config().clone(), 0).unwrap();
    m32.set_params(c.mlp.params().mapv(|v| v as f32).view())
        .unwrap();
    let x32 = c.x.mapv(|v| v as f32);
    let y32 = c.soft.mapv(|v| v as f32);
    let h32 = m32
        .hessian_operator(x32.view(), Targets::Soft(y32.view()), loss)
        .unwrap()
        .to_dense();
    let h32 = h32.mapv(|v| v as f64);
    assert_close(
        h32.as_slice().unwrap(),
        h64.as_slice().unwrap(),
        1e-4,
        "f32 vs f64",
    );
}
