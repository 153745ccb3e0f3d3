#!/usr/bin/env bash
# One device call that measures the CUDA path against the reference and rechecks it (issue 14):
#   1. builds mamba-ssm from the anchors in the background while ssmgen runs gpu_parity.py
#      (default model), gpu_variants_exactness.py (cached vs naive) and the long lengths
#      (gpu_vs_reference.py --no-reference: 1e7, 1e8, 2.5e8 tokens; both models, f32 and bf16);
#   2. gpu_vs_reference.py at 131,072 / 1,048,576 / 4,194,304 tokens, both stacks, same weights.
# Here: cargo build --release; mkdir -p .device-carry; cp target/release/ssmgen .device-carry/;
#       cp -r ../shared/anchors .device-carry/     (then carry .device-carry; ~8 min there)
# SSMGEN overrides the binary (e.g. one unpacked from a compressed copy).
cd "$(dirname "$0")/.."
export SSMGEN=${SSMGEN:-$PWD/.device-carry/ssmgen} PYTHONUNBUFFERED=1
t0=$(date +%s)
(bash .device-carry/anchors/build.sh /tmp/anchor-site > /tmp/anchor-build.log 2>&1
 echo "anchors build rc $? in $(( $(date +%s) - t0 )) s") &
build=$!
cd bench
echo "== parity, exactness ($(( $(date +%s) - t0 )) s)"
timeout 90 python3 gpu_parity.py --models default 2>&1 | grep -E "cuda|cpu vs"
timeout 40 python3 gpu_variants_exactness.py --device cuda 2>&1 | tail -2
echo "== ssmgen, long lengths ($(( $(date +%s) - t0 )) s)"
timeout 300 python3 gpu_vs_reference.py --no-reference --lengths "" --long 1e7,1e8,2.5e8 \
    2>&1 | grep -v "Loading\|Writing\|falling back"
wait $build
tail -2 /tmp/anchor-build.log
export PYTHONPATH=/tmp/anchor-site
echo "== both stacks ($(( $(date +%s) - t0 )) s)"
timeout 180 python3 gpu_vs_reference.py --anchors ../.device-carry/anchors \
    --lengths 131072,1048576,4194304 --long "" 2>&1 | grep -v "Loading\|Writing\|falling back"
echo "total $(( $(date +%s) - t0 )) s"
