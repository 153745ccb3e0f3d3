// The CUDA Mamba-2 kernels against a float64 reference of the mixer, in CPU emulation: see run.sh.
// Both scans: the sequential m2_scan, and the chunked SSD kernels (m2_chunk_cumsum,
// m2_chunk_state, m2_state_pass, m2_chunk_scan; mma.sync through emu.h's lane-by-lane
// fallback) with `exact` (3xTF32, f32 precision) and without (TF32, bf16 precision).
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
#ifndef M2_Q
#define M2_Q 32
#endif
#ifndef HP
#define HP 16
#endif
#ifndef LEN
#define LEN 77
#endif
// Tokens of one SSD piece (a multiple of M2_Q), as SSD_PIECE in src/backend/cuda/ops/mamba2.rs.
#ifndef PIECE
#define PIECE (2 * M2_Q)
#endif
#include "kernels.inc"
// sizes
const int HEADS = 4, P = HP, E = HEADS * P, G = GROUPS, N = M2_N, K = CONV_K, CONV = E + 2 * G * N, W = E + CONV + HEADS;
const int GROUP = E / G; const float EPS = 1e-5f, LO = 0.0f, HI = 0.07f;
std::mt19937 rng(1);
float rnd() { return std::normal_distribution<float>(0, 1)(rng); }
unsigned grid1(long n) { return (unsigned)((n + 255) / 256); }
// The scan of one stripe: 0 the sequential m2_scan, 1 SSD exact, 2 SSD TF32.
int g_mode = 0;
// m2_chunk_scan8 (8 warps) in place of m2_chunk_scan (4).
bool g_scan8 = false;
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
    if (g_mode == 0) {
        launch({(unsigned)((P + 7) / 8), HEADS, (unsigned)batch}, {256, 1, 1}, [&] { m2_scan(xbc.data(), CONV, len, HEADS, P, G, E, dt.data(), a.data(), d.data(), ssm.data(), y.data()); });
    } else {
        int exact = g_mode == 1;
        std::vector<float> acum(rows * HEADS);
        for (int off = 0; off < len; off += PIECE) {
            int piece = std::min(PIECE, len - off), chunks = (piece + M2_Q - 1) / M2_Q;
            std::vector<float> states((size_t)batch * chunks * HEADS * P * N, NAN), cb((size_t)batch * chunks * G * M2_Q * M2_Q, NAN);
            launch({grid1((long)batch * chunks * HEADS), 1, 1}, {256, 1, 1}, [&] { m2_chunk_cumsum(dt.data(), a.data(), len, off, piece, HEADS, chunks, batch, acum.data()); });
            launch({(unsigned)chunks, HEADS, (unsigned)batch}, {256, 1, 1}, [&] { m2_chunk_state(xbc.data(), CONV, len, off, piece, HEADS, P, G, E, dt.data(), acum.data(), exact, states.data()); });
            launch({grid1((long)P * N), HEADS, (unsigned)batch}, {256, 1, 1}, [&] { m2_state_pass(states.data(), acum.data(), len, off, piece, HEADS, chunks, P * N, ssm.data()); });
            launch({G, (unsigned)chunks, (unsigned)batch}, {128, 1, 1}, [&] { m2_chunk_cb(xbc.data(), CONV, len, off, piece, G, E, exact, cb.data()); });
            if (g_scan8)
                launch({HEADS, (unsigned)chunks, (unsigned)batch}, {256, 1, 1}, [&] { m2_chunk_scan8(xbc.data(), CONV, len, off, piece, HEADS, P, G, E, dt.data(), acum.data(), d.data(), states.data(), cb.data(), exact, y.data()); });
            else
                launch({HEADS, (unsigned)chunks, (unsigned)batch}, {128, 1, 1}, [&] { m2_chunk_scan(xbc.data(), CONV, len, off, piece, HEADS, P, G, E, dt.data(), acum.data(), d.data(), states.data(), cb.data(), exact, y.data()); });
        }
    }
    launch({(unsigned)rows, (unsigned)(E / GROUP), 1}, {(unsigned)std::min(256, std::max(32, (int)std::bit_ceil((unsigned)GROUP))), 1, 1}, [&] { m2_gated_norm(y.data(), zx.data(), W, E, GROUP, nw.data(), EPS, nullptr); });
}
int main() {
    int batch = 2, L = LEN, split = 40;
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
    auto vs_ref = [&](const std::vector<float>& v) { double m = 0; for (size_t i = 0; i < ref.size(); ++i) m = std::max(m, fabs(ref[i] - v[i])); return m; };
    auto diff = [](const std::vector<float>& u, const std::vector<float>& v) { double m = 0; for (size_t i = 0; i < u.size(); ++i) m = std::max(m, fabs((double)u[i] - v[i])); return m; };
    auto whole = run({L}), striped = run({split, L}), ones = run({1, 2, 3, 33, 34, 65, L});
    double worst = vs_ref(whole);
    printf("max |kernel - reference| = %.3e\n", worst);
    bool same = memcmp(whole.data(), striped.data(), whole.size() * 4) == 0;
    bool same_odd = memcmp(whole.data(), ones.data(), whole.size() * 4) == 0;
    printf("striped identical: %d, odd stripes identical: %d\n", same, same_odd);
    bool ok = worst < 1e-4 && same && same_odd;
    // SSD, exact: within f32 rounding of the reference; stripes cut at multiples of M2_Q give
    // the same bits, other cuts agree to rounding.
    g_mode = 1;
    auto ssd = run({L}), ssd_q = run({M2_Q, L}), ssd_odd = run({1, 2, 3, 33, 34, 65, L}), ssd_7 = run({7, 14, 21, 28, 35, 42, 49, 56, 63, 70, L});
    double ssd_err = vs_ref(ssd), odd_d = std::max(diff(ssd, ssd_odd), diff(ssd, ssd_7));
    bool ssd_same = memcmp(ssd.data(), ssd_q.data(), ssd.size() * 4) == 0;
    printf("ssd f32: max |kernel - reference| = %.3e, stripes of M2_Q identical: %d, odd stripes max |d| = %.3e, vs sequential %.3e\n", ssd_err, ssd_same, odd_d, diff(ssd, whole));
    ok = ok && ssd_err < 1e-4 && ssd_same && odd_d < 1e-4;
    // The 8-warp output kernel: the same operations per output, the same bits.
    g_scan8 = true;
    auto ssd8 = run({L}), ssd8_odd = run({1, 2, 3, 33, 34, 65, L});
    g_scan8 = false;
    bool same8 = memcmp(ssd.data(), ssd8.data(), ssd.size() * 4) == 0 && memcmp(ssd_odd.data(), ssd8_odd.data(), ssd.size() * 4) == 0;
    printf("ssd 8-warp output kernel identical: %d\n", same8);
    ok = ok && same8;
    // SSD, TF32 (bf16 precision): one TF32 product per tile.
    g_mode = 2;
    auto tf = run({L}), tf_odd = run({1, 2, 3, 33, 34, 65, L});
    double tf_err = vs_ref(tf);
    printf("ssd tf32: max |kernel - reference| = %.3e, odd stripes max |d| = %.3e\n", tf_err, diff(tf, tf_odd));
    ok = ok && tf_err < 2e-2;
    // The gated norm's bf16 output (the input of a bf16 out_proj) is the f32 output rounded as
    // to_bf16 rounds it.
    {
        int rows = 9;
        std::vector<float> y0(rows * E), y1, zx1(rows * W);
        for (auto& v : y0) v = rnd();
        for (auto& v : zx1) v = rnd();
        y1 = y0;
        std::vector<unsigned short> y16(rows * E);
        unsigned threads = std::min(256, std::max(32, (int)std::bit_ceil((unsigned)GROUP)));
        launch({(unsigned)rows, (unsigned)(E / GROUP), 1}, {threads, 1, 1}, [&] { m2_gated_norm(y0.data(), zx1.data(), W, E, GROUP, nw.data(), EPS, nullptr); });
        launch({(unsigned)rows, (unsigned)(E / GROUP), 1}, {threads, 1, 1}, [&] { m2_gated_norm(y1.data(), zx1.data(), W, E, GROUP, nw.data(), EPS, y16.data()); });
        bool same16 = true;
        for (int i = 0; i < rows * E; ++i) same16 &= y16[i] == bf16_bits(y0[i]);
        printf("gated norm bf16 output = bf16(f32 output): %d\n", same16);
        ok = ok && same16;
    }
    printf("%s\n", ok ? "all ok" : "FAILED");
    return ok ? 0 : 1;
}
