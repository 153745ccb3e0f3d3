#!/usr/bin/env python3
"""score-variants benchmarks.

    python3 bench/variants_bench.py synthetic [--snvs 10000] [--length 5e6] [--context 8192] [--naive-snvs N]
    python3 bench/variants_bench.py ecoli --genome ../shared/data/ecoli_536_NC_008253.fna.gz [--snvs 100000]
    python3 bench/variants_bench.py allsnvs [--length 1e6] [--region 100000]

Common options: `--model DIR` (default: the fixture model; `default` for the built-in
ssmgen-dna-small), `--window W` (score-variants --window; its default when left out),
`--every N` (synthetic: one SNV per N bases instead of --snvs), `--extra "ARGS"` (more
score-variants arguments, e.g. "--precision bf16 --profile"), `--skip-naive`.

`synthetic`: random SNVs on a random chromosome; the state-cached mode (whole upstream
chromosome as context) against naive window re-scoring (`--context N`: a fresh pass over the N
upstream bases for every variant, as window-based tools do). The naive mode may run on a subset
(--naive-snvs) and is reported per variant.
`ecoli`: random SNVs over a real genome, cached mode; variants/s and peak memory.
`allsnvs`: `--all-snvs` (every substitution, both strands) over the last --region bases of a
random chromosome of --length bases, whole-chromosome context; bases/s of the region.
`--device cpu|cuda` picks the backend.
"""
import argparse
import gzip
import os
import random
import tempfile

from common import ROOT, binary, run_measured, write_fasta


def read_fasta(path):
    opener = gzip.open if path.endswith(".gz") else open
    name, seq = None, []
    with opener(path, "rt") as f:
        for line in f:
            if line.startswith(">"):
                if name is None:
                    name = line[1:].split()[0]
                else:
                    break
            else:
                seq.append(line.strip())
    return name, "".join(seq)


def write_snvs(path, chrom, seq, n, seed=11):
    rng = random.Random(seed)
    picks = set()
    while len(picks) < n:
        p = rng.randrange(len(seq))
        if seq[p].upper() in "ACGT":
            picks.add(p)
    with open(path, "w") as f:
        f.write("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n")
        for p in sorted(picks):
            ref = seq[p].upper()
            alt = rng.choice([b for b in "ACGT" if b != ref])
            f.write(f"{chrom}\t{p + 1}\t.\t{ref}\t{alt}\t.\t.\t.\n")


def run(args):
    return run_measured([binary(), "score-variants", "-q"] + args, echo="profile:")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["synthetic", "ecoli", "allsnvs"])
    ap.add_argument("--snvs", type=int, default=None)
    ap.add_argument("--length", type=float, default=5e6)
    ap.add_argument("--context", type=int, default=8192)
    ap.add_argument("--naive-snvs", type=int, default=None)
    ap.add_argument("--genome", default=os.path.join(ROOT, "..", "shared", "data", "ecoli_536_NC_008253.fna.gz"))
    ap.add_argument("--model", default=os.path.join(ROOT, "test-data", "fixture-model"))
    ap.add_argument("--device", default="auto", help="ssmgen --device")
    ap.add_argument("--window", type=int, default=None)
    ap.add_argument("--every", type=int, default=None)
    ap.add_argument("--region", type=int, default=100_000)
    ap.add_argument("--extra", default="")
    ap.add_argument("--skip-naive", action="store_true")
    o = ap.parse_args()
    model = "ssmgen-dna-small" if o.model == "default" else o.model
    base = ["-m", model, "--device", o.device] + o.extra.split()
    if o.window is not None:
        base += ["--window", str(o.window)]
    with tempfile.TemporaryDirectory() as tmp:
        vcf = os.path.join(tmp, "v.vcf")
        print(f"{'run':<34} {'variants':>9} {'seconds':>8} {'variants/s':>11} {'peak RSS MiB':>13}")
        if o.mode == "synthetic":
            n = int(o.length) // o.every if o.every else (o.snvs or 10_000)
            fa = os.path.join(tmp, "chr.fa")
            write_fasta(fa, int(o.length), name="chr1")
            _, seq = read_fasta(fa)
            write_snvs(vcf, "chr1", seq, n)
            secs, rss = run(base + ["--ref", fa, "--vcf", vcf])
            cached = n / secs
            print(f"{'cached (whole upstream)':<34} {n:>9} {secs:>8.1f} {cached:>11.1f} {rss:>13.1f}", flush=True)
            if o.skip_naive:
                return
            m = o.naive_snvs or n
            if m != n:
                write_snvs(vcf, "chr1", seq, m, seed=12)
            secs, rss = run(base + ["--ref", fa, "--vcf", vcf, "--context", str(o.context)])
            naive = m / secs
            print(f"{f'naive window (--context {o.context})':<34} {m:>9} {secs:>8.1f} {naive:>11.1f} {rss:>13.1f}")
            print(f"cached / naive: {cached / naive:.1f}x")
        elif o.mode == "allsnvs":
            fa = os.path.join(tmp, "chr.fa")
            length = int(o.length)
            write_fasta(fa, length, name="chr1")
            region = min(o.region, length)
            out = os.path.join(tmp, "all.tsv")
            secs, rss = run_measured([binary(), "score-variants", "-q"] + base + [
                "--ref", fa, "--all-snvs", "--region", f"chr1:{length - region + 1}-{length}", "-o", out],
                echo="profile:")
            rows = sum(1 for _ in open(out)) - 1
            print(f"{'all-snvs, region of ' + str(region):<34} {rows:>9} {secs:>8.1f} {rows / secs:>11.1f} {rss:>13.1f}")
            print(f"all-snvs: {region / secs:.1f} region bases/s ({length} bases of context pass per strand)")
        else:
            n = o.snvs or 100_000
            chrom, seq = read_fasta(o.genome)
            write_snvs(vcf, chrom, seq, n)
            secs, rss = run(base + ["--ref", o.genome, "--vcf", vcf])
            print(f"{'E. coli 536, cached':<34} {n:>9} {secs:>8.1f} {n / secs:>11.1f} {rss:>13.1f}")


if __name__ == "__main__":
    main()
