//! A minimal compressed-sparse-row matrix used as a [`LinearOperator`].
//!
//! Written here rather than wrapping `sprs`: the operator needs only a validated CSR layout
//! and a row-parallel product (sprs' product is single-threaded), and this keeps the crate's
//! dependency set small. Users of `sprs` can pass `indptr`/`indices`/`data` straight to
//! [`CsrMatrix::new`].

use ndarray::parallel::prelude::*;
use ndarray::{ArrayView1, ArrayView2, ArrayViewMut1, Axis};

use crate::error::{Error, Result};
use crate::float::Float;
use crate::operator::LinearOperator;

/// Rows per parallel task of the sparse product.
const CSR_ROW_BLOCK: usize = 256;
/// Below this many stored entries the product runs on the calling thread.
const CSR_PARALLEL_MIN_NNZ: usize = 1 << 15;

/// A square or rectangular matrix in compressed-sparse-row form.
#[derive(Debug, Clone, PartialEq)]
pub struct CsrMatrix<F> {
    rows: usize,
    cols: usize,
    indptr: Vec<usize>,
    indices: Vec<usize>,
    data: Vec<F>,
}

impl<F: Float> CsrMatrix<F> {
    /// Builds from the CSR arrays: row `i` holds `data[indptr[i]..indptr[i+1]]` at columns
    /// `indices[..]` (any order; duplicates are summed by the product).
    pub fn new(
        rows: usize,
        cols: usize,
        indptr: Vec<usize>,
        indices: Vec<usize>,
        data: Vec<F>,
    ) -> Result<Self> {
        if indptr.len() != rows + 1 {
            return Err(Error::DimensionMismatch {
                name: "indptr",
                expected: rows + 1,
                found: indptr.len(),
            });
        }
        if indptr[0] != 0 {
            return Err(Error::invalid("indptr[0]", indptr[0], "must be 0"));
        }
        if let Some(i) = (0..rows).find(|&i| indptr[i + 1] < indptr[i]) {
            return Err(Error::invalid(
                "indptr",
                format!("[{}] = {} > [{}] = {}", i, indptr[i], i + 1, indptr[i + 1]),
                "must be non-decreasing",
            ));
        }
        let nnz = indptr[rows];
        if indices.len() != nnz {
            return Err(Error::DimensionMismatch {
                name: "indices",
                expected: nnz,
                found: indices.len(),
            });
        }
        if data.len() != nnz {
            return Err(Error::DimensionMismatch {
                name: "data",
                expected: nnz,
                found: data.len(),
            });
        }
        if let Some((k, &c)) = indices.iter().enumerate().find(|(_, &c)| c >= cols) {
            return Err(Error::invalid(
                "indices",
                format!("[{k}] = {c}"),
                format!("column index out of range for {cols} columns"),
            ));
        }
        crate::util::check_finite("data", data.iter())?;
        Ok(Self {
            rows,
            cols,
            indptr,
            indices,
            data,
        })
    }

    /// Builds from `(row, column, value)` triplets; duplicates are summed.
    pub fn from_triplets(rows: usize, cols: usize, triplets: &[(usize, usize, F)]) -> Result<Self> {
        if let Some((k, &(r, c, _))) = triplets
            .iter()
            .enumerate()
            .find(|(_, &(r, c, _))| r >= rows || c >= cols)
        {
            return Err(Error::invalid(
                "triplets",
                format!("[{k}] = ({r}, {c})"),
                format!("index out of range for a {rows}×{cols} matrix"),
            ));
        }
        let mut order: Vec<usize> = (0..triplets.len()).collect();
        order.sort_by_key(|&k| (triplets[k].0, triplets[k].1));
        let mut indptr = vec![0usize; rows + 1];
        let mut indices = Vec::with_capacity(triplets.len());
        let mut data: Vec<F> = Vec::with_capacity(triplets.len());
        let mut last: Option<(usize, usize)> = None;
        for &k in &order {
            let (r, c, v) = triplets[k];
            if last == Some((r, c)) {
                *data.last_mut().expect("a previous entry exists") += v;
            } else {
                indices.push(c);
                data.push(v);
                indptr[r + 1] += 1;
                last = Some((r, c));
            }
        }
        for i in 0..rows {
            indptr[i + 1] += indptr[i];
        }
        Self::new(rows, cols, indptr, indices, data)
    }

    /// Keeps the entries of a dense matrix with `|a_ij| > drop_tolerance`.
    pub fn from_dense(a: ArrayView2<'_, F>, drop_tolerance: F) -> Result<Self> {
        crate::util::check_tolerance("drop_tolerance", drop_tolerance)?;
        let mut indptr = Vec::with_capacity(a.nrows() + 1);
        indptr.push(0);
        let (mut indices, mut data) = (Vec::new(), Vec::new());
        for row in a.axis_iter(Axis(0)) {
            for (j, &v) in row.iter().enumerate() {
                if v.abs() > drop_tolerance {
                    indices.push(j);
                    data.push(v);
                }
            }
            indptr.push(indices.len());
        }
        Self::new(a.nrows(), a.ncols(), indptr, indices, data)
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Number of stored entries.
    pub fn nnz(&self) -> usize {
        self.data.len()
    }

    fn row_dot(&self, i: usize, x: &ArrayView1<'_, F>) -> F {
        let (start, end) = (self.indptr[i], self.indptr[i + 1]);
        self.indices[start..end]
            .iter()
            .zip(&self.data[start..end])
            .fold(F::zero(), |acc, (&j, &v)| acc + v * x[j])
    }
}

impl<F: Float> LinearOperator<F> for CsrMatrix<F> {
    fn dim(&self) -> usize {
        self.rows
    }

    fn apply(&self, x: ArrayView1<'_, F>, mut y: ArrayViewMut1<'_, F>) {
        if self.nnz() < CSR_PARALLEL_MIN_NNZ {
            for (i, yi) in y.iter_mut().enumerate() {
                *yi = self.row_dot(i, &x);
            }
            return;
        }
        y.axis_chunks_iter_mut(Axis(0), CSR_ROW_BLOCK)
            .into_par_iter()
            .enumerate()
            .for_each(|(block, mut out)| {
                let first = block * CSR_ROW_BLOCK;
                for (k, yi) in out.iter_mut().enumerate() {
                    *yi = self.row_dot(first + k, &x);
                }
            });
    }

    fn validate(&self) -> Result<()> {
        if self.rows != self.cols {
            return Err(Error::NotSquare {
                name: "csr matrix",
                rows: self.rows,
                cols: self.cols,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array1, Array2};

    #[test]
    fn matches_dense() {
        for &n in &[7usize, 700] {
            let a = Array2::from_shape_fn((n, n), |(i, j)| {
                if (i * 31 + j * 17) % 13 == 0 {
                    (i as f64) - (j as f64) * 0.5
                } else {
                    0.0
                }
            });
            let csr = CsrMatrix::from_dense(a.view(), 0.0).unwrap();
            let x = Array1::from_shape_fn(n, |i| (i as f64 * 0.37).cos());
            let (mut y1, mut y2) = (Array1::zeros(n), Array1::zeros(n));
            csr.apply(x.view(), y1.view_mut());
            a.apply(x.view(), y2.view_mut());
            assert!(y1.iter().zip(&y2).all(|(p, q)| (p - q).abs() < 1e-9));
        }
    }

    #[test]
    fn triplets_sum_duplicates() {
        let m =
            CsrMatrix::from_triplets(2, 2, &[(1, 0, 1.0f32), (0, 1, 2.0), (1, 0, 3.0)]).unwrap();
        assert_eq!(m.nnz(), 2);
        let mut y = Array1::zeros(2);
        m.apply(ndarray::arr1(&[1.0, 1.0]).view(), y.view_mut());
        assert_eq!(y, ndarray::arr1(&[2.0, 4.0]));
    }

    #[test]
    fn bad_input() {
        assert!(CsrMatrix::<f64>::new(2, 2, vec![0, 1], vec![0], vec![1.0]).is_err());
        assert!(CsrMatrix::<f64>::new(2, 2, vec![0, 2, 1], vec![0], vec![1.0]).is_err());
        let e = CsrMatrix::<f64>::new(1, 2, vec![0, 1], vec![5], vec![1.0]).unwrap_err();
        assert!(e.to_string().contains("indices"), "{e}");
        let e = CsrMatrix::<f64>::new(1, 2, vec![0, 1], vec![0], vec![f64::NAN]).unwrap_err();
        assert!(e.to_string().contains("data"), "{e}");
        let e = CsrMatrix::<f64>::from_triplets(1, 2, &[(0, 0, 1.0)])
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("1×2"), "{e}");
        assert!(CsrMatrix::<f64>::from_triplets(1, 1, &[(1, 0, 1.0)]).is_err());
    }
}
