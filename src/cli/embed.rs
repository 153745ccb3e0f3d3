//! `ssmgen embed`: embeddings per record, per window or per base.

use std::path::{Path, PathBuf};

use clap::ValueEnum;
use ssmgen::backend::Backend;
use ssmgen::embed::{EmbedOptions, Embedder, EmbeddingSink, Pooling};
use ssmgen::input::{Region, SequenceFile};
use ssmgen::output::embedding::{DelimitedEmbeddings, MatrixEmbeddings, MatrixFormat};
use ssmgen::output::parquet::ParquetEmbeddings;
use ssmgen::output::{Output, Preset};

use super::formats::{IndexArgs, Known, choose};

use super::masked::{GraphTask, MaskedArgs, run_masked};
use super::progress::bases_bar;
use super::shards::{WarmupArgs, check_shard_regions, refuse_warmup_for_masked};
use super::{BackendTask, EngineArgs, StrandArg, read_regions};
use ssmgen::embed::EmbedSummary;
use ssmgen::graph::Ops;
use ssmgen::graph::caduceus::CaduceusGraph;
use ssmgen::masked::{MaskedEmbedder, MaskedOptions};
use ssmgen::model::AnyModel;

/// Arguments of `ssmgen embed`.
#[derive(clap::Args, Debug)]
pub struct EmbedArgs {
    /// FASTA or FASTQ (plain, gzip or bgzip; `-` for stdin). A `.fai` beside it enables regions.
    #[arg(value_name = "SEQUENCES")]
    input: PathBuf,
    /// Region `chr:start-end`, 1-based inclusive (repeatable). Needs a `.fai` (built for a plain
    /// FASTA that has none); regions are output in the `.fai`'s order whatever their order here.
    #[arg(short, long = "region", value_name = "REGION")]
    regions: Vec<String>,
    /// BED file of regions (0-based half-open), sorted like --region.
    #[arg(long = "regions", value_name = "BED")]
    regions_bed: Option<PathBuf>,
    /// Hidden state after block K (0-based) instead of the final normalised one.
    #[arg(long, value_name = "K")]
    layer: Option<usize>,
    /// Mean over windows of N bases (default: one row per record or region).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    window: Option<u64>,
    /// Bases between window starts (default: the window size).
    #[arg(long, value_name = "M", value_parser = clap::value_parser!(u64).range(1..), requires = "window")]
    stride: Option<u64>,
    /// One row per base (only for records or regions up to --max-per-base bases).
    #[arg(long, conflicts_with = "window")]
    per_base: bool,
    /// Fail when records are skipped (records with no bases), instead of a warning.
    #[arg(long)]
    strict: bool,
    /// Longest record or region accepted with --per-base.
    #[arg(long, value_name = "BASES", default_value_t = 100_000)]
    max_per_base: u64,
    /// Strand: `both` averages the forward pass with the reverse-complement pass mapped back to
    /// forward coordinates.
    #[arg(short, long, value_enum, default_value_t = StrandArg::Fwd)]
    strand: StrandArg,
    /// Output format (`-f/--format` is an alias). Default: from the output's extension — .csv,
    /// .tsv/.txt, .npy, .safetensors/.st, .parquet/.pq; any other extension is an error — else (stdout, a
    /// name without extension) CSV.
    #[arg(
        short = 'O',
        long = "output-type",
        short_alias = 'f',
        alias = "format",
        value_enum
    )]
    output_type: Option<EmbedFormat>,
    /// Output file (`.gz`: BGZF-compressed CSV/TSV); stdout when absent or `-` (CSV/TSV only).
    /// NPY and safetensors also write FILE.rows.bed with each row's coordinates; NPY also
    /// FILE.json with the provenance (safetensors keeps it in its `__metadata__`).
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    #[command(flatten)]
    index: IndexArgs,
    /// RCPS models (Caduceus-PS, PlantCaduceus): keep both halves of the hidden state
    /// (2 x d_model values) instead of averaging them.
    #[arg(long)]
    rc_halves: bool,
    #[command(flatten)]
    masked: MaskedArgs,
    #[command(flatten)]
    warmup: WarmupArgs,
    #[command(flatten)]
    engine: EngineArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum EmbedFormat {
    Csv,
    Tsv,
    Npy,
    Safetensors,
    /// Parquet: chrom, start, end, name and a fixed-size list column `embedding`.
    Parquet,
}

const KNOWN: [Known<EmbedFormat>; 5] = [
    Known {
        extensions: &["csv"],
        format: EmbedFormat::Csv,
        text: true,
    },
    Known {
        extensions: &["tsv", "txt"],
        format: EmbedFormat::Tsv,
        text: true,
    },
    Known {
        extensions: &["npy"],
        format: EmbedFormat::Npy,
        text: false,
    },
    Known {
        extensions: &["safetensors", "st"],
        format: EmbedFormat::Safetensors,
        text: false,
    },
    Known {
        extensions: &["parquet", "pq"],
        format: EmbedFormat::Parquet,
        text: false,
    },
];

/// Runs the command.
pub fn run(args: EmbedArgs) -> anyhow::Result<()> {
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
        EmbedFormat::Csv,
    )?;
    if args.index.write_index.is_some() && format != EmbedFormat::Tsv {
        anyhow::bail!("--write-index applies to TSV output (-o FILE.tsv.gz) only");
    }
    let mut regions = read_regions(&args.regions, args.regions_bed.as_deref())?;
    if args.warmup.warmup.is_none() {
        // Shards (--warmup) keep their own stricter check below: sorted and disjoint as given.
        super::order_regions(&args.input, &mut regions, false)?;
    }
    check_shard_regions(&args.input, &regions, &args.warmup)?;
    if args.warmup.warmup.is_some() && !args.per_base && args.window.is_none() {
        // One row per record cannot be split: refuse partial shards before any work.
        let records = super::shards::index_records(&args.input)?;
        for r in &regions {
            let length = records
                .iter()
                .find(|(n, _)| *n == r.name)
                .map_or(0, |(_, l)| *l);
            if r.resolve(length)? != (0, length) {
                anyhow::bail!(
                    "region '{}': one embedding per record cannot be split into shards; use \
                     --window or --per-base, or whole-record shards",
                    r.label
                );
            }
        }
    }
    let model = match args.engine.load_any()? {
        AnyModel::Causal(m) => m,
        AnyModel::Caduceus(m) => {
            refuse_warmup_for_masked(&args.warmup, &m.source)?;
            let windows = args.masked.options(&m, true, true)?;
            let engine = args.engine.clone();
            let task = MaskedEmbed {
                args,
                regions,
                format,
                windows,
            };
            return run_masked(&engine, &m, task);
        }
    };
    let bos = args.engine.bos(&model)?;
    let engine = args.engine.clone();
    engine.run_on(
        &model,
        Embed {
            args,
            regions,
            format,
            bos,
        },
    )
}

struct MaskedEmbed {
    args: EmbedArgs,
    regions: Vec<Region>,
    format: EmbedFormat,
    windows: MaskedOptions,
}

impl GraphTask for MaskedEmbed {
    fn run<O: Ops>(self, graph: &CaduceusGraph<O>) -> anyhow::Result<()> {
        let args = &self.args;
        let options = embed_options(args, 0, None);
        let bar = bases_bar(None, &args.engine);
        let progress = |n: u64| bar.inc(n);
        let embedder =
            MaskedEmbedder::new(graph, self.windows, options, args.rc_halves, &progress)?;
        let mut sink = open_sink(args, self.format, embedder.dim())?;
        let mut file = SequenceFile::open(&args.input, !self.regions.is_empty())?;
        let summary = embedder.run(&mut file, &self.regions, sink.as_mut())?;
        bar.finish_and_clear();
        let warning = if self.regions.is_empty() {
            file.check_counts(args.strict)?
        } else {
            None
        };
        finish(sink, summary, warning)
    }
}

/// The pooling and strands `args` ask for.
fn embed_options(args: &EmbedArgs, stripe_len: usize, bos: Option<u32>) -> EmbedOptions {
    let pooling = match (args.per_base, args.window) {
        (true, _) => Pooling::PerBase,
        (false, Some(size)) => Pooling::Windows {
            size,
            stride: args.stride.unwrap_or(size),
        },
        (false, None) => Pooling::Record,
    };
    EmbedOptions {
        layer: args.layer,
        pooling,
        strand: args.strand.into(),
        stripe_len,
        bos,
        per_base_cap: args.max_per_base,
        warmup: args.warmup.warmup,
    }
}

/// The writer for `format`, rows of `dim` values.
fn open_sink(
    args: &EmbedArgs,
    format: EmbedFormat,
    dim: usize,
) -> anyhow::Result<Box<dyn EmbeddingSink>> {
    let output = args.output.as_deref().filter(|p| *p != Path::new("-"));
    Ok(match format {
        EmbedFormat::Csv | EmbedFormat::Tsv => {
            let delimiter = if format == EmbedFormat::Csv {
                b','
            } else {
                b'\t'
            };
            let mut out = Output::create(output)?;
            if let Some(kind) = args.index.kind() {
                out = out.with_index(Preset::Bed { skip: 1 }, kind)?;
            }
            Box::new(DelimitedEmbeddings::new(out, delimiter, dim)?)
        }
        EmbedFormat::Parquet => Box::new(ParquetEmbeddings::create(
            Output::create(output)?,
            dim,
            &args.engine.provenance()?,
        )?),
        EmbedFormat::Npy | EmbedFormat::Safetensors => {
            let Some(path) = output else {
                anyhow::bail!("NPY and safetensors output need a file name (-o FILE)");
            };
            let matrix = if format == EmbedFormat::Npy {
                MatrixFormat::Npy
            } else {
                MatrixFormat::Safetensors
            };
            let metadata = args.engine.provenance()?;
            Box::new(MatrixEmbeddings::create(path, matrix, dim, &metadata)?)
        }
    })
}

/// Puts the output into place and reports the records' `warning` and the windows left out.
fn finish(
    sink: Box<dyn EmbeddingSink>,
    summary: EmbedSummary,
    warning: Option<String>,
) -> anyhow::Result<()> {
    sink.finish()?;
    if let Some(w) = warning {
        eprintln!("ssmgen: warning: {}", ssmgen::error::escape_controls(&w));
    }
    if summary.skipped_n_only > 0 {
        eprintln!(
            "ssmgen: {} window(s) skipped: every base is N",
            summary.skipped_n_only
        );
    }
    Ok(())
}

struct Embed {
    args: EmbedArgs,
    regions: Vec<Region>,
    format: EmbedFormat,
    bos: Option<u32>,
}

impl BackendTask for Embed {
    fn run<B: Backend>(self, backend: &B, stripe_len: usize) -> anyhow::Result<()> {
        let Embed {
            args,
            regions,
            format,
            bos,
        } = self;
        if args.rc_halves {
            anyhow::bail!("--rc-halves applies to RCPS (Caduceus) models only");
        }
        let options = embed_options(&args, stripe_len, bos);
        let mut sink = open_sink(&args, format, backend.config().hidden_size)?;
        let embedder = {
            let mut file = SequenceFile::open(&args.input, !regions.is_empty())?;
            let bar = bases_bar(None, &args.engine);
            let progress = |n: u64| bar.inc(n);
            let embedder = Embedder::new(backend, options, &progress)?;
            let summary = embedder.run(&mut file, &regions, sink.as_mut())?;
            bar.finish_and_clear();
            let warning = if regions.is_empty() {
                file.check_counts(args.strict)?
            } else {
                None
            };
            (summary, warning)
        };
        let (summary, warning) = embedder;
        finish(sink, summary, warning)
    }
}
