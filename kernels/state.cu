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

// The checkpoint copies of one sequence's stripe (`mixer_checkpoints`), all in one launch
// each. checkpoint_conv: for checkpoint j at row pos[j], the conv state before that row (the
// last k - 1 rows of the extended input before it, as conv_state_next writes with len = pos[j])
// into dsts[j], [k - 1, e]. x, in_stride and state as conv1d_silu (batch 1).
extern "C" __global__ void checkpoint_conv(const float* x, int in_stride, const int* pos,
                                           int count, int e, int k, const float* state,
                                           const unsigned long long* dsts) {
    long per = (long)(k - 1) * e;
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= per * count) return;
    long j = i / per, w = i - j * per;
    long r = w / e;
    int c = (int)(w % e);
    long tt = (long)pos[j] - (k - 1) + r;
    ((float*)dsts[j])[w] = tt < 0 ? state[(k - 1 + tt) * e + c] : x[tt * in_stride + c];
}

// dsts[j][w] = src[offs[j] + w] for w < per: a slot of src (the SSM state at the start of a
// scan chunk) copied to each checkpoint's buffer.
extern "C" __global__ void copy_slots(const float* src, const long* offs,
                                      const unsigned long long* dsts, long per, int count) {
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= per * count) return;
    long j = i / per, w = i - j * per;
    ((float*)dsts[j])[w] = src[offs[j] + w];
}
