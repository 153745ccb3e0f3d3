//! The Mamba-2 mixer on the GPU: conv (`conv1d_silu` over the xBC columns), `m2_dt`, the scan
//! in the chunked SSD form on the tensor cores (`m2_chunk_cumsum`, `m2_chunk_state`,
//! `m2_state_pass`, `m2_chunk_scan`), `m2_gated_norm` (kernels/mamba2.cu). The sequential scan
//! `m2_scan` (one warp per head channel, 32-step tiles) is kept for comparison: it runs when
//! `SSMGEN_M2_SCAN=sequential` is set, or where the GPU cannot give the SSD kernels their
//! shared memory.

use std::sync::OnceLock;

use cudarc::driver::sys::CUfunction_attribute;
use cudarc::driver::{CudaSlice, CudaView, LaunchConfig, PushKernelArg};

use super::super::module::SSD_CHUNK;
use super::{CudaAct, CudaMixerState, CudaOps, cuda_err, grid, shape_err};
use crate::backend::cuda::Precision;
use crate::error::Result;
use crate::graph::Mamba2Shape;
use crate::model::Mamba2LayerWeights;

/// Warps (head channels) per block of `m2_scan` (`M2_WARPS` in kernels/mamba2.cu).
const SCAN_WARPS: usize = 8;

/// Warps per block of `m2_chunk_cb` and `m2_chunk_scan` (`M2_SSD_WARPS`; `m2_chunk_scan8` has
/// twice as many).
const SSD_WARPS: u32 = 4;

/// Warps per block of `m2_chunk_state` (`M2_STATE_WARPS`).
const STATE_WARPS: u32 = 8;

/// Time steps of one SSD piece: the chunk states of a piece (`[batch, chunks, heads,
/// head_dim, state]` f32, 3 KiB a token for a d_model 768 model) are held at once, so a
/// stripe is scanned a piece at a time with the state carried. A multiple of the chunk, so
/// pieces change no chunk boundary and no result.
const SSD_PIECE: usize = 256 * SSD_CHUNK;
const _: () = assert!(SSD_PIECE.is_multiple_of(SSD_CHUNK));
// Checkpoints (`Ops::checkpoint_stride`, the Mamba-1 scan chunk) must fall on SSD chunk
// boundaries, so that a run split at them gives the bits of an unsplit one.
const _: () = assert!(super::super::SCAN_CHUNK.is_multiple_of(SSD_CHUNK));

/// Dynamic shared memory of `m2_chunk_scan`: the chunk's x (`[SSD_CHUNK, head_dim + 8]`) and
/// the entering state (`[head_dim, state + 4]`), f32.
fn ssd_scan_shared_bytes(s: &Mamba2Shape) -> u32 {
    (4 * (SSD_CHUNK * (s.head_dim + 8) + s.head_dim * (s.d_state + 4))) as u32
}

/// Dynamic shared memory of `m2_chunk_state`: the chunk's x (`[SSD_CHUNK, head_dim + 8]`) and
/// B (`[SSD_CHUNK, state + 8]`), f32.
fn ssd_state_shared_bytes(s: &Mamba2Shape) -> u32 {
    (4 * SSD_CHUNK * (s.head_dim + 8 + s.d_state + 8)) as u32
}

/// Warps per block of the SSD output kernel: 8 (`m2_chunk_scan8`), or 4 (`m2_chunk_scan`) with
/// `SSMGEN_M2_SCAN_WARPS=4` (read once; for timing one against the other).
fn scan_warps() -> u32 {
    static WARPS: OnceLock<u32> = OnceLock::new();
    *WARPS.get_or_init(|| match std::env::var("SSMGEN_M2_SCAN_WARPS").as_deref() {
        Ok("4") => 4,
        _ => 8,
    })
}

/// Whether `SSMGEN_M2_SCAN=sequential` asks for the sequential scan (read once).
fn sequential_scan() -> bool {
    static SEQ: OnceLock<bool> = OnceLock::new();
    *SEQ.get_or_init(|| {
        std::env::var("SSMGEN_M2_SCAN").is_ok_and(|v| v.eq_ignore_ascii_case("sequential"))
    })
}

/// One Mamba-2 mixer's parameters on the GPU.
pub struct CudaMixer2 {
    pub(super) shape: Mamba2Shape,
    /// Whether the SSD kernels got the shared memory they need (else the sequential scan runs).
    ssd: bool,
    conv_weight: CudaSlice<f32>,
    conv_bias: CudaSlice<f32>,
    dt_bias: CudaSlice<f32>,
    /// `A = -exp(A_log)`, `[num_heads]`.
    a: CudaSlice<f32>,
    d: CudaSlice<f32>,
    norm: CudaSlice<f32>,
}

impl CudaOps {
    /// Uploads a Mamba-2 mixer's parameters.
    pub(super) fn upload_mixer2(
        &self,
        w: &Mamba2LayerWeights,
        shape: Mamba2Shape,
    ) -> Result<CudaMixer2> {
        let (c, k, h) = (shape.conv_dim(), shape.d_conv, shape.num_heads);
        let fits = w.conv_weight.len() == c * k
            && w.a_log.len() == h
            && w.d.len() == h
            && w.dt_bias.len() == h
            && w.gated_norm.len() == shape.d_inner
            && shape.num_heads * shape.head_dim == shape.d_inner
            && shape.n_groups > 0
            && h.is_multiple_of(shape.n_groups)
            && shape.norm_group_size > 0
            && shape.d_inner.is_multiple_of(shape.norm_group_size);
        if !fits {
            return Err(shape_err("prepare_mixer2"));
        }
        let zeros = vec![0.0; c];
        let a: Vec<f32> = w.a_log.iter().map(|v| -v.exp()).collect();
        let _g = self.guard("upload")?;
        // Beyond 48 KiB a kernel must be allowed its dynamic shared memory; a GPU that cannot
        // give it (before sm_80, where head_dim 64 and state 128 need 104 KiB) runs the
        // sequential scan instead, with the same results to rounding. The carveout asks for
        // all of L1 as shared memory, so that as many blocks fit as the shared memory allows (a
        // hint: a driver that ignores it changes the speed, not the results).
        let ssd = [
            (&self.kernels.m2_chunk_scan, ssd_scan_shared_bytes(&shape)),
            (&self.kernels.m2_chunk_scan8, ssd_scan_shared_bytes(&shape)),
            (&self.kernels.m2_chunk_state, ssd_state_shared_bytes(&shape)),
        ]
        .into_iter()
        .all(|(kernel, smem)| {
            let _ = kernel.set_attribute(
                CUfunction_attribute::CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT,
                100,
            );
            smem <= 48 << 10
                || kernel
                    .set_attribute(
                        CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                        smem as i32,
                    )
                    .is_ok()
        });
        Ok(CudaMixer2 {
            shape,
            ssd,
            conv_weight: self.upload(&w.conv_weight)?,
            conv_bias: self.upload(w.conv_bias.as_deref().unwrap_or(&zeros))?,
            dt_bias: self.upload(&w.dt_bias)?,
            a: self.upload(&a)?,
            d: self.upload(&w.d)?,
            norm: self.upload(&w.gated_norm)?,
        })
    }

    /// A zeroed Mamba-2 state for `batch` sequences (no lock: callers hold it).
    pub(super) fn zero_state2(&self, w: &CudaMixer2, batch: usize) -> Result<CudaMixerState> {
        let s = &w.shape;
        let z = |n: usize| {
            self.stream
                .alloc_zeros::<f32>(n.max(1))
                .map_err(cuda_err("allocating state"))
        };
        Ok(CudaMixerState {
            conv: z(batch * (s.d_conv - 1).max(1) * s.conv_dim())?,
            ssm: z(batch * s.d_inner * s.d_state)?,
            batch,
        })
    }

    /// The Mamba-2 mixer forward in time over `batch` stacked sequences of `zx` (`[rows,
    /// in_width]`), from and to `state`: the gated-norm output `[rows, d_inner]`, as bf16 with
    /// `bf16_out` (the input of a bf16 `out_proj`, rounded as its conversion would) (no lock:
    /// callers hold it).
    pub(super) fn mixer2_forward(
        &self,
        w: &CudaMixer2,
        zx: &CudaView<'_, f32>,
        rows: usize,
        state: &mut CudaMixerState,
        bf16_out: bool,
    ) -> Result<CudaAct> {
        let s = &w.shape;
        let batch = state.batch;
        let (e, conv_dim, width, heads, k) =
            (s.d_inner, s.conv_dim(), s.in_width(), s.num_heads, s.d_conv);
        if batch == 0
            || !rows.is_multiple_of(batch)
            || zx.len() < rows * width
            || state.conv.len() < batch * (k - 1).max(1) * conv_dim
            || state.ssm.len() < batch * e * s.d_state
        {
            return Err(shape_err("mixer2"));
        }
        let len = rows / batch;
        let launch_err = cuda_err("kernel launch failed");
        let xbc_in = zx.slice(e..);
        let (len_i, batch_i, conv_i, k_i, width_i) = (
            len as i32,
            batch as i32,
            conv_dim as i32,
            k as i32,
            width as i32,
        );
        let mut xbc = self.alloc(rows * conv_dim)?;
        let mut conv_next = self.alloc(batch * (k - 1).max(1) * conv_dim)?;
        let mut dt = self.alloc(rows * heads)?;
        let mut y = self.alloc(rows * e)?;
        let mut since = self.mark();
        // SAFETY (all launches): arguments match the kernels' signatures in kernels/conv.cu and
        // kernels/mamba2.cu, and every buffer holds at least the elements the grid indexes
        // (checked above: zx has rows * width values, the state batch conv and SSM states).
        unsafe {
            self.stream
                .launch_builder(&self.kernels.conv)
                .arg(&xbc_in)
                .arg(&width_i)
                .arg(&len_i)
                .arg(&batch_i)
                .arg(&conv_i)
                .arg(&state.conv)
                .arg(&w.conv_weight)
                .arg(&w.conv_bias)
                .arg(&mut xbc)
                .launch(grid(
                    batch * len.div_ceil(super::super::CONV_STEPS) * conv_dim,
                ))
                .map_err(&launch_err)?;
            if k > 1 {
                self.stream
                    .launch_builder(&self.kernels.conv_state_next)
                    .arg(&xbc_in)
                    .arg(&width_i)
                    .arg(&len_i)
                    .arg(&batch_i)
                    .arg(&conv_i)
                    .arg(&k_i)
                    .arg(&state.conv)
                    .arg(&mut conv_next)
                    .launch(grid(batch * (k - 1) * conv_dim))
                    .map_err(&launch_err)?;
            }
            let (dt_off, rows_l, heads_i) = ((e + conv_dim) as i32, rows as i64, heads as i32);
            self.stream
                .launch_builder(&self.kernels.m2_dt)
                .arg(zx)
                .arg(&width_i)
                .arg(&dt_off)
                .arg(&rows_l)
                .arg(&heads_i)
                .arg(&w.dt_bias)
                .arg(&s.dt_limit.0)
                .arg(&s.dt_limit.1)
                .arg(&mut dt)
                .launch(grid(rows * heads))
                .map_err(&launch_err)?;
        }
        if k > 1 {
            state.conv = conv_next;
        }
        self.sub_stage("mixer2/conv_dt", &mut since);
        if sequential_scan() || !w.ssd {
            self.m2_scan_sequential(w, &xbc, &dt, len, batch, state, &mut y)?;
        } else {
            self.m2_scan_ssd(w, &xbc, &dt, len, batch, state, &mut y)?;
        }
        self.sub_stage("mixer2/scan", &mut since);
        let group = s.norm_group_size;
        let norm_config = LaunchConfig {
            grid_dim: (rows as u32, (e / group) as u32, 1),
            block_dim: (group.next_power_of_two().clamp(32, 256) as u32, 1, 1),
            shared_mem_bytes: 0,
        };
        let (group_i, e_i) = (group as i32, e as i32);
        // m2_gated_norm writes every value of y16 when it is given.
        let mut y16 = self.alloc_out16(bf16_out, rows * e)?;
        {
            let y16_ptr = self.out16_ptr(&mut y16);
            // SAFETY: as above; y16_ptr is null or a buffer of rows * e halves.
            unsafe {
                self.stream
                    .launch_builder(&self.kernels.m2_gated_norm)
                    .arg(&mut y)
                    .arg(zx)
                    .arg(&width_i)
                    .arg(&e_i)
                    .arg(&group_i)
                    .arg(&w.norm)
                    .arg(&s.eps)
                    .arg(&y16_ptr)
                    .launch(norm_config)
                    .map_err(&launch_err)?;
            }
        }
        self.sub_stage("mixer2/gated_norm", &mut since);
        Ok(CudaAct::written(y, y16, rows, e))
    }

    /// The sequential scan (`m2_scan`) of `batch` sequences of `len` steps: `y` (without the
    /// gate and norm) from the conv output `xbc` and `dt`, the SSM state carried.
    #[allow(clippy::too_many_arguments)]
    fn m2_scan_sequential(
        &self,
        w: &CudaMixer2,
        xbc: &CudaSlice<f32>,
        dt: &CudaSlice<f32>,
        len: usize,
        batch: usize,
        state: &mut CudaMixerState,
        y: &mut CudaSlice<f32>,
    ) -> Result<()> {
        let s = &w.shape;
        let config = LaunchConfig {
            grid_dim: (
                s.head_dim.div_ceil(SCAN_WARPS) as u32,
                s.num_heads as u32,
                batch as u32,
            ),
            block_dim: (32 * SCAN_WARPS as u32, 1, 1),
            shared_mem_bytes: 0,
        };
        let (conv_i, len_i, heads_i, p_i, g_i, e_i) = (
            s.conv_dim() as i32,
            len as i32,
            s.num_heads as i32,
            s.head_dim as i32,
            s.n_groups as i32,
            s.d_inner as i32,
        );
        // SAFETY: arguments match m2_scan's signature (kernels/mamba2.cu); xbc holds batch * len
        // rows of conv_dim, dt batch * len rows of heads, y batch * len rows of d_inner, and
        // state.ssm batch * d_inner * d_state values (checked by the caller).
        unsafe {
            self.stream
                .launch_builder(&self.kernels.m2_scan)
                .arg(xbc)
                .arg(&conv_i)
                .arg(&len_i)
                .arg(&heads_i)
                .arg(&p_i)
                .arg(&g_i)
                .arg(&e_i)
                .arg(dt)
                .arg(&w.a)
                .arg(&w.d)
                .arg(&mut state.ssm)
                .arg(y)
                .launch(config)
                .map_err(cuda_err("kernel launch failed"))?;
        }
        Ok(())
    }

    /// The chunked SSD scan: as [`CudaOps::m2_scan_sequential`], a piece of [`SSD_PIECE`]
    /// steps at a time (chunk sums, chunk states, state passing from the carried state, chunk
    /// outputs), with 3xTF32 products in f32 precision and TF32 products otherwise.
    #[allow(clippy::too_many_arguments)]
    fn m2_scan_ssd(
        &self,
        w: &CudaMixer2,
        xbc: &CudaSlice<f32>,
        dt: &CudaSlice<f32>,
        len: usize,
        batch: usize,
        state: &mut CudaMixerState,
        y: &mut CudaSlice<f32>,
    ) -> Result<()> {
        let s = &w.shape;
        let (heads, p, n) = (s.num_heads, s.head_dim, s.d_state);
        let launch_err = cuda_err("kernel launch failed");
        let piece_max = SSD_PIECE.min(len);
        let chunks_max = piece_max.div_ceil(SSD_CHUNK);
        let mut acum = self.alloc(batch * len * heads)?;
        let mut states = self.alloc(batch * chunks_max * heads * p * n)?;
        let mut cb = self.alloc(batch * chunks_max * s.n_groups * SSD_CHUNK * SSD_CHUNK)?;
        let mut since = self.mark();
        let exact = i32::from(self.precision == Precision::F32);
        let (conv_i, len_i, heads_i, p_i, g_i, e_i, pn_i) = (
            s.conv_dim() as i32,
            len as i32,
            heads as i32,
            p as i32,
            s.n_groups as i32,
            s.d_inner as i32,
            (p * n) as i32,
        );
        let batch_i = batch as i32;
        let state_blocks = |chunks: usize| LaunchConfig {
            grid_dim: (chunks as u32, heads as u32, batch as u32),
            block_dim: (32 * STATE_WARPS, 1, 1),
            shared_mem_bytes: ssd_state_shared_bytes(s),
        };
        let (scan_kernel, scan_warps) = match scan_warps() {
            4 => (&self.kernels.m2_chunk_scan, SSD_WARPS),
            _ => (&self.kernels.m2_chunk_scan8, 2 * SSD_WARPS),
        };
        let scan_blocks = |chunks: usize| LaunchConfig {
            grid_dim: (heads as u32, chunks as u32, batch as u32),
            block_dim: (32 * scan_warps, 1, 1),
            shared_mem_bytes: ssd_scan_shared_bytes(s),
        };
        let cb_blocks = |chunks: usize| LaunchConfig {
            grid_dim: (s.n_groups as u32, chunks as u32, batch as u32),
            block_dim: (32 * SSD_WARPS, 1, 1),
            shared_mem_bytes: 0,
        };
        let pass = LaunchConfig {
            grid_dim: ((p * n).div_ceil(256) as u32, heads as u32, batch as u32),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut off = 0;
        while off < len {
            let piece = SSD_PIECE.min(len - off);
            let chunks = piece.div_ceil(SSD_CHUNK);
            let (off_i, piece_i, chunks_i) = (off as i32, piece as i32, chunks as i32);
            // SAFETY (all launches): arguments match the kernels' signatures
            // (kernels/mamba2.cu). xbc holds batch * len rows of conv_dim, dt and acum
            // batch * len rows of heads, y batch * len rows of d_inner, state.ssm
            // batch * heads * p * n values (checked by the caller), states and cb hold what a
            // piece of up to chunks_max chunks indexes; the kernels touch rows off .. off + piece
            // of each sequence only; m2_chunk_scan's dynamic shared memory is what
            // ssd_scan_shared_bytes gives (m2_chunk_state's ssd_state_shared_bytes), allowed in
            // upload_mixer2.
            unsafe {
                self.stream
                    .launch_builder(&self.kernels.m2_chunk_cumsum)
                    .arg(dt)
                    .arg(&w.a)
                    .arg(&len_i)
                    .arg(&off_i)
                    .arg(&piece_i)
                    .arg(&heads_i)
                    .arg(&chunks_i)
                    .arg(&batch_i)
                    .arg(&mut acum)
                    .launch(grid(batch * chunks * heads))
                    .map_err(&launch_err)?;
            }
            self.sub_stage("mixer2/ssd_cumsum", &mut since);
            unsafe {
                self.stream
                    .launch_builder(&self.kernels.m2_chunk_state)
                    .arg(xbc)
                    .arg(&conv_i)
                    .arg(&len_i)
                    .arg(&off_i)
                    .arg(&piece_i)
                    .arg(&heads_i)
                    .arg(&p_i)
                    .arg(&g_i)
                    .arg(&e_i)
                    .arg(dt)
                    .arg(&acum)
                    .arg(&exact)
                    .arg(&mut states)
                    .launch(state_blocks(chunks))
                    .map_err(&launch_err)?;
            }
            self.sub_stage("mixer2/ssd_chunk_state", &mut since);
            unsafe {
                self.stream
                    .launch_builder(&self.kernels.m2_state_pass)
                    .arg(&mut states)
                    .arg(&acum)
                    .arg(&len_i)
                    .arg(&off_i)
                    .arg(&piece_i)
                    .arg(&heads_i)
                    .arg(&chunks_i)
                    .arg(&pn_i)
                    .arg(&mut state.ssm)
                    .launch(pass)
                    .map_err(&launch_err)?;
            }
            self.sub_stage("mixer2/ssd_state_pass", &mut since);
            unsafe {
                self.stream
                    .launch_builder(&self.kernels.m2_chunk_cb)
                    .arg(xbc)
                    .arg(&conv_i)
                    .arg(&len_i)
                    .arg(&off_i)
                    .arg(&piece_i)
                    .arg(&g_i)
                    .arg(&e_i)
                    .arg(&exact)
                    .arg(&mut cb)
                    .launch(cb_blocks(chunks))
                    .map_err(&launch_err)?;
            }
            self.sub_stage("mixer2/ssd_cb", &mut since);
            unsafe {
                self.stream
                    .launch_builder(scan_kernel)
                    .arg(xbc)
                    .arg(&conv_i)
                    .arg(&len_i)
                    .arg(&off_i)
                    .arg(&piece_i)
                    .arg(&heads_i)
                    .arg(&p_i)
                    .arg(&g_i)
                    .arg(&e_i)
                    .arg(dt)
                    .arg(&acum)
                    .arg(&w.d)
                    .arg(&states)
                    .arg(&cb)
                    .arg(&exact)
                    .arg(&mut *y)
                    .launch(scan_blocks(chunks))
                    .map_err(&launch_err)?;
            }
            self.sub_stage("mixer2/ssd_chunk_scan", &mut since);
            off += piece;
        }
        Ok(())
    }

    /// [`CudaOps::mixer2_forward`] for one sequence, split at the checkpoints `at`, with a copy
    /// of the state before each (checkpoints at multiples of the SSD chunk keep every chunk
    /// boundary, so the results are an unsplit run's, bit for bit; other splits agree to
    /// rounding).
    pub(super) fn mixer2_pieces(
        &self,
        w: &CudaMixer2,
        zx: &CudaAct,
        state: &mut CudaMixerState,
        at: &[usize],
    ) -> Result<(CudaAct, Vec<CudaMixerState>)> {
        let (e, width) = (w.shape.d_inner, w.shape.in_width());
        if zx.width != width || state.batch != 1 {
            return Err(shape_err("mixer2_checkpoints"));
        }
        let buf = zx.values()?;
        let len = zx.rows();
        let mut y = self.alloc(len * e)?;
        let mut copies = Vec::with_capacity(at.len());
        let mut from = 0;
        for &to in at.iter().chain(std::iter::once(&len)) {
            if to > from {
                let piece = buf.slice(from * width..to * width);
                let out = self.mixer2_forward(w, &piece, to - from, state, false)?;
                self.stream
                    .memcpy_dtod(out.values()?, &mut y.slice_mut(from * e..to * e))
                    .map_err(cuda_err("copying mixer output"))?;
            }
            if to < len {
                copies.push(state.clone());
            }
            from = to;
        }
        Ok((CudaAct::f32(y, len, e), copies))
    }
}
