//! Helpers shared by the tests that build programs against the C library
//! (`tests/c_api.rs`, `tests/cpp_bindings.rs`, `tests/python_bindings.rs`).
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

/// `target/<profile>`: the test binary lives in `target/<profile>/deps`.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

/// Builds the library crate types (`cargo build --lib`, in this test's
/// profile) so that `libnnkern.a` and `libnnkern.so` in [`profile_dir`] are
/// current, and returns that directory.
pub fn build_lib() -> PathBuf {
    let dir = profile_dir();
    let release = dir.file_name().unwrap() == "release";
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(["build", "--lib", "--quiet"]).current_dir(env!("CARGO_MANIFEST_DIR"));
    if release {
        cmd.arg("--release");
    }
    let st = cmd.status().expect("cargo build");
    assert!(st.success(), "cargo build --lib failed");
    dir
}

/// The static library, (re)built with cargo if missing or older than the sources.
pub fn static_lib() -> PathBuf {
    let lib = build_lib().join("libnnkern.a");
    assert!(lib.exists(), "{} missing after build", lib.display());
    lib
}

/// The shared library (cdylib), (re)built like [`static_lib`].
pub fn shared_lib() -> PathBuf {
    let name = if cfg!(target_os = "macos") {
        "libnnkern.dylib"
    } else if cfg!(windows) {
        "nnkern.dll"
    } else {
        "libnnkern.so"
    };
    let lib = build_lib().join(name);
    assert!(lib.exists(), "{} missing after build", lib.display());
    lib
}

/// Native libraries the static library needs on Linux (from
/// `rustc --print native-static-libs`, see README).
pub const NATIVE_LIBS: &[&str] = &["-lgcc_s", "-lutil", "-lrt", "-lpthread", "-lm", "-ldl", "-lc"];
