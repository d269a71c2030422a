/* llama_oracle.c - test tooling: runs a GGUF model in llama.cpp (the prebuilt
 * libllama of npm @node-llama-cpp/linux-x64) as an independent numeric oracle
 * for our forward pass.
 *
 *   llama_oracle -m MODEL.gguf --ids 1,2,3 [-n 16] [--threads 2]
 *                [--logits-out FILE] [--backend-dir DIR] [--verbose]
 *
 * The whole prompt goes through one llama_decode call (one physical batch);
 * the logits at the last prompt position are written to FILE as raw
 * little-endian f32 [vocab]. Then N tokens are decoded greedily (argmax, ties
 * to the lowest id, no EOS stop) and printed on stdout as one line of
 * comma-separated ids. The numerics are pinned to the f32 path: F32 KV cache,
 * flash attention off (the GGUF from make_random_model is all F32). stderr
 * gets timings and, per generated token, the gap between the best and the
 * second-best logit (a tiny gap means the greedy choice is fragile).
 *
 * The library has no header of its own; llama.h and ggml*.h come from the
 * llama.cpp source that npm node-llama-cpp (same version) ships, extracted
 * into the build folder by tools/llama_oracle.cmake. Before anything else the
 * runner checks that the library's llama_model_params/llama_context_params
 * agree with those headers (every default value), so a mismatched pair
 * fails loudly instead of corrupting memory.
 */
#include "llama.h"

#include <errno.h>
#include <stdbool.h>
#include <math.h>
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

/* ---- ABI check: the default-params functions are called through a type
 * whose return struct is larger than the header's (x86-64 SysV returns both
 * through a caller-provided buffer), so a library with a larger struct cannot
 * write past our buffer; then every default value is compared with llama.cpp's
 * source of the same commit: a field moved or added in the library shows up
 * as a wrong value. tools/llama_oracle.cmake also checks that the library and
 * the headers come from the same node-llama-cpp release. */
#define PAD 512
typedef struct { struct llama_model_params p; unsigned char pad[PAD]; } padded_model_params;
typedef struct { struct llama_context_params p; unsigned char pad[PAD]; } padded_context_params;

static int check_abi(void) {
    padded_model_params (*mfn)(void) = (padded_model_params(*)(void))(void (*)(void))llama_model_default_params;
    padded_context_params (*cfn)(void) = (padded_context_params(*)(void))(void (*)(void))llama_context_default_params;
    padded_model_params mp = mfn();
    padded_context_params cp = cfn();
    int bad = 0;
    const struct llama_model_params *m = &mp.p;
    const struct llama_context_params *c = &cp.p;
    bad |= m->devices != NULL || m->tensor_buft_overrides != NULL || m->n_gpu_layers != -1 ||
           m->split_mode != LLAMA_SPLIT_MODE_LAYER || m->load_mode != LLAMA_LOAD_MODE_AUTO ||
           m->lazy_mode != LLAMA_LAZY_MODE_AUTO || m->main_gpu != 0 || m->tensor_split != NULL ||
           m->progress_callback != NULL || m->kv_overrides != NULL || m->vocab_only || m->check_tensors || !m->use_extra_bufts || m->no_host ||
           m->no_alloc || m->load_mtp;
    bad |= c->n_ctx != 512 || c->n_batch != 2048 || c->n_ubatch != 512 || c->n_seq_max != 1 ||
           c->n_rs_seq != 0 || c->n_outputs_max != 0 || c->n_outputs_max_per_seq != 1 ||
           c->ctx_type != LLAMA_CONTEXT_TYPE_DEFAULT || c->rope_scaling_type != LLAMA_ROPE_SCALING_TYPE_UNSPECIFIED ||
           c->rope_freq_base != 0.0f || c->yarn_attn_factor != -1.0f || c->yarn_orig_ctx != 0 ||
           c->defrag_thold != -1.0f ||
           c->n_threads != GGML_DEFAULT_N_THREADS || c->n_threads_batch != GGML_DEFAULT_N_THREADS ||
           c->flash_attn_type != LLAMA_FLASH_ATTN_TYPE_AUTO || c->yarn_ext_factor != -1.0f ||
           c->cb_eval != NULL || c->type_k != GGML_TYPE_F16 || c->type_v != GGML_TYPE_F16 ||
           c->abort_callback != NULL || c->embeddings || !c->offload_kqv || !c->no_perf || !c->op_offload ||
           !c->swa_full || c->kv_unified || c->samplers != NULL || c->n_samplers != 0 || c->ctx_other != NULL;
    if (bad) {
        fprintf(stderr, "llama_oracle: libllama does not match the llama.h it was built against "
                        "(llama_model_params / llama_context_params differ); use headers of the same llama.cpp "
                        "version as the library\n");
        return -1;
    }
    return 0;
}

static void usage(FILE *f) {
    fputs("usage: llama_oracle -m MODEL.gguf --ids 1,2,3 [-n 16] [--threads 2] [--logits-out FILE]\n"
          "                    [--backend-dir DIR] [--verbose]\n",
          f);
}

static int parse_ids(const char *s, llama_token **out) {
    int n = 0, cap = 16;
    llama_token *v = malloc((size_t)cap * sizeof(*v));
    while (*s) {
        char *end;
        errno = 0;
        long x = strtol(s, &end, 10);
        if (end == s || errno || x < 0 || x > INT32_MAX) {
            free(v);
            return -1;
        }
        if (n == cap) v = realloc(v, (size_t)(cap *= 2) * sizeof(*v));
        v[n++] = (llama_token)x;
        s = end;
        if (*s == ',') s++;
        else if (*s) {
            free(v);
            return -1;
        }
    }
    *out = v;
    return n;
}

/* index of the largest logit, ties to the lowest id; *gap = best - second */
static int argmax(const float *x, int n, float *gap) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    float second = -INFINITY;
    for (int i = 0; i < n; i++)
        if (i != best && x[i] > second) second = x[i];
    *gap = x[best] - second;
    return best;
}

int main(int argc, char **argv) {
    const char *model_path = NULL, *ids_arg = NULL, *logits_out = NULL, *backend_dir = PX_LLAMA_BIN_DIR;
    int n_gen = 16, n_threads = 2;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (!strcmp(f, "-h") || !strcmp(f, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(f, "--verbose")) {
            verbose = true;
            continue;
        }
        if (i + 1 >= argc) {
            usage(stderr);
            fprintf(stderr, "llama_oracle: %s needs a value\n", f);
            return 2;
        }
        const char *v = argv[++i];
        if (!strcmp(f, "-m")) model_path = v;
        else if (!strcmp(f, "--ids")) ids_arg = v;
        else if (!strcmp(f, "-n")) n_gen = atoi(v);
        else if (!strcmp(f, "--threads")) n_threads = atoi(v);
        else if (!strcmp(f, "--logits-out")) logits_out = v;
        else if (!strcmp(f, "--backend-dir")) backend_dir = v;
        else {
            usage(stderr);
            fprintf(stderr, "llama_oracle: unknown flag '%s'\n", f);
            return 2;
        }
    }
    if (!model_path || !ids_arg || n_gen < 0 || n_threads < 1) {
        usage(stderr);
        return 2;
    }
    llama_token *prompt = NULL;
    int n_prompt = parse_ids(ids_arg, &prompt);
    if (n_prompt <= 0) {
        fprintf(stderr, "llama_oracle: --ids: want comma-separated token ids, got '%s'\n", ids_arg);
        return 2;
    }

    llama_log_set(log_cb, NULL);
    if (check_abi() != 0) return 1;
    if (!backend_dir[0]) {
        fprintf(stderr, "llama_oracle: no --backend-dir (folder of libggml-cpu-*.so)\n");
        return 1;
    }
    ggml_backend_load_all_from_path(backend_dir);
    if (ggml_backend_dev_count() == 0) {
        fprintf(stderr, "llama_oracle: no ggml backend found in %s\n", backend_dir);
        return 1;
    }
    llama_backend_init();

    double t0 = now_s();
    struct llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    struct llama_model *model = llama_model_load_from_file(model_path, mp);
    if (!model) {
        fprintf(stderr, "llama_oracle: llama.cpp could not load %s (run with --verbose for its log)\n", model_path);
        return 1;
    }
    const struct llama_vocab *vocab = llama_model_get_vocab(model);
    int n_vocab = llama_vocab_n_tokens(vocab);
    for (int i = 0; i < n_prompt; i++)
        if (prompt[i] >= n_vocab) {
            fprintf(stderr, "llama_oracle: prompt id %d is not below the vocabulary size %d\n", prompt[i], n_vocab);
            return 1;
        }

    struct llama_context_params cp = llama_context_default_params();
    uint32_t n_ctx = (uint32_t)(n_prompt + n_gen + 16);
    cp.n_ctx = (n_ctx + 255) / 256 * 256;
    cp.n_batch = cp.n_ubatch = (uint32_t)n_prompt; /* the whole prompt in one physical batch */
    cp.n_seq_max = 1;
    cp.n_threads = cp.n_threads_batch = n_threads;
    cp.type_k = cp.type_v = GGML_TYPE_F32;
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    cp.no_perf = true;
    struct llama_context *ctx = llama_init_from_model(model, cp);
    if (!ctx) {
        fprintf(stderr, "llama_oracle: llama_init_from_model failed\n");
        return 1;
    }
    double t_load = now_s() - t0;

    struct llama_batch batch = llama_batch_init(n_prompt, 0, 1);
    for (int i = 0; i < n_prompt; i++) {
        batch.token[i] = prompt[i];
        batch.pos[i] = i;
        batch.n_seq_id[i] = 1;
        batch.seq_id[i][0] = 0;
        batch.logits[i] = i == n_prompt - 1;
    }
    batch.n_tokens = n_prompt;
    t0 = now_s();
    int rc = llama_decode(ctx, batch);
    double t_prefill = now_s() - t0;
    if (rc != 0) {
        fprintf(stderr, "llama_oracle: llama_decode of the prompt failed (%d)\n", rc);
        return 1;
    }
    const float *logits = llama_get_logits_ith(ctx, -1);
    if (!logits) {
        fprintf(stderr, "llama_oracle: no logits for the last prompt position\n");
        return 1;
    }
    for (int i = 0; i < n_vocab; i++)
        if (!isfinite(logits[i])) {
            fprintf(stderr, "llama_oracle: logit %d is not finite (%g)\n", i, (double)logits[i]);
            return 1;
        }
    if (logits_out) {
        FILE *f = fopen(logits_out, "wb");
        bool wrote = f && fwrite(logits, sizeof(float), (size_t)n_vocab, f) == (size_t)n_vocab;
        if (f && fclose(f) != 0) wrote = false;
        if (!wrote) {
            fprintf(stderr, "llama_oracle: cannot write %s: %s\n", logits_out, strerror(errno));
            return 1;
        }
    }
    float maxabs = 0;
    for (int i = 0; i < n_vocab; i++) maxabs = fmaxf(maxabs, fabsf(logits[i]));

    int *gen = malloc(sizeof(int) * (size_t)(n_gen > 0 ? n_gen : 1));
    float *gaps = malloc(sizeof(float) * (size_t)(n_gen > 0 ? n_gen : 1));
    t0 = now_s();
    for (int k = 0; k < n_gen; k++) {
        gen[k] = argmax(logits, n_vocab, &gaps[k]);
        if (k == n_gen - 1) break;
        batch.n_tokens = 1;
        batch.token[0] = gen[k];
        batch.pos[0] = n_prompt + k;
        batch.n_seq_id[0] = 1;
        batch.seq_id[0][0] = 0;
        batch.logits[0] = 1;
        if ((rc = llama_decode(ctx, batch)) != 0) {
            fprintf(stderr, "llama_oracle: llama_decode of generated token %d failed (%d)\n", k, rc);
            return 1;
        }
        logits = llama_get_logits_ith(ctx, -1);
    }
    double t_decode = now_s() - t0;

    float min_gap = INFINITY;
    fprintf(stderr, "llama_oracle: vocab %d, prompt %d tokens, max|logit| %.4f; load %.2f s, prefill %.2f s, "
                    "decode %d tokens %.2f s\nllama_oracle: top1-top2 gaps:",
            n_vocab, n_prompt, (double)maxabs, t_load, t_prefill, n_gen > 0 ? n_gen - 1 : 0, t_decode);
    for (int k = 0; k < n_gen; k++) {
        fprintf(stderr, " %.4g", (double)gaps[k]);
        min_gap = fminf(min_gap, gaps[k]);
    }
    fprintf(stderr, "\nllama_oracle: smallest gap %.4g\n", (double)min_gap);
    for (int k = 0; k < n_gen; k++) printf("%s%d", k ? "," : "", gen[k]);
    printf("\n");

    free(gen);
    free(gaps);
    free(prompt);
    llama_batch_free(batch);
    llama_free(ctx);
    llama_model_free(model);
    llama_backend_free();
    return 0;
}
