# Variant scores: each shard scores the variants whose first REF base lies in it (one pass,
# two files); gathered into one bgzipped, tabix-indexed VCF and one TSV.


rule score_variants_shard:
    input:
        genome=GENOME,
        fai=FAI,
        vcf=VCF,
        bed=f"{OUT}/shards/split/{{shard}}.bed",
    output:
        tsv=temp(f"{OUT}/parts/variants/{{shard}}.tsv"),
        vcf=temp(f"{OUT}/parts/variants/{{shard}}.vcf"),
    params:
        window=config["score_variants"]["window"],
        extra=config["score_variants"]["extra"],
    threads: RES["threads"]
    resources:
        **gpu_resources(),
    log:
        f"{OUT}/logs/variants/{{shard}}.log",
    shell:
        "{SSMGEN} score-variants --ref {input.genome} --vcf {input.vcf} "
        "--regions {input.bed} --warmup {WARMUP} --window {params.window} -t {threads} "
        "{ENGINE} {params.extra} -o {output.tsv} -o {output.vcf} 2> {log}"


rule variants_tsv:
    input:
        parts=shard_parts(f"{OUT}/parts/variants/{{shard}}.tsv"),
        fai=FAI,
    output:
        f"{OUT}/variants.tsv",
    log:
        f"{OUT}/logs/variants_tsv.log",
    shell:
        "python {GATHER} text --header line --sorted pos --fai {input.fai} "
        "-o {output} {input.parts} 2> {log}"


rule variants_vcf:
    input:
        parts=shard_parts(f"{OUT}/parts/variants/{{shard}}.vcf"),
        fai=FAI,
    output:
        vcf=f"{OUT}/variants.vcf.gz",
        tbi=f"{OUT}/variants.vcf.gz.tbi",
    log:
        f"{OUT}/logs/variants_vcf.log",
    shell:
        "python {GATHER} vcf --fai {input.fai} -o {output.vcf} {input.parts} 2> {log}"
