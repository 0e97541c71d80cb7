//! CSR × dense and the masked gradient: kernels through the host shim against
//! tessera-sparse, the device path when there is one, and input errors.

use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tessera_gpu::launch::grid_for;
use tessera_gpu::sparse::check_csr;
use tessera_sparse::{CsrMatrix, Mask};

use crate::shim::{self, guarded, payload, poisoned, ptr, ptr_mut};

type Matmul = unsafe extern "C" fn(
    u32,
    u32,
    *const i64,
    *const i64,
    *const f32,
    i64,
    *const f32,
    i64,
    *mut f32,
);
type Gradient = unsafe extern "C" fn(
    u32,
    u32,
    *const i64,
    *const i64,
    i64,
    *const f32,
    *const f32,
    i64,
    *mut f32,
);

fn masked(rng: &mut ChaCha8Rng, nrows: usize, ncols: usize, density: f64) -> CsrMatrix<f32> {
    let weights = Array2::from_shape_fn((nrows, ncols), |_| rng.random_range(-1.0f32..1.0));
    let keep: Vec<bool> = (0..nrows * ncols)
        .map(|_| rng.random_bool(density))
        .collect();
    CsrMatrix::from_masked(weights.view(), &Mask::from_bools(&keep)).expect("csr")
}

fn wide(values: &[usize]) -> Vec<i64> {
    let mut out: Vec<i64> = values.iter().map(|&v| v as i64).collect();
    out.push(i64::MIN); // a canary the kernels must never read
    out
}

#[test]
fn shim_products_equal_tessera_sparse() {
    let Some(shim) = shim::load("sparse") else {
        return;
    };
    let matmul = shim.launcher::<Matmul>("csr_matmul");
    let gradient = shim.launcher::<Gradient>("csr_masked_gradient");
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    for (nrows, ncols, n, density) in [
        (1, 1, 1, 1.0),
        (7, 13, 5, 0.3),
        (64, 96, 33, 0.05),
        (5, 8, 300, 0.0),
    ] {
        let w = masked(&mut rng, nrows, ncols, density);
        let b = Array2::from_shape_fn((ncols, n), |_| rng.random_range(-1.0f32..1.0));
        let rows = check_csr(nrows, ncols, w.indptr(), w.indices(), w.values()).expect("valid");
        let (indptr, indices) = (wide(w.indptr()), wide(w.indices()));
        let values = guarded(w.values());
        let dense = guarded(b.as_slice().expect("std"));
        let mut out = poisoned(nrows * n);
        let (grid, block) = grid_for(nrows * n);
        // SAFETY: buffers sized as the kernel indexes them (indptr nrows + 1, indices and
        // values nnz, dense ncols × n, out nrows × n).
        unsafe {
            matmul(
                grid,
                block,
                indptr.as_ptr(),
                indices.as_ptr(),
                ptr(&values),
                nrows as i64,
                ptr(&dense),
                n as i64,
                ptr_mut(&mut out),
            )
        };
        let expected = w.matmul(b.view()).expect("cpu");
        assert_eq!(
            payload(&out, "out"),
            expected.as_slice().expect("std"),
            "{nrows}×{ncols}·{n}"
        );

        let dy = Array2::from_shape_fn((nrows, n), |_| rng.random_range(-1.0f32..1.0));
        let mut row_of = rows.clone();
        row_of.push(i64::MIN);
        let (dy_buffer, x_buffer) = (
            guarded(dy.as_slice().expect("std")),
            guarded(b.as_slice().expect("std")),
        );
        let mut grad = poisoned(w.nnz());
        let (grid, block) = grid_for(w.nnz());
        // SAFETY: rows/indices hold nnz entries, dy nrows × n, x ncols × n, grad nnz.
        unsafe {
            gradient(
                grid,
                block,
                row_of.as_ptr(),
                indices.as_ptr(),
                w.nnz() as i64,
                ptr(&dy_buffer),
                ptr(&x_buffer),
                n as i64,
                ptr_mut(&mut grad),
            )
        };
        let expected = w.masked_gradient(dy.view(), b.view()).expect("cpu");
        // tessera-sparse may sum the dot products in another order: agree to rounding, measured
        // against the size of the terms (about 1) where the sum cancels.
        let diff = crate::max_relative_difference(payload(&grad, "grad"), expected.values(), 1.0);
        assert!(diff <= 1e-5, "gradient {nrows}×{ncols}, n {n}: {diff}");
    }
}

#[test]
fn bad_csr_arrays_are_errors_naming_the_array() {
    let cases = [
        (check_csr(2, 3, &[0, 1], &[0], &[1.0]).err(), "indptr"),
        (
            check_csr(2, 3, &[0, 1, 2], &[0, 3], &[1.0, 2.0]).err(),
            "indices",
        ),
        (check_csr(2, 3, &[0, 2, 1], &[0], &[1.0]).err(), "indptr"),
        (check_csr(1, 3, &[0, 1], &[0], &[f32::NAN]).err(), "values"),
        (check_csr(1, 3, &[0, 1], &[0], &[1.0, 2.0]).err(), "values"),
    ];
    for (err, name) in cases {
        let text = err.expect(name).to_string();
        assert!(text.contains(name), "{name}: {text}");
    }
}

#[test]
fn device_products_equal_tessera_sparse() {
    let Some(context) = crate::device() else {
        return;
    };
    let mut rng = ChaCha8Rng::seed_from_u64(crate::fresh_seed());
    for (nrows, ncols, n, density) in [
        (1024, 1024, 256, 0.1),
        (512, 2304, 128, 0.01),
        (3, 5, 1, 1.0),
    ] {
        let w = masked(&mut rng, nrows, ncols, density);
        let b = Array2::from_shape_fn((ncols, n), |_| rng.random_range(-1.0f32..1.0));
        let device = w.to_device(&context).expect("upload");
        let found = device.matmul(&context, b.view()).expect("gpu");
        let expected = w
            .matmul_with(b.view(), tessera_sparse::SpmmKernel::Auto)
            .expect("cpu");
        let diff = crate::max_relative_difference(
            found.as_slice().expect("std"),
            expected.as_slice().expect("std"),
            1e-3,
        );
        assert!(diff <= 1e-5, "{nrows}×{ncols}·{n}: {diff}");
        let dy = Array2::from_shape_fn((nrows, n), |_| rng.random_range(-1.0f32..1.0));
        let grad = device
            .masked_gradient(&context, dy.view(), b.view())
            .expect("gpu");
        let expected = w.masked_gradient(dy.view(), b.view()).expect("cpu");
        let diff = crate::max_relative_difference(&grad, expected.values(), 1.0);
        assert!(diff <= 1e-5, "gradient: {diff}");
    }
    let w = masked(&mut rng, 4, 4, 1.0);
    let huge = Array2::from_elem((4, 2), 3e38f32);
    let err = w
        .to_device(&context)
        .expect("upload")
        .matmul(&context, huge.view())
        .expect_err("overflow");
    assert!(err.to_string().contains("overflow"), "{err}");
}
