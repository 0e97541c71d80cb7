//! Huge sizes and inconsistent inputs are errors, not aborts or panics (issue 12).

use approx::assert_abs_diff_eq;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tessera_sparse::{masks_to_bytes, LayerShape, Mask, MaskDtype, MAX_SAMPLED_MASK_LEN};

#[test]
fn huge_sampled_masks_are_errors() {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    for len in [1usize << 40, usize::MAX, MAX_SAMPLED_MASK_LEN + 1] {
        let e = Mask::bernoulli(len, 0.5, &mut rng).unwrap_err();
        assert!(e.to_string().contains("len"), "{e}");
        assert!(Mask::exact_count(len, 0.5, &mut rng).is_err());
    }
    assert_eq!(Mask::bernoulli(10, 1.0, &mut rng).unwrap().len(), 10);
}

#[test]
fn two_layers_of_one_name_are_an_error() {
    let layers = [
        LayerShape::new("w", &[2, 2]).unwrap(),
        LayerShape::new("w", &[3]).unwrap(),
    ];
    let masks = [Mask::ones(4), Mask::ones(3)];
    let e = masks_to_bytes(&layers, &masks, MaskDtype::Bool).unwrap_err();
    assert!(e.to_string().contains("`w`"), "{e}");
}

/// A 64 × 600 matrix with every entry stored (so both kernels run on a 600-column operand).
fn full_matrix(value: f32) -> tessera_sparse::CsrMatrix<f32> {
    let dense = ndarray::Array2::from_elem((64, 600), value);
    tessera_sparse::CsrMatrix::from_masked(dense.view(), &Mask::ones(64 * 600)).unwrap()
}

#[test]
fn products_that_overflow_or_meet_non_finite_operands_are_errors_naming_the_operand() {
    use tessera_sparse::SpmmKernel;
    let a = full_matrix(2.0);
    // Finite but huge: 600 products of 2 × 3e35 overflow f32 in every output entry.
    let mut b = ndarray::Array2::<f32>::from_elem((600, 300), 3e35);
    for kernel in [
        SpmmKernel::RowGather,
        SpmmKernel::PackedPanels,
        SpmmKernel::Auto,
    ] {
        let e = a.matmul_with(b.view(), kernel).unwrap_err().to_string();
        assert!(
            e.contains("`b`") && e.contains("overflow"),
            "{kernel:?}: {e}"
        );
    }
    let x = b.t().to_owned();
    let e = a
        .matmul_transposed_from_left(x.view())
        .unwrap_err()
        .to_string();
    assert!(e.contains("`x`") && e.contains("overflow"), "{e}");
    // Only one column overflowing is enough, in the scalar tail of the row kernel too.
    b.fill(1.0);
    b[[7, 299]] = 3e38;
    let e = a.matmul(b.view()).unwrap_err().to_string();
    assert!(e.contains("overflow"), "{e}");
    // A NaN in the operand is reported at its index.
    b[[7, 299]] = f32::NAN;
    let e = a.matmul(b.view()).unwrap_err().to_string();
    assert!(
        e.contains("`b`") && e.contains(&(7 * 300 + 299).to_string()),
        "{e}"
    );
    // The masked gradient: huge finite factors overflow the dot products.
    let dy = ndarray::Array2::<f32>::from_elem((64, 500), 1e30);
    let xs = ndarray::Array2::<f32>::from_elem((600, 500), 1e30);
    let e = a
        .masked_gradient(dy.view(), xs.view())
        .unwrap_err()
        .to_string();
    assert!(e.contains("overflow"), "{e}");
    // Large but representable results still come back.
    b.fill(1e30);
    let ok = a.matmul(b.view()).unwrap();
    for v in ok.iter() {
        assert_abs_diff_eq!(*v, 1.2e33, epsilon = 1e28);
    }
}
