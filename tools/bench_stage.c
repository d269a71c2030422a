/* bench_stage.c - measures pipeline stages on a model directory (test
 * tooling, not shipped). All in one process, stages wired by callbacks
 * exactly like tests/stage_chain.h (no network), so what it shows is the
 * stage executor's own cost:
 *
 *   1. direct: a bare px_model_forward() decode loop on the whole model
 *      (one token per call): the compute floor per token;
 *   2. ring, stepped: one stage [0, L) driven by px_stage_step() on this
 *      thread, the token fed back through push + callback: (2) - (1) per
 *      token is the per-item overhead of a stage (validation, copies,
 *      planning, events), without thread hand-offs;
 *   3. chains of k stages, each with its own executor thread (T compute
 *      threads each), C concurrent greedy streams: aggregate tokens/s and,
 *      at C = 1, the time per token (each hop adds a push and a thread
 *      wake-up).
 *
 *   bench_stage -m DIR [-t T] [-p PROMPT] [-n TOKENS] [-k 1,2,4] [-c 1,4,8] [-r REPEATS] [-s 1] [-d 0]
 *   (-s 1: chains stepped on one thread instead of threaded: the same work
 *   without any overlap, to tell batching effects from concurrency effects;
 *   -d D: pipeline depth of stage 0, see px_stage_set_pipeline_depth; default
 *   k, 0 = no limit)
 */
#include "stage_chain.h"

#define MAX_REPS 32
static int REPS = 5;

static int parse_list(const char *s, int *out, int max) {
    int n = 0;
    for (const char *p = s; *p && n < max;) {
        out[n++] = atoi(p);
        p = strchr(p, ',');
        if (!p) break;
        p++;
    }
    return n;
}

static void random_prompt(int32_t *p, int n, int vocab, uint64_t *x) {
    for (int i = 0; i < n; i++) {
        *x = *x * 6364136223846793005ull + 1442695040888963407ull;
        p[i] = (int32_t)((*x >> 33) % (uint64_t)(vocab - 10)) + 5;
    }
}

/* (1): seconds per decode token of a bare forward loop. */
static double direct_decode(px_model *m, int threads, int P, int N) {
    const px_model_config *c = px_model_config_of(m);
    const int bs = 16, n_blocks = (P + N + bs) / bs;
    px_kv_cache *kv = px_kv_cache_create(c->n_layers, c->n_kv_heads * c->head_dim, bs, n_blocks);
    int32_t *blocks = malloc((size_t)n_blocks * sizeof *blocks), *pos = malloc((size_t)P * 4), *seq = calloc((size_t)P, 4);
    int32_t *prompt = malloc((size_t)P * 4);
    for (int i = 0; i < n_blocks; i++) blocks[i] = i;
    for (int i = 0; i < P; i++) pos[i] = i;
    uint64_t x = 1;
    random_prompt(prompt, P, c->vocab, &x);
    px_seq_blocks sb = {blocks, n_blocks};
    px_pool *pool = px_pool_create(threads);
    float *logits = malloc((size_t)c->vocab * sizeof *logits);
    int32_t last = P - 1, zero = 0;
    px_batch b = {.n_tokens = P, .tokens = prompt, .pos = pos, .seq = seq, .n_seqs = 1, .seqs = &sb, .n_logits = 1,
                  .logit_rows = &last};
    px_model_forward(m, pool, kv, &b, NULL, logits);
    int32_t tok = (int32_t)px_argmax(logits, c->vocab);
    double t0 = px_time_now();
    for (int i = 0; i < N; i++) {
        int32_t p = P + i;
        b = (px_batch){.n_tokens = 1, .tokens = &tok, .pos = &p, .seq = &zero, .n_seqs = 1, .seqs = &sb, .n_logits = 1,
                       .logit_rows = &zero};
        px_model_forward(m, pool, kv, &b, NULL, logits);
        tok = (int32_t)px_argmax(logits, c->vocab);
    }
    double per = (px_time_now() - t0) / N;
    px_pool_destroy(pool);
    px_kv_cache_free(kv);
    free(blocks), free(pos), free(seq), free(prompt), free(logits);
    return per;
}

/* (2): a single stage [0, L) stepped on this thread, each sampled token
 * pushed back from the callback; seconds per decode token (after the first). */
typedef struct {
    px_stage *st;
    int n;
    double t_first;
} ring_state;

static void ring_cb(void *user, const px_stage_event *ev) {
    ring_state *rs = user;
    if (ev->kind != PX_STAGE_OUT_TOKEN) return;
    if (rs->n++ == 0) rs->t_first = px_time_now();
    px_stage_item next = px_stage_token_item(ev);
    px_stage_item rel = {.kind = PX_STAGE_RELEASE, .request_id = ev->request_id};
    px_stage_push(rs->st, ev->token.finish == PX_FINISH_NONE ? &next : &rel);
}

static double ring_decode(px_model *m, const px_engine_options *o, const int32_t *prompt, int P, int N, uint64_t id) {
    ring_state rs = {0};
    rs.st = px_stage_create(m, o, ring_cb, &rs);
    px_sampling s;
    px_sampling_defaults(&s);
    s.temperature = 0, s.max_tokens = N + 1, s.ignore_eos = true;
    px_stage_item it = {.kind = PX_STAGE_FORWARD, .request_id = id, .n = P, .tokens = prompt, .sample = true, .sampling = &s};
    px_stage_push(rs.st, &it);
    while (px_stage_step(rs.st) > 0) {}
    double per = (px_time_now() - rs.t_first) / (rs.n - 1);
    px_stage_free(rs.st);
    return per;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[n / 2];
}

static px_engine_options bench_options(int threads) {
    px_engine_options o;
    px_engine_options_defaults(&o);
    o.n_threads = threads;
    o.kv_cache_bytes = 256 << 20;
    o.max_batch_size = 64;
    return o;
}

/* Runs C streams of N tokens through chain c; returns seconds from the
 * first submit to the last token (prefill included). */
static double run_streams(chain *c, const int32_t *prompts, int P, int C, int N) {
    chain_reset_requests(c, C);
    px_sampling s;
    px_sampling_defaults(&s);
    s.temperature = 0, s.max_tokens = N, s.ignore_eos = true;
    double t0 = px_time_now();
    for (int i = 0; i < C; i++) chain_submit(c, i, prompts + (size_t)i * P, P, &s);
    if (!chain_wait_all(c)) fprintf(stderr, "bench: streams did not finish\n");
    double dt = px_time_now() - t0;
    chain_wait_empty(c);
    return dt;
}

/* Per stage over the last runs: steps, positions per step, busy share of the wall time. */
static void print_stage_stats(chain *c, const px_stage_stats_t *before, double wall) {
    for (int i = 0; i < c->k; i++) {
        px_stage_stats_t s;
        px_stage_stats(c->stages[i], &s);
        double steps = (double)(s.steps_total - before[i].steps_total);
        double pos = (double)(s.positions_total - before[i].positions_total);
        printf("    stage %d [%d, %d): %6.0f steps, %5.1f positions/step, busy %3.0f%%\n", i, s.layer_start, s.layer_end,
               steps, steps ? pos / steps : 0, 100 * (s.busy_seconds - before[i].busy_seconds) / wall);
    }
}

int main(int argc, char **argv) {
    const char *dir = NULL;
    bool stepped = false;
    int depth_flag = -1; /* stage 0's pipeline depth: -1 = k, 0 = no limit, else that */
    int threads = 1, P = 16, N = 64, ks[8] = {1, 2, 4}, nk = 3, cs[8] = {1, 4, 8}, nc = 3;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "-m")) dir = argv[i + 1];
        else if (!strcmp(argv[i], "-t")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-p")) P = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-n")) N = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-k")) nk = parse_list(argv[i + 1], ks, 8);
        else if (!strcmp(argv[i], "-c")) nc = parse_list(argv[i + 1], cs, 8);
        else if (!strcmp(argv[i], "-s")) stepped = atoi(argv[i + 1]) != 0;
        else if (!strcmp(argv[i], "-d")) depth_flag = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-r")) REPS = PX_MAX(1, PX_MIN(MAX_REPS, atoi(argv[i + 1])));
    }
    if (!dir) return fprintf(stderr, "usage: %s -m DIR [-t T] [-p P] [-n N] [-k 1,2,4] [-c 1,4,8]\n", argv[0]), 2;
    px_log_set_level(PX_LOG_WARN);
    px_model *full = px_model_load(dir, &(px_load_options){.dtype = -1});
    if (!full) return fprintf(stderr, "%s\n", px_error_get()), 1;
    const px_model_config *cfg = px_model_config_of(full);
    int max_c = 1;
    for (int i = 0; i < nc; i++) max_c = PX_MAX(max_c, cs[i]);
    int32_t *prompts = malloc((size_t)max_c * (size_t)P * sizeof *prompts);
    uint64_t x = 7;
    random_prompt(prompts, max_c * P, cfg->vocab, &x);

    if (P + N + 1 > cfg->max_pos) return fprintf(stderr, "P + N + 1 must be <= the context (%d)\n", cfg->max_pos), 2;
    px_engine_options o = bench_options(threads);
    double direct[MAX_REPS], ring[MAX_REPS];
    for (int r = 0; r < REPS; r++) { /* interleaved, so drift in machine speed hits both */
        direct[r] = direct_decode(full, threads, P, N);
        ring[r] = ring_decode(full, &o, prompts, P, N, (uint64_t)r + 1);
    }
    double d_min = direct[0], r_min = ring[0];
    for (int r = 1; r < REPS; r++) d_min = PX_MIN(d_min, direct[r]), r_min = PX_MIN(r_min, ring[r]);
    double d_med = median(direct, REPS), r_med = median(ring, REPS);
    printf("decode, %d thread%s, positions %d..%d, %d runs each (min / median):\n", threads, threads > 1 ? "s" : "", P,
           P + N, REPS);
    printf("  bare forward loop:      %7.1f / %7.1f us/token\n", d_min * 1e6, d_med * 1e6);
    printf("  1-stage ring (stepped): %7.1f / %7.1f us/token -> stage overhead %.1f us per item (min - min)\n",
           r_min * 1e6, r_med * 1e6, (r_min - d_min) * 1e6);

    for (int ki = 0; ki < nk; ki++) {
        int k = PX_MIN(ks[ki], cfg->n_layers);
        chain c;
        if (chain_open(&c, dir, k, cfg->n_layers, &o, !stepped)) return 1;
        const int depth = depth_flag < 0 ? k : depth_flag;
        px_stage_set_pipeline_depth(c.stages[0], depth);
        run_streams(&c, prompts, P, 1, 4);
        for (int ci = 0; ci < nc; ci++) {
            px_stage_stats_t before[CHAIN_MAX_STAGES];
            for (int i = 0; i < k; i++) px_stage_stats(c.stages[i], &before[i]);
            double dt[MAX_REPS];
            for (int r = 0; r < REPS; r++) dt[r] = run_streams(&c, prompts, P, cs[ci], N);
            double med = median(dt, REPS);
            printf("%d stage%s (%s, depth %d, %d thread%s each), %2d streams: %8.1f tokens/s, %7.1f us/token per stream "
                   "(median of %d, prefill included)\n", k, k > 1 ? "s" : " ", stepped ? "stepped" : "threaded", depth, threads, threads > 1 ? "s" : "", cs[ci],
                   cs[ci] * N / med, med / N * 1e6, REPS);
            print_stage_stats(&c, before, med * REPS);
        }
        chain_close(&c);
    }
    free(prompts);
    px_model_free(full);
    return 0;
}
