//! The rule for tests that need an outside tool (`tests/common`'s `have` and
//! `skip`): with the tool missing from `PATH`, such a test prints one SKIPPED
//! line and passes outside CI, and fails under `CI=true`.
//!
//! The check runs this test binary again as a child process, with a `PATH`
//! that holds no tools at all, and asks it for `probe_needs_cmake` (inert
//! unless `NNK_SKIP_RULE_PROBE` is set): once without `CI`, once with
//! `CI=true`, once with `CI=false`.

mod common;

use std::process::{Command, Output};

/// Needs cmake, as `tests/install.rs`'s `cmake_find_package` does: the same
/// probe, the same skip.
#[test]
fn probe_needs_cmake() {
    if std::env::var_os("NNK_SKIP_RULE_PROBE").is_none() {
        return;
    }
    if !common::have("cmake", "cmake", "skip_rule::probe_needs_cmake") {
        return;
    }
    println!("PROBE RAN WITH CMAKE");
}

fn probe(ci: Option<&str>) -> Output {
    let empty = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("skip_rule_empty_path");
    std::fs::create_dir_all(&empty).unwrap();
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["probe_needs_cmake", "--exact", "--test-threads=1"])
        .env("PATH", &empty)
        .env("NNK_SKIP_RULE_PROBE", "1")
        .env_remove("CI");
    if let Some(v) = ci {
        cmd.env("CI", v);
    }
    cmd.output().unwrap()
}

#[test]
fn a_missing_tool_skips_outside_ci_and_fails_inside() {
    let text = |o: &Output| format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));

    for ci in [None, Some("false")] {
        let o = probe(ci);
        let t = text(&o);
        assert!(o.status.success(), "CI={ci:?}: a missing tool must skip, not fail:\n{t}");
        let lines: Vec<&str> = t.lines().filter(|l| l.starts_with("SKIPPED ")).collect();
        assert_eq!(lines.len(), 1, "CI={ci:?}: exactly one SKIPPED line:\n{t}");
        assert!(lines[0].contains("skip_rule::probe_needs_cmake") && lines[0].contains("cmake"), "{}", lines[0]);
        assert!(!t.contains("PROBE RAN"), "{t}");
    }

    let o = probe(Some("true"));
    let t = text(&o);
    assert!(!o.status.success(), "CI=true: a skip must fail the test:\n{t}");
    assert!(t.contains("CI=true and a test was skipped") && t.contains("cmake"), "{t}");
}

/// The C API's own Rust unit tests (`src/ffi`) compile with the `capi`
/// feature only: without it, say so (and fail under CI, which turns it on).
#[test]
fn the_c_api_unit_tests_are_built() {
    if !cfg!(feature = "capi") {
        common::skip(
            "the C API's Rust unit tests (src/ffi)",
            "built without the `capi` feature",
            "cargo test --release --features capi",
        );
    }
}
