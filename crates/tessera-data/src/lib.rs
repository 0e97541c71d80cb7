#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

#[cfg(feature = "wav")]
mod csv;
mod hash;

#[cfg(feature = "wav")]
pub mod audio;
pub mod batch;
pub mod cache;
pub mod dataset;
pub mod digits;
pub mod error;
pub mod keywords;
#[cfg(feature = "wav")]
pub mod loaders;
pub mod mnist1d;
pub mod shapes;
pub mod split;

#[cfg(feature = "wav")]
pub use audio::{
    fit_length, load_clip, read_wav_mono, resample, write_wav_mono, ClipSpec, FitMode, MonoAudio,
    MAX_RESAMPLED_SAMPLES, MAX_SAMPLE_MAGNITUDE, MAX_SAMPLE_RATE, MIN_SAMPLE_RATE,
};
pub use batch::{BatchConfig, MiniBatches};
pub use cache::FeatureCache;
pub use dataset::{AudioDataset, ImageDataset};
pub use digits::{digits_raw, load_digits, parse_digits, DigitsRaw, DIGITS_LEN};
pub use error::{Error, InputError, Result};
pub use keywords::{KeywordConfig, SyntheticKeywords, KEYWORD_CLASSES};
#[cfg(feature = "wav")]
pub use loaders::{
    esc10, speech_commands, urbansound8k, AudioFile, DatasetIndex, SpeechCommandsOptions, Subset,
    ESC10_CLASSES, URBANSOUND8K_CLASSES,
};
pub use mnist1d::{
    ExampleDraws, Mnist1d, Mnist1dConfig, Mnist1dData, Mnist1dSplit, MNIST1D_CLASSES,
};
pub use shapes::{Shapes, ShapesConfig, SHAPES_MAX_VALUES, SHAPE_CLASSES};
pub use split::{
    class_counts, fold_splits, stratified_folds, stratified_split, FoldSplit, LabelledSplit,
};
