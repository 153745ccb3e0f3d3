#!/usr/bin/env python3
"""Compares the merged outputs of the workflow with one unsharded ssmgen run; exits 1 and
lists every difference when any output differs.

  compare_unsharded.py --unsharded DIR --merged DIR --embed-format npy|safetensors|csv --fai G.fai

Text outputs must be byte-identical (the bedGraph and the VCF after decompression); the
bigWig's intervals and values, read back with pybigtools, must be equal; embedding matrices
must be equal bit for bit and their rows BED byte-identical.
"""

import argparse
import gzip
import json
import os
import struct
import sys

import numpy as np


def read(path):
    with open(path, "rb") as f:
        data = f.read()
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def matrix(path, fmt):
    if fmt == "npy":
        return np.load(path)
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        t = json.loads(f.read(n))["embeddings"]
        a, b = t["data_offsets"]
        return np.frombuffer(f.read()[a:b], dtype="<f4").reshape(t["shape"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--unsharded", required=True)
    ap.add_argument("--merged", required=True)
    ap.add_argument("--embed-format", required=True, choices=["npy", "safetensors", "csv"])
    ap.add_argument("--fai", required=True)
    a = ap.parse_args()
    u = lambda name: os.path.join(a.unsharded, name)
    m = lambda name: os.path.join(a.merged, name)
    problems = []

    def same_bytes(label, x, y):
        # A VCF's ##ssmgenCommand line is each run's own command line: not compared.
        def strip(data):
            return b"".join(l for l in data.splitlines(keepends=True)
                            if not l.startswith(b"##ssmgenCommand="))
        bx, by = strip(read(x)), strip(read(y))
        if bx != by:
            lx, ly = bx.splitlines(), by.splitlines()
            first = next((i for i, (p, q) in enumerate(zip(lx, ly)) if p != q), min(len(lx), len(ly)))
            problems.append(f"{label}: {y} differs from {x} ({len(ly)} vs {len(lx)} lines; first "
                            f"difference at line {first + 1}: {ly[first:first+1]} vs {lx[first:first+1]})")
        return bx

    same_bytes("likelihood bedGraph", u("likelihood.bedgraph"), m("likelihood.bedgraph.gz"))

    import pybigtools

    chroms = [l.split("\t")[0] for l in open(a.fai)]
    bu, bm = pybigtools.open(u("likelihood.bw")), pybigtools.open(m("likelihood.bw"))
    for c in chroms:
        ru, rm = list(bu.records(c)), list(bm.records(c))
        if ru != rm:
            problems.append(f"likelihood bigWig: chromosome {c}: {len(rm)} intervals merged vs "
                            f"{len(ru)} unsharded, or values differ")
    if not ru:
        problems.append("likelihood bigWig: no intervals read back")

    ext = a.embed_format
    if ext == "csv":
        same_bytes("embed CSV", u("embed.csv"), m("embed.csv"))
    else:
        x, y = matrix(u(f"embed.{ext}"), ext), matrix(m(f"embed.{ext}"), ext)
        if x.shape != y.shape or not np.array_equal(x.view(np.uint32), y.view(np.uint32)):
            problems.append(f"embed {ext}: matrices differ ({y.shape} merged vs {x.shape})")
        same_bytes(f"embed rows BED", u(f"embed.{ext}.rows.bed"), m(f"embed.{ext}.rows.bed"))

    same_bytes("variants TSV", u("variants.tsv"), m("variants.tsv"))
    same_bytes("variants VCF", u("variants.vcf"), m("variants.vcf.gz"))
    import pysam

    with pysam.TabixFile(m("variants.vcf.gz")) as t:
        n = sum(1 for c in chroms if c in t.contigs for _ in t.fetch(c))
    expected = sum(1 for l in read(u("variants.vcf")).splitlines() if not l.startswith(b"#"))
    if n != expected:
        problems.append(f"variants VCF: the tabix index finds {n} records, expected {expected}")

    if problems:
        print(f"FAIL: {a.merged} differs from the unsharded run:", file=sys.stderr)
        for p in problems:
            print(f"  - {p}", file=sys.stderr)
        sys.exit(1)
    print(f"ok: {a.merged} equals the unsharded run (bedGraph, bigWig, embed {ext}, TSV, VCF)")


if __name__ == "__main__":
    main()
