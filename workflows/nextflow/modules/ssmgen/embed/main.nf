process SSMGEN_EMBED {
    tag "$meta.id"
    label 'process_medium'
    label 'process_gpu'

    conda "${moduleDir}/environment.yml"

    input:
    tuple val(meta), path(regions)
    tuple val(meta2), path(fasta), path(fasta_index)
    path(model)

    output:
    tuple val(meta), path("${prefix}.${suffix}")         , emit: embeddings
    tuple val(meta), path("${prefix}.${suffix}.rows.bed"), emit: rows, optional: true
    tuple val("${task.process}"), val('ssmgen'), eval("ssmgen --version | sed 's/^ssmgen //'"), topic: versions, emit: versions_ssmgen

    when:
    task.ext.when == null || task.ext.when

    script:
    def args      = task.ext.args ?: ''
    prefix        = task.ext.prefix ?: "${meta.id}"
    suffix        = task.ext.suffix ?: 'npy'
    def model_arg = model ? "--model ${model}" : ''
    def device    = task.accelerator ? '--device cuda' : ''
    """
    ssmgen embed \\
        ${fasta} \\
        --regions ${regions} \\
        --threads ${task.cpus} \\
        ${model_arg} \\
        ${device} \\
        --quiet \\
        ${args} \\
        --output ${prefix}.${suffix}
    """

    stub:
    prefix = task.ext.prefix ?: "${meta.id}"
    suffix = task.ext.suffix ?: 'npy'
    """
    touch ${prefix}.${suffix}
    if [ "${suffix}" != csv ]; then touch ${prefix}.${suffix}.rows.bed; fi
    """
}
