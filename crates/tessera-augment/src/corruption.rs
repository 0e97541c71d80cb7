//! Seeded image corruptions with five severities, after ImageNet-C / CIFAR-10-C (Hendrycks &
//! Dietterich, ICLR 2019, "Benchmarking Neural Network Robustness to Common Corruptions and
//! Perturbations"; github.com/hendrycks/robustness). Reimplemented from the formulas; the
//! severity tables are those the benchmark uses for 32-pixel images (CIFAR-10-C), which suit
//! the small generated images of the reproductions.
//!
//! Images are `(channels, height, width)` intensities in $[0, 1]$; every output is clipped to
//! $[0, 1]$ as the benchmark does. Only corruptions that need no colour model or codec are
//! here (no JPEG, no saturation); brightness is the grey-level variant (see
//! [`Corruption::Brightness`]). Random corruptions are a pure function of `(seed, item)`:
//! item `i` of a batch draws from ChaCha8 stream `i` of `seed`, so a batch and its items
//! corrupted one by one agree bit for bit, on any number of threads.

use ndarray::{Array1, Array2, Array3, Array4, ArrayView3, ArrayView4, Axis, Zip};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, Poisson};
use tessera_core::RejectInput;

use crate::check;
use crate::{Error, Float, Result};

/// The highest severity (severities run `1..=MAX_SEVERITY`).
pub const MAX_SEVERITY: usize = 5;

/// The longest image side [`Corruption::Pixelate`] accepts (4096 pixels): its area
/// averaging holds dense `(⌊cH⌋, H)` and `(⌊cW⌋, W)` weight matrices (128 MiB each at this
/// side), so a longer side is an error before anything is allocated.
pub const MAX_PIXELATE_SIDE: usize = 1 << 12;

/// A corruption family; its strength is a severity `1..=5`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Corruption {
    /// $y = \mathrm{clip}(x + \sigma\varepsilon)$, $\varepsilon \sim N(0, 1)$ per value,
    /// $\sigma = 0.04, 0.06, 0.08, 0.09, 0.10$.
    GaussianNoise,
    /// Photon (shot) noise, $y = \mathrm{clip}(\mathrm{Poisson}(\lambda x)/\lambda)$ per value,
    /// $\lambda = 500, 250, 100, 75, 50$ (variance $x/\lambda$).
    ShotNoise,
    /// Salt-and-pepper noise: each value independently, with probability
    /// $a = 0.01, 0.02, 0.03, 0.05, 0.07$, becomes 0 or 1 (equally likely).
    ImpulseNoise,
    /// Separable Gaussian blur of standard deviation $\sigma = 0.4, 0.6, 0.7, 0.8, 1.0$ pixels,
    /// truncated at $4\sigma$, edges replicated.
    GaussianBlur,
    /// Separable box (defocus-like) blur of half-width $r = 0.75, 1, 1.25, 1.5, 2$ pixels:
    /// tap $j$ weighs $\mathrm{clamp}(r + 1 - |j|, 0, 1)$, normalised (the overlap of pixel
    /// $j$ with the box $[-r - \frac12, r + \frac12]$), edges replicated.
    BoxBlur,
    /// Area-average down-sampling to $\lfloor c\,H \rfloor \times \lfloor c\,W \rfloor$ (at
    /// least 1), then nearest-neighbour up-sampling, $c = 0.95, 0.9, 0.85, 0.75, 0.65$.
    /// Sides are at most [`MAX_PIXELATE_SIDE`].
    Pixelate,
    /// $y = (x - m)\,c + m$ with $m$ the image's mean over all values,
    /// $c = 0.75, 0.5, 0.4, 0.3, 0.15$ (keeps the mean; no clipping is ever needed).
    Contrast,
    /// $y = \mathrm{clip}(x + b)$, $b = 0.05, 0.1, 0.15, 0.2, 0.3$: the benchmark's shift of
    /// the HSV value channel, exact for grey pixels and applied to every channel alike here
    /// (no saturation model).
    Brightness,
}

impl Corruption {
    /// Every corruption, noise first, then blurs, then the photometric ones.
    pub const ALL: [Corruption; 8] = [
        Corruption::GaussianNoise,
        Corruption::ShotNoise,
        Corruption::ImpulseNoise,
        Corruption::GaussianBlur,
        Corruption::BoxBlur,
        Corruption::Pixelate,
        Corruption::Contrast,
        Corruption::Brightness,
    ];

    /// The benchmark's name (`"gaussian_noise"`, …; `"box_blur"` stands in for defocus).
    pub fn name(self) -> &'static str {
        match self {
            Corruption::GaussianNoise => "gaussian_noise",
            Corruption::ShotNoise => "shot_noise",
            Corruption::ImpulseNoise => "impulse_noise",
            Corruption::GaussianBlur => "gaussian_blur",
            Corruption::BoxBlur => "box_blur",
            Corruption::Pixelate => "pixelate",
            Corruption::Contrast => "contrast",
            Corruption::Brightness => "brightness",
        }
    }

    /// Whether the corruption draws random numbers (the noises).
    pub fn is_random(self) -> bool {
        matches!(
            self,
            Corruption::GaussianNoise | Corruption::ShotNoise | Corruption::ImpulseNoise
        )
    }

    /// The parameter of `severity` (σ, λ, a, r, c or b of the variant's formula).
    pub fn parameter(self, severity: usize) -> Result<f64> {
        if !(1..=MAX_SEVERITY).contains(&severity) {
            return Err(Error::invalid(
                "severity",
                severity,
                format!("must lie in 1..={MAX_SEVERITY}"),
            ));
        }
        let table: [f64; MAX_SEVERITY] = match self {
            Corruption::GaussianNoise => [0.04, 0.06, 0.08, 0.09, 0.10],
            Corruption::ShotNoise => [500.0, 250.0, 100.0, 75.0, 50.0],
            Corruption::ImpulseNoise => [0.01, 0.02, 0.03, 0.05, 0.07],
            Corruption::GaussianBlur => [0.4, 0.6, 0.7, 0.8, 1.0],
            Corruption::BoxBlur => [0.75, 1.0, 1.25, 1.5, 2.0],
            Corruption::Pixelate => [0.95, 0.9, 0.85, 0.75, 0.65],
            Corruption::Contrast => [0.75, 0.5, 0.4, 0.3, 0.15],
            Corruption::Brightness => [0.05, 0.1, 0.15, 0.2, 0.3],
        };
        Ok(table[severity - 1])
    }

    /// Corrupts one image `(channels, height, width)` with values in $[0, 1]$; the random
    /// corruptions draw from stream 0 of `seed` (as item 0 of [`Corruption::apply_batch`]).
    pub fn apply<F: Float>(
        self,
        image: ArrayView3<F>,
        severity: usize,
        seed: u64,
    ) -> Result<Array3<F>> {
        let parameter = self.parameter(severity)?;
        check_unit_image("image", image.view().into_dyn())?;
        self.check_sides("image", image.shape())?;
        Ok(self.apply_checked(image, parameter, seed, 0))
    }

    /// Corrupts a batch `(batch, channels, height, width)`; item `i` draws from stream `i` of
    /// `seed`. Items run in parallel; the result does not depend on the thread count.
    pub fn apply_batch<F: Float>(
        self,
        images: ArrayView4<F>,
        severity: usize,
        seed: u64,
    ) -> Result<Array4<F>> {
        let parameter = self.parameter(severity)?;
        check_unit_image("images", images.view().into_dyn())?;
        self.check_sides("images", images.shape())?;
        let mut out = Array4::zeros(images.raw_dim());
        let items = Array1::from_iter(0..images.len_of(Axis(0)) as u64);
        Zip::from(out.outer_iter_mut())
            .and(images.outer_iter())
            .and(&items)
            .par_for_each(|mut target, image, &item| {
                target.assign(&self.apply_checked(image, parameter, seed, item));
            });
        Ok(out)
    }

    /// The image sides [`Corruption::Pixelate`] can handle (see [`MAX_PIXELATE_SIDE`]); the
    /// other corruptions take any size.
    fn check_sides(self, name: &'static str, shape: &[usize]) -> Result<()> {
        if self == Corruption::Pixelate {
            if let Some(&side) = shape[shape.len() - 2..]
                .iter()
                .find(|&&side| side > MAX_PIXELATE_SIDE)
            {
                return Err(Error::too_large(
                    name,
                    format!("side {side} of {shape:?}"),
                    MAX_PIXELATE_SIDE,
                ));
            }
        }
        Ok(())
    }

    fn apply_checked<F: Float>(
        self,
        image: ArrayView3<F>,
        parameter: f64,
        seed: u64,
        item: u64,
    ) -> Array3<F> {
        let x = image.mapv(|v| v.to_f64_exact());
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(item);
        let y = match self {
            Corruption::GaussianNoise => {
                let normal = Normal::new(0.0, parameter)
                    .expect("σ comes from the severity table (0.04..=0.10), so it is finite");
                x.mapv(|v| v + normal.sample(&mut rng))
            }
            Corruption::ShotNoise => x.mapv(|v| {
                let rate = v * parameter;
                if rate > 0.0 {
                    let poisson = Poisson::new(rate).expect(
                        "rate = x·λ lies in (0, 500]: pixels were checked to lie in [0, 1], λ \
                         comes from the severity table",
                    );
                    poisson.sample(&mut rng) / parameter
                } else {
                    0.0
                }
            }),
            Corruption::ImpulseNoise => x.mapv(|v| {
                if rng.random::<f64>() < parameter {
                    if rng.random::<bool>() {
                        1.0
                    } else {
                        0.0
                    }
                } else {
                    v
                }
            }),
            Corruption::GaussianBlur => {
                let radius = (4.0 * parameter).ceil() as usize;
                let taps: Vec<f64> = (0..=2 * radius)
                    .map(|k| {
                        let d = k as f64 - radius as f64;
                        (-0.5 * d * d / (parameter * parameter)).exp()
                    })
                    .collect();
                separable_blur(&x, &taps)
            }
            Corruption::BoxBlur => {
                let radius = (parameter + 1.0).ceil() as usize;
                let taps: Vec<f64> = (0..=2 * radius)
                    .map(|k| {
                        let d = (k as f64 - radius as f64).abs();
                        (parameter + 1.0 - d).clamp(0.0, 1.0)
                    })
                    .collect();
                separable_blur(&x, &taps)
            }
            Corruption::Pixelate => pixelate(&x, parameter),
            Corruption::Contrast => {
                let mean = x.mean().unwrap_or(0.0);
                x.mapv(|v| (v - mean) * parameter + mean)
            }
            Corruption::Brightness => x.mapv(|v| v + parameter),
        };
        y.mapv(|v| F::from_f64_rounded(v.clamp(0.0, 1.0)))
    }
}

/// A non-empty, finite image with every value in `[0, 1]`.
fn check_unit_image<F: Float>(name: &'static str, image: ndarray::ArrayViewD<F>) -> Result<()> {
    if image.is_empty() {
        return Err(Error::shape(name, "a non-empty image", image.shape()));
    }
    check::finite(name, &image)?;
    if let Some(&outside) = image.iter().find(|&&v| v < F::zero() || v > F::one()) {
        return Err(Error::invalid(
            name,
            outside,
            "pixels must lie in [0, 1] (the corruptions are defined on intensities)",
        ));
    }
    Ok(())
}

/// Correlates every channel with `taps ⊗ taps` (normalised), replicating the edges. The
/// image is non-empty (checked by [`check_unit_image`]), so `n − 1` below cannot underflow.
fn separable_blur(x: &Array3<f64>, taps: &[f64]) -> Array3<f64> {
    let total: f64 = taps.iter().sum();
    let weights: Vec<f64> = taps.iter().map(|t| t / total).collect();
    let radius = (weights.len() / 2) as isize;
    let (channels, h, w) = x.dim();
    let clamp = |i: isize, n: usize| i.clamp(0, n as isize - 1) as usize;
    let mut rows = Array3::<f64>::zeros((channels, h, w));
    let mut out = Array3::<f64>::zeros((channels, h, w));
    for c in 0..channels {
        for i in 0..h {
            for j in 0..w {
                rows[[c, i, j]] = weights
                    .iter()
                    .enumerate()
                    .map(|(k, &wt)| wt * x[[c, i, clamp(j as isize + k as isize - radius, w)]])
                    .sum();
            }
        }
        for i in 0..h {
            for j in 0..w {
                out[[c, i, j]] = weights
                    .iter()
                    .enumerate()
                    .map(|(k, &wt)| wt * rows[[c, clamp(i as isize + k as isize - radius, h), j]])
                    .sum();
            }
        }
    }
    out
}

/// `(small, n)` area-average weights: row `a` averages the pixels of `[a·n/small,
/// (a+1)·n/small)`, weighted by overlap.
fn area_weights(small: usize, n: usize) -> Array2<f64> {
    let scale = n as f64 / small as f64;
    Array2::from_shape_fn((small, n), |(a, i)| {
        let (lo, hi) = (a as f64 * scale, (a + 1) as f64 * scale);
        let overlap = (hi.min(i as f64 + 1.0) - lo.max(i as f64)).max(0.0);
        overlap / scale
    })
}

/// `factor < 1` comes from the table and the sides are at most [`MAX_PIXELATE_SIDE`] (checked
/// by [`Corruption::check_sides`]), so `1 ≤ sh ≤ h`, `i·sh` cannot overflow and
/// `i·sh/h < sh`.
fn pixelate(x: &Array3<f64>, factor: f64) -> Array3<f64> {
    let (channels, h, w) = x.dim();
    let (sh, sw) = (
        ((factor * h as f64).floor() as usize).max(1),
        ((factor * w as f64).floor() as usize).max(1),
    );
    let (ah, aw) = (area_weights(sh, h), area_weights(sw, w));
    let mut out = Array3::zeros((channels, h, w));
    for c in 0..channels {
        let small = ah.dot(&x.index_axis(Axis(0), c)).dot(&aw.t());
        for i in 0..h {
            for j in 0..w {
                out[[c, i, j]] = small[[i * sh / h, j * sw / w]];
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::{assert_abs_diff_eq, assert_relative_eq};

    /// A 3×24×24 test image: a bright square over hash-scrambled texture, inside (0.1, 0.9).
    fn scene() -> Array3<f64> {
        Array3::from_shape_fn((3, 24, 24), |(c, i, j)| {
            let square = if (6..15).contains(&i) && (8..18).contains(&j) {
                0.4
            } else {
                0.0
            };
            let hash = (i * 73_856_093) ^ (j * 19_349_663) ^ (c * 83_492_791);
            0.1 + square + 0.4 * (hash % 1000) as f64 / 1000.0
        })
    }

    fn mean_abs_diff(a: &Array3<f64>, b: &Array3<f64>) -> f64 {
        (a - b).mapv(f64::abs).mean().unwrap()
    }

    #[test]
    fn contrast_keeps_the_mean_and_brightness_shifts_it() {
        let x = scene();
        let m = x.mean().unwrap();
        for s in 1..=5 {
            let y = Corruption::Contrast.apply(x.view(), s, 0).unwrap();
            assert_abs_diff_eq!(y.mean().unwrap(), m, epsilon = 1e-12);
            let c = Corruption::Contrast.parameter(s).unwrap();
            assert_abs_diff_eq!(y[[1, 2, 3]] - m, c * (x[[1, 2, 3]] - m), epsilon = 1e-12);
            let b = Corruption::Brightness.parameter(s).unwrap();
            let z = Corruption::Brightness.apply(x.view(), s, 0).unwrap();
            let expected = x.mapv(|v| (v + b).min(1.0)).mean().unwrap();
            assert_abs_diff_eq!(z.mean().unwrap(), expected, epsilon = 1e-12);
            assert!(z.mean().unwrap() > m);
        }
    }

    #[test]
    fn noise_statistics_match_the_severity() {
        let x = Array3::<f64>::from_elem((3, 64, 64), 0.5);
        let n = x.len() as f64;
        for s in [1, 5] {
            let sigma = Corruption::GaussianNoise.parameter(s).unwrap();
            let y = Corruption::GaussianNoise.apply(x.view(), s, 11).unwrap();
            let d = &y - &x;
            let std = (d.mapv(|v| v * v).sum() / n).sqrt();
            assert_relative_eq!(std, sigma, max_relative = 0.05);
            assert_abs_diff_eq!(d.mean().unwrap(), 0.0, epsilon = 4.0 * sigma / n.sqrt());

            let lambda = Corruption::ShotNoise.parameter(s).unwrap();
            let y = Corruption::ShotNoise.apply(x.view(), s, 12).unwrap();
            let var = (&y - &x).mapv(|v| v * v).sum() / n;
            let expected = 0.5 / lambda;
            assert_relative_eq!(var, expected, max_relative = 0.1);

            let a = Corruption::ImpulseNoise.parameter(s).unwrap();
            let y = Corruption::ImpulseNoise.apply(x.view(), s, 13).unwrap();
            let hit = y.iter().filter(|&&v| v != 0.5).count() as f64 / n;
            let se = (a * (1.0 - a) / n).sqrt();
            assert_abs_diff_eq!(hit, a, epsilon = 4.0 * se);
            assert!(y.iter().all(|&v| v == 0.5 || v == 0.0 || v == 1.0));
        }
    }

    #[test]
    fn blurs_and_pixelation_keep_constant_images_and_the_mean_of_interiors() {
        let x = Array3::<f32>::from_elem((2, 9, 13), 0.3);
        for corruption in [
            Corruption::GaussianBlur,
            Corruption::BoxBlur,
            Corruption::Pixelate,
            Corruption::Contrast,
        ] {
            for s in 1..=5 {
                let y = corruption.apply(x.view(), s, 0).unwrap();
                for &v in y.iter() {
                    assert_abs_diff_eq!(v, 0.3, epsilon = 1e-6);
                }
            }
        }
        // A single bright pixel far from the edges spreads with the blur's kernel mass.
        let mut dot = Array3::<f64>::zeros((1, 21, 21));
        dot[[0, 10, 10]] = 1.0;
        let y = Corruption::GaussianBlur.apply(dot.view(), 5, 0).unwrap();
        assert_abs_diff_eq!(y.sum(), 1.0, epsilon = 1e-12);
        // σ = 1: the centre keeps g(0)² with g the normalised 1-D Gaussian taps.
        let g: Vec<f64> = (-4..=4)
            .map(|d: i32| (-0.5 * f64::from(d * d)).exp())
            .collect();
        let g0 = 1.0 / g.iter().sum::<f64>();
        assert_abs_diff_eq!(y[[0, 10, 10]], g0 * g0, epsilon = 1e-12);
        let y = Corruption::BoxBlur.apply(dot.view(), 2, 0).unwrap();
        // r = 1: a full 3×3 box.
        assert_abs_diff_eq!(y[[0, 9, 11]], 1.0 / 9.0, epsilon = 1e-12);
        assert_abs_diff_eq!(y[[0, 8, 10]], 0.0, epsilon = 1e-12);
    }

    #[test]
    fn pixelate_averages_blocks() {
        // 4 → 2 (factor 0.65 of 4 is 2.6 → 2): 2×2 block means, repeated.
        let x = Array3::from_shape_fn((1, 4, 4), |(_, i, j)| (i * 4 + j) as f64 / 16.0);
        let y = Corruption::Pixelate.apply(x.view(), 5, 0).unwrap();
        let block = (0.0 + 1.0 + 4.0 + 5.0) / 4.0 / 16.0;
        for (i, j) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
            assert_abs_diff_eq!(y[[0, i, j]], block, epsilon = 1e-12);
        }
        assert_abs_diff_eq!(
            y[[0, 3, 3]],
            (10.0 + 11.0 + 14.0 + 15.0) / 64.0,
            epsilon = 1e-12
        );
    }

    #[test]
    fn severity_moves_the_image_further_from_the_clean_one() {
        // Pixelation is excluded: down-sampling to 22 of 24 rows can move an image further
        // than to 20 (misaligned cells); its severity is tested by the resolution it keeps.
        let x = scene();
        for corruption in Corruption::ALL
            .into_iter()
            .filter(|&c| c != Corruption::Pixelate)
        {
            let distances: Vec<f64> = (1..=5)
                .map(|s| mean_abs_diff(&corruption.apply(x.view(), s, 3).unwrap(), &x))
                .collect();
            assert!(distances[0] > 0.0, "{corruption:?}: {distances:?}");
            for pair in distances.windows(2) {
                assert!(pair[1] > pair[0], "{corruption:?}: {distances:?}");
            }
        }
    }

    #[test]
    fn pixelate_keeps_fewer_distinct_rows_as_severity_grows() {
        let x = scene();
        let mut previous = usize::MAX;
        for s in 1..=5 {
            let y = Corruption::Pixelate.apply(x.view(), s, 0).unwrap();
            let rows: Vec<Vec<u64>> = y
                .index_axis(Axis(0), 0)
                .rows()
                .into_iter()
                .map(|r| r.iter().map(|v| v.to_bits()).collect())
                .collect();
            let mut distinct = rows.clone();
            distinct.dedup();
            let c = Corruption::Pixelate.parameter(s).unwrap();
            assert_eq!(distinct.len(), (c * 24.0_f64).floor() as usize);
            assert!(distinct.len() < previous);
            previous = distinct.len();
        }
    }

    #[test]
    fn seeds_determine_the_noise_and_batches_agree_with_items() {
        let x = scene().mapv(|v| v as f32);
        let batch = ndarray::stack![Axis(0), x, x.mapv(|v| 1.0 - v)];
        for corruption in Corruption::ALL {
            let a = corruption.apply_batch(batch.view(), 4, 7).unwrap();
            let b = corruption.apply_batch(batch.view(), 4, 7).unwrap();
            assert_eq!(a, b);
            assert_eq!(
                a.index_axis(Axis(0), 0),
                corruption.apply(x.view(), 4, 7).unwrap()
            );
            let other = corruption.apply_batch(batch.view(), 4, 8).unwrap();
            assert_eq!(a != other, corruption.is_random(), "{corruption:?}");
            if corruption.is_random() {
                // Items draw from different streams.
                let first = &a.index_axis(Axis(0), 0) - &x;
                let second = &a.index_axis(Axis(0), 1) - &x.mapv(|v| 1.0 - v);
                assert_ne!(first, second.mapv(|v| -v));
            }
        }
        let one = tessera_testing::in_rayon_pool(1, || {
            Corruption::ShotNoise
                .apply_batch(batch.view(), 3, 5)
                .unwrap()
        });
        let four = tessera_testing::in_rayon_pool(4, || {
            Corruption::ShotNoise
                .apply_batch(batch.view(), 3, 5)
                .unwrap()
        });
        assert_eq!(one, four);
    }

    #[test]
    fn bad_input_is_an_error_naming_the_value() {
        let x = scene();
        for bad in [0, 6] {
            let e = Corruption::Contrast.apply(x.view(), bad, 0).unwrap_err();
            assert!(e.to_string().contains("severity"), "{e}");
            assert!(e.to_string().contains(&bad.to_string()), "{e}");
        }
        let mut nan = x.clone();
        nan[[0, 1, 2]] = f64::NAN;
        let e = Corruption::GaussianNoise
            .apply(nan.view(), 1, 0)
            .unwrap_err();
        assert!(
            e.to_string().contains("image") && e.to_string().contains("NaN"),
            "{e}"
        );
        let mut high = x.clone();
        high[[2, 0, 0]] = 1.5;
        let e = Corruption::Brightness.apply(high.view(), 1, 0).unwrap_err();
        assert!(e.to_string().contains("1.5"), "{e}");
        let empty = Array4::<f32>::zeros((0, 3, 8, 8));
        let e = Corruption::Pixelate
            .apply_batch(empty.view(), 1, 0)
            .unwrap_err();
        assert!(e.to_string().contains("images"), "{e}");
        let flat = Array3::<f32>::zeros((3, 0, 8));
        assert!(Corruption::GaussianBlur.apply(flat.view(), 1, 0).is_err());
    }
}
