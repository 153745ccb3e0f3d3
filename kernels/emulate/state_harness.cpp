// kernels/state.cu on the CPU (emu.h): gather_states, checkpoint_conv and copy_slots against
// what they replace (one copy per state; conv_state_next with len = the checkpoint's row).
// See run.sh. Prints the mismatches and exits 1 on any.
#include <cstdio>
#include <cstring>
#include <cstdint>
#define CONV_K 4
#include "emu.h"
#include "kernels.inc"

static dim3i blocks(long n) { return {(unsigned)((n + 255) / 256), 1, 1}; }

int main() {
    int bad = 0;
    const int e = 24, k = CONV_K, len = 300, in_stride = 2 * e;
    std::vector<float> xz(len * in_stride), state((k - 1) * e);
    for (size_t i = 0; i < xz.size(); ++i) xz[i] = 0.001f * (float)((i * 7919) % 1000) - 0.5f;
    for (size_t i = 0; i < state.size(); ++i) state[i] = 10.0f + (float)i;
    // checkpoint_conv vs conv_state_next(len = p), including rows before the stripe (p < k - 1)
    std::vector<int> pos = {0, 1, 2, 3, 128, 256, 299};
    int count = (int)pos.size(), per = (k - 1) * e;
    std::vector<std::vector<float>> dst(count, std::vector<float>(per, -1.0f));
    std::vector<unsigned long long> ptrs(count);
    for (int j = 0; j < count; ++j) ptrs[j] = (unsigned long long)(uintptr_t)dst[j].data();
    launch(blocks((long)per * count), {256, 1, 1}, [&] {
        checkpoint_conv(xz.data(), in_stride, pos.data(), count, e, k, state.data(), ptrs.data());
    });
    for (int j = 0; j < count; ++j) {
        std::vector<float> want(per);
        launch(blocks(per), {256, 1, 1}, [&] {
            conv_state_next(xz.data(), in_stride, pos[j], 1, e, k, state.data(), want.data());
        });
        if (memcmp(want.data(), dst[j].data(), per * sizeof(float)) != 0) {
            printf("checkpoint_conv differs at checkpoint %d (row %d)\n", j, pos[j]);
            bad = 1;
        }
    }
    // copy_slots: slot offsets of a [chunks, en] buffer
    const long en = 64;
    std::vector<float> h(5 * en);
    for (size_t i = 0; i < h.size(); ++i) h[i] = (float)i * 0.5f;
    std::vector<long> offs = {0, 3 * en, en, 4 * en};
    std::vector<std::vector<float>> slots(offs.size(), std::vector<float>(en));
    std::vector<unsigned long long> sp(offs.size());
    for (size_t j = 0; j < offs.size(); ++j) sp[j] = (unsigned long long)(uintptr_t)slots[j].data();
    launch(blocks(en * (long)offs.size()), {256, 1, 1},
           [&] { copy_slots(h.data(), offs.data(), sp.data(), en, (int)offs.size()); });
    for (size_t j = 0; j < offs.size(); ++j)
        if (memcmp(slots[j].data(), h.data() + offs[j], en * sizeof(float)) != 0) {
            printf("copy_slots differs at %zu\n", j);
            bad = 1;
        }
    // gather_states: the slots back into one stacked buffer, in a shuffled order
    std::vector<int> order = {2, 0, 3, 3, 1};
    std::vector<unsigned long long> src(order.size());
    for (size_t b = 0; b < order.size(); ++b) src[b] = sp[order[b]];
    std::vector<float> stacked(en * order.size(), -1.0f);
    launch(blocks(en * (long)order.size()), {256, 1, 1},
           [&] { gather_states(src.data(), stacked.data(), en, (int)order.size()); });
    for (size_t b = 0; b < order.size(); ++b)
        if (memcmp(stacked.data() + b * en, slots[order[b]].data(), en * sizeof(float)) != 0) {
            printf("gather_states differs at %zu\n", b);
            bad = 1;
        }
    printf(bad ? "state kernels: MISMATCH\n" : "state kernels: exact (gather, checkpoint conv, slots)\n");
    return bad;
}
