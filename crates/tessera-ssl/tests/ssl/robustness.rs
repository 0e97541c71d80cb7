//! Huge sizes are errors, not aborts (issue 12).

use tessera_ssl::{one_hot, DistributionAlignment, MAX_ALIGNMENT_HISTORY, MAX_ONE_HOT_ENTRIES};

#[test]
fn huge_one_hot_is_an_error() {
    let e = one_hot::<f32>(&[0, 1], 1 << 40).unwrap_err();
    assert!(e.to_string().contains("one-hot"), "{e}");
    let e = one_hot::<f32>(&[0], usize::MAX).unwrap_err();
    assert!(e.to_string().contains("one-hot"), "{e}");
    assert!(one_hot::<f32>(&[0], MAX_ONE_HOT_ENTRIES + 1).is_err());
    assert_eq!(one_hot::<f32>(&[2, 0], 3).unwrap().sum(), 2.0);
}

#[test]
fn huge_alignment_history_is_an_error() {
    let e = DistributionAlignment::<f32>::new(3, usize::MAX).unwrap_err();
    assert!(e.to_string().contains("history"), "{e}");
    assert!(DistributionAlignment::<f32>::new(3, MAX_ALIGNMENT_HISTORY + 1).is_err());
    // The largest window is accepted without reserving it up front.
    assert!(DistributionAlignment::<f32>::new(3, MAX_ALIGNMENT_HISTORY).is_ok());
}
