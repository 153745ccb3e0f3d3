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
    /// No progress bar.
    #[arg(short, long)]
    pub quiet: bool,
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
