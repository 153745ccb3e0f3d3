#!/usr/bin/env python3
"""Write the Caduceus parity fixtures: small random-weight `CaduceusForMaskedLM` models (the
released modeling code, `../shared/anchors/caduceus`) and the outputs that code computes for them.

The reference is the released Caduceus code itself on mamba-ssm's kernels (`fused_add_norm`, the
Triton RMSNorm of the published checkpoints), so it runs on the GPU machine:

    bash ANCHORS/build.sh anchor-site && export PYTHONPATH=$PWD/anchor-site
    python3 test-data/make_caduceus_fixtures.py --anchors ANCHORS [OUTDIR]   # default test-data

Writes, for each fixture NAME in caduceus-ps (RCPS + BiMamba, `add`, tied in/out projections),
caduceus-ph (BiMamba, `add`, tied) and caduceus-ph-mul (BiMamba, `ew_multiply`, untied):
  OUTDIR/NAME/config.json            as transformers writes it (sorted keys: complement_map
                                     comes back ordered "0", "1", "10", ...)
  OUTDIR/NAME/model.safetensors      every tensor, tied copies included, plus the buffers
  OUTDIR/NAME-lean/...               the same model without the tied copies (LM head, reverse
                                     in/out projections), as a checkpoint may omit them
and
  OUTDIR/caduceus.fa                 the test sequence (record 'cad', 300 bases, a few N)
  OUTDIR/caduceus-reference.safetensors, per fixture NAME (`-` in names become `_`):
      NAME.logits        f32 [T, 16]  logits of the unmasked forward pass
      NAME.hidden        f32 [T, D']  final hidden states (D' = 2 * d_model for RCPS)
      NAME.llr_fwd       f32 [V]      logit[ALT] - logit[REF] at each variant site, site masked
      NAME.llr_rev       f32 [V]      the same on the reverse complement
  and tokens (i64 [T]), variant_pos (i64 [V], 0-based), variant_ref / variant_alt (i64 [V] ids).
"""
import argparse
import json
import os
import sys

import torch
from safetensors.torch import save_file

T = 300
SEED = 20261125
TOKENS = {"A": 7, "C": 8, "G": 9, "T": 10, "N": 11}
MASK = 3
COMPLEMENT = {str(i): i for i in range(12)} | {"7": 10, "8": 9, "9": 8, "10": 7}
VARIANT_POS = [0, 1, 57, 150, 151, 298, 299]

FIXTURES = {
    "caduceus-ps": dict(rcps=True, bidirectional_strategy="add", bidirectional_weight_tie=True),
    "caduceus-ph": dict(rcps=False, bidirectional_strategy="add", bidirectional_weight_tie=True),
    "caduceus-ph-mul": dict(rcps=False, bidirectional_strategy="ew_multiply",
                            bidirectional_weight_tie=False),
}


def make_sequence(gen):
    seq = ["ACGT"[int(i)] for i in torch.randint(0, 4, (T,), generator=gen)]
    for i in (40, 41, 200):
        seq[i] = "N"
    return "".join(seq)


def randomise(model, gen):
    """Weights far from the init's near-identity values, so every flip and tie shows."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen).to(p.device)
            if name.endswith("A_log"):
                base = torch.log(torch.arange(1, p.shape[1] + 1, dtype=torch.float32))
                p.copy_(base.to(p.device).expand_as(p) + 0.3 * noise)
            elif name.endswith("norm.weight") or name.endswith("norm_f.weight"):
                p.copy_(1.0 + 0.4 * noise)
            elif name.endswith(".D"):
                p.copy_(1.0 + 0.5 * noise)
            elif name.endswith("dt_proj.bias"):
                p.copy_(-3.0 + 0.5 * noise)
            elif "word_embeddings" in name:
                p.copy_(noise)
            else:
                p.add_(noise * p.detach().abs().mean().clamp(min=0.02))


def build(anchors, flags, device, d_model=32, n_layer=3):
    sys.path.insert(0, anchors)
    from caduceus.configuration_caduceus import CaduceusConfig
    from caduceus.modeling_caduceus import CaduceusForMaskedLM

    original = CaduceusForMaskedLM.tie_weights
    if not getattr(original, "_ssmgen_wrapped", False):
        def tie(self, *args, **kwargs):
            return original(self)
        tie._ssmgen_wrapped = True
        CaduceusForMaskedLM.tie_weights = tie
    config = CaduceusConfig(
        d_model=d_model, n_layer=n_layer, vocab_size=12,
        ssm_cfg={"d_state": 16, "d_conv": 4, "expand": 2, "dt_rank": "auto",
                 "conv_bias": True, "bias": False},
        rms_norm=True, residual_in_fp32=True, fused_add_norm=True, pad_vocab_size_multiple=8,
        norm_epsilon=1e-5, bidirectional=True, complement_map=dict(COMPLEMENT), **flags)
    model = CaduceusForMaskedLM(config).to(device=device, dtype=torch.float32).eval()
    if not config.rcps:
        # transformers 4 tied the LM head to the embedding (tie_word_embeddings defaults to
        # true), as the published -ph checkpoints have it; transformers 5 no longer does it for
        # this remote code, so tie it here.
        model.lm_head.weight = model.get_input_embeddings().weight
    return model, config


def tied_names(model, flags):
    """State-dict keys that only repeat another tensor (what a checkpoint may leave out)."""
    keys = list(model.state_dict().keys())
    out = [k for k in keys if k.startswith("lm_head.") and k.endswith("weight")]
    if flags["bidirectional_weight_tie"]:
        out += [k for k in keys if ".mamba_rev." in k and (".in_proj." in k or ".out_proj." in k)]
    return out


def save(model, config, flags, folder, lean=False):
    os.makedirs(folder, exist_ok=True)
    state = {k: v.detach().clone().contiguous().cpu() for k, v in model.state_dict().items()}
    if lean:
        for k in tied_names(model, flags):
            state.pop(k)
    save_file(state, os.path.join(folder, "model.safetensors"), metadata={"format": "pt"})
    cfg = config.to_dict()
    cfg["model_type"] = "caduceus"
    cfg["architectures"] = ["CaduceusForMaskedLM"]
    cfg["complement_map"] = {str(k): int(v) for k, v in cfg["complement_map"].items()}
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True, default=str)


def rc_tokens(ids):
    comp = {7: 10, 8: 9, 9: 8, 10: 7}
    return [comp.get(t, t) for t in reversed(ids)]


@torch.no_grad()
def masked_llr(model, ids, variants, device):
    """logit[ALT] - logit[REF] at each site, the site replaced by [MASK], whole record."""
    out = []
    for pos, ref, alt in variants:
        masked = list(ids)
        masked[pos] = MASK
        logits = model(torch.tensor([masked], device=device)).logits[0, pos]
        out.append(float(logits[alt] - logits[ref]))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--anchors", required=True, help="folder holding caduceus/ (the released code)")
    ap.add_argument("out", nargs="?", default="test-data")
    args = ap.parse_args()
    device = "cuda"
    gen = torch.Generator().manual_seed(SEED)
    seq = make_sequence(gen)
    with open(os.path.join(args.out, "caduceus.fa"), "w") as f:
        f.write(">cad\n" + "\n".join(seq[i:i + 60] for i in range(0, T, 60)) + "\n")
    ids = [TOKENS[c] for c in seq]
    comp = {7: 10, 8: 9, 9: 8, 10: 7}
    # ALT: another base than REF, so every site is a real substitution.
    variants = [(p, ids[p], 7 + (ids[p] - 7 + 1 + i % 3) % 4) for i, p in enumerate(VARIANT_POS)]
    variants_rc = [(T - 1 - p, comp[r], comp[a]) for p, r, a in variants]
    ref = {
        "tokens": torch.tensor(ids, dtype=torch.int64),
        "variant_pos": torch.tensor([p for p, _, _ in variants], dtype=torch.int64),
        "variant_ref": torch.tensor([r for _, r, _ in variants], dtype=torch.int64),
        "variant_alt": torch.tensor([a for _, _, a in variants], dtype=torch.int64),
    }
    for name, flags in FIXTURES.items():
        torch.manual_seed(SEED)
        model, config = build(args.anchors, flags, device)
        randomise(model, gen)
        save(model, config, flags, os.path.join(args.out, name), lean=False)
        save(model, config, flags, os.path.join(args.out, name + "-lean"), lean=True)
        x = torch.tensor([ids], device=device)
        with torch.no_grad():
            logits = model(x).logits[0].float().cpu()
            hidden = model.caduceus(x, return_dict=False)
            hidden = (hidden[0] if isinstance(hidden, tuple) else hidden)[0].float().cpu()
        key = name.replace("-", "_")
        ref[f"{key}.logits"] = logits.contiguous()
        ref[f"{key}.hidden"] = hidden.contiguous()
        ref[f"{key}.llr_fwd"] = torch.tensor(masked_llr(model, ids, variants, device))
        ref[f"{key}.llr_rev"] = torch.tensor(masked_llr(model, rc_tokens(ids), variants_rc, device))
        print(name, "logits", tuple(logits.shape), "hidden", tuple(hidden.shape),
              "llr_fwd", [round(v, 4) for v in ref[f"{key}.llr_fwd"].tolist()],
              "llr_rev", [round(v, 4) for v in ref[f"{key}.llr_rev"].tolist()])
    save_file(ref, os.path.join(args.out, "caduceus-reference.safetensors"))


if __name__ == "__main__":
    main()
