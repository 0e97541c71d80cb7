//! The integration tests of tessera-data, as one test binary (one link of the
//! dependencies instead of one per file).

mod cache;
mod common;
mod fuzz;
mod generators;
mod golden;
mod label_gap;
mod loaders;
mod mnist1d;
mod properties;
mod reference;
mod robustness;
