//! Huge sizes and inconsistent inputs are errors, not aborts or panics (issue 12).

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
