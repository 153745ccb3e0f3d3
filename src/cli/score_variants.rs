//! `ssmgen score-variants`: variant-effect scores from a VCF or a variant table.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use clap::ValueEnum;
use ssmgen::backend::Backend;
use ssmgen::error::escape_controls;
use ssmgen::input::SequenceFile;
use ssmgen::output::format_extension;
use ssmgen::variants::engine::EngineOptions;
use ssmgen::variants::output::{ScoreKind, VariantFormat, write};
use ssmgen::variants::{Skip, VariantFile, read_aliases, score_all_report};

use super::progress::bases_bar;
use super::{BackendTask, EngineArgs};

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
    /// Output file (`.gz` compresses); stdout when absent or `-`.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Output format (default: from the output's extension, else tsv).
    #[arg(short, long, value_enum)]
    format: Option<FormatArg>,
    /// Downstream bases after the allele included in delta_ll.
    #[arg(long, default_value_t = 128)]
    window: usize,
    /// Upstream context in bases (default: the whole chromosome upstream of the variant).
    #[arg(long, value_name = "N")]
    context: Option<usize>,
    /// The value reported in the `score` column.
    #[arg(long, value_enum, default_value_t = ScoreArg::DeltaLl)]
    score: ScoreArg,
    /// Fail when a variant cannot be scored because of the inputs: a REF that does not match the
    /// reference, a chromosome not in it, a REF past its end (default: report them, count them
    /// in a warning, and go on).
    #[arg(long)]
    strict: bool,
    /// Two-column file `alias fasta_name` mapping variant chromosome names to the FASTA's.
    #[arg(long, value_name = "FILE")]
    chrom_alias: Option<PathBuf>,
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
    ssmgen::output::atomic::check_not_inputs(
        &[args.output.as_deref().unwrap_or(Path::new("-"))],
        &inputs,
    )?;
    let model = args.engine.load_model()?;
    let bos = args.engine.bos(&model)?;
    let engine = args.engine.clone();
    engine.run_on(&model, Task { args, bos })
}

struct Task {
    args: ScoreVariantsArgs,
    bos: Option<u32>,
}

impl BackendTask for Task {
    fn run<B: Backend>(self, backend: &B, stripe_len: usize) -> anyhow::Result<()> {
        let Task { args, bos } = self;
        let format = match args.format {
            Some(FormatArg::Tsv) => VariantFormat::Tsv,
            Some(FormatArg::Csv) => VariantFormat::Csv,
            Some(FormatArg::Bed) => VariantFormat::Bed,
            Some(FormatArg::Vcf) => VariantFormat::Vcf,
            None => args
                .output
                .as_deref()
                .and_then(format_from_name)
                .unwrap_or(VariantFormat::Tsv),
        };
        let kind = match args.score {
            ScoreArg::DeltaLl => ScoreKind::DeltaLl,
            ScoreArg::Llr => ScoreKind::Llr,
        };
        let aliases = match &args.chrom_alias {
            Some(p) => read_aliases(p)?,
            None => HashMap::new(),
        };
        let file = VariantFile::read(&args.vcf)?;
        let mut reference = SequenceFile::open(&args.reference, false)?;
        let opts = EngineOptions {
            window: args.window,
            context: args.context,
            stripe_len,
            bos,
        };
        let bar = bases_bar(Some(file.variants.len() as u64), args.engine.quiet);
        let progress = |n: u64| bar.inc(n);
        let report = score_all_report(backend, &mut reference, &file, &aliases, &opts, &progress)?;
        bar.finish_and_clear();
        let results = report.results;
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

        let mut counts: HashMap<&str, usize> = HashMap::new();
        for (v, r) in file.variants.iter().zip(&results) {
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
        let out = ssmgen::output::Output::create(args.output.as_deref())?;
        write(out, format, kind, &file, &results)?;
        Ok(())
    }
}
