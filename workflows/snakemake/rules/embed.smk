# Window embeddings: one matrix (or CSV) per shard, gathered into one with its rows BED.
# Windows are laid out from each chromosome's first base; a shard reports those starting in it.


rule embed_shard:
    input:
        genome=GENOME,
        fai=FAI,
        bed=f"{OUT}/shards/split/{{shard}}.bed",
    output:
        matrix=temp(f"{OUT}/parts/embed/{{shard}}.{embed_ext()}"),
        rows=(
            temp(f"{OUT}/parts/embed/{{shard}}.{embed_ext()}.rows.bed")
            if embed_ext() != "csv"
            else []
        ),
    params:
        ssmgen=SSMGEN,
        engine=ENGINE,
        warmup=WARMUP,
        window=embed_window_options(),
        strand=config["embed"]["strand"],
        extra=config["embed"]["extra"],
    threads: RES["threads"]
    resources:
        **gpu_resources(),
    conda:
        "../envs/ssmgen.yaml"
    log:
        f"{OUT}/logs/embed/{{shard}}.log",
    shell:
        "{params.ssmgen} embed {input.genome} --regions {input.bed} --warmup {params.warmup} "
        "{params.window} -s {params.strand} -t {threads} {params.engine} {params.extra} "
        "-o {output.matrix} 2> {log}"


rule embed_gather:
    input:
        parts=shard_parts(f"{OUT}/parts/embed/{{shard}}.{embed_ext()}"),
        rows=(
            shard_parts(f"{OUT}/parts/embed/{{shard}}.{embed_ext()}.rows.bed")
            if embed_ext() != "csv"
            else []
        ),
        fai=FAI,
    output:
        matrix=f"{OUT}/embed.{embed_ext()}",
        rows=f"{OUT}/embed.{embed_ext()}.rows.bed" if embed_ext() != "csv" else [],
    params:
        gather=GATHER,
        command=(
            f"matrix --format {embed_ext()}"
            if embed_ext() != "csv"
            else "text --header line --sorted start"
        ),
    conda:
        "../envs/gather.yaml"
    log:
        f"{OUT}/logs/embed_gather.log",
    shell:
        "python {params.gather} {params.command} --fai {input.fai} -o {output.matrix} "
        "{input.parts} 2> {log}"
