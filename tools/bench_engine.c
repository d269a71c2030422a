/* bench_engine.c - measures the serving engine on a model directory (test
 * tooling, not shipped):
 *   1. a direct loop over px_model_forward() (prefill P tokens, then N greedy
 *      decode steps): the single-stream speed without any engine;
 *   2. the engine with C concurrent streams (P-token random prompts, N tokens
 *      each, greedy, EOS ignored): aggregate generated tokens/s, mean time to
 *      first token and mean inter-token latency.
 * The ratio of (2) at C = 1 to (1) is the engine's own overhead.
 *
 *   bench_engine -m DIR [-t THREADS] [-p P] [-n N] [-c 1,4,8]
 */
#include "engine.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int n, done;
    double t_submit, t_first, t_last;
} stream;

static void on_event(void *user, const px_token_event *ev) {
    stream *s = user;
    double now = px_time_now();
    pthread_mutex_lock(&s->mu);
    if (ev->token >= 0) {
        if (s->n++ == 0) s->t_first = now;
        s->t_last = now;
    }
    if (ev->finish != PX_FINISH_NONE) s->done = 1, pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static void random_prompt(int32_t *p, int n, int vocab, uint64_t *x) {
    for (int i = 0; i < n; i++) {
        *x = *x * 6364136223846793005ull + 1442695040888963407ull;
        p[i] = (int32_t)((*x >> 33) % (uint64_t)(vocab - 10)) + 5;
    }
}

static double direct_loop(px_model *m, int threads, int P, int N) {
    const px_model_config *c = px_model_config_of(m);
    int n_blocks = (P + N + 15) / 16;
    px_kv_cache *kv = px_kv_cache_create(c->n_layers, c->n_kv_heads * c->head_dim, 16, n_blocks);
    int32_t *blocks = malloc((size_t)n_blocks * sizeof *blocks), *pos = malloc((size_t)P * 4), *seq = calloc((size_t)P, 4);
    for (int i = 0; i < n_blocks; i++) blocks[i] = i;
    for (int i = 0; i < P; i++) pos[i] = i;
    int32_t *prompt = malloc((size_t)P * 4);
    uint64_t x = 1;
    random_prompt(prompt, P, c->vocab, &x);
    px_seq_blocks sb = {blocks, n_blocks};
    px_pool *pool = px_pool_create(threads);
    float *logits = malloc((size_t)c->vocab * sizeof *logits);
    int32_t last = P - 1;
    px_batch b = {.n_tokens = P, .tokens = prompt, .pos = pos, .seq = seq, .n_seqs = 1, .seqs = &sb, .n_logits = 1,
                  .logit_rows = &last};
    px_model_forward(m, pool, kv, &b, NULL, logits);
    double t0 = px_time_now();
    for (int i = 0; i < N; i++) {
        int32_t tok = (int32_t)px_argmax(logits, c->vocab), p = P + i, zero = 0;
        b = (px_batch){.n_tokens = 1, .tokens = &tok, .pos = &p, .seq = &zero, .n_seqs = 1, .seqs = &sb, .n_logits = 1,
                       .logit_rows = &zero};
        px_model_forward(m, pool, kv, &b, NULL, logits);
    }
    double tps = N / (px_time_now() - t0);
    px_pool_destroy(pool);
    px_kv_cache_free(kv);
    free(blocks), free(pos), free(seq), free(prompt), free(logits);
    return tps;
}

static void engine_run(px_model *m, int threads, int P, int N, int C) {
    const px_model_config *c = px_model_config_of(m);
    px_engine_options o;
    px_engine_options_defaults(&o);
    o.n_threads = threads;
    o.kv_cache_bytes = 0;
    o.disable_prefix_cache = true;
    px_engine *e = px_engine_create(m, &o);
    if (!e || px_engine_start(e)) {
        fprintf(stderr, "engine: %s\n", px_error_get());
        exit(1);
    }
    stream *st = calloc((size_t)C, sizeof *st);
    int32_t *prompt = malloc((size_t)P * 4);
    uint64_t x = 7;
    px_sampling s;
    px_sampling_defaults(&s);
    s.temperature = 0, s.max_tokens = N, s.ignore_eos = true;
    double t0 = px_time_now();
    for (int i = 0; i < C; i++) {
        pthread_mutex_init(&st[i].mu, NULL);
        pthread_cond_init(&st[i].cv, NULL);
        random_prompt(prompt, P, c->vocab, &x);
        st[i].t_submit = px_time_now();
        px_engine_submit(e, prompt, P, &s, on_event, &st[i]);
    }
    double ttft = 0, itl = 0, t_end = 0;
    int total = 0;
    for (int i = 0; i < C; i++) {
        pthread_mutex_lock(&st[i].mu);
        while (!st[i].done) pthread_cond_wait(&st[i].cv, &st[i].mu);
        pthread_mutex_unlock(&st[i].mu);
        ttft += st[i].t_first - st[i].t_submit;
        itl += st[i].n > 1 ? (st[i].t_last - st[i].t_first) / (st[i].n - 1) : 0;
        total += st[i].n;
        t_end = PX_MAX(t_end, st[i].t_last);
    }
    printf("engine  C=%-3d %7.2f tok/s aggregate, TTFT %.3f s, ITL %.1f ms (%d tokens in %.2f s)\n", C,
           total / (t_end - t0), ttft / C, 1000 * itl / C, total, t_end - t0);
    px_engine_free(e);
    free(st), free(prompt);
}

int main(int argc, char **argv) {
    const char *dir = NULL, *cs = "1,4,8";
    int threads = 2, P = 64, N = 64;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "-m")) dir = argv[i + 1];
        else if (!strcmp(argv[i], "-t")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-p")) P = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-n")) N = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-c")) cs = argv[i + 1];
    }
    if (!dir || P < 1 || N < 1) return fprintf(stderr, "usage: bench_engine -m DIR [-t T] [-p P] [-n N] [-c 1,4,8]\n"), 2;
    px_log_set_level(PX_LOG_WARN);
    px_model *m = px_model_load(dir, NULL);
    if (!m) return fprintf(stderr, "%s\n", px_error_get()), 1;
    printf("direct  C=1   %7.2f tok/s decode (P=%d, N=%d, %d threads)\n", direct_loop(m, threads, P, N), P, N, threads);
    char *list = strdup(cs);
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) engine_run(m, threads, P, N, atoi(tok));
    free(list);
    px_model_free(m);
    return 0;
}
