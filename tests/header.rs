//! `include/nnkern.h` must equal what the pinned cbindgen generates now, and the
//! layering rule holds (lower layers never import higher ones).

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
        assert!(std::env::var_os("CI").is_none(), "cbindgen {PINNED} is required in CI");
        println!(
            "SKIPPING header check: cbindgen {PINNED} not installed (cargo install cbindgen --locked --version {PINNED})"
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

/// The epoch callback's type is named in the setter's signature, and its
/// documentation says what the return value means (0 continues, nonzero stops).
#[test]
fn epoch_callback_contract_is_in_the_header() {
    let h = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("include/nnkern.h")).unwrap();
    let typedef = "typedef int32_t (*nnk_epoch_callback)(const struct nnk_epoch_info *info, void *user);";
    let at = h.find(typedef).expect("the nnk_epoch_callback typedef");
    let doc = &h[h[..at].rfind("/**").expect("a doc comment on the typedef")..at];
    assert!(doc.contains("0 continues") && doc.contains("nonzero stops"), "typedef doc: {doc}");
    let setter = h.find("int32_t nnk_train_config_set_callback(").expect("the setter");
    let sig = &h[setter..setter + h[setter..].find(';').unwrap()];
    assert!(sig.contains("nnk_epoch_callback callback"), "the setter does not take the typedef: {sig}");
    let setter_doc = &h[h[..setter].rfind("/**").unwrap()..setter];
    assert!(setter_doc.contains("0 to continue") && setter_doc.contains("nonzero to stop"), "{setter_doc}");
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
