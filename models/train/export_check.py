#!/usr/bin/env python3
"""Export check: the exported checkpoint, loaded by transformers' MambaForCausalLM and by
ssmgen, gives the same log-probabilities (max |difference| <= 1e-4) on a held-out sequence.

    python3 models/train/export_check.py [--model models/ssmgen-dna-small] [--bases 20000]
"""
import argparse
import os
import sys
import tempfile

import torch

from data import HELD_OUT, read_fasta

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from common import TOKENS, likelihood_csv_column, transformers_logp  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "ssmgen-dna-small"))
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data"))
    ap.add_argument("--bases", type=int, default=20000)
    o = ap.parse_args()
    seq = read_fasta(os.path.join(o.data, HELD_OUT))[0][: o.bases].decode().upper()
    with tempfile.TemporaryDirectory() as tmp:
        fa = os.path.join(tmp, "heldout.fa")
        with open(fa, "w") as f:
            f.write(">heldout\n" + "\n".join(seq[i : i + 60] for i in range(0, len(seq), 60)) + "\n")
        ours = likelihood_csv_column(["-m", o.model, fa, "--device", "cpu"])
    device = "cuda" if torch.cuda.is_available() else "cpu"
    ref = transformers_logp(o.model, [TOKENS.get(c, 11) for c in seq], device)
    diffs = [abs(a - b) for a, b in zip(ours, ref) if a is not None and b is not None]
    worst = max(diffs)
    print(f"{len(diffs):,} bases: max |ssmgen - transformers(float64)| = {worst:.2e}, "
          f"mean {sum(diffs) / len(diffs):.2e}")
    sys.exit(0 if worst <= 1e-4 else 1)


if __name__ == "__main__":
    main()
