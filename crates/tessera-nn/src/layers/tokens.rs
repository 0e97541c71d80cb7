//! Layers on token sequences `(batch, tokens, dim)` for vision transformers: a learned
//! position embedding and the mean over tokens (the pooling of the GMM-mask paper's ViT,
//! which drops the class token).

use ndarray::{Array3, ArrayD, ArrayView2, ArrayView4, ArrayViewD, Axis};
use tessera_core::{check, RejectInput};

use crate::error::{Error, Result};
use crate::layer::{Cache, Context, Init, Layer, ParamSpec, Recorded, Tangent};
use crate::layers::util::{
    check_backward_slices, check_batch, check_like, check_slices, check_tangent_slices,
};
use crate::layers::util::{check_grad_output_tangent, check_grad_outputs};
use crate::Float;

/// The most entries a position table may have.
const MAX_TABLE: usize = 1 << 28;

/// Images `(n, c, h, w)` as token rows `(n, tokens, patch·patch·c)` for a vision transformer:
/// tokens in row-major order over the `(h / patch) × (w / patch)` grid of patches, features
/// in `(p1, p2, c)` order (row within the patch, column, channel), as the einops
/// `Rearrange("b c (h p1) (w p2) -> b (h w) (p1 p2 c)")` of the ViT reference code.
///
/// # Errors
/// `patch` zero or not dividing both image sides.
pub fn patchify<F: Float>(images: ArrayView4<'_, F>, patch: usize) -> Result<Array3<F>> {
    let (n, c, h, w) = images.dim();
    check::positive_size("patch", patch)?;
    if h % patch != 0 || w % patch != 0 {
        return Err(Error::invalid(
            "patch",
            patch,
            format!("must divide the image size {h}×{w}"),
        ));
    }
    let (grid_w, row) = (w / patch, patch * c);
    Ok(Array3::from_shape_fn(
        (n, (h / patch) * grid_w, patch * patch * c),
        |(i, t, f)| {
            let (gy, gx) = (t / grid_w, t % grid_w);
            let (p1, p2, ch) = (f / row, (f % row) / c, f % c);
            images[[i, ch, gy * patch + p1, gx * patch + p2]]
        },
    ))
}

/// A learned position embedding: $y_{b,t,:} = x_{b,t,:} + P_{t,:}$ with one parameter
/// `weight` of shape `[tokens, dim]`, initialised $\mathcal N(0, \text{std}^2)$ (ViT's
/// `pos_embedding`; the GMM-mask reference draws it from `randn`, std 1).
#[derive(Debug, Clone, PartialEq)]
pub struct PositionEmbedding {
    tokens: usize,
    dim: usize,
    std: f64,
}

impl PositionEmbedding {
    /// A `[tokens, dim]` table initialised with standard deviation `std` (finite, ≥ 0).
    /// Errors when a size is 0, the table is huge or `std` is not finite and ≥ 0.
    pub fn new(tokens: usize, dim: usize, std: f64) -> Result<Self> {
        check::positive_size("tokens", tokens)?;
        check::positive_size("dim", dim)?;
        check::element_count("tokens * dim", &[tokens, dim], MAX_TABLE)?;
        if !(std.is_finite() && std >= 0.0) {
            return Err(Error::invalid("std", std, "must be finite and >= 0"));
        }
        Ok(Self { tokens, dim, std })
    }

    /// Number of tokens.
    pub fn tokens(&self) -> usize {
        self.tokens
    }

    /// Feature dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    fn table<'a, F>(&self, params: &'a [F]) -> ArrayView2<'a, F> {
        ArrayView2::from_shape((self.tokens, self.dim), params)
            .expect("a checked slice of tokens·dim parameters")
    }

    /// Adds `Σ_batch g[b]` (a `(batch, tokens, dim)` tensor) into `out`.
    fn add_batch_sum<F: Float>(g: &ArrayViewD<'_, F>, out: &mut [F]) {
        for example in g.axis_iter(Axis(0)) {
            for (o, &v) in out.iter_mut().zip(example.iter()) {
                *o += v;
            }
        }
    }

    fn shift<F: Float>(&self, x: &ArrayViewD<'_, F>, table: &[F]) -> ArrayD<F> {
        let table = self.table(table).into_dyn();
        let mut y = x.to_owned();
        for mut example in y.axis_iter_mut(Axis(0)) {
            example += &table;
        }
        y
    }
}

impl<F: Float> Layer<F> for PositionEmbedding {
    fn kind(&self) -> &'static str {
        "PositionEmbedding"
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        if input != [self.tokens, self.dim] {
            return Err(Error::shape(
                "input",
                format!("({}, {}) per example", self.tokens, self.dim),
                format!("{input:?}"),
            ));
        }
        Ok(input.to_vec())
    }

    fn parameters(&self) -> Vec<ParamSpec> {
        vec![ParamSpec::new(
            "weight",
            vec![self.tokens, self.dim],
            Init::Normal { std: self.std },
        )]
    }

    fn forward(
        &self,
        params: &[F],
        _buffers: &mut [F],
        input: ArrayViewD<'_, F>,
        _ctx: Context,
    ) -> Result<(ArrayD<F>, Cache<F>)> {
        check_slices(self.tokens * self.dim, &[("params", params.len())])?;
        check_batch("input", &input, &[self.tokens, self.dim])?;
        Ok((self.shift(&input, params), Cache::empty()))
    }

    fn backward(
        &self,
        rec: &Recorded<'_, F>,
        grad_output: ArrayViewD<'_, F>,
        grad_params: Option<&mut [F]>,
        want_input: bool,
    ) -> Result<Option<ArrayD<F>>> {
        let n = self.tokens * self.dim;
        check_backward_slices(n, rec, grad_params.as_ref().map(|g| g.len()))?;
        check_like("grad_output", &grad_output, rec.output.shape())?;
        if let Some(g) = grad_params {
            Self::add_batch_sum(&grad_output, g);
        }
        Ok(want_input.then(|| grad_output.to_owned()))
    }

    fn forward_tangent(
        &self,
        rec: &Recorded<'_, F>,
        tangent: &Tangent<'_, F>,
    ) -> Result<(ArrayD<F>, Cache<F>)> {
        check_tangent_slices(self.tokens * self.dim, rec, tangent, None)?;
        // R{y} = R{x} + V (the map is x + P, linear in both).
        let out = match &tangent.input {
            Some(rx) => {
                check_like("input tangent", rx, rec.input.shape())?;
                self.shift(rx, tangent.params)
            }
            None => self.shift(&ArrayD::zeros(rec.output.raw_dim()).view(), tangent.params),
        };
        Ok((out, Cache::empty()))
    }

    fn backward_tangent(
        &self,
        rec: &Recorded<'_, F>,
        tangent: &Tangent<'_, F>,
        _tangent_cache: &Cache<F>,
        grad_output: ArrayViewD<'_, F>,
        grad_output_tangent: ArrayViewD<'_, F>,
        hvp_params: &mut [F],
        want_input: bool,
    ) -> Result<Option<ArrayD<F>>> {
        check_tangent_slices(self.tokens * self.dim, rec, tangent, Some(hvp_params.len()))?;
        check_grad_outputs(&grad_output, &grad_output_tangent, rec.output.shape())?;
        Self::add_batch_sum(&grad_output_tangent, hvp_params);
        Ok(want_input.then(|| grad_output_tangent.to_owned()))
    }
}

/// The mean over the token axis: `(batch, tokens, …) → (batch, …)`, i.e. axis 1 of a
/// batch-first tensor (the GMM-mask ViT's `x.mean(dim=1)` before its head).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TokenMeanPool;

impl TokenMeanPool {
    fn check_input<F>(x: &ArrayViewD<'_, F>) -> Result<usize> {
        let shape = x.shape();
        if shape.len() < 2 || shape[0] == 0 || shape[1] == 0 {
            return Err(Error::shape(
                "input",
                "(batch ≥ 1, tokens ≥ 1, …)",
                format!("{shape:?}"),
            ));
        }
        Ok(shape[1])
    }

    fn mean<F: Float>(x: &ArrayViewD<'_, F>) -> Result<ArrayD<F>> {
        let tokens = Self::check_input(x)?;
        let sum = x.sum_axis(Axis(1));
        Ok(sum.mapv(|v| v / F::from_count(tokens)))
    }

    /// `g` (the output's shape) spread back over `tokens` tokens, divided by `tokens`.
    fn spread<F: Float>(g: &ArrayViewD<'_, F>, input_shape: &[usize]) -> ArrayD<F> {
        let tokens = input_shape[1];
        let scaled = g.mapv(|v| v / F::from_count(tokens));
        let mut dx = ArrayD::zeros(input_shape);
        for mut slot in dx.axis_iter_mut(Axis(1)) {
            slot.assign(&scaled);
        }
        dx
    }
}

impl<F: Float> Layer<F> for TokenMeanPool {
    fn kind(&self) -> &'static str {
        "TokenMeanPool"
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        match input.split_first() {
            Some((&tokens, rest)) if tokens > 0 => Ok(rest.to_vec()),
            _ => Err(Error::shape(
                "input",
                "(tokens ≥ 1, …) per example",
                format!("{input:?}"),
            )),
        }
    }

    fn forward(
        &self,
        _params: &[F],
        _buffers: &mut [F],
        input: ArrayViewD<'_, F>,
        _ctx: Context,
    ) -> Result<(ArrayD<F>, Cache<F>)> {
        Ok((Self::mean(&input)?, Cache::empty()))
    }

    fn backward(
        &self,
        rec: &Recorded<'_, F>,
        grad_output: ArrayViewD<'_, F>,
        _grad_params: Option<&mut [F]>,
        want_input: bool,
    ) -> Result<Option<ArrayD<F>>> {
        Self::check_input(&rec.input)?;
        check_like("grad_output", &grad_output, rec.output.shape())?;
        Ok(want_input.then(|| Self::spread(&grad_output, rec.input.shape())))
    }

    fn forward_tangent(
        &self,
        rec: &Recorded<'_, F>,
        tangent: &Tangent<'_, F>,
    ) -> Result<(ArrayD<F>, Cache<F>)> {
        let out = match &tangent.input {
            Some(rx) => {
                check_like("input tangent", rx, rec.input.shape())?;
                Self::mean(rx)?
            }
            None => ArrayD::zeros(rec.output.raw_dim()),
        };
        Ok((out, Cache::empty()))
    }

    fn backward_tangent(
        &self,
        rec: &Recorded<'_, F>,
        _tangent: &Tangent<'_, F>,
        _tangent_cache: &Cache<F>,
        _grad_output: ArrayViewD<'_, F>,
        grad_output_tangent: ArrayViewD<'_, F>,
        _hvp_params: &mut [F],
        want_input: bool,
    ) -> Result<Option<ArrayD<F>>> {
        Self::check_input(&rec.input)?;
        check_grad_output_tangent(&grad_output_tangent, rec.output.shape())?;
        Ok(want_input.then(|| Self::spread(&grad_output_tangent, rec.input.shape())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;
    use ndarray::{Array3, ArrayD, IxDyn};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn random(shape: &[usize], seed: u64) -> ArrayD<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        ArrayD::from_shape_fn(IxDyn(shape), |_| rng.random_range(-1.0..1.0))
    }

    /// `L = Σ w ⊙ layer(x; θ)`: its gradients by the layer's backward pass and by central
    /// differences in every parameter and input entry.
    fn check_gradients(layer: &dyn Layer<f64>, x: &ArrayD<f64>, params: &[f64]) {
        let eval = |p: &[f64], x: &ArrayD<f64>| {
            layer
                .forward(p, &mut [], x.view(), Context::eval())
                .expect("forward")
                .0
        };
        let y = eval(params, x);
        let w = random(y.shape(), 99);
        let loss = |p: &[f64], x: &ArrayD<f64>| (&eval(p, x) * &w).sum();
        let cache = Cache::empty();
        let rec = Recorded {
            params,
            buffers: &[],
            input: x.view(),
            output: y.view(),
            cache: &cache,
        };
        let mut grad_params = vec![0.0; params.len()];
        let dx = layer
            .backward(&rec, w.view(), Some(&mut grad_params), true)
            .expect("backward")
            .expect("input gradient");
        let h = 1e-6;
        for i in 0..params.len() {
            let (mut up, mut down) = (params.to_vec(), params.to_vec());
            up[i] += h;
            down[i] -= h;
            let fd = (loss(&up, x) - loss(&down, x)) / (2.0 * h);
            assert_abs_diff_eq!(fd, grad_params[i], epsilon = 1e-8);
        }
        for (i, &g) in dx.iter().enumerate() {
            let (mut up, mut down) = (x.clone(), x.clone());
            up.as_slice_mut().expect("standard")[i] += h;
            down.as_slice_mut().expect("standard")[i] -= h;
            let fd = (loss(params, &up) - loss(params, &down)) / (2.0 * h);
            assert_abs_diff_eq!(fd, g, epsilon = 1e-8);
        }
    }

    #[test]
    fn position_embedding_adds_its_table_to_every_example() {
        let layer = PositionEmbedding::new(3, 2, 1.0).unwrap();
        let params: Vec<f64> = (0..6).map(f64::from).collect();
        let x = Array3::<f64>::from_elem((2, 3, 2), 10.0).into_dyn();
        let (y, _) = layer
            .forward(&params, &mut [], x.view(), Context::eval())
            .unwrap();
        assert_eq!(y.shape(), &[2, 3, 2]);
        for b in 0..2 {
            for t in 0..3 {
                for d in 0..2 {
                    assert_eq!(y[[b, t, d]], 10.0 + (2 * t + d) as f64);
                }
            }
        }
    }

    #[test]
    fn position_embedding_gradients_match_finite_differences() {
        let layer = PositionEmbedding::new(4, 3, 1.0).unwrap();
        let params: Vec<f64> = random(&[12], 1).iter().copied().collect();
        check_gradients(&layer, &random(&[2, 4, 3], 2), &params);
    }

    #[test]
    fn token_mean_pool_averages_tokens_and_its_gradient_matches_finite_differences() {
        let x = random(&[3, 5, 2], 3);
        let (y, _) =
            Layer::<f64>::forward(&TokenMeanPool, &[], &mut [], x.view(), Context::eval()).unwrap();
        assert_eq!(y.shape(), &[3, 2]);
        for b in 0..3 {
            for d in 0..2 {
                let naive: f64 = (0..5).map(|t| x[[b, t, d]]).sum::<f64>() / 5.0;
                assert_abs_diff_eq!(y[[b, d]], naive, epsilon = 1e-15);
            }
        }
        check_gradients(&TokenMeanPool, &x, &[]);
        assert_eq!(
            Layer::<f64>::output_shape(&TokenMeanPool, &[5, 2]).unwrap(),
            vec![2]
        );
    }

    #[test]
    fn r_operators_are_the_directional_derivatives_of_these_linear_maps() {
        // Both maps are linear in (x, θ): R{y} = layer(R{x}; V) for the embedding, mean(R{x})
        // for the pool; R{∂L/∂x} = backward(R{δ}).
        let layer = PositionEmbedding::new(2, 2, 1.0).unwrap();
        let params = [1.0, 2.0, 3.0, 4.0];
        let x = random(&[2, 2, 2], 4);
        let (y, cache) = layer
            .forward(&params, &mut [], x.view(), Context::eval())
            .unwrap();
        let rec = Recorded {
            params: &params,
            buffers: &[],
            input: x.view(),
            output: y.view(),
            cache: &cache,
        };
        let v = [0.5, -0.5, 0.25, 0.0];
        let rx = random(&[2, 2, 2], 5);
        let tangent = Tangent {
            params: &v,
            input: Some(rx.view()),
        };
        let (ry, _) = layer.forward_tangent(&rec, &tangent).unwrap();
        let expected = layer
            .forward(&v, &mut [], rx.view(), Context::eval())
            .unwrap()
            .0;
        assert_eq!(ry, expected);
        let delta = random(&[2, 2, 2], 6);
        let r_delta = random(&[2, 2, 2], 7);
        let mut hvp = [0.0; 4];
        let rdx = layer
            .backward_tangent(
                &rec,
                &tangent,
                &Cache::empty(),
                delta.view(),
                r_delta.view(),
                &mut hvp,
                true,
            )
            .unwrap()
            .unwrap();
        assert_eq!(rdx, r_delta);
        for (i, h) in hvp.iter().enumerate() {
            let (t, d) = (i / 2, i % 2);
            assert_abs_diff_eq!(*h, r_delta[[0, t, d]] + r_delta[[1, t, d]], epsilon = 1e-15);
        }

        let (py, pcache) =
            Layer::<f64>::forward(&TokenMeanPool, &[], &mut [], x.view(), Context::eval()).unwrap();
        let prec = Recorded {
            params: &[],
            buffers: &[],
            input: x.view(),
            output: py.view(),
            cache: &pcache,
        };
        let pt = Tangent {
            params: &[],
            input: Some(rx.view()),
        };
        let (pry, _) = TokenMeanPool.forward_tangent(&prec, &pt).unwrap();
        let direct =
            Layer::<f64>::forward(&TokenMeanPool, &[], &mut [], rx.view(), Context::eval())
                .unwrap()
                .0;
        assert_eq!(pry, direct);
    }

    #[test]
    fn bad_input_names_the_value() {
        assert!(PositionEmbedding::new(0, 2, 1.0)
            .unwrap_err()
            .to_string()
            .contains("tokens"));
        assert!(PositionEmbedding::new(2, 2, f64::NAN)
            .unwrap_err()
            .to_string()
            .contains("std"));
        let layer = PositionEmbedding::new(3, 2, 1.0).unwrap();
        let wrong = ArrayD::<f64>::zeros(IxDyn(&[1, 4, 2]));
        let err = layer
            .forward(&[0.0; 6], &mut [], wrong.view(), Context::eval())
            .unwrap_err()
            .to_string();
        assert!(err.contains("input") && err.contains("[1, 4, 2]"), "{err}");
        let flat = ArrayD::<f64>::zeros(IxDyn(&[4]));
        let err = Layer::<f64>::forward(&TokenMeanPool, &[], &mut [], flat.view(), Context::eval())
            .unwrap_err()
            .to_string();
        assert!(err.contains("input") && err.contains("[4]"), "{err}");
    }

    #[test]
    fn patchify_matches_the_rearrangement_by_hand() {
        let images = ndarray::Array4::from_shape_fn((2, 3, 4, 6), |(n, c, y, x)| {
            (1000 * n + 100 * c + 10 * y + x) as f32
        });
        let tokens = patchify(images.view(), 2).unwrap();
        assert_eq!(tokens.dim(), (2, 6, 12));
        // Every token feature against its source pixel, written out from the definition.
        for ((i, t, f), &v) in tokens.indexed_iter() {
            let (gy, gx, p1, p2, c) = (t / 3, t % 3, f / 6, (f / 3) % 2, f % 3);
            assert_eq!(v, images[[i, c, 2 * gy + p1, 2 * gx + p2]]);
        }
        // Token 4 = grid row 1, column 1; feature (p1 = 1, p2 = 0, c = 2) = index 1·6 + 0·3 + 2.
        assert_eq!(tokens[[1, 4, 8]], images[[1, 2, 3, 2]]);
        for bad in [0, 4] {
            let err = patchify(images.view(), bad).unwrap_err().to_string();
            assert!(err.contains("patch"), "{err}");
        }
    }
}
