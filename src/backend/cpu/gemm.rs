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

/// Rows `0..rows` of `dst (+)= lhs · wᵀ` (no threading), through the widest kernel the CPU
/// runs: the hand-written AVX-512 or AVX2 one on x86-64, else [`gemm_rows_auto`]. All give the
/// same bits.
#[allow(clippy::too_many_arguments)]
fn gemm_rows(
    rows: usize,
    lhs: &[f32],
    lhs_stride: usize,
    w: &PackedWeight,
    dst: &mut [f32],
    dst_stride: usize,
    accumulate: bool,
) {
    #[cfg(target_arch = "x86_64")]
    {
        if super::simd::avx512_enabled() {
            // SAFETY: the CPU has AVX-512 F and VL (and AVX2, FMA).
            unsafe { x86::gemm_rows_avx512(rows, lhs, lhs_stride, w, dst, dst_stride, accumulate) };
            return;
        }
        if super::simd::avx2_enabled() {
            // SAFETY: the CPU has AVX2 and FMA.
            unsafe { x86::gemm_rows_avx2(rows, lhs, lhs_stride, w, dst, dst_stride, accumulate) };
            return;
        }
    }
    gemm_rows_auto(rows, lhs, lhs_stride, w, dst, dst_stride, accumulate);
}

/// Checks that `rows` rows of `lhs` (each `k` long, `lhs_stride` apart) and of `dst` (each
/// `n` long, `dst_stride` apart) are in bounds: the hand-written kernels index with raw
/// pointers after this.
#[cfg(target_arch = "x86_64")]
fn check_bounds(
    rows: usize,
    lhs: &[f32],
    lhs_stride: usize,
    w: &PackedWeight,
    dst: &[f32],
    dst_stride: usize,
) {
    if rows > 0 {
        assert!(
            lhs.len() >= (rows - 1) * lhs_stride + w.k,
            "lhs too small for matmul"
        );
        assert!(
            dst.len() >= (rows - 1) * dst_stride + w.n,
            "destination too small for matmul"
        );
    }
    assert!(
        w.data.len() >= w.n.div_ceil(NB) * w.k * NB,
        "packed weight too small"
    );
}

/// Hand-written x86-64 micro-kernels: the sums of [`micro`] in the same order (eight
/// partials, the same tree, the tail last; separate multiply and add), but with every
/// accumulator in a register — no partial-sum arrays zeroed and copied per tile — and, at
/// AVX-512, two partials accumulated side by side (8 independent add chains per 4-row tile).
#[cfg(target_arch = "x86_64")]
pub(super) mod x86 {
    use std::arch::x86_64::*;

    use super::{LANES, MR, NB, PackedWeight, check_bounds};

    /// `R` rows (pointers to at least `k` floats each) times one packed panel of 16 outputs.
    ///
    /// # Safety
    /// AVX-512 F must be present; each `a[r]` must be valid for reads of `k` floats and
    /// `panel` of `k · NB` floats.
    #[inline]
    #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
    unsafe fn micro512<const R: usize, const FUSED: bool>(
        a: [*const f32; R],
        panel: *const f32,
        k: usize,
    ) -> [__m512; R] {
        let kq = k / LANES;
        let split = kq * LANES;
        let z = _mm512_setzero_ps();
        // lo: (p0 + p4) + (p1 + p5); hi: (p2 + p6) + (p3 + p7).
        let mut lo = [z; R];
        let mut hi = [z; R];
        for l in 0..LANES / 2 {
            let mut acc0 = [z; R];
            let mut acc1 = [z; R];
            // SAFETY: partial l and l + 4 start at (l·kq)·NB and ((l + 4)·kq)·NB, and run kq
            // steps of NB: inside the k·NB floats of the panel.
            let (w0p, w1p) = unsafe { (panel.add(l * kq * NB), panel.add((l + 4) * kq * NB)) };
            for q in 0..kq {
                // SAFETY: q < kq, see above.
                let (w0, w1) = unsafe {
                    (
                        _mm512_loadu_ps(w0p.add(q * NB)),
                        _mm512_loadu_ps(w1p.add(q * NB)),
                    )
                };
                for r in 0..R {
                    // SAFETY: 8q + l + 4 < 8·kq <= k.
                    let (x0, x1) = unsafe {
                        (
                            _mm512_set1_ps(*a[r].add(q * LANES + l)),
                            _mm512_set1_ps(*a[r].add(q * LANES + l + 4)),
                        )
                    };
                    if FUSED {
                        // Only for `kernel_speed`'s what-if: other bits.
                        acc0[r] = _mm512_fmadd_ps(x0, w0, acc0[r]);
                        acc1[r] = _mm512_fmadd_ps(x1, w1, acc1[r]);
                    } else {
                        acc0[r] = _mm512_add_ps(acc0[r], _mm512_mul_ps(x0, w0));
                        acc1[r] = _mm512_add_ps(acc1[r], _mm512_mul_ps(x1, w1));
                    }
                }
            }
            for r in 0..R {
                let pair = _mm512_add_ps(acc0[r], acc1[r]);
                match l {
                    0 => lo[r] = pair,
                    1 => lo[r] = _mm512_add_ps(lo[r], pair),
                    2 => hi[r] = pair,
                    _ => hi[r] = _mm512_add_ps(hi[r], pair),
                }
            }
        }
        let mut out = [z; R];
        for r in 0..R {
            let mut tail = z;
            for i in split..k {
                // SAFETY: i < k.
                let (x, wv) = unsafe {
                    (
                        _mm512_set1_ps(*a[r].add(i)),
                        _mm512_loadu_ps(panel.add(i * NB)),
                    )
                };
                tail = _mm512_add_ps(tail, _mm512_mul_ps(x, wv));
            }
            out[r] = _mm512_add_ps(_mm512_add_ps(lo[r], hi[r]), tail);
        }
        out
    }

    /// Writes (or adds) the first `cols` lanes of `v` at `d`.
    ///
    /// # Safety
    /// AVX-512 F must be present; `d` must be valid for reads and writes of `cols` floats.
    #[inline]
    #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
    unsafe fn put512(d: *mut f32, cols: usize, v: __m512, accumulate: bool) {
        let mask: __mmask16 = if cols >= NB {
            0xffff
        } else {
            (1u16 << cols) - 1
        };
        // SAFETY: masked lanes are neither read nor written (nor fault); the rest are in bounds.
        unsafe {
            let v = if accumulate {
                _mm512_add_ps(_mm512_maskz_loadu_ps(mask, d), v)
            } else {
                v
            };
            _mm512_mask_storeu_ps(d, mask, v);
        }
    }

    /// [`super::gemm_rows`] through AVX-512.
    ///
    /// # Safety
    /// The CPU must have AVX-512 F and VL, AVX2 and FMA.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
    pub unsafe fn gemm_rows_avx512(
        rows: usize,
        lhs: &[f32],
        lhs_stride: usize,
        w: &PackedWeight,
        dst: &mut [f32],
        dst_stride: usize,
        accumulate: bool,
    ) {
        // SAFETY: this function's contract.
        unsafe {
            gemm_rows_avx512_as::<false>(rows, lhs, lhs_stride, w, dst, dst_stride, accumulate)
        }
    }

    /// [`gemm_rows_avx512`], or with `FUSED` a what-if with fused multiply-adds (other bits;
    /// only `kernel_speed` times it).
    ///
    /// # Safety
    /// As [`gemm_rows_avx512`].
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
    pub unsafe fn gemm_rows_avx512_as<const FUSED: bool>(
        rows: usize,
        lhs: &[f32],
        lhs_stride: usize,
        w: &PackedWeight,
        dst: &mut [f32],
        dst_stride: usize,
        accumulate: bool,
    ) {
        check_bounds(rows, lhs, lhs_stride, w, dst, dst_stride);
        let (n, k) = (w.n, w.k);
        // Rows r < rows of lhs and dst, columns inside k and n, are in bounds (checked by
        // `check_bounds`): the pointers below are only read or written there.
        let row = |r: usize| lhs.as_ptr().wrapping_add(r * lhs_stride);
        let out = dst.as_mut_ptr();
        let block = ((4096 / k.max(1)) / MR * MR).max(MR);
        let mut first = 0;
        while first < rows {
            let end = rows.min(first + block);
            for p in 0..n.div_ceil(NB) {
                let panel = w.panel(p).as_ptr();
                let cols = NB.min(n - p * NB);
                let mut r = first;
                while r + MR <= end {
                    // SAFETY: rows r..r + 4 (r + 4 <= end <= rows) and the panel are in bounds (see
                    // `check_bounds` above); the CPU has AVX-512 (this function's contract).
                    unsafe {
                        let v = micro512::<MR, FUSED>(
                            [row(r), row(r + 1), row(r + 2), row(r + 3)],
                            panel,
                            k,
                        );
                        for (i, v) in v.into_iter().enumerate() {
                            put512(out.add((r + i) * dst_stride + p * NB), cols, v, accumulate);
                        }
                    }
                    r += MR;
                }
                while r < end {
                    // SAFETY: row r < end <= rows, in bounds as above; the CPU has the features.
                    unsafe {
                        let [v] = micro512::<1, FUSED>([row(r)], panel, k);
                        put512(out.add(r * dst_stride + p * NB), cols, v, accumulate);
                    }
                    r += 1;
                }
            }
            first = end;
        }
    }

    /// `R` rows times one packed panel of 16 outputs (two 8-lane halves), one partial at a
    /// time in the order 0, 4, 1, 5, 2, 6, 3, 7 so the tree folds as it goes.
    ///
    /// # Safety
    /// AVX2 must be present; each `a[r]` must be valid for reads of `k` floats and `panel`
    /// of `k · NB` floats.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn micro256<const R: usize>(
        a: [*const f32; R],
        panel: *const f32,
        k: usize,
    ) -> [[__m256; 2]; R] {
        let kq = k / LANES;
        let split = kq * LANES;
        let z = _mm256_setzero_ps();
        let mut first = [[z; 2]; R];
        let mut lo = [[z; 2]; R];
        let mut hi = [[z; 2]; R];
        for (step, l) in [0, 4, 1, 5, 2, 6, 3, 7].into_iter().enumerate() {
            let mut acc = [[z; 2]; R];
            // SAFETY: partial l starts at (l·kq)·NB and runs kq steps of NB floats.
            let wp = unsafe { panel.add(l * kq * NB) };
            for q in 0..kq {
                // SAFETY: q < kq, see above.
                let (w0, w1) = unsafe {
                    (
                        _mm256_loadu_ps(wp.add(q * NB)),
                        _mm256_loadu_ps(wp.add(q * NB + 8)),
                    )
                };
                for r in 0..R {
                    // SAFETY: 8q + l < 8·kq <= k.
                    let x = unsafe { _mm256_set1_ps(*a[r].add(q * LANES + l)) };
                    acc[r][0] = _mm256_add_ps(acc[r][0], _mm256_mul_ps(x, w0));
                    acc[r][1] = _mm256_add_ps(acc[r][1], _mm256_mul_ps(x, w1));
                }
            }
            for r in 0..R {
                for h in 0..2 {
                    let v = acc[r][h];
                    match step {
                        // p0, then lo = p0 + p4; p1, then lo += p1 + p5.
                        0 | 2 | 4 | 6 => first[r][h] = v,
                        1 => lo[r][h] = _mm256_add_ps(first[r][h], v),
                        3 => lo[r][h] = _mm256_add_ps(lo[r][h], _mm256_add_ps(first[r][h], v)),
                        5 => hi[r][h] = _mm256_add_ps(first[r][h], v),
                        _ => hi[r][h] = _mm256_add_ps(hi[r][h], _mm256_add_ps(first[r][h], v)),
                    }
                }
            }
        }
        let mut out = [[z; 2]; R];
        for r in 0..R {
            for h in 0..2 {
                let mut tail = z;
                for i in split..k {
                    // SAFETY: i < k.
                    let (x, wv) = unsafe {
                        (
                            _mm256_set1_ps(*a[r].add(i)),
                            _mm256_loadu_ps(panel.add(i * NB + 8 * h)),
                        )
                    };
                    tail = _mm256_add_ps(tail, _mm256_mul_ps(x, wv));
                }
                out[r][h] = _mm256_add_ps(_mm256_add_ps(lo[r][h], hi[r][h]), tail);
            }
        }
        out
    }

    /// Writes (or adds) the first `cols` of the 16 lanes of `v` at `d`.
    ///
    /// # Safety
    /// AVX2 must be present; `d` must be valid for reads and writes of `cols` floats.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn put256(d: *mut f32, cols: usize, v: [__m256; 2], accumulate: bool) {
        if cols >= NB {
            for (h, v) in v.into_iter().enumerate() {
                // SAFETY: 16 floats at d are in bounds.
                unsafe {
                    let p = d.add(8 * h);
                    let v = if accumulate {
                        _mm256_add_ps(_mm256_loadu_ps(p), v)
                    } else {
                        v
                    };
                    _mm256_storeu_ps(p, v);
                }
            }
            return;
        }
        let mut lanes = [0.0f32; NB];
        // SAFETY: `lanes` holds 16 floats.
        unsafe {
            _mm256_storeu_ps(lanes.as_mut_ptr(), v[0]);
            _mm256_storeu_ps(lanes.as_mut_ptr().add(8), v[1]);
        }
        for (j, x) in lanes.iter().enumerate().take(cols) {
            // SAFETY: j < cols floats at d are in bounds.
            unsafe {
                let p = d.add(j);
                *p = if accumulate { *p + x } else { *x };
            }
        }
    }

    /// [`super::gemm_rows`] through AVX2.
    ///
    /// # Safety
    /// The CPU must have AVX2 and FMA.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn gemm_rows_avx2(
        rows: usize,
        lhs: &[f32],
        lhs_stride: usize,
        w: &PackedWeight,
        dst: &mut [f32],
        dst_stride: usize,
        accumulate: bool,
    ) {
        check_bounds(rows, lhs, lhs_stride, w, dst, dst_stride);
        let (n, k) = (w.n, w.k);
        // In bounds as in `gemm_rows_avx512_as`.
        let row = |r: usize| lhs.as_ptr().wrapping_add(r * lhs_stride);
        let out = dst.as_mut_ptr();
        let block = ((4096 / k.max(1)) / MR * MR).max(MR);
        let mut first = 0;
        while first < rows {
            let end = rows.min(first + block);
            for p in 0..n.div_ceil(NB) {
                let panel = w.panel(p).as_ptr();
                let cols = NB.min(n - p * NB);
                let mut r = first;
                while r + MR <= end {
                    // SAFETY: rows r..r + 4 (r + 4 <= end <= rows) and the panel are in bounds (see
                    // `check_bounds` above); the CPU has AVX2 (this function's contract).
                    unsafe {
                        let v =
                            micro256::<MR>([row(r), row(r + 1), row(r + 2), row(r + 3)], panel, k);
                        for (i, v) in v.into_iter().enumerate() {
                            put256(out.add((r + i) * dst_stride + p * NB), cols, v, accumulate);
                        }
                    }
                    r += MR;
                }
                while r < end {
                    // SAFETY: row r < end <= rows, in bounds as above; the CPU has the features.
                    unsafe {
                        let [v] = micro256::<1>([row(r)], panel, k);
                        put256(out.add(r * dst_stride + p * NB), cols, v, accumulate);
                    }
                    r += 1;
                }
            }
            first = end;
        }
    }
}

simd_dispatch! {
    /// Rows `0..rows` of `dst (+)= lhs · wᵀ` (no threading) from the portable [`micro`],
    /// vectorised by the compiler: blocks of rows small enough to stay in L1 while every
    /// panel passes over them. The reference the hand-written kernels are tested against,
    /// and the kernel on other architectures (NEON on aarch64, where LLVM vectorises it).
    fn gemm_rows_auto(
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
    // And at least four tasks per thread where the rows allow (dt_proj, 8 inputs, would
    // otherwise be one task of 512 rows: two tasks for a 1,024-token stripe).
    let per_thread = m
        .div_ceil(4 * rayon::current_num_threads())
        .next_multiple_of(MR);
    let rows_per_task = ((1usize << 20) / (n * k).max(1))
        .clamp(MR, 1024)
        .min(per_thread)
        .max(MR)
        / MR
        * MR;
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
        // Full and partial panels (n = 40: 16 + 16 + 8; n = 5), k with and without a tail past
        // the last multiple of 8, row counts that leave 1-3 rows after the 4-row tiles, both
        // store modes.
        for &(m, n, k) in &[
            (11, 40, 256),
            (7, 5, 13),
            (4, 16, 8),
            (9, 33, 130),
            (1, 17, 7),
        ] {
            for accumulate in [false, true] {
                let a = vals(m * (k + 1), 0.91);
                let packed = PackedWeight::new(&vals(n * k, 0.23), n, k);
                let run = |level, auto: bool| {
                    cap_simd(level);
                    let mut out = vals(m * (n + 2), 0.57);
                    if auto {
                        gemm_rows_auto(m, &a, k + 1, &packed, &mut out, n + 2, accumulate);
                    } else {
                        gemm_rows(m, &a, k + 1, &packed, &mut out, n + 2, accumulate);
                    }
                    out
                };
                let portable = run(SimdLevel::Portable, false);
                let what = format!("{m}x{n}x{k} accumulate {accumulate}");
                // The hand-written kernels (AVX2, AVX-512 where the CPU has them) and the
                // compiler-vectorised builds of the portable kernel.
                for level in [SimdLevel::Avx2, SimdLevel::Avx512] {
                    assert_eq!(run(level, false), portable, "hand-written {level:?} {what}");
                    assert_eq!(
                        run(level, true),
                        portable,
                        "auto-vectorised {level:?} {what}"
                    );
                }
                // And the portable kernel gives the reference bits.
                for i in 0..m {
                    for j in 0..n {
                        let base = vals(m * (n + 2), 0.57)[i * (n + 2) + j];
                        let dot = reference(&a[i * (k + 1)..], &vals(n * k, 0.23)[j * k..], k);
                        let want = if accumulate { base + dot } else { dot };
                        assert_eq!(
                            portable[i * (n + 2) + j].to_bits(),
                            want.to_bits(),
                            "{what}"
                        );
                    }
                }
            }
        }
        cap_simd(SimdLevel::Avx512);
    }
}
