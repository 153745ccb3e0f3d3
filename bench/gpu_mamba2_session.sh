#!/usr/bin/env bash
# One device call for the Mamba-2 SSD figures (issue 17): parity of the CUDA SSD scan against
# transformers (bench/gpu_mamba2.py --parity), then throughput of the d_model 768 x 24-layer
# Mamba-2 model: ssmgen at 1 Mb and 10 Mb (bf16, f32; 1e8 only where the measured 1e7 rate says
# it fits, else a marked projection), transformers' torch path, and, with mamba-ssm built from
# the anchors (in the background, ~80-190 s, while ssmgen runs), transformers' Mamba2 on
# mamba-ssm's kernels and mamba-ssm's own MambaLMHeadModel (Triton SSD). Every step is under
# `timeout` and prints its rows as they end.
# Here: cargo build --release; mkdir -p .device-carry/issue17; cp target/release/ssmgen
#       bench/{gpu_mamba2,common,gpu_throughput}.py .device-carry/issue17/;
#       cp -r ../shared/anchors .device-carry/   (then carry .device-carry)
# There: bash bench/gpu_mamba2_session.sh   (SKIP_PARITY=1 to leave the parity out)
cd "$(dirname "$0")/.."
export SSMGEN=${SSMGEN:-$PWD/.device-carry/issue17/ssmgen} PYTHONUNBUFFERED=1
ANCHORS=${ANCHORS:-$PWD/.device-carry/anchors}
t0=$(date +%s)
stamp() { echo "# [$(( $(date +%s) - t0 )) s] $*"; }
build=
if [[ -f $ANCHORS/build.sh ]]; then
  (timeout 240 bash "$ANCHORS/build.sh" /tmp/anchor-site > /tmp/anchor-build.log 2>&1
   echo "# anchors build rc $? after $(( $(date +%s) - t0 )) s") &
  build=$!
fi
cd bench
if [[ -z ${SKIP_PARITY:-} ]]; then
  stamp parity
  timeout 100 python3 gpu_mamba2.py --parity 2>&1 | grep -v "Loading\|falling back"
fi
M=--model-dir=/tmp/m2-768x24
stamp "ssmgen speed, bf16"
timeout ${BF16_BUDGET:-120} python3 gpu_mamba2.py --speed $M --stacks "ssmgen SSD" \
    --lengths 1048576,10000000 --precisions bf16 --timeout 60 \
    --long ${LONG:-1e8} --long-budget ${LONG_BUDGET:-60} 2>&1 | grep -v "Loading\|Writing"
stamp "ssmgen speed, f32"
timeout 60 python3 gpu_mamba2.py --speed $M --stacks "ssmgen SSD" --lengths 1048576 \
    --precisions f32 --timeout 50 2>&1 | grep -v "Loading\|Writing"
stamp "transformers torch path"
timeout 90 python3 gpu_mamba2.py --speed $M --stacks hf --lengths "" --precisions bf16 \
    --ref-lengths 65536,262144,1048576 --timeout 40 2>&1 | grep -v "Loading\|Writing"
if [[ -n $build ]]; then
  wait $build
  tail -2 /tmp/anchor-build.log
  export PYTHONPATH=/tmp/anchor-site
  stamp "mamba-ssm kernels"
  timeout 200 python3 gpu_mamba2.py --speed $M --stacks hf,mamba_ssm --lengths "" \
      --precisions bf16,f32 --ref-lengths 1048576,4194304,16777216 --timeout 60 2>&1 \
      | grep -v "Loading\|Writing"
fi
stamp end
