//! The registry of experiments, one per paper (plus the log-mel parity check). To add one:
//! a `pub mod` line and one line in [`all`].

use crate::harness::Experiment;

pub mod logmel_parity;

/// Every experiment, in report order.
pub fn all() -> Vec<Box<dyn Experiment>> {
    vec![
        Box::new(logmel_parity::LogmelParity),
    ]
}
