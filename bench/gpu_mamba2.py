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
base from `likelihood --device cuda -f csv`, one row printed per check as it ends:
  * the SSD scan (f32: 3xTF32 tensor-core products) against
    test-data/mamba2-reference.safetensors (transformers' torch path, float64 model), against
    `--device cpu` and against the sequential CUDA scan (SSMGEN_M2_SCAN=sequential):
    max |delta| <= 1e-4; bf16 and tf32 printed for scale (not claimed);
  * stripes of 256 and 1024 tokens (multiples of the SSD chunk, 128) and whole: the same
    text, byte for byte; stripes of 1, 7 and 1000 (chunk boundaries move; the fixtures have 800
    tokens): max |delta| <= 1e-4;
  * with torch + transformers importable: transformers' Mamba2ForCausalLM on CUDA in f32
    (whatever path it takes there) against the same reference, for scale.
Exits non-zero if a bound is broken.

--speed: random Mamba2ForCausalLM (d_model 768, 24 layers, 24 heads of 64, state 128, 1 group,
chunk 256, vocab 12) saved once; ssmgen `likelihood --device cuda --profile` on a random record
of each length (binned output): wall time, device time, per-stage device times (`#` lines) and
peak GPU memory (nvidia-smi polling), the SSD scan and (--stacks) the sequential scan; with
--long N, N tokens too where the measured rate says it fits --long-budget, else the projection,
marked PROJECTED. Then, each in a child process under --timeout, transformers'
Mamba2ForCausalLM forward (batch 1, no cache; torch path, or mamba-ssm's kernels when they
import) and mamba-ssm's MambaLMHeadModel with Mamba2 layers (Triton SSD) on --ref-lengths, each
stack stopping at its first failure (out of memory, time). One row printed per run as it ends.
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


def likelihood_text(args, env=None):
    """The output of `likelihood -q -f csv ARGS`, with extra environment `env`; a failing run
    prints its error (an NVRTC compile error, say) and stops the script."""
    run = subprocess.run([binary(), "likelihood", "-q", "-f", "csv"] + args,
                         capture_output=True, text=True, env={**os.environ, **(env or {})})
    if run.returncode != 0:
        sys.exit(f"ssmgen likelihood {' '.join(args)} failed: {run.stderr.strip()[-2000:]}")
    return run.stdout


def transformers_cuda(model_dir, tokens):
    import torch
    from transformers import Mamba2ForCausalLM
    m = Mamba2ForCausalLM.from_pretrained(model_dir, dtype=torch.float32).to("cuda").eval()
    ids = torch.tensor(tokens, device="cuda")[None]
    with torch.no_grad():
        logp = torch.log_softmax(m(input_ids=ids, use_cache=False).logits[0].double(), -1)
    observed = logp[:-1].gather(1, ids[0, 1:, None])[:, 0].tolist()
    return [None] + [v if t != 11 else None for v, t in zip(observed, tokens[1:])]


def likelihood_column(args, env=None):
    """logp_fwd of `likelihood -f csv ARGS` (None = empty), with extra environment `env`."""
    return csv_column(likelihood_text(args, env))


def csv_column(text):
    """logp_fwd of `likelihood -f csv` output (None = empty)."""
    lines = text.splitlines()
    idx = lines[0].split(",").index("logp_fwd")
    return [float(x) if x else None for x in (l.split(",")[idx] for l in lines[1:])]


def parity(quick=False):
    """With `quick`, only the bounded checks of the default (SSD) path: no sequential scan, no
    tf32, no transformers on CUDA."""
    tokens, refs = reference()
    failed = False
    print(f"{'fixture':<22} {'check':<48} {'max |delta logp|':>16} {'bound':>8}", flush=True)

    def row(folder, name, value, bound):
        nonlocal failed
        ok = bound is None or value <= bound
        failed |= not ok
        b = "-" if bound is None else f"{bound:g}"
        print(f"{folder:<22} {name:<48} {value:>16.3e} {b:>8} {'ok' if ok else 'FAIL'}",
              flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        fa = os.path.join(tmp, "m2.fa")
        fixture_fasta(fa, len(tokens))
        for folder in FIXTURES:
            model = os.path.join(ROOT, "test-data", folder)
            ref = refs[folder]
            base = ["-m", model, fa]
            whole = likelihood_text(base + ["--device", "cuda"])
            cuda = csv_column(whole)
            cpu = likelihood_column(base + ["--device", "cpu"])
            row(folder, "cuda f32 (SSD) vs transformers", max_abs(cuda, ref), F32_BOUND)
            row(folder, "cuda f32 (SSD) vs cpu", max_abs(cuda, cpu), F32_BOUND)
            if not quick:
                seq = likelihood_column(base + ["--device", "cuda"],
                                        {"SSMGEN_M2_SCAN": "sequential"})
                row(folder, "cuda f32 (SSD) vs cuda sequential scan", max_abs(cuda, seq),
                    F32_BOUND)
                row(folder, "cuda f32 sequential scan vs transformers", max_abs(seq, ref),
                    F32_BOUND)
            row(folder, "cpu vs transformers", max_abs(cpu, ref), F32_BOUND)
            # bf16/tf32 are not claimed for Mamba-2 (the bf16 GEMMs alone move single positions
            # of these random fixtures past 2e-2): printed for scale, no bound.
            for p in ("bf16",) if quick else ("bf16", "tf32"):
                v = likelihood_column(base + ["--device", "cuda", "--precision", p])
                row(folder, f"cuda {p} (SSD) vs transformers (info)", max_abs(v, ref), None)
            # Stripes that are multiples of the SSD chunk (128) keep every chunk boundary: the
            # same bits. Others move chunk boundaries: the same values to rounding. (The
            # fixture has 800 tokens: stripes of 1000 are the whole record.)
            for stripe in ("256",) if quick else ("256", "1024", str(len(tokens))):
                same = likelihood_text(base + ["--device", "cuda", "--stripe-len", stripe]) == whole
                row(folder, f"cuda --stripe-len {stripe} identical to whole", 0.0 if same else 1.0,
                    0.0)
            for stripe in ("1", "7") if quick else ("1", "7", "1000"):
                v = likelihood_column(base + ["--device", "cuda", "--stripe-len", stripe])
                row(folder, f"cuda --stripe-len {stripe} vs whole", max_abs(v, cuda), F32_BOUND)
            if quick:
                continue
            try:
                hf = transformers_cuda(model, [int(t) for t in tokens])
                row(folder, "transformers cuda f32 vs reference (info)", max_abs(hf, ref), None)
            except Exception as e:  # torch/transformers absent, or no CUDA path
                print(f"# transformers on cuda skipped: {type(e).__name__}: {e}", file=sys.stderr)
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


def make_model_np(path, layers=24, d=768, heads=24, head_dim=64, state=128, vocab=12, seed=0):
    """The --speed model's shapes, written with numpy alone (seconds, where importing
    transformers and initialising it takes ~15 s): config.json as Mamba2Config writes it and
    random weights of transformers' initial scales (tied head), float32 safetensors."""
    import numpy as np
    rng = np.random.default_rng(seed)
    e = heads * head_dim
    conv = e + 2 * state
    cfg = {"model_type": "mamba2", "architectures": ["Mamba2ForCausalLM"], "vocab_size": vocab,
           "hidden_size": d, "num_hidden_layers": layers, "num_heads": heads,
           "head_dim": head_dim, "state_size": state, "n_groups": 1, "expand": 2,
           "conv_kernel": 4, "chunk_size": 256, "hidden_act": "silu", "use_bias": False,
           "use_conv_bias": True, "layer_norm_epsilon": 1e-5, "rms_norm": True,
           "residual_in_fp32": True, "tie_word_embeddings": True, "time_step_rank": 48,
           "time_step_min": 0.001, "time_step_max": 0.1, "time_step_floor": 1e-4,
           "bos_token_id": 2, "eos_token_id": 1, "pad_token_id": 4, "norm_before_gate": False}
    f32 = lambda a: np.ascontiguousarray(a, dtype="<f4")
    t = {"backbone.embeddings.weight": f32(rng.normal(0, 0.02, (vocab, d))),
         "backbone.norm_f.weight": f32(np.ones(d))}
    for i in range(layers):
        p = f"backbone.layers.{i}."
        dt = np.exp(rng.uniform(np.log(1e-3), np.log(0.1), heads))
        t[p + "norm.weight"] = f32(np.ones(d))
        t[p + "mixer.in_proj.weight"] = f32(rng.normal(0, 0.02, (2 * e + 2 * state + heads, d)))
        t[p + "mixer.conv1d.weight"] = f32(rng.uniform(-0.5, 0.5, (conv, 1, 4)))
        t[p + "mixer.conv1d.bias"] = f32(rng.uniform(-0.5, 0.5, conv))
        t[p + "mixer.dt_bias"] = f32(dt + np.log(-np.expm1(-dt)))
        t[p + "mixer.A_log"] = f32(np.log(np.arange(1, heads + 1)))
        t[p + "mixer.D"] = f32(np.ones(heads))
        t[p + "mixer.norm.weight"] = f32(np.ones(e))
        t[p + "mixer.out_proj.weight"] = f32(rng.normal(0, 0.02 / np.sqrt(2 * layers), (d, e)))
    os.makedirs(path, exist_ok=True)
    header, off = {"__metadata__": {"format": "pt"}}, 0
    for name, a in t.items():
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + a.nbytes]}
        off += a.nbytes
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(os.path.join(path, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for a in t.values():
            f.write(a.tobytes())
    # config.json last: its presence says the model is complete (--model-dir reuses it).
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)


def ssmgen_speed(model, fasta, precision, out_dir, timeout, env=None):
    """(wall s, device s, peak GPU MiB above the idle level, error) of one `likelihood` run."""
    from gpu_throughput import PeakMemory
    cmd = [binary(), "likelihood", "-q", "--profile", "--device", "cuda", "--precision", precision,
           "-m", model, fasta, "--bin", "1000000", "-o", os.path.join(out_dir, "out.bedgraph")]
    with PeakMemory() as mem:
        t = time.time()
        try:
            run = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                                 env={**os.environ, **(env or {})})
        except subprocess.TimeoutExpired:
            return None, None, None, f"over {timeout} s"
        secs = time.time() - t
    if run.returncode != 0:
        return None, None, None, " ".join(run.stderr.strip().splitlines()[-1:])[:100]
    m = re.search(r"profile: device ([0-9.]+) ms", run.stderr)
    device_s = float(m.group(1)) / 1e3 if m else float("nan")
    for line in run.stderr.splitlines():
        if "profile:" in line:
            print(f"#   {line.strip()}", flush=True)
    return secs, device_s, mem.peak - mem.base, None


TORCH_CHILD = r"""
import sys, time, torch
kind, model, n, dtype = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
dtype = {"bf16": torch.bfloat16, "f32": torch.float32}[dtype]
if kind == "hf":
    from transformers import Mamba2ForCausalLM
    m = Mamba2ForCausalLM.from_pretrained(model)
else:
    from mamba_ssm.models.config_mamba import MambaConfig
    from mamba_ssm.models.mixer_seq_simple import MambaLMHeadModel
    c = MambaConfig(d_model=768, n_layer=24, vocab_size=12, pad_vocab_size_multiple=1,
                    ssm_cfg={"layer": "Mamba2", "d_state": 128, "headdim": 64, "ngroups": 1,
                             "chunk_size": 256},
                    rms_norm=True, fused_add_norm=True, residual_in_fp32=True)
    m = MambaLMHeadModel(c)
m = m.to("cuda", dtype).eval()
ids = torch.randint(7, 11, (1, n), device="cuda")
with torch.no_grad():
    m(ids[:, :4096])
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    t = time.time()
    m(ids)
    torch.cuda.synchronize()
    secs = time.time() - t
print(f"RESULT {n / secs} {torch.cuda.max_memory_allocated() / 2**20}")
"""


def torch_speed(kind, model, n, precision, timeout):
    """(tokens/s, peak MiB, error) of one forward pass over n tokens, batch 1, no cache, after
    a warm-up on 4,096 tokens, in a child process (so a hang or an out-of-memory ends there)."""
    try:
        run = subprocess.run([sys.executable, "-c", TORCH_CHILD, kind, model, str(n), precision],
                             capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, None, f"over {timeout} s"
    m = re.search(r"RESULT ([0-9.e+]+) ([0-9.e+]+)", run.stdout)
    if not m:
        err = [l for l in run.stderr.strip().splitlines() if "Error" in l] or ["failed"]
        return None, None, err[-1][:100]
    return float(m.group(1)), float(m.group(2)), None


def speed(lengths, precisions, stacks, timeout, ref_lengths, long_n=0, long_budget=0.0,
          model_dir=None, np_model=False):
    """One row a run, printed as it ends. With long_n, ssmgen SSD also runs long_n tokens in each
    precision whose wall-time rate at the longest of `lengths` says it ends within long_budget
    seconds; otherwise the projection is printed, marked as such."""
    print(f"{'tokens':>11} {'prec':<5} {'stack':<34} {'tokens/s':>10} {'device tok/s':>12} "
          f"{'wall s':>8} {'peak MiB':>9}  note", flush=True)

    def row(n, p, label, rate, dev_rate, secs, peak, note):
        f = lambda v, fmt: "-" if v is None else format(v, fmt)
        print(f"{n:>11} {p:<5} {label:<34} {f(rate, '.3g'):>10} {f(dev_rate, '.3g'):>12} "
              f"{f(secs, '.2f'):>8} {f(peak, '.0f'):>9}  {note or ''}", flush=True)

    rates = {}
    with tempfile.TemporaryDirectory() as tmp:
        model = model_dir or os.path.join(tmp, "m2-768x24")
        if not os.path.exists(os.path.join(model, "config.json")):
            t = time.time()
            (make_model_np if np_model else make_model)(model)
            print(f"# model written in {time.time() - t:.1f} s", flush=True)
        for n in lengths:
            fa = os.path.join(tmp, f"r{n}.fa")
            write_fasta(fa, n)
            for p in precisions:
                for label, env in (("ssmgen SSD", None),
                                   ("ssmgen SSD 4-warp output", {"SSMGEN_M2_SCAN_WARPS": "4"}),
                                   ("ssmgen sequential scan", {"SSMGEN_M2_SCAN": "sequential"})):
                    if label not in stacks:
                        continue
                    secs, dev, peak, err = ssmgen_speed(model, fa, p, tmp, timeout, env)
                    if secs is None:
                        row(n, p, label, None, None, None, None, err)
                    else:
                        row(n, p, label, n / secs, n / dev, secs, peak, "peak: nvidia-smi")
                        if label == "ssmgen SSD":
                            rates[p] = (n, secs, dev)
            os.remove(fa)
        if long_n and "ssmgen SSD" in stacks:
            for p in precisions:
                if p not in rates:
                    continue
                # The run's fixed cost (start, model load, kernel compile) plus the device time
                # at the measured device rate.
                n0, secs0, dev0 = rates[p]
                need = max(secs0 - dev0, 0.0) + dev0 * long_n / n0
                if need > long_budget:
                    print(f"# {long_n} {p}: not run; PROJECTED {need:.0f} s wall "
                          f"({dev0 * long_n / n0:.0f} s device, {n0 / dev0:.3g} tokens/s) from "
                          f"the measured {n0}-token run (budget {long_budget:.0f} s)", flush=True)
                    continue
                fa = os.path.join(tmp, "long.fa")
                write_fasta(fa, long_n)
                secs, dev, peak, err = ssmgen_speed(model, fa, p, tmp, need * 1.5 + 30)
                if secs is None:
                    row(long_n, p, "ssmgen SSD", None, None, None, None, err)
                else:
                    row(long_n, p, "ssmgen SSD", long_n / secs, long_n / dev, secs, peak,
                        "peak: nvidia-smi")
                os.remove(fa)
        import importlib.util
        fast = importlib.util.find_spec("mamba_ssm") is not None
        hf_label = "transformers Mamba2 (" + ("mamba-ssm kernels" if fast else "torch path") + ")"
        for kind, label in (("hf", hf_label), ("mamba_ssm", "mamba-ssm Mamba2 (Triton SSD)")):
            if kind not in stacks:
                continue
            if kind == "mamba_ssm" and not fast:
                print(f"# {label}: mamba_ssm does not import here", flush=True)
                continue
            for p in precisions:
                for n in ref_lengths:
                    rate, peak, err = torch_speed(kind, model, n, p, timeout)
                    row(n, p, label, rate, None, None, peak, err or "peak: torch allocator")
                    if rate is None:
                        break  # longer ones will not fit either


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--parity", action="store_true")
    ap.add_argument("--speed", action="store_true")
    ap.add_argument("--lengths", default="1000000,100000000")
    ap.add_argument("--precisions", default="bf16")
    ap.add_argument("--stacks", default="ssmgen SSD,ssmgen sequential scan,hf,mamba_ssm",
                    help="comma-separated: 'ssmgen SSD', 'ssmgen SSD 4-warp output' "
                         "(SSMGEN_M2_SCAN_WARPS=4), 'ssmgen sequential scan', hf, mamba_ssm")
    ap.add_argument("--ref-lengths", default="65536,262144,1048576",
                    help="lengths for the torch stacks (each stops at its first failure)")
    ap.add_argument("--timeout", type=float, default=120, help="seconds per run")
    ap.add_argument("--long", type=float, default=0,
                    help="ssmgen SSD also on this many tokens where the measured rate says it fits")
    ap.add_argument("--long-budget", type=float, default=120, help="seconds allowed for --long")
    ap.add_argument("--model-dir", help="where the random model is (written there if absent)")
    ap.add_argument("--np-model", action="store_true",
                    help="write the random model with numpy (no transformers import)")
    ap.add_argument("--quick", action="store_true", help="--parity: the bounded checks only")
    a = ap.parse_args()
    failed = False
    if a.parity or not a.speed:
        failed |= parity(a.quick)
    if a.speed:
        speed([int(float(x)) for x in a.lengths.split(",") if x], a.precisions.split(","),
              a.stacks.split(","), a.timeout, [int(float(x)) for x in a.ref_lengths.split(",")],
              int(a.long), a.long_budget, a.model_dir, a.np_model)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
