// The selective scan of Mamba-1, parallel over channels and time.
//
// Per channel c and state s, with dt = softplus(dt_proj output [len, e] + dt_bias[c]) (PyTorch's
// threshold of 20, computed where it is used rather than in a pass of its own),
// u = conv output [len, e],
// B, C = columns of x_proj's output (row stride bc_stride, B at b_off, C at b_off + n):
//   h[t] = exp(dt[t] * A[c, s]) * h[t-1] + (dt[t] * u[t]) * B[t, s]
//   y[t, c] = (sum_s h[t] * C[t, s] + D[c] * u[t]) * silu(z[t, c])
// The recurrence is linear in h, so time is cut into chunks of `chunk` steps:
//   1. scan_chunk_local: each chunk scans from h = 0, writing its end value and the product
//      of its decays.
//   2. scan_carry: one thread per (c, s) walks the chunks in order from the carried state:
//      h_start[k] = h; h = decay[k] * h + h_end[k]. The last h is the new carried state.
//   3. scan_chunk_output: each chunk rescans from its true h_start and writes y.
// In 1 and 3 one thread owns one channel of one chunk and keeps its SSM_N state lanes in
// registers (SSM_N, the model's d_state, is defined when the kernels are compiled), so u, dt
// and z are read once per step and B, C are shared by every thread of a block.
// Chunk boundaries sit at multiples of `chunk` from each sequence's start, so the result at a
// position does not depend on where a stripe began, as long as stripes begin on a boundary.
// Batches: sequence b = blockIdx.z owns rows b * len .. b * len + len - 1, state b * e * n, and
// chunk buffers (b * chunks + k) * e * n with lanes of channel c at c * n .. c * n + n - 1,
// chunks = gridDim.y.

#ifndef SSM_N
#define SSM_N 16
#endif

__device__ __forceinline__ float silu(float x) { return x / (1.0f + expf(-x)); }

__device__ __forceinline__ float softplus(float x) { return x > 20.0f ? x : log1pf(expf(x)); }

// exp(dt * A) is evaluated as exp2(dt * (A * log2 e)) with the hardware exp2, and the updates as
// fused multiply-adds: the scan is bound by instruction count, and both are at least as
// accurate as the separate operations (the rest of the program is compiled without FMA
// contraction, so these are written out).
#define LOG2E 1.4426950408889634f

extern "C" __global__ void scan_chunk_local(const float* u, const float* delta,
                                            const float* dt_bias, const float* bc, int bc_stride,
                                            int b_off, const float* A, int len, int e, int chunk,
                                            float* h_end, float* decay) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= e) return;
    long k = blockIdx.y, b = blockIdx.z, row0 = b * len;
    long slot = ((b * gridDim.y + k) * e + c) * SSM_N;
    long t0 = row0 + k * chunk, t1 = row0 + min((long)len, k * chunk + chunk);
    float a[SSM_N], h[SSM_N], p[SSM_N], bias = dt_bias[c];
#pragma unroll
    for (int s = 0; s < SSM_N; ++s) {
        a[s] = A[c * SSM_N + s] * LOG2E;
        h[s] = 0.0f;
        p[s] = 1.0f;
    }
    for (long t = t0; t < t1; ++t) {
        float dt = softplus(delta[t * e + c] + bias);
        float du = dt * u[t * e + c];
        const float* B = bc + t * bc_stride + b_off;
#pragma unroll
        for (int s = 0; s < SSM_N; ++s) {
            float dA = exp2f(dt * a[s]);
            h[s] = __fmaf_rn(dA, h[s], du * B[s]);
            p[s] *= dA;
        }
    }
#pragma unroll
    for (int s = 0; s < SSM_N; ++s) {
        h_end[slot + s] = h[s];
        decay[slot + s] = p[s];
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

extern "C" __global__ void scan_chunk_output(const float* u, const float* delta,
                                             const float* dt_bias, const float* bc,
                                             int bc_stride, int b_off, const float* A,
                                             const float* D, const float* z, int z_stride,
                                             int len, int e, int chunk, const float* h_start,
                                             float* y) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= e) return;
    long k = blockIdx.y, b = blockIdx.z, row0 = b * len;
    long slot = ((b * gridDim.y + k) * e + c) * SSM_N;
    long t0 = row0 + k * chunk, t1 = row0 + min((long)len, k * chunk + chunk);
    float a[SSM_N], h[SSM_N], bias = dt_bias[c];
#pragma unroll
    for (int s = 0; s < SSM_N; ++s) {
        a[s] = A[c * SSM_N + s] * LOG2E;
        h[s] = h_start[slot + s];
    }
    float d = D[c];
    for (long t = t0; t < t1; ++t) {
        float dt = softplus(delta[t * e + c] + bias);
        float uu = u[t * e + c];
        float du = dt * uu;
        const float* B = bc + t * bc_stride + b_off;
        const float* C = B + SSM_N;
        float acc = 0.0f;
#pragma unroll
        for (int s = 0; s < SSM_N; ++s) {
            h[s] = __fmaf_rn(exp2f(dt * a[s]), h[s], du * B[s]);
            acc = __fmaf_rn(h[s], C[s], acc);
        }
        y[t * e + c] = (acc + d * uu) * silu(z[t * z_stride + c]);
    }
}
