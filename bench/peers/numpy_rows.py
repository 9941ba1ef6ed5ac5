"""numpy's side of the one-command benchmark (`python3 bench/perf.py`), with the
protocol and data of `bench/examples/perf_rows.rs`: one process times one
library's rows, `perf.py` alternates it with nnkern's.

    python3 bench/peers/numpy_rows.py gemm THREADS SHAPE...   SHAPE: MxKxN:nn|tn|nt
    python3 bench/peers/numpy_rows.py elem OP N...             OP: exp | sigmoid | tanh

The thread count goes to numpy's BLAS through OPENBLAS_NUM_THREADS (and the
other usual variables), set before numpy is imported. Every row prints
`ROW,<kind>,<name>,<seconds per call>`: the median over 21 blocks of about
2 ms after one warm-up block. sigmoid is scipy.special.expit (a float32 ufunc)
where scipy is installed, else numpy's 1/(1 + exp(-x)) in place.
`info` prints numpy's version and its BLAS.
"""
import os
import sys


def main():
    a = sys.argv[1:]
    if a and a[0] == "gemm":
        for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[v] = a[1]
    import time

    import numpy as np

    def per_call(f):
        t = time.perf_counter()
        f()
        once = max(time.perf_counter() - t, 1e-7)
        inner = max(1, min(100_000, int(2e-3 / once)))

        def block():
            t = time.perf_counter()
            for _ in range(inner):
                f()
            return (time.perf_counter() - t) / inner

        block()
        v = sorted(block() for _ in range(21))
        return v[len(v) // 2]

    if a and a[0] == "gemm":
        for spec in a[2:]:
            dims, _, mode = spec.partition(":")
            m, k, n = (int(x) for x in dims.split("x"))
            mode = mode or "nn"
            x = ((np.arange(m * k) * 7) % 13).astype(np.float32) * np.float32(0.1) - np.float32(0.6)
            w = ((np.arange(k * n) * 5) % 11).astype(np.float32) * np.float32(0.1) - np.float32(0.5)
            av = x.reshape(k, m).T if mode == "tn" else x.reshape(m, k)
            bv = w.reshape(n, k).T if mode == "nt" else w.reshape(k, n)
            c = np.empty((m, n), np.float32)
            s = per_call(lambda: np.matmul(av, bv, out=c))
            print(f"ROW,gemm,{spec},{s:e}", flush=True)
    elif a and a[0] == "elem":
        op = a[1]
        if op == "exp":
            f = np.exp
        elif op == "tanh":
            f = np.tanh
        elif op == "sigmoid":
            try:
                from scipy.special import expit as f
            except ImportError:
                def f(x, out):
                    np.negative(x, out=out)
                    np.exp(out, out=out)
                    out += np.float32(1)
                    np.reciprocal(out, out=out)
        else:
            sys.exit(f"unknown op {op}")
        for n in a[2:]:
            n = int(n)
            x = ((7919 * np.arange(n, dtype=np.int64)) % 10007).astype(np.float32) / np.float32(10007) \
                * np.float32(10) - np.float32(5)
            y = np.empty_like(x)
            s = per_call(lambda: f(x, out=y))
            print(f"ROW,elem,{op}:{n},{s:e}", flush=True)
    elif a and a[0] == "info":
        cfg = np.show_config(mode="dicts") if hasattr(np, "show_config") else {}
        blas = (cfg.get("Build Dependencies", {}) or {}).get("blas", {}) if isinstance(cfg, dict) else {}
        print(f"numpy {np.__version__}, BLAS {blas.get('name', '?')} {blas.get('version', '')}".strip())
    else:
        sys.exit(__doc__)


main()
