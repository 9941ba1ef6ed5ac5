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
/// names a higher one; the crate-private leaves `ptr` and `sys` name none.
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
    // The leaves under every layer use no other module of the crate.
    for leaf in ["ptr.rs", "sys.rs"] {
        let text = std::fs::read_to_string(root.join(leaf)).unwrap();
        assert!(!text.contains("crate::"), "src/{leaf} names another module of the crate: it must stay a leaf");
    }
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

fn header() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("include/nnkern.h")).unwrap()
}

/// The enumerators of `enum nnk_status` (name, value) in header order, and the
/// header's text with that block cut out.
fn status_enum(h: &str) -> (Vec<(String, i32)>, String) {
    let start = h.find("\nenum nnk_status").expect("the header has `enum nnk_status`");
    let open = start + h[start..].find('{').unwrap();
    let close = open + h[open..].find("\n};").expect("enum nnk_status is closed");
    let mut body = String::new();
    let mut rest = &h[open + 1..close];
    // Drop the enumerators' comments.
    while let Some(i) = rest.find("/*") {
        body.push_str(&rest[..i]);
        rest = &rest[i + rest[i..].find("*/").unwrap() + 2..];
    }
    body.push_str(rest);
    let items = body
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            let (name, value) = s.split_once('=').unwrap_or_else(|| panic!("enumerator without a value: {s}"));
            (name.trim().to_string(), value.trim().parse().unwrap())
        })
        .collect();
    (items, format!("{}{}", &h[..start], &h[close..]))
}

/// Section 5 of the review: the status codes are one typed enum, in code order,
/// and it is the crate's table (`Status`): same names, same values, nothing
/// missing or extra; no status code is defined anywhere else in the header.
#[test]
fn status_codes_are_one_enum_in_order() {
    let h = header();
    let (items, rest) = status_enum(&h);
    let want: Vec<(String, i32)> = nnkern::error::Status::all().iter().map(|s| (format!("{s:?}"), s.code())).collect();
    assert_eq!(items, want, "enum nnk_status differs from nnkern::error::Status");
    assert!(items.windows(2).all(|w| w[0].1 < w[1].1), "codes in increasing order");
    assert!(h.contains("typedef int32_t nnk_status;"), "in C the enum's type is int32_t wide");
    for (name, _) in &items {
        assert!(!rest.contains(&format!("#define {name} ")), "{name} is also a #define");
    }
    assert!(!rest.contains("#define NNK_ERR_") && !rest.contains("#define NNK_OK"), "a status outside the enum");
}

/// Each family of constants (`NNK_ACT_*`, `NNK_SOLVER_*`, ...) is one block of
/// consecutive `#define`s in increasing value order, not sorted among the others.
#[test]
fn constant_families_are_contiguous_blocks() {
    let h = header();
    let defines: Vec<(String, i64)> = h
        .lines()
        .filter_map(|l| l.strip_prefix("#define NNK_"))
        .filter_map(|l| {
            let (name, value) = l.split_once(' ')?;
            Some((format!("NNK_{name}"), value.trim().parse().ok()?))
        })
        .filter(|(name, _)| !name.starts_with("NNK_VERSION_"))
        .collect();
    assert!(defines.len() > 25, "{defines:?}");
    let family = |name: &str| -> String {
        for f in ["NNK_ACT_", "NNK_SOLVER_", "NNK_SPARSE_", "NNK_SCHEDULE_", "NNK_SHARD_"] {
            if name.starts_with(f) {
                return f.to_string();
            }
        }
        // Layouts and transposes: the CBLAS codes.
        "CBLAS".to_string()
    };
    let mut seen: Vec<String> = Vec::new();
    let mut last: Option<(String, i64)> = None;
    for (name, value) in &defines {
        let f = family(name);
        match &last {
            Some((lf, lv)) if *lf == f => assert!(value > lv, "{name} = {value} is out of order in {f}"),
            _ => {
                assert!(!seen.contains(&f), "{f} constants are split into several blocks ({name})");
                seen.push(f.clone());
            }
        }
        last = Some((f, *value));
    }
    assert_eq!(seen.len(), 6, "{seen:?}");
}

/// C comments hold no rustdoc markup: no `# Safety` (or any Markdown heading),
/// no intra-doc links like ``[`nnk_sgemm`]``.
#[test]
fn no_rustdoc_markup_in_c_comments() {
    let h = header();
    for (i, line) in h.lines().enumerate() {
        let t = line.trim_start().trim_start_matches('*').trim_start().trim_start_matches("//").trim_start();
        assert!(!t.starts_with("# "), "line {}: Markdown heading: {line}", i + 1);
        assert!(!line.contains("# Safety"), "line {}: {line}", i + 1);
        assert!(!line.contains("[`"), "line {}: intra-doc link: {line}", i + 1);
        assert!(!line.contains("TrainConfig::"), "line {}: names a Rust item: {line}", i + 1);
        assert!(!line.contains("module notes"), "line {}: points to Rust docs: {line}", i + 1);
    }
}

/// The header stands alone: its preamble states, in C terms, ownership, thread
/// safety, what a poisoned handle does and that a config must not change
/// during a fit, and every function with preconditions lists them.
#[test]
fn header_preamble_states_the_contract() {
    let h = header();
    let pre = &h[..h.find("#ifndef NNKERN_H").expect("include guard")];
    let flat = pre.replace("\n *", "").split_whitespace().collect::<Vec<_>>().join(" ");
    for (section, needles) in [
        ("STATUS CODES AND ERRORS", &["int32_t holding an nnk_status", "Outputs are written only on success"][..]),
        ("OWNERSHIP", &["the caller owns it", "exactly once", "nnk_mlp_free", "nnk_train_config_free"][..]),
        ("THREADS", &["from any thread", "must not be used by any other call", "may run concurrently"][..]),
        ("THREADS", &["a config must not be changed", "while a fit that uses it is running"][..]),
        ("PANICS AND POISONING", &["never unwinds", "poisons that model", "NNK_ERR_PANIC"][..]),
    ] {
        assert!(flat.contains(section), "preamble lacks the {section} section");
        for n in needles {
            assert!(flat.contains(n), "{section}: preamble lacks {n:?}");
        }
    }
    // Every function that takes a pointer and is not just a free/getter documents
    // what the caller must guarantee.
    let decls = h.split("\n/**").filter(|b| b.contains("nnk_") && b.contains("*/\n"));
    let mut n = 0;
    for block in decls {
        let (doc, decl) = block.split_once("*/\n").unwrap();
        let decl = decl.split(';').next().unwrap();
        if decl.contains('(') && decl.contains('*') && !decl.contains("const char *nnk_") && decl.contains("nnk_") {
            let name = decl.split('(').next().unwrap().split_whitespace().last().unwrap().trim_start_matches('*');
            if name.starts_with("nnk_") && !decl.trim_start().starts_with("typedef") {
                n += 1;
                assert!(doc.contains("Undefined behaviour unless:"), "{name} does not state its preconditions");
            }
        }
    }
    assert!(n > 30, "{n} functions with pointers");
}

/// The Python binding's code table (`bindings/python/nnkern/_lib.py`) equals the
/// header's, so it is checked even where Python is not installed; the C++
/// wrapper maps the out-of-memory code to its own exception.
#[test]
fn binding_tables_match_the_header() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let h = header();
    let (codes, _) = status_enum(&h);
    let py = std::fs::read_to_string(root.join("bindings/python/nnkern/_lib.py")).unwrap();
    let ours: Vec<(String, i32)> = py
        .lines()
        .filter_map(|l| l.split_once(" = "))
        .filter(|(k, _)| *k == "NNK_OK" || k.starts_with("NNK_ERR_"))
        .map(|(k, v)| (k.to_string(), v.trim().parse().unwrap()))
        .collect();
    assert_eq!(ours, codes, "_lib.py's status codes differ from enum nnk_status");
    assert!(py.contains("class NnkMemoryError(NnkError, MemoryError)"), "_lib.py maps out of memory to MemoryError");
    let hpp = std::fs::read_to_string(root.join("bindings/cpp/nnkern.hpp")).unwrap();
    assert!(hpp.contains("if (status == NNK_ERR_OUT_OF_MEMORY) throw OutOfMemory(message);"));
}

/// The activation registry (`nnkern::ops::act::ACTIVATIONS`) is the one list:
/// the header's `NNK_ACT_*`, the C++ `enum class Activation` and the Python
/// `ACTIVATIONS` table agree with it, code for code.
#[test]
fn activation_lists_match_the_registry() {
    use nnkern::ops::act::{ACTIVATIONS, Activation};
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let h = header();
    let consts: Vec<(String, u32)> = h
        .lines()
        .filter_map(|l| l.strip_prefix("#define NNK_ACT_"))
        .map(|l| {
            let (name, v) = l.split_once(' ').unwrap();
            (name.to_lowercase(), v.trim().parse().unwrap())
        })
        .collect();
    let want: Vec<(String, u32)> = ACTIVATIONS.iter().map(|i| (i.name.to_string(), i.code)).collect();
    assert_eq!(consts, want, "the header's NNK_ACT_* differ from the registry");
    for (i, info) in ACTIVATIONS.iter().enumerate() {
        assert_eq!(info.code as usize, i, "{}: the registry is indexed by code", info.name);
        assert_eq!(info.activation.code(), info.code, "{}: Activation::code", info.name);
        assert_eq!(Activation::from_code(info.code).unwrap(), info.activation);
        for n in std::iter::once(&info.name).chain(info.aliases) {
            assert_eq!(Activation::from_name(n).unwrap(), info.activation, "name {n}");
        }
    }

    // C++: one enumerator per code, each NNK_ACT_<NAME>.
    let hpp = std::fs::read_to_string(root.join("bindings/cpp/nnkern.hpp")).unwrap();
    let body = hpp.split("enum class Activation : uint32_t {").nth(1).unwrap().split("};").next().unwrap();
    let cpp: Vec<String> = body
        .lines()
        .filter_map(|l| l.split_once("= NNK_ACT_"))
        .map(|(_, c)| c.trim().trim_end_matches(',').to_lowercase())
        .collect();
    let names: Vec<String> = ACTIVATIONS.iter().map(|i| i.name.to_string()).collect();
    assert_eq!(cpp, names, "nnkern.hpp's Activation differs from the registry");

    // Python: every hidden-layer (elementwise) activation, by name or alias,
    // with its code; none that the registry does not know.
    let py = std::fs::read_to_string(root.join("bindings/python/nnkern/_model.py")).unwrap();
    let table = py.split("ACTIVATIONS = {").nth(1).unwrap().split('}').next().unwrap();
    let entries: Vec<(String, u32)> = table
        .split(',')
        .filter_map(|e| e.split_once(':'))
        .map(|(k, v)| (k.trim().trim_matches('"').to_string(), v.trim().parse().unwrap()))
        .collect();
    for (name, code) in &entries {
        let a = Activation::from_name(name).unwrap_or_else(|_| panic!("Python's '{name}' is not in the registry"));
        assert_eq!(a.code(), *code, "Python's '{name}'");
    }
    for info in ACTIVATIONS.iter().filter(|i| !i.rowwise) {
        assert!(entries.iter().any(|(_, c)| *c == info.code), "Python lacks {}", info.name);
    }
}
