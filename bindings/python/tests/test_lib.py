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


# Run in a child interpreter: the address-space limit must not reach pytest.
REAL_OOM = r"""
import resource, sys
import numpy as np
import nnkern

def vm_size():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmSize:"))

# 4096-16384-10: 67 M weights (256 MiB); Adam needs three times that again.
m = nnkern.Mlp(4096, [(16384, nnkern.ACTIVATIONS["relu"]), (10, 4)], seed=1)
x = np.full((1, 4096), 0.5, dtype=np.float32)
before = m.predict_proba(x).copy()
X = np.zeros((8, 4096), dtype=np.float32)
y = np.arange(8, dtype=np.uint32) % 10
cfg = nnkern.TrainConfig().epochs(1)
resource.setrlimit(resource.RLIMIT_AS, (vm_size() + (64 << 20), resource.RLIM_INFINITY))
try:
    m.fit_classifier(cfg, X, y)
    sys.exit("fit did not fail")
except MemoryError as e:
    assert isinstance(e, nnkern.NnkMemoryError) and e.status == "out of memory", e
    assert "bytes" in e.message, e.message
resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
after = m.predict_proba(x)
assert (after.view(np.uint32) == before.view(np.uint32)).all(), "the model changed"
print("REAL OOM OK")
"""


def test_a_real_out_of_memory_is_a_memory_error_and_keeps_the_model():
    import subprocess
    import sys

    if not Path("/proc/self/status").exists():
        import pytest

        pytest.skip("needs Linux's /proc for the address-space size")
    import os

    # The child imports this same package (and NNKERN_LIB's library).
    env = dict(os.environ, PYTHONPATH=str(Path(nnkern.__file__).resolve().parents[1]))
    r = subprocess.run([sys.executable, "-c", REAL_OOM], capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0 and "REAL OOM OK" in r.stdout, r.stdout + r.stderr
