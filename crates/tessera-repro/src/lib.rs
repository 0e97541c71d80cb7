//! The tessera reproduction harness and its experiments (`cargo xtask repro`).
//!
//! Each experiment reproduces one paper's headline effect in miniature: it is deterministic
//! from `--seed`, has `Params::quick()` / `Params::full()`, writes every number to
//! `<out>/<name>/results.csv`, draws at least one SVG plot, and returns an
//! [`harness::Outcome`]: its section of `REPORT.md` and a list of [`harness::Claim`]s whose
//! verdicts are computed from the measured numbers with a test stated up front.
//!
//! The binary `tessera-repro` (see [`harness::cli`]) runs them and writes `<out>/REPORT.md`:
//! run metadata, a summary table of every claim, then one section per experiment.
#![warn(missing_docs)]

pub mod experiments;
pub mod harness;
