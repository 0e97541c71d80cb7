//! Input checks every crate uses at its boundary: finiteness, emptiness, shapes, ranges,
//! probabilities and sizes. Each returns an [`InputError`] naming the parameter and the value;
//! with `?` it converts into any crate error that wraps [`InputError`].

use ndarray::{ArrayBase, Data, Dimension};

use crate::{Float, InputError};

/// Result of a check.
pub type CheckResult<T = ()> = Result<T, InputError>;

/// The first NaN or ±∞ of `array` is an error (flat index in logical row-major order).
pub fn finite<F: Float, S: Data<Elem = F>, D: Dimension>(
    name: &'static str,
    array: &ArrayBase<S, D>,
) -> CheckResult {
    // The contiguous fast path keeps this scan at memory speed on large batches.
    let position = match array.as_slice() {
        Some(slice) => first_non_finite(slice),
        None => array.iter().position(|v| !v.is_finite()),
    };
    match position {
        None => Ok(()),
        Some(index) => {
            let value = array.iter().nth(index).copied().unwrap_or_else(F::nan);
            Err(InputError::non_finite(name, index, value))
        }
    }
}

/// Index of the first NaN or ±∞ of `values`. Blocks of 64 are tested without a branch per
/// value (an OR of the comparisons, which the compiler vectorises); only a block that holds
/// one is searched. `position` alone stops the vectoriser and ran at a quarter of memory
/// speed, a visible part of a small network's training step that checks its input, its
/// parameters and its gradient.
fn first_non_finite<F: Float>(values: &[F]) -> Option<usize> {
    const BLOCK: usize = 64;
    values
        .chunks(BLOCK)
        .enumerate()
        .find(|(_, block)| block.iter().fold(false, |bad, v| bad | !v.is_finite()))
        .and_then(|(b, block)| {
            block
                .iter()
                .position(|v| !v.is_finite())
                .map(|i| b * BLOCK + i)
        })
}

/// The first NaN or ±∞ of a contiguous slice is an error (at memory speed).
pub fn finite_slice<F: Float>(name: &'static str, values: &[F]) -> CheckResult {
    match first_non_finite(values) {
        None => Ok(()),
        Some(index) => Err(InputError::non_finite(name, index, values[index])),
    }
}

/// The first NaN or ±∞ of a sequence of values is an error.
pub fn finite_values<F: Float>(
    name: &'static str,
    values: impl IntoIterator<Item = F>,
) -> CheckResult {
    match values.into_iter().enumerate().find(|(_, v)| !v.is_finite()) {
        None => Ok(()),
        Some((index, value)) => Err(InputError::non_finite(name, index, value)),
    }
}

/// The error for an operation whose finite `input` produced a non-finite result: values so
/// large that its sums overflow `F` (e.g. `f32` entries near 1e38). Names the input and its
/// largest magnitude, which is clearer than returning ∞ or NaN. A non-finite `input` is
/// reported as such (its first NaN or ±∞) instead.
pub fn overflowed<F: Float, S: Data<Elem = F>, D: Dimension>(
    name: &'static str,
    input: &ArrayBase<S, D>,
    operation: &str,
) -> InputError {
    if let Err(non_finite) = finite(name, input) {
        return non_finite;
    }
    let largest = input.iter().fold(F::zero(), |m, &v| m.max(v.abs()));
    InputError::invalid(
        name,
        format!("largest magnitude {largest}"),
        format!("values this large overflow {operation} in {}", F::NAME),
    )
}

/// A finite scalar.
pub fn finite_scalar(name: &'static str, value: f64) -> CheckResult {
    if value.is_finite() {
        Ok(())
    } else {
        Err(InputError::invalid(name, value, "must be finite"))
    }
}

/// A finite value `> 0`.
pub fn positive(name: &'static str, value: f64) -> CheckResult {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(InputError::invalid(name, value, "must be finite and > 0"))
    }
}

/// A finite value `>= 0`.
pub fn non_negative(name: &'static str, value: f64) -> CheckResult {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(InputError::invalid(name, value, "must be finite and >= 0"))
    }
}

/// A probability in `[0, 1]`.
pub fn probability(name: &'static str, p: f64) -> CheckResult {
    if (0.0..=1.0).contains(&p) {
        Ok(())
    } else {
        Err(InputError::invalid(
            name,
            p,
            "must be a probability in [0, 1]",
        ))
    }
}

/// A density (fraction of weights kept) in `(0, 1]`.
pub fn density(name: &'static str, density: f64) -> CheckResult {
    if density > 0.0 && density <= 1.0 {
        Ok(())
    } else {
        Err(InputError::invalid(
            name,
            density,
            "a density must lie in (0, 1]",
        ))
    }
}

/// A finite value in `[low, high]`.
pub fn in_range(name: &'static str, value: f64, low: f64, high: f64) -> CheckResult {
    if value.is_finite() && low <= value && value <= high {
        Ok(())
    } else {
        Err(InputError::invalid(
            name,
            value,
            format!("must lie in [{low}, {high}]"),
        ))
    }
}

/// A range `(low, high)` with `lower_bound <= low <= high <= upper_bound`, both finite.
pub fn range(
    name: &'static str,
    (low, high): (f64, f64),
    lower_bound: f64,
    upper_bound: f64,
) -> CheckResult {
    if low.is_finite()
        && high.is_finite()
        && lower_bound <= low
        && low <= high
        && high <= upper_bound
    {
        Ok(())
    } else {
        Err(InputError::invalid(
            name,
            format!("({low}, {high})"),
            format!("must satisfy {lower_bound} <= low <= high <= {upper_bound}"),
        ))
    }
}

/// A size of at least one.
pub fn positive_size(name: &'static str, size: usize) -> CheckResult<usize> {
    if size > 0 {
        Ok(size)
    } else {
        Err(InputError::invalid(name, size, "must be at least 1"))
    }
}

/// A size of at most `limit` (checked before anything of that size is allocated).
pub fn size_at_most(name: &'static str, size: usize, limit: usize) -> CheckResult<usize> {
    if size <= limit {
        Ok(size)
    } else {
        Err(InputError::too_large(name, size, limit))
    }
}

/// The product of `dims` (an element count), checked for overflow and against `limit`.
pub fn element_count(name: &'static str, dims: &[usize], limit: usize) -> CheckResult<usize> {
    let count = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| InputError::too_large(name, format!("{dims:?} (overflow)"), limit))?;
    if count <= limit {
        Ok(count)
    } else {
        Err(InputError::too_large(
            name,
            format!("{dims:?} = {count}"),
            limit,
        ))
    }
}

/// A non-empty collection of `len` items.
pub fn non_empty(name: &'static str, len: usize) -> CheckResult<usize> {
    if len > 0 {
        Ok(len)
    } else {
        Err(InputError::shape(name, "at least one item", "none"))
    }
}

/// A batch (first axis) with at least one item; returns its size.
pub fn non_empty_batch(name: &'static str, shape: &[usize]) -> CheckResult<usize> {
    match shape.first() {
        Some(&n) if n > 0 => Ok(n),
        _ => Err(InputError::shape(
            name,
            "a non-empty batch (first axis length >= 1)",
            shape,
        )),
    }
}

/// An exact shape.
pub fn shape(name: &'static str, found: &[usize], expected: &[usize]) -> CheckResult {
    if found == expected {
        Ok(())
    } else {
        Err(InputError::shape(name, expected, found))
    }
}

/// An exact length.
pub fn length(name: &'static str, found: usize, expected: usize) -> CheckResult {
    if found == expected {
        Ok(())
    } else {
        Err(InputError::shape(
            name,
            format!("length {expected}"),
            format!("length {found}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{array, s};

    #[test]
    fn finite_reports_the_first_offending_flat_index_of_any_layout() {
        let a = array![[1.0, 2.0], [f64::INFINITY, f64::NAN]];
        assert_eq!(
            finite("a", &a),
            Err(InputError::non_finite("a", 2, f64::INFINITY))
        );
        // A transposed (non-contiguous in logical order) view reports in logical order.
        assert_eq!(
            finite("a", &a.t()),
            Err(InputError::non_finite("a", 1, f64::INFINITY))
        );
        assert_eq!(finite("a", &a.slice(s![0, ..])), Ok(()));
        assert_eq!(
            finite_values("v", [1.0f32, f32::NAN]),
            Err(InputError::non_finite("v", 1, f32::NAN))
        );
    }

    #[test]
    fn the_blockwise_scan_finds_the_first_non_finite_value_anywhere() {
        for len in [0, 1, 63, 64, 65, 200] {
            let clean = vec![1.5f32; len];
            assert_eq!(first_non_finite(&clean), None);
            for bad_at in 0..len {
                for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
                    let mut v = clean.clone();
                    v[bad_at] = bad;
                    // A later second offender does not move the answer.
                    if bad_at + 70 < len {
                        v[bad_at + 70] = f32::NAN;
                    }
                    assert_eq!(first_non_finite(&v), Some(bad_at), "len {len}, at {bad_at}");
                }
            }
        }
        assert_eq!(first_non_finite(&[f64::MAX, f64::MIN, 0.0]), None);
        assert_eq!(
            finite_slice("w", &[0.0, 1.0, f64::NEG_INFINITY]),
            Err(InputError::non_finite("w", 2, f64::NEG_INFINITY))
        );
    }

    #[test]
    fn overflowed_names_the_largest_magnitude_or_the_first_non_finite_input() {
        let big = array![1.0f32, -3e38, 2.0];
        let e = overflowed("b", &big, "the product");
        assert!(matches!(e, InputError::Invalid { name: "b", .. }));
        let text = e.to_string();
        assert!(
            text.contains("300000000000000000000000000000000000000"),
            "{text}"
        );
        assert!(text.contains("overflow the product in f32"), "{text}");
        let nan = array![1.0f64, f64::NAN];
        assert_eq!(
            overflowed("b", &nan, "the product"),
            InputError::non_finite("b", 1, f64::NAN)
        );
    }

    #[test]
    fn scalar_checks_accept_exactly_their_ranges() {
        assert!(positive("x", 1e-300).is_ok());
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(positive("x", bad).is_err(), "{bad}");
        }
        assert!(non_negative("x", 0.0).is_ok());
        assert!(non_negative("x", -0.1).is_err());
        assert!(probability("p", 0.0).is_ok() && probability("p", 1.0).is_ok());
        for bad in [-1e-12, 1.0 + 1e-12, f64::NAN] {
            assert!(probability("p", bad).is_err(), "{bad}");
        }
        assert!(density("d", 1.0).is_ok());
        for bad in [0.0, 1.5, f64::NAN] {
            assert!(density("d", bad).is_err(), "{bad}");
        }
        assert!(in_range("x", 2.0, 1.0, 2.0).is_ok());
        assert!(in_range("x", 2.5, 1.0, 2.0).is_err());
        assert!(range("r", (0.2, 0.1), 0.0, 1.0).is_err());
        assert!(range("r", (0.1, 0.2), 0.0, 1.0).is_ok());
        assert!(finite_scalar("x", f64::NEG_INFINITY).is_err());
    }

    #[test]
    fn sizes_are_checked_with_overflow_and_limits() {
        assert_eq!(element_count("n", &[3, 4], 12), Ok(12));
        assert!(matches!(
            element_count("n", &[3, 5], 12),
            Err(InputError::TooLarge { name: "n", .. })
        ));
        assert!(matches!(
            element_count("n", &[usize::MAX, 2], usize::MAX),
            Err(InputError::TooLarge { .. })
        ));
        assert_eq!(positive_size("k", 0).unwrap_err().name(), "k");
        assert_eq!(size_at_most("k", 5, 4).unwrap_err().name(), "k");
        assert_eq!(non_empty_batch("x", &[0, 3]).unwrap_err().name(), "x");
        assert_eq!(non_empty_batch("x", &[2, 3]), Ok(2));
        assert!(non_empty("v", 0).is_err());
        assert!(shape("m", &[2, 3], &[2, 3]).is_ok());
        assert!(length("v", 3, 4).is_err());
    }
}
