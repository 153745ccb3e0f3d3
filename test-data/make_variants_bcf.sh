#!/bin/sh
# Writes variants.bcf from variants.vcf with bcftools (an encoder independent of ssmgen's noodles
# decoder); tests/cli_variants.rs checks that both give the same scores.
set -e
cd "$(dirname "$0")"
bcftools view --no-version -Ob -o variants.bcf variants.vcf
