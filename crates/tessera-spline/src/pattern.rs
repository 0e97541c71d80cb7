//! Activation patterns: which neurons of the kinked layers are active (`pre > 0`) at each input,
//! as bitsets. Two inputs share a linear region only if they share a pattern.

use std::collections::HashSet;

use ndarray::{Array2, ArrayView2};
use tessera_core::{Float, RejectInput};

use crate::error::{Error, Result};
use crate::net::PiecewiseLinear;

/// The activation patterns of a batch: one bitset row per input over the neurons of every
/// layer with a kink (ReLU, leaky ReLU), layer by layer; the linear output layer is left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivationPatterns {
    bits: Vec<u64>,
    words: usize,
    rows: usize,
    neurons: usize,
    layers: Vec<usize>,
    offsets: Vec<usize>,
}

impl ActivationPatterns {
    /// The patterns of the batch `x` (rows are inputs) under `model`.
    pub fn of<F: Float, M: PiecewiseLinear<F> + ?Sized>(
        model: &M,
        x: ArrayView2<'_, F>,
    ) -> Result<Self> {
        let info = model.layer_info();
        let pres = model.pre_activations(x)?;
        // A model implemented outside this crate could disagree with its own description.
        if pres.len() != info.len() {
            return Err(Error::shape(
                "pre_activations",
                format!("{} layers (layer_info)", info.len()),
                format!("{} layers", pres.len()),
            ));
        }
        for (l, (pre, li)) in pres.iter().zip(&info).enumerate() {
            if pre.dim() != (x.nrows(), li.width) {
                return Err(Error::shape(
                    "pre_activations",
                    format!("layer {l}: ({}, {})", x.nrows(), li.width),
                    format!("{:?}", pre.dim()),
                ));
            }
        }
        let kinked: Vec<usize> = (0..info.len().saturating_sub(1))
            .filter(|&l| info[l].activation.has_kink())
            .collect();
        let mut offsets = Vec::with_capacity(kinked.len() + 1);
        let mut neurons = 0usize;
        for &l in &kinked {
            offsets.push(neurons);
            neurons += info[l].width;
        }
        offsets.push(neurons);
        let words = neurons.div_ceil(64).max(1);
        let rows = x.nrows();
        let mut bits = vec![0u64; rows * words];
        for (slot, &l) in kinked.iter().enumerate() {
            let pre = &pres[l];
            for (i, row) in pre.outer_iter().enumerate() {
                let base = i * words;
                for (k, &v) in row.iter().enumerate() {
                    if v > F::zero() {
                        let n = offsets[slot] + k;
                        bits[base + n / 64] |= 1u64 << (n % 64);
                    }
                }
            }
        }
        Ok(Self {
            bits,
            words,
            rows,
            neurons,
            layers: kinked,
            offsets,
        })
    }

    /// Number of inputs.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether there are no inputs (never, for a pattern set built by [`ActivationPatterns::of`]).
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Neurons per pattern (the total width of the kinked layers).
    pub fn num_neurons(&self) -> usize {
        self.neurons
    }

    /// The layers the patterns cover (indices into the model's layers).
    pub fn layers(&self) -> &[usize] {
        &self.layers
    }

    /// The pattern of input `i` as 64-bit words (neuron `n` is bit `n % 64` of word `n / 64`;
    /// layer `layers()[s]` starts at neuron `layer_offsets()[s]`).
    pub fn pattern(&self, i: usize) -> Result<&[u64]> {
        self.check_row("i", i)?;
        Ok(&self.bits[i * self.words..(i + 1) * self.words])
    }

    /// First neuron of each covered layer in the pattern, plus the total at the end.
    pub fn layer_offsets(&self) -> &[usize] {
        &self.offsets
    }

    /// Whether neuron `n` is active at input `i`.
    pub fn is_active(&self, i: usize, n: usize) -> Result<bool> {
        self.check_row("i", i)?;
        if n >= self.neurons {
            return Err(Error::invalid(
                "n",
                n,
                format!("the patterns have {} neurons", self.neurons),
            ));
        }
        Ok(self.bits[i * self.words + n / 64] >> (n % 64) & 1 == 1)
    }

    /// Number of distinct patterns in the batch (a lower bound on the number of linear regions
    /// the inputs visit).
    pub fn num_distinct(&self) -> usize {
        self.bits
            .chunks_exact(self.words)
            .collect::<HashSet<_>>()
            .len()
    }

    /// Number of neurons on which the patterns of inputs `i` and `j` differ.
    pub fn hamming(&self, i: usize, j: usize) -> Result<usize> {
        self.check_row("i", i)?;
        self.check_row("j", j)?;
        Ok(self.hamming_unchecked(i, j))
    }

    fn hamming_unchecked(&self, i: usize, j: usize) -> usize {
        let a = &self.bits[i * self.words..(i + 1) * self.words];
        let b = &self.bits[j * self.words..(j + 1) * self.words];
        a.iter()
            .zip(b)
            .map(|(x, y)| (x ^ y).count_ones() as usize)
            .sum()
    }

    /// All pairwise Hamming distances, `(len, len)`.
    pub fn hamming_matrix(&self) -> Array2<usize> {
        Array2::from_shape_fn((self.rows, self.rows), |(i, j)| {
            self.hamming_unchecked(i, j)
        })
    }

    fn check_row(&self, name: &'static str, i: usize) -> Result<()> {
        if i < self.rows {
            Ok(())
        } else {
            Err(Error::invalid(
                name,
                i,
                format!("the batch has {} inputs", self.rows),
            ))
        }
    }
}
