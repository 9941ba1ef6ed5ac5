//! Runs the Python bindings' tests (`python3 -m pytest -q bindings/python/tests`)
//! against the freshly built shared library (`NNKERN_LIB`).
//!
//! Without python3, numpy or pytest the test prints a loud SKIPPING line and
//! passes, except under CI (`CI` set), where that is a failure.

mod common;

use std::path::Path;
use std::process::Command;

#[test]
fn python_bindings_pytest() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let probe = Command::new("python3").args(["-c", "import numpy, pytest"]).output();
    let missing = match &probe {
        Err(e) => Some(format!("python3 not runnable: {e}")),
        Ok(o) if !o.status.success() => {
            Some(format!("python3 lacks numpy or pytest: {}", String::from_utf8_lossy(&o.stderr).trim()))
        }
        Ok(_) => None,
    };
    if let Some(why) = missing {
        if std::env::var_os("CI").is_some() {
            panic!("CI is set but the Python bindings cannot be tested: {why} (pip install numpy pytest)");
        }
        // Straight to the process's stderr: libtest captures eprintln! of passing tests.
        let line =
            format!("\n!!!!!!!! SKIPPING the Python bindings tests: {why} (pip install numpy pytest) !!!!!!!!\n");
        let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
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
