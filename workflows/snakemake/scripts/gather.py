#!/usr/bin/env python3
"""Gathers the per-shard outputs of ssmgen into one file each, as one unsharded run writes them.

Shard outputs come in shard order (genome order). Each subcommand checks that the rows are
sorted in the FASTA index's order with no overlaps or repeats at the boundaries, writes under
a temporary name beside the output and renames it into place only when everything succeeded, so
a failed gather leaves nothing under the final name.

  gather.py text   --header none|line|vcf [--sorted bed|pos] --fai G.fai -o OUT[.gz] PARTS...
  gather.py bigwig --fai G.fai --bedgraph MERGED.bedgraph[.gz] -o OUT.bw
  gather.py matrix --format npy|safetensors [--fai G.fai] -o OUT PARTS...  (+ OUT.rows.bed)
  gather.py vcf    --fai G.fai -o OUT.vcf.gz PARTS...              (bgzip + tabix index)

Needs numpy (matrix), pybigtools (bigwig), pysam (vcf).
"""

import argparse
import gzip
import json
import os
import struct
import sys
import tempfile


def fail(message):
    sys.exit(f"gather: error: {message}")


def opener(path, mode="rt"):
    with open(path, "rb") as f:
        magic = f.read(2)
    return gzip.open(path, mode) if magic == b"\x1f\x8b" else open(path, mode)


class Atomic:
    """A temporary file beside `path`, renamed onto it by `commit()`; removed otherwise."""

    def __init__(self, path, binary=False, gz=None):
        self.path = path
        folder = os.path.dirname(os.path.abspath(path))
        fd, self.tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp",
                                        dir=folder)
        os.close(fd)
        gz = path.endswith(".gz") if gz is None else gz
        if gz:
            raw = open(self.tmp, "wb")
            self._raw = raw
            self.f = gzip.GzipFile(fileobj=raw, mode="wb", mtime=0)
            if not binary:
                import io

                self.f = io.TextIOWrapper(self.f, newline="")
        else:
            self._raw = None
            self.f = open(self.tmp, "wb" if binary else "w", newline=None if binary else "")

    def commit(self):
        self.f.close()
        if self._raw:
            self._raw.close()
        os.chmod(self.tmp, 0o644)
        os.replace(self.tmp, self.path)

    def abort(self):
        try:
            self.f.close()
        finally:
            if os.path.exists(self.tmp):
                os.remove(self.tmp)


def read_fai(path):
    order = {}
    sizes = {}
    for i, line in enumerate(open(path)):
        f = line.rstrip("\n").split("\t")
        order[f[0]] = i
        sizes[f[0]] = int(f[1])
    return order, sizes


class SortCheck:
    """Rows must come in the FASTA's record order, by position; BED rows must not overlap."""

    def __init__(self, kind, fai, label):
        self.kind, self.label = kind, label
        self.order = read_fai(fai)[0] if fai else None
        self.prev = None

    def row(self, line, where):
        if self.kind is None:
            return
        f = line.rstrip("\n").split("\t" if "\t" in line else ",")
        rank = self.order.get(f[0]) if self.order is not None else 0
        if rank is None:
            fail(f"{where}: contig '{f[0]}' is not in the FASTA index")
        if self.kind == "bed":
            key, end = (rank, int(f[1])), int(f[2])
            if self.prev is not None and (key < self.prev[0] or
                                          (key[0] == self.prev[0][0] and key[1] < self.prev[1])):
                fail(f"{where}: row {f[0]}:{f[1]}-{f[2]} is out of order or overlaps the row "
                     f"before it ({self.label})")
            self.prev = (key, end)
        else:
            key = (rank, int(f[1]))
            # "start": window rows, each start once; "pos": variants, repeated for ALTs.
            if self.prev is not None and (key < self.prev or
                                          (self.kind == "start" and key == self.prev)):
                fail(f"{where}: row {f[0]}:{f[1]} is out of order or repeated ({self.label})")
            self.prev = key


def header_of(lines, kind):
    """How many leading lines of a part are its header."""
    if kind == "none":
        return 0
    if kind == "line":
        return 1 if lines else 0
    n = 0
    while n < len(lines) and lines[n].startswith("#"):
        n += 1
    return n


def same_header(lines):
    """The header lines that must agree between parts: a VCF's `##ssmgenCommand` names each
    shard's own command line (its --regions file), so the merged file keeps the first part's."""
    return [l for l in lines if not l.startswith("##ssmgenCommand=")]


def gather_text(parts, out, header, sorted_by, fai):
    check = SortCheck(sorted_by, fai, out)
    w = Atomic(out)
    try:
        first_header = None
        for part in parts:
            with opener(part) as f:
                lines = f.readlines()
            n = header_of(lines, header)
            if first_header is None:
                first_header = lines[:n]
                w.f.writelines(first_header)
            elif same_header(lines[:n]) != same_header(first_header):
                fail(f"{part}: its header differs from the first part's ({parts[0]})")
            for i, line in enumerate(lines[n:], start=n + 1):
                check.row(line, f"{part}:{i}")
                w.f.write(line)
        w.commit()
    except BaseException:
        w.abort()
        raise


def gather_bigwig(bedgraph, out, fai):
    import pybigtools

    _, sizes = read_fai(fai)

    def values():
        with opener(bedgraph) as f:
            for line in f:
                c, s, e, v = line.split("\t")
                yield c, int(s), int(e), float(v)

    tmp = os.path.join(os.path.dirname(os.path.abspath(out)),
                       f".{os.path.basename(out)}.{os.getpid()}.tmp.bw")
    try:
        pybigtools.open(tmp, "w").write(sizes, values())
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def read_safetensors(path):
    import numpy as np

    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        head = json.loads(f.read(n))
        t = head["embeddings"]
        if t["dtype"] != "F32":
            fail(f"{path}: dtype {t['dtype']}, expected F32")
        data = np.frombuffer(f.read(), dtype="<f4")
        a, b = t["data_offsets"]
        return data[a // 4:b // 4].reshape(t["shape"])


def gather_matrix(parts, out, fmt, fai):
    import numpy as np

    mats = [np.load(p, mmap_mode="r") if fmt == "npy" else read_safetensors(p) for p in parts]
    dims = {m.shape[1] for m in mats if m.ndim == 2}
    if len(dims) > 1:
        fail(f"parts have different widths: {sorted(dims)}")
    dim = dims.pop() if dims else 0
    rows = sum(m.shape[0] for m in mats)
    w = Atomic(out, binary=True, gz=False)
    try:
        if fmt == "npy":
            np.lib.format.write_array_header_1_0(
                w.f, {"descr": "<f4", "fortran_order": False, "shape": (rows, dim)})
        else:
            head = json.dumps({"embeddings": {"dtype": "F32", "shape": [rows, dim],
                                              "data_offsets": [0, rows * dim * 4]}},
                              separators=(",", ":")).encode()
            head += b" " * (-len(head) % 8)
            w.f.write(struct.pack("<Q", len(head)) + head)
        for m in mats:
            w.f.write(np.ascontiguousarray(m, dtype="<f4").tobytes())
        gather_text([p + ".rows.bed" for p in parts], out + ".rows.bed", "none",
                    "start" if fai else None, fai)
        w.commit()
    except BaseException:
        w.abort()
        raise


def gather_vcf(parts, out, fai):
    import pysam

    if not out.endswith(".gz"):
        fail("the merged VCF is bgzip-compressed: name it .vcf.gz")
    plain = out[:-3] + f".{os.getpid()}.plain.tmp"
    gather_text(parts, plain, "vcf", "pos", fai)
    tmp = out + f".{os.getpid()}.tmp"
    try:
        pysam.tabix_compress(plain, tmp, force=True)
        pysam.tabix_index(tmp, preset="vcf", force=True)
        os.replace(tmp + ".tbi", out + ".tbi")
        os.replace(tmp, out)
    finally:
        for p in (plain, tmp, tmp + ".tbi"):
            if os.path.exists(p):
                os.remove(p)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("text")
    t.add_argument("--header", choices=["none", "line", "vcf"], default="none")
    t.add_argument("--sorted", choices=["bed", "start", "pos"], default=None,
                   help="bed: intervals, no overlaps; start: one row per start; pos: chrom,pos")
    t.add_argument("--fai")
    t.add_argument("-o", "--output", required=True)
    t.add_argument("parts", nargs="+")
    b = sub.add_parser("bigwig")
    b.add_argument("--fai", required=True)
    b.add_argument("--bedgraph", required=True)
    b.add_argument("-o", "--output", required=True)
    m = sub.add_parser("matrix")
    m.add_argument("--format", choices=["npy", "safetensors"], required=True)
    m.add_argument("--fai")
    m.add_argument("-o", "--output", required=True)
    m.add_argument("parts", nargs="+")
    v = sub.add_parser("vcf")
    v.add_argument("--fai", required=True)
    v.add_argument("-o", "--output", required=True)
    v.add_argument("parts", nargs="+")
    a = ap.parse_args()
    if a.cmd == "text":
        if a.sorted and not a.fai:
            fail("--sorted needs --fai")
        gather_text(a.parts, a.output, a.header, a.sorted, a.fai)
    elif a.cmd == "bigwig":
        gather_bigwig(a.bedgraph, a.output, a.fai)
    elif a.cmd == "matrix":
        gather_matrix(a.parts, a.output, a.format, a.fai)
    else:
        gather_vcf(a.parts, a.output, a.fai)


if __name__ == "__main__":
    main()
