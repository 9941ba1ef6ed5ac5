//! Build script: links the system CBLAS when the `blas` feature is on.
//! The C header is *not* generated here (cbindgen#560); see `.ci/run` and README.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var_os("CARGO_FEATURE_BLAS").is_some() {
        println!("cargo:rustc-link-lib=dylib=openblas");
    }
}
