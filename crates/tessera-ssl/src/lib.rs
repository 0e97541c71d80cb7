#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod alignment;
mod check;
pub mod cotraining;
pub mod error;
pub mod fixmatch;
pub mod losses;
pub mod mean_teacher;
pub mod mixmatch;
pub mod ramp;
pub mod remixmatch;
pub mod sharpen;
pub mod softmax;

pub use alignment::{DistributionAlignment, MAX_ALIGNMENT_HISTORY};
pub use cotraining::{view_difference, DeepCoTraining, DeepCoTrainingConfig, ViewDifferenceLoss};
pub use error::{Error, InputError, Result};
pub use fixmatch::{
    masked_cross_entropy, pseudo_labels, FixMatch, FixMatchConfig, FixMatchLoss, PseudoLabels,
};
pub use losses::{
    jensen_shannon, mse_probabilities, soft_cross_entropy, LossAndGradient, PairLoss,
};
pub use mean_teacher::{
    ema_alpha, ema_update, EmaTeacher, MeanTeacher, MeanTeacherConfig, MeanTeacherLoss,
};
pub use mixmatch::{MixMatch, MixMatchBatch, MixMatchConfig, MixMatchLoss, SoftTargetLoss};
pub use ramp::{RampKind, RampUp};
pub use remixmatch::{ReMixMatch, ReMixMatchBatch, ReMixMatchConfig, ReMixMatchLoss};
pub use sharpen::{average_softmax, guess_labels, one_hot, sharpen, MAX_ONE_HOT_ENTRIES};
pub use softmax::{log_softmax, softmax, softmax_backward};
/// Re-exported from `tessera-augment`: per-item or per-batch mixup $\lambda$.
pub use tessera_augment::LambdaScope;
pub use tessera_core::Float;
