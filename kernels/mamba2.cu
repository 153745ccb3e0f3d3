// Mamba-2 (SSD) mixer kernels: dt, the scan with per-head scalar decay, the gated RMSNorm.
// (The causal conv over x, B and C is conv.cu's conv1d_silu with the xBC columns.)
//
// Layout: zxbcdt is in_proj's output, row-major [batch * len, width] with columns
// z [d_inner] | x [d_inner] | B [groups * M2_N] | C [groups * M2_N] | dt [heads]; xbc is the
// conv output [batch * len, conv_dim] (x, B, C); y is [batch * len, d_inner]; the SSM state is
// [batch, heads, head_dim, M2_N]. Head h reads the B and C of group h / (heads / groups).
//
// m2_scan is sequential in time: one warp per (sequence, head, channel p), each lane holding
// the states n = lane + 32 j (M2_N up to 128, so a tile fits the 48 KiB of static shared memory). The order of every operation is fixed, so results do not depend on
// how a sequence is split into stripes. (This is the recurrent form, not the chunked SSD form
// with tensor-core matmuls.)

// M2_N (the model's state size) is defined when the kernels are compiled.
#ifndef M2_N
#define M2_N 16
#endif
#define M2_LANE_STATES ((M2_N + 31) / 32)
#define M2_WARPS 8

// dt[r, h] = clamp(softplus(zxbcdt[r, dt_off + h] + dt_bias[h]), lo, hi) (softplus as torch's:
// x above 20 passes through).
extern "C" __global__ void m2_dt(const float* zxbcdt, int width, int dt_off, long rows, int heads,
                                 const float* dt_bias, float lo, float hi, float* dt) {
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= rows * heads) return;
    long r = i / heads;
    int h = (int)(i % heads);
    float v = zxbcdt[r * width + dt_off + h] + dt_bias[h];
    float sp = v > 20.0f ? v : log1pf(expf(v));
    dt[i] = fminf(fmaxf(sp, lo), hi);
}

// grid (ceil(head_dim / M2_WARPS), heads, batch), block 32 * M2_WARPS threads. A tile of
// M2_TILE (= 32, one per lane) time steps' B, C, dt, exp(dt * A) and x is staged in shared
// memory; each warp runs its channel through the tile keeping one partial sum of C . s per step
// and lane, then one reduce-scatter over the lanes (31 shuffles) leaves step t's sum in lane t,
// which writes y. The sum over the lanes is the same butterfly tree for every step, so results
// do not depend on where tiles or stripes start.
#define M2_TILE 32
extern "C" __global__ void m2_scan(const float* xbc, int conv_dim, int len, int heads,
                                   int head_dim, int groups, int d_inner, const float* dt,
                                   const float* a, const float* d, float* ssm, float* y) {
    __shared__ float sB[M2_TILE * M2_N];
    __shared__ float sC[M2_TILE * M2_N];
    __shared__ float sdt[M2_TILE];
    __shared__ float sdecay[M2_TILE];
    __shared__ float sx[M2_TILE * M2_WARPS];
    int b = blockIdx.z, h = blockIdx.y;
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    int p0 = blockIdx.x * M2_WARPS;
    int p = p0 + warp;
    bool active = p < head_dim;
    int g = h / (heads / groups);
    float ah = a[h], dh = d[h];
    float* state = ssm + (((long)b * heads + h) * head_dim + (active ? p : 0)) * M2_N;
    float s[M2_LANE_STATES];
#pragma unroll
    for (int j = 0; j < M2_LANE_STATES; ++j) {
        int n = lane + 32 * j;
        s[j] = (active && n < M2_N) ? state[n] : 0.0f;
    }
    long row0 = (long)b * len;
    int b_off = d_inner + g * M2_N, c_off = d_inner + (groups + g) * M2_N;
    for (int t0 = 0; t0 < len; t0 += M2_TILE) {
        int steps = min(M2_TILE, len - t0);
        __syncthreads();
        for (int i = threadIdx.x; i < steps * M2_N; i += blockDim.x) {
            int tt = i / M2_N, n = i % M2_N;
            const float* row = xbc + (row0 + t0 + tt) * conv_dim;
            sB[i] = row[b_off + n];
            sC[i] = row[c_off + n];
        }
        for (int i = threadIdx.x; i < steps; i += blockDim.x) {
            float v = dt[(row0 + t0 + i) * heads + h];
            sdt[i] = v;
            sdecay[i] = expf(v * ah);
        }
        for (int i = threadIdx.x; i < steps * M2_WARPS; i += blockDim.x) {
            int tt = i / M2_WARPS, w = i % M2_WARPS;
            int pp = p0 + w;
            sx[i] = pp < head_dim ? xbc[(row0 + t0 + tt) * conv_dim + h * head_dim + pp] : 0.0f;
        }
        __syncthreads();
        if (active) {
            float part[M2_TILE];
#pragma unroll
            for (int tt = 0; tt < M2_TILE; ++tt) {
                float acc = 0.0f;
                if (tt < steps) {
                    float decay = sdecay[tt];
                    float dtx = sdt[tt] * sx[tt * M2_WARPS + warp];
#pragma unroll
                    for (int j = 0; j < M2_LANE_STATES; ++j) {
                        int n = lane + 32 * j;
                        if (n < M2_N) {
                            s[j] = decay * s[j] + dtx * sB[tt * M2_N + n];
                            acc += s[j] * sC[tt * M2_N + n];
                        }
                    }
                }
                part[tt] = acc;
            }
            // Reduce-scatter: at width k, lanes with bit k keep the upper k of their 2k steps,
            // the others the lower k, each adding its partner's partial for the steps it keeps.
#pragma unroll
            for (int k = 16; k >= 1; k >>= 1) {
                bool upper = (lane & k) != 0;
#pragma unroll
                for (int i = 0; i < k; ++i) {
                    float send = upper ? part[i] : part[i + k];
                    float keep = upper ? part[i + k] : part[i];
                    part[i] = keep + __shfl_xor_sync(0xffffffffu, send, k);
                }
            }
            if (lane < steps) {
                float x = sx[lane * M2_WARPS + warp];
                y[(row0 + t0 + lane) * d_inner + h * head_dim + p] = part[0] + dh * x;
            }
        }
    }
    if (active) {
#pragma unroll
        for (int j = 0; j < M2_LANE_STATES; ++j) {
            int n = lane + 32 * j;
            if (n < M2_N) state[n] = s[j];
        }
    }
}

// transformers' MambaRMSNormGated with its gate, in place on y: per row and group of `group`
// channels, v = y * silu(z), then w * (v * rsqrt(mean(v^2) + eps)). grid (rows, d_inner / group).
extern "C" __global__ void m2_gated_norm(float* y, const float* zxbcdt, int width, int d_inner,
                                         int group, const float* w, float eps) {
    long row = blockIdx.x;
    int grp = blockIdx.y;
    float* yr = y + row * d_inner + (long)grp * group;
    const float* zr = zxbcdt + row * width + (long)grp * group;
    float s = 0.0f;
    for (int j = threadIdx.x; j < group; j += blockDim.x) {
        float z = zr[j];
        float v = yr[j] * (z / (1.0f + expf(-z)));
        yr[j] = v;
        s += v * v;
    }
    s = block_sum(s);
    float scale = 1.0f / sqrtf(s / (float)group + eps);
    const float* wg = w + (long)grp * group;
    for (int j = threadIdx.x; j < group; j += blockDim.x) yr[j] = wg[j] * (yr[j] * scale);
}
