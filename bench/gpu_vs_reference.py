#!/usr/bin/env python3
"""ssmgen against the official mamba-ssm kernels on the same weights and GPU, in one run.

    bash ANCHORS/build.sh /tmp/anchor-site && export PYTHONPATH=/tmp/anchor-site
    python3 bench/gpu_vs_reference.py --anchors ANCHORS [--models d256,default]
        [--lengths 131072,1048576,4194304] [--long 1e7,1e8] [--precisions f32,bf16]

Reference: mamba-ssm's `MambaLMHeadModel` (selective_scan_cuda + causal_conv1d + the Triton fused
add-norm) loaded with the HF weights by ANCHORS/scripts/mbench.py (`--stack mamba-lm`), batch 1,
forward pass timed with CUDA events (median of 3 after a warm-up), peak = torch's max allocated.
It takes one whole sequence per call, so it stops at the lengths that fit.

ssmgen: `likelihood --device cuda --profile --device-warmup` on a FASTA record of the same
length (binned output, so writing is small), at the same lengths and at the --long ones. Two
rates: `device` = tokens / the device time of all ops, summed from CUDA events around each op
(--profile; the events themselves cost a little), after one untimed warm-up stripe, as the
reference is timed after a warm-up; `e2e` = tokens / process wall time of a second run without
the warm-up (start-up, model load, kernel compile from cache, reading, writing) at the --lengths;
at the --long ones the one run's wall time (its warm-up stripe, at most 2,097,152 tokens, is
inside it). Peak GPU memory by polling nvidia-smi. The ratio column divides ssmgen's `device`
rate by the reference's at the same length (the like for like: both are forward-pass device
time after a warm-up); `e2e/ref` is printed beside it. `--no-reference` prints ssmgen's rows
only (so the --long runs can go while the reference builds).
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

from common import ROOT, binary, write_fasta
from gpu_throughput import PeakMemory, make_big_model


def reference(anchors, model, label, precision, lengths):
    """{length: (tokens/s, peak MiB)} of mamba-ssm's MambaLMHeadModel."""
    cmd = [sys.executable, os.path.join(anchors, "scripts", "mbench.py"), "--model", model, "--label", label,
           "--stack", "mamba-lm", "--dtype", precision, "--lengths", ",".join(map(str, lengths))]
    out = subprocess.run(cmd, capture_output=True, text=True)
    result = {}
    for line in out.stdout.splitlines():
        if line.startswith("{"):
            rec = json.loads(line)
            if rec.get("status") == "ok":
                result[rec["length"]] = (rec["tokens_per_s"], rec["max_alloc_mib"])
            else:
                result[rec["length"]] = (None, rec.get("status"))
    if not result:
        print(out.stderr[-2000:], file=sys.stderr)
    return result


def ssmgen(model, fasta, n, precision, out_dir, separate_e2e):
    """(e2e tokens/s, device tokens/s, peak MiB, stages) of ssmgen on `fasta`."""
    cmd = [binary(), "likelihood", "-q", "--device", "cuda", "--precision", precision,
           "-m", model, fasta, "--bin", "1000000", "-o", os.path.join(out_dir, "out.bedgraph")]
    with PeakMemory() as mem:
        t = time.time()
        run = subprocess.run(cmd + ["--profile", "--device-warmup"], capture_output=True,
                             text=True, check=True)
        secs = time.time() - t
    m = re.search(r"profile: device ([0-9.]+) ms", run.stderr)
    device_s = float(m.group(1)) / 1e3 if m else float("nan")
    stages = run.stderr.split("): ", 1)[-1].strip()
    if separate_e2e:
        t = time.time()
        subprocess.run(cmd, capture_output=True, text=True, check=True)
        secs = time.time() - t
    return n / secs, n / device_s, mem.peak - mem.base, stages


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--anchors", default=os.path.join(ROOT, ".device-carry", "anchors"))
    ap.add_argument("--models", default="d256,default")
    ap.add_argument("--lengths", default="131072,1048576,4194304")
    ap.add_argument("--long", default="1e7,1e8")
    ap.add_argument("--precisions", default="f32,bf16")
    ap.add_argument("--no-reference", action="store_true", help="ssmgen's rows only")
    opts = ap.parse_args()
    lengths = [int(float(x)) for x in opts.lengths.split(",") if x]
    longs = [int(float(x)) for x in opts.long.split(",") if x]
    with tempfile.TemporaryDirectory() as tmp:
        models = {}
        if "d256" in opts.models:
            models["random d256 L8"] = make_big_model(os.path.join(tmp, "d256"))
        if "default" in opts.models:
            models["default d128 L6"] = os.path.join(ROOT, "models", "ssmgen-dna-small")
        fastas = {}
        for n in lengths + longs:
            fastas[n] = os.path.join(tmp, f"r{n}.fa")
            write_fasta(fastas[n], n)
        # Compile the kernels into the NVRTC cache before anything is timed.
        subprocess.run([binary(), "likelihood", "-q", "--device", "cuda", fastas[(lengths + longs)[0]],
                        "-o", os.path.join(tmp, "warm.bedgraph")], check=True)
        print(f"{'model':<16} {'prec':<5} {'length':>10} {'mamba-ssm tok/s':>15} {'ref MiB':>8} "
              f"{'ssmgen e2e':>11} {'ssmgen dev':>11} {'ssm MiB':>8} {'dev/ref':>8} {'e2e/ref':>8}  stages (ms)")
        for label, model in models.items():
            for precision in opts.precisions.split(","):
                ref = {} if opts.no_reference else reference(opts.anchors, model, label, precision, lengths)
                for n in lengths + longs:
                    e2e, dev, mib, stages = ssmgen(model, fastas[n], n, precision, tmp, n in lengths)
                    r_tps, r_mib = ref.get(n, (None, "-"))
                    ratio = f"{dev / r_tps:8.2f}" if r_tps else f"{'-':>8}"
                    ratio_e2e = f"{e2e / r_tps:8.2f}" if r_tps else f"{'-':>8}"
                    r_txt = f"{r_tps:15.3e}" if r_tps else f"{'-':>15}"
                    r_mib_txt = f"{r_mib:8.0f}" if isinstance(r_mib, float) else f"{str(r_mib)[:8]:>8}"
                    print(f"{label:<16} {precision:<5} {n:>10} {r_txt} {r_mib_txt} {e2e:11.3e} {dev:11.3e} "
                          f"{mib:8.0f} {ratio} {ratio_e2e}  {stages}", flush=True)


if __name__ == "__main__":
    main()
