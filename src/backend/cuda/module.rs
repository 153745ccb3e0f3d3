//! Compiling `kernels/*.cu` with NVRTC for the GPU at hand, cached on disk.
//!
//! The PTX is cached under `$XDG_CACHE_HOME/ssmgen` (or `~/.cache/ssmgen`) in a file named by
//! a hash of the source (with the model's mixer shape defined in it) and the target
//! architecture, so a new source, model shape or GPU compiles afresh.

use std::path::PathBuf;
use std::sync::Arc;

use cudarc::driver::{CudaContext, CudaFunction, CudaModule};
use cudarc::nvrtc::{CompileOptions, Ptx};

use super::MixerShape;
use crate::error::{Error, Result};

/// The kernel sources, compiled as one program.
const SOURCES: [(&str, &str); 7] = [
    ("math.cu", include_str!("../../../kernels/math.cu")),
    ("norm.cu", include_str!("../../../kernels/norm.cu")),
    ("conv.cu", include_str!("../../../kernels/conv.cu")),
    ("scan.cu", include_str!("../../../kernels/scan.cu")),
    ("graph.cu", include_str!("../../../kernels/graph.cu")),
    ("mamba2.cu", include_str!("../../../kernels/mamba2.cu")),
    ("state.cu", include_str!("../../../kernels/state.cu")),
];

/// Time steps per chunk of the Mamba-2 SSD kernels (`M2_Q` in kernels/mamba2.cu).
pub(super) const SSD_CHUNK: usize = 128;

/// 64-bit FNV-1a: a stable hash for cache keys (std's hasher may change between releases).
fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

fn cache_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .map(|d| d.join("ssmgen"))
}

/// Loaded kernels of one context.
pub struct Kernels {
    _module: Arc<CudaModule>,
    /// `embed_tokens`.
    pub embed: CudaFunction,
    /// `rms_norm`.
    pub rms_norm: CudaFunction,
    /// `log_softmax_rows`.
    pub log_softmax: CudaFunction,
    /// `conv1d_silu`.
    pub conv: CudaFunction,
    /// `conv_state_next`.
    pub conv_state_next: CudaFunction,
    /// `scan_chunk_local`.
    pub scan_local: CudaFunction,
    /// `scan_carry`.
    pub scan_carry: CudaFunction,
    /// `scan_chunk_output`.
    pub scan_output: CudaFunction,
    /// `flip_rows`.
    pub flip_rows: CudaFunction,
    /// `copy_cols`.
    pub copy_cols: CudaFunction,
    /// `combine`.
    pub combine: CudaFunction,
    /// `to_bf16`.
    pub to_bf16: CudaFunction,
    /// `gather_observed`.
    pub gather_observed: CudaFunction,
    /// `gather_states`.
    pub gather_states: CudaFunction,
    /// `checkpoint_conv`.
    pub checkpoint_conv: CudaFunction,
    /// `copy_slots`.
    pub copy_slots: CudaFunction,
    /// `m2_dt` (Mamba-2).
    pub m2_dt: CudaFunction,
    /// `m2_scan` (Mamba-2).
    pub m2_scan: CudaFunction,
    /// `m2_gated_norm` (Mamba-2).
    pub m2_gated_norm: CudaFunction,
    /// `m2_chunk_cumsum` (Mamba-2, SSD).
    pub m2_chunk_cumsum: CudaFunction,
    /// `m2_chunk_state` (Mamba-2, SSD).
    pub m2_chunk_state: CudaFunction,
    /// `m2_state_pass` (Mamba-2, SSD).
    pub m2_state_pass: CudaFunction,
    /// `m2_chunk_cb` (Mamba-2, SSD).
    pub m2_chunk_cb: CudaFunction,
    /// `m2_chunk_scan` (Mamba-2, SSD; 4 warps a block).
    pub m2_chunk_scan: CudaFunction,
    /// `m2_chunk_scan8` (Mamba-2, SSD; 8 warps a block).
    pub m2_chunk_scan8: CudaFunction,
}

impl Kernels {
    /// Compiles (or loads from the cache) and loads the kernels for `ctx`'s device and a
    /// model's mixer shape (its SSM state lanes, conv taps and step-size rank, and the Mamba-2
    /// state lanes, are compiled in).
    pub fn load(ctx: &Arc<CudaContext>, shape: MixerShape) -> Result<Self> {
        let MixerShape {
            d_state,
            d_conv,
            dt_rank,
            m2_state,
        } = shape;
        let (major, minor) = ctx.compute_capability().map_err(|e| {
            Error::Backend(format!("cannot read the GPU's compute capability: {e}"))
        })?;
        let arch = format!("sm_{major}{minor}");
        let source: String = std::iter::once(format!(
            "#define SSM_N {d_state}\n#define CONV_K {d_conv}\n#define DT_RANK {dt_rank}\n\
             #define M2_N {m2_state}\n#define M2_Q {SSD_CHUNK}\n"
        ))
        .chain(
            SOURCES
                .iter()
                .map(|(name, text)| format!("// ---- {name}\n{text}\n")),
        )
        .collect();
        let key = format!("{:016x}-{arch}.ptx", fnv1a(source.as_bytes()));
        let cached = cache_dir().map(|d| d.join(&key));
        let ptx = match cached
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
        {
            Some(text) => Ptx::from_src(text),
            None => {
                let options = CompileOptions {
                    arch: Some(Box::leak(arch.clone().into_boxed_str())),
                    fmad: Some(false),
                    ..Default::default()
                };
                let ptx = cudarc::nvrtc::compile_ptx_with_opts(&source, options).map_err(|e| {
                    let detail = match &e {
                        cudarc::nvrtc::CompileError::CompileError { log, .. } => log
                            .to_string_lossy()
                            .split_whitespace()
                            .collect::<Vec<_>>()
                            .join(" "),
                        other => format!("{other:?}"),
                    };
                    Error::Backend(format!(
                        "NVRTC could not compile the kernels for {arch}: {detail}"
                    ))
                })?;
                if let Some(path) = &cached {
                    // A cache that cannot be written only costs a recompile next time.
                    let _ = std::fs::create_dir_all(path.parent().unwrap_or(path));
                    let _ = std::fs::write(path, ptx.to_src());
                }
                ptx
            }
        };
        let module = ctx
            .load_module(ptx)
            .map_err(|e| Error::Backend(format!("cannot load the compiled kernels: {e}")))?;
        let f = |name: &str| {
            module
                .load_function(name)
                .map_err(|e| Error::Backend(format!("kernel {name} missing: {e}")))
        };
        Ok(Kernels {
            embed: f("embed_tokens")?,
            rms_norm: f("rms_norm")?,
            log_softmax: f("log_softmax_rows")?,
            conv: f("conv1d_silu")?,
            conv_state_next: f("conv_state_next")?,
            scan_local: f("scan_chunk_local")?,
            scan_carry: f("scan_carry")?,
            scan_output: f("scan_chunk_output")?,
            flip_rows: f("flip_rows")?,
            copy_cols: f("copy_cols")?,
            combine: f("combine")?,
            to_bf16: f("to_bf16")?,
            gather_observed: f("gather_observed")?,
            gather_states: f("gather_states")?,
            checkpoint_conv: f("checkpoint_conv")?,
            copy_slots: f("copy_slots")?,
            m2_dt: f("m2_dt")?,
            m2_scan: f("m2_scan")?,
            m2_gated_norm: f("m2_gated_norm")?,
            m2_chunk_cumsum: f("m2_chunk_cumsum")?,
            m2_chunk_state: f("m2_chunk_state")?,
            m2_state_pass: f("m2_state_pass")?,
            m2_chunk_cb: f("m2_chunk_cb")?,
            m2_chunk_scan: f("m2_chunk_scan")?,
            m2_chunk_scan8: f("m2_chunk_scan8")?,
            _module: module,
        })
    }
}
