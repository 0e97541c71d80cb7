//! The real-dataset loaders on small WAV trees written by the tests.
#![cfg(feature = "wav")]

use crate::common;

use approx::assert_abs_diff_eq;
use common::{sine, write_float, write_pcm16, write_text, TempDir};
use tessera_data::{
    esc10, speech_commands, urbansound8k, ClipSpec, Error, FitMode, SpeechCommandsOptions, Subset,
};

const ESC_HEADER: &str = "filename,fold,target,category,esc10,src_file,take";

/// An ESC-50 tree with five ESC-10 files (dog, rain, chainsaw over folds 1–3) and one
/// non-ESC-10 row whose audio is absent (it must be ignored).
fn esc_tree(dir: &TempDir) {
    let rows = [
        ("1-100-A-0.wav", 1, 0, "dog", "True"),
        ("2-100-A-0.wav", 2, 0, "dog", "True"),
        ("1-200-A-10.wav", 1, 10, "rain", "True"),
        ("3-300-A-41.wav", 3, 41, "chainsaw", "True"),
        ("3-301-A-41.wav", 3, 41, "chainsaw", "True"),
        ("1-400-A-5.wav", 1, 5, "cat", "False"),
    ];
    let mut csv = String::from(ESC_HEADER);
    for (i, (file, fold, target, category, esc10)) in rows.iter().enumerate() {
        csv.push_str(&format!(
            "\n{file},{fold},{target},{category},{esc10},{i},A"
        ));
        if *esc10 == "True" {
            let samples = sine(440.0 * (i + 1) as f64, 22_050, 2_205, 0.5);
            write_pcm16(&dir.path().join("audio").join(file), &samples, 22_050, 1);
        }
    }
    write_text(&dir.path().join("meta/esc50.csv"), &csv);
}

#[test]
fn esc10_reads_the_tree_and_respects_folds() {
    let dir = TempDir::new("esc");
    esc_tree(&dir);
    let index = esc10(dir.path()).unwrap();
    assert_eq!(index.len(), 5);
    assert_eq!(index.labels(), vec![0, 0, 5, 4, 4]);
    assert_eq!(index.folds().unwrap(), vec![1, 2, 1, 3, 3]);
    assert_eq!(index.class_names[4], "chainsaw");
    assert_eq!(index.files[0].id, "audio/1-100-A-0.wav");

    let rounds = index.cross_validation().unwrap();
    assert_eq!(rounds.len(), 3);
    assert_eq!(rounds[0].test, vec![0, 2]);
    assert_eq!(rounds[0].train, vec![1, 3, 4]);
    assert_eq!(rounds[2].test_fold, 3);
    assert_eq!(rounds[2].test, vec![3, 4]);

    // 0.1 s at 22.05 kHz → 44.1 kHz, padded to 0.25 s.
    let spec = ClipSpec::from_seconds(44_100, 0.25).unwrap();
    let data = index.load(&spec).unwrap();
    assert_eq!(data.clips.dim(), (5, 11_025));
    assert_eq!(data.sample_rate, 44_100);
    assert_eq!(data.folds, Some(vec![1, 2, 1, 3, 3]));
    let clip = data.clip(0);
    let active = clip.iter().take(4_410).filter(|x| x.abs() > 0.1).count();
    assert!(active > 2_000, "the resampled tone fills the first 0.1 s");
    assert!(
        clip.iter().skip(4_420).all(|&x| x == 0.0),
        "zero padding after it"
    );

    let subset = index.load_indices(&[3], &spec).unwrap();
    assert_eq!(subset.labels, vec![4]);
    assert_eq!(subset.clips.row(0), data.clips.row(3));
}

#[test]
fn esc10_errors_are_specific() {
    let dir = TempDir::new("esc-missing-meta");
    std::fs::create_dir_all(dir.path().join("audio")).unwrap();
    let err = esc10(dir.path()).unwrap_err();
    assert!(matches!(err, Error::MissingMetadata { .. }), "{err}");
    assert!(err.to_string().contains("esc50.csv"));

    let dir = TempDir::new("esc-empty-audio");
    write_text(
        &dir.path().join("meta/esc50.csv"),
        &format!("{ESC_HEADER}\na.wav,1,0,dog,True,1,A"),
    );
    std::fs::create_dir_all(dir.path().join("audio")).unwrap();
    let err = esc10(dir.path()).unwrap_err();
    assert!(matches!(err, Error::EmptyFolder { .. }), "{err}");

    let dir = TempDir::new("esc-unknown");
    esc_tree(&dir);
    write_text(
        &dir.path().join("meta/esc50.csv"),
        &format!("{ESC_HEADER}\n1-100-A-0.wav,1,0,unicorn,True,1,A"),
    );
    let err = esc10(dir.path()).unwrap_err();
    assert!(matches!(err, Error::UnknownLabel { .. }), "{err}");
    assert!(err.to_string().contains("unicorn"));

    write_text(
        &dir.path().join("meta/esc50.csv"),
        &format!("{ESC_HEADER}\n1-100-A-0.wav,1,5,dog,True,1,A"),
    );
    let err = esc10(dir.path()).unwrap_err();
    assert!(matches!(err, Error::UnknownLabel { .. }), "{err}");

    write_text(
        &dir.path().join("meta/esc50.csv"),
        &format!("{ESC_HEADER}\n1-100-A-0.wav,7,0,dog,True,1,A"),
    );
    let err = esc10(dir.path()).unwrap_err().to_string();
    assert!(err.contains("fold 7") && err.contains("line 2"), "{err}");

    write_text(
        &dir.path().join("meta/esc50.csv"),
        &format!("{ESC_HEADER}\nnot-there.wav,1,0,dog,True,1,A"),
    );
    let err = esc10(dir.path()).unwrap_err();
    assert!(matches!(err, Error::MissingAudio { .. }), "{err}");
    assert!(err.to_string().contains("not-there.wav"));

    write_text(
        &dir.path().join("meta/esc50.csv"),
        "filename,fold,target,category\n1-100-A-0.wav,1,0,dog",
    );
    let err = esc10(dir.path()).unwrap_err().to_string();
    assert!(err.contains("`esc10`"), "{err}");
}

#[test]
fn a_corrupt_wav_is_reported_with_its_path() {
    let dir = TempDir::new("esc-corrupt");
    esc_tree(&dir);
    std::fs::write(
        dir.path().join("audio/1-200-A-10.wav"),
        b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk",
    )
    .unwrap();
    let index = esc10(dir.path()).unwrap();
    let err = index.load(&ClipSpec::esc10()).unwrap_err();
    assert!(matches!(err, Error::CorruptWav { .. }), "{err}");
    assert!(err.to_string().contains("1-200-A-10.wav"), "{err}");
}

const US8K_HEADER: &str = "slice_file_name,fsID,start,end,salience,fold,classID,class";

fn urban_tree(dir: &TempDir) {
    let rows = [
        ("100-0-0-0.wav", 1, 0, "air_conditioner"),
        ("101-8-0-0.wav", 1, 8, "siren"),
        ("102-3-0-1.wav", 2, 3, "dog_bark"),
        ("103-9-0-2.wav", 10, 9, "street_music"),
    ];
    let mut csv = String::from(US8K_HEADER);
    for (i, (file, fold, class_id, class)) in rows.iter().enumerate() {
        csv.push_str(&format!("\n{file},{i},0.0,1.0,1,{fold},{class_id},{class}"));
        let samples = sine(300.0 + 100.0 * i as f64, 44_100, 8_820, 0.6);
        let path = dir.path().join(format!("audio/fold{fold}/{file}"));
        write_pcm16(&path, &samples, 44_100, 2);
    }
    write_text(&dir.path().join("metadata/UrbanSound8K.csv"), &csv);
}

#[test]
fn urbansound8k_reads_folds_resamples_and_mixes_down() {
    let dir = TempDir::new("us8k");
    urban_tree(&dir);
    let index = urbansound8k(dir.path()).unwrap();
    assert_eq!(index.labels(), vec![0, 8, 3, 9]);
    assert_eq!(index.folds().unwrap(), vec![1, 1, 2, 10]);
    assert_eq!(index.files[3].id, "audio/fold10/103-9-0-2.wav");
    let rounds = index.cross_validation().unwrap();
    assert_eq!(
        rounds.iter().map(|r| r.test_fold).collect::<Vec<_>>(),
        vec![1, 2, 10]
    );
    assert_eq!(rounds[0].train, vec![2, 3]);

    // 0.2 s of stereo at 44.1 kHz → mono 22.05 kHz, cropped to 0.1 s from the start.
    let spec = ClipSpec {
        sample_rate: 22_050,
        clip_samples: 2_205,
        fit: FitMode::Start,
    };
    let data = index.load(&spec).unwrap();
    assert_eq!(data.clips.dim(), (4, 2_205));
    // Channel 1 is half of channel 0, so the mixdown has amplitude 0.75 · 0.6 = 0.45.
    let peak = data
        .clip(0)
        .iter()
        .skip(200)
        .fold(0f32, |a, &b| a.max(b.abs()));
    assert_abs_diff_eq!(peak, 0.45, epsilon = 0.01);
}

#[test]
fn urbansound8k_errors_are_specific() {
    let dir = TempDir::new("us8k-errors");
    let err = urbansound8k(dir.path()).unwrap_err();
    assert!(matches!(err, Error::MissingMetadata { .. }), "{err}");
    assert!(err.to_string().contains("UrbanSound8K.csv"));

    urban_tree(&dir);
    write_text(
        &dir.path().join("metadata/UrbanSound8K.csv"),
        &format!("{US8K_HEADER}\n100-0-0-0.wav,1,0,1,1,1,3,siren"),
    );
    let err = urbansound8k(dir.path()).unwrap_err();
    assert!(matches!(err, Error::UnknownLabel { .. }), "{err}");
    write_text(
        &dir.path().join("metadata/UrbanSound8K.csv"),
        &format!("{US8K_HEADER}\n100-0-0-0.wav,1,0,1,1,1,12,laser"),
    );
    let err = urbansound8k(dir.path()).unwrap_err();
    assert!(matches!(err, Error::UnknownLabel { .. }), "{err}");
    assert!(err.to_string().contains("laser"));
    write_text(
        &dir.path().join("metadata/UrbanSound8K.csv"),
        &format!("{US8K_HEADER}\n100-0-0-0.wav,1,0,1,1,one,0,air_conditioner"),
    );
    let err = urbansound8k(dir.path()).unwrap_err().to_string();
    assert!(err.contains("`fold`") && err.contains("one"), "{err}");
    write_text(&dir.path().join("metadata/UrbanSound8K.csv"), US8K_HEADER);
    let err = urbansound8k(dir.path()).unwrap_err().to_string();
    assert!(err.contains("no data rows"), "{err}");
}

/// yes: a, b, c; no: d, e; validation = yes/b; testing = no/e; plus background noise.
fn commands_tree(dir: &TempDir) {
    for (class, file, freq) in [
        ("yes", "a.wav", 500.0),
        ("yes", "b.wav", 600.0),
        ("yes", "c.wav", 700.0),
        ("no", "d.wav", 800.0),
        ("no", "e.wav", 900.0),
    ] {
        let samples = sine(freq, 16_000, 12_000, 0.3);
        write_pcm16(&dir.path().join(class).join(file), &samples, 16_000, 1);
    }
    let noise: Vec<f32> = (0..32_000)
        .map(|t| ((t * 7919 % 1000) as f32 / 1000.0 - 0.5) * 0.2)
        .collect();
    write_float(
        &dir.path().join("_background_noise_/white_noise.wav"),
        &noise,
        32_000,
    );
    write_text(&dir.path().join("validation_list.txt"), "yes/b.wav\n");
    write_text(&dir.path().join("testing_list.txt"), "no/e.wav\n\n");
}

#[test]
fn speech_commands_reads_classes_lists_and_noise() {
    let dir = TempDir::new("commands");
    commands_tree(&dir);
    let index = speech_commands(dir.path(), &SpeechCommandsOptions::default()).unwrap();
    assert_eq!(index.class_names, vec!["no", "yes"]);
    let ids: Vec<&str> = index.files.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(
        ids,
        vec![
            "no/d.wav",
            "no/e.wav",
            "yes/a.wav",
            "yes/b.wav",
            "yes/c.wav"
        ]
    );
    assert_eq!(index.labels(), vec![0, 0, 1, 1, 1]);
    assert_eq!(index.subset_indices(Subset::Train), vec![0, 2, 4]);
    assert_eq!(index.subset_indices(Subset::Validation), vec![3]);
    assert_eq!(index.subset_indices(Subset::Test), vec![1]);
    assert!(index.cross_validation().is_err(), "no folds in this layout");

    let data = index.load(&ClipSpec::speech_commands()).unwrap();
    assert_eq!(data.clips.dim(), (5, 16_000));
    assert!(data.clip(0).iter().skip(12_000).all(|&x| x == 0.0));
    assert!(data.folds.is_none());

    assert_eq!(index.background_noise.len(), 1);
    let noise = index.load_background_noise(16_000).unwrap();
    assert_eq!(
        noise[0].len(),
        16_000,
        "2 s at 32 kHz is 16000 samples at 16 kHz"
    );

    let only_yes = speech_commands(
        dir.path(),
        &SpeechCommandsOptions {
            classes: Some(vec!["yes".into()]),
        },
    )
    .unwrap();
    assert_eq!(only_yes.len(), 3);
    assert_eq!(only_yes.labels(), vec![0, 0, 0]);
    assert_eq!(only_yes.subset_indices(Subset::Validation), vec![1]);
}

#[test]
fn speech_commands_errors_are_specific() {
    let dir = TempDir::new("commands-errors");
    commands_tree(&dir);

    let err = speech_commands(
        dir.path(),
        &SpeechCommandsOptions {
            classes: Some(vec!["maybe".into()]),
        },
    )
    .unwrap_err();
    assert!(matches!(err, Error::UnknownLabel { .. }), "{err}");

    write_text(&dir.path().join("testing_list.txt"), "maybe/x.wav\n");
    let err = speech_commands(dir.path(), &SpeechCommandsOptions::default()).unwrap_err();
    assert!(matches!(err, Error::UnknownLabel { .. }), "{err}");
    assert!(err.to_string().contains("maybe") && err.to_string().contains("line 1"));

    write_text(&dir.path().join("testing_list.txt"), "yes/b.wav\n");
    let err = speech_commands(dir.path(), &SpeechCommandsOptions::default()).unwrap_err();
    assert!(err.to_string().contains("both"), "{err}");

    write_text(&dir.path().join("testing_list.txt"), "yes/zzz.wav\n");
    let err = speech_commands(dir.path(), &SpeechCommandsOptions::default()).unwrap_err();
    assert!(matches!(err, Error::MissingAudio { .. }), "{err}");

    std::fs::remove_file(dir.path().join("testing_list.txt")).unwrap();
    let err = speech_commands(dir.path(), &SpeechCommandsOptions::default()).unwrap_err();
    assert!(matches!(err, Error::MissingMetadata { .. }), "{err}");
    assert!(err.to_string().contains("testing_list.txt"));

    write_text(&dir.path().join("testing_list.txt"), "");
    std::fs::create_dir_all(dir.path().join("up")).unwrap();
    let err = speech_commands(dir.path(), &SpeechCommandsOptions::default()).unwrap_err();
    assert!(matches!(err, Error::EmptyFolder { .. }), "{err}");
    assert!(err.to_string().contains("up"));

    let bare = TempDir::new("commands-bare");
    write_text(&bare.path().join("validation_list.txt"), "");
    write_text(&bare.path().join("testing_list.txt"), "");
    let err = speech_commands(bare.path(), &SpeechCommandsOptions::default()).unwrap_err();
    assert!(matches!(err, Error::EmptyFolder { .. }), "{err}");
}

#[test]
fn bad_clip_specs_and_indices_are_rejected() {
    let dir = TempDir::new("commands-spec");
    commands_tree(&dir);
    let index = speech_commands(dir.path(), &SpeechCommandsOptions::default()).unwrap();
    let spec = ClipSpec {
        clip_samples: 0,
        ..ClipSpec::speech_commands()
    };
    assert!(index
        .load(&spec)
        .unwrap_err()
        .to_string()
        .contains("clip_samples"));
    let err = index
        .load_indices(&[9], &ClipSpec::speech_commands())
        .unwrap_err()
        .to_string();
    assert!(err.contains("indices") && err.contains('9'), "{err}");
    assert!(ClipSpec::from_seconds(16_000, -1.0).is_err());
    assert!(ClipSpec::from_seconds(0, 1.0).is_err());
}
