//! The integration tests of tessera-sparse, as one test binary (one link of the
//! dependencies instead of one per file).

mod fuzz;
mod golden;
mod kernels;
mod properties;
mod reference;
mod robustness;
