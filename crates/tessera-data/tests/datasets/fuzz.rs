//! Fuzz tests (proptest, stable): arbitrary bytes and random mutations of valid WAV
//! (PCM16 and float), `.npy` cache and CSV metadata files fed to the readers. Every call
//! returns `Ok` or `Err` — a panic fails the test — and returns quickly (a lying header is an
//! `Err` before anything is allocated). `TESSERA_FUZZ_CASES` sets the number of cases
//! (default 24, so the test binary stays fast).
#![cfg(feature = "wav")]

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::{sine, write_float, write_pcm16, write_text, TempDir};
use crate::robustness::npy_bytes;
use proptest::prelude::*;
use tessera_data::{load_clip, read_wav_mono, ClipSpec, FeatureCache};

fn cases() -> u32 {
    std::env::var("TESSERA_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24)
}

/// One mutation of a file: flip a bit, overwrite a byte, overwrite a little-endian u32
/// (header fields: sizes, rates), or truncate.
#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Byte(usize, u8),
    Word(usize, u32),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, v)| Mutation::Byte(i, v)),
        // Header fields live in the first 64 bytes; bias word rewrites there.
        (
            0usize..64,
            prop_oneof![any::<u32>(), Just(u32::MAX), Just(0x7fff_ffff), Just(0)]
        )
            .prop_map(|(i, v)| Mutation::Word(i, v)),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        if bytes.is_empty() {
            break;
        }
        let n = bytes.len();
        match *m {
            Mutation::Flip(i, b) => bytes[i % n] ^= 1 << b,
            Mutation::Byte(i, v) => bytes[i % n] = v,
            Mutation::Word(i, v) => {
                let i = i % n;
                for (k, byte) in v.to_le_bytes().into_iter().enumerate() {
                    if i + k < n {
                        bytes[i + k] = byte;
                    }
                }
            }
            Mutation::Truncate(len) => bytes.truncate(len % (n + 1)),
        }
    }
    bytes
}

fn valid_wavs(dir: &Path) -> (Vec<u8>, Vec<u8>) {
    let pcm = dir.join("pcm.wav");
    write_pcm16(&pcm, &sine(440.0, 16_000, 600, 0.5), 16_000, 2);
    let float = dir.join("float.wav");
    write_float(&float, &sine(440.0, 22_050, 600, 0.5), 22_050);
    (std::fs::read(pcm).unwrap(), std::fs::read(float).unwrap())
}

/// Feeds `bytes` as a WAV file to the readers: Ok or Err, quickly; an Ok clip is finite.
fn check_wav(dir: &Path, bytes: &[u8]) {
    let path = dir.join("fuzz.wav");
    std::fs::write(&path, bytes).unwrap();
    let started = Instant::now();
    if let Ok(audio) = read_wav_mono(&path) {
        assert!(audio.samples.iter().all(|x| x.is_finite()));
        let spec = ClipSpec {
            clip_samples: 2_000,
            ..ClipSpec::speech_commands()
        };
        if let Ok(clip) = load_clip(&path, &spec) {
            assert_eq!(clip.len(), 2_000);
            assert!(clip.iter().all(|x| x.is_finite()));
        }
    }
    assert!(started.elapsed() < Duration::from_secs(20));
}

fn check_npy(cache: &FeatureCache, bytes: &[u8]) {
    std::fs::write(cache.path_for("fuzz").unwrap(), bytes).unwrap();
    let started = Instant::now();
    if let Ok(Some(features)) = cache.get("fuzz") {
        assert!(features.iter().all(|x| x.is_finite()));
        assert!(features.len() * 4 <= bytes.len());
    }
    assert!(started.elapsed() < Duration::from_secs(5));
}

const ESC_CSV: &str = "filename,fold,target,category,esc10\n\
                       a.wav,1,0,dog,True\n\
                       b.wav,2,10,rain,True\n\
                       \"c.wav\",3,41,chainsaw,False\n";

fn check_csv(dir: &Path, bytes: &[u8]) {
    let root = dir.join("esc");
    std::fs::create_dir_all(root.join("meta")).unwrap();
    std::fs::write(root.join("meta/esc50.csv"), bytes).unwrap();
    if let Ok(index) = tessera_data::esc10(&root) {
        for file in &index.files {
            assert!(file.path.starts_with(root.join("audio")), "{:?}", file.path);
            assert!(file.label < index.class_names.len());
        }
    }
}

fn esc_audio(dir: &Path) {
    for name in ["a.wav", "b.wav", "c.wav"] {
        write_pcm16(
            &dir.join("esc/audio").join(name),
            &sine(440.0, 16_000, 160, 0.5),
            16_000,
            1,
        );
    }
    write_text(&dir.join("esc/meta/esc50.csv"), ESC_CSV);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn wav_readers_survive_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let dir = TempDir::new("fuzz-wav-bytes");
        let mut with_magic = b"RIFF\x00\x01\x00\x00WAVEfmt ".to_vec();
        with_magic.extend_from_slice(&bytes);
        check_wav(dir.path(), &bytes);
        check_wav(dir.path(), &with_magic);
    }

    #[test]
    fn wav_readers_survive_mutated_pcm16_and_float_files(
        mutations in proptest::collection::vec(mutation(), 1..6),
        float in any::<bool>(),
    ) {
        let dir = TempDir::new("fuzz-wav-mut");
        let (pcm, float_bytes) = valid_wavs(dir.path());
        let original = if float { float_bytes } else { pcm };
        check_wav(dir.path(), &mutate(original, &mutations));
    }

    #[test]
    fn the_feature_cache_survives_arbitrary_and_mutated_npy_files(
        bytes in proptest::collection::vec(any::<u8>(), 0..256),
        mutations in proptest::collection::vec(mutation(), 1..6),
        rows in 1usize..5,
        cols in 1usize..5,
    ) {
        let dir = TempDir::new("fuzz-npy");
        let cache = FeatureCache::new(dir.path(), "f").unwrap();
        check_npy(&cache, &bytes);
        let data: Vec<u8> = (0..rows * cols).flat_map(|i| (i as f32).to_le_bytes()).collect();
        let valid = npy_bytes(
            &format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}"),
            &data,
        );
        check_npy(&cache, &mutate(valid, &mutations));
    }

    #[test]
    fn the_metadata_reader_survives_arbitrary_and_mutated_csv(
        bytes in proptest::collection::vec(any::<u8>(), 0..256),
        mutations in proptest::collection::vec(mutation(), 1..6),
    ) {
        let dir = TempDir::new("fuzz-csv");
        esc_audio(dir.path());
        check_csv(dir.path(), &bytes);
        check_csv(dir.path(), &mutate(ESC_CSV.as_bytes().to_vec(), &mutations));
    }
}
