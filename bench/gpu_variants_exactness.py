#!/usr/bin/env python3
"""score-variants exactness on a device: the state-cached scores against the naive computation
(`--context` longer than the chromosome: a fresh pass from the chromosome start for every
variant), and against the CPU backend, for SNVs and indels on both strands.

    python3 bench/gpu_variants_exactness.py [--device cuda]
"""
import argparse
import os
import random
import subprocess
import sys
import tempfile

from common import ROOT, binary

COLS = ["llr_fwd", "llr_rev", "delta_ll_fwd", "delta_ll_rev"]


def table(args):
    out = subprocess.run([binary(), "score-variants", "-q", "-f", "tsv"] + args,
                         check=True, capture_output=True, text=True).stdout.splitlines()
    head = out[0].split("\t")
    return [{c: r.split("\t")[head.index(c)] for c in COLS} for r in out[1:]]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda")
    o = ap.parse_args()
    fa = os.path.join(ROOT, "test-data", "fixture.fa")
    seq = "".join(l.strip() for l in open(fa) if not l.startswith(">")).upper()
    rng = random.Random(5)
    lines = ["chrom\tpos\tref\talt"]
    for _ in range(60):
        p = rng.randrange(10, len(seq) - 10)
        if "N" in seq[p - 1 : p + 4]:
            continue
        kind = rng.choice(["snv", "del", "ins"])
        if kind == "snv":
            ref, alt = seq[p], rng.choice([b for b in "ACGT" if b != seq[p]])
        elif kind == "del":
            ref, alt = seq[p : p + 3], seq[p]
        else:
            ref, alt = seq[p], seq[p] + "".join(rng.choice("ACGT") for _ in range(3))
        lines.append(f"fixture\t{p + 1}\t{ref}\t{alt}")
    # Sorted by position: score-variants streams sorted input (unsorted needs --allow-unsorted).
    lines = lines[:1] + sorted(lines[1:], key=lambda l: int(l.split("\t")[1]))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "v.tsv")
        open(path, "w").write("\n".join(lines) + "\n")
        base = ["-m", os.path.join(ROOT, "test-data", "fixture-model"), "--ref", fa, "--vcf", path]
        cached = table(base + ["--device", o.device])
        naive = table(base + ["--device", o.device, "--context", "100000000"])
        cpu = table(base + ["--device", "cpu"])
    worst = 0.0
    for name, other in (("naive (same device)", naive), ("cpu cached", cpu)):
        d = max(abs(float(a[c]) - float(b[c])) for a, b in zip(cached, other) for c in COLS if a[c] and b[c])
        print(f"{o.device} cached vs {name:<20} max |d| over llr/delta_ll, both strands: {d:.3e} ({len(cached)} variants)")
        worst = max(worst, d) if name.startswith("naive") else worst
    sys.exit(0 if worst <= 1e-5 else 1)


if __name__ == "__main__":
    main()
