"""nnkern: SIMD neural-network kernels (a Rust library) from Python, via ctypes.

See ``nnkern._lib`` for how the shared library is located (``NNKERN_LIB``,
a bundled copy, the checkout's ``target/release``, the system path).
"""

from ._gemm import dgemm, sgemm
from ._lib import NnkError, NnkMemoryError, lib, library_path
from ._model import ACTIVATIONS, SOLVERS, MLPClassifier, Mlp, NotFittedError, TrainConfig

__all__ = ["NnkError", "NnkMemoryError", "NotFittedError", "MLPClassifier", "Mlp", "TrainConfig", "sgemm", "dgemm", "lib",
           "library_path", "version", "isa", "ACTIVATIONS", "SOLVERS"]
__version__ = "0.1.0"


def version() -> str:
    """The loaded library's version (``nnk_version``)."""
    return lib().nnk_version().decode()


def isa() -> str:
    """The instruction set the kernels use on this CPU (``nnk_isa_name``)."""
    return lib().nnk_isa_name().decode()
