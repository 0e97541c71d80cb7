#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod complexity;
pub mod error;
pub mod geometry;
pub mod net;
pub mod partition;
pub mod pattern;
pub mod segment;
pub mod sequential;
pub mod svg;

pub use complexity::{
    orthonormal_frame, LocalComplexity, LocalComplexityConfig, LocalComplexityEstimator,
};
pub use error::{Error, InputError, Result};
pub use geometry::{Point, Polygon};
pub use net::{AffineLayer, LayerInfo, PiecewiseLinear, PiecewiseLinearNet, PlActivation};
pub use partition::{ClassCell, Partition2d, PartitionConfig, Plane, Region};
pub use pattern::ActivationPatterns;
pub use segment::SegmentPartition;
pub use svg::SvgOptions;
pub use tessera_core::Float;
