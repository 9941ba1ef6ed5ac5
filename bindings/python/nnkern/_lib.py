"""Loading ``libnnkern`` and the ctypes signature of every C function.

The shared library is located, first match wins:

1. ``$NNKERN_LIB``: the path of the library file itself. If it is set but
   cannot be loaded, that is an error (no silent fallback).
2. The extension module ``nnkern/_native*.so`` (``.pyd`` on Windows) that
   ``pip install bindings/python`` builds with maturin: nnkern's C API inside
   a CPython module, loaded here with ctypes like any C library.
3. A copy bundled in this package directory (``nnkern/libnnkern.so``,
   ``.dylib`` on macOS, ``nnkern.dll`` on Windows).
4. ``target/release/`` of the source checkout this package lives in
   (``bindings/python/../../target/release/libnnkern.so``), as built by
   ``cargo rustc --release --lib --features capi --crate-type staticlib,cdylib``.
5. ``ctypes.util.find_library("nnkern")`` (the system library path).

The library is loaded on first use, not at import.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
import threading
from ctypes import POINTER, c_char, c_char_p, c_double, c_float, c_int32, c_int64, c_size_t, c_uint32, c_uint64, c_void_p
from pathlib import Path

__all__ = ["NnkError", "NnkMemoryError", "NnkValueError", "lib", "library_path", "check", "error_for", "SIGNATURES"]

if sys.platform == "darwin":
    _FILE = "libnnkern.dylib"
elif sys.platform == "win32":
    _FILE = "nnkern.dll"
else:
    _FILE = "libnnkern.so"

# Status codes (enum nnk_status in include/nnkern.h; a test checks this table
# against the header).
NNK_OK = 0
NNK_ERR_INVALID_ARG = 1
NNK_ERR_NULL_POINTER = 2
NNK_ERR_SHAPE = 3
NNK_ERR_OVERFLOW = 4
NNK_ERR_NON_FINITE = 5
NNK_ERR_UNSUPPORTED = 6
NNK_ERR_IO = 7
NNK_ERR_FORMAT = 8
NNK_ERR_DIVERGED = 9
NNK_ERR_PANIC = 10
NNK_ERR_OUT_OF_MEMORY = 11

NNK_ROW_MAJOR = 101
NNK_COL_MAJOR = 102
NNK_NO_TRANS = 111
NNK_TRANS = 112


class NnkError(Exception):
    """A nonzero status from libnnkern.

    ``code`` is the ``NNK_ERR_*`` status, ``message`` the library's message for
    the failed call (``nnk_last_error_message``), ``status`` the short name of
    the code (``nnk_status_str``, e.g. ``"invalid argument"``).
    """

    def __init__(self, code: int, message: str):
        super().__init__(code, message)
        self.code = int(code)
        self.message = message

    @property
    def status(self) -> str:
        return lib().nnk_status_str(self.code).decode("utf-8", "replace")

    def __str__(self) -> str:
        return f"{self.message} (nnkern status {self.code})"


class NnkMemoryError(NnkError, MemoryError):
    """``NNK_ERR_OUT_OF_MEMORY``: an allocation inside the library failed (the
    message gives its size and what it was for); nothing was changed.

    Both an :class:`NnkError` and a :class:`MemoryError`, so ``except
    MemoryError`` catches it as it catches Python's own allocation failures.
    """


class NnkValueError(NnkError, ValueError):
    """A bad argument: ``NNK_ERR_INVALID_ARG``, ``NNK_ERR_SHAPE``,
    ``NNK_ERR_OVERFLOW``, ``NNK_ERR_NON_FINITE`` or ``NNK_ERR_DIVERGED``.
    Also a :class:`ValueError`, as Python and scikit-learn report bad values."""


_VALUE_ERRORS = (NNK_ERR_INVALID_ARG, NNK_ERR_SHAPE, NNK_ERR_OVERFLOW, NNK_ERR_NON_FINITE, NNK_ERR_DIVERGED)


def error_for(code: int, message: str) -> NnkError:
    """The exception for a nonzero status ``code`` with ``message``:
    :class:`NnkMemoryError` for ``NNK_ERR_OUT_OF_MEMORY``,
    :class:`NnkValueError` for a bad argument or value, else :class:`NnkError`."""
    if code == NNK_ERR_OUT_OF_MEMORY:
        return NnkMemoryError(code, message)
    if code in _VALUE_ERRORS:
        return NnkValueError(code, message)
    return NnkError(code, message)


# Opaque handle types, so that ctypes refuses a model where a config is expected.
class nnk_mlp(ctypes.Structure):
    _fields_: list = []


class nnk_train_config(ctypes.Structure):
    _fields_: list = []


class nnk_epoch_info(ctypes.Structure):
    _fields_ = [
        ("epoch", c_size_t),
        ("loss", c_double),
        ("val_loss", c_double),
        ("val_score", c_double),
        ("learning_rate", c_double),
        ("seconds", c_double),
        ("score", c_double),
    ]


class nnk_csr(ctypes.Structure):
    _fields_ = [
        ("n_rows", c_size_t),
        ("n_cols", c_size_t),
        ("nnz", c_size_t),
        ("indptr", POINTER(c_int64)),
        ("indices", POINTER(c_int32)),
        ("data", POINTER(c_float)),
    ]


class nnk_fit_summary(ctypes.Structure):
    _fields_ = [
        ("n_iter", c_size_t),
        ("n_validation_scores", c_size_t),
        ("steps", c_uint64),
        ("samples_seen", c_uint64),
        ("best_loss", c_double),
        ("best_validation_score", c_double),
        ("restored_epoch", c_size_t),
        ("stopped_early", c_int32),
        ("stopped_by_callback", c_int32),
        ("seconds", c_double),
    ]


EPOCH_CALLBACK = ctypes.CFUNCTYPE(c_int32, POINTER(nnk_epoch_info), c_void_p)

_f32p = POINTER(c_float)
_f64p = POINTER(c_double)
_u32p = POINTER(c_uint32)
_mlp = POINTER(nnk_mlp)
_cfg = POINTER(nnk_train_config)

# name -> (restype, argtypes): every function of include/nnkern.h (a test checks
# this table against the header). Only these are ever called.
SIGNATURES: dict = {
    # errors and info
    "nnk_last_error_message": (c_char_p, []),
    "nnk_last_error": (c_size_t, [POINTER(c_char), c_size_t]),
    "nnk_status_str": (c_char_p, [c_int32]),
    "nnk_version": (c_char_p, []),
    "nnk_isa_name": (c_char_p, []),
    "nnk_get_num_threads": (c_size_t, []),
    "nnk_set_num_threads": (c_int32, [c_size_t]),
    # GEMM
    "nnk_sgemm": (c_int32, [c_int32, c_int32, c_int32, c_size_t, c_size_t, c_size_t,
                            c_float, _f32p, c_size_t, _f32p, c_size_t, c_float, _f32p, c_size_t]),
    "nnk_dgemm": (c_int32, [c_int32, c_int32, c_int32, c_size_t, c_size_t, c_size_t,
                            c_double, _f64p, c_size_t, _f64p, c_size_t, c_double, _f64p, c_size_t]),
    # kernels
    "nnk_activation_forward": (c_int32, [c_uint32, c_size_t, c_size_t, _f32p, _f32p]),
    "nnk_vexp_f32": (c_int32, [_f32p, _f32p, c_size_t]),
    "nnk_vlog_f32": (c_int32, [_f32p, _f32p, c_size_t]),
    "nnk_vtanh_f32": (c_int32, [_f32p, _f32p, c_size_t]),
    "nnk_vsigmoid_f32": (c_int32, [_f32p, _f32p, c_size_t]),
    "nnk_vsoftplus_f32": (c_int32, [_f32p, _f32p, c_size_t]),
    "nnk_vgelu_f32": (c_int32, [_f32p, _f32p, c_size_t]),
    "nnk_activation_backward": (c_int32, [c_uint32, c_size_t, c_size_t, _f32p, _f32p, _f32p, _f32p]),
    "nnk_dense_forward": (c_int32, [c_uint32, c_size_t, c_size_t, c_size_t, _f32p, _f32p, _f32p, _f32p, _f32p]),
    "nnk_dense_backward": (c_int32, [c_uint32, c_size_t, c_size_t, c_size_t, _f32p, _f32p, _f32p, _f32p, _f32p,
                                     c_float, _f32p, _f32p, _f32p]),
    "nnk_softmax_cross_entropy": (c_int32, [c_size_t, c_size_t, _f32p, _u32p, _f32p, _f32p]),
    "nnk_adam_step": (c_int32, [c_size_t, _f32p, _f32p, _f32p, _f32p, c_uint64, c_float, c_float, c_float, c_float,
                                c_float]),
    "nnk_sgd_step": (c_int32, [c_size_t, _f32p, _f32p, _f32p, c_float, c_float, c_uint32, c_float]),
    # trainer
    "nnk_mlp_new": (c_int32, [c_size_t, c_size_t, POINTER(c_size_t), _u32p, c_uint64, POINTER(_mlp)]),
    "nnk_mlp_free": (None, [_mlp]),
    "nnk_mlp_load": (c_int32, [c_char_p, POINTER(_mlp)]),
    "nnk_mlp_save": (c_int32, [_mlp, c_char_p]),
    "nnk_mlp_n_inputs": (c_size_t, [_mlp]),
    "nnk_mlp_n_outputs": (c_size_t, [_mlp]),
    "nnk_mlp_fit_classifier": (c_int32, [_mlp, _cfg, _f32p, c_size_t, c_size_t, _u32p]),
    "nnk_mlp_fit_regressor": (c_int32, [_mlp, _cfg, _f32p, c_size_t, c_size_t, _f32p, c_size_t]),
    "nnk_mlp_predict_proba": (c_int32, [_mlp, _f32p, c_size_t, c_size_t, _f32p, c_size_t]),
    "nnk_mlp_predict_class": (c_int32, [_mlp, _f32p, c_size_t, c_size_t, _u32p, c_size_t]),
    "nnk_mlp_partial_fit_classifier": (c_int32, [_mlp, _cfg, _f32p, c_size_t, c_size_t, _u32p]),
    "nnk_mlp_partial_fit_regressor": (c_int32, [_mlp, _cfg, _f32p, c_size_t, c_size_t, _f32p, c_size_t]),
    "nnk_mlp_fit_classifier_csr": (c_int32, [_mlp, _cfg, POINTER(nnk_csr), _u32p]),
    "nnk_mlp_fit_regressor_csr": (c_int32, [_mlp, _cfg, POINTER(nnk_csr), _f32p, c_size_t]),
    "nnk_mlp_partial_fit_classifier_csr": (c_int32, [_mlp, _cfg, POINTER(nnk_csr), _u32p]),
    "nnk_mlp_partial_fit_regressor_csr": (c_int32, [_mlp, _cfg, POINTER(nnk_csr), _f32p, c_size_t]),
    "nnk_mlp_n_layers": (c_size_t, [_mlp]),
    "nnk_mlp_layer": (c_int32, [_mlp, c_size_t, POINTER(c_size_t), POINTER(c_size_t), _u32p]),
    "nnk_mlp_get_params": (c_int32, [_mlp, c_size_t, _f32p, c_size_t, _f32p, c_size_t]),
    "nnk_mlp_set_params": (c_int32, [_mlp, c_size_t, _f32p, c_size_t, _f32p, c_size_t]),
    "nnk_mlp_to_bytes": (c_int32, [_mlp, POINTER(ctypes.c_uint8), c_size_t, POINTER(c_size_t)]),
    "nnk_mlp_from_bytes": (c_int32, [POINTER(ctypes.c_uint8), c_size_t, POINTER(_mlp)]),
    "nnk_mlp_fit_history": (c_int32, [_mlp, POINTER(nnk_fit_summary), _f64p, _f64p, c_size_t]),
    "nnk_train_config_new": (c_int32, [POINTER(_cfg)]),
    "nnk_train_config_free": (None, [_cfg]),
    "nnk_train_config_set_alpha": (c_int32, [_cfg, c_double]),
    "nnk_train_config_set_batch_size": (c_int32, [_cfg, c_size_t]),
    "nnk_train_config_set_callback": (c_int32, [_cfg, EPOCH_CALLBACK, c_void_p]),
    "nnk_train_config_set_early_stopping": (c_int32, [_cfg, c_uint32, c_double, c_size_t, c_double]),
    "nnk_train_config_set_epochs": (c_int32, [_cfg, c_size_t]),
    "nnk_train_config_set_learning_rate": (c_int32, [_cfg, c_double]),
    "nnk_train_config_set_momentum": (c_int32, [_cfg, c_double, c_uint32]),
    "nnk_train_config_set_schedule": (c_int32, [_cfg, c_uint32, c_double]),
    "nnk_train_config_set_seed": (c_int32, [_cfg, c_uint64]),
    "nnk_train_config_set_solver": (c_int32, [_cfg, c_uint32]),
    "nnk_train_config_set_threads": (c_int32, [_cfg, c_size_t]),
    "nnk_train_config_set_sparse_input": (c_int32, [_cfg, c_uint32]),
    "nnk_train_config_set_flush_denormals": (c_int32, [_cfg, c_uint32]),
    "nnk_train_config_set_mpi_comm": (c_int32, [_cfg, c_int64]),
    "nnk_train_config_set_distributed": (c_int32, [_cfg, c_uint32]),
    "nnk_train_config_set_data_shard": (c_int32, [_cfg, c_uint32]),
    "nnk_train_config_set_beta_1": (c_int32, [_cfg, c_double]),
    "nnk_train_config_set_beta_2": (c_int32, [_cfg, c_double]),
    "nnk_train_config_set_epsilon": (c_int32, [_cfg, c_double]),
    "nnk_train_config_set_rho": (c_int32, [_cfg, c_double]),
    "nnk_train_config_set_l1": (c_int32, [_cfg, c_double]),
    "nnk_train_config_set_clip_norm": (c_int32, [_cfg, c_double]),
    "nnk_train_config_set_shuffle": (c_int32, [_cfg, c_uint32]),
    "nnk_train_config_set_warm_start": (c_int32, [_cfg, c_uint32]),
    "nnk_train_config_set_tol": (c_int32, [_cfg, c_double]),
    "nnk_train_config_set_n_iter_no_change": (c_int32, [_cfg, c_size_t]),
    "nnk_train_config_set_validation_fraction": (c_int32, [_cfg, c_double]),
    "nnk_train_config_set_power_t": (c_int32, [_cfg, c_double]),
    "nnk_train_config_set_step_factor": (c_int32, [_cfg, c_double]),
}

_lock = threading.Lock()
_lib = None
_path = None


def _native_modules(here):
    """The ``_native`` extension module files in the package directory."""
    import importlib.machinery
    found = []
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        p = here / ("_native" + suffix)
        if p.is_file():
            found.append(p)
    return found


def _candidates():
    env = os.environ.get("NNKERN_LIB")
    if env:
        return [("NNKERN_LIB", env)]
    here = Path(__file__).resolve().parent
    out = [("extension module", str(p)) for p in _native_modules(here)]
    out.append(("bundled", str(here / _FILE)))
    out.append(("checkout", str(here.parent.parent.parent / "target" / "release" / _FILE)))
    found = ctypes.util.find_library("nnkern")
    if found:
        out.append(("find_library", found))
    return out


def _import_native():
    """Imports ``nnkern._native`` so that CPython has loaded it (and resolved
    its interpreter symbols) before ctypes opens the same file."""
    import importlib
    importlib.import_module(__package__ + "._native")


def _load():
    tried = []
    for how, path in _candidates():
        if how != "find_library" and not os.path.isfile(path):
            tried.append(f"{how}: {path} (no such file)")
            if how == "NNKERN_LIB":
                break
            continue
        if how == "extension module":
            _import_native()
        try:
            handle = ctypes.CDLL(path)
        except OSError as e:
            tried.append(f"{how}: {path} ({e})")
            if how == "NNKERN_LIB":
                break
            continue
        for name, (res, args) in SIGNATURES.items():
            f = getattr(handle, name)  # AttributeError: a library older than this package
            f.restype = res
            f.argtypes = args
        return handle, path
    raise OSError("cannot load libnnkern; tried:\n  " + "\n  ".join(tried)
                  + "\nInstall the package with `pip install bindings/python` (it builds the library), build it with"
                  + " `cargo rustc --release --lib --features capi --crate-type staticlib,cdylib`, or set NNKERN_LIB"
                  + " to its path.")


def lib():
    """The loaded library (a ``ctypes.CDLL`` with every signature declared)."""
    global _lib, _path
    if _lib is None:
        with _lock:
            if _lib is None:
                _lib, _path = _load()
    return _lib


def library_path() -> str:
    """The file the library was loaded from (loads it if needed)."""
    lib()
    return _path


def last_error_message() -> str:
    return lib().nnk_last_error_message().decode("utf-8", "replace")


def check(status: int) -> None:
    """Raises :class:`NnkError` for a nonzero status, with this thread's message.

    Call it right after the C call, on the same thread: the message is per
    thread and only valid until the next nnkern call.
    """
    if status != NNK_OK:
        raise error_for(status, last_error_message())


def ptr(a, ctype):
    """A typed pointer to the first element of a numpy array (None for None)."""
    if a is None:
        return None
    return a.ctypes.data_as(POINTER(ctype))
