//! The layers of the engine. Each implements [`crate::Layer`]; shapes are batch-first and
//! images NCHW, as in PyTorch, so that golden values line up.

mod activations;
// The attention layer (multi-head self-attention with a pluggable `LogitMask`) is added here
// as `pub mod attention;` by its owner once `attention.rs` exists.
pub mod attention;
mod conv;
mod dense;
mod dropout;
#[cfg(feature = "cuda")]
mod gpu;
mod norm;
mod pool;
mod shape;
mod tokens;
pub(crate) mod util;

pub use activations::{Gelu, LeakyRelu, Relu, Tanh};
pub use conv::Conv2d;
pub use dense::Dense;
pub use dropout::Dropout;
pub use norm::{BatchNorm, LayerNorm};
pub use pool::{AvgPool2d, GlobalAvgPool, MaxPool2d};
pub use shape::Flatten;
pub use tokens::{patchify, PositionEmbedding, TokenMeanPool};
