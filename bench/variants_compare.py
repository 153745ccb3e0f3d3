#!/usr/bin/env python3
"""score-variants outputs of several runs on the same input, compared with the first run.

    python3 bench/variants_compare.py [--length 2e5] [--every 100] [--model default] \
        --run cpu=SSMGEN:--device,cpu --run gpu=SSMGEN:--device,cuda [--run ...]

Each --run is NAME=BINARY:ARGS (ARGS comma-separated score-variants arguments). Random SNVs
(one per --every bases) and a few indels on a random chromosome, --window 128 unless ARGS say
otherwise; prints, for each run, the wall time and max |difference| of llr and delta_ll (both
strands) against the first run, and whether the rows are byte-identical.
"""
import argparse
import os
import random
import subprocess
import tempfile
import time

from common import write_fasta
from variants_bench import read_fasta

COLS = ["llr_fwd", "llr_rev", "delta_ll_fwd", "delta_ll_rev"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--length", type=float, default=2e5)
    ap.add_argument("--every", type=int, default=100)
    ap.add_argument("--model", default="default")
    ap.add_argument("--window", type=int, default=128)
    ap.add_argument("--run", action="append", required=True)
    o = ap.parse_args()
    model = "ssmgen-dna-small" if o.model == "default" else o.model
    with tempfile.TemporaryDirectory() as tmp:
        fa = os.path.join(tmp, "chr.fa")
        write_fasta(fa, int(o.length), name="chr1")
        _, seq = read_fasta(fa)
        rng = random.Random(3)
        lines = []
        for p in range(5, len(seq) - 10, o.every):
            p += rng.randrange(o.every // 2 + 1)
            if p >= len(seq) - 10:
                break
            kind = rng.choice(["snv"] * 8 + ["del", "ins"])
            if kind == "snv":
                ref, alt = seq[p], rng.choice([b for b in "ACGT" if b != seq[p]])
            elif kind == "del":
                ref, alt = seq[p:p + 3], seq[p]
            else:
                ref, alt = seq[p], seq[p] + "".join(rng.choice("ACGT") for _ in range(3))
            lines.append(f"chr1\t{p + 1}\t.\t{ref}\t{alt}\t.\t.\t.")
        vcf = os.path.join(tmp, "v.vcf")
        with open(vcf, "w") as f:
            f.write("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n")
            f.write("\n".join(lines) + "\n")
        print(f"{len(lines)} records on {int(o.length)} bases, --window {o.window}, model {model}", flush=True)
        first = None
        for spec in o.run:
            name, rest = spec.split("=", 1)
            binary, _, args = rest.partition(":")
            args = [a for a in args.split(",") if a]
            start = time.time()
            out = subprocess.run([binary, "score-variants", "-q", "-f", "tsv", "-m", model, "--ref", fa,
                                  "--vcf", vcf, "--window", str(o.window)] + args,
                                 check=True, capture_output=True, text=True).stdout
            secs = time.time() - start
            rows = out.splitlines()
            head = rows[0].split("\t")
            table = [{c: r.split("\t")[head.index(c)] for c in COLS} for r in rows[1:]]
            if first is None:
                first = (name, rows, table)
                print(f"{name:<12} {secs:7.1f} s  {len(table)} rows (reference)", flush=True)
                continue
            d = {c: max((abs(float(a[c]) - float(b[c])) for a, b in zip(first[2], table) if a[c] and b[c]),
                        default=0.0) for c in COLS}
            empty_same = all((a[c] == "") == (b[c] == "") for a, b in zip(first[2], table) for c in COLS)
            same = rows == first[1]
            print(f"{name:<12} {secs:7.1f} s  vs {first[0]}: max |d| llr {max(d['llr_fwd'], d['llr_rev']):.3e}, "
                  f"delta_ll {max(d['delta_ll_fwd'], d['delta_ll_rev']):.3e}; same empty cells {empty_same}; "
                  f"byte-identical {same}", flush=True)


if __name__ == "__main__":
    main()
