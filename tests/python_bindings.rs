//! Runs the Python bindings' tests (`python3 -m pytest -q bindings/python/tests`)
//! against the freshly built shared library (`NNKERN_LIB`).
//!
//! Without python3, numpy or pytest the test prints one SKIPPED line and
//! passes, except under `CI=true`, where that is a failure.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

/// Whether python3 can import `modules`; prints one SKIPPED line (or fails
/// under CI) when it cannot.
fn python_ready(modules: &str) -> bool {
    let probe = Command::new("python3").args(["-c", &format!("import {modules}")]).output();
    let missing = match &probe {
        Err(e) => Some(format!("python3 not runnable: {e}")),
        Ok(o) if !o.status.success() => {
            Some(format!("python3 lacks numpy or pytest: {}", String::from_utf8_lossy(&o.stderr).trim()))
        }
        Ok(_) => None,
    };
    if let Some(why) = missing {
        common::skip("a Python bindings test", &why, &format!("pip install {modules}; .ci/run installs them"));
        return false;
    }
    true
}

#[test]
fn python_bindings_pytest() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    if !python_ready("numpy, pytest") {
        return;
    }
    let lib = common::shared_lib();
    let o = Command::new("python3")
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "bindings/python/tests"])
        .current_dir(root)
        .env("NNKERN_LIB", &lib)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap();
    print!("{}", String::from_utf8_lossy(&o.stdout));
    assert!(
        o.status.success(),
        "pytest failed (NNKERN_LIB={}):\n{}{}",
        lib.display(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        if name == "__pycache__" || name.to_string_lossy().ends_with(".egg-info") {
            continue;
        }
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(&name));
        } else {
            std::fs::copy(e.path(), to.join(&name)).unwrap();
        }
    }
}

/// `pip install bindings/python` with the shared library bundled (copied into
/// the package first, as bindings/python/README.md documents): the installed
/// package finds its own copy with no `NNKERN_LIB` and no checkout around it.
#[test]
fn pip_install_bundles_the_library() {
    if !python_ready("numpy, setuptools, wheel") {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("pip_install");
    let _ = std::fs::remove_dir_all(&tmp);
    let src = tmp.join("src");
    copy_dir(&root.join("bindings/python"), &src);
    let lib = common::shared_lib();
    std::fs::copy(&lib, src.join("nnkern").join(lib.file_name().unwrap())).unwrap();
    let site = tmp.join("site");
    let o = Command::new("python3")
        .args(["-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--disable-pip-version-check"])
        .arg("--target")
        .arg(&site)
        .arg(&src)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "pip install failed:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let script = "import nnkern, numpy as np\n\
                  print(nnkern.library_path())\n\
                  c = nnkern.sgemm(np.ones((2, 3), np.float32), np.ones((3, 4), np.float32))\n\
                  assert c.shape == (2, 4) and (c == 3).all()\n";
    let r = Command::new("python3")
        .args(["-c", script])
        .current_dir(&tmp)
        .env("PYTHONPATH", &site)
        .env_remove("NNKERN_LIB")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&r.stdout);
    assert!(r.status.success(), "installed package failed:\n{out}{}", String::from_utf8_lossy(&r.stderr));
    assert!(out.trim().starts_with(&site.join("nnkern").display().to_string()), "library not the bundled copy: {out}");
}
