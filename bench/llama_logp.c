// Per-token log-probabilities from llama.cpp (libllama), for bench/cpu_vs_llamacpp.py.
//
//   llama_logp MODEL.gguf TOKENS.u32 OUT.f32 THREADS N_BATCH N_UBATCH
//
// TOKENS.u32: little-endian uint32 token ids of one sequence. Decodes them in batches of
// N_BATCH with logits on every position and writes, as little-endian float32, for every
// position t >= 1, log P(token t | tokens < t) (natural log, from a float64 log-softmax of the
// f32 logits), the same quantity `ssmgen likelihood` reports. Prints the decode seconds; with
// LLAMA_LOGP_INFO set, also llama.cpp's system info (the CPU features of the backend it loaded).
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "ggml-backend.h"
#include "llama.h"

static void quiet(enum ggml_log_level level, const char *text, void *user) {
    (void)user;
    if (level >= GGML_LOG_LEVEL_ERROR) fputs(text, stderr);
}

static bool no_progress(float progress, void *user) {
    (void)progress;
    (void)user;
    return true;
}

int main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: %s MODEL.gguf TOKENS.u32 OUT.f32 THREADS N_BATCH N_UBATCH\n", argv[0]);
        return 2;
    }
    int threads = atoi(argv[4]), n_batch = atoi(argv[5]), n_ubatch = atoi(argv[6]);
    FILE *f = fopen(argv[2], "rb");
    if (!f) { perror(argv[2]); return 1; }
    fseek(f, 0, SEEK_END);
    long n = ftell(f) / 4;
    fseek(f, 0, SEEK_SET);
    uint32_t *tok = malloc(n * sizeof *tok);
    if (!tok || fread(tok, 4, n, f) != (size_t)n) { fprintf(stderr, "short read\n"); return 1; }
    fclose(f);

    llama_log_set(quiet, NULL);
    // A build with GGML_BACKEND_DL (the portable build: one CPU backend per instruction set,
    // the best one the CPU runs is picked at load) has no backend until it is loaded; in a
    // build with the backends linked in this finds nothing more to load.
    ggml_backend_load_all();
    llama_backend_init();
    if (getenv("LLAMA_LOGP_INFO")) fprintf(stderr, "llama.cpp system info: %s\n", llama_print_system_info());
    struct llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    mp.progress_callback = no_progress;
    struct llama_model *model = llama_model_load_from_file(argv[1], mp);
    if (!model) { fprintf(stderr, "cannot load %s\n", argv[1]); return 1; }
    int v = llama_vocab_n_tokens(llama_model_get_vocab(model));
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = (uint32_t)(n + 16);
    cp.n_batch = n_batch;
    cp.n_ubatch = n_ubatch;
    cp.n_seq_max = 1;
    cp.n_threads = threads;
    cp.n_threads_batch = threads;
    struct llama_context *ctx = llama_init_from_model(model, cp);
    if (!ctx) { fprintf(stderr, "cannot make a context\n"); return 1; }

    float *out = malloc((n > 1 ? n - 1 : 1) * sizeof *out);
    struct llama_batch batch = llama_batch_init(n_batch, 0, 1);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long start = 0; start < n; start += n_batch) {
        int len = (int)((n - start) < n_batch ? (n - start) : n_batch);
        batch.n_tokens = len;
        for (int i = 0; i < len; i++) {
            batch.token[i] = (llama_token)tok[start + i];
            batch.pos[i] = (llama_pos)(start + i);
            batch.n_seq_id[i] = 1;
            batch.seq_id[i][0] = 0;
            batch.logits[i] = 1;
        }
        int rc = llama_decode(ctx, batch);
        if (rc != 0) { fprintf(stderr, "llama_decode failed: %d at %ld\n", rc, start); return 1; }
        for (int i = 0; i < len; i++) {
            long t = start + i;  // logits at t predict token t + 1
            if (t + 1 >= n) break;
            const float *lg = llama_get_logits_ith(ctx, i);
            double mx = -INFINITY, s = 0.0;
            for (int j = 0; j < v; j++) mx = lg[j] > mx ? lg[j] : mx;
            for (int j = 0; j < v; j++) s += exp(lg[j] - mx);
            out[t] = (float)(lg[tok[t + 1]] - mx - log(s));
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("decode_seconds %.3f tokens %ld\n", (t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec), n);
    FILE *o = fopen(argv[3], "wb");
    if (!o || fwrite(out, 4, n - 1, o) != (size_t)(n - 1)) { perror(argv[3]); return 1; }
    fclose(o);
    llama_batch_free(batch);
    llama_free(ctx);
    llama_model_free(model);
    return 0;
}
