//! The integration tests of tessera-nn, as one test binary (one link of the
//! dependencies instead of one per file).

mod attack;
mod attention;
mod conv_golden;
mod entropy;
mod errors;
mod fuzz;
mod golden;
mod hvp_engine;
mod layers;
mod properties;
mod reference;
mod robustness;
mod sequential;
mod training;
