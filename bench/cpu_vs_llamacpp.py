#!/usr/bin/env python3
"""ssmgen's CPU engine against llama.cpp's Mamba-1 CPU path on the same model and sequence.

Builds llama.cpp (CPU only, Release, GGML_NATIVE=ON) in the git-ignored bench/.llamacpp/ from
the copy vendored in the PyPI source release of llama-cpp-python, converts the default model to
GGUF (bench/mamba_to_gguf.py), compiles bench/llama_logp.c against libllama, checks llama.cpp's
per-token log-probabilities against ssmgen's, then times both stacks A/B interleaved for every
thread count and length and prints one table.

    python3 bench/cpu_vs_llamacpp.py [--threads 1,2] [--lengths 65536,1000000] [--reps 1]
        [--ssmgen target/release/ssmgen] [--llama-batch 4096] [--llama-ubatch 512]

Needs: pip (with network to PyPI), cmake (`pip install cmake`), a C/C++ compiler, numpy,
and the gguf package (`pip install gguf`, or llama.cpp's own gguf-py, used by default).
Seconds are wall-clock seconds of the whole process (load, input, scoring, output); `cpu s` is
user + system time, the fairer figure on a shared machine.
"""

import argparse
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / ".llamacpp"
TOKENS = {"A": 7, "C": 8, "G": 9, "T": 10, "N": 11}


def sh(cmd, **kw):
    print("+", " ".join(map(str, cmd)), file=sys.stderr, flush=True)
    subprocess.run(list(map(str, cmd)), check=True, **kw)


def build_llamacpp():
    """libllama and the llama_logp program, built once."""
    exe = WORK / "work" / "llama_logp"
    if exe.exists():
        return exe
    WORK.mkdir(parents=True, exist_ok=True)
    (WORK / "work").mkdir(exist_ok=True)
    src = WORK / "src"
    if not src.exists():
        sh([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", "llama-cpp-python",
            "llama-cpp-python", "-d", WORK])
        sdist = sorted(WORK.glob("llama_cpp_python-*.tar.gz"))[-1]
        sh(["tar", "xzf", sdist, "-C", WORK])
        vendored = sorted(WORK.glob("llama_cpp_python-*/vendor/llama.cpp"))[-1]
        src.symlink_to(vendored.relative_to(WORK))
    build = WORK / "build"
    if not (build / "bin" / "libllama.so").exists():
        sh(["cmake", "-S", src, "-B", build, "-DCMAKE_BUILD_TYPE=Release", "-DGGML_NATIVE=ON",
            "-DBUILD_SHARED_LIBS=ON", "-DLLAMA_CURL=OFF", "-DLLAMA_BUILD_TESTS=OFF",
            "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_SERVER=OFF", "-DLLAMA_BUILD_TOOLS=OFF",
            "-DGGML_CUDA=OFF", "-DGGML_OPENMP=ON"])
        sh(["cmake", "--build", build, "--target", "llama", "-j", str(os.cpu_count() or 2)])
    lib = build / "bin"
    sh(["cc", "-O2", "-o", exe, ROOT / "bench" / "llama_logp.c", f"-I{src}/include",
        f"-I{src}/ggml/include", f"-L{lib}", "-lllama", "-lggml", "-lggml-base", "-lm",
        f"-Wl,-rpath,{lib}"])
    return exe


def convert_model():
    out = WORK / "work" / "ssmgen-dna-small.gguf"
    if not out.exists():
        sh([sys.executable, ROOT / "bench" / "mamba_to_gguf.py", ROOT / "models" / "ssmgen-dna-small",
            out, "--gguf-py", WORK / "src" / "gguf-py"])
    return out


def make_sequence(n):
    """A FASTA record and the same bases as uint32 token ids."""
    fa = WORK / "work" / f"rand{n}.fa"
    ids = WORK / "work" / f"rand{n}.u32"
    if not fa.exists() or not ids.exists():
        rng = random.Random(n)
        s = "".join(rng.choice("ACGT") for _ in range(n))
        fa.write_text(f">rand{n}\n" + "\n".join(s[i:i + 80] for i in range(0, n, 80)) + "\n")
        np.array([TOKENS[c] for c in s], dtype="<u4").tofile(ids)
    return fa, ids


def timed(cmd):
    """Wall seconds, user+sys seconds and peak RSS (MiB) of one process.

    Peak RSS comes from GNU time (`/usr/bin/time -f %M`) where it exists: a child forked
    straight from this Python process starts with Python's resident set as its high-water
    mark, which would hide anything smaller.
    """
    print("+", " ".join(map(str, cmd)), file=sys.stderr, flush=True)
    gnu_time = Path("/usr/bin/time")
    rss_file = WORK / "work" / "rss.txt"
    full = [gnu_time, "-f", "%M", "-o", rss_file, *cmd] if gnu_time.exists() else cmd
    t0 = time.perf_counter()
    p = subprocess.Popen(list(map(str, full)), stdout=subprocess.DEVNULL)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    if status != 0:
        raise SystemExit(f"failed ({status}): {' '.join(map(str, cmd))}")
    rss = ru.ru_maxrss / 1024
    if gnu_time.exists():
        rss = int(rss_file.read_text().split()[-1]) / 1024
    return wall, ru.ru_utime + ru.ru_stime, rss


def read_bedgraph(path, n):
    out = np.full(n, np.nan)
    with open(path) as f:
        for line in f:
            if line.startswith("track"):
                continue
            _, a, b, v = line.split("\t")
            out[int(a):int(b)] = float(v)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--lengths", default="65536,1000000")
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--ssmgen", default=str(ROOT / "target" / "release" / "ssmgen"))
    ap.add_argument("--llama-batch", type=int, default=4096)
    ap.add_argument("--llama-ubatch", type=int, default=512)
    ap.add_argument("--parity-length", type=int, default=65536)
    a = ap.parse_args()
    threads = [int(x) for x in a.threads.split(",")]
    lengths = [int(float(x)) for x in a.lengths.split(",")]

    exe = build_llamacpp()
    gguf = convert_model()
    out = WORK / "work"

    # Parity: per-token log-probabilities of both stacks on one sequence.
    fa, ids = make_sequence(a.parity_length)
    sh([exe, gguf, ids, out / "parity.llama.f32", 2, a.llama_batch, a.llama_ubatch],
       stdout=subprocess.DEVNULL)
    sh([a.ssmgen, "likelihood", "-q", "--device", "cpu", "-t", 2, fa, "-o", out / "parity.bedgraph"])
    ll = np.fromfile(out / "parity.llama.f32", dtype="<f4").astype(np.float64)
    ss = read_bedgraph(out / "parity.bedgraph", a.parity_length)[1:]
    d = np.abs(ll - ss)
    print(f"parity on {a.parity_length:,} random bases: max |Δ logp| {d.max():.3e}, "
          f"mean {d.mean():.3e} (llama.cpp vs ssmgen, f32 both)")

    rows = []
    for n in lengths:
        fa, ids = make_sequence(n)
        for t in threads:
            res = {"ssmgen": [], "llama.cpp": []}
            for _ in range(a.reps):  # A/B interleaved
                res["ssmgen"].append(timed([a.ssmgen, "likelihood", "-q", "--device", "cpu", "-t", t,
                                            fa, "-o", "/dev/null"]))
                res["llama.cpp"].append(timed([exe, gguf, ids, out / "bench.f32", t, a.llama_batch,
                                               a.llama_ubatch]))
            best = {k: min(v) for k, v in res.items()}
            for stack, (wall, cpu, rss) in best.items():
                ratio = best["llama.cpp"][0] / wall
                rows.append((stack, t, n, wall, cpu, n / wall, rss, ratio))
    print()
    print("| stack | threads | length | seconds | cpu s | tokens/s | peak RSS MiB | speed vs llama.cpp |")
    print("|---|---|---|---|---|---|---|---|")
    for stack, t, n, wall, cpu, rate, rss, ratio in rows:
        print(f"| {stack} | {t} | {n:,} | {wall:.2f} | {cpu:.2f} | {rate:,.0f} | {rss:.1f} | {ratio:.2f}× |")


if __name__ == "__main__":
    main()
