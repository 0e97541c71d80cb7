//! The registry of experiments, one per paper (plus the log-mel parity check). To add one:
//! a `pub mod` line and one line in [`all`].

use crate::harness::Experiment;

pub mod batch_hessian;
pub mod ecotta;
pub mod efficienttrain;
pub mod gmm_attention;
pub mod grokking;
pub mod inception_scaling;
pub mod logmel_parity;
pub mod lr_transfer;
pub mod oracle_pruning;
pub mod random_pruning;
pub mod rift;
pub mod ssl_audio;
pub mod unlearnable;

/// Every experiment, in report order (the order of the table in docs/REPRODUCTIONS.md).
pub fn all() -> Vec<Box<dyn Experiment>> {
    vec![
        Box::new(ssl_audio::SslAudio),
        Box::new(logmel_parity::LogmelParity),
        Box::new(random_pruning::RandomPruning),
        Box::new(unlearnable::Unlearnable),
        Box::new(inception_scaling::InceptionScaling),
        Box::new(oracle_pruning::OraclePruning),
        Box::new(grokking::Grokking),
        Box::new(efficienttrain::EfficientTrain),
        Box::new(lr_transfer::LrTransfer),
        Box::new(gmm_attention::GmmAttention),
        Box::new(batch_hessian::BatchHessian),
        Box::new(ecotta::Ecotta),
        Box::new(rift::Rift),
    ]
}
