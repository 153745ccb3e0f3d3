#!/usr/bin/env python3
"""Mamba-2 on the GPU: parity of `--device cuda` with transformers' reference, stripe
invariance, and throughput of a d_model 768 x 24-layer Mamba-2 model against the references.

    cargo build --release                          # on a machine with Rust
    python3 bench/gpu_mamba2.py --parity           # needs numpy only
    python3 bench/gpu_mamba2.py --speed [--lengths 1000000,100000000] [--precisions bf16,f32]
        # needs torch + transformers (to write the random model); with mamba-ssm importable
        # (ANCHORS/build.sh, PYTHONPATH), also times mamba-ssm's Triton SSD stack

--parity, on test-data/mamba2-fixture (n_groups 2, head_dim 16, state 24, untied) and
mamba2-fixture-tied (tied head, biases, time_step_limit (0, 0.05)), per base logp of the observed
base from `likelihood --device cuda -f csv`:
  * against test-data/mamba2-reference.safetensors (transformers' torch path, float64 model):
    max |delta| <= 1e-4 (f32), <= 2e-2 (--precision bf16);
  * against `--device cpu`: max |delta| <= 1e-4;
  * stripes 1, 7, 1000 and whole (`--stripe-len`): the same text, byte for byte (the CUDA
    Mamba-2 scan is sequential in time, so splitting changes nothing);
  * with torch + transformers importable: transformers' Mamba2ForCausalLM on CUDA in f32
    (whatever path it takes there) against the same reference, for scale.
Exits non-zero if a bound is broken.

--speed: random Mamba2ForCausalLM (d_model 768, 24 layers, 24 heads of 64, state 128, 1 group,
vocab 12) saved once; ssmgen `likelihood --device cuda --profile` on a random record of each
length (binned output), wall time, device time and peak GPU memory (nvidia-smi polling); then
transformers' Mamba2ForCausalLM forward (batch 1, no cache, bf16) and, if it imports,
mamba-ssm's MambaLMHeadModel with Mamba2 layers (Triton SSD) on the same lengths, until they
run out of memory. Prints one table.
"""
import argparse
import json
import os
import re
import struct
import subprocess
import sys
import tempfile
import time

from common import ROOT, binary, likelihood_csv_column, write_fasta

F32_BOUND = 1e-4
BF16_BOUND = 2e-2
FIXTURES = {"mamba2-fixture": "logp", "mamba2-fixture-tied": "logp_tied"}


def read_safetensors(path):
    """{name: (dtype, shape, bytes)} of a safetensors file, without the safetensors package."""
    data = open(path, "rb").read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    body = data[8 + n :]
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        out[name] = (t["dtype"], t["shape"], body[a:b])
    return out


def reference():
    """Tokens and, per fixture, the reference logp of each observed base (None: first, N)."""
    import numpy as np
    ref = read_safetensors(os.path.join(ROOT, "test-data", "mamba2-reference.safetensors"))
    tokens = np.frombuffer(ref["tokens"][2], dtype="<i8")
    result = {}
    for folder, key in FIXTURES.items():
        _, shape, raw = ref[key]
        logp = np.frombuffer(raw, dtype="<f4").reshape(shape)
        result[folder] = [None] + [None if tokens[i] == 11 else float(logp[i - 1, tokens[i]])
                                   for i in range(1, len(tokens))]
    return tokens, result


def fixture_fasta(path, n):
    seq = "".join(l.strip() for l in open(os.path.join(ROOT, "test-data", "fixture.fa"))
                  if not l.startswith(">"))[:n]
    with open(path, "w") as f:
        f.write(">fixture\n" + "\n".join(seq[i : i + 60] for i in range(0, len(seq), 60)) + "\n")


def max_abs(a, b):
    assert len(a) == len(b), (len(a), len(b))
    assert all((x is None) == (y is None) for x, y in zip(a, b)), "scored positions differ"
    return max(abs(x - y) for x, y in zip(a, b) if x is not None)


def likelihood_text(args):
    return subprocess.run([binary(), "likelihood", "-q", "-f", "csv"] + args, check=True,
                          capture_output=True, text=True).stdout


def transformers_cuda(model_dir, tokens):
    import torch
    from transformers import Mamba2ForCausalLM
    m = Mamba2ForCausalLM.from_pretrained(model_dir, dtype=torch.float32).to("cuda").eval()
    ids = torch.tensor(tokens, device="cuda")[None]
    with torch.no_grad():
        logp = torch.log_softmax(m(input_ids=ids, use_cache=False).logits[0].double(), -1)
    observed = logp[:-1].gather(1, ids[0, 1:, None])[:, 0].tolist()
    return [None] + [v if t != 11 else None for v, t in zip(observed, tokens[1:])]


def parity():
    tokens, refs = reference()
    failed = False
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        fa = os.path.join(tmp, "m2.fa")
        fixture_fasta(fa, len(tokens))
        for folder in FIXTURES:
            model = os.path.join(ROOT, "test-data", folder)
            ref = refs[folder]
            base = ["-m", model, fa]
            cuda = likelihood_csv_column(base + ["--device", "cuda"])
            cpu = likelihood_csv_column(base + ["--device", "cpu"])
            bf16 = likelihood_csv_column(base + ["--device", "cuda", "--precision", "bf16"])
            checks = [("cuda f32 vs transformers", max_abs(cuda, ref), F32_BOUND),
                      ("cuda f32 vs cpu", max_abs(cuda, cpu), F32_BOUND),
                      ("cpu vs transformers", max_abs(cpu, ref), F32_BOUND),
                      ("cuda bf16 vs transformers", max_abs(bf16, ref), BF16_BOUND)]
            whole = likelihood_text(base + ["--device", "cuda"])
            for stripe in ("1", "7", "1000", str(len(tokens))):
                same = likelihood_text(base + ["--device", "cuda", "--stripe-len", stripe]) == whole
                checks.append((f"cuda --stripe-len {stripe} identical", 0.0 if same else 1.0, 0.0))
            try:
                hf = transformers_cuda(model, [int(t) for t in tokens])
                checks.append(("transformers cuda f32 vs reference (info)", max_abs(hf, ref), None))
            except Exception as e:  # torch/transformers absent, or no CUDA path
                print(f"# transformers on cuda skipped: {type(e).__name__}: {e}", file=sys.stderr)
            for name, value, bound in checks:
                ok = bound is None or value <= bound
                failed |= not ok
                rows.append((folder, name, value, bound, "ok" if ok else "FAIL"))
    print(f"{'fixture':<22} {'check':<44} {'max |delta logp|':>16} {'bound':>8}")
    for folder, name, value, bound, status in rows:
        b = "-" if bound is None else f"{bound:g}"
        print(f"{folder:<22} {name:<44} {value:>16.3e} {b:>8} {status}")
    return failed


def gpu_used_mib():
    out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                         capture_output=True, text=True).stdout.split()
    return int(out[0]) if out else 0


def make_model(path):
    import torch
    from transformers import Mamba2Config, Mamba2ForCausalLM
    torch.manual_seed(0)
    cfg = Mamba2Config(vocab_size=12, hidden_size=768, num_heads=24, head_dim=64, state_size=128,
                       n_groups=1, expand=2, conv_kernel=4, chunk_size=256, num_hidden_layers=24,
                       tie_word_embeddings=True, bos_token_id=2, eos_token_id=1, pad_token_id=4)
    Mamba2ForCausalLM(cfg).save_pretrained(path)
    return cfg


def ssmgen_speed(model, fasta, precision, out_dir):
    from gpu_throughput import PeakMemory
    cmd = [binary(), "likelihood", "-q", "--profile", "--device", "cuda", "--precision", precision,
           "-m", model, fasta, "--bin", "1000000", "-o", os.path.join(out_dir, "out.bedgraph")]
    with PeakMemory() as mem:
        t = time.time()
        run = subprocess.run(cmd, capture_output=True, text=True)
        secs = time.time() - t
    if run.returncode != 0:
        return None, None, None, run.stderr.strip().splitlines()[-1:]
    m = re.search(r"profile: device ([0-9.]+) ms", run.stderr)
    device_s = float(m.group(1)) / 1e3 if m else float("nan")
    return secs, device_s, mem.peak - mem.base, run.stderr


def torch_forward_speed(build, n, dtype):
    """tokens/s and peak MiB of one forward pass of `build()` over n tokens (after a warm-up on
    4,096), or the error that stopped it."""
    import torch
    try:
        model = build().to("cuda", dtype).eval()
        ids = torch.randint(7, 11, (1, n), device="cuda")
        with torch.no_grad():
            model(ids[:, :4096])
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            t = time.time()
            model(ids)
            torch.cuda.synchronize()
            secs = time.time() - t
        peak = torch.cuda.max_memory_allocated() / 2**20
        return n / secs, peak, None
    except Exception as e:  # out of memory, missing kernels
        return None, None, f"{type(e).__name__}: {str(e).splitlines()[0][:80]}"
    finally:
        torch.cuda.empty_cache()


def speed(lengths, precisions):
    import torch
    dtypes = {"bf16": torch.bfloat16, "f32": torch.float32}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "m2-768x24")
        cfg = make_model(model)
        for n in lengths:
            fa = os.path.join(tmp, f"r{n}.fa")
            write_fasta(fa, n)
            for p in precisions:
                secs, dev, peak, err = ssmgen_speed(model, fa, p, tmp)
                if secs is None:
                    rows.append((n, p, "ssmgen", None, None, None, err))
                else:
                    rows.append((n, p, "ssmgen e2e", n / secs, peak, None, None))
                    rows.append((n, p, "ssmgen device", n / dev, None, None, None))
            os.remove(fa)

            def hf():
                from transformers import Mamba2ForCausalLM
                return Mamba2ForCausalLM.from_pretrained(model)

            def mamba_ssm_lm():
                from mamba_ssm.models.config_mamba import MambaConfig
                from mamba_ssm.models.mixer_seq_simple import MambaLMHeadModel
                c = MambaConfig(d_model=768, n_layer=24, vocab_size=12, pad_vocab_size_multiple=1,
                                ssm_cfg={"layer": "Mamba2", "d_state": 128, "headdim": 64,
                                         "ngroups": 1, "chunk_size": 256},
                                rms_norm=True, fused_add_norm=True, residual_in_fp32=True)
                return MambaLMHeadModel(c)

            import importlib.util
            fast = importlib.util.find_spec("mamba_ssm") is not None
            hf_label = "transformers Mamba2 (" + ("mamba-ssm kernels" if fast else "torch path") + ")"
            for label, build in ((hf_label, hf), ("mamba-ssm Mamba2 (Triton SSD)", mamba_ssm_lm)):
                for p in precisions:
                    rate, peak, err = torch_forward_speed(build, n, dtypes[p])
                    rows.append((n, p, label, rate, peak, None, err))
    print(f"{'tokens':>11} {'prec':<5} {'stack':<32} {'tokens/s':>10} {'peak MiB':>9}  note")
    for n, p, label, rate, peak, _, err in rows:
        r = "-" if rate is None else f"{rate:.3g}"
        m = "-" if peak is None else f"{peak:.0f}"
        print(f"{n:>11} {p:<5} {label:<32} {r:>10} {m:>9}  {err or ''}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--parity", action="store_true")
    ap.add_argument("--speed", action="store_true")
    ap.add_argument("--lengths", default="1000000,100000000")
    ap.add_argument("--precisions", default="bf16")
    a = ap.parse_args()
    failed = False
    if a.parity or not a.speed:
        failed |= parity()
    if a.speed:
        speed([int(float(x)) for x in a.lengths.split(",")], a.precisions.split(","))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
