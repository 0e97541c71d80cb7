//! Inverted dropout (Srivastava et al. 2014) from a seed.

use ndarray::{ArrayD, ArrayViewD, Zip};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tessera_core::RejectInput;

use crate::error::{Error, Result};
use crate::layer::{Cache, Context, Layer, Mode, Recorded, Tangent};
use crate::layers::util::check_grad_output_tangent;
use crate::layers::util::check_like;
use crate::Float;

/// In [`Mode::Train`] each entry is kept with probability `1 − p` and scaled by `1/(1 − p)`
/// (PyTorch's `nn.Dropout`); the mask is drawn from `ChaCha8Rng` seeded with the pass's
/// [`Context::seed`], so a seed reproduces it. In [`Mode::Eval`] the identity. The mask is
/// kept, so backward and R-operator passes use the same one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dropout {
    p: f64,
}

impl Dropout {
    /// Dropout with drop probability `p ∈ [0, 1)`.
    pub fn new(p: f64) -> Result<Self> {
        if !(p.is_finite() && (0.0..1.0).contains(&p)) {
            return Err(Error::invalid(
                "p",
                p,
                "drop probability must lie in [0, 1)",
            ));
        }
        Ok(Self { p })
    }

    /// The drop probability.
    pub fn p(&self) -> f64 {
        self.p
    }

    /// The mask of the pass (`None` in eval mode or with `p = 0`: the identity).
    fn mask<'a, F: Float>(&self, rec: &'a Recorded<'_, F>) -> Result<Option<&'a ArrayD<F>>> {
        match rec.cache.tensors.first() {
            None => Ok(None),
            Some(m) if m.shape() == rec.input.shape() => Ok(Some(m)),
            Some(_) => Err(Error::invalid(
                "cache",
                "Dropout",
                "the cache does not come from this layer's forward pass",
            )),
        }
    }

    fn apply<F: Float>(mask: Option<&ArrayD<F>>, x: &ArrayViewD<'_, F>) -> ArrayD<F> {
        match mask {
            Some(m) => {
                let mut out = x.to_owned();
                Zip::from(&mut out).and(m).for_each(|o, &k| *o *= k);
                out
            }
            None => x.to_owned(),
        }
    }
}

impl<F: Float> Layer<F> for Dropout {
    fn kind(&self) -> &'static str {
        "Dropout"
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        Ok(input.to_vec())
    }

    fn is_mode_dependent(&self) -> bool {
        true
    }

    fn forward(
        &self,
        _params: &[F],
        _buffers: &mut [F],
        input: ArrayViewD<'_, F>,
        ctx: Context,
    ) -> Result<(ArrayD<F>, Cache<F>)> {
        if ctx.mode == Mode::Eval || self.p == 0.0 {
            return Ok((input.to_owned(), Cache::empty()));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(ctx.seed);
        let keep = F::from_f64_rounded(1.0 / (1.0 - self.p));
        let mask = ArrayD::from_shape_simple_fn(input.raw_dim(), || {
            if rng.random::<f64>() < self.p {
                F::zero()
            } else {
                keep
            }
        });
        let out = Self::apply(Some(&mask), &input);
        Ok((out, Cache::with_tensors(vec![mask])))
    }

    fn backward(
        &self,
        rec: &Recorded<'_, F>,
        grad_output: ArrayViewD<'_, F>,
        _grad_params: Option<&mut [F]>,
        want_input: bool,
    ) -> Result<Option<ArrayD<F>>> {
        check_like("grad_output", &grad_output, rec.input.shape())?;
        let mask = self.mask(rec)?;
        Ok(want_input.then(|| Self::apply(mask, &grad_output)))
    }

    fn forward_tangent(
        &self,
        rec: &Recorded<'_, F>,
        tangent: &Tangent<'_, F>,
    ) -> Result<(ArrayD<F>, Cache<F>)> {
        let mask = self.mask(rec)?;
        let out = match &tangent.input {
            Some(rx) => {
                check_like("input tangent", rx, rec.input.shape())?;
                Self::apply(mask, rx)
            }
            None => ArrayD::zeros(rec.input.raw_dim()),
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
        check_grad_output_tangent(&grad_output_tangent, rec.input.shape())?;
        let mask = self.mask(rec)?;
        Ok(want_input.then(|| Self::apply(mask, &grad_output_tangent)))
    }
}
