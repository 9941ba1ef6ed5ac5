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
    // The estimators need scikit-learn's tags API (1.6 and later).
    let code = format!(
        "import {modules}\nimport sys\nif 'sklearn' in sys.modules:\n    \
         v = tuple(int(p) for p in sys.modules['sklearn'].__version__.split('.')[:2])\n    \
         assert v >= (1, 6), 'scikit-learn ' + sys.modules['sklearn'].__version__ + ' is older than 1.6'"
    );
    let probe = Command::new("python3").args(["-c", &code]).output();
    let missing = match &probe {
        Err(e) => Some(format!("python3 not runnable: {e}")),
        Ok(o) if !o.status.success() => {
            Some(format!("python3 lacks one of {modules}: {}", String::from_utf8_lossy(&o.stderr).trim()))
        }
        Ok(_) => None,
    };
    if let Some(why) = missing {
        common::skip(
            "a Python bindings test",
            &why,
            "pip install numpy pytest 'scikit-learn>=1.6' scipy pandas; .ci/run installs them",
        );
        return false;
    }
    true
}

/// What the estimators' tests import: scikit-learn and its friends.
const PY_MODULES: &str = "numpy, pytest, sklearn, scipy, pandas";

#[test]
fn python_bindings_pytest() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    if !python_ready(PY_MODULES) {
        return;
    }
    let lib = common::shared_lib();
    let o = Command::new("python3")
        .args(["-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "bindings/python/tests"])
        .current_dir(root)
        .env("NNKERN_LIB", &lib)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    print!("{out}");
    assert!(
        o.status.success(),
        "pytest failed (NNKERN_LIB={}):\n{out}{}",
        lib.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    // The one skip that is not a gap: scikit-learn's check of a
    // decision_function, which these estimators (like scikit-learn's own
    // MLPs) do not have.
    for line in out.lines().filter(|l| l.starts_with("SKIPPED")) {
        assert!(line.contains("does not have a decision_function method"), "a Python test was skipped: {line}");
    }
}

/// `pip install bindings/python` into a fresh virtual environment, from the
/// source tree with a fresh Cargo target directory (no prior build): maturin
/// builds the library into a platform wheel, and the installed package loads
/// its own copy, with no `NNKERN_LIB` and no checkout on its path. Slow (a
/// release build of the crate, several minutes on two cores) and needs the
/// package index (maturin, numpy): it runs under CI or with
/// `NNKERN_SLOW_TESTS=1`, and says so otherwise.
#[test]
fn pip_install_builds_a_platform_wheel_in_a_fresh_venv() {
    if std::env::var_os("NNKERN_SLOW_TESTS").is_none() && !common::in_ci() {
        common::skip(
            "the fresh-venv pip install test",
            "slow (a release build, several minutes) and needs the package index",
            "NNKERN_SLOW_TESTS=1 cargo test --release --test python_bindings; CI runs it",
        );
        return;
    }
    if !python_ready("venv, ensurepip") {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fresh_venv");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    let venv = tmp.join("venv");
    let st = Command::new("python3").args(["-m", "venv"]).arg(&venv).status().unwrap();
    assert!(st.success(), "python3 -m venv failed");
    let py = venv.join("bin/python");
    let wheels = tmp.join("wheels");
    // `pip wheel` first, to see the tag; then install that wheel.
    let o = Command::new(&py)
        .args(["-m", "pip", "wheel", "-q", "--disable-pip-version-check", "--no-deps", "-w"])
        .arg(&wheels)
        .arg(root.join("bindings/python"))
        .env("CARGO_TARGET_DIR", tmp.join("target"))
        .env_remove("NNKERN_LIB")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "pip wheel failed:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let wheel = std::fs::read_dir(&wheels).unwrap().map(|e| e.unwrap().path()).next().expect("a wheel");
    let name = wheel.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("nnkern-") && name.ends_with(".whl"), "{name}");
    assert!(
        !name.contains("none-any") && (name.contains("linux_") || name.contains("manylinux")),
        "not a platform wheel: {name}"
    );
    let o = Command::new(&py)
        .args(["-m", "pip", "install", "-q", "--disable-pip-version-check"])
        .arg(&wheel)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "pip install of {name} failed:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let script = "import nnkern, numpy as np\n\
                  print(nnkern.library_path())\n\
                  c = nnkern.sgemm(np.ones((2, 3), np.float32), np.ones((3, 4), np.float32))\n\
                  assert c.shape == (2, 4) and (c == 3).all()\n\
                  m = nnkern.Mlp(4, [(3, 1), (2, 4)], seed=1)\n\
                  assert nnkern.Mlp.from_bytes(m.to_bytes()).n_outputs == 2\n";
    let r = Command::new(&py)
        .args(["-c", script])
        .current_dir(&tmp)
        .env_remove("NNKERN_LIB")
        .env_remove("PYTHONPATH")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&r.stdout);
    assert!(r.status.success(), "installed package failed:\n{out}{}", String::from_utf8_lossy(&r.stderr));
    let path = out.trim();
    assert!(
        path.starts_with(&venv.display().to_string()) && path.contains("_native"),
        "the library is not the wheel's own: {path}"
    );
    println!("fresh venv: {name}, library {path}");
}
