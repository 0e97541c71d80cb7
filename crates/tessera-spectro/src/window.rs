//! Analysis windows, computed exactly as `scipy.signal.get_window` does (which librosa calls),
//! and librosa's `util.pad_center`.

use ndarray::Array1;
use tessera_core::RejectInput;

use crate::error::{Error, Result};
use crate::Float;

/// The shape of a window function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowKind {
    /// Hann: $w_n = 0.5 - 0.5\cos(2\pi n/M)$.
    Hann,
    /// Hamming: $w_n = 0.54 - 0.46\cos(2\pi n/M)$.
    Hamming,
    /// Blackman: $w_n = 0.42 - 0.5\cos(2\pi n/M) + 0.08\cos(4\pi n/M)$.
    Blackman,
    /// Rectangular (boxcar): all ones.
    Rectangular,
}

impl WindowKind {
    /// The cosine-series coefficients $a_k$ of $w = \sum_k (-1)^k a_k \cos(2\pi k n / M)$,
    /// spelled as scipy spells them so the tables agree to the last bit where possible.
    fn cosine_coefficients(self) -> &'static [f64] {
        const HANN: [f64; 2] = [0.5, 1.0 - 0.5];
        const HAMMING: [f64; 2] = [0.54, 1.0 - 0.54];
        const BLACKMAN: [f64; 3] = [0.42, 0.50, 0.08];
        const RECTANGULAR: [f64; 1] = [1.0];
        match self {
            WindowKind::Hann => &HANN,
            WindowKind::Hamming => &HAMMING,
            WindowKind::Blackman => &BLACKMAN,
            WindowKind::Rectangular => &RECTANGULAR,
        }
    }
}

/// A window as an STFT takes it.
///
/// `Periodic` is the DFT-even form that librosa (`fftbins=True`) and torch use for spectral
/// analysis; `Symmetric` is the filter-design form (`fftbins=False`, `sym=True`).
#[derive(Debug, Clone, PartialEq)]
pub enum Window {
    /// The periodic (DFT-even) window of this kind: the STFT convention.
    Periodic(WindowKind),
    /// The symmetric window of this kind.
    Symmetric(WindowKind),
    /// Explicit samples; their count must equal the window length.
    Custom(Vec<f64>),
}

impl Window {
    /// The periodic Hann window, librosa's and torchaudio's default.
    pub fn hann() -> Self {
        Window::Periodic(WindowKind::Hann)
    }

    /// The window's `len` samples in `f64`.
    ///
    /// # Errors
    /// `len == 0`, or a custom window whose length differs from `len` or holds a non-finite
    /// sample.
    pub fn samples(&self, len: usize) -> Result<Vec<f64>> {
        if len == 0 {
            return Err(Error::invalid("win_length", len, "must be at least 1"));
        }
        match self {
            Window::Periodic(kind) => Ok(cosine_window(*kind, len, false)),
            Window::Symmetric(kind) => Ok(cosine_window(*kind, len, true)),
            Window::Custom(values) => {
                if values.len() != len {
                    return Err(Error::invalid(
                        "window",
                        format!("custom window of length {}", values.len()),
                        format!("must have win_length = {len} samples"),
                    ));
                }
                if let Some((i, v)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
                    return Err(Error::invalid(
                        "window",
                        format!("sample[{i}] = {v}"),
                        "custom window samples must be finite",
                    ));
                }
                Ok(values.clone())
            }
        }
    }
}

/// scipy's `general_cosine`: $w_n = \sum_k a_k \cos(k\,\phi_n)$ with $\phi$ = `linspace(-π, π, M)`;
/// the periodic form computes $M+1$ symmetric points and drops the last.
fn cosine_window(kind: WindowKind, len: usize, symmetric: bool) -> Vec<f64> {
    if len == 1 {
        return vec![1.0];
    }
    let extended = if symmetric { len } else { len + 1 };
    let coefficients = kind.cosine_coefficients();
    // numpy's linspace: start + n·step, with the endpoint stored exactly.
    let step = (std::f64::consts::PI - -std::f64::consts::PI) / (extended - 1) as f64;
    (0..len)
        .map(|n| {
            let phase = if n == extended - 1 {
                std::f64::consts::PI
            } else {
                n as f64 * step + -std::f64::consts::PI
            };
            coefficients
                .iter()
                .enumerate()
                .fold(0.0, |acc, (k, a)| acc + a * (k as f64 * phase).cos())
        })
        .collect()
}

/// Centres `data` in a zero vector of length `size` (librosa `util.pad_center`): the left
/// offset is $\lfloor (size - n)/2 \rfloor$.
///
/// # Errors
/// `size < data.len()`.
pub fn pad_center<T: Float>(data: &[T], size: usize) -> Result<Array1<T>> {
    if size < data.len() {
        return Err(Error::invalid(
            "size",
            size,
            format!("must be at least the data length {}", data.len()),
        ));
    }
    let left = (size - data.len()) / 2;
    let mut out = Array1::zeros(size);
    for (i, &v) in data.iter().enumerate() {
        out[left + i] = v;
    }
    Ok(out)
}

/// The analysis window of an STFT: `window` of `win_length` samples, zero-padded and centred
/// to `n_fft` samples (librosa `get_window` followed by `pad_center`).
///
/// # Errors
/// `win_length == 0`, `win_length > n_fft`, or an invalid custom window.
///
/// ```
/// use tessera_spectro::{stft_window, Window};
/// let w = stft_window::<f64>(&Window::hann(), 4, 6).unwrap();
/// assert_eq!(w.to_vec(), vec![0.0, 0.0, 0.5, 1.0, 0.5, 0.0]);
/// ```
pub fn stft_window<T: Float>(
    window: &Window,
    win_length: usize,
    n_fft: usize,
) -> Result<Array1<T>> {
    if win_length > n_fft {
        return Err(Error::invalid(
            "win_length",
            win_length,
            format!("must not exceed n_fft = {n_fft}"),
        ));
    }
    let samples: Vec<T> = window
        .samples(win_length)?
        .into_iter()
        .map(T::from_f64_rounded)
        .collect();
    pad_center(&samples, n_fft)
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;

    #[test]
    fn periodic_hann_matches_closed_form() {
        let n = 16;
        let w = Window::hann().samples(n).unwrap();
        for (i, v) in w.iter().enumerate() {
            let expected = 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos();
            assert_abs_diff_eq!(*v, expected, epsilon = 1e-15);
        }
    }

    #[test]
    fn symmetric_windows_are_symmetric_and_peak_at_one() {
        for kind in [WindowKind::Hann, WindowKind::Hamming, WindowKind::Blackman] {
            let w = Window::Symmetric(kind).samples(9).unwrap();
            for i in 0..9 {
                assert_abs_diff_eq!(w[i], w[8 - i], epsilon = 1e-15);
            }
            assert_abs_diff_eq!(w[4], 1.0, epsilon = 1e-15);
        }
    }

    #[test]
    fn hamming_and_blackman_endpoints() {
        let h = Window::Symmetric(WindowKind::Hamming).samples(5).unwrap();
        assert_abs_diff_eq!(h[0], 0.08, epsilon = 1e-15);
        let b = Window::Symmetric(WindowKind::Blackman).samples(5).unwrap();
        assert_abs_diff_eq!(b[0], 0.0, epsilon = 1e-15);
    }

    #[test]
    fn pad_center_offsets_left_by_floor() {
        let padded = pad_center(&[1.0f64, 2.0, 3.0], 6).unwrap();
        assert_eq!(padded.to_vec(), vec![0.0, 1.0, 2.0, 3.0, 0.0, 0.0]);
        assert!(pad_center(&[1.0f64, 2.0], 1).is_err());
    }

    #[test]
    fn bad_windows_are_errors() {
        assert!(Window::hann().samples(0).is_err());
        assert!(Window::Custom(vec![1.0, 2.0]).samples(3).is_err());
        assert!(Window::Custom(vec![1.0, f64::NAN]).samples(2).is_err());
        let err = stft_window::<f32>(&Window::hann(), 10, 8).unwrap_err();
        assert!(err.to_string().contains("win_length"), "{err}");
    }
}
