//! The device-resident dense operator of Lanczos/SLQ: the input checks without a device, and
//! one-GEMM block products against tessera-lanczos's CPU product when a device exists.

use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tessera_gpu::dense::{check_block, check_operator_matrix};
use tessera_gpu::DenseOperator;
use tessera_lanczos::LinearOperator;

fn symmetric(rng: &mut ChaCha8Rng, n: usize) -> Array2<f64> {
    let a = Array2::from_shape_fn((n, n), |_| rng.random_range(-1.0..1.0));
    (&a + &a.t()) * 0.5
}

#[test]
fn bad_operator_input_is_an_error_naming_it_without_a_device() {
    let e = check_operator_matrix(Array2::<f32>::zeros((3, 4)).view()).unwrap_err();
    assert!(e.to_string().contains("matrix"), "{e}");
    assert!(check_operator_matrix(Array2::<f64>::zeros((0, 0)).view()).is_err());
    let mut a = Array2::<f64>::eye(3);
    a[[2, 1]] = f64::INFINITY;
    let e = check_operator_matrix(a.view()).unwrap_err();
    assert!(e.to_string().contains("matrix"), "{e}");
    assert_eq!(
        check_operator_matrix(Array2::<f32>::eye(5).view()).unwrap(),
        5
    );
    let e = check_block(5, Array2::<f32>::zeros((4, 2)).view()).unwrap_err();
    assert!(e.to_string().contains('x'), "{e}");
    assert!(check_block(5, Array2::<f32>::zeros((5, 0)).view()).is_err());
    assert_eq!(
        check_block(5, Array2::<f32>::zeros((5, 3)).view()).unwrap(),
        3
    );
}

#[test]
fn block_products_on_the_device_match_the_cpu_operator() {
    let Some(ctx) = crate::device() else { return };
    let mut rng = ChaCha8Rng::seed_from_u64(crate::fresh_seed());
    for &(n, k) in &[(1, 1), (7, 3), (300, 16), (513, 1)] {
        let a = symmetric(&mut rng, n);
        let x = Array2::from_shape_fn((n, k), |_| rng.random_range(-1.0..1.0));
        // f64 (dgemm): agrees with the CPU to f64 rounding.
        let mut want = Array2::zeros((n, k));
        a.apply_batch(x.view(), want.view_mut());
        let op = DenseOperator::new(&ctx, a.view()).unwrap();
        assert_eq!(op.dim(), n);
        let got = op.apply_block(&ctx, x.view()).unwrap();
        let worst = (&got - &want).iter().fold(0.0f64, |m, v| m.max(v.abs()));
        assert!(worst <= 1e-12 * n as f64, "f64 {n}×{k}: {worst}");
        // f32 (sgemm).
        let (a32, x32) = (a.mapv(|v| v as f32), x.mapv(|v| v as f32));
        let mut want32 = Array2::zeros((n, k));
        a32.apply_batch(x32.view(), want32.view_mut());
        let got32 = DenseOperator::new(&ctx, a32.view())
            .unwrap()
            .apply_block(&ctx, x32.view())
            .unwrap();
        let diff = crate::max_relative_difference(
            got32.as_slice().unwrap(),
            want32.as_slice().unwrap(),
            1.0,
        );
        assert!(diff <= 1e-5, "f32 {n}×{k}: {diff}");
        // A block of the wrong height is an error.
        assert!(op
            .apply_block(&ctx, Array2::<f64>::zeros((n + 1, 1)).view())
            .is_err());
    }
}
