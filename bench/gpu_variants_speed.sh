#!/usr/bin/env bash
# score-variants speed on a GPU (issue 16): default model, --window 128, the runs of
# docs/performance.md ("score-variants on the GPU: batched continuations").
#   SSMGEN=path/to/ssmgen bash bench/gpu_variants_speed.sh
# Prints each figure as it comes; every step is under `timeout`.
set -u
cd "$(dirname "$0")"
export SSMGEN=${SSMGEN:-$PWD/../target/release/ssmgen}
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null
step() { echo "== $*"; timeout "$@" 2>&1 | tail -n 12; }
# dense: one SNV per 100 bases, both strands (20,000 and 100,000 SNVs)
step 90 python3 variants_bench.py synthetic --model default --length 2e6 --every 100 --window 128 --device cuda --skip-naive --extra=--profile
step 90 python3 variants_bench.py synthetic --model default --length 1e7 --every 100 --window 128 --device cuda --skip-naive
# sparse: 10,000 SNVs on 5 Mb against fresh 8,192-base windows (500 of them)
step 120 python3 variants_bench.py synthetic --model default --length 5e6 --snvs 10000 --window 128 --context 8192 --naive-snvs 500 --device cuda
# saturation mutagenesis: every SNV of the last 20 kb of a 1 Mb chromosome
step 90 python3 variants_bench.py allsnvs --model default --length 1e6 --region 20000 --window 128 --device cuda
