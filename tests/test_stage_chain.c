/* test_stage_chain.c - pipeline stages on the real tiny model (aidreams-260k,
 * 4 layers): in-process chains of 1, 2, 3 and 4 stages wired as the real
 * ring (stage i -> stage i+1, last stage's token -> stage 0, bursts marked),
 * each run both threaded (one executor thread per stage, stage 0 with
 * pipeline depth k) and stepped (one thread steps all, no depth limit).
 *
 *   1. the 5 reference prompts, greedy, 32 tokens: identical to llama.cpp's
 *      reference ids (reference/greedy_32.json);
 *   2. 40 concurrent requests (greedy with logprobs, seeded sampling with
 *      top-k/top-p/min-p/penalties, stop ids, short max_tokens) with tiny
 *      prefill chunks and batches: token ids, logprobs and finish reasons
 *      identical to the single-node px_engine running the same requests;
 *   3. the same 40 again, every third one aborted after 1..5 tokens (a
 *      RELEASE into stage 0, as the scheduler does for a stop string, racing
 *      with the token already fed back) while the stages run: the others
 *      still match the engine;
 *   4. afterwards every stage holds no request, no KV block, no pending
 *      position and no micro-batch out (the RELEASEs travelled down the
 *      chain), and no item was refused.
 *
 *   test_stage_chain MODEL_DIR
 */
#include "stage_chain.h"

#define N_MIXED 40

static ref_case refs[N_REF];

static void mixed_spec(int i, req_spec *sp) {
    const ref_case *rc = &refs[i % N_REF];
    sp->prompt = rc->prompt;
    sp->n_prompt = rc->n_prompt;
    px_sampling *s = &sp->s;
    px_sampling_defaults(s);
    s->max_tokens = 24;
    s->ignore_eos = true;
    s->has_seed = true;
    s->seed = 1000 + (uint64_t)i;
    switch (i % 4) {
    case 0:
        s->temperature = 0, s->top_logprobs = 3;
        if (i >= N_MIXED / 2) s->n_stop_ids = 1, s->stop_ids = &rc->generated[5 + i % 3]; /* a STOP mid-way */
        break;
    case 1: s->temperature = 0.8f, s->top_k = 40, s->top_logprobs = 1; break;
    case 2: s->temperature = 1.0f, s->top_p = 0.9f, s->repetition_penalty = 1.2f, s->presence_penalty = 0.3f,
            s->frequency_penalty = 0.2f; break;
    case 3: s->temperature = 1.2f, s->min_p = 0.05f, s->max_tokens = 5 + i % 7, s->ignore_eos = false; break;
    }
}

static void check_refs(chain *c, const char *what) {
    for (int i = 0; i < N_REF; i++) {
        const chain_req *r = &c->reqs[i];
        bool same = r->n == REF_GEN && !r->failed && r->finish == PX_FINISH_LENGTH;
        for (int j = 0; same && j < REF_GEN; j++) same = r->tokens[j] == refs[i].generated[j];
        CHECK_MSG(same, "%s: reference prompt %d: %d tokens, finish %d, error '%s'", what, i, r->n, r->finish, r->error);
    }
}

static void check_mixed(chain *c, const collector *want, const char *what) {
    for (int i = 0; i < N_MIXED; i++) {
        const chain_req *r = &c->reqs[i];
        bool same = r->n == want[i].n && r->finish == want[i].finish && !r->failed && r->contract_errors == 0;
        for (int j = 0; same && j < r->n && j < HARNESS_MAX_TOKENS; j++)
            same = r->tokens[j] == want[i].tokens[j] && r->logprobs[j] == want[i].logprobs[j];
        CHECK_MSG(same, "%s: mixed request %d: %d tokens (engine %d), finish %d (engine %d), error '%s'", what, i, r->n,
                  want[i].n, r->finish, want[i].finish, r->error);
    }
}

static void run_refs(chain *c, const char *what) {
    chain_reset_requests(c, N_REF);
    px_sampling s;
    px_sampling_defaults(&s);
    s.temperature = 0;
    s.max_tokens = REF_GEN;
    s.ignore_eos = true;
    for (int i = 0; i < N_REF; i++) CHECK(chain_submit(c, i, refs[i].prompt, refs[i].n_prompt, &s) == 0);
    CHECK_MSG(chain_wait_all(c), "%s: reference requests did not finish", what);
    check_refs(c, what);
}

static void run_mixed(chain *c, const req_spec *specs, const collector *want, const char *what) {
    chain_reset_requests(c, N_MIXED);
    for (int i = 0; i < N_MIXED; i++) CHECK(chain_submit(c, i, specs[i].prompt, specs[i].n_prompt, &specs[i].s) == 0);
    CHECK_MSG(chain_wait_all(c), "%s: mixed requests did not finish", what);
    check_mixed(c, want, what);
}

/* The mixed requests again, every third one aborted after 1..5 tokens
 * while the stages run: the others still match the engine. */
static void run_aborts(chain *c, const req_spec *specs, const collector *want, const char *what) {
    chain_reset_requests(c, N_MIXED);
    for (int i = 0; i < N_MIXED; i += 3) c->reqs[i].abort_after = 1 + i % 5;
    for (int i = 0; i < N_MIXED; i++) CHECK(chain_submit(c, i, specs[i].prompt, specs[i].n_prompt, &specs[i].s) == 0);
    CHECK_MSG(chain_wait_all(c), "%s: aborts: requests did not finish", what);
    int aborted = 0;
    for (int i = 0; i < N_MIXED; i++) {
        const chain_req *r = &c->reqs[i];
        if (r->aborted) {
            aborted++;
            CHECK(r->n == r->abort_after);
            continue;
        }
        bool same = r->n == want[i].n && r->finish == want[i].finish && !r->failed;
        for (int j = 0; same && j < r->n; j++) same = r->tokens[j] == want[i].tokens[j];
        CHECK_MSG(same, "%s: aborts: request %d differs from the engine", what, i);
    }
    CHECK_MSG(aborted >= 12, "%s: only %d requests aborted mid-stream", what, aborted);
}

static void check_clean(chain *c, const char *what) {
    CHECK_MSG(chain_wait_empty(c), "%s: stages still hold requests or blocks", what);
    CHECK_MSG(c->push_failures == 0 && c->contract_errors == 0, "%s: %d push failures, %d contract errors", what,
              c->push_failures, c->contract_errors);
    for (int i = 0; i < c->k; i++) {
        px_stage_stats_t s;
        px_stage_stats(c->stages[i], &s);
        CHECK_MSG(s.items_refused == 0 && s.requests_failed == 0,
                  "%s: stage %d refused %llu items, failed %llu requests", what, i,
                  (unsigned long long)s.items_refused, (unsigned long long)s.requests_failed);
        CHECK(s.first == (i == 0) && s.last == (i == c->k - 1));
        CHECK_MSG(s.micro_batches_out == 0, "%s: stage %d still counts %d micro-batches out", what, i,
                  s.micro_batches_out);
        CHECK(s.positions_total > 0 && s.steps_total > 0 && s.busy_seconds > 0);
        if (i == c->k - 1) CHECK(s.tokens_sampled > 0 && s.requests_finished + s.requests_released == N_REF + 2 * N_MIXED);
        else CHECK(s.requests_released == N_REF + 2 * N_MIXED);
    }
}

static void run_chain(const char *dir, int k, bool threaded, const req_spec *specs, const collector *want) {
    char what[64];
    snprintf(what, sizeof what, "%d stage%s, %s", k, k > 1 ? "s" : "", threaded ? "threaded" : "stepped");
    px_engine_options o;
    px_engine_options_defaults(&o);
    o.n_threads = 1;
    o.kv_cache_bytes = 4 << 20;
    o.max_batch_size = 6;
    o.chunked_prefill_size = 3;
    o.max_tokens_per_batch = 16;
    chain c;
    if (chain_open(&c, dir, k, 4, &o, threaded)) {
        CHECK_MSG(false, "%s: cannot open the chain", what);
        return;
    }
    if (threaded) px_stage_set_pipeline_depth(c.stages[0], k); /* as a worker would for a k-stage route */
    run_refs(&c, what);
    run_mixed(&c, specs, want, what);
    run_aborts(&c, specs, want, what);
    check_clean(&c, what);
    printf("%s: ok\n", what);
    chain_close(&c);
}

int main(int argc, char **argv) {
    if (argc < 2) return fprintf(stderr, "usage: %s MODEL_DIR\n", argv[0]), 2;
    px_log_set_level(PX_LOG_WARN);
    if (harness_load_refs(argv[1], refs)) return fprintf(stderr, "cannot load the references\n"), 1;
    px_model *full = px_model_load(argv[1], &(px_load_options){.dtype = -1});
    if (!full) return fprintf(stderr, "%s\n", px_error_get()), 1;
    static req_spec specs[N_MIXED];
    static collector want[N_MIXED];
    for (int i = 0; i < N_MIXED; i++) mixed_spec(i, &specs[i]);
    if (engine_expect(full, specs, N_MIXED, want)) return 1;
    int early_stops = 0;
    for (int i = 0; i < N_MIXED; i++) early_stops += want[i].finish == PX_FINISH_STOP;
    printf("engine: %d of %d mixed requests stop on EOS or a stop id\n", early_stops, N_MIXED);
    CHECK(early_stops >= 5);
    for (int k = 1; k <= 4; k++) {
        run_chain(argv[1], k, true, specs, want);
        run_chain(argv[1], k, false, specs, want);
    }
    for (int i = 0; i < N_MIXED; i++) collector_destroy(&want[i]);
    px_model_free(full);
    return px_test_finish();
}
