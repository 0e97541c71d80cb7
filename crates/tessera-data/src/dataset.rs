//! In-memory labelled datasets: fixed-length audio clips and images.

use ndarray::{Array2, Array4, ArrayView1, Axis};
use tessera_core::RejectInput;

use crate::error::{Error, Result};
use crate::split::class_counts;

/// `len`, `is_empty`, `n_classes` and `class_counts` of a dataset type with `labels` and
/// `class_names` fields; `$items` names its items in the docs.
macro_rules! labelled_counts {
    ($dataset:ty, $items:literal) => {
        impl $dataset {
            #[doc = concat!("Number of ", $items, ".")]
            pub fn len(&self) -> usize {
                self.labels.len()
            }

            #[doc = concat!("Whether there are no ", $items, ".")]
            pub fn is_empty(&self) -> bool {
                self.labels.is_empty()
            }

            /// Number of classes.
            pub fn n_classes(&self) -> usize {
                self.class_names.len()
            }

            #[doc = concat!(
                "The number of ", $items, " per class.\n\n# Errors\nOnly for an empty dataset."
            )]
            pub fn class_counts(&self) -> Result<Vec<usize>> {
                class_counts(&self.labels, self.n_classes())
            }
        }
    };
}

labelled_counts!(AudioDataset, "clips");
labelled_counts!(ImageDataset, "images");

/// Fixed-length mono audio clips with integer labels.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioDataset {
    /// One clip per row, `(n_items, clip_samples)`, samples in about $[-1, 1]$.
    pub clips: Array2<f32>,
    /// The class of each clip, `< class_names.len()`.
    pub labels: Vec<usize>,
    /// Class names, indexed by label.
    pub class_names: Vec<String>,
    /// Sample rate of every clip in Hz.
    pub sample_rate: u32,
    /// A stable, unique key per clip (a relative path for loaded data, `"<task>-<seed>-<index>"`
    /// for generated data); [`crate::FeatureCache`] files are named after it.
    pub ids: Vec<String>,
    /// Official cross-validation fold of each clip, when the dataset defines folds.
    pub folds: Option<Vec<usize>>,
}

impl AudioDataset {
    /// Samples per clip.
    pub fn clip_samples(&self) -> usize {
        self.clips.ncols()
    }

    /// Checks that the public fields agree: one clip row, id and fold per label, labels
    /// `< class_names.len()`, a positive sample rate. The fields are public, so a hand-built
    /// dataset can disagree; every method that indexes several fields (and the parallel
    /// [`crate::FeatureCache::compute_dataset`]) calls this first instead of panicking.
    ///
    /// # Errors
    /// The first disagreeing field, named with its length or value.
    pub fn validate(&self) -> Result<()> {
        let n = self.labels.len();
        check_one_per_label("clips", self.clips.nrows(), "row", "rows", n)?;
        check_one_per_label("ids", self.ids.len(), "id", "ids", n)?;
        if let Some(folds) = &self.folds {
            check_one_per_label("folds", folds.len(), "fold", "folds", n)?;
        }
        check_labels(&self.labels, self.class_names.len())?;
        if self.sample_rate == 0 {
            return Err(Error::invalid("sample_rate", 0, "must be positive"));
        }
        Ok(())
    }

    /// Clip `index` as a view.
    ///
    /// # Panics
    /// If `index >= len()` (like slice indexing).
    pub fn clip(&self, index: usize) -> ArrayView1<'_, f32> {
        self.clips.row(index)
    }

    /// The clips at `indices`, in that order (labels, ids and folds follow).
    ///
    /// # Errors
    /// An index `>= len()`.
    pub fn subset(&self, indices: &[usize]) -> Result<Self> {
        self.validate()?;
        check_indices(indices, self.len())?;
        Ok(Self {
            clips: self.clips.select(Axis(0), indices),
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            class_names: self.class_names.clone(),
            sample_rate: self.sample_rate,
            ids: indices.iter().map(|&i| self.ids[i].clone()).collect(),
            folds: self
                .folds
                .as_ref()
                .map(|folds| indices.iter().map(|&i| folds[i]).collect()),
        })
    }
}

/// Images with integer labels, `(n_items, channels, height, width)` (PyTorch's NCHW order),
/// pixel values in $[0, 1]$.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageDataset {
    /// The images, NCHW.
    pub images: Array4<f32>,
    /// The class of each image, `< class_names.len()`.
    pub labels: Vec<usize>,
    /// Class names, indexed by label.
    pub class_names: Vec<String>,
}

impl ImageDataset {
    /// Checks that the public fields agree: one image per label, labels
    /// `< class_names.len()`.
    ///
    /// # Errors
    /// The first disagreeing field, named with its length or value.
    pub fn validate(&self) -> Result<()> {
        let n = self.labels.len();
        check_one_per_label("images", self.images.len_of(Axis(0)), "image", "images", n)?;
        check_labels(&self.labels, self.class_names.len())
    }

    /// The images flattened to rows, `(n_items, channels·height·width)`, for MLPs.
    pub fn flattened(&self) -> Array2<f32> {
        let n = self.images.len_of(Axis(0));
        let features = self.images.len() / n.max(1);
        self.images
            .as_standard_layout()
            .into_owned()
            .into_shape_with_order((n, features))
            .expect("a standard-layout array reshapes to (n, c·h·w)")
    }

    /// The images at `indices`, in that order.
    ///
    /// # Errors
    /// An index `>= len()`.
    pub fn subset(&self, indices: &[usize]) -> Result<Self> {
        self.validate()?;
        check_indices(indices, self.len())?;
        Ok(Self {
            images: self.images.select(Axis(0), indices),
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            class_names: self.class_names.clone(),
        })
    }
}

/// `count` (of field `name`, counted in `unit`s) equals the number of labels `n`.
fn check_one_per_label(
    name: &'static str,
    count: usize,
    unit: &str,
    units: &str,
    n: usize,
) -> Result<()> {
    if count != n {
        return Err(Error::invalid(
            name,
            format!("{count} {units}"),
            format!("must have one {unit} per label ({n})"),
        ));
    }
    Ok(())
}

fn check_labels(labels: &[usize], n_classes: usize) -> Result<()> {
    match labels.iter().position(|&l| l >= n_classes) {
        Some(i) => Err(Error::invalid(
            "labels",
            format!("labels[{i}] = {}", labels[i]),
            format!("must be < the {n_classes} class names"),
        )),
        None => Ok(()),
    }
}

fn check_indices(indices: &[usize], len: usize) -> Result<()> {
    match indices.iter().find(|&&i| i >= len) {
        Some(&bad) => Err(Error::invalid(
            "indices",
            bad,
            format!("index out of range for a dataset of {len} items"),
        )),
        None => Ok(()),
    }
}
