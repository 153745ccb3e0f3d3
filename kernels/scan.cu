// The selective scan of Mamba-1, parallel over channels and time.
//
// Per channel c and state s, with x_dbl = x_proj's output [len, DT_RANK + 2n] (row stride
// xs): its first DT_RANK columns the low-rank step size, then B, then C,
// dt = softplus(dt_proj[c, :] . x_dbl[t, :DT_RANK] + dt_bias[c]) (PyTorch's threshold of 20;
// dt_proj is folded into the local pass: each thread keeps its channel's row in registers and
// reads the step's low-rank columns from shared memory; the pass writes dt [len, e], softplus
// applied, for the output pass to read, which measured faster on the H100 than recomputing it
// there and than a separate dt_proj GEMM),
// u = conv output [len, e],
//   h[t] = exp(dt[t] * A[c, s]) * h[t-1] + (dt[t] * u[t]) * B[t, s]
//   y[t, c] = (sum_s h[t] * C[t, s] + D[c] * u[t]) * silu(z[t, c])
// The recurrence is linear in h, so time is cut into chunks of `chunk` steps:
//   1. scan_chunk_local: each chunk scans from h = 0, writing its end value, the product of
//      its decays, and dt.
//   2. scan_carry: one thread per (c, s) walks the chunks in order from the carried state:
//      h_start[k] = h; h = decay[k] * h + h_end[k]. The last h is the new carried state.
//   3. scan_chunk_output: each chunk rescans from its true h_start (staging only B and C)
//      and writes y.
// In 1 and 3 one thread owns one channel of one chunk and keeps its SSM_N state lanes in
// registers (SSM_N, the model's d_state, is defined when the kernels are compiled), so u, dt
// and z are read once per step (the next step's are loaded before this step's arithmetic), and
// x_dbl's columns, which every channel of a step shares, are staged STAGE_ROWS rows at a time
// in shared memory by the block, then read as broadcasts. The chunk's decay product is
// exp2(A log2 e * sum dt), one exp2 per lane instead of a multiply per step. Given `y16`, scan_chunk_output writes y
// as bfloat16 bits (the input of a bf16 out_proj GEMM; bf16_bits is in norm.cu, compiled in
// the same program) instead of float32.
// Chunk boundaries sit at multiples of `chunk` from each sequence's start, so the result at a
// position does not depend on where a stripe began, as long as stripes begin on a boundary.
// Batches: sequence b = blockIdx.z owns rows b * len .. b * len + len - 1, state b * e * n, and
// chunk buffers (b * chunks + k) * e * n with lanes of channel c at c * n .. c * n + n - 1,
// chunks = gridDim.y.

#ifndef SSM_N
#define SSM_N 16
#endif

#ifndef DT_RANK
#define DT_RANK 16
#endif

// Columns of x_dbl the output pass reads (the local pass reads the first DT_RANK + SSM_N).
#define XDBL_W (DT_RANK + 2 * SSM_N)
// Rows of x_dbl staged in shared memory at a time (a chunk is a multiple of it).
#define STAGE_ROWS (XDBL_W <= 96 ? 64 : 32)

// Stages the first `width` columns of rows t0 .. t1 - 1 of x_dbl (row stride xs) into
// out[(t - t0) * width + j], with every thread of the block, then waits for all of them.
__device__ __forceinline__ void stage_rows(const float* x_dbl, int xs, long t0, long t1,
                                           int width, float* out) {
    int count = (int)(t1 - t0) * width;
    for (int i = threadIdx.x; i < count; i += blockDim.x) {
        int t = i / width, j = i % width;
        out[i] = x_dbl[(t0 + t) * xs + j];
    }
    __syncthreads();
}

__device__ __forceinline__ float softplus(float x) { return x > 20.0f ? x : log1pf(expf(x)); }

// The step size of a channel at a staged row: softplus(w . row[:DT_RANK] + bias), w the
// channel's row of dt_proj.
__device__ __forceinline__ float step_size(const float* w, const float* row, float bias) {
    float acc = 0.0f;
#pragma unroll
    for (int j = 0; j < DT_RANK; ++j) acc = __fmaf_rn(w[j], row[j], acc);
    return softplus(acc + bias);
}

// exp(dt * A) is evaluated as exp2(dt * (A * log2 e)) with the hardware exp2 (exp2_ftz,
// math.cu), and the updates as fused multiply-adds: the scan is bound by instruction count, and
// both are at least as accurate as the separate operations.

extern "C" __global__ void scan_chunk_local(const float* u, const float* x_dbl, int xs,
                                            const float* dt_proj, const float* dt_bias,
                                            const float* A, int len, int e, int chunk,
                                            float* h_end, float* decay, float* dt_out) {
    __shared__ __align__(16) float rows[STAGE_ROWS * (DT_RANK + SSM_N)];
    const int width = DT_RANK + SSM_N;
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    bool active = c < e;
    int cc = active ? c : 0;
    long k = blockIdx.y, b = blockIdx.z, row0 = b * len;
    long t0 = row0 + k * chunk, t1 = row0 + min((long)len, k * chunk + chunk);
    float a[SSM_N], h[SSM_N], w[DT_RANK], bias = dt_bias[cc], dt_sum = 0.0f;
#pragma unroll
    for (int s = 0; s < SSM_N; ++s) {
        a[s] = A[cc * SSM_N + s] * LOG2E;
        h[s] = 0.0f;
    }
#pragma unroll
    for (int j = 0; j < DT_RANK; ++j) w[j] = dt_proj[cc * DT_RANK + j];
    float u_next = u[t0 * e + cc];
    for (long s0 = t0; s0 < t1; s0 += STAGE_ROWS) {
        long s1 = min(t1, s0 + STAGE_ROWS);
        stage_rows(x_dbl, xs, s0, s1, width, rows);
        if (active) {
            for (long t = s0; t < s1; ++t) {
                float uv = u_next;
                if (t + 1 < t1) u_next = u[(t + 1) * e + c];
                const float* row = rows + (t - s0) * width;
                float dt = step_size(w, row, bias);
                dt_out[t * e + c] = dt;
                float du = dt * uv;
                dt_sum += dt;
                const float* B = row + DT_RANK;
#pragma unroll
                for (int s = 0; s < SSM_N; ++s)
                    h[s] = __fmaf_rn(exp2_ftz(dt * a[s]), h[s], du * B[s]);
            }
        }
        __syncthreads();
    }
    if (!active) return;
    long slot = ((b * gridDim.y + k) * e + c) * SSM_N;
#pragma unroll
    for (int s = 0; s < SSM_N; ++s) {
        h_end[slot + s] = h[s];
        decay[slot + s] = exp2_ftz(dt_sum * a[s]);
    }
}

// The chain over chunks is sequential per (c, s); loads of the next chunks are issued ahead of
// it so that memory latency is paid once per group of CARRY_AHEAD chunks, not once per chunk.
#define CARRY_AHEAD 16

extern "C" __global__ void scan_carry(float* state, const float* h_end, const float* decay,
                                      float* h_start, int chunks, int en, int batch) {
    long idx = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (long)batch * en) return;
    long b = idx / en, j = idx % en;
    float h = state[idx];
    for (long k0 = 0; k0 < chunks; k0 += CARRY_AHEAD) {
        float dk[CARRY_AHEAD], hk[CARRY_AHEAD];
#pragma unroll
        for (int i = 0; i < CARRY_AHEAD; ++i) {
            long slot = (b * chunks + k0 + i) * en + j;
            bool in = k0 + i < chunks;
            dk[i] = in ? decay[slot] : 0.0f;
            hk[i] = in ? h_end[slot] : 0.0f;
        }
#pragma unroll
        for (int i = 0; i < CARRY_AHEAD; ++i) {
            if (k0 + i < chunks) {
                h_start[(b * chunks + k0 + i) * en + j] = h;
                h = dk[i] * h + hk[i];
            }
        }
    }
    state[idx] = h;
}

extern "C" __global__ void scan_chunk_output(const float* u, const float* x_dbl, int xs,
                                             const float* dt_in, const float* A, const float* D,
                                             const float* z, int z_stride, int len, int e,
                                             int chunk, const float* h_start, float* y,
                                             unsigned short* y16) {
    __shared__ __align__(16) float rows[STAGE_ROWS * 2 * SSM_N];
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    bool active = c < e;
    int cc = active ? c : 0;
    long k = blockIdx.y, b = blockIdx.z, row0 = b * len;
    long t0 = row0 + k * chunk, t1 = row0 + min((long)len, k * chunk + chunk);
    long slot = ((b * gridDim.y + k) * e + cc) * SSM_N;
    float a[SSM_N], h[SSM_N];
#pragma unroll
    for (int s = 0; s < SSM_N; ++s) {
        a[s] = A[cc * SSM_N + s] * LOG2E;
        h[s] = h_start[slot + s];
    }
    float d = D[cc];
    float u_next = u[t0 * e + cc], z_next = z[t0 * z_stride + cc], d_next = dt_in[t0 * e + cc];
    for (long s0 = t0; s0 < t1; s0 += STAGE_ROWS) {
        long s1 = min(t1, s0 + STAGE_ROWS);
        stage_rows(x_dbl + DT_RANK, xs, s0, s1, 2 * SSM_N, rows);
        if (active) {
            for (long t = s0; t < s1; ++t) {
                float uu = u_next, zv = z_next, dt = d_next;
                if (t + 1 < t1) {
                    u_next = u[(t + 1) * e + c];
                    z_next = z[(t + 1) * z_stride + c];
                    d_next = dt_in[(t + 1) * e + c];
                }
                float du = dt * uu;
                const float* B = rows + (t - s0) * 2 * SSM_N;
                const float* C = B + SSM_N;
                float acc = 0.0f;
#pragma unroll
                for (int s = 0; s < SSM_N; ++s) {
                    h[s] = __fmaf_rn(exp2_ftz(dt * a[s]), h[s], du * B[s]);
                    acc = __fmaf_rn(h[s], C[s], acc);
                }
                float out = (acc + d * uu) * silu_fast(zv);
                if (y16) {
                    y16[t * e + c] = bf16_bits(out);
                } else {
                    y[t * e + c] = out;
                }
            }
        }
        __syncthreads();
    }
}
