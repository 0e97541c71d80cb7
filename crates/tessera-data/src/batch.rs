//! Seeded mini-batch index streams.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tessera_core::RejectInput;

use crate::error::{Error, Result};

/// How to cut a dataset of `n_items` into mini-batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchConfig {
    /// Items per batch (≥ 1).
    pub batch_size: usize,
    /// Reshuffle the order at the start of every epoch.
    pub shuffle: bool,
    /// In [`MiniBatches::epoch`], drop a final batch smaller than `batch_size`.
    pub drop_last: bool,
    /// Seed of the ChaCha8 stream that draws the permutations.
    pub seed: u64,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            batch_size: 64,
            shuffle: true,
            drop_last: false,
            seed: 0,
        }
    }
}

/// A seeded source of mini-batches of item indices `0..n_items`.
///
/// [`epoch`](MiniBatches::epoch) gives one pass over the data; [`next_batch`](MiniBatches::next_batch)
/// gives an endless stream that reshuffles whenever the data is exhausted and may wrap across
/// epoch boundaries, which semi-supervised training needs when the labelled set is smaller
/// than (or not a multiple of) the batch size. Both draw from the same random stream, so a
/// run is reproducible from `seed` as long as the calls are made in the same order.
#[derive(Debug, Clone)]
pub struct MiniBatches {
    n_items: usize,
    config: BatchConfig,
    rng: ChaCha8Rng,
    order: Vec<usize>,
    cursor: usize,
    epochs_started: usize,
}

impl MiniBatches {
    /// Checks the configuration and prepares the first epoch.
    ///
    /// # Errors
    /// `n_items == 0` or `batch_size == 0`.
    pub fn new(n_items: usize, config: BatchConfig) -> Result<Self> {
        if n_items == 0 {
            return Err(Error::invalid("n_items", 0, "need at least one item"));
        }
        if config.batch_size == 0 {
            return Err(Error::invalid("batch_size", 0, "must be at least 1"));
        }
        let mut batches = Self {
            n_items,
            config,
            rng: ChaCha8Rng::seed_from_u64(config.seed),
            order: (0..n_items).collect(),
            cursor: 0,
            epochs_started: 0,
        };
        batches.start_epoch();
        Ok(batches)
    }

    fn start_epoch(&mut self) {
        self.order.clear();
        self.order.extend(0..self.n_items);
        if self.config.shuffle {
            self.order.shuffle(&mut self.rng);
        }
        self.cursor = 0;
        self.epochs_started += 1;
    }

    /// Number of items the batches index into.
    pub fn n_items(&self) -> usize {
        self.n_items
    }

    /// How many epochs (permutations) have been started so far.
    pub fn epochs_started(&self) -> usize {
        self.epochs_started
    }

    /// One full pass over the data, in a fresh order (when shuffling): every index appears
    /// exactly once, except that with `drop_last` a final short batch is dropped.
    pub fn epoch(&mut self) -> Vec<Vec<usize>> {
        if self.cursor != 0 {
            self.start_epoch();
        }
        let batches = self
            .order
            .chunks(self.config.batch_size)
            .filter(|chunk| !self.config.drop_last || chunk.len() == self.config.batch_size)
            .map(<[usize]>::to_vec)
            .collect();
        self.start_epoch();
        batches
    }

    /// The next `batch_size` indices of the endless stream.
    pub fn next_batch(&mut self) -> Vec<usize> {
        let mut batch = Vec::with_capacity(self.config.batch_size);
        while batch.len() < self.config.batch_size {
            if self.cursor == self.n_items {
                self.start_epoch();
            }
            let take = (self.config.batch_size - batch.len()).min(self.n_items - self.cursor);
            batch.extend_from_slice(&self.order[self.cursor..self.cursor + take]);
            self.cursor += take;
        }
        batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_epoch_covers_every_item_once() {
        let mut batches = MiniBatches::new(
            10,
            BatchConfig {
                batch_size: 3,
                ..BatchConfig::default()
            },
        )
        .unwrap();
        let epoch = batches.epoch();
        assert_eq!(
            epoch.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![3, 3, 3, 1]
        );
        let mut all: Vec<usize> = epoch.concat();
        all.sort_unstable();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
        let second = batches.epoch();
        assert_ne!(epoch, second, "the order is reshuffled every epoch");
    }

    #[test]
    fn drop_last_and_no_shuffle() {
        let mut batches = MiniBatches::new(
            7,
            BatchConfig {
                batch_size: 3,
                shuffle: false,
                drop_last: true,
                seed: 0,
            },
        )
        .unwrap();
        assert_eq!(batches.epoch(), vec![vec![0, 1, 2], vec![3, 4, 5]]);
    }

    #[test]
    fn the_endless_stream_wraps_small_sets() {
        let config = BatchConfig {
            batch_size: 5,
            seed: 9,
            ..BatchConfig::default()
        };
        let mut batches = MiniBatches::new(3, config).unwrap();
        let first = batches.next_batch();
        assert_eq!(first.len(), 5);
        // The first three are a permutation of the set.
        let mut head = first[..3].to_vec();
        head.sort_unstable();
        assert_eq!(head, vec![0, 1, 2]);
        let mut again = MiniBatches::new(3, config).unwrap();
        assert_eq!(again.next_batch(), first);
    }

    #[test]
    fn zero_sizes_are_rejected() {
        let err = MiniBatches::new(0, BatchConfig::default()).unwrap_err();
        assert!(err.to_string().contains("n_items"));
        let err = MiniBatches::new(
            4,
            BatchConfig {
                batch_size: 0,
                ..BatchConfig::default()
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("batch_size"));
    }
}
