#!/usr/bin/env nextflow
/*
 * ssmgen: scatter a genome into shards (ssmgen shards), run likelihood, embed and
 * score-variants on every shard (one GPU each), and gather one merged file per output that
 * equals a single unsharded run (exactly where the warm-up reaches the chromosome ends).
 *
 *   nextflow run workflows/nextflow -profile local --genome genome.fa --vcf variants.vcf.gz
 *   nextflow run workflows/nextflow -profile slurm --genome genome.fa --vcf variants.vcf.gz -resume
 */

include { SSMGEN_SHARDS        } from './modules/ssmgen/shards/main'
include { SSMGEN_LIKELIHOOD    } from './modules/ssmgen/likelihood/main'
include { SSMGEN_EMBED         } from './modules/ssmgen/embed/main'
include { SSMGEN_SCOREVARIANTS } from './modules/ssmgen/scorevariants/main'
include { GATHER_TEXT as GATHER_BEDGRAPH      } from './modules/local/gather/main'
include { GATHER_TEXT as GATHER_VARIANTS_TSV  } from './modules/local/gather/main'
include { GATHER_TEXT as GATHER_EMBED_CSV     } from './modules/local/gather/main'
include { GATHER_BIGWIG                       } from './modules/local/gather/main'
include { GATHER_MATRIX                       } from './modules/local/gather/main'
include { GATHER_VCF                          } from './modules/local/gather/main'

// The files of per-shard outputs `[meta, file]`, in shard (genome) order.
def inShardOrder(ch) {
    return ch
        .toSortedList { a, b -> a[0].id <=> b[0].id }
        .map { items -> items.collect { item -> item[1] } }
}

workflow {
    main:
    if (!params.genome) {
        error "give the genome: --genome genome.fa (with genome.fa.fai beside it)"
    }
    def fasta = file(params.genome, checkIfExists: true)
    def fai   = file("${params.genome}.fai", checkIfExists: true)
    def index = params.genome.endsWith('.gz') ? [fai, file("${params.genome}.gzi", checkIfExists: true)] : [fai]
    def model = params.model ? file(params.model, checkIfExists: true) : []
    def ref   = channel.value([[id: 'genome'], fasta, index])

    SSMGEN_SHARDS(channel.of([[id: 'genome'], fasta, fai]))
    def shards = SSMGEN_SHARDS.out.shards
        .transpose()
        .map { meta, bed -> [[id: bed.baseName], bed] }

    if (params.likelihood) {
        SSMGEN_LIKELIHOOD(shards, ref, model)
        GATHER_BEDGRAPH(
            inShardOrder(SSMGEN_LIKELIHOOD.out.bedgraph).map { parts -> [[id: 'likelihood'], parts, fai] },
            'none', 'bed', 'likelihood.bedgraph.gz'
        )
        GATHER_BIGWIG(GATHER_BEDGRAPH.out.merged.map { meta, bg -> [meta, bg, fai] })
    }

    if (params.embed) {
        SSMGEN_EMBED(shards, ref, model)
        if (params.embed_format == 'csv') {
            GATHER_EMBED_CSV(
                inShardOrder(SSMGEN_EMBED.out.embeddings).map { parts -> [[id: 'embed'], parts, fai] },
                'line', 'start', 'embed.csv'
            )
        } else {
            def matrices = inShardOrder(SSMGEN_EMBED.out.embeddings)
            def rows     = inShardOrder(SSMGEN_EMBED.out.rows)
            GATHER_MATRIX(
                matrices.combine(rows).map { items ->
                    def n = items.size().intdiv(2)
                    [[id: 'embed'], items[0..<n], items[n..<items.size()], fai]
                },
                params.embed_format
            )
        }
    }

    if (params.vcf) {
        def vcf = channel.value([[id: 'variants'], file(params.vcf, checkIfExists: true)])
        SSMGEN_SCOREVARIANTS(shards, ref, vcf, model)
        GATHER_VARIANTS_TSV(
            inShardOrder(SSMGEN_SCOREVARIANTS.out.tsv).map { parts -> [[id: 'variants'], parts, fai] },
            'line', 'pos', 'variants.tsv'
        )
        GATHER_VCF(
            inShardOrder(SSMGEN_SCOREVARIANTS.out.vcf).map { parts -> [[id: 'variants'], parts, fai] }
        )
    }

    // Tool versions of every process, through the `versions` topic channel.
    channel.topic('versions')
        .unique()
        .map { process, tool, version -> "\"${process}\":\n    ${tool}: ${version}\n" }
        .collectFile(name: 'versions.yml', storeDir: "${params.outdir}/pipeline_info", sort: true)
}
