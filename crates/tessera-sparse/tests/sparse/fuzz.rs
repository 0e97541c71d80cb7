//! Fuzzing the safetensors mask readers: arbitrary bytes and random mutations of valid files
//! (bit flips, byte overwrites, truncation, header rewrites) are an `Err` or a valid result,
//! never a panic. `TESSERA_FUZZ_CASES` sets the number of cases (default 256).

use proptest::prelude::*;
use tessera_sparse::{
    layer_shapes_from_bytes, masks_from_bytes, masks_to_bytes, weights_only, LayerShape, Mask,
    MaskDtype,
};

fn cases() -> u32 {
    std::env::var("TESSERA_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

fn valid_file() -> Vec<u8> {
    let layers = [
        LayerShape::new("conv.weight", &[4, 2, 3, 3]).unwrap(),
        LayerShape::new("fc.weight", &[10, 8]).unwrap(),
        LayerShape::new("fc.bias", &[10]).unwrap(),
    ];
    let masks: Vec<Mask> = layers
        .iter()
        .map(|l| Mask::from_bools(&(0..l.numel()).map(|i| i % 3 == 0).collect::<Vec<_>>()))
        .collect();
    masks_to_bytes(&layers, &masks, MaskDtype::U8).unwrap()
}

#[derive(Debug, Clone)]
enum Mutation {
    FlipBit(usize, u8),
    Overwrite(usize, u8),
    Truncate(usize),
    /// Rewrites the 8-byte header length.
    HeaderLength(u64),
    /// Replaces a digit of the JSON header (shapes, offsets) with another digit or a huge number.
    HeaderNumber(usize, bool),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(i, b)| Mutation::FlipBit(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, v)| Mutation::Overwrite(i, v)),
        any::<usize>().prop_map(Mutation::Truncate),
        any::<u64>().prop_map(Mutation::HeaderLength),
        (any::<usize>(), any::<bool>()).prop_map(|(i, h)| Mutation::HeaderNumber(i, h)),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    let n = bytes.len();
    match *m {
        Mutation::FlipBit(i, b) => bytes[i % n] ^= 1 << b,
        Mutation::Overwrite(i, v) => bytes[i % n] = v,
        Mutation::Truncate(i) => bytes.truncate(i % n),
        Mutation::HeaderLength(v) => bytes[..8].copy_from_slice(&v.to_le_bytes()),
        Mutation::HeaderNumber(i, huge) => {
            let header_end =
                (8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize).min(n);
            let digits: Vec<usize> = (8..header_end)
                .filter(|&k| bytes[k].is_ascii_digit())
                .collect();
            if digits.is_empty() {
                return;
            }
            let k = digits[i % digits.len()];
            if huge {
                let tail = bytes.split_off(k + 1);
                bytes.truncate(k);
                bytes.extend_from_slice(b"18446744073709551615");
                bytes.extend_from_slice(&tail);
                let len = (header_end - 8 + 19) as u64;
                bytes[..8].copy_from_slice(&len.to_le_bytes());
            } else {
                bytes[k] = b'0' + (i % 10) as u8;
            }
        }
    }
}

fn read_everything(bytes: &[u8]) {
    let _ = masks_from_bytes(bytes);
    let _ = layer_shapes_from_bytes(bytes, weights_only);
    let _ = layer_shapes_from_bytes(bytes, |_, _| true);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        read_everything(&bytes);
    }

    #[test]
    fn mutated_files_never_panic(mutations in proptest::collection::vec(mutation(), 1..4)) {
        let mut bytes = valid_file();
        for m in &mutations {
            if bytes.len() < 8 {
                break;
            }
            apply(&mut bytes, m);
        }
        read_everything(&bytes);
    }
}

#[test]
fn the_valid_file_round_trips() {
    let masks = masks_from_bytes(&valid_file()).unwrap();
    assert_eq!(masks.len(), 3);
}
