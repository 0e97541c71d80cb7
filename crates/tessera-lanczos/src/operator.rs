//! The linear-operator abstraction every algorithm of this crate works on.

use ndarray::{ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2, Axis};

/// A square linear operator `A` of dimension `n` (symmetric for the algorithms of this crate),
/// known only through products `y ← A·x`.
///
/// Implemented for dense matrices, CSR matrices, closures and wrappers in this crate, and by
/// `tessera-nn` for exact Hessian- and Gauss–Newton-vector products.
pub trait LinearOperator<F> {
    /// The dimension `n` (the operator is `n × n`).
    fn dim(&self) -> usize;

    /// Writes `A·x` into `y`. Callers guarantee `x.len() == y.len() == self.dim()`.
    fn apply(&self, x: ArrayView1<'_, F>, y: ArrayViewMut1<'_, F>);

    /// Writes `A·X` into `Y` column by column (`X`, `Y` of shape `(n, k)`); override when a
    /// blocked product is cheaper than `k` single products.
    fn apply_batch(&self, x: ArrayView2<'_, F>, mut y: ArrayViewMut2<'_, F>) {
        for (xc, yc) in x.axis_iter(Axis(1)).zip(y.axis_iter_mut(Axis(1))) {
            self.apply(xc, yc);
        }
    }
}
