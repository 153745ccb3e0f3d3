// The CUDA Mamba-1 scan kernels (kernels/scan.cu) against a float64 scan, in CPU emulation:
// launched as src/backend/cuda/ops.rs launches them (local pass, carry, output pass), whole
// sequences and in two stripes with the state carried. See run.sh.
#include <cstring>
#include <cstdio>
#include <random>
#include "emu.h"
#define SSM_N 16
#define CONV_K 4
#define DT_RANK 8
#define M2_N 16
#include "kernels.inc"
const int E = 160, N = SSM_N, R = DT_RANK, XW = R + 2 * N, CHUNK = 128;
std::mt19937 rng(3);
float rnd() { return std::normal_distribution<float>(0, 1)(rng); }
struct Weights { std::vector<float> dt_proj, dt_bias, a, d; };
// Rows [row0, row0 + len) of each of `batch` sequences of total length `total`, gathered.
std::vector<float> rows_of(const std::vector<float>& v, int width, int batch, int total, int row0, int len) {
    std::vector<float> out;
    for (int b = 0; b < batch; ++b)
        out.insert(out.end(), v.begin() + (long)(b * total + row0) * width, v.begin() + (long)(b * total + row0 + len) * width);
    return out;
}
// One stripe through the kernels; `state` [batch, E, N] is carried.
std::vector<float> stripe(const std::vector<float>& u, const std::vector<float>& xd, const std::vector<float>& xz,
                          int batch, int len, const Weights& w, std::vector<float>& state) {
    int chunks = (len + CHUNK - 1) / CHUNK, rows = batch * len, en = E * N;
    std::vector<float> h_end(batch * chunks * en), decay(h_end.size()), h_start(h_end.size()), dt(rows * E), y(rows * E);
    dim3i g{(unsigned)((E + 127) / 128), (unsigned)chunks, (unsigned)batch};
    launch(g, {128, 1, 1}, [&] { scan_chunk_local(u.data(), xd.data(), XW, w.dt_proj.data(), w.dt_bias.data(), w.a.data(), len, E, CHUNK, h_end.data(), decay.data(), dt.data()); });
    launch({(unsigned)((batch * en + 255) / 256), 1, 1}, {256, 1, 1}, [&] { scan_carry(state.data(), h_end.data(), decay.data(), h_start.data(), chunks, en, batch); });
    launch(g, {128, 1, 1}, [&] { scan_chunk_output(u.data(), xd.data(), XW, dt.data(), w.a.data(), w.d.data(), xz.data() + E, 2 * E, len, E, CHUNK, h_start.data(), y.data(), nullptr); });
    return y;
}
int main() {
    const int batch = 2, L = 300, split = 128;  // split: a chunk boundary, as stripes are
    std::vector<float> u(batch * L * E), xd(batch * L * XW), xz(batch * L * 2 * E);
    Weights w{std::vector<float>(E * R), std::vector<float>(E), std::vector<float>(E * N), std::vector<float>(E)};
    for (auto& v : u) v = rnd();
    for (auto& v : xd) v = rnd();
    for (auto& v : xz) v = rnd();
    for (auto& v : w.dt_proj) v = 0.3f * rnd();
    for (int c = 0; c < E; ++c) {
        w.dt_bias[c] = -3.0f + rnd();
        w.d[c] = rnd();
        for (int s = 0; s < N; ++s) w.a[c * N + s] = -expf(0.5f * rnd() + logf(s + 1.0f));
    }
    // float64 reference
    std::vector<double> ref(batch * L * E);
    for (int b = 0; b < batch; ++b)
        for (int c = 0; c < E; ++c) {
            std::vector<double> h(N, 0.0);
            for (int t = 0; t < L; ++t) {
                long row = b * L + t;
                double v = w.dt_bias[c];
                for (int j = 0; j < R; ++j) v += (double)w.dt_proj[c * R + j] * xd[row * XW + j];
                double dt = v > 20 ? v : log1p(exp(v)), uu = u[row * E + c], acc = 0;
                for (int s = 0; s < N; ++s) {
                    h[s] = exp(dt * w.a[c * N + s]) * h[s] + dt * uu * xd[row * XW + R + s];
                    acc += h[s] * xd[row * XW + R + N + s];
                }
                double z = xz[row * 2 * E + E + c];
                ref[row * E + c] = (acc + w.d[c] * uu) * z / (1 + exp(-z));
            }
        }
    std::vector<float> state(batch * E * N, 0.0f);
    auto whole = stripe(u, xd, xz, batch, L, w, state);
    double max_err = 0;
    for (size_t i = 0; i < whole.size(); ++i) max_err = std::max(max_err, fabs(whole[i] - ref[i]));
    // two stripes, state carried
    std::vector<float> st(batch * E * N, 0.0f);
    auto y1 = stripe(rows_of(u, E, batch, L, 0, split), rows_of(xd, XW, batch, L, 0, split), rows_of(xz, 2 * E, batch, L, 0, split), batch, split, w, st);
    auto y2 = stripe(rows_of(u, E, batch, L, split, L - split), rows_of(xd, XW, batch, L, split, L - split), rows_of(xz, 2 * E, batch, L, split, L - split), batch, L - split, w, st);
    bool same = st == state;
    for (int b = 0; b < batch; ++b)
        for (int t = 0; t < L; ++t)
            for (int c = 0; c < E; ++c) {
                float v = t < split ? y1[(b * split + t) * E + c] : y2[(b * (L - split) + t - split) * E + c];
                same = same && v == whole[(b * L + t) * E + c];
            }
    printf("mamba1 scan: max |d| vs float64 %.3e\nstriped identical: %d\n", max_err, (int)same);
    return max_err < 1e-4 && same ? 0 : 1;
}
