#!/usr/bin/env python3
"""Turns criterion's results (target/criterion) into markdown tables of GFLOP/s
(or Gelem/s), one row per benchmark group, one column per implementation.

Usage: python3 bench/report.py [prefix ...]   e.g. gemm_f32_1t
"""
import json, os, sys
from collections import OrderedDict

root = os.path.join(os.path.dirname(__file__), "..", "target", "criterion")
prefixes = sys.argv[1:]
rows = OrderedDict()
cols = []
for dirpath, dirnames, filenames in os.walk(root):
    if not dirpath.endswith(os.path.join("new")) or "benchmark.json" not in filenames:
        continue
    meta = json.load(open(os.path.join(dirpath, "benchmark.json")))
    est = json.load(open(os.path.join(dirpath, "estimates.json")))
    group, func = meta["group_id"], meta.get("function_id") or meta.get("value_str")
    if prefixes and not any(group.startswith(p) for p in prefixes):
        continue
    thr = meta.get("throughput") or {}
    elems = thr.get("Elements") or thr.get("Bytes")
    ns = est["median"]["point_estimate"]
    rate = elems / ns if elems else float("nan")  # elements per ns = G/s
    rows.setdefault(group, {})[func] = rate
    if func not in cols:
        cols.append(func)
order = ["nnkern", "openblas", "gemm_crate", "matrixmultiply", "matrixmultiply_1t", "naive"]
cols.sort(key=lambda c: order.index(c) if c in order else len(order))
print("| group | " + " | ".join(cols) + " | nnkern / best other |")
print("|---|" + "---:|" * (len(cols) + 1))
for g in sorted(rows, key=lambda g: (g.split("/")[0], list(rows).index(g))):
    r = rows[g]
    others = [v for c, v in r.items() if c != "nnkern" and c != "naive"]
    ratio = r.get("nnkern", float("nan")) / max(others) if others else float("nan")
    print(f"| {g} | " + " | ".join(f"{r[c]:.1f}" if c in r else "—" for c in cols) + f" | {ratio:.2f} |")
