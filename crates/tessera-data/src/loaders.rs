//! Loaders for the folder layouts of ESC-10, UrbanSound8K and Speech Commands.
//!
//! Each loader first builds a [`DatasetIndex`] from the metadata (checking every file and
//! label, so a broken tree fails early with a precise error), then
//! [`DatasetIndex::load`] decodes, resamples and crops/pads the clips.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tessera_core::RejectInput;

use ndarray::{Array1, Array2};

use crate::audio::{load_clip, read_wav_mono, resample, ClipSpec};
use crate::csv::Table;
use crate::dataset::AudioDataset;
use crate::error::{Error, Result};
use crate::split::{fold_splits, FoldSplit};

/// The ten ESC-10 categories with their ESC-50 `target` ids, in ESC-10 label order — the
/// order of the SSLH code's `ESC10.TARGET_MAPPER` (targets 0, 1, 38, 40, 41, 10, 11, 12, 20,
/// 21 → labels 0..9), so that label ids agree with the reference implementation.
pub const ESC10_CLASSES: [(&str, usize); 10] = [
    ("dog", 0),
    ("rooster", 1),
    ("clock_tick", 38),
    ("helicopter", 40),
    ("chainsaw", 41),
    ("rain", 10),
    ("sea_waves", 11),
    ("crackling_fire", 12),
    ("crying_baby", 20),
    ("sneezing", 21),
];

/// The ten UrbanSound8K classes, indexed by `classID`.
pub const URBANSOUND8K_CLASSES: [&str; 10] = [
    "air_conditioner",
    "car_horn",
    "children_playing",
    "dog_bark",
    "drilling",
    "engine_idling",
    "gun_shot",
    "jackhammer",
    "siren",
    "street_music",
];

/// The official partition a Speech Commands file belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Subset {
    /// Neither in `validation_list.txt` nor in `testing_list.txt`.
    Train,
    /// Listed in `validation_list.txt`.
    Validation,
    /// Listed in `testing_list.txt`.
    Test,
}

/// One audio file of an indexed dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioFile {
    /// Full path of the WAV file.
    pub path: PathBuf,
    /// Path relative to the dataset root with `/` separators (a stable cache key).
    pub id: String,
    /// Class label, `< class_names.len()`.
    pub label: usize,
    /// Official fold (ESC-10: 1..=5, UrbanSound8K: 1..=10).
    pub fold: Option<usize>,
    /// Official subset (Speech Commands).
    pub subset: Option<Subset>,
}

/// The checked metadata of a dataset on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetIndex {
    /// Which layout (`"ESC-10"`, `"UrbanSound8K"`, `"Speech Commands"`).
    pub name: &'static str,
    /// The dataset root folder.
    pub root: PathBuf,
    /// Class names, indexed by label.
    pub class_names: Vec<String>,
    /// Every audio file, in metadata order (ESC-10, UrbanSound8K) or class then file-name
    /// order (Speech Commands).
    pub files: Vec<AudioFile>,
    /// Background-noise recordings (Speech Commands' `_background_noise_`), sorted.
    pub background_noise: Vec<PathBuf>,
}

impl DatasetIndex {
    /// Number of audio files.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether the index has no files (never true for an index a loader returned).
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Label of every file.
    pub fn labels(&self) -> Vec<usize> {
        self.files.iter().map(|f| f.label).collect()
    }

    /// Official fold of every file, if the layout defines folds.
    pub fn folds(&self) -> Option<Vec<usize>> {
        self.files.iter().map(|f| f.fold).collect()
    }

    /// Indices of the files in `subset` (Speech Commands; empty for fold-based layouts).
    pub fn subset_indices(&self, subset: Subset) -> Vec<usize> {
        (0..self.len())
            .filter(|&i| self.files[i].subset == Some(subset))
            .collect()
    }

    /// The official cross-validation rounds: one per fold, in fold order.
    ///
    /// # Errors
    /// A layout without folds (Speech Commands uses [`subset_indices`](Self::subset_indices)),
    /// or fewer than two folds present.
    pub fn cross_validation(&self) -> Result<Vec<FoldSplit>> {
        let folds = self.folds().ok_or_else(|| {
            Error::invalid(
                "dataset",
                self.name,
                "has no folds; use its validation/testing lists (subset_indices)",
            )
        })?;
        fold_splits(&folds)
    }

    /// Decodes every file into clips following `spec`.
    ///
    /// # Errors
    /// As [`DatasetIndex::load_indices`].
    pub fn load(&self, spec: &ClipSpec) -> Result<AudioDataset> {
        let all: Vec<usize> = (0..self.len()).collect();
        self.load_indices(&all, spec)
    }

    /// Decodes the files at `indices` (in that order, in parallel) into clips: mono mixdown,
    /// resampling to `spec.sample_rate`, crop/pad to `spec.clip_samples`.
    ///
    /// # Errors
    /// An index out of range, an invalid `spec`, or the first unreadable, corrupt or
    /// non-finite WAV file (named in the error).
    pub fn load_indices(&self, indices: &[usize], spec: &ClipSpec) -> Result<AudioDataset> {
        use rayon::prelude::*;
        spec.check()?;
        if let Some(&bad) = indices.iter().find(|&&i| i >= self.len()) {
            return Err(Error::invalid(
                "indices",
                bad,
                format!("out of range for {} files", self.len()),
            ));
        }
        let rows: Vec<Array1<f32>> = indices
            .par_iter()
            .map(|&i| load_clip(&self.files[i].path, spec))
            .collect::<Result<_>>()?;
        let mut clips = Array2::zeros((indices.len(), spec.clip_samples));
        for (mut row, clip) in clips.outer_iter_mut().zip(rows) {
            row.assign(&clip);
        }
        let files: Vec<&AudioFile> = indices.iter().map(|&i| &self.files[i]).collect();
        Ok(AudioDataset {
            clips,
            labels: files.iter().map(|f| f.label).collect(),
            class_names: self.class_names.clone(),
            sample_rate: spec.sample_rate,
            ids: files.iter().map(|f| f.id.clone()).collect(),
            folds: files.iter().map(|f| f.fold).collect(),
        })
    }

    /// Every background-noise recording, mono, resampled to `sample_rate`, full length.
    ///
    /// # Errors
    /// A zero rate or an unreadable file.
    pub fn load_background_noise(&self, sample_rate: u32) -> Result<Vec<Array1<f32>>> {
        self.background_noise
            .iter()
            .map(|path| {
                let audio = read_wav_mono(path)?;
                resample(audio.samples.view(), audio.sample_rate, sample_rate)
            })
            .collect()
    }
}

/// Sorted `.wav` files (case-insensitive extension) directly inside `dir`.
fn wav_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        let is_wav = path
            .extension()
            .is_some_and(|ext| ext.eq_ignore_ascii_case("wav"));
        if is_wav && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn require_audio_folder(dir: &Path, what: &str) -> Result<()> {
    if !dir.is_dir() {
        return Err(Error::EmptyFolder {
            path: dir.to_path_buf(),
            reason: format!("the folder does not exist; expected {what}"),
        });
    }
    let has_entries = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .next()
        .is_some();
    if !has_entries {
        return Err(Error::EmptyFolder {
            path: dir.to_path_buf(),
            reason: format!("expected {what}"),
        });
    }
    Ok(())
}

fn relative_id(root: &Path, path: &Path) -> String {
    let relative = path.strip_prefix(root).unwrap_or(path);
    relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// Checks that a metadata file name is one plain file name, so that `dir.join(name)` stays
/// inside `dir`: no `..`, no root or drive prefix, no path separator (`/` or `\\`), not empty.
fn plain_file_name<'a>(table: &Table, line: usize, name: &'a str) -> Result<&'a str> {
    let mut components = Path::new(name).components();
    let plain = matches!(
        (components.next(), components.next()),
        (Some(std::path::Component::Normal(_)), None)
    ) && !name.contains(['/', '\\', ':', '\0']);
    if plain {
        Ok(name)
    } else {
        Err(table.error(
            line,
            format!("file name `{name}` is not a plain file name inside the dataset root"),
        ))
    }
}

fn check_exists(path: PathBuf, listed_in: &Path) -> Result<PathBuf> {
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::MissingAudio {
            path,
            listed_in: listed_in.to_path_buf(),
        })
    }
}

/// Field `column` of a metadata row as a fold number, which must lie in `1..=folds`.
fn fold_of(
    table: &Table,
    line: usize,
    fields: &[String],
    column: usize,
    folds: i64,
) -> Result<usize> {
    let fold = table.integer(line, fields, column)?;
    if !(1..=folds).contains(&fold) {
        return Err(table.error(line, format!("fold {fold} is outside 1..={folds}")));
    }
    Ok(fold as usize)
}

/// A file of a fold-split dataset (ESC-10, UrbanSound8K).
fn folded_file(root: &Path, path: PathBuf, label: usize, fold: usize) -> AudioFile {
    AudioFile {
        id: relative_id(root, &path),
        path,
        label,
        fold: Some(fold),
        subset: None,
    }
}

/// The index of a fold-split dataset read from `table`; no rows is an error saying `empty`.
fn folded_index(
    name: &'static str,
    root: &Path,
    class_names: Vec<String>,
    files: Vec<AudioFile>,
    table: &Table,
    empty: &str,
) -> Result<DatasetIndex> {
    if files.is_empty() {
        return Err(table.error(0, empty));
    }
    Ok(DatasetIndex {
        name,
        root: root.to_path_buf(),
        class_names,
        files,
        background_noise: Vec::new(),
    })
}

/// Indexes ESC-10 inside an ESC-50 tree: `meta/esc50.csv` (columns `filename`, `fold`,
/// `target`, `category`, `esc10`), audio in `audio/`. Keeps the rows with `esc10` true;
/// labels follow [`ESC10_CLASSES`]; folds 1..=5.
///
/// # Errors
/// [`Error::MissingMetadata`] without `meta/esc50.csv`, [`Error::EmptyFolder`] for a missing
/// or empty `audio/`, [`Error::MalformedMetadata`] for a missing column, a bad fold or
/// boolean, or no ESC-10 rows, [`Error::UnknownLabel`] for a category that is not one of
/// ESC-10's or disagrees with its `target`, [`Error::MissingAudio`] for a listed file that
/// does not exist.
pub fn esc10(root: impl AsRef<Path>) -> Result<DatasetIndex> {
    let root = root.as_ref();
    let table = Table::read(
        &root.join("meta").join("esc50.csv"),
        "ESC-50 layout: meta/esc50.csv with columns filename,fold,target,category,esc10",
    )?;
    let audio_dir = root.join("audio");
    require_audio_folder(&audio_dir, "the ESC-50 .wav files")?;
    let (c_file, c_fold, c_target, c_category, c_esc10) = (
        table.column("filename")?,
        table.column("fold")?,
        table.column("target")?,
        table.column("category")?,
        table.column("esc10")?,
    );
    let mut files = Vec::new();
    for (line, fields) in &table.rows {
        let is_esc10 = match fields[c_esc10].to_ascii_lowercase().as_str() {
            "true" | "1" => true,
            "false" | "0" => false,
            other => {
                return Err(table.error(
                    *line,
                    format!("column `esc10` = `{other}` is not a boolean"),
                ))
            }
        };
        if !is_esc10 {
            continue;
        }
        let category = &fields[c_category];
        let target = table.integer(*line, fields, c_target)?;
        let label = ESC10_CLASSES
            .iter()
            .position(|(name, _)| name == category)
            .ok_or_else(|| Error::UnknownLabel {
                label: category.clone(),
                source_file: table.path.clone(),
                reason: format!(
                    "line {line}: not an ESC-10 category (known: {:?})",
                    ESC10_CLASSES.map(|(name, _)| name)
                ),
            })?;
        if ESC10_CLASSES[label].1 as i64 != target {
            return Err(Error::UnknownLabel {
                label: format!("{category} (target {target})"),
                source_file: table.path.clone(),
                reason: format!(
                    "line {line}: ESC-50 gives `{category}` the target {}",
                    ESC10_CLASSES[label].1
                ),
            });
        }
        let fold = fold_of(&table, *line, fields, c_fold, 5)?;
        let file = plain_file_name(&table, *line, &fields[c_file])?;
        let path = check_exists(audio_dir.join(file), &table.path)?;
        files.push(folded_file(root, path, label, fold));
    }
    folded_index(
        "ESC-10",
        root,
        ESC10_CLASSES.iter().map(|(n, _)| n.to_string()).collect(),
        files,
        &table,
        "no rows with esc10 = True",
    )
}

/// Indexes UrbanSound8K: `metadata/UrbanSound8K.csv` (columns `slice_file_name`, `fold`,
/// `classID`, `class`; the others are ignored), audio in `audio/fold<k>/`. Labels are the
/// `classID`s ([`URBANSOUND8K_CLASSES`]); folds 1..=10.
///
/// # Errors
/// As [`esc10`], with `classID`/`class` pairs checked against [`URBANSOUND8K_CLASSES`].
pub fn urbansound8k(root: impl AsRef<Path>) -> Result<DatasetIndex> {
    let root = root.as_ref();
    let table = Table::read(
        &root.join("metadata").join("UrbanSound8K.csv"),
        "UrbanSound8K layout: metadata/UrbanSound8K.csv with columns \
         slice_file_name,fsID,start,end,salience,fold,classID,class",
    )?;
    let audio_dir = root.join("audio");
    require_audio_folder(&audio_dir, "the folders fold1 … fold10")?;
    let (c_file, c_fold, c_class_id, c_class) = (
        table.column("slice_file_name")?,
        table.column("fold")?,
        table.column("classID")?,
        table.column("class")?,
    );
    let mut files = Vec::new();
    for (line, fields) in &table.rows {
        let class_id = table.integer(*line, fields, c_class_id)?;
        let name = &fields[c_class];
        let known = usize::try_from(class_id)
            .ok()
            .and_then(|id| URBANSOUND8K_CLASSES.get(id).map(|n| (id, n)));
        let label = match known {
            Some((id, expected)) if expected == name => id,
            _ => {
                return Err(Error::UnknownLabel {
                    label: format!("{name} (classID {class_id})"),
                    source_file: table.path.clone(),
                    reason: format!(
                        "line {line}: UrbanSound8K classes by classID are {URBANSOUND8K_CLASSES:?}"
                    ),
                })
            }
        };
        let fold = fold_of(&table, *line, fields, c_fold, 10)?;
        let file = plain_file_name(&table, *line, &fields[c_file])?;
        let path = check_exists(
            audio_dir.join(format!("fold{fold}")).join(file),
            &table.path,
        )?;
        files.push(folded_file(root, path, label, fold));
    }
    folded_index(
        "UrbanSound8K",
        root,
        URBANSOUND8K_CLASSES.iter().map(|n| n.to_string()).collect(),
        files,
        &table,
        "no data rows",
    )
}

/// Which Speech Commands classes to index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpeechCommandsOptions {
    /// The class folders to use, in label order; `None` takes every class folder (sorted by
    /// name; folders starting with `_` or `.` are not classes).
    pub classes: Option<Vec<String>>,
}

fn read_list(root: &Path, name: &str) -> Result<(PathBuf, Vec<(usize, String)>)> {
    let path = root.join(name);
    if !path.is_file() {
        return Err(Error::MissingMetadata {
            path,
            hint: format!("Speech Commands layout: {name} with one `class/file.wav` per line"),
        });
    }
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let entries = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim().replace('\\', "/")))
        .filter(|(_, l)| !l.is_empty())
        .collect();
    Ok((path, entries))
}

/// Indexes Speech Commands: one folder per class of `.wav` files, `validation_list.txt` and
/// `testing_list.txt` (relative paths `class/file.wav`; every other file is training data),
/// and the optional `_background_noise_` folder.
///
/// # Errors
/// [`Error::MissingMetadata`] without a list file, [`Error::EmptyFolder`] for a root without
/// class folders or a class folder without `.wav` files, [`Error::UnknownLabel`] for a list
/// entry or requested class that is not a class folder, [`Error::MissingAudio`] for a listed
/// file that does not exist, [`Error::MalformedMetadata`] for a file listed in both lists or
/// a malformed entry.
pub fn speech_commands(
    root: impl AsRef<Path>,
    options: &SpeechCommandsOptions,
) -> Result<DatasetIndex> {
    let root = root.as_ref();
    if !root.is_dir() {
        return Err(Error::EmptyFolder {
            path: root.to_path_buf(),
            reason: "the dataset root does not exist".into(),
        });
    }
    let (validation_path, validation) = read_list(root, "validation_list.txt")?;
    let (testing_path, testing) = read_list(root, "testing_list.txt")?;

    let mut class_folders = Vec::new();
    for entry in std::fs::read_dir(root).map_err(|e| Error::io(root, e))? {
        let path = entry.map_err(|e| Error::io(root, e))?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if path.is_dir() && !name.starts_with('_') && !name.starts_with('.') {
            class_folders.push(name);
        }
    }
    class_folders.sort();
    if class_folders.is_empty() {
        return Err(Error::EmptyFolder {
            path: root.to_path_buf(),
            reason: "no class folders (one folder of .wav files per word)".into(),
        });
    }
    let class_names = match &options.classes {
        None => class_folders.clone(),
        Some(wanted) => {
            if wanted.is_empty() {
                return Err(Error::invalid("classes", "[]", "name at least one class"));
            }
            for (i, class) in wanted.iter().enumerate() {
                if wanted[..i].contains(class) {
                    return Err(Error::invalid(
                        "classes",
                        format!("{class:?} (given twice)"),
                        "class names must be unique",
                    ));
                }
                if !class_folders.contains(class) {
                    return Err(Error::UnknownLabel {
                        label: class.clone(),
                        source_file: root.to_path_buf(),
                        reason: format!("requested class has no folder; found {class_folders:?}"),
                    });
                }
            }
            wanted.clone()
        }
    };

    let mut subsets: HashMap<String, Subset> = HashMap::new();
    for (subset, list_path, entries) in [
        (Subset::Validation, &validation_path, &validation),
        (Subset::Test, &testing_path, &testing),
    ] {
        for (line, entry) in entries {
            let malformed = |reason: String| Error::MalformedMetadata {
                path: list_path.clone(),
                line: *line,
                reason,
            };
            let (class, file) = entry
                .split_once('/')
                .filter(|(c, f)| !c.is_empty() && !f.is_empty() && !f.contains('/'))
                .ok_or_else(|| malformed(format!("`{entry}` is not `class/file.wav`")))?;
            if !class_folders.iter().any(|c| c == class) {
                return Err(Error::UnknownLabel {
                    label: class.to_string(),
                    source_file: list_path.clone(),
                    reason: format!("line {line}: no such class folder; found {class_folders:?}"),
                });
            }
            check_exists(root.join(class).join(file), list_path)?;
            if let Some(previous) = subsets.insert(entry.clone(), subset) {
                if previous != subset {
                    return Err(malformed(format!(
                        "`{entry}` is in both validation_list.txt and testing_list.txt"
                    )));
                }
            }
        }
    }

    let mut files = Vec::new();
    for (label, class) in class_names.iter().enumerate() {
        let dir = root.join(class);
        let wavs = wav_files(&dir)?;
        if wavs.is_empty() {
            return Err(Error::EmptyFolder {
                path: dir,
                reason: format!("class `{class}` has no .wav files"),
            });
        }
        for path in wavs {
            let id = relative_id(root, &path);
            let subset = subsets.get(&id).copied().unwrap_or(Subset::Train);
            files.push(AudioFile {
                path,
                id,
                label,
                fold: None,
                subset: Some(subset),
            });
        }
    }

    let noise_dir = root.join("_background_noise_");
    let background_noise = if noise_dir.is_dir() {
        wav_files(&noise_dir)?
    } else {
        Vec::new()
    };
    Ok(DatasetIndex {
        name: "Speech Commands",
        root: root.to_path_buf(),
        class_names,
        files,
        background_noise,
    })
}
