"""nnkern's MLPClassifier against scikit-learn's, side by side, one thread each.

    pip install ./bindings/python scikit-learn     # or NNKERN_LIB=target/release/libnnkern.so
    python3 bindings/python/bench_sklearn.py ../shared/data/mnist [--rounds 2] [--epochs 10] [--epochs32 2]
        [--dtype float32|float64] [--no-digits]

MNIST (60 000 training images scaled to [0, 1], 10 000 test images):
- scikit-learn's defaults, (100,) relu, adam, batch 'auto' = 200, alpha 1e-4,
  for --epochs epochs (seed 0): seconds per epoch and test accuracy of each;
- the same at batch 32 for --epochs32 epochs: seconds per epoch.
Each fit runs in its own process (one BLAS thread for scikit-learn through
threadpoolctl and OPENBLAS_NUM_THREADS, n_threads=1 for nnkern), the two
libraries alternating, --rounds times; the ratio is taken per round and the
median reported. Then the digits (the bundled UCI set, a seeded 80/20 split):
test accuracy of both at scikit-learn's defaults over 5 seeds.
Prints the CPU's name.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from bench_overhead import find, idx  # noqa: E402  (the IDX reader)


def mnist(d):
    xtr = idx(find(d, "train-images-idx3-ubyte")).reshape(60000, -1).astype(np.float32) / np.float32(255)
    ytr = idx(find(d, "train-labels-idx1-ubyte")).astype(np.int64)
    xte = idx(find(d, "t10k-images-idx3-ubyte")).reshape(10000, -1).astype(np.float32) / np.float32(255)
    yte = idx(find(d, "t10k-labels-idx1-ubyte")).astype(np.int64)
    return xtr, ytr, xte, yte


def estimator(lib, **kw):
    if lib == "nnkern":
        sys.path.insert(0, HERE)
        import nnkern
        return nnkern.MLPClassifier(n_threads=1, **kw)
    from sklearn.neural_network import MLPClassifier
    return MLPClassifier(**kw)


def child(lib, data, batch, epochs, dtype):
    """One fit; prints a JSON line: seconds per epoch, test accuracy."""
    from threadpoolctl import threadpool_limits
    xtr, ytr, xte, yte = mnist(data)
    # scikit-learn computes in the input's dtype: float32 is its fastest,
    # float64 what most loaders give it. nnkern converts to float32.
    xtr, xte = xtr.astype(dtype), xte.astype(dtype)
    est = estimator(lib, hidden_layer_sizes=(100,), batch_size=batch, max_iter=epochs, random_state=0)
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        est.fit(xtr, ytr)
        secs = time.perf_counter() - t0
    print(json.dumps({"epoch_s": secs / est.n_iter_, "acc": float(est.score(xte, yte)), "epochs": est.n_iter_}))


def run_child(lib, data, batch, epochs, dtype):
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    out = subprocess.run([sys.executable, __file__, "--child", lib, data, str(batch), str(epochs), dtype], env=env,
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{lib} child failed:\n{out.stdout}{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def cpu_name():
    try:
        info = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        f = {k.strip(): v.strip() for k, v in (l.split(":", 1) for l in info.splitlines() if ":" in l)}
        return f"{f.get('Model name')} (family {f.get('CPU family')}, model {f.get('Model')}), {os.cpu_count()} CPUs"
    except OSError:
        return "unknown CPU"


def digits(seeds):
    sys.path.insert(0, HERE)
    import nnkern
    from sklearn.neural_network import MLPClassifier
    d = np.loadtxt(os.path.join(ROOT, "data", "digits.csv"), delimiter=",", skiprows=1)
    X, y = (d[:, :64] / 16.0).astype(np.float32), d[:, 64].astype(int)
    perm = np.random.RandomState(0).permutation(len(y))
    te, tr = perm[:len(y) // 5], perm[len(y) // 5:]
    ours, theirs = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for s in range(seeds):
            ours.append(nnkern.MLPClassifier(random_state=s, n_threads=1).fit(X[tr], y[tr]).score(X[te], y[te]))
            theirs.append(MLPClassifier(random_state=s).fit(X[tr], y[tr]).score(X[te], y[te]))
    return ours, theirs


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _, _, lib, data, batch, epochs, dtype = sys.argv
        child(lib, data, int(batch) if batch != "auto" else "auto", int(epochs), dtype)
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mnist_dir")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=10, help="epochs at scikit-learn's defaults (batch 200)")
    ap.add_argument("--epochs32", type=int, default=2, help="epochs timed at batch 32")
    ap.add_argument("--seeds", type=int, default=5, help="digits seeds")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"],
                    help="the inputs' dtype for both (scikit-learn computes in it)")
    ap.add_argument("--no-digits", action="store_true", help="skip the digits accuracy comparison")
    a = ap.parse_args()
    print(f"CPU: {cpu_name()}; inputs {a.dtype}")
    for batch, epochs, target in (("auto", a.epochs, 3.0), (32, a.epochs32, 5.0)):
        ratios = []
        for r in range(a.rounds):
            ours = run_child("nnkern", a.mnist_dir, batch, epochs, a.dtype)
            theirs = run_child("sklearn", a.mnist_dir, batch, epochs, a.dtype)
            ratios.append(theirs["epoch_s"] / ours["epoch_s"])
            print(f"MNIST batch {batch}, {epochs} epochs, round {r + 1}: nnkern {ours['epoch_s']:.3f} s/epoch "
                  f"(test acc {ours['acc']:.4f}), scikit-learn {theirs['epoch_s']:.3f} s/epoch "
                  f"(test acc {theirs['acc']:.4f}): {ratios[-1]:.2f}x, accuracy difference "
                  f"{ours['acc'] - theirs['acc']:+.4f}", flush=True)
        print(f"MNIST batch {batch}: median {statistics.median(ratios):.2f}x faster per epoch (target {target}x)")
    if a.no_digits:
        return
    ours, theirs = digits(a.seeds)
    print(f"digits, scikit-learn's defaults, {a.seeds} seeds: nnkern {np.mean(ours):.4f} "
          f"({', '.join(f'{v:.3f}' for v in ours)}), scikit-learn {np.mean(theirs):.4f} "
          f"({', '.join(f'{v:.3f}' for v in theirs)}): difference {np.mean(ours) - np.mean(theirs):+.4f} "
          "(target within 0.01)")


if __name__ == "__main__":
    main()
