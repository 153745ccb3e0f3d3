#!/usr/bin/env python3
"""CPU backend against transformers' MambaForCausalLM in float64, on a random record: the
float32 error of `ssmgen likelihood --device cpu` (max and mean |Δ logp| of the observed base).

    python3 bench/cpu_accuracy.py [--models default,fixture] [--length 30000]

Needs torch + transformers (the float64 reference runs transformers' torch path on the CPU:
about a minute per model for 30 kb on two cores).
"""
import argparse
import os
import tempfile

from common import ROOT, fasta_tokens, likelihood_csv_column, max_mean_abs, transformers_logp, write_fasta

MODELS = {"fixture": os.path.join(ROOT, "test-data", "fixture-model"),
          "default": os.path.join(ROOT, "models", "ssmgen-dna-small")}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="default,fixture")
    ap.add_argument("--length", type=int, default=30000)
    o = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        fa = os.path.join(tmp, "random.fa")
        write_fasta(fa, o.length)
        print(f"{'model':<8} {'length':>8} {'max |d logp|':>13} {'mean |d logp|':>14}")
        for name in o.models.split(","):
            ours = likelihood_csv_column(["-m", MODELS[name], fa, "--device", "cpu"])
            mx, mean = max_mean_abs(ours, transformers_logp(MODELS[name], fasta_tokens(fa)))
            print(f"{name:<8} {o.length:>8} {mx:>13.3e} {mean:>14.3e}", flush=True)


if __name__ == "__main__":
    main()
