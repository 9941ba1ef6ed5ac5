//! Build script: links the system CBLAS when the `blas` feature is on, and
//! (feature `capi`) gives the shared library a SONAME on Linux
//! (`libnnkern.so.<major>`, what `bindings/install.sh` installs).
//! The C header is *not* generated here (cbindgen#560); see `.ci/run` and README.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var_os("CARGO_FEATURE_BLAS").is_some() {
        println!("cargo:rustc-link-lib=dylib=openblas");
    }
    // The shared library exists only with the C API (`--features capi
    // --crate-type cdylib`, see Cargo.toml). The package declares no cdylib
    // target, so `rustc-cdylib-link-arg` would draw a cargo warning: the
    // plain link argument reaches the cdylib (and, harmlessly, this package's
    // own test executables, which get a DT_SONAME nobody reads).
    if std::env::var_os("CARGO_FEATURE_CAPI").is_some()
        && std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
    {
        let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_else(|_| "0".into());
        println!("cargo:rustc-link-arg=-Wl,-soname,libnnkern.so.{major}");
    }
}
