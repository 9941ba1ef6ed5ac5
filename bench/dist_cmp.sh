#!/usr/bin/env bash
# Distributed against one process on MNIST (784-128-10, Adam, sparse first
# layer), alternating, ROUNDS rounds: 1 rank × 1 thread, 1 rank × 2 threads and
# RANKS ranks × 1 thread (mpirun), at each global batch; prints every run's
# median epoch time and, for the ranks, their communication share.
#   bench/dist_cmp.sh MNIST_DIR [EPOCHS=5] [ROUNDS=3] [BATCHES="256 1024"] [RANKS=2]
# Needs Open MPI and builds the example with --features mpi.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:?usage: bench/dist_cmp.sh MNIST_DIR [EPOCHS] [ROUNDS] [BATCHES] [RANKS]}
epochs=${2:-5}; rounds=${3:-3}; batches=${4:-256 1024}; ranks=${5:-2}
# TRAIN=path: time that binary instead (built with --features mpi).
t=${TRAIN:-target/release/examples/train}
[ -n "${TRAIN:-}" ] || cargo build --release --quiet --features mpi --example train
median() { grep -o "median seconds per epoch: [0-9.]*" | awk '{print $5}'; }
for b in $batches; do
  for r in $(seq "$rounds"); do
    out1=$($t --idx "$dir" --epochs "$epochs" --batch-size "$b" --threads 1 --progress never)
    one=$(echo "$out1" | median)
    acc1=$(echo "$out1" | grep -o "test accuracy: [0-9.]*" | awk '{print $3}')
    two=$($t --idx "$dir" --epochs "$epochs" --batch-size "$b" --threads 2 --progress never | median)
    out=$(mpirun --allow-run-as-root --oversubscribe -np "$ranks" $t --idx "$dir" --epochs "$epochs" \
          --batch-size "$b" --threads 1 --distributed --progress never)
    dist=$(echo "$out" | median)
    comm=$(echo "$out" | grep -o "[0-9.]*% of it in communication" | awk '{printf "%s ", $1}')
    acc=$(echo "$out" | grep -o "test accuracy: [0-9.]*" | awk '{print $3}')
    echo "batch $b round $r: 1x1 ${one}s 1x2 ${two}s ${ranks}x1 ${dist}s (${ranks}x1/1x1 rate $(awk -v a="$one" -v b="$dist" 'BEGIN { printf "%.2f", a / b }')x, comm ${comm}, test accuracy 1x1 $acc1 ${ranks}x1 $acc)"
  done
done
