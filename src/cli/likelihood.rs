//! `ssmgen likelihood`: per-base log-probabilities.

use std::path::{Path, PathBuf};

use clap::ValueEnum;
use ssmgen::backend::Backend;
use ssmgen::input::{Region, SequenceFile};
use ssmgen::likelihood::{LikelihoodOptions, Scorer, Strand};
use ssmgen::output::parquet::ParquetIntervals;
use ssmgen::output::{
    BedGraphSink, BigWigWriter, CsvSink, IntervalSink, Output, Preset, TrackSink,
};

use super::formats::{IndexArgs, Known, choose};

use super::masked::{GraphTask, MaskedArgs, run_masked};
use super::progress::bases_bar;
use super::shards::{WarmupArgs, check_shard_regions, refuse_warmup_for_masked};
use super::{BackendTask, EngineArgs, StrandArg, read_regions};
use ssmgen::graph::Ops;
use ssmgen::graph::caduceus::CaduceusGraph;
use ssmgen::masked::MaskedScorer;
use ssmgen::model::AnyModel;

/// Arguments of `ssmgen likelihood`.
#[derive(clap::Args, Debug)]
pub struct LikelihoodArgs {
    /// FASTA or FASTQ (plain, gzip or bgzip; `-` for stdin). A `.fai` beside it enables regions.
    #[arg(value_name = "SEQUENCES")]
    input: PathBuf,
    /// Region `chr:start-end`, 1-based inclusive (repeatable). Needs a `.fai` (built for a plain
    /// FASTA that has none); regions are output in the `.fai`'s order whatever their order here,
    /// and must not overlap.
    #[arg(short, long = "region", value_name = "REGION")]
    regions: Vec<String>,
    /// BED file of regions (0-based half-open), sorted like --region.
    #[arg(long = "regions", value_name = "BED")]
    regions_bed: Option<PathBuf>,
    /// Strand to score: the reverse strand runs on the reverse complement and is reported at
    /// forward coordinates; `both` reports their mean.
    #[arg(short, long, value_enum, default_value_t = StrandArg::Fwd)]
    strand: StrandArg,
    /// Output format (`-f/--format` is an alias). Default: from the output's extension —
    /// .bedgraph/.bg, .csv, .bw/.bigwig, .parquet/.pq; any other extension is an error — else (stdout, a name
    /// without extension) bedGraph.
    #[arg(
        short = 'O',
        long = "output-type",
        short_alias = 'f',
        alias = "format",
        value_enum
    )]
    output_type: Option<TrackFormat>,
    /// Output file (`.gz`: BGZF-compressed text); stdout when absent or `-`.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    #[command(flatten)]
    index: IndexArgs,
    /// bedGraph, bigWig and Parquet: mean over bins of N bases instead of one value per base.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    bin: Option<u64>,
    /// Fail when records are skipped (records with no bases), instead of a warning.
    #[arg(long)]
    strict: bool,
    #[command(flatten)]
    masked: MaskedArgs,
    #[command(flatten)]
    warmup: WarmupArgs,
    #[command(flatten)]
    engine: EngineArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum TrackFormat {
    Bedgraph,
    Csv,
    /// bigWig (needs an output file and the FASTA's `.fai` for chromosome sizes).
    Bigwig,
    /// Parquet: the bedGraph's rows as columns chrom, start, end, logp.
    Parquet,
}

const KNOWN: [Known<TrackFormat>; 4] = [
    Known {
        extensions: &["bedgraph", "bg"],
        format: TrackFormat::Bedgraph,
        text: true,
    },
    Known {
        extensions: &["csv"],
        format: TrackFormat::Csv,
        text: true,
    },
    Known {
        extensions: &["bw", "bigwig"],
        format: TrackFormat::Bigwig,
        text: false,
    },
    Known {
        extensions: &["parquet", "pq"],
        format: TrackFormat::Parquet,
        text: false,
    },
];

/// Runs the command.
pub fn run(args: LikelihoodArgs) -> anyhow::Result<()> {
    args.engine.init_threads()?;
    super::check_outputs(
        args.output.as_deref(),
        &args.input,
        args.regions_bed.as_deref(),
        &args.engine,
    )?;
    let format = choose(
        args.output.as_deref(),
        args.output_type,
        &KNOWN,
        TrackFormat::Bedgraph,
    )?;
    if args.index.write_index.is_some() && format != TrackFormat::Bedgraph {
        anyhow::bail!("--write-index applies to bedGraph output (-o FILE.bedgraph.gz) only");
    }
    if args.bin.is_some() && format == TrackFormat::Csv {
        anyhow::bail!("--bin applies to bedGraph, bigWig and Parquet output only");
    }
    let mut regions = read_regions(&args.regions, args.regions_bed.as_deref())?;
    if args.warmup.warmup.is_none() {
        // Shards (--warmup) keep their own stricter check below: sorted and disjoint as given.
        super::order_regions(&args.input, &mut regions, true)?;
    }
    check_shard_regions(&args.input, &regions, &args.warmup)?;

    let model = match args.engine.load_any()? {
        AnyModel::Causal(m) => m,
        AnyModel::Caduceus(m) => {
            refuse_warmup_for_masked(&args.warmup, &m.source)?;
            let strand = Strand::from(args.strand);
            let options =
                args.masked
                    .options(&m, strand != Strand::Reverse, strand != Strand::Forward)?;
            let engine = args.engine.clone();
            let task = MaskedLikelihood {
                args,
                regions,
                format,
                options,
            };
            return run_masked(&engine, &m, task);
        }
    };
    if args.masked.masked {
        anyhow::bail!(
            "--masked needs a masked model (Caduceus); {} is causal",
            model.source
        );
    }
    let bos = args.engine.bos(&model)?;
    let engine = args.engine.clone();
    engine.run_on(
        &model,
        Likelihood {
            args,
            regions,
            format,
            bos,
        },
    )
}

struct Likelihood {
    args: LikelihoodArgs,
    regions: Vec<Region>,
    format: TrackFormat,
    bos: Option<u32>,
}

impl BackendTask for Likelihood {
    fn run<B: Backend>(self, backend: &B, stripe_len: usize) -> anyhow::Result<()> {
        let Likelihood {
            args,
            regions,
            format,
            bos,
        } = self;
        score(&args, regions, format, bos, stripe_len, backend)
    }
}

struct MaskedLikelihood {
    args: LikelihoodArgs,
    regions: Vec<Region>,
    format: TrackFormat,
    options: ssmgen::masked::MaskedOptions,
}

impl GraphTask for MaskedLikelihood {
    fn run<O: Ops>(self, graph: &CaduceusGraph<O>) -> anyhow::Result<()> {
        let args = &self.args;
        let mut file = SequenceFile::open(&args.input, !self.regions.is_empty())?;
        let passes = u64::from(self.options.forward) + u64::from(self.options.reverse);
        let bar = bases_bar(total_bases(&file, &self.regions, passes), &args.engine);
        let progress = |n: u64| bar.inc(n * passes);
        let mut sink = open_sink(args, self.format, &file)?;
        let scorer = MaskedScorer::new(graph, self.options, &progress);
        scorer.likelihood(&mut file, &self.regions, sink.as_mut())?;
        finish(sink, &file, &self.regions, args.strict)?;
        bar.finish_and_clear();
        Ok(())
    }
}

/// Checks the records' counts (with `--strict`, an error), puts the output into place, and
/// prints the warning, if any.
fn finish(
    sink: Box<dyn TrackSink>,
    file: &SequenceFile,
    regions: &[Region],
    strict: bool,
) -> anyhow::Result<()> {
    let warning = if regions.is_empty() {
        file.check_counts(strict)?
    } else {
        None
    };
    sink.finish()?;
    if let Some(w) = warning {
        eprintln!("ssmgen: warning: {}", ssmgen::error::escape_controls(&w));
    }
    Ok(())
}

/// Bases to score (times `passes`) when the file's index tells, for the progress bar.
fn total_bases(file: &SequenceFile, regions: &[Region], passes: u64) -> Option<u64> {
    match file {
        SequenceFile::Indexed(f) if regions.is_empty() => {
            Some(f.records().iter().map(|(_, l)| l).sum::<u64>() * passes)
        }
        _ => None,
    }
}

/// The track writer for `format`.
fn open_sink(
    args: &LikelihoodArgs,
    format: TrackFormat,
    file: &SequenceFile,
) -> anyhow::Result<Box<dyn TrackSink>> {
    Ok(match format {
        TrackFormat::Bedgraph => {
            let mut out = Output::create(args.output.as_deref())?;
            if let Some(kind) = args.index.kind() {
                out = out.with_index(Preset::Bed { skip: 0 }, kind)?;
            }
            Box::new(BedGraphSink::new(out, args.bin))
        }
        TrackFormat::Csv => Box::new(CsvSink::new(Output::create(args.output.as_deref())?)?),
        TrackFormat::Parquet => {
            let out = Output::create(args.output.as_deref())?;
            let writer = ParquetIntervals::create(out, &args.engine.provenance()?)?;
            Box::new(IntervalSink::with_writer(writer, args.bin))
        }
        TrackFormat::Bigwig => {
            let Some(path) = args.output.as_deref().filter(|p| *p != Path::new("-")) else {
                anyhow::bail!("bigWig output needs a file name (-o track.bw), not stdout");
            };
            let SequenceFile::Indexed(indexed) = file else {
                anyhow::bail!(
                    "bigWig output needs chromosome sizes from a FASTA index: make {}.fai with \
                     `samtools faidx`",
                    args.input.display()
                );
            };
            let writer = BigWigWriter::create(path, &indexed.records())?;
            Box::new(IntervalSink::with_writer(writer, args.bin))
        }
    })
}

fn score<B: Backend>(
    args: &LikelihoodArgs,
    regions: Vec<Region>,
    format: TrackFormat,
    bos: Option<u32>,
    stripe_len: usize,
    backend: &B,
) -> anyhow::Result<()> {
    let mut file = SequenceFile::open(&args.input, !regions.is_empty())?;
    let strand = Strand::from(args.strand);
    let passes = if strand == Strand::Both { 2 } else { 1 };
    let bar = bases_bar(total_bases(&file, &regions, passes), &args.engine);
    let progress = |n: u64| bar.inc(n);
    let mut sink = open_sink(args, format, &file)?;
    let options = LikelihoodOptions {
        strand,
        stripe_len,
        bos,
        warmup: args.warmup.warmup,
    };
    let scorer = Scorer::new(backend, options, &progress);
    scorer.run(&mut file, &regions, sink.as_mut())?;
    finish(sink, &file, &regions, args.strict)?;
    bar.finish_and_clear();
    Ok(())
}
