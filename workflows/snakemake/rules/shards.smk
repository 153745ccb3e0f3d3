# The genome cut into shards: one BED per shard, named so that they sort in genome order.


checkpoint shards:
    input:
        genome=GENOME,
        fai=FAI,
    output:
        bed=f"{OUT}/shards/shards.bed",
        split=directory(f"{OUT}/shards/split"),
    params:
        ssmgen=SSMGEN,
        size=(
            f"--size {config['shards']['size']}"
            if str(config["shards"]["size"]) != ""
            else ""
        ),
        by=config["shards"]["by"],
    conda:
        "../envs/ssmgen.yaml"
    log:
        f"{OUT}/logs/shards.log",
    shell:
        "{params.ssmgen} shards {input.genome} {params.size} --by {params.by} "
        "-o {output.bed} --split-dir {output.split} 2> {log}"
