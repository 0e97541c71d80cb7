//! Random extents shared by the box- and segment-shaped augmentations.

use std::ops::Range;

use ndarray::{ArrayViewMutD, Axis, Slice};
use rand::Rng;

/// Narrows a view to `rows × cols` of its last two axes (leading axes kept whole).
pub(crate) fn last_two_axes_mut<A>(
    mut view: ArrayViewMutD<'_, A>,
    rows: Range<usize>,
    cols: Range<usize>,
) -> ArrayViewMutD<'_, A> {
    let last = view.ndim() - 1;
    view.slice_axis_inplace(Axis(last - 1), Slice::from(rows));
    view.slice_axis_inplace(Axis(last), Slice::from(cols));
    view
}

/// Number of cells a fraction range `[low, high]` of an axis of length `n` allows:
/// `⌈low·n⌉ ..= ⌊high·n⌋`, so a sampled extent never exceeds `high·n`. When no integer lies
/// in the interval (e.g. `low = high` and `low·n` fractional) the single length `⌊high·n⌋`
/// is used.
pub(crate) fn extent_bounds(n: usize, (low, high): (f64, f64)) -> (usize, usize) {
    // A relative slack so that e.g. 0.1·430 = 43.000000000000004 still counts as 43.
    let slack = 1e-9;
    let most = ((high * n as f64) + slack).floor().max(0.0) as usize;
    let most = most.min(n);
    let least = ((low * n as f64) - slack).ceil().max(0.0) as usize;
    (least.min(most), most)
}

/// A random contiguous range of an axis of length `n` whose length is uniform over
/// [`extent_bounds`] and whose start is uniform over every position where it fits.
pub(crate) fn random_extent<R: Rng + ?Sized>(
    n: usize,
    fractions: (f64, f64),
    rng: &mut R,
) -> Range<usize> {
    let (least, most) = extent_bounds(n, fractions);
    let length = rng.random_range(least..=most);
    let start = rng.random_range(0..=n - length);
    start..start + length
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn bounds_round_inwards() {
        assert_eq!(extent_bounds(64, (0.1, 0.5)), (7, 32));
        assert_eq!(extent_bounds(431, (0.5, 1.0)), (216, 431));
        assert_eq!(extent_bounds(10, (0.0, 0.0)), (0, 0));
        assert_eq!(extent_bounds(10, (0.25, 0.25)), (2, 2));
    }

    #[test]
    fn extents_stay_inside() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for n in [1usize, 2, 7, 64] {
            for _ in 0..200 {
                let r = random_extent(n, (0.1, 0.5), &mut rng);
                assert!(r.end <= n && r.len() as f64 <= 0.5 * n as f64);
            }
        }
    }
}
