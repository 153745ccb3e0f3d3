//! Matrix products against weights packed once at load time: `dst (+)= lhs · wᵀ`.
//!
//! Every output is summed in the order the original dot-product kernel used — eight
//! interleaved partial sums over `k` (element `i` into partial `i % 8`), reduced as the tree
//! `((p0 + p4) + (p1 + p5)) + ((p2 + p6) + (p3 + p7))`, plus the tail past the last multiple of
//! eight — with a separate rounding for each multiply and each add. The loops run the other
//! way round, though: vector lanes hold sixteen consecutive *outputs* (an outer product:
//! one broadcast input times one packed weight row), so no lane is ever reduced horizontally
//! and the weights stream once per block of rows. Results are bit-identical to the old kernel,
//! to the portable build, and whatever the row count, tiling or thread count.

use rayon::prelude::*;

use super::simd::simd_dispatch;

/// Partial sums per output (fixed: it defines the summation order).
const LANES: usize = 8;
/// Outputs per packed panel (two AVX2 registers).
const NB: usize = 16;
/// Rows per micro-tile.
const MR: usize = 4;

/// A weight `[n, k]` (PyTorch `Linear` layout) packed into panels of [`NB`] outputs: panel
/// `p`, partial `l`, step `q` holds `w[p·NB + j][8q + l]` for `j < NB` (zero past `n`), then
/// one row per tail element.
#[derive(Clone, Debug)]
pub struct PackedWeight {
    n: usize,
    k: usize,
    data: Vec<f32>,
}

impl PackedWeight {
    /// Packs a dense row-major `[n, k]` weight.
    pub fn new(w: &[f32], n: usize, k: usize) -> Self {
        assert!(w.len() >= n * k, "weight too small to pack");
        let panels = n.div_ceil(NB);
        let kq = k / LANES;
        let split = kq * LANES;
        let panel_len = k * NB;
        let mut data = vec![0.0; panels * panel_len];
        for (p, panel) in data.chunks_exact_mut(panel_len.max(1)).enumerate() {
            for jj in 0..NB.min(n - p * NB) {
                let row = &w[(p * NB + jj) * k..(p * NB + jj + 1) * k];
                for l in 0..LANES {
                    for q in 0..kq {
                        panel[(l * kq + q) * NB + jj] = row[q * LANES + l];
                    }
                }
                for i in split..k {
                    panel[i * NB + jj] = row[i];
                }
            }
        }
        PackedWeight { n, k, data }
    }

    /// Outputs (`n`).
    pub fn out(&self) -> usize {
        self.n
    }

    /// Inputs (`k`).
    pub fn inputs(&self) -> usize {
        self.k
    }

    fn panel(&self, p: usize) -> &[f32] {
        let len = self.k * NB;
        &self.data[p * len..(p + 1) * len]
    }
}

/// `R` rows of `a` (each at least `k` long) times one packed panel: `[R][NB]` sums.
#[inline(always)]
fn micro<const R: usize>(a: [&[f32]; R], panel: &[f32], k: usize) -> [[f32; NB]; R] {
    let kq = k / LANES;
    let split = kq * LANES;
    assert!(panel.len() >= k * NB && a.iter().all(|r| r.len() >= k));
    let mut part = [[[0.0f32; NB]; R]; LANES];
    for (l, part) in part.iter_mut().enumerate() {
        let mut acc = [[0.0f32; NB]; R];
        for q in 0..kq {
            // SAFETY: (l·kq + q + 1)·NB <= 8·kq·NB <= k·NB <= panel.len(), checked above.
            let w = unsafe { &*(panel.as_ptr().add((l * kq + q) * NB) as *const [f32; NB]) };
            for r in 0..R {
                // SAFETY: 8q + l < 8·kq = split <= k <= a[r].len(), checked above.
                let x = unsafe { *a[r].get_unchecked(q * LANES + l) };
                for jj in 0..NB {
                    acc[r][jj] += x * w[jj];
                }
            }
        }
        *part = acc;
    }
    let mut tail = [[0.0f32; NB]; R];
    for i in split..k {
        let w = &panel[i * NB..(i + 1) * NB];
        for r in 0..R {
            let x = a[r][i];
            for jj in 0..NB {
                tail[r][jj] += x * w[jj];
            }
        }
    }
    let mut out = [[0.0f32; NB]; R];
    for r in 0..R {
        for jj in 0..NB {
            let p = |l: usize| part[l][r][jj];
            out[r][jj] =
                (((p(0) + p(4)) + (p(1) + p(5))) + ((p(2) + p(6)) + (p(3) + p(7)))) + tail[r][jj];
        }
    }
    out
}

simd_dispatch! {
    /// Rows `0..rows` of `dst (+)= lhs · wᵀ` (no threading): blocks of rows small enough to
    /// stay in L1 while every panel passes over them.
    fn gemm_rows(
        rows: usize,
        lhs: &[f32],
        lhs_stride: usize,
        w: &PackedWeight,
        dst: &mut [f32],
        dst_stride: usize,
        accumulate: bool,
    ) {
        let (n, k) = (w.n, w.k);
        let row = |r: usize| &lhs[r * lhs_stride..r * lhs_stride + k];
        // ~16 KiB of rows per block.
        let block = ((4096 / k.max(1)) / MR * MR).max(MR);
        let mut first = 0;
        while first < rows {
            let end = rows.min(first + block);
            for p in 0..n.div_ceil(NB) {
                let panel = w.panel(p);
                let cols = NB.min(n - p * NB);
                let mut put = |r: usize, v: &[f32; NB]| {
                    let d = &mut dst[r * dst_stride + p * NB..r * dst_stride + p * NB + cols];
                    if accumulate {
                        d.iter_mut().zip(v).for_each(|(d, v)| *d += v);
                    } else {
                        d.copy_from_slice(&v[..cols]);
                    }
                };
                let mut r = first;
                while r + MR <= end {
                    let v = micro::<MR>([row(r), row(r + 1), row(r + 2), row(r + 3)], panel, k);
                    for (i, v) in v.iter().enumerate() {
                        put(r + i, v);
                    }
                    r += MR;
                }
                while r < end {
                    let v = micro::<1>([row(r)], panel, k);
                    put(r, &v[0]);
                    r += 1;
                }
            }
            first = end;
        }
    }
}

/// `dst[m, n] (+)= lhs[m, k] · wᵀ`: `lhs` rows are `k` contiguous values `lhs_stride` apart,
/// `dst` rows are `dst_stride` apart; with `accumulate` the product is added to `dst`.
/// Parallel over blocks of rows; bit-identical whatever `m` and the thread count.
pub fn matmul_packed(
    m: usize,
    lhs: &[f32],
    lhs_stride: usize,
    w: &PackedWeight,
    dst: &mut [f32],
    dst_stride: usize,
    accumulate: bool,
) {
    let (n, k) = (w.n, w.k);
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        lhs.len() >= (m - 1) * lhs_stride + k,
        "lhs too small for matmul"
    );
    assert!(
        dst.len() >= (m - 1) * dst_stride + n,
        "destination too small for matmul"
    );
    // About 2²⁰ multiply-adds per task: enough to amortise scheduling, small enough to share.
    let rows_per_task = ((1usize << 20) / (n * k).max(1)).clamp(MR, 1024) / MR * MR;
    let dst = &mut dst[..(m - 1) * dst_stride + n];
    if m <= rows_per_task {
        gemm_rows(m, lhs, lhs_stride, w, dst, dst_stride, accumulate);
        return;
    }
    dst.par_chunks_mut(dst_stride * rows_per_task)
        .enumerate()
        .for_each(|(block, dst)| {
            let first = block * rows_per_task;
            let rows = rows_per_task.min(m - first);
            gemm_rows(
                rows,
                &lhs[first * lhs_stride..],
                lhs_stride,
                w,
                dst,
                dst_stride,
                accumulate,
            );
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pre-packing kernel's summation order, written out one output at a time.
    fn reference(a: &[f32], w: &[f32], k: usize) -> f32 {
        let split = k / LANES * LANES;
        let mut acc = [0.0f32; LANES];
        for i in 0..split {
            acc[i % LANES] += a[i] * w[i];
        }
        let mut tail = 0.0f32;
        for i in split..k {
            tail += a[i] * w[i];
        }
        (((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))) + tail
    }

    fn vals(len: usize, seed: f32) -> Vec<f32> {
        (0..len)
            .map(|i| ((i as f32 * seed).sin() * 3.7).fract() * 2.0)
            .collect()
    }

    #[test]
    fn packed_matmul_gives_the_reference_bits_for_every_shape() {
        for &(m, n, k) in &[
            (1, 1, 1),
            (7, 40, 256),
            (9, 12, 128),
            (5, 256, 8),
            (6, 17, 77),
        ] {
            let a = vals(m * (k + 3), 0.37);
            let w = vals(n * k, 1.31);
            let packed = PackedWeight::new(&w, n, k);
            let mut dst = vec![0.5; m * n];
            matmul_packed(m, &a, k + 3, &packed, &mut dst, n, true);
            for i in 0..m {
                for j in 0..n {
                    let want = 0.5 + reference(&a[i * (k + 3)..], &w[j * k..], k);
                    assert_eq!(
                        dst[i * n + j].to_bits(),
                        want.to_bits(),
                        "{m}x{n}x{k} {i},{j}"
                    );
                }
            }
            // One row at a time gives the very same bits.
            for i in 0..m {
                let mut row = vec![0.5; n];
                matmul_packed(1, &a[i * (k + 3)..], k + 3, &packed, &mut row, n, true);
                assert_eq!(row, dst[i * n..(i + 1) * n]);
            }
        }
    }

    #[test]
    fn every_simd_build_gives_the_portable_bits() {
        use super::super::simd::{SimdLevel, cap_simd};
        let (m, n, k) = (11, 40, 256);
        let a = vals(m * k, 0.91);
        let packed = PackedWeight::new(&vals(n * k, 0.23), n, k);
        let run = |level| {
            cap_simd(level);
            let mut out = vec![0.0; m * n];
            gemm_rows(m, &a, k, &packed, &mut out, n, false);
            out
        };
        let portable = run(SimdLevel::Portable);
        let avx2 = run(SimdLevel::Avx2);
        let widest = run(SimdLevel::Avx512);
        assert_eq!(avx2, portable);
        assert_eq!(widest, portable);
    }
}
