//! `ssmgen score-variants`: variant-effect scores from a VCF or a variant table.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use clap::ValueEnum;
use ssmgen::backend::Backend;
use ssmgen::error::escape_controls;
use ssmgen::input::SequenceFile;
use ssmgen::input::shards::check_sorted_disjoint;
use ssmgen::output::format_extension;
use ssmgen::variants::engine::EngineOptions;
use ssmgen::variants::output::{ScoreKind, VariantFormat, write};
use ssmgen::variants::{
    ScoreReport, Skip, VariantFile, read_aliases, score_all_report, score_by_chromosome, shard,
};

use super::masked::{GraphTask, MaskedArgs, run_masked};
use super::progress::bases_bar;
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
    /// (1-based); `-` for stdin.
    #[arg(long, value_name = "FILE")]
    vcf: PathBuf,
    /// Output file (`.gz` compresses); stdout when absent or `-`. Repeatable: one scoring pass
    /// written to several files (e.g. `-o s.tsv -o s.vcf`), each in its extension's format.
    #[arg(short, long, value_name = "FILE")]
    output: Vec<PathBuf>,
    /// Output format (default: from each output's extension, else tsv).
    #[arg(short, long, value_enum)]
    format: Option<FormatArg>,
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

#[derive(Clone, Copy, Debug, ValueEnum)]
enum FormatArg {
    Tsv,
    Csv,
    Bed,
    Vcf,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ScoreArg {
    DeltaLl,
    Llr,
}

fn format_from_name(path: &Path) -> Option<VariantFormat> {
    match format_extension(path)?.as_str() {
        "tsv" | "txt" => Some(VariantFormat::Tsv),
        "csv" => Some(VariantFormat::Csv),
        "bed" => Some(VariantFormat::Bed),
        "vcf" => Some(VariantFormat::Vcf),
        _ => None,
    }
}

/// Runs the command.
pub fn run(args: ScoreVariantsArgs) -> anyhow::Result<()> {
    args.engine.init_threads()?;
    if args.reference == Path::new("-") && args.vcf == Path::new("-") {
        anyhow::bail!("--ref and --vcf cannot both read stdin (-)");
    }
    let mut inputs = vec![args.reference.as_path(), args.vcf.as_path()];
    inputs.extend(args.chrom_alias.as_deref());
    inputs.extend(args.regions_bed.as_deref());
    let outputs: Vec<&Path> = if args.output.is_empty() {
        vec![Path::new("-")]
    } else {
        args.output.iter().map(PathBuf::as_path).collect()
    };
    ssmgen::output::atomic::check_not_inputs(&outputs, &inputs)?;
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
    let mut file = VariantFile::read(&args.vcf)?;
    // Regions (shards): checked against the FASTA and the VCF before any work.
    let regions = read_regions(&args.regions, args.regions_bed.as_deref())?;
    let spans = if regions.is_empty() {
        None
    } else {
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
            shard::check_against_fasta(&args.vcf, &file, &aliases, &records, &args.reference)?;
        }
        file = shard::subset(&file, &aliases, &spans);
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
        },
    )
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
        let file = VariantFile::read(&args.vcf)?;
        let mut reference = SequenceFile::open(&args.reference, false)?;
        let path = reference.path().to_path_buf();
        let bar = bases_bar(Some(file.variants.len() as u64), args.engine.quiet);
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
    file: VariantFile,
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
        } = self;
        let mut reference = SequenceFile::open(&args.reference, spans.is_some())?;
        let opts = EngineOptions {
            window: args.window,
            context: args.context,
            stripe_len,
            bos,
        };
        let bar = bases_bar(Some(file.variants.len() as u64), args.engine.quiet);
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
            escape_controls(&args.vcf.display().to_string())
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
            args.vcf.display(),
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
    let format_of = |output: Option<&Path>| match args.format {
        Some(FormatArg::Tsv) => VariantFormat::Tsv,
        Some(FormatArg::Csv) => VariantFormat::Csv,
        Some(FormatArg::Bed) => VariantFormat::Bed,
        Some(FormatArg::Vcf) => VariantFormat::Vcf,
        None => output
            .and_then(format_from_name)
            .unwrap_or(VariantFormat::Tsv),
    };
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for (v, r) in file.variants.iter().zip(results) {
        if let Some(skip) = r.skip {
            if args.strict && skip == Skip::RefMismatch {
                anyhow::bail!(
                    "{}: {}:{} REF {} does not match the reference {} (--strict)",
                    args.vcf.display(),
                    v.chrom,
                    v.pos,
                    v.reference,
                    args.reference.display()
                );
            }
            if args.strict && matches!(skip, Skip::UnknownContig | Skip::PastContigEnd) {
                anyhow::bail!(
                    "{}: {}:{} cannot be scored: {} in {} (--strict)",
                    args.vcf.display(),
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
    let outputs: Vec<Option<&Path>> = if args.output.is_empty() {
        vec![None]
    } else {
        args.output.iter().map(|p| Some(p.as_path())).collect()
    };
    for output in outputs {
        let out = ssmgen::output::Output::create(output)?;
        write(out, format_of(output), kind, file, results)?;
    }
    Ok(())
}
