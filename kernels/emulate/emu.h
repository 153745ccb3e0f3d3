// CPU emulation of the CUDA execution model, just enough for kernels/mamba2.cu and what it
// uses (block_sum, conv1d_silu), and kernels/scan.cu: see run.sh. Warp-wide operations
// (shuffles, mma.sync) exchange values through arrays with a barrier per warp.
#include <barrier>
#include <cstring>
#include <cmath>
#include <algorithm>
#include <thread>
#include <vector>
#include <memory>
using std::min; using std::max;
#define __global__
#define __device__
#define __forceinline__
#define __shared__ static
#define __align__(x)
struct dim3i { unsigned x = 0, y = 0, z = 0; };
thread_local dim3i threadIdx, blockIdx;
dim3i blockDim, gridDim;
std::barrier<>* g_block;
std::vector<std::unique_ptr<std::barrier<>>> g_warps;
float g_shfl[1024];
// Dynamic shared memory (`extern __shared__ float m2_smem[]` on the GPU), one block at a time.
float m2_smem[1 << 17];
inline void __syncthreads() { g_block->arrive_and_wait(); }
inline float __shfl_xor_sync(unsigned, float v, int k) {
    int t = threadIdx.x, w = t / 32;
    g_shfl[t] = v;
    g_warps[w]->arrive_and_wait();
    float r = g_shfl[w * 32 + ((t % 32) ^ k)];
    g_warps[w]->arrive_and_wait();
    return r;
}
inline float __shfl_sync(unsigned, float v, int src) {
    int t = threadIdx.x, w = t / 32;
    g_shfl[t] = v;
    g_warps[w]->arrive_and_wait();
    float r = g_shfl[w * 32 + (src & 31)];
    g_warps[w]->arrive_and_wait();
    return r;
}
// mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 for the whole warp: every lane publishes
// its fragments (layouts as in kernels/mamba2.cu's m2_mma), then computes its four results from
// the gathered A (16x8) and B (8x8), the TF32 products exact in float and summed in float.
unsigned g_mma_a[1024][4], g_mma_b[1024][2];
inline void emu_mma_tf32(float* d, const unsigned* a, const unsigned* b) {
    int t = threadIdx.x, w = t / 32, lane = t % 32, g = lane / 4, q = lane % 4;
    for (int i = 0; i < 4; ++i) g_mma_a[t][i] = a[i];
    for (int i = 0; i < 2; ++i) g_mma_b[t][i] = b[i];
    g_warps[w]->arrive_and_wait();
    auto f = [](unsigned u) { float v; memcpy(&v, &u, 4); return v; };
    for (int i = 0; i < 4; ++i) {
        int row = g + 8 * (i >> 1), col = 2 * q + (i & 1);
        float sum = 0.0f;
        for (int k = 0; k < 8; ++k) {
            float av = f(g_mma_a[w * 32 + (row % 8) * 4 + k % 4][(row >= 8) + 2 * (k >= 4)]);
            float bv = f(g_mma_b[w * 32 + col * 4 + k % 4][k >= 4]);
            sum += av * bv;
        }
        d[i] += sum;
    }
    g_warps[w]->arrive_and_wait();
}
inline unsigned __float_as_uint(float f) { unsigned u; memcpy(&u, &f, 4); return u; }
inline float __int_as_float(int i) { float f; memcpy(&f, &i, 4); return f; }
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
template <class F> void launch(dim3i grid, dim3i block, F f) {
    blockDim = block; gridDim = grid;
    for (unsigned z = 0; z < grid.z; ++z) for (unsigned y = 0; y < grid.y; ++y) for (unsigned x = 0; x < grid.x; ++x) {
        std::barrier<> bb(block.x); g_block = &bb;
        g_warps.clear();
        for (unsigned w = 0; w < (block.x + 31) / 32; ++w) g_warps.emplace_back(new std::barrier<>(std::min(32u, block.x - 32 * w)));
        std::vector<std::thread> ts;
        for (unsigned t = 0; t < block.x; ++t) ts.emplace_back([=] { threadIdx = {t, 0, 0}; blockIdx = {x, y, z}; f(); });
        for (auto& t : ts) t.join();
    }
}
