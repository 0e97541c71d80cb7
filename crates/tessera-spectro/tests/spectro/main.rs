//! The integration tests of tessera-spectro, as one test binary (one link of the
//! dependencies instead of one per file).

mod determinism;
mod golden;
mod properties;
mod reference;
mod robustness;
mod wav;
