#!/usr/bin/env python3
"""Many short records (FASTQ reads): time of `ssmgen likelihood` and agreement with the CPU.

    python3 bench/reads_bench.py READS.fq.gz [--device cuda] [--baseline OTHER_SSMGEN]

Prints seconds and reads/s for this binary (and a baseline binary, e.g. a build from before
short-record batching), and max |delta logp| against `--device cpu`.
"""
import argparse
import os
import subprocess
import time

from common import ROOT, binary, max_mean_abs


def run(exe, reads, device):
    t = time.time()
    out = subprocess.run([exe, "likelihood", "-q", "-f", "csv", "-m",
                          os.path.join(ROOT, "test-data", "fixture-model"), "--device", device, reads],
                         check=True, capture_output=True, text=True).stdout
    secs = time.time() - t
    col = [float(l.split(",")[3]) if l.split(",")[3] else None for l in out.splitlines()[1:]]
    return secs, col


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("reads")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--baseline")
    o = ap.parse_args()
    n_reads = sum(1 for _ in subprocess.run(["sh", "-c", f"zcat -f {o.reads} | awk 'NR%4==1'"],
                                            capture_output=True, text=True).stdout.splitlines())
    print(f"{'binary':<12} {'device':<6} {'seconds':>8} {'reads/s':>10}")
    secs, new = run(binary(), o.reads, o.device)
    print(f"{'this':<12} {o.device:<6} {secs:>8.2f} {n_reads / secs:>10.0f}")
    if o.baseline:
        secs, old = run(o.baseline, o.reads, o.device)
        print(f"{'baseline':<12} {o.device:<6} {secs:>8.2f} {n_reads / secs:>10.0f}")
        print("max/mean |d logp| this vs baseline: %.3e %.3e" % max_mean_abs(new, old))
    secs, cpu = run(binary(), o.reads, "cpu")
    print(f"{'this':<12} {'cpu':<6} {secs:>8.2f} {n_reads / secs:>10.0f}")
    print("max/mean |d logp| this vs cpu: %.3e %.3e" % max_mean_abs(new, cpu))


if __name__ == "__main__":
    main()
