#!/usr/bin/env python3
"""Writes the multi-record genome and VCF that the shard tests and the workflow check use.

`shards.fa` (+ `.fai`): the 3,000 bases of `fixture.fa` cut into three records of 1,500, 1,200
and 300 bases (lines of 60), so that shards can split a record mid-sequence and also cover
whole records. `shards.vcf`: SNVs, an insertion, a deletion and a multi-allelic site on all three
records, sorted in the FASTA's order, REF taken from the genome. Run from the repository root.
"""

seq = "".join(l.strip() for l in open("test-data/fixture.fa") if not l.startswith(">"))
assert len(seq) == 3000, len(seq)
records = [("chrA", seq[:1500]), ("chrB", seq[1500:2700]), ("chrC", seq[2700:])]

with open("test-data/shards.fa", "w") as fa, open("test-data/shards.fa.fai", "w") as fai:
    offset = 0
    for name, s in records:
        head = f">{name}\n"
        fa.write(head)
        offset += len(head)
        fai.write(f"{name}\t{len(s)}\t{offset}\t60\t61\n")
        for i in range(0, len(s), 60):
            line = s[i : i + 60] + "\n"
            fa.write(line)
            offset += len(line)

flip = {"A": "C", "C": "G", "G": "T", "T": "A"}
lines = ["##fileformat=VCFv4.2"]
lines += [f"##contig=<ID={n},length={len(s)}>" for n, s in records]
lines.append("#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO")
k = 0
for name, s in records:
    for pos in range(7, len(s) - 3, 97):
        ref = s[pos - 1].upper()
        k += 1
        if k % 11 == 0:  # deletion
            lines.append(f"{name}\t{pos}\tv{k}\t{s[pos-1:pos+2].upper()}\t{ref}\t.\tPASS\t.")
        elif k % 13 == 0:  # insertion
            lines.append(f"{name}\t{pos}\tv{k}\t{ref}\t{ref}GA\t.\tPASS\t.")
        elif k % 7 == 0:  # multi-allelic
            lines.append(f"{name}\t{pos}\tv{k}\t{ref}\t{flip[ref]},{flip[flip[ref]]}\t.\tPASS\t.")
        else:
            lines.append(f"{name}\t{pos}\tv{k}\t{ref}\t{flip[ref]}\t.\tPASS\tDP={k}")
open("test-data/shards.vcf", "w").write("\n".join(lines) + "\n")
