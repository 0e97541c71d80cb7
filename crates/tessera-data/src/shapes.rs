//! A generated image classification task: shapes and textures with class-dependent
//! structure, random placement, size, colours and pixel noise, deterministic from a seed.

use ndarray::{Array3, Array4, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use tessera_core::RejectInput;

use crate::dataset::ImageDataset;
use crate::error::{Error, Result};
use crate::hash::mix_seed;

/// Names of the generated classes, in label order (a configuration uses the first
/// `n_classes`).
pub const SHAPE_CLASSES: [&str; 10] = [
    "disk",
    "square",
    "triangle",
    "ring",
    "cross",
    "horizontal-stripes",
    "vertical-stripes",
    "diagonal-stripes",
    "checkerboard",
    "dots",
];

/// Largest number of pixel values (`n_classes · images_per_class · channels · height · width`)
/// a [`ShapesConfig`] may ask for, checked by [`Shapes::new`] before anything is allocated
/// (2³⁰ values: 4 GiB of `f32`).
pub const SHAPES_MAX_VALUES: usize = 1 << 30;

/// Settings of the image generator; the default is 10 classes of 3×32×32 images.
#[derive(Debug, Clone, PartialEq)]
pub struct ShapesConfig {
    /// Number of classes, `2..=10` (the first entries of [`SHAPE_CLASSES`]).
    pub n_classes: usize,
    /// Images of each class (exactly class-balanced); the whole task holds at most
    /// [`SHAPES_MAX_VALUES`] pixel values.
    pub images_per_class: usize,
    /// Colour channels, 1 (grey) or 3 (RGB).
    pub channels: usize,
    /// Image height in pixels, `8..=512`.
    pub height: usize,
    /// Image width in pixels, `8..=512`.
    pub width: usize,
    /// Standard deviation of the additive Gaussian pixel noise, `[0, 1]`.
    pub noise_std: f64,
    /// Seed: the same seed gives the same images bit for bit.
    pub seed: u64,
}

impl Default for ShapesConfig {
    fn default() -> Self {
        Self {
            n_classes: 10,
            images_per_class: 100,
            channels: 3,
            height: 32,
            width: 32,
            noise_std: 0.1,
            seed: 0,
        }
    }
}

/// The checked generator. Image `i` has label `i % n_classes` and its own random stream
/// derived from `(seed, i)`.
#[derive(Debug, Clone)]
pub struct Shapes {
    config: ShapesConfig,
}

impl Shapes {
    /// Checks `config`.
    ///
    /// # Errors
    /// Any field outside the range its documentation gives.
    pub fn new(config: ShapesConfig) -> Result<Self> {
        if !(2..=SHAPE_CLASSES.len()).contains(&config.n_classes) {
            return Err(Error::invalid(
                "n_classes",
                config.n_classes,
                format!("must lie in 2..={}", SHAPE_CLASSES.len()),
            ));
        }
        if config.images_per_class == 0 {
            return Err(Error::invalid("images_per_class", 0, "must be at least 1"));
        }
        if config.channels != 1 && config.channels != 3 {
            return Err(Error::invalid(
                "channels",
                config.channels,
                "must be 1 or 3",
            ));
        }
        for (name, size) in [("height", config.height), ("width", config.width)] {
            if !(8..=512).contains(&size) {
                return Err(Error::invalid(name, size, "must lie in 8..=512"));
            }
        }
        if !(config.noise_std.is_finite() && (0.0..=1.0).contains(&config.noise_std)) {
            return Err(Error::invalid(
                "noise_std",
                config.noise_std,
                "must lie in [0, 1]",
            ));
        }
        // Also bounds `len()` (no overflow) and the allocation of `generate()`.
        tessera_core::check::element_count(
            "images_per_class",
            &[
                config.n_classes,
                config.images_per_class,
                config.channels,
                config.height,
                config.width,
            ],
            SHAPES_MAX_VALUES,
        )?;
        Ok(Self { config })
    }

    /// The configuration.
    pub fn config(&self) -> &ShapesConfig {
        &self.config
    }

    /// Total number of images (cannot overflow: [`Shapes::new`] bounds it).
    pub fn len(&self) -> usize {
        self.config.n_classes * self.config.images_per_class
    }

    /// Always false for a checked configuration.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Label of image `index`.
    pub fn label(&self, index: usize) -> usize {
        index % self.config.n_classes
    }

    /// Image `index` alone, `(channels, height, width)`.
    ///
    /// # Errors
    /// `index >= len()`.
    pub fn image(&self, index: usize) -> Result<Array3<f32>> {
        if index >= self.len() {
            return Err(Error::invalid(
                "index",
                index,
                format!("the task has {} images", self.len()),
            ));
        }
        Ok(self.draw(index))
    }

    /// Every image, `(n, channels, height, width)`.
    pub fn generate(&self) -> ImageDataset {
        use rayon::prelude::*;
        let c = &self.config;
        let drawn: Vec<Array3<f32>> = (0..self.len())
            .into_par_iter()
            .map(|index| self.draw(index))
            .collect();
        let mut images = Array4::zeros((self.len(), c.channels, c.height, c.width));
        for (mut slot, image) in images.axis_iter_mut(Axis(0)).zip(drawn) {
            slot.assign(&image);
        }
        ImageDataset {
            images,
            labels: (0..self.len()).map(|i| self.label(i)).collect(),
            class_names: SHAPE_CLASSES[..c.n_classes]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }
    }

    fn draw(&self, index: usize) -> Array3<f32> {
        let c = &self.config;
        let mut rng = ChaCha8Rng::seed_from_u64(mix_seed(c.seed, index as u64));
        let class = self.label(index);
        let (h, w) = (c.height as f64, c.width as f64);
        let side = h.min(w);

        // Colours: a dark background and a bright foreground, independent of the class so
        // that only structure identifies it.
        let background: Vec<f64> = (0..c.channels)
            .map(|_| rng.random_range(0.0..=0.35))
            .collect();
        let foreground: Vec<f64> = (0..c.channels)
            .map(|_| rng.random_range(0.6..=1.0))
            .collect();

        // Placement: centre within the middle half, radius 20–40% of the shorter side.
        let cy = h / 2.0 + rng.random_range(-0.15..=0.15) * h;
        let cx = w / 2.0 + rng.random_range(-0.15..=0.15) * w;
        let radius = rng.random_range(0.2..=0.4) * side;
        // Textures: period 3–6 px at 32 px, scaled with the image; random phase; they fill
        // a random rectangle covering at least half of each side.
        let period = rng.random_range(3.0..=6.0) * side / 32.0;
        let phase = rng.random_range(0.0..period);
        let (ry0, ry1) = random_span(&mut rng, h);
        let (rx0, rx1) = random_span(&mut rng, w);
        let stroke = (radius * rng.random_range(0.25..=0.4)).max(1.0);

        let inside = |y: f64, x: f64| -> bool {
            let (dy, dx) = (y - cy, x - cx);
            let in_rect = y >= ry0 && y < ry1 && x >= rx0 && x < rx1;
            let stripe = |coordinate: f64| ((coordinate + phase) / period).rem_euclid(1.0) < 0.5;
            match class {
                0 => dy * dy + dx * dx <= radius * radius,
                1 => dy.abs() <= radius * 0.85 && dx.abs() <= radius * 0.85,
                2 => {
                    // Upward isosceles triangle inscribed in the circle.
                    let top = cy - radius;
                    let bottom = cy + radius * 0.7;
                    y >= top && y <= bottom && dx.abs() <= (y - top) / (bottom - top) * radius
                }
                3 => {
                    let r = (dy * dy + dx * dx).sqrt();
                    r <= radius && r >= radius - stroke
                }
                4 => {
                    (dy.abs() <= stroke / 2.0 && dx.abs() <= radius)
                        || (dx.abs() <= stroke / 2.0 && dy.abs() <= radius)
                }
                5 => in_rect && stripe(y),
                6 => in_rect && stripe(x),
                7 => in_rect && stripe((x + y) / std::f64::consts::SQRT_2),
                8 => in_rect && (stripe(x) ^ stripe(y)),
                _ => {
                    let fy = ((y + phase) / period).rem_euclid(1.0) - 0.5;
                    let fx = ((x + phase) / period).rem_euclid(1.0) - 0.5;
                    in_rect && fy * fy + fx * fx <= 0.09
                }
            }
        };

        let noise =
            Normal::new(0.0, c.noise_std).expect("Shapes::new checked that noise_std is finite");
        let mut image = Array3::zeros((c.channels, c.height, c.width));
        for y in 0..c.height {
            for x in 0..c.width {
                let on = inside(y as f64 + 0.5, x as f64 + 0.5);
                for ch in 0..c.channels {
                    let base = if on { foreground[ch] } else { background[ch] };
                    let value = base + noise.sample(&mut rng);
                    image[[ch, y, x]] = value.clamp(0.0, 1.0) as f32;
                }
            }
        }
        image
    }
}

/// A random interval of `[0, extent)` covering at least half of it.
fn random_span(rng: &mut ChaCha8Rng, extent: f64) -> (f64, f64) {
    let length = rng.random_range(0.5..=1.0) * extent;
    let start = rng.random_range(0.0..=extent - length);
    (start, start + length)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_have_the_configured_size_and_range() {
        let shapes = Shapes::new(ShapesConfig {
            images_per_class: 2,
            channels: 1,
            height: 16,
            width: 24,
            ..ShapesConfig::default()
        })
        .unwrap();
        let data = shapes.generate();
        assert_eq!(data.images.dim(), (20, 1, 16, 24));
        assert!(data.images.iter().all(|&p| (0.0..=1.0).contains(&p)));
        assert_eq!(shapes.image(3).unwrap(), data.images.index_axis(Axis(0), 3));
    }

    #[test]
    fn noiseless_disks_are_round_and_stripes_are_periodic() {
        let shapes = Shapes::new(ShapesConfig {
            noise_std: 0.0,
            channels: 1,
            ..ShapesConfig::default()
        })
        .unwrap();
        // A disk is symmetric about its centre row within a pixel; count foreground pixels.
        let disk = shapes.image(0).unwrap();
        let max = disk.fold(0f32, |a, &b| a.max(b));
        let on = disk.iter().filter(|&&p| p == max).count() as f64;
        assert!(
            on > std::f64::consts::PI * (0.2f64 * 32.0).powi(2) * 0.7,
            "{on}"
        );
        // Horizontal stripes: every row is constant.
        let stripes = shapes.image(5).unwrap();
        for row in stripes.index_axis(Axis(0), 0).outer_iter() {
            let changes = row.windows(2).into_iter().filter(|w| w[0] != w[1]).count();
            assert!(
                changes <= 2,
                "a row crosses only the texture's rectangle edges"
            );
        }
    }

    #[test]
    fn bad_configs_name_the_field() {
        for (config, field) in [
            (
                ShapesConfig {
                    channels: 2,
                    ..ShapesConfig::default()
                },
                "channels",
            ),
            (
                ShapesConfig {
                    height: 4,
                    ..ShapesConfig::default()
                },
                "height",
            ),
            (
                ShapesConfig {
                    noise_std: -0.1,
                    ..ShapesConfig::default()
                },
                "noise_std",
            ),
            (
                ShapesConfig {
                    n_classes: 11,
                    ..ShapesConfig::default()
                },
                "n_classes",
            ),
        ] {
            let err = Shapes::new(config).unwrap_err().to_string();
            assert!(err.contains(field), "{err}");
        }
    }

    #[test]
    fn huge_tasks_are_errors_before_len_overflows_or_generate_allocates() {
        for images_per_class in [usize::MAX, usize::MAX / 2, SHAPES_MAX_VALUES] {
            let err = Shapes::new(ShapesConfig {
                images_per_class,
                ..ShapesConfig::default()
            })
            .unwrap_err()
            .to_string();
            assert!(err.contains("`images_per_class`"), "{err}");
        }
        // The largest task that fits is accepted (and not generated here).
        let per_image = 10 * 3 * 32 * 32;
        let shapes = Shapes::new(ShapesConfig {
            images_per_class: SHAPES_MAX_VALUES / per_image,
            ..ShapesConfig::default()
        })
        .unwrap();
        assert_eq!(shapes.len(), 10 * (SHAPES_MAX_VALUES / per_image));
        assert_eq!(shapes.image(shapes.len() - 1).unwrap().dim(), (3, 32, 32));
    }
}
