process SSMGEN_SCOREVARIANTS {
    tag "$meta.id"
    label 'process_medium'
    label 'process_gpu'

    conda "${moduleDir}/environment.yml"

    input:
    tuple val(meta), path(regions)
    tuple val(meta2), path(fasta), path(fasta_index)
    tuple val(meta3), path(vcf)
    path(model)

    output:
    tuple val(meta), path("${prefix}.tsv"), emit: tsv
    tuple val(meta), path("${prefix}.vcf"), emit: vcf
    tuple val("${task.process}"), val('ssmgen'), eval("ssmgen --version | sed 's/^ssmgen //'"), topic: versions, emit: versions_ssmgen

    when:
    task.ext.when == null || task.ext.when

    script:
    def args      = task.ext.args ?: ''
    prefix        = task.ext.prefix ?: "${meta.id}"
    def model_arg = model ? "--model ${model}" : ''
    def device    = task.accelerator ? '--device cuda' : ''
    """
    ssmgen score-variants \\
        --ref ${fasta} \\
        --vcf ${vcf} \\
        --regions ${regions} \\
        --threads ${task.cpus} \\
        ${model_arg} \\
        ${device} \\
        --quiet \\
        ${args} \\
        --output ${prefix}.tsv \\
        --output ${prefix}.vcf
    """

    stub:
    prefix = task.ext.prefix ?: "${meta.id}"
    """
    touch ${prefix}.tsv ${prefix}.vcf
    """
}
