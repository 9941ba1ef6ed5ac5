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

/// Builds the C libraries as bindings/install.sh does (`cargo rustc --lib
/// --features capi --crate-type staticlib,cdylib`, in this test's profile) so
/// that `libnnkern.a` and `libnnkern.so` are current, and returns the
/// directory that holds them.
///
/// The build uses its own target directory (`target/ffi-lib`): `cargo test`
/// unifies the features of dependencies shared with dev-dependencies (rayon's
/// `either`, pulp's `bytemuck`, ...) while `cargo build` does not, so in the
/// test's own target directory each would recompile nnkern for the other.
pub fn build_lib() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let profile = profile_dir();
        let release = profile.file_name().unwrap() == "release";
        let target = profile.parent().unwrap().join("ffi-lib");
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["rustc", "--lib", "--quiet", "--features", "capi", "--crate-type", "staticlib,cdylib"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("CARGO_TARGET_DIR", &target);
        if release {
            cmd.arg("--release");
        }
        let st = cmd.status().expect("cargo build");
        assert!(st.success(), "cargo rustc --lib --features capi --crate-type staticlib,cdylib failed");
        target.join(if release { "release" } else { "debug" })
    })
    .clone()
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

/// Installs the library built by [`build_lib`] with the documented install
/// command (`bindings/install.sh --no-build`) under a prefix in this test
/// binary's scratch directory, once per test binary, and returns the prefix.
/// C and C++ test programs compile against `PREFIX/include` and link
/// `PREFIX/lib/libnnkern.a`, as users of an installed nnkern do.
pub fn installed_prefix() -> PathBuf {
    static PREFIX: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PREFIX
        .get_or_init(|| {
            let dir = build_lib();
            let exe = std::env::current_exe().unwrap();
            let stem = exe.file_stem().unwrap().to_string_lossy().into_owned();
            let prefix = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("prefix-{stem}"));
            let _ = std::fs::remove_dir_all(&prefix);
            let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
            let o = Command::new("sh")
                .arg(root.join("bindings/install.sh"))
                .arg("--no-build")
                .arg("--build-dir")
                .arg(&dir)
                .arg("--prefix")
                .arg(&prefix)
                .output()
                .expect("run bindings/install.sh");
            assert!(
                o.status.success(),
                "install.sh failed:\n{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            prefix
        })
        .clone()
}
