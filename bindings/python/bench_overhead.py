"""Time per epoch of the Python estimator against the Rust trainer on MNIST.

    cargo build --release --lib --example train
    python3 bindings/python/bench_overhead.py ../shared/data/mnist [--epochs 3] [--repeats 3] [--threads 1]

Both train 784-128-10 (relu, adam, lr 1e-3, alpha 1e-4, batch 32, seed 0) on the
60 000 training images scaled to [0, 1] and evaluate on the 10 000 test images.
Python: wall time of ``MLPClassifier.fit`` (argument checks, label encoding,
ctypes, the per-epoch Python callback, and the library's fit). Rust: wall time
of ``Mlp::fit`` in ``examples/train`` (its ``fit: X s`` line), the same work
without any binding. Both divided by the epochs. Runs alternate so both see the same machine load; the overhead is the
median of the per-pair ratios. Also printed: the time each side spends in
``fit`` outside its epochs (setup, checks, label encoding, ctypes), measured
within one process, which does not depend on the machine's speed drifting
between the two runs. Prints both accuracies (they should be equal:
same data, seed and kernels).
"""
import argparse
import csv
import gzip
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import nnkern  # noqa: E402


def idx(path):
    raw = open(path, "rb").read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    nd = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(nd)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * nd).reshape(dims)


def find(d, stem):
    for name in (stem, stem + ".gz"):
        if os.path.exists(os.path.join(d, name)):
            return os.path.join(d, name)
    raise SystemExit(f"{stem}[.gz] not in {d}")


def main():
    warnings.filterwarnings("ignore", message="Stochastic Optimizer: Maximum iterations")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mnist_dir")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="kernel threads for both (0 = all cores)")
    a = ap.parse_args()
    xtr = idx(find(a.mnist_dir, "train-images-idx3-ubyte")).reshape(60000, -1).astype(np.float32) / np.float32(255)
    ytr = idx(find(a.mnist_dir, "train-labels-idx1-ubyte"))
    xte = idx(find(a.mnist_dir, "t10k-images-idx3-ubyte")).reshape(10000, -1).astype(np.float32) / np.float32(255)
    yte = idx(find(a.mnist_dir, "t10k-labels-idx1-ubyte"))
    exe = os.path.join(ROOT, "target", "release", "examples", "train")
    if not os.path.exists(exe):
        raise SystemExit("build first: cargo build --release --lib --example train")
    ratios, py_epoch, rs_epoch, outside = [], [], [], []
    for rep in range(a.repeats):
        clf = nnkern.MLPClassifier(hidden_layer_sizes=(128,), activation="relu", solver="adam", alpha=1e-4,
                                   batch_size=32, learning_rate_init=1e-3, max_iter=a.epochs, random_state=0, n_threads=a.threads)
        t0 = time.perf_counter()
        clf.fit(xtr, ytr)
        py_wall = time.perf_counter() - t0
        py = py_wall / a.epochs
        py_out = py_wall - clf._model.history()["seconds"]
        py_acc = clf.score(xte, yte)
        with tempfile.TemporaryDirectory() as tmp:
            curve = os.path.join(tmp, "curve.csv")
            out = subprocess.run([exe, "--idx", a.mnist_dir, "--hidden", "128", "--epochs", str(a.epochs),
                                  "--batch-size", "32", "--lr", "0.001", "--alpha", "0.0001", "--seed", "0",
                                  "--threads", str(a.threads), "--curve", curve], capture_output=True, text=True, check=True).stdout
            assert len(list(csv.DictReader(open(curve)))) == a.epochs
            rs_secs = sum(float(r["seconds"]) for r in csv.DictReader(open(curve)))
        rs_wall = float(out.rsplit("fit: ", 1)[1].split()[0])
        rs = rs_wall / a.epochs
        rs_out = rs_wall - rs_secs
        outside.append((py_out, rs_out))
        rs_acc = float(out.rsplit("test accuracy:", 1)[1].split()[0])
        ratios.append(py / rs)
        py_epoch.append(py)
        rs_epoch.append(rs)
        print(f"run {rep + 1}: python {py:.3f} s/epoch (acc {py_acc:.4f})  rust {rs:.3f} s/epoch (acc {rs_acc:.4f})"
              f"  ratio {py / rs:.3f}  outside epochs: python {py_out:.3f} s, rust {rs_out:.3f} s", flush=True)
    med = statistics.median(ratios)
    print(f"median: python {statistics.median(py_epoch):.3f} s/epoch, rust {statistics.median(rs_epoch):.3f} s/epoch, "
          f"overhead {100 * (med - 1):+.1f}% (python/rust = {med:.3f})")
    extra = statistics.median(p - r for p, r in outside) / statistics.median(py_epoch) / a.epochs
    print(f"binding cost outside the epochs (python - rust, median): {100 * extra:+.2f}% of an epoch")


if __name__ == "__main__":
    main()
