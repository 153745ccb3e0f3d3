//! The CUDA backend: the graph ops ([`CudaOps`]) on our kernels (`kernels/*.cu`, compiled at
//! run time with NVRTC) for the conv, scan, norms, softmax and layout, and cuBLAS for the
//! projections. f32 (or, with `--precision bf16`, bf16 block projections); states always f32.
//!
//! The CUDA libraries are loaded at run time (cudarc `dynamic-loading`), so the binary runs on
//! machines without CUDA; [`cuda_available`] checks before anything touches them.

mod module;
pub mod ops;

use cudarc::driver::{CudaContext, LaunchConfig};

use crate::error::{Error, Result};
use crate::graph::mamba::MambaGraph;
use crate::model::Model;
pub use ops::CudaOps;

fn cuda_err(what: &str) -> impl Fn(cudarc::driver::DriverError) -> Error + '_ {
    move |e| Error::Backend(format!("{what}: {e}"))
}

/// Whether the CUDA driver, NVRTC and cuBLAS libraries can be loaded and a GPU is present.
pub fn cuda_available() -> std::result::Result<usize, String> {
    // SAFETY: these only try to dlopen the libraries.
    let libs = unsafe {
        [
            (
                "the CUDA driver (libcuda)",
                cudarc::driver::sys::is_culib_present(),
            ),
            ("NVRTC (libnvrtc)", cudarc::nvrtc::sys::is_culib_present()),
            (
                "cuBLAS (libcublas)",
                cudarc::cublas::sys::is_culib_present(),
            ),
        ]
    };
    if let Some((name, _)) = libs.iter().find(|(_, ok)| !ok) {
        return Err(format!(
            "{name} is not installed or not on the library path"
        ));
    }
    match CudaContext::device_count() {
        Ok(n) if n > 0 => Ok(n as usize),
        Ok(_) => Err("no CUDA GPU found".into()),
        Err(e) => Err(format!("the CUDA driver reports: {e}")),
    }
}

/// Arithmetic of the projections on the GPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    /// f32 weights and activations.
    F32,
    /// bf16 in_proj and out_proj weights and inputs, f32 accumulation and outputs; the
    /// step-size projections, the LM head, states, `A`, `D`, norms, the conv and the scan
    /// stay f32.
    Bf16,
    /// f32 weights and activations, with in_proj and out_proj computed on the tensor cores
    /// in TF32 (10-bit mantissa inputs, f32 accumulation); everything else as `F32`.
    Tf32,
}

impl Precision {
    /// The name `--precision` takes.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
            Precision::Tf32 => "tf32",
        }
    }
}

/// The sizes of a model's Mamba mixer that the kernels are compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MixerShape {
    /// SSM state lanes per channel (`d_state`), kept in registers.
    pub d_state: usize,
    /// Conv taps (`d_conv`).
    pub d_conv: usize,
    /// Rank of the step-size projection (`dt_rank`), folded into the scan.
    pub dt_rank: usize,
    /// State lanes of the Mamba-2 scan (unused by Mamba-1 and Caduceus models).
    pub m2_state: usize,
}

impl MixerShape {
    /// The shape of a Mamba-1 (or Caduceus) mixer; the Mamba-2 kernels are compiled for an
    /// unused size.
    pub fn mamba1(d_state: usize, d_conv: usize, dt_rank: usize) -> Self {
        MixerShape {
            d_state,
            d_conv,
            dt_rank,
            m2_state: 16,
        }
    }
}

/// Threads per block of the element-wise kernels.
const THREADS: u32 = 256;

/// Time steps per scan chunk. Fixed, so that chunk boundaries sit at the same positions of a
/// sequence whatever the stripe: results then do not depend on where stripes start, as long as
/// they start at multiples of it (see [`crate::backend::Backend::checkpoint_stride`]).
/// 128 halves the carry's sequential walk and the chunk buffers against 64, while a 1 Mb
/// stripe still has thousands of chunks to spread over the GPU.
const SCAN_CHUNK: usize = 128;
// The scan kernels stage x_dbl 32 or 64 rows at a time (STAGE_ROWS in kernels/scan.cu).
const _: () = assert!(SCAN_CHUNK.is_multiple_of(64));

/// Time steps per thread of `conv1d_silu` (`CONV_T` in kernels/conv.cu).
const CONV_STEPS: usize = 8;

fn grid(n: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: ((n as u32).div_ceil(THREADS).max(1), 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// The causal Mamba LM on one NVIDIA GPU: the model graph over [`CudaOps`].
pub type CudaBackend = MambaGraph<CudaOps>;

/// Carried state of one sequence on the GPU: one mixer state per layer.
pub type CudaState = Vec<ops::CudaMixerState>;

impl MambaGraph<CudaOps> {
    /// Uploads `model` to GPU `ordinal` at `precision` and compiles the kernels for it.
    pub fn new(model: &Model, ordinal: usize, precision: Precision) -> Result<Self> {
        let ops = CudaOps::for_config(ordinal, precision, &model.config)?;
        MambaGraph::build(ops, model)
    }

    /// Free and total GPU memory, bytes.
    pub fn memory(&self) -> Result<(usize, usize)> {
        self.ops().memory()
    }
}
