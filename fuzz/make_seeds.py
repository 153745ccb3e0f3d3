#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/corpus/ (small, valid or nearly valid inputs per target).
Run from the repository root: python3 fuzz/make_seeds.py"""
import gzip, json, os, struct

root = "fuzz/corpus"
def put(target, name, data):
    d = os.path.join(root, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    open(os.path.join(d, name), "wb").write(data)

fixture = open("test-data/fixture.fa").read().splitlines()
seq = "".join(fixture[1:])[:400]

def fasta(records, width, eol="\n"):
    out = ""
    for name, s in records:
        out += f">{name} desc{eol}"
        for i in range(0, len(s), width):
            out += s[i:i + width] + eol
    return out

def fai(text, eol="\n"):
    """samtools-style .fai for FASTA text with uniform line widths."""
    lines, off, out, cur = text.split(eol), 0, [], None
    pos = 0
    data = text.encode()
    i = 0
    recs = []
    while i < len(data):
        j = data.find(eol.encode(), i)
        j = len(data) if j < 0 else j
        line = data[i:j]
        if line.startswith(b">"):
            recs.append([line[1:].split()[0].decode(), 0, j + len(eol), None, None])
        elif recs:
            r = recs[-1]
            if r[3] is None:
                r[3], r[4] = len(line), len(line) + len(eol)
            r[1] += len(line)
        i = j + len(eol)
    return "".join(f"{n}\t{l}\t{o}\t{lb or 0}\t{lw or 0}\n" for n, l, o, lb, lw in recs)

# FASTA / FASTQ streams.
put("sequence_stream", "fasta", fasta([("a", seq[:150]), ("b", seq[150:220])], 60))
put("sequence_stream", "fasta_crlf", fasta([("a", seq[:90])], 40, "\r\n"))
put("sequence_stream", "fasta_gz", gzip.compress(fasta([("g", seq[:120])], 50).encode()))
put("sequence_stream", "fastq", "@r1 x\nACGTN\n+\nIIII#\n@r2\nGGA\n+r2\n!!!\n")
put("sequence_stream", "header_only", ">only\n>b\nAC\n")
put("fastq", "two", "r1\nACGT\n+\nIIII\n@r2\nTTGCA\n+\n#####\n")
put("fastq", "crlf", "r1\r\nACGT\r\n+\r\nIIII\r\n")

# Indexed FASTA: mode byte, u16 fai length, fai, [u16 gzi length, gzi], FASTA.
fa = fasta([("x", seq[:130]), ("y", seq[130:200])], 60)
fi = fai(fa)
def indexed(mode, fa, fi, gzi=None):
    b = bytes([mode]) + struct.pack("<H", len(fi)) + fi.encode()
    if gzi is not None:
        b += struct.pack("<H", len(gzi)) + gzi
    return b + fa.encode()
put("indexed_fasta", "plain", indexed(0, fa, fi))
put("indexed_fasta", "bgzip", indexed(1, fa, fi))
n = (len(fa) + 63) // 64
import zlib
gzi = struct.pack("<Q", 0)
put("indexed_fasta", "bgzip_gzi", indexed(2, fa, fi, gzi))
fa_crlf = fasta([("x", seq[:100])], 50, "\r\n")
put("indexed_fasta", "crlf", indexed(0, fa_crlf, fai(fa_crlf, "\r\n")))

# Regions and BED.
for i, r in enumerate(["chr1:1,000-2,000", "HLA-A*01:01:01:01", "x:5", "chr2:3-3", "c:1-"]):
    put("region", f"r{i}", r)
put("bed", "basic", "track name=t\n# c\nchr1\t0\t10\tn\nchr2\t5\t6\n")
put("bed", "crlf", "browser x\r\nchr1\t0\t10\r\n")

# Variants.
put("vcf", "vcf", open("test-data/variants.vcf").read())
put("vcf", "table", "chrom,pos,ref,alt,id\nc1,7,AC,A,x\nc1,9,G,T,.\n")
bcf = gzip.decompress(open("test-data/variants.bcf", "rb").read())
assert bcf[:5] == b"BCF\x02\x02"
put("bcf", "variants", bcf[5:])

# Model files.
put("config_json", "fixture", open("test-data/fixture-model/config.json").read())
put("config_json", "tiny", '{"vocab_size":12,"hidden_size":2,"state_size":2,"num_hidden_layers":1,'
    '"expand":1,"conv_kernel":2,"time_step_rank":"auto","ssmgen":{"prepend_bos":false,'
    '"tokens":{"a":7,"c":8,"g":9,"t":10,"n":11}}}')

def safetensors(tensors):
    header, data = {}, b""
    for name, shape in tensors:
        count = 1
        for s in shape:
            count *= s
        raw = struct.pack(f"<{count}f", *[0.01 * (i + 1) for i in range(count)])
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data

m = "backbone.layers.0.mixer"
put("safetensors", "tiny", safetensors([
    ("backbone.embeddings.weight", [12, 2]),
    ("backbone.layers.0.norm.weight", [2]),
    (f"{m}.in_proj.weight", [2, 2]),
    (f"{m}.conv1d.weight", [1, 1, 2]),
    (f"{m}.conv1d.bias", [1]),
    (f"{m}.x_proj.weight", [5, 1]),
    (f"{m}.dt_proj.weight", [1, 1]),
    (f"{m}.dt_proj.bias", [1]),
    (f"{m}.A_log", [1, 2]),
    (f"{m}.D", [1]),
    (f"{m}.out_proj.weight", [2, 1]),
    ("backbone.norm_f.weight", [2]),
]))
