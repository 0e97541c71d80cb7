//! Sparse (CSR) × dense products for tessera-sparse's masked layers (random pruning with
//! ERK masks, Liu et al. 2022): $Y = W X$ with $W$ stored at the mask's entries, and the
//! masked weight gradient $(\mathrm{d}Y X^\top) \odot M$ computed only at those entries.

use cudarc::driver::{CudaSlice, PushKernelArg};
use ndarray::{Array2, ArrayView2};
use tessera_core::check;

use crate::context::as_i64;
use crate::kernels::SPARSE;
use crate::launch::config_for;
use crate::{GpuContext, GpuError, InputError, Result};

/// A CSR matrix on the device (row pointers, column indices, values).
pub struct DeviceCsr {
    nrows: usize,
    ncols: usize,
    nnz: usize,
    indptr: CudaSlice<i64>,
    indices: CudaSlice<i64>,
    rows: CudaSlice<i64>,
    values: CudaSlice<f32>,
}

impl std::fmt::Debug for DeviceCsr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceCsr")
            .field("dim", &(self.nrows, self.ncols))
            .field("nnz", &self.nnz)
            .finish_non_exhaustive()
    }
}

/// Checks CSR arrays: `indptr` of `nrows + 1` non-decreasing entries from 0 to `nnz`, column
/// indices below `ncols`, finite values. Returns the row of every entry.
///
/// # Errors
/// Each violated condition, naming the array.
pub fn check_csr(
    nrows: usize,
    ncols: usize,
    indptr: &[usize],
    indices: &[usize],
    values: &[f32],
) -> Result<Vec<i64>> {
    check::length("indptr", indptr.len(), nrows + 1)?;
    check::length("values", values.len(), indices.len())?;
    if indptr.first() != Some(&0) || indptr.last() != Some(&indices.len()) {
        return Err(InputError::invalid(
            "indptr",
            format!("{:?} … {:?}", indptr.first(), indptr.last()),
            format!("must run from 0 to nnz = {}", indices.len()),
        )
        .into());
    }
    if let Some(w) = indptr.windows(2).position(|w| w[0] > w[1]) {
        return Err(
            InputError::invalid("indptr", format!("row {w}"), "must be non-decreasing").into(),
        );
    }
    if let Some(&bad) = indices.iter().find(|&&c| c >= ncols) {
        return Err(
            InputError::invalid("indices", bad, format!("must be < ncols = {ncols}")).into(),
        );
    }
    check::finite_values("values", values.iter().copied())?;
    as_i64("indices", ncols)?;
    let mut rows = Vec::with_capacity(indices.len());
    for (r, w) in indptr.windows(2).enumerate() {
        rows.extend(std::iter::repeat(r as i64).take(w[1] - w[0]));
    }
    Ok(rows)
}

impl DeviceCsr {
    /// Uploads a CSR matrix given by its arrays (tessera-sparse's `CsrMatrix::indptr`,
    /// `indices`, `values`).
    ///
    /// # Errors
    /// As [`check_csr`]; device errors.
    pub fn new(
        context: &GpuContext,
        (nrows, ncols): (usize, usize),
        indptr: &[usize],
        indices: &[usize],
        values: &[f32],
    ) -> Result<Self> {
        let rows = check_csr(nrows, ncols, indptr, indices, values)?;
        let widen = |v: &[usize]| v.iter().map(|&x| x as i64).collect::<Vec<_>>();
        // Empty matrices still need (never read) buffers.
        let or_one = |v: Vec<i64>| if v.is_empty() { vec![0] } else { v };
        Ok(DeviceCsr {
            nrows,
            ncols,
            nnz: values.len(),
            indptr: context.upload(&widen(indptr))?,
            indices: context.upload(&or_one(widen(indices)))?,
            rows: context.upload(&or_one(rows))?,
            values: context.upload(if values.is_empty() { &[0.0] } else { values })?,
        })
    }

    /// `(nrows, ncols)`.
    pub fn dim(&self) -> (usize, usize) {
        (self.nrows, self.ncols)
    }

    /// $W B$ for a dense `ncols × n` operand; `nrows × n`, accumulated in entry order as
    /// tessera-sparse's `CsrMatrix::matmul`.
    ///
    /// # Errors
    /// `b` with another number of rows, non-finite `b`, a product that overflows `f32`
    /// ([`GpuError::Overflow`]); device errors.
    pub fn matmul(&self, context: &GpuContext, b: ArrayView2<f32>) -> Result<Array2<f32>> {
        if b.nrows() != self.ncols {
            return Err(InputError::shape("b", format!("[{}, _]", self.ncols), b.shape()).into());
        }
        check::finite("b", &b)?;
        let n = b.ncols();
        let standard = b.as_standard_layout();
        let dense = context.upload(standard.as_slice().unwrap_or(&[0.0]))?;
        let work = self.nrows * n;
        let mut out = context.zeros::<f32>(work.max(1))?;
        let function = context.function(&SPARSE, "csr_matmul")?;
        let mut launch = context.stream().launch_builder(&function);
        let (nrows_i64, n_i64) = (as_i64("W", self.nrows)?, as_i64("b", n)?);
        launch
            .arg(&self.indptr)
            .arg(&self.indices)
            .arg(&self.values)
            .arg(&nrows_i64)
            .arg(&dense)
            .arg(&n_i64)
            .arg(&mut out);
        // SAFETY: arguments match `csr_matmul`; indptr has nrows + 1 entries indexing
        // indices/values (checked), every column index is < ncols = rows of `dense` (ncols × n),
        // and `out` holds nrows × n values.
        unsafe { launch.launch(config_for(work)) }
            .map_err(GpuError::driver("launching csr_matmul"))?;
        let mut values = context.download(&out)?;
        values.truncate(work);
        finite_output(&values, "b")?;
        Array2::from_shape_vec((self.nrows, n), values).map_err(|e| GpuError::Driver {
            operation: "shaping the product",
            message: e.to_string(),
        })
    }

    /// The masked weight gradient at the stored entries, in entry order:
    /// `grad[k] = dy[row_k, :] · x[col_k, :]` for $Y = W X$ (`dy` is `nrows × n`, `x` is
    /// `ncols × n`), as tessera-sparse's `CsrMatrix::masked_gradient` values.
    ///
    /// # Errors
    /// Shapes that do not fit, non-finite input, an overflowing dot product; device errors.
    pub fn masked_gradient(
        &self,
        context: &GpuContext,
        dy: ArrayView2<f32>,
        x: ArrayView2<f32>,
    ) -> Result<Vec<f32>> {
        if dy.nrows() != self.nrows {
            return Err(InputError::shape("dy", format!("[{}, _]", self.nrows), dy.shape()).into());
        }
        if x.nrows() != self.ncols || x.ncols() != dy.ncols() {
            return Err(InputError::shape(
                "x",
                format!("[{}, {}]", self.ncols, dy.ncols()),
                x.shape(),
            )
            .into());
        }
        check::finite("dy", &dy)?;
        check::finite("x", &x)?;
        let n = dy.ncols();
        let dy_standard = dy.as_standard_layout();
        let x_standard = x.as_standard_layout();
        let dy_device = context.upload(
            dy_standard
                .as_slice()
                .filter(|s| !s.is_empty())
                .unwrap_or(&[0.0]),
        )?;
        let x_device = context.upload(
            x_standard
                .as_slice()
                .filter(|s| !s.is_empty())
                .unwrap_or(&[0.0]),
        )?;
        let mut grad = context.zeros::<f32>(self.nnz.max(1))?;
        let function = context.function(&SPARSE, "csr_masked_gradient")?;
        let mut launch = context.stream().launch_builder(&function);
        let (nnz_i64, n_i64) = (as_i64("W", self.nnz)?, as_i64("dy", n)?);
        launch
            .arg(&self.rows)
            .arg(&self.indices)
            .arg(&nnz_i64)
            .arg(&dy_device)
            .arg(&x_device)
            .arg(&n_i64)
            .arg(&mut grad);
        // SAFETY: arguments match `csr_masked_gradient`; rows[k] < nrows (rows of dy, nrows ×
        // n) and indices[k] < ncols (rows of x, ncols × n) for k < nnz; grad holds nnz values.
        unsafe { launch.launch(config_for(self.nnz)) }
            .map_err(GpuError::driver("launching csr_masked_gradient"))?;
        let mut values = context.download(&grad)?;
        values.truncate(self.nnz);
        finite_output(&values, "dy")?;
        Ok(values)
    }
}

/// A non-finite result of finite input is an overflow, never a silent ∞.
fn finite_output(values: &[f32], name: &'static str) -> Result<()> {
    match values.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(i) => Err(GpuError::Overflow {
            name,
            message: format!(
                "the sparse product is {} at flat index {i}: values this large overflow f32",
                values[i]
            ),
        }),
    }
}
