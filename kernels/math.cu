// Device math shared by the kernels (compiled first in the one program).
//
// The rest of the program is compiled without FMA contraction (results match the CPU order
// of operations where they can), so fused multiply-adds are written out where wanted.

#define LOG2E 1.4426950408889634f

// The hardware exp2 (MUFU.EX2, 2 ulp) with results below 2^-126 flushed to zero. exp2f without
// fast-math wraps the same instruction in denormal handling (extra instructions on every call,
// 16 calls per channel and step in the scan); a decay below 2^-126 shrinks a state far below
// the float32 resolution of the step's new input, so flushing it to zero changes no result
// measurably.
__device__ __forceinline__ float exp2_ftz(float x) {
#ifdef __CUDA_ARCH__
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
#else
    // The host build of kernels/emulate: the same function, correctly rounded.
    return x < -126.0f ? 0.0f : exp2f(x);
#endif
}

// x * sigmoid(x) = x / (1 + exp(-x)) with the hardware exp2 and the fast division (MUFU.RCP
// and a multiply, 2 ulp), about a fifth of the instructions of expf and an IEEE division, which
// matters where it runs once per channel and step. For x below about -88 the denominator
// overflows and the result is -0, the limit.
__device__ __forceinline__ float silu_fast(float x) {
#ifdef __CUDA_ARCH__
    return __fdividef(x, 1.0f + exp2_ftz(-x * LOG2E));
#else
    return x / (1.0f + exp2_ftz(-x * LOG2E));
#endif
}

