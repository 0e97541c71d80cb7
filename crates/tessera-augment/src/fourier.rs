//! EfficientTrain's low-frequency crop (Wang et al., 2023) and its curriculum schedule.
//!
//! An image channel $x \in \mathbb{R}^{H \times W}$ is mapped to $B_1 \times B_2$ by
//! $F = \mathrm{fft2}(x)$, keeping the low-frequency corners of the (unshifted) spectrum,
//! scaling by $\frac{B_1}{H}\frac{B_2}{W}$ and returning $\Re\,\mathrm{ifft2}$.
//!
//! **Which bins are kept.** Per axis of length $n$ cropped to $m$, output bin $k$ takes
//! input bin $k$ for $k < \lceil m/2 \rceil$ and bin $n - m + k$ otherwise (the $\lfloor m/2
//! \rfloor$ most negative frequencies). This is *exactly* `ifftshift(centre_crop(fftshift(F)))`
//! with the centre crop starting at $\lfloor n/2 \rfloor - \lfloor m/2 \rfloor$, i.e. the crop
//! that puts the zero frequency at index $\lfloor m/2 \rfloor$, where `ifftshift` expects it —
//! for every parity of $n$ and $m$. For even $m$ the output Nyquist bin holds the input's
//! frequency $-m/2$, as numpy's FFT convention does. The scale makes the output mean equal to
//! the input mean; at $m = n$ the crop is the identity.

use std::sync::Arc;
use tessera_core::RejectInput;

use ndarray::{Array2, Array3, Array4, ArrayView2, ArrayView3, ArrayView4, ArrayViewMut2, Axis};
use num_complex::Complex;
use rayon::prelude::*;
use tessera_fft::realfft::RealToComplex;
use tessera_fft::rustfft::Fft;

use crate::check;
use crate::{Error, Float, InputError, Result};

/// Input bins kept by a crop of an axis of length `n` to `m` (`m ≤ n`), in output order.
///
/// # Errors
/// [`InputError::Invalid`] naming `m` when `m > n` (no such crop exists).
pub fn kept_bins(n: usize, m: usize) -> Result<Vec<usize>> {
    if m > n {
        return Err(InputError::invalid("m", m, format!("at most the axis length n = {n}")).into());
    }
    let positive = m.div_ceil(2);
    let negative = m / 2;
    Ok((0..positive).chain(n - negative..n).collect())
}

/// A planned low-frequency crop of `height × width` channels to `out_height × out_width`.
///
/// Holds the four FFT plans (rows and columns, forward and inverse), so build it once and
/// reuse it for every image of that size.
pub struct FourierCrop<F: Float> {
    height: usize,
    width: usize,
    out_height: usize,
    out_width: usize,
    kept_rows: Vec<usize>,
    kept_cols: Vec<usize>,
    row_forward: Arc<dyn RealToComplex<F>>,
    col_forward: Arc<dyn Fft<F>>,
    col_inverse: Arc<dyn Fft<F>>,
    row_inverse: Arc<dyn Fft<F>>,
    /// The device plan (kept bins uploaded, cuFFT plans), made on the first routed call;
    /// `None` inside when the GPU path is unavailable for this crop.
    #[cfg(feature = "cuda")]
    gpu_plan: std::sync::OnceLock<Option<tessera_gpu::FourierCropPlan>>,
}

impl<F: Float> std::fmt::Debug for FourierCrop<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FourierCrop")
            .field("height", &self.height)
            .field("width", &self.width)
            .field("out_height", &self.out_height)
            .field("out_width", &self.out_width)
            .finish_non_exhaustive()
    }
}

/// Reusable buffers of one worker.
struct Workspace<F> {
    real_row: Vec<F>,
    half_spectrum: Vec<Complex<F>>,
    real_scratch: Vec<Complex<F>>,
    columns: Vec<Complex<F>>,
    cropped: Vec<Complex<F>>,
    transposed: Vec<Complex<F>>,
    scratch: Vec<Complex<F>>,
}

/// The sizes of a [`FourierCrop`]: an `height × width` image low-passed to
/// `out_height × out_width`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FourierCropConfig {
    /// Input image height $H$.
    pub height: usize,
    /// Input image width $W$.
    pub width: usize,
    /// Output height $B_h \le H$.
    pub out_height: usize,
    /// Output width $B_w \le W$.
    pub out_width: usize,
}

impl FourierCropConfig {
    /// A square `size × size` image cropped to `out_size × out_size`.
    pub fn square(size: usize, out_size: usize) -> Self {
        FourierCropConfig {
            height: size,
            width: size,
            out_height: out_size,
            out_width: out_size,
        }
    }
}

impl<F: Float> FourierCrop<F> {
    /// Plans a crop; errors when a size is zero or the output is larger than the input.
    pub fn new(config: FourierCropConfig) -> Result<Self> {
        let FourierCropConfig {
            height,
            width,
            out_height,
            out_width,
        } = config;
        for (name, value) in [
            ("height", height),
            ("width", width),
            ("out_height", out_height),
            ("out_width", out_width),
        ] {
            if value == 0 {
                return Err(Error::invalid(name, value, "must be >= 1"));
            }
        }
        if out_height > height {
            return Err(Error::invalid(
                "out_height",
                out_height,
                format!("crop larger than the image height {height}"),
            ));
        }
        if out_width > width {
            return Err(Error::invalid(
                "out_width",
                out_width,
                format!("crop larger than the image width {width}"),
            ));
        }
        // The plans check each length against `tessera_fft::MAX_LEN` before anything of that
        // size is allocated, the kept bins included; their errors name this config's field.
        let named = |name: &'static str| move |e: InputError| Error::from(e.map_name(|_| name));
        let col_forward = tessera_fft::forward::<F>(height).map_err(named("height"))?;
        let row_forward = tessera_fft::real_forward::<F>(width).map_err(named("width"))?;
        let col_inverse = tessera_fft::inverse::<F>(out_height).map_err(named("out_height"))?;
        let row_inverse = tessera_fft::inverse::<F>(out_width).map_err(named("out_width"))?;
        Ok(FourierCrop {
            height,
            width,
            out_height,
            out_width,
            kept_rows: kept_bins(height, out_height)?,
            kept_cols: kept_bins(width, out_width)?,
            row_forward,
            col_forward,
            col_inverse,
            row_inverse,
            #[cfg(feature = "cuda")]
            gpu_plan: std::sync::OnceLock::new(),
        })
    }

    /// Input `(height, width)`.
    pub fn input_size(&self) -> (usize, usize) {
        (self.height, self.width)
    }

    /// Output `(out_height, out_width)`.
    pub fn output_size(&self) -> (usize, usize) {
        (self.out_height, self.out_width)
    }

    fn workspace(&self) -> Workspace<F> {
        let scratch = [&self.col_forward, &self.col_inverse, &self.row_inverse]
            .iter()
            .map(|f| f.get_inplace_scratch_len())
            .max()
            .unwrap_or(0);
        let zero = Complex::new(F::zero(), F::zero());
        Workspace {
            real_row: vec![F::zero(); self.width],
            half_spectrum: self.row_forward.make_output_vec(),
            real_scratch: self.row_forward.make_scratch_vec(),
            columns: vec![zero; self.out_width * self.height],
            cropped: vec![zero; self.out_width * self.out_height],
            transposed: vec![zero; self.out_height * self.out_width],
            scratch: vec![zero; scratch],
        }
    }

    /// Crops one channel `(height, width)`.
    pub fn crop_channel(&self, channel: ArrayView2<F>) -> Result<Array2<F>> {
        self.check_channel_shape("channel", channel.dim())?;
        check::finite("channel", &channel)?;
        let mut out = Array2::zeros((self.out_height, self.out_width));
        self.crop_into(channel, out.view_mut(), &mut self.workspace());
        check::no_overflow("channel", &channel, &out.view(), "the Fourier crop")?;
        Ok(out)
    }

    /// Crops an image `(channels, height, width)` channel by channel.
    pub fn crop(&self, image: ArrayView3<F>) -> Result<Array3<F>> {
        let (channels, h, w) = image.dim();
        self.check_channel_shape("image", (h, w))?;
        check::finite("image", &image)?;
        let mut out = Array3::zeros((channels, self.out_height, self.out_width));
        let mut workspace = self.workspace();
        for (channel, target) in image.outer_iter().zip(out.outer_iter_mut()) {
            self.crop_into(channel, target, &mut workspace);
        }
        check::no_overflow("image", &image, &out.view(), "the Fourier crop")?;
        Ok(out)
    }

    /// Crops a batch `(batch, channels, height, width)`, all channels in parallel (rayon).
    pub fn crop_batch(&self, images: ArrayView4<F>) -> Result<Array4<F>> {
        let (batch, channels, h, w) = images.dim();
        self.check_channel_shape("images", (h, w))?;
        check::finite("images", &images)?;
        #[cfg(feature = "cuda")]
        if let Some(out) = self.crop_batch_on_gpu(&images) {
            check::no_overflow("images", &images, &out.view(), "the Fourier crop")?;
            return Ok(out);
        }
        let standard = images.as_standard_layout();
        let flat = standard
            .view()
            .into_shape_with_order((batch * channels, h, w))
            .map_err(|e| {
                Error::shape(
                    "images",
                    format!("a reshapeable batch ({e})"),
                    images.shape(),
                )
            })?;
        let mut out = Array3::zeros((batch * channels, self.out_height, self.out_width));
        out.axis_iter_mut(Axis(0))
            .into_par_iter()
            .zip(flat.axis_iter(Axis(0)).into_par_iter())
            .for_each_init(
                || self.workspace(),
                |workspace, (target, channel)| self.crop_into(channel, target, workspace),
            );
        check::no_overflow("images", &images, &out.view(), "the Fourier crop")?;
        out.into_shape_with_order((batch, channels, self.out_height, self.out_width))
            .map_err(|e| Error::shape("output", format!("reshape ({e})"), [batch, channels]))
    }

    /// The crop on the default CUDA device (feature `cuda`) for `f32` images, or `None` to
    /// run on the CPU: no device, another float type, or any GPU failure (this crate's error
    /// type has no GPU variant, and the CPU's result is the reference either way).
    #[cfg(feature = "cuda")]
    fn crop_batch_on_gpu(&self, images: &ArrayView4<F>) -> Option<Array4<F>> {
        use std::any::Any;
        let context = tessera_gpu::default_context()?;
        if std::any::TypeId::of::<F>() != std::any::TypeId::of::<f32>() {
            return None;
        }
        // `F` is generic and this crate has no unsafe code: downcasts of owned arrays find the
        // f32 case (the GPU path is f32 only).
        let owned = (Box::new(images.to_owned()) as Box<dyn Any>)
            .downcast::<Array4<f32>>()
            .ok()?;
        let plan = self
            .gpu_plan
            .get_or_init(|| {
                let shape = tessera_gpu::FourierCropShape::new(
                    self.height,
                    self.width,
                    &self.kept_rows,
                    &self.kept_cols,
                )
                .ok()?;
                tessera_gpu::FourierCropPlan::new(context, shape).ok()
            })
            .as_ref()?;
        let out = plan.crop_batch(context, owned.view()).ok()?;
        (Box::new(out) as Box<dyn Any>)
            .downcast::<Array4<F>>()
            .ok()
            .map(|out| *out)
    }

    fn check_channel_shape(&self, name: &'static str, (h, w): (usize, usize)) -> Result<()> {
        if (h, w) == (self.height, self.width) {
            Ok(())
        } else {
            Err(Error::shape(
                name,
                format!("spatial size ({}, {}) of the plan", self.height, self.width),
                (h, w),
            ))
        }
    }

    /// The crop itself: real row FFTs keep only the needed columns (stored transposed so the
    /// column FFTs run on contiguous memory), column FFTs keep only the needed rows, then the
    /// small inverse transform. Pruning before the second pass is why this beats a full
    /// `fft2` → crop → `ifft2`.
    fn crop_into(&self, channel: ArrayView2<F>, mut out: ArrayViewMut2<F>, ws: &mut Workspace<F>) {
        let (h, w) = (self.height, self.width);
        let (bh, bw) = (self.out_height, self.out_width);
        // Real rows: a real-to-complex FFT gives bins 0..=w/2; the negative-frequency bins
        // kept by the crop are their conjugates, X[w − k] = conj(X[k]).
        let half = w / 2;
        for (r, row) in channel.outer_iter().enumerate() {
            for (slot, &value) in ws.real_row.iter_mut().zip(row.iter()) {
                *slot = value;
            }
            self.row_forward
                .process_with_scratch(
                    &mut ws.real_row,
                    &mut ws.half_spectrum,
                    &mut ws.real_scratch,
                )
                .expect("workspace() sized these buffers from this plan");
            for (j, &k) in self.kept_cols.iter().enumerate() {
                ws.columns[j * h + r] = if k <= half {
                    ws.half_spectrum[k]
                } else {
                    ws.half_spectrum[w - k].conj()
                };
            }
        }
        self.col_forward
            .process_with_scratch(&mut ws.columns, &mut ws.scratch);
        // Scale (B1/H)(B2/W) and the 1/(B1·B2) of the inverse fold into 1/(H·W).
        let scale = F::one() / F::from_f64_rounded((h * w) as f64);
        for j in 0..bw {
            let column = &ws.columns[j * h..(j + 1) * h];
            for (i, &k) in self.kept_rows.iter().enumerate() {
                ws.cropped[j * bh + i] = column[k] * scale;
            }
        }
        self.col_inverse
            .process_with_scratch(&mut ws.cropped, &mut ws.scratch);
        for j in 0..bw {
            for i in 0..bh {
                ws.transposed[i * bw + j] = ws.cropped[j * bh + i];
            }
        }
        self.row_inverse
            .process_with_scratch(&mut ws.transposed, &mut ws.scratch);
        for (target, value) in out.iter_mut().zip(ws.transposed.iter()) {
            *target = value.re;
        }
    }
}

/// One stage of the EfficientTrain curriculum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CurriculumStage {
    /// Stage index, `0..5`.
    pub stage: usize,
    /// First epoch of the stage (0-based).
    pub start_epoch: usize,
    /// One past the last epoch of the stage.
    pub end_epoch: usize,
    /// Side of the low-frequency crop (equal to the image size in the last stage: no crop).
    pub crop_size: usize,
    /// RandAugment magnitude `m = 2·stage + 1` (1, 3, 5, 7, 9): weaker-to-stronger.
    pub randaugment_magnitude: u32,
}

/// EfficientTrain's curriculum: five equal stages with crop sides
/// $B = [160, 160, 160, 192, 224]$ for 224-pixel images (scaled by `image_size / 224` and
/// rounded down to an even side, as the reference crops $2\lfloor B/2 \rfloor$), and a
/// RandAugment magnitude ramp $m = 1, 3, 5, 7, 9$.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EfficientTrainSchedule {
    total_epochs: usize,
    image_size: usize,
}

impl EfficientTrainSchedule {
    /// Crop sides of the five stages for 224-pixel images.
    pub const BANDWIDTHS_224: [usize; 5] = [160, 160, 160, 192, 224];

    /// Checks `total_epochs ≥ 5` (one per stage at least) and `image_size ≥ 2`.
    pub fn new(total_epochs: usize, image_size: usize) -> Result<Self> {
        if total_epochs < Self::BANDWIDTHS_224.len() {
            return Err(Error::invalid(
                "total_epochs",
                total_epochs,
                "needs at least one epoch per stage (>= 5)",
            ));
        }
        if image_size < 2 {
            return Err(Error::invalid("image_size", image_size, "must be >= 2"));
        }
        Ok(EfficientTrainSchedule {
            total_epochs,
            image_size,
        })
    }

    /// All five stages in order.
    pub fn stages(&self) -> Vec<CurriculumStage> {
        let n = Self::BANDWIDTHS_224.len();
        (0..n)
            .map(|stage| {
                let crop = if Self::BANDWIDTHS_224[stage] == 224 {
                    self.image_size
                } else {
                    let scaled = mul_div(Self::BANDWIDTHS_224[stage], self.image_size, 224);
                    (2 * (scaled / 2)).max(2)
                };
                CurriculumStage {
                    stage,
                    start_epoch: mul_div(stage, self.total_epochs, n),
                    end_epoch: mul_div(stage + 1, self.total_epochs, n),
                    crop_size: crop,
                    randaugment_magnitude: 2 * stage as u32 + 1,
                }
            })
            .collect()
    }

    /// The stage of a 0-based `epoch < total_epochs`.
    pub fn at_epoch(&self, epoch: usize) -> Result<CurriculumStage> {
        self.stages()
            .into_iter()
            .find(|s| (s.start_epoch..s.end_epoch).contains(&epoch))
            .ok_or_else(|| {
                Error::invalid(
                    "epoch",
                    epoch,
                    format!("must be < total_epochs = {}", self.total_epochs),
                )
            })
    }
}

/// `⌊a·b / c⌋` for `a ≤ c`, exact for every `b`: the product is formed in `u128`, which holds
/// any product of two `usize`, and the quotient is at most `b`, so it fits `usize` again.
fn mul_div(a: usize, b: usize, c: usize) -> usize {
    debug_assert!(a <= c && c > 0);
    let exact = a as u128 * b as u128 / c as u128;
    usize::try_from(exact).expect("a <= c, so a·b/c <= b fits usize")
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;

    #[test]
    fn kept_bins_cover_both_parities() {
        assert_eq!(kept_bins(8, 4).unwrap(), vec![0, 1, 6, 7]);
        assert_eq!(kept_bins(8, 5).unwrap(), vec![0, 1, 2, 6, 7]);
        assert_eq!(kept_bins(7, 4).unwrap(), vec![0, 1, 5, 6]);
        assert_eq!(kept_bins(5, 5).unwrap(), vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn kept_bins_of_a_crop_larger_than_the_axis_are_an_error_naming_m() {
        // Without the check, 3 < m ≤ 7 returned duplicate bins and larger m underflowed.
        for m in [4, 7, 8, usize::MAX] {
            let err = kept_bins(3, m).unwrap_err().to_string();
            assert!(err.contains('m') && err.contains(&m.to_string()), "{err}");
        }
    }

    #[test]
    fn constant_image_stays_constant() {
        let plan = FourierCrop::<f64>::new(crate::FourierCropConfig {
            height: 12,
            width: 9,
            out_height: 5,
            out_width: 4,
        })
        .unwrap();
        let image = Array3::from_elem((2, 12, 9), 3.5);
        let out = plan.crop(image.view()).unwrap();
        for &v in out.iter() {
            assert_abs_diff_eq!(v, 3.5, epsilon = 1e-12);
        }
    }

    #[test]
    fn rejects_bad_sizes() {
        assert!(FourierCrop::<f32>::new(crate::FourierCropConfig {
            height: 8,
            width: 8,
            out_height: 9,
            out_width: 4
        })
        .is_err());
        assert!(FourierCrop::<f32>::new(crate::FourierCropConfig {
            height: 8,
            width: 8,
            out_height: 4,
            out_width: 0
        })
        .is_err());
        let plan = FourierCrop::<f32>::new(crate::FourierCropConfig {
            height: 8,
            width: 8,
            out_height: 4,
            out_width: 4,
        })
        .unwrap();
        assert!(plan.crop(Array3::zeros((1, 8, 7)).view()).is_err());
        let mut bad = Array3::<f32>::zeros((1, 8, 8));
        bad[[0, 3, 3]] = f32::INFINITY;
        assert!(plan.crop(bad.view()).is_err());
    }

    #[test]
    fn schedule_matches_efficienttrain() {
        let schedule = EfficientTrainSchedule::new(300, 224).unwrap();
        let stages = schedule.stages();
        let crops: Vec<_> = stages.iter().map(|s| s.crop_size).collect();
        assert_eq!(crops, vec![160, 160, 160, 192, 224]);
        let mags: Vec<_> = stages.iter().map(|s| s.randaugment_magnitude).collect();
        assert_eq!(mags, vec![1, 3, 5, 7, 9]);
        assert_eq!(schedule.at_epoch(59).unwrap().stage, 0);
        assert_eq!(schedule.at_epoch(240).unwrap().stage, 4);
        assert!(schedule.at_epoch(300).is_err());
        let small = EfficientTrainSchedule::new(10, 32).unwrap();
        let crops: Vec<_> = small.stages().iter().map(|s| s.crop_size).collect();
        assert_eq!(crops, vec![22, 22, 22, 26, 32]);
        assert!(EfficientTrainSchedule::new(4, 32).is_err());
    }
}
