#!/bin/sh
# Runs every fuzz target for SECONDS (default 600) each, one after another,
# then minimizes each corpus; prints one summary line per target.
# Usage: fuzz/run_all.sh [SECONDS] [TARGET...]
set -u
cd "$(dirname "$0")"
secs=${1:-600}
[ $# -gt 0 ] && shift
targets=${*:-"model_file csv idx c_gemm c_kernels c_trainer"}
cargo +nightly fuzz build -O >/dev/null 2>&1 || { echo "fuzz build failed" >&2; exit 1; }
mkdir -p logs
status=0
for t in $targets; do
    mkdir -p "corpus/$t"
    cargo +nightly fuzz run -O "$t" "corpus/$t" -- -max_total_time="$secs" -rss_limit_mb=2048 \
        -max_len=4096 -print_final_stats=1 > "logs/$t.log" 2>&1
    rc=$?
    [ $rc -eq 0 ] || status=1
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "logs/$t.log")
    cov=$(grep -o 'cov: [0-9]*' "logs/$t.log" | tail -n 1)
    echo "$t: rc=$rc runs=$runs $cov time=${secs}s"
done
for t in $targets; do
    cargo +nightly fuzz cmin -O "$t" "corpus/$t" >/dev/null 2>&1
done
exit $status
