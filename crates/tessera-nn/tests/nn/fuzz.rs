//! Fuzzing `Mlp::load_safetensors`: arbitrary bytes and random mutations of a valid file
//! (bit flips, byte overwrites, truncation, header-length rewrites) are an `Err` or a load
//! of finite parameters, never a panic. `TESSERA_FUZZ_CASES` sets the number of cases
//! (default 256).

use proptest::prelude::*;
use tessera_nn::{Mlp, MlpConfig};

fn cases() -> u32 {
    std::env::var("TESSERA_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

fn network() -> Mlp<f32> {
    Mlp::new(MlpConfig::new(3, vec![4], 2), 7).unwrap()
}

fn load(bytes: &[u8]) {
    let mut mlp = network();
    if mlp.load_safetensors(bytes).is_ok() {
        assert!(mlp.params().iter().all(|v| v.is_finite()));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        load(&bytes);
    }

    #[test]
    fn mutated_files_never_panic(
        edits in proptest::collection::vec((0u8..4, any::<usize>(), any::<u64>()), 1..4),
    ) {
        let mut bytes = network().to_safetensors().unwrap();
        for &(kind, at, value) in &edits {
            let n = bytes.len();
            if n < 8 {
                break;
            }
            match kind {
                0 => bytes[at % n] ^= 1 << (value % 8),
                1 => bytes[at % n] = value as u8,
                2 => bytes.truncate(at % n),
                _ => bytes[..8].copy_from_slice(&value.to_le_bytes()),
            }
        }
        load(&bytes);
    }
}

/// A well-formed file whose tensors have the right names and shapes but an integer dtype is
/// an error naming the tensor and the dtype (the one decoder shared with tessera-spline).
#[test]
fn integer_tensors_are_an_error_naming_the_dtype() {
    use safetensors::{tensor::TensorView, Dtype};
    let mlp = network();
    let shapes = [
        ("layers.0.weight", vec![4, 3]),
        ("layers.0.bias", vec![4]),
        ("layers.1.weight", vec![2, 4]),
        ("layers.1.bias", vec![2]),
    ];
    let data: Vec<Vec<u8>> = shapes
        .iter()
        .map(|(_, shape)| vec![0u8; 4 * shape.iter().product::<usize>()])
        .collect();
    let views: Vec<(&str, TensorView<'_>)> = shapes
        .iter()
        .zip(&data)
        .map(|((name, shape), bytes)| {
            (
                *name,
                TensorView::new(Dtype::I32, shape.clone(), bytes).unwrap(),
            )
        })
        .collect();
    let bytes = safetensors::serialize(views, &None).unwrap();
    let mut loaded = mlp.clone();
    let message = loaded.load_safetensors(&bytes).unwrap_err().to_string();
    assert!(
        message.contains("I32") && message.contains("layers.0.weight"),
        "{message}"
    );
    assert_eq!(loaded.params(), mlp.params());
}
