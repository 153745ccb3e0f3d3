#!/usr/bin/env python3
"""Caduceus on the GPU: ssmgen's CUDA results against the released code's, and speed against the
released code on mamba-ssm (same weights, same GPU, one run).

    bash ANCHORS/build.sh anchor-site && export PYTHONPATH=$PWD/anchor-site
    python3 bench/gpu_caduceus.py --anchors ANCHORS [--parity] [--speed] [--batches 1,8]

--parity: `ssmgen likelihood` and `score-variants` with `--device cuda` (f32 and bf16) on the
  fixtures of test-data/make_caduceus_fixtures.py, against the reference outputs stored beside
  them (max and mean |Δ logp| per base, |Δ llr| per variant).
--speed: a Caduceus-PS-shaped (and -Ph-shaped) model, d_model 256, 16 layers, random weights,
  built with the released code; the reference runs `CaduceusForMaskedLM` forward over
  131,072-token windows (batch 1 and 8, f32 and bf16; CUDA events around 3 timed passes after a
  warm-up; peak = torch.cuda.max_memory_allocated); ssmgen runs `likelihood` end to end (process
  wall time: model load, FASTA read, windows, log-softmax, output) over 2 x batch windows of the
  same length on the same weights, peak GPU memory by polling nvidia-smi.
"""
import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from common import ROOT, binary
from gpu_throughput import PeakMemory

WINDOW = 131072


def fixtures_module():
    path = os.path.join(ROOT, "test-data", "make_caduceus_fixtures.py")
    spec = importlib.util.spec_from_file_location("make_caduceus_fixtures", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def reference_arrays():
    from safetensors.numpy import load_file
    return load_file(os.path.join(ROOT, "test-data", "caduceus-reference.safetensors"))


def logp_of(logits, tokens):
    m = logits.max(1, keepdims=True)
    z = np.log(np.exp(logits.astype(np.float64) - m).sum(1)) + m[:, 0]
    out = logits[np.arange(len(tokens)), tokens] - z
    out[(tokens < 7) | (tokens > 10)] = np.nan
    return out


def csv_column(text, name):
    lines = text.strip().split("\n")
    col = lines[0].split(",").index(name)
    return np.array([float(l.split(",")[col]) if l.split(",")[col] else np.nan for l in lines[1:]])


def parity():
    ref = reference_arrays()
    tokens = ref["tokens"]
    letters = {7: "A", 8: "C", 9: "G", 10: "T"}
    tmp = tempfile.mkdtemp()
    vcf = os.path.join(tmp, "v.vcf")
    with open(vcf, "w") as f:
        f.write("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n")
        for p, r, a in zip(ref["variant_pos"], ref["variant_ref"], ref["variant_alt"]):
            f.write(f"cad\t{p + 1}\t.\t{letters[int(r)]}\t{letters[int(a)]}\t.\t.\t.\n")
    print(f"\n{'fixture':<22} {'precision':<9} {'max |Δ logp|':>13} {'mean |Δ logp|':>14} {'max |Δ llr|':>12}")
    for name in ["caduceus-ps", "caduceus-ph", "caduceus-ph-mul"]:
        key = name.replace("-", "_")
        want = logp_of(ref[f"{key}.logits"], tokens)
        want_llr = np.concatenate([ref[f"{key}.llr_fwd"], ref[f"{key}.llr_rev"]])
        for folder in [name, name + "-lean"]:
            model = os.path.join(ROOT, "test-data", folder)
            for precision in ["f32", "bf16"]:
                base = [binary(), "-q", "--device", "cuda", "--precision", precision, "--model", model]
                out = subprocess.run([base[0], "likelihood"] + base[1:] + ["-f", "csv",
                                     os.path.join(ROOT, "test-data", "caduceus.fa")],
                                     check=True, capture_output=True, text=True).stdout
                got = csv_column(out, "logp_fwd")
                d = np.abs(got - want)[~np.isnan(want)]
                out = subprocess.run([base[0], "score-variants"] + base[1:] + [
                    "-f", "csv", "--ref", os.path.join(ROOT, "test-data", "caduceus.fa"), "--vcf", vcf],
                    check=True, capture_output=True, text=True).stdout
                llr = np.concatenate([csv_column(out, "llr_fwd"), csv_column(out, "llr_rev")])
                print(f"{folder:<22} {precision:<9} {d.max():>13.2e} {d.mean():>14.2e} "
                      f"{np.abs(llr - want_llr).max():>12.2e}", flush=True)


def build_speed_model(fx, anchors, rcps, folder):
    import torch
    flags = dict(rcps=rcps, bidirectional_strategy="add", bidirectional_weight_tie=True)
    torch.manual_seed(0)
    model, config = fx.build(anchors, flags, "cuda", d_model=256, n_layer=16)
    fx.save(model, config, flags, folder)
    return model


def time_reference(model, batch, dtype):
    import torch
    m = model.to(dtype)
    ids = torch.randint(7, 11, (batch, WINDOW), device="cuda")
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    with torch.no_grad():
        m(ids)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(3):
            torch.log_softmax(m(ids).logits.float(), -1)
        end.record()
        torch.cuda.synchronize()
    secs = start.elapsed_time(end) / 1000 / 3
    return batch * WINDOW / secs, torch.cuda.max_memory_allocated() / 2**20


def time_ssmgen(folder, fasta, bases, batch, precision):
    cmd = [binary(), "likelihood", "-q", "--device", "cuda", "--precision", precision, "--model", folder,
           "--window-len", str(WINDOW), "--window-overlap", "0", "--window-batch", str(batch), fasta,
           "-o", os.path.join(os.path.dirname(fasta), "out.bedgraph")]
    # Compiles the kernels into the NVRTC cache (same d_state and d_conv) before timing.
    subprocess.run(cmd[:cmd.index(fasta)] + [os.path.join(ROOT, "test-data", "caduceus.fa"),
                   "-o", os.path.join(os.path.dirname(fasta), "warm.bedgraph")], check=True)
    with PeakMemory() as mem:
        t = time.time()
        subprocess.run(cmd, check=True)
        secs = time.time() - t
    return bases / secs, mem.peak - mem.base


def speed(anchors, batches):
    import torch
    fx = fixtures_module()
    tmp = tempfile.mkdtemp()
    print(f"\n{'model':<18} {'precision':<9} {'batch':>5} {'stack':<22} {'tokens/s':>10} {'peak GPU MiB':>12} {'ssmgen/ref':>10}")
    for label, rcps in [("Caduceus-PS shape", True), ("Caduceus-Ph shape", False)]:
        folder = os.path.join(tmp, label.split()[0] + ("-ps" if rcps else "-ph"))
        model = build_speed_model(fx, anchors, rcps, folder)
        for precision, dtype in [("f32", torch.float32), ("bf16", torch.bfloat16)]:
            for batch in batches:
                ref_tps, ref_mem = time_reference(model, batch, dtype)
                bases = 2 * batch * WINDOW
                fasta = os.path.join(tmp, f"w{bases}.fa")
                if not os.path.exists(fasta):
                    rng = np.random.default_rng(1)
                    seq = "".join(np.array(list("ACGT"))[rng.integers(0, 4, bases)])
                    with open(fasta, "w") as f:
                        f.write(">w\n" + "\n".join(seq[i:i + 60] for i in range(0, bases, 60)) + "\n")
                    with open(fasta + ".fai", "w") as f:
                        f.write(f"w\t{bases}\t3\t60\t61\n")
                model.to("cpu")
                torch.cuda.empty_cache()
                tps, mem = time_ssmgen(folder, fasta, bases, batch, precision)
                model.to("cuda")
                print(f"{label:<18} {precision:<9} {batch:>5} {'released code (mamba-ssm)':<22} {ref_tps:>10.3e} {ref_mem:>12.0f}")
                print(f"{label:<18} {precision:<9} {batch:>5} {'ssmgen end to end':<22} {tps:>10.3e} {mem:>12.0f} {tps / ref_tps:>10.2f}",
                      flush=True)
            model.to(torch.float32)
        del model
        torch.cuda.empty_cache()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--anchors", default=os.path.join(ROOT, ".device-carry", "anchors"))
    ap.add_argument("--parity", action="store_true")
    ap.add_argument("--speed", action="store_true")
    ap.add_argument("--batches", default="1,8")
    opts = ap.parse_args()
    if opts.parity:
        parity()
    if opts.speed:
        speed(opts.anchors, [int(b) for b in opts.batches.split(",")])


if __name__ == "__main__":
    sys.exit(main())
