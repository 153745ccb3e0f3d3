//! The CPU kernels of a Mamba-1 block: matmul, RMSNorm, causal conv, selective scan, log-softmax.
//!
//! Activations are row-major `[time, channel]` unless a function says otherwise. Every kernel
//! that crosses a stripe boundary takes the carried state and returns the new one.

use rayon::prelude::*;

/// Channels handled by one rayon task in the conv and scan kernels.
const CHANNEL_BLOCK: usize = 16;
/// Rows handled by one rayon task in row-wise kernels.
const ROW_BLOCK: usize = 256;

/// Lanes of the partial sums in [`dot`]; fixed so results never depend on tiling.
const LANES: usize = 8;

/// `Σ a[i]·b[i]` with a fixed summation order: `LANES` interleaved partial sums reduced as a
/// tree, then the tail. Every output element of [`matmul_wt`] is computed by exactly this
/// order, so a row's result does not depend on how many rows a stripe has.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let split = a.len() / LANES * LANES;
    for (ca, cb) in a[..split]
        .chunks_exact(LANES)
        .zip(b[..split].chunks_exact(LANES))
    {
        for l in 0..LANES {
            acc[l] += ca[l] * cb[l];
        }
    }
    let mut tail = 0.0f32;
    for (x, y) in a[split..].iter().zip(&b[split..]) {
        tail += x * y;
    }
    reduce(acc) + tail
}

#[inline(always)]
fn reduce(acc: [f32; LANES]) -> f32 {
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
}

/// `dot` of one `a` row against four `w` rows at once, each with [`dot`]'s exact order.
#[inline(always)]
fn dot4(a: &[f32], w: [&[f32]; 4]) -> [f32; 4] {
    let mut acc = [[0.0f32; LANES]; 4];
    let split = a.len() / LANES * LANES;
    for i in (0..split).step_by(LANES) {
        let ca = &a[i..i + LANES];
        for (acc, w) in acc.iter_mut().zip(&w) {
            let cw = &w[i..i + LANES];
            for l in 0..LANES {
                acc[l] += ca[l] * cw[l];
            }
        }
    }
    let mut out = [0.0f32; 4];
    for j in 0..4 {
        let mut tail = 0.0f32;
        for (x, y) in a[split..].iter().zip(&w[j][split..]) {
            tail += x * y;
        }
        out[j] = reduce(acc[j]) + tail;
    }
    out
}

/// `dst[m, n] (+)= lhs[m, k] · w[n, k]ᵀ`: `lhs` rows are `k` contiguous values `lhs_stride`
/// apart, `w` is a dense row-major `[n, k]` weight (PyTorch's `Linear` layout), `dst` rows are
/// `dst_stride` apart. With `accumulate` the product is added to `dst`.
///
/// Each element is one [`dot`] in a fixed order, so results are bit-identical whatever `m` is:
/// the stripe loop then gives exactly the unbroken scan.
#[allow(clippy::too_many_arguments)]
pub fn matmul_wt(
    m: usize,
    n: usize,
    k: usize,
    lhs: &[f32],
    lhs_stride: usize,
    w: &[f32],
    dst: &mut [f32],
    dst_stride: usize,
    accumulate: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(w.len() >= n * k, "weight too small for matmul");
    assert!(
        lhs.len() >= (m - 1) * lhs_stride + k,
        "lhs too small for matmul"
    );
    assert!(
        dst.len() >= (m - 1) * dst_stride + n,
        "destination too small for matmul"
    );
    let rows_per_task = (ROW_BLOCK * 64 / k.max(1)).clamp(1, ROW_BLOCK);
    dst[..(m - 1) * dst_stride + n]
        .par_chunks_mut(dst_stride * rows_per_task)
        .enumerate()
        .for_each(|(block, dst)| {
            let first = block * rows_per_task;
            for (r, out) in dst.chunks_mut(dst_stride).enumerate() {
                let row = first + r;
                if row >= m {
                    break;
                }
                let a = &lhs[row * lhs_stride..row * lhs_stride + k];
                let out = &mut out[..n];
                let mut j = 0;
                while j + 4 <= n {
                    let ws = [0, 1, 2, 3].map(|q| &w[(j + q) * k..(j + q + 1) * k]);
                    let v = dot4(a, ws);
                    for q in 0..4 {
                        out[j + q] = if accumulate { out[j + q] + v[q] } else { v[q] };
                    }
                    j += 4;
                }
                for (jj, o) in out.iter_mut().enumerate().skip(j) {
                    let v = dot(a, &w[jj * k..(jj + 1) * k]);
                    *o = if accumulate { *o + v } else { v };
                }
            }
        });
}

/// Transposes a channel-major `[c, t]` matrix into row-major `[t, c]`.
pub fn transpose(src: &[f32], channels: usize, len: usize, dst: &mut [f32]) {
    dst.par_chunks_mut(channels * ROW_BLOCK)
        .enumerate()
        .for_each(|(block, rows)| {
            for (r, row) in rows.chunks_exact_mut(channels).enumerate() {
                let t = block * ROW_BLOCK + r;
                for (c, v) in row.iter_mut().enumerate() {
                    *v = src[c * len + t];
                }
            }
        });
}

/// Adds `bias[j]` to every row of a row-major `[rows, bias.len()]` matrix with row stride `stride`.
pub fn add_bias(x: &mut [f32], stride: usize, bias: &[f32]) {
    for row in x.chunks_mut(stride) {
        for (v, b) in row.iter_mut().zip(bias) {
            *v += b;
        }
    }
}

/// RMSNorm of every row of `x` (`[rows, d]`) into `out`: `x / sqrt(mean(x²) + eps) * weight`.
pub fn rms_norm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    let d = weight.len();
    out.par_chunks_mut(d * ROW_BLOCK)
        .zip(x.par_chunks(d * ROW_BLOCK))
        .for_each(|(out, x)| {
            for (o, x) in out.chunks_exact_mut(d).zip(x.chunks_exact(d)) {
                let mean_sq = x.iter().map(|v| v * v).sum::<f32>() / d as f32;
                let scale = 1.0 / (mean_sq + eps).sqrt();
                for ((o, x), w) in o.iter_mut().zip(x).zip(weight) {
                    *o = x * scale * w;
                }
            }
        });
}

/// SiLU, `x · σ(x)`.
#[inline]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

/// Softplus with PyTorch's default threshold: `x` above 20, else `ln(1 + eˣ)`.
#[inline]
pub fn softplus(x: f32) -> f32 {
    if x > 20.0 { x } else { x.exp().ln_1p() }
}

/// Causal depthwise convolution with SiLU, carrying the last `d_conv - 1` inputs.
///
/// `input` is `[len, d_inner]` with row stride `in_stride` (the x half of `in_proj`'s output);
/// `conv_state` holds the previous `d_conv - 1` inputs, oldest first, `[d_conv - 1, d_inner]`,
/// and is replaced by the last `d_conv - 1` inputs of the extended sequence.
/// `weight` is `[d_inner, d_conv]`; the result `out` is dense `[len, d_inner]`.
pub fn causal_conv_silu(
    input: &[f32],
    in_stride: usize,
    len: usize,
    conv_state: &mut [f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    let e = out.len() / len.max(1);
    let k = weight.len() / e;
    let history = k - 1;
    // The input at time `t` of the extended sequence, where t < 0 reads the carried state.
    let at = |t: isize, c: usize| -> f32 {
        if t < 0 {
            conv_state[(history as isize + t) as usize * e + c]
        } else {
            input[t as usize * in_stride + c]
        }
    };
    out.par_chunks_mut(e * ROW_BLOCK)
        .enumerate()
        .for_each(|(block, rows)| {
            for (r, row) in rows.chunks_exact_mut(e).enumerate() {
                let t = (block * ROW_BLOCK + r) as isize;
                for (c, o) in row.iter_mut().enumerate() {
                    let w = &weight[c * k..(c + 1) * k];
                    let mut acc = bias.map_or(0.0, |b| b[c]);
                    for (j, wj) in w.iter().enumerate() {
                        acc += wj * at(t - history as isize + j as isize, c);
                    }
                    *o = silu(acc);
                }
            }
        });
    let mut next = vec![0.0; history * e];
    for i in 0..history {
        let t = len as isize - history as isize + i as isize;
        for c in 0..e {
            next[i * e + c] = at(t, c);
        }
    }
    conv_state.copy_from_slice(&next);
}

/// Inputs of the selective scan for one stripe, all row-major over time.
pub struct ScanInputs<'a> {
    /// Conv output `u`, dense `[len, d_inner]`.
    pub u: &'a [f32],
    /// Softplus'd step size `Δ`, dense `[len, d_inner]`.
    pub delta: &'a [f32],
    /// Gate `z`, `[len, d_inner]` with row stride `z_stride`.
    pub z: &'a [f32],
    /// Row stride of `z`.
    pub z_stride: usize,
    /// `B` and `C`: `x_proj` output rows, `B` at column `b_offset`, `C` at `b_offset + d_state`.
    pub bc: &'a [f32],
    /// Row stride of `bc`.
    pub bc_stride: usize,
    /// Column of `B`'s first element in a `bc` row.
    pub b_offset: usize,
    /// `A = -exp(A_log)`, `[d_inner, d_state]`.
    pub a: &'a [f32],
    /// Skip weights `D`, `[d_inner]`.
    pub d: &'a [f32],
}

/// The selective scan with D skip and SiLU(z) gate, parallel over blocks of channels.
///
/// `ssm_state` is `[d_inner, d_state]`, updated in place to the state after the last step.
/// Writes `y` channel-major: `y[c * len + t]`.
pub fn selective_scan(inp: &ScanInputs<'_>, len: usize, ssm_state: &mut [f32], y: &mut [f32]) {
    let e = inp.d.len();
    let n = inp.a.len() / e;
    ssm_state
        .par_chunks_mut(CHANNEL_BLOCK * n)
        .zip(y.par_chunks_mut(CHANNEL_BLOCK * len))
        .enumerate()
        .for_each(|(block, (state, y))| {
            let c0 = block * CHANNEL_BLOCK;
            let channels = state.len() / n;
            for t in 0..len {
                let bc = &inp.bc[t * inp.bc_stride + inp.b_offset..];
                let (b, cmat) = (&bc[..n], &bc[n..2 * n]);
                for ci in 0..channels {
                    let c = c0 + ci;
                    let dt = inp.delta[t * e + c];
                    let u = inp.u[t * e + c];
                    let a = &inp.a[c * n..(c + 1) * n];
                    let s = &mut state[ci * n..(ci + 1) * n];
                    let dtu = dt * u;
                    let mut acc = 0.0f32;
                    for j in 0..n {
                        let sj = (dt * a[j]).exp() * s[j] + dtu * b[j];
                        s[j] = sj;
                        acc += sj * cmat[j];
                    }
                    let out = acc + inp.d[c] * u;
                    y[ci * len + t] = out * silu(inp.z[t * inp.z_stride + c]);
                }
            }
        });
}

/// Replaces every row of `x` (`[rows, v]`) by its log-softmax.
pub fn log_softmax_rows(x: &mut [f32], v: usize) {
    x.par_chunks_mut(v * ROW_BLOCK).for_each(|rows| {
        for row in rows.chunks_exact_mut(v) {
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let sum: f32 = row.iter().map(|x| (x - max).exp()).sum();
            let log_z = max + sum.ln();
            for x in row.iter_mut() {
                *x -= log_z;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matmul_matches_naive_and_is_row_count_invariant() {
        let (m, n, k) = (7, 6, 19);
        let a: Vec<f32> = (0..m * k).map(|i| i as f32 * 0.37 - 3.0).collect();
        let w: Vec<f32> = (0..n * k).map(|i| (i as f32).sin()).collect();
        let mut dst = vec![1.0; m * n];
        matmul_wt(m, n, k, &a, k, &w, &mut dst, n, true);
        for i in 0..m {
            for j in 0..n {
                let want: f64 = 1.0
                    + (0..k)
                        .map(|l| a[i * k + l] as f64 * w[j * k + l] as f64)
                        .sum::<f64>();
                assert!((dst[i * n + j] as f64 - want).abs() < 1e-4, "{i},{j}");
            }
        }
        // One row at a time gives the very same bits.
        for i in 0..m {
            let mut row = vec![1.0; n];
            matmul_wt(1, n, k, &a[i * k..], k, &w, &mut row, n, true);
            assert_eq!(row, dst[i * n..(i + 1) * n]);
        }
    }

    #[test]
    fn transpose_round_trips() {
        let src: Vec<f32> = (0..12).map(|i| i as f32).collect();
        let mut dst = vec![0.0; 12];
        transpose(&src, 3, 4, &mut dst);
        assert_eq!(dst[..6], [0.0, 4.0, 8.0, 1.0, 5.0, 9.0]);
    }

    #[test]
    fn conv_carries_state_across_calls() {
        // One channel, kernel [1, 2, 3]: y_t = silu(x_{t-2} + 2 x_{t-1} + 3 x_t).
        let w = [1.0, 2.0, 3.0];
        let x = [1.0, -1.0, 0.5, 2.0];
        let mut state = [0.0, 0.0];
        let mut whole = [0.0; 4];
        causal_conv_silu(&x, 1, 4, &mut state, &w, None, &mut whole);
        let expected = [3.0, -1.0, 0.5, 6.0].map(silu);
        for (a, b) in whole.iter().zip(expected) {
            assert!((a - b).abs() < 1e-6);
        }
        assert_eq!(state, [0.5, 2.0]);
        let mut state = [0.0, 0.0];
        let mut parts = [0.0; 4];
        causal_conv_silu(&x[..1], 1, 1, &mut state, &w, None, &mut parts[..1]);
        causal_conv_silu(&x[1..], 1, 3, &mut state, &w, None, &mut parts[1..]);
        assert_eq!(whole, parts);
    }

    #[test]
    fn scan_matches_hand_computed_two_steps() {
        // One channel, one state: s1 = dt*B*u = 0.5*2*1 = 1; y1 = s1*C + D*u = 3 + 0.5.
        let a = [-1.0f32];
        let inp = ScanInputs {
            u: &[1.0, 1.0],
            delta: &[0.5, 0.5],
            z: &[100.0, 100.0],
            z_stride: 1,
            bc: &[2.0, 3.0, 2.0, 3.0],
            bc_stride: 2,
            b_offset: 0,
            a: &a,
            d: &[0.5],
        };
        let mut s = [0.0];
        let mut y = [0.0; 2];
        selective_scan(&inp, 2, &mut s, &mut y);
        // gate: silu(z) = z·σ(z), with z = 100 that is 100 to within f32 rounding.
        let s2 = (-0.5f32).exp() * 1.0 + 1.0;
        assert!((y[0] - 3.5 * 100.0).abs() < 1e-3);
        assert!((y[1] - (s2 * 3.0 + 0.5) * 100.0).abs() < 1e-3);
        assert!((s[0] - s2).abs() < 1e-6);
    }

    #[test]
    fn log_softmax_normalises() {
        let mut x = vec![1.0, 2.0, 3.0, 0.0, 0.0, 0.0];
        log_softmax_rows(&mut x, 3);
        for row in x.chunks(3) {
            let total: f32 = row.iter().map(|v| v.exp()).sum();
            assert!((total - 1.0).abs() < 1e-6);
        }
        assert!((x[3] - (1.0f32 / 3.0).ln()).abs() < 1e-6);
    }
}
