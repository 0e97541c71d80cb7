//! Errors of this crate.

pub use tessera_core::InputError;

use std::path::PathBuf;

/// Everything that can go wrong in this crate.
///
/// Every variant names the parameter, file or label at fault so that a user pointing the
/// loaders at a real dataset sees at once what is missing or malformed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Bad input: a parameter out of range, a shape mismatch, a non-finite value.
    #[error(transparent)]
    Input(#[from] InputError),
    /// A metadata file that the dataset layout requires does not exist.
    #[error("missing metadata file {path}: {hint}")]
    MissingMetadata {
        /// The path that was looked for.
        path: PathBuf,
        /// What the layout expects there.
        hint: String,
    },
    /// A metadata file exists but cannot be parsed.
    #[error("malformed metadata in {path} line {line}: {reason}")]
    MalformedMetadata {
        /// The metadata file.
        path: PathBuf,
        /// One-based line number (0 when the problem is not tied to a line).
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A label in the metadata or a list file is not one of the dataset's classes.
    #[error("unknown label `{label}` in {source_file}: {reason}")]
    UnknownLabel {
        /// The label as written.
        label: String,
        /// Where it was found.
        source_file: PathBuf,
        /// Which classes are known, or what is inconsistent.
        reason: String,
    },
    /// A folder that must contain audio files (or class folders) is empty or absent.
    #[error("empty or missing folder {path}: {reason}")]
    EmptyFolder {
        /// The folder.
        path: PathBuf,
        /// What was expected in it.
        reason: String,
    },
    /// An audio file that the metadata lists does not exist.
    #[error("missing audio file {path} (listed in {listed_in})")]
    MissingAudio {
        /// The expected audio file.
        path: PathBuf,
        /// The metadata or list file that names it.
        listed_in: PathBuf,
    },
    /// A WAV file cannot be decoded.
    #[error("corrupt or unsupported WAV file {path}: {reason}")]
    CorruptWav {
        /// The file.
        path: PathBuf,
        /// The decoder's message.
        reason: String,
    },
    /// A file could not be read or written.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The embedded or given binary dataset file is malformed (bad header, size or checksum).
    #[error("corrupt dataset file `{name}`: {reason}")]
    CorruptDataset {
        /// Which dataset.
        name: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The resampler failed.
    #[error("resampling {from_rate} Hz -> {to_rate} Hz failed: {reason}")]
    Resample {
        /// Input sample rate.
        from_rate: u32,
        /// Output sample rate.
        to_rate: u32,
        /// The resampler's message.
        reason: String,
    },
    /// Reading or writing a cached `.npy` feature file failed.
    #[error("feature cache file {path}: {reason}")]
    Cache {
        /// The `.npy` file.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// The caller's feature function returned an error.
    #[error("feature function failed on item `{key}`: {reason}")]
    Feature {
        /// The cache key of the item.
        key: String,
        /// The feature function's error, formatted.
        reason: String,
    },
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;
