//! Command-line interface: argument definitions and one module per subcommand.

pub mod embed;
pub mod formats;
pub mod info;
pub mod likelihood;
pub mod masked;
pub mod progress;
pub mod score_variants;
pub mod shards;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Run selective state-space (Mamba, Caduceus) DNA language models over whole chromosomes.
#[derive(Parser, Debug)]
#[command(
    name = "ssmgen",
    version,
    about,
    propagate_version = true,
    after_help = "Outputs (by extension, or -O): likelihood — bedGraph (.bedgraph/.bg[.gz]), CSV \
(.csv[.gz]), bigWig (.bw), Parquet (.parquet); embed — CSV/TSV (.csv/.tsv[.gz]), NPY (.npy), \
safetensors (.safetensors), each matrix with a .rows.bed, Parquet (.parquet); score-variants — \
TSV/CSV, BED, VCF (.vcf[.gz]), Parquet (.parquet). Scores are natural logarithms. Docs: docs/likelihood.md, docs/embed.md, \
docs/scoring.md, docs/models.md, docs/outputs.md."
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Per-base log-probabilities of the observed bases (natural log, ≤ 0; closer to 0 = more
    /// expected by the model). bedGraph, CSV, bigWig or Parquet.
    Likelihood(likelihood::LikelihoodArgs),
    /// Embeddings (hidden states) per record, per window or per base (CSV, TSV, NPY, safetensors, Parquet).
    Embed(embed::EmbedArgs),
    /// Variant-effect scores from a VCF, BCF or table: llr and delta_ll, natural log, ALT
    /// against REF (negative = ALT less likely than the reference). TSV, CSV, BED, VCF or
    /// Parquet.
    ScoreVariants(score_variants::ScoreVariantsArgs),
    /// Print a model's configuration, parameter count and state size.
    Info(info::InfoArgs),
    /// List the built-in models (usable by name with --model).
    Models,
    /// Print a shell completion script (e.g. `ssmgen completions bash > ~/.local/share/bash-completion/completions/ssmgen`).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page of ssmgen or of one command (roff; `ssmgen man likelihood | man -l -`).
    Man {
        /// A command; the top-level page when absent.
        command: Option<String>,
    },
    /// BED regions that cut a genome into shards for pipeline jobs (from its `.fai`).
    Shards(shards::ShardsArgs),
}

/// Writes the completion script for `shell` to stdout.
pub fn completions(shell: clap_complete::Shell) -> anyhow::Result<()> {
    use clap::CommandFactory;
    clap_complete::generate(shell, &mut Cli::command(), "ssmgen", &mut std::io::stdout());
    Ok(())
}

/// Writes the man page of ssmgen, or of its subcommand `name`, to stdout.
pub fn man(name: Option<&str>) -> anyhow::Result<()> {
    use clap::CommandFactory;
    let top = Cli::command();
    let page = match name {
        None => top,
        Some(n) => {
            let Some(sub) = top.find_subcommand(n).cloned() else {
                let known: Vec<String> = top
                    .get_subcommands()
                    .map(|c| c.get_name().to_string())
                    .collect();
                anyhow::bail!("man: no command '{n}'; commands: {}", known.join(", "));
            };
            sub.display_name(format!("ssmgen-{n}"))
        }
    };
    clap_mangen::Man::new(page).render(&mut std::io::stdout())?;
    Ok(())
}

/// The regions of `--region` (1-based strings) and `--regions` (a BED file), in that order.
pub fn read_regions(
    regions: &[String],
    bed: Option<&std::path::Path>,
) -> anyhow::Result<Vec<ssmgen::input::Region>> {
    let mut out = Vec::new();
    for r in regions {
        out.push(ssmgen::input::Region::parse(r)?);
    }
    if let Some(bed) = bed {
        out.extend(ssmgen::input::read_bed(bed)?);
    }
    Ok(out)
}

/// Puts `regions` in the order of `input`'s FASTA index — its records' order, then start —
/// so outputs come out sorted whatever order the regions were given in (bedGraph and bigWig
/// stay valid, `.gz` outputs indexable). With `disjoint`, overlapping regions are refused
/// naming the first pair. Opening the index builds it for a plain FASTA that has none.
pub fn order_regions(
    input: &std::path::Path,
    regions: &mut [ssmgen::input::Region],
    disjoint: bool,
) -> anyhow::Result<()> {
    if regions.is_empty() {
        return Ok(());
    }
    let records = shards::index_records(input)?;
    ssmgen::input::sort_regions(regions, &records);
    if disjoint && let Some((a, b)) = ssmgen::input::first_overlap(regions, &records) {
        anyhow::bail!(
            "regions {} and {} overlap: likelihood writes one value per base, so its regions \
             must be disjoint; merge them first (e.g. `bedtools merge`)",
            ssmgen::error::escape_controls(&a.label),
            ssmgen::error::escape_controls(&b.label)
        );
    }
    Ok(())
}

/// Refuses an output (and its `.rows.bed` and `.json` sidecars) that is the same file as an input: the
/// sequences, their `.fai`/`.gzi`, the BED of regions, or the model's files.
pub fn check_outputs(
    output: Option<&std::path::Path>,
    input: &std::path::Path,
    bed: Option<&std::path::Path>,
    engine: &EngineArgs,
) -> anyhow::Result<()> {
    let Some(output) = output else {
        return Ok(());
    };
    let sidecar = ssmgen::output::embedding::rows_bed_path(output);
    let json = ssmgen::output::embedding::npy_json_path(output);
    let fai = PathBuf::from(format!("{}.fai", input.display()));
    let gzi = PathBuf::from(format!("{}.gzi", input.display()));
    let mut inputs = vec![input, fai.as_path(), gzi.as_path()];
    inputs.extend(bed);
    let model_files = engine
        .model
        .as_ref()
        .map(|d| [d.join("config.json"), d.join("model.safetensors")]);
    if let Some(files) = &model_files {
        inputs.extend(files.iter().map(PathBuf::as_path));
    }
    ssmgen::output::atomic::check_not_inputs(
        &[output, sidecar.as_path(), json.as_path()],
        &inputs,
    )?;
    Ok(())
}

/// Values of `--strand`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum StrandArg {
    /// The sequence as given.
    Fwd,
    /// Its reverse complement, reported at forward coordinates.
    Rev,
    /// Both, averaged.
    Both,
}

impl From<StrandArg> for ssmgen::likelihood::Strand {
    fn from(s: StrandArg) -> Self {
        match s {
            StrandArg::Fwd => Self::Forward,
            StrandArg::Rev => Self::Reverse,
            StrandArg::Both => Self::Both,
        }
    }
}

/// Options shared by every command that runs a model.
#[derive(clap::Args, Debug, Clone)]
pub struct EngineArgs {
    /// Model directory (config.json + model.safetensors): a Hugging Face MambaForCausalLM, or a
    /// Caduceus / PlantCaduceus CaduceusForMaskedLM as published (docs/models.md); or the name
    /// of a built-in model (`ssmgen models`).
    /// Default: the built-in `ssmgen-dna-small`, trained on bacterial genomes (models/README.md).
    #[arg(short, long, value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// Tokens per stripe (default: sized from the model so activations stay near 8 MiB on the CPU).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub stripe_len: Option<u64>,
    /// Worker threads for the CPU backend (default: all cores).
    #[arg(short = 't', long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub threads: Option<u64>,
    /// Prepend the model's BOS token so each record's first base gets a score.
    #[arg(long)]
    pub bos: bool,
    /// No progress bar, progress log lines or device line.
    #[arg(short, long)]
    pub quiet: bool,
    /// When stderr is not a terminal (cluster jobs, `nohup`, `2> log`): seconds between progress
    /// log lines (count, total, percent, rate, ETA), instead of a bar.
    #[arg(long, value_name = "SECS", default_value_t = 30.0, value_parser = positive_seconds)]
    pub log_interval: f64,
    /// Where to run: `cpu`, `cuda`, `cuda:N`, or `auto` (CUDA when a usable GPU and driver are
    /// present, else CPU).
    #[arg(long, value_name = "DEVICE", default_value = "auto")]
    pub device: String,
    /// GPU arithmetic for the projections: `f32`; `bf16` (in_proj and out_proj with bf16
    /// weights and inputs and f32 accumulation, x_proj in TF32; dt_proj, the LM head and all
    /// states stay f32): about 60% faster on a d256 model but measurably less accurate; or
    /// `tf32` (in_proj and out_proj on the tensor cores in TF32, f32 elsewhere). Errors of each
    /// are measured in docs/performance.md. The CPU always computes in f32.
    #[arg(long, value_enum, default_value_t = PrecisionArg::F32)]
    pub precision: PrecisionArg,
    /// GPU: time every op with CUDA events and print the device time per stage, and its share
    /// of the wall time, on stderr at the end (costs a little speed).
    #[arg(long)]
    pub profile: bool,
    /// GPU: before the job, run one stripe of pseudo-random bases through the model, untimed
    /// and discarded, so that `--profile` reports steady-state device time (cuBLAS's and the
    /// memory pool's first-call costs left out), as benchmarks of other stacks time after a
    /// warm-up. Costs one stripe's time; results do not change; ignored on the CPU.
    #[arg(long)]
    pub device_warmup: bool,
}

/// Runs one stripe of `len` pseudo-random bases through `backend` from a fresh state and
/// drops the results (`--device-warmup`).
fn warm_up<B: ssmgen::backend::Backend>(backend: &B, len: usize) -> anyhow::Result<()> {
    // A fixed linear congruential sequence of bases.
    let mut x = 0x2545_f491_u32;
    let bases: Vec<u8> = (0..len.max(1))
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            b"ACGT"[(x >> 30) as usize]
        })
        .collect();
    let mut tokens = Vec::with_capacity(bases.len());
    ssmgen::tokenizer::Tokenizer::new(backend.config())
        .encode(&bases, &mut tokens)
        .map_err(|_| anyhow::anyhow!("warm-up pass: the model has no token for a base"))?;
    let mut state = backend.new_state()?;
    let (mut observed, mut last) = (Vec::new(), Vec::new());
    backend
        .forward_observed(&mut state, &tokens, &mut observed, &mut last)
        .map_err(|e| anyhow::anyhow!("warm-up pass: {e}"))
}

/// A number of seconds above zero (at most a day).
fn positive_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 86_400.0 => Ok(v),
        _ => Err(format!("'{text}' is not a number of seconds in (0, 86400]")),
    }
}

/// Values of `--precision`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum PrecisionArg {
    /// f32 throughout.
    F32,
    /// bf16 projections with f32 accumulation.
    Bf16,
    /// TF32 tensor-core projections with f32 accumulation.
    Tf32,
}

/// Work that runs on whichever backend `--device` selects.
pub trait BackendTask {
    /// Runs on `backend` with stripes of `stripe_len` tokens.
    fn run<B: ssmgen::backend::Backend>(self, backend: &B, stripe_len: usize)
    -> anyhow::Result<()>;
}

pub use ssmgen::backend::Device;

impl EngineArgs {
    /// Loads the model named by `--model` whatever its architecture, or the built-in one.
    /// `--model` may also name a built-in model (`ssmgen models` lists them) when no folder of
    /// that name exists.
    pub fn load_any(&self) -> anyhow::Result<ssmgen::model::AnyModel> {
        use ssmgen::model::{AnyModel, builtin};
        Ok(match &self.model {
            Some(dir) if !dir.exists() && dir.as_os_str() == builtin::NAME => {
                AnyModel::Causal(builtin::load()?)
            }
            Some(dir) => AnyModel::load(dir)?,
            None => AnyModel::Causal(builtin::load()?),
        })
    }

    /// The model's name and content hash, for provenance (the built-in one, by default or by
    /// name).
    pub fn fingerprint(&self) -> anyhow::Result<ssmgen::provenance::ModelFingerprint> {
        use ssmgen::model::builtin;
        Ok(match &self.model {
            Some(dir) if !dir.exists() && dir.as_os_str() == builtin::NAME => {
                builtin::fingerprint()
            }
            Some(dir) => ssmgen::provenance::ModelFingerprint::of_dir(dir)?,
            None => builtin::fingerprint(),
        })
    }

    /// The provenance key/value pairs of binary outputs: ssmgen's version, this command line,
    /// the model and its hashes.
    pub fn provenance(&self) -> anyhow::Result<Vec<(String, String)>> {
        let argv: Vec<String> = std::env::args().collect();
        Ok(ssmgen::provenance::metadata(&argv, &self.fingerprint()?))
    }

    /// Resolves `--device` against the machine.
    pub fn device(&self) -> anyhow::Result<Device> {
        Device::resolve(&self.device)
            .map_err(|why| anyhow::anyhow!("--device {}: {why}", self.device))
    }

    /// Prints the one stderr line that says which device runs (unless `--quiet`).
    pub fn announce(&self, backend: &str, device: &Device) {
        if self.quiet {
            return;
        }
        match device {
            Device::Cpu(Some(why)) => eprintln!("ssmgen: device: {backend}; no GPU: {why}"),
            _ => eprintln!("ssmgen: device: {backend}"),
        }
    }

    /// Builds the backend `--device` asks for, announces it, and runs `task` on it with the
    /// stripe length from `--stripe-len` or sized for the device.
    pub fn run_on<T: BackendTask>(
        &self,
        model: &ssmgen::model::Model,
        task: T,
    ) -> anyhow::Result<()> {
        use ssmgen::backend::Backend;
        let device = self.device()?;
        let fixed = self.stripe_len.map(|n| n as usize);
        match device {
            Device::Cpu(_) => {
                let backend = ssmgen::backend::cpu::CpuBackend::new(model);
                self.announce(&backend.describe(), &device);
                let stripe = fixed.unwrap_or_else(|| {
                    ssmgen::backend::device::cpu_stripe_len(
                        &model.config,
                        rayon::current_num_threads(),
                    )
                });
                task.run(&backend, stripe)
            }
            Device::Cuda(n) => {
                let c = &model.config;
                let ops = ssmgen::backend::cuda::CudaOps::for_config(n, self.precision(), c)?;
                let ops = if self.profile { ops.profiled() } else { ops };
                let backend = ssmgen::graph::mamba::MambaGraph::build(ops, model)?;
                self.announce(&backend.describe(), &device);
                let stripe = match fixed {
                    Some(s) => s,
                    None => ssmgen::backend::device::gpu_stripe_len(c, backend.memory()?.0),
                };
                if self.device_warmup {
                    warm_up(&backend, stripe)?;
                    backend.ops().clear_profile();
                }
                let started = std::time::Instant::now();
                task.run(&backend, stripe)?;
                self.report_profile(backend.ops(), started.elapsed());
                Ok(())
            }
        }
    }

    /// The GPU ops for a model's mixer `shape`, at `--precision`, timed with `--profile`.
    pub fn cuda_ops(
        &self,
        ordinal: usize,
        shape: ssmgen::backend::cuda::MixerShape,
    ) -> anyhow::Result<ssmgen::backend::cuda::CudaOps> {
        let ops = ssmgen::backend::cuda::CudaOps::new(ordinal, self.precision(), shape)?;
        Ok(if self.profile { ops.profiled() } else { ops })
    }

    /// With `--profile`, prints the device time per stage and its share of `wall`.
    pub fn report_profile<O: ssmgen::graph::Ops>(&self, ops: &O, wall: std::time::Duration) {
        let Some(stages) = ops.profile() else {
            return;
        };
        // `op/part` stages time parts of an op already counted under the op.
        let busy: f64 = stages
            .iter()
            .filter(|(stage, _)| !stage.contains('/'))
            .map(|(_, ms)| ms)
            .sum();
        let list: Vec<String> = stages
            .iter()
            .map(|(stage, ms)| format!("{stage} {ms:.1} ms"))
            .collect();
        let wall_ms = wall.as_secs_f64() * 1e3;
        eprintln!(
            "ssmgen: profile: device {busy:.1} ms of {wall_ms:.1} ms wall ({:.0}%): {}",
            100.0 * busy / wall_ms.max(1e-9),
            list.join(", ")
        );
    }

    /// The GPU arithmetic `--precision` asks for.
    pub fn precision(&self) -> ssmgen::backend::cuda::Precision {
        match self.precision {
            PrecisionArg::F32 => ssmgen::backend::cuda::Precision::F32,
            PrecisionArg::Bf16 => ssmgen::backend::cuda::Precision::Bf16,
            PrecisionArg::Tf32 => ssmgen::backend::cuda::Precision::Tf32,
        }
    }

    /// The BOS token to prepend, if `--bos` or the model asks for one.
    pub fn bos(&self, model: &ssmgen::model::Model) -> anyhow::Result<Option<u32>> {
        match (
            self.bos || model.config.prepend_bos,
            model.config.bos_token_id,
        ) {
            (false, _) => Ok(None),
            (true, Some(id)) => Ok(Some(id)),
            (true, None) => anyhow::bail!("--bos: model {} has no bos_token_id", model.source),
        }
    }

    /// Sets up the global thread pool.
    pub fn init_threads(&self) -> anyhow::Result<()> {
        if let Some(n) = self.threads {
            rayon::ThreadPoolBuilder::new()
                .num_threads(n as usize)
                .build_global()
                .map_err(|e| anyhow::anyhow!("cannot start {n} threads: {e}"))?;
        }
        Ok(())
    }
}
