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
//!
//! # Command line
//! `tessera-repro [--out DIR] [--only NAME]... [--quick] [--seed N] [--list] [--check]
//! [--data DIR --dataset esc10|urbansound8k|speechcommands]` (a real dataset for the experiments
//! that support one, `ssl-audio`; see [`harness::DataSource`])
//! (`cargo xtask repro ARGS` passes `ARGS` through unchanged). Exit codes: 0 success; 1 an
//! experiment failed (its section says so and the run went on) or, with `--check`, a claim
//! expected to hold in this mode ([`harness::Expectation`]) was not reproduced; 2 a usage or
//! I/O error.
//!
//! # Files
//! - `<out>/REPORT.md`: each experiment's section sits between `<!-- begin NAME -->` and
//!   `<!-- end NAME -->`; `--only NAME` replaces just those sections and keeps the others.
//! - `<out>/<name>/claims.csv`: the claims of the last run of that experiment (columns
//!   [`harness::report::CLAIMS_HEADER`]; a failed experiment has one row with verdict
//!   `error`). The summary table is rebuilt from these files on every run.
//! - `<out>/<name>/results.csv` and `*.svg`: written by the experiment.
//! - `<out>/.cache/<name>/`: trained baselines ([`harness::BaselineCache`]), reused only by
//!   the same binary.
//!
//! # Writing an experiment
//! Add `src/experiments/<name>.rs` with `pub struct Params` (`quick()`, `full()`), a unit
//! struct implementing [`harness::Experiment`] whose `run` picks the params from `ctx.mode`,
//! then a `pub mod` line and a `Box::new(..)` line in [`experiments::all`]. Use
//! `ctx.seed_for(&(..))` for every random stream, `ctx.progress(len, label)` around training
//! loops, [`harness::ResultsCsv`] for `ctx.path("results.csv")`, [`harness::plot`] for
//! figures (linked from the section as `![..](<name>/<file>.svg)`), and
//! [`harness::train`] for mini-batch training with divergence detection and chunked
//! evaluation.
#![warn(missing_docs)]

pub mod experiments;
pub mod harness;
