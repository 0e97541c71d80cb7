#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod hash;

pub mod digits;

pub mod batch;
pub mod dataset;
pub mod error;
pub mod keywords;
pub mod split;

pub use batch::{BatchConfig, MiniBatches};
pub use digits::{load_digits, digits_raw, DigitsRaw};
pub use dataset::{AudioDataset, ImageDataset};
pub use error::{Error, Result};
pub use keywords::{KeywordConfig, SyntheticKeywords, KEYWORD_CLASSES};
pub use split::{class_counts, fold_splits, stratified_folds, stratified_split, FoldSplit, LabelledSplit};
