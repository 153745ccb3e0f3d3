#!/usr/bin/env python3
"""CUDA backend parity: the CUDA and CPU backends (and transformers' reference) on the
fixture, and on a random 1 Mb record with stripe lengths 4,096 / 65,536 / whole.

    cargo build --release          # on a machine with Rust
    python3 bench/gpu_parity.py    # on a machine with an NVIDIA GPU
    python3 bench/gpu_parity.py --models fixture,default   # also the shipped model

Models: `fixture` (test-data/fixture-model, random weights drawn to make outputs sharp, with
its transformers reference and bf16 checkpoint) and `default` (models/ssmgen-dna-small, the
trained model that ships in the binary).

Exits non-zero if a bound is broken: max |delta logp| <= 1e-4 for f32 and <= 2e-2 for the bf16
path (bf16 projections, f32 accumulation and states), against the f32 CPU backend.
"""
import argparse
import os
import sys
import tempfile

from common import ROOT, fasta_tokens, likelihood_csv_column, max_mean_abs, transformers_logp, write_fasta

F32_BOUND = 1e-4
BF16_BOUND = 2e-2


def reference_fixture():
    """Per-base reference logp of the observed base from test-data/fixture-reference.safetensors."""
    try:
        from safetensors.numpy import load_file
    except ImportError:
        return None
    ref = load_file(os.path.join(ROOT, "test-data", "fixture-reference.safetensors"))
    tokens, logp = ref["tokens"], ref["logp_f32"]
    out = [None]
    for i in range(1, len(tokens)):
        out.append(None if tokens[i] == 11 else float(logp[i - 1, tokens[i]]))
    return out


def float64_window(model, tokens, end, window=32768):
    """transformers in float64 on tokens[end - window : end + 1]: logp of each observed base.
    The fixture model's state forgets within a few thousand steps, so a 32 k window matches the
    full record to far below float32 precision at its last positions."""
    start = max(0, end - window)
    logp = transformers_logp(model, tokens[start : end + 1], "cuda")
    return {start + i: v for i, v in enumerate(logp) if i > 0}


MODELS = {"fixture": os.path.join(ROOT, "test-data", "fixture-model"),
          "default": os.path.join(ROOT, "models", "ssmgen-dna-small")}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="fixture", help="comma list of: " + ", ".join(MODELS))
    rows = []
    for name in ap.parse_args().models.split(","):
        compare(name, MODELS[name], rows)
    failed = False
    print(f"{'model':<8} {'input':<28} {'comparison':<22} {'max |d logp|':>13} {'mean |d logp|':>14}")
    for name, what, mx, mean in rows:
        bound = BF16_BOUND if "bf16" in what else F32_BOUND
        flag = "" if mx <= bound else f"  FAIL (> {bound:g})"
        failed |= bool(flag)
        print(f"{name:<37} {what:<22} {mx:>13.3e} {mean:>14.3e}{flag}")
    sys.exit(1 if failed else 0)


def compare(label, model, rows):
    """Appends (input, comparison, max, mean) rows for one model."""
    fixture = os.path.join(ROOT, "test-data", "fixture.fa")
    cpu = likelihood_csv_column(["-m", model, fixture, "--device", "cpu"])
    gpu = likelihood_csv_column(["-m", model, fixture, "--device", "cuda"])
    rows.append((f"{label:<8} fixture 3 kb", "cuda vs cpu", *max_mean_abs(gpu, cpu)))
    gpu16 = likelihood_csv_column(["-m", model, fixture, "--device", "cuda", "--precision", "bf16"])
    rows.append((f"{label:<8} fixture 3 kb", "cuda bf16 vs cpu f32", *max_mean_abs(gpu16, cpu)))
    if label == "fixture":
        model16 = os.path.join(ROOT, "test-data", "fixture-model-bf16")
        cpu16 = likelihood_csv_column(["-m", model16, fixture, "--device", "cpu"])
        gpu16 = likelihood_csv_column(["-m", model16, fixture, "--device", "cuda", "--precision", "bf16"])
        rows.append((f"{label:<8} bf16 checkpoint 3 kb", "cuda bf16 vs cpu f32", *max_mean_abs(gpu16, cpu16)))
        ref = reference_fixture()
        if ref is not None:
            rows.append((f"{label:<8} fixture 3 kb", "cuda vs transformers", *max_mean_abs(gpu, ref)))
            rows.append((f"{label:<8} fixture 3 kb", "cpu vs transformers", *max_mean_abs(cpu, ref)))
    with tempfile.TemporaryDirectory() as tmp:
        fa = os.path.join(tmp, "r1m.fa")
        write_fasta(fa, 1_000_000)
        cpu = likelihood_csv_column(["-m", model, fa, "--device", "cpu"])
        for stripe in (4096, 65536, 1_000_000):
            gpu = likelihood_csv_column(["-m", model, fa, "--device", "cuda", "--stripe-len", str(stripe)])
            rows.append((f"{label:<8} random 1 Mb, stripe {stripe}", "cuda vs cpu", *max_mean_abs(gpu, cpu)))
        gpu16 = likelihood_csv_column(["-m", model, fa, "--device", "cuda", "--precision", "bf16"])
        rows.append((f"{label:<8} random 1 Mb", "cuda bf16 vs cpu f32", *max_mean_abs(gpu16, cpu)))
        # Who is right where they differ most? Compare both with float64 transformers there.
        worst = max((i for i in range(len(cpu)) if cpu[i] is not None), key=lambda i: abs(cpu[i] - gpu[i]))
        try:
            ref64 = float64_window(model, fasta_tokens(fa), worst)
            near = [i for i in range(worst - 2000, worst + 1) if i in ref64 and cpu[i] is not None]
            print(f"{label}: worst position {worst + 1}: cpu {cpu[worst]:.6f} cuda {gpu[worst]:.6f} float64 {ref64[worst]:.6f}")
            for who, ours in (("cpu", cpu), ("cuda", gpu)):
                d = [abs(ours[i] - ref64[i]) for i in near]
                rows.append((f"{label:<8} 1 Mb, 2k up to worst", f"{who} vs float64", max(d), sum(d) / len(d)))
        except ImportError:
            print("transformers not available: float64 check skipped")


if __name__ == "__main__":
    main()
