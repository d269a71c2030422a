/* test_engine_aidreams.c - the serving engine on the real tiny model
 * ../shared/models/aidreams-260k (context 128, vocab 512):
 *   - greedy generation equals llama.cpp's reference ids, alone and all 5 at once;
 *   - 16 concurrent requests (greedy and seeded sampling, small prefill chunks
 *     and token budgets so steps mix prefill and decode) give exactly what each
 *     gives alone;
 *   - prefix cache: a second request sharing a >= 2-block prefix reports the
 *     cached tokens and gives the same output as without a cache;
 *   - preemption under a tiny KV pool still gives identical outputs;
 *   - abort (from another thread and from a callback, running and waiting)
 *     frees every block; stops on EOS / stop ids / max_tokens / context;
 *   - invalid requests are refused with a message;
 *   - after everything, no KV block is in use.
 * usage: test_engine_aidreams MODEL_DIR */
#include "engine_harness.h"
#include <unistd.h>

static const char *model_dir;
static ref_case refs[N_REF];
static px_model *model;

#define BLOCK_BYTES (2 * 4 * 16 * 64 * 4) /* K+V of one 16-token block: 2 x layers x 16 x kv_dim x f32 */

static px_engine *make_engine(int64_t kv_bytes, int max_batch, int max_tokens, int chunk, bool no_prefix) {
    px_engine_options o;
    px_engine_options_defaults(&o);
    o.n_threads = 2;
    o.kv_cache_bytes = kv_bytes;
    o.max_batch_size = max_batch;
    o.max_tokens_per_batch = max_tokens;
    o.chunked_prefill_size = chunk;
    o.disable_prefix_cache = no_prefix;
    px_engine *e = px_engine_create(model, &o);
    if (!e) fprintf(stderr, "engine: %s\n", px_error_get());
    CHECK(e && px_engine_start(e) == 0);
    return e;
}

static void check_idle(px_engine *e, const char *where) {
    px_engine_stats_t st;
    px_engine_stats(e, &st);
    CHECK_MSG(st.kv_blocks_used == 0 && st.running == 0 && st.waiting == 0, "%s: %d blocks used, %d running, %d waiting",
              where, st.kv_blocks_used, st.running, st.waiting);
}

static px_sampling greedy(int max_tokens) {
    px_sampling s;
    px_sampling_defaults(&s);
    s.temperature = 0;
    s.max_tokens = max_tokens;
    s.ignore_eos = true; /* the reference does not stop on EOS */
    return s;
}

static bool same_tokens(const collector *c, const int32_t *want, int n) {
    if (c->n != n) return false;
    for (int i = 0; i < n; i++)
        if (c->tokens[i] != want[i]) return false;
    return true;
}

static void check_contract(const collector *c, const char *what) {
    CHECK_MSG(c->contract_errors == 0 && c->n_after_final == 0, "%s: event contract broken (%d errors, %d late)", what,
              c->contract_errors, c->n_after_final);
}

/* ---- greedy equals the reference ---- */

static void test_reference(void) {
    px_engine *e = make_engine(64 * BLOCK_BYTES, 32, 2048, 512, false);
    collector c[N_REF];
    px_sampling s = greedy(REF_GEN);
    for (int i = 0; i < N_REF; i++) { /* one at a time */
        collector_init(&c[i]);
        CHECK(harness_submit(e, &c[i], refs[i].prompt, refs[i].n_prompt, &s) > 0);
        collector_wait(&c[i]);
        CHECK_MSG(same_tokens(&c[i], refs[i].generated, REF_GEN), "prompt %d alone: greedy differs from the reference", i);
        CHECK(c[i].finish == PX_FINISH_LENGTH && c[i].prompt_tokens == refs[i].n_prompt);
        check_contract(&c[i], "reference");
        collector_destroy(&c[i]);
    }
    for (int i = 0; i < N_REF; i++) collector_init(&c[i]), harness_submit(e, &c[i], refs[i].prompt, refs[i].n_prompt, &s);
    for (int i = 0; i < N_REF; i++) {
        collector_wait(&c[i]);
        CHECK_MSG(same_tokens(&c[i], refs[i].generated, REF_GEN), "prompt %d batched: greedy differs from the reference", i);
        collector_destroy(&c[i]);
    }
    check_idle(e, "reference");
    px_engine_free(e);
}

/* ---- 16 concurrent requests == each alone ---- */

#define N_CONC 16

typedef struct {
    int32_t prompt[128];
    int n_prompt;
    px_sampling s;
} job;

static uint64_t lcg(uint64_t *x) { return *x = *x * 6364136223846793005ull + 1442695040888963407ull, *x >> 33; }

static void make_jobs(job *jobs, int n) {
    uint64_t x = 12345;
    for (int i = 0; i < n; i++) {
        job *j = &jobs[i];
        const ref_case *r = &refs[i % N_REF];
        j->n_prompt = 0;
        for (int k = 0; k < r->n_prompt; k++) j->prompt[j->n_prompt++] = r->prompt[k];
        int extra = (int)(lcg(&x) % 40); /* different lengths, different content */
        for (int k = 0; k < extra; k++) j->prompt[j->n_prompt++] = 3 + (int32_t)(lcg(&x) % 500);
        j->s = greedy(10 + (int)(lcg(&x) % 60));
        if (i % 3 == 1) { /* seeded sampling must not depend on batching either */
            j->s.temperature = 0.9f;
            j->s.top_k = 40;
            j->s.top_p = 0.95f;
            j->s.seed = 1000 + (uint64_t)i;
            j->s.has_seed = true;
        }
        if (i % 4 == 2) j->s.repetition_penalty = 1.3f, j->s.frequency_penalty = 0.5f, j->s.top_logprobs = 3;
    }
}

static void run_jobs_alone(px_engine *e, const job *jobs, int n, collector *out) {
    for (int i = 0; i < n; i++) {
        collector_init(&out[i]);
        CHECK(harness_submit(e, &out[i], jobs[i].prompt, jobs[i].n_prompt, &jobs[i].s) > 0);
        collector_wait(&out[i]);
    }
}

static void run_jobs_together(px_engine *e, const job *jobs, int n, collector *out) {
    for (int i = 0; i < n; i++) {
        collector_init(&out[i]);
        CHECK(harness_submit(e, &out[i], jobs[i].prompt, jobs[i].n_prompt, &jobs[i].s) > 0);
    }
    for (int i = 0; i < n; i++) collector_wait(&out[i]);
}

static void compare_runs(const collector *alone, const collector *together, int n, const char *what) {
    for (int i = 0; i < n; i++) {
        bool same = alone[i].n == together[i].n && alone[i].finish == together[i].finish &&
                    !memcmp(alone[i].tokens, together[i].tokens, (size_t)PX_MIN(alone[i].n, HARNESS_MAX_TOKENS) * 4) &&
                    !memcmp(alone[i].logprobs, together[i].logprobs, (size_t)PX_MIN(alone[i].n, HARNESS_MAX_TOKENS) * 4);
        CHECK_MSG(same, "%s: request %d gives %d tokens together, %d alone (or different ids/logprobs)", what, i,
                  together[i].n, alone[i].n);
        check_contract(&together[i], what);
    }
}

static void test_concurrent(void) {
    static job jobs[N_CONC];
    make_jobs(jobs, N_CONC);
    collector alone[N_CONC], together[N_CONC];
    px_engine *e1 = make_engine(256 * BLOCK_BYTES, 32, 2048, 512, true);
    run_jobs_alone(e1, jobs, N_CONC, alone);
    px_engine_free(e1);
    /* small chunks and budgets: every step mixes decodes with pieces of prompts */
    px_engine *e2 = make_engine(256 * BLOCK_BYTES, 16, 40, 7, false);
    run_jobs_together(e2, jobs, N_CONC, together);
    compare_runs(alone, together, N_CONC, "16 concurrent");
    check_idle(e2, "concurrent");
    px_engine_stats_t st;
    px_engine_stats(e2, &st);
    CHECK(st.requests_finished == N_CONC && st.steps_total > 0);
    px_engine_free(e2);
    for (int i = 0; i < N_CONC; i++) collector_destroy(&alone[i]), collector_destroy(&together[i]);
}

/* ---- prefix cache ---- */

static void test_prefix_cache(void) {
    int32_t a[60], b[60];
    uint64_t x = 99;
    for (int i = 0; i < 60; i++) a[i] = b[i] = 3 + (int32_t)(lcg(&x) % 500);
    for (int i = 40; i < 60; i++) b[i] = 3 + (int32_t)(lcg(&x) % 500); /* shares 40 tokens = 2.5 blocks */
    px_sampling s = greedy(20);
    px_engine *plain = make_engine(64 * BLOCK_BYTES, 8, 512, 512, true);
    collector want;
    collector_init(&want);
    harness_submit(plain, &want, b, 60, &s);
    collector_wait(&want);
    px_engine_free(plain);

    px_engine *e = make_engine(64 * BLOCK_BYTES, 8, 512, 512, false);
    collector c1, c2, c3;
    collector_init(&c1), collector_init(&c2), collector_init(&c3);
    harness_submit(e, &c1, a, 60, &s);
    collector_wait(&c1);
    CHECK(c1.cached_tokens == 0);
    harness_submit(e, &c2, b, 60, &s);
    collector_wait(&c2);
    CHECK_MSG(c2.cached_tokens == 32, "second request: %d cached tokens, want 32", c2.cached_tokens);
    CHECK_MSG(same_tokens(&c2, want.tokens, want.n), "prefix-cached output differs from the uncached one");
    /* the same prompt again: all full blocks but the one holding the last token */
    harness_submit(e, &c3, b, 48, &s);
    collector_wait(&c3);
    CHECK_MSG(c3.cached_tokens == 32, "48-token prompt: %d cached tokens, want 32 (the last token is recomputed)",
              c3.cached_tokens);
    px_engine_stats_t st;
    px_engine_stats(e, &st);
    CHECK(st.prefix_hit_tokens == 64 && st.prefix_lookups_tokens == 168 && st.kv_blocks_cached > 0);
    check_idle(e, "prefix cache");
    px_engine_free(e);
    collector_destroy(&want), collector_destroy(&c1), collector_destroy(&c2), collector_destroy(&c3);
}

/* ---- preemption under a tiny pool ---- */

static void test_preemption(void) {
    static job jobs[8];
    uint64_t x = 7;
    for (int i = 0; i < 8; i++) {
        jobs[i].n_prompt = 20 + (int)(lcg(&x) % 20);
        for (int k = 0; k < jobs[i].n_prompt; k++) jobs[i].prompt[k] = 3 + (int32_t)(lcg(&x) % 500);
        jobs[i].s = greedy(60);
        if (i % 2) jobs[i].s.temperature = 1.0f, jobs[i].s.seed = (uint64_t)i, jobs[i].s.has_seed = true;
    }
    collector alone[8], together[8];
    px_engine *big = make_engine(256 * BLOCK_BYTES, 8, 512, 512, true);
    run_jobs_alone(big, jobs, 8, alone);
    px_engine_free(big);
    for (int no_prefix = 0; no_prefix < 2; no_prefix++) {
        px_engine *tiny = make_engine(12 * BLOCK_BYTES, 8, 512, 16, no_prefix); /* 12 blocks; 8 x ~6 wanted */
        run_jobs_together(tiny, jobs, 8, together);
        compare_runs(alone, together, 8, no_prefix ? "preemption (no prefix cache)" : "preemption");
        px_engine_stats_t st;
        px_engine_stats(tiny, &st);
        CHECK_MSG(st.preemptions_total > 0, "the tiny pool never preempted");
        check_idle(tiny, "preemption");
        px_engine_free(tiny);
        for (int i = 0; i < 8; i++) collector_destroy(&together[i]);
    }
    for (int i = 0; i < 8; i++) collector_destroy(&alone[i]);
}

/* ---- abort ---- */

static void test_abort(void) {
    px_engine *e = make_engine(64 * BLOCK_BYTES, 2, 512, 512, false);
    px_sampling s = greedy(100);
    collector c[6];
    for (int i = 0; i < 6; i++) collector_init(&c[i]);
    c[1].abort_after = 3; /* from its own callback */
    for (int i = 0; i < 6; i++) harness_submit(e, &c[i], refs[i % N_REF].prompt, refs[i % N_REF].n_prompt, &s);
    px_engine_abort(e, c[5].id); /* probably still waiting (batch of 2) */
    px_engine_abort(e, c[0].id);
    usleep(2000);
    px_engine_abort(e, c[3].id);
    for (int i = 0; i < 6; i++) collector_wait(&c[i]);
    CHECK(c[0].finish == PX_FINISH_ABORT && c[5].finish == PX_FINISH_ABORT && c[3].finish == PX_FINISH_ABORT);
    CHECK_MSG(c[1].finish == PX_FINISH_ABORT && c[1].n == 3, "abort from a callback: finish %d after %d tokens",
              c[1].finish, c[1].n);
    CHECK(c[2].finish == PX_FINISH_LENGTH && c[4].finish == PX_FINISH_LENGTH);
    for (int i = 0; i < 6; i++) check_contract(&c[i], "abort");
    px_engine_abort(e, c[2].id); /* finished already: nothing happens */
    px_engine_abort(e, 987654);  /* unknown */
    check_idle(e, "abort");
    /* freeing the engine aborts what is still pending */
    collector late[3];
    for (int i = 0; i < 3; i++) collector_init(&late[i]), harness_submit(e, &late[i], refs[0].prompt, refs[0].n_prompt, &s);
    px_engine_free(e);
    for (int i = 0; i < 3; i++) {
        CHECK(late[i].done && (late[i].finish == PX_FINISH_ABORT || late[i].finish == PX_FINISH_LENGTH));
        collector_destroy(&late[i]);
    }
    for (int i = 0; i < 6; i++) collector_destroy(&c[i]);
}

/* ---- stops ---- */

static void test_stops(void) {
    px_engine *e = make_engine(64 * BLOCK_BYTES, 8, 512, 512, false);
    const ref_case *r = &refs[0];
    collector c;
    /* EOS (id 2 here) forced by a bias: stops with the token included */
    px_sampling s = greedy(10);
    s.ignore_eos = false;
    int32_t eos = 2;
    float big = 100;
    s.n_logit_bias = 1, s.logit_bias_ids = &eos, s.logit_bias_values = &big;
    collector_init(&c);
    harness_submit(e, &c, r->prompt, r->n_prompt, &s);
    collector_wait(&c);
    CHECK(c.finish == PX_FINISH_STOP && c.n == 1 && c.tokens[0] == 2);
    collector_destroy(&c);
    /* a stop id: the 6th reference token (first occurrence at index 1: 464) */
    s = greedy(32);
    int32_t stop = r->generated[1];
    s.n_stop_ids = 1, s.stop_ids = &stop;
    collector_init(&c);
    harness_submit(e, &c, r->prompt, r->n_prompt, &s);
    collector_wait(&c);
    CHECK(c.finish == PX_FINISH_STOP && c.n == 2 && c.tokens[1] == stop);
    collector_destroy(&c);
    /* the context: 120-token prompt in a 128-token model */
    int32_t longp[120];
    for (int i = 0; i < 120; i++) longp[i] = r->prompt[i % r->n_prompt];
    s = greedy(100);
    collector_init(&c);
    harness_submit(e, &c, longp, 120, &s);
    collector_wait(&c);
    CHECK_MSG(c.finish == PX_FINISH_LENGTH && c.n == 8, "context stop: %d tokens, finish %d", c.n, c.finish);
    collector_destroy(&c);
    check_idle(e, "stops");
    px_engine_free(e);
}

/* ---- refused requests ---- */

static void test_invalid(void) {
    px_engine *e = make_engine(64 * BLOCK_BYTES, 8, 512, 512, false);
    collector c;
    collector_init(&c);
    px_sampling s = greedy(4);
    int32_t p[130] = {1, 2, 3}, bad = 512;
    CHECK(px_engine_submit(e, p, 0, &s, collector_cb, &c) == 0 && strstr(px_error_get(), "empty"));
    CHECK(px_engine_submit(e, p, 128, &s, collector_cb, &c) == 0 && strstr(px_error_get(), "context"));
    CHECK(px_engine_submit(e, &bad, 1, &s, collector_cb, &c) == 0 && strstr(px_error_get(), "vocabulary"));
    s.temperature = -1;
    CHECK(px_engine_submit(e, p, 3, &s, collector_cb, &c) == 0 && strstr(px_error_get(), "temperature"));
    s = greedy(0);
    CHECK(px_engine_submit(e, p, 3, &s, collector_cb, &c) == 0 && strstr(px_error_get(), "max_tokens"));
    s = greedy(4);
    s.n_logit_bias = 1, s.logit_bias_ids = &bad, s.logit_bias_values = (float[]){1};
    CHECK(px_engine_submit(e, p, 3, &s, collector_cb, &c) == 0 && strstr(px_error_get(), "logit_bias"));
    CHECK(c.n_events == 0);
    px_engine_options o = {.kv_cache_bytes = 100};
    CHECK(px_engine_create(model, &o) == NULL && strstr(px_error_get(), "KV cache"));
    o = (px_engine_options){.block_size = -3};
    CHECK(px_engine_create(model, &o) == NULL && strstr(px_error_get(), "block_size"));
    px_engine_free(e);
    collector_destroy(&c);
}

/* ---- seeds ---- */

static void test_seeds(void) {
    px_engine *e = make_engine(64 * BLOCK_BYTES, 8, 512, 512, false);
    px_sampling s = greedy(40);
    s.temperature = 1.0f, s.seed = 42, s.has_seed = true;
    collector a, b, c;
    collector_init(&a), collector_init(&b), collector_init(&c);
    harness_submit(e, &a, refs[2].prompt, refs[2].n_prompt, &s);
    collector_wait(&a);
    harness_submit(e, &b, refs[2].prompt, refs[2].n_prompt, &s);
    s.seed = 43;
    harness_submit(e, &c, refs[2].prompt, refs[2].n_prompt, &s);
    collector_wait(&b), collector_wait(&c);
    CHECK_MSG(same_tokens(&b, a.tokens, a.n), "the same seed gave different outputs");
    CHECK_MSG(!same_tokens(&c, a.tokens, a.n), "seeds 42 and 43 gave the same 40 tokens");
    px_engine_free(e);
    collector_destroy(&a), collector_destroy(&b), collector_destroy(&c);
}

int main(int argc, char **argv) {
    if (argc < 2) return fprintf(stderr, "usage: %s MODEL_DIR\n", argv[0]), 2;
    model_dir = argv[1];
    px_log_set_level(PX_LOG_WARN);
    if (harness_load_refs(model_dir, refs)) return 1;
    model = px_model_load(model_dir, NULL);
    if (!model) return fprintf(stderr, "%s\n", px_error_get()), 1;
    test_reference();
    test_concurrent();
    test_prefix_cache();
    test_preemption();
    test_abort();
    test_stops();
    test_invalid();
    test_seeds();
    px_model_free(model);
    return px_test_finish();
}
