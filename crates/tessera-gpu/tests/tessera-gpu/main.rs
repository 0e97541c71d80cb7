//! Integration tests of tessera-gpu: NVRTC compilation of every kernel, the kernels' index
//! arithmetic on the CPU through the host shim, and GPU-vs-CPU parity when a device exists.

mod dense;
mod fourier;
mod gmm_attention;
mod local_complexity;
mod nn;
mod nvrtc;
mod shim;

use tessera_gpu::GpuContext;

/// The device for a parity test, or `None` after printing the one line that says it was
/// skipped. `TESSERA_REQUIRE_GPU=1` (set on a GPU machine) turns a missing device into a
/// failure, so that a parity run cannot pass by skipping.
pub fn device() -> Option<GpuContext> {
    match GpuContext::new(0) {
        Ok(context) => Some(context),
        Err(e) => {
            assert!(
                std::env::var_os("TESSERA_REQUIRE_GPU").is_none(),
                "TESSERA_REQUIRE_GPU is set but no device: {e}"
            );
            println!("skipped: no CUDA device ({e})");
            None
        }
    }
}

/// Largest relative difference `|a − b| / max(|b|, floor)` between two equally long slices.
pub fn max_relative_difference(found: &[f32], expected: &[f32], floor: f32) -> f32 {
    assert_eq!(found.len(), expected.len(), "lengths differ");
    found
        .iter()
        .zip(expected)
        .map(|(&a, &b)| {
            if a.is_nan() || b.is_nan() {
                f32::INFINITY
            } else {
                (a - b).abs() / b.abs().max(floor)
            }
        })
        .fold(0.0, f32::max)
}

/// A fresh seed for parity tests ("fresh random inputs every run"), printed so that a failure
/// can be replayed with `TESSERA_GPU_SEED`.
pub fn fresh_seed() -> u64 {
    let seed = std::env::var("TESSERA_GPU_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0)
        });
    println!("seed {seed} (replay with TESSERA_GPU_SEED={seed})");
    seed
}
mod augment;
mod logmel;
mod sparse;
