// Gathering shard outputs into one file each (bin/gather.py: sorted-order checks, atomic
// writes). Needs python3 with numpy (matrices), pybigtools (bigWig) and pysam (bgzip + tabix).

process GATHER_TEXT {
    tag "$meta.id"
    label 'process_single'

    input:
    tuple val(meta), path(parts, stageAs: 'parts/*'), path(fai)
    val(header)
    val(sorted_by)
    val(name)

    output:
    tuple val(meta), path("${name}"), emit: merged

    script:
    """
    gather.py text --header ${header} --sorted ${sorted_by} --fai ${fai} -o ${name} ${parts.join(' ')}
    """

    stub:
    """
    touch ${name}
    """
}

process GATHER_BIGWIG {
    tag "$meta.id"
    label 'process_single'

    input:
    tuple val(meta), path(bedgraph), path(fai)

    output:
    tuple val(meta), path("${meta.id}.bw"), emit: bigwig

    script:
    """
    gather.py bigwig --fai ${fai} --bedgraph ${bedgraph} -o ${meta.id}.bw
    """

    stub:
    """
    touch ${meta.id}.bw
    """
}

process GATHER_MATRIX {
    tag "$meta.id"
    label 'process_single'

    input:
    tuple val(meta), path(parts, stageAs: 'parts/*'), path(rows, stageAs: 'parts/*'), path(fai)
    val(format)

    output:
    tuple val(meta), path("${meta.id}.${format}"), path("${meta.id}.${format}.rows.bed"), emit: merged

    script:
    """
    gather.py matrix --format ${format} --fai ${fai} -o ${meta.id}.${format} ${parts.join(' ')}
    """

    stub:
    """
    touch ${meta.id}.${format} ${meta.id}.${format}.rows.bed
    """
}

process GATHER_VCF {
    tag "$meta.id"
    label 'process_single'

    input:
    tuple val(meta), path(parts, stageAs: 'parts/*'), path(fai)

    output:
    tuple val(meta), path("${meta.id}.vcf.gz"), path("${meta.id}.vcf.gz.tbi"), emit: vcf

    script:
    """
    gather.py vcf --fai ${fai} -o ${meta.id}.vcf.gz ${parts.join(' ')}
    """

    stub:
    """
    touch ${meta.id}.vcf.gz ${meta.id}.vcf.gz.tbi
    """
}
