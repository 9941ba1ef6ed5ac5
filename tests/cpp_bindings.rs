//! Builds `bindings/cpp/test_nnkern.cpp` (the header-only C++ wrappers in
//! `bindings/cpp/nnkern.hpp`) as C++17 with `-Wall -Wextra -Werror` against the
//! static library, with the link line of `tests/c_api.rs`, and runs it on the
//! bundled digits.

mod common;

use common::{NATIVE_LIBS, static_lib};
use std::path::Path;
use std::process::Command;

#[test]
fn cpp17_wrappers_train_errors_save_load() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let scratch = tmp.join("cpp_bindings");
    std::fs::create_dir_all(&scratch).unwrap();
    let lib = static_lib();
    let exe = tmp.join("test_nnkern_cpp");
    let o = Command::new("c++")
        .args(["-std=c++17", "-Wall", "-Wextra", "-Werror", "-O1", "-I"])
        .arg(root.join("include"))
        .arg("-I")
        .arg(root.join("bindings/cpp"))
        .arg(root.join("bindings/cpp/test_nnkern.cpp"))
        .arg(&lib)
        .args(NATIVE_LIBS)
        .arg("-o")
        .arg(&exe)
        .output()
        .unwrap_or_else(|e| panic!("cannot run c++: {e}"));
    assert!(o.status.success(), "c++ failed:\n{}", String::from_utf8_lossy(&o.stderr));
    let r = Command::new(&exe).arg(root.join("data/digits.csv")).arg(&scratch).output().unwrap();
    print!("{}", String::from_utf8_lossy(&r.stdout));
    assert!(
        r.status.success(),
        "test_nnkern failed:\n{}{}",
        String::from_utf8_lossy(&r.stdout),
        String::from_utf8_lossy(&r.stderr)
    );
}
