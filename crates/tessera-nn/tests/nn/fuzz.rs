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
