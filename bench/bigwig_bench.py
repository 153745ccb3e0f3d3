#!/usr/bin/env python3
"""bigWig of per-base likelihood for long synthetic records: time, peak RSS and file size.
RSS must stay flat as the record grows (values stream to the bigWig writer thread).

    python3 bench/bigwig_bench.py [--lengths 1e7,5e7] [--formats bigwig,bedgraph] [--device auto]
"""
import argparse
import os
import tempfile

from common import ROOT, binary, run_measured, write_fasta


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lengths", default="1e7,5e7")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--model", default=os.path.join(ROOT, "test-data", "fixture-model"))
    ap.add_argument("--formats", default="bigwig,bedgraph")
    o = ap.parse_args()
    print(f"{'length':>12} {'format':<10} {'seconds':>8} {'bases/s':>10} {'peak RSS MiB':>13} {'file MiB':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        for n in [int(float(x)) for x in o.lengths.split(",")]:
            fa = os.path.join(tmp, f"r{n}.fa")
            write_fasta(fa, n, name="chr1")
            for fmt in o.formats.split(","):
                out = os.path.join(tmp, f"r{n}.{'bw' if fmt == 'bigwig' else 'bedgraph'}")
                secs, rss = run_measured([binary(), "likelihood", "-q", "-m", o.model, fa,
                                          "--device", o.device, "-o", out])
                size = os.path.getsize(out) / 2**20
                print(f"{n:>12} {fmt:<10} {secs:>8.1f} {n / secs:>10.3e} {rss:>13.1f} {size:>9.1f}",
                      flush=True)
                os.remove(out)
            os.remove(fa)


if __name__ == "__main__":
    main()
