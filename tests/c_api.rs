//! Builds the C and C++ programs under `tests/c/` against the *installed*
//! library (`bindings/install.sh` into a scratch prefix: `PREFIX/include`,
//! `PREFIX/lib/libnnkern.a`) with `-Wall -Wextra -Werror`, C99 and C++17, and
//! runs them three ways: plain; built with AddressSanitizer + UndefinedBehavior-
//! Sanitizer with leak detection (LeakSanitizer sees the Rust side's
//! allocations too: they go through the intercepted malloc); and the plain
//! build under valgrind's memcheck (which also checks the uninstrumented Rust
//! code's memory accesses), failing on any error or definite/indirect leak.
//!
//! The link line is the one `--print native-static-libs` reports for this target
//! and the README documents.

mod common;

use common::{NATIVE_LIBS, installed_prefix};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

/// How a test program is built and run.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Plain,
    /// `-fsanitize=address,undefined`, leaks detected at exit.
    Sanitized,
    /// The plain build under `valgrind --leak-check=full`.
    Valgrind,
}

fn compile(compiler: &str, std: &str, src: &Path, out_name: &str, mode: Mode) -> PathBuf {
    let prefix = installed_prefix();
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(out_name);
    let mut cmd = Command::new(compiler);
    cmd.arg(format!("-std={std}")).args(["-Wall", "-Wextra", "-Werror", "-g", "-O1"]);
    if mode == Mode::Sanitized {
        cmd.args(["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-fno-sanitize-recover=all"]);
    }
    cmd.arg("-I")
        .arg(prefix.join("include"))
        .arg(src)
        .arg(prefix.join("lib/libnnkern.a"))
        .args(NATIVE_LIBS)
        .arg("-o")
        .arg(&out);
    let o = cmd.output().unwrap_or_else(|e| panic!("cannot run {compiler}: {e}"));
    assert!(o.status.success(), "{compiler} failed:\n{}", String::from_utf8_lossy(&o.stderr));
    out
}

/// memcheck: any error, or a definite or indirect leak, makes the run fail.
const VALGRIND_ARGS: &[&str] = &[
    "-q",
    "--error-exitcode=97",
    "--leak-check=full",
    "--show-leak-kinds=definite,indirect",
    "--errors-for-leak-kinds=definite,indirect",
];

fn run(exe: &Path, args: &[OsString], mode: Mode) -> String {
    let mut cmd = if mode == Mode::Valgrind {
        let mut c = Command::new("valgrind");
        c.args(VALGRIND_ARGS).arg(exe);
        c
    } else {
        Command::new(exe)
    };
    cmd.args(args)
        .env("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0:halt_on_error=1:exitcode=98")
        .env("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1");
    let r = cmd.output().unwrap_or_else(|e| panic!("cannot run {}: {e}", exe.display()));
    let out = String::from_utf8_lossy(&r.stdout).into_owned();
    let err = String::from_utf8_lossy(&r.stderr);
    print!("{out}");
    assert!(r.status.success(), "{} failed ({:?}):\n{out}{err}", exe.display(), r.status);
    // Sanitizers and valgrind report on stderr; the programs themselves print nothing there.
    assert!(
        !err.contains("ERROR: AddressSanitizer")
            && !err.contains("runtime error:")
            && !err.contains("LeakSanitizer")
            && !err.contains("definitely lost"),
        "{} reported:\n{err}",
        exe.display()
    );
    out
}

fn c_test(src: &str, args: &[OsString], mode: Mode) -> String {
    if mode == Mode::Valgrind && !common::have("valgrind", "valgrind", &format!("c_api: {src} under valgrind")) {
        return String::new();
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let stem = Path::new(src).file_stem().unwrap().to_string_lossy().into_owned();
    let name = match mode {
        Mode::Plain => format!("{stem}_c"),
        Mode::Sanitized => format!("{stem}_c_asan"),
        Mode::Valgrind => format!("{stem}_c_vg"),
    };
    let exe = compile("cc", "c99", &root.join(src), &name, mode);
    run(&exe, args, mode)
}

fn train_args(tag: &str) -> Vec<OsString> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let scratch = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("c_train_{tag}"));
    std::fs::create_dir_all(&scratch).unwrap();
    vec![root.join("data/digits.csv").into_os_string(), scratch.into_os_string()]
}

#[test]
fn c99_gemm_smoke() {
    c_test("tests/c/gemm_smoke.c", &[], Mode::Plain);
}

#[test]
fn c99_kernel_entry_points() {
    c_test("tests/c/ops_smoke.c", &[], Mode::Plain);
}

#[test]
fn c99_trainer_and_bad_input_table() {
    c_test("tests/c/train_smoke.c", &train_args("plain"), Mode::Plain);
}

#[test]
fn c99_gemm_smoke_asan_ubsan_lsan() {
    c_test("tests/c/gemm_smoke.c", &[], Mode::Sanitized);
}

#[test]
fn c99_kernel_entry_points_asan_ubsan_lsan() {
    c_test("tests/c/ops_smoke.c", &[], Mode::Sanitized);
}

#[test]
fn c99_trainer_and_bad_input_table_asan_ubsan_lsan() {
    c_test("tests/c/train_smoke.c", &train_args("asan"), Mode::Sanitized);
}

/// Out of memory is NNK_ERR_OUT_OF_MEMORY, never an abort: the program limits
/// its own address space, and the model stays bit for bit as it was.
#[test]
fn c99_out_of_memory() {
    let out = c_test("tests/c/oom_smoke.c", &[], Mode::Plain);
    assert!(out.contains("all checks passed"), "{out}");
}

#[test]
fn c99_out_of_memory_valgrind() {
    let out = c_test("tests/c/oom_smoke.c", &[], Mode::Valgrind);
    assert!(out.is_empty() || out.contains("all checks passed"), "{out}");
}

#[test]
fn c99_gemm_smoke_valgrind() {
    c_test("tests/c/gemm_smoke.c", &[], Mode::Valgrind);
}

#[test]
fn c99_kernel_entry_points_valgrind() {
    c_test("tests/c/ops_smoke.c", &[], Mode::Valgrind);
}

#[test]
fn c99_trainer_and_bad_input_table_valgrind() {
    c_test("tests/c/train_smoke.c", &train_args("valgrind"), Mode::Valgrind);
}

/// A model's contents (layers, parameters, bytes, history), partial fits and
/// the scikit-learn setters, with their bad-input answers.
#[test]
fn c99_model_data() {
    let out = c_test("tests/c/model_data.c", &[], Mode::Plain);
    assert!(out.contains("all checks passed"), "{out}");
}

#[test]
fn c99_model_data_asan_ubsan_lsan() {
    let out = c_test("tests/c/model_data.c", &[], Mode::Sanitized);
    assert!(out.contains("all checks passed"), "{out}");
}

#[test]
fn c99_model_data_valgrind() {
    let out = c_test("tests/c/model_data.c", &[], Mode::Valgrind);
    assert!(out.is_empty() || out.contains("all checks passed"), "{out}");
}

/// A leak in a test program is caught: the sanitizer run is not vacuous.
#[test]
fn leak_detection_is_live() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("leak_probe_src");
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("leak.c");
    std::fs::write(
        &src,
        "#include <nnkern.h>\n#include <stdint.h>\n\
         /* Leaks two configs; the handles are scrambled so no copy of them survives. */\n\
         volatile uintptr_t sink;\n\
         int main(void) {\n\
             for (int i = 0; i < 2; i++) {\n\
                 nnk_train_config *c = 0;\n\
                 if (nnk_train_config_new(&c) != NNK_OK) return 3;\n\
                 sink = (uintptr_t)c ^ 0x5a5a5a5a;\n\
                 c = 0;\n\
             }\n\
             return 0;\n\
         }\n",
    )
    .unwrap();
    for mode in [Mode::Sanitized, Mode::Plain] {
        if mode == Mode::Plain && !common::have("valgrind", "valgrind", "c_api: leak_detection_is_live under valgrind")
        {
            continue;
        }
        let exe = compile("cc", "c99", &src, if mode == Mode::Plain { "leak_probe" } else { "leak_probe_asan" }, mode);
        let r = if mode == Mode::Plain {
            Command::new("valgrind").args(VALGRIND_ARGS).arg(&exe).output().unwrap()
        } else {
            Command::new(&exe).env("ASAN_OPTIONS", "detect_leaks=1").output().unwrap()
        };
        assert!(!r.status.success(), "the leaked nnk_train_config went unnoticed");
    }
}

#[test]
fn cpp17_header_and_link() {
    if !common::have("c++", "g++", "c_api::cpp17_header_and_link") {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let exe = compile("c++", "c++17", &root.join("tests/c/header_cpp.cpp"), "header_cpp", Mode::Plain);
    run(&exe, &[], Mode::Plain);
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
            "--features",
            "capi",
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
    let out = compile("cc", "c99", &src, "readme_example", Mode::Plain);
    assert_eq!(run(&out, &[], Mode::Plain).trim(), "58 64 139 154");
}
