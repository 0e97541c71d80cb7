//! Errors of tessera-gpu.

pub use tessera_core::InputError;

/// Result with [`GpuError`].
pub type Result<T, E = GpuError> = std::result::Result<T, E>;

/// What can go wrong on the GPU path. [`GpuError::Unavailable`] is the one a caller answers
/// by falling back to the CPU; the others are bugs or bad input.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GpuError {
    /// Bad input (shape, size, non-finite value), named as everywhere in tessera.
    #[error(transparent)]
    Input(#[from] InputError),
    /// No usable CUDA device: a library is missing, the driver reports no device, or the
    /// process was told to stay on the CPU (`TESSERA_DEVICE=cpu`).
    #[error("CUDA unavailable: {reason}")]
    Unavailable {
        /// Why, in words (the missing library, or the driver's error).
        reason: String,
    },
    /// NVRTC rejected a kernel source (its log is included).
    #[error("NVRTC could not compile kernel source `{source_name}`: {log}")]
    Compile {
        /// The kernel source file (`kernels/<name>.cu`).
        source_name: &'static str,
        /// The compiler's log or error.
        log: String,
    },
    /// A CUDA driver call failed after the context was created.
    #[error("CUDA driver error in {operation}: {message}")]
    Driver {
        /// What was being done.
        operation: &'static str,
        /// The driver's error.
        message: String,
    },
    /// A cuBLAS or cuFFT call failed.
    #[error("{library} error in {operation}: {message}")]
    Library {
        /// `cuBLAS` or `cuFFT`.
        library: &'static str,
        /// What was being done.
        operation: &'static str,
        /// The library's error.
        message: String,
    },
    /// A computation on finite input produced NaN or ±∞ (values too large for `f32`).
    #[error("`{name}`: {message}")]
    Overflow {
        /// The input that overflowed.
        name: &'static str,
        /// What overflowed and how to avoid it.
        message: String,
    },
}

impl GpuError {
    /// Whether the caller should fall back to the CPU (no device, no library).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, GpuError::Unavailable { .. })
    }

    pub(crate) fn driver(
        operation: &'static str,
    ) -> impl FnOnce(cudarc::driver::DriverError) -> Self {
        move |e| GpuError::Driver {
            operation,
            message: e.to_string(),
        }
    }

    pub(crate) fn library<E: std::fmt::Debug>(
        library: &'static str,
        operation: &'static str,
    ) -> impl FnOnce(E) -> Self {
        move |e| GpuError::Library {
            library,
            operation,
            message: format!("{e:?}"),
        }
    }
}
