//! Regression tests of issue 12: hostile files and arguments are errors, never panics,
//! aborts or garbage.
#![cfg(feature = "wav")]

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::{peak_frequency, sine, write_float, write_pcm16, write_text, TempDir};
use approx::assert_abs_diff_eq;
use ndarray::Array1;
use tessera_data::{
    load_clip, read_wav_mono, resample, ClipSpec, Error, FeatureCache, MAX_SAMPLE_RATE,
};

/// Rewrites the sample-rate and byte-rate fields of a canonical 44-byte-header WAV file.
pub fn set_wav_rate(path: &Path, rate: u32) {
    let mut bytes = std::fs::read(path).unwrap();
    let block_align = u32::from(u16::from_le_bytes([bytes[32], bytes[33]]));
    bytes[24..28].copy_from_slice(&rate.to_le_bytes());
    bytes[28..32].copy_from_slice(&rate.wrapping_mul(block_align).to_le_bytes());
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn an_implausible_wav_sample_rate_is_an_error_naming_it() {
    let dir = TempDir::new("rate");
    let path = dir.path().join("huge-rate.wav");
    write_pcm16(&path, &sine(440.0, 16_000, 800, 0.5), 16_000, 1);
    set_wav_rate(&path, 2_147_483_647);
    let started = Instant::now();
    for result in [
        read_wav_mono(&path).map(|_| ()),
        load_clip(&path, &ClipSpec::speech_commands()).map(|_| ()),
    ] {
        let message = result.unwrap_err().to_string();
        assert!(message.contains("2147483647"), "{message}");
        assert!(message.contains("huge-rate.wav"), "{message}");
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    // The boundary itself is accepted.
    set_wav_rate(&path, MAX_SAMPLE_RATE);
    assert_eq!(read_wav_mono(&path).unwrap().sample_rate, MAX_SAMPLE_RATE);
    set_wav_rate(&path, MAX_SAMPLE_RATE + 1);
    assert!(read_wav_mono(&path).is_err());
    set_wav_rate(&path, 0);
    assert!(read_wav_mono(&path).is_err());
}

#[test]
fn resample_and_clip_specs_reject_implausible_rates() {
    let x = Array1::from(sine(440.0, 16_000, 1_000, 0.5));
    for (from, to, bad) in [
        (0, 16_000, 0),
        (16_000, 0, 0),
        (u32::MAX, 16_000, u32::MAX),
        (16_000, u32::MAX, u32::MAX),
    ] {
        let message = resample(x.view(), from, to).unwrap_err().to_string();
        assert!(message.contains(&format!("{bad} Hz")), "{message}");
    }
    assert!(ClipSpec::from_seconds(MAX_SAMPLE_RATE + 1, 1.0).is_err());
    let spec = ClipSpec {
        sample_rate: u32::MAX,
        ..ClipSpec::speech_commands()
    };
    let dir = TempDir::new("rate-spec");
    let path = dir.path().join("a.wav");
    write_pcm16(&path, &sine(440.0, 16_000, 800, 0.5), 16_000, 1);
    assert!(load_clip(&path, &spec).is_err());
}

#[test]
fn a_wav_header_claiming_more_data_than_the_file_is_an_error() {
    let dir = TempDir::new("wav-len");
    let path = dir.path().join("lying.wav");
    write_pcm16(&path, &sine(440.0, 16_000, 400, 0.5), 16_000, 1);
    let mut bytes = std::fs::read(&path).unwrap();
    assert_eq!(&bytes[36..40], b"data");
    bytes[40..44].copy_from_slice(&0x7fff_fff0u32.to_le_bytes());
    std::fs::write(&path, bytes).unwrap();
    let started = Instant::now();
    let message = read_wav_mono(&path).unwrap_err().to_string();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(message.contains("lying.wav"), "{message}");
}

#[test]
fn resampling_output_is_bounded_by_the_input() {
    // 1 Hz -> 768 kHz of a long signal would be gigabytes: an error before allocating.
    let x = Array1::from(vec![0.1f32; 1_000_000]);
    let started = Instant::now();
    let message = resample(x.view(), 1, MAX_SAMPLE_RATE)
        .unwrap_err()
        .to_string();
    assert!(message.contains("resampled length"), "{message}");
    assert!(started.elapsed() < Duration::from_secs(2));
    // A short one is fine.
    let short = resample(Array1::from(vec![0.5f32; 4]).view(), 1, 1_000).unwrap();
    assert_eq!(short.len(), 4_000);
    assert!(short.iter().all(|v| v.is_finite()));
}

#[test]
fn float_wavs_with_huge_or_non_finite_samples_are_errors_naming_the_sample() {
    let dir = TempDir::new("huge-float");
    for (tag, bad) in [
        ("e36", 1.0e36f32),
        ("max", f32::MAX),
        ("neg", -3.0e38),
        ("inf", f32::INFINITY),
        ("nan", f32::NAN),
    ] {
        let mut samples = sine(440.0, 16_000, 2_000, 0.5);
        samples[777] = bad;
        let path = dir.path().join(format!("loud-{tag}.wav"));
        write_float(&path, &samples, 22_050);
        for result in [
            read_wav_mono(&path).map(|_| ()),
            load_clip(&path, &ClipSpec::speech_commands()).map(|_| ()),
        ] {
            let message = result.unwrap_err().to_string();
            assert!(message.contains("sample 777"), "{message}");
            assert!(message.contains(&format!("loud-{tag}.wav")), "{message}");
        }
        let signal = Array1::from(samples);
        let message = resample(signal.view(), 22_050, 16_000)
            .unwrap_err()
            .to_string();
        assert!(message.contains("signal[777]"), "{message}");
    }
}

#[test]
fn loud_but_plausible_float_audio_resamples_to_finite_output() {
    let signal = Array1::from(sine(440.0, 22_050, 4_000, 1.0e5));
    let out = resample(signal.view(), 22_050, 16_000).unwrap();
    assert!(out.iter().all(|v| v.is_finite()));
}

#[test]
fn unusual_rates_resample_to_the_right_length_and_frequency() {
    for (from, to, n) in [
        (16_001u32, 16_000u32, 16_001usize),
        (44_056, 44_100, 8_000),
        (12_345, 16_000, 12_345),
        (16_000, 16_001, 5_000),
        (8_000, 44_101, 3_000),
    ] {
        let freq = 1_000.0;
        let x = Array1::from(sine(freq, from, n, 0.5));
        let y = resample(x.view(), from, to).unwrap_or_else(|e| panic!("{from}->{to}: {e}"));
        let expected = (n as u64 * u64::from(to)).div_ceil(u64::from(from)) as usize;
        assert_eq!(y.len(), expected, "{from}->{to}");
        assert!(y.iter().all(|v| v.is_finite()));
        let middle = &y.as_slice().unwrap()[y.len() / 4..3 * y.len() / 4];
        let peak = peak_frequency(middle, to, 5.0);
        assert_abs_diff_eq!(peak, freq, epsilon = 10.0);
        // The amplitude survives too (away from the edges).
        let max = middle.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert_abs_diff_eq!(max, 0.5, epsilon = 0.05);
    }
}

/// A `.npy` v1 file with the given header dict and raw data bytes.
pub fn npy_bytes(dict: &str, data: &[u8]) -> Vec<u8> {
    let mut header = dict.to_string();
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(data);
    bytes
}

#[test]
fn a_cache_file_whose_header_claims_a_huge_shape_is_an_error_before_allocating() {
    let dir = TempDir::new("npy-huge");
    let cache = FeatureCache::new(dir.path(), "f").unwrap();
    let path = cache.path_for("clip").unwrap();
    let bytes = npy_bytes(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (1048576, 1048576), }",
        &[0u8; 0],
    );
    assert!(bytes.len() <= 128);
    std::fs::write(&path, bytes).unwrap();
    let started = Instant::now();
    let message = cache.get("clip").unwrap_err().to_string();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(message.contains("1048576"), "{message}");
    // A shape whose byte count overflows u64 is an error too.
    let bytes = npy_bytes(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (18446744073709551615, 4), }",
        &[],
    );
    std::fs::write(&path, bytes).unwrap();
    assert!(cache.get("clip").is_err());
}

#[test]
fn cached_files_with_non_finite_values_are_rejected() {
    let dir = TempDir::new("npy-nan");
    let cache = FeatureCache::new(dir.path(), "f").unwrap();
    for (i, bad) in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY]
        .into_iter()
        .enumerate()
    {
        let mut values = ndarray::Array2::<f32>::ones((3, 4));
        values[[1, 2]] = bad;
        let key = format!("clip{i}");
        ndarray_npy::write_npy(cache.path_for(&key).unwrap(), &values).unwrap();
        let message = cache.get(&key).unwrap_err().to_string();
        assert!(message.contains("value 6"), "{message}");
        // get_or_compute must not hand the cached garbage back either.
        let signal = Array1::<f32>::zeros(8);
        assert!(cache
            .get_or_compute(&key, signal.view(), |_| Ok::<_, Error>(
                ndarray::Array2::ones((3, 4))
            ))
            .is_err());
    }
    // A valid file still reads.
    let values = ndarray::Array2::<f32>::from_elem((2, 3), 0.25);
    cache.put("ok", &values).unwrap();
    assert_eq!(cache.get("ok").unwrap().unwrap(), values);
}

fn small_dataset(ids: &[&str]) -> tessera_data::AudioDataset {
    tessera_data::AudioDataset {
        clips: ndarray::Array2::from_elem((ids.len(), 16), 0.5),
        labels: vec![0; ids.len()],
        class_names: vec!["a".into()],
        sample_rate: 16_000,
        ids: ids.iter().map(|s| s.to_string()).collect(),
        folds: None,
    }
}

#[test]
fn duplicate_ids_sharing_one_cache_entry_are_an_error() {
    let dir = TempDir::new("dup-ids");
    let cache = FeatureCache::new(dir.path(), "f").unwrap();
    let dataset = small_dataset(&["x", "y", "x"]);
    let feature =
        |x: ndarray::ArrayView1<f32>| Ok::<_, Error>(x.to_owned().insert_axis(ndarray::Axis(0)));
    let message = cache
        .compute_dataset(&dataset, feature)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("ids[0]") && message.contains("ids[2]"),
        "{message}"
    );
    assert!(cache
        .compute_dataset(&small_dataset(&["x", "y"]), feature)
        .is_ok());
}

#[test]
fn inconsistent_dataset_fields_are_errors_not_panics_in_rayon_threads() {
    let dir = TempDir::new("inconsistent");
    let cache = FeatureCache::new(dir.path(), "f").unwrap();
    let feature =
        |x: ndarray::ArrayView1<f32>| Ok::<_, Error>(x.to_owned().insert_axis(ndarray::Axis(0)));
    let mut fewer_clips = small_dataset(&["a", "b", "c"]);
    fewer_clips.clips = ndarray::Array2::zeros((1, 16));
    let mut fewer_ids = small_dataset(&["a", "b", "c"]);
    fewer_ids.ids.pop();
    let mut bad_label = small_dataset(&["a", "b"]);
    bad_label.labels[1] = 7;
    let mut bad_folds = small_dataset(&["a", "b"]);
    bad_folds.folds = Some(vec![1]);
    for (name, dataset) in [
        ("clips", fewer_clips),
        ("ids", fewer_ids),
        ("labels", bad_label),
        ("folds", bad_folds),
    ] {
        let message = cache
            .compute_dataset(&dataset, feature)
            .unwrap_err()
            .to_string();
        assert!(message.contains(name), "{name}: {message}");
        assert!(dataset.subset(&[0]).is_err());
    }
}

#[test]
fn metadata_file_names_outside_the_dataset_root_are_errors_naming_the_row() {
    let outside = TempDir::new("outside");
    write_pcm16(
        &outside.path().join("secret.wav"),
        &sine(440.0, 16_000, 160, 0.5),
        16_000,
        1,
    );
    let secret = outside.path().join("secret.wav");
    let names = [
        "../../../../../../../../etc/hostname".to_string(),
        secret.display().to_string(),
        "../secret.wav".to_string(),
        "sub/../../x.wav".to_string(),
        "..".to_string(),
        "a\\..\\..\\x.wav".to_string(),
    ];
    for name in &names {
        let dir = TempDir::new("esc-traversal");
        write_pcm16(
            &dir.path().join("audio/ok.wav"),
            &sine(440.0, 16_000, 160, 0.5),
            16_000,
            1,
        );
        write_text(
            &dir.path().join("meta/esc50.csv"),
            &format!(
                "filename,fold,target,category,esc10\nok.wav,1,0,dog,True\n\"{name}\",1,0,dog,True"
            ),
        );
        let message = tessera_data::esc10(dir.path()).unwrap_err().to_string();
        assert!(message.contains("line 3"), "{name}: {message}");

        let dir = TempDir::new("us8k-traversal");
        write_pcm16(
            &dir.path().join("audio/fold1/ok.wav"),
            &sine(440.0, 16_000, 160, 0.5),
            16_000,
            1,
        );
        write_text(
            &dir.path().join("metadata/UrbanSound8K.csv"),
            &format!(
                "slice_file_name,fold,classID,class\nok.wav,1,1,car_horn\n\"{name}\",1,1,car_horn"
            ),
        );
        let message = tessera_data::urbansound8k(dir.path())
            .unwrap_err()
            .to_string();
        assert!(message.contains("line 3"), "{name}: {message}");
    }
}

#[test]
fn duplicate_speech_commands_classes_are_an_error() {
    let dir = TempDir::new("sc-dup");
    for class in ["yes", "no"] {
        write_pcm16(
            &dir.path().join(format!("{class}/a.wav")),
            &sine(440.0, 16_000, 160, 0.5),
            16_000,
            1,
        );
    }
    write_text(&dir.path().join("validation_list.txt"), "");
    write_text(&dir.path().join("testing_list.txt"), "");
    let options = tessera_data::SpeechCommandsOptions {
        classes: Some(vec!["yes".into(), "no".into(), "yes".into()]),
    };
    let message = tessera_data::speech_commands(dir.path(), &options)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("yes") && message.contains("unique"),
        "{message}"
    );
}

fn in_pool<T: Send>(threads: usize, run: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(run)
}

fn bits(values: impl IntoIterator<Item = f32>) -> Vec<u32> {
    values.into_iter().map(f32::to_bits).collect()
}

#[test]
fn parallel_paths_give_identical_bits_for_1_2_and_4_threads() {
    let dir = TempDir::new("threads");
    // An ESC-50 tree at 22.05 kHz: DatasetIndex::load resamples in parallel.
    let mut csv = String::from("filename,fold,target,category,esc10");
    for i in 0..6 {
        let name = format!("{i}.wav");
        write_pcm16(
            &dir.path().join("audio").join(&name),
            &sine(300.0 + 50.0 * i as f64, 22_050, 3_000, 0.5),
            22_050,
            1 + (i % 2) as u16,
        );
        csv.push_str(&format!("\n{name},{},0,dog,True", 1 + i % 5));
    }
    write_text(&dir.path().join("meta/esc50.csv"), &csv);
    let index = tessera_data::esc10(dir.path()).unwrap();
    let spec = ClipSpec {
        clip_samples: 6_000,
        ..ClipSpec::esc10()
    };
    let run = |threads: usize| {
        in_pool(threads, || {
            let keywords = tessera_data::SyntheticKeywords::new(tessera_data::KeywordConfig {
                n_classes: 3,
                clips_per_class: 3,
                clip_seconds: 0.5,
                seed: 7,
                ..Default::default()
            })
            .unwrap()
            .generate();
            let shapes = tessera_data::Shapes::new(tessera_data::ShapesConfig {
                n_classes: 3,
                images_per_class: 4,
                height: 16,
                width: 16,
                seed: 7,
                ..Default::default()
            })
            .unwrap()
            .generate();
            let loaded = index.load(&spec).unwrap();
            let cache_dir = TempDir::new(&format!("threads-cache-{threads}"));
            let cache = FeatureCache::new(cache_dir.path(), "f").unwrap();
            let features = cache
                .compute_dataset(&loaded, |x| {
                    Ok::<_, Error>(x.mapv(|v| v * v).insert_axis(ndarray::Axis(0)))
                })
                .unwrap();
            (
                bits(keywords.clips.iter().copied()),
                bits(shapes.images.iter().copied()),
                bits(loaded.clips.iter().copied()),
                bits(features.iter().copied()),
            )
        })
    };
    let one = run(1);
    assert_eq!(run(2), one);
    assert_eq!(run(4), one);
}
