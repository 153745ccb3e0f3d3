//! Vector-friendly scalar code and runtime dispatch to AVX2 and AVX-512 builds of it.
//!
//! The kernels are written as plain loops over fixed-size lane arrays, which LLVM vectorizes.
//! [`simd_dispatch!`] compiles such a function three times — for the baseline target, with
//! AVX2+FMA and with AVX-512 — and picks at run time. Rust never contracts `a * b + c` into an
//! FMA on its own, and every lane does the same operations whatever the vector width, so all
//! builds give bit-identical results.

/// Defines `fn NAME(args) { body }` that runs an AVX-512 or AVX2+FMA build of `body` when the
/// CPU has it (and [`cap_simd`] allows it).
macro_rules! simd_dispatch {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident : $ty:ty),* $(,)?) $body:block) => {
        $(#[$meta])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name($($arg: $ty),*) {
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            fn portable($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx512($($arg: $ty),*) {
                    portable($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx2($($arg: $ty),*) {
                    portable($($arg),*)
                }
                if $crate::backend::cpu::simd::avx512_enabled() {
                    // SAFETY: the CPU has the features `avx512` was compiled for.
                    return unsafe { avx512($($arg),*) };
                }
                if $crate::backend::cpu::simd::avx2_enabled() {
                    // SAFETY: the CPU has the features `avx2` was compiled for.
                    return unsafe { avx2($($arg),*) };
                }
            }
            portable($($arg),*)
        }
    };
}
pub(crate) use simd_dispatch;

use std::sync::atomic::{AtomicU8, Ordering};

/// The widest instruction set the kernels may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SimdLevel {
    /// The baseline target only.
    Portable = 0,
    /// AVX2 and FMA on x86-64; NEON on aarch64.
    Avx2 = 1,
    /// AVX-512 (F and VL) as well.
    Avx512 = 2,
}

/// Set by [`cap_simd`]; `UNSET` until the first dispatch reads `SSMGEN_SIMD`.
static SIMD_CAP: AtomicU8 = AtomicU8::new(UNSET);
const UNSET: u8 = u8::MAX;

/// The cap: [`cap_simd`]'s, else the environment's `SSMGEN_SIMD` (`portable`, `avx2` or
/// `neon`; anything else: the widest), read once.
#[inline]
fn simd_cap() -> u8 {
    let cap = SIMD_CAP.load(Ordering::Relaxed);
    if cap != UNSET {
        return cap;
    }
    let level = match std::env::var("SSMGEN_SIMD").as_deref() {
        Ok("portable") => SimdLevel::Portable,
        Ok("avx2") | Ok("neon") => SimdLevel::Avx2,
        _ => SimdLevel::Avx512,
    } as u8;
    // A racing `cap_simd` wins.
    let _ = SIMD_CAP.compare_exchange(UNSET, level, Ordering::SeqCst, Ordering::SeqCst);
    SIMD_CAP.load(Ordering::Relaxed)
}

/// Caps the instruction set every kernel dispatches to (default: the widest). For tests that
/// compare whole passes bit for bit; results are the same at every level, only the speed
/// differs.
#[cfg(test)]
pub fn cap_simd(level: SimdLevel) {
    SIMD_CAP.store(level as u8, Ordering::SeqCst);
}

/// Whether the AVX2+FMA kernels run: the CPU has them and [`cap_simd`] allows them.
#[inline]
pub fn avx2_enabled() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        simd_cap() >= SimdLevel::Avx2 as u8
            && std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether the AVX-512 kernels run: the CPU has AVX-512 F and VL (and AVX2+FMA) and
/// [`cap_simd`] allows them.
#[inline]
pub fn avx512_enabled() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        simd_cap() >= SimdLevel::Avx512 as u8
            && avx2_enabled()
            && std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512vl")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether the NEON kernels run: an aarch64 CPU with NEON (every Linux and macOS one) and
/// [`cap_simd`] allows level 1 ([`SimdLevel::Avx2`], which stands for NEON there).
#[inline]
pub fn neon_enabled() -> bool {
    #[cfg(target_arch = "aarch64")]
    {
        simd_cap() >= SimdLevel::Avx2 as u8 && std::arch::is_aarch64_feature_detected!("neon")
    }
    #[cfg(not(target_arch = "aarch64"))]
    {
        false
    }
}

/// The widest kernels this process runs, for the device line: `AVX-512`, `AVX2`, `NEON` or
/// `portable`.
pub fn level_name() -> &'static str {
    if avx512_enabled() {
        "AVX-512"
    } else if avx2_enabled() {
        "AVX2"
    } else if neon_enabled() {
        "NEON"
    } else {
        "portable"
    }
}

const EXP_MIN: f32 = -87.0;
const EXP_MAX: f32 = 88.0;
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// 1.5 · 2²³: adding it rounds to an integer held in the low mantissa bits.
const SHIFTER: f32 = 12_582_912.0;
/// Cephes `expf` coefficients, highest power first.
const EXP_POLY: [f32; 6] = [
    1.987_569_1e-4,
    1.398_199_9e-3,
    8.333_452e-3,
    4.166_579_6e-2,
    1.666_666_5e-1,
    0.5,
];

/// AVX2 versions of [`exp`] and [`silu`], operation for operation the same (no FMA), so they
/// round identically.
#[cfg(target_arch = "x86_64")]
pub mod avx2 {
    use std::arch::x86_64::*;

    use super::{EXP_MAX, EXP_MIN, EXP_POLY, LN2_HI, LN2_LO, SHIFTER};

    /// Eight lanes of [`super::exp`].
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub fn exp(x: __m256) -> __m256 {
        let s = _mm256_set1_ps;
        let x = _mm256_min_ps(_mm256_max_ps(x, s(EXP_MIN)), s(EXP_MAX));
        let t = _mm256_add_ps(_mm256_mul_ps(x, s(std::f32::consts::LOG2_E)), s(SHIFTER));
        let n = _mm256_sub_ps(t, s(SHIFTER));
        let r = _mm256_sub_ps(
            _mm256_sub_ps(x, _mm256_mul_ps(n, s(LN2_HI))),
            _mm256_mul_ps(n, s(LN2_LO)),
        );
        let mut p = s(EXP_POLY[0]);
        for c in &EXP_POLY[1..] {
            p = _mm256_add_ps(_mm256_mul_ps(p, r), s(*c));
        }
        let e = _mm256_add_ps(
            _mm256_add_ps(_mm256_mul_ps(p, _mm256_mul_ps(r, r)), r),
            s(1.0),
        );
        let k = _mm256_sub_epi32(
            _mm256_castps_si256(t),
            _mm256_set1_epi32(SHIFTER.to_bits() as i32),
        );
        let scale = _mm256_slli_epi32::<23>(_mm256_add_epi32(k, _mm256_set1_epi32(127)));
        _mm256_mul_ps(e, _mm256_castsi256_ps(scale))
    }

    /// Eight lanes of [`super::silu`].
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub fn silu(x: __m256) -> __m256 {
        let neg = _mm256_xor_ps(x, _mm256_set1_ps(-0.0));
        _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0), exp(neg)))
    }
}

/// AVX-512 versions of [`exp`] and [`silu`], operation for operation the same as the AVX2
/// ones (so the same bits), sixteen lanes at a time.
#[cfg(target_arch = "x86_64")]
pub mod avx512 {
    use std::arch::x86_64::*;

    use super::{EXP_MAX, EXP_MIN, EXP_POLY, LN2_HI, LN2_LO, SHIFTER};

    /// Sixteen lanes of [`super::exp`].
    #[inline]
    #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
    pub fn exp(x: __m512) -> __m512 {
        let s = _mm512_set1_ps;
        let x = _mm512_min_ps(_mm512_max_ps(x, s(EXP_MIN)), s(EXP_MAX));
        let t = _mm512_add_ps(_mm512_mul_ps(x, s(std::f32::consts::LOG2_E)), s(SHIFTER));
        let n = _mm512_sub_ps(t, s(SHIFTER));
        let r = _mm512_sub_ps(
            _mm512_sub_ps(x, _mm512_mul_ps(n, s(LN2_HI))),
            _mm512_mul_ps(n, s(LN2_LO)),
        );
        let mut p = s(EXP_POLY[0]);
        for c in &EXP_POLY[1..] {
            p = _mm512_add_ps(_mm512_mul_ps(p, r), s(*c));
        }
        let e = _mm512_add_ps(
            _mm512_add_ps(_mm512_mul_ps(p, _mm512_mul_ps(r, r)), r),
            s(1.0),
        );
        let k = _mm512_sub_epi32(
            _mm512_castps_si512(t),
            _mm512_set1_epi32(SHIFTER.to_bits() as i32),
        );
        let scale = _mm512_slli_epi32::<23>(_mm512_add_epi32(k, _mm512_set1_epi32(127)));
        _mm512_mul_ps(e, _mm512_castsi512_ps(scale))
    }

    /// [`exp`] of two vectors, each step done for both before the next: the same operations
    /// (so the same bits), with two independent dependency chains side by side in program
    /// order, so the out-of-order core's scheduler overlaps them.
    #[inline]
    #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
    pub fn exp2x(x0: __m512, x1: __m512) -> (__m512, __m512) {
        let s = _mm512_set1_ps;
        let clamp = |x| _mm512_min_ps(_mm512_max_ps(x, s(EXP_MIN)), s(EXP_MAX));
        let (x0, x1) = (clamp(x0), clamp(x1));
        let l2e = s(std::f32::consts::LOG2_E);
        let t0 = _mm512_add_ps(_mm512_mul_ps(x0, l2e), s(SHIFTER));
        let t1 = _mm512_add_ps(_mm512_mul_ps(x1, l2e), s(SHIFTER));
        let n0 = _mm512_sub_ps(t0, s(SHIFTER));
        let n1 = _mm512_sub_ps(t1, s(SHIFTER));
        let r0 = _mm512_sub_ps(
            _mm512_sub_ps(x0, _mm512_mul_ps(n0, s(LN2_HI))),
            _mm512_mul_ps(n0, s(LN2_LO)),
        );
        let r1 = _mm512_sub_ps(
            _mm512_sub_ps(x1, _mm512_mul_ps(n1, s(LN2_HI))),
            _mm512_mul_ps(n1, s(LN2_LO)),
        );
        let (mut p0, mut p1) = (s(EXP_POLY[0]), s(EXP_POLY[0]));
        for c in &EXP_POLY[1..] {
            p0 = _mm512_add_ps(_mm512_mul_ps(p0, r0), s(*c));
            p1 = _mm512_add_ps(_mm512_mul_ps(p1, r1), s(*c));
        }
        let e0 = _mm512_add_ps(
            _mm512_add_ps(_mm512_mul_ps(p0, _mm512_mul_ps(r0, r0)), r0),
            s(1.0),
        );
        let e1 = _mm512_add_ps(
            _mm512_add_ps(_mm512_mul_ps(p1, _mm512_mul_ps(r1, r1)), r1),
            s(1.0),
        );
        let scale = |t| {
            let k = _mm512_sub_epi32(
                _mm512_castps_si512(t),
                _mm512_set1_epi32(SHIFTER.to_bits() as i32),
            );
            _mm512_castsi512_ps(_mm512_slli_epi32::<23>(_mm512_add_epi32(
                k,
                _mm512_set1_epi32(127),
            )))
        };
        (_mm512_mul_ps(e0, scale(t0)), _mm512_mul_ps(e1, scale(t1)))
    }

    /// Sixteen lanes of [`super::silu`].
    #[inline]
    #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
    pub fn silu(x: __m512) -> __m512 {
        let neg = _mm512_castsi512_ps(_mm512_xor_si512(
            _mm512_castps_si512(x),
            _mm512_set1_epi32(i32::MIN),
        ));
        _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0), exp(neg)))
    }
}

/// NEON versions of [`exp`] and [`silu`], operation for operation the same (separate
/// multiplies and adds, no fused multiply-add), so they round identically; four lanes.
#[cfg(target_arch = "aarch64")]
pub mod neon {
    use std::arch::aarch64::*;

    use super::{EXP_MAX, EXP_MIN, EXP_POLY, LN2_HI, LN2_LO, SHIFTER};

    /// Four lanes of [`super::exp`].
    #[inline]
    #[target_feature(enable = "neon")]
    pub fn exp(x: float32x4_t) -> float32x4_t {
        let s = vdupq_n_f32;
        let x = vminq_f32(vmaxq_f32(x, s(EXP_MIN)), s(EXP_MAX));
        let t = vaddq_f32(vmulq_f32(x, s(std::f32::consts::LOG2_E)), s(SHIFTER));
        let n = vsubq_f32(t, s(SHIFTER));
        let r = vsubq_f32(
            vsubq_f32(x, vmulq_f32(n, s(LN2_HI))),
            vmulq_f32(n, s(LN2_LO)),
        );
        let mut p = s(EXP_POLY[0]);
        for c in &EXP_POLY[1..] {
            p = vaddq_f32(vmulq_f32(p, r), s(*c));
        }
        let e = vaddq_f32(vaddq_f32(vmulq_f32(p, vmulq_f32(r, r)), r), s(1.0));
        let k = vsubq_s32(
            vreinterpretq_s32_f32(t),
            vdupq_n_s32(SHIFTER.to_bits() as i32),
        );
        let scale = vshlq_n_s32::<23>(vaddq_s32(k, vdupq_n_s32(127)));
        vmulq_f32(e, vreinterpretq_f32_s32(scale))
    }

    /// Four lanes of [`super::silu`].
    #[inline]
    #[target_feature(enable = "neon")]
    pub fn silu(x: float32x4_t) -> float32x4_t {
        vdivq_f32(x, vaddq_f32(vdupq_n_f32(1.0), exp(vnegq_f32(x))))
    }
}

/// `eˣ` for `x ≤ 88`, to about 1 ulp (Cephes `expf` polynomial), with no branches or calls so
/// a loop of it vectorizes. Inputs below -87 give `e⁻⁸⁷` rather than a denormal.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let x = x.clamp(EXP_MIN, EXP_MAX);
    let t = x * std::f32::consts::LOG2_E + SHIFTER;
    let n = t - SHIFTER;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let mut p = EXP_POLY[0];
    for c in &EXP_POLY[1..] {
        p = p * r + c;
    }
    let e = p * (r * r) + r + 1.0;
    let k = t.to_bits().wrapping_sub(SHIFTER.to_bits()) as i32;
    e * f32::from_bits(((k + 127) << 23) as u32)
}

/// `ln x` for normal positive `x`, to about 1 ulp (Cephes `logf` polynomial), branch-free.
#[inline(always)]
pub fn ln(x: f32) -> f32 {
    const SQRT_HALF: f32 = std::f32::consts::FRAC_1_SQRT_2;
    let bits = x.to_bits();
    // x = m · 2^e with m in [0.5, 1).
    let e = ((bits >> 23) & 0xff) as i32 - 126;
    let m = f32::from_bits((bits & 0x007f_ffff) | 0x3f00_0000);
    let small = m < SQRT_HALF;
    let e = (e - small as i32) as f32;
    let m = if small { m + m } else { m } - 1.0;
    let z = m * m;
    let mut y = 7.037_683_6e-2f32;
    y = y * m - 1.151_461e-1;
    y = y * m + 1.167_699_9e-1;
    y = y * m - 1.242_014_1e-1;
    y = y * m + 1.424_932_3e-1;
    y = y * m - 1.666_805_8e-1;
    y = y * m + 2.000_071_4e-1;
    y = y * m - 2.499_999_4e-1;
    y = y * m + 3.333_333e-1;
    y = y * m * z;
    y += -2.121_944_4e-4 * e;
    y += -0.5 * z;
    m + y + 0.693_359_4 * e
}

/// SiLU, `x · σ(x)`, with [`exp`].
#[inline(always)]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + exp(-x))
}

/// `ln(1 + y)` for `0 ≤ y ≤ 1` to a few ulp *relative* error, small `y` included: with
/// `u = 1 + y` rounded, `ln(u) · y / (u - 1)` cancels the rounding of `u` (Goldberg's trick);
/// `y` itself where `u` rounds to 1. Branch-free.
#[inline(always)]
fn ln_1p(y: f32) -> f32 {
    let u = 1.0 + y;
    let d = u - 1.0;
    let q = if d == 0.0 { 1.0 } else { y / d };
    let l = if d == 0.0 { y } else { ln(u) };
    l * q
}

/// Softplus with PyTorch's default threshold: `x` above 20, else `ln(1 + eˣ)`, computed as
/// `max(x, 0) + ln_1p(e^-|x|)`, to a few ulp relative error also where softplus is small (a
/// Mamba step size is often 1e-3 to 1e-1: `ln(1 + eˣ)` with `1 + eˣ` rounded would lose up to
/// 6e-5 of it there, which the scan then carries over thousands of steps).
#[inline(always)]
pub fn softplus(x: f32) -> f32 {
    let smooth = x.max(0.0) + ln_1p(exp(-x.abs()));
    if x > 20.0 { x } else { smooth }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ln_silu_softplus_match_f64() {
        let mut x = -30.0f32;
        while x < 30.0 {
            let xd = x as f64;
            let sp = if xd > 20.0 { xd } else { xd.exp().ln_1p() };
            // Relative error, also for small results (2e-7 absolute would allow 2e-4 of 1e-3).
            assert!(
                (softplus(x) as f64 - sp).abs() <= 4e-7 * sp,
                "softplus({x}) = {} vs {sp}",
                softplus(x)
            );
            let si = xd / (1.0 + (-xd).exp());
            assert!(
                (silu(x) as f64 - si).abs() <= 3e-7 * si.abs().max(1e-3),
                "silu({x})"
            );
            if x > 0.0 {
                assert!(
                    (ln(x) as f64 - xd.ln()).abs() <= 2e-7 * xd.ln().abs().max(1.0),
                    "ln({x})"
                );
            }
            x += 0.0131;
        }
    }

    /// The AVX2 and AVX-512 `exp`, `exp2x` and `silu` give the scalar bits, over the whole
    /// clamped range and past it, subnormal results near -87 included.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn vector_exp_gives_the_scalar_bits() {
        use std::arch::x86_64::*;
        let mut xs: Vec<f32> = Vec::new();
        let mut x = -100.0f32;
        while x < 100.0 {
            xs.push(x);
            x += 0.00917;
        }
        let mut x = -87.5f32;
        while x < -86.0 {
            xs.push(x);
            x += 1e-4;
        }
        xs.extend([0.0, -0.0, 88.0, -87.0, 1e-30, -1e-30]);
        while !xs.len().is_multiple_of(32) {
            xs.push(0.5);
        }
        let want: Vec<u32> = xs.iter().map(|x| exp(*x).to_bits()).collect();
        let want_silu: Vec<u32> = xs.iter().map(|x| silu(*x).to_bits()).collect();
        if avx2_enabled() {
            for i in (0..xs.len()).step_by(8) {
                let (mut e, mut si) = ([0.0f32; 8], [0.0f32; 8]);
                // SAFETY: the CPU has AVX2; 8 floats at i are in bounds.
                unsafe {
                    let v = _mm256_loadu_ps(xs.as_ptr().add(i));
                    _mm256_storeu_ps(e.as_mut_ptr(), avx2::exp(v));
                    _mm256_storeu_ps(si.as_mut_ptr(), avx2::silu(v));
                }
                for l in 0..8 {
                    assert_eq!(e[l].to_bits(), want[i + l], "avx2 exp({})", xs[i + l]);
                    assert_eq!(
                        si[l].to_bits(),
                        want_silu[i + l],
                        "avx2 silu({})",
                        xs[i + l]
                    );
                }
            }
        }
        if avx512_enabled() {
            for i in (0..xs.len()).step_by(32) {
                let (mut e, mut e2, mut si) = ([0.0f32; 32], [0.0f32; 32], [0.0f32; 16]);
                // SAFETY: the CPU has AVX-512; 32 floats at i are in bounds.
                unsafe {
                    let v0 = _mm512_loadu_ps(xs.as_ptr().add(i));
                    let v1 = _mm512_loadu_ps(xs.as_ptr().add(i + 16));
                    _mm512_storeu_ps(e.as_mut_ptr(), avx512::exp(v0));
                    _mm512_storeu_ps(e.as_mut_ptr().add(16), avx512::exp(v1));
                    let (p0, p1) = avx512::exp2x(v0, v1);
                    _mm512_storeu_ps(e2.as_mut_ptr(), p0);
                    _mm512_storeu_ps(e2.as_mut_ptr().add(16), p1);
                    _mm512_storeu_ps(si.as_mut_ptr(), avx512::silu(v0));
                }
                for l in 0..32 {
                    assert_eq!(e[l].to_bits(), want[i + l], "avx512 exp({})", xs[i + l]);
                    assert_eq!(e2[l].to_bits(), want[i + l], "avx512 exp2x({})", xs[i + l]);
                }
                for l in 0..16 {
                    assert_eq!(
                        si[l].to_bits(),
                        want_silu[i + l],
                        "avx512 silu({})",
                        xs[i + l]
                    );
                }
            }
        }
    }

    #[test]
    fn exp_is_within_two_ulp_of_f64() {
        let mut worst = 0.0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let want = (x as f64).exp();
            let got = exp(x) as f64;
            worst = worst.max(((got - want) / want).abs());
            x += 0.0137;
        }
        assert!(worst < 2.5e-7, "relative error {worst:e}");
        assert_eq!(exp(0.0), 1.0);
    }
}
