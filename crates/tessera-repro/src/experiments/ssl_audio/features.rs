//! The cached log-mel features of `ssl-audio`: generated keyword audio (or a real dataset from
//! `--data`) → SSLH log-mel, computed once and standardised; training steps only read them.

use anyhow::{bail, Context as _, Result};
use ndarray::{Array3, Array4, Axis};
use tessera_data::{
    esc10, speech_commands, stratified_split, urbansound8k, ClipSpec, DatasetIndex, FeatureCache,
    KeywordConfig, SpeechCommandsOptions, Subset, SyntheticKeywords,
};
use tessera_spectro::{DbConfig, LogMelConfig, LogMelSpectrogram, MelConfig};

use crate::harness::{Context, DataSource};

/// Everything a method trains and is tested on.
#[derive(Debug, Clone)]
pub struct Features {
    /// Training log-mels `(N, 1, n_mels, frames)`, standardised.
    pub x_train: Array4<f32>,
    /// Training labels (hidden from the learner outside `labelled`).
    pub y_train: Vec<usize>,
    /// Indices of `x_train` whose labels the 10% methods may use.
    pub labelled: Vec<usize>,
    /// Indices of `x_train` used as unlabelled data (the other 90%).
    pub unlabelled: Vec<usize>,
    /// Test log-mels, standardised with the training statistics.
    pub x_test: Array4<f32>,
    /// Test labels.
    pub y_test: Vec<usize>,
    /// Class names.
    pub class_names: Vec<String>,
    /// The standardised value of the quietest training log-mel bin: what occlusion, padding
    /// and CutOutSpec fill with ("silence", SSLH's −80 dB floor in our units).
    pub floor: f32,
    /// Where the data came from, for the report.
    pub source: String,
}

/// What to build the features from (sizes of the generated task).
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureSpec {
    /// Classes of the generated task.
    pub n_classes: usize,
    /// Generated training clips per class.
    pub train_per_class: usize,
    /// Generated test clips per class.
    pub test_per_class: usize,
    /// Mel bands (the SSLH preset has 64; fewer keep the CNN cheap on a CPU).
    pub n_mels: usize,
    /// Fraction of the training labels the semi-supervised methods see.
    pub labelled_fraction: f64,
}

/// The SSLH log-mel front end at `sample_rate` with `n_mels` bands.
fn logmel(sample_rate: u32, n_mels: usize) -> Result<LogMelSpectrogram<f32>> {
    let config = LogMelConfig {
        mel: MelConfig {
            n_mels,
            ..MelConfig::sslh(f64::from(sample_rate))
        },
        db: DbConfig::torchaudio(),
    };
    LogMelSpectrogram::new(config)
        .with_context(|| format!("SSLH log-mel with n_mels = {n_mels} at {sample_rate} Hz"))
}

/// Generated keyword clips (16 kHz, 1 s: 32 frames), training and test sets from different
/// seeds, log-mel once.
pub fn synthetic(ctx: &Context, spec: &FeatureSpec) -> Result<Features> {
    let make = |per_class: usize, tag: &str| -> Result<(Array3<f32>, Vec<usize>, Vec<String>)> {
        let generator = SyntheticKeywords::new(KeywordConfig {
            n_classes: spec.n_classes,
            clips_per_class: per_class,
            seed: ctx.seed_for(&("keywords", tag)),
            ..KeywordConfig::default()
        })
        .with_context(|| format!("keyword generator ({tag}, n_classes = {})", spec.n_classes))?;
        let audio = generator.generate();
        let plan = logmel(audio.sample_rate, spec.n_mels)?;
        let mels = plan.compute_batch(audio.clips.view())?;
        Ok((mels, audio.labels, audio.class_names))
    };
    let (train, y_train, class_names) = make(spec.train_per_class, "train")?;
    let (test, y_test, _) = make(spec.test_per_class, "test")?;
    let source = format!(
        "generated keyword audio (tessera-data `SyntheticKeywords`): {} classes, {} training \
         and {} test clips of 1 s at 16 kHz",
        spec.n_classes,
        y_train.len(),
        y_test.len()
    );
    assemble(ctx, spec, train, y_train, test, y_test, class_names, source)
}

/// A real dataset: ESC-10 / UrbanSound8K test on fold 1 and train on the other folds; Speech
/// Commands uses its official testing list and training files. Clips follow the SSLH clip
/// settings; log-mels are cached on disk under `<out>/.cache/ssl-audio/`.
pub fn real(ctx: &Context, spec: &FeatureSpec, source: &DataSource) -> Result<Features> {
    let dir = &source.dir;
    let (index, clip): (DatasetIndex, ClipSpec) = match source.dataset.as_str() {
        "esc10" => (esc10(dir)?, ClipSpec::esc10()),
        "urbansound8k" => (urbansound8k(dir)?, ClipSpec::urbansound8k()),
        "speechcommands" => (
            speech_commands(dir, &SpeechCommandsOptions::default())?,
            ClipSpec::speech_commands(),
        ),
        other => bail!("--dataset `{other}`: expected esc10, urbansound8k or speechcommands"),
    };
    let (train_idx, test_idx) = if index.folds().is_some() {
        let rounds = index.cross_validation()?;
        let first = rounds
            .first()
            .with_context(|| format!("{}: no cross-validation folds", index.name))?;
        (first.train.clone(), first.test.clone())
    } else {
        (
            index.subset_indices(Subset::Train),
            index.subset_indices(Subset::Test),
        )
    };
    if train_idx.is_empty() || test_idx.is_empty() {
        bail!(
            "{} at {}: {} training and {} test files; both must be non-empty",
            index.name,
            dir.display(),
            train_idx.len(),
            test_idx.len()
        );
    }
    let plan = logmel(clip.sample_rate, spec.n_mels)?;
    let cache = FeatureCache::new(
        ctx.out.join(".cache").join("ssl-audio"),
        &format!(
            "logmel-sslh-{}-{}mels-{}hz-{}",
            source.dataset, spec.n_mels, clip.sample_rate, clip.clip_samples
        ),
    )?;
    let features = |indices: &[usize]| -> Result<(Array3<f32>, Vec<usize>)> {
        let audio = index.load_indices(indices, &clip)?;
        let mels = cache.compute_dataset(&audio, |x| plan.compute(x))?;
        Ok((mels, audio.labels))
    };
    let (train, y_train) = features(&train_idx)?;
    let (test, y_test) = features(&test_idx)?;
    let text = format!(
        "{} at `{}`: {} training and {} test files ({} classes)",
        index.name,
        dir.display(),
        y_train.len(),
        y_test.len(),
        index.class_names.len()
    );
    let spec = FeatureSpec {
        n_classes: index.class_names.len(),
        ..spec.clone()
    };
    assemble(
        ctx,
        &spec,
        train,
        y_train,
        test,
        y_test,
        index.class_names.clone(),
        text,
    )
}

/// Standardises with the training mean and standard deviation, adds the channel axis and
/// draws the stratified labelled split.
#[allow(clippy::too_many_arguments)]
fn assemble(
    ctx: &Context,
    spec: &FeatureSpec,
    train: Array3<f32>,
    y_train: Vec<usize>,
    test: Array3<f32>,
    y_test: Vec<usize>,
    class_names: Vec<String>,
    source: String,
) -> Result<Features> {
    let n = train.len() as f64;
    let mean = train.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let var = train
        .iter()
        .map(|&v| (f64::from(v) - mean).powi(2))
        .sum::<f64>()
        / n;
    let std = var.sqrt().max(1e-6);
    let standardise = |a: Array3<f32>| -> Array4<f32> {
        a.mapv(|v| ((f64::from(v) - mean) / std) as f32)
            .insert_axis(Axis(1))
    };
    let x_train = standardise(train);
    let x_test = standardise(test);
    let floor = x_train.iter().copied().fold(f32::INFINITY, f32::min);
    let split = stratified_split(
        &y_train,
        spec.n_classes.max(class_names.len()),
        spec.labelled_fraction,
        ctx.seed_for(&"labelled-split"),
    )
    .with_context(|| format!("labelled_fraction = {}", spec.labelled_fraction))?;
    Ok(Features {
        x_train,
        y_train,
        labelled: split.labelled,
        unlabelled: split.unlabelled,
        x_test,
        y_test,
        class_names,
        floor,
        source,
    })
}
