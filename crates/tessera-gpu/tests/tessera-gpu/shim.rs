//! Builds a kernel source as C++ with the host shim (kernels/shim/) and loads it, so that the
//! kernels' index arithmetic runs on the CPU against the CPU crates. Buffers handed to a shim
//! kernel are guarded: NaN canaries on both sides catch writes out of bounds (the canary
//! changes) and most reads out of bounds (the NaN reaches an output), and outputs are poisoned
//! with NaN before the launch so that an element no thread writes is caught too.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Canary values on each side of a guarded buffer.
pub const GUARD: usize = 64;

/// A loaded shim library, or the reason there is none (no C++ compiler).
pub struct Shim {
    pub library: libloading::Library,
}

fn compiler() -> String {
    std::env::var("CXX").unwrap_or_else(|_| "c++".into())
}

/// Compiles `kernels/shim/<name>_shim.cpp` into a shared library (once per test process and
/// name) and loads it. `None` (after printing why) when no C++ compiler runs, unless
/// `TESSERA_REQUIRE_SHIM` is set, as in CI, which makes that a failure.
pub fn load(name: &str) -> Option<Shim> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let source = root.join("kernels/shim").join(format!("{name}_shim.cpp"));
    let out_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let library_path = out_dir.join(format!(
        "lib{name}_shim_{}_{:?}.so",
        std::process::id(),
        std::thread::current().id()
    ));
    let output = Command::new(compiler())
        .args(["-std=c++17", "-O1", "-ffp-contract=off", "-fno-fast-math", "-shared", "-fPIC"])
        .arg("-Wall")
        .arg("-Werror")
        .arg("-Wno-unused-function")
        .arg("-o")
        .arg(&library_path)
        .arg(&source)
        .output();
    let output = match output {
        Ok(output) => output,
        Err(e) => {
            assert!(
                std::env::var_os("TESSERA_REQUIRE_SHIM").is_none(),
                "TESSERA_REQUIRE_SHIM is set but `{}` did not run: {e}",
                compiler()
            );
            println!("skipped: no C++ compiler ({e})");
            return None;
        }
    };
    assert!(
        output.status.success(),
        "compiling {} failed:\n{}",
        source.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    // SAFETY: (test) the library was just built from our own shim source; loading it runs no
    // initialisers beyond the C++ runtime's.
    let library = unsafe { libloading::Library::new(&library_path) }.expect("load the shim");
    let _ = std::fs::remove_file(&library_path);
    Some(Shim { library })
}

impl Shim {
    /// The launcher `shim_<kernel>` with the given C signature.
    pub fn launcher<T>(&self, kernel: &str) -> libloading::Symbol<'_, T> {
        let name = format!("shim_{kernel}\0");
        // SAFETY: (test) the caller states the launcher's exact C signature as `T`.
        unsafe { self.library.get(name.as_bytes()) }.expect("launcher symbol")
    }
}

/// `values` between two runs of [`GUARD`] NaN canaries.
pub fn guarded(values: &[f32]) -> Vec<f32> {
    let mut buffer = vec![f32::NAN; values.len() + 2 * GUARD];
    buffer[GUARD..GUARD + values.len()].copy_from_slice(values);
    buffer
}

/// A guarded output of `len` values, poisoned with NaN.
pub fn poisoned(len: usize) -> Vec<f32> {
    vec![f32::NAN; len + 2 * GUARD]
}

/// The payload of a guarded buffer after checking that its canaries are intact.
pub fn payload<'a>(buffer: &'a [f32], name: &str) -> &'a [f32] {
    let len = buffer.len() - 2 * GUARD;
    let canaries_intact = buffer[..GUARD]
        .iter()
        .chain(&buffer[GUARD + len..])
        .all(|v| v.is_nan());
    assert!(canaries_intact, "a kernel wrote outside `{name}`");
    &buffer[GUARD..GUARD + len]
}

/// Pointer to the payload of a guarded buffer.
pub fn ptr(buffer: &[f32]) -> *const f32 {
    buffer[GUARD..].as_ptr()
}

/// Mutable pointer to the payload of a guarded buffer.
pub fn ptr_mut(buffer: &mut [f32]) -> *mut f32 {
    buffer[GUARD..].as_mut_ptr()
}
