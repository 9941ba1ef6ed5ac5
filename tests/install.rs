//! The documented install command (`bindings/install.sh`) and what C users do
//! with its result: pkg-config (static and shared), CMake's
//! `find_package(nnkern)`, and the C example's Makefile (`bindings/c/`).
//! `.ci/run` installs pkg-config, cmake, make and binutils on a fresh machine;
//! without one of them the test that needs it prints one SKIPPED line (and
//! fails under `CI=true`).

mod common;

use common::installed_prefix;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn ok(o: Output, what: &str) -> String {
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{what} failed ({:?}):\n{out}{}", o.status, String::from_utf8_lossy(&o.stderr));
    out
}

fn tmp(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn pkg_config(prefix: &Path, args: &[&str]) -> Vec<String> {
    let o = Command::new("pkg-config").args(args).env("PKG_CONFIG_PATH", prefix.join("lib/pkgconfig")).output();
    let out = ok(o.expect("pkg-config (installed by .ci/run)"), "pkg-config");
    out.split_whitespace().map(String::from).collect()
}

#[test]
fn installs_the_documented_layout() {
    let what = "install::installs_the_documented_layout";
    if !common::have("readelf", "binutils", what) || !common::have("pkg-config", "pkg-config", what) {
        return;
    }
    let p = installed_prefix();
    for f in [
        "include/nnkern.h",
        "lib/libnnkern.a",
        "lib/libnnkern.so",
        "lib/libnnkern.so.0",
        "lib/libnnkern.so.0.1.0",
        "lib/pkgconfig/nnkern.pc",
        "lib/pkgconfig/nnkern-static.pc",
        "lib/cmake/nnkern/nnkernConfig.cmake",
        "lib/cmake/nnkern/nnkernConfigVersion.cmake",
    ] {
        assert!(p.join(f).exists(), "{f} not installed");
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    assert_eq!(
        std::fs::read(p.join("include/nnkern.h")).unwrap(),
        std::fs::read(root.join("include/nnkern.h")).unwrap()
    );
    // The shared library carries the SONAME its links are named after.
    let d = ok(Command::new("readelf").arg("-d").arg(p.join("lib/libnnkern.so.0.1.0")).output().unwrap(), "readelf");
    assert!(d.contains("Library soname: [libnnkern.so.0]"), "{d}");
    // The static link line is the documented one.
    let libs = pkg_config(&p, &["--libs", "nnkern-static"]);
    assert!(libs[0].ends_with("lib/libnnkern.a"), "{libs:?}");
    assert_eq!(libs[1..], *common::NATIVE_LIBS);
    assert_eq!(pkg_config(&p, &["--modversion", "nnkern"]), ["0.1.0"]);
}

/// C99 with -Wall -Werror against pkg-config's flags, statically (the binary
/// runs with no library path) and dynamically (found through the rpath).
#[test]
fn pkg_config_static_and_shared() {
    let what = "install::pkg_config_static_and_shared";
    if !common::have("readelf", "binutils", what) || !common::have("pkg-config", "pkg-config", what) {
        return;
    }
    let p = installed_prefix();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tmp("pkgconfig");
    for (pkg, name) in [("nnkern-static", "gemm_static"), ("nnkern", "gemm_shared")] {
        let flags = pkg_config(&p, &["--cflags", "--libs", pkg]);
        let exe = dir.join(name);
        let mut cc = Command::new("cc");
        cc.args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-O1"]).arg(root.join("tests/c/gemm_smoke.c")).args(&flags);
        if name == "gemm_shared" {
            cc.arg(format!("-Wl,-rpath,{}", p.join("lib").display()));
        }
        ok(cc.arg("-o").arg(&exe).output().unwrap(), "cc");
        let out = ok(Command::new(&exe).env_remove("LD_LIBRARY_PATH").output().unwrap(), name);
        assert!(out.contains("all checks passed"), "{out}");
        let needed = ok(Command::new("readelf").arg("-d").arg(&exe).output().unwrap(), "readelf");
        assert_eq!(needed.contains("libnnkern.so.0"), name == "gemm_shared", "{name}:\n{needed}");
    }
}

/// A CMake project finds the installed package and links both imported targets.
#[test]
fn cmake_find_package() {
    if !common::have("cmake", "cmake", "install::cmake_find_package") {
        return;
    }
    let p = installed_prefix();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let build = tmp("cmake_build");
    ok(
        Command::new("cmake")
            .arg("-S")
            .arg(root.join("tests/cmake"))
            .arg("-B")
            .arg(&build)
            .arg(format!("-DCMAKE_PREFIX_PATH={}", p.display()))
            .output()
            .expect("cmake"),
        "cmake configure",
    );
    ok(Command::new("cmake").arg("--build").arg(&build).output().unwrap(), "cmake --build");
    for exe in ["gemm_static", "gemm_shared"] {
        let out = ok(Command::new(build.join(exe)).output().unwrap(), exe);
        assert!(out.contains("all checks passed"), "{out}");
    }
    // A version it cannot satisfy is refused.
    let bad = tmp("cmake_bad");
    std::fs::write(
        bad.join("CMakeLists.txt"),
        "cmake_minimum_required(VERSION 3.16)\nproject(x C)\nfind_package(nnkern 0.2 REQUIRED)\n",
    )
    .unwrap();
    let o = Command::new("cmake")
        .arg("-S")
        .arg(&bad)
        .arg("-B")
        .arg(bad.join("b"))
        .arg(format!("-DCMAKE_PREFIX_PATH={}", p.display()))
        .output()
        .unwrap();
    assert!(!o.status.success(), "find_package(nnkern 0.2) accepted 0.1.0");
}

/// The C example (`bindings/c/`): its Makefile builds it against the installed
/// library and it trains on the bundled digits.
#[test]
fn c_example_makefile_trains_digits() {
    if !common::have("make", "make", "install::c_example_makefile_trains_digits") {
        return;
    }
    let p = installed_prefix();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tmp("c_example");
    let out = ok(
        Command::new("make")
            .arg("-s")
            .arg("-C")
            .arg(root.join("bindings/c"))
            .arg("run")
            .arg(format!("PREFIX={}", p.display()))
            .arg(format!("BUILD={}", dir.display()))
            .output()
            .expect("make"),
        "make run",
    );
    let acc: f64 = out
        .lines()
        .find_map(|l| l.strip_prefix("test accuracy: "))
        .unwrap_or_else(|| panic!("no accuracy line in:\n{out}"))
        .parse()
        .unwrap();
    assert!(acc >= 0.96, "C example accuracy {acc}");
    assert_eq!(out.lines().filter(|l| l.starts_with("epoch ")).count(), 30, "{out}");
}

/// `--help` prints the usage; an unknown flag is refused.
#[test]
fn install_script_arguments() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = root.join("bindings/install.sh");
    let h = ok(Command::new("sh").arg(&script).arg("--help").output().unwrap(), "--help");
    assert!(h.contains("--prefix DIR"), "{h}");
    let o = Command::new("sh").arg(&script).arg("--bogus").output().unwrap();
    assert_eq!(o.status.code(), Some(2));
}
