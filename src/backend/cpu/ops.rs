//! The CPU kernels of a Mamba-1 block: matmul, RMSNorm, causal conv, selective scan, log-softmax.
//!
//! Activations are row-major `[time, channel]` unless a function says otherwise. Every kernel
//! that crosses a stripe boundary takes the carried state and returns the new one.

use rayon::prelude::*;

use super::simd::{self, simd_dispatch};

/// Channels handled by one rayon task in the conv and scan kernels.
const CHANNEL_BLOCK: usize = 16;
/// Rows handled by one rayon task in row-wise kernels (a 1,024-token stripe gives 16 tasks,
/// enough for 16 threads).
const ROW_BLOCK: usize = 64;

/// Lanes of the partial sums in a dot product; fixed so results never depend on tiling.
const LANES: usize = 8;

#[inline(always)]
fn reduce(acc: [f32; LANES]) -> f32 {
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
}

/// Dot products of `R` rows of `a` with `C` rows of `w`, all of length `k`. Every product is
/// summed in the same order — `LANES` interleaved partial sums reduced as a tree, then the
/// tail — whatever `R` and `C` are, so tiling never changes a result.
#[inline(always)]
fn tile<const R: usize, const C: usize>(a: [&[f32]; R], w: [&[f32]; C], k: usize) -> [[f32; C]; R] {
    let a = a.map(|x| &x[..k]);
    let w = w.map(|x| &x[..k]);
    let mut acc = [[[0.0f32; LANES]; C]; R];
    let split = k / LANES * LANES;
    let mut i = 0;
    while i < split {
        for r in 0..R {
            let ca: &[f32; LANES] = a[r][i..i + LANES].try_into().expect("lane chunk");
            for c in 0..C {
                let cw: &[f32; LANES] = w[c][i..i + LANES].try_into().expect("lane chunk");
                for l in 0..LANES {
                    acc[r][c][l] += ca[l] * cw[l];
                }
            }
        }
        i += LANES;
    }
    let mut out = [[0.0f32; C]; R];
    for r in 0..R {
        for c in 0..C {
            let mut tail = 0.0f32;
            for j in split..k {
                tail += a[r][j] * w[c][j];
            }
            out[r][c] = reduce(acc[r][c]) + tail;
        }
    }
    out
}

#[inline(always)]
fn store(out: &mut f32, v: f32, accumulate: bool) {
    *out = if accumulate { *out + v } else { v };
}

/// `tile` through AVX2 when `avx` is set (same summation order, same bits).
#[inline(always)]
fn tile_any<const R: usize, const C: usize>(
    avx: bool,
    a: [&[f32]; R],
    w: [&[f32]; C],
    k: usize,
) -> [[f32; C]; R] {
    #[cfg(target_arch = "x86_64")]
    if avx {
        // SAFETY: `avx` is only set when the CPU has AVX2 and FMA; slices are length-checked.
        return unsafe { avx2::tile::<R, C>(a, w, k) };
    }
    let _ = avx;
    tile::<R, C>(a, w, k)
}

/// Whether this CPU runs the AVX2 kernels.
pub fn has_avx2() -> bool {
    simd::avx2_enabled()
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{LANES, ScanInputs, YOut, reduce};
    use crate::backend::cpu::simd::avx2 as vmath;

    /// [`super::scan_group`] for a full group of 8 channels, one channel per lane; the same
    /// operations in the same order (FMA where it uses `mul_add`).
    ///
    /// # Safety
    /// The CPU must have AVX2 and FMA, and `y` must be valid for writes of columns
    /// `c0..c0 + 8` of rows `0..len` (see [`super::YOut`]).
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn scan_group(
        inp: &ScanInputs<'_>,
        a_t: &[f32],
        len: usize,
        c0: usize,
        state: &mut [f32],
        y: &YOut,
    ) {
        let e = inp.d.len();
        let n = a_t.len() / e;
        let load = |src: &[f32], at: usize| -> __m256 {
            let lanes = &src[at..at + LANES];
            // SAFETY: `lanes` is 8 floats long.
            unsafe { _mm256_loadu_ps(lanes.as_ptr()) }
        };
        let mut s: Vec<__m256> = (0..n)
            .map(|j| {
                let mut v = [0.0f32; LANES];
                for (l, x) in v.iter_mut().enumerate() {
                    *x = state[l * n + j];
                }
                // SAFETY: `v` is 8 floats long.
                unsafe { _mm256_loadu_ps(v.as_ptr()) }
            })
            .collect();
        let a: Vec<__m256> = (0..n).map(|j| load(a_t, j * e + c0)).collect();
        let d = load(inp.d, c0);
        for t in 0..len {
            let dt = load(inp.delta, t * e + c0);
            let u = load(inp.u, t * e + c0);
            let z = load(inp.z, t * inp.z_stride + c0);
            let bc = &inp.bc[t * inp.bc_stride + inp.b_offset..][..2 * n];
            let (b, cm) = bc.split_at(n);
            let dtu = _mm256_mul_ps(dt, u);
            let mut acc = _mm256_setzero_ps();
            for (((sj, aj), bj), cj) in s.iter_mut().zip(&a).zip(b).zip(cm) {
                let decay = vmath::exp(_mm256_mul_ps(dt, *aj));
                let next = _mm256_fmadd_ps(decay, *sj, _mm256_mul_ps(dtu, _mm256_set1_ps(*bj)));
                *sj = next;
                acc = _mm256_fmadd_ps(next, _mm256_set1_ps(*cj), acc);
            }
            let o = _mm256_mul_ps(_mm256_add_ps(acc, _mm256_mul_ps(d, u)), vmath::silu(z));
            // SAFETY: the caller hands this group columns c0..c0 + 8 of rows 0..len.
            unsafe { _mm256_storeu_ps(y.at(t, c0), o) };
        }
        for (j, sj) in s.iter().enumerate() {
            let mut v = [0.0f32; LANES];
            // SAFETY: `v` is 8 floats long.
            unsafe { _mm256_storeu_ps(v.as_mut_ptr(), *sj) };
            for (l, x) in v.iter().enumerate() {
                state[l * n + j] = *x;
            }
        }
    }

    /// [`super::tile`] with one 8-lane register per partial-sum vector. Multiply and add stay
    /// separate instructions (no FMA), so every lane rounds exactly as the portable code does.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn tile<const R: usize, const C: usize>(
        a: [&[f32]; R],
        w: [&[f32]; C],
        k: usize,
    ) -> [[f32; C]; R] {
        let a = a.map(|x| &x[..k]);
        let w = w.map(|x| &x[..k]);
        let mut acc = [[_mm256_setzero_ps(); C]; R];
        let split = k / LANES * LANES;
        let mut i = 0;
        while i < split {
            let mut wv = [_mm256_setzero_ps(); C];
            for c in 0..C {
                // SAFETY: i + LANES <= split <= k = w[c].len().
                wv[c] = unsafe { _mm256_loadu_ps(w[c].as_ptr().add(i)) };
            }
            for r in 0..R {
                // SAFETY: as above for a[r].
                let av = unsafe { _mm256_loadu_ps(a[r].as_ptr().add(i)) };
                for c in 0..C {
                    acc[r][c] = _mm256_add_ps(acc[r][c], _mm256_mul_ps(av, wv[c]));
                }
            }
            i += LANES;
        }
        let mut out = [[0.0f32; C]; R];
        for r in 0..R {
            for c in 0..C {
                let mut lanes = [0.0f32; LANES];
                // SAFETY: `lanes` holds exactly 8 floats.
                unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), acc[r][c]) };
                let mut tail = 0.0f32;
                for j in split..k {
                    tail += a[r][j] * w[c][j];
                }
                out[r][c] = reduce(lanes) + tail;
            }
        }
        out
    }
}

#[cfg(target_arch = "aarch64")]
mod neon {
    use std::arch::aarch64::*;

    use super::{LANES, ScanInputs, YOut};
    use crate::backend::cpu::simd::neon as vmath;

    /// [`super::scan_group`] for a full group of 8 channels, one channel per lane (two 4-lane
    /// registers); the same operations in the same order (fused multiply-add where it uses
    /// `mul_add`), so the same bits.
    ///
    /// # Safety
    /// The CPU must have NEON, and `y` must be valid for writes of columns `c0..c0 + 8` of
    /// rows `0..len` (see [`super::YOut`]).
    #[target_feature(enable = "neon")]
    pub unsafe fn scan_group(
        inp: &ScanInputs<'_>,
        a_t: &[f32],
        len: usize,
        c0: usize,
        state: &mut [f32],
        y: &YOut,
    ) {
        let e = inp.d.len();
        let n = a_t.len() / e;
        let load = |src: &[f32], at: usize| -> [float32x4_t; 2] {
            let lanes = &src[at..at + LANES];
            // SAFETY: `lanes` is 8 floats long.
            unsafe { [vld1q_f32(lanes.as_ptr()), vld1q_f32(lanes.as_ptr().add(4))] }
        };
        let mut s: Vec<[float32x4_t; 2]> = (0..n)
            .map(|j| {
                let mut v = [0.0f32; LANES];
                for (l, x) in v.iter_mut().enumerate() {
                    *x = state[l * n + j];
                }
                load(&v, 0)
            })
            .collect();
        let a: Vec<[float32x4_t; 2]> = (0..n).map(|j| load(a_t, j * e + c0)).collect();
        let d = load(inp.d, c0);
        for t in 0..len {
            let dt = load(inp.delta, t * e + c0);
            let u = load(inp.u, t * e + c0);
            let z = load(inp.z, t * inp.z_stride + c0);
            let bc = &inp.bc[t * inp.bc_stride + inp.b_offset..][..2 * n];
            let (b, cm) = bc.split_at(n);
            for h in 0..2 {
                let dtu = vmulq_f32(dt[h], u[h]);
                let mut acc = vdupq_n_f32(0.0);
                for (((sj, aj), bj), cj) in s.iter_mut().zip(&a).zip(b).zip(cm) {
                    let decay = vmath::exp(vmulq_f32(dt[h], aj[h]));
                    // fma(decay, s, dtu·b) and fma(next, c, acc), as `mul_add` does.
                    let next = vfmaq_f32(vmulq_f32(dtu, vdupq_n_f32(*bj)), decay, sj[h]);
                    sj[h] = next;
                    acc = vfmaq_f32(acc, next, vdupq_n_f32(*cj));
                }
                let o = vmulq_f32(vaddq_f32(acc, vmulq_f32(d[h], u[h])), vmath::silu(z[h]));
                // SAFETY: the caller hands this group columns c0..c0 + 8 of rows 0..len.
                unsafe { vst1q_f32(y.at(t, c0 + 4 * h), o) };
            }
        }
        for (j, sj) in s.iter().enumerate() {
            let mut v = [0.0f32; LANES];
            // SAFETY: `v` is 8 floats long.
            unsafe {
                vst1q_f32(v.as_mut_ptr(), sj[0]);
                vst1q_f32(v.as_mut_ptr().add(4), sj[1]);
            }
            for (l, x) in v.iter().enumerate() {
                state[l * n + j] = *x;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::{ScanInputs, YOut};
    use crate::backend::cpu::simd::avx512 as vmath;

    /// Channels per AVX-512 group.
    pub const WIDE: usize = 16;

    /// [`super::avx2::scan_group`] for 16 channels at once: per lane the same operations in
    /// the same order, so the same bits.
    ///
    /// # Safety
    /// The CPU must have AVX-512 F and VL, and `y` must be valid for writes of columns
    /// `c0..c0 + 16` of rows `0..len` (see [`super::YOut`]).
    #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
    pub unsafe fn scan_group(
        inp: &ScanInputs<'_>,
        a_t: &[f32],
        len: usize,
        c0: usize,
        state: &mut [f32],
        y: &YOut,
    ) {
        let e = inp.d.len();
        let n = a_t.len() / e;
        let load = |src: &[f32], at: usize| -> __m512 {
            let lanes = &src[at..at + WIDE];
            // SAFETY: `lanes` is 16 floats long.
            unsafe { _mm512_loadu_ps(lanes.as_ptr()) }
        };
        let mut s: Vec<__m512> = (0..n)
            .map(|j| {
                let mut v = [0.0f32; WIDE];
                for (l, x) in v.iter_mut().enumerate() {
                    *x = state[l * n + j];
                }
                // SAFETY: `v` is 16 floats long.
                unsafe { _mm512_loadu_ps(v.as_ptr()) }
            })
            .collect();
        let a: Vec<__m512> = (0..n).map(|j| load(a_t, j * e + c0)).collect();
        let d = load(inp.d, c0);
        for t in 0..len {
            let dt = load(inp.delta, t * e + c0);
            let u = load(inp.u, t * e + c0);
            let z = load(inp.z, t * inp.z_stride + c0);
            let bc = &inp.bc[t * inp.bc_stride + inp.b_offset..][..2 * n];
            let (b, cm) = bc.split_at(n);
            let dtu = _mm512_mul_ps(dt, u);
            let mut acc = _mm512_setzero_ps();
            // States two at a time (their exps interleaved); C is summed in order as before.
            let pairs = n / 2 * 2;
            for j in (0..pairs).step_by(2) {
                let (d0, d1) = vmath::exp2x(_mm512_mul_ps(dt, a[j]), _mm512_mul_ps(dt, a[j + 1]));
                let n0 = _mm512_fmadd_ps(d0, s[j], _mm512_mul_ps(dtu, _mm512_set1_ps(b[j])));
                let n1 =
                    _mm512_fmadd_ps(d1, s[j + 1], _mm512_mul_ps(dtu, _mm512_set1_ps(b[j + 1])));
                s[j] = n0;
                s[j + 1] = n1;
                acc = _mm512_fmadd_ps(n0, _mm512_set1_ps(cm[j]), acc);
                acc = _mm512_fmadd_ps(n1, _mm512_set1_ps(cm[j + 1]), acc);
            }
            for j in pairs..n {
                let decay = vmath::exp(_mm512_mul_ps(dt, a[j]));
                let next = _mm512_fmadd_ps(decay, s[j], _mm512_mul_ps(dtu, _mm512_set1_ps(b[j])));
                s[j] = next;
                acc = _mm512_fmadd_ps(next, _mm512_set1_ps(cm[j]), acc);
            }
            let o = _mm512_mul_ps(_mm512_add_ps(acc, _mm512_mul_ps(d, u)), vmath::silu(z));
            // SAFETY: the caller hands this group columns c0..c0 + 16 of rows 0..len.
            unsafe { _mm512_storeu_ps(y.at(t, c0), o) };
        }
        for (j, sj) in s.iter().enumerate() {
            let mut v = [0.0f32; WIDE];
            // SAFETY: `v` is 16 floats long.
            unsafe { _mm512_storeu_ps(v.as_mut_ptr(), *sj) };
            for (l, x) in v.iter().enumerate() {
                state[l * n + j] = *x;
            }
        }
    }
}

/// Rows `first..first + rows` of `dst = lhs · wᵀ` (see [`matmul_wt`]), in tiles of
/// 2 rows × 4 outputs.
#[allow(clippy::too_many_arguments)]
fn matmul_rows(
    avx: bool,
    first: usize,
    rows: usize,
    n: usize,
    k: usize,
    lhs: &[f32],
    lhs_stride: usize,
    w: &[f32],
    dst: &mut [f32],
    dst_stride: usize,
    accumulate: bool,
) {
    let row = |r: usize| &lhs[(first + r) * lhs_stride..(first + r) * lhs_stride + k];
    let wrow = |j: usize| &w[j * k..(j + 1) * k];
    let mut r = 0;
    while r < rows {
        let pair = r + 1 < rows;
        let mut j = 0;
        while j + 4 <= n {
            let ws = [wrow(j), wrow(j + 1), wrow(j + 2), wrow(j + 3)];
            if pair {
                let v = tile_any::<2, 4>(avx, [row(r), row(r + 1)], ws, k);
                for q in 0..4 {
                    store(&mut dst[r * dst_stride + j + q], v[0][q], accumulate);
                    store(&mut dst[(r + 1) * dst_stride + j + q], v[1][q], accumulate);
                }
            } else {
                let v = tile_any::<1, 4>(avx, [row(r)], ws, k);
                for q in 0..4 {
                    store(&mut dst[r * dst_stride + j + q], v[0][q], accumulate);
                }
            }
            j += 4;
        }
        while j < n {
            for rr in r..(r + if pair { 2 } else { 1 }) {
                let v = tile_any::<1, 1>(avx, [row(rr)], [wrow(j)], k);
                store(&mut dst[rr * dst_stride + j], v[0][0], accumulate);
            }
            j += 1;
        }
        r += if pair { 2 } else { 1 };
    }
}

/// `dst[m, n] (+)= lhs[m, k] · w[n, k]ᵀ`: `lhs` rows are `k` contiguous values `lhs_stride`
/// apart, `w` is a dense row-major `[n, k]` weight (PyTorch's `Linear` layout), `dst` rows are
/// `dst_stride` apart. With `accumulate` the product is added to `dst`.
///
/// Each element is summed in one fixed order, so results are bit-identical whatever `m` is:
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
    // Rows per task: an even number, enough work to amortise scheduling.
    let rows_per_task = ((1usize << 18) / (n * k).max(1)).clamp(2, ROW_BLOCK) & !1;
    let avx = has_avx2();
    dst[..(m - 1) * dst_stride + n]
        .par_chunks_mut(dst_stride * rows_per_task)
        .enumerate()
        .for_each(|(block, dst)| {
            let first = block * rows_per_task;
            let rows = rows_per_task.min(m - first);
            matmul_rows(
                avx, first, rows, n, k, lhs, lhs_stride, w, dst, dst_stride, accumulate,
            );
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
            // Each row's sum of squares is summed in order (as `Iterator::sum` does), but
            // eight rows side by side: eight independent add chains instead of one.
            const ROWS: usize = 8;
            let mut rows = x.chunks_exact(d * ROWS);
            let mut outs = out.chunks_exact_mut(d * ROWS);
            for (o8, x8) in (&mut outs).zip(&mut rows) {
                let mut sum = [0.0f32; ROWS];
                for j in 0..d {
                    for (r, s) in sum.iter_mut().enumerate() {
                        let v = x8[r * d + j];
                        *s += v * v;
                    }
                }
                for (r, s) in sum.iter().enumerate() {
                    let scale = 1.0 / (s / d as f32 + eps).sqrt();
                    let (o, x) = (&mut o8[r * d..(r + 1) * d], &x8[r * d..(r + 1) * d]);
                    for ((o, x), w) in o.iter_mut().zip(x).zip(weight) {
                        *o = x * scale * w;
                    }
                }
            }
            let (out, x) = (outs.into_remainder(), rows.remainder());
            for (o, x) in out.chunks_exact_mut(d).zip(x.chunks_exact(d)) {
                let mean_sq = x.iter().map(|v| v * v).sum::<f32>() / d as f32;
                let scale = 1.0 / (mean_sq + eps).sqrt();
                for ((o, x), w) in o.iter_mut().zip(x).zip(weight) {
                    *o = x * scale * w;
                }
            }
        });
}

pub use super::simd::{silu, softplus};

/// `x = softplus(x + bias)` on every row of a dense `[rows, bias.len()]` matrix, parallel
/// over blocks of rows.
pub fn softplus_bias_rows(x: &mut [f32], bias: &[f32]) {
    x.par_chunks_mut(bias.len().max(1) * ROW_BLOCK)
        .for_each(|rows| softplus_bias_block(rows, bias));
}

simd_dispatch! {
    /// [`softplus_bias_rows`] on one block of rows.
    fn softplus_bias_block(x: &mut [f32], bias: &[f32]) {
        for row in x.chunks_exact_mut(bias.len()) {
            for (v, b) in row.iter_mut().zip(bias) {
                *v = softplus(*v + b);
            }
        }
    }
}

/// Longest convolution kernel the CPU backend supports.
pub const MAX_CONV_KERNEL: usize = 16;

/// Causal depthwise convolution with SiLU, carrying the last `d_conv - 1` inputs.
///
/// `input` is `[len, d_inner]` with row stride `in_stride` (the x half of `in_proj`'s output);
/// `conv_state` holds the previous `d_conv - 1` inputs, oldest first, `[d_conv - 1, d_inner]`,
/// and is replaced by the last `d_conv - 1` inputs of the extended sequence.
/// `weight_t` is the kernel transposed to `[d_conv, d_inner]`; `out` is dense `[len, d_inner]`.
pub fn causal_conv_silu(
    input: &[f32],
    in_stride: usize,
    len: usize,
    conv_state: &mut [f32],
    weight_t: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    let e = out.len() / len.max(1);
    let k = weight_t.len() / e;
    assert!(
        k <= MAX_CONV_KERNEL,
        "conv kernel longer than {MAX_CONV_KERNEL}"
    );
    let history = k - 1;
    // Row `t` of the extended sequence, where t < 0 reads the carried state.
    let row = |t: isize| -> &[f32] {
        if t < 0 {
            let i = (history as isize + t) as usize;
            &conv_state[i * e..(i + 1) * e]
        } else {
            &input[t as usize * in_stride..t as usize * in_stride + e]
        }
    };
    out.par_chunks_mut(e * ROW_BLOCK)
        .enumerate()
        .for_each(|(block, rows)| {
            for (r, o) in rows.chunks_exact_mut(e).enumerate() {
                let t = (block * ROW_BLOCK + r) as isize;
                let mut taps: [&[f32]; MAX_CONV_KERNEL] = [&[]; MAX_CONV_KERNEL];
                for (j, tap) in taps.iter_mut().enumerate().take(k) {
                    *tap = row(t - history as isize + j as isize);
                }
                conv_row(o, &taps[..k], weight_t, bias);
            }
        });
    let mut next = vec![0.0; history * e];
    for i in 0..history {
        next[i * e..(i + 1) * e].copy_from_slice(row(len as isize - history as isize + i as isize));
    }
    conv_state.copy_from_slice(&next);
}

simd_dispatch! {
    /// One output row of the conv: `silu(bias + Σ_j weight_t[j] · taps[j])`, oldest tap first.
    fn conv_row(out: &mut [f32], taps: &[&[f32]], weight_t: &[f32], bias: Option<&[f32]>) {
        let e = out.len();
        match bias {
            Some(b) => out.copy_from_slice(&b[..e]),
            None => out.fill(0.0),
        }
        for (j, x) in taps.iter().enumerate() {
            let w = &weight_t[j * e..(j + 1) * e];
            for ((o, w), x) in out.iter_mut().zip(w).zip(&x[..e]) {
                *o += w * x;
            }
        }
        for o in out.iter_mut() {
            *o = silu(*o);
        }
    }
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
    /// Skip weights `D`, `[d_inner]`.
    pub d: &'a [f32],
}

/// Row-major `[len, stride]` output shared by tasks that each write their own columns.
pub struct YOut {
    ptr: *mut f32,
    stride: usize,
}

// SAFETY: tasks holding a `YOut` write disjoint columns (see `selective_scan`).
unsafe impl Sync for YOut {}

impl YOut {
    /// A pointer to row `t`, column `c`.
    ///
    /// # Safety
    /// `t * stride + c` must lie inside the slice the `YOut` was made from.
    #[inline(always)]
    unsafe fn at(&self, t: usize, c: usize) -> *mut f32 {
        // SAFETY: in bounds by the caller's contract.
        unsafe { self.ptr.add(t * self.stride + c) }
    }
}

/// The selective scan with D skip and SiLU(z) gate, parallel over blocks of channels.
///
/// `a_t` is `A = -exp(A_log)` transposed to `[d_state, d_inner]`. `ssm_state` is
/// `[d_inner, d_state]`, updated in place to the state after the last step.
/// Writes `y` row-major, `[len, d_inner]`.
pub fn selective_scan(
    inp: &ScanInputs<'_>,
    a_t: &[f32],
    len: usize,
    ssm_state: &mut [f32],
    y: &mut [f32],
) {
    let e = inp.d.len();
    let n = a_t.len() / e;
    assert!(y.len() >= len * e, "scan output too small");
    let out = YOut {
        ptr: y.as_mut_ptr(),
        stride: e,
    };
    let out = &out;
    ssm_state
        .par_chunks_mut(CHANNEL_BLOCK * n)
        .enumerate()
        .for_each(|(block, state)| {
            let channels = state.len() / n;
            #[cfg(target_arch = "x86_64")]
            if channels == avx512::WIDE && simd::avx512_enabled() {
                let c0 = block * CHANNEL_BLOCK;
                // SAFETY: the CPU has AVX-512; this task alone writes columns c0..c0 + 16
                // (its block of channels) of `y`, which holds `len` rows of `e`.
                unsafe { avx512::scan_group(inp, a_t, len, c0, state, out) };
                return;
            }
            for g in (0..channels).step_by(LANES) {
                let w = LANES.min(channels - g);
                let c0 = block * CHANNEL_BLOCK + g;
                let state = &mut state[g * n..(g + w) * n];
                #[cfg(target_arch = "x86_64")]
                if w == LANES && has_avx2() {
                    // SAFETY: the CPU has AVX2; this task alone writes columns c0..c0 + 8
                    // (its block of channels) of `y`, which holds `len` rows of `e`.
                    unsafe { avx2::scan_group(inp, a_t, len, c0, state, out) };
                    continue;
                }
                #[cfg(target_arch = "aarch64")]
                if w == LANES && simd::neon_enabled() {
                    // SAFETY: the CPU has NEON; this task alone writes columns c0..c0 + 8
                    // (its block of channels) of `y`, which holds `len` rows of `e`.
                    unsafe { neon::scan_group(inp, a_t, len, c0, state, out) };
                    continue;
                }
                // SAFETY: as above, columns c0..c0 + w.
                unsafe { scan_group(inp, a_t, len, c0, w, state, out) };
            }
        });
}

/// The scan of `w <= LANES` channels starting at `c0`, one channel per lane.
///
/// # Safety
/// `y` must be valid for writes of columns `c0..c0 + w` of rows `0..len`, and no other
/// thread may touch them meanwhile.
unsafe fn scan_group(
    inp: &ScanInputs<'_>,
    a_t: &[f32],
    len: usize,
    c0: usize,
    w: usize,
    state: &mut [f32],
    y: &YOut,
) {
    let e = inp.d.len();
    let n = a_t.len() / e;
    // Unused lanes stay zero: they compute harmless values that are never stored.
    let load = |src: &[f32], at: usize| -> [f32; LANES] {
        let mut v = [0.0f32; LANES];
        v[..w].copy_from_slice(&src[at..at + w]);
        v
    };
    let mut s = vec![[0.0f32; LANES]; n];
    for (j, sj) in s.iter_mut().enumerate() {
        for l in 0..w {
            sj[l] = state[l * n + j];
        }
    }
    let a: Vec<[f32; LANES]> = (0..n).map(|j| load(a_t, j * e + c0)).collect();
    let d = load(inp.d, c0);
    for t in 0..len {
        let dt = load(inp.delta, t * e + c0);
        let u = load(inp.u, t * e + c0);
        let z = load(inp.z, t * inp.z_stride + c0);
        let bc = &inp.bc[t * inp.bc_stride + inp.b_offset..][..2 * n];
        let (b, cm) = bc.split_at(n);
        let mut dtu = [0.0f32; LANES];
        for l in 0..LANES {
            dtu[l] = dt[l] * u[l];
        }
        let mut acc = [0.0f32; LANES];
        for (((sj, aj), bj), cj) in s.iter_mut().zip(&a).zip(b).zip(cm) {
            for l in 0..LANES {
                // Fused multiply-adds, as the CUDA scan does (one rounding per update;
                // `mul_add` is correctly rounded everywhere, so the AVX2 FMA instructions
                // give the same bits).
                let next = simd::exp(dt[l] * aj[l]).mul_add(sj[l], dtu[l] * bj);
                sj[l] = next;
                acc[l] = next.mul_add(*cj, acc[l]);
            }
        }
        for l in 0..w {
            let out = (acc[l] + d[l] * u[l]) * silu(z[l]);
            // SAFETY: the caller hands this group columns c0..c0 + w of rows 0..len.
            unsafe { *y.at(t, c0 + l) = out };
        }
    }
    for (j, sj) in s.iter().enumerate() {
        for l in 0..w {
            state[l * n + j] = sj[l];
        }
    }
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
    fn avx2_tile_gives_the_portable_bits() {
        let k = 77;
        let a: Vec<f32> = (0..2 * k).map(|i| (i as f32 * 0.7).cos()).collect();
        let w: Vec<f32> = (0..4 * k).map(|i| (i as f32 * 1.3).sin()).collect();
        let rows = [&a[..k], &a[k..]];
        let ws = [&w[..k], &w[k..2 * k], &w[2 * k..3 * k], &w[3 * k..]];
        let portable = tile_any::<2, 4>(false, rows, ws, k);
        assert_eq!(tile_any::<2, 4>(has_avx2(), rows, ws, k), portable);
    }

    #[test]
    #[cfg(target_arch = "aarch64")]
    fn neon_scan_gives_the_portable_bits() {
        assert!(simd::neon_enabled(), "every aarch64 Linux CPU has NEON");
        let (e, n, len) = (8, 16, 50);
        let vals = |k: usize, scale: f32| -> Vec<f32> {
            (0..k)
                .map(|i| ((i as f32 * 0.618).fract() - 0.5) * scale)
                .collect()
        };
        let (u, delta, z, bc) = (
            vals(len * e, 4.0),
            vals(len * e, 0.2),
            vals(len * e, 6.0),
            vals(len * 2 * n, 3.0),
        );
        let delta: Vec<f32> = delta.iter().map(|v| v.abs()).collect();
        let a_t: Vec<f32> = vals(n * e, 2.0).iter().map(|v| -v.abs() - 0.1).collect();
        let d = vals(e, 2.0);
        let inp = ScanInputs {
            u: &u,
            delta: &delta,
            z: &z,
            z_stride: e,
            bc: &bc,
            bc_stride: 2 * n,
            b_offset: 0,
            d: &d,
        };
        let start = vals(e * n, 1.0);
        let (mut s1, mut y1) = (start.clone(), vec![0.0; e * len]);
        let out1 = YOut {
            ptr: y1.as_mut_ptr(),
            stride: e,
        };
        // SAFETY: `y1` holds `len` rows of `e` = 8 columns.
        unsafe { scan_group(&inp, &a_t, len, 0, e, &mut s1, &out1) };
        let (mut s2, mut y2) = (start, vec![0.0; e * len]);
        let out2 = YOut {
            ptr: y2.as_mut_ptr(),
            stride: e,
        };
        // SAFETY: the CPU has NEON (asserted above); `y2` as `y1`.
        unsafe { neon::scan_group(&inp, &a_t, len, 0, &mut s2, &out2) };
        assert!(y1.iter().all(|v| v.is_finite()) && y1.iter().any(|v| *v != 0.0));
        assert_eq!(y1, y2);
        assert_eq!(s1, s2);
    }

    #[test]
    #[cfg(target_arch = "aarch64")]
    fn neon_exp_and_silu_give_the_portable_bits() {
        use std::arch::aarch64::*;
        let mut x = -100.0f32;
        while x < 100.0 {
            let xs = [x, x * 0.37, -x * 0.011, x + 0.5];
            let mut e = [0.0f32; 4];
            let mut si = [0.0f32; 4];
            // SAFETY: NEON is part of every aarch64 target; the arrays hold 4 floats.
            unsafe {
                let v = vld1q_f32(xs.as_ptr());
                vst1q_f32(e.as_mut_ptr(), simd::neon::exp(v));
                vst1q_f32(si.as_mut_ptr(), simd::neon::silu(v));
            }
            for l in 0..4 {
                if xs[l] <= 88.0 {
                    assert_eq!(e[l].to_bits(), simd::exp(xs[l]).to_bits(), "exp({})", xs[l]);
                }
                assert_eq!(si[l].to_bits(), silu(xs[l]).to_bits(), "silu({})", xs[l]);
            }
            x += 0.0371;
        }
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn avx2_scan_gives_the_portable_bits() {
        if !has_avx2() {
            return;
        }
        let (e, n, len) = (8, 16, 50);
        let vals = |k: usize, scale: f32| -> Vec<f32> {
            (0..k)
                .map(|i| ((i as f32 * 0.618).fract() - 0.5) * scale)
                .collect()
        };
        let (u, delta, z, bc) = (
            vals(len * e, 4.0),
            vals(len * e, 0.2),
            vals(len * e, 6.0),
            vals(len * 2 * n, 3.0),
        );
        let delta: Vec<f32> = delta.iter().map(|v| v.abs()).collect();
        let a_t: Vec<f32> = vals(n * e, 2.0).iter().map(|v| -v.abs() - 0.1).collect();
        let d = vals(e, 2.0);
        let inp = ScanInputs {
            u: &u,
            delta: &delta,
            z: &z,
            z_stride: e,
            bc: &bc,
            bc_stride: 2 * n,
            b_offset: 0,
            d: &d,
        };
        let start = vals(e * n, 1.0);
        let (mut s1, mut y1) = (start.clone(), vec![0.0; e * len]);
        let out1 = YOut {
            ptr: y1.as_mut_ptr(),
            stride: e,
        };
        // SAFETY: `y1` holds `len` rows of `e` = 8 columns.
        unsafe { scan_group(&inp, &a_t, len, 0, e, &mut s1, &out1) };
        let (mut s2, mut y2) = (start, vec![0.0; e * len]);
        let out2 = YOut {
            ptr: y2.as_mut_ptr(),
            stride: e,
        };
        // SAFETY: checked above that the CPU has AVX2; `y2` as `y1`.
        unsafe { avx2::scan_group(&inp, &a_t, len, 0, &mut s2, &out2) };
        assert_eq!(y1, y2);
        assert_eq!(s1, s2);
    }

    /// Kernel timings at the default model's shapes, one thread, min and median of many
    /// repetitions (robust to a shared machine): `cargo test --release --lib kernel_speed --
    /// --ignored --nocapture`.
    #[test]
    #[ignore]
    fn kernel_speed() {
        use super::super::gemm::{PackedWeight, matmul_packed};
        let (e, n, len, r) = (256, 16, 1063, 8);
        let vals = |k: usize, scale: f32| -> Vec<f32> {
            (0..k)
                .map(|i| ((i as f32 * 0.618).fract() - 0.5) * scale)
                .collect()
        };
        let (u, xz, xdbl) = (
            vals(len * e, 4.0),
            vals(len * 2 * e, 6.0),
            vals(len * (r + 2 * n), 3.0),
        );
        let delta: Vec<f32> = vals(len * e, 0.2).iter().map(|v| v.abs()).collect();
        let a_t: Vec<f32> = vals(n * e, 2.0).iter().map(|v| -v.abs() - 0.1).collect();
        let d = vals(e, 2.0);
        let inp = ScanInputs {
            u: &u,
            delta: &delta,
            z: &xz[e..],
            z_stride: 2 * e,
            bc: &xdbl,
            bc_stride: r + 2 * n,
            b_offset: r,
            d: &d,
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .expect("pool");
        let time = |what: &str, f: &mut (dyn FnMut() + Send)| {
            let mut t: Vec<f64> = (0..40)
                .map(|_| {
                    let t0 = std::time::Instant::now();
                    pool.install(&mut *f);
                    t0.elapsed().as_secs_f64() * 1e3
                })
                .collect();
            t.sort_by(f64::total_cmp);
            println!(
                "{what}: min {:.3} ms, median {:.3} ms ({len} tokens)",
                t[0], t[20]
            );
        };
        let mut state = vec![0.0; e * n];
        let mut y = vec![0.0; len * e];
        time("scan", &mut || {
            selective_scan(&inp, &a_t, len, &mut state, &mut y)
        });
        let mut sp = delta.clone();
        time("softplus", &mut || softplus_bias_rows(&mut sp, &d));
        for (name, nn, k) in [
            ("in_proj", 2 * e, 128),
            ("x_proj", r + 2 * n, e),
            ("dt_proj", e, r),
            ("out_proj", 128, e),
        ] {
            let w = PackedWeight::new(&vals(nn * k, 0.3), nn, k);
            let lhs = vals(len * k, 1.0);
            let mut dst = vec![0.0; len * nn];
            time(name, &mut || {
                matmul_packed(len, &lhs, k, &w, &mut dst, nn, false)
            });
            #[cfg(target_arch = "x86_64")]
            if simd::avx512_enabled() {
                // What fused multiply-adds would give (other bits, not used).
                time(&format!("{name} with FMA (what-if)"), &mut || {
                    // SAFETY: the CPU has AVX-512 (checked above).
                    unsafe {
                        super::super::gemm::x86::gemm_rows_avx512_as::<true>(
                            len, &lhs, k, &w, &mut dst, nn, false,
                        )
                    }
                });
            }
        }
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn avx512_scan_gives_the_portable_bits() {
        if !simd::avx512_enabled() {
            return;
        }
        let (e, n, len) = (avx512::WIDE, 16, 50);
        let vals = |k: usize, scale: f32| -> Vec<f32> {
            (0..k)
                .map(|i| ((i as f32 * 0.618).fract() - 0.5) * scale)
                .collect()
        };
        let (u, z, bc) = (
            vals(len * e, 4.0),
            vals(len * e, 6.0),
            vals(len * 2 * n, 3.0),
        );
        let delta: Vec<f32> = vals(len * e, 0.2).iter().map(|v| v.abs()).collect();
        let a_t: Vec<f32> = vals(n * e, 2.0).iter().map(|v| -v.abs() - 0.1).collect();
        let d = vals(e, 2.0);
        let inp = ScanInputs {
            u: &u,
            delta: &delta,
            z: &z,
            z_stride: e,
            bc: &bc,
            bc_stride: 2 * n,
            b_offset: 0,
            d: &d,
        };
        let start = vals(e * n, 1.0);
        let (mut s1, mut y1) = (start.clone(), vec![0.0; e * len]);
        for g in 0..2 {
            let out1 = YOut {
                ptr: y1.as_mut_ptr(),
                stride: e,
            };
            let part = &mut s1[g * LANES * n..(g + 1) * LANES * n];
            // SAFETY: `y1` holds `len` rows of 16 columns; group g writes columns 8g..8g + 8.
            unsafe { scan_group(&inp, &a_t, len, g * LANES, LANES, part, &out1) };
        }
        let (mut s2, mut y2) = (start, vec![0.0; e * len]);
        let out2 = YOut {
            ptr: y2.as_mut_ptr(),
            stride: e,
        };
        // SAFETY: checked above that the CPU has AVX-512; `y2` holds `len` rows of 16.
        unsafe { avx512::scan_group(&inp, &a_t, len, 0, &mut s2, &out2) };
        assert_eq!(y1, y2);
        assert_eq!(s1, s2);
    }

    #[test]
    fn rms_norm_gives_each_rows_in_order_sum() {
        // 300 rows: blocks of 8 rows and a remainder, in more than one 64-row task.
        let d = 37;
        let x: Vec<f32> = (0..300 * d)
            .map(|i| ((i as f32 * 0.37).sin() * 3.1).fract() * 5.0)
            .collect();
        let w: Vec<f32> = (0..d).map(|i| 0.5 + i as f32 * 0.01).collect();
        let mut out = vec![0.0; x.len()];
        rms_norm(&x, &w, 1e-5, &mut out);
        for (o, x) in out.chunks_exact(d).zip(x.chunks_exact(d)) {
            let mut sum = 0.0f32;
            for v in x {
                sum += v * v;
            }
            let scale = 1.0 / (sum / d as f32 + 1e-5).sqrt();
            for ((o, x), w) in o.iter().zip(x).zip(&w) {
                assert_eq!(o.to_bits(), (x * scale * w).to_bits());
            }
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
            d: &[0.5],
        };
        let mut s = [0.0];
        let mut y = [0.0; 2];
        selective_scan(&inp, &a, 2, &mut s, &mut y);
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
