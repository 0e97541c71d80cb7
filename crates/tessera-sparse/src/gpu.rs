//! Feature `cuda`: [`CsrMatrix::matmul`] on `f32` runs on tessera-gpu when a CUDA device is
//! present (the process-wide `tessera_gpu::default_context`), on the CPU otherwise or when
//! `TESSERA_DEVICE=cpu`. Sums run in the same entry order, so the results agree to rounding.

use std::any::Any;

use ndarray::{Array2, ArrayView2};
use tessera_gpu::{DeviceCsr, GpuContext, GpuError};

use crate::{CsrMatrix, Error, Float, Result};

impl From<GpuError> for Error {
    fn from(e: GpuError) -> Self {
        match e {
            GpuError::Input(input) => Error::Input(input),
            other => Error::Gpu(other.to_string()),
        }
    }
}

impl CsrMatrix<f32> {
    /// A copy of this matrix on the device, for products that keep their operands there.
    ///
    /// # Errors
    /// Device errors.
    pub fn to_device(&self, context: &GpuContext) -> Result<DeviceCsr> {
        Ok(DeviceCsr::new(
            context,
            self.dim(),
            self.indptr(),
            self.indices(),
            self.values(),
        )?)
    }
}

/// The product on the device, or `None` to run it on the CPU (not `f32`, no device).
pub(crate) fn try_matmul<F: Float>(
    matrix: &CsrMatrix<F>,
    b: ArrayView2<'_, F>,
) -> Result<Option<Array2<F>>> {
    // `F` is f32 or f64 (sealed); the device computes in f32. Downcasting through `Any`
    // reaches the f32 matrix without unsafe code.
    let Some(matrix32) = (matrix as &dyn Any).downcast_ref::<CsrMatrix<f32>>() else {
        return Ok(None);
    };
    let Some(context) = tessera_gpu::default_context() else {
        return Ok(None);
    };
    let standard = b.as_standard_layout();
    let Some(values) = standard.as_slice().and_then(F::as_f32_slice) else {
        return Ok(None);
    };
    let b32 = ArrayView2::from_shape(b.dim(), values)
        .map_err(|e| Error::Gpu(format!("viewing the dense operand: {e}")))?;
    let result = DeviceCsr::new(
        context,
        matrix32.dim(),
        matrix32.indptr(),
        matrix32.indices(),
        matrix32.values(),
    )
    .and_then(|device| device.matmul(context, b32));
    match result {
        Ok(out) => {
            let boxed: Box<dyn Any> = Box::new(out);
            Ok(boxed.downcast::<Array2<F>>().ok().map(|b| *b))
        }
        Err(e) if e.is_unavailable() => Ok(None),
        Err(e) => Err(e.into()),
    }
}
