#!/usr/bin/env python3
"""Peak memory of streamed `score-variants` against the VCF's size (issue 16).

Writes a synthetic chromosome of --mb megabases (random ACGT, with its .fai) and, for each of
--records (comma-separated), a sorted VCF of that many SNVs spread evenly over it, then scores
each with the fixture model on the CPU under `/usr/bin/time -v` and prints a Markdown table of
peak RSS and wall time. Memory is bounded by a stripe and the variants of one stripe, so the
peak should be flat in the record count and far below 1 GiB.

    cargo build --release
    python3 bench/variants_memory.py --mb 100 --records 1000000,10000000   # the issue's figure
    python3 bench/variants_memory.py --mb 10 --records 100000,1000000      # a scaled run

Options: --window (downstream bases in delta_ll; 1 is the cheapest), --device (cpu; cuda for a
faster pass: RSS is the host's), --model, --ssmgen,
--workdir (default: a temporary directory; the files are large), --extra (more arguments).
"""
import argparse
import os
import random
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def write_genome(path, mb, seed=16):
    n = int(mb * 1_000_000)
    rng = random.Random(seed)
    table = bytes.maketrans(bytes(range(256)), b"ACGT" * 64)
    width = 60
    with open(path, "wb") as f:
        f.write(b">chrS\n")
        left = n
        while left:
            k = min(left, 6_000_000)
            seq = rng.randbytes(k).translate(table)
            for i in range(0, k, width):
                f.write(seq[i : i + width] + b"\n")
            left -= k
    with open(path + ".fai", "w") as f:
        f.write(f"chrS\t{n}\t6\t{width}\t{width + 1}\n")
    return n


def base_at(fa, pos0, width=60):
    """The base at 0-based pos0 of the single-record FASTA written above."""
    fa.seek(6 + pos0 // width * (width + 1) + pos0 % width)
    return fa.read(1).decode()


def write_vcf(path, genome, n_bases, records, seed=17):
    rng = random.Random(seed)
    step = n_bases / records
    flip = {"A": "C", "C": "G", "G": "T", "T": "A"}
    with open(genome, "rb") as fa, open(path, "w") as f:
        f.write("##fileformat=VCFv4.2\n")
        f.write(f"##contig=<ID=chrS,length={n_bases}>\n")
        f.write("#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n")
        lines = []
        for i in range(records):
            pos0 = min(n_bases - 1, int(i * step + rng.random() * step))
            ref = base_at(fa, pos0)
            lines.append(f"chrS\t{pos0 + 1}\t.\t{ref}\t{flip[ref]}\t.\tPASS\t.\n")
            if len(lines) == 100_000:
                f.writelines(lines)
                lines.clear()
        f.writelines(lines)


def peak_rss_kib(stderr):
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", stderr)
    return int(m.group(1)) if m else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mb", type=float, default=100)
    ap.add_argument("--records", default="1000000,10000000")
    ap.add_argument("--window", type=int, default=1)
    ap.add_argument("--model", default=os.path.join(ROOT, "test-data", "fixture-model"))
    ap.add_argument("--ssmgen", default=os.path.join(ROOT, "target", "release", "ssmgen"))
    ap.add_argument("--workdir")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--extra", default="")
    args = ap.parse_args()
    work = args.workdir or tempfile.mkdtemp(prefix="ssmgen-varmem-")
    os.makedirs(work, exist_ok=True)
    genome = os.path.join(work, "genome.fa")
    t0 = time.time()
    n = write_genome(genome, args.mb)
    print(f"# genome: {n:,} bases ({time.time() - t0:.0f} s)", file=sys.stderr)
    rows = []
    for records in [int(r) for r in args.records.split(",")]:
        vcf = os.path.join(work, f"v{records}.vcf")
        t0 = time.time()
        write_vcf(vcf, genome, n, records)
        size = os.path.getsize(vcf)
        print(f"# {vcf}: {size / 2**20:.0f} MiB ({time.time() - t0:.0f} s)", file=sys.stderr)
        cmd = ["/usr/bin/time", "-v", args.ssmgen, "score-variants", "-q", "--device", args.device,
               "--model", args.model, "--ref", genome, "--vcf", vcf, "--window",
               str(args.window), "-o", os.path.join(work, "out.tsv")] + args.extra.split()
        print("# " + " ".join(cmd), file=sys.stderr)
        t0 = time.time()
        p = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.time() - t0
        if p.returncode != 0:
            sys.exit(p.stderr)
        out_lines = sum(1 for _ in open(os.path.join(work, "out.tsv"))) - 1
        assert out_lines == records, (out_lines, records)
        rss = peak_rss_kib(p.stderr)
        rows.append((records, size, rss, wall))
        print(f"# {records:,} records: peak RSS {rss / 1024:.0f} MiB, {wall:.0f} s", file=sys.stderr, flush=True)
        os.remove(vcf)
    print(f"| chromosome | records | VCF size | peak RSS | wall time | records/s |")
    print(f"|---|---:|---:|---:|---:|---:|")
    for records, size, rss, wall in rows:
        print(f"| {n / 1e6:g} Mb | {records:,} | {size / 2**20:.0f} MiB | "
              f"{rss / 1024:.0f} MiB | {wall:.0f} s | {records / wall:,.0f} |")


if __name__ == "__main__":
    main()
