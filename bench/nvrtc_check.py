#!/usr/bin/env python3
"""Compiles kernels/*.cu as ssmgen does (NVRTC, one program, --fmad=false) and prints each
kernel's registers and spills from `ptxas -v` — on a machine without a GPU.

    pip download --no-deps nvidia-cuda-nvrtc nvidia-cuda-nvcc -d /tmp/nv
    (cd /tmp/nv && for w in *.whl; do unzip -qo "$w" -d x; done)
    python3 bench/nvrtc_check.py --cuda /tmp/nv/x/nvidia/cu13 [--arch sm_90]
        [--defines SSM_N=16,CONV_K=4,DT_RANK=16,M2_N=16]

Exits non-zero if NVRTC rejects the source. The order of the sources and the defines follow
src/backend/cuda/module.rs.
"""
import argparse
import ctypes
import os
import subprocess
import sys
import tempfile

SOURCES = ["math.cu", "norm.cu", "conv.cu", "scan.cu", "graph.cu", "mamba2.cu"]


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser()
    ap.add_argument("--cuda", required=True, help="folder with lib/libnvrtc.so.* and bin/ptxas")
    ap.add_argument("--arch", default="sm_90")
    ap.add_argument("--defines", default="SSM_N=16,CONV_K=4,DT_RANK=16,M2_N=16")
    opts = ap.parse_args()
    libs = [f for f in os.listdir(os.path.join(opts.cuda, "lib")) if f.startswith("libnvrtc.so")]
    nvrtc = ctypes.CDLL(os.path.join(opts.cuda, "lib", sorted(libs)[0]))
    src = "".join("#define {} {}\n".format(*d.split("=")) for d in opts.defines.split(","))
    for name in SOURCES:
        with open(os.path.join(root, "kernels", name)) as f:
            src += f"// ---- {name}\n{f.read()}\n"
    prog = ctypes.c_void_p()
    if nvrtc.nvrtcCreateProgram(ctypes.byref(prog), src.encode(), b"ssmgen.cu", 0, None, None):
        sys.exit("nvrtcCreateProgram failed")
    args = [f"--gpu-architecture={opts.arch}".encode(), b"--fmad=false"]
    rc = nvrtc.nvrtcCompileProgram(prog, len(args), (ctypes.c_char_p * len(args))(*args))
    size = ctypes.c_size_t()
    nvrtc.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
    log = ctypes.create_string_buffer(size.value)
    nvrtc.nvrtcGetProgramLog(prog, log)
    if log.value.strip():
        print(log.value.decode())
    if rc:
        sys.exit(f"NVRTC rejected the kernels (error {rc})")
    nvrtc.nvrtcGetPTXSize(prog, ctypes.byref(size))
    ptx = ctypes.create_string_buffer(size.value)
    nvrtc.nvrtcGetPTX(prog, ptx)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "k.ptx")
        with open(path, "wb") as f:
            f.write(ptx.value)
        out = subprocess.run([os.path.join(opts.cuda, "bin", "ptxas"), f"-arch={opts.arch}", "-v", path,
                              "-o", os.path.join(tmp, "k.cubin")], capture_output=True, text=True)
    lines = out.stderr.splitlines()
    for i, line in enumerate(lines):
        if "Compiling entry" in line:
            info = [x.split("info    :")[-1].strip() for x in lines[i + 1:i + 4]
                    if "Used" in x or "spill" in x]
            print(f"{line.split(chr(39))[1]:<24} {' | '.join(info)}")
    if out.returncode:
        sys.exit(out.stderr)


if __name__ == "__main__":
    main()
