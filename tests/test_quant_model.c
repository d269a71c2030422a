/* test_quant_model.c - quantized weights against f32 on a full-size model
 * shape (the random-weight Qwen3-0.6B of tools/make_random_model): one
 * 256-token prompt runs through the model loaded as f32, q8_0 and q4_0, with
 * logits at every position. The error is measured relative to the spread of
 * the f32 logits (their standard deviation over the vocabulary, per
 * position). Checks:
 *   q8_0  RMS error <= 0.05 of the spread, worst logit <= 0.4, top-1
 *         agreement with f32 >= 95%;
 *   q4_0  RMS error <= 0.55, worst logit <= 3;
 *   an f16 KV cache (f32 weights): RMS error <= 0.002, top-1 agreement >= 99%.
 * Why not the 99% / 95% top-1 agreement issue 5 asked for: this model's
 * logits are nearly flat (random weights: the top two differ by a small
 * fraction of the spread), so any 8-bit quantization of weights and
 * activations flips a few percent of the top-1s, and any 4-bit one most of
 * them. llama.cpp's own Q8_0 / Q4_0 (pure) of the same model have the same
 * error at the last prompt position (RMS 0.036 and 0.431 of the spread
 * against its F32, ours 0.034 and 0.435); scripts/compare_llamacpp.mjs
 * --accuracy measures that. The observed values are printed.
 * usage: test_quant_model MODEL_DIR [THREADS] */
#include "model.h"
#include "px_test.h"
#include <stdlib.h>
#include <string.h>

#define N_POS 256
#define BLOCK 16

static float *run(const char *dir, int dtype, px_dtype kv_dtype, px_pool *pool, const int32_t *ids, int *vocab) {
    px_load_options o = {.dtype = dtype};
    double t0 = px_time_now();
    px_model *m = px_model_load(dir, &o);
    if (!m) {
        fprintf(stderr, "%s\n", px_error_get());
        return NULL;
    }
    const px_model_config *c = px_model_config_of(m);
    *vocab = c->vocab;
    int32_t blocks[N_POS / BLOCK], pos[N_POS], seq[N_POS] = {0}, rows[N_POS];
    for (int i = 0; i < N_POS / BLOCK; i++) blocks[i] = i;
    for (int i = 0; i < N_POS; i++) pos[i] = i, rows[i] = i;
    px_seq_blocks sb = {blocks, N_POS / BLOCK};
    px_kv_cache *kv = px_kv_cache_create_typed(c->n_layers, c->n_kv_heads * c->head_dim, BLOCK, N_POS / BLOCK, kv_dtype);
    float *logits = px_malloc((size_t)N_POS * c->vocab * sizeof(float));
    px_batch b = {.n_tokens = N_POS, .tokens = ids, .pos = pos, .seq = seq, .n_seqs = 1, .seqs = &sb,
                  .n_logits = N_POS, .logit_rows = rows};
    double t1 = px_time_now();
    int rc = px_model_forward(m, pool, kv, &b, NULL, logits);
    printf("%-5s kv %s: load %.1f s, forward of %d tokens %.1f s\n", dtype < 0 ? "as-is" : px_dtype_name((px_dtype)dtype),
           px_dtype_name(kv_dtype), t1 - t0, N_POS, px_time_now() - t1);
    px_kv_cache_free(kv);
    px_model_free(m);
    if (rc) {
        fprintf(stderr, "%s\n", px_error_get());
        free(logits);
        return NULL;
    }
    return logits;
}

typedef struct {
    double agree, rms_rel, max_rel;
} cmp_result;

/* errors relative to the per-position spread (std) of the reference logits */
static cmp_result compare(const float *ref, const float *got, int vocab) {
    cmp_result r = {0};
    double se = 0;
    for (int p = 0; p < N_POS; p++) {
        const float *a = ref + (size_t)p * vocab, *b = got + (size_t)p * vocab;
        double mean = 0, var = 0, e2 = 0, emax = 0;
        for (int i = 0; i < vocab; i++) mean += a[i];
        mean /= vocab;
        for (int i = 0; i < vocab; i++) {
            double d = a[i] - mean, e = (double)b[i] - a[i];
            var += d * d;
            e2 += e * e;
            emax = fmax(emax, fabs(e));
        }
        double sd = sqrt(var / vocab);
        se += e2 / vocab / (sd * sd);
        r.max_rel = fmax(r.max_rel, emax / sd);
        r.agree += px_argmax(a, vocab) == px_argmax(b, vocab);
    }
    r.agree /= N_POS;
    r.rms_rel = sqrt(se / N_POS);
    return r;
}

int main(int argc, char **argv) {
    if (argc < 2) return fprintf(stderr, "usage: %s MODEL_DIR [THREADS]\n", argv[0]), 2;
    const char *dir = argv[1];
    px_pool *pool = px_pool_create(argc > 2 ? atoi(argv[2]) : 2);
    px_model_config cfg;
    if (px_model_config_load(dir, &cfg)) return fprintf(stderr, "%s\n", px_error_get()), 1;
    int32_t ids[N_POS];
    uint64_t x = 20240611;
    for (int i = 0; i < N_POS; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        ids[i] = (int32_t)((x >> 33) % (uint64_t)cfg.vocab);
    }
    int vocab = 0;
    float *ref = run(dir, PX_DTYPE_F32, PX_DTYPE_F32, pool, ids, &vocab);
    CHECK(ref != NULL);
    if (!ref) return px_test_finish();
    const struct { px_dtype t; double agree, rms, max; } limits[] = {
        {PX_DTYPE_Q8_0, 0.95, 0.05, 0.40},
        {PX_DTYPE_Q4_0, 0.00, 0.55, 3.00},
    };

    for (size_t i = 0; i < PX_ARRAY_LEN(limits); i++) {
        float *got = run(dir, (int)limits[i].t, PX_DTYPE_F32, pool, ids, &vocab);
        CHECK(got != NULL);
        if (!got) continue;
        cmp_result r = compare(ref, got, vocab);
        printf("%s: top-1 agreement %.1f%% (limit %.0f%%), error / spread: rms %.4f (limit %.2f), max %.4f "
               "(limit %.2f)\n",
               px_dtype_name(limits[i].t), 100 * r.agree, 100 * limits[i].agree, r.rms_rel, limits[i].rms, r.max_rel,
               limits[i].max);
        CHECK_MSG(r.agree >= limits[i].agree, "%s top-1 agreement %.3f", px_dtype_name(limits[i].t), r.agree);
        CHECK_MSG(r.rms_rel <= limits[i].rms, "%s rms error %.4f", px_dtype_name(limits[i].t), r.rms_rel);
        CHECK_MSG(r.max_rel <= limits[i].max, "%s max error %.4f", px_dtype_name(limits[i].t), r.max_rel);
        free(got);
    }
    /* the f16 KV cache, with f32 weights */
    float *kv16 = run(dir, PX_DTYPE_F32, PX_DTYPE_F16, pool, ids, &vocab);
    CHECK(kv16 != NULL);
    if (kv16) {
        cmp_result kv = compare(ref, kv16, vocab);
        printf("f16 KV cache: top-1 agreement %.1f%% (limit 99%%), error / spread: rms %.5f (limit 0.002), max %.5f\n",
               100 * kv.agree, kv.rms_rel, kv.max_rel);
        CHECK_MSG(kv.rms_rel <= 0.002 && kv.agree >= 0.99, "f16 KV cache error %.5f, agreement %.3f", kv.rms_rel, kv.agree);
    }
    free(kv16);
    free(ref);
    px_pool_destroy(pool);
    return px_test_finish();
}
