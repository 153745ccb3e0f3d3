#!/usr/bin/env bash
# One device call that rechecks the CUDA path after a kernel change and measures it against the
# reference: builds mamba-ssm from the anchors (in the background), then
#   gpu_parity.py (fixture and default model), gpu_variants_exactness.py (cached vs naive),
#   gpu_caduceus.py --parity (released Caduceus code), and
#   gpu_vs_reference.py at 1,048,576 and 4,194,304 tokens (both stacks) and 1e8 (ssmgen).
# Here: cargo build --release; mkdir -p .device-carry; cp target/release/ssmgen .device-carry/;
#       cp -r ../shared/anchors .device-carry/     (then carry .device-carry; ~7 min there)
cd "$(dirname "$0")/.."
export SSMGEN=$PWD/.device-carry/ssmgen
t0=$(date +%s)
(bash .device-carry/anchors/build.sh /tmp/anchor-site > /tmp/anchor-build.log 2>&1
 echo "anchors build rc $? in $(( $(date +%s) - t0 )) s") &
build=$!
cd bench
timeout 150 python3 gpu_parity.py --models fixture,default 2>&1 | grep -E "cuda|cpu vs"
timeout 60 python3 gpu_variants_exactness.py --device cuda 2>&1 | tail -2
wait $build
tail -3 /tmp/anchor-build.log
export PYTHONPATH=/tmp/anchor-site
timeout 100 python3 gpu_caduceus.py --parity --anchors ../.device-carry/anchors 2>&1 | tail -12
timeout 280 python3 gpu_vs_reference.py --anchors ../.device-carry/anchors \
    --lengths 1048576,4194304 --long 1e8 2>&1 | grep -v "Loading\|Writing\|falling back"
echo "total $(( $(date +%s) - t0 )) s"
