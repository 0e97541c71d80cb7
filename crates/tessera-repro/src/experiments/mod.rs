//! The registry of experiments, one per paper (plus the log-mel parity check).

use anyhow::Result;

use crate::report::Context;

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
    vec![]
}
