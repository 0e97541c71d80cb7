//! The two learnable logit masks of the paper: the Gaussian mixture mask (GMM) and the
//! element-wise learnable mask (ELM) it is compared with. Both implement tessera-core's
//! [`LogitMask`]: they hold no parameter values, only the geometry and the seed of their
//! initialisation, and read their parameters from a slice of the model's flat vector.

use ndarray::{Array2, Array3, ArrayView2, ArrayView3, ArrayViewMut3};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use tessera_core::{check, Float, InputError, LogitMask, MaskCombine};

use crate::grid::{TokenGrid, MAX_TOKENS};
use crate::Result;

/// The variance floor of the reference implementation: $\sigma^2 + 10^{-5}$ keeps a Gaussian
/// with $\sigma = 0$ finite (a unit spike on the diagonal).
pub const VARIANCE_EPSILON: f64 = 1e-5;

/// The most entries (`heads · tokens²`) a materialised mask may have.
pub const MAX_MASK_ELEMENTS: usize = 1 << 30;

/// Gaussians per head in the paper's experiments.
pub const DEFAULT_KERNELS: usize = 5;

/// The most heads a mask may have.
pub const MAX_HEADS: usize = 1 << 12;

/// The most Gaussians per head.
pub const MAX_KERNELS: usize = 1 << 10;

/// Mean and standard deviation of the initial $\sigma$ (reference: `randn * 10 + 10`).
const SIGMA_INIT: (f64, f64) = (10.0, 10.0);
/// Standard deviation of the initial $\alpha$ (reference: `randn * 2`).
const ALPHA_INIT_STD: f64 = 2.0;

/// The Gaussian mixture mask of Chen et al.: per head $h$,
/// $G_{h,ij} = \sum_k \alpha_{k,h} \exp\!\big(-d^2_{ij} / (2(\sigma^2_{k,h} + 10^{-5}))\big)$
/// over the squared grid distance $d^2_{ij}$ of tokens $i$ and $j$; rows and columns of extra
/// tokens (CLS) are neutral.
///
/// Parameters (length $2KH$): $\alpha$ as a row-major `(K, H)` block, then $\sigma$ as a
/// row-major `(K, H)` block (see [`GaussianMixtureMask::alpha`], [`GaussianMixtureMask::sigma`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GaussianMixtureMask {
    grid: TokenGrid,
    heads: usize,
    kernels: usize,
    combine: MaskCombine,
    seed: u64,
}

impl GaussianMixtureMask {
    /// A multiplicative mask (the reference) with `kernels` Gaussians for each of `heads` heads
    /// over `grid`, initialised from `seed`. Errors when `heads` or `kernels` is 0 or huge.
    pub fn new(grid: TokenGrid, heads: usize, kernels: usize, seed: u64) -> Result<Self> {
        check::positive_size("heads", heads)?;
        check::size_at_most("heads", heads, MAX_HEADS)?;
        check::positive_size("kernels", kernels)?;
        check::size_at_most("kernels", kernels, MAX_KERNELS)?;
        Ok(GaussianMixtureMask {
            grid,
            heads,
            kernels,
            combine: MaskCombine::Multiply,
            seed,
        })
    }

    /// The same mask combined with the logits by `combine` (additive: a logit bias).
    pub fn with_combine(self, combine: MaskCombine) -> Self {
        GaussianMixtureMask { combine, ..self }
    }

    /// The token grid.
    pub fn grid(&self) -> TokenGrid {
        self.grid
    }

    /// Gaussians per head, $K$.
    pub fn kernels(&self) -> usize {
        self.kernels
    }

    /// The seed of the initial parameters.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    fn block(&self) -> usize {
        self.kernels * self.heads
    }

    /// The `(K, H)` mixture weights $\alpha$ in `parameters`.
    pub fn alpha<'a, F: Float>(&self, parameters: &'a [F]) -> Result<ArrayView2<'a, F>> {
        self.check_length(parameters.len())?;
        Ok(
            ArrayView2::from_shape((self.kernels, self.heads), &parameters[..self.block()])
                .map_err(|_| InputError::shape("parameters", 2 * self.block(), parameters.len()))?,
        )
    }

    /// The `(K, H)` widths $\sigma$ in `parameters`.
    pub fn sigma<'a, F: Float>(&self, parameters: &'a [F]) -> Result<ArrayView2<'a, F>> {
        self.check_length(parameters.len())?;
        Ok(
            ArrayView2::from_shape((self.kernels, self.heads), &parameters[self.block()..])
                .map_err(|_| InputError::shape("parameters", 2 * self.block(), parameters.len()))?,
        )
    }

    /// The parameter vector of given `(K, H)` arrays $\alpha$ and $\sigma$.
    pub fn parameters_from<F: Float>(
        &self,
        alpha: ArrayView2<'_, F>,
        sigma: ArrayView2<'_, F>,
    ) -> Result<Vec<F>> {
        let kh = [self.kernels, self.heads];
        check::shape("alpha", alpha.shape(), &kh)?;
        check::shape("sigma", sigma.shape(), &kh)?;
        Ok(alpha.iter().chain(sigma.iter()).copied().collect())
    }

    fn check_length(&self, len: usize) -> std::result::Result<(), InputError> {
        check::length("parameters", len, 2 * self.block())
    }

    /// Validates `parameters` and returns, per Gaussian and head, $\alpha$ and the
    /// precision $1 / (2(\sigma^2 + 10^{-5}))$.
    fn checked<F: Float>(
        &self,
        parameters: &[F],
    ) -> std::result::Result<(Vec<F>, Vec<F>), InputError> {
        self.check_length(parameters.len())?;
        let (alpha, sigma) = parameters.split_at(self.block());
        check::finite_values("alpha", alpha.iter().copied())?;
        check::finite_values("sigma", sigma.iter().copied())?;
        let eps = F::from_f64_rounded(VARIANCE_EPSILON);
        let two = F::from_count(2);
        let precision = sigma
            .iter()
            .map(|&s| (two * (s * s + eps)).recip())
            .collect();
        Ok((alpha.to_vec(), precision))
    }

    fn positions(&self) -> Vec<Option<(usize, usize)>> {
        (0..self.grid.tokens())
            .map(|t| self.grid.position(t))
            .collect()
    }

    /// The mask value of every head and offset class: `(heads, rows · cols)`, class
    /// `|Δrow| · cols + |Δcol|`.
    fn class_values<F: Float>(&self, alpha: &[F], precision: &[F]) -> Array2<F> {
        let d2 = self.grid.class_squared_distances();
        let mut values = Array2::zeros((self.heads, d2.len()));
        for k in 0..self.kernels {
            for h in 0..self.heads {
                let (a, p) = (alpha[k * self.heads + h], precision[k * self.heads + h]);
                for (v, &d) in values.row_mut(h).iter_mut().zip(&d2) {
                    *v += a * (-F::from_f64_rounded(d) * p).exp();
                }
            }
        }
        values
    }

    /// The mixture as a function of the offset: `(heads, 2·rows − 1, 2·cols − 1)`, entry
    /// `(h, Δrow + rows − 1, Δcol + cols − 1)` being $G_h$ between tokens that far apart (the
    /// convolution-kernel view of the mask).
    pub fn kernel<F: Float>(&self, parameters: &[F]) -> Result<Array3<F>> {
        let (alpha, precision) = self.checked(parameters)?;
        let values = self.class_values(&alpha, &precision);
        let (rows, cols) = (self.grid.rows(), self.grid.cols());
        Ok(Array3::from_shape_fn(
            (self.heads, 2 * rows - 1, 2 * cols - 1),
            |(h, r, c)| values[[h, r.abs_diff(rows - 1) * cols + c.abs_diff(cols - 1)]],
        ))
    }
}

impl<F: Float> LogitMask<F> for GaussianMixtureMask {
    fn heads(&self) -> usize {
        self.heads
    }

    fn tokens(&self) -> usize {
        self.grid.tokens()
    }

    fn combine(&self) -> MaskCombine {
        self.combine
    }

    fn parameter_count(&self) -> usize {
        2 * self.block()
    }

    /// $\alpha \sim \mathcal N(0, 2^2)$ then $\sigma \sim \mathcal N(10, 10^2)$ (the reference
    /// initialisation), from a ChaCha8 stream seeded with the mask's seed.
    fn initial_parameters(&self, out: &mut [F]) -> std::result::Result<(), InputError> {
        self.check_length(out.len())?;
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let (alpha, sigma) = out.split_at_mut(self.block());
        for a in alpha {
            *a = F::from_f64_rounded(ALPHA_INIT_STD * rng.sample::<f64, _>(StandardNormal));
        }
        for s in sigma {
            *s = F::from_f64_rounded(
                SIGMA_INIT.0 + SIGMA_INIT.1 * rng.sample::<f64, _>(StandardNormal),
            );
        }
        Ok(())
    }

    fn mask(
        &self,
        parameters: &[F],
        mut out: ArrayViewMut3<'_, F>,
    ) -> std::result::Result<(), InputError> {
        let n = self.grid.tokens();
        check::shape("mask", out.shape(), &[self.heads, n, n])?;
        let (alpha, precision) = self.checked(parameters)?;
        let values = self.class_values(&alpha, &precision);
        let cols = self.grid.cols();
        let positions = self.positions();
        let neutral = self.combine.neutral::<F>();
        for (h, mut plane) in out.outer_iter_mut().enumerate() {
            let class = values.row(h);
            for (i, mut row) in plane.outer_iter_mut().enumerate() {
                let Some((ri, ci)) = positions[i] else {
                    row.fill(neutral);
                    continue;
                };
                for (j, g) in row.iter_mut().enumerate() {
                    *g = match positions[j] {
                        Some((rj, cj)) => class[ri.abs_diff(rj) * cols + ci.abs_diff(cj)],
                        None => neutral,
                    };
                }
            }
        }
        Ok(())
    }

    /// Reduces $\partial L/\partial G$ over the token pairs of each offset class first (one pass
    /// over the `(heads, N, N)` gradient), then differentiates the `K · H · classes` terms:
    /// $\partial L/\partial\alpha_{k,h} = \sum_o A_{h,o} e_{k,h,o}$ and
    /// $\partial L/\partial\sigma_{k,h} = \sum_o A_{h,o}\,\alpha_{k,h} e_{k,h,o}\, d^2_o\,
    /// \sigma_{k,h} / (\sigma^2_{k,h} + 10^{-5})^2$, with $A_{h,o}$ the summed gradient of
    /// class $o$ and $e_{k,h,o}$ its Gaussian. No per-Gaussian `N × N` array is ever formed.
    fn accumulate_gradient(
        &self,
        parameters: &[F],
        grad_mask: ArrayView3<'_, F>,
        grad_parameters: &mut [F],
    ) -> std::result::Result<(), InputError> {
        let n = self.grid.tokens();
        check::shape("grad_mask", grad_mask.shape(), &[self.heads, n, n])?;
        check::length("grad_parameters", grad_parameters.len(), 2 * self.block())?;
        check::finite("grad_mask", &grad_mask)?;
        let (alpha, precision) = self.checked(parameters)?;
        let sigma = &parameters[self.block()..];
        let cols = self.grid.cols();
        let classes = self.grid.offset_classes();
        let positions = self.positions();
        let mut summed = Array2::<F>::zeros((self.heads, classes));
        for (h, plane) in grad_mask.outer_iter().enumerate() {
            let mut acc = summed.row_mut(h);
            for (i, row) in plane.outer_iter().enumerate() {
                let Some((ri, ci)) = positions[i] else {
                    continue;
                };
                for (j, &g) in row.iter().enumerate() {
                    if let Some((rj, cj)) = positions[j] {
                        acc[ri.abs_diff(rj) * cols + ci.abs_diff(cj)] += g;
                    }
                }
            }
        }
        let d2 = self.grid.class_squared_distances();
        let two = F::from_count(2);
        let (grad_alpha, grad_sigma) = grad_parameters.split_at_mut(self.block());
        for k in 0..self.kernels {
            for h in 0..self.heads {
                let at = k * self.heads + h;
                let p = precision[at];
                let (mut da, mut dweighted) = (F::zero(), F::zero());
                for (&a_sum, &d) in summed.row(h).iter().zip(&d2) {
                    let d = F::from_f64_rounded(d);
                    let e = (-d * p).exp();
                    da += a_sum * e;
                    dweighted += a_sum * e * d;
                }
                grad_alpha[at] += da;
                // d/dσ exp(−d²·p) = exp(−d²·p)·d²·σ/(σ²+ε)², and 1/(σ²+ε)² = (2p)².
                grad_sigma[at] += alpha[at] * dweighted * sigma[at] * (two * p) * (two * p);
            }
        }
        Ok(())
    }
}

/// The element-wise learnable mask (ELM) the paper compares with: one free `N × N` matrix
/// shared by every head, zero-initialised and multiplicative as in the reference (so attention
/// starts uniform and the mask learns which logits to keep).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElementwiseMask {
    tokens: usize,
    heads: usize,
    combine: MaskCombine,
}

impl ElementwiseMask {
    /// A multiplicative mask over `tokens` tokens for `heads` heads.
    pub fn new(tokens: usize, heads: usize) -> Result<Self> {
        check::positive_size("tokens", tokens)?;
        check::size_at_most("tokens", tokens, MAX_TOKENS)?;
        check::positive_size("heads", heads)?;
        check::size_at_most("heads", heads, MAX_HEADS)?;
        Ok(ElementwiseMask {
            tokens,
            heads,
            combine: MaskCombine::Multiply,
        })
    }

    /// The same mask combined with the logits by `combine`.
    pub fn with_combine(self, combine: MaskCombine) -> Self {
        ElementwiseMask { combine, ..self }
    }
}

impl<F: Float> LogitMask<F> for ElementwiseMask {
    fn heads(&self) -> usize {
        self.heads
    }

    fn tokens(&self) -> usize {
        self.tokens
    }

    fn combine(&self) -> MaskCombine {
        self.combine
    }

    fn parameter_count(&self) -> usize {
        self.tokens * self.tokens
    }

    /// All zeros (the reference initialisation).
    fn initial_parameters(&self, out: &mut [F]) -> std::result::Result<(), InputError> {
        check::length("parameters", out.len(), self.tokens * self.tokens)?;
        out.fill(F::zero());
        Ok(())
    }

    fn mask(
        &self,
        parameters: &[F],
        mut out: ArrayViewMut3<'_, F>,
    ) -> std::result::Result<(), InputError> {
        let n = self.tokens;
        check::shape("mask", out.shape(), &[self.heads, n, n])?;
        check::length("parameters", parameters.len(), n * n)?;
        check::finite_values("parameters", parameters.iter().copied())?;
        let shared = ArrayView2::from_shape((n, n), parameters)
            .map_err(|_| InputError::shape("parameters", n * n, parameters.len()))?;
        for mut plane in out.outer_iter_mut() {
            plane.assign(&shared);
        }
        Ok(())
    }

    fn accumulate_gradient(
        &self,
        parameters: &[F],
        grad_mask: ArrayView3<'_, F>,
        grad_parameters: &mut [F],
    ) -> std::result::Result<(), InputError> {
        let n = self.tokens;
        check::length("parameters", parameters.len(), n * n)?;
        check::shape("grad_mask", grad_mask.shape(), &[self.heads, n, n])?;
        check::length("grad_parameters", grad_parameters.len(), n * n)?;
        check::finite("grad_mask", &grad_mask)?;
        for plane in grad_mask.outer_iter() {
            for (g, &d) in grad_parameters.iter_mut().zip(plane.iter()) {
                *g += d;
            }
        }
        Ok(())
    }
}

/// The mask of `mask` for `parameters` as a new `(heads, tokens, tokens)` array (checked in size
/// before allocating).
pub fn mask_array<F: Float>(mask: &dyn LogitMask<F>, parameters: &[F]) -> Result<Array3<F>> {
    let (h, n) = (mask.heads(), mask.tokens());
    check::element_count("mask", &[h, n, n], MAX_MASK_ELEMENTS)?;
    let mut out = Array3::zeros((h, n, n));
    mask.mask(parameters, out.view_mut())?;
    Ok(out)
}
