#!/usr/bin/env python3
"""Writes stream.vcf (sorted, three chromosomes of ../shards.fa: SNVs, indels, multi-allelic
records, several records at one position, skipped ones) and stream-unsorted.vcf (the same
records shuffled), then the expected outputs of score-variants on them as written by the
in-memory implementation before streaming (commit 5043473): `SSMGEN=old-binary python3
make_stream_golden.py`. tests/cli_stream.rs checks the streaming implementation against them.
"""
import os, random, subprocess, sys

here = os.path.dirname(os.path.abspath(__file__))
fa = os.path.join(here, "..", "shards.fa")
seqs, name = {}, None
for line in open(fa):
    line = line.strip()
    if line.startswith(">"):
        name = line[1:].split()[0]
        seqs[name] = []
    elif line:
        seqs[name].append(line)
seqs = {k: "".join(v) for k, v in seqs.items()}
rng = random.Random(16)
rows = []
for chrom in ["chrA", "chrB", "chrC"]:
    s = seqs[chrom]
    positions = sorted(rng.sample(range(1, len(s) - 12), len(s) // 25))
    positions += [1, len(s)]  # both ends of the chromosome
    positions.sort()
    for i, p in enumerate(positions):
        ref = s[p - 1]
        kind = rng.random()
        if kind < 0.55:
            alt = ",".join(rng.sample([b for b in "ACGT" if b != ref.upper()], rng.choice([1, 1, 1, 2, 3])))
        elif kind < 0.7 and p + 4 <= len(s):
            ref = s[p - 1 : p + rng.randint(1, 3)]
            alt = ref[0]
        elif kind < 0.85:
            alt = ref + "".join(rng.choice("ACGT") for _ in range(rng.randint(1, 4)))
        elif kind < 0.9:
            alt = "<DEL>"
        elif kind < 0.95:
            ref = "ACGT"[("ACGT".index(ref.upper()) + 1) % 4] if ref.upper() in "ACGT" else "A"
            alt = "T" if ref != "T" else "A"
        else:
            alt = ref.upper() if ref.upper() != "A" else "C"
            alt = "A" if alt == ref.upper() else alt
        rows.append((chrom, p, f"{chrom}_{i}", ref, alt, "." if i % 3 else "DP=%d" % i))
        if i % 17 == 0:  # a second record at the same position
            other = [b for b in "ACGT" if b != s[p - 1].upper()][0]
            rows.append((chrom, p, ".", s[p - 1], other, "."))
rows.append(("chrZ", 5, "nowhere", "A", "C", "."))
header = [
    "##fileformat=VCFv4.2",
    "##contig=<ID=chrA,length=1500>",
    "##contig=<ID=chrB,length=1200>",
    "##contig=<ID=chrC,length=300>",
    '##INFO=<ID=DP,Number=1,Type=Integer,Description="Read depth">',
    "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO",
]
def write(path, rows):
    with open(path, "w") as f:
        f.write("\n".join(header) + "\n")
        for r in rows:
            f.write("\t".join([r[0], str(r[1]), r[2], r[3], r[4], ".", "PASS", r[5]]) + "\n")
write(os.path.join(here, "stream.vcf"), rows)
shuffled = rows[:]
rng.shuffle(shuffled)
write(os.path.join(here, "stream-unsorted.vcf"), shuffled)
exe = os.environ.get("SSMGEN")
if not exe:
    sys.exit(0)
model = os.path.join(here, "..", "fixture-model")
for vcf, tag in [("stream.vcf", "sorted"), ("stream-unsorted.vcf", "unsorted")]:
    for extra, suffix in [([], ""), (["--context", "50"], "-context50")]:
        for ext in ["tsv", "vcf"]:
            out = os.path.join(here, f"expected-{tag}{suffix}.{ext}")
            subprocess.run([exe, "score-variants", "-q", "--device", "cpu", "--model", model,
                            "--ref", fa, "--vcf", os.path.join(here, vcf), "--window", "40", *extra,
                            "-o", out], check=True, stderr=subprocess.DEVNULL)
            if ext == "vcf":  # drop the command line and model path, which differ between runs
                lines = [l for l in open(out) if not l.startswith(("##ssmgenCommand", "##ssmgenModel"))]
                open(out, "w").writelines(lines)
# --window 0: every SNV's continuation is its one ALT token (scored from the checkpoint's row).
subprocess.run([exe, "score-variants", "-q", "--device", "cpu", "--model", model, "--ref", fa,
                "--vcf", os.path.join(here, "stream.vcf"), "--window", "0",
                "-o", os.path.join(here, "expected-sorted-window0.tsv")],
               check=True, stderr=subprocess.DEVNULL)
