# Per-base log-probabilities: one bedGraph per shard, gathered into bedGraph.gz and bigWig.


rule likelihood_shard:
    input:
        genome=GENOME,
        fai=FAI,
        bed=f"{OUT}/shards/split/{{shard}}.bed",
    output:
        temp(f"{OUT}/parts/likelihood/{{shard}}.bedgraph"),
    params:
        ssmgen=SSMGEN,
        engine=ENGINE,
        warmup=WARMUP,
        strand=config["likelihood"]["strand"],
        extra=config["likelihood"]["extra"],
    threads: RES["threads"]
    resources:
        **gpu_resources(),
    conda:
        "../envs/ssmgen.yaml"
    log:
        f"{OUT}/logs/likelihood/{{shard}}.log",
    shell:
        "{params.ssmgen} likelihood {input.genome} --regions {input.bed} --warmup {params.warmup} "
        "-s {params.strand} -t {threads} {params.engine} {params.extra} -o {output} 2> {log}"


rule likelihood_bedgraph:
    input:
        parts=shard_parts(f"{OUT}/parts/likelihood/{{shard}}.bedgraph"),
        fai=FAI,
    output:
        f"{OUT}/likelihood.bedgraph.gz",
    params:
        gather=GATHER,
    conda:
        "../envs/gather.yaml"
    log:
        f"{OUT}/logs/likelihood_bedgraph.log",
    shell:
        "python {params.gather} text --header none --sorted bed --fai {input.fai} "
        "-o {output} {input.parts} 2> {log}"


rule likelihood_bigwig:
    input:
        bedgraph=f"{OUT}/likelihood.bedgraph.gz",
        fai=FAI,
    output:
        f"{OUT}/likelihood.bw",
    resources:
        mem_mb=4000,
    params:
        gather=GATHER,
    conda:
        "../envs/gather.yaml"
    log:
        f"{OUT}/logs/likelihood_bigwig.log",
    shell:
        "python {params.gather} bigwig --fai {input.fai} --bedgraph {input.bedgraph} "
        "-o {output} 2> {log}"
