//! Unit tests of `ssl-audio` (tiny sizes: each well under 2 s in the dev profile).

use super::*;
use crate::harness::{Context, Mode};

fn tiny() -> Params {
    Params {
        features: FeatureSpec {
            n_classes: 3,
            train_per_class: 10,
            test_per_class: 4,
            n_mels: 16,
            labelled_fraction: 0.3,
        },
        train: TrainConfig {
            width: 2,
            steps: 2,
            labelled_batch: 4,
            unlabelled_batch: 4,
            lr: 1e-3,
            ramp_fraction: 0.5,
            eval_chunk: 8,
        },
        methods: Method::ALL.to_vec(),
        seeds: 1,
    }
}

fn temp_ctx(tag: &str) -> Context {
    let out = std::env::temp_dir().join(format!("tessera-ssl-audio-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    Context::new(&out, "ssl-audio", 5, Mode::Quick).unwrap()
}

#[test]
fn every_recipe_runs_and_the_report_has_every_row() {
    let ctx = temp_ctx("all");
    let outcome = run(&ctx, &tiny()).unwrap();
    for m in Method::ALL {
        assert!(outcome.section.contains(m.label()), "{}", m.label());
    }
    assert_eq!(outcome.claims.len(), 5);
    let csv = std::fs::read_to_string(ctx.path("results.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + Method::ALL.len());
    assert!(ctx.path("error_by_method.svg").exists());
    let _ = std::fs::remove_dir_all(&ctx.out);
}

/// Errors (%) per recipe in `Method::ALL` order, one value per seed.
fn fake_errors(values: [f64; 12]) -> Errors {
    values
        .iter()
        .enumerate()
        .map(|(i, &e)| (i, vec![e - 0.1, e + 0.1]))
        .collect()
}

#[test]
fn verdicts_follow_the_numbers() {
    let p = tiny();
    // sup10, sup10+mix, MT, MT+mix, DCT, DCT+mix, MM, RMM, FM, FM+mix, sup100, sup100+mix
    let good = fake_errors([
        30.0, 28.0, 25.0, 24.0, 26.0, 25.0, 12.0, 13.0, 15.0, 14.0, 14.0, 13.0,
    ]);
    let c = claims(&p, &good);
    assert_eq!(c.len(), 5);
    assert!(c.iter().all(|c| c.verdict == Verdict::Reproduced), "{c:#?}");

    // FixMatch best, DCT worse than supervised, mixup hurts at 100%, little of the gap closed.
    let bad = fake_errors([
        30.0, 29.0, 27.5, 27.6, 31.0, 32.0, 27.0, 28.0, 26.5, 27.0, 10.0, 11.0,
    ]);
    let c = claims(&p, &bad);
    let verdict = |needle: &str| {
        c.iter()
            .find(|c| c.statement.contains(needle))
            .map(|c| c.verdict)
            .unwrap()
    };
    assert_eq!(verdict("every SSL"), Verdict::Partly);
    assert_eq!(verdict("MixMatch or ReMixMatch"), Verdict::NotReproduced);
    assert_eq!(verdict("closes most"), Verdict::NotReproduced);
    assert_eq!(verdict("supervised baseline"), Verdict::Partly);
    assert_eq!(verdict("adding mixup"), Verdict::NotReproduced);
}

/// A Speech Commands tree of generated keyword clips: `n` files per class, every fourth in
/// the testing list, every fourth + 1 in the validation list.
fn speech_commands_tree(root: &std::path::Path, classes: usize, n: usize) {
    let generator = tessera_data::SyntheticKeywords::new(tessera_data::KeywordConfig {
        n_classes: classes,
        clips_per_class: n,
        ..tessera_data::KeywordConfig::default()
    })
    .unwrap();
    let audio = generator.generate();
    let (mut testing, mut validation) = (String::new(), String::new());
    for (i, clip) in audio.clips.outer_iter().enumerate() {
        let class = &audio.class_names[audio.labels[i]];
        let rel = format!("{class}/clip{i:03}.wav");
        let path = root.join(&rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        tessera_data::write_wav_mono(&path, clip, audio.sample_rate).unwrap();
        match (i / classes) % 4 {
            0 => testing.push_str(&format!("{rel}\n")),
            1 => validation.push_str(&format!("{rel}\n")),
            _ => {}
        }
    }
    std::fs::write(root.join("testing_list.txt"), testing).unwrap();
    std::fs::write(root.join("validation_list.txt"), validation).unwrap();
}

fn with_data(ctx: Context, dir: &std::path::Path, dataset: &str) -> Context {
    ctx.with_data(Some(crate::harness::DataSource {
        dir: dir.to_path_buf(),
        dataset: dataset.to_string(),
    }))
}

#[test]
fn speech_commands_tree_runs_and_log_mels_are_cached() {
    let ctx = temp_ctx("gsc");
    let root = ctx.out.join("gsc");
    speech_commands_tree(&root, 3, 8);
    let ctx = with_data(ctx, &root, "speechcommands");
    let mut p = tiny();
    p.methods = vec![
        Method::Supervised {
            all: false,
            mixup: false,
        },
        Method::FixMatch { mixup: false },
    ];
    let data = features::real(&ctx, &p.features, ctx.data.as_ref().unwrap()).unwrap();
    // 24 files: 6 in the testing list, 6 in the validation list (unused), 12 for training.
    assert_eq!(data.y_test.len(), 6);
    assert_eq!(data.y_train.len(), 12);
    assert_eq!(data.x_train.shape(), &[12, 1, 16, 32]);
    assert_eq!(data.class_names.len(), 3);
    let cache = ctx.out.join(".cache").join("ssl-audio");
    let cached = std::fs::read_dir(&cache).unwrap().count();
    assert_eq!(cached, 1, "one namespace folder");
    let outcome = run(&ctx, &p).unwrap();
    assert!(outcome.section.contains("Speech Commands"));
    let _ = std::fs::remove_dir_all(&ctx.out);
}

#[test]
fn esc10_tree_uses_fold_one_as_test_and_bad_roots_are_errors() {
    let ctx = temp_ctx("esc");
    let root = ctx.out.join("esc");
    std::fs::create_dir_all(root.join("audio")).unwrap();
    std::fs::create_dir_all(root.join("meta")).unwrap();
    let mut csv = String::from("filename,fold,target,category,esc10,src_file,take");
    let tone = ndarray::Array1::from_shape_fn(4410, |i| (0.05 * i as f32).sin() * 0.3);
    for (k, (category, target)) in [("dog", 0), ("rain", 10)].iter().enumerate() {
        for fold in 1..=3 {
            let file = format!("{fold}-{k}0{fold}-A-{target}.wav");
            tessera_data::write_wav_mono(root.join("audio").join(&file), tone.view(), 22_050)
                .unwrap();
            csv.push_str(&format!("\n{file},{fold},{target},{category},True,{k},A"));
        }
    }
    std::fs::write(root.join("meta/esc50.csv"), csv).unwrap();
    let ctx = with_data(ctx, &root, "esc10");
    let p = tiny();
    let data = features::real(&ctx, &p.features, ctx.data.as_ref().unwrap()).unwrap();
    assert_eq!(data.y_test.len(), 2, "fold 1");
    assert_eq!(data.y_train.len(), 4);
    // SSLH's ESC-10 clips: 5 s at 44.1 kHz → 431 frames.
    assert_eq!(data.x_train.shape()[3], 431);

    let missing = with_data(temp_ctx("esc-missing"), &ctx.out.join("nope"), "esc10");
    let err = run(&missing, &p).unwrap_err();
    assert!(format!("{err:#}").contains("esc50.csv"), "{err:#}");
    let unknown = with_data(temp_ctx("esc-unknown"), &root, "audioset");
    let err = run(&unknown, &p).unwrap_err();
    assert!(format!("{err:#}").contains("audioset"), "{err:#}");
    for c in [&ctx, &missing, &unknown] {
        let _ = std::fs::remove_dir_all(&c.out);
    }
}
