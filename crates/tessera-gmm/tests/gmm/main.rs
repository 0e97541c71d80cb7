//! Integration tests of tessera-gmm: gradients against finite differences, the attention
//! kernel against a naive implementation, mask geometry, numerical robustness, determinism
//! across thread counts, and bad input.

mod common;
mod gradients;
mod properties;
mod robustness;
