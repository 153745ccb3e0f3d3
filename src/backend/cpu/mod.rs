//! The CPU backend: the graph [`Ops`] on the host, parallel with rayon.

pub mod gemm;
mod mamba2;
pub mod ops;
mod simd;

use gemm::PackedWeight;
use ops::ScanInputs;

use crate::error::{Error, Result};
use crate::graph::mamba::MambaGraph;
use crate::graph::{Consumer, LinearRole, Mamba2Shape, Ops};
use crate::model::{LayerWeights, Mamba2LayerWeights, Model};

/// The causal Mamba LM on the CPU.
pub type CpuBackend = MambaGraph<CpuOps>;

/// Carried state of one sequence on the CPU: one [`CpuMixerState`] per layer.
pub type CpuState = Vec<CpuMixerState>;

impl MambaGraph<CpuOps> {
    /// Prepares `model` for the CPU.
    pub fn new(model: &Model) -> Self {
        MambaGraph::build(CpuOps, model).expect("the CPU ops cannot fail to prepare weights")
    }
}

/// The CPU implementation of the graph ops.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuOps;

/// Activations on the host: `data` is `[rows, width]`, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct CpuAct {
    /// The values.
    pub data: Vec<f32>,
    /// Values per row.
    pub width: usize,
}

impl CpuAct {
    fn rows(&self) -> usize {
        self.data.len() / self.width.max(1)
    }
}

/// A projection `[out, in]` with its optional bias.
pub struct CpuLinear {
    /// Row-major `[out, in]` (an embedding table's rows).
    weight: Vec<f32>,
    /// The same weight packed for [`gemm::matmul_packed`].
    packed: PackedWeight,
    out: usize,
    bias: Option<Vec<f32>>,
}

/// One mixer's parameters, laid out for the CPU kernels.
pub struct CpuMixer {
    d_inner: usize,
    d_state: usize,
    d_conv: usize,
    dt_rank: usize,
    /// Conv kernel transposed to `[d_conv, d_inner]`.
    conv_t: Vec<f32>,
    conv_bias: Option<Vec<f32>>,
    x_proj: PackedWeight,
    dt_proj: PackedWeight,
    dt_bias: Vec<f32>,
    /// `A = -exp(A_log)` transposed to `[d_state, d_inner]`.
    a_t: Vec<f32>,
    d: Vec<f32>,
}

/// One Mamba-2 mixer's parameters, laid out for the CPU kernels.
pub struct CpuMixer2 {
    shape: Mamba2Shape,
    /// Conv kernel transposed to `[d_conv, conv_dim]`.
    conv_t: Vec<f32>,
    conv_bias: Option<Vec<f32>>,
    dt_bias: Vec<f32>,
    /// `A = -exp(A_log)`, `[num_heads]`.
    a: Vec<f32>,
    d: Vec<f32>,
    norm: Vec<f32>,
}

/// The carried state of one mixer for a batch of sequences, stacked sequence by sequence.
/// A Mamba-2 mixer's holds `[d_conv - 1, conv_dim]` conv inputs and a
/// `[num_heads, head_dim, d_state]` SSM state per sequence.
#[derive(Clone, Debug, PartialEq)]
pub struct CpuMixerState {
    /// Per sequence, the last `d_conv - 1` conv inputs, `[d_conv - 1, d_inner]`, oldest first.
    pub conv: Vec<f32>,
    /// Per sequence, the SSM state, `[d_inner, d_state]`.
    pub ssm: Vec<f32>,
    /// Sequences.
    pub batch: usize,
}

fn shape_err(what: &str) -> Error {
    Error::Backend(format!("cpu: {what}: operands have mismatched shapes"))
}

impl CpuOps {
    /// The mixer over one sequence's rows of `xz`, forward in time, into `y_rows`, from and to
    /// that sequence's `conv` and `ssm` state.
    fn mixer_one(
        &self,
        w: &CpuMixer,
        xz: &[f32],
        conv: &mut [f32],
        ssm: &mut [f32],
        y_rows: &mut [f32],
    ) {
        let (e, r) = (w.d_inner, w.dt_rank);
        let len = xz.len() / (2 * e);
        let xw = r + 2 * w.d_state;
        // Reused buffers: every element is written before it is read, so they need no zeroing.
        let mut scratch = SCRATCH.with(|s| s.take());
        let [u, x_dbl, delta] = &mut scratch;
        for (buf, n) in [
            (&mut *u, len * e),
            (&mut *x_dbl, len * xw),
            (&mut *delta, len * e),
        ] {
            buf.resize(n, 0.0);
        }
        ops::causal_conv_silu(xz, 2 * e, len, conv, &w.conv_t, w.conv_bias.as_deref(), u);
        gemm::matmul_packed(len, u, e, &w.x_proj, x_dbl, xw, false);
        gemm::matmul_packed(len, x_dbl, xw, &w.dt_proj, delta, e, false);
        ops::softplus_bias_rows(delta, &w.dt_bias);
        let inputs = ScanInputs {
            u,
            delta,
            z: &xz[e..],
            z_stride: 2 * e,
            bc: x_dbl,
            bc_stride: xw,
            b_offset: r,
            d: &w.d,
        };
        ops::selective_scan(&inputs, &w.a_t, len, ssm, y_rows);
        SCRATCH.with(|s| s.set(scratch));
    }
}

impl CpuOps {
    /// The Mamba-2 mixer over one sequence's rows of `zxbcdt`, forward in time, into `y_rows`
    /// (`[len, d_inner]`), from and to that sequence's `conv` and `ssm` state.
    fn mixer2_one(
        &self,
        w: &CpuMixer2,
        zxbcdt: &[f32],
        conv: &mut [f32],
        ssm: &mut [f32],
        y_rows: &mut [f32],
    ) {
        let s = &w.shape;
        let (e, conv_dim, width) = (s.d_inner, s.conv_dim(), s.in_width());
        let len = zxbcdt.len() / width;
        let mut xbc = vec![0.0; len * conv_dim];
        ops::causal_conv_silu(
            &zxbcdt[e..],
            width,
            len,
            conv,
            &w.conv_t,
            w.conv_bias.as_deref(),
            &mut xbc,
        );
        let mut dt = vec![0.0; len * s.num_heads];
        mamba2::dt_rows(zxbcdt, width, &w.dt_bias, s.dt_limit, &mut dt);
        let inputs = mamba2::Scan2Inputs {
            xbc: &xbc,
            dt: &dt,
            a: &w.a,
            d: &w.d,
        };
        mamba2::scan(s, &inputs, len, ssm, y_rows);
        mamba2::gated_rms_norm(y_rows, zxbcdt, width, &w.norm, s.norm_group_size, s.eps);
    }
}

thread_local! {
    /// The mixer's intermediate buffers (`u`, `x_proj` output, `Δ`), kept between stripes.
    /// Taken out while in use, so a nested call on the same thread (rayon work stealing)
    /// gets fresh ones.
    static SCRATCH: std::cell::Cell<[Vec<f32>; 3]> = const { std::cell::Cell::new([Vec::new(), Vec::new(), Vec::new()]) };
}

/// `rows` rows of `width` values in reverse order.
fn reverse_rows(src: &[f32], width: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(src.len());
    for row in src.chunks_exact(width).rev() {
        out.extend_from_slice(row);
    }
    out
}

impl Ops for CpuOps {
    type Act = CpuAct;
    type Mixer = CpuMixer;
    type Mixer2 = CpuMixer2;
    type Linear = CpuLinear;
    type Vector = Vec<f32>;
    type MixerState = CpuMixerState;

    fn describe(&self) -> String {
        format!(
            "cpu ({}, {} threads)",
            simd::level_name(),
            rayon::current_num_threads()
        )
    }

    fn computes_on_thread_pool(&self) -> bool {
        true
    }

    fn runs_batches_in_parallel(&self) -> bool {
        true
    }

    fn prepare_mixer(&self, w: &LayerWeights) -> Result<CpuMixer> {
        let e = w.d.len();
        let n = w.a_log.len() / e.max(1);
        let k = w.conv_weight.len() / e.max(1);
        let r = w.dt_proj.len() / e.max(1);
        Ok(CpuMixer {
            d_inner: e,
            d_state: n,
            d_conv: k,
            dt_rank: r,
            conv_t: (0..k * e)
                .map(|i| w.conv_weight[(i % e) * k + i / e])
                .collect(),
            conv_bias: w.conv_bias.clone(),
            x_proj: PackedWeight::new(&w.x_proj, r + 2 * n, e),
            dt_proj: PackedWeight::new(&w.dt_proj, e, r),
            dt_bias: w.dt_bias.clone(),
            a_t: (0..n * e)
                .map(|i| -w.a_log[(i % e) * n + i / e].exp())
                .collect(),
            d: w.d.clone(),
        })
    }

    fn prepare_mixer2(&self, w: &Mamba2LayerWeights, shape: Mamba2Shape) -> Result<CpuMixer2> {
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
            && shape.d_inner.is_multiple_of(shape.norm_group_size)
            && (1..=ops::MAX_CONV_KERNEL).contains(&k);
        if !fits {
            return Err(shape_err("prepare_mixer2"));
        }
        Ok(CpuMixer2 {
            shape,
            conv_t: (0..k * c)
                .map(|i| w.conv_weight[(i % c) * k + i / c])
                .collect(),
            conv_bias: w.conv_bias.clone(),
            dt_bias: w.dt_bias.clone(),
            a: w.a_log.iter().map(|v| -v.exp()).collect(),
            d: w.d.clone(),
            norm: w.gated_norm.clone(),
        })
    }

    fn new_mixer2_state(&self, w: &CpuMixer2, batch: usize) -> Result<CpuMixerState> {
        let s = &w.shape;
        Ok(CpuMixerState {
            conv: vec![0.0; batch * (s.d_conv - 1) * s.conv_dim()],
            ssm: vec![0.0; batch * s.d_inner * s.d_state],
            batch,
        })
    }

    fn prepare_linear(
        &self,
        weight: &[f32],
        out: usize,
        bias: Option<&[f32]>,
        _role: LinearRole,
    ) -> Result<CpuLinear> {
        let k = weight.len() / out.max(1);
        Ok(CpuLinear {
            weight: weight.to_vec(),
            packed: PackedWeight::new(weight, out, k),
            out,
            bias: bias.map(<[f32]>::to_vec),
        })
    }

    fn prepare_vector(&self, v: &[f32]) -> Result<Vec<f32>> {
        Ok(v.to_vec())
    }

    fn new_mixer_state(&self, w: &CpuMixer, batch: usize) -> Result<CpuMixerState> {
        Ok(CpuMixerState {
            conv: vec![0.0; batch * (w.d_conv - 1) * w.d_inner],
            ssm: vec![0.0; batch * w.d_inner * w.d_state],
            batch,
        })
    }

    fn embed(&self, table: &CpuLinear, tokens: &[u32]) -> Result<CpuAct> {
        let d = table.weight.len() / table.out.max(1);
        let mut data = Vec::with_capacity(tokens.len() * d);
        for &t in tokens {
            let t = t as usize;
            let row = table
                .weight
                .get(t * d..(t + 1) * d)
                .ok_or_else(|| Error::Backend(format!("token id {t} has no embedding row")))?;
            data.extend_from_slice(row);
        }
        Ok(CpuAct { data, width: d })
    }

    fn rms_norm(
        &self,
        x: &CpuAct,
        weight: &Vec<f32>,
        eps: f32,
        _consumer: Consumer,
    ) -> Result<CpuAct> {
        if weight.len() != x.width {
            return Err(shape_err("rms_norm"));
        }
        let mut data = vec![0.0; x.data.len()];
        ops::rms_norm(&x.data, weight, eps, &mut data);
        Ok(CpuAct {
            data,
            width: x.width,
        })
    }

    fn linear(&self, x: &CpuAct, w: &CpuLinear) -> Result<CpuAct> {
        let mut out = CpuAct {
            data: vec![0.0; x.rows() * w.out],
            width: w.out,
        };
        self.project(x, w, &mut out, false)?;
        Ok(out)
    }

    fn linear_add(&self, x: &CpuAct, w: &CpuLinear, acc: &mut CpuAct) -> Result<()> {
        self.project(x, w, acc, true)
    }

    fn mixer(
        &self,
        w: &CpuMixer,
        xz: &CpuAct,
        state: &mut CpuMixerState,
        reverse: bool,
    ) -> Result<CpuAct> {
        let e = w.d_inner;
        let batch = state.batch;
        if xz.width != 2 * e || batch == 0 || !xz.rows().is_multiple_of(batch) {
            return Err(shape_err("mixer"));
        }
        let len = xz.rows() / batch;
        let mut y = vec![0.0; xz.rows() * e];
        let conv_len = (w.d_conv - 1) * e;
        let ssm_len = e * w.d_state;
        for (b, (seq, y_seq)) in xz
            .data
            .chunks_exact((len * 2 * e).max(1))
            .zip(y.chunks_exact_mut((len * e).max(1)))
            .enumerate()
        {
            let conv = &mut state.conv[b * conv_len..(b + 1) * conv_len];
            let ssm = &mut state.ssm[b * ssm_len..(b + 1) * ssm_len];
            if reverse {
                let flipped = reverse_rows(seq, 2 * e);
                let mut y_flipped = vec![0.0; len * e];
                self.mixer_one(w, &flipped, conv, ssm, &mut y_flipped);
                y_seq.copy_from_slice(&reverse_rows(&y_flipped, e));
            } else {
                self.mixer_one(w, seq, conv, ssm, y_seq);
            }
        }
        Ok(CpuAct { data: y, width: e })
    }

    fn mixer2(
        &self,
        w: &CpuMixer2,
        zxbcdt: &CpuAct,
        state: &mut CpuMixerState,
        reverse: bool,
    ) -> Result<CpuAct> {
        let s = &w.shape;
        let (e, width) = (s.d_inner, s.in_width());
        let batch = state.batch;
        let conv_len = (s.d_conv - 1) * s.conv_dim();
        let ssm_len = e * s.d_state;
        if zxbcdt.width != width
            || batch == 0
            || !zxbcdt.rows().is_multiple_of(batch)
            || state.conv.len() != batch * conv_len
            || state.ssm.len() != batch * ssm_len
        {
            return Err(shape_err("mixer2"));
        }
        let len = zxbcdt.rows() / batch;
        let mut y = vec![0.0; zxbcdt.rows() * e];
        for (b, (seq, y_seq)) in zxbcdt
            .data
            .chunks_exact((len * width).max(1))
            .zip(y.chunks_exact_mut((len * e).max(1)))
            .enumerate()
        {
            let conv = &mut state.conv[b * conv_len..(b + 1) * conv_len];
            let ssm = &mut state.ssm[b * ssm_len..(b + 1) * ssm_len];
            if reverse {
                let flipped = reverse_rows(seq, width);
                let mut y_flipped = vec![0.0; len * e];
                self.mixer2_one(w, &flipped, conv, ssm, &mut y_flipped);
                y_seq.copy_from_slice(&reverse_rows(&y_flipped, e));
            } else {
                self.mixer2_one(w, seq, conv, ssm, y_seq);
            }
        }
        Ok(CpuAct { data: y, width: e })
    }

    /// Splits the sequence at the checkpoints, as [`Ops::mixer_checkpoints`] does.
    fn mixer2_checkpoints(
        &self,
        w: &CpuMixer2,
        zxbcdt: &CpuAct,
        state: &mut CpuMixerState,
        at: &[usize],
    ) -> Result<(CpuAct, Vec<CpuMixerState>)> {
        let s = &w.shape;
        let (e, width) = (s.d_inner, s.in_width());
        if zxbcdt.width != width
            || state.batch != 1
            || state.conv.len() != (s.d_conv - 1) * s.conv_dim()
            || state.ssm.len() != e * s.d_state
        {
            return Err(shape_err("mixer2_checkpoints"));
        }
        let len = zxbcdt.rows();
        let mut y = vec![0.0; len * e];
        let mut copies = Vec::with_capacity(at.len());
        let mut from = 0;
        for &to in at.iter().chain(std::iter::once(&len)) {
            if to > from {
                self.mixer2_one(
                    w,
                    &zxbcdt.data[from * width..to * width],
                    &mut state.conv,
                    &mut state.ssm,
                    &mut y[from * e..to * e],
                );
            }
            if to < len {
                copies.push(state.clone());
            }
            from = to;
        }
        Ok((CpuAct { data: y, width: e }, copies))
    }

    /// Splits the sequence at the checkpoints and copies the state between the pieces: CPU
    /// results do not depend on where a sequence is split.
    fn mixer_checkpoints(
        &self,
        w: &CpuMixer,
        xz: &CpuAct,
        state: &mut CpuMixerState,
        at: &[usize],
    ) -> Result<(CpuAct, Vec<CpuMixerState>)> {
        let e = w.d_inner;
        if xz.width != 2 * e || state.batch != 1 {
            return Err(shape_err("mixer_checkpoints"));
        }
        let len = xz.rows();
        let mut y = vec![0.0; len * e];
        let mut copies = Vec::with_capacity(at.len());
        let mut from = 0;
        for &to in at.iter().chain(std::iter::once(&len)) {
            if to > from {
                self.mixer_one(
                    w,
                    &xz.data[from * 2 * e..to * 2 * e],
                    &mut state.conv,
                    &mut state.ssm,
                    &mut y[from * e..to * e],
                );
            }
            if to < len {
                copies.push(state.clone());
            }
            from = to;
        }
        Ok((CpuAct { data: y, width: e }, copies))
    }

    fn stack_states(&self, parts: &[&CpuMixerState]) -> Result<CpuMixerState> {
        Ok(CpuMixerState {
            conv: parts.iter().flat_map(|p| p.conv.iter().copied()).collect(),
            ssm: parts.iter().flat_map(|p| p.ssm.iter().copied()).collect(),
            batch: parts.iter().map(|p| p.batch).sum(),
        })
    }

    fn unstack_states(
        &self,
        stacked: &CpuMixerState,
        parts: &mut [&mut CpuMixerState],
    ) -> Result<()> {
        let (mut c, mut s) = (0, 0);
        for p in parts.iter_mut() {
            let (nc, ns) = (p.conv.len(), p.ssm.len());
            let (Some(conv), Some(ssm)) = (stacked.conv.get(c..c + nc), stacked.ssm.get(s..s + ns))
            else {
                return Err(shape_err("unstack_states"));
            };
            p.conv.copy_from_slice(conv);
            p.ssm.copy_from_slice(ssm);
            (c, s) = (c + nc, s + ns);
        }
        Ok(())
    }

    fn add(&self, x: &mut CpuAct, y: &CpuAct) -> Result<()> {
        if x.data.len() != y.data.len() {
            return Err(shape_err("add"));
        }
        x.data.iter_mut().zip(&y.data).for_each(|(a, b)| *a += b);
        Ok(())
    }

    fn mul(&self, x: &mut CpuAct, y: &CpuAct) -> Result<()> {
        if x.data.len() != y.data.len() {
            return Err(shape_err("mul"));
        }
        x.data.iter_mut().zip(&y.data).for_each(|(a, b)| *a *= b);
        Ok(())
    }

    fn flip(&self, x: &CpuAct, batch: usize, seq: bool, channels: bool) -> Result<CpuAct> {
        let w = x.width;
        if batch == 0 || !x.rows().is_multiple_of(batch) {
            return Err(shape_err("flip"));
        }
        let len = x.rows() / batch;
        let mut data = Vec::with_capacity(x.data.len());
        for s in x.data.chunks_exact((len * w).max(1)) {
            for t in 0..len {
                let src = if seq { len - 1 - t } else { t };
                let row = &s[src * w..(src + 1) * w];
                if channels {
                    data.extend(row.iter().rev());
                } else {
                    data.extend_from_slice(row);
                }
            }
        }
        Ok(CpuAct { data, width: w })
    }

    fn concat_halves(&self, a: &CpuAct, b: &CpuAct) -> Result<CpuAct> {
        if a.width != b.width || a.data.len() != b.data.len() {
            return Err(shape_err("concat_halves"));
        }
        let mut data = Vec::with_capacity(2 * a.data.len());
        for (ra, rb) in a
            .data
            .chunks_exact(a.width.max(1))
            .zip(b.data.chunks_exact(b.width.max(1)))
        {
            data.extend_from_slice(ra);
            data.extend_from_slice(rb);
        }
        Ok(CpuAct {
            data,
            width: 2 * a.width,
        })
    }

    fn log_softmax(&self, x: &mut CpuAct) -> Result<()> {
        ops::log_softmax_rows(&mut x.data, x.width);
        Ok(())
    }

    fn to_host(&self, x: &CpuAct, out: &mut Vec<f32>) -> Result<()> {
        out.clear();
        out.extend_from_slice(&x.data);
        Ok(())
    }
}

impl CpuOps {
    /// `dst (+)= x · wᵀ`, then the bias.
    fn project(&self, x: &CpuAct, w: &CpuLinear, dst: &mut CpuAct, accumulate: bool) -> Result<()> {
        let (m, k) = (x.rows(), x.width);
        if w.weight.len() != w.out * k || dst.width != w.out || dst.rows() != m {
            return Err(shape_err("linear"));
        }
        if w.packed.inputs() != k {
            return Err(shape_err("linear"));
        }
        gemm::matmul_packed(m, &x.data, k, &w.packed, &mut dst.data, w.out, accumulate);
        if let Some(b) = &w.bias {
            ops::add_bias(&mut dst.data, w.out, b);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::simd::{SimdLevel, cap_simd};
    use super::*;
    use crate::backend::Backend;

    /// A whole pass of the built-in model gives the same bits at every SIMD level (on a CPU
    /// without AVX-512 or AVX2 the wider levels fall back and the test compares less).
    #[test]
    fn every_simd_level_gives_the_same_bits() {
        let model = crate::model::builtin::load().expect("built-in model");
        let backend = CpuBackend::new(&model);
        let tokens: Vec<u32> = (0..777u32).map(|i| 7 + (i * 7 + i / 5) % 4).collect();
        let run = |level| {
            cap_simd(level);
            let mut state = backend.new_state().expect("state");
            let mut logp = Vec::new();
            backend
                .forward(&mut state, &tokens, &mut logp)
                .expect("forward");
            cap_simd(SimdLevel::Avx512);
            (logp, state)
        };
        let portable = run(SimdLevel::Portable);
        assert!(portable.0.iter().all(|v| v.is_finite()));
        assert_eq!(run(SimdLevel::Avx2), portable);
        assert_eq!(run(SimdLevel::Avx512), portable);
    }
}
