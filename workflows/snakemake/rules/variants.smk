# Variant scores: each shard scores the variants whose first REF base lies in it (one pass,
# two files); gathered into one bgzipped, tabix-indexed VCF and one TSV.


rule score_variants_shard:
    input:
        genome=GENOME,
        fai=FAI,
        vcf=VCF or [],
        bed=f"{OUT}/shards/split/{{shard}}.bed",
    output:
        tsv=temp(f"{OUT}/parts/variants/{{shard}}.tsv"),
        vcf=temp(f"{OUT}/parts/variants/{{shard}}.vcf"),
    params:
        ssmgen=SSMGEN,
        engine=ENGINE,
        warmup=WARMUP,
        window=config["score_variants"]["window"],
        extra=config["score_variants"]["extra"],
    threads: RES["threads"]
    resources:
        **gpu_resources(),
    conda:
        "../envs/ssmgen.yaml"
    log:
        f"{OUT}/logs/variants/{{shard}}.log",
    shell:
        "{params.ssmgen} score-variants --ref {input.genome} --vcf {input.vcf} "
        "--regions {input.bed} --warmup {params.warmup} --window {params.window} -t {threads} "
        "{params.engine} {params.extra} -o {output.tsv} -o {output.vcf} 2> {log}"


rule variants_tsv:
    input:
        parts=shard_parts(f"{OUT}/parts/variants/{{shard}}.tsv"),
        fai=FAI,
    output:
        f"{OUT}/variants.tsv",
    params:
        gather=GATHER,
    conda:
        "../envs/gather.yaml"
    log:
        f"{OUT}/logs/variants_tsv.log",
    shell:
        "python {params.gather} text --header line --sorted pos --fai {input.fai} "
        "-o {output} {input.parts} 2> {log}"


rule variants_vcf:
    input:
        parts=shard_parts(f"{OUT}/parts/variants/{{shard}}.vcf"),
        fai=FAI,
    output:
        vcf=f"{OUT}/variants.vcf.gz",
        tbi=f"{OUT}/variants.vcf.gz.tbi",
    params:
        gather=GATHER,
    conda:
        "../envs/gather.yaml"
    log:
        f"{OUT}/logs/variants_vcf.log",
    shell:
        "python {params.gather} vcf --fai {input.fai} -o {output.vcf} {input.parts} 2> {log}"
