//! `f32` tensors resident on the device, so that pipelines (featurise → augment → train) keep
//! their data there between operations.

use cudarc::driver::CudaSlice;
use ndarray::{ArrayD, ArrayViewD, IxDyn};
use tessera_core::check;

use crate::{GpuContext, GpuError, Result};

/// A row-major `f32` tensor on the device, with its shape.
pub struct DeviceTensor {
    pub(crate) data: CudaSlice<f32>,
    shape: Vec<usize>,
}

impl std::fmt::Debug for DeviceTensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceTensor")
            .field("shape", &self.shape)
            .finish_non_exhaustive()
    }
}

impl DeviceTensor {
    /// Copies `values` to the device (in logical row-major order).
    ///
    /// # Errors
    /// A non-finite value (named `values` with its flat index); device errors.
    pub fn from_host(context: &GpuContext, values: ArrayViewD<f32>) -> Result<Self> {
        check::finite("values", &values)?;
        let standard = values.as_standard_layout();
        let data = context.upload(standard.as_slice().unwrap_or(&[]))?;
        Ok(DeviceTensor {
            data,
            shape: values.shape().to_vec(),
        })
    }

    /// A tensor of zeros.
    ///
    /// # Errors
    /// A shape whose element count overflows; device errors (out of memory).
    pub fn zeros(context: &GpuContext, shape: &[usize]) -> Result<Self> {
        let len = check::element_count("shape", shape, isize::MAX as usize / 4)?;
        Ok(DeviceTensor {
            data: context.zeros(len)?,
            shape: shape.to_vec(),
        })
    }

    pub(crate) fn from_parts(data: CudaSlice<f32>, shape: Vec<usize>) -> Self {
        DeviceTensor { data, shape }
    }

    /// Copies the tensor back to the host (waits for the queued work).
    ///
    /// # Errors
    /// Device errors, including a fault of an earlier kernel.
    pub fn to_host(&self, context: &GpuContext) -> Result<ArrayD<f32>> {
        let values = context.download(&self.data)?;
        ArrayD::from_shape_vec(IxDyn(&self.shape), values).map_err(|e| GpuError::Driver {
            operation: "shaping a downloaded tensor",
            message: e.to_string(),
        })
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the tensor has no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
