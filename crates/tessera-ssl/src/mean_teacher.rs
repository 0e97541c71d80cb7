//! Mean Teacher (Tarvainen & Valpola, 2017): the teacher's parameters are an exponential
//! moving average of the student's, and the student is pulled towards the teacher's
//! predictions by an MSE consistency cost.
//!
//! $\theta'_t = \alpha_t \theta'_{t-1} + (1 - \alpha_t)\theta_t$ with
//! $\alpha_t = \min(1 - \frac{1}{t+1}, \text{decay})$, $t = 0, 1, \dots$ the number of updates
//! done before (SSLH's `EMA.get_cur_alpha`). The first update copies the student
//! ($\alpha_0 = 0$) and while $1 - \frac1{t+1} <$ decay the teacher is the plain running mean of
//! every student seen; afterwards it decays geometrically.

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, ArrayViewMut1, Axis, Slice, Zip};
use tessera_core::RejectInput;

use crate::fixmatch::rename;
use crate::losses::{
    check_logits_and_targets, mse_probabilities_unchecked, soft_cross_entropy_unchecked,
};
use crate::softmax::softmax_unchecked;
use crate::{check, Error, Float, Result};

/// $\alpha_t = \min(1 - \frac{1}{t+1}, \text{decay})$.
pub fn ema_alpha(step: u64, decay: f64) -> f64 {
    (1.0 - 1.0 / (step as f64 + 1.0)).min(decay)
}

/// One in-place EMA step: `teacher ← alpha·teacher + (1 − alpha)·student`.
///
/// Errors when the lengths differ, `alpha ∉ [0, 1]`, or `student` is non-finite.
pub fn ema_update<F: Float>(
    mut teacher: ArrayViewMut1<F>,
    student: ArrayView1<F>,
    alpha: f64,
) -> Result<()> {
    check::unit_interval("alpha", alpha)?;
    check::same_shape(
        "student",
        &student,
        teacher.shape(),
        "the length of teacher",
    )?;
    check::finite("student", &student)?;
    let keep = F::from_f64_rounded(alpha);
    let take = F::one() - keep;
    Zip::from(&mut teacher)
        .and(&student)
        .for_each(|t, &s| *t = keep * *t + take * s);
    Ok(())
}

/// A teacher parameter vector that follows a student by EMA, counting its own steps.
///
/// Models with several tensors flatten them into one vector (or keep one `EmaTeacher` per
/// tensor, updated in lock-step).
#[derive(Debug, Clone)]
pub struct EmaTeacher<F> {
    params: Array1<F>,
    decay: f64,
    step: u64,
}

impl<F: Float> EmaTeacher<F> {
    /// A teacher starting at `initial` (usually a copy of the student's initial parameters)
    /// with `decay ∈ [0, 1]` (Mean Teacher and SSLH: 0.999).
    pub fn new(initial: ArrayView1<F>, decay: f64) -> Result<Self> {
        check::unit_interval("decay", decay)?;
        check::finite("initial", &initial)?;
        Ok(EmaTeacher {
            params: initial.to_owned(),
            decay,
            step: 0,
        })
    }

    /// Moves the teacher towards `student` with $\alpha_t$ of the current step, then counts
    /// the step. Returns the $\alpha_t$ used.
    pub fn update(&mut self, student: ArrayView1<F>) -> Result<f64> {
        let alpha = ema_alpha(self.step, self.decay);
        ema_update(self.params.view_mut(), student, alpha)?;
        self.step += 1;
        Ok(alpha)
    }

    /// The teacher's parameters.
    pub fn params(&self) -> ArrayView1<'_, F> {
        self.params.view()
    }

    /// Number of updates done so far ($t$ of the next update).
    pub fn step(&self) -> u64 {
        self.step
    }

    /// The EMA decay (upper bound of $\alpha_t$).
    pub fn decay(&self) -> f64 {
        self.decay
    }
}

/// Mean Teacher hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeanTeacherConfig {
    /// EMA decay of the teacher (0.999).
    pub decay: f64,
    /// Weight $\lambda_{ccost} \ge 0$ of the consistency cost (1; usually ramped with
    /// [`RampKind::Sigmoid`](crate::RampKind::Sigmoid)).
    pub lambda_ccost: f64,
}

impl Default for MeanTeacherConfig {
    fn default() -> Self {
        MeanTeacherConfig {
            decay: 0.999,
            lambda_ccost: 1.0,
        }
    }
}

/// A checked Mean Teacher recipe: $L = L_s + w\,\lambda_{ccost}\,\mathrm{MSE}(\mathrm{softmax}
/// (z^{student}), \mathrm{softmax}(z^{teacher}))$ with $w$ the ramp-up factor.
#[derive(Debug, Clone)]
pub struct MeanTeacher {
    config: MeanTeacherConfig,
}

/// The Mean Teacher loss of one step, its parts and its gradient.
#[derive(Debug, Clone, PartialEq)]
pub struct MeanTeacherLoss<F> {
    /// $L_s + w\,\lambda_{ccost}\,L_{ccost}$.
    pub value: F,
    /// $L_s$ on the labelled rows.
    pub supervised: F,
    /// $L_{ccost}$ (before weighting).
    pub consistency: F,
    /// $\partial L/\partial z$ of every student row.
    pub grad_student: Array2<F>,
}

impl MeanTeacher {
    /// Checks decay ∈ [0, 1] and $\lambda_{ccost} \ge 0$.
    pub fn new(config: MeanTeacherConfig) -> Result<Self> {
        check::unit_interval("decay", config.decay)?;
        check::non_negative("lambda_ccost", config.lambda_ccost)?;
        Ok(MeanTeacher { config })
    }

    /// The configuration this recipe was built from.
    pub fn config(&self) -> &MeanTeacherConfig {
        &self.config
    }

    /// A teacher following a student whose parameters start at `initial`.
    pub fn teacher<F: Float>(&self, initial: ArrayView1<F>) -> Result<EmaTeacher<F>> {
        EmaTeacher::new(initial, self.config.decay)
    }

    /// The loss of one step. `student_logits` and `teacher_logits` are `(B_s + B_u, C)`,
    /// labelled items first (as in SSLH); `labelled_targets` is `(B_s, C)`; `ramp ≥ 0` scales the
    /// consistency weight. The teacher's predictions are constants.
    pub fn loss<F: Float>(
        &self,
        student_logits: ArrayView2<F>,
        teacher_logits: ArrayView2<F>,
        labelled_targets: ArrayView2<F>,
        ramp: f64,
    ) -> Result<MeanTeacherLoss<F>> {
        check::non_negative("ramp", ramp)?;
        let (rows, classes) = check::logits("student_logits", &student_logits)?;
        check::same_shape(
            "teacher_logits",
            &teacher_logits,
            student_logits.shape(),
            "the shape of student_logits",
        )?;
        check::finite("teacher_logits", &teacher_logits)?;
        let labelled = labelled_targets.nrows();
        if labelled > rows || labelled_targets.ncols() != classes {
            return Err(Error::shape(
                "labelled_targets",
                format!("(B_s, {classes}) with B_s <= {rows} rows of student_logits"),
                labelled_targets.shape(),
            ));
        }
        let student_labelled = student_logits.slice_axis(Axis(0), Slice::from(..labelled));
        let mut grad_student = Array2::<F>::zeros(student_logits.raw_dim());
        let mut supervised = F::zero();
        if labelled > 0 {
            check_logits_and_targets(&student_labelled, &labelled_targets)
                .map_err(|e| rename(e, "student_logits", "labelled_targets"))?;
            let loss = soft_cross_entropy_unchecked(student_labelled, labelled_targets);
            supervised = loss.value;
            grad_student
                .slice_axis_mut(Axis(0), Slice::from(..labelled))
                .assign(&loss.grad);
        }
        let teacher_probabilities = softmax_unchecked(teacher_logits);
        let consistency = mse_probabilities_unchecked(student_logits, teacher_probabilities.view());
        let weight = F::from_f64_rounded(ramp * self.config.lambda_ccost);
        grad_student.scaled_add(weight, &consistency.grad);
        Ok(MeanTeacherLoss {
            value: supervised + weight * consistency.value,
            supervised,
            consistency: consistency.value,
            grad_student,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;
    use ndarray::array;

    #[test]
    fn alpha_schedule() {
        assert_eq!(ema_alpha(0, 0.999), 0.0);
        assert_eq!(ema_alpha(1, 0.999), 0.5);
        assert_eq!(ema_alpha(9, 0.999), 0.9);
        assert_eq!(ema_alpha(5000, 0.999), 0.999);
    }

    #[test]
    fn teacher_is_the_running_mean_before_decay_caps() {
        let mut teacher = EmaTeacher::new(array![100.0_f64, -100.0].view(), 0.999).unwrap();
        let students = [array![1.0, 2.0], array![3.0, 4.0], array![5.0, 9.0]];
        for s in &students {
            teacher.update(s.view()).unwrap();
        }
        assert_abs_diff_eq!(teacher.params()[0], 3.0, epsilon = 1e-12);
        assert_abs_diff_eq!(teacher.params()[1], 5.0, epsilon = 1e-12);
        assert_eq!(teacher.step(), 3);
    }

    #[test]
    fn errors_name_the_parameter() {
        let err = EmaTeacher::new(array![0.0_f32].view(), 1.5).unwrap_err();
        assert!(err.to_string().contains("decay"), "{err}");
        let mut teacher = EmaTeacher::new(array![0.0_f32].view(), 0.9).unwrap();
        let err = teacher.update(array![0.0_f32, 1.0].view()).unwrap_err();
        assert!(err.to_string().contains("student"), "{err}");
        let err = teacher.update(array![f32::NAN].view()).unwrap_err();
        assert!(err.to_string().contains("student"), "{err}");
        assert_eq!(teacher.step(), 0, "a rejected update must not count");
        let mt = MeanTeacher::new(MeanTeacherConfig::default()).unwrap();
        let z = array![[0.0_f64, 1.0]];
        let y = array![[1.0_f64, 0.0], [0.0, 1.0]];
        let err = mt.loss(z.view(), z.view(), y.view(), 1.0).unwrap_err();
        assert!(err.to_string().contains("labelled_targets"), "{err}");
    }
}
