//! Every kernel source compiles with NVRTC. CI installs the PyPI package `nvidia-cuda-nvrtc`
//! and puts its library on `LD_LIBRARY_PATH`, so this runs there without a GPU; set
//! `TESSERA_REQUIRE_NVRTC=1` (as CI does) to make a missing library a failure.

use tessera_gpu::kernels::{compile_to_ptx, nvrtc_available, ALL};

#[test]
fn every_kernel_source_compiles_with_nvrtc() {
    if !nvrtc_available() {
        assert!(
            std::env::var_os("TESSERA_REQUIRE_NVRTC").is_none(),
            "TESSERA_REQUIRE_NVRTC is set but libnvrtc was not found (LD_LIBRARY_PATH?)"
        );
        println!("skipped: no NVRTC library");
        return;
    }
    for kernel in ALL {
        let ptx = compile_to_ptx(kernel).unwrap_or_else(|e| panic!("{e}"));
        let text = ptx.to_src();
        for entry in kernel.entry_points {
            assert!(
                text.contains(&format!(".entry {entry}(")),
                "{}: PTX lacks entry {entry}",
                kernel.name
            );
        }
    }
}

#[test]
fn a_broken_source_is_a_compile_error_with_the_log() {
    if !nvrtc_available() {
        println!("skipped: no NVRTC library");
        return;
    }
    let broken = tessera_gpu::kernels::KernelSource {
        name: "broken",
        source: "extern \"C\" __global__ void broken(float* x) { x[0] = undefined_name; }",
        entry_points: &["broken"],
    };
    let err = compile_to_ptx(&broken).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("broken") && text.contains("undefined_name"),
        "{text}"
    );
}
