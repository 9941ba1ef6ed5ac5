#!/usr/bin/env python3
"""The one-command performance benchmark: nnkern against its peers on the
machine at hand, every figure a ratio measured in this run.

    python3 bench/perf.py [--rounds 3] [--mnist DIR] [--epochs 10] [--skip gemm,elem,mnist]
                          [--out bench/results] [--threads 2]

* **GEMM f32** on the MLP shapes and three squares, with 1 thread and with
  `--threads` (default: all cores): nnkern (`bench/examples/perf_rows.rs`)
  against the OpenBLAS inside numpy (`bench/peers/numpy_rows.py`), Debian's
  OpenBLAS through nnkern's `blas` feature (when libopenblas is installed), the
  `gemm` crate and matrixmultiply (1 thread). Each library runs in its own
  process, one after the other, so that no library's spinning threads steal
  another's core; a round runs them all, and each library's figure is its best
  round. The 1-thread squares are also given as a share of this core's FMA
  peak (a probe of 12 independent FMA chains).
* **Elementwise** exp, sigmoid and tanh at 64 Ki and 1 Mi f32, 1 thread,
  against numpy's float32 ufuncs (sigmoid: scipy's expit).
* **MNIST** 784-128-10, Adam, `--epochs` epochs (median epoch of a run):
  nnkern (`examples/train`) with 1 thread at batch 32 and 256, with a
  dense first layer (`--sparse no`), and with 2 threads; JAX
  (`bench/peers/jax_mnist.py`, the epoch one jitted scan) with 1 thread where
  it is installed. 1-thread runs are pinned to core 0 (taskset), as JAX's are.
  Skipped (with a line saying so) when the MNIST directory is missing.

Prints the machine (CPU name, family, model, ISA), the table of every row and
its ratio, and writes `perf.csv` and `perf.svg` (GFLOP/s per shape and
library, Gelem/s per function, seconds per epoch per system) into `--out`.
"""
import argparse
import csv
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# (label, spec) — spec is MxKxN:mode as perf_rows and numpy_rows take it;
# tn: A stored transposed (Xᵀ·dZ), nt: B stored transposed (dZ·Wᵀ).
GEMM_SHAPES = [
    ("1024³", "1024x1024x1024:nn"),
    ("512³", "512x512x512:nn"),
    ("256³", "256x256x256:nn"),
    ("fwd 32×784·784×128", "32x784x128:nn"),
    ("fwd 32×128·128×10", "32x128x10:nn"),
    ("dW 784×32ᵀ·32×128", "784x32x128:tn"),
    ("dW 128×32ᵀ·32×10", "128x32x10:tn"),
    ("dH 32×10·(128×10)ᵀ", "32x10x128:nt"),
    ("fwd 256×784·784×128", "256x784x128:nn"),
    ("fwd 256×128·128×10", "256x128x10:nn"),
    ("dW 784×256ᵀ·256×128", "784x256x128:tn"),
    ("dH 256×10·(128×10)ᵀ", "256x10x128:nt"),
]
SQUARES = {"1024³", "512³", "256³"}
ELEM_OPS = ["exp", "sigmoid", "tanh"]
ELEM_SIZES = [65536, 1048576]


# perf_rows links Debian's OpenBLAS (the `blas` feature), whose library
# constructor starts one worker per core; the workers spin (sched_yield) for
# about a tenth of a second before they sleep, and under `taskset -c 0` they
# share the timed thread's core (or, unpinned, the second thread's). Every
# perf_rows process therefore gets OPENBLAS_NUM_THREADS = 1, except Debian
# OpenBLAS's own rows, which get their thread count: on a 2-core Xeon (family 6, model 167) the first shape of a
# 1-thread process ran 2.10-2.22 ms (512^3) with the workers, 1.65-1.73 ms
# without.
ONE_BLAS_THREAD = {"OPENBLAS_NUM_THREADS": "1"}


def say(*a):
    print(*a, flush=True)


def cpu_info():
    name, fam, model, flags = "?", "?", "?", set()
    try:
        for line in open("/proc/cpuinfo"):
            k, _, v = line.partition(":")
            k, v = k.strip(), v.strip()
            if k == "model name" and name == "?":
                name = v
            elif k == "cpu family" and fam == "?":
                fam = v
            elif k == "model" and model == "?":
                model = v
            elif k == "flags" and not flags:
                flags = set(v.split())
    except OSError:
        pass
    isa = "AVX-512" if "avx512f" in flags else "AVX2+FMA" if {"avx2", "fma"} <= flags else "other"
    return f"{name} (family {fam}, model {model}, {isa}, {os.cpu_count()} logical cores)"


def run(cmd, env=None, pin=False):
    if pin and shutil.which("taskset"):
        cmd = ["taskset", "-c", "0"] + cmd
    e = dict(os.environ)
    e.update(env or {})
    p = subprocess.run(cmd, cwd=ROOT, env=e, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stderr[-2000:]}")
    return p.stdout


def rows(out):
    """{name: seconds} from ROW lines."""
    r = {}
    for line in out.splitlines():
        if line.startswith("ROW,"):
            _, _, name, s = line.split(",")
            r[name] = float(s)
    return r


def have_system_openblas():
    try:
        out = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
    except OSError:
        return False
    return "libopenblas.so " in out or "libopenblas.so\t" in out or "libopenblas.so (" in out


def have_module(name):
    return subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True).returncode == 0


def geomean(v):
    v = [x for x in v if x > 0 and math.isfinite(x)]
    return math.exp(sum(map(math.log, v)) / len(v)) if v else float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--mnist", default=os.path.join(ROOT, "..", "shared", "data", "mnist"))
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--skip", default="", help="comma-separated: gemm, elem, mnist")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results"))
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    machine = cpu_info()
    say(f"machine: {machine}")
    say(f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, rounds: {args.rounds}")

    blas = have_system_openblas()
    feats = ["--features", "blas"] if blas else []
    say("building (cargo build --release -p nnkern-bench --example perf_rows"
        + (" --features blas" if blas else "") + "; cargo build --release --example train)")
    subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "nnkern-bench", "--example", "perf_rows"] + feats,
                   cwd=ROOT, check=True)
    if "mnist" not in skip:
        subprocess.run(["cargo", "build", "--release", "--quiet", "--example", "train"], cwd=ROOT, check=True)
    tool = os.path.join(ROOT, "target", "release", "examples", "perf_rows")
    numpy_ok = have_module("numpy")
    if not numpy_ok:
        say("SKIPPED numpy peers: numpy is not installed (pip install numpy)")
    else:
        say(run([sys.executable, "bench/peers/numpy_rows.py", "info"]).strip())
    if not blas:
        say("SKIPPED Debian OpenBLAS peer: libopenblas is not installed (apt-get install libopenblas-dev)")

    results = []  # (kind, name, threads, library, seconds, rate, unit)
    table = []  # printed at the end

    if "gemm" not in skip:
        specs = [s for _, s in GEMM_SHAPES]
        libs = [("nnkern", lambda t: [tool, "gemm", str(t), "native"] + specs, False)]
        if numpy_ok:
            libs.append(("numpy (OpenBLAS)", lambda t: [sys.executable, "bench/peers/numpy_rows.py", "gemm", str(t)]
                         + specs, False))
        if blas:
            libs.append(("Debian OpenBLAS", lambda t: [tool, "gemm", str(t), "blas"] + specs, False))
        libs.append(("gemm crate", lambda t: [tool, "gemm", str(t), "gemm_crate"] + specs, False))
        libs.append(("matrixmultiply", lambda t: [tool, "gemm", "1", "matrixmultiply"] + specs, True))
        thread_counts = [1] + ([args.threads] if args.threads > 1 else [])
        peak = 0.0
        best = {}  # (threads, lib, spec) -> seconds
        for r in range(args.rounds):
            peak = max(peak, rows(run([tool, "fma"], env=ONE_BLAS_THREAD, pin=True))["peak"])
            for t in thread_counts:
                for lib, cmd, one_only in libs:
                    if one_only and t > 1:
                        continue
                    say(f"  round {r + 1}: GEMM, {t} thread(s), {lib}")
                    blas_env = {"OPENBLAS_NUM_THREADS": str(t) if lib == "Debian OpenBLAS" else "1"}
                    for spec, s in rows(run(cmd(t), env=blas_env, pin=(t == 1))).items():
                        key = (t, lib, spec)
                        best[key] = min(best.get(key, math.inf), s)
        results.append(("fma", "FMA probe", 1, "probe", float("nan"), peak, "GFLOP/s"))
        for t in thread_counts:
            ratios = []
            for label, spec in GEMM_SHAPES:
                m, k, n = (int(x) for x in spec.split(":")[0].split("x"))
                flops = 2 * m * k * n
                for lib, _, _ in libs:
                    if (t, lib, spec) in best:
                        s = best[(t, lib, spec)]
                        results.append(("gemm", f"{label} [{spec}]", t, lib, s, flops / s / 1e9, "GFLOP/s"))
                ours = best[(t, "nnkern", spec)]
                blas_peers = [best[(t, l, spec)] for l in ("numpy (OpenBLAS)", "Debian OpenBLAS") if (t, l, spec) in best]
                ratio = min(blas_peers) / ours if blas_peers else float("nan")
                ratios.append(ratio)
                extra = ""
                if t == 1 and label in SQUARES:
                    extra = f"{flops / ours / 1e9 / peak * 100:.0f}% of the FMA probe"
                table.append((f"GEMM {t}t", label, f"{flops / ours / 1e9:.1f} GFLOP/s",
                              f"{ratio:.2f}× best OpenBLAS", extra))
            table.append((f"GEMM {t}t", "geometric mean", "", f"{geomean(ratios):.2f}× best OpenBLAS", ""))
        table.append(("GEMM", "FMA probe (1 thread)", f"{peak:.1f} GFLOP/s", "", ""))

    if "elem" not in skip:
        sizes = [str(n) for n in ELEM_SIZES]
        best = {}
        for r in range(args.rounds):
            for op in ELEM_OPS:
                say(f"  round {r + 1}: {op}")
                cmds = [("nnkern", [tool, "elem", op] + sizes)]
                if numpy_ok:
                    cmds.append(("numpy", [sys.executable, "bench/peers/numpy_rows.py", "elem", op] + sizes))
                for lib, cmd in cmds:
                    for name, s in rows(run(cmd, env=ONE_BLAS_THREAD, pin=True)).items():
                        best[(lib, name)] = min(best.get((lib, name), math.inf), s)
        for op in ELEM_OPS:
            for n in ELEM_SIZES:
                name = f"{op}:{n}"
                for lib in ("nnkern", "numpy"):
                    if (lib, name) in best:
                        s = best[(lib, name)]
                        results.append(("elem", name, 1, lib, s, n / s / 1e9, "Gelem/s"))
                ours = best[("nnkern", name)]
                ratio = best[("numpy", name)] / ours if ("numpy", name) in best else float("nan")
                table.append(("elementwise 1t", f"{op}, {n // 1024} Ki f32", f"{n / ours / 1e9:.2f} Gelem/s",
                              f"{ratio:.2f}× numpy", ""))

    if "mnist" not in skip:
        d = os.path.abspath(args.mnist)
        if not os.path.exists(os.path.join(d, "train-images-idx3-ubyte.gz")) and \
                not os.path.exists(os.path.join(d, "train-images-idx3-ubyte")):
            say(f"SKIPPED MNIST rows: no MNIST in {d} (give --mnist DIR)")
        else:
            train = os.path.join(ROOT, "target", "release", "examples", "train")
            jax_ok = have_module("jax")
            if not jax_ok:
                say("SKIPPED JAX peer: jax is not installed (pip install jax)")
            confs = []
            for b in (32, 256):
                base = [train, "--idx", d, "--epochs", str(args.epochs), "--batch-size", str(b), "--progress", "never"]
                confs.append((f"nnkern 1t", b, base + ["--threads", "1"], {}, True))
                confs.append((f"nnkern 1t dense", b, base + ["--threads", "1", "--sparse", "no"], {}, True))
                if args.threads > 1:
                    confs.append((f"nnkern {args.threads}t", b, base + ["--threads", str(args.threads)], {}, False))
                if jax_ok:
                    confs.append(("JAX 1t", b, [sys.executable, "bench/peers/jax_mnist.py", d, str(args.epochs), str(b)],
                                  {"XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"},
                                  True))
            best, acc = {}, {}
            for r in range(args.rounds):
                for name, b, cmd, env, pin in confs:
                    say(f"  round {r + 1}: MNIST {name}, batch {b}")
                    out = run(cmd, env=env, pin=pin)
                    sec = acc_v = None
                    m = re.search(r"median seconds per epoch[^:]*: ([0-9.]+)", out)
                    sec = float(m.group(1)) if m else None
                    m = re.search(r"test accuracy: ([0-9.]+)", out)
                    acc_v = float(m.group(1)) if m else None
                    if sec is None:
                        raise RuntimeError(f"no epoch time in the output of {' '.join(cmd)}:\n{out}")
                    best[(name, b)] = min(best.get((name, b), math.inf), sec)
                    acc.setdefault((name, b), []).append(acc_v)
            for b in (32, 256):
                for name, bb, _, _, _ in confs:
                    if bb == b:
                        results.append(("mnist", f"batch {b}", 0, name, best[(name, b)], best[(name, b)], "s/epoch"))
                ours = best[("nnkern 1t", b)]
                a = statistics.median(acc[("nnkern 1t", b)])
                if jax_ok:
                    jx = best[("JAX 1t", b)]
                    table.append(("MNIST 1t", f"batch {b}", f"{ours:.3f} s/epoch (acc {a:.4f})",
                                  f"{jx / ours:.2f}× JAX", f"JAX {jx:.3f} s, acc {statistics.median(acc[('JAX 1t', b)]):.4f}"))
                    dn = best[("nnkern 1t dense", b)]
                    table.append(("MNIST 1t", f"batch {b}, dense first layer", f"{dn:.3f} s/epoch", f"{jx / dn:.2f}× JAX", ""))
                else:
                    table.append(("MNIST 1t", f"batch {b}", f"{ours:.3f} s/epoch (acc {a:.4f})", "", ""))
                if args.threads > 1:
                    tt = best[(f"nnkern {args.threads}t", b)]
                    table.append((f"MNIST {args.threads}t", f"batch {b}", f"{tt:.3f} s/epoch",
                                  f"{ours / tt:.2f}× 1 thread", ""))

    say("")
    say(f"machine: {machine}")
    say("| part | row | nnkern | ratio | note |")
    say("|---|---|---:|---:|---|")
    for row in table:
        say("| " + " | ".join(row) + " |")
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "perf.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["machine", machine])
        w.writerow(["kind", "name", "threads", "library", "seconds", "rate", "unit"])
        for r in results:
            w.writerow([r[0], r[1], r[2], r[3], f"{r[4]:.6e}", f"{r[5]:.4f}", r[6]])
    with open(os.path.join(args.out, "perf.svg"), "w") as f:
        f.write(svg(results, machine))
    say(f"wrote {os.path.join(args.out, 'perf.csv')} and perf.svg")


COLORS = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf"]


def esc(s):
    return str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def svg(results, machine):
    """Horizontal grouped bar charts, one panel per part: GEMM per thread
    count (GFLOP/s), elementwise (Gelem/s), MNIST (seconds per epoch)."""
    panels = []
    for t in sorted({r[2] for r in results if r[0] == "gemm"}):
        panels.append((f"GEMM f32, {t} thread{'s' if t > 1 else ''} (GFLOP/s, higher is better)",
                       [r for r in results if r[0] == "gemm" and r[2] == t]))
    if any(r[0] == "elem" for r in results):
        panels.append(("Elementwise f32, 1 thread (Gelem/s, higher is better)", [r for r in results if r[0] == "elem"]))
    if any(r[0] == "mnist" for r in results):
        panels.append(("MNIST 784-128-10, Adam (seconds per epoch, lower is better)",
                       [r for r in results if r[0] == "mnist"]))
    libs = []
    for r in results:
        if r[0] != "fma" and r[3] not in libs:
            libs.append(r[3])
    color = {l: COLORS[i % len(COLORS)] for i, l in enumerate(libs)}
    width, label_w, bar_h, gap = 900, 250, 9, 8
    y = 50
    body = []
    for title, rs in panels:
        body.append(f'<text x="10" y="{y}" font-size="15" font-weight="bold">{esc(title)}</text>')
        y += 12
        groups = []
        for r in rs:
            if r[1] not in groups:
                groups.append(r[1])
        vmax = max(r[5] for r in rs) or 1
        scale = (width - label_w - 80) / vmax
        for g in groups:
            grs = [r for r in rs if r[1] == g]
            h = len(grs) * bar_h
            body.append(f'<text x="{label_w - 6}" y="{y + h / 2 + 4}" font-size="11" text-anchor="end">{esc(g)}</text>')
            for r in grs:
                w = max(r[5] * scale, 1)
                body.append(f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h - 1}" fill="{color[r[3]]}">'
                            f'<title>{esc(r[3])}: {r[5]:.3g} {esc(r[6])}</title></rect>')
                body.append(f'<text x="{label_w + w + 3:.1f}" y="{y + bar_h - 1}" font-size="9">{r[5]:.3g}</text>')
                y += bar_h
            y += gap
        y += 20
    legend = []
    x = 10
    for l in libs:
        legend.append(f'<rect x="{x}" y="{y}" width="12" height="12" fill="{color[l]}"/>'
                      f'<text x="{x + 16}" y="{y + 10}" font-size="11">{esc(l)}</text>')
        x += 30 + 7 * len(l)
    y += 30
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{y}" font-family="sans-serif">'
            f'<rect width="100%" height="100%" fill="white"/>'
            f'<text x="10" y="22" font-size="13">nnkern and its peers on {esc(machine)}</text>')
    return head + "".join(body) + "".join(legend) + "</svg>\n"


if __name__ == "__main__":
    main()
