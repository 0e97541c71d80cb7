//! A dense symmetric operator kept on the GPU (feature `cuda`): every block of probe vectors
//! that stochastic Lanczos quadrature, Hutchinson or Hutch++ asks for (`apply_batch`, an
//! `n × k` block) is one cuBLAS GEMM, and single vectors are an `n × 1` product.
//!
//! The matrix is uploaded once, when the operator is built: routing the plain `Array2`
//! operator to the device instead would copy all `n²` entries per product, more traffic
//! than the CPU product itself reads. `f32` runs `sgemm`, `f64` `dgemm`; other float types,
//! and every process without a usable device (no driver, no cuBLAS, `TESSERA_DEVICE=cpu`),
//! use the CPU product of the host copy, which the operator always keeps.

use std::any::Any;
use std::sync::Mutex;

use ndarray::{Array2, ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2, Axis};
use tessera_gpu::{DenseOperator, GpuContext, GpuError};

use crate::error::Result;
use crate::operator::LinearOperator;
use crate::Float;

/// The device copy, in the element type cuBLAS multiplies.
enum DeviceCopy {
    F32(DenseOperator<f32>),
    F64(DenseOperator<f64>),
}

/// A dense symmetric matrix applied on the GPU when one is usable, on the CPU otherwise
/// (same results up to the summation order of the product).
///
/// ```
/// use ndarray::Array2;
/// use tessera_lanczos::{hutchinson, DenseGpuOperator, StopRule};
/// let a = Array2::<f64>::from_diag(&ndarray::arr1(&[1.0, 2.0, 3.0]));
/// let op = DenseGpuOperator::new(a).unwrap(); // on the CPU when there is no device
/// let trace = hutchinson(&op, &StopRule::fixed(64), 0).unwrap();
/// assert!((trace.value - 6.0).abs() < 1e-9); // Rademacher probes are exact on diagonals
/// ```
pub struct DenseGpuOperator<F> {
    matrix: Array2<F>,
    device: Option<(&'static GpuContext, DeviceCopy)>,
    last_device_error: Mutex<Option<String>>,
}

impl<F> std::fmt::Debug for DenseGpuOperator<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DenseGpuOperator")
            .field("dim", &self.matrix.nrows())
            .field("on_device", &self.device.is_some())
            .finish_non_exhaustive()
    }
}

/// `value` as a `T` when `F` is `T` (moves through `Any`: the crate has no `unsafe`, and the
/// element type is only known to be `F: 'static`).
fn cast<F: 'static, T: 'static>(value: Array2<F>) -> Option<Array2<T>> {
    let boxed: Box<dyn Any> = Box::new(value);
    boxed.downcast::<Array2<T>>().ok().map(|b| *b)
}

impl<F: Float + 'static> DenseGpuOperator<F> {
    /// Checks `matrix` (square, finite, symmetric up to rounding, as the CPU operator's
    /// `validate`) and uploads it to the process's default device when there is one.
    ///
    /// # Errors
    /// A non-square, non-finite or asymmetric matrix; a device error other than
    /// "unavailable" while uploading (unavailable devices mean the CPU, not an error).
    pub fn new(matrix: Array2<F>) -> Result<Self> {
        crate::util::check_finite("matrix", matrix.iter())?;
        matrix.validate()?;
        Self::with_context(matrix, tessera_gpu::default_context())
    }

    /// As [`new`](Self::new) with the CPU only (e.g. to compare against the device).
    ///
    /// # Errors
    /// A non-square, non-finite or asymmetric matrix.
    pub fn cpu(matrix: Array2<F>) -> Result<Self> {
        crate::util::check_finite("matrix", matrix.iter())?;
        matrix.validate()?;
        Self::with_context(matrix, None)
    }

    fn with_context(matrix: Array2<F>, context: Option<&'static GpuContext>) -> Result<Self> {
        let device = match context {
            None => None,
            Some(context) => match Self::upload(context, &matrix) {
                Ok(copy) => copy.map(|copy| (context, copy)),
                Err(e) if e.is_unavailable() => None,
                Err(e) => return Err(e.into()),
            },
        };
        Ok(Self {
            matrix,
            device,
            last_device_error: Mutex::new(None),
        })
    }

    fn upload(
        context: &GpuContext,
        matrix: &Array2<F>,
    ) -> std::result::Result<Option<DeviceCopy>, GpuError> {
        if let Some(m) = cast::<F, f32>(matrix.clone()) {
            return Ok(Some(DeviceCopy::F32(DenseOperator::new(
                context,
                m.view(),
            )?)));
        }
        if let Some(m) = cast::<F, f64>(matrix.clone()) {
            return Ok(Some(DeviceCopy::F64(DenseOperator::new(
                context,
                m.view(),
            )?)));
        }
        Ok(None)
    }

    /// Whether products run on the GPU.
    pub fn on_device(&self) -> bool {
        self.device.is_some()
    }

    /// The host copy of the matrix.
    pub fn matrix(&self) -> &Array2<F> {
        &self.matrix
    }

    /// The last device error that made a product fall back to the CPU (the operator trait
    /// cannot return errors), if any.
    pub fn last_device_error(&self) -> Option<String> {
        self.last_device_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// `A·X` on the device, or `None` when there is no device copy or the product failed
    /// (the error is kept for [`last_device_error`](Self::last_device_error)).
    fn device_block(&self, x: ArrayView2<'_, F>) -> Option<Array2<F>> {
        let (context, copy) = self.device.as_ref()?;
        let result = match copy {
            DeviceCopy::F32(op) => cast::<F, f32>(x.to_owned())
                .map(|x| op.apply_block(context, x.view()).map(cast::<f32, F>)),
            DeviceCopy::F64(op) => cast::<F, f64>(x.to_owned())
                .map(|x| op.apply_block(context, x.view()).map(cast::<f64, F>)),
        }?;
        match result {
            Ok(y) => y,
            Err(e) => {
                *self
                    .last_device_error
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
                None
            }
        }
    }
}

impl<F: Float + 'static> LinearOperator<F> for DenseGpuOperator<F> {
    fn dim(&self) -> usize {
        self.matrix.nrows()
    }

    fn apply(&self, x: ArrayView1<'_, F>, mut y: ArrayViewMut1<'_, F>) {
        match self.device_block(x.insert_axis(Axis(1))) {
            Some(product) => y.assign(&product.column(0)),
            None => self.matrix.apply(x, y),
        }
    }

    fn apply_batch(&self, x: ArrayView2<'_, F>, mut y: ArrayViewMut2<'_, F>) {
        match self.device_block(x) {
            Some(product) => y.assign(&product),
            None => self.matrix.apply_batch(x, y),
        }
    }

    fn validate(&self) -> Result<()> {
        self.matrix.validate()
    }

    fn repeated_apply(&self) -> Option<crate::operator::RepeatedApply<'_, F>> {
        // The device product is the fast path when there is a device; otherwise the CPU's.
        if self.on_device() {
            None
        } else {
            self.matrix.repeated_apply()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{hutchinson, Slq, SlqConfig, StopRule};
    use approx::assert_abs_diff_eq;

    fn symmetric(n: usize) -> Array2<f64> {
        Array2::from_shape_fn((n, n), |(i, j)| {
            (((i.min(j) * 31 + i.max(j) * 17) % 23) as f64 / 7.0 - 1.5) / n as f64
        })
    }

    /// On the device products agree with the CPU to rounding; without one they are the CPU's.
    fn close(a: &Array2<f64>, b: &Array2<f64>, tolerance: f64) {
        let worst = (a - b).iter().fold(0.0f64, |m, v| m.max(v.abs()));
        assert!(worst <= tolerance, "max difference {worst}");
    }

    #[test]
    fn products_match_the_cpu_operator_on_any_device() {
        for n in [1, 5, 300] {
            let a = symmetric(n);
            let op = DenseGpuOperator::new(a.clone()).unwrap();
            assert_eq!(op.dim(), n);
            let x = Array2::from_shape_fn((n, 4), |(i, c)| ((i * 3 + c) as f64 * 0.37).sin());
            let mut want = Array2::zeros((n, 4));
            a.apply_batch(x.view(), want.view_mut());
            let mut got = Array2::zeros((n, 4));
            op.apply_batch(x.view(), got.view_mut());
            close(&got, &want, 1e-12);
            let mut y = ndarray::Array1::zeros(n);
            op.apply(x.column(1), y.view_mut());
            close(
                &y.insert_axis(Axis(1)),
                &want.column(1).to_owned().insert_axis(Axis(1)),
                1e-12,
            );
            assert!(op.last_device_error().is_none());
            // f32 goes through sgemm on a device.
            let op32 = DenseGpuOperator::new(a.mapv(|v| v as f32)).unwrap();
            let mut got32 = Array2::<f32>::zeros((n, 4));
            op32.apply_batch(x.mapv(|v| v as f32).view(), got32.view_mut());
            close(&got32.mapv(f64::from), &want, 1e-5);
        }
    }

    #[test]
    fn trace_estimators_on_the_operator_match_the_plain_matrix() {
        let a = symmetric(120);
        let op = DenseGpuOperator::new(a.clone()).unwrap();
        let rule = StopRule::fixed(12);
        let plain = hutchinson(&a, &rule, 7).unwrap();
        let gpu = hutchinson(&op, &rule, 7).unwrap();
        assert_abs_diff_eq!(
            plain.value,
            gpu.value,
            epsilon = 1e-9 * plain.value.abs().max(1.0)
        );
        let slq = Slq::new(SlqConfig {
            steps: 20,
            rule: StopRule::fixed(4),
            ..SlqConfig::default()
        })
        .unwrap();
        let q_plain = slq.quadrature(&a).unwrap().samples(&|t| t * t).unwrap();
        let q_gpu = slq.quadrature(&op).unwrap().samples(&|t| t * t).unwrap();
        for (p, g) in q_plain.iter().zip(&q_gpu) {
            assert_abs_diff_eq!(*p, *g, epsilon = 1e-8 * p.abs().max(1.0));
        }
    }

    #[test]
    fn bad_matrices_are_rejected_naming_them() {
        let e = DenseGpuOperator::new(Array2::<f64>::zeros((2, 3))).unwrap_err();
        assert!(e.to_string().contains("2×3"), "{e}");
        let mut a = symmetric(4);
        a[[0, 3]] += 1.0;
        assert!(DenseGpuOperator::new(a).is_err());
        let mut a = symmetric(4);
        a[[1, 1]] = f64::NAN;
        let e = DenseGpuOperator::cpu(a).unwrap_err();
        assert!(e.to_string().contains("matrix"), "{e}");
        assert!(!DenseGpuOperator::cpu(symmetric(3)).unwrap().on_device());
    }
}
