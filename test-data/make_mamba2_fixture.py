#!/usr/bin/env python3
"""Write the Mamba-2 parity fixtures: small random `Mamba2ForCausalLM` models and the
log-probabilities that transformers itself computes for them.

The reference is transformers' own `Mamba2ForCausalLM` (its torch path, on the CPU, the model
in float64; transformers' SSD scan and gated norm cast to float32 inside), independent of
ssmgen. Run from the repository root (needs torch, transformers, safetensors):

    python3 test-data/make_mamba2_fixture.py [OUTDIR]    # default OUTDIR: test-data

Writes:
  OUTDIR/mamba2-fixture/        3 layers, d_model 64, 8 heads of head_dim 16, state 24,
                                n_groups 2, chunk_size 64, untied LM head, no time-step clamp
  OUTDIR/mamba2-fixture-tied/   2 layers, the same sizes, tied LM head, in/out_proj biases,
                                time_step_limit (0.0, 0.05) (the clamp bites on some heads)
  OUTDIR/mamba2-reference.safetensors
      tokens        int64 [T]       the first T bases of OUTDIR/fixture.fa (A=7 C=8 G=9 T=10 N=11)
      logp          float32 [T,12]  log_softmax of mamba2-fixture's logits after each token
      logp_tied     float32 [T,12]  the same for mamba2-fixture-tied
"""
import math
import os
import sys

import torch
from safetensors.torch import save_file
from transformers import Mamba2Config, Mamba2ForCausalLM

OUT = sys.argv[1] if len(sys.argv) > 1 else "test-data"
T = 800  # covers the N run at bases 700..704 of fixture.fa
SEED = 20261125
TOKENS = {"A": 7, "C": 8, "G": 9, "T": 10, "N": 11}


def read_fasta(path):
    with open(path) as f:
        return "".join(line.strip() for line in f if not line.startswith(">"))


def randomise(model, gen):
    """Replace the default init by weights that give sharp, state-dependent outputs."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("A_log"):
                h = p.shape[0]
                base = torch.log(torch.arange(1, h + 1, dtype=torch.float32))
                p.copy_(base + 0.3 * torch.randn(p.shape, generator=gen))
            elif name.endswith("dt_bias"):
                lo, hi = math.log(1e-3), math.log(0.1)
                dt = torch.exp(torch.rand(p.shape, generator=gen) * (hi - lo) + lo)
                p.copy_(dt + torch.log(-torch.expm1(-dt)))
            elif name.endswith("norm.weight") or name.endswith("norm_f.weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))
            elif name.endswith(".D"):
                p.copy_(torch.randn(p.shape, generator=gen))
            elif p.dim() >= 2:
                fan_in = p.shape[-1] if p.dim() == 2 else p.shape[-1] * p.shape[-2]
                p.copy_(torch.randn(p.shape, generator=gen) * (1.5 / math.sqrt(fan_in)))
            else:
                p.copy_(0.3 * torch.randn(p.shape, generator=gen))


def save(model, path):
    os.makedirs(path, exist_ok=True)
    model.config.save_pretrained(path)
    tensors = {}
    for name, t in model.state_dict().items():
        if name == "lm_head.weight" and model.config.tie_word_embeddings:
            continue
        tensors[name] = t.detach().to(torch.float32).contiguous()
    save_file(tensors, os.path.join(path, "model.safetensors"), metadata={"format": "pt"})


def reference_logp(path, tokens):
    """Load the saved checkpoint with transformers and run it in float64 on the CPU."""
    model = Mamba2ForCausalLM.from_pretrained(path, dtype=torch.float64)
    model = model.to("cpu", torch.float64).eval()
    with torch.no_grad():
        logits = model(input_ids=tokens[None, :], use_cache=False).logits[0]
    return torch.log_softmax(logits.double(), dim=-1)


def main():
    gen = torch.Generator().manual_seed(SEED)
    seq = read_fasta(os.path.join(OUT, "fixture.fa"))[:T]
    tokens = torch.tensor([TOKENS[c.upper()] for c in seq], dtype=torch.long)
    outputs = {"tokens": tokens}
    variants = (
        ("mamba2-fixture", "logp", dict(num_hidden_layers=3, tie_word_embeddings=False)),
        (
            "mamba2-fixture-tied",
            "logp_tied",
            dict(
                num_hidden_layers=2,
                tie_word_embeddings=True,
                use_bias=True,
                time_step_limit=(0.0, 0.05),
            ),
        ),
    )
    for folder, key, extra in variants:
        cfg = Mamba2Config(
            vocab_size=12, hidden_size=64, num_heads=8, head_dim=16, state_size=24,
            n_groups=2, expand=2, conv_kernel=4, chunk_size=64, use_conv_bias=True,
            bos_token_id=2, eos_token_id=1, pad_token_id=4, **extra,
        )
        model = Mamba2ForCausalLM(cfg)
        randomise(model, gen)
        if cfg.tie_word_embeddings:
            model.tie_weights()
        path = os.path.join(OUT, folder)
        save(model, path)
        outputs[key] = reference_logp(path, tokens).to(torch.float32).contiguous()
    save_file(outputs, os.path.join(OUT, "mamba2-reference.safetensors"))


if __name__ == "__main__":
    main()
