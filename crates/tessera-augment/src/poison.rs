//! Class-wise convolution perturbation: CUDA, "Convolution-based Unlearnable Datasets"
//! (Sadasivan et al., CVPR 2023). Reimplemented from the paper's description.
//!
//! Every class $c$ owns a $k \times k$ filter $w_c$ with entries $U(0, p_b)$ and one random
//! tap set to 1, shared by all channels. An image $x$ of class $c$ becomes
//! $y = (x \star w_c) / \max(x \star w_c)$ (depthwise cross-correlation, zero padding,
//! stride 1; the max over the whole image), optionally quantised to 8 bits,
//! $\mathrm{round}(255 y)/255$.
//!
//! Filters are a pure function of `(key, class)`: a ChaCha8 stream is seeded from a
//! SplitMix64 mix of both, so the same key gives the same filters on any machine, in any
//! order of requests.

use ndarray::{Array2, Array3, Array4, ArrayView2, ArrayView3, ArrayView4, Axis, Zip};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tessera_core::RejectInput;

use crate::check;
use crate::{Error, Float, Result};

/// SplitMix64's finaliser: a bijective 64-bit mixer, so distinct inputs never collide.
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Seed of an independent stream for `(key, domain, index)`.
fn derived_seed(key: u64, domain: u64, index: u64) -> u64 {
    splitmix64(splitmix64(splitmix64(key) ^ domain) ^ index)
}

const FILTER_DOMAIN: u64 = 0x4355_4441_4649_4C54; // "CUDAFILT"
const SELECTION_DOMAIN: u64 = 0x4355_4441_4D49_5845; // "CUDAMIXE"

/// The checked configuration of a [`ClassWiseConvolution`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClassWiseConvolutionConfig {
    /// The secret key every filter (and the poisoned-item selection) is derived from.
    pub key: u64,
    /// Side $k$ of the filters: odd and $\ge 1$, so zero padding $(k-1)/2$ keeps the size.
    pub kernel_size: usize,
    /// Blur parameter $p_b \in [0, 1]$: filter entries are drawn from $U(0, p_b)$.
    pub blur_parameter: f64,
    /// Round outputs to multiples of 1/255 (8-bit images).
    pub quantize: bool,
}

impl ClassWiseConvolutionConfig {
    /// The paper's defaults: $k = 3$, $p_b = 0.3$, quantised to 8 bits.
    pub fn paper(key: u64) -> Self {
        ClassWiseConvolutionConfig {
            key,
            kernel_size: 3,
            blur_parameter: 0.3,
            quantize: true,
        }
    }
}

/// A checked class-wise convolution: per class, a $k \times k$ filter derived from the key.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassWiseConvolution {
    key: u64,
    kernel_size: usize,
    blur_parameter: f64,
    quantize: bool,
}

impl ClassWiseConvolution {
    /// The paper's defaults: $k = 3$, $p_b = 0.3$, quantised to 8 bits.
    pub fn paper(key: u64) -> Self {
        let ClassWiseConvolutionConfig {
            key,
            kernel_size,
            blur_parameter,
            quantize,
        } = ClassWiseConvolutionConfig::paper(key);
        ClassWiseConvolution {
            key,
            kernel_size,
            blur_parameter,
            quantize,
        }
    }

    /// Checks an odd `kernel_size ≥ 1` (so zero padding `(k−1)/2` keeps the size) and
    /// `blur_parameter` $p_b \in [0, 1]$.
    pub fn new(config: ClassWiseConvolutionConfig) -> Result<Self> {
        let ClassWiseConvolutionConfig {
            key,
            kernel_size,
            blur_parameter,
            quantize,
        } = config;
        if kernel_size == 0 || kernel_size % 2 == 0 {
            return Err(Error::invalid(
                "kernel_size",
                kernel_size,
                "must be odd and >= 1 (same-size output with zero padding)",
            ));
        }
        check::probability("blur_parameter", blur_parameter)?;
        Ok(ClassWiseConvolution {
            key,
            kernel_size,
            blur_parameter,
            quantize,
        })
    }

    /// The secret key.
    pub fn key(&self) -> u64 {
        self.key
    }

    /// Side $k$ of the filters.
    pub fn kernel_size(&self) -> usize {
        self.kernel_size
    }

    /// Whether outputs are rounded to multiples of 1/255.
    pub fn quantize(&self) -> bool {
        self.quantize
    }

    /// The $k \times k$ filter of `class`: entries $U(0, p_b)$, then one uniform tap set to 1.
    pub fn filter<F: Float>(&self, class: usize) -> Array2<F> {
        let mut rng =
            ChaCha8Rng::seed_from_u64(derived_seed(self.key, FILTER_DOMAIN, class as u64));
        let k = self.kernel_size;
        let mut filter =
            Array2::from_shape_fn((k, k), |_| rng.random::<f64>() * self.blur_parameter);
        let tap = rng.random_range(0..k * k);
        filter[[tap / k, tap % k]] = 1.0;
        filter.mapv(F::from_f64_rounded)
    }

    /// Perturbs one image `(channels, height, width)` with non-negative pixels (the paper
    /// works on `[0, 1]` images; the max-normalisation has no meaning for signed data).
    /// An all-zero image stays zero.
    pub fn apply<F: Float>(&self, image: ArrayView3<F>, class: usize) -> Result<Array3<F>> {
        check_image("image", &image)?;
        let out = self.apply_checked(image, self.filter::<F>(class).view());
        check::no_overflow("image", &image, &out.view(), "the class-wise convolution")?;
        Ok(out)
    }

    /// Perturbs a batch `(batch, channels, height, width)`, item `i` with the filter of
    /// `labels[i]`; items run in parallel.
    pub fn apply_batch<F: Float>(
        &self,
        images: ArrayView4<F>,
        labels: &[usize],
    ) -> Result<Array4<F>> {
        if labels.len() != images.len_of(Axis(0)) {
            return Err(Error::shape(
                "labels",
                format!("{} labels (one per image)", images.len_of(Axis(0))),
                labels.len(),
            ));
        }
        check_image("images", &images)?;
        let mut out = Array4::zeros(images.raw_dim());
        Zip::from(out.outer_iter_mut())
            .and(images.outer_iter())
            .and(&ndarray::ArrayView1::from(labels))
            .par_for_each(|mut target, image, &label| {
                target.assign(&self.apply_checked(image, self.filter::<F>(label).view()));
            });
        check::no_overflow("images", &images, &out.view(), "the class-wise convolution")?;
        Ok(out)
    }

    fn apply_checked<F: Float>(&self, image: ArrayView3<F>, filter: ArrayView2<F>) -> Array3<F> {
        let mut out = depthwise_correlate(image, filter);
        let max = out.iter().fold(F::zero(), |m, &v| m.max(v));
        if max > F::zero() {
            out.mapv_inplace(|v| v / max);
        }
        if self.quantize {
            let levels = F::from_f64_rounded(255.0);
            out.mapv_inplace(|v| (v * levels).round() / levels);
        }
        out
    }
}

/// Same-size depthwise cross-correlation with zero padding, stride 1, one filter for every
/// channel: $y_c[i, j] = \sum_{a,b} w[a, b]\, x_c[i + a - p, j + b - p]$, $p = (k-1)/2$
/// (what `torch.nn.functional.conv2d(groups = C)` computes).
pub fn depthwise_correlate<F: Float>(image: ArrayView3<F>, filter: ArrayView2<F>) -> Array3<F> {
    let (channels, h, w) = image.dim();
    let (kh, kw) = filter.dim();
    let (ph, pw) = (kh / 2, kw / 2);
    let mut out = Array3::zeros((channels, h, w));
    for c in 0..channels {
        let source = image.index_axis(Axis(0), c);
        let mut target = out.index_axis_mut(Axis(0), c);
        // Tap-major order: each tap adds a shifted copy of the valid overlap, so the inner
        // loop runs over contiguous rows without bounds juggling per pixel.
        for a in 0..kh {
            for b in 0..kw {
                let weight = filter[[a, b]];
                if weight == F::zero() {
                    continue;
                }
                // Output rows i with 0 <= i + a - ph < h.
                let i_start = ph.saturating_sub(a);
                let i_end = (h + ph).saturating_sub(a).min(h);
                let j_start = pw.saturating_sub(b);
                let j_end = (w + pw).saturating_sub(b).min(w);
                for i in i_start..i_end {
                    let si = i + a - ph;
                    for j in j_start..j_end {
                        target[[i, j]] += weight * source[[si, j + b - pw]];
                    }
                }
            }
        }
    }
    out
}

fn check_image<F: Float, D: ndarray::Dimension>(
    name: &'static str,
    image: &ndarray::ArrayView<F, D>,
) -> Result<()> {
    if image.is_empty() {
        return Err(Error::shape(name, "a non-empty image", image.shape()));
    }
    check::finite(name, image)?;
    if let Some(&negative) = image.iter().find(|&&v| v < F::zero()) {
        return Err(Error::invalid(
            name,
            negative,
            "pixels must be >= 0 (intensities, e.g. in [0, 1])",
        ));
    }
    Ok(())
}

/// A dataset view that poisons a fraction `mix` of its items (the CUDA "mix" experiments):
/// exactly `round(mix·n)` items, chosen by a key-seeded shuffle, get the class-wise filter.
#[derive(Debug, Clone, PartialEq)]
pub struct PoisonedDataset {
    convolution: ClassWiseConvolution,
    mix: f64,
    poisoned: Vec<bool>,
}

impl PoisonedDataset {
    /// Selects the poisoned items of a dataset of `n_items`; `mix ∈ [0, 1]`.
    pub fn new(convolution: ClassWiseConvolution, mix: f64, n_items: usize) -> Result<Self> {
        check::probability("mix", mix)?;
        let count = (mix * n_items as f64).round() as usize;
        let mut order: Vec<usize> = (0..n_items).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(derived_seed(
            convolution.key,
            SELECTION_DOMAIN,
            n_items as u64,
        ));
        order.shuffle(&mut rng);
        let mut poisoned = vec![false; n_items];
        for &index in &order[..count] {
            poisoned[index] = true;
        }
        Ok(PoisonedDataset {
            convolution,
            mix,
            poisoned,
        })
    }

    /// The requested fraction.
    pub fn mix(&self) -> f64 {
        self.mix
    }

    /// The perturbation.
    pub fn convolution(&self) -> &ClassWiseConvolution {
        &self.convolution
    }

    /// Whether item `index` is poisoned.
    pub fn is_poisoned(&self, index: usize) -> bool {
        self.poisoned.get(index).copied().unwrap_or(false)
    }

    /// Indices of the poisoned items, ascending.
    pub fn poisoned_indices(&self) -> Vec<usize> {
        (0..self.poisoned.len())
            .filter(|&i| self.poisoned[i])
            .collect()
    }

    /// Item `index` as training sees it: perturbed if selected, a copy otherwise.
    pub fn item<F: Float>(
        &self,
        index: usize,
        image: ArrayView3<F>,
        label: usize,
    ) -> Result<Array3<F>> {
        if index >= self.poisoned.len() {
            return Err(Error::invalid(
                "index",
                index,
                format!("dataset has {} items", self.poisoned.len()),
            ));
        }
        if self.poisoned[index] {
            self.convolution.apply(image, label)
        } else {
            check::finite("image", &image)?;
            Ok(image.to_owned())
        }
    }

    /// The whole dataset `(n_items, channels, height, width)` with labels.
    pub fn apply_all<F: Float>(
        &self,
        images: ArrayView4<F>,
        labels: &[usize],
    ) -> Result<Array4<F>> {
        if images.len_of(Axis(0)) != self.poisoned.len() {
            return Err(Error::shape(
                "images",
                format!("{} items (the dataset size)", self.poisoned.len()),
                images.shape(),
            ));
        }
        let poisoned = self.convolution.apply_batch(images, labels)?;
        let mut out = images.to_owned();
        for (i, &selected) in self.poisoned.iter().enumerate() {
            if selected {
                out.index_axis_mut(Axis(0), i)
                    .assign(&poisoned.index_axis(Axis(0), i));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;

    #[test]
    fn filters_have_one_unit_tap_and_small_others() {
        let conv = ClassWiseConvolution::paper(42);
        for class in 0..10 {
            let f = conv.filter::<f64>(class);
            assert_eq!(f.iter().filter(|&&v| v == 1.0).count(), 1);
            assert!(f.iter().all(|&v| v == 1.0 || (0.0..0.3).contains(&v)));
        }
        assert_ne!(conv.filter::<f64>(0), conv.filter::<f64>(1));
        assert_ne!(
            conv.filter::<f64>(0),
            ClassWiseConvolution::paper(43).filter::<f64>(0)
        );
    }

    #[test]
    fn correlation_matches_direct_sum() {
        let image = Array3::from_shape_fn((2, 5, 6), |(c, i, j)| (c * 30 + i * 6 + j) as f64);
        let filter = Array2::from_shape_fn((3, 3), |(a, b)| (a * 3 + b) as f64 * 0.1);
        let out = depthwise_correlate(image.view(), filter.view());
        for c in 0..2 {
            for i in 0..5isize {
                for j in 0..6isize {
                    let mut sum = 0.0;
                    for a in 0..3isize {
                        for b in 0..3isize {
                            let (y, x) = (i + a - 1, j + b - 1);
                            if (0..5).contains(&y) && (0..6).contains(&x) {
                                sum += filter[[a as usize, b as usize]]
                                    * image[[c, y as usize, x as usize]];
                            }
                        }
                    }
                    assert_abs_diff_eq!(out[[c, i as usize, j as usize]], sum, epsilon = 1e-12);
                }
            }
        }
    }

    #[test]
    fn output_is_normalised_and_quantised() {
        let conv = ClassWiseConvolution::paper(7);
        let image = Array3::from_shape_fn((3, 8, 8), |(c, i, j)| ((c + i * j) % 5) as f32 / 4.0);
        let out = conv.apply(image.view(), 3).unwrap();
        let max = out.iter().cloned().fold(0.0f32, f32::max);
        assert_abs_diff_eq!(max, 1.0, epsilon = 1e-6);
        for &v in out.iter() {
            assert_abs_diff_eq!((v * 255.0).round(), v * 255.0, epsilon = 1e-3);
        }
        let mut negative = image.clone();
        negative[[0, 0, 0]] = -0.1;
        assert!(conv.apply(negative.view(), 0).is_err());
        assert!(
            ClassWiseConvolution::new(crate::ClassWiseConvolutionConfig {
                key: 1,
                kernel_size: 2,
                blur_parameter: 0.3,
                quantize: false
            })
            .is_err()
        );
        assert!(
            ClassWiseConvolution::new(crate::ClassWiseConvolutionConfig {
                key: 1,
                kernel_size: 3,
                blur_parameter: 1.3,
                quantize: false
            })
            .is_err()
        );
    }

    #[test]
    fn mix_selects_the_requested_count() {
        let conv = ClassWiseConvolution::paper(5);
        let dataset = PoisonedDataset::new(conv.clone(), 0.3, 50).unwrap();
        assert_eq!(dataset.poisoned_indices().len(), 15);
        let again = PoisonedDataset::new(conv, 0.3, 50).unwrap();
        assert_eq!(dataset.poisoned_indices(), again.poisoned_indices());
        assert!(PoisonedDataset::new(ClassWiseConvolution::paper(5), 1.1, 10).is_err());
    }
}
