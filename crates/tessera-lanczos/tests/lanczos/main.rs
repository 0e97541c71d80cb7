//! The integration tests of tessera-lanczos, as one test binary (one link of the
//! dependencies instead of one per file).

mod common;
mod golden;
mod properties;
mod reference;
mod robustness;
