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
// and z are read once per step (the next step's are loaded before this step's arithmetic), and
// B, C, which every channel of a step shares, are staged for the whole chunk in shared memory
// by the block, then read as broadcasts. The chunk's decay product is exp2(A log2 e * sum dt),
// one exp2 per lane instead of a multiply per step. Given `y16`, scan_chunk_output writes y
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

// Longest chunk the shared-memory staging holds; the host uses 64.
#define SCAN_CHUNK_MAX 64

// Stages `width` columns from `col` of rows t0 .. t1 - 1 of bc (row stride bc_stride) into
// out[(t - t0) * width + j], with every thread of the block, then waits for all of them.
__device__ __forceinline__ void stage_rows(const float* bc, int bc_stride, int col, long t0,
                                           long t1, int width, float* out) {
    int count = (int)(t1 - t0) * width;
    for (int i = threadIdx.x; i < count; i += blockDim.x) {
        int t = i / width, j = i % width;
        out[i] = bc[(t0 + t) * bc_stride + col + j];
    }
    __syncthreads();
}

__device__ __forceinline__ float silu(float x) { return x / (1.0f + expf(-x)); }

__device__ __forceinline__ float softplus(float x) { return x > 20.0f ? x : log1pf(expf(x)); }

// exp(dt * A) is evaluated as exp2(dt * (A * log2 e)) with the hardware exp2, and the updates as
// fused multiply-adds: the scan is bound by instruction count, and both are at least as
// accurate as the separate operations (the rest of the program is compiled without FMA
// contraction, so these are written out).
#define LOG2E 1.4426950408889634f

// The hardware exp2 (MUFU.EX2, 2 ulp) with results below 2^-126 flushed to zero. exp2f without
// fast-math wraps the same instruction in denormal handling (extra instructions on every call,
// 16 calls per channel and step); a decay below 2^-126 shrinks a state far below the float32
// resolution of the step's new input, so flushing it to zero changes no result measurably.
__device__ __forceinline__ float exp2_ftz(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

extern "C" __global__ void scan_chunk_local(const float* u, const float* delta,
                                            const float* dt_bias, const float* bc, int bc_stride,
                                            int b_off, const float* A, int len, int e, int chunk,
                                            float* h_end, float* decay) {
    __shared__ __align__(16) float sb[SCAN_CHUNK_MAX * SSM_N];
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    long k = blockIdx.y, b = blockIdx.z, row0 = b * len;
    long t0 = row0 + k * chunk, t1 = row0 + min((long)len, k * chunk + chunk);
    stage_rows(bc, bc_stride, b_off, t0, t1, SSM_N, sb);
    if (c >= e) return;
    long slot = ((b * gridDim.y + k) * e + c) * SSM_N;
    float a[SSM_N], h[SSM_N], bias = dt_bias[c], dt_sum = 0.0f;
#pragma unroll
    for (int s = 0; s < SSM_N; ++s) {
        a[s] = A[c * SSM_N + s] * LOG2E;
        h[s] = 0.0f;
    }
    float d_next = delta[t0 * e + c], u_next = u[t0 * e + c];
    for (long t = t0; t < t1; ++t) {
        float dv = d_next, uv = u_next;
        if (t + 1 < t1) {
            d_next = delta[(t + 1) * e + c];
            u_next = u[(t + 1) * e + c];
        }
        float dt = softplus(dv + bias);
        float du = dt * uv;
        dt_sum += dt;
        const float* B = sb + (t - t0) * SSM_N;
#pragma unroll
        for (int s = 0; s < SSM_N; ++s) h[s] = __fmaf_rn(exp2_ftz(dt * a[s]), h[s], du * B[s]);
    }
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

extern "C" __global__ void scan_chunk_output(const float* u, const float* delta,
                                             const float* dt_bias, const float* bc,
                                             int bc_stride, int b_off, const float* A,
                                             const float* D, const float* z, int z_stride,
                                             int len, int e, int chunk, const float* h_start,
                                             float* y, unsigned short* y16) {
    __shared__ __align__(16) float sbc[SCAN_CHUNK_MAX * 2 * SSM_N];
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    long k = blockIdx.y, b = blockIdx.z, row0 = b * len;
    long t0 = row0 + k * chunk, t1 = row0 + min((long)len, k * chunk + chunk);
    stage_rows(bc, bc_stride, b_off, t0, t1, 2 * SSM_N, sbc);
    if (c >= e) return;
    long slot = ((b * gridDim.y + k) * e + c) * SSM_N;
    float a[SSM_N], h[SSM_N], bias = dt_bias[c];
#pragma unroll
    for (int s = 0; s < SSM_N; ++s) {
        a[s] = A[c * SSM_N + s] * LOG2E;
        h[s] = h_start[slot + s];
    }
    float d = D[c];
    float d_next = delta[t0 * e + c], u_next = u[t0 * e + c], z_next = z[t0 * z_stride + c];
    for (long t = t0; t < t1; ++t) {
        float dv = d_next, uu = u_next, zv = z_next;
        if (t + 1 < t1) {
            d_next = delta[(t + 1) * e + c];
            u_next = u[(t + 1) * e + c];
            z_next = z[(t + 1) * z_stride + c];
        }
        float dt = softplus(dv + bias);
        float du = dt * uu;
        const float* B = sbc + (t - t0) * 2 * SSM_N;
        const float* C = B + SSM_N;
        float acc = 0.0f;
#pragma unroll
        for (int s = 0; s < SSM_N; ++s) {
            h[s] = __fmaf_rn(exp2_ftz(dt * a[s]), h[s], du * B[s]);
            acc = __fmaf_rn(h[s], C[s], acc);
        }
        float out = (acc + d * uu) * silu(zv);
        if (y16) {
            y16[t * e + c] = bf16_bits(out);
        } else {
            y[t * e + c] = out;
        }
    }
}
