#!/usr/bin/env bash
# Runs the CUDA Mamba-1 scan (kernels/scan.cu) and Mamba-2 kernels (kernels/{norm,conv,graph,
# mamba2}.cu) on the CPU: emu.h turns
# every CUDA thread into a std::thread (barriers for __syncthreads and warp shuffles), and
# mamba2_harness.cpp launches them as src/backend/cuda/ops/mamba2.rs does, against a float64
# reference of the mixer, whole and in stripes. Needs g++ >= 12 (C++20). From the repo root:
#     bash kernels/emulate/run.sh          # three shapes
#     bash kernels/emulate/run.sh quick    # one (what tests/cuda_emulated.rs runs)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for f in math norm conv graph mamba2; do cat "$here/../$f.cu"; done | sed 's/^extern "C" //' > "$tmp/kernels.inc"
# The Mamba-1 scan (scan.cu; its inline PTX has a host fallback): local pass, carry, output.
for f in math norm scan; do cat "$here/../$f.cu"; done | sed 's/^extern "C" //' > "$tmp/scan.inc"
mkdir -p "$tmp/scan" && mv "$tmp/scan.inc" "$tmp/scan/kernels.inc"
g++ -std=c++20 -O1 -pthread -I"$tmp/scan" "$here/scan_harness.cpp" -o "$tmp/scan_harness"
result=$("$tmp/scan_harness") || { echo "$result"; echo "FAILED: mamba1 scan" >&2; exit 1; }
echo "${result//$'\n'/ }"
# The state gathers and checkpoint copies (state.cu) against the copies they replace.
mkdir -p "$tmp/state"
for f in math conv state; do cat "$here/../$f.cu"; done | sed 's/^extern "C" //' > "$tmp/state/kernels.inc"
g++ -std=c++20 -O1 -pthread -I"$tmp/state" "$here/state_harness.cpp" -o "$tmp/state_harness"
result=$("$tmp/state_harness") || { echo "$result"; echo "FAILED: state kernels" >&2; exit 1; }
echo "$result"
configs=("-DM2_N=24 -DGROUPS=2" "-DM2_N=40 -DGROUPS=1" "-DM2_N=128 -DGROUPS=4" "-DM2_N=128 -DGROUPS=1 -DHP=64 -DM2_Q=128 -DLEN=300")
if [[ "${1:-}" == quick ]]; then configs=("${configs[0]}"); fi
for cfg in "${configs[@]}"; do
    g++ -std=c++20 -O1 -pthread -I"$tmp" $cfg "$here/mamba2_harness.cpp" -o "$tmp/harness"
    status=0
    result=$("$tmp/harness") || status=$?
    echo "$cfg: ${result//$'\n'/ }"
    if [[ $status != 0 ]]; then echo "FAILED: $cfg" >&2; exit 1; fi
done
