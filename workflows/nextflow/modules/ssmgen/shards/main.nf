process SSMGEN_SHARDS {
    tag "$meta.id"
    label 'process_single'

    conda "${moduleDir}/environment.yml"

    input:
    tuple val(meta), path(fasta), path(fai)

    output:
    tuple val(meta), path("${prefix}.bed")  , emit: bed
    tuple val(meta), path("${prefix}/*.bed"), emit: shards
    tuple val("${task.process}"), val('ssmgen'), eval("ssmgen --version | sed 's/^ssmgen //'"), topic: versions, emit: versions_ssmgen

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    prefix   = task.ext.prefix ?: "${meta.id}.shards"
    """
    ssmgen shards \\
        ${fasta} \\
        ${args} \\
        --output ${prefix}.bed \\
        --split-dir ${prefix}
    """

    stub:
    prefix = task.ext.prefix ?: "${meta.id}.shards"
    """
    mkdir ${prefix}
    touch ${prefix}.bed ${prefix}/shard0001.bed
    """
}
