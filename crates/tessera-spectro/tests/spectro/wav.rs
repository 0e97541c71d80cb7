//! WAV input: files written here with hound, read back through `read_wav`.
#![cfg(feature = "wav")]

use std::path::PathBuf;

use tessera_spectro::{read_wav, read_wav_from, Error};

fn temp_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tessera-spectro-wav-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn write_int(name: &str, bits: u16, channels: u16, frames: &[Vec<i32>]) -> PathBuf {
    let path = temp_path(name);
    let spec = hound::WavSpec {
        channels,
        sample_rate: 8000,
        bits_per_sample: bits,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(&path, spec).unwrap();
    for frame in frames {
        for &s in frame {
            match bits {
                8 => writer.write_sample(s as i8).unwrap(),
                16 => writer.write_sample(s as i16).unwrap(),
                _ => writer.write_sample(s).unwrap(),
            }
        }
    }
    writer.finalize().unwrap();
    path
}

#[test]
fn integer_wavs_scale_by_two_to_bits_minus_one() {
    for bits in [8u16, 16, 24, 32] {
        let full = 1i64 << (bits - 1);
        let samples = [
            (-full) as i32,
            (-full / 2) as i32,
            0,
            (full / 4) as i32,
            (full - 1) as i32,
        ];
        let frames: Vec<Vec<i32>> = samples.iter().map(|&s| vec![s]).collect();
        let path = write_int(&format!("mono{bits}.wav"), bits, 1, &frames);
        let audio = read_wav::<f64>(&path).unwrap();
        assert_eq!(audio.sample_rate, 8000);
        assert_eq!(audio.channels, 1);
        let expected: Vec<f64> = samples.iter().map(|&s| s as f64 / full as f64).collect();
        assert_eq!(audio.samples.to_vec(), expected, "{bits} bits");
        assert_eq!(audio.samples[0], -1.0);
        assert!(audio.samples[4] < 1.0);
        let single = read_wav::<f32>(&path).unwrap();
        assert_eq!(single.samples[1], -0.5);
    }
}

#[test]
fn multichannel_is_averaged_to_mono() {
    let frames = vec![vec![1000, 3000], vec![-2000, 0], vec![16384, -16384]];
    let path = write_int("stereo16.wav", 16, 2, &frames);
    let audio = read_wav::<f64>(&path).unwrap();
    assert_eq!(audio.channels, 2);
    let expected: Vec<f64> = frames
        .iter()
        .map(|f| (f[0] + f[1]) as f64 / 2.0 / 32768.0)
        .collect();
    assert_eq!(audio.samples.to_vec(), expected);
}

#[test]
fn float_wav_is_read_as_is() {
    let path = temp_path("float32.wav");
    let spec = hound::WavSpec {
        channels: 3,
        sample_rate: 44100,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut writer = hound::WavWriter::create(&path, spec).unwrap();
    for s in [0.25f32, -0.5, 0.75, 1.5, 0.0, -1.5] {
        writer.write_sample(s).unwrap();
    }
    writer.finalize().unwrap();
    let audio = read_wav::<f32>(&path).unwrap();
    assert_eq!(audio.sample_rate, 44100);
    assert_eq!(audio.samples.to_vec(), vec![0.5f32 / 3.0, 0.0]);
    let bytes = std::fs::read(&path).unwrap();
    let from_memory = read_wav_from::<f32, _>(std::io::Cursor::new(bytes)).unwrap();
    assert_eq!(from_memory, audio);
}

#[test]
fn unsupported_or_broken_files_are_clear_errors() {
    let missing = read_wav::<f32>(temp_path("does-not-exist.wav")).unwrap_err();
    assert!(matches!(missing, Error::Wav { .. }));
    assert!(
        missing.to_string().contains("does-not-exist.wav"),
        "{missing}"
    );

    let garbage = temp_path("garbage.wav");
    std::fs::write(&garbage, b"this is not a RIFF file at all").unwrap();
    assert!(matches!(
        read_wav::<f64>(&garbage).unwrap_err(),
        Error::Wav { .. }
    ));

    // A hand-made 64-bit float WAV (format tag 3): hound parses the header, we refuse it.
    let mut bytes = Vec::new();
    let data: Vec<u8> = [0.5f64, -0.25]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    bytes.extend_from_slice(b"RIFF");
    bytes.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    bytes.extend_from_slice(b"WAVEfmt ");
    bytes.extend_from_slice(&16u32.to_le_bytes());
    bytes.extend_from_slice(&3u16.to_le_bytes()); // IEEE float
    bytes.extend_from_slice(&1u16.to_le_bytes()); // channels
    bytes.extend_from_slice(&8000u32.to_le_bytes());
    bytes.extend_from_slice(&(8000u32 * 8).to_le_bytes());
    bytes.extend_from_slice(&8u16.to_le_bytes()); // block align
    bytes.extend_from_slice(&64u16.to_le_bytes()); // bits
    bytes.extend_from_slice(b"data");
    bytes.extend_from_slice(&(data.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&data);
    let err = read_wav_from::<f64, _>(std::io::Cursor::new(bytes)).unwrap_err();
    assert!(
        matches!(err, Error::UnsupportedWav { .. } | Error::Wav { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("bits"), "{err}");
}
