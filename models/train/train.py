#!/usr/bin/env python3
"""Trains ssmgen's default DNA model: a causal Mamba-1 language model in exactly the Hugging Face
`MambaForCausalLM` layout, on the training genomes of ../shared/data, with next-base prediction
and reverse-complement augmentation.

    python3 models/train/train.py [--data ../shared/data] [--out models/ssmgen-dna-small] [--minutes 6.5]

Runs on one GPU with PyTorch, Triton and transformers (no mamba_ssm). The model is a
`transformers.MambaForCausalLM`; only the selective scan is our own (the transformers slow path
loops over time in Python): on a GPU, the Triton kernels of scan_triton.py (forward and
backward); on a CPU, or with `--scan chunked`, a pure-torch chunked scan that solves each
64-step chunk in parallel in log space and carries the state between chunks. Before training,
the scan's values and gradients are checked against a float64 step-by-step scan
(test_scan.py), and the model's forward pass against transformers' own on random weights (max
|logit difference| must be below 1e-3), so the trained weights mean the same thing to
transformers and to ssmgen.

Tokens are single bases with HyenaDNA/Caduceus ids (A=7, C=8, G=9, T=10, N=11; 12 in all).
"""
import argparse
import json
import math
import os
import random
import time

import torch
import torch.nn.functional as F
from transformers import MambaConfig, MambaForCausalLM

from data import HELD_OUT, TRAIN, read_fasta

IDS = {ord("A"): 7, ord("C"): 8, ord("G"): 9, ord("T"): 10}
COMPLEMENT = {7: 10, 8: 9, 9: 8, 10: 7, 11: 11}
CHUNK = 64


def tokens_of(seq):
    """Bases as token ids (N for anything but A/C/G/T), a uint8 tensor."""
    table = torch.full((256,), 11, dtype=torch.uint8)
    for b, i in IDS.items():
        table[b] = i
        table[b + 32] = i
    return table[torch.frombuffer(bytearray(seq), dtype=torch.uint8).long()]


def reverse_complement(t):
    comp = torch.tensor([COMPLEMENT.get(i, i) for i in range(12)], dtype=t.dtype, device=t.device)
    return comp[t.long()].flip(-1)


def chunked_scan(u, dt, A, Bm, Cm):
    """y[b, t, e] = sum_n h[b, t, e, n] * C[b, t, n] with
    h[t] = exp(dt[t] * A) * h[t - 1] + dt[t] * u[t] * B[t], h[-1] = 0.
    u, dt: [b, L, e]; A: [e, n]; Bm, Cm: [b, L, n]. L must be a multiple of CHUNK."""
    b, L, e = u.shape
    n = A.shape[1]
    c = L // CHUNK
    shape = (b, c, CHUNK, e, n)
    log_a = (dt[..., None] * A).view(shape)                  # <= 0
    a_star = torch.cumsum(log_a, dim=2)                       # decay from the chunk start
    x = ((dt * u)[..., None] * Bm[:, :, None, :]).view(shape)
    # h_local[t] = exp(a*[t]) * sum_{s<=t} exp(-a*[s]) x[s], with the sum's positive and
    # negative parts in log space (logcumsumexp); log of 0 is floored (finite gradients).
    floor = -1e4
    pos = torch.where(x > 0, torch.log(torch.where(x > 0, x, torch.ones_like(x))), floor)
    neg = torch.where(x < 0, torch.log(torch.where(x < 0, -x, torch.ones_like(x))), floor)
    h_local = torch.exp(a_star + torch.logcumsumexp(pos - a_star, dim=2)) - torch.exp(
        a_star + torch.logcumsumexp(neg - a_star, dim=2)
    )
    # Carry between chunks: state at each chunk start, then h = h_local + exp(a*) * start.
    decay = torch.exp(a_star[:, :, -1])                      # [b, c, e, n]
    ends = h_local[:, :, -1]
    starts = [torch.zeros_like(ends[:, 0])]
    for k in range(c - 1):
        starts.append(decay[:, k] * starts[-1] + ends[:, k])
    start = torch.stack(starts, dim=1)                        # [b, c, e, n]
    h = h_local + torch.exp(a_star) * start[:, :, None]
    y = (h * Cm.view(b, c, CHUNK, 1, n)).sum(-1)
    return y.view(b, L, e)


SCAN = {"fn": chunked_scan}


def mixer_forward(mixer, hidden):
    """transformers' MambaMixer.slow_forward with the scan replaced (no cache)."""
    L = hidden.shape[1]
    xz = mixer.in_proj(hidden).transpose(1, 2)
    x, z = xz.chunk(2, dim=1)
    x = mixer.act(mixer.conv1d(x)[..., :L])                   # [b, e, L]
    params = mixer.x_proj(x.transpose(1, 2))
    r, n = mixer.time_step_rank, mixer.ssm_state_size
    step, Bm, Cm = torch.split(params, [r, n, n], dim=-1)
    dt = F.softplus(mixer.dt_proj(step))                      # [b, L, e]
    A = -torch.exp(mixer.A_log.float())
    u = x.transpose(1, 2)
    y = SCAN["fn"](u.float(), dt.float(), A, Bm.float(), Cm.float())
    y = y + u * mixer.D
    y = y * mixer.act(z.transpose(1, 2))
    return mixer.out_proj(y)


def model_logits(model, ids):
    """Logits of `model` (a MambaForCausalLM) for ids [b, L], L a multiple of CHUNK."""
    bb = model.backbone
    h = bb.embeddings(ids)
    for layer in bb.layers:
        h = h + mixer_forward(layer.mixer, layer.norm(h.to(layer.norm.weight.dtype)))
    return model.lm_head(bb.norm_f(h))


def check_against_transformers(cfg, device):
    torch.manual_seed(0)
    model = MambaForCausalLM(cfg).to(device).eval()
    ids = torch.randint(7, 12, (2, 4 * CHUNK), device=device)
    with torch.no_grad():
        ours = model_logits(model, ids)
        ref = model(input_ids=ids, use_cache=False).logits
    diff = (ours - ref).abs().max().item()
    print(f"scan check against transformers: max |logit difference| {diff:.2e}", flush=True)
    if not diff < 1e-3:
        raise SystemExit("our forward pass does not match transformers'; not training")


class Windows:
    """Random training windows from the records, reverse-complemented half of the time."""

    def __init__(self, records, length, device, seed):
        self.records = [r for r in records if len(r) > length]
        self.weights = [len(r) - length for r in self.records]
        self.length = length
        self.device = device
        self.rng = random.Random(seed)

    def batch(self, size):
        out = []
        for r in self.rng.choices(self.records, weights=self.weights, k=size):
            s = self.rng.randrange(len(r) - self.length)
            w = r[s : s + self.length]
            out.append(reverse_complement(w) if self.rng.random() < 0.5 else w)
        return torch.stack(out).to(self.device, non_blocking=True).long()


def bits_per_base(model, seq, length, device):
    """Mean -log2 p of the observed next base over windows of `seq` (monitoring only; the
    figure reported in models/README.md comes from `ssmgen likelihood`)."""
    total, count = 0.0, 0
    with torch.no_grad():
        for s in range(0, len(seq) - length, length):
            ids = seq[s : s + length][None].to(device).long()
            logp = F.log_softmax(model_logits(model, ids).float(), -1)
            target = ids[:, 1:]
            lp = logp[:, :-1].gather(-1, target[..., None])[..., 0]
            mask = target != 11
            total -= lp[mask].sum().item() / math.log(2)
            count += mask.sum().item()
    return total / max(count, 1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data"))
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "ssmgen-dna-small"))
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--d-state", type=int, default=16)
    ap.add_argument("--seq-len", type=int, default=4096)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--minutes", type=float, default=6.5, help="training time budget")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--scan", choices=["auto", "triton", "chunked"], default="auto",
                    help="auto: Triton on a GPU, chunked on a CPU")
    o = ap.parse_args()
    device = o.device
    if o.scan == "triton" or (o.scan == "auto" and device.startswith("cuda")):
        from scan_triton import selective_scan
        from test_scan import check
        if not check("triton", selective_scan, device):
            raise SystemExit("the Triton scan does not match the float64 reference; not training")
        SCAN["fn"] = selective_scan
    print(f"scan: {SCAN['fn'].__name__}", flush=True)
    cfg = MambaConfig(
        vocab_size=12, hidden_size=o.d_model, state_size=o.d_state, num_hidden_layers=o.layers,
        expand=2, conv_kernel=4, use_bias=False, use_conv_bias=True, tie_word_embeddings=True,
        bos_token_id=2, eos_token_id=1, pad_token_id=4,
    )
    check_against_transformers(cfg, device)                  # in full float32
    torch.backends.cuda.matmul.allow_tf32 = True

    train = [tokens_of(s) for f in TRAIN for s in read_fasta(os.path.join(o.data, f))]
    held = torch.cat([tokens_of(s) for s in read_fasta(os.path.join(o.data, HELD_OUT))])
    monitor = held[: 64 * o.seq_len]                           # ~256 kb for progress lines
    windows = Windows(train, o.seq_len + 1, device, o.seed)
    torch.manual_seed(o.seed)
    model = MambaForCausalLM(cfg).to(device)
    params = sum(p.numel() for p in model.parameters())
    print(f"model: d_model {o.d_model}, {o.layers} layers, d_state {o.d_state}: {params:,} parameters", flush=True)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "A_log" not in n]
    other = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "A_log" not in n)]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": o.weight_decay}, {"params": other, "weight_decay": 0.0}],
        lr=o.lr, betas=(0.9, 0.95),
    )
    budget = o.minutes * 60
    start = time.time()
    step, seen, last_print = 0, 0, start
    model.train()
    while True:
        elapsed = time.time() - start
        if elapsed > budget:
            break
        progress = elapsed / budget
        lr = o.lr * min(1.0, (step + 1) / o.warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))
        for g in opt.param_groups:
            g["lr"] = lr
        ids = windows.batch(o.batch)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.startswith("cuda")):
            logits = model_logits(model, ids[:, :-1])
        target = ids[:, 1:]
        loss = F.cross_entropy(logits.float().reshape(-1, 12), target.reshape(-1), ignore_index=11)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        seen += target.numel()
        if time.time() - last_print > 30:
            last_print = time.time()
            print(f"step {step:6d}  {elapsed / 60:5.1f} min  lr {lr:.2e}  train {loss.item() / math.log(2):.4f} bits/base  "
                  f"{seen / (time.time() - start):,.0f} tokens/s", flush=True)
    train_minutes = (time.time() - start) / 60
    model.eval()
    held_bits = bits_per_base(model, monitor, o.seq_len, device)
    print(f"trained {step} steps, {seen:,} tokens in {train_minutes:.1f} min; "
          f"held-out (first {len(monitor):,} bases, forward strand) {held_bits:.4f} bits/base", flush=True)

    os.makedirs(o.out, exist_ok=True)
    model.to(torch.float32).save_pretrained(o.out, safe_serialization=True)
    path = os.path.join(o.out, "config.json")
    config = json.load(open(path))
    config["ssmgen"] = {"prepend_bos": False, "tokens": {"A": 7, "C": 8, "G": 9, "T": 10, "N": 11}}
    json.dump(config, open(path, "w"), indent=2, sort_keys=True)
    with open(os.path.join(o.out, "training.json"), "w") as f:
        json.dump({"args": vars(o), "scan": SCAN["fn"].__name__, "steps": step, "tokens": seen, "minutes": train_minutes,
                   "device": torch.cuda.get_device_name() if device.startswith("cuda") else "cpu",
                   "monitor_bits_per_base": held_bits,
                   "torch": torch.__version__}, f, indent=2)
    print(f"saved {o.out}")


if __name__ == "__main__":
    main()
