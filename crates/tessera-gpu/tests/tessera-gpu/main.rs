//! Integration tests of tessera-gpu: NVRTC compilation of every kernel, the kernels' index
//! arithmetic on the CPU through the host shim, and GPU-vs-CPU parity when a device exists.

mod nvrtc;
mod shim;
