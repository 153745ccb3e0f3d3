#!/usr/bin/env python3
"""ssmgen's CPU engine against llama.cpp's Mamba-1 CPU path on the same model and sequence.

Builds llama.cpp (CPU only, Release, GGML_NATIVE=ON) in the git-ignored bench/.llamacpp/ from
the copy vendored in the PyPI source release of llama-cpp-python, converts the default model to
GGUF (bench/mamba_to_gguf.py), compiles bench/llama_logp.c against libllama, checks llama.cpp's
per-token log-probabilities against ssmgen's, then times both stacks A/B interleaved for every
thread count and length and prints one table.

    python3 bench/cpu_vs_llamacpp.py [--threads 1,2] [--lengths 65536,1000000] [--reps 1]
        [--ssmgen target/release/ssmgen] [--llama-batch 4096] [--llama-ubatch 512]
        [--portable [--cpu-variants x64,haswell,skylakex]] [--llama-dir DIR] [--work DIR]
        [--budget SECONDS]

`--portable` builds llama.cpp for other machines instead (GGML_NATIVE=OFF, GGML_BACKEND_DL with
one CPU backend per instruction set, the best one the CPU runs picked at load; `--cpu-variants`
keeps only the named ones of ggml's list, to save build time) into bench/.llamacpp/portable/,
with the libraries beside `llama_logp` (rpath $ORIGIN) and the GGUF: a folder that runs on any
x86-64 Linux with glibc >= the build machine's. `--llama-dir` runs such a folder instead of
building (with LD_LIBRARY_PATH set to it). `--budget` stops starting new runs once that many seconds have passed (the rows
printed so far stand); every row is printed as soon as both stacks have run.

Needs: pip (with network to PyPI), cmake (`pip install cmake`), a C/C++ compiler, numpy,
and the gguf package (`pip install gguf`, or llama.cpp's own gguf-py, used by default).
Seconds are wall-clock seconds of the whole process (load, input, scoring, output); `cpu s` is
user + system time, the fairer figure on a shared machine.
"""

import argparse
import os
import platform
import random
import re
import shutil
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


def fetch_source():
    """The llama.cpp copy vendored in the llama-cpp-python sdist, unpacked once."""
    WORK.mkdir(parents=True, exist_ok=True)
    src = WORK / "src"
    if not src.exists():
        sh([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", "llama-cpp-python",
            "llama-cpp-python", "-d", WORK])
        sdist = sorted(WORK.glob("llama_cpp_python-*.tar.gz"))[-1]
        sh(["tar", "xzf", sdist, "-C", WORK])
        vendored = sorted(WORK.glob("llama_cpp_python-*/vendor/llama.cpp"))[-1]
        src.symlink_to(vendored.relative_to(WORK))
    return src


CMAKE_COMMON = ["-DCMAKE_BUILD_TYPE=Release", "-DBUILD_SHARED_LIBS=ON", "-DLLAMA_CURL=OFF",
                "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_SERVER=OFF",
                "-DLLAMA_BUILD_TOOLS=OFF", "-DGGML_CUDA=OFF", "-DGGML_OPENMP=ON"]


def build_llamacpp():
    """libllama and the llama_logp program, built once for this machine (GGML_NATIVE=ON)."""
    exe = WORK / "work" / "llama_logp"
    if exe.exists():
        return exe
    (WORK / "work").mkdir(parents=True, exist_ok=True)
    src = fetch_source()
    build = WORK / "build"
    if not (build / "bin" / "libllama.so").exists():
        sh(["cmake", "-S", src, "-B", build, "-DGGML_NATIVE=ON", *CMAKE_COMMON])
        sh(["cmake", "--build", build, "--target", "llama", "-j", str(os.cpu_count() or 2)])
    lib = build / "bin"
    sh(["cc", "-O2", "-o", exe, ROOT / "bench" / "llama_logp.c", f"-I{src}/include",
        f"-I{src}/ggml/include", f"-L{lib}", "-lllama", "-lggml", "-lggml-base", "-lm",
        f"-Wl,-rpath,{lib}"])
    return exe


def build_portable(variants):
    """A folder that runs on other x86-64 machines: llama_logp, libllama, libggml and one CPU
    backend per instruction set in `variants` (ggml picks the best the CPU runs at load),
    found through rpath $ORIGIN; stripped."""
    out = WORK / "portable"
    exe = out / "llama_logp"
    if exe.exists():
        return out
    src = fetch_source()
    if variants:
        # ggml's CMakeLists lists every x86 variant; keep only the wanted ones (build time).
        cml = src / "ggml" / "src" / "CMakeLists.txt"
        lines = []
        for line in cml.read_text().split("\n"):
            m = re.match(r"\s*ggml_add_cpu_backend_variant\((\w+)", line)
            if m and m.group(1) not in variants and not line.lstrip().startswith("#"):
                line = "#" + line
            lines.append(line)
        cml.write_text("\n".join(lines))
    build = WORK / "build-portable"
    sh(["cmake", "-S", src, "-B", build, "-DGGML_NATIVE=OFF", "-DGGML_BACKEND_DL=ON",
        "-DGGML_CPU_ALL_VARIANTS=ON", *CMAKE_COMMON])
    targets = ["llama"] + [f"ggml-cpu-{v}" for v in variants] if variants else []
    sh(["cmake", "--build", build, "-j", str(os.cpu_count() or 2),
        *(["--target", *targets] if targets else [])])
    out.mkdir(parents=True, exist_ok=True)
    lib = build / "bin"
    for so in sorted(lib.glob("lib*.so*")):
        shutil.copy2(so, out / so.name, follow_symlinks=False)
    sh(["cc", "-O2", "-o", exe, ROOT / "bench" / "llama_logp.c", f"-I{src}/include",
        f"-I{src}/ggml/include", f"-L{out}", "-lllama", "-lggml", "-lggml-base", "-lm",
        "-Wl,-rpath,$ORIGIN"])
    sh(["strip", "--strip-unneeded", exe, *sorted(out.glob("lib*.so*"))])
    return out


def convert_model(out):
    if not out.exists():
        sh([sys.executable, ROOT / "bench" / "mamba_to_gguf.py", ROOT / "models" / "ssmgen-dna-small",
            out, "--gguf-py", WORK / "src" / "gguf-py"])
    return out


def make_sequence(n, work):
    """A FASTA record and the same bases as uint32 token ids."""
    fa = work / f"rand{n}.fa"
    ids = work / f"rand{n}.u32"
    if not fa.exists() or not ids.exists():
        rng = random.Random(n)
        s = "".join(rng.choice("ACGT") for _ in range(n))
        fa.write_text(f">rand{n}\n" + "\n".join(s[i:i + 80] for i in range(0, n, 80)) + "\n")
        np.array([TOKENS[c] for c in s], dtype="<u4").tofile(ids)
    return fa, ids


def timed(cmd, work):
    """Wall seconds, user+sys seconds and peak RSS (MiB) of one process.

    Peak RSS comes from GNU time (`/usr/bin/time -f %M`) where it exists: a child forked
    straight from this Python process starts with Python's resident set as its high-water
    mark, which would hide anything smaller.
    """
    print("+", " ".join(map(str, cmd)), file=sys.stderr, flush=True)
    gnu_time = Path("/usr/bin/time")
    rss_file = work / "rss.txt"
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
    ap.add_argument("--portable", action="store_true",
                    help="build the portable llama.cpp folder (see above) and use it")
    ap.add_argument("--cpu-variants", default="",
                    help="with --portable: ggml CPU variants to build, e.g. x64,haswell,skylakex")
    ap.add_argument("--llama-dir", help="a prebuilt folder: llama_logp, its libraries, the GGUF")
    ap.add_argument("--work", default=str(WORK / "work"), help="inputs and outputs go here")
    ap.add_argument("--budget", type=float, default=0.0,
                    help="start no new run after this many seconds (0: no limit)")
    a = ap.parse_args()
    threads = [int(x) for x in a.threads.split(",")]
    lengths = [int(float(x)) for x in a.lengths.split(",")]
    started = time.perf_counter()
    out = Path(a.work)
    out.mkdir(parents=True, exist_ok=True)

    if a.llama_dir:
        exe = Path(a.llama_dir) / "llama_logp"
        gguf = Path(a.llama_dir) / "ssmgen-dna-small.gguf"
    elif a.portable:
        variants = [v for v in a.cpu_variants.split(",") if v]
        exe = build_portable(variants) / "llama_logp"
        gguf = convert_model(exe.parent / "ssmgen-dna-small.gguf")
    else:
        exe = build_llamacpp()
        gguf = convert_model(WORK / "work" / "ssmgen-dna-small.gguf")

    if a.llama_dir or a.portable:
        # The libraries find each other through the folder, not the build tree's rpath.
        os.environ["LD_LIBRARY_PATH"] = ":".join(
            p for p in (str(exe.parent), os.environ.get("LD_LIBRARY_PATH", "")) if p)
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    print(f"cpu: {cpu}, {os.cpu_count()} logical cores", flush=True)
    _, probe = make_sequence(64, out)
    subprocess.run([str(exe), str(gguf), str(probe), str(out / "probe.f32"), "1", "64", "64"],
                   env={**os.environ, "LLAMA_LOGP_INFO": "1"}, stdout=subprocess.DEVNULL, check=True)

    # Parity: per-token log-probabilities of both stacks on one sequence.
    if a.parity_length > 0:
        fa, ids = make_sequence(a.parity_length, out)
        sh([exe, gguf, ids, out / "parity.llama.f32", 2, a.llama_batch, a.llama_ubatch],
           stdout=subprocess.DEVNULL)
        sh([a.ssmgen, "likelihood", "-q", "--device", "cpu", "-t", 2, fa, "-o",
            out / "parity.bedgraph"])
        ll = np.fromfile(out / "parity.llama.f32", dtype="<f4").astype(np.float64)
        ss = read_bedgraph(out / "parity.bedgraph", a.parity_length)[1:]
        d = np.abs(ll - ss)
        print(f"parity on {a.parity_length:,} random bases: max |Δ logp| {d.max():.3e}, "
              f"mean {d.mean():.3e} (llama.cpp vs ssmgen, f32 both)", flush=True)

    header = ("| stack | threads | length | seconds | cpu s | tokens/s | peak RSS MiB "
              "| speed vs llama.cpp |\n|---|---|---|---|---|---|---|---|")
    print("\n" + header, flush=True)
    rows = []
    skipped = []
    for n in lengths:
        fa, ids = make_sequence(n, out)
        for t in threads:
            if a.budget and time.perf_counter() - started > a.budget:
                skipped.append(f"{n:,} bases at {t} threads")
                continue
            res = {"ssmgen": [], "llama.cpp": []}
            for _ in range(a.reps):  # A/B interleaved
                res["ssmgen"].append(timed([a.ssmgen, "likelihood", "-q", "--device", "cpu", "-t", t,
                                            fa, "-o", "/dev/null"], out))
                res["llama.cpp"].append(timed([exe, gguf, ids, out / "bench.f32", t, a.llama_batch,
                                               a.llama_ubatch], out))
            best = {k: min(v) for k, v in res.items()}
            for stack, (wall, cpu_s, rss) in best.items():
                ratio = best["llama.cpp"][0] / wall
                row = (stack, t, n, wall, cpu_s, n / wall, rss, ratio)
                rows.append(row)
                print(f"| {stack} | {t} | {n:,} | {wall:.2f} | {cpu_s:.2f} | {n / wall:,.0f} "
                      f"| {rss:.1f} | {ratio:.2f}× |", flush=True)
    if skipped:
        print(f"\nnot run (budget of {a.budget:.0f} s spent): " + "; ".join(skipped), flush=True)
    print(f"\n{time.perf_counter() - started:.0f} s in all", flush=True)


if __name__ == "__main__":
    main()
