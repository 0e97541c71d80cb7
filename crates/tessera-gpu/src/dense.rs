//! Dense matrices on the device and their products with cuBLAS: the row-major GEMM helper
//! that the dense and convolution layers (hot path 8) and the blocked operator of
//! Lanczos/SLQ (hot path 5) share, and [`DenseOperator`], a symmetric matrix kept on the device
//! and applied to a whole block of probe vectors with one GEMM.
//!
//! # Row-major products with a column-major library
//!
//! tessera stores matrices row-major; cuBLAS reads column-major. A row-major `r × c` buffer
//! read column-major is the transpose (`c × r`, leading dimension `c`), so the row-major
//! product $C = \mathrm{op}(A)\,\mathrm{op}(B)$ is computed as the column-major product
//! $C^\top = \mathrm{op}(B)^\top \mathrm{op}(A)^\top$: the operands are swapped, each keeps its
//! own transpose flag, and `m` and `n` trade places. Nothing is copied or transposed in memory.
//!
//! # Blocked operator application
//!
//! Stochastic Lanczos quadrature (Ubaru, Chen & Saad 2017, "Fast estimation of tr(f(A)) via
//! stochastic Lanczos quadrature") and Hutchinson-type trace estimators run `k` independent
//! probe vectors through the same operator. tessera-lanczos advances all `k` recurrences
//! together and asks for $Y = AX$ with $X$ of shape `n × k`; on the device that is one GEMM,
//! which reads `A` once for the whole block instead of `k` times.

use std::sync::Arc;

use cudarc::cublas::sys::cublasOperation_t;
use cudarc::cublas::{CudaBlas, Gemm, GemmConfig, StridedBatchedConfig};
use cudarc::driver::{CudaSlice, CudaView, CudaViewMut, DeviceRepr, ValidAsZeroBits};
use ndarray::{Array2, ArrayView2};
use tessera_core::check;

use crate::context::as_i32;
use crate::{GpuContext, GpuError, InputError, Result};

mod sealed {
    use super::*;

    /// The element types cuBLAS multiplies for this crate; sealed so that the GEMM entry
    /// point (which takes cudarc views) stays private.
    pub trait Sealed {
        /// cuBLAS's strided-batched GEMM for this type.
        ///
        /// # Safety
        /// As [`Gemm::gemm_strided_batched`]: the config must stay within the buffers.
        unsafe fn gemm_strided_batched(
            blas: &CudaBlas,
            config: StridedBatchedConfig<Self>,
            a: &CudaView<'_, Self>,
            b: &CudaView<'_, Self>,
            c: &mut CudaViewMut<'_, Self>,
        ) -> std::result::Result<(), cudarc::cublas::result::CublasError>
        where
            Self: Sized;
    }

    macro_rules! sealed_gemm {
        ($($t:ty),*) => {$(
            impl Sealed for $t {
                unsafe fn gemm_strided_batched(
                    blas: &CudaBlas,
                    config: StridedBatchedConfig<$t>,
                    a: &CudaView<'_, $t>,
                    b: &CudaView<'_, $t>,
                    c: &mut CudaViewMut<'_, $t>,
                ) -> std::result::Result<(), cudarc::cublas::result::CublasError> {
                    // SAFETY: the caller's contract (the config stays within the buffers) is
                    // cuBLAS's.
                    unsafe { Gemm::<$t>::gemm_strided_batched(blas, config, a, b, c) }
                }
            }
        )*};
    }
    sealed_gemm!(f32, f64);
}

/// A floating-point type cuBLAS multiplies: `f32` (`sgemm`) or `f64` (`dgemm`).
pub trait Element: tessera_core::Float + DeviceRepr + ValidAsZeroBits + sealed::Sealed {}
impl Element for f32 {}
impl Element for f64 {}

/// One (batched) row-major product $C_i = \alpha\,\mathrm{op}(A_i)\,\mathrm{op}(B_i) + \beta C_i$
/// with $\mathrm{op}(A_i)$ of shape `m × k` and $\mathrm{op}(B_i)$ of shape `k × n`; the
/// `i`-th matrices start `stride_* · i` elements into their buffers (stride 0 shares one
/// matrix across the batch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GemmShape {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub transpose_a: bool,
    pub transpose_b: bool,
    pub batch: usize,
    pub stride_a: usize,
    pub stride_b: usize,
    pub stride_c: usize,
}

impl GemmShape {
    /// A single product (batch of one).
    pub fn single(m: usize, n: usize, k: usize, transpose_a: bool, transpose_b: bool) -> Self {
        GemmShape {
            m,
            n,
            k,
            transpose_a,
            transpose_b,
            batch: 1,
            stride_a: 0,
            stride_b: 0,
            stride_c: 0,
        }
    }

    /// Elements a buffer needs to hold `batch` matrices of `len` elements `stride` apart.
    fn span(batch: usize, stride: usize, len: usize) -> Option<usize> {
        (batch - 1).checked_mul(stride)?.checked_add(len)
    }

    /// The cuBLAS (column-major) config of this row-major product; see the module docs.
    fn config<T: Element>(&self, alpha: T, beta: T) -> Result<StridedBatchedConfig<T>> {
        let operation = |transposed: bool| {
            if transposed {
                cublasOperation_t::CUBLAS_OP_T
            } else {
                cublasOperation_t::CUBLAS_OP_N
            }
        };
        // Row length of each stored (row-major) buffer = its column-major leading dimension.
        let row_a = if self.transpose_a { self.m } else { self.k };
        let row_b = if self.transpose_b { self.k } else { self.n };
        let stride = |name, value: usize| {
            i64::try_from(value)
                .map_err(|_| GpuError::from(InputError::too_large(name, value, i64::MAX)))
        };
        Ok(StridedBatchedConfig {
            gemm: GemmConfig {
                transa: operation(self.transpose_b),
                transb: operation(self.transpose_a),
                m: as_i32("n", self.n)?,
                n: as_i32("m", self.m)?,
                k: as_i32("k", self.k)?,
                alpha,
                lda: as_i32("b", row_b)?,
                ldb: as_i32("a", row_a)?,
                beta,
                ldc: as_i32("c", self.n)?,
            },
            batch_size: as_i32("batch", self.batch)?,
            stride_a: stride("b", self.stride_b)?,
            stride_b: stride("a", self.stride_a)?,
            stride_c: stride("c", self.stride_c)?,
        })
    }
}

/// Runs the (batched) product `shape` on the context's stream after checking that every
/// matrix lies inside its buffer, so that cuBLAS never reads or writes out of bounds.
pub(crate) fn gemm<T: Element>(
    context: &GpuContext,
    shape: &GemmShape,
    alpha: T,
    a: &CudaView<'_, T>,
    b: &CudaView<'_, T>,
    beta: T,
    c: &mut CudaViewMut<'_, T>,
) -> Result<()> {
    let GemmShape { m, n, k, batch, .. } = *shape;
    for (name, size) in [("m", m), ("n", n), ("k", k), ("batch", batch)] {
        check::positive_size(name, size)?;
    }
    for (name, len, stride, needed) in [
        ("a", a.len(), shape.stride_a, m.checked_mul(k)),
        ("b", b.len(), shape.stride_b, k.checked_mul(n)),
        ("c", c.len(), shape.stride_c, m.checked_mul(n)),
    ] {
        let span = needed.and_then(|needed| GemmShape::span(batch, stride, needed));
        if span.map_or(true, |span| span > len) {
            return Err(InputError::shape(
                name,
                format!("{batch} matrices of {m}×{k}·{k}×{n} {stride} apart"),
                format!("a buffer of {len} elements"),
            )
            .into());
        }
    }
    let config = shape.config(alpha, beta)?;
    let blas = context.blas()?;
    // SAFETY: the swapped operands (b first, a second) match the column-major config built by
    // `GemmShape::config`, and every matrix of the batch was checked above to lie inside its
    // view; all three views live on this context's stream, to which the handle is bound.
    unsafe { T::gemm_strided_batched(&blas, config, b, a, c) }
        .map_err(GpuError::library("cuBLAS", "a matrix product (gemm)"))
}

/// A row-major matrix on the device, owned by one [`GpuContext`].
pub struct DeviceMatrix<T: Element> {
    pub(crate) data: CudaSlice<T>,
    pub(crate) rows: usize,
    pub(crate) cols: usize,
}

impl<T: Element> std::fmt::Debug for DeviceMatrix<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceMatrix")
            .field("rows", &self.rows)
            .field("cols", &self.cols)
            .finish_non_exhaustive()
    }
}

/// Checks a matrix shape for the device: both sides at least 1 and `rows · cols` within
/// what cuBLAS addresses with `i32` leading dimensions and `i64` offsets.
pub(crate) fn check_matrix_shape(name: &'static str, rows: usize, cols: usize) -> Result<usize> {
    if rows == 0 || cols == 0 {
        return Err(InputError::shape(
            name,
            "a matrix with at least one row and column",
            [rows, cols],
        )
        .into());
    }
    as_i32(name, rows)?;
    as_i32(name, cols)?;
    Ok(check::element_count(
        name,
        &[rows, cols],
        i64::MAX as usize,
    )?)
}

impl<T: Element> DeviceMatrix<T> {
    /// Copies `host` (any layout, finite values) to the device.
    ///
    /// # Errors
    /// An empty matrix, non-finite values (naming `name` and the flat index), device errors.
    pub fn upload(
        context: &GpuContext,
        name: &'static str,
        host: ArrayView2<'_, T>,
    ) -> Result<Self> {
        let (rows, cols) = host.dim();
        check_matrix_shape(name, rows, cols)?;
        check::finite(name, &host)?;
        let standard = host.as_standard_layout();
        let values = standard.as_slice().ok_or_else(|| GpuError::Driver {
            operation: "laying out a matrix",
            message: "a standard-layout copy was not contiguous".into(),
        })?;
        Ok(DeviceMatrix {
            data: context.upload(values)?,
            rows,
            cols,
        })
    }

    /// A `rows × cols` matrix of zeros.
    ///
    /// # Errors
    /// A zero side or a size beyond what cuBLAS addresses; device errors.
    pub fn zeros(context: &GpuContext, rows: usize, cols: usize) -> Result<Self> {
        let len = check_matrix_shape("matrix", rows, cols)?;
        Ok(DeviceMatrix {
            data: context.zeros(len)?,
            rows,
            cols,
        })
    }

    /// Copies the matrix back to the host (waits for the stream).
    ///
    /// # Errors
    /// Device errors (e.g. from a kernel that faulted earlier on the stream).
    pub fn download(&self, context: &GpuContext) -> Result<Array2<T>> {
        self.check_context(context, "matrix")?;
        let values = context.download(&self.data)?;
        Array2::from_shape_vec((self.rows, self.cols), values).map_err(|e| GpuError::Driver {
            operation: "shaping a downloaded matrix",
            message: e.to_string(),
        })
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// `(rows, cols)`.
    pub fn dim(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    /// `rows × cols` with `op` applied.
    fn op_dim(&self, transposed: bool) -> (usize, usize) {
        if transposed {
            (self.cols, self.rows)
        } else {
            (self.rows, self.cols)
        }
    }

    /// A buffer of another context cannot be handed to this context's cuBLAS handle.
    pub(crate) fn check_context(&self, context: &GpuContext, name: &'static str) -> Result<()> {
        if Arc::ptr_eq(self.data.stream(), context.stream()) {
            Ok(())
        } else {
            Err(InputError::invalid(
                name,
                "a matrix of another GpuContext",
                "use the context that created it",
            )
            .into())
        }
    }
}

/// Row-major $C = \mathrm{op}(A)\,\mathrm{op}(B)$ on the device (`op` transposes when its flag
/// is set) as a new matrix.
///
/// # Errors
/// Inner dimensions that differ (naming both), matrices of another context, cuBLAS errors.
pub fn matmul<T: Element>(
    context: &GpuContext,
    a: &DeviceMatrix<T>,
    transpose_a: bool,
    b: &DeviceMatrix<T>,
    transpose_b: bool,
) -> Result<DeviceMatrix<T>> {
    let (m, _) = a.op_dim(transpose_a);
    let (_, n) = b.op_dim(transpose_b);
    let mut c = DeviceMatrix::zeros(context, m, n)?;
    matmul_into(
        context,
        T::one(),
        a,
        transpose_a,
        b,
        transpose_b,
        T::zero(),
        &mut c,
    )?;
    Ok(c)
}

/// Row-major $C \leftarrow \alpha\,\mathrm{op}(A)\,\mathrm{op}(B) + \beta C$ on the device.
///
/// # Errors
/// Shapes that do not chain (`op(A)` is `m × k`, `op(B)` must be `k × n`, `C` must be
/// `m × n`), non-finite `alpha`/`beta`, matrices of another context, cuBLAS errors.
#[allow(clippy::too_many_arguments)]
pub fn matmul_into<T: Element>(
    context: &GpuContext,
    alpha: T,
    a: &DeviceMatrix<T>,
    transpose_a: bool,
    b: &DeviceMatrix<T>,
    transpose_b: bool,
    beta: T,
    c: &mut DeviceMatrix<T>,
) -> Result<()> {
    check::finite_scalar("alpha", alpha.to_f64().unwrap_or(f64::NAN))?;
    check::finite_scalar("beta", beta.to_f64().unwrap_or(f64::NAN))?;
    a.check_context(context, "a")?;
    b.check_context(context, "b")?;
    c.check_context(context, "c")?;
    let (m, k) = a.op_dim(transpose_a);
    let (k_b, n) = b.op_dim(transpose_b);
    if k_b != k {
        return Err(InputError::shape(
            "b",
            format!("{k} rows of op(b) (the columns of op(a))"),
            [k_b, n],
        )
        .into());
    }
    check::shape("c", &[c.rows, c.cols], &[m, n])?;
    let shape = GemmShape::single(m, n, k, transpose_a, transpose_b);
    gemm(
        context,
        &shape,
        alpha,
        &a.data.as_view(),
        &b.data.as_view(),
        beta,
        &mut c.data.as_view_mut(),
    )
}

/// A symmetric `n × n` matrix kept on the device and applied to single vectors or to blocks
/// of vectors (one GEMM per block): the device side of tessera-lanczos's GPU operator.
pub struct DenseOperator<T: Element> {
    matrix: DeviceMatrix<T>,
}

impl<T: Element> std::fmt::Debug for DenseOperator<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DenseOperator")
            .field("dim", &self.matrix.rows)
            .finish_non_exhaustive()
    }
}

/// Checks that `matrix` is square, finite and not empty (the symmetry check is the CPU
/// crate's: it knows its tolerance), without a device.
///
/// # Errors
/// A non-square or empty matrix, non-finite entries.
pub fn check_operator_matrix<T: Element>(matrix: ArrayView2<'_, T>) -> Result<usize> {
    let (rows, cols) = matrix.dim();
    if rows != cols || rows == 0 {
        return Err(InputError::shape(
            "matrix",
            "a square matrix with at least one row",
            [rows, cols],
        )
        .into());
    }
    check_matrix_shape("matrix", rows, cols)?;
    check::finite("matrix", &matrix)?;
    Ok(rows)
}

/// Checks a block of vectors `x` (`n × k`) for an operator of dimension `n`, without a device.
///
/// # Errors
/// Another number of rows, no columns, non-finite values.
pub fn check_block<T: Element>(n: usize, x: ArrayView2<'_, T>) -> Result<usize> {
    let (rows, k) = x.dim();
    if rows != n || k == 0 {
        return Err(InputError::shape("x", format!("[{n}, k ≥ 1]"), [rows, k]).into());
    }
    check_matrix_shape("x", rows, k)?;
    check::finite("x", &x)?;
    Ok(k)
}

impl<T: Element> DenseOperator<T> {
    /// Uploads the square matrix `matrix`. Symmetry is not required here (the product is the
    /// plain $AX$), but the Lanczos-type algorithms that use it assume it.
    ///
    /// # Errors
    /// See [`check_operator_matrix`]; device errors.
    pub fn new(context: &GpuContext, matrix: ArrayView2<'_, T>) -> Result<Self> {
        check_operator_matrix(matrix)?;
        Ok(DenseOperator {
            matrix: DeviceMatrix::upload(context, "matrix", matrix)?,
        })
    }

    /// The dimension `n`.
    pub fn dim(&self) -> usize {
        self.matrix.rows
    }

    /// $Y = AX$ for a block `x` of shape `n × k`, with one GEMM on the device.
    ///
    /// # Errors
    /// See [`check_block`]; [`GpuError::Overflow`] when finite input gives non-finite output
    /// (entries too large for `T`); device errors.
    pub fn apply_block(&self, context: &GpuContext, x: ArrayView2<'_, T>) -> Result<Array2<T>> {
        check_block(self.dim(), x)?;
        let x = DeviceMatrix::upload(context, "x", x)?;
        let y = self.apply_device(context, &x)?.download(context)?;
        if let Some(index) = y.iter().position(|v| !v.is_finite()) {
            return Err(GpuError::Overflow {
                name: "x",
                message: format!(
                    "A·x has the non-finite value {} at flat index {index}: the product \
                     overflows {}",
                    y.iter().nth(index).copied().unwrap_or_else(T::nan),
                    T::NAME
                ),
            });
        }
        Ok(y)
    }

    /// $Y = AX$ for a block already on the device (kept there).
    ///
    /// # Errors
    /// `x` without `n` rows, or of another context; cuBLAS errors.
    pub fn apply_device(
        &self,
        context: &GpuContext,
        x: &DeviceMatrix<T>,
    ) -> Result<DeviceMatrix<T>> {
        if x.rows != self.dim() {
            return Err(
                InputError::shape("x", format!("[{}, k]", self.dim()), [x.rows, x.cols]).into(),
            );
        }
        matmul(context, &self.matrix, false, x, false)
    }
}
