//! The integration tests of tessera-augment, as one test binary (one link of the
//! dependencies instead of one per file).

mod errors;
mod golden;
mod properties;
mod reference;
mod robustness;
