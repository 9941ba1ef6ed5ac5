//! Build script: links the system CBLAS when the `blas` feature is on, and
//! gives the shared library a SONAME on Linux (`libnnkern.so.<major>`, what
//! `bindings/install.sh` installs).
//! The C header is *not* generated here (cbindgen#560); see `.ci/run` and README.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var_os("CARGO_FEATURE_BLAS").is_some() {
        println!("cargo:rustc-link-lib=dylib=openblas");
    }
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_else(|_| "0".into());
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libnnkern.so.{major}");
    }
}
