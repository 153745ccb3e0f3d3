//! The CPU kernels of a Mamba-2 (SSD) mixer: the scan with per-head scalar decay and the gated
//! RMSNorm.
//!
//! The scan runs sequentially in time, one rayon task per head, each head's state carried in
//! and out, so results do not depend on where a sequence is split into stripes.

use rayon::prelude::*;

use super::ops::{silu, softplus};
use crate::graph::Mamba2Shape;

/// The inputs of [`scan`] for one sequence of `len` rows.
pub struct Scan2Inputs<'a> {
    /// The conv output `[len, conv_dim]`: x (`[num_heads, head_dim]` per row), B, C.
    pub xbc: &'a [f32],
    /// `dt` after softplus and clamping, `[len, num_heads]`.
    pub dt: &'a [f32],
    /// `A = -exp(A_log)`, `[num_heads]`.
    pub a: &'a [f32],
    /// `D`, `[num_heads]`.
    pub d: &'a [f32],
}

/// `dt = clamp(softplus(dt_raw + dt_bias), lo, hi)` for every row: `dt_raw` is read from the
/// last `num_heads` columns of each `in_stride`-wide row of `zxbcdt`; `out` is `[len, heads]`.
pub fn dt_rows(
    zxbcdt: &[f32],
    in_stride: usize,
    dt_bias: &[f32],
    limit: (f32, f32),
    out: &mut [f32],
) {
    let h = dt_bias.len();
    for (row, o) in zxbcdt
        .chunks_exact(in_stride)
        .zip(out.chunks_exact_mut(h.max(1)))
    {
        let raw = &row[in_stride - h..];
        for ((v, r), b) in o.iter_mut().zip(raw).zip(dt_bias) {
            *v = softplus(r + b).clamp(limit.0, limit.1);
        }
    }
}

/// The selective scan of one sequence: for each head `h` (group `g = h / (heads / groups)`),
/// `s ← exp(dt·A_h) · s + (dt · x_h) ⊗ B_g` and `y_h = s · C_g + D_h · x_h`, from and to `ssm`
/// (`[num_heads, head_dim, d_state]`). `y` is `[len, d_inner]`.
pub fn scan(
    shape: &Mamba2Shape,
    inp: &Scan2Inputs<'_>,
    len: usize,
    ssm: &mut [f32],
    y: &mut [f32],
) {
    let (e, n, p, heads) = (
        shape.d_inner,
        shape.d_state,
        shape.head_dim,
        shape.num_heads,
    );
    let conv_dim = shape.conv_dim();
    let per_group = heads / shape.n_groups;
    let head_out: Vec<Vec<f32>> = ssm
        .par_chunks_mut(p * n)
        .enumerate()
        .map(|(h, state)| {
            let g = h / per_group;
            let (a, d) = (inp.a[h], inp.d[h]);
            let mut out = vec![0.0f32; len * p];
            for t in 0..len {
                let row = &inp.xbc[t * conv_dim..(t + 1) * conv_dim];
                let x = &row[h * p..(h + 1) * p];
                let b = &row[e + g * n..e + (g + 1) * n];
                let c = &row[e + (shape.n_groups + g) * n..e + (shape.n_groups + g + 1) * n];
                let dt = inp.dt[t * heads + h];
                let decay = (dt * a).exp();
                for (j, (s, o)) in state
                    .chunks_exact_mut(n)
                    .zip(&mut out[t * p..(t + 1) * p])
                    .enumerate()
                {
                    let dtx = dt * x[j];
                    let mut acc = 0.0f32;
                    for ((sk, bk), ck) in s.iter_mut().zip(b).zip(c) {
                        *sk = decay * *sk + dtx * bk;
                        acc += *sk * ck;
                    }
                    *o = acc + d * x[j];
                }
            }
            out
        })
        .collect();
    for (h, out) in head_out.iter().enumerate() {
        for t in 0..len {
            y[t * e + h * p..t * e + (h + 1) * p].copy_from_slice(&out[t * p..(t + 1) * p]);
        }
    }
}

/// transformers' `MambaRMSNormGated` with the gate: `g = y · SiLU(z)`, then per group of
/// `group` channels `g / sqrt(mean(g²) + eps) · weight`, in place on `y` (`[len, d_inner]`);
/// `z` is read from the first `d_inner` columns of each `z_stride`-wide row.
pub fn gated_rms_norm(
    y: &mut [f32],
    z: &[f32],
    z_stride: usize,
    weight: &[f32],
    group: usize,
    eps: f32,
) {
    let e = weight.len();
    y.par_chunks_mut(e.max(1))
        .zip(z.par_chunks(z_stride.max(1)))
        .for_each(|(row, zrow)| {
            for (v, zv) in row.iter_mut().zip(&zrow[..e]) {
                *v *= silu(*zv);
            }
            for (vals, w) in row.chunks_mut(group).zip(weight.chunks(group)) {
                let ms = vals.iter().map(|v| v * v).sum::<f32>() / group as f32;
                let inv = 1.0 / (ms + eps).sqrt();
                for (v, wk) in vals.iter_mut().zip(w) {
                    *v = wk * (*v * inv);
                }
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape() -> Mamba2Shape {
        Mamba2Shape {
            d_inner: 4,
            d_state: 3,
            d_conv: 4,
            num_heads: 2,
            head_dim: 2,
            n_groups: 2,
            norm_group_size: 4,
            eps: 1e-5,
            dt_limit: (0.0, f32::INFINITY),
        }
    }

    /// One step from a zero state: `y = dt·x·(B·C) + D·x`, each head with its own group.
    #[test]
    fn one_step_from_zero_is_the_closed_form() {
        let s = shape();
        // x (4), B of groups 0 and 1 (2 × 3), C of groups 0 and 1 (2 × 3).
        let xbc = [
            1.0, 2.0, 3.0, 4.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 2.0, 0.0, 0.0, 0.0, 3.0, 0.0,
        ];
        let dt = [0.5, 0.25];
        let inp = Scan2Inputs {
            xbc: &xbc,
            dt: &dt,
            a: &[-1.0, -2.0],
            d: &[0.1, 0.2],
        };
        let mut ssm = vec![0.0; 2 * 2 * 3];
        let mut y = vec![0.0; 4];
        scan(&s, &inp, 1, &mut ssm, &mut y);
        // head 0: B·C = 1·2 = 2; head 1: B·C = 1·3 = 3.
        let want = [
            0.5 * 1.0 * 2.0 + 0.1,
            0.5 * 2.0 * 2.0 + 0.2,
            0.25 * 3.0 * 3.0 + 0.6,
            0.25 * 4.0 * 3.0 + 0.8,
        ];
        for (a, b) in y.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{y:?} vs {want:?}");
        }
        // The second step decays the state by exp(dt·A).
        let mut y2 = vec![0.0; 4];
        let zero_x = [0.0; 16];
        let mut xbc2 = zero_x;
        xbc2[4..].copy_from_slice(&xbc[4..]);
        let inp2 = Scan2Inputs { xbc: &xbc2, ..inp };
        scan(&s, &inp2, 1, &mut ssm, &mut y2);
        let decay0 = (-0.5f32).exp();
        assert!(
            (y2[0] - decay0 * want[0] + decay0 * 0.1).abs() < 1e-6,
            "{y2:?}"
        );
    }

    #[test]
    fn gated_norm_by_groups() {
        let mut y = vec![1.0, 2.0, 3.0, 4.0];
        let z = [10.0, 10.0, 10.0, 10.0, 99.0];
        gated_rms_norm(&mut y, &z, 5, &[1.0; 4], 2, 0.0);
        let g = silu(10.0);
        let first = g / ((g * g + 4.0 * g * g) / 2.0).sqrt();
        assert!((y[0] - first).abs() < 1e-6, "{y:?}");
        // Each group is normalised on its own: mean square 1 within each.
        let ms = (y[2] * y[2] + y[3] * y[3]) / 2.0;
        assert!((ms - 1.0).abs() < 1e-5, "{y:?}");
    }
}
