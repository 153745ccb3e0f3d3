// The CUDA Mamba-2 kernels against a float64 reference of the mixer, in CPU emulation: see run.sh.
#include <cstring>
#include <bit>
#include <cstdio>
#include <random>
#include "emu.h"
#define SSM_N 16
#define CONV_K 4
#ifndef M2_N
#define M2_N 24
#endif
#include "kernels.inc"
// sizes
const int E = 64, HEADS = 4, P = 16, G = GROUPS, N = M2_N, K = CONV_K, CONV = E + 2 * G * N, W = E + CONV + HEADS;
const int GROUP = E / G; const float EPS = 1e-5f, LO = 0.0f, HI = 0.07f;
std::mt19937 rng(1);
float rnd() { return std::normal_distribution<float>(0, 1)(rng); }
unsigned grid1(long n) { return (unsigned)((n + 255) / 256); }
// One stripe through the kernels, as src/backend/cuda/ops/mamba2.rs launches them.
void stripe(const std::vector<float>& zx, int batch, int len, std::vector<float>& conv_state, std::vector<float>& ssm,
            const std::vector<float>& cw, const std::vector<float>& cb, const std::vector<float>& dtb,
            const std::vector<float>& a, const std::vector<float>& d, const std::vector<float>& nw, std::vector<float>& y) {
    int rows = batch * len;
    std::vector<float> xbc(rows * CONV), next(batch * (K - 1) * CONV), dt(rows * HEADS);
    y.assign(rows * E, 0);
    const float* xin = zx.data() + E;
    launch({grid1((long)batch * ((len + 7) / 8) * CONV), 1, 1}, {256, 1, 1}, [&] { conv1d_silu(xin, W, len, batch, CONV, conv_state.data(), cw.data(), cb.data(), xbc.data()); });
    launch({grid1((long)batch * (K - 1) * CONV), 1, 1}, {256, 1, 1}, [&] { conv_state_next(xin, W, len, batch, CONV, K, conv_state.data(), next.data()); });
    conv_state = next;
    launch({grid1((long)rows * HEADS), 1, 1}, {256, 1, 1}, [&] { m2_dt(zx.data(), W, E + CONV, rows, HEADS, dtb.data(), LO, HI, dt.data()); });
    launch({(unsigned)((P + 7) / 8), HEADS, (unsigned)batch}, {256, 1, 1}, [&] { m2_scan(xbc.data(), CONV, len, HEADS, P, G, E, dt.data(), a.data(), d.data(), ssm.data(), y.data()); });
    launch({(unsigned)rows, (unsigned)(E / GROUP), 1}, {(unsigned)std::min(256, std::max(32, (int)std::bit_ceil((unsigned)GROUP))), 1, 1}, [&] { m2_gated_norm(y.data(), zx.data(), W, E, GROUP, nw.data(), EPS); });
}
int main() {
    int batch = 2, L = 77, split = 40;
    std::vector<float> zx(batch * L * W), cw(CONV * K), cb(CONV), dtb(HEADS), a(HEADS), d(HEADS), nw(E);
    for (auto& v : zx) v = rnd();
    for (auto& v : cw) v = 0.5f * rnd();
    for (auto& v : cb) v = 0.3f * rnd();
    for (int h = 0; h < HEADS; ++h) { dtb[h] = -2.0f + 0.5f * rnd(); a[h] = -expf(0.3f * rnd() + logf(h + 1.0f)); d[h] = rnd(); }
    for (auto& v : nw) v = 1 + 0.2f * rnd();
    // reference (double), whole sequences
    std::vector<double> ref(batch * L * E);
    for (int b = 0; b < batch; ++b) {
        std::vector<double> s(HEADS * P * N, 0.0);
        for (int t = 0; t < L; ++t) {
            const float* row = &zx[(b * L + t) * W];
            std::vector<double> xbc(CONV);
            for (int c = 0; c < CONV; ++c) {
                double acc = cb[c];
                for (int j = 0; j < K; ++j) { int tt = t - (K - 1) + j; if (tt >= 0) acc += cw[c * K + j] * (double)zx[(b * L + tt) * W + E + c]; }
                xbc[c] = acc / (1 + exp(-acc));
            }
            std::vector<double> yv(E);
            for (int h = 0; h < HEADS; ++h) {
                double v = row[E + CONV + h] + dtb[h];
                double dt = v > 20 ? v : log1p(exp(v)); dt = std::min(std::max(dt, (double)LO), (double)HI);
                int g = h / (HEADS / G);
                for (int p = 0; p < P; ++p) {
                    double x = xbc[h * P + p], acc = 0;
                    for (int n = 0; n < N; ++n) {
                        double& st = s[(h * P + p) * N + n];
                        st = exp(dt * a[h]) * st + dt * x * xbc[E + g * N + n];
                        acc += st * xbc[E + (G + g) * N + n];
                    }
                    yv[h * P + p] = acc + d[h] * x;
                }
            }
            for (int c = 0; c < E; ++c) { double z = row[c]; yv[c] *= z / (1 + exp(-z)); }
            for (int gr = 0; gr < E / GROUP; ++gr) {
                double ms = 0; for (int j = 0; j < GROUP; ++j) ms += yv[gr * GROUP + j] * yv[gr * GROUP + j];
                double sc = 1 / sqrt(ms / GROUP + EPS);
                for (int j = 0; j < GROUP; ++j) ref[(b * L + t) * E + gr * GROUP + j] = nw[gr * GROUP + j] * yv[gr * GROUP + j] * sc;
            }
        }
    }
    // kernels: whole, and in two stripes (state carried)
    auto run = [&](std::vector<int> cuts) {
        std::vector<float> conv_state(batch * (K - 1) * CONV, 0), ssm(batch * HEADS * P * N, 0), out(batch * L * E);
        int from = 0;
        for (int to : cuts) {
            int len = to - from;
            std::vector<float> piece(batch * len * W), y;
            for (int b = 0; b < batch; ++b) memcpy(&piece[b * len * W], &zx[(b * L + from) * W], sizeof(float) * len * W);
            stripe(piece, batch, len, conv_state, ssm, cw, cb, dtb, a, d, nw, y);
            for (int b = 0; b < batch; ++b) memcpy(&out[(b * L + from) * E], &y[b * len * E], sizeof(float) * len * E);
            from = to;
        }
        return out;
    };
    auto whole = run({L}), striped = run({split, L}), ones = run({1, 2, 3, 33, 34, 65, L});
    double worst = 0; for (size_t i = 0; i < ref.size(); ++i) worst = std::max(worst, fabs(ref[i] - whole[i]));
    printf("max |kernel - reference| = %.3e\n", worst);
    bool same = memcmp(whole.data(), striped.data(), whole.size() * 4) == 0;
    bool same_odd = memcmp(whole.data(), ones.data(), whole.size() * 4) == 0;
    printf("striped identical: %d, odd stripes identical: %d\n", same, same_odd);
    return worst < 1e-4 && same && same_odd ? 0 : 1;
}
