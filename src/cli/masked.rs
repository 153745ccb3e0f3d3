//! The command-line side of masked (Caduceus) models: window options and the device choice.

use ssmgen::backend::cpu::CpuOps;
use ssmgen::graph::Ops;
use ssmgen::graph::caduceus::CaduceusGraph;
use ssmgen::masked::{DEFAULT_WINDOW, MaskedOptions};
use ssmgen::model::caduceus::CaduceusModel;

use super::{Device, EngineArgs};

/// Options of commands run with a masked model (Caduceus); causal models ignore them.
#[derive(clap::Args, Debug, Clone)]
pub struct MaskedArgs {
    /// Masked models: bases per window (default: the checkpoint's training length, 131,072 if
    /// unknown).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub window_len: Option<u64>,
    /// Masked models: overlap of consecutive windows (default: a quarter of the window).
    #[arg(long, value_name = "N")]
    pub window_overlap: Option<u64>,
    /// Masked models: windows (or masked copies) per device call.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..))]
    pub window_batch: u64,
    /// Masked models, `likelihood`: the pseudo-likelihood, each base scored with itself masked
    /// (one pass per base: for small regions).
    #[arg(long)]
    pub masked: bool,
}

impl MaskedArgs {
    /// The window settings for `model`, scoring the strands asked for.
    pub fn options(
        &self,
        model: &CaduceusModel,
        forward: bool,
        reverse: bool,
    ) -> anyhow::Result<MaskedOptions> {
        let window_len = self
            .window_len
            .map(|n| n as usize)
            .or(model.config.window_len)
            .unwrap_or(DEFAULT_WINDOW);
        let overlap = self.window_overlap.map_or(window_len / 4, |n| n as usize);
        if overlap >= window_len {
            anyhow::bail!(
                "--window-overlap {overlap} must be smaller than the window ({window_len})"
            );
        }
        Ok(MaskedOptions {
            window_len,
            overlap,
            batch: self.window_batch as usize,
            forward,
            reverse,
            pseudo: self.masked,
        })
    }
}

/// Work on a masked model's graph, whatever device runs it.
pub trait GraphTask {
    /// Runs on `graph`.
    fn run<O: Ops>(self, graph: &CaduceusGraph<O>) -> anyhow::Result<()>;
}

/// Builds the Caduceus graph on the device `--device` asks for and runs `task` on it.
pub fn run_masked<T: GraphTask>(
    engine: &EngineArgs,
    model: &CaduceusModel,
    task: T,
) -> anyhow::Result<()> {
    let device = engine.device()?;
    match device {
        Device::Cpu(_) => {
            let graph = CaduceusGraph::build(CpuOps, model)?;
            engine.announce(&graph.ops().describe(), &device);
            task.run(&graph)
        }
        Device::Cuda(n) => {
            let c = &model.config;
            let shape = ssmgen::backend::cuda::MixerShape::mamba1(c.d_state, c.d_conv, c.dt_rank);
            let graph = CaduceusGraph::build(engine.cuda_ops(n, shape)?, model)?;
            engine.announce(&graph.ops().describe(), &device);
            let started = std::time::Instant::now();
            task.run(&graph)?;
            engine.report_profile(graph.ops(), started.elapsed());
            Ok(())
        }
    }
}
