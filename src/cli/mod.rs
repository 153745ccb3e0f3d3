//! Command-line interface: argument definitions and one module per subcommand.

pub mod info;
pub mod likelihood;
pub mod progress;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Run selective state-space (Mamba) DNA language models over whole chromosomes.
#[derive(Parser, Debug)]
#[command(name = "ssmgen", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Per-base log-probabilities of the observed bases (bedGraph or CSV).
    Likelihood(likelihood::LikelihoodArgs),
    /// Print a model's configuration, parameter count and state size.
    Info(info::InfoArgs),
}

/// Options shared by every command that runs a model.
#[derive(clap::Args, Debug, Clone)]
pub struct EngineArgs {
    /// Model directory (config.json + model.safetensors, Hugging Face MambaForCausalLM layout).
    #[arg(short, long, value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// Tokens per stripe (default: sized from the model so activations stay near 256 MiB).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub stripe_len: Option<u64>,
    /// Worker threads for the CPU backend (default: all cores).
    #[arg(short = 't', long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub threads: Option<u64>,
    /// Prepend the model's BOS token so each record's first base gets a score.
    #[arg(long)]
    pub bos: bool,
    /// No progress bar and no device line.
    #[arg(short, long)]
    pub quiet: bool,
    /// Where to run: `cpu`, `cuda`, `cuda:N`, or `auto` (CUDA when a usable GPU and driver are
    /// present, else CPU).
    #[arg(long, value_name = "DEVICE", default_value = "auto")]
    pub device: String,
}

/// A device choice resolved against the machine.
pub enum Device {
    /// The rayon CPU backend; with `auto`, why CUDA was not used.
    Cpu(Option<String>),
    /// GPU with this ordinal.
    Cuda(usize),
}

impl EngineArgs {
    /// Loads the model named by `--model`.
    pub fn load_model(&self) -> anyhow::Result<ssmgen::model::Model> {
        let Some(dir) = &self.model else {
            anyhow::bail!(
                "no model given: pass --model DIR (a config.json + model.safetensors folder)"
            );
        };
        Ok(ssmgen::model::Model::load(dir)?)
    }

    /// Resolves `--device` against the machine.
    pub fn device(&self) -> anyhow::Result<Device> {
        use ssmgen::backend::cuda::cuda_available;
        let text = self.device.trim().to_ascii_lowercase();
        let device = match text.as_str() {
            "cpu" => Device::Cpu(None),
            "auto" => match cuda_available() {
                Ok(_) => Device::Cuda(0),
                Err(why) => return Ok(Device::Cpu(Some(why))),
            },
            "cuda" | "gpu" => Device::Cuda(0),
            other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(n)) => Device::Cuda(n),
                _ => anyhow::bail!("--device {}: expected auto, cpu, cuda or cuda:N", self.device),
            },
        };
        if let Device::Cuda(_) = device {
            cuda_available().map_err(|why| anyhow::anyhow!("--device {}: {why}", self.device))?;
        }
        Ok(device)
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
