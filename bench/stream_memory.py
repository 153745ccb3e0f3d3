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
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("SSMGEN", os.path.join(ROOT, "target", "release", "ssmgen"))


def write_fasta(path, n_bases, seed=7):
    table = bytes.maketrans(bytes(range(256)), b"ACGT" * 64)
    rng = __import__("random").Random(seed)
    with open(path, "wb") as f, open(path + ".fai.tmp", "w") as fai:
        f.write(b">synthetic\n")
        offset = f.tell()
        left = n_bases
        while left:
            n = min(left, 60 * 100_000)
            raw = rng.randbytes(n).translate(table)
            f.write(b"".join(raw[i : i + 60] + b"\n" for i in range(0, n, 60)))
            left -= n
        fai.write(f"synthetic\t{n_bases}\t{offset}\t60\t61\n")


def run(args, indexed_path=None):
    start = time.time()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    err = proc.stderr.read().decode()
    if status != 0:
        sys.exit(f"ssmgen failed: {err}")
    return time.time() - start, usage.ru_maxrss / 1024  # KiB -> MiB on Linux


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
                base = [BIN, "likelihood", "-q", "-m", opts.model]
                if mode == "streamed-fwd":
                    if os.path.exists(fa + ".fai"):
                        os.remove(fa + ".fai")
                    args = base + [fa]
                    passes = 1
                else:
                    os.replace(fa + ".fai.tmp", fa + ".fai") if os.path.exists(fa + ".fai.tmp") else None
                    args = base + [fa, "--strand", "both"]
                    passes = 2
                secs, rss = run(args)
                print(f"{mode:<14} {mb:>6g}Mb {secs:>8.1f} {passes * n / secs:>10.0f} {rss:>13.1f}", flush=True)
            os.remove(fa)


if __name__ == "__main__":
    main()
