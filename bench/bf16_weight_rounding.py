#!/usr/bin/env python3
"""How far bf16 *weights* alone move a model's scores: the CPU backend (f32 arithmetic) on the
model as shipped against the same model with in_proj and out_proj rounded to bf16 (what
`--precision bf16` uploads), on the random 1 Mb record of gpu_parity.py. Whatever a bf16 GPU
path does with its activations, it cannot be closer to the f32 model than this.

    python3 bench/bf16_weight_rounding.py [--model models/ssmgen-dna-small] [--length 1000000]

Needs torch and safetensors (to write the rounded copy).
"""
import argparse
import os
import shutil
import tempfile

from common import ROOT, likelihood_csv_column, max_mean_abs, write_fasta


def rounded_copy(model, out):
    import torch
    from safetensors.torch import load_file, save_file
    os.makedirs(out)
    shutil.copy(os.path.join(model, "config.json"), out)
    tensors = load_file(os.path.join(model, "model.safetensors"))
    for name, t in tensors.items():
        if name.endswith(("in_proj.weight", "out_proj.weight")):
            tensors[name] = t.to(torch.bfloat16).to(torch.float32)
    save_file(tensors, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "ssmgen-dna-small"))
    ap.add_argument("--length", type=int, default=1_000_000)
    o = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        fa = os.path.join(tmp, "r1m.fa")
        write_fasta(fa, o.length)
        rounded = os.path.join(tmp, "rounded")
        rounded_copy(o.model, rounded)
        full = likelihood_csv_column(["-m", o.model, fa, "--device", "cpu"])
        bf16w = likelihood_csv_column(["-m", rounded, fa, "--device", "cpu"])
        mx, mean = max_mean_abs(bf16w, full)
        print(f"{os.path.basename(o.model)}, {o.length:,} bases: bf16-rounded in_proj/out_proj vs f32 "
              f"weights, both on the f32 CPU backend: max |d logp| {mx:.3e}, mean {mean:.3e}")


if __name__ == "__main__":
    main()
