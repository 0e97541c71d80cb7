//! The integration tests of tessera-nn, as one test binary (one link of the
//! dependencies instead of one per file).

mod errors;
mod fuzz;
mod golden;
mod properties;
mod reference;
mod robustness;
mod training;
