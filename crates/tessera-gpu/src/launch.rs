//! Launch geometry of the kernels, shared by the device launches and the host-shim tests (so
//! the tests run exactly the grid the device gets).
//!
//! Every kernel is a grid-stride loop over its flat output index (kernels/common.cuh), so any
//! grid covers the work; the grid is capped so that very large outputs loop instead of asking
//! for more blocks than a device allows.

/// Threads per block of every elementwise kernel.
pub const BLOCK_THREADS: u32 = 256;

/// Most blocks of one launch: enough to fill the largest devices many times over, far below
/// the 2³¹ − 1 limit of the x dimension.
pub const MAX_BLOCKS: u32 = 1 << 16;

/// `(grid, block)` of a one-dimensional launch over `work` output elements: one thread per
/// element up to [`MAX_BLOCKS`] blocks, then a grid-stride loop. Zero work still launches one
/// block (whose threads find nothing to do), so callers need no special case.
pub fn grid_for(work: usize) -> (u32, u32) {
    let blocks = work
        .div_ceil(BLOCK_THREADS as usize)
        .clamp(1, MAX_BLOCKS as usize);
    (blocks as u32, BLOCK_THREADS)
}

/// The cudarc launch configuration of [`grid_for`].
pub(crate) fn config_for(work: usize) -> cudarc::driver::LaunchConfig {
    let (grid, block) = grid_for(work);
    cudarc::driver::LaunchConfig {
        grid_dim: (grid, 1, 1),
        block_dim: (block, 1, 1),
        shared_mem_bytes: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_covers_small_work_and_caps_large_work() {
        assert_eq!(grid_for(0), (1, 256));
        assert_eq!(grid_for(1), (1, 256));
        assert_eq!(grid_for(256), (1, 256));
        assert_eq!(grid_for(257), (2, 256));
        assert_eq!(grid_for(usize::MAX), (MAX_BLOCKS, 256));
    }
}
