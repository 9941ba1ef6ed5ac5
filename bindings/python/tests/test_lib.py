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


def header_status_codes():
    """name -> value of every enumerator of ``enum nnk_status`` in the header."""
    text = HEADER.read_text()
    m = re.search(r"^enum nnk_status\b[^{]*\{(.*?)^\};", text, flags=re.M | re.S)
    assert m, "enum nnk_status not found in the header"
    body = re.sub(r"/\*.*?\*/", "", m.group(1), flags=re.S)
    return {name: int(value) for name, value in re.findall(r"\b(NNK_\w+)\s*=\s*(\d+)", body)}


def test_status_table_matches_the_header():
    codes = header_status_codes()
    assert codes["NNK_OK"] == 0 and codes["NNK_ERR_OUT_OF_MEMORY"] == 11
    ours = {k: v for k, v in vars(_lib).items() if k == "NNK_OK" or k.startswith("NNK_ERR_")}
    assert ours == codes
    # Every other constant the module defines is a #define of the header with the same value.
    defines = dict(re.findall(r"^#define (NNK_\w+) (\d+)$", HEADER.read_text(), flags=re.M))
    for k, v in vars(_lib).items():
        if k.startswith("NNK_") and k not in codes:
            assert int(defines[k]) == v, k
    # The library's texts agree: one per code, none reused.
    texts = [nnkern.lib().nnk_status_str(v).decode() for v in codes.values()]
    assert len(set(texts)) == len(texts) and "unknown status" not in texts
    assert nnkern.lib().nnk_status_str(max(codes.values()) + 1).decode() == "unknown status"


def test_out_of_memory_is_a_memory_error():
    e = _lib.error_for(_lib.NNK_ERR_OUT_OF_MEMORY, "out of memory: cannot allocate 4096 bytes for x")
    assert isinstance(e, MemoryError) and isinstance(e, nnkern.NnkError) and type(e) is nnkern.NnkMemoryError
    assert (e.code, e.status) == (11, "out of memory") and "4096 bytes" in str(e)
    try:
        raise e
    except MemoryError as caught:
        assert caught is e
    other = _lib.error_for(_lib.NNK_ERR_IO, "i/o error: x")
    assert type(other) is nnkern.NnkError and not isinstance(other, MemoryError)
