#!/usr/bin/env python3
"""GPU throughput of `ssmgen likelihood --device cuda` against the memory-bound floor and
against transformers' MambaForCausalLM on the same weights, on the same GPU.

    python3 bench/gpu_throughput.py [--lengths 1e6,1e7,1e8] [--ref-lengths 4096,16384]

Models (`--models`, default all three): `fixture` (d_model 64, 2 layers), `d256` (a random
d_model 256 / 8 layer model written by transformers; needs torch + transformers, as on the GPU
machine) and `default` (the shipped models/ssmgen-dna-small, d_model 128, 6 layers). Peak GPU memory is read by
polling nvidia-smi (device total in use minus the idle baseline).

Floors (bytes per token per layer, f32, divided by the measured device-to-device copy bandwidth):
  fused   = 8 * d_model                       (read and write the residual stream only)
  unfused = 4 * (5 d_model + 15 d_inner + (dt_rank + 2 d_state) + dt_rank + 3 d_state)
            (every tensor ssmgen's kernel sequence reads or writes once)
"""
import argparse
import json
import os
import subprocess
import tempfile
import threading
import time

from common import ROOT, binary, write_fasta


def gpu_used_mib():
    out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                         capture_output=True, text=True).stdout
    return float(out.split()[0])


class PeakMemory:
    """Polls device memory in use every 50 ms while a command runs."""

    def __init__(self):
        self.base = gpu_used_mib()
        self.peak = self.base
        self.stop = False
        self.thread = threading.Thread(target=self.poll, daemon=True)

    def poll(self):
        while not self.stop:
            self.peak = max(self.peak, gpu_used_mib())
            time.sleep(0.05)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop = True
        self.thread.join()


def copy_bandwidth():
    import torch
    x = torch.empty(512 * 1024 * 1024, dtype=torch.float32, device="cuda")  # 2 GiB
    y = torch.empty_like(x)
    for _ in range(3):
        y.copy_(x)
    torch.cuda.synchronize()
    t = time.time()
    for _ in range(10):
        y.copy_(x)
    torch.cuda.synchronize()
    bw = 10 * 2 * x.numel() * 4 / (time.time() - t)
    del x, y
    torch.cuda.empty_cache()
    return bw


def make_big_model(path):
    import torch
    from transformers import MambaConfig, MambaForCausalLM
    torch.manual_seed(0)
    cfg = MambaConfig(vocab_size=12, hidden_size=256, state_size=16, num_hidden_layers=8, expand=2,
                      conv_kernel=4, tie_word_embeddings=True, bos_token_id=2)
    MambaForCausalLM(cfg).save_pretrained(path)
    return path


def floors(cfg, bandwidth):
    d, e, n = cfg["hidden_size"], cfg.get("intermediate_size") or 2 * cfg["hidden_size"], cfg["state_size"]
    r = cfg["time_step_rank"] if isinstance(cfg["time_step_rank"], int) else -(-d // 16)
    layers = cfg["num_hidden_layers"]
    fused = 8 * d
    unfused = 4 * (5 * d + 15 * e + (r + 2 * n) + r + 3 * n)
    return bandwidth / (fused * layers), bandwidth / (unfused * layers)


def run_ssmgen(model, fasta, precision="f32"):
    cmd = [binary(), "likelihood", "-q", "--device", "cuda", "--precision", precision, "-m", model, fasta,
           "--bin", "1000000"]
    with PeakMemory() as mem:
        t = time.time()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        secs = time.time() - t
    return secs, mem.peak - mem.base


def run_reference(model, length):
    import torch
    from transformers import MambaForCausalLM
    m = MambaForCausalLM.from_pretrained(model, dtype=torch.float32).cuda().eval()
    ids = torch.randint(7, 11, (1, length), device="cuda")
    torch.cuda.reset_peak_memory_stats()
    with torch.no_grad():
        m(input_ids=ids[:, :256], use_cache=False)  # warm-up
        torch.cuda.synchronize()
        t = time.time()
        logits = m(input_ids=ids, use_cache=False).logits
        torch.log_softmax(logits, -1)
        torch.cuda.synchronize()
        secs = time.time() - t
    peak = torch.cuda.max_memory_allocated() / 2**20
    del m
    torch.cuda.empty_cache()
    return secs, peak


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lengths", default="1e6,1e7,1e8")
    ap.add_argument("--ref-lengths", default="4096,16384,65536")
    ap.add_argument("--precisions", default="f32,bf16")
    ap.add_argument("--models", default="fixture,d256,default")
    ap.add_argument("--ref-budget", type=float, default=90.0, help="stop the reference past this many seconds")
    opts = ap.parse_args()
    bw = copy_bandwidth()
    print(f"device-to-device copy bandwidth: {bw / 1e12:.2f} TB/s (read + write bytes)")
    with tempfile.TemporaryDirectory() as tmp:
        chosen = opts.models.split(",")
        models = {}
        if "fixture" in chosen:
            models["fixture d64 L2"] = os.path.join(ROOT, "test-data", "fixture-model")
        if "d256" in chosen:
            models["random d256 L8"] = make_big_model(os.path.join(tmp, "d256"))
        if "default" in chosen:
            models["default d128 L6"] = os.path.join(ROOT, "models", "ssmgen-dna-small")
        print(f"\n{'model':<16} {'stack':<12} {'length':>10} {'seconds':>8} {'tokens/s':>12} "
              f"{'peak GPU MiB':>12} {'floor fused':>12} {'floor unfused':>13} {'% unfused':>9}")
        lengths = [int(float(x)) for x in opts.lengths.split(",")]
        fastas = {}
        for n in lengths:
            fastas[n] = os.path.join(tmp, f"r{n}.fa")
            write_fasta(fastas[n], n)
        for label, model in models.items():
            cfg = json.load(open(os.path.join(model, "config.json")))
            f_fused, f_unfused = floors(cfg, bw)
            for precision in opts.precisions.split(","):
                for n in lengths:
                    secs, peak = run_ssmgen(model, fastas[n], precision)
                    tps = n / secs
                    print(f"{label:<16} {'ssmgen ' + precision:<12} {n:>10} {secs:>8.2f} {tps:>12.3e} {peak:>12.0f} "
                          f"{f_fused:>12.3e} {f_unfused:>13.3e} {100 * tps / f_unfused:>8.1f}%", flush=True)
            for n in [int(x) for x in opts.ref_lengths.split(",") if x]:
                secs, peak = run_reference(model, n)
                print(f"{label:<16} {'transformers':<12} {n:>10} {secs:>8.2f} {n / secs:>12.3e} {peak:>12.0f}",
                      flush=True)
                if secs > opts.ref_budget:
                    break


if __name__ == "__main__":
    main()
