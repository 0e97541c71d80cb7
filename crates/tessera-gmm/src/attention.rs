//! Multi-head scaled dot-product attention with an optional learnable logit mask: the
//! attention kernel of the workspace (tessera-nn's attention layer calls it).
//!
//! Per batch item $b$ and head $h$, with $Q, K$ of shape `(tokens, d_head)` and $V$ of shape
//! `(tokens, d_v)`:
//!
//! $$S = Q K^\top / \sqrt{d_\text{head}},\quad S' = G_h \odot S \text{ or } S + G_h,\quad
//! P = \operatorname{softmax}_\text{rows}(S'),\quad O = P V.$$
//!
//! Backward, from $\bar O = \partial L/\partial O$: $\bar V = P^\top \bar O$,
//! $\bar P = \bar O V^\top$, $\bar S'_{ij} = P_{ij}(\bar P_{ij} - \sum_l P_{il}\bar P_{il})$,
//! $\bar S = G_h \odot \bar S'$ (multiplicative) or $\bar S'$ (additive),
//! $\bar Q = \bar S K / \sqrt{d}$, $\bar K = \bar S^\top Q / \sqrt{d}$, and for the mask
//! $\bar G_h = \sum_b \bar S'_b \odot S_b$ (multiplicative) or $\sum_b \bar S'_b$ (additive),
//! which [`LogitMask::accumulate_gradient`] turns into parameter gradients.
//!
//! The cache keeps $P$ only: for a multiplicative mask the backward pass recomputes $S$ (one
//! small GEMM per plane, on operands it reads anyway) instead of storing a second
//! `batch · heads · tokens²` array, whose allocation and memory traffic cost more than the
//! product (measured: 1.34× against 1.0× for the additive mask, which needs no $S$).
//!
//! Every `(b, h)` plane is independent and runs as a rayon task; the mask gradient is summed
//! over fixed chunks of [`BATCH_CHUNK`] batch items and then over the chunks in order, so the
//! result is the same bit for bit whatever the number of threads.

use ndarray::linalg::general_mat_mul;
use ndarray::{s, Array2, Array3, Array4, ArrayView2, ArrayView3, ArrayView4, ArrayViewMut2, Zip};
use rayon::prelude::*;
use tessera_core::softmax::softmax_rows_in_place;
use tessera_core::{check, Float, InputError, LogitMask, MaskCombine};

use crate::mask::mask_array;
use crate::Result;

/// Batch items whose mask gradients one task sums before the chunks are summed in order (a
/// constant, so that the summation order and hence the bits do not depend on the threads).
pub const BATCH_CHUNK: usize = 8;

/// The most attention-probability entries (`batch · heads · tokens²`) one call may allocate
/// (tessera-core's, shared with the CUDA kernel).
pub use tessera_core::mask::MAX_SCORE_ELEMENTS;

/// A logit mask with its slice of the model's parameter vector.
#[derive(Debug, Clone, Copy)]
pub struct MaskRef<'a, F: Float> {
    /// The mask.
    pub mask: &'a dyn LogitMask<F>,
    /// Its parameters, of length [`LogitMask::parameter_count`].
    pub parameters: &'a [F],
}

impl<'a, F: Float> MaskRef<'a, F> {
    /// `mask` with `parameters`.
    pub fn new(mask: &'a dyn LogitMask<F>, parameters: &'a [F]) -> Self {
        MaskRef { mask, parameters }
    }
}

/// The sizes of one forward call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Dims {
    batch: usize,
    heads: usize,
    tokens: usize,
    d_head: usize,
    d_value: usize,
}

/// What the backward pass needs from the forward pass: the attention probabilities and the
/// mask.
#[derive(Debug, Clone)]
pub struct AttentionCache<F> {
    probabilities: Array4<F>,
    mask: Option<(Array3<F>, MaskCombine)>,
}

impl<F: Float> AttentionCache<F> {
    /// The attention probabilities $P$, `(batch, heads, tokens, tokens)`; each row sums to 1.
    pub fn probabilities(&self) -> ArrayView4<'_, F> {
        self.probabilities.view()
    }

    /// The mask $G$ used, `(heads, tokens, tokens)`, if any.
    pub fn mask(&self) -> Option<ArrayView3<'_, F>> {
        self.mask.as_ref().map(|(g, _)| g.view())
    }

    /// A borrowed view for [`attention_backward_view`].
    pub fn view(&self) -> AttentionCacheView<'_, F> {
        AttentionCacheView {
            probabilities: self.probabilities.view(),
            mask: self.mask.as_ref().map(|(g, c)| (g.view(), *c)),
        }
    }

    /// The parts — probabilities, and the mask with its combination — for callers that store
    /// them elsewhere (tessera-nn's layer cache) and rebuild an [`AttentionCacheView`] with
    /// [`AttentionCacheView::new`].
    pub fn into_parts(self) -> (Array4<F>, Option<(Array3<F>, MaskCombine)>) {
        (self.probabilities, self.mask)
    }
}

/// A borrowed [`AttentionCache`].
#[derive(Debug, Clone, Copy)]
pub struct AttentionCacheView<'a, F> {
    probabilities: ArrayView4<'a, F>,
    mask: Option<(ArrayView3<'a, F>, MaskCombine)>,
}

impl<'a, F: Float> AttentionCacheView<'a, F> {
    /// The view of parts from [`AttentionCache::into_parts`]; errors when their shapes do not
    /// fit together.
    pub fn new(
        probabilities: ArrayView4<'a, F>,
        mask: Option<(ArrayView3<'a, F>, MaskCombine)>,
    ) -> Result<Self> {
        let &[_, heads, tokens, cols] = probabilities.shape() else {
            unreachable!("a 4-D view has four axes")
        };
        if cols != tokens || probabilities.is_empty() {
            return Err(InputError::shape(
                "probabilities",
                "(batch, heads, tokens, tokens), non-empty",
                probabilities.shape(),
            )
            .into());
        }
        if let Some((g, _)) = &mask {
            check::shape("mask", g.shape(), &[heads, tokens, tokens])?;
        }
        Ok(AttentionCacheView {
            probabilities,
            mask,
        })
    }
}

/// Gradients of the loss with respect to the attention inputs.
#[derive(Debug, Clone)]
pub struct AttentionGradients<F> {
    /// $\partial L/\partial Q$, the shape of `q`.
    pub q: Array4<F>,
    /// $\partial L/\partial K$, the shape of `k`.
    pub k: Array4<F>,
    /// $\partial L/\partial V$, the shape of `v`.
    pub v: Array4<F>,
}

fn check_inputs<F: Float>(
    q: &ArrayView4<'_, F>,
    k: &ArrayView4<'_, F>,
    v: &ArrayView4<'_, F>,
) -> std::result::Result<Dims, InputError> {
    let [batch, heads, tokens, d_head, d_value] =
        tessera_core::mask::attention_shapes(q.shape(), k.shape(), v.shape())?;
    check::finite("q", q)?;
    check::finite("k", k)?;
    check::finite("v", v)?;
    Ok(Dims {
        batch,
        heads,
        tokens,
        d_head,
        d_value,
    })
}

/// Checks the mask against the attention sizes and materialises it.
fn checked_mask<F: Float>(
    mask: &MaskRef<'_, F>,
    dims: Dims,
) -> std::result::Result<Array3<F>, InputError> {
    let (h, n) = (mask.mask.heads(), mask.mask.tokens());
    if (h, n) != (dims.heads, dims.tokens) {
        return Err(InputError::shape(
            "mask",
            format!(
                "{} heads and {} tokens (those of q)",
                dims.heads, dims.tokens
            ),
            format!("{h} heads and {n} tokens"),
        ));
    }
    check::length(
        "mask parameters",
        mask.parameters.len(),
        mask.mask.parameter_count(),
    )?;
    let g = mask_array(mask.mask, mask.parameters).map_err(|e| e.into_input())?;
    check::finite("mask", &g)?;
    Ok(g)
}

fn scale_of<F: Float>(d_head: usize) -> F {
    F::from_count(d_head).sqrt().recip()
}

/// Forward pass: returns the output `(batch, heads, tokens, d_v)` and the cache for
/// [`attention_backward`].
///
/// `q` and `k` are `(batch, heads, tokens, d_head)`, `v` is `(batch, heads, tokens, d_v)`; any
/// strides (a permuted view of a projection is fine). Errors on empty or mismatched shapes,
/// non-finite inputs, a mask for other head or token counts, or a wrong parameter length.
pub fn attention_forward<F: Float>(
    q: ArrayView4<'_, F>,
    k: ArrayView4<'_, F>,
    v: ArrayView4<'_, F>,
    mask: Option<MaskRef<'_, F>>,
) -> Result<(Array4<F>, AttentionCache<F>)> {
    let dims = check_inputs(&q, &k, &v)?;
    let mask = match mask {
        Some(m) => Some((checked_mask(&m, dims)?, m.mask.combine())),
        None => None,
    };
    #[cfg(feature = "cuda")]
    if let Some(result) = crate::gpu::forward(q, k, v, mask.as_ref().map(|(g, c)| (g.view(), *c))) {
        let (output, probabilities) = result?;
        return Ok((
            output,
            AttentionCache {
                probabilities,
                mask,
            },
        ));
    }
    let Dims {
        batch,
        heads,
        tokens,
        d_value,
        ..
    } = dims;
    let scale = scale_of::<F>(dims.d_head);
    let planes_count = batch * heads;
    let mut output = Array3::<F>::zeros((planes_count, tokens, d_value));
    let mut probabilities = Array3::<F>::zeros((planes_count, tokens, tokens));
    let tasks: Vec<_> = planes(&mut output)
        .into_iter()
        .zip(planes(&mut probabilities))
        .enumerate()
        .collect();
    let mask_view = mask.as_ref().map(|(g, c)| (g.view(), *c));
    tasks.into_par_iter().for_each(|(index, (out, probs))| {
        let (b, h) = (index / heads, index % heads);
        forward_plane(
            plane(&q, b, h),
            plane(&k, b, h),
            plane(&v, b, h),
            mask_view
                .as_ref()
                .map(|(g, c)| (g.slice(s![h, .., ..]), *c)),
            scale,
            out,
            probs,
        );
    });
    Ok((
        split_planes(output, batch, heads)?,
        AttentionCache {
            probabilities: split_planes(probabilities, batch, heads)?,
            mask,
        },
    ))
}

/// The planes of a `(batch · heads, rows, cols)` array, in `(b, h)` row-major order.
fn planes<F>(a: &mut Array3<F>) -> Vec<ArrayViewMut2<'_, F>> {
    a.outer_iter_mut().collect()
}

/// Plane `(b, h)` of a 4-D view, for the whole lifetime of the view.
fn plane<'a, F>(a: &ArrayView4<'a, F>, b: usize, h: usize) -> ArrayView2<'a, F> {
    (*a).slice_move(s![b, h, .., ..])
}

/// `(batch · heads, rows, cols)` as `(batch, heads, rows, cols)`.
fn split_planes<F>(a: Array3<F>, batch: usize, heads: usize) -> Result<Array4<F>> {
    let (_, rows, cols) = a.dim();
    let found = a.shape().to_vec();
    Ok(a.into_shape_with_order((batch, heads, rows, cols))
        .map_err(|_| {
            InputError::shape(
                "planes",
                format!("({batch}·{heads}, {rows}, {cols})"),
                found,
            )
        })?)
}

fn forward_plane<F: Float>(
    q: ArrayView2<'_, F>,
    k: ArrayView2<'_, F>,
    v: ArrayView2<'_, F>,
    mask: Option<(ArrayView2<'_, F>, MaskCombine)>,
    scale: F,
    mut out: ArrayViewMut2<'_, F>,
    mut probs: ArrayViewMut2<'_, F>,
) {
    general_mat_mul(scale, &q, &k.t(), F::zero(), &mut probs);
    match mask {
        Some((g, MaskCombine::Multiply)) => probs *= &g,
        Some((g, MaskCombine::Add)) => probs += &g,
        None => {}
    }
    softmax_rows_in_place(probs.view_mut());
    general_mat_mul(F::one(), &probs, &v, F::zero(), &mut out);
}

/// Backward pass: the gradients of `q`, `k` and `v`, and the mask's parameter gradients added
/// to `grad_mask_parameters` (empty when there is no mask).
///
/// `q`, `k`, `v` and `mask` must be those of the forward call that made `cache` (shapes and
/// the mask's presence and combination are checked); `grad_output` is
/// $\partial L/\partial O$, `(batch, heads, tokens, d_v)`.
pub fn attention_backward<F: Float>(
    cache: &AttentionCache<F>,
    q: ArrayView4<'_, F>,
    k: ArrayView4<'_, F>,
    v: ArrayView4<'_, F>,
    grad_output: ArrayView4<'_, F>,
    mask: Option<MaskRef<'_, F>>,
    grad_mask_parameters: &mut [F],
) -> Result<AttentionGradients<F>> {
    attention_backward_view(
        cache.view(),
        q,
        k,
        v,
        grad_output,
        mask,
        grad_mask_parameters,
    )
}

/// [`attention_backward`] from a borrowed cache.
pub fn attention_backward_view<F: Float>(
    cache: AttentionCacheView<'_, F>,
    q: ArrayView4<'_, F>,
    k: ArrayView4<'_, F>,
    v: ArrayView4<'_, F>,
    grad_output: ArrayView4<'_, F>,
    mask: Option<MaskRef<'_, F>>,
    grad_mask_parameters: &mut [F],
) -> Result<AttentionGradients<F>> {
    let &[batch, heads, tokens, _] = cache.probabilities.shape() else {
        unreachable!("a 4-D view has four axes")
    };
    let (d_head, d_value) = (k.shape()[3], v.shape()[3]);
    if d_head == 0 || d_value == 0 {
        let (name, shape) = if d_head == 0 {
            ("k", k.shape())
        } else {
            ("v", v.shape())
        };
        return Err(InputError::shape(name, "(batch, heads, tokens, d) with d >= 1", shape).into());
    }
    check::shape("k", k.shape(), &[batch, heads, tokens, d_head])?;
    check::shape("q", q.shape(), &[batch, heads, tokens, d_head])?;
    check::shape("v", v.shape(), &[batch, heads, tokens, d_value])?;
    check::shape(
        "grad_output",
        grad_output.shape(),
        &[batch, heads, tokens, d_value],
    )?;
    check::finite("grad_output", &grad_output)?;
    let combine = match (&mask, &cache.mask) {
        (Some(m), Some((_, combine))) => {
            if m.mask.combine() != *combine || (m.mask.heads(), m.mask.tokens()) != (heads, tokens)
            {
                return Err(InputError::invalid(
                    "mask",
                    format!("{:?}", m.mask),
                    "must be the mask of the forward pass",
                )
                .into());
            }
            check::length(
                "grad_mask_parameters",
                grad_mask_parameters.len(),
                m.mask.parameter_count(),
            )?;
            Some(*combine)
        }
        (None, None) => {
            check::length("grad_mask_parameters", grad_mask_parameters.len(), 0)?;
            None
        }
        (given, _) => {
            return Err(InputError::invalid(
                "mask",
                if given.is_some() { "Some" } else { "None" },
                "must be given exactly when the forward pass had a mask",
            )
            .into())
        }
    };
    #[cfg(feature = "cuda")]
    if let Some(result) =
        crate::gpu::backward(cache.probabilities, q, k, v, grad_output, cache.mask)
    {
        let (q, k, v, grad_mask) = result?;
        if let (Some(m), Some(grad_mask)) = (mask, grad_mask) {
            m.mask
                .accumulate_gradient(m.parameters, grad_mask.view(), grad_mask_parameters)?;
        }
        return Ok(AttentionGradients { q, k, v });
    }
    let scale = scale_of::<F>(d_head);
    let mut grad_q = Array3::<F>::zeros((batch * heads, tokens, d_head));
    let mut grad_k = Array3::<F>::zeros((batch * heads, tokens, d_head));
    let mut grad_v = Array3::<F>::zeros((batch * heads, tokens, d_value));
    let chunks = batch.div_ceil(BATCH_CHUNK);
    let mut groups: Vec<Vec<_>> = (0..heads * chunks).map(|_| Vec::new()).collect();
    for (index, ((dq, dk), dv)) in planes(&mut grad_q)
        .into_iter()
        .zip(planes(&mut grad_k))
        .zip(planes(&mut grad_v))
        .enumerate()
    {
        let (b, h) = (index / heads, index % heads);
        groups[h * chunks + b / BATCH_CHUNK].push((b, dq, dk, dv));
    }
    let mask_view = cache.mask.map(|(g, _)| g);
    let probabilities = cache.probabilities;
    let partial_mask_grads: Vec<Option<Array2<F>>> = groups
        .into_par_iter()
        .enumerate()
        .map(|(group, members)| {
            let h = group / chunks;
            let mut scratch = Array2::<F>::zeros((tokens, tokens));
            let mut logits = match combine {
                Some(MaskCombine::Multiply) => Array2::<F>::zeros((tokens, tokens)),
                _ => Array2::<F>::zeros((0, 0)),
            };
            let mut grad_mask = combine.map(|_| Array2::<F>::zeros((tokens, tokens)));
            for (b, dq, dk, dv) in members {
                backward_plane(
                    BackwardPlane {
                        q: plane(&q.view(), b, h),
                        k: plane(&k.view(), b, h),
                        v: plane(&v.view(), b, h),
                        probs: plane(&probabilities.view(), b, h),
                        mask: mask_view
                            .as_ref()
                            .zip(combine)
                            .map(|(g, c)| (g.slice(s![h, .., ..]), c)),
                        grad_out: plane(&grad_output.view(), b, h),
                        scale,
                    },
                    dq,
                    dk,
                    dv,
                    &mut scratch,
                    &mut logits,
                    grad_mask.as_mut(),
                );
            }
            grad_mask
        })
        .collect();
    if let (Some(m), Some(_)) = (mask, combine) {
        let mut grad_mask = Array3::<F>::zeros((heads, tokens, tokens));
        grad_mask
            .outer_iter_mut()
            .into_par_iter()
            .enumerate()
            .for_each(|(h, mut plane)| {
                for partial in partial_mask_grads[h * chunks..(h + 1) * chunks]
                    .iter()
                    .flatten()
                {
                    plane += partial;
                }
            });
        m.mask
            .accumulate_gradient(m.parameters, grad_mask.view(), grad_mask_parameters)?;
    }
    Ok(AttentionGradients {
        q: split_planes(grad_q, batch, heads)?,
        k: split_planes(grad_k, batch, heads)?,
        v: split_planes(grad_v, batch, heads)?,
    })
}

/// The read-only operands of one plane's backward pass.
struct BackwardPlane<'a, F> {
    q: ArrayView2<'a, F>,
    k: ArrayView2<'a, F>,
    v: ArrayView2<'a, F>,
    probs: ArrayView2<'a, F>,
    mask: Option<(ArrayView2<'a, F>, MaskCombine)>,
    grad_out: ArrayView2<'a, F>,
    scale: F,
}

fn backward_plane<F: Float>(
    p: BackwardPlane<'_, F>,
    mut dq: ArrayViewMut2<'_, F>,
    mut dk: ArrayViewMut2<'_, F>,
    mut dv: ArrayViewMut2<'_, F>,
    scratch: &mut Array2<F>,
    logits: &mut Array2<F>,
    grad_mask: Option<&mut Array2<F>>,
) {
    general_mat_mul(F::one(), &p.probs.t(), &p.grad_out, F::zero(), &mut dv);
    general_mat_mul(F::one(), &p.grad_out, &p.v.t(), F::zero(), scratch);
    // Softmax backward row by row: dS' = P ⊙ (dP − ⟨P, dP⟩_row).
    for (mut d_row, p_row) in scratch.rows_mut().into_iter().zip(p.probs.rows()) {
        let dot = d_row
            .iter()
            .zip(p_row.iter())
            .fold(F::zero(), |acc, (&d, &pr)| acc + d * pr);
        d_row.zip_mut_with(&p_row, |d, &pr| *d = pr * (*d - dot));
    }
    match (p.mask, grad_mask) {
        (Some((g, MaskCombine::Multiply)), Some(grad_mask)) => {
            // S again, bit for bit as in the forward pass (same product of the same operands).
            general_mat_mul(p.scale, &p.q, &p.k.t(), F::zero(), logits);
            Zip::from(grad_mask)
                .and(&mut *scratch)
                .and(&*logits)
                .and(&g)
                .for_each(|acc, d, &s, &g| {
                    *acc += *d * s;
                    *d *= g;
                });
        }
        (Some((_, MaskCombine::Add)), Some(grad_mask)) => *grad_mask += &*scratch,
        _ => {}
    }
    general_mat_mul(p.scale, &*scratch, &p.k, F::zero(), &mut dq);
    general_mat_mul(p.scale, &scratch.t(), &p.q, F::zero(), &mut dk);
}
