#!/usr/bin/env python3
"""Error of each GPU precision against the f32 CPU backend, per base, on a random record.

    python3 bench/precision_error.py [--length 1e6] [--precisions f32,tf32,bf16]

Models: the shipped default model and the random d256 / 8-layer model of gpu_throughput.py
(written by transformers; needs torch + transformers, as on the GPU machine). Prints max and
mean |Δ logp| of `likelihood --device cuda --precision P` against `--device cpu`.
"""
import argparse
import os
import tempfile

from common import ROOT, likelihood_csv_column, max_mean_abs, write_fasta
from gpu_throughput import make_big_model


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--length", type=float, default=1e6)
    ap.add_argument("--precisions", default="f32,tf32,bf16")
    opts = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        fasta = os.path.join(tmp, "r.fa")
        write_fasta(fasta, int(opts.length), seed=11)
        models = {"default d128 L6": os.path.join(ROOT, "models", "ssmgen-dna-small"),
                  "random d256 L8": make_big_model(os.path.join(tmp, "d256"))}
        print(f"{'model':<16} {'precision':<9} {'max |d logp|':>13} {'mean |d logp|':>14}")
        for label, model in models.items():
            cpu = likelihood_csv_column(["--device", "cpu", "-m", model, fasta])
            for p in opts.precisions.split(","):
                gpu = likelihood_csv_column(["--device", "cuda", "--precision", p, "-m", model, fasta])
                worst, mean = max_mean_abs(gpu, cpu)
                print(f"{label:<16} {p:<9} {worst:>13.3e} {mean:>14.3e}", flush=True)


if __name__ == "__main__":
    main()
