/* cmd_bench_model.c - `parallax bench-model`: prefill and decode speed of a
 * model on this machine, in the spirit of llama-bench.
 *
 *   ppN  N random tokens prefilled into an empty cache (chunks of 512, the
 *        logits of the last one), tokens/s = N / time.
 *   tgN  N tokens decoded one at a time from an empty cache, with logits for
 *        every one (random ids, as llama-bench), tokens/s = N / time.
 * Each test runs once to warm up, then -r times; it prints min, median and
 * max tokens/s. Before the tests it measures this machine's memory read
 * bandwidth with the same threads (best of 5 passes over 1 GiB) and prints
 * the decode roofline: bandwidth / bytes of weights one decode step reads,
 * and each tg result as a fraction of it.
 *
 * Output lines (stable, parsed by scripts/compare_llamacpp.mjs):
 *   model DIR dtype D kv K threads N weights BYTES per_token BYTES
 *   bandwidth GB/s roofline TOK/S
 *   pp512 t=2: min A med B max C tok/s
 *   tg64 t=2: min A med B max C tok/s (X% of roofline)
 */
#include "cli.h"
#include "model.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK 512
#define KV_BLOCK 16

typedef struct {
    const char *model_dir;
    int dtype, kv_dtype;
    long threads, n_gen, reps;
    int32_t *pp;
    int n_pp;
    bool no_bandwidth;
} bench_args;

static void print_help(void) {
    printf("usage: parallax bench-model -m MODEL_DIR [options]\n"
           "  -m, --model DIR      Hugging Face model directory\n"
           "      --dtype D        weight dtype: f32, f16, bf16, q8_0, q4_0 (default: as stored)\n"
           "      --kv-dtype D     KV cache dtype: f32 or f16 (default f32)\n"
           "  -t, --threads N      threads (default: all CPUs)\n"
           "  -p, --prompt LIST    prefill lengths, comma-separated (default 128,512)\n"
           "  -n, --n-gen N        tokens to decode; 0 skips decode (default 64)\n"
           "  -r, --reps N         repetitions of each test (default 3)\n"
           "      --no-bandwidth   skip the memory bandwidth measurement\n");
}

static int parse_args(int argc, char **argv, bench_args *a) {
    *a = (bench_args){.dtype = -1, .kv_dtype = PX_DTYPE_F32, .n_gen = 64, .reps = 3};
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i], *v;
        if (!strcmp(f, "-h") || !strcmp(f, "--help")) return print_help(), 1;
        if (!strcmp(f, "--no-bandwidth")) { a->no_bandwidth = true; continue; }
        if (!(v = px_flag_value(argc, argv, &i))) return 2;
        if (!strcmp(f, "-m") || !strcmp(f, "--model")) a->model_dir = v;
        else if (!strcmp(f, "-t") || !strcmp(f, "--threads")) { if (!px_flag_int(f, v, 1, 1024, &a->threads)) return 2; }
        else if (!strcmp(f, "-n") || !strcmp(f, "--n-gen")) { if (!px_flag_int(f, v, 0, 1 << 20, &a->n_gen)) return 2; }
        else if (!strcmp(f, "-r") || !strcmp(f, "--reps")) { if (!px_flag_int(f, v, 1, 1000, &a->reps)) return 2; }
        else if (!strcmp(f, "-p") || !strcmp(f, "--prompt")) {
            free(a->pp);
            a->pp = NULL;
            if (!px_flag_int_list(f, v, &a->pp, &a->n_pp)) return 2;
            for (int k = 0; k < a->n_pp; k++)
                if (a->pp[k] < 1) return px_usage_error("%s: lengths must be at least 1", f);
        } else if (!strcmp(f, "--dtype")) {
            if ((a->dtype = px_dtype_parse(v)) < 0)
                return px_usage_error("--dtype: unknown dtype '%s' (f32, f16, bf16, q8_0, q4_0)", v);
        } else if (!strcmp(f, "--kv-dtype")) {
            a->kv_dtype = px_dtype_parse(v);
            if (a->kv_dtype != PX_DTYPE_F32 && a->kv_dtype != PX_DTYPE_F16)
                return px_usage_error("--kv-dtype: '%s' is not a KV cache dtype (f32, f16)", v);
        } else return px_usage_error("bench-model: unknown flag '%s' (see parallax bench-model --help)", f);
    }
    if (!a->model_dir) return px_usage_error("bench-model: -m MODEL_DIR is required");
    if (!a->pp) {
        a->pp = px_malloc(2 * sizeof *a->pp);
        a->pp[0] = 128, a->pp[1] = 512, a->n_pp = 2;
    }
    return 0;
}

/* ---- memory read bandwidth: every thread sums its share of a large buffer ---- */

typedef struct {
    const uint64_t *buf;
    double *sums;
} bw_job;

static void bw_range(void *arg, int64_t start, int64_t end, int thread) {
    const bw_job *j = arg;
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (int64_t i = start; i + 4 <= end; i += 4) {
        s0 += j->buf[i], s1 += j->buf[i + 1], s2 += j->buf[i + 2], s3 += j->buf[i + 3];
    }
    j->sums[thread] = (double)(s0 + s1 + s2 + s3);
}

static double measure_bandwidth(px_pool *pool) {
    const size_t bytes = (size_t)1 << 30, n = bytes / 8;
    uint64_t *buf = px_aligned_alloc(bytes);
    for (size_t i = 0; i < n; i += 512) buf[i] = i; /* touch every page */
    double sums[1024], best = 0;
    bw_job j = {buf, sums};
    for (int rep = 0; rep < 5; rep++) {
        double t0 = px_time_now();
        px_pool_run(pool, (int64_t)n, 1 << 16, bw_range, &j);
        double dt = px_time_now() - t0;
        if (bytes / dt > best) best = bytes / dt;
    }
    px_aligned_free(buf);
    return best / 1e9;
}

/* ---- the tests ---- */

typedef struct {
    px_model *model;
    px_pool *pool;
    px_kv_cache *kv;
    px_seq_blocks seq;
    float *logits;
    int vocab;
    uint64_t rng;
} bench;

static int32_t random_token(bench *b) {
    b->rng = b->rng * 6364136223846793005ull + 1442695040888963407ull;
    return (int32_t)((b->rng >> 33) % (uint64_t)b->vocab);
}

/* runs n tokens from position 0: as prefill chunks (gen false) or one by one; seconds or -1 */
static double run_test(bench *b, int n, bool gen) {
    int32_t *tok = px_malloc((size_t)n * sizeof *tok), *pos = px_malloc((size_t)CHUNK * sizeof *pos);
    int32_t *seq = px_calloc(CHUNK, sizeof *seq);
    for (int i = 0; i < n; i++) tok[i] = random_token(b);
    double t0 = px_time_now();
    int rc = 0, step = gen ? 1 : CHUNK;
    for (int off = 0; off < n && !rc; off += step) {
        int len = PX_MIN(step, n - off);
        for (int i = 0; i < len; i++) pos[i] = off + i;
        int32_t last = len - 1;
        px_batch batch = {.n_tokens = len, .tokens = tok + off, .pos = pos, .seq = seq, .n_seqs = 1,
                          .seqs = &b->seq, .n_logits = 1, .logit_rows = &last};
        rc = px_model_forward(b->model, b->pool, b->kv, &batch, NULL, b->logits);
    }
    double dt = px_time_now() - t0;
    free(tok);
    free(pos);
    free(seq);
    return rc ? -1 : dt;
}

static int cmp_double(const void *x, const void *y) {
    double a = *(const double *)x, c = *(const double *)y;
    return (a > c) - (a < c);
}

static int run_and_print(bench *b, const bench_args *a, int n, bool gen, double roofline) {
    if (run_test(b, n, gen) < 0) return -1; /* warm-up */
    double *tps = px_malloc((size_t)a->reps * sizeof *tps);
    for (long r = 0; r < a->reps; r++) {
        double s = run_test(b, n, gen);
        if (s < 0) return free(tps), -1;
        tps[r] = n / s;
    }
    qsort(tps, (size_t)a->reps, sizeof *tps, cmp_double);
    long k = a->reps;
    double med = k % 2 ? tps[k / 2] : (tps[k / 2 - 1] + tps[k / 2]) / 2;
    printf("%s%d t=%ld: min %.2f med %.2f max %.2f tok/s", gen ? "tg" : "pp", n, a->threads, tps[0], med, tps[k - 1]);
    if (gen && roofline > 0) printf(" (%.0f%% of roofline)", 100 * med / roofline);
    printf("\n");
    fflush(stdout);
    free(tps);
    return 0;
}

int px_cmd_bench_model(int argc, char **argv) {
    bench_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc) return free(a.pp), rc == 1 ? 0 : rc;
    if (a.threads <= 0) a.threads = px_cpu_count();
    px_load_options opt = {.start = 0, .end = 0, .dtype = a.dtype};
    bench b = {.rng = 42};
    double t0 = px_time_now();
    b.model = px_model_load(a.model_dir, &opt);
    if (!b.model) {
        fprintf(stderr, "parallax: %s\n", px_error_get());
        return free(a.pp), 1;
    }
    double t_load = px_time_now() - t0;
    const px_model_config *c = px_model_config_of(b.model);
    b.vocab = c->vocab;
    int ctx = (int)a.n_gen;
    for (int i = 0; i < a.n_pp; i++) ctx = PX_MAX(ctx, a.pp[i]);
    int n_blocks = (ctx + KV_BLOCK - 1) / KV_BLOCK;
    int32_t *blocks = px_malloc((size_t)n_blocks * sizeof *blocks);
    for (int i = 0; i < n_blocks; i++) blocks[i] = i;
    b.seq = (px_seq_blocks){blocks, n_blocks};
    b.kv = px_kv_cache_create_typed(c->n_layers, c->n_kv_heads * c->head_dim, KV_BLOCK, n_blocks, (px_dtype)a.kv_dtype);
    b.pool = px_pool_create((int)a.threads);
    b.logits = px_malloc((size_t)c->vocab * sizeof(float));
    size_t per_token = px_model_bytes_per_token(b.model);
    printf("model %s dtype %s kv %s threads %ld weights %zu per_token %zu cpu %s (loaded in %.1f s)\n", a.model_dir,
           a.dtype < 0 ? "stored" : px_dtype_name((px_dtype)a.dtype), px_dtype_name((px_dtype)a.kv_dtype), a.threads,
           px_model_weight_bytes(b.model), per_token, px_cpu_level_name(px_cpu_level_get()), t_load);
    double roofline = 0;
    if (!a.no_bandwidth) {
        double bw = measure_bandwidth(b.pool);
        roofline = bw * 1e9 / (double)per_token;
        printf("bandwidth %.2f GB/s roofline %.2f tok/s\n", bw, roofline);
    }
    fflush(stdout);
    rc = 0;
    for (int i = 0; i < a.n_pp && !rc; i++) rc = run_and_print(&b, &a, a.pp[i], false, roofline);
    if (!rc && a.n_gen > 0) rc = run_and_print(&b, &a, (int)a.n_gen, true, roofline);
    if (rc) fprintf(stderr, "parallax: %s\n", px_error_get());
    free(b.logits);
    px_pool_destroy(b.pool);
    px_kv_cache_free(b.kv);
    px_model_free(b.model);
    free(blocks);
    free(a.pp);
    return rc ? 1 : 0;
}
