//! `include/nnkern.h` must equal what the pinned cbindgen generates now, and the
//! layering rule holds (lower layers never import higher ones).

mod common;

use std::path::Path;
use std::process::Command;

const PINNED: &str = "0.29.4";

#[test]
fn header_is_current() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let version = Command::new("cbindgen").arg("--version").output();
    let ok = matches!(&version, Ok(o) if String::from_utf8_lossy(&o.stdout).contains(PINNED));
    if !ok {
        // CI installs the pinned version (.ci/run), so there it must be present.
        common::skip(
            "header::header_is_current",
            &format!("cbindgen {PINNED} is not installed"),
            &format!("cargo install cbindgen --locked --version {PINNED}; .ci/run installs it"),
        );
        return;
    }
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("nnkern.h");
    let st = Command::new("cbindgen")
        .args(["--config", "cbindgen.toml", "--quiet", "--output"])
        .arg(&out)
        .current_dir(root)
        .status()
        .unwrap();
    assert!(st.success(), "cbindgen failed");
    let fresh = std::fs::read_to_string(&out).unwrap();
    let committed = std::fs::read_to_string(root.join("include/nnkern.h")).unwrap();
    assert!(
        fresh == committed,
        "include/nnkern.h is stale: run `cbindgen --config cbindgen.toml --output include/nnkern.h`"
    );
}

/// `simd` → kernels (`gemm`, `ops`, `optim`) → `nn` → `ffi`: a lower layer never
/// names a higher one.
#[test]
fn layering_is_one_way() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let rules: &[(&str, &[&str])] = &[
        ("simd", &["crate::gemm", "crate::ops", "crate::optim", "crate::nn", "crate::ffi"]),
        ("gemm", &["crate::ops", "crate::optim", "crate::nn", "crate::ffi"]),
        ("ops", &["crate::optim", "crate::nn", "crate::ffi"]),
        ("optim", &["crate::ops", "crate::nn", "crate::ffi"]),
        ("nn", &["crate::ffi"]),
    ];
    for (dir, banned) in rules {
        let d = root.join(dir);
        if !d.exists() {
            continue;
        }
        for entry in walk(&d) {
            let text = std::fs::read_to_string(&entry).unwrap();
            for b in *banned {
                assert!(!text.contains(b), "{} imports {b}: layering violation", entry.display());
            }
        }
    }
}

fn walk(d: &Path) -> Vec<std::path::PathBuf> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(d).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            v.extend(walk(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            v.push(p);
        }
    }
    v
}
