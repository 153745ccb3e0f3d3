#!/usr/bin/env bash
# Checks ssmgen's BGZF outputs and --write-index indexes with htslib's own tools: for each output,
# a region query through ssmgen's index (tabix / bcftools view -r) must return the same rows as
# filtering the decompressed text, and as a query through an index htslib builds itself.
# Skips cleanly (exit 0) when tabix or bcftools is not installed.
#
#   bash bench/index_check.sh [SSMGEN]        (default target/release/ssmgen)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SSMGEN=${1:-$ROOT/target/release/ssmgen}
for tool in tabix bcftools; do
  if ! command -v "$tool" >/dev/null; then
    echo "skip: $tool not installed (apt-get install tabix bcftools)"
    exit 0
  fi
done
GENOME=$ROOT/test-data/shards.fa
VCF=$ROOT/test-data/shards.vcf
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
E=(-q --device cpu -t 2)
fail=0

"$SSMGEN" likelihood "$GENOME" -s both "${E[@]}" -o l.bedgraph.gz --write-index=tbi
"$SSMGEN" likelihood "$GENOME" -s both "${E[@]}" -o lc.bedgraph.gz --write-index
"$SSMGEN" score-variants --ref "$GENOME" --vcf "$VCF" "${E[@]}" \
  -o v.vcf.gz -o v.bed.gz -o v.tsv.gz --write-index
"$SSMGEN" score-variants --ref "$GENOME" --vcf "$VCF" "${E[@]}" -o vt.vcf.gz --write-index=tbi
"$SSMGEN" embed "$GENOME" --window 100 --stride 50 "${E[@]}" -o e.tsv.gz --write-index=tbi

# expect FILE CHROM FROM TO KIND: rows of the text meeting the 1-based region [FROM, TO].
expect() {
  local file=$1 chrom=$2 a=$3 b=$4 kind=$5
  case $kind in
    bed) zcat "$file" | awk -v c="$chrom" -v a="$a" -v b="$b" \
           '!/^#/ && $1==c && $2+1<=b && $3>=a' ;;
    bedh) zcat "$file" | tail -n +2 | awk -v c="$chrom" -v a="$a" -v b="$b" \
           '$1==c && $2+1<=b && $3>=a' ;;
    vcf) zcat "$file" | awk -v c="$chrom" -v a="$a" -v b="$b" \
           '!/^#/ && $1==c && $2<=b && $2+length($4)-1>=a' ;;
    tsv) zcat "$file" | tail -n +2 | awk -v c="$chrom" -v a="$a" -v b="$b" \
           '$1==c && $2<=b && $2>=a' ;;
  esac
}

printf '%-16s %-5s %-18s %8s %8s %8s  %s\n' file index region ssmgen htslib text result
check() {
  local file=$1 index=$2 region=$3 kind=$4 reindex=$5
  local chrom=${region%%:*} span=${region#*:}
  local a=${span%-*} b=${span#*-}
  local want got other
  want=$(expect "$file" "$chrom" "$a" "$b" "$kind" | md5sum)
  local n_want
  n_want=$(expect "$file" "$chrom" "$a" "$b" "$kind" | wc -l)
  got=$(tabix "$file" "$region" | md5sum)
  local n_got
  n_got=$(tabix "$file" "$region" | wc -l)
  # htslib's own index of the same file, in a copy so ssmgen's stays in place.
  cp "$file" "h.$file"
  eval "$reindex h.$file"
  other=$(tabix "h.$file" "$region" | md5sum)
  local n_other
  n_other=$(tabix "h.$file" "$region" | wc -l)
  local result=ok
  if [ "$got" != "$want" ] || [ "$other" != "$want" ] || [ "$n_want" -eq 0 ]; then
    result=FAIL
    fail=1
  fi
  printf '%-16s %-5s %-18s %8s %8s %8s  %s\n' "$file" "$index" "$region" "$n_got" "$n_other" \
    "$n_want" "$result"
  rm -f "h.$file" "h.$file".*
}

check l.bedgraph.gz tbi chrB:100-600 bed "tabix -p bed"
check lc.bedgraph.gz csi chrA:1-1500 bed "tabix -C -p bed"
check lc.bedgraph.gz csi chrC:250-300 bed "tabix -C -p bed"
check v.vcf.gz csi chrB:100-300 vcf "bcftools index -c"
check vt.vcf.gz tbi chrA:1-400 vcf "bcftools index -t"
check v.bed.gz csi chrC:1-300 bed "tabix -C -p bed"
check v.tsv.gz csi chrB:1-1200 tsv "tabix -C -s1 -b2 -e2 -S1"
check e.tsv.gz tbi chrB:120-260 bedh "tabix -s1 -b2 -e3 -0 -S1"

# bcftools reads ssmgen's CSI and TBI directly.
for f in v.vcf.gz vt.vcf.gz; do
  n_index=$(bcftools index -n "$f")
  n_text=$(zcat "$f" | grep -vc '^#')
  n_view=$(bcftools view -H -r chrA,chrB,chrC "$f" 2>/dev/null | wc -l)
  result=ok
  if [ "$n_index" != "$n_text" ] || [ "$n_view" != "$n_text" ]; then result=FAIL; fail=1; fi
  echo "bcftools $f: index -n $n_index, view -r all contigs $n_view, records $n_text: $result"
done
bcftools view -h v.vcf.gz | grep -E '^##(source|ssmgenCommand|ssmgenModel)=' | cut -c1-100
if [ "$fail" -ne 0 ]; then
  echo "FAIL"
  exit 1
fi
echo "ok: every query through ssmgen's indexes equals htslib's and the text's"
