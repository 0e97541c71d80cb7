//! The CUDA C sources of the kernels (`kernels/*.cu`) and their compilation with NVRTC.
//!
//! Sources are embedded in the binary and compiled once per [`crate::GpuContext`] on first
//! use. `--fmad=false` keeps every multiply and add separately rounded, as Rust computes
//! them, so that kernels which sum in the CPU crate's order give the CPU's result bit for bit.

use crate::{GpuError, Result};

/// The prelude prepended to every source: the grid-stride loop macro.
pub const COMMON: &str = include_str!("../kernels/common.cuh");

/// One kernel source file and the entry points it defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelSource {
    /// File name under `kernels/`, without `.cu`.
    pub name: &'static str,
    /// The CUDA C source (without [`COMMON`]).
    pub source: &'static str,
    /// The `extern "C" __global__` functions it defines.
    pub entry_points: &'static [&'static str],
}

/// Batched log-mel spectrogram (framing, power + mel, per-item maximum, decibels).
pub const LOGMEL: KernelSource = KernelSource {
    name: "logmel",
    source: include_str!("../kernels/logmel.cu"),
    entry_points: &[
        "logmel_frames",
        "logmel_power_mel",
        "logmel_partial_max",
        "logmel_item_max",
        "logmel_to_db",
    ],
};

/// Mixup and spectrogram rectangle masks.
pub const AUGMENT: KernelSource = KernelSource {
    name: "augment",
    source: include_str!("../kernels/augment.cu"),
    entry_points: &["mixup", "fill_rectangles"],
};

/// CSR × dense product and the masked weight gradient.
pub const SPARSE: KernelSource = KernelSource {
    name: "sparse",
    source: include_str!("../kernels/sparse.cu"),
    entry_points: &["csr_matmul", "csr_masked_gradient"],
};

/// Gaussian-mixture mask generation fused with masked softmax attention, and its backward pass.
pub const GMM_ATTENTION: KernelSource = KernelSource {
    name: "gmm_attention",
    source: include_str!("../kernels/gmm_attention.cu"),
    entry_points: &[
        "gmm_mask",
        "gmm_class_values",
        "gmm_attention_forward",
        "attention_batched_matmul",
        "attention_row_dot",
        "attention_softmax_backward",
        "gmm_attention_grad_mask",
        "attention_apply_mask",
        "gmm_class_grad",
        "gmm_parameter_grad",
        "attention_nonfinite_partial",
        "attention_nonfinite_total",
    ],
};

/// Bias add (+ ReLU), bias gradient, im2col, col2im and the batch sum of the weight gradient
/// of tessera-nn's Dense and Conv2d.
pub const NN: KernelSource = KernelSource {
    name: "nn",
    source: include_str!("../kernels/nn.cu"),
    entry_points: &[
        "nn_bias_add",
        "nn_bias_grad",
        "nn_im2col",
        "nn_col2im",
        "nn_sum_batch",
    ],
};

/// Local complexity: cross-polytope vertices, the dense forward pass with error bounds, and
/// the per-neuron / per-sample sign-change reduction.
pub const LOCAL_COMPLEXITY: KernelSource = KernelSource {
    name: "local_complexity",
    source: include_str!("../kernels/local_complexity.cu"),
    entry_points: &[
        "lc_vertices",
        "lc_dense_forward",
        "lc_neuron_changes",
        "lc_sample_counts",
    ],
};

/// Fourier low-pass crop: gather of the kept bins of a 2-D real FFT, and the real part.
pub const FOURIER: KernelSource = KernelSource {
    name: "fourier",
    source: include_str!("../kernels/fourier.cu"),
    entry_points: &["fourier_gather", "fourier_real_part"],
};

/// Every kernel source of the crate (CI compiles each with NVRTC).
pub const ALL: &[KernelSource] = &[
    LOGMEL,
    AUGMENT,
    SPARSE,
    GMM_ATTENTION,
    NN,
    LOCAL_COMPLEXITY,
    FOURIER,
];

impl KernelSource {
    /// The full text handed to NVRTC: [`COMMON`] then the source.
    pub fn full_source(&self) -> String {
        format!("{COMMON}\n{}", self.source)
    }
}

/// Whether the NVRTC library can be loaded (it may be present without a GPU, e.g. from the
/// PyPI package `nvidia-cuda-nvrtc` on `LD_LIBRARY_PATH`).
pub fn nvrtc_available() -> bool {
    // SAFETY: only tries to dlopen the NVRTC library by its candidate names; calls nothing in it.
    unsafe { cudarc::nvrtc::sys::is_culib_present() }
}

/// Compiles `kernel` to PTX with NVRTC (needs the NVRTC library, not a GPU).
///
/// # Errors
/// [`GpuError::Unavailable`] without the NVRTC library; [`GpuError::Compile`] with the
/// compiler's log when the source does not compile.
pub fn compile_to_ptx(kernel: &KernelSource) -> Result<cudarc::nvrtc::Ptx> {
    if !nvrtc_available() {
        return Err(GpuError::Unavailable {
            reason: "the NVRTC library (libnvrtc) was not found".into(),
        });
    }
    let options = cudarc::nvrtc::CompileOptions {
        fmad: Some(false),
        name: Some(format!("{}.cu", kernel.name)),
        ..Default::default()
    };
    cudarc::nvrtc::compile_ptx_with_opts(kernel.full_source(), options).map_err(|e| {
        GpuError::Compile {
            source_name: kernel.name,
            log: format!("{e:?}"),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entry_point_is_defined_in_its_source() {
        for kernel in ALL {
            for entry in kernel.entry_points {
                let definition = format!("__global__ void {entry}(");
                assert!(
                    kernel.source.contains(&definition),
                    "{} lacks {definition}",
                    kernel.name
                );
            }
        }
    }
}
