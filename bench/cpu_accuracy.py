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

from common import ROOT, likelihood_csv_column, max_mean_abs, write_fasta

MODELS = {"fixture": os.path.join(ROOT, "test-data", "fixture-model"),
          "default": os.path.join(ROOT, "models", "ssmgen-dna-small")}


def float64_logp(model, fasta):
    import torch
    from transformers import MambaForCausalLM
    ids = {"A": 7, "C": 8, "G": 9, "T": 10}
    seq = "".join(l.strip() for l in open(fasta) if not l.startswith(">"))
    tokens = torch.tensor([ids.get(c, 11) for c in seq])[None]
    m = MambaForCausalLM.from_pretrained(model, dtype=torch.float64).eval()
    with torch.no_grad():
        logp = torch.log_softmax(m(input_ids=tokens, use_cache=False).logits[0].double(), -1)
    return [None] + [float(logp[i - 1, tokens[0, i]]) for i in range(1, tokens.shape[1])]


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
            mx, mean = max_mean_abs(ours, float64_logp(MODELS[name], fa))
            print(f"{name:<8} {o.length:>8} {mx:>13.3e} {mean:>14.3e}", flush=True)


if __name__ == "__main__":
    main()
