#!/usr/bin/env python3
"""Peak memory of `ssmgen likelihood` on long synthetic records: it must stay flat as the
record grows (the stripe loop carries state; nothing is held per base).

    cargo build --release
    python3 bench/stream_memory.py [--sizes 10,50] [--model test-data/fixture-model]

Prints a table: mode, record length, wall seconds, bases/s, peak RSS (MiB). Modes:
  streamed-fwd  plain FASTA without an index, forward strand (streamed in stripes)
  indexed-both  FASTA with .fai (memory-mapped), both strands (reverse pass spooled to disk)
"""
import argparse
import os
import tempfile

from common import ROOT, binary, run_measured, write_fasta


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10,50", help="record lengths in Mb")
    ap.add_argument("--model", default=os.path.join(ROOT, "test-data", "fixture-model"))
    ap.add_argument("--modes", default="streamed-fwd,indexed-both")
    opts = ap.parse_args()
    print(f"{'mode':<14} {'length':>8} {'seconds':>8} {'bases/s':>10} {'peak RSS MiB':>13}")
    with tempfile.TemporaryDirectory() as tmp:
        for mb in [float(s) for s in opts.sizes.split(",")]:
            n = int(mb * 1_000_000)
            fa = os.path.join(tmp, f"r{mb}.fa")
            write_fasta(fa, n)
            for mode in opts.modes.split(","):
                base = [binary(), "likelihood", "-q", "-m", opts.model]
                # write_fasta leaves a .fai; the streamed mode must not see it.
                streamed = mode == "streamed-fwd"
                if streamed:
                    os.replace(fa + ".fai", fa + ".fai.off")
                    args, passes = base + [fa], 1
                else:
                    args, passes = base + [fa, "--strand", "both"], 2
                secs, rss = run_measured(args)
                if streamed:
                    os.replace(fa + ".fai.off", fa + ".fai")
                print(f"{mode:<14} {mb:>6g}Mb {secs:>8.1f} {passes * n / secs:>10.0f} {rss:>13.1f}", flush=True)
            os.remove(fa)


if __name__ == "__main__":
    main()
