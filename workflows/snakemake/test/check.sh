#!/usr/bin/env bash
# End-to-end check of the Snakemake workflow on test-data/: the genome sharded four ways
# (records split mid-sequence, whole records, equal shards packing short records, and each of
# these with every output format), each merged output compared with one unsharded ssmgen run.
# Also checks that the comparison can fail (a warm-up too short to reach the record start) and
# that a VCF out of the FASTA's order stops the workflow before any scoring, leaving no output.
#
#   SSMGEN=target/release/ssmgen bash workflows/snakemake/test/check.sh   (snakemake on PATH)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
SSMGEN=${SSMGEN:-$ROOT/target/release/ssmgen}
SSMGEN=$(cd "$(dirname "$SSMGEN")" && pwd)/$(basename "$SSMGEN")
SNAKEFILE=$ROOT/workflows/snakemake/Snakefile
COMPARE=$ROOT/workflows/snakemake/test/compare_unsharded.py
GENOME=$ROOT/test-data/shards.fa
VCF=$ROOT/test-data/shards.vcf
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"

# Embedding options shared by the workflow config and the unsharded run.
WINDOW=100
STRIDE=50
ENGINE=(--device cpu -q -t 2)

echo "== unsharded reference run"
mkdir unsharded
"$SSMGEN" likelihood "$GENOME" -s both "${ENGINE[@]}" -o unsharded/likelihood.bedgraph
"$SSMGEN" likelihood "$GENOME" -s both "${ENGINE[@]}" -o unsharded/likelihood.bw
for ext in npy safetensors csv; do
  "$SSMGEN" embed "$GENOME" --window $WINDOW --stride $STRIDE -s both "${ENGINE[@]}" \
    -o unsharded/embed.$ext
done
"$SSMGEN" score-variants --ref "$GENOME" --vcf "$VCF" "${ENGINE[@]}" \
  -o unsharded/variants.tsv -o unsharded/variants.vcf

# run NAME SIZE BY FORMAT WARMUP [VCF]: the workflow with these shard settings.
run() {
  local name=$1 size=$2 by=$3 fmt=$4 warmup=$5 vcf=${6:-$VCF}
  cat > "$name.yaml" <<YAML
genome: $GENOME
vcf: $vcf
ssmgen: $SSMGEN
device: cpu
outdir: $name
shards: {size: "$size", by: $by, warmup: "$warmup"}
likelihood: {strand: both}
embed: {format: $fmt, window: $WINDOW, stride: $STRIDE, strand: both}
resources: {threads: 2, gpus: 0, mem_mb: 1000}
YAML
  snakemake -s "$SNAKEFILE" --configfile "$name.yaml" --cores 2 --quiet all \
    > "$name.log" 2>&1
}

echo "== snakemake --lint"
cat > lint.yaml <<YAML
genome: $GENOME
vcf: $VCF
ssmgen: $SSMGEN
YAML
snakemake -s "$SNAKEFILE" --configfile lint.yaml --lint > lint.log 2>&1 || { cat lint.log; exit 1; }
tail -n 1 lint.log | sed 's/^/   /'

for spec in "split 700 chrom npy 100k" "whole '' chrom csv 100k" "packed 1000 size safetensors 3k"; do
  eval "set -- $spec"
  echo "== workflow: shards '$2' --by $3, embed $4, warm-up $5"
  run "$@" || { cat "$1.log"; exit 1; }
  echo "   shards: $(cut -f4 "$1/shards/shards.bed" | sort -u | wc -l), regions:" \
    "$(tr '\t' ' ' < "$1/shards/shards.bed" | cut -d' ' -f1-3 | paste -sd, -)"
  python "$COMPARE" --unsharded unsharded --merged "$1" --embed-format "$4" --fai "$GENOME.fai"
done

echo "== the comparison can fail: warm-up 50 bases, shards split records"
run short 700 chrom npy 50 || { cat short.log; exit 1; }
if python "$COMPARE" --unsharded unsharded --merged short --embed-format npy \
  --fai "$GENOME.fai" 2> short.diff; then
  echo "FAIL: a 50-base warm-up compared equal to the unsharded run"; exit 1
fi
echo "   ok: it differs, as it must ($(grep -c '^  -' short.diff) outputs)"

echo "== a VCF out of the FASTA's order stops the workflow with no merged output"
{ grep '^#' "$VCF"; grep -v '^#' "$VCF" | grep '^chrB'; grep -v '^#' "$VCF" | grep '^chrA'; } \
  > unsorted.vcf
if run badvcf 700 chrom npy 100k "$WORK/unsorted.vcf"; then
  echo "FAIL: the workflow accepted an unsorted VCF"; exit 1
fi
grep -h "comes before the variant on line" badvcf/logs/variants/*.log | head -1 | sed 's/^/   /'
if ls badvcf/variants.* 2>/dev/null; then
  echo "FAIL: merged variant outputs left behind"; exit 1
fi
echo "   ok: refused, nothing under the final names"
echo "== workflow check passed"
