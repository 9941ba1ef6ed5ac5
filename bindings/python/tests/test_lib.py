import re
from pathlib import Path

import nnkern
from nnkern import _lib

HEADER = Path(__file__).resolve().parents[3] / "include" / "nnkern.h"


def test_every_header_function_has_a_signature():
    text = HEADER.read_text()
    names = set(re.findall(r"^[a-z][\w ]*?\*?\s*\b(nnk_\w+)\(", text, flags=re.M))
    assert len(names) > 30
    assert names == set(_lib.SIGNATURES), (names ^ set(_lib.SIGNATURES))
    lib = nnkern.lib()
    for name, (res, args) in _lib.SIGNATURES.items():
        f = getattr(lib, name)
        assert f.restype is res and f.argtypes == args, name


def test_library_info():
    assert nnkern.version() == nnkern.__version__
    assert nnkern.isa() in ("avx512", "avx2", "neon", "scalar")
    assert Path(nnkern.library_path()).is_file()
    e = nnkern.NnkError(3, "shape mismatch: x")
    assert (e.code, e.message, e.status) == (3, "shape mismatch: x", "shape mismatch") and "status 3" in str(e)
