//! MNIST-1D: ten one-dimensional digit templates turned into a small but hard classification
//! task by random padding, dilation, scaling, translation, correlated and white noise and
//! shear, deterministic from a seed.
//!
//! Reimplemented from the description and behaviour of S. Greydanus, *Scaling down Deep
//! Learning* (2020, arXiv:2011.14439) and its package <https://github.com/greydanus/mnist1d>
//! (PyPI `mnist1d`, Apache-2.0). The ten 12-point templates are the package's data; the
//! code here is our own. Every stage of the pipeline is a pure function of its input and of
//! explicit random draws ([`ExampleDraws`]) so that it can be checked, stage by stage,
//! against the package (`tests/data/make_mnist1d_fixtures.py`); our random numbers come
//! from ChaCha8 (the package uses numpy's global Mersenne Twister), so the same seed does not
//! give the package's exact data set, only one with the same distribution.

use ndarray::{Array2, Axis};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use tessera_core::RejectInput;

use crate::error::{Error, Result};
use crate::hash::mix_seed;
use crate::split::class_counts;

/// Number of classes (digits 0–9).
pub const MNIST1D_CLASSES: usize = 10;

/// Points per template.
pub const MNIST1D_TEMPLATE_POINTS: usize = 12;

/// Added to every template value before padding (the package's `eps`), so that template
/// values of exactly zero (each template starts and ends at 0) are not taken for padding when
/// the correlated noise is put where the signal is zero.
pub const MNIST1D_EPS: f64 = 1e-8;

/// Radius of the Gaussian filter in standard deviations (scipy's default `truncate`).
pub const MNIST1D_TRUNCATE: f64 = 4.0;

/// Largest number of output values (`num_samples · final_seq_length`) that
/// [`Mnist1d::generate`] accepts, checked before anything is allocated (2²⁸ values: 1 GiB of
/// `f32`, plus twice that in `f64` while the set is standardised).
pub const MNIST1D_MAX_VALUES: usize = 1 << 28;

/// Largest dilated or final signal length accepted (per example).
pub const MNIST1D_MAX_LENGTH: usize = 1 << 16;

/// Hand-drawn control points of the ten digits, before whitening (the package's
/// `get_templates`).
const RAW_TEMPLATES: [[f64; MNIST1D_TEMPLATE_POINTS]; MNIST1D_CLASSES] = [
    [5.0, 6.0, 6.5, 6.75, 7.0, 7.0, 7.0, 7.0, 6.75, 6.5, 6.0, 5.0],
    [5.0, 3.0, 3.0, 3.4, 3.8, 4.2, 4.6, 5.0, 5.4, 5.8, 5.0, 5.0],
    [5.0, 6.0, 6.5, 6.5, 6.0, 5.25, 4.75, 4.0, 3.5, 3.5, 4.0, 5.0],
    [5.0, 6.0, 6.5, 6.5, 6.0, 5.0, 5.0, 6.0, 6.5, 6.5, 6.0, 5.0],
    [5.0, 4.4, 3.8, 3.2, 2.6, 2.6, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0],
    [5.0, 3.0, 3.0, 3.0, 3.0, 5.0, 6.0, 6.5, 6.5, 6.0, 4.5, 5.0],
    [5.0, 4.0, 3.5, 3.25, 3.0, 3.0, 3.0, 3.0, 3.25, 3.5, 4.0, 5.0],
    [5.0, 7.0, 7.0, 6.6, 6.2, 5.8, 5.4, 5.0, 4.6, 4.2, 5.0, 5.0],
    [5.0, 4.0, 3.5, 3.5, 4.0, 5.0, 5.0, 4.0, 3.5, 3.5, 4.0, 5.0],
    [5.0, 4.0, 3.5, 3.5, 4.0, 5.0, 5.0, 5.0, 5.0, 4.7, 4.3, 5.0],
];

/// The ten templates, `(10, 12)`: each digit's control points standardised to mean 0 and
/// (population) standard deviation 1, shifted so that the first point is 0 (the last one is
/// then 0 too), and divided by 6.
pub fn templates() -> Array2<f64> {
    let n = MNIST1D_TEMPLATE_POINTS as f64;
    Array2::from_shape_fn((MNIST1D_CLASSES, MNIST1D_TEMPLATE_POINTS), |(c, i)| {
        let raw = &RAW_TEMPLATES[c];
        let mean = raw.iter().sum::<f64>() / n;
        let std = (raw.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n).sqrt();
        let first = (raw[0] - mean) / std;
        ((raw[i] - mean) / std - first) / 6.0
    })
}

/// Settings of the generator; the defaults are the package's (`get_dataset_args`).
#[derive(Debug, Clone, PartialEq)]
pub struct Mnist1dConfig {
    /// Number of examples, train and test together, at least 10 (labels are exactly
    /// balanced: counts differ by at most one). The package silently rounds down to a
    /// multiple of 10; we generate exactly this many.
    pub num_samples: usize,
    /// Fraction of the (shuffled) examples in the training split, in $(0, 1)$; the split point
    /// is $\lfloor n \cdot f\rfloor$ and both splits must be non-empty.
    pub train_split: f64,
    /// The dilated length is `template_len + padding.1` (the templates always have 12
    /// points; like the package, this only sets the dilated length), at least 1.
    pub template_len: usize,
    /// Range of the number of zeros appended to a template, inclusive, `lo <= hi`.
    pub padding: (usize, usize),
    /// The amplitude is multiplied by $1 + c\,(u - \tfrac12)$, $u \sim U[0, 1)$; `c` in $[0, 2)$.
    pub scale_coeff: f64,
    /// Circular shift by $k \sim U\{0, \dots, \text{max\\_translation} - 1\}$; at least 1 and at
    /// most the dilated length.
    pub max_translation: usize,
    /// Standard deviation of the white noise that is smoothed into the correlated noise, $\ge 0$.
    pub corr_noise_scale: f64,
    /// Standard deviation (in samples) of the Gaussian filter of the correlated noise,
    /// $[0, 1000]$; 0 leaves the noise white (the package fixes 2).
    pub corr_noise_sigma: f64,
    /// Standard deviation of the i.i.d. noise added everywhere, $\ge 0$.
    pub iid_noise_scale: f64,
    /// Shear: subtract $s\,(u - \tfrac12)\cdot\mathrm{linspace}(-\tfrac12, \tfrac12)$, $s \ge 0$.
    pub shear_scale: f64,
    /// Length of each output example, at least 2.
    pub final_seq_length: usize,
    /// Also permute the 40 positions with one fixed random permutation (the package's
    /// `shuffle_seq`, the "shuffled MNIST-1D" variant).
    pub shuffle_seq: bool,
    /// Seed: the same seed gives the same data set bit for bit.
    pub seed: u64,
}

impl Default for Mnist1dConfig {
    fn default() -> Self {
        Self {
            num_samples: 5000,
            train_split: 0.8,
            template_len: 12,
            padding: (36, 60),
            scale_coeff: 0.4,
            max_translation: 48,
            corr_noise_scale: 0.25,
            corr_noise_sigma: 2.0,
            iid_noise_scale: 2e-2,
            shear_scale: 0.75,
            final_seq_length: 40,
            shuffle_seq: false,
            seed: 42,
        }
    }
}

impl Mnist1dConfig {
    /// Length of a signal after dilation, `template_len + padding.1`.
    pub fn dilated_len(&self) -> usize {
        self.template_len.saturating_add(self.padding.1)
    }

    /// Number of training examples, $\lfloor n \cdot f\rfloor$.
    pub fn n_train(&self) -> usize {
        (self.num_samples as f64 * self.train_split).floor() as usize
    }

    /// Checks every field (see each field's documentation).
    ///
    /// # Errors
    /// [`Error::Input`] naming the first field out of range.
    pub fn validate(&self) -> Result<()> {
        if self.num_samples < MNIST1D_CLASSES {
            return Err(Error::invalid(
                "num_samples",
                self.num_samples,
                format!("must be at least {MNIST1D_CLASSES} (one example per class)"),
            ));
        }
        if !(self.train_split > 0.0 && self.train_split < 1.0) {
            return Err(Error::invalid(
                "train_split",
                self.train_split,
                "must lie in (0, 1)",
            ));
        }
        let n_train = self.n_train();
        if n_train == 0 || n_train >= self.num_samples {
            return Err(Error::invalid(
                "train_split",
                self.train_split,
                format!(
                    "gives {n_train} training and {} test examples out of {}; both must be \
                     at least 1",
                    self.num_samples.saturating_sub(n_train),
                    self.num_samples
                ),
            ));
        }
        if self.template_len == 0 {
            return Err(Error::invalid("template_len", 0, "must be at least 1"));
        }
        let (lo, hi) = self.padding;
        if lo > hi {
            return Err(Error::invalid(
                "padding",
                format!("({lo}, {hi})"),
                "the range is inverted: need lo <= hi",
            ));
        }
        let dilated = self.dilated_len();
        if !(2..=MNIST1D_MAX_LENGTH).contains(&dilated) {
            return Err(Error::invalid(
                "template_len + padding.1",
                dilated,
                format!("the dilated length must lie in 2..={MNIST1D_MAX_LENGTH}"),
            ));
        }
        if hi > MNIST1D_MAX_LENGTH {
            return Err(Error::invalid(
                "padding",
                format!("({lo}, {hi})"),
                format!("at most {MNIST1D_MAX_LENGTH} zeros"),
            ));
        }
        if !(self.scale_coeff.is_finite() && (0.0..2.0).contains(&self.scale_coeff)) {
            return Err(Error::invalid(
                "scale_coeff",
                self.scale_coeff,
                "must lie in [0, 2) so that the amplitude factor stays positive",
            ));
        }
        if self.max_translation == 0 || self.max_translation > dilated {
            return Err(Error::invalid(
                "max_translation",
                self.max_translation,
                format!("must lie in 1..={dilated} (the dilated length)"),
            ));
        }
        for (name, value) in [
            ("corr_noise_scale", self.corr_noise_scale),
            ("iid_noise_scale", self.iid_noise_scale),
            ("shear_scale", self.shear_scale),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                return Err(Error::invalid(name, value, "must be finite and >= 0"));
            }
        }
        if !(self.corr_noise_sigma.is_finite() && (0.0..=1000.0).contains(&self.corr_noise_sigma)) {
            return Err(Error::invalid(
                "corr_noise_sigma",
                self.corr_noise_sigma,
                "must lie in [0, 1000]",
            ));
        }
        if !(2..=MNIST1D_MAX_LENGTH).contains(&self.final_seq_length) {
            return Err(Error::invalid(
                "final_seq_length",
                self.final_seq_length,
                format!("must lie in 2..={MNIST1D_MAX_LENGTH}"),
            ));
        }
        match self.num_samples.checked_mul(self.final_seq_length) {
            Some(values) if values <= MNIST1D_MAX_VALUES => Ok(()),
            _ => Err(Error::invalid(
                "num_samples",
                self.num_samples,
                format!(
                    "num_samples × final_seq_length ({} × {}) exceeds {MNIST1D_MAX_VALUES} \
                     values",
                    self.num_samples, self.final_seq_length
                ),
            )),
        }
    }
}

/// The random numbers one example consumes, in the order the package draws them.
#[derive(Debug, Clone, PartialEq)]
pub struct ExampleDraws {
    /// Uniform in $[0, 1)$ that picks the padding, see [`padding_from_uniform`].
    pub u_pad: f64,
    /// Uniform in $[0, 1)$ of the amplitude factor, see [`scale_factor`].
    pub u_scale: f64,
    /// Circular shift, `< max_translation`.
    pub shift: usize,
    /// Standard normals (dilated length) smoothed into the correlated noise.
    pub white_corr: Vec<f64>,
    /// Standard normals (dilated length) of the i.i.d. noise.
    pub white_iid: Vec<f64>,
    /// Uniform in $[0, 1)$ of the shear coefficient, see [`shear`].
    pub u_shear: f64,
}

impl ExampleDraws {
    /// Draws one example's random numbers from `rng` (ChaCha8 in [`Mnist1d::generate`]), in
    /// the package's order.
    ///
    /// # Errors
    /// A bad config.
    pub fn sample<R: Rng + ?Sized>(rng: &mut R, config: &Mnist1dConfig) -> Result<Self> {
        config.validate()?;
        let n = config.dilated_len();
        let u_pad = rng.random::<f64>();
        let u_scale = rng.random::<f64>();
        let shift = rng.random_range(0..config.max_translation);
        let white_corr = (0..n).map(|_| rng.sample(StandardNormal)).collect();
        let white_iid = (0..n).map(|_| rng.sample(StandardNormal)).collect();
        let u_shear = rng.random::<f64>();
        Ok(Self {
            u_pad,
            u_scale,
            shift,
            white_corr,
            white_iid,
            u_shear,
        })
    }

    fn check(&self, config: &Mnist1dConfig) -> Result<()> {
        for (name, u) in [
            ("u_pad", self.u_pad),
            ("u_scale", self.u_scale),
            ("u_shear", self.u_shear),
        ] {
            check_uniform(name, u)?;
        }
        if self.shift >= config.max_translation {
            return Err(Error::invalid(
                "shift",
                self.shift,
                format!("must be < max_translation = {}", config.max_translation),
            ));
        }
        let n = config.dilated_len();
        for (name, white) in [
            ("white_corr", &self.white_corr),
            ("white_iid", &self.white_iid),
        ] {
            if white.len() != n {
                return Err(Error::invalid(
                    name,
                    format!("{} values", white.len()),
                    format!("must have the dilated length {n}"),
                ));
            }
            check_finite(name, white)?;
        }
        Ok(())
    }
}

fn check_uniform(name: &'static str, u: f64) -> Result<()> {
    if (0.0..1.0).contains(&u) {
        Ok(())
    } else {
        Err(Error::invalid(name, u, "must lie in [0, 1)"))
    }
}

fn check_finite(name: &'static str, values: &[f64]) -> Result<()> {
    match values.iter().position(|v| !v.is_finite()) {
        Some(i) => Err(Error::invalid(
            name,
            values[i],
            format!("entry {i} is not finite"),
        )),
        None => Ok(()),
    }
}

fn check_same_len(name: &'static str, got: usize, expected: usize) -> Result<()> {
    if got == expected {
        Ok(())
    } else {
        Err(Error::invalid(
            name,
            format!("{got} values"),
            format!("must have the signal's length {expected}"),
        ))
    }
}

/// numpy's `linspace(start, stop, n)`: `start + i·step` with `step = (stop − start)/(n − 1)`
/// and the last point exactly `stop` (the same rounding as numpy, so grid points coincide
/// where numpy's do).
pub fn linspace(start: f64, stop: f64, n: usize) -> Vec<f64> {
    match n {
        0 => Vec::new(),
        1 => vec![start],
        _ => {
            let step = (stop - start) / (n - 1) as f64;
            let mut grid: Vec<f64> = (0..n).map(|i| i as f64 * step + start).collect();
            grid[n - 1] = stop;
            grid
        }
    }
}

/// Number of zeros appended: $\text{lo} + \lfloor u\,(\text{hi} - \text{lo} + 1)\rfloor$.
///
/// # Errors
/// `u` outside $[0, 1)$ or `lo > hi`.
pub fn padding_from_uniform(u: f64, lo: usize, hi: usize) -> Result<usize> {
    check_uniform("u_pad", u)?;
    if lo > hi {
        return Err(Error::invalid(
            "padding",
            format!("({lo}, {hi})"),
            "the range is inverted: need lo <= hi",
        ));
    }
    let span = (hi - lo + 1) as f64;
    Ok(lo + ((u * span).floor() as usize).min(hi - lo))
}

/// Stage 1, pad: `signal + MNIST1D_EPS` followed by `padding` zeros.
pub fn pad(signal: &[f64], padding: usize) -> Vec<f64> {
    let mut padded: Vec<f64> = signal.iter().map(|v| v + MNIST1D_EPS).collect();
    padded.resize(signal.len() + padding, 0.0);
    padded
}

/// Stages 2 and 8, linear interpolation from `signal.len()` points on `linspace(0, 1)` to `n`
/// points on `linspace(0, 1)` (scipy's `interp1d(kind="linear")`, which calls `np.interp`):
/// for $x_j \le x < x_{j+1}$, $y = y_j + \frac{y_{j+1} - y_j}{x_{j+1} - x_j}(x - x_j)$, and
/// exactly $y_j$ where $x = x_j$ — so runs of zeros stay exactly zero.
///
/// # Errors
/// Fewer than 2 input points or `n == 0`.
pub fn interpolate(signal: &[f64], n: usize) -> Result<Vec<f64>> {
    if signal.len() < 2 {
        return Err(Error::invalid(
            "signal",
            format!("{} values", signal.len()),
            "interpolation needs at least 2 points",
        ));
    }
    if n == 0 {
        return Err(Error::invalid("n", 0, "must be at least 1"));
    }
    let xp = linspace(0.0, 1.0, signal.len());
    let last = xp.len() - 1;
    let mut j = 0;
    Ok(linspace(0.0, 1.0, n)
        .into_iter()
        .map(|x| {
            // The new grid is increasing: advance j to the interval with xp[j] <= x < xp[j+1].
            while j < last && xp[j + 1] <= x {
                j += 1;
            }
            if j == last || xp[j] == x {
                signal[j]
            } else {
                let slope = (signal[j + 1] - signal[j]) / (xp[j + 1] - xp[j]);
                slope * (x - xp[j]) + signal[j]
            }
        })
        .collect())
}

/// The amplitude factor $1 + c\,(u - \tfrac12)$.
pub fn scale_factor(scale_coeff: f64, u: f64) -> f64 {
    1.0 + scale_coeff * (u - 0.5)
}

/// Stage 3, scale: every value times `factor` (see [`scale_factor`]).
pub fn scale(signal: &[f64], factor: f64) -> Vec<f64> {
    signal.iter().map(|v| v * factor).collect()
}

/// Stage 4, translate: circular shift to the right by `shift`, `out[i] = x[(i − k) mod n]`.
///
/// # Errors
/// `shift > signal.len()` (the package would silently not shift).
pub fn translate(signal: &[f64], shift: usize) -> Result<Vec<f64>> {
    let n = signal.len();
    if shift > n {
        return Err(Error::invalid(
            "shift",
            shift,
            format!("must be at most the signal length {n}"),
        ));
    }
    let mut out = Vec::with_capacity(n);
    out.extend_from_slice(&signal[n - shift..]);
    out.extend_from_slice(&signal[..n - shift]);
    Ok(out)
}

/// The normalised Gaussian kernel of `scipy.ndimage.gaussian_filter1d`: weights
/// $e^{-x^2/(2\sigma^2)}$ for $x = -r..=r$, $r = \lfloor \text{truncate}\cdot\sigma + \tfrac12\rfloor$,
/// divided by their sum; returns the weights for $x = 0..=r$ (it is symmetric).
fn gaussian_half_kernel(sigma: f64, truncate: f64) -> Vec<f64> {
    let radius = (truncate * sigma + 0.5).floor() as usize;
    let full: Vec<f64> = (0..=2 * radius)
        .map(|i| {
            let x = i as f64 - radius as f64;
            (-0.5 / (sigma * sigma) * x * x).exp()
        })
        .collect();
    let sum: f64 = full.iter().sum();
    full[radius..].iter().map(|w| w / sum).collect()
}

/// `scipy.ndimage.gaussian_filter` of a 1-D signal with its defaults (`mode="reflect"`,
/// `truncate = 4`): correlation with the normalised Gaussian of radius
/// $\lfloor 4\sigma + \tfrac12\rfloor$, the signal extended by half-sample symmetric
/// reflection (`d c b a | a b c d | d c b a`), repeated as often as the radius needs (period
/// $2n$), so signals shorter than the kernel work as in scipy. `sigma == 0` returns the
/// signal unchanged (scipy skips axes with $\sigma \le 10^{-15}$).
///
/// # Errors
/// `sigma` negative or non-finite, or above 1000.
pub fn gaussian_filter1d(signal: &[f64], sigma: f64) -> Result<Vec<f64>> {
    if !(sigma.is_finite() && (0.0..=1000.0).contains(&sigma)) {
        return Err(Error::invalid("sigma", sigma, "must lie in [0, 1000]"));
    }
    let n = signal.len();
    if sigma <= 1e-15 || n == 0 {
        return Ok(signal.to_vec());
    }
    let weights = gaussian_half_kernel(sigma, MNIST1D_TRUNCATE);
    let period = 2 * n as i64;
    let at = |i: i64| -> f64 {
        let m = i.rem_euclid(period);
        let m = if m >= n as i64 { period - 1 - m } else { m };
        signal[m as usize]
    };
    Ok((0..n as i64)
        .map(|i| {
            // scipy's symmetric-kernel loop: centre first, then pairs from the outside in.
            let mut acc = signal[i as usize] * weights[0];
            for j in (1..weights.len()).rev() {
                acc += (at(i - j as i64) + at(i + j as i64)) * weights[j];
            }
            acc
        })
        .collect())
}

/// The correlated noise: `gaussian_filter1d(scale · white, sigma)`.
///
/// # Errors
/// Non-finite `white` or `scale`, or a bad `sigma`.
pub fn correlated_noise(white: &[f64], scale: f64, sigma: f64) -> Result<Vec<f64>> {
    check_finite("white_corr", white)?;
    if !scale.is_finite() {
        return Err(Error::invalid("corr_noise_scale", scale, "must be finite"));
    }
    let scaled: Vec<f64> = white.iter().map(|w| scale * w).collect();
    gaussian_filter1d(&scaled, sigma)
}

/// Stage 5: where the signal is exactly zero (the padding) put `noise`; keep it elsewhere.
///
/// # Errors
/// `noise` not of the signal's length.
pub fn fill_padding(signal: &[f64], noise: &[f64]) -> Result<Vec<f64>> {
    check_same_len("noise", noise.len(), signal.len())?;
    Ok(signal
        .iter()
        .zip(noise)
        .map(|(&s, &z)| if s != 0.0 { s } else { z })
        .collect())
}

/// Stage 6: add `scale · white` everywhere.
///
/// # Errors
/// `white` not of the signal's length or not finite.
pub fn add_iid_noise(signal: &[f64], white: &[f64], scale: f64) -> Result<Vec<f64>> {
    check_same_len("white_iid", white.len(), signal.len())?;
    check_finite("white_iid", white)?;
    Ok(signal
        .iter()
        .zip(white)
        .map(|(&s, &w)| s + scale * w)
        .collect())
}

/// Stage 7, shear: subtract $s\,(u - \tfrac12)\cdot\mathrm{linspace}(-\tfrac12, \tfrac12, n)$, a
/// random linear trend.
///
/// # Errors
/// `u` outside $[0, 1)$.
pub fn shear(signal: &[f64], shear_scale: f64, u: f64) -> Result<Vec<f64>> {
    check_uniform("u_shear", u)?;
    let coeff = shear_scale * (u - 0.5);
    Ok(signal
        .iter()
        .zip(linspace(-0.5, 0.5, signal.len()))
        .map(|(&s, t)| s - coeff * t)
        .collect())
}

/// Every stage's output for one example (what [`transform_stages`] returns).
#[derive(Debug, Clone, PartialEq)]
pub struct Stages {
    /// After [`pad`] (length `12 + p`).
    pub padded: Vec<f64>,
    /// After dilation ([`interpolate`] to the dilated length).
    pub dilated: Vec<f64>,
    /// After [`scale`].
    pub scaled: Vec<f64>,
    /// After [`translate`].
    pub shifted: Vec<f64>,
    /// The correlated noise ([`correlated_noise`]) over the whole dilated length.
    pub corr_noise: Vec<f64>,
    /// After [`fill_padding`] with the correlated noise.
    pub with_corr: Vec<f64>,
    /// After [`add_iid_noise`].
    pub with_iid: Vec<f64>,
    /// After [`shear`].
    pub sheared: Vec<f64>,
    /// After the final [`interpolate`] to `final_seq_length` points.
    pub output: Vec<f64>,
}

/// The whole per-example pipeline on `template` with explicit draws, keeping every stage
/// (the package's `transform`, before the data set's global standardisation).
///
/// # Errors
/// A bad config, draws that do not fit it, or a template of fewer than 2 points.
pub fn transform_stages(
    template: &[f64],
    draws: &ExampleDraws,
    config: &Mnist1dConfig,
) -> Result<Stages> {
    config.validate()?;
    draws.check(config)?;
    check_finite("template", template)?;
    let (lo, hi) = config.padding;
    let padded = pad(template, padding_from_uniform(draws.u_pad, lo, hi)?);
    let dilated = interpolate(&padded, config.dilated_len())?;
    let scaled = scale(&dilated, scale_factor(config.scale_coeff, draws.u_scale));
    let shifted = translate(&scaled, draws.shift)?;
    let corr_noise = correlated_noise(
        &draws.white_corr,
        config.corr_noise_scale,
        config.corr_noise_sigma,
    )?;
    let with_corr = fill_padding(&shifted, &corr_noise)?;
    let with_iid = add_iid_noise(&with_corr, &draws.white_iid, config.iid_noise_scale)?;
    let sheared = shear(&with_iid, config.shear_scale, draws.u_shear)?;
    let output = interpolate(&sheared, config.final_seq_length)?;
    Ok(Stages {
        padded,
        dilated,
        scaled,
        shifted,
        corr_noise,
        with_corr,
        with_iid,
        sheared,
        output,
    })
}

/// The per-example pipeline's output only, `final_seq_length` values (see
/// [`transform_stages`]).
///
/// # Errors
/// As [`transform_stages`].
pub fn transform(
    template: &[f64],
    draws: &ExampleDraws,
    config: &Mnist1dConfig,
) -> Result<Vec<f64>> {
    Ok(transform_stages(template, draws, config)?.output)
}

/// One split of MNIST-1D: examples as rows and their labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Mnist1dSplit {
    /// `(n_items, final_seq_length)`, standardised with the whole set's mean and std.
    pub x: Array2<f32>,
    /// The digit of each row, `0..=9`.
    pub labels: Vec<usize>,
}

impl Mnist1dSplit {
    /// Number of examples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no examples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Number of classes (10).
    pub fn n_classes(&self) -> usize {
        MNIST1D_CLASSES
    }

    /// Examples per class.
    ///
    /// # Errors
    /// Only for an empty split.
    pub fn class_counts(&self) -> Result<Vec<usize>> {
        class_counts(&self.labels, MNIST1D_CLASSES)
    }

    /// The examples at `indices`, in that order.
    ///
    /// # Errors
    /// An index `>= len()`.
    pub fn subset(&self, indices: &[usize]) -> Result<Self> {
        if let Some(&bad) = indices.iter().find(|&&i| i >= self.len()) {
            return Err(Error::invalid(
                "indices",
                bad,
                format!("index out of range for a split of {} examples", self.len()),
            ));
        }
        Ok(Self {
            x: self.x.select(Axis(0), indices),
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
        })
    }
}

/// A generated MNIST-1D data set.
#[derive(Debug, Clone, PartialEq)]
pub struct Mnist1dData {
    /// The first $\lfloor n \cdot \text{train\\_split}\rfloor$ shuffled examples.
    pub train: Mnist1dSplit,
    /// The rest.
    pub test: Mnist1dSplit,
    /// Mean of all raw values (train and test) that was subtracted.
    pub raw_mean: f64,
    /// Population standard deviation of all raw values that they were divided by.
    pub raw_std: f64,
}

/// The MNIST-1D generator (Greydanus 2020).
#[derive(Debug, Clone, Copy)]
pub struct Mnist1d;

impl Mnist1d {
    /// Generates the data set: example $i$ has label $i \bmod 10$ and its own ChaCha8 stream
    /// seeded with $\mathrm{SplitMix64}(\text{seed}, i)$ (so it does not depend on the
    /// thread count); the examples are shuffled with a stream of their own, optionally their
    /// positions too (`shuffle_seq`), the whole set is standardised to mean 0 and standard
    /// deviation 1 (as the package does, over train and test together) and split.
    ///
    /// # Errors
    /// A bad config (checked before anything is allocated).
    pub fn generate(config: &Mnist1dConfig) -> Result<Mnist1dData> {
        use rayon::prelude::*;
        config.validate()?;
        let templates = templates();
        let raw: Vec<Vec<f64>> = (0..config.num_samples)
            .into_par_iter()
            .map(|i| {
                let mut rng = ChaCha8Rng::seed_from_u64(mix_seed(config.seed, i as u64));
                let draws = ExampleDraws::sample(&mut rng, config)?;
                let label = i % MNIST1D_CLASSES;
                transform(
                    templates.row(label).as_slice().expect("standard layout"),
                    &draws,
                    config,
                )
            })
            .collect::<Result<_>>()?;
        let labels: Vec<usize> = (0..config.num_samples)
            .map(|i| i % MNIST1D_CLASSES)
            .collect();
        let mut permutation: Vec<usize> = (0..config.num_samples).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(mix_seed(config.seed, u64::MAX));
        permutation.shuffle(&mut rng);
        let positions = config.shuffle_seq.then(|| {
            let mut positions: Vec<usize> = (0..config.final_seq_length).collect();
            let mut rng = ChaCha8Rng::seed_from_u64(mix_seed(config.seed, u64::MAX - 1));
            positions.shuffle(&mut rng);
            positions
        });
        assemble(config, &raw, &labels, &permutation, positions.as_deref())
    }

    /// Builds the data set from explicit per-example draws and a batch permutation, exactly as
    /// the package's `make_dataset` does after drawing: transform each `(label, draws)`,
    /// reorder by `permutation` (row $r$ is example `permutation[r]`), standardise globally,
    /// split. With the package's recorded draws this reproduces its data set
    /// (`tests/mnist1d.rs`).
    ///
    /// # Errors
    /// A bad config, `examples.len() != num_samples`, a label `>= 10`, draws that do not fit
    /// the config, or a `permutation` that is not one of `0..num_samples`.
    pub fn from_draws(
        config: &Mnist1dConfig,
        examples: &[(usize, ExampleDraws)],
        permutation: &[usize],
    ) -> Result<Mnist1dData> {
        config.validate()?;
        if examples.len() != config.num_samples {
            return Err(Error::invalid(
                "examples",
                format!("{} examples", examples.len()),
                format!("must hold num_samples = {}", config.num_samples),
            ));
        }
        let templates = templates();
        let mut labels = Vec::with_capacity(examples.len());
        let mut raw = Vec::with_capacity(examples.len());
        for (label, draws) in examples {
            if *label >= MNIST1D_CLASSES {
                return Err(Error::invalid("label", label, "must be < 10"));
            }
            labels.push(*label);
            raw.push(transform(
                templates.row(*label).as_slice().expect("standard layout"),
                draws,
                config,
            )?);
        }
        assemble(config, &raw, &labels, permutation, None)
    }
}

fn check_permutation(name: &'static str, permutation: &[usize], n: usize) -> Result<()> {
    let mut seen = vec![false; n];
    if permutation.len() != n {
        return Err(Error::invalid(
            name,
            format!("{} entries", permutation.len()),
            format!("must be a permutation of 0..{n}"),
        ));
    }
    for &p in permutation {
        if p >= n || std::mem::replace(&mut seen[p], true) {
            return Err(Error::invalid(
                name,
                p,
                format!("out of range or repeated: must be a permutation of 0..{n}"),
            ));
        }
    }
    Ok(())
}

fn assemble(
    config: &Mnist1dConfig,
    raw: &[Vec<f64>],
    labels: &[usize],
    permutation: &[usize],
    positions: Option<&[usize]>,
) -> Result<Mnist1dData> {
    let n = raw.len();
    let len = config.final_seq_length;
    check_permutation("permutation", permutation, n)?;
    if let Some(positions) = positions {
        check_permutation("positions", positions, len)?;
    }
    // Global standardisation in f64, two passes as numpy's mean and std.
    let count = (n * len) as f64;
    let mean = raw.iter().flatten().sum::<f64>() / count;
    let var = raw
        .iter()
        .flatten()
        .map(|v| (v - mean) * (v - mean))
        .sum::<f64>()
        / count;
    let std = var.sqrt();
    if !(std.is_finite() && std > 0.0) {
        return Err(Error::invalid(
            "raw_std",
            std,
            "the generated values have no spread (or are not finite): cannot standardise",
        ));
    }
    let n_train = config.n_train();
    let build = |rows: &[usize]| -> Mnist1dSplit {
        let x = Array2::from_shape_fn((rows.len(), len), |(r, t)| {
            let source = positions.map_or(t, |p| p[t]);
            ((raw[rows[r]][source] - mean) / std) as f32
        });
        Mnist1dSplit {
            x,
            labels: rows.iter().map(|&i| labels[i]).collect(),
        }
    };
    Ok(Mnist1dData {
        train: build(&permutation[..n_train]),
        test: build(&permutation[n_train..]),
        raw_mean: mean,
        raw_std: std,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;

    #[test]
    fn templates_start_and_end_at_zero_with_unit_spread() {
        let t = templates();
        for row in t.outer_iter() {
            assert_eq!(row[0], 0.0);
            assert_abs_diff_eq!(row[11], 0.0, epsilon = 1e-15);
            let mean = row.sum() / 12.0;
            let std = (row.mapv(|v| (v - mean) * (v - mean)).sum() / 12.0).sqrt();
            assert_abs_diff_eq!(std, 1.0 / 6.0, epsilon = 1e-12);
        }
    }

    #[test]
    fn interpolation_keeps_zero_runs_and_end_points() {
        let x = [1.0, 2.0, 0.0, 0.0, 0.0];
        let y = interpolate(&x, 13).unwrap();
        assert_eq!(y[0], 1.0);
        assert_eq!(y[12], 0.0);
        // Points beyond x = 0.5 lie between zeros.
        for (i, v) in y.iter().enumerate().filter(|(i, _)| *i >= 7) {
            assert_eq!(*v, 0.0, "point {i}");
        }
        assert!(interpolate(&[1.0], 3).is_err());
        assert!(interpolate(&x, 0).is_err());
    }

    #[test]
    fn translate_is_a_circular_shift() {
        let x = [0.0, 1.0, 2.0, 3.0];
        assert_eq!(translate(&x, 0).unwrap(), x);
        assert_eq!(translate(&x, 1).unwrap(), [3.0, 0.0, 1.0, 2.0]);
        assert_eq!(translate(&x, 4).unwrap(), x);
        assert!(translate(&x, 5).is_err());
    }

    #[test]
    fn gaussian_filter_preserves_constants_and_mass() {
        let ones = vec![1.0; 7];
        for sigma in [0.0, 0.5, 2.0, 9.0] {
            for v in gaussian_filter1d(&ones, sigma).unwrap() {
                assert_abs_diff_eq!(v, 1.0, epsilon = 1e-14);
            }
        }
        assert!(gaussian_filter1d(&ones, -1.0).is_err());
        assert!(gaussian_filter1d(&ones, f64::NAN).is_err());
    }

    #[test]
    fn padding_draw_covers_the_range() {
        assert_eq!(padding_from_uniform(0.0, 36, 60).unwrap(), 36);
        assert_eq!(padding_from_uniform(0.999_999, 36, 60).unwrap(), 60);
        assert!(padding_from_uniform(1.0, 36, 60).is_err());
        assert!(padding_from_uniform(0.5, 60, 36).is_err());
    }
}
