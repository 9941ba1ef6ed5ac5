#!/usr/bin/env bash
# Two settings of a distributed fit against each other, alternating, ROUNDS
# rounds: MNIST (784-128-10, Adam, sparse first layer), RANKS ranks × 1
# thread, global batch BATCH; each setting is a list of environment
# variables passed to every rank (mpirun -x). Prints each run's median epoch
# time, every rank's communication share, and the ratio B/A.
#   bench/dist_ab.sh MNIST_DIR "ENV_A" "ENV_B" [ROUNDS=6] [BATCH=256] [EPOCHS=10] [RANKS=2] [-- MPIRUN_ARGS...]
# For example, one bucket against 128 KiB buckets, as rings, over loopback TCP:
#   bench/dist_ab.sh ../shared/data/mnist "NNKERN_MPI_SHM=0 NNKERN_MPI_BUCKET_KB=0" \
#       "NNKERN_MPI_SHM=0 NNKERN_MPI_BUCKET_KB=128" 4 -- --mca btl tcp,self
# Needs Open MPI and builds the example with --features mpi.
set -euo pipefail
cd "$(dirname "$0")/.."
usage="usage: bench/dist_ab.sh MNIST_DIR ENV_A ENV_B [ROUNDS] [BATCH] [EPOCHS] [RANKS] [-- MPIRUN_ARGS]"
dir=${1:?$usage}; env_a=${2?$usage}; env_b=${3?$usage}; shift 3
pos=(); while [ $# -gt 0 ] && [ "$1" != "--" ]; do pos+=("$1"); shift; done
[ $# -gt 0 ] && shift
rounds=${pos[0]:-6}; batch=${pos[1]:-256}; epochs=${pos[2]:-10}; ranks=${pos[3]:-2}
t=${TRAIN:-target/release/examples/train}
[ -n "${TRAIN:-}" ] || cargo build --release --quiet --features mpi --example train
run() {
  local xs=() e
  for e in $1; do xs+=(-x "${e%%=*}"); done
  shift
  env $env_run mpirun --allow-run-as-root --oversubscribe "${xs[@]}" "$@" -np "$ranks" "$t" --idx "$dir" \
      --epochs "$epochs" --batch-size "$batch" --threads 1 --distributed --progress never
}
median() { grep -o "median seconds per epoch: [0-9.]*" | awk '{print $5}'; }
shares() { grep -o "[0-9.]*% of it in communication" | awk '{printf "%s ", $1}'; }
for r in $(seq "$rounds"); do
  env_run=$env_a; a=$(run "$env_a" "$@")
  env_run=$env_b; b=$(run "$env_b" "$@")
  ma=$(echo "$a" | median); mb=$(echo "$b" | median)
  echo "round $r: A ${ma}s (comm $(echo "$a" | shares)) B ${mb}s (comm $(echo "$b" | shares)) B/A $(awk -v a="$ma" -v b="$mb" 'BEGIN { printf "%.3f", b / a }')"
done
