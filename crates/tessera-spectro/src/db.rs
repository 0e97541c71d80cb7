//! Decibel conversions with librosa's `power_to_db` / `amplitude_to_db` semantics.

use ndarray::{Array, ArrayView, ArrayViewMut, Axis, Dimension, RemoveAxis};
use tessera_core::RejectInput;

use crate::error::{Error, Result};
use crate::Float;

/// The reference level that maps to 0 dB.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reference {
    /// A fixed positive value (librosa `ref=1.0` by default).
    Value(f64),
    /// The maximum of the input (librosa `ref=np.max`); per item for the batch functions.
    Max,
}

/// Parameters of a power (or amplitude) → dB conversion.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DbConfig {
    /// Reference level.
    pub reference: Reference,
    /// Floor applied to the input and to the reference before the logarithm (> 0).
    pub amin: f64,
    /// If set, the output is clipped below at `max − top_db` (per item of a batch).
    pub top_db: Option<f64>,
}

impl DbConfig {
    /// librosa `power_to_db` defaults: `ref = 1`, `amin = 1e-10`, `top_db = 80`.
    pub fn librosa() -> Self {
        DbConfig {
            reference: Reference::Value(1.0),
            amin: 1e-10,
            top_db: Some(80.0),
        }
    }

    /// torchaudio `AmplitudeToDB(stype="power")` defaults: `ref = 1`, `amin = 1e-10`, no
    /// `top_db`.
    pub fn torchaudio() -> Self {
        DbConfig {
            top_db: None,
            ..DbConfig::librosa()
        }
    }

    /// librosa `amplitude_to_db` defaults: `ref = 1`, `amin = 1e-5`, `top_db = 80`.
    pub fn librosa_amplitude() -> Self {
        DbConfig {
            amin: 1e-5,
            ..DbConfig::librosa()
        }
    }

    /// Checks every field.
    ///
    /// # Errors
    /// `amin` not positive and finite, a reference value not positive and finite, a
    /// negative or non-finite `top_db`.
    pub fn validate(&self) -> Result<()> {
        if !(self.amin.is_finite() && self.amin > 0.0) {
            return Err(Error::invalid(
                "amin",
                self.amin,
                "must be positive and finite",
            ));
        }
        if let Reference::Value(r) = self.reference {
            if !(r.is_finite() && r > 0.0) {
                return Err(Error::invalid(
                    "reference",
                    r,
                    "must be positive and finite",
                ));
            }
        }
        if let Some(top) = self.top_db {
            if !(top.is_finite() && top >= 0.0) {
                return Err(Error::invalid(
                    "top_db",
                    top,
                    "must be finite and non-negative",
                ));
            }
        }
        Ok(())
    }
}

impl Default for DbConfig {
    fn default() -> Self {
        DbConfig::librosa()
    }
}

/// Converts power values in place: $10\log_{10}\max(a, S) - 10\log_{10}\max(a, ref)$, then
/// clips at $\max - top\_db$. The config must be valid and the values finite and
/// non-negative.
pub(crate) fn power_to_db_in_place<T: Float, D: Dimension>(
    mut values: ArrayViewMut<T, D>,
    config: &DbConfig,
) {
    let amin = T::from_f64_rounded(config.amin);
    let ten = T::from_f64_rounded(10.0);
    let reference = match config.reference {
        Reference::Value(r) => T::from_f64_rounded(r),
        Reference::Max => values.iter().fold(T::neg_infinity(), |m, &v| m.max(v)),
    };
    let reference_db = ten * amin.max(reference).log10();
    let mut max_db = T::neg_infinity();
    values.mapv_inplace(|v| {
        let db = ten * amin.max(v).log10() - reference_db;
        max_db = max_db.max(db);
        db
    });
    if let Some(top) = config.top_db {
        let floor = max_db - T::from_f64_rounded(top);
        values.mapv_inplace(|v| v.max(floor));
    }
}

/// At least one value in `s`.
fn check_non_empty<T: Float, D: Dimension>(s: &ArrayView<T, D>, name: &'static str) -> Result<()> {
    if s.is_empty() {
        return Err(Error::invalid(
            name,
            "an empty array",
            "must hold at least one value",
        ));
    }
    Ok(())
}

/// Names the first value (row-major) that `ok` rejects.
fn check_each<T: Float, D: Dimension>(
    s: &ArrayView<T, D>,
    name: &'static str,
    ok: impl Fn(T) -> bool,
    expected: &'static str,
) -> Result<()> {
    if let Some((i, v)) = s.iter().enumerate().find(|(_, v)| !ok(**v)) {
        return Err(Error::invalid(
            name,
            format!("element {i} (row-major) = {v}"),
            expected,
        ));
    }
    Ok(())
}

fn check_power<T: Float, D: Dimension>(s: &ArrayView<T, D>, name: &'static str) -> Result<()> {
    check_non_empty(s, name)?;
    check_each(
        s,
        name,
        |v| v.is_finite() && v >= T::zero(),
        "power values must be finite and non-negative",
    )
}

fn check_amplitude<T: Float, D: Dimension>(s: &ArrayView<T, D>) -> Result<()> {
    check_non_empty(s, "S")?;
    check_each(s, "S", |v| v.is_finite(), "amplitude values must be finite")
}

fn check_reference(reference: f64) -> Result<()> {
    if !(reference.is_finite() && reference > 0.0) {
        return Err(Error::invalid(
            "reference",
            reference,
            "must be positive and finite",
        ));
    }
    Ok(())
}

/// The checked power values of `s`, ready for [`power_to_db_in_place`] with `config`.
fn power_input<T: Float, D: Dimension>(
    s: ArrayView<T, D>,
    config: &DbConfig,
) -> Result<Array<T, D>> {
    config.validate()?;
    check_power(&s, "S")?;
    Ok(s.to_owned())
}

/// The squared magnitudes of `s` and the squared config that converts them as
/// `amplitude_to_db` does.
fn amplitude_input<T: Float, D: Dimension>(
    s: ArrayView<T, D>,
    config: &DbConfig,
) -> Result<(Array<T, D>, DbConfig)> {
    config.validate()?;
    let squared = squared_config(config);
    squared.validate()?;
    check_amplitude(&s)?;
    Ok((s.mapv(|v| v * v), squared))
}

/// [`power_to_db_in_place`] on every item along axis 0 separately.
fn power_to_db_per_item<T: Float, D: RemoveAxis>(values: &mut Array<T, D>, config: &DbConfig) {
    for item in values.axis_iter_mut(Axis(0)) {
        power_to_db_in_place(item, config);
    }
}

/// Power spectrogram to decibels over the whole array (librosa `power_to_db`):
/// $10\log_{10}\max(a_{min}, S) - 10\log_{10}\max(a_{min}, ref)$, clipped below at
/// $\max - top\_db$.
///
/// # Errors
/// An invalid config, an empty array, a negative or non-finite value.
pub fn power_to_db<T: Float, D: Dimension>(
    s: ArrayView<T, D>,
    config: &DbConfig,
) -> Result<Array<T, D>> {
    let mut out = power_input(s, config)?;
    power_to_db_in_place(out.view_mut(), config);
    Ok(out)
}

/// [`power_to_db`] applied to every item along axis 0 separately (so `Reference::Max` and
/// `top_db` are per item, as for a batch of spectrograms).
///
/// # Errors
/// As [`power_to_db`].
pub fn power_to_db_batch<T: Float, D: RemoveAxis>(
    s: ArrayView<T, D>,
    config: &DbConfig,
) -> Result<Array<T, D>> {
    let mut out = power_input(s, config)?;
    power_to_db_per_item(&mut out, config);
    Ok(out)
}

/// The config that turns `amplitude_to_db` into `power_to_db` of the squared magnitude, as
/// librosa does: reference and `amin` squared.
fn squared_config(config: &DbConfig) -> DbConfig {
    DbConfig {
        reference: match config.reference {
            Reference::Value(r) => Reference::Value(r * r),
            Reference::Max => Reference::Max,
        },
        amin: config.amin * config.amin,
        top_db: config.top_db,
    }
}

/// Amplitude (magnitude) spectrogram to decibels (librosa `amplitude_to_db`):
/// `power_to_db(|S|², ref², amin², top_db)`, i.e. $20\log_{10}$ of the magnitude. Use
/// [`DbConfig::librosa_amplitude`] for librosa's defaults.
///
/// # Errors
/// An invalid config (including `amin²` underflowing to zero), an empty array or a
/// non-finite value.
pub fn amplitude_to_db<T: Float, D: Dimension>(
    s: ArrayView<T, D>,
    config: &DbConfig,
) -> Result<Array<T, D>> {
    let (mut out, squared) = amplitude_input(s, config)?;
    power_to_db_in_place(out.view_mut(), &squared);
    Ok(out)
}

/// [`amplitude_to_db`] applied to every item along axis 0 separately.
///
/// # Errors
/// As [`amplitude_to_db`].
pub fn amplitude_to_db_batch<T: Float, D: RemoveAxis>(
    s: ArrayView<T, D>,
    config: &DbConfig,
) -> Result<Array<T, D>> {
    let (mut out, squared) = amplitude_input(s, config)?;
    power_to_db_per_item(&mut out, &squared);
    Ok(out)
}

/// Decibels back to power (librosa `db_to_power`): $ref \cdot 10^{S_{dB}/10}$.
///
/// # Errors
/// A reference that is not positive and finite, or a NaN entry.
pub fn db_to_power<T: Float, D: Dimension>(
    s_db: ArrayView<T, D>,
    reference: f64,
) -> Result<Array<T, D>> {
    check_reference(reference)?;
    check_each(&s_db, "S_db", |v| !v.is_nan(), "must not be NaN")?;
    let r = T::from_f64_rounded(reference);
    let ten = T::from_f64_rounded(10.0);
    let tenth = T::from_f64_rounded(0.1);
    Ok(s_db.mapv(|v| r * ten.powf(tenth * v)))
}

/// Decibels back to amplitude (librosa `db_to_amplitude`): $ref \cdot 10^{S_{dB}/20}$.
///
/// # Errors
/// As [`db_to_power`].
pub fn db_to_amplitude<T: Float, D: Dimension>(
    s_db: ArrayView<T, D>,
    reference: f64,
) -> Result<Array<T, D>> {
    check_reference(reference)?;
    Ok(db_to_power(s_db, reference * reference)?.mapv(|p| p.sqrt()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;
    use ndarray::{array, Array3};

    #[test]
    fn power_to_db_known_values() {
        let s = array![1.0f64, 10.0, 100.0, 0.0];
        let db = power_to_db(s.view(), &DbConfig::torchaudio()).unwrap();
        assert_eq!(db.to_vec(), vec![0.0, 10.0, 20.0, -100.0]);
        let clipped = power_to_db(s.view(), &DbConfig::librosa()).unwrap();
        assert_eq!(clipped[3], 20.0 - 80.0);
        let relative = power_to_db(
            s.view(),
            &DbConfig {
                reference: Reference::Max,
                ..DbConfig::torchaudio()
            },
        )
        .unwrap();
        assert_eq!(relative[2], 0.0);
        assert_eq!(relative[0], -20.0);
    }

    #[test]
    fn batch_clips_each_item_separately() {
        let mut s = Array3::<f32>::from_elem((2, 2, 2), 1e-12);
        s[[0, 0, 0]] = 1.0;
        s[[1, 0, 0]] = 1e-4;
        let db = power_to_db_batch(s.view(), &DbConfig::librosa()).unwrap();
        assert_abs_diff_eq!(db[[0, 1, 1]], -80.0, epsilon = 1e-4);
        assert_abs_diff_eq!(db[[1, 1, 1]], -100.0, epsilon = 1e-4);
        let whole = power_to_db(s.view(), &DbConfig::librosa()).unwrap();
        assert_abs_diff_eq!(whole[[1, 1, 1]], -80.0, epsilon = 1e-4);
    }

    #[test]
    fn amplitude_is_twenty_log10_and_round_trips() {
        let s = array![[-2.0f64, 0.5], [1.0, 3.0]];
        let db = amplitude_to_db(s.view(), &DbConfig::librosa_amplitude()).unwrap();
        assert_abs_diff_eq!(db[[0, 0]], 20.0 * 2f64.log10(), epsilon = 1e-12);
        let back = db_to_amplitude(db.view(), 1.0).unwrap();
        for (a, b) in back.iter().zip(s.iter()) {
            assert_abs_diff_eq!(*a, b.abs(), epsilon = 1e-12);
        }
        let p = array![0.25f64, 4.0];
        let back = db_to_power(
            power_to_db(p.view(), &DbConfig::torchaudio())
                .unwrap()
                .view(),
            1.0,
        )
        .unwrap();
        assert_abs_diff_eq!(back[1], 4.0, epsilon = 1e-12);
    }

    #[test]
    fn bad_inputs_are_errors() {
        let s = array![1.0f64, -1.0];
        assert!(power_to_db(s.view(), &DbConfig::librosa())
            .unwrap_err()
            .to_string()
            .contains("element 1"));
        let empty = ndarray::Array1::<f64>::zeros(0);
        assert!(power_to_db(empty.view(), &DbConfig::librosa()).is_err());
        let ok = array![1.0f64];
        for (config, name) in [
            (
                DbConfig {
                    amin: 0.0,
                    ..DbConfig::librosa()
                },
                "amin",
            ),
            (
                DbConfig {
                    top_db: Some(-1.0),
                    ..DbConfig::librosa()
                },
                "top_db",
            ),
            (
                DbConfig {
                    reference: Reference::Value(0.0),
                    ..DbConfig::librosa()
                },
                "reference",
            ),
        ] {
            let err = power_to_db(ok.view(), &config).unwrap_err();
            assert!(err.to_string().contains(name), "{err}");
        }
        assert!(amplitude_to_db(array![f64::NAN].view(), &DbConfig::librosa()).is_err());
        assert!(db_to_power(ok.view(), -1.0).is_err());
    }
}
