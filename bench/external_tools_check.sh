#!/usr/bin/env bash
# Checks ssmgen's outputs with the tools a genomics user runs on them: htslib's `bcftools index`,
# `tabix -p vcf|bed`, `bcftools view`/`query` on the BGZF outputs, and sortedness checks on
# bedGraph (`sort -k1,1 -k2,2n -c`, `bedtools sort -faidx` gives the same bytes, `bedtools merge`
# finds no overlapping intervals) — including bedGraph and BGZF bedGraph from regions given out
# of order. Each tool's checks run when it is installed and are reported as skipped otherwise;
# with none installed the script exits 0. Then runs bench/index_check.sh (queries through
# ssmgen's own .csi/.tbi against htslib's).
#
#   bash bench/external_tools_check.sh [SSMGEN]      (default target/release/ssmgen)
#   (Debian: apt-get install tabix bcftools bedtools)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SSMGEN=${1:-$ROOT/target/release/ssmgen}
GENOME=$ROOT/test-data/shards.fa
VCF=$ROOT/test-data/shards.vcf
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
E=(-q --device cpu -t 2)
fail=0
have() { command -v "$1" >/dev/null; }
result() { # NAME OK(0/1) DETAIL
  if [ "$2" = 0 ]; then printf '%-50s ok    %s\n' "$1" "$3"; else printf '%-50s FAIL  %s\n' "$1" "$3"; fail=1; fi
}
skip() { printf '%-50s skip  %s not installed\n' "$1" "$2"; }

# Outputs: whole genome and out-of-order regions (BED lines and --region mixed).
printf 'chrB\t100\t200\nchrA\t500\t600\nchrC\t0\t50\nchrA\t10\t20\n' > unsorted.bed
"$SSMGEN" likelihood "$GENOME" -s both "${E[@]}" -o l.bedgraph.gz
"$SSMGEN" likelihood "$GENOME" "${E[@]}" --regions unsorted.bed -r chrB:1-5 -r chrA:1400-1500 \
  -o r.bedgraph
"$SSMGEN" likelihood "$GENOME" "${E[@]}" --regions unsorted.bed -r chrB:1-5 -r chrA:1400-1500 \
  -o r.bedgraph.gz --write-index
"$SSMGEN" score-variants --ref "$GENOME" --vcf "$VCF" "${E[@]}" \
  -o v.vcf.gz -o v.bed.gz -o v.tsv.gz --write-index
"$SSMGEN" embed "$GENOME" --window 100 --stride 50 "${E[@]}" -o e.tsv.gz --write-index=tbi
variants=$(grep -vc '^#' "$VCF")

printf '%-50s %-5s %s\n' check result detail
if have bcftools; then
  cp v.vcf.gz b.vcf.gz
  if bcftools index -f b.vcf.gz 2>err; then result "bcftools index (csi) v.vcf.gz" 0 "$(ls b.vcf.gz.csi)"; else result "bcftools index (csi) v.vcf.gz" 1 "$(head -1 err)"; fi
  if bcftools index -t -f b.vcf.gz 2>err; then result "bcftools index -t (tbi) v.vcf.gz" 0 "$(ls b.vcf.gz.tbi)"; else result "bcftools index -t (tbi) v.vcf.gz" 1 "$(head -1 err)"; fi
  # The test VCF's own INFO/DP has no header line (htslib warns about it on the input too);
  # a warning about anything ssmgen added (SSM_*, the header lines) fails the check.
  n=$(bcftools view -H v.vcf.gz 2>err | wc -l)
  ours=$(grep -v "INFO 'DP' is not defined" err | wc -l || true)
  result "bcftools view v.vcf.gz" $([ "$n" = "$variants" ] && [ "$ours" = 0 ]; echo $?) "$n records (input $variants), $ours warnings about ssmgen's fields"
  n=$(bcftools view -H -r chrB v.vcf.gz 2>/dev/null | wc -l)
  m=$(zcat v.vcf.gz | awk '!/^#/ && $1=="chrB"' | wc -l)
  result "bcftools view -r chrB (ssmgen's .csi)" $([ "$n" = "$m" ] && [ "$n" -gt 0 ]; echo $?) "$n records, text has $m"
  vals=$(bcftools query -f '%INFO/SSM_LLR\n' v.vcf.gz 2>/dev/null | tr ',' '\n' | grep -Ec '^-?[0-9]+\.[0-9]+$' || true)
  result "bcftools query INFO/SSM_LLR (Float)" $([ "$vals" -gt 0 ]; echo $?) "$vals values parsed"
  n=$(bcftools stats v.vcf.gz 2>/dev/null | awk -F'\t' '$1=="SN" && $3=="number of records:" {print $4}')
  result "bcftools stats v.vcf.gz" $([ "$n" = "$variants" ]; echo $?) "number of records: $n"
else
  skip "bcftools index/view/query/stats" bcftools
fi

if have tabix; then
  cp v.vcf.gz t.vcf.gz
  if tabix -f -p vcf t.vcf.gz 2>err; then result "tabix -p vcf v.vcf.gz" 0 "built t.vcf.gz.tbi"; else result "tabix -p vcf v.vcf.gz" 1 "$(head -1 err)"; fi
  for f in l.bedgraph.gz r.bedgraph.gz v.bed.gz; do
    cp "$f" "t.$f"
    if tabix -f -p bed "t.$f" 2>err; then
      rows=$(tabix "t.$f" chrA | wc -l)
      text=$(zcat "$f" | awk '$1=="chrA"' | wc -l)
      result "tabix -p bed $f; query chrA" $([ "$rows" = "$text" ]; echo $?) "$rows rows, text has $text"
    else
      result "tabix -p bed $f" 1 "$(head -1 err)"
    fi
  done
  rows=$(tabix r.bedgraph.gz chrA:1-30 | wc -l)
  result "tabix r.bedgraph.gz chrA:1-30 (ssmgen's .csi)" $([ "$rows" = 9 ]; echo $?) "$rows rows (chrA:11-20 less its first base: 9)"
  rows=$(tabix e.tsv.gz chrC | wc -l)
  text=$(zcat e.tsv.gz | awk '$1=="chrC"' | wc -l)
  result "tabix e.tsv.gz chrC (ssmgen's .tbi)" $([ "$rows" = "$text" ]; echo $?) "$rows rows, text has $text"
else
  skip "tabix -p vcf/bed" tabix
fi

# Sortedness: the .fai order of the test genome (chrA, chrB, chrC) is also lexical order.
for f in r.bedgraph l.bedgraph.gz; do
  if zcat -f "$f" | LC_ALL=C sort -k1,1 -k2,2n -c 2>err; then
    result "sort -k1,1 -k2,2n -c $f" 0 "$(zcat -f "$f" | wc -l) lines sorted"
  else
    result "sort -k1,1 -k2,2n -c $f" 1 "$(head -1 err)"
  fi
done
if have bedtools; then
  for f in r.bedgraph l.bedgraph.gz; do
    zcat -f "$f" > plain.bg
    if bedtools sort -faidx "$GENOME.fai" -i plain.bg | cmp -s - plain.bg; then
      result "bedtools sort -faidx .fai: $f unchanged" 0 "$(wc -l < plain.bg) lines"
    else
      result "bedtools sort -faidx .fai: $f unchanged" 1 "bedtools reorders it"
    fi
    over=$(bedtools merge -d -1 -c 1 -o count -i plain.bg | awk '$4>1' | wc -l)
    result "bedtools merge -d -1: $f overlaps" $([ "$over" = 0 ]; echo $?) "$over overlapping groups"
  done
else
  skip "bedtools sort/merge" bedtools
fi

if have tabix && have bcftools; then
  echo
  echo "bench/index_check.sh:"
  bash "$ROOT/bench/index_check.sh" "$SSMGEN" || fail=1
fi
exit $fail
