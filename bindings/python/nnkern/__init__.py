"""nnkern: SIMD neural-network kernels (a Rust library) from Python.

``MLPClassifier`` and ``MLPRegressor`` are scikit-learn estimators (they need
scikit-learn, imported on first use); ``Mlp`` and ``TrainConfig`` are the
library's trainer handles, ``sgemm``/``dgemm`` its GEMM on numpy arrays.

See ``nnkern._lib`` for how the shared library is located (``NNKERN_LIB``,
the extension module a ``pip install`` builds, a bundled copy, the
checkout's ``target/release``, the system path).
"""

from ._gemm import dgemm, sgemm
from ._lib import NnkError, NnkMemoryError, NnkValueError, lib, library_path
from ._model import ACTIVATIONS, SOLVERS, Mlp, NotFittedError, TrainConfig

__all__ = ["NnkError", "NnkMemoryError", "NnkValueError", "NotFittedError", "MLPClassifier", "MLPRegressor", "Mlp",
           "TrainConfig", "sgemm", "dgemm", "lib", "library_path", "version", "isa", "ACTIVATIONS", "SOLVERS"]
__version__ = "0.1.0"


def __getattr__(name):
    # The estimators import scikit-learn: only when they are asked for.
    if name in ("MLPClassifier", "MLPRegressor"):
        from . import _estimators
        return getattr(_estimators, name)
    raise AttributeError(f"module 'nnkern' has no attribute {name!r}")


def version() -> str:
    """The loaded library's version (``nnk_version``)."""
    return lib().nnk_version().decode()


def isa() -> str:
    """The instruction set the kernels use on this CPU (``nnk_isa_name``)."""
    return lib().nnk_isa_name().decode()
