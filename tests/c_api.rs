//! Builds the C and C++ programs under `tests/c/` against `include/nnkern.h` and
//! the static library (`-Wall -Werror`, C99 and C++17) and runs them.
//!
//! The link line is the one `--print native-static-libs` reports for this target
//! and the README documents.

mod common;

use common::{NATIVE_LIBS, static_lib};
use std::path::Path;
use std::process::Command;

fn compile_and_run(compiler: &str, std: &str, src: &str, out_name: &str) {
    compile_and_run_args(compiler, std, src, out_name, &[]);
}

fn compile_and_run_args(compiler: &str, std: &str, src: &str, out_name: &str, args: &[&std::ffi::OsStr]) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lib = static_lib();
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(out_name);
    let mut cmd = Command::new(compiler);
    cmd.arg(format!("-std={std}"))
        .args(["-Wall", "-Wextra", "-Werror", "-O1", "-I"])
        .arg(root.join("include"))
        .arg(root.join(src))
        .arg(&lib)
        .args(NATIVE_LIBS)
        .arg("-o")
        .arg(&out);
    let o = cmd.output().unwrap_or_else(|e| panic!("cannot run {compiler}: {e}"));
    assert!(o.status.success(), "{compiler} failed:\n{}", String::from_utf8_lossy(&o.stderr));
    let r = Command::new(&out).args(args).output().unwrap();
    print!("{}", String::from_utf8_lossy(&r.stdout));
    assert!(
        r.status.success(),
        "{out_name} failed:\n{}{}",
        String::from_utf8_lossy(&r.stdout),
        String::from_utf8_lossy(&r.stderr)
    );
}

#[test]
fn c99_gemm_smoke() {
    compile_and_run("cc", "c99", "tests/c/gemm_smoke.c", "gemm_smoke_c");
}

#[test]
fn c99_kernel_entry_points() {
    compile_and_run("cc", "c99", "tests/c/ops_smoke.c", "ops_smoke_c");
}

#[test]
fn c99_trainer_and_bad_input_table() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let scratch = Path::new(env!("CARGO_TARGET_TMPDIR")).join("c_train");
    std::fs::create_dir_all(&scratch).unwrap();
    let csv = root.join("data/digits.csv");
    compile_and_run_args(
        "cc",
        "c99",
        "tests/c/train_smoke.c",
        "train_smoke_c",
        &[csv.as_os_str(), scratch.as_os_str()],
    );
}

#[test]
fn cpp17_header_and_link() {
    compile_and_run("c++", "c++17", "tests/c/header_cpp.cpp", "header_cpp");
}

/// The documented link line matches what rustc reports for this target.
#[test]
fn native_static_libs_line_is_current() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let o = Command::new(env!("CARGO"))
        .args([
            "rustc",
            "--lib",
            "--quiet",
            "--crate-type",
            "staticlib",
            "--release",
            "--",
            "--print",
            "native-static-libs",
        ])
        .current_dir(root)
        .env("CARGO_TARGET_DIR", Path::new(env!("CARGO_TARGET_TMPDIR")).join("nsl"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stderr);
    let line = text.lines().find(|l| l.contains("native-static-libs:"));
    let Some(line) = line else {
        // Cargo prints the note only when it compiles; a fresh target dir ensures that.
        panic!("no native-static-libs line in:\n{text}");
    };
    let libs: Vec<&str> = line.split("native-static-libs:").nth(1).unwrap().split_whitespace().collect();
    assert_eq!(libs, NATIVE_LIBS, "update NATIVE_LIBS and the README link line");
}

/// The C example in the README compiles with -Wall -Werror, links and prints
/// what the README says.
#[test]
fn readme_c_example() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let start = readme.find("```c\n").expect("README has a C example") + 5;
    let end = start + readme[start..].find("```").unwrap();
    let src = Path::new(env!("CARGO_TARGET_TMPDIR")).join("readme_example.c");
    std::fs::write(&src, &readme[start..end]).unwrap();
    let lib = static_lib();
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("readme_example");
    let o = Command::new("cc")
        .args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-I"])
        .arg(root.join("include"))
        .arg(&src)
        .arg(&lib)
        .args(NATIVE_LIBS)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r = Command::new(&out).output().unwrap();
    assert!(r.status.success());
    assert_eq!(String::from_utf8_lossy(&r.stdout).trim(), "58 64 139 154");
}
