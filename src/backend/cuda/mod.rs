//! The CUDA backend: our kernels (`kernels/*.cu`, compiled at run time with NVRTC) for the
//! conv, scan, norms and softmax; cuBLAS for the projections. f32 weights and activations;
//! states always f32.
//!
//! The CUDA libraries are loaded at run time (cudarc `dynamic-loading`), so the binary runs on
//! machines without CUDA; [`cuda_available`] checks before anything touches them.

mod module;
pub mod ops;

use std::sync::Mutex;

use cudarc::driver::{CudaContext, CudaSlice, DevicePtrMut, LaunchConfig, PushKernelArg};

use super::{Backend, batch_len, check_checkpoints, check_layer, check_tokens};
use crate::error::{Error, Result};
use crate::graph::LinearRole;
use crate::model::{MambaConfig, Model};
pub use ops::CudaOps;
use ops::Weight;

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
}

struct LayerBuffers {
    norm: CudaSlice<f32>,
    in_proj: Weight,
    in_proj_bias: Option<CudaSlice<f32>>,
    conv_weight: CudaSlice<f32>,
    conv_bias: CudaSlice<f32>,
    x_proj: CudaSlice<f32>,
    dt_proj: CudaSlice<f32>,
    dt_bias: CudaSlice<f32>,
    a: CudaSlice<f32>,
    d: CudaSlice<f32>,
    out_proj: Weight,
    out_proj_bias: Option<CudaSlice<f32>>,
}

/// Per-stripe activation buffers, grown to the longest stripe seen.
struct Scratch {
    capacity: usize,
    chunks: usize,
    batch: usize,
    tokens: CudaSlice<u32>,
    hidden: CudaSlice<f32>,
    normed: CudaSlice<f32>,
    xz: CudaSlice<f32>,
    u: CudaSlice<f32>,
    x_dbl: CudaSlice<f32>,
    delta: CudaSlice<f32>,
    y: CudaSlice<f32>,
    logits: CudaSlice<f32>,
    h_end: CudaSlice<f32>,
    decay: CudaSlice<f32>,
    h_start: CudaSlice<f32>,
    conv_next: CudaSlice<f32>,
    /// A bf16 GEMM input, written by `rms_norm` or the scan (bf16 precision only).
    act16: CudaSlice<u16>,
}

/// Carried state on the GPU: per layer, the conv and SSM state of one sequence (or of a batch,
/// stacked sequence by sequence).
pub struct CudaState {
    conv: Vec<CudaSlice<f32>>,
    ssm: Vec<CudaSlice<f32>>,
}

impl Clone for CudaState {
    fn clone(&self) -> Self {
        let copy = |v: &Vec<CudaSlice<f32>>| {
            v.iter()
                .map(|s| s.try_clone().expect("GPU out of memory copying a state"))
                .collect()
        };
        CudaState {
            conv: copy(&self.conv),
            ssm: copy(&self.ssm),
        }
    }
}

/// States to fill during a single-sequence pass: `states[j]` gets the state before token
/// `at[j]` (a multiple of [`SCAN_CHUNK`]).
struct Snapshots<'a> {
    at: &'a [usize],
    states: &'a mut [CudaState],
}

/// Runs a model on one NVIDIA GPU.
pub struct CudaBackend {
    config: MambaConfig,
    gpu: CudaOps,
    embeddings: CudaSlice<f32>,
    layers: Vec<LayerBuffers>,
    norm_f: CudaSlice<f32>,
    lm_head: CudaSlice<f32>,
    scratch: Mutex<Option<Scratch>>,
}

// SAFETY: every use of the stream, cuBLAS handle and buffers goes through `&self` methods that
// hold the scratch mutex for the whole forward pass, so calls never interleave on the stream.
unsafe impl Sync for CudaBackend {}
unsafe impl Send for CudaBackend {}

/// Threads per block of the element-wise kernels.
const THREADS: u32 = 256;

/// Time steps per scan chunk. Fixed, so that chunk boundaries sit at the same positions of a
/// sequence whatever the stripe: results then do not depend on where stripes start, as long as
/// they start at multiples of it (see [`Backend::checkpoint_stride`]).
const SCAN_CHUNK: usize = 64;
// The scan kernels stage a chunk's B and C in shared memory sized by SCAN_CHUNK_MAX (64).
const _: () = assert!(SCAN_CHUNK <= 64);

/// Time steps per thread of `conv1d_silu` (`CONV_T` in kernels/conv.cu).
const CONV_STEPS: usize = 8;

fn grid(n: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: ((n as u32).div_ceil(THREADS).max(1), 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

impl CudaBackend {
    /// Uploads `model` to GPU `ordinal` and compiles the kernels for it.
    pub fn new(model: &Model, ordinal: usize, precision: Precision) -> Result<Self> {
        let c = &model.config;
        let gpu = CudaOps::new(ordinal, precision, c.state_size, c.conv_kernel)?;
        let up = |v: &[f32]| gpu.upload(v);
        let weight = |v: &[f32]| gpu.upload_weight(v, LinearRole::Block);
        let mut layers = Vec::with_capacity(model.weights.layers.len());
        for w in &model.weights.layers {
            let a: Vec<f32> = w.a_log.iter().map(|v| -v.exp()).collect();
            let zeros = vec![0.0; c.intermediate_size];
            layers.push(LayerBuffers {
                norm: up(&w.norm)?,
                in_proj: weight(&w.in_proj)?,
                in_proj_bias: w.in_proj_bias.as_deref().map(up).transpose()?,
                conv_weight: up(&w.conv_weight)?,
                conv_bias: up(w.conv_bias.as_deref().unwrap_or(&zeros))?,
                // The step size goes through softplus and exp: its two small projections
                // stay f32 at either precision.
                x_proj: up(&w.x_proj)?,
                dt_proj: up(&w.dt_proj)?,
                dt_bias: up(&w.dt_bias)?,
                a: up(&a)?,
                d: up(&w.d)?,
                out_proj: weight(&w.out_proj)?,
                out_proj_bias: w.out_proj_bias.as_deref().map(up).transpose()?,
            });
        }
        Ok(CudaBackend {
            config: c.clone(),
            embeddings: up(&model.weights.embeddings)?,
            norm_f: up(&model.weights.norm_f)?,
            // The LM head sets the logits directly and is tiny (vocab x d_model, 12 x 128 for
            // the default DNA model): it stays f32 at either precision.
            lm_head: up(&model.weights.lm_head)?,
            layers,
            gpu,
            scratch: Mutex::new(None),
        })
    }

    /// Free and total GPU memory, bytes.
    pub fn memory(&self) -> Result<(usize, usize)> {
        self.gpu
            .stream
            .context()
            .mem_get_info()
            .map_err(cuda_err("reading GPU memory"))
    }

    fn scratch_for<'a>(
        &self,
        slot: &'a mut Option<Scratch>,
        len: usize,
        batch: usize,
    ) -> Result<&'a mut Scratch> {
        let seq_len = len / batch.max(1);
        let chunks = batch * seq_len.div_ceil(SCAN_CHUNK);
        let fits = slot
            .as_ref()
            .is_some_and(|s| s.capacity >= len && s.chunks >= chunks && s.batch >= batch);
        if !fits {
            *slot = None; // free the old buffers first
            let c = &self.config;
            let (d, e, v) = (c.hidden_size, c.intermediate_size, c.vocab_size);
            let en = e * c.state_size;
            let z = |n: usize| {
                self.gpu
                    .stream
                    .alloc_zeros::<f32>(n.max(1))
                    .map_err(cuda_err("allocating GPU buffers"))
            };
            *slot = Some(Scratch {
                capacity: len,
                chunks,
                batch,
                tokens: self
                    .gpu
                    .stream
                    .alloc_zeros::<u32>(len)
                    .map_err(cuda_err("allocating GPU buffers"))?,
                hidden: z(len * d)?,
                normed: z(len * d)?,
                xz: z(len * 2 * e)?,
                u: z(len * e)?,
                x_dbl: z(len * c.x_proj_width())?,
                delta: z(len * e)?,
                y: z(len * e)?,
                logits: z(len * v)?,
                h_end: z(chunks * en)?,
                decay: z(chunks * en)?,
                h_start: z(chunks * en)?,
                conv_next: z(batch * (c.conv_kernel - 1) * e)?,
                act16: self
                    .gpu
                    .stream
                    .alloc_zeros::<u16>(if self.gpu.precision == Precision::Bf16 {
                        len * d.max(e)
                    } else {
                        1
                    })
                    .map_err(cuda_err("allocating GPU buffers"))?,
            });
        }
        Ok(slot.as_mut().expect("scratch allocated"))
    }

    /// Runs the blocks (through `stop_after`, else all) on `tokens`; leaves the residual
    /// stream in `scratch.hidden`.
    fn run_blocks(
        &self,
        state: &mut CudaState,
        tokens: &[u32],
        batch: usize,
        stop_after: Option<usize>,
        mut snapshots: Option<Snapshots<'_>>,
        s: &mut Scratch,
    ) -> Result<()> {
        let c = &self.config;
        let k_ = &self.gpu.kernels;
        let rows = tokens.len();
        let len = rows / batch;
        let (d, e, n, r, k) = (
            c.hidden_size,
            c.intermediate_size,
            c.state_size,
            c.time_step_rank,
            c.conv_kernel,
        );
        let xw = c.x_proj_width();
        let (len_i, d_i, e_i, k_i) = (len as i32, d as i32, e as i32, k as i32);
        let (rows_i, batch_i) = (rows as i32, batch as i32);
        let launch_err = cuda_err("kernel launch failed");
        self.gpu
            .stream
            .memcpy_htod(tokens, &mut s.tokens.slice_mut(..rows))
            .map_err(cuda_err("uploading tokens"))?;
        // SAFETY (all launches): arguments match the kernels' signatures in kernels/*.cu and
        // every buffer holds at least the elements the launch grid indexes.
        unsafe {
            self.gpu
                .stream
                .launch_builder(&k_.embed)
                .arg(&s.tokens)
                .arg(&self.embeddings)
                .arg(&mut s.hidden)
                .arg(&rows_i)
                .arg(&d_i)
                .launch(grid(rows * d))
                .map_err(&launch_err)?;
        }
        let chunk = SCAN_CHUNK;
        let chunks = len.div_ceil(chunk);
        let (chunk_i, chunks_i, en_i) = (chunk as i32, chunks as i32, (e * n) as i32);
        let last = stop_after.unwrap_or(c.num_hidden_layers - 1);
        for (i, w) in self.layers.iter().enumerate().take(last + 1) {
            // With bf16 in_proj/out_proj weights, the norm and the scan write their outputs
            // as bf16 directly, so those GEMM inputs need no rounding pass of their own.
            let out16 = matches!(w.out_proj, Weight::Bf16(_));
            self.rms_norm(&w.norm, s, rows, matches!(w.in_proj, Weight::Bf16(_)))?;
            match &w.in_proj {
                Weight::Bf16(w16) => {
                    self.gpu
                        .gemm_bf16(rows, 2 * e, d, w16, &s.act16, &mut s.xz, 0.0)?
                }
                Weight::F32(w32) => {
                    self.gpu
                        .linear(rows, 2 * e, d, &s.normed, d, w32, &mut s.xz, false)?
                }
            }
            if let Some(b) = &w.in_proj_bias {
                self.gpu.add_bias(&mut s.xz, b, rows, 2 * e)?;
            }
            let in_stride = (2 * e) as i32;
            unsafe {
                self.gpu
                    .stream
                    .launch_builder(&k_.conv)
                    .arg(&s.xz)
                    .arg(&in_stride)
                    .arg(&len_i)
                    .arg(&batch_i)
                    .arg(&e_i)
                    .arg(&state.conv[i])
                    .arg(&w.conv_weight)
                    .arg(&w.conv_bias)
                    .arg(&mut s.u)
                    .launch(grid(batch * len.div_ceil(CONV_STEPS) * e))
                    .map_err(&launch_err)?;
                self.gpu
                    .stream
                    .launch_builder(&k_.conv_state_next)
                    .arg(&s.xz)
                    .arg(&in_stride)
                    .arg(&len_i)
                    .arg(&batch_i)
                    .arg(&e_i)
                    .arg(&k_i)
                    .arg(&state.conv[i])
                    .arg(&mut s.conv_next)
                    .launch(grid(batch * (k - 1) * e))
                    .map_err(&launch_err)?;
            }
            if let Some(snap) = snapshots.as_mut() {
                // The conv state before token p is the state after the first p tokens.
                for (&p, out) in snap.at.iter().zip(snap.states.iter_mut()) {
                    let p_i = p as i32;
                    let one = 1i32;
                    unsafe {
                        self.gpu
                            .stream
                            .launch_builder(&k_.conv_state_next)
                            .arg(&s.xz)
                            .arg(&in_stride)
                            .arg(&p_i)
                            .arg(&one)
                            .arg(&e_i)
                            .arg(&k_i)
                            .arg(&state.conv[i])
                            .arg(&mut out.conv[i])
                            .launch(grid((k - 1) * e))
                            .map_err(&launch_err)?;
                    }
                }
            }
            self.gpu
                .stream
                .memcpy_dtod(
                    &s.conv_next.slice(..batch * (k - 1) * e),
                    &mut state.conv[i].slice_mut(..batch * (k - 1) * e),
                )
                .map_err(cuda_err("updating conv state"))?;
            self.gpu
                .linear(rows, xw, e, &s.u, e, &w.x_proj, &mut s.x_dbl, false)?;
            self.gpu
                .linear(rows, e, r, &s.x_dbl, xw, &w.dt_proj, &mut s.delta, false)?;
            let (bc_stride, b_off, z_stride) = (xw as i32, r as i32, (2 * e) as i32);
            let scan_grid = LaunchConfig {
                grid_dim: ((e as u32).div_ceil(128), chunks as u32, batch as u32),
                block_dim: (128, 1, 1),
                shared_mem_bytes: 0,
            };
            let z = s.xz.slice(e..);
            unsafe {
                self.gpu
                    .stream
                    .launch_builder(&k_.scan_local)
                    .arg(&s.u)
                    .arg(&s.delta)
                    .arg(&w.dt_bias)
                    .arg(&s.x_dbl)
                    .arg(&bc_stride)
                    .arg(&b_off)
                    .arg(&w.a)
                    .arg(&len_i)
                    .arg(&e_i)
                    .arg(&chunk_i)
                    .arg(&mut s.h_end)
                    .arg(&mut s.decay)
                    .launch(scan_grid)
                    .map_err(&launch_err)?;
                self.gpu
                    .stream
                    .launch_builder(&k_.scan_carry)
                    .arg(&mut state.ssm[i])
                    .arg(&s.h_end)
                    .arg(&s.decay)
                    .arg(&mut s.h_start)
                    .arg(&chunks_i)
                    .arg(&en_i)
                    .arg(&batch_i)
                    .launch(grid(batch * e * n))
                    .map_err(&launch_err)?;
            }
            if let Some(snap) = snapshots.as_mut() {
                // The SSM state before token p (a chunk boundary) is chunk p / SCAN_CHUNK's start.
                let en = e * n;
                for (&p, out) in snap.at.iter().zip(snap.states.iter_mut()) {
                    let slot = p / SCAN_CHUNK * en;
                    self.gpu
                        .stream
                        .memcpy_dtod(&s.h_start.slice(slot..slot + en), &mut out.ssm[i])
                        .map_err(cuda_err("copying a checkpoint"))?;
                }
            }
            {
                let (act16, _sync) = s.act16.device_ptr_mut(&self.gpu.stream);
                let y16: u64 = if out16 { act16 } else { 0 };
                // SAFETY: as above; y16 is null or act16, which holds rows * e values.
                unsafe {
                    self.gpu
                        .stream
                        .launch_builder(&k_.scan_output)
                        .arg(&s.u)
                        .arg(&s.delta)
                        .arg(&w.dt_bias)
                        .arg(&s.x_dbl)
                        .arg(&bc_stride)
                        .arg(&b_off)
                        .arg(&w.a)
                        .arg(&w.d)
                        .arg(&z)
                        .arg(&z_stride)
                        .arg(&len_i)
                        .arg(&e_i)
                        .arg(&chunk_i)
                        .arg(&s.h_start)
                        .arg(&mut s.y)
                        .arg(&y16)
                        .launch(scan_grid)
                        .map_err(&launch_err)?;
                }
            }
            match &w.out_proj {
                Weight::Bf16(w16) => {
                    self.gpu
                        .gemm_bf16(rows, d, e, w16, &s.act16, &mut s.hidden, 1.0)?
                }
                Weight::F32(w32) => {
                    self.gpu
                        .linear(rows, d, e, &s.y, e, w32, &mut s.hidden, true)?
                }
            }
            if let Some(b) = &w.out_proj_bias {
                self.gpu.add_bias(&mut s.hidden, b, rows, d)?;
            }
        }
        Ok(())
    }

    /// Log-softmax rows for `batch` stacked sequences from batch-contiguous states.
    fn logp_rows(
        &self,
        state: &mut CudaState,
        tokens: &[u32],
        batch: usize,
        snapshots: Option<Snapshots<'_>>,
        logp: &mut Vec<f32>,
    ) -> Result<()> {
        let mut slot = self.lock_scratch()?;
        let s = self.scratch_for(&mut slot, tokens.len(), batch)?;
        let (len, d, v) = (
            tokens.len(),
            self.config.hidden_size,
            self.config.vocab_size,
        );
        self.run_blocks(state, tokens, batch, None, snapshots, s)?;
        self.rms_norm(&self.norm_f, s, len, false)?;
        self.gpu
            .linear(len, v, d, &s.normed, d, &self.lm_head, &mut s.logits, false)?;
        let (rows, v_i) = (len as i32, v as i32);
        // SAFETY: logits holds len * v values.
        unsafe {
            self.gpu
                .stream
                .launch_builder(&self.gpu.kernels.log_softmax)
                .arg(&mut s.logits)
                .arg(&rows)
                .arg(&v_i)
                .launch(grid(len))
                .map_err(cuda_err("kernel launch failed"))?;
        }
        logp.resize(len * v, 0.0);
        self.gpu
            .stream
            .memcpy_dtoh(&s.logits.slice(..len * v), logp.as_mut_slice())
            .map_err(cuda_err("copying results"))?;
        Ok(())
    }

    /// `scratch.normed = rms_norm(scratch.hidden) * weight` over `rows` rows; with `to_bf16`,
    /// written as bf16 into `scratch.act16` instead (the input of a bf16 GEMM).
    fn rms_norm(
        &self,
        weight: &CudaSlice<f32>,
        s: &mut Scratch,
        rows: usize,
        to_bf16: bool,
    ) -> Result<()> {
        let d_i = self.config.hidden_size as i32;
        let eps = self.config.layer_norm_epsilon;
        let (act16, _sync) = s.act16.device_ptr_mut(&self.gpu.stream);
        let out16: u64 = if to_bf16 { act16 } else { 0 };
        // SAFETY: hidden and normed (and act16) hold at least rows * d_model values; one
        // block per row; out16 is null or act16.
        unsafe {
            self.gpu
                .stream
                .launch_builder(&self.gpu.kernels.rms_norm)
                .arg(&s.hidden)
                .arg(weight)
                .arg(&mut s.normed)
                .arg(&out16)
                .arg(&d_i)
                .arg(&eps)
                .launch(LaunchConfig {
                    grid_dim: (rows as u32, 1, 1),
                    block_dim: (128, 1, 1),
                    shared_mem_bytes: 0,
                })
                .map_err(cuda_err("kernel launch failed"))?;
        }
        Ok(())
    }

    /// The per-stripe buffers, held for the whole call so calls never interleave on the stream.
    fn lock_scratch(&self) -> Result<std::sync::MutexGuard<'_, Option<Scratch>>> {
        self.scratch
            .lock()
            .map_err(|_| Error::Backend("a previous GPU call panicked".into()))
    }
}

impl Backend for CudaBackend {
    type State = CudaState;

    fn describe(&self) -> String {
        use crate::graph::Ops;
        self.gpu.describe()
    }

    fn config(&self) -> &MambaConfig {
        &self.config
    }

    fn new_state(&self) -> Result<CudaState> {
        let c = &self.config;
        let z = |n: usize| {
            self.gpu
                .stream
                .alloc_zeros::<f32>(n)
                .map_err(cuda_err("allocating state"))
        };
        Ok(CudaState {
            conv: (0..c.num_hidden_layers)
                .map(|_| z((c.conv_kernel - 1).max(1) * c.intermediate_size))
                .collect::<Result<_>>()?,
            ssm: (0..c.num_hidden_layers)
                .map(|_| z(c.intermediate_size * c.state_size))
                .collect::<Result<_>>()?,
        })
    }

    fn forward(&self, state: &mut CudaState, tokens: &[u32], logp: &mut Vec<f32>) -> Result<()> {
        check_tokens(&self.config, tokens)?;
        if tokens.is_empty() {
            logp.clear();
            return Ok(());
        }
        self.logp_rows(state, tokens, 1, None, logp)
    }

    fn checkpoint_stride(&self) -> usize {
        SCAN_CHUNK
    }

    fn forward_checkpoints(
        &self,
        state: &mut CudaState,
        tokens: &[u32],
        logp: &mut Vec<f32>,
        at: &[usize],
    ) -> Result<Vec<CudaState>> {
        check_tokens(&self.config, tokens)?;
        check_checkpoints(at, tokens.len(), SCAN_CHUNK)?;
        if tokens.is_empty() {
            logp.clear();
            return Ok(Vec::new());
        }
        let mut states = at
            .iter()
            .map(|_| self.new_state())
            .collect::<Result<Vec<_>>>()?;
        let snapshots = Snapshots {
            at,
            states: &mut states,
        };
        self.logp_rows(state, tokens, 1, Some(snapshots), logp)?;
        Ok(states)
    }

    fn forward_batch(
        &self,
        states: &mut [CudaState],
        tokens: &[u32],
        logp: &mut Vec<f32>,
    ) -> Result<()> {
        check_tokens(&self.config, tokens)?;
        let batch = states.len();
        if batch_len(batch, tokens.len())?.is_none() {
            logp.clear();
            return Ok(());
        }
        let c = &self.config;
        let conv_len = (c.conv_kernel - 1).max(1) * c.intermediate_size;
        let ssm_len = c.intermediate_size * c.state_size;
        let alloc = |n: usize| {
            self.gpu
                .stream
                .alloc_zeros::<f32>(n)
                .map_err(cuda_err("allocating batch states"))
        };
        let (mut conv, mut ssm) = (Vec::new(), Vec::new());
        for i in 0..c.num_hidden_layers {
            let (mut cb, mut sb) = (alloc(batch * conv_len)?, alloc(batch * ssm_len)?);
            for (b, st) in states.iter().enumerate() {
                self.gpu
                    .stream
                    .memcpy_dtod(
                        &st.conv[i],
                        &mut cb.slice_mut(b * conv_len..(b + 1) * conv_len),
                    )
                    .map_err(cuda_err("gathering states"))?;
                self.gpu
                    .stream
                    .memcpy_dtod(
                        &st.ssm[i],
                        &mut sb.slice_mut(b * ssm_len..(b + 1) * ssm_len),
                    )
                    .map_err(cuda_err("gathering states"))?;
            }
            conv.push(cb);
            ssm.push(sb);
        }
        let mut stacked = CudaState { conv, ssm };
        self.logp_rows(&mut stacked, tokens, batch, None, logp)?;
        let (conv, ssm) = (stacked.conv, stacked.ssm);
        for i in 0..c.num_hidden_layers {
            for (b, st) in states.iter_mut().enumerate() {
                self.gpu
                    .stream
                    .memcpy_dtod(
                        &conv[i].slice(b * conv_len..(b + 1) * conv_len),
                        &mut st.conv[i],
                    )
                    .map_err(cuda_err("scattering states"))?;
                self.gpu
                    .stream
                    .memcpy_dtod(
                        &ssm[i].slice(b * ssm_len..(b + 1) * ssm_len),
                        &mut st.ssm[i],
                    )
                    .map_err(cuda_err("scattering states"))?;
            }
        }
        Ok(())
    }

    fn forward_hidden(
        &self,
        state: &mut CudaState,
        tokens: &[u32],
        layer: Option<usize>,
        hidden: &mut Vec<f32>,
    ) -> Result<()> {
        check_tokens(&self.config, tokens)?;
        check_layer(&self.config, layer)?;
        if tokens.is_empty() {
            hidden.clear();
            return Ok(());
        }
        let mut slot = self.lock_scratch()?;
        let s = self.scratch_for(&mut slot, tokens.len(), 1)?;
        let len = tokens.len();
        let d = self.config.hidden_size;
        self.run_blocks(state, tokens, 1, layer, None, s)?;
        hidden.resize(len * d, 0.0);
        let src = if layer.is_none() {
            self.rms_norm(&self.norm_f, s, len, false)?;
            &s.normed
        } else {
            &s.hidden
        };
        self.gpu
            .stream
            .memcpy_dtoh(&src.slice(..len * d), hidden.as_mut_slice())
            .map_err(cuda_err("copying results"))?;
        Ok(())
    }
}
