//! `ssmgen shards`: BED regions that cut a genome into jobs, and `--warmup`, the option that
//! turns the regions of `likelihood`, `embed` and `score-variants` into shards of their records.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use ssmgen::input::shards::{ShardBy, check_sorted_disjoint, parse_size, plan};
use ssmgen::input::{Region, SequenceFile};
use ssmgen::output::Output;

/// The warm-up `--warmup` gives when no value follows it: 100 kb, at which sharded
/// likelihoods of the built-in model differ from the unsharded run by at most the float noise
/// measured in docs/workflows.md.
pub const DEFAULT_WARMUP: &str = "100k";

/// Arguments of `ssmgen shards`.
#[derive(clap::Args, Debug)]
pub struct ShardsArgs {
    /// FASTA (plain or bgzip) with a `.fai` index beside it.
    #[arg(value_name = "GENOME")]
    genome: PathBuf,
    /// Largest shard, in bases (suffixes k, M, G: 10M = 10,000,000). Without it, one shard per
    /// record.
    #[arg(long, value_name = "BASES", value_parser = parse_size)]
    size: Option<u64>,
    /// `chrom`: one shard per record, records longer than --size split into near-equal pieces;
    /// `size`: shards of exactly --size bases, short records packed together.
    #[arg(long, value_enum, default_value_t = ByArg::Chrom)]
    by: ByArg,
    /// Output BED (chrom, start, end, shard name); stdout when absent or `-`.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Also write one BED per shard, DIR/<shard name>.bed (the folder is created).
    #[arg(long, value_name = "DIR")]
    split_dir: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum ByArg {
    Chrom,
    Size,
}

/// `--warmup`, shared by the commands that take `--regions`.
#[derive(clap::Args, Debug, Clone)]
pub struct WarmupArgs {
    /// Treat the regions as shards of their records (as `ssmgen shards` writes them): each first
    /// runs the model over up to N bases upstream (reverse strand: downstream) without
    /// reporting them, so that the outputs of all shards concatenate into one unsharded run's
    /// (exact where the warm-up reaches the record's ends). Regions must then be sorted in the
    /// FASTA index's order and must not overlap. `--warmup` alone means 100k; suffixes k, M, G.
    #[arg(long, value_name = "N", num_args = 0..=1, default_missing_value = DEFAULT_WARMUP,
          value_parser = parse_size)]
    pub warmup: Option<u64>,
}

/// Checks, before any work, that `regions` can be shards of the indexed FASTA `input`: every
/// record present, sorted in index order, no overlaps. Does nothing without `--warmup`.
pub fn check_shard_regions(
    input: &Path,
    regions: &[Region],
    warmup: &WarmupArgs,
) -> anyhow::Result<()> {
    if warmup.warmup.is_none() {
        return Ok(());
    }
    if regions.is_empty() {
        return Ok(());
    }
    let records = index_records(input)?;
    check_sorted_disjoint(regions, &records, input)?;
    Ok(())
}

/// Refuses `--warmup` for a masked (bidirectional) model: its context is on both sides, so
/// the causal warm-up does not make its shards exact.
pub fn refuse_warmup_for_masked(
    warmup: &WarmupArgs,
    model: &impl std::fmt::Display,
) -> anyhow::Result<()> {
    if warmup.warmup.is_some() {
        anyhow::bail!(
            "--warmup applies to causal models; {model} is masked (shard it by whole \
             chromosomes without --warmup)"
        );
    }
    Ok(())
}

/// The `(name, length)` records of an indexed FASTA.
pub fn index_records(input: &Path) -> anyhow::Result<Vec<(String, u64)>> {
    match SequenceFile::open(input, true)? {
        SequenceFile::Indexed(f) => Ok(f.records()),
        SequenceFile::Stream(_) => anyhow::bail!("{}: needs a .fai index", input.display()),
    }
}

/// Runs the command.
pub fn run(args: ShardsArgs) -> anyhow::Result<()> {
    let records = index_records(&args.genome)?;
    let by = match args.by {
        ByArg::Chrom => ShardBy::Chrom,
        ByArg::Size => ShardBy::Size,
    };
    let shards = plan(&records, args.size, by)?;
    let mut all = String::new();
    let mut per_shard = Vec::with_capacity(shards.len());
    for shard in &shards {
        let mut text = String::new();
        for r in &shard.regions {
            text.push_str(&format!(
                "{}\t{}\t{}\t{}\n",
                r.chrom, r.start, r.end, shard.name
            ));
        }
        all.push_str(&text);
        per_shard.push((shard.name.as_str(), text));
    }
    if let Some(dir) = &args.split_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("{}", dir.display()))?;
        for (name, text) in &per_shard {
            let mut out = Output::create(Some(&dir.join(format!("{name}.bed"))))?;
            out.write_all(text.as_bytes())
                .with_context(|| format!("{}", dir.display()))?;
            out.commit()?;
        }
    }
    let mut out = Output::create(args.output.as_deref())?;
    out.write_all(all.as_bytes())
        .context("writing the shard BED")?;
    out.commit()?;
    Ok(())
}
