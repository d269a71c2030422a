/* llama_bench.c - test tooling: llama.cpp's speed on this machine, measured
 * the way llama-bench measures it, with the prebuilt libllama of npm
 * @node-llama-cpp/linux-x64 (which ships no llama-bench binary). The other
 * half of scripts/compare_llamacpp.mjs; not shipped.
 *
 *   llama_bench quantize IN.gguf OUT.gguf f16|bf16|q8_0|q4_0 [--pure]
 *   llama_bench bench -m MODEL.gguf [-t 2] [-p 128,512] [-n 64] [-r 3]
 *                     [--kv f16|f32] [--fa on|off|auto]
 *
 * quantize: llama_model_quantize() of the same library; --pure quantizes
 *   token_embd/output to the requested type too (otherwise llama.cpp keeps
 *   them at a higher precision for the 4-bit types).
 * bench: like llama-bench (its defaults: F16 KV cache, flash attention auto,
 *   n_batch 2048, n_ubatch 512, one warm-up run per test): ppN decodes N
 *   random tokens into an empty cache, tgN decodes N tokens one at a time
 *   from an empty cache. Each test is repeated r times; one line per test on
 *   stdout: "pp512 t=2: min MIN med MED max MAX tok/s" (plus the model's
 *   size and parameter count on a first "model" line).
 *
 * Headers come from the llama.cpp source of the same node-llama-cpp release
 * (see tools/llama_oracle.cmake); the ABI check is the oracle's, repeated
 * here in short.
 */
#include "llama.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef PX_LLAMA_BIN_DIR
#define PX_LLAMA_BIN_DIR ""
#endif

static bool verbose;

static void log_cb(enum ggml_log_level level, const char *text, void *user) {
    (void)user;
    if (verbose || level == GGML_LOG_LEVEL_ERROR) fputs(text, stderr);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void usage(FILE *f) {
    fputs("usage: llama_bench quantize IN.gguf OUT.gguf f16|bf16|q8_0|q4_0 [--pure]\n"
          "       llama_bench bench -m MODEL.gguf [-t 2] [-p 128,512] [-n 64] [-r 3] [--kv f16|f32]\n"
          "                         [--fa on|off|auto] [--verbose]\n",
          f);
}

static void init_backends(void) {
    llama_log_set(log_cb, NULL);
    ggml_backend_load_all_from_path(PX_LLAMA_BIN_DIR);
    llama_backend_init();
}

static int cmd_quantize(int argc, char **argv) {
    if (argc < 5) return usage(stderr), 2;
    struct { const char *name; enum llama_ftype t; } types[] = {
        {"f16", LLAMA_FTYPE_MOSTLY_F16}, {"bf16", LLAMA_FTYPE_MOSTLY_BF16},
        {"q8_0", LLAMA_FTYPE_MOSTLY_Q8_0}, {"q4_0", LLAMA_FTYPE_MOSTLY_Q4_0}};
    int found = -1;
    for (int i = 0; i < 4; i++)
        if (!strcmp(argv[4], types[i].name)) found = i;
    if (found < 0) return fprintf(stderr, "llama_bench: unknown type '%s'\n", argv[4]), 2;
    init_backends();
    llama_model_quantize_params p = llama_model_quantize_default_params();
    p.ftype = types[found].t;
    p.nthread = 2;
    for (int i = 5; i < argc; i++) {
        if (!strcmp(argv[i], "--pure")) p.pure = true;
        else if (!strcmp(argv[i], "--verbose")) verbose = true;
        else return fprintf(stderr, "llama_bench: unknown flag '%s'\n", argv[i]), 2;
    }
    double t0 = now_s();
    if (llama_model_quantize(argv[2], argv[3], &p) != 0) {
        fprintf(stderr, "llama_bench: quantizing %s to %s failed\n", argv[2], argv[4]);
        return 1;
    }
    fprintf(stderr, "llama_bench: wrote %s (%s%s) in %.1f s\n", argv[3], argv[4], p.pure ? ", pure" : "", now_s() - t0);
    return 0;
}

static int parse_list(const char *s, int *out, int max) {
    int n = 0;
    while (*s && n < max) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v <= 0) return -1;
        out[n++] = (int)v;
        s = *end == ',' ? end + 1 : end;
    }
    return n;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static unsigned rng_state = 12345;
static int next_token(int n_vocab) {
    rng_state = rng_state * 1103515245u + 12345u;
    return (int)((rng_state >> 8) % (unsigned)n_vocab);
}

/* one run of a test; returns seconds, or -1 on failure */
static double run_once(struct llama_context *ctx, int n_vocab, bool gen, int n) {
    llama_memory_clear(llama_get_memory(ctx), true);
    double t0 = now_s();
    if (!gen) {
        llama_token *tok = malloc(sizeof *tok * (size_t)n);
        for (int i = 0; i < n; i++) tok[i] = next_token(n_vocab);
        for (int off = 0; off < n; off += 2048) {
            int len = n - off < 2048 ? n - off : 2048;
            if (llama_decode(ctx, llama_batch_get_one(tok + off, len))) return free(tok), -1;
        }
        llama_synchronize(ctx);
        free(tok);
    } else {
        llama_token tok = next_token(n_vocab);
        for (int i = 0; i < n; i++) {
            if (llama_decode(ctx, llama_batch_get_one(&tok, 1))) return -1;
            llama_synchronize(ctx);
            tok = next_token(n_vocab);
        }
    }
    return now_s() - t0;
}

static int cmd_bench(int argc, char **argv) {
    const char *model_path = NULL;
    int threads = 2, pp[16] = {128, 512}, n_pp = 2, tg = 64, reps = 3;
    enum ggml_type kv = GGML_TYPE_F16;
    enum llama_flash_attn_type fa = LLAMA_FLASH_ATTN_TYPE_AUTO;
    for (int i = 2; i < argc; i++) {
        const char *f = argv[i];
        if (!strcmp(f, "--verbose")) { verbose = true; continue; }
        if (i + 1 >= argc) return usage(stderr), 2;
        const char *v = argv[++i];
        if (!strcmp(f, "-m")) model_path = v;
        else if (!strcmp(f, "-t")) threads = atoi(v);
        else if (!strcmp(f, "-p")) { if ((n_pp = parse_list(v, pp, 16)) < 0) return usage(stderr), 2; }
        else if (!strcmp(f, "-n")) tg = atoi(v);
        else if (!strcmp(f, "-r")) reps = atoi(v);
        else if (!strcmp(f, "--kv")) kv = !strcmp(v, "f32") ? GGML_TYPE_F32 : GGML_TYPE_F16;
        else if (!strcmp(f, "--fa")) fa = !strcmp(v, "on") ? LLAMA_FLASH_ATTN_TYPE_ENABLED
                                        : !strcmp(v, "off") ? LLAMA_FLASH_ATTN_TYPE_DISABLED : LLAMA_FLASH_ATTN_TYPE_AUTO;
        else return usage(stderr), 2;
    }
    if (!model_path || threads < 1 || reps < 1 || tg < 0) return usage(stderr), 2;
    init_backends();
    struct llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    struct llama_model *model = llama_model_load_from_file(model_path, mp);
    if (!model) return fprintf(stderr, "llama_bench: cannot load %s\n", model_path), 1;
    int n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));
    printf("model %s: %.3f GB, %.3f B params\n", model_path, llama_model_size(model) / 1e9,
           llama_model_n_params(model) / 1e9);
    int max_pp = 0;
    for (int i = 0; i < n_pp; i++) max_pp = pp[i] > max_pp ? pp[i] : max_pp;
    for (int test = 0; test < n_pp + (tg > 0); test++) {
        bool gen = test == n_pp;
        int n = gen ? tg : pp[test];
        struct llama_context_params cp = llama_context_default_params();
        cp.n_ctx = (uint32_t)n;
        cp.n_batch = 2048;
        cp.n_ubatch = 512;
        cp.n_threads = cp.n_threads_batch = threads;
        cp.type_k = cp.type_v = kv;
        cp.flash_attn_type = fa;
        cp.no_perf = true;
        struct llama_context *ctx = llama_init_from_model(model, cp);
        if (!ctx) return fprintf(stderr, "llama_bench: llama_init_from_model failed\n"), 1;
        if (run_once(ctx, n_vocab, gen, gen ? 1 : n) < 0) return fprintf(stderr, "llama_bench: decode failed\n"), 1;
        double *tps = malloc(sizeof *tps * (size_t)reps);
        for (int r = 0; r < reps; r++) {
            double s = run_once(ctx, n_vocab, gen, n);
            if (s < 0) return fprintf(stderr, "llama_bench: decode failed\n"), 1;
            tps[r] = n / s;
        }
        qsort(tps, (size_t)reps, sizeof *tps, cmp_double);
        printf("%s%d t=%d: min %.2f med %.2f max %.2f tok/s\n", gen ? "tg" : "pp", n, threads, tps[0],
               reps % 2 ? tps[reps / 2] : (tps[reps / 2 - 1] + tps[reps / 2]) / 2, tps[reps - 1]);
        fflush(stdout);
        free(tps);
        llama_free(ctx);
    }
    llama_model_free(model);
    llama_backend_free();
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) return usage(stderr), 2;
    if (!strcmp(argv[1], "quantize")) return cmd_quantize(argc, argv);
    if (!strcmp(argv[1], "bench")) return cmd_bench(argc, argv);
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) return usage(stdout), 0;
    return usage(stderr), 2;
}
