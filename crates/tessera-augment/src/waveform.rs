//! Waveform augmentations: occlusion, speed perturbation (SSLH), additive noise at a target
//! SNR and gain. Each works on one mono waveform `(samples,)`.

use ndarray::{Array1, ArrayView1, Axis, Slice};
use rand::Rng;
use rand_distr::StandardNormal;
use tessera_core::RejectInput;

use crate::check;
use crate::region::random_extent;
use crate::{Error, Float, Result};

/// Fills a random segment whose length is a fraction in `[low, high]` of the waveform.
///
/// The length is a uniform integer in `[⌈low·n⌉, ⌊high·n⌋]`; the start is uniform over every
/// position where the segment fits (SSLH never lets it touch the last sample, an off-by-one
/// not reproduced here).
#[derive(Debug, Clone, PartialEq)]
pub struct Occlusion {
    scales: (f64, f64),
    fill_value: f64,
}

impl Occlusion {
    /// Checks `0 ≤ low ≤ high ≤ 1` and a finite fill value (SSLH: 0).
    pub fn new(scales: (f64, f64), fill_value: f64) -> Result<Self> {
        check::range("scales", scales, 0.0, 1.0)?;
        check::finite_scalar("fill_value", fill_value)?;
        Ok(Occlusion { scales, fill_value })
    }

    /// SSLH weak pool: up to a quarter of the clip.
    pub fn sslh_weak() -> Self {
        Occlusion {
            scales: (0.0, 0.25),
            fill_value: 0.0,
        }
    }

    /// SSLH strong pool: up to three quarters of the clip.
    pub fn sslh_strong() -> Self {
        Occlusion {
            scales: (0.0, 0.75),
            fill_value: 0.0,
        }
    }

    /// The length fraction range.
    pub fn scales(&self) -> (f64, f64) {
        self.scales
    }

    /// Occludes one waveform; returns it with the occluded sample range.
    pub fn apply<F: Float, R: Rng + ?Sized>(
        &self,
        waveform: ArrayView1<F>,
        rng: &mut R,
    ) -> Result<(Array1<F>, std::ops::Range<usize>)> {
        check_waveform(&waveform)?;
        let segment = random_extent(waveform.len(), self.scales, rng);
        let mut out = waveform.to_owned();
        out.slice_axis_mut(Axis(0), Slice::from(segment.clone()))
            .fill(F::from_f64_rounded(self.fill_value));
        Ok((out, segment))
    }
}

/// Where the resampled signal sits inside the original length when padding or cropping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Keep the start.
    Left,
    /// Centre (the extra sample, if any, goes to the right).
    Centre,
    /// Keep the end.
    Right,
    /// Uniform offset (SSLH).
    Random,
}

/// Speed perturbation ("ResamplePadCrop" in SSLH): draw a rate $r \sim U(a, b)$, stretch the
/// waveform to $\lceil r n \rceil$ samples by nearest-index resampling
/// (`x'[j] = x[min(round(j / r), n − 1)]`, round half to even like `torch.round`), then pad
/// with `fill_value` or crop back to `n` samples at the [`Align`] position.
#[derive(Debug, Clone, PartialEq)]
pub struct SpeedPerturbation {
    rates: (f64, f64),
    align: Align,
    fill_value: f64,
}

impl SpeedPerturbation {
    /// Checks `0 < low ≤ high ≤ MAX_SPEED_RATE` and a finite fill value.
    pub fn new(rates: (f64, f64), align: Align, fill_value: f64) -> Result<Self> {
        check::range("rates", rates, 0.0, MAX_SPEED_RATE)?;
        if rates.0 <= 0.0 {
            return Err(Error::invalid(
                "rates",
                format!("({}, {})", rates.0, rates.1),
                "rates must be > 0",
            ));
        }
        check::finite_scalar("fill_value", fill_value)?;
        Ok(SpeedPerturbation {
            rates,
            align,
            fill_value,
        })
    }

    /// SSLH weak pool: $r \sim U(0.5, 1.5)$, random alignment.
    pub fn sslh_weak() -> Self {
        SpeedPerturbation {
            rates: (0.5, 1.5),
            align: Align::Random,
            fill_value: 0.0,
        }
    }

    /// SSLH strong pool: $r \sim U(0.25, 1.75)$, random alignment.
    pub fn sslh_strong() -> Self {
        SpeedPerturbation {
            rates: (0.25, 1.75),
            align: Align::Random,
            fill_value: 0.0,
        }
    }

    /// The rate range.
    pub fn rates(&self) -> (f64, f64) {
        self.rates
    }

    /// Perturbs one waveform with a random rate; returns it with the rate used.
    pub fn apply<F: Float, R: Rng + ?Sized>(
        &self,
        waveform: ArrayView1<F>,
        rng: &mut R,
    ) -> Result<(Array1<F>, f64)> {
        check_waveform(&waveform)?;
        let rate = rng.random_range(self.rates.0..=self.rates.1);
        let stretched = resample_nearest(waveform, rate)?;
        Ok((self.fit_length(stretched.view(), waveform.len(), rng), rate))
    }

    /// Stretches by exactly `rate` (in `(0, MAX_SPEED_RATE]`), then pads/crops (random
    /// alignment draws from `rng`).
    pub fn apply_rate<F: Float, R: Rng + ?Sized>(
        &self,
        waveform: ArrayView1<F>,
        rate: f64,
        rng: &mut R,
    ) -> Result<Array1<F>> {
        check_waveform(&waveform)?;
        let stretched = resample_nearest(waveform, rate)?;
        Ok(self.fit_length(stretched.view(), waveform.len(), rng))
    }

    fn fit_length<F: Float, R: Rng + ?Sized>(
        &self,
        stretched: ArrayView1<F>,
        target: usize,
        rng: &mut R,
    ) -> Array1<F> {
        let m = stretched.len();
        let slack = m.abs_diff(target);
        let offset = match self.align {
            Align::Left => 0,
            Align::Centre => slack / 2,
            Align::Right => slack,
            Align::Random => rng.random_range(0..=slack),
        };
        if m >= target {
            stretched
                .slice_axis(Axis(0), Slice::from(offset..offset + target))
                .to_owned()
        } else {
            let mut out = Array1::from_elem(target, F::from_f64_rounded(self.fill_value));
            out.slice_axis_mut(Axis(0), Slice::from(offset..offset + m))
                .assign(&stretched);
            out
        }
    }
}

/// The largest stretch rate of [`SpeedPerturbation`] and [`resample_nearest`] (16: the
/// stretched signal has at most 16 times the samples of its input; SSLH uses at most 1.75).
pub const MAX_SPEED_RATE: f64 = 16.0;

/// Nearest-index resampling to `⌈rate·n⌉` samples: `x'[j] = x[min(round(j/rate), n − 1)]`.
///
/// # Errors
/// `rate` outside `(0, MAX_SPEED_RATE]` (or NaN).
pub fn resample_nearest<F: Float>(waveform: ArrayView1<F>, rate: f64) -> Result<Array1<F>> {
    if !(rate > 0.0 && rate <= MAX_SPEED_RATE) {
        return Err(Error::invalid(
            "rate",
            rate,
            format!("must lie in (0, {MAX_SPEED_RATE}]"),
        ));
    }
    let n = waveform.len();
    if n == 0 {
        return Ok(Array1::zeros(0));
    }
    let step = 1.0 / rate;
    // torch.arange(0, n, step) has ⌈n / step⌉ elements.
    let m = ((n as f64) / step).ceil().max(1.0) as usize;
    Ok(Array1::from_shape_fn(m, |j| {
        let source = (j as f64 * step).round_ties_even() as usize;
        waveform[source.min(n - 1)]
    }))
}

/// Adds white Gaussian noise scaled so that $10 \log_{10}(P_x / P_n)$ equals an SNR drawn
/// uniformly from `snr_db` (exactly, using the drawn noise's own power). A silent waveform
/// has no power to compare with and is returned unchanged.
#[derive(Debug, Clone, PartialEq)]
pub struct AdditiveNoise {
    snr_db: (f64, f64),
}

impl AdditiveNoise {
    /// Checks a range `-MAX_SNR_DB ≤ low ≤ high ≤ MAX_SNR_DB` (dB, may be negative).
    pub fn new(snr_db: (f64, f64)) -> Result<Self> {
        check::range("snr_db", snr_db, -MAX_SNR_DB, MAX_SNR_DB)?;
        Ok(AdditiveNoise { snr_db })
    }

    /// Adds noise at a random SNR; returns the noisy waveform and the SNR used.
    pub fn apply<F: Float, R: Rng + ?Sized>(
        &self,
        waveform: ArrayView1<F>,
        rng: &mut R,
    ) -> Result<(Array1<F>, f64)> {
        let snr = rng.random_range(self.snr_db.0..=self.snr_db.1);
        Ok((add_noise_at_snr(waveform, snr, rng)?, snr))
    }
}

/// Adds white Gaussian noise at exactly `snr_db` (see [`AdditiveNoise`]).
pub fn add_noise_at_snr<F: Float, R: Rng + ?Sized>(
    waveform: ArrayView1<F>,
    snr_db: f64,
    rng: &mut R,
) -> Result<Array1<F>> {
    check_waveform(&waveform)?;
    check::range("snr_db", (snr_db, snr_db), -MAX_SNR_DB, MAX_SNR_DB)?;
    let n = waveform.len() as f64;
    let signal_power = waveform
        .iter()
        .map(|v| v.to_f64_exact().powi(2))
        .sum::<f64>()
        / n;
    if !signal_power.is_finite() {
        return Err(
            tessera_core::check::overflowed("waveform", &waveform, "the signal power").into(),
        );
    }
    let noise: Vec<f64> = (0..waveform.len())
        .map(|_| rng.sample::<f64, _>(StandardNormal))
        .collect();
    let noise_power = noise.iter().map(|v| v * v).sum::<f64>() / n;
    if signal_power == 0.0 || noise_power == 0.0 {
        return Ok(waveform.to_owned());
    }
    let scale = (signal_power / (noise_power * 10f64.powf(snr_db / 10.0))).sqrt();
    let noisy = Array1::from_iter(
        waveform
            .iter()
            .zip(&noise)
            .map(|(&x, &e)| x + F::from_f64_rounded(scale * e)),
    );
    check_output("snr_db", snr_db, &noisy)?;
    Ok(noisy)
}

/// The widest accepted SNR range of [`AdditiveNoise`] and [`add_noise_at_snr`], in dB.
pub const MAX_SNR_DB: f64 = 300.0;

/// The widest accepted gain range of [`Gain`], in dB (a factor of 10^±10).
pub const MAX_GAIN_DB: f64 = 200.0;

/// A result that overflowed the float type is an error naming the parameter that caused it.
fn check_output<F: Float>(name: &'static str, value: f64, out: &Array1<F>) -> Result<()> {
    if let Some(v) = out.iter().find(|v| !v.is_finite()) {
        return Err(Error::invalid(
            name,
            value,
            format!(
                "the result overflows {} (a sample became {v}); use a smaller {name}",
                std::any::type_name::<F>()
            ),
        ));
    }
    Ok(())
}

/// Multiplies by $10^{g/20}$ with a gain $g$ drawn uniformly from `gain_db`.
#[derive(Debug, Clone, PartialEq)]
pub struct Gain {
    gain_db: (f64, f64),
}

impl Gain {
    /// Checks a range `-MAX_GAIN_DB ≤ low ≤ high ≤ MAX_GAIN_DB` (dB).
    pub fn new(gain_db: (f64, f64)) -> Result<Self> {
        check::range("gain_db", gain_db, -MAX_GAIN_DB, MAX_GAIN_DB)?;
        Ok(Gain { gain_db })
    }

    /// Applies a random gain; returns the waveform and the gain in dB.
    pub fn apply<F: Float, R: Rng + ?Sized>(
        &self,
        waveform: ArrayView1<F>,
        rng: &mut R,
    ) -> Result<(Array1<F>, f64)> {
        check_waveform(&waveform)?;
        let gain = rng.random_range(self.gain_db.0..=self.gain_db.1);
        let factor = F::from_f64_rounded(10f64.powf(gain / 20.0));
        let out = waveform.mapv(|v| v * factor);
        check_output("gain_db", gain, &out)?;
        Ok((out, gain))
    }
}

fn check_waveform<F: Float>(waveform: &ArrayView1<F>) -> Result<()> {
    if waveform.is_empty() {
        return Err(Error::shape(
            "waveform",
            "at least one sample",
            waveform.shape(),
        ));
    }
    Ok(check::finite("waveform", waveform)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn nearest_resampling_matches_torch_indexing() {
        let x = Array1::<f64>::from_iter((0..6).map(|v| v as f64));
        // rate 2: arange(0, 6, 0.5) -> 12 indices, rounded half-to-even.
        let y = resample_nearest(x.view(), 2.0).unwrap();
        assert_eq!(
            y.to_vec(),
            vec![0.0, 0.0, 1.0, 2.0, 2.0, 2.0, 3.0, 4.0, 4.0, 4.0, 5.0, 5.0]
        );
        // rate 0.5: indices 0, 2, 4.
        assert_eq!(
            resample_nearest(x.view(), 0.5).unwrap().to_vec(),
            vec![0.0, 2.0, 4.0]
        );
    }

    #[test]
    fn speed_perturbation_keeps_length() {
        let x = Array1::<f32>::from_iter((0..100).map(|v| v as f32 + 1.0));
        let sp = SpeedPerturbation::sslh_strong();
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        for _ in 0..20 {
            let (y, rate) = sp.apply(x.view(), &mut rng).unwrap();
            assert_eq!(y.len(), 100);
            assert!((0.25..=1.75).contains(&rate));
            let non_zero = y.iter().filter(|&&v| v != 0.0).count();
            assert_eq!(non_zero, ((100.0 * rate).ceil() as usize).min(100));
        }
        let left = SpeedPerturbation::new((1.0, 1.0), Align::Left, 0.0).unwrap();
        assert_eq!(left.apply(x.view(), &mut rng).unwrap().0, x);
        assert!(SpeedPerturbation::new((0.0, 1.0), Align::Left, 0.0).is_err());
    }

    #[test]
    fn noise_hits_the_target_snr() {
        let x = Array1::<f64>::from_shape_fn(4000, |i| (i as f64 * 0.05).sin());
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let y = add_noise_at_snr(x.view(), 10.0, &mut rng).unwrap();
        let noise_power = (&y - &x).mapv(|v| v * v).sum();
        let signal_power = x.mapv(|v| v * v).sum();
        assert_abs_diff_eq!(
            10.0 * (signal_power / noise_power).log10(),
            10.0,
            epsilon = 1e-9
        );
        let silent = Array1::<f64>::zeros(10);
        assert_eq!(
            add_noise_at_snr(silent.view(), 10.0, &mut rng).unwrap(),
            silent
        );
    }

    #[test]
    fn occlusion_and_gain() {
        let x = Array1::<f64>::ones(200);
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        let (y, seg) = Occlusion::sslh_strong().apply(x.view(), &mut rng).unwrap();
        assert_eq!(y.iter().filter(|&&v| v == 0.0).count(), seg.len());
        assert!(seg.len() <= 150);
        let (g, db) = Gain::new((-6.0, 6.0))
            .unwrap()
            .apply(x.view(), &mut rng)
            .unwrap();
        assert_abs_diff_eq!(g[0], 10f64.powf(db / 20.0), epsilon = 1e-12);
        assert!(Occlusion::new((0.0, 1.2), 0.0).is_err());
        let empty = Array1::<f64>::zeros(0);
        assert!(Occlusion::sslh_weak()
            .apply(empty.view(), &mut rng)
            .is_err());
    }
}
