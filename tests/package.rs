//! The crate as a Rust dependent and crates.io see it: `cargo package` is
//! clean, the example and the library do not pull in the benchmark tools, and
//! the C API stays out of a default build. Everything here runs cargo offline
//! and builds nothing (a second or two).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs cargo offline in the crate root with its own target directory (so it
/// never waits for the lock of the test run's).
fn cargo(args: &[&str]) -> Output {
    let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("package-target");
    let o = Command::new(env!("CARGO"))
        .args(args)
        .arg("--offline")
        .current_dir(root())
        .env("CARGO_TARGET_DIR", &target)
        .env_remove("RUSTFLAGS")
        .output()
        .expect("run cargo");
    assert!(
        o.status.success(),
        "cargo {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// `cargo package` passes without a single warning (missing metadata, files
/// left out that a target needs, ...) and ships the licences and the header,
/// but not the fuzzing, CI or benchmark trees.
#[test]
fn cargo_package_is_clean() {
    let o = cargo(&["package", "--no-verify", "--allow-dirty", "-p", "nnkern"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.to_lowercase().contains("warning"), "cargo package warned:\n{err}");
    let list = cargo(&["package", "--list", "--allow-dirty", "-p", "nnkern"]);
    let files: Vec<String> = String::from_utf8_lossy(&list.stdout).lines().map(str::to_string).collect();
    for want in ["LICENSE-MIT", "LICENSE-APACHE", "README.md", "include/nnkern.h", "src/lib.rs", "data/digits.csv"] {
        assert!(files.iter().any(|f| f == want), "{want} is not packaged: {files:?}");
    }
    for f in &files {
        assert!(
            !(f.starts_with("fuzz/") || f.starts_with("bench/") || f.starts_with(".ci/") || f.starts_with("target/")),
            "{f} should not be packaged"
        );
        assert!(!f.contains("__pycache__"), "{f}");
    }
    // Every test the package declares ships with what it reads.
    for t in std::fs::read_dir(root().join("tests")).unwrap() {
        let name = t.unwrap().file_name().to_string_lossy().into_owned();
        if name.ends_with(".rs") {
            assert!(files.contains(&format!("tests/{name}")), "tests/{name} is not packaged");
        }
    }
}

/// The manifest a dependent sees: the metadata crates.io and docs.rs use, no
/// `links` key, an rlib only, and the C API behind `capi` (off by default).
#[test]
fn manifest_for_dependents() {
    let o = cargo(&["metadata", "--no-deps", "--format-version", "1"]);
    let json = String::from_utf8_lossy(&o.stdout);
    // The package object: from its name to the next package or the end of the list.
    let pkg_start = json.find("{\"name\":\"nnkern\",\"version\"").expect("nnkern in cargo metadata");
    let pkg = &json[pkg_start + 1..];
    let end = [pkg.find("{\"name\":\"nnkern-bench\",\"version\""), pkg.find("\"workspace_members\"")]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(pkg.len());
    let pkg = &pkg[..end];
    for key in ["\"documentation\":\"https://docs.rs/nnkern\"", "\"links\":null", "\"license\":\"MIT OR Apache-2.0\""] {
        assert!(pkg.contains(key), "metadata lacks {key}");
    }
    assert!(pkg.contains("\"keywords\":[\"") && pkg.contains("\"categories\":[\""), "keywords and categories");
    assert!(pkg.contains("\"crate_types\":[\"rlib\"]"), "the library must be an rlib only");
    assert!(!pkg.contains("staticlib") && !pkg.contains("cdylib"), "C crate types are requested at build time");
    assert!(pkg.contains("\"capi\":[]") && pkg.contains("\"default\":[]"), "a `capi` feature, off by default");
    assert!(pkg.contains("\"docs\":{\"rs\":{"), "[package.metadata.docs.rs]");
}

/// `cargo run --example train` builds the library's normal and dev
/// dependencies: neither criterion nor the `gemm` crate may be among them
/// (they belong to the `nnkern-bench` package).
#[test]
fn example_does_not_build_the_benchmark_tools() {
    let o = cargo(&["tree", "-p", "nnkern", "-e", "normal,build,dev", "--prefix", "none", "--format", "{p}"]);
    let tree = String::from_utf8_lossy(&o.stdout);
    let mut names: Vec<&str> = tree.lines().filter_map(|l| l.split_whitespace().next()).collect();
    names.sort();
    names.dedup();
    for banned in ["criterion", "gemm", "gemm-common", "plotters"] {
        assert!(!names.contains(&banned), "{banned} is in the library's graph: {names:?}");
    }
    // The bench package still has them, so `cargo bench -p nnkern-bench` works.
    let o = cargo(&["tree", "-p", "nnkern-bench", "-e", "normal,dev", "--prefix", "none", "--format", "{p}"]);
    let bench = String::from_utf8_lossy(&o.stdout);
    assert!(bench.lines().any(|l| l.starts_with("criterion ")) && bench.lines().any(|l| l.starts_with("gemm ")));
}
