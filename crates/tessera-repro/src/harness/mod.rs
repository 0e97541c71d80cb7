//! The reproduction harness: claims and verdicts, the run context, the report writer, CSV and
//! SVG output, statistics and shared training helpers.

pub mod claim;
pub mod cli;
pub mod context;
pub mod csv;
pub mod outcome;
pub mod plot;
pub mod report;
pub mod sequential;
pub mod stats;
pub mod tasks;
pub mod train;

pub use claim::{Claim, Expectation, Verdict};
pub use context::{Context, DataSource, Mode};
pub use csv::ResultsCsv;
pub use outcome::{Experiment, Outcome};
pub use plot::Series;
pub use report::markdown_table;
pub use sequential::{evaluate_sequential, predicted_classes, train_sequential, Examples};
pub use stats::{fmt_mean_std, linear_fit, mean_std};
pub use tasks::ShapesTask;
pub use train::{evaluate_chunked, log_spaced_steps, BaselineCache, RunStatus};
