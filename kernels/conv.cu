// Causal depthwise conv1d + SiLU, with the conv state carried across stripes.
//
// `batch` independent sequences of `len` rows each are stacked: row b * len + t. The input x is
// the first half of in_proj's output: row-major [batch * len, e] with row stride in_stride. Each
// sequence's state holds its previous (k - 1) inputs, oldest first, [batch, k - 1, e]; row t of
// sequence b's extended input is state[b, k - 1 + t] for t < 0 and x[b * len + t] otherwise.
//   out[t, c] = silu(bias[c] + sum_j weight[c, j] * ext[t - (k - 1) + j, c])
// conv_state_next writes the last (k - 1) rows of the extended sequence to a new buffer (the
// old state is still being read by conv1d_silu until that kernel finishes).

// One thread computes CONV_T consecutive steps of one channel from a window of inputs held in
// registers, so each input is read once per thread rather than once per tap. CONV_K (the
// model's d_conv) is defined when the kernels are compiled.
#ifndef CONV_K
#define CONV_K 4
#endif
#define CONV_T 8

extern "C" __global__ void conv1d_silu(const float* x, int in_stride, int len, int batch, int e,
                                       const float* state, const float* weight,
                                       const float* bias, float* out) {
    long groups = (len + CONV_T - 1) / CONV_T;
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long)batch * groups * e) return;
    int c = (int)(i % e);
    long g = (i / e) % groups, b = i / (e * groups);
    long t_begin = g * CONV_T;
    float w[CONV_K], v[CONV_K - 1 + CONV_T];
#pragma unroll
    for (int j = 0; j < CONV_K; ++j) w[j] = weight[c * CONV_K + j];
#pragma unroll
    for (int r = 0; r < CONV_K - 1 + CONV_T; ++r) {
        long tt = t_begin - (CONV_K - 1) + r;
        v[r] = tt < 0 ? state[(b * (CONV_K - 1) + CONV_K - 1 + tt) * e + c]
                      : (tt < len ? x[(b * len + tt) * in_stride + c] : 0.0f);
    }
    float bc = bias[c];
#pragma unroll
    for (int s = 0; s < CONV_T; ++s) {
        long t = t_begin + s;
        if (t < len) {
            float acc = bc;
#pragma unroll
            for (int j = 0; j < CONV_K; ++j) acc += w[j] * v[s + j];
            out[(b * len + t) * e + c] = silu_fast(acc);
        }
    }
}

extern "C" __global__ void conv_state_next(const float* x, int in_stride, int len, int batch, int e,
                                           int k, const float* state, float* next) {
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long)batch * (k - 1) * e) return;
    long b = i / ((long)(k - 1) * e);
    long r = (i / e) % (k - 1);
    int c = (int)(i % e);
    long tt = (long)len - (k - 1) + r;
    next[i] = tt < 0 ? state[(b * (k - 1) + k - 1 + tt) * e + c] : x[(b * len + tt) * in_stride + c];
}
