#!/usr/bin/env python3
"""Reads ssmgen's Parquet outputs with pyarrow (and pandas, if installed) and checks them
against the text outputs of the same runs: likelihood against the bedGraph, embed against the
CSV, score-variants against the TSV; prints the row counts, the largest difference and the
provenance metadata. Skips cleanly (exit 0) when pyarrow is not installed.

    python3 bench/parquet_check.py [SSMGEN]      (default target/release/ssmgen)
"""

import csv
import math
import os
import subprocess
import sys
import tempfile

try:
    import pyarrow.parquet as pq
except ImportError:
    print("skip: pyarrow not installed (pip install pyarrow)")
    sys.exit(0)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SSMGEN = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target/release/ssmgen")
GENOME = os.path.join(ROOT, "test-data/shards.fa")
VCF = os.path.join(ROOT, "test-data/shards.vcf")
ENGINE = ["-q", "--device", "cpu", "-t", "2"]


def run(*args):
    subprocess.run([SSMGEN, *args, *ENGINE], check=True)


def f32(text):
    """The float32 a text cell denotes (as numpy would read it)."""
    import struct

    return struct.unpack("<f", struct.pack("<f", float(text)))[0]


def check(name, ok, detail):
    print(f"{name:<16} {'ok' if ok else 'FAIL'}  {detail}")
    return ok


def main():
    good = True
    with tempfile.TemporaryDirectory() as work:
        w = lambda n: os.path.join(work, n)  # noqa: E731

        run("likelihood", GENOME, "-s", "both", "-o", w("l.bedgraph"))
        run("likelihood", GENOME, "-s", "both", "-o", w("l.parquet"))
        table = pq.read_table(w("l.parquet"))
        with open(w("l.bedgraph")) as f:
            rows = [line.rstrip("\n").split("\t") for line in f]
        cols = table.to_pydict()
        same = len(rows) == table.num_rows and all(
            (cols["chrom"][i], cols["start"][i], cols["end"][i]) == (r[0], int(r[1]), int(r[2]))
            and cols["logp"][i] == f32(r[3])
            for i, r in enumerate(rows)
        )
        good &= check("likelihood", same, f"{table.num_rows} rows, schema {table.schema.names}")

        run("embed", GENOME, "--window", "100", "--stride", "70", "-o", w("e.csv"))
        run("embed", GENOME, "--window", "100", "--stride", "70", "-o", w("e.parquet"))
        table = pq.read_table(w("e.parquet"))
        with open(w("e.csv")) as f:
            rows = list(csv.reader(f))[1:]
        emb = table.column("embedding").to_pylist()
        worst = max(
            abs(v - f32(t)) for e, r in zip(emb, rows) for v, t in zip(e, r[4:])
        )
        dim = table.schema.field("embedding").type.list_size
        good &= check(
            "embed",
            len(rows) == table.num_rows and worst == 0.0,
            f"{table.num_rows} rows x {dim} (fixed-size list), max |parquet - csv| {worst}",
        )

        run("score-variants", "--ref", GENOME, "--vcf", VCF, "-o", w("s.tsv"), "-o", w("s.parquet"))
        table = pq.read_table(w("s.parquet"))
        with open(w("s.tsv")) as f:
            rows = list(csv.reader(f, delimiter="\t"))
        header, rows = rows[0], rows[1:]
        cols = table.to_pydict()
        worst = 0.0
        same = table.schema.names == header and len(rows) == table.num_rows
        for i, r in enumerate(rows):
            for k, name in enumerate(header):
                v = cols[name][i]
                if isinstance(v, float):
                    worst = max(worst, abs(v - float(r[k])))
                    same &= f"{v:.6f}" == r[k]
                elif v is None:
                    same &= r[k] == ""
                elif isinstance(v, bool):
                    same &= str(int(v)) == r[k]
                else:
                    same &= str(v) == r[k]
        good &= check(
            "score-variants",
            same,
            f"{table.num_rows} rows, max |parquet - tsv| {worst:.2e} (TSV rounds to 6 decimals)",
        )

        meta = pq.read_metadata(w("s.parquet")).metadata or {}
        keys = sorted(k.decode() for k in meta if k.decode().startswith("ssmgen"))
        good &= check("provenance", "ssmgen_model_weights_sha256" in keys, ", ".join(keys))

        try:
            import pandas as pd

            df = pd.read_parquet(w("s.parquet"))
            print(f"pandas           ok  read_parquet: {df.shape[0]} rows x {df.shape[1]} columns")
        except ImportError:
            print("pandas           skip (not installed)")
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
