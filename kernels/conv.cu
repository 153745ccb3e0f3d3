// Causal depthwise conv1d + SiLU, with the conv state carried across stripes.
//
// `batch` independent sequences of `len` rows each are stacked: row b * len + t. The input x is
// the first half of in_proj's output: row-major [batch * len, e] with row stride in_stride. Each
// sequence's state holds its previous (k - 1) inputs, oldest first, [batch, k - 1, e]; row t of
// sequence b's extended input is state[b, k - 1 + t] for t < 0 and x[b * len + t] otherwise.
//   out[t, c] = silu(bias[c] + sum_j weight[c, j] * ext[t - (k - 1) + j, c])
// conv_state_next writes the last (k - 1) rows of the extended sequence to a new buffer (the
// old state is still being read by conv1d_silu until that kernel finishes).

extern "C" __global__ void conv1d_silu(const float* x, int in_stride, int len, int batch, int e,
                                       int k, const float* state, const float* weight,
                                       const float* bias, float* out) {
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long)batch * len * e) return;
    long row = i / e;
    long b = row / len, t = row % len;
    int c = (int)(i % e);
    float acc = bias[c];
    for (int j = 0; j < k; ++j) {
        long tt = t - (k - 1) + j;
        float v = tt < 0 ? state[(b * (k - 1) + k - 1 + tt) * e + c] : x[(b * len + tt) * in_stride + c];
        acc += weight[c * k + j] * v;
    }
    out[i] = acc / (1.0f + expf(-acc));
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
