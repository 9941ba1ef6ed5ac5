//! Builds `bindings/cpp/test_nnkern.cpp` (the header-only C++ wrappers in
//! `bindings/cpp/nnkern.hpp`) as C++17 with `-Wall -Wextra -Werror` against the
//! installed static library (see `tests/common`), with the link line of `tests/c_api.rs`, and runs it on the
//! bundled digits.

mod common;

use common::{NATIVE_LIBS, installed_prefix};
use std::path::Path;
use std::process::Command;

#[test]
fn cpp17_wrappers_train_errors_save_load() {
    if !common::have("c++", "g++", "cpp_bindings::cpp17_wrappers_train_errors_save_load") {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let scratch = tmp.join("cpp_bindings");
    std::fs::create_dir_all(&scratch).unwrap();
    let prefix = installed_prefix();
    let lib = prefix.join("lib/libnnkern.a");
    let exe = tmp.join("test_nnkern_cpp");
    let o = Command::new("c++")
        .args(["-std=c++17", "-Wall", "-Wextra", "-Werror", "-O1", "-I"])
        .arg(prefix.join("include"))
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

/// The C++ example in the README compiles with -Wall -Wextra -Werror and prints
/// what its comments say.
#[test]
fn readme_cpp_example() {
    if !common::have("c++", "g++", "cpp_bindings::readme_cpp_example") {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let start = readme.find("```cpp\n").expect("README has a C++ example") + 7;
    let end = start + readme[start..].find("```").unwrap();
    let dir = tmp.join("readme_cpp");
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("example.cpp");
    std::fs::write(&src, &readme[start..end]).unwrap();
    let exe = dir.join("example");
    let o = Command::new("c++")
        .args(["-std=c++17", "-Wall", "-Wextra", "-Werror", "-I"])
        .arg(installed_prefix().join("include"))
        .arg("-I")
        .arg(root.join("bindings/cpp"))
        .arg(&src)
        .arg(installed_prefix().join("lib/libnnkern.a"))
        .args(NATIVE_LIBS)
        .arg("-o")
        .arg(&exe)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r = Command::new(&exe).current_dir(&dir).output().unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let out = String::from_utf8_lossy(&r.stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines, ["0 1 1 0", "58 64 139 154", "3 shape mismatch: n_features = 3, the model takes 2"]);
}
