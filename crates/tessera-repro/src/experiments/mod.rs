//! The registry of experiments, one per paper (plus the log-mel parity check).

use anyhow::Result;

use crate::report::Context;

pub mod logmel_parity;

/// One reproduction.
#[derive(Debug)]
pub struct Experiment {
    /// Short name used by `--only`.
    pub name: &'static str,
    /// The paper it reproduces.
    pub paper: &'static str,
    /// One line on what it shows.
    pub about: &'static str,
    /// Runs it and returns its markdown section of the report.
    pub run: fn(&Context) -> Result<String>,
}

/// Every experiment, in report order.
pub fn all() -> Vec<Experiment> {
    vec![Experiment {
        name: "logmel-parity",
        paper: "librosa (McFee et al., SciPy 2015) as the reference for tessera-spectro",
        about: "log-mel of generated signals with every preset: shapes, dB ranges, f32/f64",
        run: logmel_parity::run,
    }]
}
