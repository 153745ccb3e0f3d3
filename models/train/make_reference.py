#!/usr/bin/env python3
"""Writes test-data/default-model-reference.safetensors: the shipped model's log-probabilities
on test-data/fixture.fa, computed by transformers' own MambaForCausalLM in float64 on the CPU,
so `cargo test` checks the built-in model against an independent implementation.

    python3 models/train/make_reference.py [--model models/ssmgen-dna-small]
"""
import argparse
import os

import torch
from safetensors.torch import save_file
from transformers import MambaForCausalLM

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOKENS = {"A": 7, "C": 8, "G": 9, "T": 10}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "ssmgen-dna-small"))
    ap.add_argument("--fasta", default=os.path.join(ROOT, "test-data", "fixture.fa"))
    ap.add_argument("--out", default=os.path.join(ROOT, "test-data", "default-model-reference.safetensors"))
    o = ap.parse_args()
    seq = "".join(l.strip() for l in open(o.fasta) if not l.startswith(">"))
    tokens = torch.tensor([TOKENS.get(c.upper(), 11) for c in seq], dtype=torch.long)
    model = MambaForCausalLM.from_pretrained(o.model, dtype=torch.float64).eval()
    with torch.no_grad():
        logits = model(input_ids=tokens[None], use_cache=False).logits[0]
    logp = torch.log_softmax(logits.double(), -1)
    save_file({"tokens": tokens, "logp": logp.float().contiguous()}, o.out)
    observed = logp[:-1].gather(1, tokens[1:, None])[tokens[1:] != 11]
    print(f"{o.out}: {len(seq)} bases, mean -log2 p(observed) {-observed.mean().item() / 0.6931471805599453:.4f} bits")


if __name__ == "__main__":
    main()
