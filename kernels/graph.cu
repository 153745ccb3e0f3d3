// Element-wise and layout kernels of the model graphs (src/graph/): flips, channel halves,
// adds and products, and the f32 -> bf16 rounding of a GEMM input.
//
// Layout: row-major [rows, width] float32; a batch of `batch` sequences of `len` rows each is
// stacked sequence by sequence (row b * len + t). One thread per element.

// out[b, t, c] = x[b, t', c'] with t' = len - 1 - t when flip_seq, c' = width - 1 - c when
// flip_ch (out and x must not overlap).
extern "C" __global__ void flip_rows(const float* x, float* out, int len, int batch, int width,
                                     int flip_seq, int flip_ch) {
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    long total = (long)batch * len * width;
    if (i >= total) return;
    int c = (int)(i % width);
    long row = i / width;
    long t = row % len, b = row / len;
    long ts = flip_seq ? len - 1 - t : t;
    int cs = flip_ch ? width - 1 - c : c;
    out[i] = x[(b * len + ts) * width + cs];
}

// dst[r, dst_c0 + j] = src[r, src_c0 + j] for j < cols: a column block copied between
// matrices of widths src_w and dst_w.
extern "C" __global__ void copy_cols(const float* src, int src_w, int src_c0, float* dst,
                                     int dst_w, int dst_c0, int cols, long rows) {
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= rows * cols) return;
    long r = i / cols;
    int j = (int)(i % cols);
    dst[r * dst_w + dst_c0 + j] = src[r * src_w + src_c0 + j];
}

// x[i] += y[i] (mode 0) or x[i] *= y[i] (mode 1).
extern "C" __global__ void combine(float* x, const float* y, long n, int mode) {
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    x[i] = mode == 0 ? x[i] + y[i] : x[i] * y[i];
}

// out[i] = bfloat16 bits of x[i], rounded to nearest even (bf16_bits is in norm.cu, compiled in
// the same program).
extern "C" __global__ void to_bf16(const float* x, unsigned short* out, long n) {
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    out[i] = bf16_bits(x[i]);
}

// out[i] = logp[i, next[i]]: each log-softmax row at the token that follows it (the observed
// base's log-probability), so only these values, not whole rows, go back to the host.
extern "C" __global__ void gather_observed(const float* logp, const unsigned int* next,
                                           float* out, long n, int v) {
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    out[i] = logp[i * v + next[i]];
}
