#!/usr/bin/env python3
"""Two ssmgen builds on the same inputs in one device call: device time per stage (--profile).

    python3 bench/gpu_ab.py --a OLD_BINARY --b NEW_BINARY [--models d256,default]
        [--precisions f32,bf16] [--length 1e7] [--rounds 2] [--a-env VAR=VALUE] [--b-env VAR=VALUE]

Runs `likelihood --profile --device cuda` on one random record, A and B interleaved `--rounds`
times (the machines are noisy: compare within one run), and prints per build the device and wall
milliseconds of the last round, then every stage's milliseconds side by side with B/A.
"""
import argparse
import os
import re
import subprocess
import tempfile

from common import ROOT, write_fasta
from gpu_throughput import make_big_model


def profile(binary, model, fasta, precision, out, env=None, warmup=False):
    cmd = [binary, "likelihood", "-q", "--profile", "--device", "cuda", "--precision", precision,
           "-m", model, fasta, "--bin", "1000000", "-o", out] + (["--device-warmup"] if warmup else [])
    run_env = dict(os.environ, **dict([env.split("=", 1)])) if env else None
    run = subprocess.run(cmd, capture_output=True, text=True, check=True, env=run_env)
    m = re.search(r"profile: device ([0-9.]+) ms of ([0-9.]+) ms wall", run.stderr)
    listed = run.stderr.split("profile: ", 1)[-1].split("): ", 1)[-1]
    stages = {name: float(ms) for name, ms in re.findall(r"([A-Za-z_/0-9]+) ([0-9.]+) ms", listed)}
    return (float(m.group(1)), float(m.group(2))) if m else (float("nan"), float("nan")), stages


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--a", required=True)
    ap.add_argument("--b", required=True)
    ap.add_argument("--models", default="d256,default")
    ap.add_argument("--precisions", default="f32,bf16")
    ap.add_argument("--length", default="1e7")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--a-env", help="VAR=VALUE set for A's runs (e.g. SSMGEN_SCAN=split)")
    ap.add_argument("--b-env", help="VAR=VALUE set for B's runs")
    ap.add_argument("--warmup", action="store_true", help="pass --device-warmup (both builds must have it)")
    opts = ap.parse_args()
    n = int(float(opts.length))
    with tempfile.TemporaryDirectory() as tmp:
        models = {}
        if "d256" in opts.models:
            models["d256 L8"] = make_big_model(os.path.join(tmp, "d256"))
        if "default" in opts.models:
            models["default d128 L6"] = os.path.join(ROOT, "models", "ssmgen-dna-small")
        fasta = os.path.join(tmp, "r.fa")
        write_fasta(fasta, n)
        out = os.path.join(tmp, "o.bedgraph")
        for label, model in models.items():
            for precision in opts.precisions.split(","):
                for _ in range(opts.rounds):
                    a = profile(opts.a, model, fasta, precision, out, opts.a_env, opts.warmup)
                    b = profile(opts.b, model, fasta, precision, out, opts.b_env, opts.warmup)
                (a_dev, a_wall), a_st = a
                (b_dev, b_wall), b_st = b
                print(f"## {label} {precision} {n} tokens: device ms A {a_dev:.0f} B {b_dev:.0f} "
                      f"(B/A {b_dev / a_dev:.3f}); wall ms A {a_wall:.0f} B {b_wall:.0f}; "
                      f"B tokens/s device {n / b_dev * 1e3:.3e} wall {n / b_wall * 1e3:.3e}", flush=True)
                for stage in sorted(set(a_st) | set(b_st), key=lambda s: -max(a_st.get(s, 0), b_st.get(s, 0))):
                    x, y = a_st.get(stage), b_st.get(stage)
                    ratio = f"{y / x:.3f}" if x and y else "-"
                    print(f"   {stage:<22} {x if x is not None else '-':>10} {y if y is not None else '-':>10} {ratio:>7}")


if __name__ == "__main__":
    main()
