//! The run context every experiment receives.

use std::fmt::Debug;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::train::{fnv1a, BaselineCache};

/// Quick (CI smoke test) or full (the reported run).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// `--quick`: every experiment small enough that all of them run in about two minutes.
    Quick,
    /// The default: the sizes the report is written from.
    Full,
}

impl Mode {
    /// `"quick"` or `"full"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Quick => "quick",
            Mode::Full => "full",
        }
    }

    /// The experiment parameters of this mode: `quick()` or `full()`.
    pub fn pick<T>(self, quick: impl FnOnce() -> T, full: impl FnOnce() -> T) -> T {
        match self {
            Mode::Quick => quick(),
            Mode::Full => full(),
        }
    }
}

/// What an experiment receives: where to write, its seed, the mode, progress bars.
#[derive(Debug, Clone)]
pub struct Context {
    /// `<out>/<name>/`, created by the harness.
    pub dir: PathBuf,
    /// From `--seed` (default [`super::cli::DEFAULT_SEED`]).
    pub seed: u64,
    /// Quick or full.
    pub mode: Mode,
    /// The run's output root `<out>` (the report lives here; caches under `<out>/.cache`).
    pub out: PathBuf,
    /// Whether progress bars are drawn (stderr is a terminal).
    pub show_progress: bool,
    /// A real dataset to run on instead of generated data (`--data DIR --dataset NAME`);
    /// experiments that only use generated data ignore it.
    pub data: Option<DataSource>,
}

/// A real dataset on disk, from `--data DIR --dataset NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataSource {
    /// The dataset root folder.
    pub dir: PathBuf,
    /// Which layout: `esc10`, `urbansound8k` or `speechcommands`.
    pub dataset: String,
}

impl Context {
    /// Creates `<out>/<name>/` and a context for it; progress bars are shown when stderr is a
    /// terminal.
    ///
    /// # Errors
    /// The folder cannot be created.
    pub fn new(out: &Path, name: &str, seed: u64, mode: Mode) -> Result<Self> {
        let dir = out.join(name);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(Context {
            dir,
            seed,
            mode,
            out: out.to_path_buf(),
            show_progress: std::io::stderr().is_terminal(),
            data: None,
        })
    }

    /// The same context with a real dataset to run on.
    pub fn with_data(mut self, data: Option<DataSource>) -> Self {
        self.data = data;
        self
    }

    /// Whether this is a `--quick` run.
    pub fn quick(&self) -> bool {
        self.mode == Mode::Quick
    }

    /// An indicatif ProgressBar for `len` steps with `label`, hidden when stderr is not a
    /// terminal.
    pub fn progress(&self, len: u64, label: &str) -> ProgressBar {
        if !self.show_progress {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "   {prefix:<28} [{bar:30}] {pos}/{len} {elapsed_precise} (eta {eta}) {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(label.to_string());
        bar
    }

    /// Path of a file in the experiment's dir.
    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    /// A seed derived from the run seed and `parts` (e.g. `&("dense", width, repeat)`), stable
    /// across platforms: FNV-1a of the run seed and the `Debug` string of `parts`.
    pub fn seed_for(&self, parts: &impl Debug) -> u64 {
        fnv1a(format!("{}|{parts:?}", self.seed).as_bytes())
    }

    /// The cache of trained baselines under `<out>/.cache/<experiment>/`.
    pub fn baseline_cache(&self) -> BaselineCache {
        let name = self
            .dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        BaselineCache::new(self.out.join(".cache").join(name))
    }
}
