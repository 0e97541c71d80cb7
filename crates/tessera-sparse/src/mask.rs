//! A compact bitset mask over the flattened entries of one layer's weight tensor.

use crate::error::{Error, Result};
use tessera_core::RejectInput;

/// A binary keep/prune mask stored as a bitset (one bit per weight, row-major order of the
/// weight tensor in PyTorch layout `[out, in, kh, kw]`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Mask {
    words: Vec<u64>,
    len: usize,
}

impl Mask {
    /// A mask of `len` entries, all kept.
    pub fn ones(len: usize) -> Self {
        let mut mask = Self {
            words: vec![u64::MAX; len.div_ceil(64)],
            len,
        };
        mask.clear_tail();
        mask
    }

    /// A mask of `len` entries, all pruned.
    pub fn zeros(len: usize) -> Self {
        Self {
            words: vec![0; len.div_ceil(64)],
            len,
        }
    }

    /// Builds a mask from one boolean per entry (`true` = kept).
    pub fn from_bools(keep: &[bool]) -> Self {
        let mut mask = Self::zeros(keep.len());
        for (i, &k) in keep.iter().enumerate() {
            if k {
                mask.words[i / 64] |= 1 << (i % 64);
            }
        }
        mask
    }

    /// One boolean per entry (`true` = kept).
    pub fn to_bools(&self) -> Vec<bool> {
        (0..self.len).map(|i| self.get(i)).collect()
    }

    /// Number of entries (kept or not).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the mask has no entries at all.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether entry `index` is kept; `false` for an index past the end.
    pub fn get(&self, index: usize) -> bool {
        index < self.len && (self.words[index / 64] >> (index % 64)) & 1 == 1
    }

    /// Keeps (`true`) or prunes (`false`) entry `index`.
    pub fn set(&mut self, index: usize, keep: bool) -> Result<()> {
        if index >= self.len {
            return Err(Error::invalid(
                "index",
                index,
                format!("mask has {} entries", self.len),
            ));
        }
        let bit = 1u64 << (index % 64);
        if keep {
            self.words[index / 64] |= bit;
        } else {
            self.words[index / 64] &= !bit;
        }
        Ok(())
    }

    /// Number of kept entries.
    pub fn count_ones(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Fraction of kept entries (0 for an empty mask).
    pub fn density(&self) -> f64 {
        if self.len == 0 {
            0.0
        } else {
            self.count_ones() as f64 / self.len as f64
        }
    }

    /// Indices of kept entries, ascending.
    pub fn iter_ones(&self) -> impl Iterator<Item = usize> + '_ {
        self.words.iter().enumerate().flat_map(|(w, &word)| {
            let mut bits = word;
            std::iter::from_fn(move || {
                if bits == 0 {
                    None
                } else {
                    let t = bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    Some(w * 64 + t)
                }
            })
        })
    }

    /// Zeroes every pruned entry of `values` in place (`w ← w ⊙ m`); works for weights,
    /// gradients and optimiser state alike.
    pub fn apply<F: Copy + num_traits::Zero>(&self, values: &mut [F]) -> Result<()> {
        if values.len() != self.len {
            return Err(Error::invalid(
                "values",
                format!("length {}", values.len()),
                format!("mask has {} entries", self.len),
            ));
        }
        for (chunk, &word) in values.chunks_mut(64).zip(&self.words) {
            if word == u64::MAX {
                continue;
            }
            for (j, v) in chunk.iter_mut().enumerate() {
                if (word >> j) & 1 == 0 {
                    *v = F::zero();
                }
            }
        }
        Ok(())
    }

    fn clear_tail(&mut self) {
        let rem = self.len % 64;
        if rem != 0 {
            if let Some(last) = self.words.last_mut() {
                *last &= (1u64 << rem) - 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_counts() {
        let keep: Vec<bool> = (0..130).map(|i| i % 3 == 0).collect();
        let mask = Mask::from_bools(&keep);
        assert_eq!(mask.to_bools(), keep);
        assert_eq!(mask.count_ones(), keep.iter().filter(|&&k| k).count());
        let ones: Vec<usize> = mask.iter_ones().collect();
        let expected: Vec<usize> = (0..130).filter(|i| i % 3 == 0).collect();
        assert_eq!(ones, expected);
        assert_eq!(Mask::ones(130).count_ones(), 130);
        assert_eq!(Mask::zeros(130).count_ones(), 0);
    }

    #[test]
    fn apply_zeroes_pruned_and_checks_length() {
        let mask = Mask::from_bools(&[true, false, true]);
        let mut w = [1.0f64, 2.0, 3.0];
        mask.apply(&mut w).unwrap();
        assert_eq!(w, [1.0, 0.0, 3.0]);
        assert!(mask.apply(&mut [1.0f32; 4]).is_err());
    }
}
