#!/usr/bin/env python3
"""Held-out bits per base of a model, computed by `ssmgen likelihood` itself: the mean of
-log2 p of the observed base over both strands of the held-out genome (every scored base: all
but N, and the first base of each strand when the model has no BOS).

    python3 models/train/heldout_bits.py [--model models/ssmgen-dna-small] [--device auto] [--precision f32]
"""
import argparse
import math
import os
import subprocess
import sys

from data import HELD_OUT

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from common import binary  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "ssmgen-dna-small"))
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data"))
    ap.add_argument("--device", default="auto")
    ap.add_argument("--precision", default="f32", help="f32 or bf16 (GPU only)")
    o = ap.parse_args()
    cmd = [binary(), "likelihood", "-q", "-m", o.model, os.path.join(o.data, HELD_OUT),
           "--strand", "both", "-f", "csv", "--device", o.device, "--precision", o.precision]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    header = next(proc.stdout).rstrip("\n").split(",")
    fwd, rev = header.index("logp_fwd"), header.index("logp_rev")
    total, count = 0.0, 0
    for line in proc.stdout:
        f = line.rstrip("\n").split(",")
        for v in (f[fwd], f[rev]):
            if v:
                total -= float(v)
                count += 1
    if proc.wait() != 0:
        sys.exit("ssmgen failed")
    print(f"{HELD_OUT}: {count:,} scored bases (both strands), {total / count / math.log(2):.4f} bits/base")


if __name__ == "__main__":
    main()
