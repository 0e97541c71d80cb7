//! The registry of experiments, one per paper (plus the log-mel parity check). To add one:
//! a `pub mod` line and one line in [`all`].

use crate::harness::Experiment;

pub mod batch_hessian;
pub mod ecotta;
pub mod inception_scaling;
pub mod logmel_parity;
pub mod lr_transfer;
pub mod oracle_pruning;
pub mod random_pruning;

/// Every experiment, in report order.
pub fn all() -> Vec<Box<dyn Experiment>> {
    vec![
        Box::new(logmel_parity::LogmelParity),
        Box::new(random_pruning::RandomPruning),
        Box::new(oracle_pruning::OraclePruning),
        Box::new(inception_scaling::InceptionScaling),
        Box::new(lr_transfer::LrTransfer),
        Box::new(batch_hessian::BatchHessian),
        Box::new(ecotta::Ecotta),
    ]
}
