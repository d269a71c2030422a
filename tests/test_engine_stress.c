/* test_engine_stress.c - many threads submitting and aborting at random
 * against one engine with a tiny KV pool (so preemption, prefix sharing and
 * eviction all happen), while another thread reads stats. Afterwards:
 *   - every request got exactly one final event and nothing after it, never
 *     an ERROR; tokens are in the vocabulary; limits were respected;
 *   - every greedy or seeded request that was not aborted gives, replayed
 *     alone on a fresh engine without a prefix cache, the same tokens;
 *   - no KV block is in use; freeing the engine with requests in flight
 *     finishes them all.
 * Meant to run under ASan/UBSan too (the engine's own threads included).
 * usage: test_engine_stress MODEL_DIR */
#include "engine_harness.h"
#include <stdatomic.h>
#include <unistd.h>

#define THREADS 4
#define PER_THREAD 48
#define BLOCK_BYTES (2 * 4 * 16 * 64 * 4)

typedef struct {
    collector c;
    int32_t prompt[128];
    int n_prompt;
    px_sampling s;
    int32_t bias_id;
    float bias_value;
    bool aborted, submitted;
} record;

static px_model *model;
static px_engine *engine;
static record records[THREADS][PER_THREAD];
static int32_t bases[3][100];
static atomic_bool stop_stats;
static atomic_int stats_errors;

static uint64_t next_rand(uint64_t *x) {
    *x = *x * 6364136223846793005ull + 1442695040888963407ull;
    return *x >> 33;
}

static float rand_unit(uint64_t *x) { return (float)(next_rand(x) % 10000) / 10000.0f; }

static void random_prompt(record *r, uint64_t *x) {
    int n = 1 + (int)(next_rand(x) % 110), shared = 0;
    if (next_rand(x) % 2) { /* a shared system-prompt-like prefix */
        const int32_t *base = bases[next_rand(x) % 3];
        shared = PX_MIN(n, 16 + (int)(next_rand(x) % 60));
        memcpy(r->prompt, base, (size_t)shared * sizeof *base);
    }
    for (int i = shared; i < n; i++) r->prompt[i] = 3 + (int32_t)(next_rand(x) % 509);
    r->n_prompt = n;
}

static void random_sampling(record *r, uint64_t *x) {
    px_sampling *s = &r->s;
    px_sampling_defaults(s);
    s->max_tokens = 1 + (int)(next_rand(x) % 60);
    s->ignore_eos = next_rand(x) % 2;
    if (next_rand(x) % 5 < 2) s->temperature = 0;
    else {
        s->temperature = 0.5f + rand_unit(x);
        if (next_rand(x) % 2) s->top_k = 1 + (int)(next_rand(x) % 50);
        if (next_rand(x) % 2) s->top_p = 0.5f + 0.5f * rand_unit(x);
        if (next_rand(x) % 3 == 0) s->min_p = 0.2f * rand_unit(x);
        s->has_seed = next_rand(x) % 10 < 7;
        s->seed = next_rand(x);
    }
    if (next_rand(x) % 4 == 0) s->repetition_penalty = 1 + rand_unit(x), s->presence_penalty = rand_unit(x);
    if (next_rand(x) % 4 == 0) s->frequency_penalty = rand_unit(x);
    s->top_logprobs = (int)(next_rand(x) % 7) - 1;
    if (next_rand(x) % 5 == 0) {
        r->bias_id = 3 + (int32_t)(next_rand(x) % 500), r->bias_value = 2;
        s->n_logit_bias = 1, s->logit_bias_ids = &r->bias_id, s->logit_bias_values = &r->bias_value;
    }
}

static void *worker_main(void *arg) {
    int tid = (int)(intptr_t)arg;
    uint64_t x = 1000 + (uint64_t)tid;
    for (int i = 0; i < PER_THREAD;) {
        int k = PX_MIN(1 + (int)(next_rand(&x) % 4), PER_THREAD - i), first = i;
        for (; i < first + k; i++) {
            record *r = &records[tid][i];
            collector_init(&r->c);
            random_prompt(r, &x);
            random_sampling(r, &x);
            if (next_rand(&x) % 10 == 0) r->c.abort_after = 1 + next_rand(&x) % 5, r->aborted = true;
            r->submitted = harness_submit(engine, &r->c, r->prompt, r->n_prompt, &r->s) > 0;
            if (!r->submitted) fprintf(stderr, "submit refused: %s\n", px_error_get());
        }
        for (int j = first; j < i; j++)
            if (next_rand(&x) % 4 == 0) {
                usleep((useconds_t)(next_rand(&x) % 3000));
                px_engine_abort(engine, records[tid][j].c.id);
                records[tid][j].aborted = true;
            }
        for (int j = first; j < i; j++)
            if (records[tid][j].submitted) collector_wait(&records[tid][j].c);
    }
    return NULL;
}

static void *stats_main(void *arg) {
    (void)arg;
    while (!atomic_load(&stop_stats)) {
        px_engine_stats_t st;
        px_engine_stats(engine, &st);
        if (st.kv_blocks_used < 0 || st.kv_blocks_used + st.kv_blocks_cached > st.kv_blocks_total || st.running > 6 ||
            st.waiting < 0)
            atomic_fetch_add(&stats_errors, 1);
        usleep(200);
    }
    return NULL;
}

static void check_record(const record *r, int *bad) {
    const collector *c = &r->c;
    bool ok = r->submitted && c->done && c->n_after_final == 0 && c->contract_errors == 0 && c->finish != PX_FINISH_ERROR;
    for (int i = 0; i < PX_MIN(c->n, HARNESS_MAX_TOKENS); i++) ok = ok && c->tokens[i] >= 0 && c->tokens[i] < 512;
    ok = ok && c->n <= r->s.max_tokens && r->n_prompt + c->n <= 128;
    if (c->finish == PX_FINISH_LENGTH) ok = ok && (c->n == r->s.max_tokens || r->n_prompt + c->n == 128);
    if (c->finish == PX_FINISH_ABORT) ok = ok && r->aborted;
    if (!ok) (*bad)++;
}

/* Replays each finished greedy/seeded request alone; outputs must match. */
static void replay(int *mismatches, int *replayed) {
    px_engine_options o = {.n_threads = 2, .kv_cache_bytes = 64 * BLOCK_BYTES, .disable_prefix_cache = true};
    px_engine *e = px_engine_create(model, &o);
    CHECK(e && px_engine_start(e) == 0);
    for (int t = 0; t < THREADS; t++)
        for (int i = 0; i < PER_THREAD; i++) {
            const record *r = &records[t][i];
            bool fixed = r->s.temperature == 0 || r->s.has_seed;
            if (!r->submitted || r->c.finish == PX_FINISH_ABORT || !fixed) continue;
            collector c;
            collector_init(&c);
            harness_submit(e, &c, r->prompt, r->n_prompt, &r->s);
            collector_wait(&c);
            (*replayed)++;
            if (c.n != r->c.n || memcmp(c.tokens, r->c.tokens, (size_t)PX_MIN(c.n, HARNESS_MAX_TOKENS) * 4)) {
                (*mismatches)++;
                fprintf(stderr, "thread %d request %d: %d tokens under stress, %d alone\n", t, i, r->c.n, c.n);
            }
            collector_destroy(&c);
        }
    px_engine_free(e);
}

int main(int argc, char **argv) {
    if (argc < 2) return fprintf(stderr, "usage: %s MODEL_DIR\n", argv[0]), 2;
    px_log_set_level(PX_LOG_WARN);
    model = px_model_load(argv[1], NULL);
    if (!model) return fprintf(stderr, "%s\n", px_error_get()), 1;
    uint64_t x = 5;
    for (int b = 0; b < 3; b++)
        for (int i = 0; i < 100; i++) bases[b][i] = 3 + (int32_t)(next_rand(&x) % 509);
    px_engine_options o = {.n_threads = 2, .kv_cache_bytes = 24 * BLOCK_BYTES, .max_batch_size = 6,
                           .max_tokens_per_batch = 48, .chunked_prefill_size = 16};
    engine = px_engine_create(model, &o);
    CHECK(engine && px_engine_start(engine) == 0);
    pthread_t workers[THREADS], stats;
    pthread_create(&stats, NULL, stats_main, NULL);
    for (int t = 0; t < THREADS; t++) pthread_create(&workers[t], NULL, worker_main, (void *)(intptr_t)t);
    for (int t = 0; t < THREADS; t++) pthread_join(workers[t], NULL);
    atomic_store(&stop_stats, true);
    pthread_join(stats, NULL);

    int bad = 0, aborted = 0;
    for (int t = 0; t < THREADS; t++)
        for (int i = 0; i < PER_THREAD; i++) check_record(&records[t][i], &bad), aborted += records[t][i].c.finish == PX_FINISH_ABORT;
    CHECK_MSG(bad == 0, "%d requests broke the contract", bad);
    CHECK(atomic_load(&stats_errors) == 0);
    px_engine_stats_t st;
    px_engine_stats(engine, &st);
    CHECK_MSG(st.kv_blocks_used == 0 && st.running == 0 && st.waiting == 0, "after the storm: %d blocks used",
              st.kv_blocks_used);
    printf("stress: %d requests, %d aborted, %llu preemptions, %llu prefix-hit tokens, %llu steps\n", THREADS * PER_THREAD,
           aborted, (unsigned long long)st.preemptions_total, (unsigned long long)st.prefix_hit_tokens,
           (unsigned long long)st.steps_total);
    CHECK(st.preemptions_total > 0 && st.prefix_hit_tokens > 0);

    /* freeing with requests in flight finishes every one of them */
    collector late[8];
    for (int i = 0; i < 8; i++) {
        collector_init(&late[i]);
        px_sampling s = records[0][i].s;
        harness_submit(engine, &late[i], records[0][i].prompt, records[0][i].n_prompt, &s);
    }
    px_engine_free(engine);
    for (int i = 0; i < 8; i++) {
        CHECK(late[i].done && late[i].n_after_final == 0);
        collector_destroy(&late[i]);
    }

    int mismatches = 0, replayed = 0;
    replay(&mismatches, &replayed);
    CHECK_MSG(mismatches == 0, "%d of %d replayed requests differ from their run under stress", mismatches, replayed);
    CHECK(replayed > THREADS * PER_THREAD / 3);
    for (int t = 0; t < THREADS; t++)
        for (int i = 0; i < PER_THREAD; i++) collector_destroy(&records[t][i].c);
    px_model_free(model);
    return px_test_finish();
}
