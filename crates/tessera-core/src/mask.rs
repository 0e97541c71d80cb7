//! The contract between an attention layer and a learnable mask on its logits.
//!
//! An attention layer (tessera-nn's) computes per head the logits
//! $S = Q K^\top / \sqrt{d_h}$ of shape (tokens, tokens) and combines them with a mask
//! $G_h$ that a mask crate (tessera-gmm's Gaussian mixture, its element-wise mask) supplies:
//!
//! - [`MaskCombine::Multiply`]: $S' = G_h \odot S$ (the GMM-mask paper's reference code);
//! - [`MaskCombine::Add`]: $S' = S + G_h$ (a logit bias).
//!
//! The layer then takes the softmax of $S'$. For the backward pass the layer reduces
//! $\partial L/\partial G_h$ over the batch ($\sum_b \partial L/\partial S'_b \odot S_b$ when
//! multiplying, $\sum_b \partial L/\partial S'_b$ when adding) and hands it to
//! [`LogitMask::accumulate_gradient`], which turns it into gradients for the mask's parameters.
//!
//! The mask holds no parameter values itself: they live in the model's one flat parameter
//! vector (what Lanczos, pruning masks and RiFT operate on), and every method receives its slice
//! of that vector. This keeps the trait object-safe and the mask stateless.

use crate::error::InputError;
use crate::float::Float;
use ndarray::{ArrayView3, ArrayViewMut3};
use std::fmt::Debug;

/// How the mask $G_h$ is combined with the attention logits $S$ of head $h$.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MaskCombine {
    /// $S' = G_h \odot S$. The neutral mask is all ones.
    Multiply,
    /// $S' = S + G_h$. The neutral mask is all zeros.
    Add,
}

impl MaskCombine {
    /// The value of a mask entry that leaves its logit unchanged (1 or 0).
    pub fn neutral<F: Float>(self) -> F {
        match self {
            MaskCombine::Multiply => F::one(),
            MaskCombine::Add => F::zero(),
        }
    }
}

/// A learnable mask on the attention logits of every head, with its parameter gradients.
///
/// Shapes: the mask is `(heads, tokens, tokens)`; `parameters` is this mask's slice of the
/// model's flat parameter vector, of length [`LogitMask::parameter_count`].
pub trait LogitMask<F: Float>: Debug + Send + Sync {
    /// Number of attention heads the mask has a plane for.
    fn heads(&self) -> usize;

    /// Number of tokens (rows and columns of each plane), extra tokens such as CLS included.
    fn tokens(&self) -> usize;

    /// How the mask is combined with the logits.
    fn combine(&self) -> MaskCombine;

    /// Number of learnable parameters.
    fn parameter_count(&self) -> usize;

    /// Writes the initial parameters (deterministic: a seeded mask draws from the seed it was
    /// built with) into `out`, of length [`LogitMask::parameter_count`].
    fn initial_parameters(&self, out: &mut [F]) -> Result<(), InputError>;

    /// Writes the mask $G$ for `parameters` into `out`, of shape `(heads, tokens, tokens)`.
    fn mask(&self, parameters: &[F], out: ArrayViewMut3<'_, F>) -> Result<(), InputError>;

    /// Adds to `grad_parameters` the gradient of the loss with respect to the parameters, given
    /// `grad_mask` $= \partial L / \partial G$ of shape `(heads, tokens, tokens)`.
    fn accumulate_gradient(
        &self,
        parameters: &[F],
        grad_mask: ArrayView3<'_, F>,
        grad_parameters: &mut [F],
    ) -> Result<(), InputError>;
}

/// The most attention-probability entries (`batch · heads · tokens²`) one attention call may
/// allocate; the CPU kernel (tessera-gmm) and the CUDA kernel (tessera-gpu) share it.
pub const MAX_SCORE_ELEMENTS: usize = 1 << 31;

/// Checks the shapes of an attention call's `q`, `k` (both `(batch, heads, tokens, d_head)`)
/// and `v` (`(batch, heads, tokens, d_value)`), every size at least 1, and the size of its
/// probability tensor against [`MAX_SCORE_ELEMENTS`]; returns
/// `[batch, heads, tokens, d_head, d_value]`. The one shape check of the CPU and CUDA attention
/// kernels, which cannot depend on each other.
///
/// # Errors
/// An empty or non-4-D `q` or `v`, `k` not the shape of `q`, `v` for other batch, head or token
/// counts, or more probabilities than [`MAX_SCORE_ELEMENTS`].
pub fn attention_shapes(q: &[usize], k: &[usize], v: &[usize]) -> Result<[usize; 5], InputError> {
    const EXPECTED: &str = "(batch, heads, tokens, d) with every size >= 1";
    let &[batch, heads, tokens, d_head] = q else {
        return Err(InputError::shape("q", EXPECTED, q));
    };
    if q.contains(&0) {
        return Err(InputError::shape("q", EXPECTED, q));
    }
    if v.len() != 4 || v.contains(&0) {
        return Err(InputError::shape("v", EXPECTED, v));
    }
    crate::check::shape("k", k, q)?;
    crate::check::shape("v", &v[..3], &q[..3])
        .map_err(|_| InputError::shape("v", format!("({batch}, {heads}, {tokens}, d_v)"), v))?;
    crate::check::element_count(
        "batch * heads * tokens * tokens",
        &[batch, heads, tokens, tokens],
        MAX_SCORE_ELEMENTS,
    )?;
    Ok([batch, heads, tokens, d_head, v[3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attention_shapes_name_the_operand_at_fault() {
        assert_eq!(
            attention_shapes(&[2, 3, 5, 4], &[2, 3, 5, 4], &[2, 3, 5, 7]).unwrap(),
            [2, 3, 5, 4, 7]
        );
        let name = |q: &[usize], k: &[usize], v: &[usize]| match attention_shapes(q, k, v) {
            Err(InputError::Shape { name, .. }) | Err(InputError::TooLarge { name, .. }) => name,
            other => panic!("{other:?}"),
        };
        assert_eq!(name(&[2, 0, 5, 4], &[2, 0, 5, 4], &[2, 0, 5, 4]), "q");
        assert_eq!(name(&[2, 3, 5, 4], &[2, 3, 5, 4], &[2, 3, 5, 0]), "v");
        assert_eq!(name(&[2, 3, 5, 4], &[2, 3, 6, 4], &[2, 3, 5, 4]), "k");
        assert_eq!(name(&[2, 3, 5, 4], &[2, 3, 5, 4], &[2, 3, 6, 4]), "v");
        assert_eq!(
            name(
                &[1, 1, 1 << 16, 1],
                &[1, 1, 1 << 16, 1],
                &[1, 1, 1 << 16, 1]
            ),
            "batch * heads * tokens * tokens"
        );
    }
}
