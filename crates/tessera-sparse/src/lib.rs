#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod error;
#[cfg(feature = "cuda")]
mod gpu;
pub use error::{Error, InputError, Result};

pub use tessera_core::Float;

pub mod mask;
pub use mask::Mask;

pub mod allocation;
pub use allocation::{layer_densities, Allocation, DensitySource, LayerDensities, LayerShape};

pub mod sampling;
pub use sampling::{exact_kept_count, sample_masks, MaskPolicy, Sampling, MAX_SAMPLED_MASK_LEN};

pub mod criteria;
pub use criteria::{
    global_magnitude_masks, global_snip_masks, global_top_k_masks, magnitude_mask, oracle_mask,
    snip_mask, snip_scores, top_k_mask, OracleResult, OracleSearch,
};

pub mod csr;
pub use csr::{CsrMatrix, SpmmKernel, PANEL_CACHE_BYTES, PANEL_MIN_ENTRIES_PER_ROW};

pub mod rank;
pub use rank::{anomaly_ratio, average_ranks, kendall_tau_b, spearman_rho, Objective};

pub mod io;
pub use io::{
    layer_shapes_from_bytes, masks_from_bytes, masks_to_bytes, read_layer_shapes, read_masks,
    weights_only, write_masks, MaskDtype,
};
