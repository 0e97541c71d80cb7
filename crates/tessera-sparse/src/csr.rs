//! Compressed sparse row (CSR) matrices for masked layers and their products with dense
//! matrices: $W X$, $X W^\top$ and the masked weight gradient $(\mathrm{d}Y X^\top) \odot M$.
//!
//! Stored weights are checked to be finite when a matrix is built. The dense operands are not
//! scanned up front (that would cost a full pass per product); instead the kernels check each
//! output block while it is still in registers, and a non-finite result is an error naming the
//! operand: its first NaN or ±∞, or, when it is finite, its largest magnitude (values so large
//! that the sums overflow the float type).
//!
//! The kernels are written by hand (rather than taken from `sprs`) because the layer products
//! need register-blocked, multi-threaded row kernels (sprs 0.11's `csr_mulacc_dense_rowmaj`
//! reads and writes the output row for every stored entry), and the masked gradient (a
//! sampled dense–dense product) has no `sprs` equivalent. See the crate README (§ Sparse
//! products) for the kernel choice and the measured crossovers.

use ndarray::{Array2, ArrayView2};
use rayon::iter::plumbing::{
    bridge, Consumer, Folder, Producer, ProducerCallback, UnindexedConsumer,
};
use rayon::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};
use tessera_core::{check, RejectInput};

use crate::error::{Error, Result};
use crate::mask::Mask;
use crate::Float;

/// Bytes per cache line on the CPUs the kernels are tuned for (x86-64, Arm Neoverse).
const CACHE_LINE: usize = 64;

/// The row gather reads B from a cache-aligned copy when each row of B is read at least this
/// many times on average (stored entries ≥ this × columns of the matrix).
const ALIGN_MIN_READS_PER_ROW: usize = 48;

/// The largest copy of the dense operand that [`CsrMatrix::matmul`] makes for speed alone
/// (cache-aligned rows or packed panels): beyond it a row-major operand is read in place, so
/// that a product does not double the memory of an operand of gigabytes behind the caller's
/// back. (An operand that is not row-major is always copied once, as it must be to be read by
/// rows; an explicitly requested [`SpmmKernel::PackedPanels`] packs any size.)
const MAX_SCRATCH_BYTES: usize = 1 << 30;

/// Minimum multiply–adds per rayon task: smaller problems are not worth splitting.
const MIN_WORK_PER_TASK: usize = 1 << 15;

/// Tasks per rayon thread: enough to balance rows of unequal length, few enough that each
/// task reuses the packed panels over many rows.
const TASKS_PER_THREAD: usize = 4;

/// Mean stored entries per row from which [`CsrMatrix::matmul`] packs the dense operand into
/// panels (when it does not fit in L2 and a panel does, see [`PANEL_CACHE_BYTES`]). Below it,
/// packing costs more than it saves: measured crossover in the README (§ Sparse products) and
/// `examples/vs_sprs.rs --kernels`.
pub const PANEL_MIN_ENTRIES_PER_ROW: usize = 48;

/// The L2 cache of one core that the kernel choice assumes (512 KiB on AMD Zen 2–3). The dense
/// operand is packed into panels only when it is larger than this and one panel takes at most
/// half of it. On cores with a larger L2 (1–2 MiB on recent Intel and AMD Zen 4) the rule packs
/// some operands that would have fitted; the packed panels are then about as fast as the
/// gather, less the copy (one pass over B).
pub const PANEL_CACHE_BYTES: usize = 512 * 1024;

/// Bytes of `x` per column block of the masked gradient: a quarter of a 512 KiB L2, which
/// leaves room for the dY rows, the column indices and the outputs streaming past it
/// (measured 3–16 % faster than half of L2 at density 0.1 on the three benchmark shapes;
/// a block the size of L1 was 15–45 % slower).
const GRADIENT_BLOCK_BYTES: usize = 128 * 1024;

/// Density from which the masked gradient goes through dense GEMM blocks (measured
/// crossover: the sparse kernel is 2–4× faster than dense-then-mask at 0.1 and 0.75× as fast at
/// 0.3; `examples/vs_sprs.rs --gradient`).
const GRADIENT_DENSE_MIN_DENSITY: f64 = 0.2;

/// Mean stored entries per row from which the masked gradient blocks the columns.
const GRADIENT_MIN_ENTRIES_PER_ROW: usize = 16;

/// The sparse × dense kernels of [`CsrMatrix::matmul_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpmmKernel {
    /// The choice of [`CsrMatrix::spmm_kernel`] (what [`CsrMatrix::matmul`] runs).
    Auto,
    /// Rows of the dense operand read where they are (or from a cache-aligned copy when they
    /// are read often enough for the copy to pay); each output row is swept in 256-byte column
    /// blocks held in registers. Best for very sparse rows and narrow dense operands.
    RowGather,
    /// The dense operand first packed into contiguous 256-byte-wide column panels that stay in
    /// L2; best when many stored entries reuse each panel row.
    PackedPanels,
}

/// A sparse `nrows × ncols` matrix in compressed sparse row form. Column indices within a row
/// are strictly increasing.
#[derive(Debug, Clone, PartialEq)]
pub struct CsrMatrix<F> {
    nrows: usize,
    ncols: usize,
    indptr: Vec<usize>,
    indices: Vec<usize>,
    values: Vec<F>,
}

impl<F: Float> CsrMatrix<F> {
    /// The entries of `weights` (row-major) that `mask` keeps; kept zeros stay stored, so the
    /// sparsity pattern is exactly the mask. Errors when sizes differ or a value is not finite.
    pub fn from_masked(weights: ArrayView2<'_, F>, mask: &Mask) -> Result<Self> {
        let (nrows, ncols) = weights.dim();
        if mask.len() != nrows * ncols {
            return Err(Error::shape(
                "mask",
                format!("{} entries ({nrows}×{ncols})", nrows * ncols),
                format!("{} entries", mask.len()),
            ));
        }
        check::finite_values("weights", weights.iter().copied())?;
        let mut indptr = Vec::with_capacity(nrows + 1);
        indptr.push(0);
        let nnz = mask.count_ones();
        let mut indices = Vec::with_capacity(nnz);
        let mut values = Vec::with_capacity(nnz);
        let mut row = 0;
        for flat in mask.iter_ones() {
            let (r, c) = (flat / ncols, flat % ncols);
            while row < r {
                indptr.push(indices.len());
                row += 1;
            }
            indices.push(c);
            values.push(weights[[r, c]]);
        }
        while row < nrows {
            indptr.push(indices.len());
            row += 1;
        }
        Ok(Self {
            nrows,
            ncols,
            indptr,
            indices,
            values,
        })
    }

    /// The non-zero entries of `dense`.
    pub fn from_dense(dense: ArrayView2<'_, F>) -> Result<Self> {
        let keep: Vec<bool> = dense.iter().map(|v| !v.is_zero()).collect();
        Self::from_masked(dense, &Mask::from_bools(&keep))
    }

    /// The sparsity pattern of `mask` over an `nrows × ncols` matrix, with all values zero
    /// (e.g. a gradient buffer).
    pub fn zeros_like_mask(nrows: usize, ncols: usize, mask: &Mask) -> Result<Self> {
        Self::from_masked(Array2::zeros((nrows, ncols)).view(), mask)
    }

    /// Builds a matrix from raw CSR arrays, checking every invariant.
    pub fn from_parts(
        nrows: usize,
        ncols: usize,
        indptr: Vec<usize>,
        indices: Vec<usize>,
        values: Vec<F>,
    ) -> Result<Self> {
        if indptr.len() != nrows + 1 || indptr[0] != 0 {
            return Err(Error::invalid(
                "indptr",
                format!("length {}", indptr.len()),
                format!("must have nrows + 1 = {} entries starting at 0", nrows + 1),
            ));
        }
        if indptr.windows(2).any(|w| w[0] > w[1]) || indptr[nrows] != indices.len() {
            return Err(Error::invalid(
                "indptr",
                format!("{indptr:?}"),
                "must be non-decreasing and end at the number of stored entries",
            ));
        }
        if values.len() != indices.len() {
            return Err(Error::shape("values", indices.len(), values.len()));
        }
        for r in 0..nrows {
            let cols = &indices[indptr[r]..indptr[r + 1]];
            if cols.windows(2).any(|w| w[0] >= w[1]) || cols.last().is_some_and(|&c| c >= ncols) {
                return Err(Error::invalid(
                    "indices",
                    format!("row {r}: {cols:?}"),
                    format!("column indices must be strictly increasing and below {ncols}"),
                ));
            }
        }
        check::finite_values("values", values.iter().copied())?;
        Ok(Self {
            nrows,
            ncols,
            indptr,
            indices,
            values,
        })
    }

    /// Builds from `(row, column, value)` triplets in any order; duplicates are summed (as
    /// scipy's `coo_matrix.tocsr()` does). Errors on an index outside `nrows × ncols` or a
    /// non-finite value.
    pub fn from_triplets(
        nrows: usize,
        ncols: usize,
        triplets: &[(usize, usize, F)],
    ) -> Result<Self> {
        if let Some((k, &(r, c, _))) = triplets
            .iter()
            .enumerate()
            .find(|(_, &(r, c, _))| r >= nrows || c >= ncols)
        {
            return Err(Error::invalid(
                "triplets",
                format!("[{k}] = ({r}, {c})"),
                format!("index out of range for a {nrows}×{ncols} matrix"),
            ));
        }
        check::finite_values("triplets", triplets.iter().map(|t| t.2))?;
        let mut order: Vec<usize> = (0..triplets.len()).collect();
        order.sort_by_key(|&k| (triplets[k].0, triplets[k].1));
        let mut indptr = vec![0usize; nrows + 1];
        let mut indices = Vec::with_capacity(triplets.len());
        let mut values: Vec<F> = Vec::with_capacity(triplets.len());
        let mut last: Option<(usize, usize)> = None;
        for &k in &order {
            let (r, c, v) = triplets[k];
            match values.last_mut() {
                Some(previous) if last == Some((r, c)) => *previous += v,
                _ => {
                    indices.push(c);
                    values.push(v);
                    indptr[r + 1] += 1;
                    last = Some((r, c));
                }
            }
        }
        for r in 0..nrows {
            indptr[r + 1] += indptr[r];
        }
        Self::from_parts(nrows, ncols, indptr, indices, values)
    }

    /// Sparse × vector, `y = W x`, row-parallel above 2¹⁵ stored entries.
    /// Errors when `x` does not have `ncols` entries or `y` does not have `nrows`.
    pub fn matvec(&self, x: &[F], y: &mut [F]) -> Result<()> {
        check::length("x", x.len(), self.ncols)?;
        check::length("y", y.len(), self.nrows)?;
        let row_dot = |r: usize| {
            let (cols, vals) = self.row(r);
            cols.iter()
                .zip(vals)
                .fold(F::zero(), |acc, (&c, &v)| acc + v * x[c])
        };
        if self.nnz() < MIN_WORK_PER_TASK {
            y.iter_mut()
                .enumerate()
                .for_each(|(r, yr)| *yr = row_dot(r));
        } else {
            // Fixed-size blocks: each row is one sequential dot product whatever the pool
            // size, so the result does not depend on the thread count.
            y.par_chunks_mut(256).enumerate().for_each(|(block, out)| {
                for (k, yr) in out.iter_mut().enumerate() {
                    *yr = row_dot(block * 256 + k);
                }
            });
        }
        Ok(())
    }

    /// `(nrows, ncols)`.
    pub fn dim(&self) -> (usize, usize) {
        (self.nrows, self.ncols)
    }

    /// Number of stored entries.
    pub fn nnz(&self) -> usize {
        self.values.len()
    }

    /// Row pointers: row `r` is stored at `indptr[r]..indptr[r + 1]`.
    pub fn indptr(&self) -> &[usize] {
        &self.indptr
    }

    /// Column index of every stored entry.
    pub fn indices(&self) -> &[usize] {
        &self.indices
    }

    /// Value of every stored entry.
    pub fn values(&self) -> &[F] {
        &self.values
    }

    /// Mutable values (the pattern is fixed), e.g. for an optimiser step on the sparse weights.
    pub fn values_mut(&mut self) -> &mut [F] {
        &mut self.values
    }

    /// The sparsity pattern as a row-major mask.
    pub fn mask(&self) -> Mask {
        let mut keep = vec![false; self.nrows * self.ncols];
        for r in 0..self.nrows {
            for &c in &self.indices[self.indptr[r]..self.indptr[r + 1]] {
                keep[r * self.ncols + c] = true;
            }
        }
        Mask::from_bools(&keep)
    }

    /// The dense matrix (zeros outside the pattern).
    pub fn to_dense(&self) -> Array2<F> {
        let mut out = Array2::zeros((self.nrows, self.ncols));
        for r in 0..self.nrows {
            let span = self.indptr[r]..self.indptr[r + 1];
            for (&c, &v) in self.indices[span.clone()].iter().zip(&self.values[span]) {
                out[[r, c]] = v;
            }
        }
        out
    }

    fn row(&self, r: usize) -> (&[usize], &[F]) {
        let span = self.indptr[r]..self.indptr[r + 1];
        (&self.indices[span.clone()], &self.values[span])
    }

    /// The stored columns of row `r`; empty past the last row (for prefetch hints).
    fn row_cols_or_empty(&self, r: usize) -> &[usize] {
        if r < self.nrows {
            self.row(r).0
        } else {
            &[]
        }
    }

    /// Rows per rayon task: each task does at least [`MIN_WORK_PER_TASK`] multiply–adds, and
    /// there are only a few tasks per thread, because every task sweeps all panels of the
    /// dense operand once and many small tasks would evict them from cache between rows.
    fn rows_per_task(&self, work_per_nnz: usize) -> usize {
        let work = self.nnz().saturating_mul(work_per_nnz).max(1);
        let tasks = (work / MIN_WORK_PER_TASK)
            .min(TASKS_PER_THREAD * rayon::current_num_threads())
            .clamp(1, self.nrows.max(1));
        self.nrows.div_ceil(tasks).max(1)
    }

    /// Sparse × dense: $W B$ for `b` of shape `ncols × n`. Multi-threaded over output rows;
    /// the kernel is chosen by [`CsrMatrix::spmm_kernel`].
    ///
    /// With the `cuda` feature, an `f32` product runs on the GPU when a CUDA device is present.
    pub fn matmul(&self, b: ArrayView2<'_, F>) -> Result<Array2<F>> {
        #[cfg(feature = "cuda")]
        if let Some(out) = crate::gpu::try_matmul(self, b)? {
            return Ok(out);
        }
        self.matmul_with(b, SpmmKernel::Auto)
    }

    /// The kernel [`CsrMatrix::matmul`] runs for a dense operand with `n` columns: packed
    /// panels when the dense operand is wider than one panel (256 bytes), larger than
    /// [`PANEL_CACHE_BYTES`] (but at most 1 GiB, the largest copy a product makes) while one
    /// panel takes at most half of that, and the rows hold at least
    /// [`PANEL_MIN_ENTRIES_PER_ROW`] stored entries on average; otherwise the row gather.
    /// Depends only on the matrix and `n`, never on the thread count.
    pub fn spmm_kernel(&self, n: usize) -> SpmmKernel {
        let size = std::mem::size_of::<F>().max(1);
        // B rows of at most 256 bytes are already as compact as a packed panel.
        let wider_than_a_panel = n > 256 / size;
        // Panels pay off only when B spills out of L2 and one panel stays in it.
        let b_bytes = self.ncols.saturating_mul(n).saturating_mul(size);
        let width = panel_width::<F>(n);
        let panel_bytes = self.ncols.saturating_mul(width * size);
        let packed_bytes = n.div_ceil(width).saturating_mul(panel_bytes);
        let panels_fit = b_bytes > PANEL_CACHE_BYTES
            && panel_bytes <= PANEL_CACHE_BYTES / 2
            && packed_bytes <= MAX_SCRATCH_BYTES;
        // Mean entries per row ≥ T, in integers: nnz ≥ T · nrows.
        let dense_rows = self.nnz() >= PANEL_MIN_ENTRIES_PER_ROW.saturating_mul(self.nrows);
        if wider_than_a_panel && panels_fit && dense_rows {
            SpmmKernel::PackedPanels
        } else {
            SpmmKernel::RowGather
        }
    }

    /// [`CsrMatrix::matmul`] with a given kernel (for measuring the kernels against each other;
    /// all kernels return bit-identical results: each output entry is the sum of its products
    /// in stored order, whatever the kernel or thread count).
    pub fn matmul_with(&self, b: ArrayView2<'_, F>, kernel: SpmmKernel) -> Result<Array2<F>> {
        if b.nrows() != self.ncols {
            return Err(Error::shape("b", format!("[{}, _]", self.ncols), b.shape()));
        }
        self.product(b, kernel, "b")
    }

    /// `W b` for a `b` of matching rows; a non-finite result is an error naming `b` as `name`.
    fn product(
        &self,
        b: ArrayView2<'_, F>,
        kernel: SpmmKernel,
        name: &'static str,
    ) -> Result<Array2<F>> {
        let n = b.ncols();
        if n == 0 || self.nrows == 0 || self.nnz() == 0 {
            return Ok(Array2::zeros((self.nrows, n)));
        }
        let kernel = match kernel {
            SpmmKernel::Auto => self.spmm_kernel(n),
            chosen => chosen,
        };
        let (out, all_finite) = match kernel {
            SpmmKernel::PackedPanels => {
                let mut out = vec![F::zero(); self.nrows * n];
                let all_finite = match panel_width::<F>(n) {
                    64 => self.matmul_panels::<64>(b, &mut out),
                    32 => self.matmul_panels::<32>(b, &mut out),
                    16 => self.matmul_panels::<16>(b, &mut out),
                    8 => self.matmul_panels::<8>(b, &mut out),
                    _ => self.matmul_panels::<4>(b, &mut out),
                };
                (out, all_finite)
            }
            _ => self.matmul_gather(b),
        };
        if !all_finite {
            // Stored weights are finite (checked at construction), so either `b` holds a
            // NaN/±∞ or its finite values overflow the sums.
            return Err(check::overflowed(name, &b, "the sparse product").into());
        }
        Ok(Array2::from_shape_vec((self.nrows, n), out).expect("length nrows·n"))
    }

    /// `W B` reading the rows of B where they are: each output row is swept in 256-byte column
    /// blocks, each block accumulated in registers over the row's stored entries. B is copied
    /// up front only into cache-aligned rows, and only when its rows are read often enough
    /// ([`CsrMatrix::aligned_copy_pays`]); very sparse rows need nothing copied, since a copy
    /// of B would cost as much as the product. Returns the row-major product and whether every
    /// entry is finite (checked per output block while it is still in registers, which costs
    /// far less than a second pass over the output).
    ///
    /// The output is not zeroed before the product when it can be avoided: at short rows the
    /// product writes little more than its output, and zeroing it first (a `memset` of the
    /// whole output, serial, which also evicts B from L2) measured about a tenth of the time
    /// on one thread. Rows made of whole 256-byte blocks are collected tile by tile
    /// ([`CsrMatrix::gather_tiles`]); other widths are appended row by row on one thread, and
    /// only on several threads written into a zeroed output.
    fn matmul_gather(&self, b: ArrayView2<'_, F>) -> (Vec<F>, bool) {
        let n = b.ncols();
        let (aligned, standard);
        let (b, ldb) = match b.as_slice() {
            Some(rows) if !(misaligned(rows, n) && self.aligned_copy_pays(n)) => (rows, n),
            // A copy made anyway (B not row-major) goes straight to aligned rows when it pays.
            None if !self.aligned_copy_pays(n) => {
                standard = b.as_standard_layout();
                (
                    standard.as_slice().expect("standard layout is contiguous"),
                    n,
                )
            }
            _ => {
                aligned = CacheAligned::rows_of(b);
                (aligned.as_slice(), aligned_row_len::<F>(n))
            }
        };
        let rows_per_task = self.rows_per_task(n);
        let arch = pulp::Arch::new();
        if n % (256 / std::mem::size_of::<F>().max(1)) == 0 {
            return if 256 / std::mem::size_of::<F>() >= 64 {
                self.gather_tiles::<64>(b, ldb, n, rows_per_task, arch)
            } else {
                self.gather_tiles::<32>(b, ldb, n, rows_per_task, arch)
            };
        }
        if rows_per_task >= self.nrows || rayon::current_num_threads() == 1 {
            let mut out = Vec::with_capacity(self.nrows * n);
            let all_finite = arch.dispatch(GatherRows {
                matrix: self,
                rows: 0..self.nrows,
                b,
                ldb,
                n,
                out: &mut out,
            });
            return (out, all_finite);
        }
        let mut out = vec![F::zero(); self.nrows * n];
        let all_finite = out
            .par_chunks_mut(rows_per_task * n)
            .enumerate()
            .map(|(task, chunk)| {
                let first_row = task * rows_per_task;
                arch.dispatch(GatherRows {
                    matrix: self,
                    rows: first_row..first_row + chunk.len() / n,
                    b,
                    ldb,
                    n,
                    out: &mut SliceCursor { out: chunk, at: 0 },
                })
            })
            .reduce(|| true, |a, b| a && b);
        (out, all_finite)
    }

    /// Whether a cache-aligned copy of B (`ncols × n`) pays for itself in the row gather: when
    /// rows of B do not start on a cache line, each 256-byte block of a row spans five lines
    /// instead of four, and the copy (one sequential pass over B) is worth it once every row of
    /// B is read [`ALIGN_MIN_READS_PER_ROW`] times on average. See [`aligned_copy_pays`].
    fn aligned_copy_pays(&self, n: usize) -> bool {
        aligned_copy_pays(
            n.saturating_mul(std::mem::size_of::<F>()),
            aligned_copy_bytes::<F>(self.ncols, n),
            self.nnz(),
            self.ncols,
        )
    }

    /// The row gather of [`CsrMatrix::matmul_gather`] when `n` is a multiple of `P`: output
    /// tile `t` is the `P` columns `(t mod n/P)·P ..` of row `t div n/P`, and rayon collects
    /// the tiles in order straight into the output, which is never zeroed. Returns the product
    /// and whether it is finite.
    fn gather_tiles<const P: usize>(
        &self,
        b: &[F],
        ldb: usize,
        n: usize,
        rows_per_task: usize,
        arch: pulp::Arch,
    ) -> (Vec<F>, bool) {
        let all_finite = AtomicBool::new(true);
        let mut tiles: Vec<[F; P]> = Vec::with_capacity(self.nrows * (n / P));
        Tiles::<F, P> {
            matrix: self,
            b,
            ldb,
            n,
            range: 0..self.nrows * (n / P),
            min_len: rows_per_task * (n / P),
            arch,
            all_finite: &all_finite,
        }
        .collect_into_vec(&mut tiles);
        (tiles.into_flattened(), all_finite.into_inner())
    }

    /// `out = W B` with B cut into column panels of width `P`, each packed contiguously
    /// (`ncols × P`, zero-padded): a panel is small enough to stay in L2 and its pages in the
    /// TLB while every output row streams the panel rows its stored entries select. (Read in
    /// place, the rows of one panel sit a full row of B apart, which maps many of them to
    /// the same cache sets.)
    /// Returns whether every output entry is finite (see [`CsrMatrix::matmul_gather`]).
    fn matmul_panels<const P: usize>(&self, b: ArrayView2<'_, F>, out: &mut [F]) -> bool {
        let n = b.ncols();
        let packed = pack_panels::<F, P>(b);
        let rows_per_task = self.rows_per_task(n);
        let arch = pulp::Arch::new();
        out.par_chunks_mut(rows_per_task * n)
            .enumerate()
            .map(|(task, chunk)| {
                arch.dispatch(PanelProduct::<F, P> {
                    matrix: self,
                    first_row: task * rows_per_task,
                    packed: packed.as_slice(),
                    n,
                    out: chunk,
                })
            })
            .reduce(|| true, |a, b| a && b)
    }

    /// Dense × sparseᵀ: $X W^\top$ for `x` of shape `batch × ncols` (the forward pass of a
    /// linear layer $y = W x$ on a batch of row vectors). Returns `batch × nrows`.
    pub fn matmul_transposed_from_left(&self, x: ArrayView2<'_, F>) -> Result<Array2<F>> {
        if x.ncols() != self.ncols {
            return Err(Error::shape("x", format!("[_, {}]", self.ncols), x.shape()));
        }
        // (X Wᵀ)ᵀ = W Xᵀ: with Xᵀ copied row-major the row kernel runs over contiguous rows;
        // the two transposing copies cost O((ncols + nrows)·batch), small next to nnz·batch.
        let xt = x.t().as_standard_layout().into_owned();
        // The only error left is a non-finite product: report it in `x`'s own index order.
        let yt = self
            .product(xt.view(), SpmmKernel::Auto, "x")
            .map_err(|_| Error::from(check::overflowed("x", &x, "the sparse product")))?;
        Ok(yt.t().as_standard_layout().into_owned())
    }

    /// Masked weight gradient $(\mathrm{d}Y X^\top) \odot M$ for $Y = W X$, computed only at
    /// the stored entries: `dy` is `nrows × n`, `x` is `ncols × n`. The result has this
    /// matrix's pattern (entry $(i, j)$ = row $i$ of `dy` · row $j$ of `x`).
    pub fn masked_gradient(&self, dy: ArrayView2<'_, F>, x: ArrayView2<'_, F>) -> Result<Self> {
        if dy.nrows() != self.nrows {
            return Err(Error::shape(
                "dy",
                format!("[{}, _]", self.nrows),
                dy.shape(),
            ));
        }
        if x.nrows() != self.ncols || x.ncols() != dy.ncols() {
            return Err(Error::shape(
                "x",
                format!("[{}, {}]", self.ncols, dy.ncols()),
                x.shape(),
            ));
        }
        let n = dy.ncols();
        let mut values = vec![F::zero(); self.nnz()];
        if n > 0 && self.nnz() > 0 && self.gradient_through_dense_blocks() {
            self.masked_gradient_dense_blocks(dy, x, &mut values);
        } else if n > 0 && self.nnz() > 0 {
            let dy = dy.as_standard_layout();
            let x = x.as_standard_layout();
            let (dy, x) = (
                dy.as_slice().expect("standard layout is contiguous"),
                x.as_slice().expect("standard layout is contiguous"),
            );
            let rows_per_task = self.rows_per_task(n);
            let block_cols = self.gradient_block_cols(n);
            let arch = pulp::Arch::new();
            self.split_rows(&mut values, rows_per_task)
                .into_par_iter()
                .for_each(|(rows, chunk)| {
                    arch.dispatch(GradientRows {
                        matrix: self,
                        rows,
                        dy,
                        x,
                        n,
                        block_cols,
                        out: chunk,
                    })
                });
        }
        if !values.iter().all(|v| v.is_finite()) {
            // One pass over the stored entries, small next to the products that made them.
            check::finite("dy", &dy)?;
            return Err(check::overflowed("x", &x, "the masked gradient").into());
        }
        Ok(Self {
            nrows: self.nrows,
            ncols: self.ncols,
            indptr: self.indptr.clone(),
            indices: self.indices.clone(),
            values,
        })
    }

    /// Whether [`CsrMatrix::masked_gradient`] computes dense row blocks of $\mathrm{d}Y X^\top$
    /// (matrixmultiply's GEMM) and keeps the stored entries: from density
    /// [`GRADIENT_DENSE_MIN_DENSITY`] on, the GEMM's efficiency outweighs the work it wastes.
    fn gradient_through_dense_blocks(&self) -> bool {
        let entries = self.nrows as f64 * self.ncols as f64;
        self.nnz() as f64 >= GRADIENT_DENSE_MIN_DENSITY * entries
    }

    /// The masked gradient through one dense block of rows per rayon thread: each block of
    /// $\mathrm{d}Y X^\top$ is computed whole (matrixmultiply) and only its stored entries are
    /// kept. One block per thread because smaller blocks measured up to 1.4× slower (GEMM
    /// re-packs $X^\top$ per block). The values do not depend on the blocking: GEMM forms every
    /// entry by the same sequence of k-blocked sums wherever its row falls (tested with one
    /// and two threads).
    fn masked_gradient_dense_blocks(
        &self,
        dy: ArrayView2<'_, F>,
        x: ArrayView2<'_, F>,
        values: &mut [F],
    ) {
        let xt = x.t();
        let rows_per_block = self.nrows.div_ceil(rayon::current_num_threads().max(1));
        self.split_rows(values, rows_per_block)
            .into_par_iter()
            .for_each(|(rows, chunk)| {
                let block = dy.slice(ndarray::s![rows.clone(), ..]).dot(&xt);
                let base = self.indptr[rows.start];
                for (local, r) in rows.enumerate() {
                    let span = self.indptr[r]..self.indptr[r + 1];
                    let dense_row = block.row(local);
                    for (g, &c) in chunk[span.start - base..span.end - base]
                        .iter_mut()
                        .zip(&self.indices[span])
                    {
                        *g = dense_row[c];
                    }
                }
            });
    }

    /// `values` (one per stored entry) cut at row boundaries into runs of `rows_per_task`
    /// rows, each with its row range, so that each task owns whole rows.
    fn split_rows<'v>(
        &self,
        values: &'v mut [F],
        rows_per_task: usize,
    ) -> Vec<(std::ops::Range<usize>, &'v mut [F])> {
        let mut tasks = Vec::with_capacity(self.nrows.div_ceil(rows_per_task.max(1)));
        let mut rest = values;
        let mut start = 0;
        while start < self.nrows {
            let end = start.saturating_add(rows_per_task.max(1)).min(self.nrows);
            let (head, tail) = rest.split_at_mut(self.indptr[end] - self.indptr[start]);
            tasks.push((start..end, head));
            rest = tail;
            start = end;
        }
        tasks
    }

    /// Rows of `x` per column block of [`CsrMatrix::masked_gradient`]: enough for about
    /// [`GRADIENT_BLOCK_BYTES`] of `x`, so that a block stays in L2 while every row of the task
    /// takes its entries in that block's columns; all of `x` at once when the rows are too
    /// sparse to reuse a block (then the `dy` row would be reloaded for every block).
    fn gradient_block_cols(&self, n: usize) -> usize {
        let sparse_rows = self.nnz() < GRADIENT_MIN_ENTRIES_PER_ROW.saturating_mul(self.nrows);
        if sparse_rows {
            return self.ncols.max(1);
        }
        let row_bytes = n.saturating_mul(std::mem::size_of::<F>()).max(1);
        (GRADIENT_BLOCK_BYTES / row_bytes).clamp(4, self.ncols.max(4))
    }

    /// Masked weight gradient $(\mathrm{d}Y^\top X) \odot M$ for the batch-major layer
    /// $Y = X W^\top$: `dy` is `batch × nrows`, `x` is `batch × ncols`.
    pub fn masked_gradient_batch_major(
        &self,
        dy: ArrayView2<'_, F>,
        x: ArrayView2<'_, F>,
    ) -> Result<Self> {
        if dy.ncols() != self.nrows {
            return Err(Error::shape(
                "dy",
                format!("[_, {}]", self.nrows),
                dy.shape(),
            ));
        }
        if x.ncols() != self.ncols || x.nrows() != dy.nrows() {
            return Err(Error::shape(
                "x",
                format!("[{}, {}]", dy.nrows(), self.ncols),
                x.shape(),
            ));
        }
        // Row-major transposed copies make every dot product contiguous.
        let dyt = dy.t().as_standard_layout().into_owned();
        let xt = x.t().as_standard_layout().into_owned();
        self.masked_gradient(dyt.view(), xt.view())
    }
}

/// Panel width (in elements) for a product with `n` output columns: 256 bytes when `n` is
/// large enough, otherwise the smallest power of two ≥ 4 that covers `n` or a quarter of it.
fn panel_width<F>(n: usize) -> usize {
    let widest = 256 / std::mem::size_of::<F>().max(1);
    let mut width = widest.min(64);
    while width > 4 && width > n {
        width /= 2;
    }
    width
}

/// One task of [`CsrMatrix::matmul_panels`]: rows `first_row..` of the product, written to
/// `out` (whole rows of width `n`). A struct rather than a closure so that `pulp` can compile
/// the body for the best instruction set found at run time (AVX2/FMA on x86-64).
struct PanelProduct<'a, F, const P: usize> {
    matrix: &'a CsrMatrix<F>,
    first_row: usize,
    packed: &'a [F],
    n: usize,
    out: &'a mut [F],
}

impl<F: Float, const P: usize> pulp::WithSimd for PanelProduct<'_, F, P> {
    type Output = bool;

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) -> bool {
        let Self {
            matrix,
            first_row,
            packed,
            n,
            out,
        } = self;
        let k = matrix.ncols;
        let mut all_finite = true;
        for (p, panel) in packed.chunks_exact(k * P).enumerate() {
            let first = p * P;
            let width = P.min(n - first);
            for (local, out_row) in out.chunks_exact_mut(n).enumerate() {
                let (cols, vals) = matrix.row(first_row + local);
                // The next row reads the same panel.
                let next = || Lookahead {
                    cols: matrix.row_cols_or_empty(first_row + local + 1),
                    j0: 0,
                };
                let acc = accumulate::<F, P>(cols, vals, panel, P, 0, next);
                all_finite &= finite_block(&acc);
                // A fixed-size store on full panels: a copy of a run-time length would make
                // the compiler keep the accumulators in memory instead of registers.
                if width == P {
                    out_row[first..first + P].copy_from_slice(&acc);
                } else {
                    out_row[first..first + width].copy_from_slice(&acc[..width]);
                }
            }
        }
        all_finite
    }
}

/// B (`k × n`) as `n / P` (rounded up) contiguous `k × P` column panels, zero-padded, the
/// first starting on a cache line (so that every panel row of 256 bytes spans four lines,
/// not five).
fn pack_panels<F: Float, const P: usize>(b: ArrayView2<'_, F>) -> CacheAligned<F> {
    let (k, n) = b.dim();
    let mut aligned = CacheAligned::zeroed(n.div_ceil(P) * k * P);
    let packed = aligned.as_mut_slice();
    if let Some(rows) = b.as_slice() {
        // Row-major B: each panel row is one contiguous copy (a memcpy, not an iterator).
        packed
            .par_chunks_mut(k * P)
            .enumerate()
            .for_each(|(p, panel)| {
                let first = p * P;
                let width = P.min(n - first);
                for (dst, src) in panel.chunks_exact_mut(P).zip(rows.chunks_exact(n)) {
                    dst[..width].copy_from_slice(&src[first..first + width]);
                }
            });
        return aligned;
    }
    packed
        .par_chunks_mut(k * P)
        .enumerate()
        .for_each(|(p, panel)| {
            let first = p * P;
            let width = P.min(n - first);
            for (j, dst) in panel.chunks_exact_mut(P).enumerate() {
                for (d, &v) in dst[..width].iter_mut().zip(b.row(j).iter().skip(first)) {
                    *d = v;
                }
            }
        });
    aligned
}

/// Whether the rows of `rows` (row-major, width `n`) do not all start on a cache line.
fn misaligned<F>(rows: &[F], n: usize) -> bool {
    let row_bytes = n.saturating_mul(std::mem::size_of::<F>());
    rows.as_ptr().align_offset(CACHE_LINE) != 0 || row_bytes % CACHE_LINE != 0
}

/// Whether a cache-aligned copy of B (rows of `row_bytes`, `copy_bytes` in all once padded)
/// pays for itself when the sparse matrix has `nnz` entries over `ncols` columns: each row of B
/// must be read [`ALIGN_MIN_READS_PER_ROW`] times on average, the rows must be at least one
/// 256-byte block wide (padding narrower rows to whole lines could multiply the memory, 16×
/// for one `f32` column), and the copy must stay within [`MAX_SCRATCH_BYTES`].
fn aligned_copy_pays(row_bytes: usize, copy_bytes: usize, nnz: usize, ncols: usize) -> bool {
    row_bytes >= 4 * CACHE_LINE
        && copy_bytes <= MAX_SCRATCH_BYTES
        && nnz >= ALIGN_MIN_READS_PER_ROW.saturating_mul(ncols)
}

/// Elements per row of a cache-aligned copy of rows of `n` elements: `n` rounded up to whole
/// cache lines.
fn aligned_row_len<F>(n: usize) -> usize {
    let per_line = values_per_line::<F>();
    n.div_ceil(per_line).saturating_mul(per_line)
}

/// Values of type `F` in one cache line.
fn values_per_line<F>() -> usize {
    (CACHE_LINE / std::mem::size_of::<F>().max(1)).max(1)
}

/// Bytes of the cache-aligned copy of `rows` rows of `n` elements.
fn aligned_copy_bytes<F>(rows: usize, n: usize) -> usize {
    rows.saturating_mul(aligned_row_len::<F>(n))
        .saturating_mul(std::mem::size_of::<F>())
}

/// Storage whose first element sits on a cache line: the storage is over-allocated by one
/// line and the data starts at the first aligned element (safe code cannot ask the allocator
/// for a stricter alignment than the element type's, hence the offset).
/// [`CacheAligned::rows_of`] pads each row to whole lines ([`aligned_row_len`]), so that every
/// row starts on one; [`pack_panels`] fills it with panels of 256-byte rows.
struct CacheAligned<F> {
    storage: Vec<F>,
    offset: usize,
    len: usize,
}

impl<F: Float> CacheAligned<F> {
    /// The rows of `b` (any layout), each starting on a cache line: row `i` at
    /// `i · aligned_row_len(n)`.
    fn rows_of(b: ArrayView2<'_, F>) -> Self {
        let (k, n) = b.dim();
        let row_len = aligned_row_len::<F>(n);
        let mut aligned = Self::zeroed(k * row_len);
        aligned
            .as_mut_slice()
            .par_chunks_mut(row_len)
            .enumerate()
            .with_min_len(64)
            .for_each(|(i, dst)| {
                let row = b.row(i);
                match row.as_slice() {
                    Some(src) => dst[..n].copy_from_slice(src),
                    None => dst.iter_mut().zip(row.iter()).for_each(|(d, &v)| *d = v),
                }
            });
        aligned
    }

    /// `len` zeros starting on a cache line.
    fn zeroed(len: usize) -> Self {
        let per_line = values_per_line::<F>();
        let storage = vec![F::zero(); len + per_line];
        // `align_offset` may decline (usize::MAX); the copy is then merely unaligned.
        let offset = match storage.as_ptr().align_offset(CACHE_LINE) {
            o if o < per_line => o,
            _ => 0,
        };
        Self {
            storage,
            offset,
            len,
        }
    }

    fn as_slice(&self) -> &[F] {
        &self.storage[self.offset..self.offset + self.len]
    }

    fn as_mut_slice(&mut self) -> &mut [F] {
        &mut self.storage[self.offset..self.offset + self.len]
    }
}

/// Where [`GatherRows`] puts the output, one block after the other in row-major order.
trait BlockSink<F> {
    /// Appends `block` after everything put so far.
    fn put(&mut self, block: &[F]);
}

/// Appending to a vector with enough capacity: no zeroing pass before the product.
impl<F: Copy> BlockSink<F> for Vec<F> {
    #[inline(always)]
    fn put(&mut self, block: &[F]) {
        self.extend_from_slice(block);
    }
}

/// Writing a zero-initialised slice (a rayon task's share of the output) from the front.
struct SliceCursor<'a, F> {
    out: &'a mut [F],
    at: usize,
}

impl<F: Copy> BlockSink<F> for SliceCursor<'_, F> {
    #[inline(always)]
    fn put(&mut self, block: &[F]) {
        let end = self.at + block.len();
        self.out[self.at..end].copy_from_slice(block);
        self.at = end;
    }
}

/// One task of [`CsrMatrix::matmul_gather`]: rows `rows` of the product, put whole rows of
/// width `n` into `out`, reading B (`ncols` rows of `n` values, row-major with leading
/// dimension `ldb ≥ n`).
struct GatherRows<'a, F, S> {
    matrix: &'a CsrMatrix<F>,
    rows: std::ops::Range<usize>,
    b: &'a [F],
    ldb: usize,
    n: usize,
    out: &'a mut S,
}

impl<F: Float, S: BlockSink<F>> pulp::WithSimd for GatherRows<'_, F, S> {
    type Output = bool;

    #[inline(always)]
    fn with_simd<Simd: pulp::Simd>(self, _simd: Simd) -> bool {
        let Self {
            matrix,
            rows,
            b,
            ldb,
            n,
            out,
        } = self;
        let mut all_finite = true;
        for r in rows {
            let (cols, vals) = matrix.row(r);
            let next_row = matrix.row_cols_or_empty(r + 1);
            all_finite &= if 256 / std::mem::size_of::<F>() >= 64 {
                gather_row::<F, 64, S>(cols, vals, next_row, b, ldb, n, out)
            } else {
                gather_row::<F, 32, S>(cols, vals, next_row, b, ldb, n, out)
            };
        }
        all_finite
    }
}

/// The output tiles `range` of [`CsrMatrix::gather_tiles`] (tile `t`: the `P` columns
/// `(t mod n/P)·P ..` of row `t div n/P`) as an indexed parallel iterator, so that rayon's
/// `collect_into_vec` writes each tile straight into the output, and each rayon task computes
/// its tiles in one `pulp` dispatch ([`Producer::fold_with`]). A non-finite tile clears
/// `all_finite`.
struct Tiles<'a, F, const P: usize> {
    matrix: &'a CsrMatrix<F>,
    b: &'a [F],
    ldb: usize,
    n: usize,
    range: std::ops::Range<usize>,
    min_len: usize,
    arch: pulp::Arch,
    all_finite: &'a AtomicBool,
}

impl<F: Float, const P: usize> Tiles<'_, F, P> {
    #[inline(always)]
    fn tile(&self, t: usize) -> [F; P] {
        let per_row = self.n / P;
        let (row, j0) = (t / per_row, t % per_row * P);
        let (cols, vals) = self.matrix.row(row);
        let next = || {
            Lookahead::after(cols, j0 + P, self.n, || {
                self.matrix.row_cols_or_empty(row + 1)
            })
        };
        let acc = accumulate::<F, P>(cols, vals, self.b, self.ldb, j0, next);
        if !finite_block(&acc) {
            self.all_finite.store(false, Ordering::Relaxed);
        }
        acc
    }

    fn with_range(&self, range: std::ops::Range<usize>) -> Self {
        Self { range, ..*self }
    }
}

impl<F: Float, const P: usize> ParallelIterator for Tiles<'_, F, P> {
    type Item = [F; P];

    fn drive_unindexed<C: UnindexedConsumer<Self::Item>>(self, consumer: C) -> C::Result {
        bridge(self, consumer)
    }

    fn opt_len(&self) -> Option<usize> {
        Some(self.range.len())
    }
}

impl<F: Float, const P: usize> IndexedParallelIterator for Tiles<'_, F, P> {
    fn len(&self) -> usize {
        self.range.len()
    }

    fn drive<C: Consumer<Self::Item>>(self, consumer: C) -> C::Result {
        bridge(self, consumer)
    }

    fn with_producer<CB: ProducerCallback<Self::Item>>(self, callback: CB) -> CB::Output {
        callback.callback(self)
    }
}

impl<'a, F: Float, const P: usize> Producer for Tiles<'a, F, P> {
    type Item = [F; P];
    type IntoIter = TileIter<'a, F, P>;

    fn into_iter(self) -> Self::IntoIter {
        TileIter(self)
    }

    fn min_len(&self) -> usize {
        self.min_len
    }

    fn split_at(self, index: usize) -> (Self, Self) {
        let mid = self.range.start + index;
        (
            self.with_range(self.range.start..mid),
            self.with_range(mid..self.range.end),
        )
    }

    fn fold_with<G: Folder<Self::Item>>(self, folder: G) -> G {
        self.arch.dispatch(FoldTiles {
            tiles: self,
            folder,
        })
    }
}

/// The tiles of [`Tiles`] one at a time (rayon's fallback; its leaves use `fold_with`).
struct TileIter<'a, F, const P: usize>(Tiles<'a, F, P>);

impl<F: Float, const P: usize> Iterator for TileIter<'_, F, P> {
    type Item = [F; P];

    fn next(&mut self) -> Option<[F; P]> {
        let t = self.0.range.next()?;
        Some(self.0.tile(t))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.range.size_hint()
    }
}

impl<F: Float, const P: usize> DoubleEndedIterator for TileIter<'_, F, P> {
    fn next_back(&mut self) -> Option<[F; P]> {
        let t = self.0.range.next_back()?;
        Some(self.0.tile(t))
    }
}

impl<F: Float, const P: usize> ExactSizeIterator for TileIter<'_, F, P> {}

/// One rayon task of [`Tiles`]: its tiles handed to `folder` in order, compiled for the best
/// instruction set found at run time.
struct FoldTiles<'a, F, const P: usize, G> {
    tiles: Tiles<'a, F, P>,
    folder: G,
}

impl<F: Float, const P: usize, G: Folder<[F; P]>> pulp::WithSimd for FoldTiles<'_, F, P, G> {
    type Output = G;

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) -> G {
        let Self { tiles, mut folder } = self;
        for t in tiles.range.clone() {
            folder = folder.consume(tiles.tile(t));
            if folder.full() {
                break;
            }
        }
        folder
    }
}

/// One output row of [`GatherRows`]: blocks of `P` columns, then the remainder in halving
/// widths down to single columns, so that no padded column is ever computed. Returns whether
/// the row is finite.
#[inline(always)]
fn gather_row<F: Float, const P: usize, S: BlockSink<F>>(
    cols: &[usize],
    vals: &[F],
    next_row: &[usize],
    b: &[F],
    ldb: usize,
    n: usize,
    out: &mut S,
) -> bool {
    let next = |end: usize| Lookahead::after(cols, end, n, || next_row);
    let mut all_finite = true;
    let mut j = 0;
    while n - j >= P {
        let acc = accumulate::<F, P>(cols, vals, b, ldb, j, || next(j + P));
        all_finite &= finite_block(&acc);
        out.put(&acc);
        j += P;
    }
    if P > 32 && n - j >= 32 {
        let acc = accumulate::<F, 32>(cols, vals, b, ldb, j, || next(j + 32));
        all_finite &= finite_block(&acc);
        out.put(&acc);
        j += 32;
    }
    if n - j >= 16 {
        let acc = accumulate::<F, 16>(cols, vals, b, ldb, j, || next(j + 16));
        all_finite &= finite_block(&acc);
        out.put(&acc);
        j += 16;
    }
    if n - j >= 8 {
        let acc = accumulate::<F, 8>(cols, vals, b, ldb, j, || next(j + 8));
        all_finite &= finite_block(&acc);
        out.put(&acc);
        j += 8;
    }
    if n - j >= 4 {
        let acc = accumulate::<F, 4>(cols, vals, b, ldb, j, || next(j + 4));
        all_finite &= finite_block(&acc);
        out.put(&acc);
        j += 4;
    }
    for jj in j..n {
        let acc = accumulate::<F, 1>(cols, vals, b, ldb, jj, || Lookahead::NONE);
        all_finite &= acc[0].is_finite();
        out.put(&acc);
    }
    all_finite
}

/// Whether a block of accumulators is finite. An OR of independent per-lane tests, which
/// the compiler turns into a few vector compares (a chained float sum would serialise the
/// lanes and cost more than the product at short rows).
#[inline(always)]
fn finite_block<F: Float, const W: usize>(acc: &[F; W]) -> bool {
    !acc.iter().fold(false, |bad, v| bad | !v.is_finite())
}

/// $\sum_t v_t\, B[c_t, j_0 .. j_0 + W]$ over the stored entries `(c_t, v_t)` of one row, in
/// stored order, with the `W` accumulators in registers (one load per multiply–add). `b` is
/// row-major with leading dimension `ldb`. Multiply and add are rounded separately, so every
/// kernel (and the naive loop) gives the same bits.
///
/// The rows of B that an entry selects are scattered, so the hardware prefetchers cannot
/// predict them; the loop asks for the block of the entry [`PREFETCH_DISTANCE`] places ahead,
/// continuing into `next` (the block the caller computes after this one) near the row's end.
#[inline(always)]
fn accumulate<'a, F: Float, const W: usize>(
    cols: &[usize],
    vals: &[F],
    b: &[F],
    ldb: usize,
    j0: usize,
    next: impl FnOnce() -> Lookahead<'a>,
) -> [F; W] {
    let mut acc = [F::zero(); W];
    let len = cols.len().min(vals.len());
    if W * std::mem::size_of::<F>() < CACHE_LINE || len <= PREFETCH_DISTANCE {
        // Narrow blocks and short rows: prefetching costs more than it hides.
        for (&c, &v) in cols.iter().zip(vals) {
            add_scaled_row(&mut acc, v, b, c * ldb + j0);
        }
        return acc;
    }
    let split = len - PREFETCH_DISTANCE;
    for (t, (&c, &v)) in cols[..split].iter().zip(vals).enumerate() {
        prefetch_block::<F, W>(b, cols[t + PREFETCH_DISTANCE] * ldb + j0);
        add_scaled_row(&mut acc, v, b, c * ldb + j0);
    }
    let next = next();
    for (k, (&c, &v)) in cols[split..len].iter().zip(&vals[split..len]).enumerate() {
        if let Some(&ahead) = next.cols.get(k) {
            prefetch_block::<F, W>(b, ahead * ldb + next.j0);
        }
        add_scaled_row(&mut acc, v, b, c * ldb + j0);
    }
    acc
}

/// `acc += v · b[start .. start + W]`, each product rounded before its sum.
#[inline(always)]
fn add_scaled_row<F: Float, const W: usize>(acc: &mut [F; W], v: F, b: &[F], start: usize) {
    let slice: &[F; W] = b[start..start + W]
        .try_into()
        .expect("a slice of W entries");
    for (a, &x) in acc.iter_mut().zip(slice) {
        *a += v * x;
    }
}

/// The block that [`accumulate`]'s caller computes next: the stored columns it reads and its
/// first column. Only a prefetch hint; empty when there is none.
#[derive(Clone, Copy)]
struct Lookahead<'a> {
    cols: &'a [usize],
    j0: usize,
}

impl<'a> Lookahead<'a> {
    const NONE: Lookahead<'static> = Lookahead { cols: &[], j0: 0 };

    /// The block after the one that ends at column `end` of a row of width `n` whose stored
    /// columns are `cols`: the rest of this row, else the first block of the next row (whose
    /// columns `next_row` gives, empty when there is none).
    #[inline(always)]
    fn after(
        cols: &'a [usize],
        end: usize,
        n: usize,
        next_row: impl FnOnce() -> &'a [usize],
    ) -> Self {
        if end < n {
            Lookahead { cols, j0: end }
        } else {
            Lookahead {
                cols: next_row(),
                j0: 0,
            }
        }
    }
}

/// Stored entries between an entry and the one whose block of B is prefetched.
const PREFETCH_DISTANCE: usize = 16;

/// Prefetches the `W` values of `b` from `start` (any index: an address past the end is only
/// a wasted hint).
#[inline(always)]
fn prefetch_block<F, const W: usize>(b: &[F], start: usize) {
    prefetch_bytes(
        b.as_ptr().wrapping_add(start).cast(),
        W * std::mem::size_of::<F>(),
    );
}

/// Prefetches every cache line of the `bytes` bytes from `base`, the last one included when
/// they do not start on a line.
#[inline(always)]
fn prefetch_bytes(base: *const u8, bytes: usize) {
    let mut offset = 0;
    while offset < bytes {
        prefetch(base.wrapping_add(offset));
        offset += CACHE_LINE;
    }
    prefetch(base.wrapping_add(bytes.saturating_sub(1)));
}

/// Asks the CPU to bring the cache line holding `address` into L1. Written by hand because
/// stable Rust has no safe prefetch; `std::arch`'s intrinsic is `unsafe` only because it takes
/// a raw pointer. Does nothing on other architectures.
#[inline(always)]
#[allow(unsafe_code)]
fn prefetch(address: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `prefetcht0` is a hint. It never faults, reads nothing into the program and
    // writes nothing, whatever the address, and SSE is part of every x86-64 CPU.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(address.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = address;
}

/// One task of [`CsrMatrix::masked_gradient`]: the gradient values of rows `rows`, written
/// to `out` (their stored entries, in order). The columns are visited in blocks of
/// `block_cols` rows of `x` (all rows of the task for one block, then the next block), each
/// row keeping a cursor into its sorted entries. Every entry is still one complete dot
/// product, so the values do not depend on the blocking. A struct so that `pulp` can compile
/// it for the best instruction set found at run time.
struct GradientRows<'a, F> {
    matrix: &'a CsrMatrix<F>,
    rows: std::ops::Range<usize>,
    dy: &'a [F],
    x: &'a [F],
    n: usize,
    block_cols: usize,
    out: &'a mut [F],
}

impl<F: Float> pulp::WithSimd for GradientRows<'_, F> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let Self {
            matrix,
            rows,
            dy,
            x,
            n,
            block_cols,
            out,
        } = self;
        let base = matrix.indptr[rows.start];
        let mut cursors = matrix.indptr[rows.start..rows.end].to_vec();
        let mut block_start = 0;
        while block_start < matrix.ncols {
            let block_end = block_start.saturating_add(block_cols).min(matrix.ncols);
            for (local, r) in rows.clone().enumerate() {
                if let Some(&ahead) = cursors.get(local + 1) {
                    // The next row's entries in this block lie far from this row's, where the
                    // hardware prefetchers do not look. (Not its dY row: prefetching whole dY
                    // rows for every block streams all of dY once per block at wide batches.)
                    prefetch(matrix.indices.as_ptr().wrapping_add(ahead).cast());
                    prefetch(out.as_ptr().wrapping_add(ahead - base).cast());
                }
                let cursor = &mut cursors[local];
                let start = *cursor;
                let row_cols = &matrix.indices[start..matrix.indptr[r + 1]];
                // A scan, not a binary search: the entries scanned are the ones computed
                // next, while a bisection of the row's remaining columns reads lines far
                // from them.
                let end = start + row_cols.iter().take_while(|&&c| c < block_end).count();
                *cursor = end;
                if end > start {
                    gradient_entries(
                        &dy[r * n..(r + 1) * n],
                        x,
                        n,
                        &matrix.indices[start..end],
                        &mut out[start - base..end - base],
                    );
                }
            }
            block_start = block_end;
        }
    }
}

/// `grads[t] = dy_row · x[cols[t]]` for one row's entries.
#[inline(always)]
fn gradient_entries<F: Float>(dy_row: &[F], x: &[F], n: usize, cols: &[usize], grads: &mut [F]) {
    let x_row = |c: usize| &x[c * n..(c + 1) * n];
    // Four kept entries at a time share each load of the dY row.
    let mut col_quads = cols.chunks_exact(4);
    let mut grad_quads = grads.chunks_exact_mut(4);
    for (c, g) in col_quads.by_ref().zip(grad_quads.by_ref()) {
        let sums = dot4(dy_row, [x_row(c[0]), x_row(c[1]), x_row(c[2]), x_row(c[3])]);
        g.copy_from_slice(&sums);
    }
    for (&c, g) in col_quads
        .remainder()
        .iter()
        .zip(grad_quads.into_remainder())
    {
        *g = dot4(dy_row, [x_row(c); 4])[0];
    }
}

/// The sum of `L` (a power of two) accumulator lanes as a balanced tree: halves added
/// lane-wise until one lane is left, which the compiler does in vector registers, with
/// log₂ L dependent adds instead of L − 1 and a smaller rounding error than a running sum.
#[inline(always)]
fn pairwise_sum<F: Float, const L: usize>(mut lanes: [F; L]) -> F {
    const { assert!(L.is_power_of_two()) };
    let mut width = L;
    while width > 1 {
        width /= 2;
        for i in 0..width {
            let upper = lanes[i + width];
            lanes[i] += upper;
        }
    }
    lanes[0]
}

/// Four dot products `a · b[q]` with `LANES`-wide independent accumulators per product, so
/// that the multiply–adds vectorise and pipeline and each chunk of `a` is loaded once.
#[inline(always)]
fn dot4<F: Float>(a: &[F], b: [&[F]; 4]) -> [F; 4] {
    const LANES: usize = 16;
    let (mut acc0, mut acc1, mut acc2, mut acc3) = (
        [F::zero(); LANES],
        [F::zero(); LANES],
        [F::zero(); LANES],
        [F::zero(); LANES],
    );
    let full = a.len() / LANES * LANES;
    let chunk = |v: &[F], i: usize| -> [F; LANES] {
        v[i..i + LANES].try_into().expect("rows have equal length")
    };
    for i in (0..full).step_by(LANES) {
        let (ca, c0, c1, c2, c3) = (
            chunk(a, i),
            chunk(b[0], i),
            chunk(b[1], i),
            chunk(b[2], i),
            chunk(b[3], i),
        );
        for t in 0..LANES {
            acc0[t] += ca[t] * c0[t];
            acc1[t] += ca[t] * c1[t];
            acc2[t] += ca[t] * c2[t];
            acc3[t] += ca[t] * c3[t];
        }
    }
    let mut sums = [acc0, acc1, acc2, acc3].map(pairwise_sum);
    for i in full..a.len() {
        for (sum, b_q) in sums.iter_mut().zip(&b) {
            *sum += a[i] * b_q[i];
        }
    }
    sums
}

#[cfg(test)]
mod csr_construction_tests {
    use super::*;

    #[test]
    fn triplets_sum_duplicates_and_sort_columns() {
        let m = CsrMatrix::from_triplets(
            2,
            3,
            &[(1, 2, 1.0f32), (0, 1, 2.0), (1, 0, 3.0), (1, 2, 4.0)],
        )
        .unwrap();
        assert_eq!(m.nnz(), 3);
        assert_eq!(m.indices(), &[1, 0, 2]);
        assert_eq!(
            m.to_dense(),
            ndarray::array![[0.0, 2.0, 0.0], [3.0, 0.0, 5.0]]
        );
        let mut y = [0.0f32; 2];
        m.matvec(&[1.0, 1.0, 2.0], &mut y).unwrap();
        assert_eq!(y, [2.0, 13.0]);
        assert!(m.matvec(&[1.0], &mut y).is_err());
        assert!(CsrMatrix::<f64>::from_triplets(1, 1, &[(1, 0, 1.0)]).is_err());
        assert!(CsrMatrix::<f64>::from_triplets(1, 1, &[(0, 0, f64::NAN)]).is_err());
    }

    #[test]
    fn large_matvec_equals_dense_product() {
        let n = 700;
        let dense = Array2::from_shape_fn((n, n), |(i, j)| {
            if (i * 31 + j * 17) % 5 == 0 {
                i as f64 - j as f64 * 0.5
            } else {
                0.0
            }
        });
        let m = CsrMatrix::from_dense(dense.view()).unwrap();
        assert!(m.nnz() >= MIN_WORK_PER_TASK);
        let x: Vec<f64> = (0..n).map(|i| (i as f64 * 0.37).cos()).collect();
        let mut y = vec![0.0; n];
        m.matvec(&x, &mut y).unwrap();
        let expected = dense.dot(&ndarray::Array1::from(x));
        for (a, b) in y.iter().zip(&expected) {
            approx::assert_relative_eq!(*a, *b, epsilon = 1e-9, max_relative = 1e-12);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn round_trip_and_products() {
        let w = array![[1.0f64, 0.0, 2.0], [0.0, 0.0, 0.0], [3.0, 4.0, 0.0]];
        let a = CsrMatrix::from_dense(w.view()).unwrap();
        assert_eq!(a.nnz(), 4);
        assert_eq!(a.indptr(), &[0, 2, 2, 4]);
        assert_eq!(a.to_dense(), w);
        let b = array![[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]];
        assert_eq!(a.matmul(b.view()).unwrap(), w.dot(&b));
        let x = array![[1.0, -1.0, 2.0], [0.5, 0.0, 1.0]];
        assert_eq!(
            a.matmul_transposed_from_left(x.view()).unwrap(),
            x.dot(&w.t())
        );
        assert!(a.matmul(x.view()).is_err());
        assert!(a.matmul_transposed_from_left(b.view()).is_err());
    }

    #[test]
    fn masked_gradient_matches_dense() {
        let mask = Mask::from_bools(&[true, false, true, true, true, false]);
        let pattern = CsrMatrix::<f64>::zeros_like_mask(2, 3, &mask).unwrap();
        let dy = array![[1.0, 2.0], [3.0, -1.0]];
        let x = array![[0.5, 1.0], [2.0, 0.0], [-1.0, 4.0]];
        let g = pattern.masked_gradient(dy.view(), x.view()).unwrap();
        let mut dense = dy.dot(&x.t());
        mask.apply_view(dense.view_mut()).unwrap();
        assert_eq!(g.to_dense(), dense);
        let gb = pattern.masked_gradient_batch_major(dy.t(), x.t()).unwrap();
        assert_eq!(gb.to_dense(), dense);
        assert!(pattern.masked_gradient(x.view(), dy.view()).is_err());
    }

    /// The tiles of the row gather, taken one at a time from either end (rayon's fallback
    /// path), and split at any tile, equal the rows of the product computed by `matmul`.
    #[test]
    fn tiles_iterate_and_split_to_the_product() {
        let (m, k, n) = (5, 7, 64);
        let w = ndarray::Array2::from_shape_fn((m, k), |(i, j)| {
            if (i + 2 * j) % 3 == 0 {
                i as f32 - 0.5 * j as f32
            } else {
                0.0
            }
        });
        let a = CsrMatrix::from_dense(w.view()).unwrap();
        let b = ndarray::Array2::from_shape_fn((k, 2 * n), |(i, j)| (i * 3 + j) as f32 * 0.25);
        let expected = a.matmul(b.view()).unwrap();
        let all_finite = AtomicBool::new(true);
        // Rows padded with NaN to a leading dimension of 2n + 16: reading the padding would
        // show in the result.
        let ldb = 2 * n + 16;
        let mut padded = vec![f32::NAN; k * ldb];
        for (dst, src) in padded.chunks_exact_mut(ldb).zip(b.rows()) {
            dst[..2 * n].copy_from_slice(src.as_slice().unwrap());
        }
        let b = &padded[..];
        let tiles = Tiles::<f32, 64> {
            matrix: &a,
            b,
            ldb,
            n: 2 * n,
            range: 0..2 * m,
            min_len: 1,
            arch: pulp::Arch::new(),
            all_finite: &all_finite,
        };
        let flat = |tiles: Vec<[f32; 64]>| tiles.concat();
        let forward: Vec<[f32; 64]> = tiles.with_range(0..2 * m).into_iter().collect();
        assert_eq!(flat(forward), expected.as_slice().unwrap());
        let mut backward: Vec<[f32; 64]> = tiles.with_range(0..2 * m).into_iter().rev().collect();
        backward.reverse();
        assert_eq!(flat(backward), expected.as_slice().unwrap());
        for mid in 0..=2 * m {
            let (left, right) = tiles.with_range(0..2 * m).split_at(mid);
            assert_eq!((left.range.len(), right.range.len()), (mid, 2 * m - mid));
            let both: Vec<[f32; 64]> = left.into_iter().chain(right.into_iter()).collect();
            assert_eq!(flat(both), expected.as_slice().unwrap());
        }
        assert!(all_finite.load(Ordering::Relaxed));
    }

    /// Every row of the copy starts on a cache line and holds the source row, padded with
    /// zeros; the gather copies only a misaligned operand whose rows are read often enough.
    #[test]
    fn cache_aligned_rows_start_on_a_line_and_keep_the_values() {
        let storage: Vec<f32> = (0..3 * 20 + 1).map(|v| v as f32).collect();
        let rows = &storage[1..];
        let view = ndarray::ArrayView2::from_shape((3, 20), rows).unwrap();
        // Row-major (rows copied whole) and column-major (element by element) sources.
        let transposed = view.t().to_owned();
        for source in [view, transposed.t()] {
            let aligned = CacheAligned::rows_of(source);
            assert_eq!(aligned_row_len::<f32>(20), 32);
            let copy = aligned.as_slice();
            assert_eq!(copy.len(), 3 * 32);
            for (r, row) in copy.chunks_exact(32).enumerate() {
                assert_eq!(row.as_ptr().align_offset(CACHE_LINE), 0);
                assert_eq!(&row[..20], &rows[r * 20..(r + 1) * 20]);
                assert!(row[20..].iter().all(|&v| v == 0.0));
            }
        }
        let f64_rows = CacheAligned::<f64>::rows_of(ndarray::Array2::ones((3, 3)).view());
        assert_eq!(aligned_row_len::<f64>(3), 8);
        assert_eq!(f64_rows.as_slice().len(), 3 * 8);
        assert_eq!(f64_rows.as_slice().as_ptr().align_offset(CACHE_LINE), 0);
        assert_eq!(aligned_copy_bytes::<f32>(3, 20), 3 * 32 * 4);
        assert_eq!(aligned_copy_bytes::<f64>(usize::MAX, 3), usize::MAX);

        let lines = CacheAligned::<f32>::zeroed(4 * 80 + 1);
        let (on_line, off_line) = (&lines.as_slice()[..256], &lines.as_slice()[1..257]);
        assert!(misaligned(off_line, 64));
        assert!(!misaligned(on_line, 64));
        // 72 columns: 288-byte rows, so every other row starts off a line.
        assert!(misaligned(&lines.as_slice()[..288], 72));

        // (row bytes, copy bytes, nnz, ncols): each row of B read 48 times on average, rows of
        // at least 256 bytes, and a copy of at most 1 GiB.
        assert!(aligned_copy_pays(256, 1 << 30, 48 * 4, 4));
        assert!(!aligned_copy_pays(256, 1 << 30, 48 * 4 - 1, 4));
        assert!(!aligned_copy_pays(255, 1 << 30, 48 * 4, 4));
        assert!(!aligned_copy_pays(256, (1 << 30) + 1, 48 * 4, 4));
        let often = CsrMatrix::from_dense(ndarray::Array2::<f32>::ones((48, 4)).view()).unwrap();
        let seldom = CsrMatrix::from_dense(ndarray::Array2::<f32>::ones((47, 4)).view()).unwrap();
        assert!(often.aligned_copy_pays(64));
        assert!(!seldom.aligned_copy_pays(64));
        assert!(!often.aligned_copy_pays(63));
    }

    /// Gradient values computed with any column blocking equal the unblocked ones bit for bit.
    #[test]
    fn gradient_blocking_does_not_change_the_bits() {
        use pulp::WithSimd;
        let (m, k, n) = (9, 23, 37);
        let keep: Vec<bool> = (0..m * k)
            .map(|i| (i * 7919) % 5 < 2 || i % k == 0)
            .collect();
        let pattern = CsrMatrix::<f32>::zeros_like_mask(m, k, &Mask::from_bools(&keep)).unwrap();
        let dy: Vec<f32> = (0..m * n)
            .map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0)
            .collect();
        let x: Vec<f32> = (0..k * n)
            .map(|i| ((i * 53) % 97) as f32 / 48.0 - 1.0)
            .collect();
        let run = |block_cols: usize, rows: std::ops::Range<usize>| {
            let span = pattern.indptr[rows.start]..pattern.indptr[rows.end];
            let mut out = vec![0.0f32; span.len()];
            GradientRows {
                matrix: &pattern,
                rows,
                dy: &dy,
                x: &x,
                n,
                block_cols,
                out: &mut out,
            }
            .with_simd(pulp::Scalar::new());
            out
        };
        let whole = run(k, 0..m);
        assert_eq!(whole.len(), pattern.nnz());
        for block_cols in [1, 2, 3, 5, 8, 22, 100] {
            assert_eq!(run(block_cols, 0..m), whole, "block of {block_cols}");
            let split = [run(block_cols, 0..4), run(block_cols, 4..m)].concat();
            assert_eq!(split, whole, "two tasks, block of {block_cols}");
        }
        let dense = ndarray::Array2::from_shape_vec((m, n), dy.clone())
            .unwrap()
            .dot(
                &ndarray::Array2::from_shape_vec((k, n), x.clone())
                    .unwrap()
                    .t(),
            );
        for (t, (&c, &g)) in pattern.indices.iter().zip(&whole).enumerate() {
            let r = pattern.indptr.partition_point(|&p| p <= t) - 1;
            approx::assert_relative_eq!(g, dense[[r, c]], epsilon = 1e-4);
        }
    }

    #[test]
    fn from_parts_checks_invariants() {
        assert!(CsrMatrix::from_parts(2, 2, vec![0, 1, 2], vec![1, 0], vec![1.0f32, 2.0]).is_ok());
        assert!(CsrMatrix::from_parts(2, 2, vec![0, 1], vec![1], vec![1.0f32]).is_err());
        assert!(CsrMatrix::from_parts(1, 2, vec![0, 2], vec![1, 0], vec![1.0f32, 2.0]).is_err());
        assert!(CsrMatrix::from_parts(1, 2, vec![0, 1], vec![2], vec![1.0f32]).is_err());
        assert!(CsrMatrix::from_parts(1, 2, vec![0, 1], vec![0], vec![f32::NAN]).is_err());
        let nan = array![[f64::NAN]];
        assert!(CsrMatrix::from_dense(nan.view()).is_err());
    }
}
