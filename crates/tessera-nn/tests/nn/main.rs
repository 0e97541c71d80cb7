//! The integration tests of tessera-nn, as one test binary (one link of the
//! dependencies instead of one per file).

mod attack;
mod entropy;
mod errors;
mod golden;
mod properties;
mod reference;
mod training;
