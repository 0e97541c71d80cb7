#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod db;
pub mod error;
#[cfg(feature = "cuda")]
mod gpu;
pub mod mel;
pub mod melspec;
pub mod mfcc;
pub mod stft;
#[cfg(feature = "wav")]
pub mod wav;
pub mod window;

pub use db::{
    amplitude_to_db, amplitude_to_db_batch, db_to_amplitude, db_to_power, power_to_db,
    power_to_db_batch, DbConfig, Reference,
};
pub use error::{Error, InputError, Result};
pub use mel::{
    fft_frequencies, hz_to_mel, mel_filterbank, mel_filterbank_with_empty, mel_frequencies,
    mel_to_hz, MelNorm, MelScale, MAX_FILTERBANK_ENTRIES, MAX_N_MELS,
};
pub use melspec::{
    EmptyFilters, LogMelConfig, LogMelSpectrogram, MelConfig, MelScratch, MelSpectrogram,
};
pub use mfcc::{dct_ii_ortho, Mfcc, MfccConfig};
pub use num_complex::Complex;
pub use stft::{PadMode, Stft, StftConfig, MAX_N_FFT};
pub use tessera_core::Float;
#[cfg(feature = "wav")]
pub use wav::{read_wav, read_wav_from, Audio};
pub use window::{pad_center, stft_window, Window, WindowKind};
