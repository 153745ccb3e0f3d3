#!/usr/bin/env python3
"""How far sharded runs differ from one unsharded run as the warm-up N grows.

For a bgzipped, indexed genome (`.fai` + `.gzi`), cuts it with `ssmgen shards --size SIZE`,
then for each N runs, over all shards at once (`--regions shards.bed --warmup N`; each region
gets its own warm-up, exactly as separate shard jobs would):

* `ssmgen likelihood -s both -f csv` and compares `logp_fwd` and `logp_rev` of every base with
  the unsharded run's: max and mean |Δ logp| over all scored bases and both strands;
* `ssmgen score-variants` on SNVs every `--snv-every` bases (REF from the genome, ALT the next
  base in ACGT order) and compares `delta_ll`: max and mean |Δ delta_ll|.

Prints a Markdown table, one row per N as it completes. Only numpy is needed. Example (the
figures in docs/workflows.md):

    python3 bench/warmup_table.py --ssmgen target/release/ssmgen --genome ecoli.fa.gz \\
        --device cuda --size 1M
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

WARMUPS = ["1k", "3k", "10k", "30k", "100k", "300k", "1M"]


def run(cmd):
    t = time.time()
    subprocess.run(cmd, check=True)
    return time.time() - t


def read_csv_columns(path, columns):
    """The named float columns of an ssmgen CSV/TSV (empty cells become NaN)."""
    with open(path, "rb") as f:
        header = f.readline().decode().rstrip("\n")
        sep = "\t" if "\t" in header else ","
        names = header.split(sep)
        idx = [names.index(c) for c in columns]
        cols = [[] for _ in columns]
        for line in f:
            fields = line.rstrip(b"\n").split(sep.encode())
            for k, i in enumerate(idx):
                cols[k].append(fields[i] or b"nan")
    return [np.array(c).astype(np.float64) for c in cols]


def read_keys(path, columns):
    with open(path) as f:
        header = f.readline().rstrip("\n")
        sep = "\t" if "\t" in header else ","
        names = header.split(sep)
        idx = [names.index(c) for c in columns]
        return [tuple(line.rstrip("\n").split(sep)[i] for i in idx) for line in f]


def diff(a, b):
    """max and mean |a - b| over entries where both have a value; NaN placement must agree."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        sys.exit(f"row counts differ: {a.shape} vs {b.shape}")
    both = ~np.isnan(a) & ~np.isnan(b)
    if (np.isnan(a) != np.isnan(b)).any():
        sys.exit("a value exists in one run but not the other")
    d = np.abs(a[both] - b[both])
    return float(d.max()), float(d.mean())


def write_snvs(genome_plain_bases, records, every, path):
    nxt = {"A": "C", "C": "G", "G": "T", "T": "A"}
    n = 0
    with open(path, "w") as out:
        out.write("##fileformat=VCFv4.2\n")
        for name, length in records:
            out.write(f"##contig=<ID={name},length={length}>\n")
        out.write("#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n")
        for name, _ in records:
            seq = genome_plain_bases[name]
            for p in range(every // 2, len(seq), every):
                ref = seq[p].upper()
                if ref in nxt:
                    n += 1
                    out.write(f"{name}\t{p + 1}\t.\t{ref}\t{nxt[ref]}\t.\t.\t.\n")
    return n


def read_fasta(path):
    import gzip

    seqs, name, parts = {}, None, []
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt") as f:
        for line in f:
            if line.startswith(">"):
                if name is not None:
                    seqs[name] = "".join(parts)
                name, parts = line[1:].split()[0], []
            else:
                parts.append(line.strip())
    if name is not None:
        seqs[name] = "".join(parts)
    return seqs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ssmgen", default="target/release/ssmgen")
    ap.add_argument("--genome", required=True, help="bgzipped FASTA with .fai and .gzi")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--size", default="1M", help="shard size (ssmgen shards --size)")
    ap.add_argument("--snv-every", type=int, default=1000)
    ap.add_argument("--warmups", default=",".join(WARMUPS))
    ap.add_argument("--model", default=None, help="model folder (default: built-in)")
    ap.add_argument("--work", default=None, help="scratch folder (default: a temp dir)")
    args = ap.parse_args()

    work = args.work or tempfile.mkdtemp(prefix="warmup_table.")
    os.makedirs(work, exist_ok=True)
    exe = [args.ssmgen]
    common = ["-q", "--device", args.device] + (["-m", args.model] if args.model else [])
    records = [
        (l.split("\t")[0], int(l.split("\t")[1])) for l in open(args.genome + ".fai")
    ]
    shards = os.path.join(work, "shards.bed")
    run(exe + ["shards", args.genome, "--size", args.size, "-o", shards])
    n_shards = sum(1 for _ in open(shards))
    vcf = os.path.join(work, "snvs.vcf")
    n_snv = write_snvs(read_fasta(args.genome), records, args.snv_every, vcf)

    def likelihood(out, extra):
        return run(exe + ["likelihood", args.genome, "-s", "both", "-f", "csv", "-o", out]
                   + common + extra)

    def variants(out, extra):
        return run(exe + ["score-variants", "--ref", args.genome, "--vcf", vcf, "-o", out]
                   + common + extra)

    u_lik, u_var = os.path.join(work, "u.csv"), os.path.join(work, "u.tsv")
    t_lik = likelihood(u_lik, [])
    t_var = variants(u_var, [])
    uf, ur = read_csv_columns(u_lik, ["logp_fwd", "logp_rev"])
    (ud,) = read_csv_columns(u_var, ["delta_ll"])
    u_keys = read_keys(u_var, ["chrom", "pos", "alt"])
    total = sum(l for _, l in records)
    print(f"genome {os.path.basename(args.genome)}: {total:,} bases in {len(records)} record(s); "
          f"{n_shards} shards (--size {args.size}); {n_snv:,} SNVs (one every {args.snv_every} "
          f"bases); device {args.device}; unsharded runs {t_lik:.1f} s (likelihood, both "
          f"strands) and {t_var:.1f} s (score-variants)", flush=True)
    print(flush=True)
    print("| warm-up N | max \\|Δ logp\\| | mean \\|Δ logp\\| | max \\|Δ delta_ll\\| "
          "| mean \\|Δ delta_ll\\| | seconds (likelihood + variants) |", flush=True)
    print("|---|---|---|---|---|---|", flush=True)
    for n in args.warmups.split(","):
        s_lik, s_var = os.path.join(work, f"s{n}.csv"), os.path.join(work, f"s{n}.tsv")
        extra = ["--regions", shards, "--warmup", n]
        t1 = likelihood(s_lik, extra)
        t2 = variants(s_var, extra)
        sf, sr = read_csv_columns(s_lik, ["logp_fwd", "logp_rev"])
        sd_keys = read_keys(s_var, ["chrom", "pos", "alt"])
        if sd_keys != u_keys:
            sys.exit(f"warm-up {n}: the sharded variant rows differ from the unsharded ones")
        (sd,) = read_csv_columns(s_var, ["delta_ll"])
        mf, af = diff(uf, sf)
        mr, ar = diff(ur, sr)
        both = np.concatenate([uf, ur])
        scored = (~np.isnan(both)).sum()
        mean_l = (af * (~np.isnan(uf)).sum() + ar * (~np.isnan(ur)).sum()) / scored
        md, ad = diff(ud, sd)
        print(f"| {n} | {max(mf, mr):.3g} | {mean_l:.3g} | {md:.3g} | {ad:.3g} "
              f"| {t1:.1f} + {t2:.1f} |", flush=True)
        os.remove(s_lik)


if __name__ == "__main__":
    main()
