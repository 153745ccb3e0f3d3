#!/usr/bin/env python3
"""Compiles kernels/*.cu to PTX with NVRTC, as src/backend/cuda/module.rs does (the same sources
in the same order, the same defines and options), on a machine without a GPU: NVRTC is a host
library. Catches what the emulation cannot (CUDA-only syntax, inline PTX operand types seen by
the front end). Needs libnvrtc.so (a CUDA toolkit, or the `nvidia-cuda-nvrtc` wheel:
NVRTC=/path/to/libnvrtc.so.13).

    python3 kernels/emulate/nvrtc_check.py [--arch sm_90] [--m2-state 128] [--m2-chunk 128]
        [--ptxas PATH]

With --ptxas (from a CUDA toolkit or the `nvidia-cuda-nvcc` wheel) it also assembles the PTX and
prints every kernel's registers, shared memory and spills (`ptxas -v`).
"""
import argparse
import ctypes
import ctypes.util
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
KERNELS = os.path.dirname(HERE)
ROOT = os.path.dirname(KERNELS)


def sources():
    """(name, text) in module.rs's SOURCES order."""
    text = open(os.path.join(ROOT, "src", "backend", "cuda", "module.rs")).read()
    names = re.findall(r'\("([a-z0-9_]+\.cu)", include_str!', text)
    return [(n, open(os.path.join(KERNELS, n)).read()) for n in names]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="sm_90")
    ap.add_argument("--ssm-state", type=int, default=16)
    ap.add_argument("--conv", type=int, default=4)
    ap.add_argument("--dt-rank", type=int, default=8)
    ap.add_argument("--m2-state", type=int, default=128)
    ap.add_argument("--m2-chunk", type=int, default=128)
    ap.add_argument("--ptxas", help="ptxas to assemble with and report registers/spills")
    a = ap.parse_args()
    lib = os.environ.get("NVRTC") or ctypes.util.find_library("nvrtc")
    if not lib:
        print("skipped: no libnvrtc (set NVRTC=/path/to/libnvrtc.so)")
        return 0
    nvrtc = ctypes.CDLL(lib)
    src = (f"#define SSM_N {a.ssm_state}\n#define CONV_K {a.conv}\n#define DT_RANK {a.dt_rank}\n"
           f"#define M2_N {a.m2_state}\n#define M2_Q {a.m2_chunk}\n")
    src += "".join(f"// ---- {n}\n{t}\n" for n, t in sources())
    prog = ctypes.c_void_p()
    rc = nvrtc.nvrtcCreateProgram(ctypes.byref(prog), src.encode(), b"kernels.cu", 0, None, None)
    assert rc == 0, rc
    opts = [f"--gpu-architecture={a.arch}".encode(), b"--fmad=false"]
    arr = (ctypes.c_char_p * len(opts))(*opts)
    rc = nvrtc.nvrtcCompileProgram(prog, len(opts), arr)
    size = ctypes.c_size_t()
    nvrtc.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
    log = ctypes.create_string_buffer(size.value)
    nvrtc.nvrtcGetProgramLog(prog, log)
    if log.value.strip():
        print(log.value.decode())
    if rc != 0:
        print(f"NVRTC failed ({rc}) for {a.arch}, M2_N {a.m2_state}, M2_Q {a.m2_chunk}")
        return 1
    nvrtc.nvrtcGetPTXSize(prog, ctypes.byref(size))
    ptx = ctypes.create_string_buffer(size.value)
    nvrtc.nvrtcGetPTX(prog, ptx)
    kernels = re.findall(r"\.entry (\w+)", ptx.value.decode())
    print(f"NVRTC ok for {a.arch} (M2_N {a.m2_state}, M2_Q {a.m2_chunk}): {len(kernels)} kernels, "
          f"{size.value} bytes of PTX")
    if os.environ.get("PTX_OUT"):
        open(os.environ["PTX_OUT"], "w").write(ptx.value.decode())
    if a.ptxas:
        return report_registers(a.ptxas, a.arch, ptx.value)
    return 0


def report_registers(ptxas, arch, ptx):
    """Assembles `ptx` with `ptxas -v` and prints each kernel's resource line."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "k.ptx")
        with open(path, "wb") as f:
            f.write(ptx)
        out = subprocess.run([ptxas, f"-arch={arch}", "-v", path, "-o", os.path.join(tmp, "k.cubin")],
                             capture_output=True, text=True)
    lines = out.stderr.splitlines()
    for i, line in enumerate(lines):
        if "Compiling entry" in line:
            info = [x.split("info    :")[-1].strip() for x in lines[i + 1:i + 4]
                    if "Used" in x or "spill" in x]
            print(f"{line.split(chr(39))[1]:<24} {' | '.join(info)}")
    if out.returncode:
        print(out.stderr)
    return out.returncode


if __name__ == "__main__":
    sys.exit(main())
