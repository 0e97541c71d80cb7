//! Recycled storage for the large tensors of a training step.
//!
//! A training step allocates every activation, cache and gradient afresh: about 150 MB for
//! the benchmark CNN at batch 128. glibc serves blocks that large with fresh pages
//! (an `mmap`, or the top of a heap it trims again when the step frees everything), so every
//! step paid a page fault and a page clear per 4 KiB: about a quarter of a one-thread step.
//! Layers therefore take their large buffers from a per-thread free list, and the passes
//! that drop them (a [`crate::Trace`], the gradients handed down a backward pass) give them
//! back. No allocator crate does this for us without replacing the user's global allocator,
//! which a library must not do.
//!
//! The lists are bounded ([`MAX_KEPT_BYTES`] and [`MAX_KEPT_BUFFERS`] per thread); beyond
//! that a returned buffer is freed as usual, and [`release_recycled_storage`] frees what the
//! calling thread keeps.

use std::any::{Any, TypeId};
use std::cell::RefCell;

use ndarray::{ArrayD, ArrayViewD, IxDyn};

use crate::layer::Cache;

/// Buffers below this size go back to the allocator: its own free lists serve them without
/// fresh pages.
const MIN_RECYCLED_BYTES: usize = 1 << 16;
/// Upper bound of the bytes a thread keeps for reuse.
pub const MAX_KEPT_BYTES: usize = 1 << 30;
/// Upper bound of the buffers a thread keeps for reuse.
pub const MAX_KEPT_BUFFERS: usize = 64;

#[derive(Default)]
struct FreeLists {
    f32: Vec<Vec<f32>>,
    f64: Vec<Vec<f64>>,
    indices: Vec<Vec<usize>>,
    bytes: usize,
}

impl FreeLists {
    fn list<T: 'static>(&mut self) -> Option<&mut Vec<Vec<T>>> {
        let list: &mut dyn Any = if TypeId::of::<T>() == TypeId::of::<f32>() {
            &mut self.f32
        } else if TypeId::of::<T>() == TypeId::of::<f64>() {
            &mut self.f64
        } else {
            &mut self.indices
        };
        list.downcast_mut::<Vec<Vec<T>>>()
    }

    fn buffers(&self) -> usize {
        self.f32.len() + self.f64.len() + self.indices.len()
    }
}

thread_local! {
    static FREE: RefCell<FreeLists> = RefCell::new(FreeLists::default());
}

fn bytes_of<T>(capacity: usize) -> usize {
    capacity.saturating_mul(std::mem::size_of::<T>())
}

/// A kept buffer with room for `len` elements (the smallest that fits and is at most twice
/// the size needed), with the length and stale contents it was given back with.
fn reuse<T: 'static>(len: usize) -> Option<Vec<T>> {
    if bytes_of::<T>(len) < MIN_RECYCLED_BYTES {
        return None;
    }
    FREE.try_with(|free| {
        let mut free = free.try_borrow_mut().ok()?;
        let list = free.list::<T>()?;
        let best = list
            .iter()
            .enumerate()
            .filter(|(_, v)| v.capacity() >= len && v.capacity() / 2 <= len)
            .min_by_key(|(_, v)| v.capacity())
            .map(|(i, _)| i)?;
        let v = list.swap_remove(best);
        free.bytes -= bytes_of::<T>(v.capacity());
        Some(v)
    })
    .ok()
    .flatten()
}

/// An empty vector with room for `len` elements, on recycled storage when there is some.
pub(crate) fn with_capacity<T: 'static>(len: usize) -> Vec<T> {
    match reuse(len) {
        Some(mut v) => {
            v.clear();
            v
        }
        None => Vec::with_capacity(len),
    }
}

/// A vector of `len` elements whose values are unspecified (stale values of an earlier
/// tensor, or `poison`), for a caller that overwrites every element. Only plain numbers are
/// kept, so any stale value is a valid one; debug builds fill the vector with `poison` (NaN
/// for floats) so that an element the caller forgets shows up in the tests.
pub(crate) fn overwritten<T: Copy + 'static>(len: usize, poison: T) -> Vec<T> {
    match reuse(len) {
        Some(mut v) => {
            v.truncate(len);
            if cfg!(debug_assertions) {
                v.fill(poison);
            }
            v.resize(len, poison);
            v
        }
        None => vec![poison; len],
    }
}

/// A vector of `len` copies of `value`, on recycled storage when there is some.
pub(crate) fn filled<T: Copy + 'static>(len: usize, value: T) -> Vec<T> {
    let mut v = with_capacity(len);
    v.resize(len, value);
    v
}

/// Gives a buffer back for reuse on this thread (or frees it when the lists are full).
pub(crate) fn recycle<T: 'static>(mut v: Vec<T>) {
    let bytes = bytes_of::<T>(v.capacity());
    if bytes < MIN_RECYCLED_BYTES {
        return;
    }
    let _ = FREE.try_with(|free| {
        let Ok(mut free) = free.try_borrow_mut() else {
            return;
        };
        if free.buffers() >= MAX_KEPT_BUFFERS || free.bytes + bytes > MAX_KEPT_BYTES {
            return;
        }
        if let Some(list) = free.list::<T>() {
            list.push(std::mem::take(&mut v));
            free.bytes += bytes;
        }
    });
}

/// Gives an array's storage back for reuse.
pub(crate) fn recycle_array<T: 'static>(a: ArrayD<T>) {
    recycle(a.into_raw_vec_and_offset().0);
}

/// Gives the storage of a cache (its tensors, indices and children) back for reuse.
pub(crate) fn recycle_cache<T: 'static>(cache: Cache<T>) {
    let Cache {
        tensors,
        indices,
        children,
    } = cache;
    tensors.into_iter().for_each(recycle_array);
    recycle(indices);
    children.into_iter().for_each(recycle_cache);
}

/// An array of `shape` filled with `value`, on recycled storage when there is some.
pub(crate) fn array_filled<T: Copy + 'static>(shape: &[usize], value: T) -> ArrayD<T> {
    let len = shape.iter().product();
    ArrayD::from_shape_vec(IxDyn(shape), filled(len, value)).expect("length is the product")
}

/// An array of `shape` whose values the caller overwrites (see [`overwritten`]).
pub(crate) fn array_overwritten<T: Copy + 'static>(shape: &[usize], poison: T) -> ArrayD<T> {
    let len = shape.iter().product();
    ArrayD::from_shape_vec(IxDyn(shape), overwritten(len, poison)).expect("length is the product")
}

/// `f` applied to every element of `x` (in logical order), in a standard-layout array of the
/// same shape on recycled storage.
pub(crate) fn map<A, T: 'static>(x: &ArrayViewD<'_, A>, f: impl FnMut(&A) -> T) -> ArrayD<T> {
    let mut v = with_capacity(x.len());
    match x.as_slice() {
        Some(s) => v.extend(s.iter().map(f)),
        None => v.extend(x.iter().map(f)),
    }
    ArrayD::from_shape_vec(IxDyn(x.shape()), v).expect("one value per element")
}

/// `f` applied to the element pairs of two arrays of one shape (checked by the caller), in a
/// standard-layout array on recycled storage.
pub(crate) fn zip_map<A, B, T: 'static>(
    x: &ArrayViewD<'_, A>,
    y: &ArrayViewD<'_, B>,
    mut f: impl FnMut(&A, &B) -> T,
) -> ArrayD<T> {
    debug_assert_eq!(x.shape(), y.shape());
    let mut v = with_capacity(x.len());
    match (x.as_slice(), y.as_slice()) {
        (Some(a), Some(b)) => v.extend(a.iter().zip(b).map(|(a, b)| f(a, b))),
        _ => v.extend(x.iter().zip(y.iter()).map(|(a, b)| f(a, b))),
    }
    ArrayD::from_shape_vec(IxDyn(x.shape()), v).expect("one value per element")
}

/// Frees the buffers the calling thread keeps for reuse (at most [`MAX_KEPT_BYTES`]), e.g.
/// after training, when no more steps will need them.
pub fn release_recycled_storage() {
    let _ = FREE.try_with(|free| {
        if let Ok(mut free) = free.try_borrow_mut() {
            *free = FreeLists::default();
        }
    });
}

/// Bytes the calling thread keeps for reuse.
pub fn recycled_storage_bytes() -> usize {
    FREE.try_with(|free| free.try_borrow().map(|f| f.bytes).unwrap_or(0))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_and_bounded() {
        release_recycled_storage();
        let v = filled(100_000, 1.0f32);
        let ptr = v.as_ptr();
        recycle(v);
        assert_eq!(recycled_storage_bytes(), 400_000);
        // A request of the same size gets the same storage, zero-length first.
        let w: Vec<f32> = with_capacity(90_000);
        assert_eq!((w.as_ptr(), w.len()), (ptr, 0));
        assert_eq!(recycled_storage_bytes(), 0);
        recycle(w);
        // Other element types have their own lists; too-small requests do not take it.
        let f64s: Vec<f64> = with_capacity(100_000);
        assert_ne!(f64s.as_ptr() as usize, ptr as usize);
        let small: Vec<f32> = with_capacity(10);
        assert_ne!(small.as_ptr(), ptr);
        let far_smaller: Vec<f32> = with_capacity(40_000);
        assert_ne!(far_smaller.as_ptr(), ptr);
        // Values are fresh, never the previous contents.
        let again = filled(100_000, 2.0f32);
        assert_eq!(again.as_ptr(), ptr);
        assert!(again.iter().all(|&x| x == 2.0));
        recycle(again);
        // Stale values are only handed out to callers that overwrite them; debug builds
        // poison them.
        let stale = overwritten(99_000, f32::NAN);
        assert_eq!((stale.as_ptr(), stale.len()), (ptr, 99_000));
        if cfg!(debug_assertions) {
            assert!(stale.iter().all(|x| x.is_nan()));
        }
        recycle(stale);
        let longer = overwritten(150_000, f32::NAN);
        assert_eq!(longer.len(), 150_000);
        assert!(longer[99_000..].iter().all(|x| x.is_nan()));
        // At most MAX_KEPT_BUFFERS are kept.
        for _ in 0..MAX_KEPT_BUFFERS + 5 {
            recycle(Vec::<usize>::with_capacity(1 << 14));
        }
        FREE.with(|f| assert!(f.borrow().buffers() <= MAX_KEPT_BUFFERS));
        release_recycled_storage();
        assert_eq!(recycled_storage_bytes(), 0);
    }

    #[test]
    fn maps_follow_logical_order() {
        let x = ndarray::Array2::from_shape_fn((3, 4), |(i, j)| (i * 4 + j) as f64).into_dyn();
        let t = x.t().into_dyn();
        let doubled = map(&t.view(), |&v| 2.0 * v);
        assert_eq!(doubled, t.mapv(|v| 2.0 * v));
        let sums = zip_map(&t.view(), &doubled.view(), |&a, &b| a + b);
        assert_eq!(sums, t.mapv(|v| 3.0 * v));
    }
}
