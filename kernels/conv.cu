// Causal depthwise conv1d + SiLU, with the conv state carried across stripes.
//
// The input x is the first half of in_proj's output: row-major [len, e] with row stride
// in_stride. The state holds the previous (k - 1) inputs, oldest first, [k - 1, e]; row t of
// the extended sequence is state[k - 1 + t] for t < 0 and x[t] otherwise.
//   out[t, c] = silu(bias[c] + sum_j weight[c, j] * ext[t - (k - 1) + j, c])
// conv_state_next writes the last (k - 1) rows of the extended sequence to a new buffer (the
// old state is still being read by conv1d_silu until that kernel finishes).

extern "C" __global__ void conv1d_silu(const float* x, int in_stride, int len, int e, int k,
                                       const float* state, const float* weight,
                                       const float* bias, float* out) {
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long)len * e) return;
    long t = i / e;
    int c = (int)(i % e);
    float acc = bias[c];
    for (int j = 0; j < k; ++j) {
        long tt = t - (k - 1) + j;
        float v = tt < 0 ? state[(k - 1 + tt) * e + c] : x[tt * in_stride + c];
        acc += weight[c * k + j] * v;
    }
    out[i] = acc / (1.0f + expf(-acc));
}

extern "C" __global__ void conv_state_next(const float* x, int in_stride, int len, int e, int k,
                                           const float* state, float* next) {
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long)(k - 1) * e) return;
    long r = i / e;
    int c = (int)(i % e);
    long tt = (long)len - (k - 1) + r;
    next[i] = tt < 0 ? state[(k - 1 + tt) * e + c] : x[tt * in_stride + c];
}
