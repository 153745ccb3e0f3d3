// Embedding lookup, RMSNorm and row-wise log-softmax.
//
// Layout: activations are row-major [len, width] float32.
// - embed_tokens: out[t, :] = table[tokens[t], :], one thread per element.
// - rms_norm: one block per row; the block sums x^2 with warp shuffles and a shared-memory
//   pass, then writes x * rsqrt(mean(x^2) + eps) * w. The order matches the CPU backend
//   ((x * scale) * w), but the sum order differs, so results agree to rounding, not bits.
//   Given `out16`, it writes the result as bfloat16 bits there instead (the input of a bf16
//   GEMM, rounded to nearest even by bf16_bits), so no separate rounding pass is needed.
// - log_softmax_rows: one thread per row (the vocabulary is tiny: 12 for DNA models).

extern "C" __global__ void embed_tokens(const unsigned int* tokens, const float* table,
                                        float* out, int len, int d) {
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long)len * d) return;
    long t = i / d;
    int j = (int)(i % d);
    out[i] = table[(long)tokens[t] * d + j];
}

__device__ float block_sum(float v) {
    __shared__ float partial[32];
    for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    int warps = (blockDim.x + 31) / 32;
    v = lane < warps ? partial[lane] : 0.0f;
    if (warp == 0) {
        for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
        if (lane == 0) partial[0] = v;
    }
    __syncthreads();
    float total = partial[0];
    __syncthreads();
    return total;
}

// Round-to-nearest-even float32 -> bfloat16 bits (activations are finite).
__device__ __forceinline__ unsigned short bf16_bits(float v) {
    unsigned int bits = __float_as_uint(v);
    bits += 0x7fffu + ((bits >> 16) & 1u);
    return (unsigned short)(bits >> 16);
}

extern "C" __global__ void rms_norm(const float* x, const float* w, float* out,
                                    unsigned short* out16, int d, float eps) {
    long row = blockIdx.x;
    const float* xr = x + row * d;
    float* o = out + row * d;
    float s = 0.0f;
    for (int j = threadIdx.x; j < d; j += blockDim.x) {
        float v = xr[j];
        s += v * v;
    }
    s = block_sum(s);
    float scale = 1.0f / sqrtf(s / (float)d + eps);
    if (out16) {
        unsigned short* o16 = out16 + row * d;
        for (int j = threadIdx.x; j < d; j += blockDim.x) o16[j] = bf16_bits(xr[j] * scale * w[j]);
    } else {
        for (int j = threadIdx.x; j < d; j += blockDim.x) o[j] = xr[j] * scale * w[j];
    }
}

extern "C" __global__ void log_softmax_rows(float* x, int rows, int v) {
    long r = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= rows) return;
    float* p = x + r * v;
    float m = __int_as_float(0xff800000);  // -inf (NVRTC has no math.h)
    for (int j = 0; j < v; ++j) m = fmaxf(m, p[j]);
    float s = 0.0f;
    for (int j = 0; j < v; ++j) s += expf(p[j] - m);
    float log_z = m + logf(s);
    for (int j = 0; j < v; ++j) p[j] -= log_z;
}
