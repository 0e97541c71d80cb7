//! Mel scales and triangular mel filterbanks, computed as `librosa.filters.mel` does.

use ndarray::Array2;
use tessera_core::RejectInput;

use crate::error::{Error, Result};
use crate::Float;

/// Which Hz ↔ mel mapping to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MelScale {
    /// Slaney's Auditory Toolbox scale (librosa's default): linear $m = 3f/200$ below
    /// 1 kHz, logarithmic $m = 15 + 27\ln(f/1000)/\ln 6.4$ above.
    Slaney,
    /// The HTK scale (torchaudio's default): $m = 2595\log_{10}(1 + f/700)$.
    Htk,
}

/// How the triangular filters are normalised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MelNorm {
    /// Slaney's area normalisation: row $m$ is scaled by $2/(f_{m+2} - f_m)$ so that each
    /// triangle has (approximately) constant energy per Hz.
    Slaney,
    /// Peak-one triangles, no normalisation.
    None,
}

const SLANEY_HZ_PER_MEL: f64 = 200.0 / 3.0;
const SLANEY_LOG_START_HZ: f64 = 1000.0;

fn slaney_log_step() -> f64 {
    6.4f64.ln() / 27.0
}

fn slaney_log_start_mel() -> f64 {
    SLANEY_LOG_START_HZ / SLANEY_HZ_PER_MEL
}

/// Converts a frequency in Hz to mels (librosa `hz_to_mel`).
///
/// # Errors
/// A negative or non-finite frequency.
pub fn hz_to_mel(hz: f64, scale: MelScale) -> Result<f64> {
    if !(hz.is_finite() && hz >= 0.0) {
        return Err(Error::invalid(
            "hz",
            hz,
            "a frequency must be finite and ≥ 0",
        ));
    }
    Ok(hz_to_mel_unchecked(hz, scale))
}

fn hz_to_mel_unchecked(hz: f64, scale: MelScale) -> f64 {
    match scale {
        MelScale::Htk => 2595.0 * (1.0 + hz / 700.0).log10(),
        MelScale::Slaney => {
            if hz >= SLANEY_LOG_START_HZ {
                slaney_log_start_mel() + (hz / SLANEY_LOG_START_HZ).ln() / slaney_log_step()
            } else {
                hz / SLANEY_HZ_PER_MEL
            }
        }
    }
}

/// Converts mels to a frequency in Hz (librosa `mel_to_hz`), the inverse of [`hz_to_mel`].
///
/// # Errors
/// A negative or non-finite mel value, or one whose frequency overflows `f64`.
pub fn mel_to_hz(mel: f64, scale: MelScale) -> Result<f64> {
    if !(mel.is_finite() && mel >= 0.0) {
        return Err(Error::invalid("mel", mel, "must be finite and ≥ 0"));
    }
    let hz = mel_to_hz_unchecked(mel, scale);
    if !hz.is_finite() {
        return Err(Error::invalid("mel", mel, "the frequency overflows f64"));
    }
    Ok(hz)
}

fn mel_to_hz_unchecked(mel: f64, scale: MelScale) -> f64 {
    match scale {
        MelScale::Htk => 700.0 * (10f64.powf(mel / 2595.0) - 1.0),
        MelScale::Slaney => {
            if mel >= slaney_log_start_mel() {
                SLANEY_LOG_START_HZ * (slaney_log_step() * (mel - slaney_log_start_mel())).exp()
            } else {
                SLANEY_HZ_PER_MEL * mel
            }
        }
    }
}

/// `n` frequencies in Hz evenly spaced on the mel scale from `fmin` to `fmax` inclusive
/// (librosa `mel_frequencies`).
///
/// # Errors
/// `fmin` or `fmax` negative or non-finite, `fmin > fmax`, or `n > MAX_N_MELS + 2`.
pub fn mel_frequencies(n: usize, fmin: f64, fmax: f64, scale: MelScale) -> Result<Vec<f64>> {
    tessera_core::check::size_at_most("n", n, MAX_N_MELS + 2)?;
    let low = hz_to_mel(fmin, scale)?;
    let high = hz_to_mel(fmax, scale)?;
    if fmin > fmax {
        return Err(Error::invalid(
            "fmin",
            fmin,
            format!("must not exceed fmax = {fmax}"),
        ));
    }
    // numpy.linspace: start + i·step with the endpoint stored exactly.
    let step = if n > 1 {
        (high - low) / (n - 1) as f64
    } else {
        0.0
    };
    Ok((0..n)
        .map(|i| {
            let mel = if n > 1 && i == n - 1 {
                high
            } else {
                i as f64 * step + low
            };
            mel_to_hz_unchecked(mel, scale)
        })
        .collect())
}

/// Centre frequencies in Hz of the `n_fft / 2 + 1` FFT bins: $k \cdot sr / n_{fft}$
/// (librosa `fft_frequencies`, i.e. `numpy.fft.rfftfreq`).
///
/// # Errors
/// `n_fft == 0`, `n_fft > MAX_N_FFT`, or a sample rate that is not positive and finite.
pub fn fft_frequencies(sample_rate: f64, n_fft: usize) -> Result<Vec<f64>> {
    tessera_core::check::positive("sample_rate", sample_rate)?;
    tessera_core::check::positive_size("n_fft", n_fft)?;
    tessera_core::check::size_at_most("n_fft", n_fft, crate::stft::MAX_N_FFT)?;
    let spacing = 1.0 / (n_fft as f64 * (1.0 / sample_rate));
    Ok((0..n_fft / 2 + 1).map(|k| k as f64 * spacing).collect())
}

/// The largest accepted number of mel bands.
pub const MAX_N_MELS: usize = 1 << 16;

/// The most weights a dense mel filterbank (`n_mels × (n_fft / 2 + 1)`) may hold (2^28,
/// 2 GiB of `f64`).
pub const MAX_FILTERBANK_ENTRIES: usize = 1 << 28;

pub(crate) fn check_mel_parameters(
    sample_rate: f64,
    n_fft: usize,
    n_mels: usize,
    fmin: f64,
    fmax: f64,
) -> Result<()> {
    if !(sample_rate.is_finite() && sample_rate > 0.0) {
        return Err(Error::invalid(
            "sample_rate",
            sample_rate,
            "must be positive and finite",
        ));
    }
    if n_fft == 0 {
        return Err(Error::invalid("n_fft", 0, "must be at least 1"));
    }
    if n_mels == 0 {
        return Err(Error::invalid("n_mels", 0, "must be at least 1"));
    }
    tessera_core::check::size_at_most("n_fft", n_fft, crate::stft::MAX_N_FFT)?;
    tessera_core::check::size_at_most("n_mels", n_mels, MAX_N_MELS)?;
    tessera_core::check::element_count(
        "filterbank (n_mels × (n_fft / 2 + 1))",
        &[n_mels, n_fft / 2 + 1],
        MAX_FILTERBANK_ENTRIES,
    )?;
    if !(fmin.is_finite() && fmin >= 0.0) {
        return Err(Error::invalid(
            "fmin",
            fmin,
            "must be finite and non-negative",
        ));
    }
    if !fmax.is_finite() || fmax > sample_rate / 2.0 {
        return Err(Error::invalid(
            "fmax",
            fmax,
            format!(
                "must be finite and at most sample_rate / 2 = {}",
                sample_rate / 2.0
            ),
        ));
    }
    if fmin >= fmax {
        return Err(Error::invalid(
            "fmin",
            fmin,
            format!("must be below fmax = {fmax}"),
        ));
    }
    Ok(())
}

/// The mel filterbank of shape `(n_mels, n_fft / 2 + 1)`, equal to
/// `librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax,
/// htk=scale == Htk, norm="slaney" | None)`.
///
/// Filter $m$ is the triangle over the FFT bin frequencies $f_k$ between the mel-spaced
/// edges $e_m < e_{m+1} < e_{m+2}$:
/// $w_{m,k} = \max(0, \min(\frac{f_k - e_m}{e_{m+1} - e_m}, \frac{e_{m+2} - f_k}{e_{m+2} - e_{m+1}}))$.
///
/// # Errors
/// Invalid parameters (`sample_rate`, `n_fft`, `n_mels`, `fmin`, `fmax > sample_rate / 2`,
/// `fmin ≥ fmax`), and [`Error::EmptyMelFilters`] when any filter has no non-zero weight
/// (librosa only warns; use [`mel_filterbank_with_empty`] to accept them).
pub fn mel_filterbank<T: Float>(
    sample_rate: f64,
    n_fft: usize,
    n_mels: usize,
    fmin: f64,
    fmax: f64,
    scale: MelScale,
    norm: MelNorm,
) -> Result<Array2<T>> {
    let (weights, empty) =
        mel_filterbank_with_empty(sample_rate, n_fft, n_mels, fmin, fmax, scale, norm)?;
    if !empty.is_empty() {
        return Err(Error::EmptyMelFilters {
            n_mels,
            n_fft,
            sample_rate,
            fmin,
            fmax,
            empty,
        });
    }
    Ok(weights)
}

/// Like [`mel_filterbank`] but accepts empty filters (all-zero rows, as librosa and
/// torchaudio do with a warning) and returns their indices beside the weights.
///
/// # Errors
/// Invalid parameters, as for [`mel_filterbank`].
pub fn mel_filterbank_with_empty<T: Float>(
    sample_rate: f64,
    n_fft: usize,
    n_mels: usize,
    fmin: f64,
    fmax: f64,
    scale: MelScale,
    norm: MelNorm,
) -> Result<(Array2<T>, Vec<usize>)> {
    // Computed in f64 and rounded once, so f32 filterbanks are f64 ones rounded.
    check_mel_parameters(sample_rate, n_fft, n_mels, fmin, fmax)?;
    let bins = fft_frequencies(sample_rate, n_fft)?;
    let edges = mel_frequencies(n_mels + 2, fmin, fmax, scale)?;
    let mut weights = Array2::<f64>::zeros((n_mels, bins.len()));
    let mut empty = Vec::new();
    for m in 0..n_mels {
        let rising_width = edges[m + 1] - edges[m];
        let falling_width = edges[m + 2] - edges[m + 1];
        let gain = match norm {
            MelNorm::Slaney => 2.0 / (edges[m + 2] - edges[m]),
            MelNorm::None => 1.0,
        };
        let mut row_max = 0.0f64;
        for (k, &f) in bins.iter().enumerate() {
            let rising = -(edges[m] - f) / rising_width;
            let falling = (edges[m + 2] - f) / falling_width;
            let w = rising.min(falling).max(0.0);
            row_max = row_max.max(w);
            weights[[m, k]] = w * gain;
        }
        if row_max <= 0.0 {
            empty.push(m);
        }
    }
    Ok((weights.mapv(T::from_f64_rounded), empty))
}

/// A filterbank stored as one contiguous run of non-zero weights per row: each FFT bin lies
/// in at most two triangles, so applying it costs about two multiply-adds per bin instead of
/// `n_mels` per bin for the dense product.
#[derive(Debug, Clone)]
pub(crate) struct SparseFilterbank<T> {
    rows: Vec<(usize, Vec<T>)>,
    n_bins: usize,
}

impl<T: Float> SparseFilterbank<T> {
    pub(crate) fn from_dense(weights: &Array2<T>) -> Self {
        let rows = weights
            .outer_iter()
            .map(|row| {
                let first = row.iter().position(|w| *w != T::zero());
                match first {
                    None => (0, Vec::new()),
                    Some(first) => {
                        let last = row.iter().rposition(|w| *w != T::zero()).unwrap_or(first);
                        (
                            first,
                            row.iter()
                                .skip(first)
                                .take(last + 1 - first)
                                .copied()
                                .collect(),
                        )
                    }
                }
            })
            .collect();
        SparseFilterbank {
            rows,
            n_bins: weights.ncols(),
        }
    }

    pub(crate) fn n_mels(&self) -> usize {
        self.rows.len()
    }

    pub(crate) fn n_bins(&self) -> usize {
        self.n_bins
    }

    /// `out[m] = Σ_k w[m, k] · spectrum[k]`.
    pub(crate) fn apply(&self, spectrum: &[T], out: &mut [T]) {
        for ((start, weights), out) in self.rows.iter().zip(out.iter_mut()) {
            let bins = &spectrum[*start..*start + weights.len()];
            *out = weights
                .iter()
                .zip(bins)
                .fold(T::zero(), |acc, (&w, &p)| acc + w * p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::{assert_abs_diff_eq, assert_relative_eq};

    #[test]
    fn scales_round_trip_and_hit_known_points() {
        for scale in [MelScale::Slaney, MelScale::Htk] {
            for hz in [0.0, 50.0, 999.0, 1000.0, 1001.0, 8000.0, 22050.0] {
                let back = mel_to_hz(hz_to_mel(hz, scale).unwrap(), scale).unwrap();
                assert_relative_eq!(back, hz, epsilon = 1e-9, max_relative = 1e-9);
            }
        }
        assert_abs_diff_eq!(
            hz_to_mel(1000.0, MelScale::Slaney).unwrap(),
            15.0,
            epsilon = 1e-12
        );
        assert_abs_diff_eq!(
            hz_to_mel(6400.0, MelScale::Slaney).unwrap(),
            42.0,
            epsilon = 1e-12
        );
        assert_abs_diff_eq!(
            hz_to_mel(700.0, MelScale::Htk).unwrap(),
            2595.0 * 2f64.log10(),
            epsilon = 1e-9
        );
    }

    #[test]
    fn fft_frequencies_are_bin_centres() {
        let f = fft_frequencies(16000.0, 8).unwrap();
        assert_eq!(f, vec![0.0, 2000.0, 4000.0, 6000.0, 8000.0]);
        assert_eq!(fft_frequencies(16000.0, 7).unwrap().len(), 4);
    }

    #[test]
    fn sparse_matches_dense() {
        let dense = mel_filterbank::<f64>(
            22050.0,
            512,
            40,
            30.0,
            11025.0,
            MelScale::Slaney,
            MelNorm::Slaney,
        )
        .unwrap();
        let sparse = SparseFilterbank::from_dense(&dense);
        let spectrum: Vec<f64> = (0..257).map(|k| ((k * 37) % 11) as f64 + 0.5).collect();
        let mut out = vec![0.0; 40];
        sparse.apply(&spectrum, &mut out);
        let expected = dense.dot(&ndarray::Array1::from(spectrum));
        for (a, b) in out.iter().zip(expected.iter()) {
            assert_abs_diff_eq!(a, b, epsilon = 1e-12 * b.abs());
        }
    }

    #[test]
    fn bad_parameters_name_themselves() {
        let cases = [
            (0.0, 512, 40, 0.0, 100.0, "sample_rate"),
            (16000.0, 0, 40, 0.0, 8000.0, "n_fft"),
            (16000.0, 512, 0, 0.0, 8000.0, "n_mels"),
            (16000.0, 512, 40, -1.0, 8000.0, "fmin"),
            (16000.0, 512, 40, 0.0, 8000.5, "fmax"),
            (16000.0, 512, 40, 4000.0, 4000.0, "fmin"),
            (16000.0, 512, 40, f64::NAN, 4000.0, "fmin"),
        ];
        for (sr, n_fft, n_mels, fmin, fmax, name) in cases {
            let err =
                mel_filterbank::<f32>(sr, n_fft, n_mels, fmin, fmax, MelScale::Htk, MelNorm::None)
                    .unwrap_err();
            assert!(err.to_string().contains(name), "{name}: {err}");
        }
    }

    #[test]
    fn too_many_mels_is_an_error_listing_empty_rows() {
        let err =
            mel_filterbank::<f64>(16000.0, 400, 128, 0.0, 8000.0, MelScale::Htk, MelNorm::None)
                .unwrap_err();
        match &err {
            Error::EmptyMelFilters { empty, .. } => assert!(!empty.is_empty()),
            other => panic!("unexpected {other}"),
        }
        assert!(err.to_string().contains("n_mels"));
        let (weights, empty) = mel_filterbank_with_empty::<f64>(
            16000.0,
            400,
            128,
            0.0,
            8000.0,
            MelScale::Htk,
            MelNorm::None,
        )
        .unwrap();
        for &m in &empty {
            assert!(weights.row(m).iter().all(|w| *w == 0.0));
        }
    }
}
