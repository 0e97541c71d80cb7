//! Layer-engine models: a tessera-nn [`Sequential`] made of `Dense` layers and ReLU / leaky
//! ReLU activations (with `Flatten` and `Dropout`, which are identities on flattened inputs
//! in evaluation mode) read as a [`PiecewiseLinearNet`], so that weights trained with the
//! layer engine can be analysed (local complexity, patterns, exact partitions).

use ndarray::{Array1, Array2, ArrayD, IxDyn};
use tessera_core::Float;
use tessera_nn::{Context, Sequential};

use crate::error::{Error, Result};
use crate::net::{AffineLayer, PiecewiseLinearNet, PlActivation};

/// The layer kinds [`PiecewiseLinearNet::from_sequential`] accepts.
pub const SUPPORTED_KINDS: [&str; 5] = ["Dense", "Relu", "LeakyRelu", "Flatten", "Dropout"];

fn unsupported(reason: String) -> Error {
    Error::Unsupported { reason }
}

/// The negative-side slope of a point-wise layer, read from its forward pass at −1 (the
/// layer types hide their settings behind the `Layer` trait).
fn probe_slope<F: Float>(layer: &dyn tessera_nn::Layer<F>, name: &str) -> Result<f64> {
    let x = ArrayD::from_shape_vec(IxDyn(&[1, 2]), vec![-F::one(), F::one()])
        .map_err(|e| unsupported(e.to_string()))?;
    let (y, _) = layer.forward(&[], &mut [], x.view(), Context::eval())?;
    let (neg, pos) = match y.as_slice() {
        Some(&[neg, pos]) => (neg.to_f64_exact(), pos.to_f64_exact()),
        _ => {
            return Err(unsupported(format!(
                "layer `{name}` did not return two values for a (1, 2) input"
            )))
        }
    };
    if pos != 1.0 {
        return Err(unsupported(format!(
            "layer `{name}` maps 1 to {pos}, not to 1: not a (leaky) ReLU"
        )));
    }
    Ok(-neg)
}

impl<F: Float> PiecewiseLinearNet<F> {
    /// Reads a [`Sequential`] of `Dense` layers, each optionally followed by a `Relu` or a
    /// `LeakyRelu`, with `Flatten` and `Dropout` allowed anywhere (identities on the
    /// flattened input; dropout is off in evaluation mode), the last `Dense` without an
    /// activation (the logits). Inputs are the model's per-example input flattened in
    /// row-major order (`Flatten`'s order).
    ///
    /// The affine layers are checked against the model's own evaluation-mode forward pass on
    /// a few fixed inputs, so a model this reader misunderstands is an error, not a wrong
    /// analysis.
    ///
    /// # Errors
    /// [`Error::Unsupported`] naming the layer for any other kind (convolutions, GELU,
    /// normalisation, residual blocks …), an activation that does not follow a `Dense`, a
    /// `Dense` that sees a per-example input of rank ≠ 1 (it would act on the last axis
    /// only), a model without a `Dense`, a final activation, or a forward-pass mismatch;
    /// [`Error::Input`] for non-finite weights.
    pub fn from_sequential(model: &Sequential<F>) -> Result<Self> {
        let chain = model.chain();
        let params = model.params();
        let mut shape: Vec<usize> = chain.input_shape().to_vec();
        let names = chain.names();
        let mut layers: Vec<AffineLayer<F>> = Vec::new();
        // The last Dense read, waiting for its activation.
        let mut pending: Option<(Array2<F>, Array1<F>, String)> = None;
        let mut push = |pending: &mut Option<(Array2<F>, Array1<F>, String)>,
                        act: PlActivation|
         -> Result<()> {
            if let Some((w, b, _)) = pending.take() {
                layers.push(AffineLayer::new(w, b, act)?);
            }
            Ok(())
        };
        for (i, name) in names.iter().enumerate() {
            let (Some(layer), Some(range)) = (chain.layer_at(i), chain.param_range(i)) else {
                return Err(unsupported(format!("layer {i} `{name}` cannot be read")));
            };
            let kind = layer.kind();
            match kind {
                "Dense" => {
                    if shape.len() != 1 {
                        return Err(unsupported(format!(
                            "Dense layer `{name}` sees per-example inputs of shape {shape:?}; \
                             only rank-1 inputs are affine maps of the flattened input (add a \
                             Flatten before it)"
                        )));
                    }
                    push(&mut pending, PlActivation::Identity)?;
                    let slice = params.slice(ndarray::s![range]);
                    let mut offset = 0;
                    let (mut weight, mut bias) = (None, None);
                    for spec in layer.parameters() {
                        let n = spec.len();
                        let values = slice.slice(ndarray::s![offset..offset + n]).to_vec();
                        offset += n;
                        match (spec.name.as_str(), spec.shape.as_slice()) {
                            ("weight", &[out, inp]) => {
                                weight = Some(
                                    Array2::from_shape_vec((out, inp), values)
                                        .map_err(|e| unsupported(e.to_string()))?,
                                );
                            }
                            ("bias", &[_]) => bias = Some(Array1::from(values)),
                            (other, s) => {
                                return Err(unsupported(format!(
                                    "Dense layer `{name}` has a parameter `{other}` of shape \
                                     {s:?}; expected weight [out, in] and bias [out]"
                                )))
                            }
                        }
                    }
                    let weight = weight.ok_or_else(|| {
                        unsupported(format!("Dense layer `{name}` has no weight"))
                    })?;
                    let bias = bias.unwrap_or_else(|| Array1::zeros(weight.nrows()));
                    pending = Some((weight, bias, name.to_string()));
                }
                "Relu" | "LeakyRelu" => {
                    if pending.is_none() {
                        return Err(unsupported(format!(
                            "{kind} layer `{name}` does not follow a Dense layer (only \
                             Dense → activation pairs are piecewise-linear layers here)"
                        )));
                    }
                    let act = if kind == "Relu" {
                        PlActivation::Relu
                    } else {
                        PlActivation::LeakyRelu {
                            slope: probe_slope(layer, name)?,
                        }
                    };
                    push(&mut pending, act)?;
                }
                "Flatten" | "Dropout" => {}
                other => {
                    return Err(unsupported(format!(
                        "layer `{name}` of kind {other} (supported: {})",
                        SUPPORTED_KINDS.join(", ")
                    )))
                }
            }
            shape = layer.output_shape(&shape)?;
        }
        if pending.is_none() {
            let reason = if layers.is_empty() {
                "the model has no Dense layer".to_string()
            } else {
                "the model ends with an activation; the last layer must be a Dense (the logits)"
                    .to_string()
            };
            return Err(unsupported(reason));
        }
        push(&mut pending, PlActivation::Identity)?;
        let net = PiecewiseLinearNet::new(layers)?;
        verify_against_sequential(model, &net)?;
        Ok(net)
    }
}

/// Probes both forward passes on a few fixed inputs.
fn verify_against_sequential<F: Float>(
    model: &Sequential<F>,
    net: &PiecewiseLinearNet<F>,
) -> Result<()> {
    let in_shape = model.chain().input_shape().to_vec();
    let d: usize = in_shape.iter().product();
    let rows = 3;
    let probe = Array2::from_shape_fn((rows, d), |(i, k)| {
        F::from_f64_rounded((((i * 7 + k * 13) % 17) as f64 - 8.0) / 8.0)
    });
    let mut full_shape = vec![rows];
    full_shape.extend(&in_shape);
    let shaped = probe
        .clone()
        .into_shape_with_order(IxDyn(&full_shape))
        .map_err(|e| unsupported(e.to_string()))?;
    let expected = model.predict(shaped.view())?;
    let got = net.predict(probe.view())?;
    if expected.len() != got.len() {
        return Err(unsupported(format!(
            "the model's output has shape {:?}, the affine reading {:?}",
            expected.shape(),
            got.shape()
        )));
    }
    let tol = if F::NAME == "f32" { 1e-4 } else { 1e-10 };
    let scale = got
        .iter()
        .fold(1.0f64, |m, v| m.max(v.to_f64_exact().abs()));
    for (e, g) in expected.iter().zip(got.iter()) {
        if (e.to_f64_exact() - g.to_f64_exact()).abs() > tol * scale {
            return Err(unsupported(format!(
                "the affine reading disagrees with the model's forward pass ({} vs {})",
                g.to_f64_exact(),
                e.to_f64_exact()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LocalComplexityConfig, LocalComplexityEstimator, PiecewiseLinear};
    use ndarray::Array4;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use tessera_nn::layers::{Conv2d, Dense, Flatten, Gelu, LeakyRelu, Relu};
    use tessera_nn::{Mlp, MlpConfig};

    fn mlp_and_sequential() -> (Mlp<f64>, Sequential<f64>) {
        let mlp = Mlp::<f64>::new(MlpConfig::new(6, vec![9, 7], 3), 11).unwrap();
        let mut seq = Sequential::<f64>::new(&[6], 0)
            .unwrap()
            .push("fc1", Dense::new(6, 9).unwrap())
            .unwrap()
            .push("act1", Relu)
            .unwrap()
            .push("fc2", Dense::new(9, 7).unwrap())
            .unwrap()
            .push("act2", Relu)
            .unwrap()
            .push("fc3", Dense::new(7, 3).unwrap())
            .unwrap();
        let mut flat = Vec::new();
        for l in 0..3 {
            flat.extend(mlp.weight(l).unwrap().iter().copied());
            flat.extend(mlp.bias(l).unwrap().iter().copied());
        }
        seq.set_params(Array1::from(flat).view()).unwrap();
        (mlp, seq)
    }

    #[test]
    fn a_dense_relu_stack_matches_the_mlp_path() {
        let (mlp, seq) = mlp_and_sequential();
        let net = PiecewiseLinearNet::from_sequential(&seq).unwrap();
        assert_eq!(net, mlp.to_affine().unwrap());
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let x = Array2::from_shape_fn((20, 6), |_| rng.random_range(-1.0..1.0));
        let est = LocalComplexityEstimator::<f64>::new(
            LocalComplexityConfig {
                radius: 0.3,
                num_vertices: 8,
                ..LocalComplexityConfig::default()
            },
            6,
        )
        .unwrap();
        let a = est.compute(&net, x.view()).unwrap();
        let b = est.compute(&mlp, x.view()).unwrap();
        assert_eq!(a.counts(), b.counts());
        assert!(a.counts().iter().any(|&c| c > 0));
    }

    #[test]
    fn leaky_relu_flatten_and_images_match_a_naive_forward() {
        let seq = Sequential::<f64>::new(&[1, 2, 3], 5)
            .unwrap()
            .push("flat", Flatten)
            .unwrap()
            .push("fc1", Dense::new(6, 5).unwrap())
            .unwrap()
            .push("act1", LeakyRelu::new(0.2).unwrap())
            .unwrap()
            .push("fc2", Dense::new(5, 4).unwrap())
            .unwrap()
            .push("fc3", Dense::new(4, 2).unwrap())
            .unwrap();
        let net = PiecewiseLinearNet::from_sequential(&seq).unwrap();
        let info = net.layer_info();
        assert_eq!(info.len(), 3);
        assert_eq!(info[0].activation, PlActivation::LeakyRelu { slope: 0.2 });
        assert_eq!(info[1].activation, PlActivation::Identity);
        // Naive forward from the named parameters.
        let p = |n: &str| seq.param(n).unwrap().to_owned();
        let w1 = p("fc1.weight")
            .into_dimensionality::<ndarray::Ix2>()
            .unwrap();
        let b1 = p("fc1.bias").into_dimensionality::<ndarray::Ix1>().unwrap();
        let w2 = p("fc2.weight")
            .into_dimensionality::<ndarray::Ix2>()
            .unwrap();
        let b2 = p("fc2.bias").into_dimensionality::<ndarray::Ix1>().unwrap();
        let w3 = p("fc3.weight")
            .into_dimensionality::<ndarray::Ix2>()
            .unwrap();
        let b3 = p("fc3.bias").into_dimensionality::<ndarray::Ix1>().unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let images = Array4::from_shape_fn((7, 1, 2, 3), |_| rng.random_range(-2.0..2.0));
        let flat = images.clone().into_shape_with_order((7, 6)).unwrap();
        let h = (flat.dot(&w1.t()) + &b1).mapv(|v| if v > 0.0 { v } else { 0.2 * v });
        let z = (h.dot(&w2.t()) + &b2).dot(&w3.t()) + &b3;
        let got = net.predict(flat.view()).unwrap();
        approx::assert_abs_diff_eq!(got, z, epsilon = 1e-12);
        let model = seq.predict(images.into_dyn().view()).unwrap();
        approx::assert_abs_diff_eq!(got.into_dyn(), model, epsilon = 1e-12);
    }

    #[test]
    fn models_that_are_not_dense_relu_stacks_are_rejected() {
        let msg = |seq: Sequential<f64>| {
            PiecewiseLinearNet::from_sequential(&seq)
                .unwrap_err()
                .to_string()
        };
        let conv = Sequential::<f64>::new(&[1, 4, 4], 0)
            .unwrap()
            .push("conv", Conv2d::new(1, 2, [3, 3], [1, 1], [0, 0]).unwrap())
            .unwrap();
        assert!(msg(conv).contains("Conv2d"));
        let gelu = Sequential::<f64>::new(&[3], 0)
            .unwrap()
            .push("fc", Dense::new(3, 3).unwrap())
            .unwrap()
            .push("g", Gelu)
            .unwrap()
            .push("out", Dense::new(3, 2).unwrap())
            .unwrap();
        assert!(msg(gelu).contains("Gelu"));
        let relu_first = Sequential::<f64>::new(&[3], 0)
            .unwrap()
            .push("r", Relu)
            .unwrap()
            .push("out", Dense::new(3, 2).unwrap())
            .unwrap();
        assert!(msg(relu_first).contains("does not follow a Dense"));
        let ends_relu = Sequential::<f64>::new(&[3], 0)
            .unwrap()
            .push("fc", Dense::new(3, 2).unwrap())
            .unwrap()
            .push("r", Relu)
            .unwrap();
        assert!(msg(ends_relu).contains("ends with an activation"));
        let unflattened = Sequential::<f64>::new(&[2, 3], 0)
            .unwrap()
            .push("fc", Dense::new(3, 2).unwrap())
            .unwrap();
        assert!(msg(unflattened).contains("Flatten"));
        let empty = Sequential::<f64>::new(&[3], 0)
            .unwrap()
            .push("f", Flatten)
            .unwrap();
        assert!(msg(empty).contains("no Dense"));
        let mut nan = Sequential::<f64>::new(&[3], 0)
            .unwrap()
            .push("fc", Dense::new(3, 2).unwrap())
            .unwrap();
        let mut params = nan.params().to_owned();
        params[0] = f64::NAN;
        // set_params may itself reject non-finite values; either way no net comes out.
        if nan.set_params(params.view()).is_ok() {
            assert!(msg(nan).contains("weight"));
        }
    }
}
