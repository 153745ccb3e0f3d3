//! `ssmgen score-variants`: variant-effect scores from a VCF or a variant table.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use clap::ValueEnum;
use ssmgen::backend::Backend;
use ssmgen::error::escape_controls;
use ssmgen::input::SequenceFile;
use ssmgen::input::shards::check_sorted_disjoint;
use ssmgen::output::Preset;
use ssmgen::provenance::{contig_lines, vcf_header_lines};

use super::formats::{IndexArgs, Known, choose};
use ssmgen::input::RandomReference;
use ssmgen::output::BigWigWriter;
use ssmgen::output::track::IntervalWriter;
use ssmgen::variants::driver::{BlockInfo, Hooks, score_stream};
use ssmgen::variants::engine::EngineOptions;
use ssmgen::variants::output::score_of;
use ssmgen::variants::output::{RowWriter, ScoreKind, VariantFormat, write};
use ssmgen::variants::saturation::AllSnvs;
use ssmgen::variants::stream::{InputRecord, RecordSource, VariantStream};
use ssmgen::variants::{
    ScoreReport, Skip, VariantFile, read_aliases, score_all_report, score_by_chromosome, shard,
};

use super::masked::{GraphTask, MaskedArgs, run_masked};
use super::progress::counter;
use super::shards::{WarmupArgs, index_records, refuse_warmup_for_masked};
use super::{BackendTask, EngineArgs, read_regions};
use ssmgen::graph::Ops;
use ssmgen::graph::caduceus::CaduceusGraph;
use ssmgen::masked::MaskedScorer;
use ssmgen::model::AnyModel;
use ssmgen::variants::VariantResult;

/// Arguments of `ssmgen score-variants`.
#[derive(clap::Args, Debug)]
pub struct ScoreVariantsArgs {
    /// Reference genome FASTA (plain, gzip or bgzip; indexed or not).
    #[arg(long = "ref", value_name = "FASTA")]
    reference: PathBuf,
    /// Variants: VCF (plain, gzip or bgzip), BCF, or a table with columns chrom,pos,ref,alt
    /// (1-based); `-` for stdin (VCF text, bgzip or BCF, recognised from the bytes). Sorted
    /// input (by position within each chromosome, each chromosome's records together) is
    /// streamed in bounded memory.
    #[arg(long, value_name = "FILE", required_unless_present = "all_snvs")]
    vcf: Option<PathBuf>,
    /// Saturation mutagenesis: instead of --vcf, score all three substitutions at every A, C,
    /// G or T base of the --region/--regions (whole-chromosome context, both strands, exactly
    /// as the same SNVs read from a VCF).
    #[arg(long, conflicts_with = "vcf")]
    all_snvs: bool,
    /// With --all-snvs: what a `.bw`/`.bigwig` output holds at each position, the minimum or the
    /// mean of the score (see --score) over its three substitutions.
    #[arg(long, value_enum, requires = "all_snvs")]
    track: Option<TrackArg>,
    /// Output file (`.gz`: BGZF-compressed); stdout when absent or `-`. Repeatable: one scoring
    /// pass written to several files (e.g. `-o s.tsv -o s.vcf.gz`), each in its extension's
    /// format.
    #[arg(short, long, value_name = "FILE")]
    output: Vec<PathBuf>,
    /// Output format for every output (`-f/--format` is an alias). Default: from each output's
    /// extension — .tsv/.txt, .csv, .bed, .vcf, .parquet/.pq; any other extension is an error — else (stdout, a
    /// name without extension) tsv.
    #[arg(
        short = 'O',
        long = "output-type",
        short_alias = 'f',
        alias = "format",
        value_enum
    )]
    output_type: Option<FormatArg>,
    #[command(flatten)]
    index: IndexArgs,
    /// VCF header lines (provenance, contigs), filled in by `run`.
    #[arg(skip)]
    vcf_header: Vec<String>,
    /// Downstream bases after the allele included in delta_ll.
    #[arg(long, default_value_t = 128)]
    window: usize,
    /// Upstream context in bases (default: the whole chromosome upstream of the variant).
    #[arg(long, value_name = "N")]
    context: Option<usize>,
    /// The value reported in the `score` column (default: delta-ll for causal models, llr for
    /// masked ones, which have no delta-ll).
    #[arg(long, value_enum)]
    score: Option<ScoreArg>,
    /// Fail when a variant cannot be scored because of the inputs: a REF that does not match the
    /// reference, a chromosome not in it, a REF past its end (default: report them, count them
    /// in a warning, and go on).
    #[arg(long)]
    strict: bool,
    /// Accept variants that are not sorted by position (or whose chromosomes' records are not
    /// together), holding them all in memory; without it such input is refused, since sorted
    /// input is streamed in memory bounded by a stripe whatever its size.
    #[arg(long)]
    allow_unsorted: bool,
    /// Two-column file `alias fasta_name` mapping variant chromosome names to the FASTA's.
    #[arg(long, value_name = "FILE")]
    chrom_alias: Option<PathBuf>,
    /// Score only the variants whose first REF base lies in this region, `chr:start-end`,
    /// 1-based inclusive (repeatable); needs the reference's `.fai`.
    #[arg(short, long = "region", value_name = "REGION")]
    regions: Vec<String>,
    /// Score only the variants whose first REF base lies in these BED regions (0-based
    /// half-open); needs the reference's `.fai`. Without --warmup each region is scored as a
    /// sequence of its own.
    #[arg(long = "regions", value_name = "BED")]
    regions_bed: Option<PathBuf>,
    #[command(flatten)]
    warmup: WarmupArgs,
    #[command(flatten)]
    masked: MaskedArgs,
    #[command(flatten)]
    engine: EngineArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum FormatArg {
    Tsv,
    Csv,
    Bed,
    Vcf,
    /// Parquet: the TSV's columns, typed (scores float64, null where the TSV is empty).
    Parquet,
    /// With --all-snvs and --track: the per-position track.
    #[value(name = "bigwig")]
    BigWig,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum TrackArg {
    Min,
    Mean,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ScoreArg {
    DeltaLl,
    Llr,
}

const KNOWN: [Known<FormatArg>; 6] = [
    Known {
        extensions: &["tsv", "txt"],
        format: FormatArg::Tsv,
        text: true,
    },
    Known {
        extensions: &["csv"],
        format: FormatArg::Csv,
        text: true,
    },
    Known {
        extensions: &["bed"],
        format: FormatArg::Bed,
        text: true,
    },
    Known {
        extensions: &["vcf"],
        format: FormatArg::Vcf,
        text: true,
    },
    Known {
        extensions: &["parquet", "pq"],
        format: FormatArg::Parquet,
        text: false,
    },
    Known {
        extensions: &["bw", "bigwig"],
        format: FormatArg::BigWig,
        text: false,
    },
];

/// The format of each output (stdout alone when there is none), checked before any work.
fn output_formats(args: &ScoreVariantsArgs) -> anyhow::Result<Vec<(Option<&Path>, FormatArg)>> {
    let outputs: Vec<Option<&Path>> = if args.output.is_empty() {
        vec![None]
    } else {
        args.output.iter().map(|p| Some(p.as_path())).collect()
    };
    let mut formats = Vec::with_capacity(outputs.len());
    for output in outputs {
        let format = choose(output, args.output_type, &KNOWN, FormatArg::Tsv)?;
        if format == FormatArg::BigWig && (args.track.is_none() || output.is_none()) {
            anyhow::bail!(
                "{}: bigWig output is the --all-snvs --track min|mean track, to a named file",
                output.unwrap_or(Path::new("<stdout>")).display()
            );
        }
        if args.index.write_index.is_some() && matches!(format, FormatArg::Csv | FormatArg::Parquet)
        {
            anyhow::bail!(
                "{}: --write-index applies to VCF, BED and TSV output (.vcf.gz, .bed.gz, .tsv.gz), not CSV or Parquet",
                output.unwrap_or(Path::new("<stdout>")).display()
            );
        }
        formats.push((output, format));
    }
    Ok(formats)
}

/// The provenance lines every VCF output gets.
fn vcf_header(args: &ScoreVariantsArgs) -> anyhow::Result<Vec<String>> {
    let model = args.engine.fingerprint()?;
    let argv: Vec<String> = std::env::args().collect();
    Ok(vcf_header_lines(&argv, &model))
}

impl ScoreVariantsArgs {
    /// The variant input's name (`all-snvs` with --all-snvs).
    fn vcf(&self) -> &Path {
        self.vcf.as_deref().unwrap_or(Path::new("all-snvs"))
    }
}

/// Runs the command.
pub fn run(mut args: ScoreVariantsArgs) -> anyhow::Result<()> {
    args.engine.init_threads()?;
    if args.reference == Path::new("-") && args.vcf.as_deref() == Some(Path::new("-")) {
        anyhow::bail!("--ref and --vcf cannot both read stdin (-)");
    }
    let mut inputs = vec![args.reference.as_path()];
    inputs.extend(args.vcf.as_deref());
    inputs.extend(args.chrom_alias.as_deref());
    inputs.extend(args.regions_bed.as_deref());
    let outputs: Vec<&Path> = if args.output.is_empty() {
        vec![Path::new("-")]
    } else {
        args.output.iter().map(PathBuf::as_path).collect()
    };
    ssmgen::output::atomic::check_not_inputs(&outputs, &inputs)?;
    let formats = output_formats(&args)?;
    if formats.iter().any(|(_, f)| *f == FormatArg::Vcf) {
        args.vcf_header = vcf_header(&args)?;
    }
    let model = match args.engine.load_any()? {
        AnyModel::Causal(m) => m,
        AnyModel::Caduceus(m) => {
            refuse_warmup_for_masked(&args.warmup, &m.source)?;
            if !args.regions.is_empty() || args.regions_bed.is_some() {
                anyhow::bail!(
                    "--region and --regions apply to causal models; {} is masked",
                    m.source
                );
            }
            if matches!(args.score, Some(ScoreArg::DeltaLl)) {
                anyhow::bail!(
                    "--score delta-ll needs a causal model; {} is masked",
                    m.source
                );
            }
            let options = args.masked.options(&m, true, true)?;
            let engine = args.engine.clone();
            return run_masked(&engine, &m, MaskedTask { args, options });
        }
    };
    let aliases = match &args.chrom_alias {
        Some(p) => read_aliases(p)?,
        None => HashMap::new(),
    };
    // Regions (shards): checked against the FASTA and the VCF before any work.
    let regions = read_regions(&args.regions, args.regions_bed.as_deref())?;
    if args.all_snvs {
        if regions.is_empty() {
            anyhow::bail!(
                "--all-snvs needs the regions to mutate: --region chr:start-end or --regions file.bed"
            );
        }
        if args.warmup.warmup.is_some() {
            anyhow::bail!(
                "--warmup applies to shards of a variant file; --all-snvs always scores with the whole chromosome as context"
            );
        }
        let records = index_records(&args.reference)?;
        let spans = saturation_spans(&regions, &records, &args.reference)?;
        let bos = args.engine.bos(&model)?;
        let engine = args.engine.clone();
        return engine.run_on(
            &model,
            Task {
                args,
                bos,
                aliases,
                file: None,
                spans: None,
                all_snvs: Some(spans),
            },
        );
    }
    // Sorted input without regions is streamed; the rest is read whole.
    let mut file = if regions.is_empty() && !args.allow_unsorted {
        None
    } else {
        Some(VariantFile::read(args.vcf())?)
    };
    let spans = if regions.is_empty() {
        None
    } else {
        let Some(whole) = file.as_ref() else {
            unreachable!("regions read the file whole");
        };
        let records = index_records(&args.reference)?;
        let spans = if args.warmup.warmup.is_some() {
            check_sorted_disjoint(&regions, &records, &args.reference)?
        } else {
            let lengths: HashMap<&str, u64> =
                records.iter().map(|(n, l)| (n.as_str(), *l)).collect();
            let mut spans = Vec::with_capacity(regions.len());
            for r in &regions {
                let Some(&length) = lengths.get(r.name.as_str()) else {
                    anyhow::bail!(
                        "region '{}': no record named '{}' in {}",
                        r.label,
                        r.name,
                        args.reference.display()
                    );
                };
                let (s, e) = r.resolve(length)?;
                spans.push((r.name.clone(), s, e));
            }
            spans
        };
        if args.warmup.warmup.is_some() {
            shard::check_against_fasta(args.vcf(), whole, &aliases, &records, &args.reference)?;
        }
        file = Some(shard::subset(whole, &aliases, &spans));
        Some(spans)
    };
    let bos = args.engine.bos(&model)?;
    let engine = args.engine.clone();
    engine.run_on(
        &model,
        Task {
            args,
            bos,
            aliases,
            file,
            spans,
            all_snvs: None,
        },
    )
}

/// The regions of --all-snvs as spans in the FASTA's record order, by start, overlapping or
/// touching ones merged (each base is mutated once).
fn saturation_spans(
    regions: &[ssmgen::input::Region],
    records: &[(String, u64)],
    fasta: &Path,
) -> anyhow::Result<Vec<(String, u64, u64)>> {
    let rank: HashMap<&str, (usize, u64)> = records
        .iter()
        .enumerate()
        .map(|(i, (n, l))| (n.as_str(), (i, *l)))
        .collect();
    let mut spans = Vec::with_capacity(regions.len());
    for r in regions {
        let Some(&(i, length)) = rank.get(r.name.as_str()) else {
            anyhow::bail!(
                "region '{}': no record named '{}' in {}",
                r.label,
                r.name,
                fasta.display()
            );
        };
        let (s, e) = r.resolve(length)?;
        if s < e {
            spans.push((i, r.name.clone(), s, e));
        }
    }
    spans.sort_by_key(|&(i, _, s, e)| (i, s, e));
    let mut merged: Vec<(usize, String, u64, u64)> = Vec::with_capacity(spans.len());
    for span in spans {
        match merged.last_mut() {
            Some(last) if last.0 == span.0 && span.2 <= last.3 => last.3 = last.3.max(span.3),
            _ => merged.push(span),
        }
    }
    Ok(merged.into_iter().map(|(_, n, s, e)| (n, s, e)).collect())
}

struct MaskedTask {
    args: ScoreVariantsArgs,
    options: ssmgen::masked::MaskedOptions,
}

impl GraphTask for MaskedTask {
    fn run<O: Ops>(self, graph: &CaduceusGraph<O>) -> anyhow::Result<()> {
        let args = &self.args;
        let aliases = match &args.chrom_alias {
            Some(p) => read_aliases(p)?,
            None => HashMap::new(),
        };
        let file = VariantFile::read(args.vcf())?;
        let mut reference = SequenceFile::open(&args.reference, false)?;
        let path = reference.path().to_path_buf();
        let bar = counter(Some(file.variants.len() as u64), "variants", &args.engine);
        let progress = |n: u64| bar.inc(n);
        let scorer = MaskedScorer::new(graph, self.options, &progress);
        let report = score_by_chromosome(
            &mut reference,
            &file,
            &aliases,
            &|_| {},
            |name, bases, idx| scorer.score_variants(&path, name, bases, &file, idx),
        )?;
        bar.finish_and_clear();
        check_report(args, &file, &report)?;
        report_and_write(args, &file, &report.results, ScoreKind::Llr)
    }
}

struct Task {
    args: ScoreVariantsArgs,
    bos: Option<u32>,
    aliases: HashMap<String, String>,
    /// The whole input (regions, --allow-unsorted); `None`: streamed.
    file: Option<VariantFile>,
    /// --all-snvs: the spans whose every SNV is scored.
    all_snvs: Option<Vec<(String, u64, u64)>>,
    spans: Option<Vec<(String, u64, u64)>>,
}

impl BackendTask for Task {
    fn run<B: Backend>(self, backend: &B, stripe_len: usize) -> anyhow::Result<()> {
        let Task {
            args,
            bos,
            aliases,
            file,
            spans,
            all_snvs,
        } = self;
        let opts = EngineOptions {
            window: args.window,
            context: args.context,
            stripe_len,
            bos,
        };
        if let Some(spans) = all_snvs {
            let reference = RandomReference::open(&args.reference)?;
            let mut source = AllSnvs::new(reference, spans);
            return run_streamed(&args, backend, &aliases, &opts, &mut source, false, &[]);
        }
        let Some(file) = file else {
            let mut input = VariantStream::open(args.vcf())?;
            let header = std::mem::take(&mut input.header);
            let is_vcf = input.is_vcf;
            return run_streamed(&args, backend, &aliases, &opts, &mut input, is_vcf, &header);
        };
        let mut reference = SequenceFile::open(&args.reference, spans.is_some())?;
        let bar = counter(Some(file.variants.len() as u64), "variants", &args.engine);
        let progress = |n: u64| bar.inc(n);
        let report = match (&spans, &mut reference) {
            (Some(spans), SequenceFile::Indexed(indexed)) => ScoreReport {
                // Shards: the VCF's contigs were checked against the FASTA before any work.
                results: shard::score_spans(
                    backend,
                    indexed,
                    &file,
                    &aliases,
                    spans,
                    args.warmup.warmup,
                    &opts,
                    &progress,
                )?,
                ..ScoreReport::default()
            },
            _ => score_all_report(backend, &mut reference, &file, &aliases, &opts, &progress)?,
        };
        bar.finish_and_clear();
        if spans.is_none() {
            check_report(&args, &file, &report)?;
        }
        report_and_write(&args, &file, &report.results, ScoreKind::DeltaLl)
    }
}

/// A streamed run's output: rows, or (--all-snvs --track) a bigWig of one value per position.
enum Writer {
    Rows(RowWriter),
    Parquet(Box<ssmgen::output::parquet::ParquetVariants>),
    Track(BigWigWriter, TrackArg, ScoreKind),
}

impl Writer {
    fn record(&mut self, r: &InputRecord, results: &[VariantResult]) -> ssmgen::Result<()> {
        match self {
            Writer::Rows(w) => w.record(&r.variants, r.line.as_deref(), results),
            Writer::Parquet(p) => {
                for (v, x) in r.variants.iter().zip(results) {
                    p.record(v, x)?;
                }
                Ok(())
            }
            Writer::Track(bw, track, kind) => {
                let scores: Vec<f64> = results.iter().filter_map(|x| score_of(x, *kind)).collect();
                let (Some(v), false) = (r.variants.first(), scores.is_empty()) else {
                    return Ok(());
                };
                let value = match track {
                    TrackArg::Min => scores.iter().copied().fold(f64::INFINITY, f64::min),
                    TrackArg::Mean => scores.iter().sum::<f64>() / scores.len() as f64,
                };
                bw.interval(&v.chrom, v.pos - 1, v.pos, value as f32)
            }
        }
    }

    fn finish(self) -> ssmgen::Result<()> {
        match self {
            Writer::Rows(w) => w.finish(),
            Writer::Parquet(p) => (*p).finish(),
            Writer::Track(bw, _, _) => bw.finish(),
        }
    }
}

/// The output formats' writers and presets.
fn writer_for(
    args: &ScoreVariantsArgs,
    output: Option<&Path>,
    format: FormatArg,
    header: &[String],
    input_header: &[String],
    is_vcf: bool,
    kind: ScoreKind,
) -> anyhow::Result<RowWriter> {
    let mut out = ssmgen::output::Output::create(output)?;
    let (format, preset) = match format {
        FormatArg::Tsv => (VariantFormat::Tsv, Preset::PosTable),
        FormatArg::Csv => (VariantFormat::Csv, Preset::PosTable),
        FormatArg::Bed => (VariantFormat::Bed, Preset::Bed { skip: 0 }),
        FormatArg::Vcf | FormatArg::BigWig | FormatArg::Parquet => {
            (VariantFormat::Vcf, Preset::Vcf)
        }
    };
    if let Some(index) = args.index.kind() {
        out = out.with_index(preset, index)?;
    }
    Ok(RowWriter::new(
        out,
        format,
        header,
        kind,
        input_header,
        is_vcf,
    )?)
}

/// `h:mm:ss` of a duration in seconds.
fn clock(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// Bases per second of the model's pass, measured on a short stripe before the first block.
fn measure_rate<B: Backend>(backend: &B, opts: &EngineOptions) -> anyhow::Result<f64> {
    let tokenizer = ssmgen::tokenizer::Tokenizer::new(backend.config());
    let n = opts.stripe_len.clamp(1, 4096);
    let tokens: Vec<u32> = {
        let mut t = Vec::with_capacity(n);
        tokenizer
            .encode(&b"ACGT".repeat(n.div_ceil(4))[..n], &mut t)
            .map_err(|_| anyhow::anyhow!("the model has no tokens for A, C, G, T"))?;
        t
    };
    let mut stream = ssmgen::runner::ScoreStream::new(backend, &tokenizer, opts.bos)?;
    let mut scores = Vec::new();
    let t0 = std::time::Instant::now();
    stream.push(&tokens, &mut scores)?;
    Ok(n as f64 / t0.elapsed().as_secs_f64().max(1e-6))
}

/// Streams a sorted input: every record read, scored and written in turn.
#[allow(clippy::too_many_arguments)]
fn run_streamed<B: Backend>(
    args: &ScoreVariantsArgs,
    backend: &B,
    aliases: &HashMap<String, String>,
    opts: &EngineOptions,
    input: &mut dyn RecordSource,
    is_vcf: bool,
    input_header: &[String],
) -> anyhow::Result<()> {
    let kind = match args.score {
        Some(ScoreArg::Llr) => ScoreKind::Llr,
        _ => ScoreKind::DeltaLl,
    };
    let mut reference = RandomReference::open(&args.reference)?;
    let reference_records = reference.records();
    let mut header = args.vcf_header.clone();
    if !args.vcf_header.is_empty() && !is_vcf && args.reference != Path::new("-") {
        header.extend(contig_lines(&args.reference)?);
    }
    let mut writers = Vec::new();
    for (output, format) in output_formats(args)? {
        writers.push(match (format, output) {
            (FormatArg::BigWig, Some(path)) => Writer::Track(
                BigWigWriter::create(path, &reference_records)?,
                args.track.unwrap_or(TrackArg::Min),
                kind,
            ),
            (FormatArg::Parquet, _) => {
                Writer::Parquet(Box::new(ssmgen::output::parquet::ParquetVariants::create(
                    ssmgen::output::Output::create(output)?,
                    kind,
                    &args.engine.provenance()?,
                )?))
            }
            _ => Writer::Rows(writer_for(
                args,
                output,
                format,
                &header,
                input_header,
                is_vcf,
                kind,
            )?),
        });
    }
    let quiet = args.engine.quiet;
    let mut rate = if quiet {
        0.0
    } else {
        measure_rate(backend, opts)?
    };
    let mut counts: HashMap<&'static str, usize> = HashMap::new();
    let bar = std::sync::Mutex::new(None::<indicatif::ProgressBar>);
    let started = std::cell::Cell::new(None::<(std::time::Instant, u64)>);
    let mut on_block = |b: &BlockInfo| {
        // The previous block's measured rate replaces the first estimate.
        if let Some((t0, bases)) = started.take()
            && bases > 0
        {
            rate = bases as f64 / t0.elapsed().as_secs_f64().max(1e-6);
        }
        if let Some(old) = bar.lock().unwrap_or_else(|p| p.into_inner()).take() {
            old.finish_and_clear();
        }
        if quiet || b.bases == 0 {
            return;
        }
        let secs = b.bases as f64 / rate.max(1e-9);
        let hint = if args.context.is_none() && secs > 3600.0 {
            "; --context N scores each variant from N upstream bases instead, at a cost that grows with the variants, not the chromosome"
        } else {
            ""
        };
        eprintln!(
            "ssmgen: {}: {} variant(s), {} scored; two passes (reverse strand, then forward) over {} bases, about {} at {} bases/s{hint}",
            escape_controls(&b.chrom),
            b.variants,
            b.scored,
            b.bases,
            clock(secs),
            rate.round() as u64,
        );
        *bar.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(counter(Some(b.bases), "bases", &args.engine));
        started.set(Some((std::time::Instant::now(), b.bases)));
    };
    let progress = |n: u64| {
        if let Some(b) = bar.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            b.inc(n);
        }
    };
    let mut on_record = |r: &InputRecord, results: &[VariantResult]| -> ssmgen::Result<()> {
        for (v, res) in r.variants.iter().zip(results) {
            if let Some(skip) = res.skip {
                if args.strict && skip == Skip::RefMismatch {
                    return Err(ssmgen::Error::format(
                        args.vcf(),
                        format!(
                            "{}:{} REF {} does not match the reference {} (--strict)",
                            v.chrom,
                            v.pos,
                            v.reference,
                            args.reference.display()
                        ),
                    ));
                }
                if args.strict && matches!(skip, Skip::UnknownContig | Skip::PastContigEnd) {
                    return Err(ssmgen::Error::format(
                        args.vcf(),
                        format!(
                            "{}:{} cannot be scored: {} in {} (--strict)",
                            v.chrom,
                            v.pos,
                            skip.as_str(),
                            args.reference.display()
                        ),
                    ));
                }
                *counts.entry(skip.as_str()).or_default() += 1;
            }
        }
        for w in &mut writers {
            w.record(r, results)?;
        }
        Ok(())
    };
    let summary = score_stream(
        backend,
        &mut reference,
        input,
        aliases,
        opts,
        Hooks {
            block: &mut on_block,
            progress: &progress,
            record: &mut on_record,
        },
    )?;
    if let Some(b) = bar.lock().unwrap_or_else(|p| p.into_inner()).take() {
        b.finish_and_clear();
    }
    if summary.variants == 0 {
        eprintln!(
            "ssmgen: warning: {} holds no variants",
            escape_controls(&args.vcf().display().to_string())
        );
    } else if summary.unknown_contig == summary.variants {
        let quote = |names: &mut dyn Iterator<Item = &str>| {
            names
                .map(|n| format!("'{n}'"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        anyhow::bail!(
            "{}: none of the {} variant(s) is on a chromosome of {}: the variants name {}, the reference has {}{} ({} record(s)); map the names with --chrom-alias FILE (two columns: variant_name reference_name)",
            args.vcf().display(),
            summary.variants,
            args.reference.display(),
            quote(&mut summary.input_names.iter().map(String::as_str)),
            quote(&mut reference_records.iter().take(5).map(|(n, _)| n.as_str())),
            if reference_records.len() > 5 {
                ", ..."
            } else {
                ""
            },
            reference_records.len()
        );
    }
    if let Some((from, to)) = summary.renamed.first() {
        eprintln!(
            "ssmgen: note: variant chromosome names matched to the reference by adding or dropping 'chr' ('{}' as '{}'{}); use --chrom-alias to map names explicitly",
            escape_controls(from),
            escape_controls(to),
            match summary.renamed.len() {
                1 => String::new(),
                n => format!(", and {} more", n - 1),
            }
        );
    }
    let mut counts: Vec<_> = counts.into_iter().collect();
    counts.sort();
    for (reason, n) in counts {
        eprintln!(
            "ssmgen: warning: {n} variant(s) not scored: {reason} (--strict makes this an error)"
        );
    }
    for w in writers {
        w.finish()?;
    }
    Ok(())
}

/// Says what a run met that the user should know: an empty variant file (warning), no variant
/// on any chromosome of the reference (an error listing names of both), `chr` renames (a note).
fn check_report(
    args: &ScoreVariantsArgs,
    file: &VariantFile,
    report: &ScoreReport,
) -> anyhow::Result<()> {
    let results = &report.results;
    if file.variants.is_empty() {
        eprintln!(
            "ssmgen: warning: {} holds no variants",
            escape_controls(&args.vcf().display().to_string())
        );
    } else if results.iter().all(|r| r.skip == Some(Skip::UnknownContig)) {
        let mut vcf_names: Vec<&str> = Vec::new();
        for v in &file.variants {
            if !vcf_names.contains(&v.chrom.as_str()) && vcf_names.len() < 5 {
                vcf_names.push(&v.chrom);
            }
        }
        let quote = |names: &[&str]| {
            names
                .iter()
                .map(|n| format!("'{n}'"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let ref_names: Vec<&str> = report.reference_names.iter().map(String::as_str).collect();
        anyhow::bail!(
            "{}: none of the {} variant(s) is on a chromosome of {}: the variants name {}, the reference has {}{} ({} record(s)); map the names with --chrom-alias FILE (two columns: variant_name reference_name)",
            args.vcf().display(),
            file.variants.len(),
            args.reference.display(),
            quote(&vcf_names),
            quote(&ref_names),
            if report.reference_records as usize > ref_names.len() {
                ", ..."
            } else {
                ""
            },
            report.reference_records
        );
    }
    if let Some((from, to)) = report.renamed.first() {
        eprintln!(
            "ssmgen: note: variant chromosome names matched to the reference by adding or dropping 'chr' ('{}' as '{}'{}); use --chrom-alias to map names explicitly",
            escape_controls(from),
            escape_controls(to),
            match report.renamed.len() {
                1 => String::new(),
                n => format!(", and {} more", n - 1),
            }
        );
    }
    Ok(())
}

/// Reports the skipped variants on stderr (with `--strict`, failing on those the inputs caused)
/// and writes the results in the format asked for.
fn report_and_write(
    args: &ScoreVariantsArgs,
    file: &VariantFile,
    results: &[VariantResult],
    default_kind: ScoreKind,
) -> anyhow::Result<()> {
    let kind = match args.score {
        Some(ScoreArg::DeltaLl) => ScoreKind::DeltaLl,
        Some(ScoreArg::Llr) => ScoreKind::Llr,
        None => default_kind,
    };
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for (v, r) in file.variants.iter().zip(results) {
        if let Some(skip) = r.skip {
            if args.strict && skip == Skip::RefMismatch {
                anyhow::bail!(
                    "{}: {}:{} REF {} does not match the reference {} (--strict)",
                    args.vcf().display(),
                    v.chrom,
                    v.pos,
                    v.reference,
                    args.reference.display()
                );
            }
            if args.strict && matches!(skip, Skip::UnknownContig | Skip::PastContigEnd) {
                anyhow::bail!(
                    "{}: {}:{} cannot be scored: {} in {} (--strict)",
                    args.vcf().display(),
                    v.chrom,
                    v.pos,
                    skip.as_str(),
                    args.reference.display()
                );
            }
            *counts.entry(skip.as_str()).or_default() += 1;
        }
    }
    let mut counts: Vec<_> = counts.into_iter().collect();
    counts.sort();
    for (reason, n) in counts {
        eprintln!(
            "ssmgen: warning: {n} variant(s) not scored: {reason} (--strict makes this an error)"
        );
    }
    let mut header = args.vcf_header.clone();
    if !args.vcf_header.is_empty() && !file.is_vcf && args.reference != Path::new("-") {
        // A table has no header of its own: the contigs come from the reference's index.
        header.extend(contig_lines(&args.reference)?);
    }
    for (output, format) in output_formats(args)? {
        let mut out = ssmgen::output::Output::create(output)?;
        let (format, preset) = match format {
            FormatArg::Parquet => {
                let metadata = args.engine.provenance()?;
                ssmgen::output::parquet::write_variants(out, kind, file, results, &metadata)?;
                continue;
            }
            FormatArg::Tsv => (VariantFormat::Tsv, Preset::PosTable),
            FormatArg::Csv => (VariantFormat::Csv, Preset::PosTable),
            FormatArg::Bed => (VariantFormat::Bed, Preset::Bed { skip: 0 }),
            FormatArg::Vcf => (VariantFormat::Vcf, Preset::Vcf),
            FormatArg::BigWig => anyhow::bail!("bigWig output is the --all-snvs --track track"),
        };
        if let Some(index) = args.index.kind() {
            out = out.with_index(preset, index)?;
        }
        write(out, format, &header, kind, file, results)?;
    }
    Ok(())
}
