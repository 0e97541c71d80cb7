//! The integration tests of tessera-spline, as one test binary.

mod common;
mod complexity;
mod partition;
mod properties;
mod robustness;
