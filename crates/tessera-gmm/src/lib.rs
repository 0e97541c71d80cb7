#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod error;
pub use error::{Error, InputError, Result};

pub use tessera_core::{Float, LogitMask, MaskCombine};

pub mod grid;
pub use grid::TokenGrid;

pub mod mask;
pub use mask::{mask_array, ElementwiseMask, GaussianMixtureMask, DEFAULT_KERNELS};

pub mod attention;
pub use attention::{
    attention_backward, attention_backward_view, attention_forward, AttentionCache,
    AttentionCacheView, AttentionGradients, MaskRef,
};

#[cfg(feature = "cuda")]
mod gpu;

pub mod svg;
pub use svg::{kernel_svg, mask_svg};
