#!/usr/bin/env python3
"""The baseline the default model must beat: order-k Markov models (k = 0..8 bases of context)
fitted on the training genomes, both strands, scored on the held-out genome, both strands.

    python3 models/train/kmer_baseline.py [--data ../shared/data] [--max-k 8]

Prints held-out bits per base (mean -log2 p of the observed base) for each k and smoothing, and
the best. The choice of k and smoothing is made on the held-out genome itself, which flatters
the baseline; the model is compared against its best case. Positions count when the base and
its k context bases are all A/C/G/T (the first k bases of each record and strand have no full
context and are left out).
"""
import argparse
import gzip
import os

import numpy as np

from data import HELD_OUT, TRAIN, read_fasta

CODE = np.full(256, -1, dtype=np.int8)
for i, b in enumerate(b"ACGT"):
    CODE[b] = i
    CODE[b + 32] = i


def encode(seq):
    """Bases as 0..3, -1 for anything else."""
    return CODE[np.frombuffer(seq, dtype=np.uint8)]


def revcomp(codes):
    out = codes[::-1].copy()
    ok = out >= 0
    out[ok] = 3 - out[ok]
    return out


def kmer_index(codes, k):
    """For each position i >= k: the index of codes[i-k..i] (k context bases, then the base) and
    whether all of them are A/C/G/T."""
    n = len(codes) - k
    if n <= 0:
        return np.zeros(0, np.int64), np.zeros(0, bool)
    idx = np.zeros(n, np.int64)
    ok = np.ones(n, bool)
    for j in range(k + 1):
        window = codes[j : j + n]
        idx = idx * 4 + np.maximum(window, 0)
        ok &= window >= 0
    return idx, ok


def strands(records):
    for seq in records:
        c = encode(seq)
        yield c
        yield revcomp(c)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data"))
    ap.add_argument("--max-k", type=int, default=8)
    o = ap.parse_args()
    train = [s for f in TRAIN for s in read_fasta(os.path.join(o.data, f))]
    held = read_fasta(os.path.join(o.data, HELD_OUT))
    print(f"training bases: {sum(map(len, train)):,} (x2 strands); held-out bases: {sum(map(len, held)):,} (x2 strands)")
    print(f"{'k':>2} {'alpha':>6} {'held-out bits/base':>19}")
    best = None
    for k in range(o.max_k + 1):
        counts = np.zeros(4 ** (k + 1), np.float64)
        for c in strands(train):
            idx, ok = kmer_index(c, k)
            counts += np.bincount(idx[ok], minlength=4 ** (k + 1))
        ctx = counts.reshape(-1, 4)
        for alpha in (1.0, 0.1, 0.01):
            logp = np.log2(ctx + alpha) - np.log2(ctx.sum(1, keepdims=True) + 4 * alpha)
            total, n = 0.0, 0
            for c in strands(held):
                idx, ok = kmer_index(c, k)
                total -= logp.reshape(-1)[idx[ok]].sum()
                n += int(ok.sum())
            bits = total / n
            print(f"{k:>2} {alpha:>6} {bits:>19.4f}", flush=True)
            if best is None or bits < best[0]:
                best = (bits, k, alpha)
    print(f"best: k={best[1]}, alpha={best[2]}: {best[0]:.4f} bits/base")


if __name__ == "__main__":
    main()
