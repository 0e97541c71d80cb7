//! What an experiment returns, and the trait every experiment implements.

use super::claim::Claim;
use super::context::Context;

/// The result of one experiment.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Markdown body of the experiment's REPORT.md section (tables, figure links). Figures are
    /// linked relative to the report: `![...](<name>/<file>.svg)`.
    pub section: String,
    /// The claims tested, with computed verdicts.
    pub claims: Vec<Claim>,
}

/// One reproduction, registered in [`crate::experiments::all`].
pub trait Experiment: Send + Sync {
    /// Short name used by `--only` and as the output folder, e.g. `"random-pruning"`.
    fn name(&self) -> &'static str;
    /// The paper, e.g. "Liu et al., The Unreasonable Effectiveness of Random Pruning, ICLR 2022".
    fn paper(&self) -> &'static str;
    /// One line for `--list`.
    fn about(&self) -> &'static str;
    /// Runs the experiment (picking `Params::quick()`/`full()` from `ctx.mode`).
    ///
    /// # Errors
    /// Any failure; the harness records it in the report and goes on with the next experiment.
    fn run(&self, ctx: &Context) -> anyhow::Result<Outcome>;
}
