// CPU emulation of the CUDA execution model, just enough for kernels/mamba2.cu and what it
// uses (block_sum, conv1d_silu): see run.sh.
#include <barrier>
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
inline void __syncthreads() { g_block->arrive_and_wait(); }
inline float __shfl_xor_sync(unsigned, float v, int k) {
    int t = threadIdx.x, w = t / 32;
    g_shfl[t] = v;
    g_warps[w]->arrive_and_wait();
    float r = g_shfl[w * 32 + ((t % 32) ^ k)];
    g_warps[w]->arrive_and_wait();
    return r;
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
