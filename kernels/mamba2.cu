// Mamba-2 (SSD) mixer kernels: dt, the scan with per-head scalar decay, the gated RMSNorm.
// (The causal conv over x, B and C is conv.cu's conv1d_silu with the xBC columns.)
//
// Layout: zxbcdt is in_proj's output, row-major [batch * len, width] with columns
// z [d_inner] | x [d_inner] | B [groups * M2_N] | C [groups * M2_N] | dt [heads]; xbc is the
// conv output [batch * len, conv_dim] (x, B, C); y is [batch * len, d_inner]; the SSM state is
// [batch, heads, head_dim, M2_N]. Head h reads the B and C of group h / (heads / groups).
//
// Two scans: the chunked SSD form on the tensor cores (m2_chunk_*, m2_state_pass, below; what
// the backend runs), and m2_scan, the recurrent form sequential in time (kept for comparison,
// SSMGEN_M2_SCAN=sequential): one warp per (sequence, head, channel p), each lane holding the
// states n = lane + 32 j (M2_N up to 128, so a tile fits the 48 KiB of static shared memory).
// The order of every operation of m2_scan is fixed, so its results do not depend on how a
// sequence is split into stripes.

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
// Given y16 (the input of a bf16 out_proj), the result is written there as bfloat16 bits
// (bf16_bits, as to_bf16 would round it) instead of into y.
extern "C" __global__ void m2_gated_norm(float* y, const float* zxbcdt, int width, int d_inner,
                                         int group, const float* w, float eps,
                                         unsigned short* y16) {
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
    if (y16) {
        unsigned short* out = y16 + row * d_inner + (long)grp * group;
        for (int j = threadIdx.x; j < group; j += blockDim.x)
            out[j] = bf16_bits(wg[j] * (yr[j] * scale));
    } else {
        for (int j = threadIdx.x; j < group; j += blockDim.x) yr[j] = wg[j] * (yr[j] * scale);
    }
}

// ---------------------------------------------------------------------------------------------
// The chunked state-space-duality (SSD) form of the same scan, on the tensor cores.
//
// Per sequence and head, time is cut into chunks of M2_Q steps (counted from the start of the
// piece the kernels are given). With acum[t] the cumulative sum of dt * A inside t's chunk:
//   m2_chunk_cumsum  acum;
//   m2_chunk_state   S_c = sum_s exp(acum[end] - acum[s]) dt[s] x[s] (x) B[s]   ([P, N] a chunk),
//                    one matrix product (X * w)^T B per chunk and head;
//   m2_state_pass    H_c = exp(acum[end of c]) H_{c-1} + S_c from the carried state, leaving
//                    in place of S_c the state entering chunk c, and the last H in `ssm`;
//   m2_chunk_cb      C B^T per chunk and group (shared by the group's heads);
//   m2_chunk_scan    y[t] = sum_{s <= t} (C[t] . B[s]) exp(acum[t] - acum[s]) dt[s] x[s]
//                           + exp(acum[t]) C[t] . H_{c-1} + D x[t],
//                    the masked product (C B^T o L) X and C H^T per chunk and head.
// The matrix products run on mma.sync m16n8k8 in TF32 with f32 accumulation. With `exact`
// (f32 precision) each product is split in three (3xTF32: hi*hi + hi*lo + lo*hi, hi the TF32
// rounding and lo the TF32 rounding of the rest), which is about as accurate as f32; without it
// (bf16/tf32 precision) one TF32 product. States stay f32. Results depend on where chunks
// start: a stripe whose length is a multiple of M2_Q gives the same bits as the whole
// sequence, any other split agrees to rounding.
#ifndef M2_Q
#define M2_Q 128
#endif
// Warps of m2_chunk_cb and m2_chunk_scan, and of m2_chunk_state (blocks of 32 * warps threads).
#define M2_SSD_WARPS 4
#define M2_STATE_WARPS 8

// TF32 bits of v rounded to nearest, ties away from zero (cvt.rna.tf32.f32, in integer
// arithmetic so that the emulation computes the same bits).
__device__ __forceinline__ unsigned m2_tf32(float v) {
    return (__float_as_uint(v) + 0x1000u) & 0xffffe000u;
}

// v = hi + lo as TF32 values; lo is 0 unless `exact`.
__device__ __forceinline__ void m2_split(float v, int exact, unsigned& hi, unsigned& lo) {
    hi = m2_tf32(v);
    lo = exact ? m2_tf32(v - __int_as_float((int)hi)) : 0u;
}

// d += a b for one 16x8x8 tile, TF32 inputs, f32 accumulation. Fragments (g = lane / 4,
// q = lane % 4): a = A[g][q], A[g+8][q], A[g][q+4], A[g+8][q+4]; b = B[q][g], B[q+4][g];
// d = D[g][2q], D[g][2q+1], D[g+8][2q], D[g+8][2q+1].
__device__ __forceinline__ void m2_mma(float* d, const unsigned* a, const unsigned* b) {
#ifdef __CUDA_ARCH__
    asm volatile(
        "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#else
    emu_mma_tf32(d, a, b);  // kernels/emulate/emu.h: the same product, lane by lane
#endif
}

// d += a b with the operands split as m2_split left them (three products when exact).
__device__ __forceinline__ void m2_mma3(float* d, const unsigned* ahi, const unsigned* alo,
                                        const unsigned* bhi, const unsigned* blo, int exact) {
    if (exact) {
        m2_mma(d, alo, bhi);
        m2_mma(d, ahi, blo);
    }
    m2_mma(d, ahi, bhi);
}

__device__ __forceinline__ float m2_ld(const float* p, bool ok) { return ok ? *p : 0.0f; }

// Dynamic shared memory of m2_chunk_state and m2_chunk_scan (the emulation defines its own).
#ifdef __CUDA_ARCH__
extern __shared__ float m2_smem[];
#endif

// dst[r * ds + col] = src[r * ss + col] for r < rows, 0 for rows <= r < M2_Q (col < cols):
// each warp copies 16 rows at a time, lanes along the row, 16 loads in flight per lane.
__device__ __forceinline__ void m2_stage(float* dst, int ds, const float* src, long ss, int rows,
                                         int cols) {
    int warps = blockDim.x / 32, warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    for (int r0 = warp * 16; r0 < M2_Q; r0 += warps * 16) {
        for (int col = lane; col < cols; col += 32) {
            float v[16];
#pragma unroll
            for (int k = 0; k < 16; ++k) {
                int r = r0 + k;
                v[k] = r < rows ? src[r * ss + col] : 0.0f;
            }
#pragma unroll
            for (int k = 0; k < 16; ++k)
                if (r0 + k < M2_Q) dst[(r0 + k) * ds + col] = v[k];
        }
    }
}

// Each kernel below works on the piece [off, off + piece) of each of `batch` sequences of
// `len` rows (row of step t of sequence b: b * len + t); its chunk c starts at off + c * M2_Q.

// grid(ceil(batch * chunks * heads / 256)), block 256: one thread per (sequence, chunk, head).
extern "C" __global__ void m2_chunk_cumsum(const float* __restrict__ dt, const float* a, int len,
                                           int off, int piece, int heads, int chunks, int batch,
                                           float* __restrict__ acum) {
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long)batch * chunks * heads) return;
    int h = (int)(i % heads);
    long bc = i / heads;
    int c = (int)(bc % chunks), b = (int)(bc / chunks);
    int steps = min(M2_Q, piece - c * M2_Q);
    long r = ((long)b * len + off + (long)c * M2_Q) * heads + h;
    float ah = a[h], s = 0.0f;
#pragma unroll 8
    for (int t = 0; t < steps; ++t, r += heads) {
        s += dt[r] * ah;
        acum[r] = s;
    }
}

// grid (chunks, heads, batch), block 32 * M2_STATE_WARPS, dynamic shared memory
// M2_Q * (head_dim + 8 + M2_N + 8) floats: states[b, c, h] ([head_dim, M2_N]) = (X o w)^T B
// over the chunk's steps s, w[s] = exp(acum[end] - acum[s]) dt[s], with the chunk's x and B
// staged in shared memory. A warp's item is 16 channels p by 64 states n (eight 16x8 tiles).
extern "C" __global__ void m2_chunk_state(const float* xbc, int conv_dim, int len, int off,
                                          int piece, int heads, int head_dim, int groups,
                                          int d_inner, const float* dt, const float* acum,
                                          int exact, float* states) {
    __shared__ float sw[M2_Q + 8];
    int c = blockIdx.x, h = blockIdx.y, b = blockIdx.z, chunks = gridDim.x;
    int steps = min(M2_Q, piece - c * M2_Q);
    long row0 = (long)b * len + off + (long)c * M2_Q;
    int grp = h / (heads / groups);
    const int xs = head_dim + 8, bs = M2_N + 8;
    float* sX = m2_smem;
    float* sB = m2_smem + M2_Q * xs;
    m2_stage(sX, xs, xbc + row0 * conv_dim + (long)h * head_dim, conv_dim, steps, head_dim);
    m2_stage(sB, bs, xbc + row0 * conv_dim + d_inner + (long)grp * M2_N, conv_dim, steps, M2_N);
    float aend = acum[(row0 + steps - 1) * heads + h];
    for (int s = threadIdx.x; s < M2_Q + 8; s += blockDim.x)
        sw[s] = s < steps ? expf(aend - acum[(row0 + s) * heads + h]) * dt[(row0 + s) * heads + h]
                          : 0.0f;
    __syncthreads();
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane >> 2, q = lane & 3;
    float* out = states + (((long)b * chunks + c) * heads + h) * head_dim * M2_N;
    int mt = (head_dim + 15) / 16, ng = (M2_N + 63) / 64;
    int ksteps = (steps + 7) / 8;
    for (int item = warp; item < mt * ng; item += M2_STATE_WARPS) {
        int p0 = (item / ng) * 16, n0 = (item % ng) * 64;
        int pa = p0 + g, pb = p0 + g + 8;
        bool oka = pa < head_dim, okb = pb < head_dim;
        float acc[8][4];
#pragma unroll
        for (int j = 0; j < 8; ++j) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.0f;
        for (int ks = 0; ks < ksteps; ++ks) {
            int s0 = ks * 8 + q, s1 = s0 + 4;
            float w0 = sw[s0], w1 = sw[s1];
            float af[4] = {m2_ld(sX + s0 * xs + pa, oka) * w0, m2_ld(sX + s0 * xs + pb, okb) * w0,
                           m2_ld(sX + s1 * xs + pa, oka) * w1, m2_ld(sX + s1 * xs + pb, okb) * w1};
            unsigned ahi[4], alo[4];
#pragma unroll
            for (int i = 0; i < 4; ++i) m2_split(af[i], exact, ahi[i], alo[i]);
#pragma unroll
            for (int j = 0; j < 8; ++j) {
                if (n0 + 8 * j < M2_N) {
                    int n = n0 + 8 * j + g;
                    bool okn = n < M2_N;
                    unsigned bhi[2], blo[2];
                    m2_split(m2_ld(sB + s0 * bs + n, okn), exact, bhi[0], blo[0]);
                    m2_split(m2_ld(sB + s1 * bs + n, okn), exact, bhi[1], blo[1]);
                    m2_mma3(acc[j], ahi, alo, bhi, blo, exact);
                }
            }
        }
#pragma unroll
        for (int j = 0; j < 8; ++j) {
#pragma unroll
            for (int i = 0; i < 4; ++i) {
                int p = i < 2 ? pa : pb, n = n0 + 8 * j + 2 * q + (i & 1);
                if (p < head_dim && n < M2_N) out[(long)p * M2_N + n] = acc[j][i];
            }
        }
    }
}

// grid (ceil(head_dim * M2_N / 256), heads, batch), block 256: one thread per state element,
// in order over the chunks: the state entering chunk c replaces states[b, c, h], and
// H = exp(acum[end of c]) H + S_c; the state after the piece is left in ssm.
extern "C" __global__ void m2_state_pass(float* states, const float* acum, int len, int off,
                                         int piece, int heads, int chunks, int pn, float* ssm) {
    int e = blockIdx.x * blockDim.x + threadIdx.x, h = blockIdx.y, b = blockIdx.z;
    if (e >= pn) return;
    float* st = ssm + ((long)b * heads + h) * pn + e;
    float H = *st;
    long stride = (long)heads * pn;
    float* sp = states + ((long)b * chunks * heads + h) * pn + e;
    const float* ap = acum + ((long)b * len + off) * heads + h;
    int c = 0;
    for (; c + 4 <= chunks; c += 4) {
        float s[4], decay[4];
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            s[i] = sp[(c + i) * stride];
            decay[i] = expf(ap[((long)min((c + i + 1) * M2_Q, piece) - 1) * heads]);
        }
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            sp[(c + i) * stride] = H;
            H = decay[i] * H + s[i];
        }
    }
    for (; c < chunks; ++c) {
        float s = sp[c * stride];
        float decay = expf(ap[((long)min((c + 1) * M2_Q, piece) - 1) * heads]);
        sp[c * stride] = H;
        H = decay * H + s;
    }
    *st = H;
}

// grid (groups, chunks, batch), block 32 * M2_SSD_WARPS: cb[b, c, g] = C B^T ([M2_Q, M2_Q],
// rows t, columns s) of the chunk, the 16x8 tiles on and below the diagonal only (the others
// are never read). Warps take 16-step row tiles as m2_chunk_scan does; a tile's C operand is
// loaded once per 8 states and used for every column tile.
extern "C" __global__ void m2_chunk_cb(const float* xbc, int conv_dim, int len, int off,
                                       int piece, int groups, int d_inner, int exact,
                                       float* cb) {
    int grp = blockIdx.x, c = blockIdx.y, b = blockIdx.z, chunks = gridDim.y;
    int steps = min(M2_Q, piece - c * M2_Q);
    long row0 = (long)b * len + off + (long)c * M2_Q;
    const float* Bm = xbc + row0 * conv_dim + d_inner + (long)grp * M2_N;
    const float* Cm = xbc + row0 * conv_dim + d_inner + (long)(groups + grp) * M2_N;
    float* out = cb + (((long)b * chunks + c) * groups + grp) * M2_Q * M2_Q;
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane >> 2, q = lane & 3;
    const int tiles = (M2_Q + 15) / 16;
    for (int round = 0; round * M2_SSD_WARPS < tiles; ++round) {
        int rt = round * M2_SSD_WARPS + ((round & 1) ? M2_SSD_WARPS - 1 - warp : warp);
        int r0 = rt * 16;
        if (rt >= tiles || r0 >= steps) continue;  // the same for the whole warp
        int ra = r0 + g, rb = r0 + g + 8;
        bool va = ra < steps, vb = rb < steps;
        int nst = min(2 * rt + 2, (steps + 7) / 8);
        float acc[M2_Q / 8][4];
#pragma unroll
        for (int j = 0; j < M2_Q / 8; ++j) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.0f;
        for (int k0 = 0; k0 < M2_N; k0 += 8) {
            int ka = k0 + q, kb = k0 + q + 4;
            bool oka = ka < M2_N, okb = kb < M2_N;
            unsigned ahi[4], alo[4];
            m2_split(m2_ld(Cm + ra * conv_dim + ka, va && oka), exact, ahi[0], alo[0]);
            m2_split(m2_ld(Cm + rb * conv_dim + ka, vb && oka), exact, ahi[1], alo[1]);
            m2_split(m2_ld(Cm + ra * conv_dim + kb, va && okb), exact, ahi[2], alo[2]);
            m2_split(m2_ld(Cm + rb * conv_dim + kb, vb && okb), exact, ahi[3], alo[3]);
#pragma unroll
            for (int st = 0; st < M2_Q / 8; ++st) {
                if (st < nst) {
                    int sg = st * 8 + g;
                    bool vs = sg < steps;
                    unsigned bhi[2], blo[2];
                    m2_split(m2_ld(Bm + sg * conv_dim + ka, vs && oka), exact, bhi[0], blo[0]);
                    m2_split(m2_ld(Bm + sg * conv_dim + kb, vs && okb), exact, bhi[1], blo[1]);
                    m2_mma3(acc[st], ahi, alo, bhi, blo, exact);
                }
            }
        }
#pragma unroll
        for (int st = 0; st < M2_Q / 8; ++st) {
            if (st < nst) {
#pragma unroll
                for (int i = 0; i < 4; ++i) {
                    int row = i < 2 ? ra : rb, col = st * 8 + 2 * q + (i & 1);
                    out[row * M2_Q + col] = acc[st][i];
                }
            }
        }
    }
}

// grid (heads, chunks, batch), block 32 * M2_SSD_WARPS, dynamic shared memory
// (M2_Q * (head_dim + 8) + head_dim * (M2_N + 4)) floats: the chunk's x and the entering state,
// staged once. Warps take 16-step row tiles of the chunk (tiles w and then
// 2 * M2_SSD_WARPS - 1 - w, ..., so each warp gets a similar share of the causal triangle) and
// 64 channels at a time; per tile, C H^T (C from memory, H from shared) scaled by exp(acum[t]),
// then for each 8-step column tile s up to the diagonal the tile of cb, masked and scaled by
// exp(acum[t] - acum[s]) dt[s], moved from the accumulator to the operand layout with
// shuffles inside each lane quad, times X; then + D x.
// The body of m2_chunk_scan (4 warps, 64 channels a warp) and m2_chunk_scan8 (8 warps: warps
// w and w + 4 share row tiles and take 32 channels each, twice the warps a block for the same
// shared memory).
template <int WARPS>
__device__ __forceinline__ void m2_chunk_scan_t(const float* xbc, int conv_dim, int len, int off,
                                                int piece, int heads, int head_dim, int groups,
                                                int d_inner, const float* dt, const float* acum,
                                                const float* d, const float* states,
                                                const float* cb, int exact, float* y) {
    constexpr int PW = 64 / (WARPS / M2_SSD_WARPS);  // channels a warp takes at a time
    constexpr int NJ = PW / 8;                        // their 16x8 tiles
    __shared__ float sacum[M2_Q + 16], sdt[M2_Q + 16];
    int h = blockIdx.x, c = blockIdx.y, b = blockIdx.z, chunks = gridDim.y;
    int steps = min(M2_Q, piece - c * M2_Q);
    long row0 = (long)b * len + off + (long)c * M2_Q;
    int grp = h / (heads / groups);
    const float* X = xbc + row0 * conv_dim + (long)h * head_dim;
    const float* Cm = xbc + row0 * conv_dim + d_inner + (long)(groups + grp) * M2_N;
    const float* H = states + (((long)b * chunks + c) * heads + h) * head_dim * M2_N;
    const float* G = cb + (((long)b * chunks + c) * groups + grp) * M2_Q * M2_Q;
    const int xs = head_dim + 8, hs = M2_N + 4;
    float* sX = m2_smem;
    float* sH = m2_smem + M2_Q * xs;
    m2_stage(sX, xs, X, conv_dim, steps, head_dim);
    for (int i0 = threadIdx.x; i0 < head_dim * M2_N; i0 += 8 * blockDim.x) {
        float v[8];
#pragma unroll
        for (int k = 0; k < 8; ++k) {
            int i = i0 + k * blockDim.x;
            v[k] = i < head_dim * M2_N ? H[i] : 0.0f;
        }
#pragma unroll
        for (int k = 0; k < 8; ++k) {
            int i = i0 + k * blockDim.x;
            if (i < head_dim * M2_N) sH[(i / M2_N) * hs + i % M2_N] = v[k];
        }
    }
    for (int s = threadIdx.x; s < M2_Q + 16; s += blockDim.x) {
        bool ok = s < steps;
        sacum[s] = ok ? acum[(row0 + s) * heads + h] : 0.0f;
        sdt[s] = ok ? dt[(row0 + s) * heads + h] : 0.0f;
    }
    __syncthreads();
    int lane = threadIdx.x % 32, g = lane >> 2, q = lane & 3;
    int warp = (threadIdx.x / 32) % M2_SSD_WARPS, part = (threadIdx.x / 32) / M2_SSD_WARPS;
    float dh = d[h];
    const int tiles = (M2_Q + 15) / 16;
    int src0 = (lane & ~3) | (q >> 1), src1 = src0 + 2;
    bool odd = (q & 1) != 0;
    for (int round = 0; round * M2_SSD_WARPS < tiles; ++round) {
        int rt = round * M2_SSD_WARPS + ((round & 1) ? M2_SSD_WARPS - 1 - warp : warp);
        int r0 = rt * 16;
        if (rt >= tiles || r0 >= steps) continue;  // the same for the whole warp
        int ra = r0 + g, rb = r0 + g + 8;
        bool va = ra < steps, vb = rb < steps;
        float ea = expf(sacum[ra]), eb = expf(sacum[rb]);
        int s_end = min(r0 + 16, steps);
        for (int p0 = part * PW; p0 < head_dim; p0 += 64) {
            float acc[NJ][4];
#pragma unroll
            for (int j = 0; j < NJ; ++j) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.0f;
            // The entering state: C[t] . H[p].
#pragma unroll 4
            for (int k0 = 0; k0 < M2_N; k0 += 8) {
                int ka = k0 + q, kb = k0 + q + 4;
                bool oka = ka < M2_N, okb = kb < M2_N;
                unsigned ahi[4], alo[4];
                m2_split(m2_ld(Cm + ra * conv_dim + ka, va && oka), exact, ahi[0], alo[0]);
                m2_split(m2_ld(Cm + rb * conv_dim + ka, vb && oka), exact, ahi[1], alo[1]);
                m2_split(m2_ld(Cm + ra * conv_dim + kb, va && okb), exact, ahi[2], alo[2]);
                m2_split(m2_ld(Cm + rb * conv_dim + kb, vb && okb), exact, ahi[3], alo[3]);
#pragma unroll
                for (int j = 0; j < NJ; ++j) {
                    if (p0 + 8 * j < head_dim) {
                        int p = p0 + 8 * j + g;
                        bool okp = p < head_dim;
                        unsigned bhi[2], blo[2];
                        m2_split(m2_ld(sH + p * hs + ka, okp && oka), exact, bhi[0], blo[0]);
                        m2_split(m2_ld(sH + p * hs + kb, okp && okb), exact, bhi[1], blo[1]);
                        m2_mma3(acc[j], ahi, alo, bhi, blo, exact);
                    }
                }
            }
#pragma unroll
            for (int j = 0; j < NJ; ++j) {
                acc[j][0] *= ea;
                acc[j][1] *= ea;
                acc[j][2] *= eb;
                acc[j][3] *= eb;
            }
            // Inside the chunk, 8 steps s at a time up to the diagonal; the next column tile
            // of cb is loaded while this one is used.
            float gnext[4];
#pragma unroll
            for (int i = 0; i < 4; ++i)
                gnext[i] = G[(i < 2 ? ra : rb) * M2_Q + 2 * q + (i & 1)];
            for (int s0 = 0; s0 < s_end; s0 += 8) {
                float gacc[4];
#pragma unroll
                for (int i = 0; i < 4; ++i) {
                    int row = i < 2 ? ra : rb, col = s0 + 2 * q + (i & 1);
                    float v = gnext[i];
                    if (s0 + 8 < s_end) gnext[i] = G[row * M2_Q + col + 8];
                    gacc[i] = (col <= row && row < steps)
                                  ? v * (expf(sacum[row] - sacum[col]) * sdt[col])
                                  : 0.0f;
                }
                // Accumulator layout (columns 2q, 2q+1) to operand layout (columns q, q+4).
                float x0 = __shfl_sync(0xffffffffu, gacc[0], src0);
                float x1 = __shfl_sync(0xffffffffu, gacc[1], src0);
                float x2 = __shfl_sync(0xffffffffu, gacc[2], src0);
                float x3 = __shfl_sync(0xffffffffu, gacc[3], src0);
                float y0 = __shfl_sync(0xffffffffu, gacc[0], src1);
                float y1 = __shfl_sync(0xffffffffu, gacc[1], src1);
                float y2 = __shfl_sync(0xffffffffu, gacc[2], src1);
                float y3 = __shfl_sync(0xffffffffu, gacc[3], src1);
                float ga[4] = {odd ? x1 : x0, odd ? x3 : x2, odd ? y1 : y0, odd ? y3 : y2};
                unsigned ahi[4], alo[4];
#pragma unroll
                for (int i = 0; i < 4; ++i) m2_split(ga[i], exact, ahi[i], alo[i]);
                int sa = s0 + q, sb = s0 + q + 4;
#pragma unroll
                for (int j = 0; j < NJ; ++j) {
                    if (p0 + 8 * j < head_dim) {
                        int p = p0 + 8 * j + g;
                        bool okp = p < head_dim;
                        unsigned bhi[2], blo[2];
                        m2_split(m2_ld(sX + sa * xs + p, okp), exact, bhi[0], blo[0]);
                        m2_split(m2_ld(sX + sb * xs + p, okp), exact, bhi[1], blo[1]);
                        m2_mma3(acc[j], ahi, alo, bhi, blo, exact);
                    }
                }
            }
#pragma unroll
            for (int j = 0; j < NJ; ++j) {
#pragma unroll
                for (int i = 0; i < 4; ++i) {
                    int row = i < 2 ? ra : rb, p = p0 + 8 * j + 2 * q + (i & 1);
                    if (row < steps && p < head_dim)
                        y[(row0 + row) * d_inner + (long)h * head_dim + p] =
                            acc[j][i] + dh * sX[row * xs + p];
                }
            }
        }
    }
}

extern "C" __global__ void m2_chunk_scan(const float* xbc, int conv_dim, int len, int off,
                                         int piece, int heads, int head_dim, int groups,
                                         int d_inner, const float* dt, const float* acum,
                                         const float* d, const float* states, const float* cb,
                                         int exact, float* y) {
    m2_chunk_scan_t<M2_SSD_WARPS>(xbc, conv_dim, len, off, piece, heads, head_dim, groups,
                                  d_inner, dt, acum, d, states, cb, exact, y);
}

extern "C" __global__ void m2_chunk_scan8(const float* xbc, int conv_dim, int len, int off,
                                          int piece, int heads, int head_dim, int groups,
                                          int d_inner, const float* dt, const float* acum,
                                          const float* d, const float* states, const float* cb,
                                          int exact, float* y) {
    m2_chunk_scan_t<2 * M2_SSD_WARPS>(xbc, conv_dim, len, off, piece, heads, head_dim, groups,
                                      d_inner, dt, acum, d, states, cb, exact, y);
}
