//! The Mamba-2 mixer on the GPU: conv (`conv1d_silu` over the xBC columns), `m2_dt`, `m2_scan`
//! (sequential in time, one warp per head channel, 32-step tiles), `m2_gated_norm`
//! (kernels/mamba2.cu).

use cudarc::driver::{CudaSlice, CudaView, LaunchConfig, PushKernelArg};

use super::{CudaAct, CudaMixerState, CudaOps, cuda_err, grid, shape_err};
use crate::error::Result;
use crate::graph::Mamba2Shape;
use crate::model::Mamba2LayerWeights;

/// Warps (head channels) per block of `m2_scan` (`M2_WARPS` in kernels/mamba2.cu).
const SCAN_WARPS: usize = 8;

/// One Mamba-2 mixer's parameters on the GPU.
pub struct CudaMixer2 {
    pub(super) shape: Mamba2Shape,
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
        Ok(CudaMixer2 {
            shape,
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
    /// in_width]`), from and to `state`: the gated-norm output `[rows, d_inner]` (no lock:
    /// callers hold it).
    pub(super) fn mixer2_forward(
        &self,
        w: &CudaMixer2,
        zx: &CudaView<'_, f32>,
        rows: usize,
        state: &mut CudaMixerState,
    ) -> Result<CudaSlice<f32>> {
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
        let config = LaunchConfig {
            grid_dim: (
                s.head_dim.div_ceil(SCAN_WARPS) as u32,
                heads as u32,
                batch as u32,
            ),
            block_dim: (32 * SCAN_WARPS as u32, 1, 1),
            shared_mem_bytes: 0,
        };
        let (heads_i, p_i, g_i, e_i) =
            (heads as i32, s.head_dim as i32, s.n_groups as i32, e as i32);
        // SAFETY: as above.
        unsafe {
            self.stream
                .launch_builder(&self.kernels.m2_scan)
                .arg(&xbc)
                .arg(&conv_i)
                .arg(&len_i)
                .arg(&heads_i)
                .arg(&p_i)
                .arg(&g_i)
                .arg(&e_i)
                .arg(&dt)
                .arg(&w.a)
                .arg(&w.d)
                .arg(&mut state.ssm)
                .arg(&mut y)
                .launch(config)
                .map_err(&launch_err)?;
        }
        self.sub_stage("mixer2/scan", &mut since);
        let group = s.norm_group_size;
        let norm_config = LaunchConfig {
            grid_dim: (rows as u32, (e / group) as u32, 1),
            block_dim: (group.next_power_of_two().clamp(32, 256) as u32, 1, 1),
            shared_mem_bytes: 0,
        };
        let group_i = group as i32;
        // SAFETY: as above.
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
                .launch(norm_config)
                .map_err(&launch_err)?;
        }
        self.sub_stage("mixer2/gated_norm", &mut since);
        Ok(y)
    }

    /// [`CudaOps::mixer2_forward`] for one sequence, split at the checkpoints `at`, with a copy
    /// of the state before each (the scan is sequential: splitting changes no result).
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
                let out = self.mixer2_forward(w, &piece, to - from, state)?;
                self.stream
                    .memcpy_dtod(&out, &mut y.slice_mut(from * e..to * e))
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
