#!/usr/bin/env python3
"""Write the parity fixtures: small random Mamba models in the HF `MambaForCausalLM` layout and
the log-probabilities that transformers itself computes for them on a fixed DNA sequence.

The reference is computed by transformers' own `MambaForCausalLM` (its torch path, on the CPU,
in float64), independently of ssmgen. Run from the repository root:

    python3 test-data/make_fixtures.py [OUTDIR]    # default OUTDIR: test-data

Writes:
  OUTDIR/fixture-model/          f32 weights, untied LM head (config.json + model.safetensors)
  OUTDIR/fixture-model-bf16/     bf16 weights (A_log kept f32), tied LM head
  OUTDIR/fixture.fa              the sequence, one record 'fixture' (3,000 bases, a few N)
  OUTDIR/fixture-reference.safetensors
      tokens            int64 [T]      token ids (A=7 C=8 G=9 T=10 N=11)
      logp_f32          float32 [T,12] log_softmax of the f32 model's logits after each token
      logp_bf16         float32 [T,12] the same for the bf16 model (weights widened to float64)
"""
import json
import math
import os
import sys

import torch
from safetensors.torch import save_file
from transformers import MambaConfig, MambaForCausalLM

OUT = sys.argv[1] if len(sys.argv) > 1 else "test-data"
T = 3000
SEED = 20261123
TOKENS = {"A": 7, "C": 8, "G": 9, "T": 10, "N": 11}


def make_sequence(gen):
    """A 2nd-order Markov sequence (so context matters) with two short N runs."""
    bases = "ACGT"
    probs = torch.rand(16, 4, generator=gen) ** 3
    probs = probs / probs.sum(1, keepdim=True)
    seq = [0, 1]
    for _ in range(T - 2):
        ctx = seq[-2] * 4 + seq[-1]
        seq.append(int(torch.multinomial(probs[ctx], 1, generator=gen)))
    text = [bases[i] for i in seq]
    for start in (700, 2100):
        for i in range(start, start + 5):
            text[i] = "N"
    # soft-masked stretch: lowercase is the same base
    for i in range(1200, 1260):
        text[i] = text[i].lower()
    return "".join(text)


def randomise(model, gen):
    """Replace the (near-uniform) default init by weights that give sharp, state-dependent outputs."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("A_log"):
                n = p.shape[1]
                base = torch.log(torch.arange(1, n + 1, dtype=torch.float32)).expand_as(p)
                p.copy_(base + 0.3 * torch.randn(p.shape, generator=gen))
            elif name.endswith("dt_proj.bias"):
                dt = torch.exp(torch.rand(p.shape, generator=gen) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3))
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


def save(model, path, dtype):
    os.makedirs(path, exist_ok=True)
    model.config.save_pretrained(path)
    tensors = {}
    for name, t in model.state_dict().items():
        if name == "lm_head.weight" and model.config.tie_word_embeddings:
            continue
        keep_f32 = name.endswith("A_log")
        tensors[name] = t.detach().to(torch.float32 if keep_f32 else dtype).contiguous()
    save_file(tensors, os.path.join(path, "model.safetensors"), metadata={"format": "pt"})


def reference_logp(path, tokens):
    """Load the saved checkpoint with transformers and run it in float64 on the CPU."""
    try:
        model = MambaForCausalLM.from_pretrained(path, dtype=torch.float64)
    except TypeError:
        model = MambaForCausalLM.from_pretrained(path, torch_dtype=torch.float64)
    model = model.to("cpu", torch.float64).eval()
    with torch.no_grad():
        logits = model(input_ids=tokens[None, :], use_cache=False).logits[0]
    return torch.log_softmax(logits.double(), dim=-1)


def main():
    gen = torch.Generator().manual_seed(SEED)
    seq = make_sequence(gen)
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "fixture.fa"), "w") as f:
        f.write(">fixture random 2nd-order Markov DNA for parity tests\n")
        for i in range(0, len(seq), 70):
            f.write(seq[i : i + 70] + "\n")
    tokens = torch.tensor([TOKENS[c.upper()] for c in seq], dtype=torch.long)

    outputs = {"tokens": tokens}
    for label, tied, dtype in (("f32", False, torch.float32), ("bf16", True, torch.bfloat16)):
        cfg = MambaConfig(
            vocab_size=12, hidden_size=64, state_size=16, num_hidden_layers=2, expand=2,
            conv_kernel=4, use_bias=False, use_conv_bias=True, tie_word_embeddings=tied,
            bos_token_id=2, eos_token_id=1, pad_token_id=4,
        )
        model = MambaForCausalLM(cfg)
        randomise(model, gen)
        if tied:
            model.tie_weights()
        path = os.path.join(OUT, "fixture-model" if label == "f32" else "fixture-model-bf16")
        save(model, path, dtype)
        logp = reference_logp(path, tokens)
        outputs[f"logp_{label}"] = logp.to(torch.float32).contiguous()
        ent = -(logp.exp() * logp).sum(-1).mean().item()
        obs = logp[:-1].gather(1, tokens[1:, None]).mean().item()
        print(f"{label}: mean entropy {ent:.3f} nats, mean logp(observed next) {obs:.3f}")
    save_file(outputs, os.path.join(OUT, "fixture-reference.safetensors"))
    print("slow path used: mamba_ssm not needed on CPU; transformers", __import__("transformers").__version__)


if __name__ == "__main__":
    main()
