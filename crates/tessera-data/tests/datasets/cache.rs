//! The `.npy` feature cache with a caller-supplied feature function.

use crate::common;

use std::sync::atomic::{AtomicUsize, Ordering};

use common::TempDir;
use ndarray::{Array2, ArrayView1};
use tessera_data::{Error, FeatureCache, KeywordConfig, SyntheticKeywords};

/// A stand-in for a log-mel spectrogram: the log mean square of each half of 8 equal frames,
/// as a (2, 8) matrix; fails on signals shorter than 16 samples.
fn frame_energies(signal: ArrayView1<f32>) -> Result<Array2<f32>, String> {
    if signal.len() < 16 {
        return Err(format!("signal of {} samples is too short", signal.len()));
    }
    let frame = signal.len() / 8;
    Ok(Array2::from_shape_fn((2, 8), |(half, f)| {
        let part = &signal.as_slice().unwrap()[f * frame..(f + 1) * frame];
        let (a, b) = part.split_at(frame / 2);
        let chosen = if half == 0 { a } else { b };
        (chosen.iter().map(|x| x * x).sum::<f32>() / chosen.len() as f32 + 1e-10).ln()
    }))
}

#[test]
fn features_are_computed_once_then_read_back() {
    let dir = TempDir::new("cache");
    let data = SyntheticKeywords::new(KeywordConfig {
        clips_per_class: 1,
        ..KeywordConfig::default()
    })
    .unwrap()
    .generate();
    let cache = FeatureCache::new(dir.path(), "frame-energies v1").unwrap();
    let calls = AtomicUsize::new(0);
    let counting = |x: ArrayView1<f32>| {
        calls.fetch_add(1, Ordering::Relaxed);
        frame_energies(x)
    };
    let first = cache.compute_dataset(&data, counting).unwrap();
    assert_eq!(first.dim(), (10, 2, 8));
    assert_eq!(calls.load(Ordering::Relaxed), 10);
    let second = cache.compute_dataset(&data, counting).unwrap();
    assert_eq!(
        calls.load(Ordering::Relaxed),
        10,
        "the second pass reads the cache"
    );
    assert_eq!(first, second);
    // The cached values are exactly the function's.
    assert_eq!(
        first.index_axis(ndarray::Axis(0), 3),
        frame_energies(data.clip(3)).unwrap()
    );
    assert!(cache.contains(&data.ids[0]));
    let files = std::fs::read_dir(cache.dir()).unwrap().count();
    assert_eq!(files, 10, "one .npy per clip, no temporary files left");

    // Another namespace is another cache.
    let other = FeatureCache::new(dir.path(), "frame-energies v2").unwrap();
    assert!(!other.contains(&data.ids[0]));
}

#[test]
fn keys_that_sanitise_alike_do_not_collide() {
    let dir = TempDir::new("cache-keys");
    let cache = FeatureCache::new(dir.path(), "k").unwrap();
    let a = cache.path_for("fold1/a.wav").unwrap();
    let b = cache.path_for("fold1_a.wav").unwrap();
    assert_ne!(a, b);
    assert!(a
        .file_name()
        .unwrap()
        .to_string_lossy()
        .starts_with("fold1_a.wav-"));
    assert!(cache.path_for("").is_err());
}

#[test]
fn failures_are_reported_and_not_cached() {
    let dir = TempDir::new("cache-errors");
    let cache = FeatureCache::new(dir.path(), "e").unwrap();
    let short = ndarray::Array1::<f32>::zeros(4);
    let err = cache
        .get_or_compute("short", short.view(), frame_energies)
        .unwrap_err();
    assert!(matches!(err, Error::Feature { .. }), "{err}");
    assert!(err.to_string().contains("short") && err.to_string().contains("too short"));
    assert!(!cache.contains("short"));

    let err = cache
        .get_or_compute("nan", short.view(), |_| {
            Ok::<_, String>(Array2::from_elem((1, 1), f32::NAN))
        })
        .unwrap_err();
    assert!(err.to_string().contains("non-finite"), "{err}");
    let err = cache
        .get_or_compute("empty", short.view(), |_| {
            Ok::<_, String>(Array2::zeros((0, 3)))
        })
        .unwrap_err();
    assert!(err.to_string().contains("empty"), "{err}");

    // A damaged cache file is an error naming the file, not silent garbage.
    std::fs::write(cache.path_for("bad").unwrap(), b"not an npy file").unwrap();
    let err = cache
        .get_or_compute("bad", short.view(), frame_energies)
        .unwrap_err();
    assert!(matches!(err, Error::Cache { .. }), "{err}");

    assert!(FeatureCache::new(dir.path(), "  ").is_err());
}
