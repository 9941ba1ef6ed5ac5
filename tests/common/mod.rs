//! Helpers shared by the integration tests: building and installing the C
//! library for the programs built against it (`tests/c_api.rs`,
//! `tests/cpp_bindings.rs`, `tests/python_bindings.rs`), skipping, and the
//! random data and ISA lists of the reference tests.
#![allow(dead_code)]

pub mod oracle;

use std::path::PathBuf;
use std::process::Command;

/// `target/<profile>`: the test binary lives in `target/<profile>/deps`.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

/// Builds the C libraries as bindings/install.sh does (`cargo rustc --lib
/// --features capi --crate-type staticlib,cdylib`, in this test's profile) so
/// that `libnnkern.a` and `libnnkern.so` are current, and returns the
/// directory that holds them.
///
/// The build uses its own target directory (`target/ffi-lib`): `cargo test`
/// unifies the features of dependencies shared with dev-dependencies (rayon's
/// `either`, pulp's `bytemuck`, ...) while `cargo build` does not, so in the
/// test's own target directory each would recompile nnkern for the other.
pub fn build_lib() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let profile = profile_dir();
        let release = profile.file_name().unwrap() == "release";
        let target = profile.parent().unwrap().join("ffi-lib");
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["rustc", "--lib", "--quiet", "--features", "capi", "--crate-type", "staticlib,cdylib"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("CARGO_TARGET_DIR", &target);
        if release {
            cmd.arg("--release");
        }
        let st = cmd.status().expect("cargo build");
        assert!(st.success(), "cargo rustc --lib --features capi --crate-type staticlib,cdylib failed");
        target.join(if release { "release" } else { "debug" })
    })
    .clone()
}

/// The static library, (re)built with cargo if missing or older than the sources.
pub fn static_lib() -> PathBuf {
    let lib = build_lib().join("libnnkern.a");
    assert!(lib.exists(), "{} missing after build", lib.display());
    lib
}

/// The shared library (cdylib), (re)built like [`static_lib`].
pub fn shared_lib() -> PathBuf {
    let name = if cfg!(target_os = "macos") {
        "libnnkern.dylib"
    } else if cfg!(windows) {
        "nnkern.dll"
    } else {
        "libnnkern.so"
    };
    let lib = build_lib().join(name);
    assert!(lib.exists(), "{} missing after build", lib.display());
    lib
}

/// Native libraries the static library needs on Linux (from
/// `rustc --print native-static-libs`, see README).
pub const NATIVE_LIBS: &[&str] = &["-lgcc_s", "-lutil", "-lrt", "-lpthread", "-lm", "-ldl", "-lc"];

/// Installs the library built by [`build_lib`] with the documented install
/// command (`bindings/install.sh --no-build`) under a prefix in this test
/// binary's scratch directory, once per test binary, and returns the prefix.
/// C and C++ test programs compile against `PREFIX/include` and link
/// `PREFIX/lib/libnnkern.a`, as users of an installed nnkern do.
pub fn installed_prefix() -> PathBuf {
    static PREFIX: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PREFIX
        .get_or_init(|| {
            let dir = build_lib();
            let exe = std::env::current_exe().unwrap();
            let stem = exe.file_stem().unwrap().to_string_lossy().into_owned();
            let prefix = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("prefix-{stem}"));
            let _ = std::fs::remove_dir_all(&prefix);
            let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
            let o = Command::new("sh")
                .arg(root.join("bindings/install.sh"))
                .arg("--no-build")
                .arg("--build-dir")
                .arg(&dir)
                .arg("--prefix")
                .arg(&prefix)
                .output()
                .expect("run bindings/install.sh");
            assert!(
                o.status.success(),
                "install.sh failed:\n{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            prefix
        })
        .clone()
}

/// Whether this run is CI's: `CI` set to anything but empty, `0` or `false`
/// (`.ci/run` sets `CI=true`). In CI every skip is a failure.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.trim().to_ascii_lowercase().as_str(), "" | "0" | "false"))
}

/// A test (or part of one) cannot run because an outside tool is missing:
/// outside CI, prints one line saying what was skipped, why, and how to get
/// the tool, and returns; under CI ([`in_ci`]), panics with the same words.
/// The line goes straight to the process's stderr, which libtest does not
/// capture, so that `cargo test` shows it.
pub fn skip(what: &str, why: &str, fix: &str) {
    let line = format!("SKIPPED {what}: {why} ({fix})");
    if in_ci() {
        panic!("CI=true and a test was skipped, which CI counts as a failure: {line}");
    }
    let _ = std::io::Write::write_all(&mut std::io::stderr(), format!("{line}\n").as_bytes());
}

/// Whether the command `tool args…` runs and exits 0 (a probe such as
/// `cmake --version`); if not, [`skip`]s `what` and returns false.
pub fn have_tool(tool: &str, args: &[&str], what: &str, fix: &str) -> bool {
    match Command::new(tool).args(args).output() {
        Ok(o) if o.status.success() => true,
        Ok(o) => {
            let err = String::from_utf8_lossy(&o.stderr);
            skip(what, &format!("`{tool} {}` failed: {}", args.join(" "), err.trim()), fix);
            false
        }
        Err(e) => {
            skip(what, &format!("`{tool}` cannot run: {e}"), fix);
            false
        }
    }
}

/// [`have_tool`] for the usual `TOOL --version` probe, where Debian's package
/// `package` provides the tool (`.ci/run` installs it).
pub fn have(tool: &str, package: &str, what: &str) -> bool {
    have_tool(tool, &["--version"], what, &format!("apt-get install {package}; .ci/run installs it"))
}

/// xorshift64*: deterministic test data without pulling rand's API into
/// tests. Each uniform draw below is one distribution a test file has always
/// used; a test keeps calling the same one so that it draws the same numbers.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545F4914F6CDD1D)
    }

    /// Uniform in [-1, 1) from the top 53 bits of one draw.
    pub fn unif_f64(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }

    /// [`Rng::unif_f64`] rounded to f32.
    pub fn unif_f64_as_f32(&mut self) -> f32 {
        self.unif_f64() as f32
    }

    /// Uniform in [-1, 1) from the top 24 bits of one draw (exact in f32).
    pub fn unif_f32_24bit(&mut self) -> f32 {
        ((self.next() >> 40) as f64 / (1u64 << 24) as f64 * 2.0 - 1.0) as f32
    }

    /// `n` draws of [`Rng::unif_f32_24bit`], each times `scale`.
    pub fn vec_24bit(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.unif_f32_24bit() * scale).collect()
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// `n` values with about `density` of them nonzero, each nonzero one a
    /// [`Rng::unif_f64_as_f32`].
    pub fn sparse(&mut self, n: usize, density: f64) -> Vec<f32> {
        (0..n)
            .map(|_| if (self.next() % 1000) as f64 / 1000.0 < density { self.unif_f64_as_f32() } else { 0.0 })
            .collect()
    }
}

/// Every ISA of this build that this CPU runs; prints a line for each skipped one.
pub fn isas() -> Vec<nnkern::simd::Isa> {
    nnkern::simd::Isa::all()
        .iter()
        .copied()
        .filter(|&isa| {
            let ok = isa.is_available();
            if !ok {
                println!("Skipping ISA {} (not available on this CPU)", isa.name());
            }
            ok
        })
        .collect()
}

/// Calls `f` with each of [`isas`].
pub fn each_isa(mut f: impl FnMut(nnkern::simd::Isa)) {
    for isa in isas() {
        f(isa)
    }
}

/// The scalar path and the one this CPU picks by default (one entry if they
/// are the same).
pub fn scalar_and_current() -> Vec<nnkern::simd::Isa> {
    let mut v = vec![nnkern::simd::Isa::Scalar, nnkern::simd::Isa::current()];
    v.dedup();
    v
}
