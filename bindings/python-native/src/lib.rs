//! `nnkern._native`: the CPython extension module that carries nnkern's C
//! API into the Python wheel. The Python package loads this very file with
//! ctypes and calls the `nnk_*` functions of `include/nnkern.h` in it; the
//! module defines no Python functions of its own.

use pyo3::prelude::*;

// Keeps the C API (the `#[no_mangle]` functions of `nnkern::ffi`) linked
// into this library and exported from it.
pub use nnkern::ffi;

/// The module; it has only a docstring.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__doc__", "nnkern's C API (libnnkern) for the ctypes layer of the nnkern package.")?;
    Ok(())
}
