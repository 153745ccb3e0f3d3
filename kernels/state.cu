// Gathering carried states (src/backend/cuda/ops.rs, `stack_states`): score-variants runs the
// continuations of many variants as one batch, each from a snapshot state kept on the device.
// One launch gathers them all instead of one copy per state.

// dst[b * per + j] = srcs[b][j] for b < batch, j < per: `batch` states of `per` floats each,
// wherever they lie, stacked into one buffer (the sources must not overlap dst).
extern "C" __global__ void gather_states(const unsigned long long* srcs, float* dst, long per,
                                         int batch) {
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= per * batch) return;
    long b = i / per, j = i - b * per;
    dst[i] = ((const float*)srcs[b])[j];
}
