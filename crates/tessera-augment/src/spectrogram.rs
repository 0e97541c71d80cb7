//! Spectrogram augmentations: CutOutSpec (SSLH), SpecAugment time/frequency masks
//! (Park et al., 2019) and time shift.
//!
//! A spectrogram is laid out `(..., freq, time)`: frequency on the second-to-last axis, time
//! frames on the last.

use std::ops::Range;
use tessera_core::RejectInput;

use ndarray::{Array, Array3, ArrayView, ArrayView3, ArrayViewMutD, Axis, Dimension, Slice, Zip};
use rand::Rng;

use crate::check;
use crate::region::random_extent;
use crate::{Error, Float, Result};

/// CutOut for spectrograms: fills one random time × frequency box with a constant.
///
/// Box sides are uniform integers in `[⌈low·n⌉, ⌊high·n⌋]` of each axis (so a box never
/// exceeds its requested fraction), positions uniform where the box fits. SSLH draws the side
/// from `[⌈low·n⌉, ⌈high·n⌉)`, which differs by at most one cell.
#[derive(Debug, Clone, PartialEq)]
pub struct CutOutSpec {
    freq_scales: (f64, f64),
    time_scales: (f64, f64),
    fill_value: f64,
}

/// A time × frequency box.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecBox {
    /// Frequency bins covered.
    pub freq: Range<usize>,
    /// Time frames covered.
    pub time: Range<usize>,
}

impl CutOutSpec {
    /// The fill value of SSLH: −80 dB, the floor of a `top_db = 80` log-mel.
    pub const DEFAULT_FILL_DB: f64 = -80.0;

    /// Checks `0 ≤ low ≤ high ≤ 1` for both size fraction ranges and a finite fill value.
    pub fn new(freq_scales: (f64, f64), time_scales: (f64, f64), fill_value: f64) -> Result<Self> {
        check::range("freq_scales", freq_scales, 0.0, 1.0)?;
        check::range("time_scales", time_scales, 0.0, 1.0)?;
        check::finite_scalar("fill_value", fill_value)?;
        Ok(CutOutSpec {
            freq_scales,
            time_scales,
            fill_value,
        })
    }

    /// SSLH weak pool: sides in `[0.1, 0.5]` of each axis, fill −80 dB.
    pub fn sslh_weak() -> Self {
        CutOutSpec {
            freq_scales: (0.1, 0.5),
            time_scales: (0.1, 0.5),
            fill_value: Self::DEFAULT_FILL_DB,
        }
    }

    /// SSLH strong pool: sides in `[0.5, 1]` of each axis, fill −80 dB.
    pub fn sslh_strong() -> Self {
        CutOutSpec {
            freq_scales: (0.5, 1.0),
            time_scales: (0.5, 1.0),
            fill_value: Self::DEFAULT_FILL_DB,
        }
    }

    /// Frequency side fraction range.
    pub fn freq_scales(&self) -> (f64, f64) {
        self.freq_scales
    }

    /// Time side fraction range.
    pub fn time_scales(&self) -> (f64, f64) {
        self.time_scales
    }

    /// The fill value.
    pub fn fill_value(&self) -> f64 {
        self.fill_value
    }

    /// Samples a box for an `n_freq × n_time` spectrogram (frequency first, then time).
    pub fn sample_box<R: Rng + ?Sized>(
        &self,
        n_freq: usize,
        n_time: usize,
        rng: &mut R,
    ) -> SpecBox {
        let freq = random_extent(n_freq, self.freq_scales, rng);
        let time = random_extent(n_time, self.time_scales, rng);
        SpecBox { freq, time }
    }

    /// One spectrogram `(..., freq, time)` (rank ≥ 2): one box shared by the leading axes
    /// (e.g. channels).
    pub fn apply<F: Float, D: Dimension, R: Rng + ?Sized>(
        &self,
        spectrogram: ArrayView<F, D>,
        rng: &mut R,
    ) -> Result<Array<F, D>> {
        let (n_freq, n_time) = spec_axes("spectrogram", spectrogram.shape(), 2)?;
        check::finite("spectrogram", &spectrogram)?;
        let region = self.sample_box(n_freq, n_time, rng);
        let mut out = spectrogram.to_owned();
        fill_box(
            out.view_mut().into_dyn(),
            &region,
            F::from_f64_rounded(self.fill_value),
        );
        Ok(out)
    }

    /// A batch `(batch, ..., freq, time)` (rank ≥ 3): an independent box per item.
    /// Boxes are drawn in item order, then filled in parallel.
    pub fn apply_batch<F: Float, D: Dimension, R: Rng + ?Sized>(
        &self,
        spectrograms: ArrayView<F, D>,
        rng: &mut R,
    ) -> Result<Array<F, D>> {
        let (n_freq, n_time) = spec_axes("spectrograms", spectrograms.shape(), 3)?;
        let batch = check::non_empty_batch("spectrograms", spectrograms.shape())?;
        check::finite("spectrograms", &spectrograms)?;
        let boxes: Vec<SpecBox> = (0..batch)
            .map(|_| self.sample_box(n_freq, n_time, rng))
            .collect();
        let mut out = spectrograms.to_owned();
        let fill = F::from_f64_rounded(self.fill_value);
        let mut dynamic = out.view_mut().into_dyn();
        Zip::from(dynamic.axis_iter_mut(Axis(0)))
            .and(&ndarray::ArrayView1::from(&boxes[..]))
            .par_for_each(|item, region| fill_box(item, region, fill));
        Ok(out)
    }
}

/// Checks rank and returns `(n_freq, n_time)`.
fn spec_axes(name: &'static str, shape: &[usize], min_rank: usize) -> Result<(usize, usize)> {
    if shape.len() < min_rank {
        let expected = if min_rank == 2 {
            "rank >= 2: (..., freq, time)"
        } else {
            "rank >= 3: (batch, ..., freq, time)"
        };
        return Err(Error::shape(name, expected, shape));
    }
    let (n_freq, n_time) = (shape[shape.len() - 2], shape[shape.len() - 1]);
    if n_freq == 0 || n_time == 0 {
        return Err(Error::shape(name, "non-empty freq and time axes", shape));
    }
    Ok((n_freq, n_time))
}

fn fill_box<F: Float>(item: ArrayViewMutD<F>, region: &SpecBox, fill: F) {
    crate::region::last_two_axes_mut(item, region.freq.clone(), region.time.clone()).fill(fill);
}

/// SpecAugment masking (Park et al., 2019): `n_time_masks` time masks of width
/// $w \sim U\{0, \dots, W_t\}$ and `n_freq_masks` frequency masks of width
/// $f \sim U\{0, \dots, W_f\}$, drawn independently for every item.
///
/// With per-item valid lengths (the rest of the time axis is padding) every mask stays in
/// the valid frames: time masks start in `[0, len − w]` with `w ≤ len`, frequency masks only
/// fill frames `< len`. The padding is never written.
#[derive(Debug, Clone, PartialEq)]
pub struct SpecAugment {
    n_time_masks: usize,
    max_time_width: usize,
    n_freq_masks: usize,
    max_freq_width: usize,
    fill_value: f64,
}

/// The masks drawn for one item.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ItemMasks {
    /// Time frames masked, one range per time mask.
    pub time: Vec<Range<usize>>,
    /// Frequency bins masked (over the valid frames), one range per frequency mask.
    pub freq: Vec<Range<usize>>,
    /// Valid frames of this item: masks never reach past it.
    pub valid_length: usize,
}

/// The largest accepted number of time masks, and of frequency masks, of a [`SpecAugment`]
/// (1024; the paper's policies use at most a few dozen).
pub const MAX_MASKS: usize = 1 << 10;

/// The most ranges one [`SpecAugment::sample_masks`] call draws, counting one per item for its
/// [`ItemMasks`] (2²⁸), checked before anything is allocated.
pub const MAX_SAMPLED_MASKS: usize = 1 << 28;

/// The configuration of a [`SpecAugment`]. Widths are maxima in cells (frames / bins); zero
/// masks or zero width disable that kind of mask. Mask counts are at most [`MAX_MASKS`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpecAugmentConfig {
    /// Number of time masks $m_T$.
    pub n_time_masks: usize,
    /// Largest time-mask width $T$ in frames.
    pub max_time_width: usize,
    /// Number of frequency masks $m_F$.
    pub n_freq_masks: usize,
    /// Largest frequency-mask width $F$ in bins.
    pub max_freq_width: usize,
    /// The value written into masked cells (finite).
    pub fill_value: f64,
}

impl Default for SpecAugmentConfig {
    /// The SpecAugment paper's LibriSpeech-basic policy: one time mask of up to 100 frames,
    /// one frequency mask of up to 27 bins, filled with 0.
    fn default() -> Self {
        SpecAugmentConfig {
            n_time_masks: 1,
            max_time_width: 100,
            n_freq_masks: 1,
            max_freq_width: 27,
            fill_value: 0.0,
        }
    }
}

impl SpecAugment {
    /// Checks a finite fill value and mask counts of at most [`MAX_MASKS`].
    pub fn new(config: SpecAugmentConfig) -> Result<Self> {
        let SpecAugmentConfig {
            n_time_masks,
            max_time_width,
            n_freq_masks,
            max_freq_width,
            fill_value,
        } = config;
        check::finite_scalar("fill_value", fill_value)?;
        check::size_at_most("n_time_masks", n_time_masks, MAX_MASKS)?;
        check::size_at_most("n_freq_masks", n_freq_masks, MAX_MASKS)?;
        Ok(SpecAugment {
            n_time_masks,
            max_time_width,
            n_freq_masks,
            max_freq_width,
            fill_value,
        })
    }

    /// The value written into masked cells.
    pub fn fill_value(&self) -> f64 {
        self.fill_value
    }

    /// Draws the masks of a batch of `batch` items with `n_freq` bins and `n_time` frames.
    /// `valid_lengths[i]` (default: `n_time`) bounds the time extent of item `i`. At most
    /// [`MAX_SAMPLED_MASKS`] ranges in all (`batch · (1 + n_time_masks + n_freq_masks)`).
    pub fn sample_masks<R: Rng + ?Sized>(
        &self,
        batch: usize,
        n_freq: usize,
        n_time: usize,
        valid_lengths: Option<&[usize]>,
        rng: &mut R,
    ) -> Result<Vec<ItemMasks>> {
        // Both counts are at most MAX_MASKS (checked by `new`), so the sum cannot overflow.
        let per_item = 1 + self.n_time_masks + self.n_freq_masks;
        tessera_core::check::element_count("batch", &[batch, per_item], MAX_SAMPLED_MASKS)?;
        let lengths = resolve_lengths(batch, n_time, valid_lengths)?;
        Ok(lengths
            .into_iter()
            .map(|valid_length| {
                let time = (0..self.n_time_masks)
                    .map(|_| random_mask(valid_length, self.max_time_width, rng))
                    .collect();
                let freq = (0..self.n_freq_masks)
                    .map(|_| random_mask(n_freq, self.max_freq_width, rng))
                    .collect();
                ItemMasks {
                    time,
                    freq,
                    valid_length,
                }
            })
            .collect())
    }

    /// Masks a batch `(batch, freq, time)` with freshly drawn masks (see [`Self::sample_masks`]).
    pub fn apply_batch<F: Float, R: Rng + ?Sized>(
        &self,
        spectrograms: ArrayView3<F>,
        valid_lengths: Option<&[usize]>,
        rng: &mut R,
    ) -> Result<Array3<F>> {
        let (batch, n_freq, n_time) = spectrograms.dim();
        check::non_empty_batch("spectrograms", spectrograms.shape())?;
        let masks = self.sample_masks(batch, n_freq, n_time, valid_lengths, rng)?;
        self.apply_masks(spectrograms, &masks)
    }

    /// Applies given masks (one [`ItemMasks`] per item) to a batch `(batch, freq, time)`.
    pub fn apply_masks<F: Float>(
        &self,
        spectrograms: ArrayView3<F>,
        masks: &[ItemMasks],
    ) -> Result<Array3<F>> {
        let (batch, n_freq, n_time) = spectrograms.dim();
        if masks.len() != batch {
            return Err(Error::shape(
                "masks",
                format!("{batch} items (one per spectrogram)"),
                masks.len(),
            ));
        }
        check_masks(masks, n_freq, n_time)?;
        check::finite("spectrograms", &spectrograms)?;
        let fill = F::from_f64_rounded(self.fill_value);
        let mut out = spectrograms.to_owned();
        Zip::from(out.axis_iter_mut(Axis(0)))
            .and(&ndarray::ArrayView1::from(masks))
            .par_for_each(|mut item, masks| {
                for time in &masks.time {
                    item.slice_axis_mut(Axis(1), Slice::from(time.clone()))
                        .fill(fill);
                }
                for freq in &masks.freq {
                    item.slice_axis_mut(Axis(0), Slice::from(freq.clone()))
                        .slice_axis_mut(Axis(1), Slice::from(..masks.valid_length))
                        .fill(fill);
                }
            });
        Ok(out)
    }
}

/// Every mask range of every item lies within `n_freq` bins and the item's valid frames
/// (at most `n_time`).
pub(crate) fn check_masks(masks: &[ItemMasks], n_freq: usize, n_time: usize) -> Result<()> {
    for item in masks {
        let time_ok = item.valid_length <= n_time
            && item
                .time
                .iter()
                .all(|r| r.start <= r.end && r.end <= item.valid_length);
        let freq_ok = item
            .freq
            .iter()
            .all(|r| r.start <= r.end && r.end <= n_freq);
        if !(time_ok && freq_ok) {
            return Err(Error::invalid(
                "masks",
                format!("{item:?}"),
                format!("ranges must lie within {n_freq} bins and the valid frames (<= {n_time})"),
            ));
        }
    }
    Ok(())
}

fn resolve_lengths(
    batch: usize,
    n_time: usize,
    valid_lengths: Option<&[usize]>,
) -> Result<Vec<usize>> {
    match valid_lengths {
        None => Ok(vec![n_time; batch]),
        Some(lengths) => {
            if lengths.len() != batch {
                return Err(Error::shape(
                    "valid_lengths",
                    format!("{batch} lengths (one per item)"),
                    lengths.len(),
                ));
            }
            if let Some(&bad) = lengths.iter().find(|&&l| l > n_time) {
                return Err(Error::invalid(
                    "valid_lengths",
                    bad,
                    format!("a valid length cannot exceed the {n_time} frames"),
                ));
            }
            Ok(lengths.to_vec())
        }
    }
}

/// Width `U{0..=min(max_width, n)}`, start uniform where it fits.
fn random_mask<R: Rng + ?Sized>(n: usize, max_width: usize, rng: &mut R) -> Range<usize> {
    let width = rng.random_range(0..=max_width.min(n));
    let start = rng.random_range(0..=n - width);
    start..start + width
}

/// How [`TimeShift`] treats the frames shifted past the end.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ShiftMode {
    /// Circular: frames leaving one end come back at the other.
    Roll,
    /// Frames leaving are dropped; the gap is filled with this value.
    Pad(f64),
}

/// The largest accepted [`TimeShift`] `max_shift` (2^31 frames).
pub const MAX_TIME_SHIFT: usize = 1 << 31;

/// Shifts the last (time) axis by $s \sim U\{-S, \dots, S\}$ frames, rolling or padding.
#[derive(Debug, Clone, PartialEq)]
pub struct TimeShift {
    max_shift: usize,
    mode: ShiftMode,
}

impl TimeShift {
    /// Checks a finite pad value and `max_shift ≤ MAX_TIME_SHIFT`.
    pub fn new(max_shift: usize, mode: ShiftMode) -> Result<Self> {
        if let ShiftMode::Pad(value) = mode {
            check::finite_scalar("mode (pad value)", value)?;
        }
        check::size_at_most("max_shift", max_shift, MAX_TIME_SHIFT)?;
        Ok(TimeShift { max_shift, mode })
    }

    /// Shifts one item (any rank ≥ 1, time last) by a random shift; returns it with the shift.
    pub fn apply<F: Float, D: Dimension, R: Rng + ?Sized>(
        &self,
        input: ArrayView<F, D>,
        rng: &mut R,
    ) -> Result<(Array<F, D>, isize)> {
        let max = self.max_shift as i64;
        let shift = rng.random_range(-max..=max) as isize;
        Ok((self.shift_by(input, shift)?, shift))
    }

    /// Shifts one item by exactly `shift` frames (positive: later in time).
    pub fn shift_by<F: Float, D: Dimension>(
        &self,
        input: ArrayView<F, D>,
        shift: isize,
    ) -> Result<Array<F, D>> {
        if input.ndim() == 0 {
            return Err(Error::shape(
                "input",
                "rank >= 1 (time last)",
                input.shape(),
            ));
        }
        check::finite("input", &input)?;
        let mut out = input.to_owned();
        let last = Axis(input.ndim() - 1);
        let n = input.len_of(last) as isize;
        if n == 0 {
            return Ok(out);
        }
        let dynamic_in = input.view().into_dyn();
        let mut dynamic_out = out.view_mut().into_dyn();
        match self.mode {
            ShiftMode::Roll => {
                let s = shift.rem_euclid(n);
                // out[t] = in[t - s mod n]
                let head = Slice::from(..s);
                let tail = Slice::from(s..);
                dynamic_out
                    .slice_axis_mut(last, head)
                    .assign(&dynamic_in.slice_axis(last, Slice::from(n - s..)));
                dynamic_out
                    .slice_axis_mut(last, tail)
                    .assign(&dynamic_in.slice_axis(last, Slice::from(..n - s)));
            }
            ShiftMode::Pad(value) => {
                let fill = F::from_f64_rounded(value);
                let s = shift.clamp(-n, n);
                if s >= 0 {
                    dynamic_out
                        .slice_axis_mut(last, Slice::from(..s))
                        .fill(fill);
                    dynamic_out
                        .slice_axis_mut(last, Slice::from(s..))
                        .assign(&dynamic_in.slice_axis(last, Slice::from(..n - s)));
                } else {
                    let k = -s;
                    dynamic_out
                        .slice_axis_mut(last, Slice::from(..n - k))
                        .assign(&dynamic_in.slice_axis(last, Slice::from(k..)));
                    dynamic_out
                        .slice_axis_mut(last, Slice::from(n - k..))
                        .fill(fill);
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array1, Array2};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn cutoutspec_fills_exactly_one_box() {
        let spec = Array2::<f64>::from_elem((64, 431), 1.0);
        let cut = CutOutSpec::sslh_weak();
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let out = cut.apply(spec.view(), &mut rng).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let region = cut.sample_box(64, 431, &mut rng);
        let filled = out.iter().filter(|&&v| v == -80.0).count();
        assert_eq!(filled, region.freq.len() * region.time.len());
        assert!((7..=32).contains(&region.freq.len()));
        assert!((44..=215).contains(&region.time.len()));
    }

    #[test]
    fn cutoutspec_rejects_bad_input() {
        assert!(CutOutSpec::new((0.5, 0.1), (0.1, 0.5), -80.0).is_err());
        assert!(CutOutSpec::new((0.1, 1.5), (0.1, 0.5), -80.0).is_err());
        assert!(CutOutSpec::new((0.1, 0.5), (0.1, 0.5), f64::NAN).is_err());
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let one_d = Array1::<f32>::zeros(10);
        assert!(CutOutSpec::sslh_weak()
            .apply(one_d.view(), &mut rng)
            .is_err());
        let two_d = Array2::<f32>::zeros((4, 10));
        assert!(CutOutSpec::sslh_weak()
            .apply_batch(two_d.view(), &mut rng)
            .is_err());
    }

    #[test]
    fn specaugment_respects_padding() {
        let specs = Array3::<f64>::ones((3, 16, 50));
        let aug = SpecAugment::new(crate::SpecAugmentConfig {
            n_time_masks: 3,
            max_time_width: 20,
            n_freq_masks: 2,
            max_freq_width: 8,
            fill_value: 0.0,
        })
        .unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let lengths = [50, 10, 0];
        let out = aug
            .apply_batch(specs.view(), Some(&lengths), &mut rng)
            .unwrap();
        for (i, &len) in lengths.iter().enumerate() {
            let item = out.index_axis(Axis(0), i);
            let padding = item.slice_axis(Axis(1), Slice::from(len..));
            assert!(padding.iter().all(|&v| v == 1.0));
        }
        assert!(aug
            .apply_batch(specs.view(), Some(&[51, 1, 1]), &mut rng)
            .is_err());
        assert!(aug
            .apply_batch(specs.view(), Some(&[1, 1]), &mut rng)
            .is_err());
    }

    #[test]
    fn time_shift_rolls_and_pads() {
        let x = Array1::<f64>::from_iter((0..5).map(|v| v as f64));
        let roll = TimeShift::new(2, ShiftMode::Roll).unwrap();
        assert_eq!(
            roll.shift_by(x.view(), 2).unwrap().to_vec(),
            vec![3.0, 4.0, 0.0, 1.0, 2.0]
        );
        assert_eq!(
            roll.shift_by(x.view(), -1).unwrap().to_vec(),
            vec![1.0, 2.0, 3.0, 4.0, 0.0]
        );
        let pad = TimeShift::new(2, ShiftMode::Pad(-1.0)).unwrap();
        assert_eq!(
            pad.shift_by(x.view(), 2).unwrap().to_vec(),
            vec![-1.0, -1.0, 0.0, 1.0, 2.0]
        );
        assert_eq!(pad.shift_by(x.view(), -7).unwrap().to_vec(), vec![-1.0; 5]);
        let spec = Array2::<f64>::from_shape_fn((2, 5), |(f, t)| (10 * f + t) as f64);
        let shifted = roll.shift_by(spec.view(), 1).unwrap();
        assert_eq!(shifted.row(1).to_vec(), vec![14.0, 10.0, 11.0, 12.0, 13.0]);
    }
}
