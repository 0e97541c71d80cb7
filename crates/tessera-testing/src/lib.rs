//! Test plumbing shared by the tessera crates' test suites (a `publish = false` dev-dependency):
//! reading `.npy` golden fixtures, central finite differences for gradient checks, and
//! element-wise closeness assertions built on `approx` that report the worst entry.
//!
//! Panicking is the point here: these helpers only run inside tests.

use std::path::{Path, PathBuf};

use ndarray::{ArrayBase, Data, Dimension};
use ndarray_npy::{ReadNpyExt, ReadableElement};

/// The path of fixture `name` in `<manifest_dir>/tests/data/`.
pub fn fixture_path(manifest_dir: &str, name: &str) -> PathBuf {
    Path::new(manifest_dir)
        .join("tests")
        .join("data")
        .join(name)
}

/// Reads the `.npy` fixture `name` from `<manifest_dir>/tests/data/`, panicking with the path
/// and the reason when it is missing or of another type or dimensionality.
pub fn read_fixture<T: ReadableElement, D: Dimension>(
    manifest_dir: &str,
    name: &str,
) -> ndarray::Array<T, D> {
    let path = fixture_path(manifest_dir, name);
    let file = std::fs::File::open(&path)
        .unwrap_or_else(|e| panic!("cannot open fixture {}: {e}", path.display()));
    ndarray::Array::<T, D>::read_npy(file)
        .unwrap_or_else(|e| panic!("cannot read fixture {}: {e}", path.display()))
}

/// `read_fixture(env!("CARGO_MANIFEST_DIR"), name)` of the crate whose test calls it.
#[macro_export]
macro_rules! fixture {
    ($name:expr) => {
        $crate::read_fixture(env!("CARGO_MANIFEST_DIR"), $name)
    };
}

/// Central finite differences `(f(x + h·e_i) − f(x − h·e_i)) / 2h` of a scalar function, for
/// checking analytic gradients (error O(h²)).
pub fn central_difference_gradient(
    mut f: impl FnMut(&[f64]) -> f64,
    x: &[f64],
    h: f64,
) -> Vec<f64> {
    let mut probe = x.to_vec();
    (0..x.len())
        .map(|i| {
            probe[i] = x[i] + h;
            let up = f(&probe);
            probe[i] = x[i] - h;
            let down = f(&probe);
            probe[i] = x[i];
            (up - down) / (2.0 * h)
        })
        .collect()
}

/// The largest `|a_i − b_i|` of two equally long sequences (panics on different lengths).
pub fn max_abs_diff(a: impl IntoIterator<Item = f64>, b: impl IntoIterator<Item = f64>) -> f64 {
    let (a, b): (Vec<f64>, Vec<f64>) = (a.into_iter().collect(), b.into_iter().collect());
    assert_eq!(a.len(), b.len(), "sequences of different lengths");
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// Asserts `approx::relative_eq!(actual_i, expected_i, epsilon = atol, max_relative = rtol)`
/// for every entry of two arrays of one shape, and names the worst entry when it fails.
#[track_caller]
pub fn assert_all_close<S1, S2, D>(
    actual: &ArrayBase<S1, D>,
    expected: &ArrayBase<S2, D>,
    rtol: f64,
    atol: f64,
    what: &str,
) where
    S1: Data<Elem = f64>,
    S2: Data<Elem = f64>,
    D: Dimension,
{
    assert_eq!(actual.shape(), expected.shape(), "{what}: shapes differ");
    let mut worst: Option<(usize, f64, f64)> = None;
    for (i, (&a, &e)) in actual.iter().zip(expected.iter()).enumerate() {
        if !approx::relative_eq!(a, e, epsilon = atol, max_relative = rtol) {
            let excess = (a - e).abs();
            if worst.map_or(true, |(_, wa, we)| excess > (wa - we).abs()) {
                worst = Some((i, a, e));
            }
        }
    }
    if let Some((index, a, e)) = worst {
        panic!(
            "{what}: entry {index} is {a:e}, expected {e:e} (|diff| {:e}; rtol {rtol:e}, atol {atol:e})",
            (a - e).abs()
        );
    }
}

/// Runs `f` inside a fresh rayon pool of `threads` threads, for tests that compare the bits of a
/// parallel computation across pool sizes.
///
/// # Panics
/// When the pool cannot be built (a test-environment failure).
pub fn in_rayon_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a rayon pool")
        .install(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn finite_differences_of_a_quadratic_are_exact_to_rounding() {
        let g = central_difference_gradient(|x| x[0] * x[0] + 3.0 * x[0] * x[1], &[1.0, 2.0], 1e-4);
        approx::assert_relative_eq!(g[0], 2.0 + 6.0, max_relative = 1e-9);
        approx::assert_relative_eq!(g[1], 3.0, max_relative = 1e-9);
    }

    #[test]
    fn closeness_passes_within_and_fails_beyond_tolerance() {
        assert_all_close(
            &array![1.0, 2.0],
            &array![1.0, 2.0 + 1e-12],
            1e-10,
            0.0,
            "ok",
        );
        let failed = std::panic::catch_unwind(|| {
            assert_all_close(&array![1.0, 2.0], &array![1.0, 2.1], 1e-3, 0.0, "bad")
        });
        assert!(failed.is_err());
        assert_eq!(max_abs_diff([1.0, 5.0], [1.5, 2.0]), 3.0);
    }
}
