//! Distribution alignment (ReMixMatch, Berthelot et al. 2020, §3.2).
//!
//! $\tilde q = \mathrm{Normalize}(q \cdot p(y) / \tilde p(y))$ where $\tilde p(y)$ is the mean
//! model prediction on unlabelled data over the last `history` batches (128 in the paper and in
//! SSLH) and $p(y)$ the labelled class marginal: either fixed (the paper: the known class
//! distribution of the labelled set) or, as in SSLH, the mean of the labelled targets over the
//! same window.
//!
//! Means are taken over items (each batch weighs by its size); with equal batch sizes this
//! equals SSLH's mean of batch means.

use std::collections::VecDeque;
use tessera_core::RejectInput;

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis};

use crate::{check, Error, Float, Result};

/// A window of the last `capacity` batches: per-batch class sums and item counts.
#[derive(Debug, Clone)]
struct History<F> {
    batches: VecDeque<(Array1<F>, usize)>,
    capacity: usize,
}

impl<F: Float> History<F> {
    fn new(capacity: usize) -> Self {
        History {
            // The window fills batch by batch; reserve only a small part of it up front.
            batches: VecDeque::with_capacity(capacity.min(256)),
            capacity,
        }
    }

    fn push(&mut self, rows: ArrayView2<F>) {
        if self.batches.len() == self.capacity {
            self.batches.pop_front();
        }
        self.batches
            .push_back((rows.sum_axis(Axis(0)), rows.nrows()));
    }

    fn mean(&self) -> Option<Array1<F>> {
        let (first, _) = self.batches.front()?;
        let mut total = Array1::<F>::zeros(first.len());
        let mut count = 0usize;
        for (sums, n) in &self.batches {
            total += sums;
            count += n;
        }
        let count = F::from_f64_rounded(count as f64);
        Some(total.mapv(|s| s / count))
    }
}

/// Where $p(y)$ comes from.
#[derive(Debug, Clone)]
enum LabelledMarginal<F> {
    Fixed(Array1<F>),
    Running(History<F>),
}

/// Running distribution alignment state: the unlabelled prediction history and the labelled
/// marginal.
#[derive(Debug, Clone)]
pub struct DistributionAlignment<F> {
    classes: usize,
    history: usize,
    labelled: LabelledMarginal<F>,
    unlabelled: History<F>,
}

/// The longest accepted [`DistributionAlignment`] window, in batches (2^20).
pub const MAX_ALIGNMENT_HISTORY: usize = 1 << 20;

impl<F: Float> DistributionAlignment<F> {
    /// Alignment over `classes` classes with a window of `history` batches (128 in
    /// ReMixMatch); the labelled marginal is the running mean of the labelled targets given to
    /// [`observe_labelled`](Self::observe_labelled) (SSLH). `history` above
    /// [`MAX_ALIGNMENT_HISTORY`] is an error.
    pub fn new(classes: usize, history: usize) -> Result<Self> {
        if classes == 0 {
            return Err(Error::invalid("classes", classes, "must be >= 1"));
        }
        if history == 0 {
            return Err(Error::invalid("history", history, "must be >= 1 batch"));
        }
        tessera_core::check::size_at_most("history", history, MAX_ALIGNMENT_HISTORY)?;
        Ok(DistributionAlignment {
            classes,
            history,
            labelled: LabelledMarginal::Running(History::new(history)),
            unlabelled: History::new(history),
        })
    }

    /// Alignment towards a fixed, known labelled class distribution `marginal` (the paper's
    /// $p(y)$), which must be a probability vector over `classes` entries.
    pub fn with_labelled_marginal(marginal: ArrayView1<F>, history: usize) -> Result<Self> {
        let mut alignment = Self::new(marginal.len(), history)?;
        let as_row = marginal.insert_axis(Axis(0));
        check::probability_rows("marginal", &as_row)?;
        alignment.labelled = LabelledMarginal::Fixed(marginal.to_owned());
        Ok(alignment)
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// Window length in batches.
    pub fn history(&self) -> usize {
        self.history
    }

    /// Number of unlabelled batches currently in the window (at most `history`).
    pub fn unlabelled_batches(&self) -> usize {
        self.unlabelled.batches.len()
    }

    /// Adds a labelled batch of target rows (one-hot or soft) to the labelled window. Errors
    /// when the marginal is fixed, the class count differs, or a row is not a distribution.
    pub fn observe_labelled(&mut self, targets: ArrayView2<F>) -> Result<()> {
        self.check_rows("labelled_targets", &targets)?;
        match &mut self.labelled {
            LabelledMarginal::Running(history) => {
                history.push(targets);
                Ok(())
            }
            LabelledMarginal::Fixed(_) => Err(Error::invalid(
                "labelled_targets",
                "a batch",
                "this alignment uses a fixed labelled marginal; build it with `new` to track labelled batches",
            )),
        }
    }

    /// Adds a batch of model predictions (probability rows) on unlabelled data to the window;
    /// the 129th batch (with `history = 128`) evicts the first.
    pub fn observe_unlabelled(&mut self, probabilities: ArrayView2<F>) -> Result<()> {
        self.check_rows("unlabelled_probabilities", &probabilities)?;
        self.unlabelled.push(probabilities);
        Ok(())
    }

    /// $p(y)$: the fixed marginal or the mean of the labelled window (`None` before any
    /// labelled batch).
    pub fn labelled_marginal(&self) -> Option<Array1<F>> {
        match &self.labelled {
            LabelledMarginal::Fixed(marginal) => Some(marginal.clone()),
            LabelledMarginal::Running(history) => history.mean(),
        }
    }

    /// $\tilde p(y)$: the mean prediction over the unlabelled window (`None` before any
    /// unlabelled batch).
    pub fn unlabelled_marginal(&self) -> Option<Array1<F>> {
        self.unlabelled.mean()
    }

    /// Aligns probability rows: $\tilde q = \mathrm{Normalize}(q \cdot p(y) / \tilde p(y))$.
    ///
    /// Classes never predicted in the window ($\tilde p_c = 0$) are divided by the smallest
    /// positive number instead of 0. Errors before both marginals exist, on rows that are not
    /// distributions, or when an aligned row has no mass left (the row's only classes have
    /// $p(y) = 0$).
    pub fn align(&self, probabilities: ArrayView2<F>) -> Result<Array2<F>> {
        self.check_rows("probabilities", &probabilities)?;
        let labelled = self.labelled_marginal().ok_or_else(|| {
            Error::invalid(
                "labelled_marginal",
                "empty",
                "observe at least one labelled batch before aligning",
            )
        })?;
        let unlabelled = self.unlabelled_marginal().ok_or_else(|| {
            Error::invalid(
                "unlabelled_marginal",
                "empty",
                "observe at least one unlabelled batch before aligning",
            )
        })?;
        let ratio: Array1<F> = labelled
            .iter()
            .zip(unlabelled.iter())
            .map(|(&l, &u)| l / u.max(F::min_positive_value()))
            .collect();
        let mut aligned = &probabilities * &ratio;
        for (row, mut values) in aligned.rows_mut().into_iter().enumerate() {
            let sum: F = values.iter().copied().sum();
            if !(sum > F::zero() && sum.is_finite()) {
                return Err(Error::NotProbability {
                    name: "probabilities",
                    row,
                    reason: format!(
                        "aligned row has mass {sum}; it only covers classes with p(y) = 0"
                    ),
                });
            }
            values.mapv_inplace(|v| v / sum);
        }
        Ok(aligned)
    }

    /// SSLH's order for one ReMixMatch step: add the labelled targets (unless the marginal
    /// is fixed) and the unlabelled predictions to their windows, then align the
    /// predictions. On error the windows are unchanged.
    pub fn observe_and_align(
        &mut self,
        labelled_targets: ArrayView2<F>,
        unlabelled_probabilities: ArrayView2<F>,
    ) -> Result<Array2<F>> {
        self.check_rows("labelled_targets", &labelled_targets)?;
        self.check_rows("unlabelled_probabilities", &unlabelled_probabilities)?;
        // Work on a copy so that a batch that cannot be aligned leaves the windows untouched
        // (the windows are small: `history` vectors of `classes` entries each).
        let mut next = self.clone();
        if let LabelledMarginal::Running(history) = &mut next.labelled {
            history.push(labelled_targets);
        }
        next.unlabelled.push(unlabelled_probabilities);
        let aligned = next.align(unlabelled_probabilities)?;
        *self = next;
        Ok(aligned)
    }

    fn check_rows(&self, name: &'static str, rows: &ArrayView2<F>) -> Result<()> {
        if rows.ncols() != self.classes {
            return Err(Error::shape(
                name,
                format!("(batch, {}) (the alignment's class count)", self.classes),
                rows.shape(),
            ));
        }
        check::probability_rows(name, rows)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;
    use ndarray::array;

    #[test]
    fn aligns_towards_the_labelled_marginal() {
        let mut da = DistributionAlignment::new(2, 4).unwrap();
        let labelled = array![[1.0_f64, 0.0], [0.0, 1.0]];
        let unlabelled = array![[0.9_f64, 0.1], [0.7, 0.3]];
        let aligned = da
            .observe_and_align(labelled.view(), unlabelled.view())
            .unwrap();
        // p(y) = (.5, .5), p̃(y) = (.8, .2): q·(0.625, 2.5) renormalised.
        let raw = [0.9 * 0.625, 0.1 * 2.5];
        let sum: f64 = raw.iter().sum();
        assert_abs_diff_eq!(aligned[[0, 0]], raw[0] / sum, epsilon = 1e-15);
        assert_abs_diff_eq!(aligned.row(1).sum(), 1.0, epsilon = 1e-15);
    }

    #[test]
    fn window_evicts_oldest_batch() {
        let mut da = DistributionAlignment::new(2, 3).unwrap();
        da.observe_unlabelled(array![[1.0_f64, 0.0]].view())
            .unwrap();
        for _ in 0..3 {
            da.observe_unlabelled(array![[0.0_f64, 1.0]].view())
                .unwrap();
        }
        assert_eq!(da.unlabelled_batches(), 3);
        assert_eq!(da.unlabelled_marginal().unwrap(), array![0.0, 1.0]);
    }

    #[test]
    fn errors() {
        assert!(DistributionAlignment::<f64>::new(0, 128).is_err());
        assert!(DistributionAlignment::<f64>::new(3, 0).is_err());
        let da = DistributionAlignment::<f64>::new(2, 8).unwrap();
        let err = da.align(array![[0.5, 0.5]].view()).unwrap_err();
        assert!(err.to_string().contains("marginal"), "{err}");
        let mut fixed =
            DistributionAlignment::with_labelled_marginal(array![0.5_f64, 0.5].view(), 8).unwrap();
        assert!(fixed.observe_labelled(array![[1.0, 0.0]].view()).is_err());
        let err = fixed
            .observe_unlabelled(array![[1.0, 0.0, 0.0]].view())
            .unwrap_err();
        assert!(
            err.to_string().contains("unlabelled_probabilities"),
            "{err}"
        );
        assert!(
            DistributionAlignment::with_labelled_marginal(array![0.5_f64, 0.6].view(), 8).is_err()
        );
    }
}
