#!/usr/bin/env python3
"""GPU time per kernel for one layer-stack pass of a 1,048,576-token stripe, with Nsight
Compute (ncu), on the random d_model 256 / 8 layer model of gpu_throughput.py.

    python3 bench/gpu_kernel_profile.py [--precision bf16]

Prints ncu's per-kernel summary (gpu__time_duration.sum); kernels of one layer are launched
once per layer, so each kernel's average is its time per layer per stripe.
"""
import argparse
import os
import subprocess
import tempfile

from common import binary, write_fasta
from gpu_throughput import make_big_model


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--precision", default="bf16")
    o = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = make_big_model(os.path.join(tmp, "d256"))
        fasta = os.path.join(tmp, "r2m.fa")
        write_fasta(fasta, 2_097_152)
        cmd = ["ncu", "--metrics", "gpu__time_duration.sum", "--launch-skip", "60", "--launch-count", "40",
               "--print-summary", "per-kernel", binary(), "likelihood", "-q", "-m", model, fasta,
               "--device", "cuda", "--precision", o.precision, "--stripe-len", "1048576",
               "--bin", "1000000", "-o", os.path.join(tmp, "out.bedgraph")]
        # ssmgen writes its output to a file, so stdout holds ncu's report alone.
        print(subprocess.run(cmd, capture_output=True, text=True).stdout)

if __name__ == "__main__":
    main()
