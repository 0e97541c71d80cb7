//! The CUDA context: one device, one stream, the compiled kernel modules and the library
//! handles, created only after the driver and NVRTC libraries were found.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use cudarc::driver::{CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, DeviceRepr};

use crate::kernels::{compile_to_ptx, KernelSource};
use crate::{GpuError, InputError, Result};

/// Environment variable that keeps the process on the CPU when set to `cpu`.
pub const DEVICE_ENV: &str = "TESSERA_DEVICE";

/// A CUDA device with one stream on which every operation of this crate is queued in order.
/// Kernel sources are compiled with NVRTC once per context, on first use.
pub struct GpuContext {
    context: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    modules: Mutex<HashMap<&'static str, Arc<CudaModule>>>,
    blas: OnceLock<std::result::Result<Arc<cudarc::cublas::CudaBlas>, String>>,
}

impl std::fmt::Debug for GpuContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuContext")
            .field("ordinal", &self.context.ordinal())
            .field("name", &self.device_name())
            .finish_non_exhaustive()
    }
}

/// Why no CUDA device can be used, checked without touching cudarc's lazily loaded symbols
/// (which panic when their library is absent).
fn unavailable_reason() -> Option<String> {
    if std::env::var(DEVICE_ENV).is_ok_and(|v| v.eq_ignore_ascii_case("cpu")) {
        return Some(format!("{DEVICE_ENV}=cpu"));
    }
    // SAFETY: tries to dlopen the driver library by its candidate names; calls nothing in it.
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return Some("the CUDA driver library (libcuda) was not found".into());
    }
    if !crate::kernels::nvrtc_available() {
        return Some("the NVRTC library (libnvrtc) was not found".into());
    }
    None
}

impl GpuContext {
    /// Opens device `ordinal` with a new stream.
    ///
    /// # Errors
    /// [`GpuError::Unavailable`] (never a panic) when the driver or NVRTC library is missing,
    /// when `TESSERA_DEVICE=cpu`, or when the driver has no device `ordinal`.
    pub fn new(ordinal: usize) -> Result<Self> {
        if let Some(reason) = unavailable_reason() {
            return Err(GpuError::Unavailable { reason });
        }
        let context = CudaContext::new(ordinal).map_err(|e| GpuError::Unavailable {
            reason: format!("no CUDA device {ordinal}: {e}"),
        })?;
        let stream = context
            .new_stream()
            .map_err(GpuError::driver("creating the stream"))?;
        Ok(GpuContext {
            context,
            stream,
            modules: Mutex::new(HashMap::new()),
            blas: OnceLock::new(),
        })
    }

    /// Whether [`GpuContext::new`] can be expected to find a device: the libraries are present
    /// and the process is not told to stay on the CPU. (The driver may still have no device.)
    pub fn libraries_present() -> bool {
        unavailable_reason().is_none()
    }

    /// The device's name as the driver reports it.
    pub fn device_name(&self) -> String {
        self.context
            .name()
            .unwrap_or_else(|e| format!("unknown ({e})"))
    }

    /// The stream every operation of this context runs on.
    pub(crate) fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// Waits until every queued operation has finished (benches call it before stopping the
    /// clock).
    ///
    /// # Errors
    /// A driver error, e.g. from a kernel that faulted.
    pub fn synchronize(&self) -> Result<()> {
        self.stream
            .synchronize()
            .map_err(GpuError::driver("synchronising the stream"))
    }

    /// Entry point `name` of `kernel`, compiling and loading the source on first use.
    pub(crate) fn function(&self, kernel: &KernelSource, name: &str) -> Result<CudaFunction> {
        let module = {
            let mut modules = self.modules.lock().unwrap_or_else(|e| e.into_inner());
            match modules.get(kernel.name) {
                Some(module) => module.clone(),
                None => {
                    let ptx = compile_to_ptx(kernel)?;
                    let module = self
                        .context
                        .load_module(ptx)
                        .map_err(GpuError::driver("loading a kernel module"))?;
                    modules.insert(kernel.name, module.clone());
                    module
                }
            }
        };
        module
            .load_function(name)
            .map_err(GpuError::driver("looking up a kernel"))
    }

    /// The cuBLAS handle bound to this context's stream, created on first use.
    pub(crate) fn blas(&self) -> Result<Arc<cudarc::cublas::CudaBlas>> {
        self.blas
            .get_or_init(|| {
                // SAFETY: tries to dlopen libcublas by its candidate names; calls nothing in it.
                if !unsafe { cudarc::cublas::sys::is_culib_present() } {
                    return Err("the cuBLAS library (libcublas) was not found".into());
                }
                cudarc::cublas::CudaBlas::new(self.stream.clone())
                    .map(Arc::new)
                    .map_err(|e| format!("creating the cuBLAS handle: {e:?}"))
            })
            .clone()
            .map_err(|reason| GpuError::Unavailable { reason })
    }

    /// Checks that the cuFFT library can be loaded before a plan is made.
    pub(crate) fn require_cufft(&self) -> Result<()> {
        // SAFETY: tries to dlopen libcufft by its candidate names; calls nothing in it.
        if unsafe { cudarc::cufft::sys::is_culib_present() } {
            Ok(())
        } else {
            Err(GpuError::Unavailable {
                reason: "the cuFFT library (libcufft) was not found".into(),
            })
        }
    }

    /// Copies `values` to a new device buffer on this context's stream (for the
    /// device-resident entry points that take cudarc buffers).
    ///
    /// # Errors
    /// Device errors.
    pub fn upload<T: DeviceRepr>(&self, values: &[T]) -> Result<CudaSlice<T>> {
        self.stream
            .clone_htod(values)
            .map_err(GpuError::driver("copying to the device"))
    }

    /// A device buffer of `len` zeros.
    pub(crate) fn zeros<T: DeviceRepr + cudarc::driver::ValidAsZeroBits>(
        &self,
        len: usize,
    ) -> Result<CudaSlice<T>> {
        self.stream
            .alloc_zeros(len)
            .map_err(GpuError::driver("allocating device memory"))
    }

    /// Copies a device buffer back to the host (waits for the stream).
    ///
    /// # Errors
    /// Device errors, including those of kernels still queued.
    pub fn download<T: DeviceRepr>(&self, values: &CudaSlice<T>) -> Result<Vec<T>> {
        self.stream
            .clone_dtoh(values)
            .map_err(GpuError::driver("copying to the host"))
    }
}

/// The process-wide context on device 0 that the CPU crates' `cuda` features route to, or
/// `None` (once and for all) when no device is usable; the reason is kept for
/// [`default_context_status`].
pub fn default_context() -> Option<&'static GpuContext> {
    default_slot().as_ref().ok()
}

/// `Ok(())` when [`default_context`] has a device, else why not.
pub fn default_context_status() -> std::result::Result<(), String> {
    default_slot().as_ref().map(|_| ()).map_err(Clone::clone)
}

fn default_slot() -> &'static std::result::Result<GpuContext, String> {
    static SLOT: OnceLock<std::result::Result<GpuContext, String>> = OnceLock::new();
    SLOT.get_or_init(|| GpuContext::new(0).map_err(|e| e.to_string()))
}

/// A size as the `i32` a CUDA library call takes.
pub(crate) fn as_i32(name: &'static str, value: usize) -> Result<i32> {
    i32::try_from(value).map_err(|_| InputError::too_large(name, value, i32::MAX).into())
}

/// A size as the `i64` (`long long`) a kernel takes.
pub(crate) fn as_i64(name: &'static str, value: usize) -> Result<i64> {
    i64::try_from(value).map_err(|_| InputError::too_large(name, value, i64::MAX).into())
}
