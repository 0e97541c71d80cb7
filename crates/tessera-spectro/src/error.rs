//! Errors of this crate.

pub use tessera_core::InputError;

/// Everything that can go wrong in this crate.
///
/// Every variant names the offending parameter (or file) and its value, so that a message
/// alone tells the caller what to change.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Bad input: a parameter out of range, a shape mismatch, a non-finite value.
    #[error(transparent)]
    Input(#[from] InputError),
    /// Some mel filters have no non-zero weight: their output would always be zero.
    #[error(
        "invalid parameter `n_mels` = {n_mels}: mel filters {empty:?} are empty for n_fft = \
         {n_fft}, sample_rate = {sample_rate}, fmin = {fmin}, fmax = {fmax} (reduce n_mels, \
         raise n_fft or widen [fmin, fmax], or allow empty filters explicitly)"
    )]
    EmptyMelFilters {
        /// Number of mel bands asked for.
        n_mels: usize,
        /// FFT size.
        n_fft: usize,
        /// Sampling rate in Hz.
        sample_rate: f64,
        /// Lowest frequency in Hz.
        fmin: f64,
        /// Highest frequency in Hz.
        fmax: f64,
        /// Indices of the empty rows.
        empty: Vec<usize>,
    },
    /// The GPU path failed after a device was found (feature `cuda`): a driver or library
    /// error, or an overflow the device detected.
    #[cfg(feature = "cuda")]
    #[error("GPU: {0}")]
    Gpu(String),
    /// The FFT library rejected a buffer; this is a bug of this crate, never of the input.
    #[error("internal FFT error: {0}")]
    Fft(String),
    /// A WAV file could not be read or decoded.
    #[cfg(feature = "wav")]
    #[error("cannot read WAV `{path}`: {source}")]
    Wav {
        /// The file (or `<reader>` for an in-memory source).
        path: String,
        /// What `hound` reported.
        #[source]
        source: hound::Error,
    },
    /// A WAV file uses a sample format this crate does not decode.
    #[cfg(feature = "wav")]
    #[error("unsupported WAV `{path}`: {reason}")]
    UnsupportedWav {
        /// The file (or `<reader>` for an in-memory source).
        path: String,
        /// What is unsupported.
        reason: String,
    },
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;
