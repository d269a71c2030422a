/* test_stage_errors.c - what a pipeline stage does with bad, late, excessive
 * or unlucky input, on the real tiny model (aidreams-260k, 4 layers):
 *
 *   - every kind of malformed item is refused (-1 + px_error), fails its
 *     request with OUT_ERROR and leaves no block in use; later items of the
 *     failed request are dropped quietly;
 *   - out of KV blocks: the request gets OUT_ERROR, others are untouched,
 *     and blocks come back on release;
 *   - RELEASE / RELEASE_ALL free everything, propagate only when asked (and
 *     never from the last stage), and items still in flight are dropped;
 *   - a long item is cut into chunks: sample flag on the last one, sampling
 *     parameters on the first one;
 *   - pipeline depth on the first stage (new work waits while micro-batches
 *     are out, joins a returning one; a lost micro-batch expires) and bursts
 *     (`more`: the step waits for the burst's end, or a short timeout);
 *   - failover: requests interrupted mid-generation (their stages freed) and
 *     re-prefilled on another chain from prompt + generated tokens under new
 *     ids finish exactly as uninterrupted runs (greedy and seeded);
 *   - reloading another slice in the same process (free + load + create);
 *   - 20,000 random garbage items into a 2-stage chain: no crash (run it
 *     under ASan/UBSan), and RELEASE_ALL leaves nothing behind.
 *
 *   test_stage_errors MODEL_DIR
 */
#include "stage_chain.h"

#define MAX_EVENTS 256

typedef struct {
    int n;
    px_stage_out_kind kind[MAX_EVENTS];
    uint64_t id[MAX_EVENTS];
    px_stage_item item[MAX_EVENTS]; /* pointers not kept */
    bool had_sampling[MAX_EVENTS];
    char error[MAX_EVENTS][128];
} recorder;

static void record_cb(void *user, const px_stage_event *ev) {
    recorder *rec = user;
    if (rec->n == MAX_EVENTS) return;
    int i = rec->n++;
    rec->kind[i] = ev->kind;
    rec->id[i] = ev->request_id;
    rec->item[i] = ev->item;
    rec->had_sampling[i] = ev->item.sampling != NULL;
    rec->item[i].tokens = NULL, rec->item[i].hidden = NULL, rec->item[i].sampling = NULL;
    snprintf(rec->error[i], sizeof rec->error[i], "%s", ev->kind == PX_STAGE_OUT_ERROR ? ev->error : "");
}

static int count_kind(const recorder *rec, px_stage_out_kind kind, uint64_t id) {
    int n = 0;
    for (int i = 0; i < rec->n; i++) n += rec->kind[i] == kind && rec->id[i] == id;
    return n;
}

static const char *g_dir;
static ref_case refs[N_REF];
static float g_hidden[64 * 64]; /* rows of plausible hidden states for stages after the first */

static px_model *load_slice(int start, int end) {
    px_model *m = px_model_load(g_dir, &(px_load_options){.start = start, .end = end, .dtype = -1});
    if (!m) fprintf(stderr, "load [%d, %d): %s\n", start, end, px_error_get());
    return m;
}

static px_stage *make_stage(px_model *m, recorder *rec, int block_size, int64_t kv_bytes, int chunk) {
    px_engine_options o;
    px_engine_options_defaults(&o);
    o.n_threads = 1;
    o.block_size = block_size;
    o.kv_cache_bytes = kv_bytes;
    o.chunked_prefill_size = chunk;
    memset(rec, 0, sizeof *rec);
    px_stage *st = px_stage_create(m, &o, record_cb, rec);
    if (!st) fprintf(stderr, "stage: %s\n", px_error_get());
    return st;
}

static px_stage_stats_t stats_of(px_stage *st) {
    px_stage_stats_t s;
    px_stage_stats(st, &s);
    return s;
}

static px_sampling greedy(int max_tokens) {
    px_sampling s;
    px_sampling_defaults(&s);
    s.temperature = 0;
    s.max_tokens = max_tokens;
    s.ignore_eos = true;
    return s;
}

/* A valid first item: positions [0, n) of the first reference prompt. */
static px_stage_item first_item(uint64_t id, int n, bool sample, const px_sampling *s) {
    return (px_stage_item){.kind = PX_STAGE_FORWARD, .request_id = id, .pos = 0, .n = n, .tokens = refs[0].prompt,
                           .hidden = g_hidden, .n_hidden = (int64_t)n * 64, .sample = sample, .sampling = s};
}

/* Pushes a bad item: refused, an error message, OUT_ERROR for its id, nothing left in use. */
static void expect_refused(px_stage *st, recorder *rec, const px_stage_item *it, const char *what) {
    px_error_clear();
    int rc = px_stage_push(st, it);
    const char *msg = px_error_get();
    CHECK_MSG(rc == -1 && msg && *msg, "%s: accepted", what);
    px_stage_step(st);
    if (it && it->kind == PX_STAGE_FORWARD && it->request_id)
        CHECK_MSG(count_kind(rec, PX_STAGE_OUT_ERROR, it->request_id) == 1, "%s: no OUT_ERROR", what);
    px_stage_stats_t s = stats_of(st);
    CHECK_MSG(s.kv_blocks_used == 0 && s.requests == 0 && s.pending_positions == 0, "%s: %d blocks, %d requests left",
              what, s.kv_blocks_used, s.requests);
}

/* ---- malformed items ---- */

static void test_malformed_first(void) {
    px_model *m = load_slice(0, 2);
    recorder rec;
    px_stage *st = make_stage(m, &rec, 16, 1 << 20, 512);
    px_sampling s = greedy(8), bad_s = greedy(8);
    bad_s.temperature = -1;
    int32_t bad_ids[1] = {9999};
    px_sampling bad_bias = greedy(8);
    float bias_v[1] = {1};
    bad_bias.n_logit_bias = 1, bad_bias.logit_bias_ids = bad_ids, bad_bias.logit_bias_values = bias_v;
    int32_t toks[200] = {0};
    uint64_t id = 100;
    px_stage_item it;

    expect_refused(st, &rec, NULL, "NULL item");
    it = first_item(++id, 3, true, &s), it.kind = 99;
    expect_refused(st, &rec, &it, "unknown kind");
    it = first_item(0, 3, true, &s);
    expect_refused(st, &rec, &it, "id 0");
    it = first_item(++id, 0, true, &s);
    expect_refused(st, &rec, &it, "n = 0");
    it = first_item(++id, -5, true, &s);
    expect_refused(st, &rec, &it, "n < 0");
    it = first_item(++id, 3, true, &s), it.n = 129, it.tokens = toks;
    expect_refused(st, &rec, &it, "n beyond the context");
    it = first_item(++id, 3, true, &s), it.pos = -1;
    expect_refused(st, &rec, &it, "pos < 0");
    it = first_item(++id, 3, true, &s), it.pos = 127;
    expect_refused(st, &rec, &it, "pos + n beyond the context");
    it = first_item(++id, 3, true, &s), it.pos = INT32_MAX;
    expect_refused(st, &rec, &it, "pos near INT32_MAX");
    it = first_item(++id, 3, true, &s), it.tokens = NULL;
    expect_refused(st, &rec, &it, "no tokens");
    it = first_item(++id, 1, true, &s), it.tokens = bad_ids;
    expect_refused(st, &rec, &it, "token outside the vocabulary");
    int32_t neg[1] = {-1};
    it = first_item(++id, 1, true, &s), it.tokens = neg;
    expect_refused(st, &rec, &it, "negative token");
    it = first_item(++id, 3, true, NULL);
    expect_refused(st, &rec, &it, "first item without sampling");
    it = first_item(++id, 3, true, &bad_s);
    expect_refused(st, &rec, &it, "invalid temperature");
    it = first_item(++id, 3, true, &bad_bias);
    expect_refused(st, &rec, &it, "logit bias id outside the vocabulary");
    it = first_item(++id, 3, true, &s), it.n_prompt = -3;
    expect_refused(st, &rec, &it, "negative n_prompt");
    it = first_item(++id, 3, true, &s), it.n_prompt = 128;
    expect_refused(st, &rec, &it, "n_prompt = context");
    it = first_item(++id, 3, true, &s), it.n_prompt = 5;
    expect_refused(st, &rec, &it, "sample inside the prompt");
    it = first_item(++id, 3, true, &s), it.pos = 5;
    expect_refused(st, &rec, &it, "unknown request at position 5");

    /* order within a live request: a gap, an overlap, an item while a sample is pending */
    const char *what[3] = {"position gap", "position overlap", "item while a sample is pending"};
    for (int k = 0; k < 3; k++) {
        uint64_t rid = ++id;
        it = first_item(rid, 3, k == 2, &s);
        CHECK(px_stage_push(st, &it) == 0);
        CHECK(stats_of(st).kv_blocks_used == 1);
        px_stage_item next = first_item(rid, 2, false, NULL);
        next.pos = k == 0 ? 5 : k == 1 ? 2 : 3;
        expect_refused(st, &rec, &next, what[k]);
        uint64_t dropped = stats_of(st).items_dropped;
        next.pos = 3; /* would have been fine: the request is gone, so it is dropped quietly */
        CHECK(px_stage_push(st, &next) == 0 && stats_of(st).items_dropped == dropped + 1);
    }
    px_stage_stats_t sst = stats_of(st);
    CHECK_MSG(sst.items_refused == 21 && sst.requests_failed == 19, "refused %llu, failed %llu",
              (unsigned long long)sst.items_refused, (unsigned long long)sst.requests_failed);
    px_stage_free(st);
    px_model_free(m);
}

static void test_malformed_later(void) {
    px_model *m = load_slice(2, 4);
    recorder rec;
    px_stage *st = make_stage(m, &rec, 16, 1 << 20, 512);
    px_sampling s = greedy(8);
    px_stage_item it = first_item(1, 3, true, &s);
    it.hidden = NULL;
    expect_refused(st, &rec, &it, "no hidden states");
    it = first_item(2, 3, true, &s), it.n_hidden = 3 * 64 - 1;
    expect_refused(st, &rec, &it, "short hidden states");
    it = first_item(3, 3, true, &s), it.n_hidden = -1;
    expect_refused(st, &rec, &it, "negative hidden size");
    it = first_item(4, 3, true, &s); /* now a good one: the last stage samples a token */
    CHECK(px_stage_push(st, &it) == 0);
    CHECK(px_stage_step(st) == 3);
    CHECK(count_kind(&rec, PX_STAGE_OUT_TOKEN, 4) == 1);
    CHECK(rec.item[rec.n - 1].kind == 0); /* a token event carries no item */
    CHECK(px_stage_push(st, &(px_stage_item){.kind = PX_STAGE_RELEASE, .request_id = 4, .propagate = true}) == 0);
    px_stage_step(st);
    CHECK(count_kind(&rec, PX_STAGE_OUT_RELEASE, 4) == 0); /* the last stage has nobody to tell */
    CHECK(stats_of(st).kv_blocks_used == 0 && stats_of(st).requests == 0);
    CHECK(px_stage_push(st, &(px_stage_item){.kind = PX_STAGE_RELEASE, .request_id = 0}) == -1);
    px_stage_free(st);
    px_model_free(m);
}

/* ---- KV blocks ---- */

static void test_out_of_blocks(void) {
    px_model *m = load_slice(0, 2);
    recorder rec;
    /* 2 layers x 4 tokens x kv_dim 64 x f32 x (K, V) = 4096 bytes a block: 4 blocks, 16 tokens */
    px_stage *st = make_stage(m, &rec, 4, 4 * 4096, 512);
    px_stage_stats_t s0 = stats_of(st);
    CHECK(s0.kv_blocks_total == 4 && s0.context_length == 16);
    px_sampling s = greedy(4);
    int32_t toks[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    px_stage_item a = first_item(1, 10, false, &s);
    a.tokens = toks;
    CHECK(px_stage_push(st, &a) == 0 && stats_of(st).kv_blocks_used == 3);
    px_stage_item b = first_item(2, 8, false, &s);
    b.tokens = toks;
    CHECK(px_stage_push(st, &b) == -1 && strstr(px_error_get(), "out of KV cache blocks"));
    px_stage_step(st);
    CHECK(count_kind(&rec, PX_STAGE_OUT_ERROR, 2) == 1 && stats_of(st).kv_blocks_used == 3);
    CHECK(count_kind(&rec, PX_STAGE_OUT_FORWARD, 1) == 1); /* request 1 is untouched */
    px_stage_item a2 = {.kind = PX_STAGE_FORWARD, .request_id = 1, .pos = 10, .n = 3, .tokens = toks, .sample = true};
    CHECK(px_stage_push(st, &a2) == 0 && stats_of(st).kv_blocks_used == 4);
    px_stage_item c = first_item(3, 1, false, &s);
    CHECK(px_stage_push(st, &c) == -1);
    px_stage_step(st);
    CHECK(count_kind(&rec, PX_STAGE_OUT_ERROR, 3) == 1 && count_kind(&rec, PX_STAGE_OUT_FORWARD, 1) == 2);
    CHECK(px_stage_push(st, &(px_stage_item){.kind = PX_STAGE_RELEASE, .request_id = 1}) == 0);
    px_stage_step(st);
    CHECK(stats_of(st).kv_blocks_used == 0);
    px_stage_item d = first_item(4, 8, true, &s);
    d.tokens = toks;
    CHECK(px_stage_push(st, &d) == 0 && px_stage_step(st) == 8 && count_kind(&rec, PX_STAGE_OUT_FORWARD, 4) == 1);
    px_stage_free(st); /* frees request 4's blocks without events */
    px_model_free(m);
}

/* ---- release, chunking ---- */

static void test_release_and_chunks(void) {
    px_model *m = load_slice(0, 2);
    recorder rec;
    px_stage *st = make_stage(m, &rec, 16, 1 << 20, 2);
    px_sampling s = greedy(4);
    px_stage_item it = first_item(1, 5, true, &s);
    CHECK(px_stage_push(st, &it) == 0);
    while (px_stage_step(st) > 0) {}
    CHECK(count_kind(&rec, PX_STAGE_OUT_FORWARD, 1) == 3);
    int sizes[3] = {2, 2, 1}, pos = 0;
    for (int i = 0; i < 3 && rec.n == 3; i++) {
        CHECK(rec.item[i].pos == pos && rec.item[i].n == sizes[i] && rec.item[i].n_hidden == sizes[i] * 64);
        CHECK(rec.item[i].sample == (i == 2) && rec.had_sampling[i] == (i == 0));
        CHECK(rec.item[i].n_prompt == (i == 0 ? 5 : 0));
        pos += sizes[i];
    }
    CHECK(px_stage_push(st, &(px_stage_item){.kind = PX_STAGE_RELEASE, .request_id = 1, .propagate = true}) == 0);
    px_stage_step(st);
    CHECK(count_kind(&rec, PX_STAGE_OUT_RELEASE, 1) == 1 && stats_of(st).kv_blocks_used == 0);
    px_stage_item late = {.kind = PX_STAGE_FORWARD, .request_id = 1, .pos = 5, .n = 1, .tokens = refs[0].prompt, .sample = true};
    CHECK(px_stage_push(st, &late) == 0 && stats_of(st).items_dropped == 1 && stats_of(st).requests == 0);

    CHECK(px_stage_push(st, &(px_stage_item){.kind = PX_STAGE_RELEASE, .request_id = 77}) == 0); /* unknown: fine */
    CHECK(px_stage_push(st, &(px_stage_item){.kind = PX_STAGE_RELEASE, .request_id = 78, .propagate = true}) == 0);
    px_stage_step(st);
    CHECK(count_kind(&rec, PX_STAGE_OUT_RELEASE, 77) == 0 && count_kind(&rec, PX_STAGE_OUT_RELEASE, 78) == 1);

    for (uint64_t id = 10; id < 13; id++) {
        it = first_item(id, 4, false, &s);
        CHECK(px_stage_push(st, &it) == 0);
    }
    CHECK(stats_of(st).requests == 3 && stats_of(st).kv_blocks_used == 3);
    CHECK(px_stage_push(st, &(px_stage_item){.kind = PX_STAGE_RELEASE_ALL, .propagate = true}) == 0);
    px_stage_step(st);
    px_stage_stats_t sst = stats_of(st);
    CHECK(sst.requests == 0 && sst.kv_blocks_used == 0 && sst.pending_positions == 0 && sst.idle);
    bool saw_all = false;
    for (int i = 0; i < rec.n; i++) saw_all |= rec.kind[i] == PX_STAGE_OUT_RELEASE && rec.item[i].kind == PX_STAGE_RELEASE_ALL;
    CHECK(saw_all);
    CHECK(px_stage_start(st) == 0 && px_stage_step(st) == -1 && px_stage_start(st) == -1);
    px_stage_free(st);
    px_model_free(m);
}

/* ---- pipeline depth and bursts (first stage) ---- */

/* Requests that start together split into `depth` equal micro-batches, and
 * each returning micro-batch runs as one step while the other is out. */
static void test_depth_splits_micro_batches(void) {
    px_model *m = load_slice(0, 2);
    recorder rec;
    px_stage *st = make_stage(m, &rec, 16, 1 << 20, 512);
    px_stage_set_pipeline_depth(st, 2);
    px_sampling s = greedy(8);
    for (uint64_t id = 1; id <= 5; id++) {
        px_stage_item it = first_item(id, 3, true, &s);
        it.more = id < 5;
        CHECK(px_stage_push(st, &it) == 0);
    }
    CHECK(px_stage_step(st) == 9); /* ceil(5 / 2) = 3 requests of 3 positions */
    CHECK(px_stage_step(st) == 6); /* the other 2: a second micro-batch */
    CHECK(stats_of(st).micro_batches_out == 2);
    CHECK(px_stage_step(st) == 0); /* held: both are out */
    bool in_first[6] = {0};
    int n_first = 0;
    for (int i = 0; i < rec.n && n_first < 3; i++)
        if (rec.kind[i] == PX_STAGE_OUT_FORWARD) in_first[rec.id[i]] = true, n_first++;
    CHECK(n_first == 3);
    int32_t tok = 5;
    for (uint64_t id = 1; id <= 5; id++) { /* the first micro-batch's tokens come back */
        if (!in_first[id]) continue;
        px_stage_item next = {.kind = PX_STAGE_FORWARD, .request_id = id, .pos = 3, .n = 1, .tokens = &tok, .sample = true};
        CHECK(px_stage_push(st, &next) == 0);
    }
    int before = rec.n;
    CHECK(px_stage_step(st) == 3); /* exactly that micro-batch, as one step */
    bool same = rec.n == before + 3;
    for (int i = before; i < rec.n; i++) same = same && rec.kind[i] == PX_STAGE_OUT_FORWARD && in_first[rec.id[i]];
    CHECK(same);
    CHECK(px_stage_step(st) == 0); /* the second is still out */
    px_stage_free(st);
    px_model_free(m);
}


static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void test_depth_and_bursts(void) {
    px_model *m = load_slice(0, 2);
    recorder rec;
    px_stage *st = make_stage(m, &rec, 16, 1 << 20, 512);
    px_stage_set_pipeline_depth(st, 1);
    px_sampling s = greedy(8);
    px_stage_item a = first_item(1, 4, true, &s), b = first_item(2, 3, true, &s);
    CHECK(px_stage_push(st, &a) == 0 && px_stage_step(st) == 4);
    CHECK(stats_of(st).micro_batches_out == 1 && stats_of(st).pipeline_depth == 1);
    CHECK(px_stage_push(st, &b) == 0 && px_stage_step(st) == 0); /* held: one micro-batch is out */
    CHECK(!stats_of(st).idle);
    int32_t tok = 5;
    px_stage_item a_next = {.kind = PX_STAGE_FORWARD, .request_id = 1, .pos = 4, .n = 1, .tokens = &tok, .sample = true};
    CHECK(px_stage_push(st, &a_next) == 0);
    CHECK(px_stage_step(st) == 4); /* a's token and b's prompt in one step */
    CHECK(stats_of(st).micro_batches_out == 1);
    CHECK(px_stage_push(st, &(px_stage_item){.kind = PX_STAGE_RELEASE, .request_id = 1}) == 0);
    px_stage_item c = first_item(3, 2, true, &s);
    CHECK(px_stage_push(st, &c) == 0 && px_stage_step(st) == 0); /* b is still out */
    sleep_ms(100); /* the micro-batch expires (3 x the round trip measured above, at least 20 ms) */
    CHECK(px_stage_step(st) == 2 && stats_of(st).micro_batches_out == 1);
    CHECK(px_stage_push(st, &(px_stage_item){.kind = PX_STAGE_RELEASE_ALL}) == 0);
    px_stage_step(st);
    CHECK(stats_of(st).micro_batches_out == 0 && stats_of(st).requests == 0);

    px_stage_set_pipeline_depth(st, 0);
    px_stage_item d = first_item(4, 3, false, &s), e = first_item(5, 2, false, &s), f = first_item(6, 1, false, &s);
    d.more = true;
    CHECK(px_stage_push(st, &d) == 0 && px_stage_step(st) == 0); /* the burst is still arriving */
    CHECK(px_stage_push(st, &e) == 0 && px_stage_step(st) == 5);  /* d and e together */
    f.more = true;                                                 /* a burst whose end never comes */
    CHECK(px_stage_push(st, &f) == 0);
    sleep_ms(3 * PX_STAGE_BURST_WAIT_MS);
    CHECK(px_stage_step(st) == 1);
    bool more_ok = true; /* the two outputs of the d+e step: the first says another follows */
    for (int i = 0; i < rec.n; i++)
        if (rec.kind[i] == PX_STAGE_OUT_FORWARD && (rec.id[i] == 4 || rec.id[i] == 5))
            more_ok = more_ok && rec.item[i].more == (rec.id[i] == 4);
    CHECK(more_ok);
    px_stage_free(st);
    px_model_free(m);
}

/* ---- failover: re-prefill from prompt + generated tokens ---- */

#define FO_REQS 8
#define FO_TOKENS 20

static px_sampling failover_sampling(int i) {
    px_sampling s = greedy(FO_TOKENS);
    if (i % 2) {
        s.temperature = 0.9f, s.top_k = 50, s.has_seed = true, s.seed = 42 + (uint64_t)i;
        s.presence_penalty = 0.5f, s.repetition_penalty = 1.1f;
    }
    return s;
}

static void test_failover(void) {
    px_engine_options o;
    px_engine_options_defaults(&o);
    o.n_threads = 1;
    o.kv_cache_bytes = 4 << 20;
    o.chunked_prefill_size = 4;
    px_sampling ss[FO_REQS];
    for (int i = 0; i < FO_REQS; i++) ss[i] = failover_sampling(i);

    chain whole; /* uninterrupted */
    if (chain_open(&whole, g_dir, 2, 4, &o, false)) {
        CHECK(false);
        return;
    }
    chain_reset_requests(&whole, FO_REQS);
    for (int i = 0; i < FO_REQS; i++) chain_submit(&whole, i, refs[i % N_REF].prompt, refs[i % N_REF].n_prompt, &ss[i]);
    CHECK(chain_wait_all(&whole));

    chain a; /* interrupted: a few steps, then its stages die */
    if (chain_open(&a, g_dir, 3, 4, &o, false)) {
        CHECK(false);
        return;
    }
    chain_reset_requests(&a, FO_REQS);
    for (int i = 0; i < FO_REQS; i++) chain_submit(&a, i, refs[i % N_REF].prompt, refs[i % N_REF].n_prompt, &ss[i]);
    for (int round = 0; round < 200 && a.reqs[0].n < 6; round++) /* until the first request has 6 tokens */
        for (int k = 0; k < a.k; k++) px_stage_step(a.stages[k]);
    int partial = 0;
    for (int i = 0; i < FO_REQS; i++) partial += a.reqs[i].n > 0 && a.reqs[i].n < FO_TOKENS;
    CHECK_MSG(partial >= FO_REQS / 2, "only %d requests were interrupted mid-way", partial);

    chain b; /* the re-route: new ids, prompt + generated so far, n_prompt = the original prompt */
    if (chain_open(&b, g_dir, 2, 4, &o, true)) {
        CHECK(false);
        return;
    }
    chain_reset_requests(&b, FO_REQS);
    for (int i = 0; i < FO_REQS; i++) { /* the recorder continues each stream */
        const chain_req *got = &a.reqs[i];
        b.reqs[i].n = got->n;
        memcpy(b.reqs[i].tokens, got->tokens, (size_t)got->n * sizeof *got->tokens);
        b.reqs[i].next_pos = refs[i % N_REF].n_prompt + got->n;
        if (got->n == FO_TOKENS) b.reqs[i].done = true, b.reqs[i].finish = got->finish, b.n_done++;
    }
    for (int i = 0; i < FO_REQS; i++) {
        const ref_case *rc = &refs[i % N_REF];
        const chain_req *got = &a.reqs[i];
        if (got->n == FO_TOKENS) continue; /* it had completed */
        int32_t seq[256];
        memcpy(seq, rc->prompt, (size_t)rc->n_prompt * sizeof *seq);
        memcpy(seq + rc->n_prompt, got->tokens, (size_t)got->n * sizeof *seq);
        px_stage_item it = {.kind = PX_STAGE_FORWARD, .request_id = b.id_base + (uint64_t)i + 1, .pos = 0,
                            .n = rc->n_prompt + got->n, .tokens = seq, .sample = true, .sampling = &ss[i],
                            .n_prompt = rc->n_prompt};
        CHECK(px_stage_push(b.stages[0], &it) == 0);
    }
    chain_close(&a);
    CHECK(chain_wait_all(&b));
    for (int i = 0; i < FO_REQS; i++) {
        bool same = b.reqs[i].n == FO_TOKENS && whole.reqs[i].n == FO_TOKENS && b.reqs[i].finish == PX_FINISH_LENGTH &&
                    b.reqs[i].contract_errors == 0;
        for (int j = 0; same && j < FO_TOKENS; j++) same = b.reqs[i].tokens[j] == whole.reqs[i].tokens[j];
        CHECK_MSG(same, "failover request %d (%s): %d tokens, differs from the uninterrupted run", i,
                  i % 2 ? "seeded" : "greedy", b.reqs[i].n);
    }
    CHECK(chain_wait_empty(&b));
    chain_close(&b);
    chain_close(&whole);
}

/* ---- reloading another slice in the same process ---- */

static void test_reload(void) {
    px_engine_options o;
    px_engine_options_defaults(&o);
    o.n_threads = 1;
    o.kv_cache_bytes = 2 << 20;
    chain c;
    if (chain_open(&c, g_dir, 2, 4, &o, true)) {
        CHECK(false);
        return;
    }
    int bounds[3][3] = {{0, 1, 4}, {0, 3, 4}, {0, 2, 4}};
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 2; i++) { /* rebalancing: free, load the new slice, create, start */
            px_stage_free(c.stages[i]);
            px_model_free(c.models[i]);
            c.models[i] = load_slice(bounds[round][i], bounds[round][i + 1]);
            c.stages[i] = px_stage_create(c.models[i], &o, chain_cb, &c.links[i]);
            CHECK(c.stages[i] && px_stage_start(c.stages[i]) == 0);
        }
        chain_reset_requests(&c, N_REF);
        px_sampling s = greedy(REF_GEN);
        for (int i = 0; i < N_REF; i++) CHECK(chain_submit(&c, i, refs[i].prompt, refs[i].n_prompt, &s) == 0);
        CHECK(chain_wait_all(&c));
        for (int i = 0; i < N_REF; i++)
            CHECK_MSG(c.reqs[i].n == REF_GEN && !memcmp(c.reqs[i].tokens, refs[i].generated, sizeof refs[i].generated),
                      "reload round %d: reference %d differs", round, i);
        CHECK(chain_wait_empty(&c));
    }
    chain_close(&c);
}

/* ---- random garbage ---- */

static uint64_t rnd(uint64_t *x) {
    *x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17;
    return *x;
}

static void random_item(uint64_t *x, px_stage_item *it, int32_t *toks, const px_sampling *good, const px_sampling *bad) {
    memset(it, 0, sizeof *it);
    it->kind = (px_stage_kind)(rnd(x) % 10 < 8 ? PX_STAGE_FORWARD : rnd(x) % 5);
    it->request_id = rnd(x) % 12;
    it->pos = (int32_t)(rnd(x) % 48) - 2;
    if (rnd(x) % 3 == 0) it->pos = 0;
    it->n = (int32_t)(rnd(x) % 22) - 1;
    int n = it->n > 0 ? it->n : 0;
    for (int i = 0; i < 64; i++) toks[i] = rnd(x) % 50 == 0 ? (int32_t)(rnd(x) % 1100) - 50 : (int32_t)(rnd(x) % 512);
    it->tokens = rnd(x) % 20 ? toks : NULL;
    it->hidden = rnd(x) % 20 ? g_hidden : NULL;
    it->n_hidden = (int64_t)n * 64 + (rnd(x) % 10 == 0 ? (int64_t)(rnd(x) % 5) - 2 : 0);
    it->sample = rnd(x) % 2;
    uint64_t k = rnd(x) % 10;
    it->sampling = k < 7 ? good : k < 9 ? bad : NULL;
    it->n_prompt = rnd(x) % 4 == 0 ? (int32_t)(rnd(x) % 40) - 3 : 0;
    it->propagate = rnd(x) % 2;
}

static void test_garbage(void) {
    px_engine_options o;
    px_engine_options_defaults(&o);
    o.n_threads = 1;
    o.block_size = 4;
    o.kv_cache_bytes = 96 * 1024; /* a small pool: out-of-blocks happens too */
    o.chunked_prefill_size = 5;
    chain c;
    if (chain_open(&c, g_dir, 2, 4, &o, false)) {
        CHECK(false);
        return;
    }
    chain_reset_requests(&c, 0);
    c.quiet = true;
    px_sampling good = greedy(6), bad = greedy(6);
    bad.top_p = 7;
    int32_t toks[64];
    uint64_t x = 0x9e3779b97f4a7c15ull;
    int accepted = 0, refused = 0;
    for (int i = 0; i < 20000; i++) {
        px_stage_item it;
        random_item(&x, &it, toks, &good, &bad);
        int target = (int)(rnd(&x) % 2);
        if (px_stage_push(c.stages[target], &it) == 0) accepted++;
        else refused++;
        if (rnd(&x) % 4 == 0) px_stage_step(c.stages[rnd(&x) % 2]);
    }
    chain_drain(&c);
    printf("garbage: %d accepted, %d refused\n", accepted, refused);
    CHECK(accepted > 1000 && refused > 1000);
    for (int i = 0; i < 2; i++) CHECK(px_stage_push(c.stages[i], &(px_stage_item){.kind = PX_STAGE_RELEASE_ALL}) == 0);
    chain_drain(&c);
    for (int i = 0; i < 2; i++) {
        px_stage_stats_t s = stats_of(c.stages[i]);
        CHECK_MSG(s.requests == 0 && s.kv_blocks_used == 0 && s.pending_positions == 0,
                  "garbage: stage %d keeps %d requests, %d blocks", i, s.requests, s.kv_blocks_used);
    }
    chain_close(&c);
}

int main(int argc, char **argv) {
    if (argc < 2) return fprintf(stderr, "usage: %s MODEL_DIR\n", argv[0]), 2;
    g_dir = argv[1];
    px_log_set_level(PX_LOG_ERROR);
    if (harness_load_refs(g_dir, refs)) return fprintf(stderr, "cannot load the references\n"), 1;
    uint64_t x = 12345;
    for (size_t i = 0; i < PX_ARRAY_LEN(g_hidden); i++) g_hidden[i] = (float)((int)(rnd(&x) % 2001) - 1000) / 1000.0f;
    test_malformed_first();
    test_malformed_later();
    test_out_of_blocks();
    test_release_and_chunks();
    test_depth_and_bursts();
    test_depth_splits_micro_batches();
    test_failover();
    test_reload();
    test_garbage();
    return px_test_finish();
}
