/* stage_chain.h - helpers for the pipeline-stage tests: an in-process chain
 * of k stages over layer slices of one model, wired by callbacks exactly as
 * the net layer wires workers (OUT_FORWARD / OUT_RELEASE of stage i pushed
 * into stage i+1; the last stage's token recorded, as the scheduler would,
 * and fed back into stage 0 for the next step, or a propagating RELEASE
 * pushed into stage 0 when it is final), plus the single-node engine run
 * the chain is compared with.
 *
 * A chain runs threaded (px_stage_start on every stage) or stepped (the test
 * thread calls px_stage_step on each stage in turn until nothing moves).
 * Request ids are never reused: each batch of requests (chain_reset_requests)
 * gets ids id_base + 1 .. id_base + n, recorded in reqs[0, n); the recorder also checks the
 * event contract (positions count up by one, no event after the final one,
 * completion_tokens counts tokens). A request with abort_after is aborted
 * by the "scheduler" right after that many tokens: it stops listening and
 * pushes a propagating RELEASE into stage 0, racing with the token item the
 * last stage already fed back.
 */
#ifndef PX_STAGE_CHAIN_H
#define PX_STAGE_CHAIN_H

#include "engine_harness.h"
#include "stage.h"
#include <errno.h>
#include <time.h>

#define CHAIN_MAX_STAGES 8

typedef struct {
    int32_t tokens[HARNESS_MAX_TOKENS];
    float logprobs[HARNESS_MAX_TOKENS];
    int n;
    bool done, failed, aborted;
    int abort_after; /* > 0: the scheduler aborts the request after this many tokens */
    px_finish_reason finish;
    int contract_errors, next_pos;
    char error[256];
} chain_req;

typedef struct chain chain;

typedef struct {
    chain *c;
    int index;
} chain_link;

struct chain {
    int k;
    px_model *models[CHAIN_MAX_STAGES];
    px_stage *stages[CHAIN_MAX_STAGES];
    chain_link links[CHAIN_MAX_STAGES];
    bool threaded;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    chain_req *reqs;
    int n_reqs, n_done;
    uint64_t id_base, next_id_base;
    int push_failures, contract_errors, n_released_out;
    bool quiet; /* do not print refused pushes (garbage tests) */
};

static inline chain_req *chain_req_of(chain *c, uint64_t id) {
    if (id <= c->id_base || id > c->id_base + (uint64_t)c->n_reqs) return NULL;
    return &c->reqs[id - c->id_base - 1];
}

static inline void chain_push(chain *c, int stage, const px_stage_item *it) {
    if (px_stage_push(c->stages[stage], it)) {
        pthread_mutex_lock(&c->mu);
        c->push_failures++;
        pthread_mutex_unlock(&c->mu);
        if (!c->quiet) fprintf(stderr, "chain: push into stage %d refused: %s\n", stage, px_error_get());
    }
}

/* Records a token; true when the scheduler aborts the request now (abort_after). */
static inline bool chain_record_token(chain *c, const px_stage_event *ev) {
    bool abort_now = false;
    pthread_mutex_lock(&c->mu);
    chain_req *r = chain_req_of(c, ev->request_id);
    if (r && r->aborted) { /* late tokens of an aborted request: the scheduler ignores them too */
        pthread_mutex_unlock(&c->mu);
        return false;
    }
    if (!r || r->done || ev->token_pos != r->next_pos || ev->token.request_id != ev->request_id) {
        c->contract_errors++;
        pthread_mutex_unlock(&c->mu);
        return false;
    }
    if (r->n < HARNESS_MAX_TOKENS) r->tokens[r->n] = ev->token.token, r->logprobs[r->n] = ev->token.logprob;
    r->n++;
    r->next_pos++;
    if (ev->token.completion_tokens != r->n) r->contract_errors++;
    if (ev->token.finish != PX_FINISH_NONE) {
        r->done = true;
        r->finish = ev->token.finish;
        c->n_done++;
        pthread_cond_broadcast(&c->cv);
    } else if (r->abort_after && r->n == r->abort_after) {
        r->done = r->aborted = abort_now = true;
        r->finish = PX_FINISH_ABORT;
        c->n_done++;
        pthread_cond_broadcast(&c->cv);
    }
    pthread_mutex_unlock(&c->mu);
    return abort_now;
}

static inline void chain_record_error(chain *c, const px_stage_event *ev) {
    pthread_mutex_lock(&c->mu);
    chain_req *r = chain_req_of(c, ev->request_id);
    if (r && !r->done) {
        r->done = r->failed = true;
        r->finish = PX_FINISH_ERROR;
        snprintf(r->error, sizeof r->error, "%s", ev->error ? ev->error : "(null)");
        c->n_done++;
        pthread_cond_broadcast(&c->cv);
    }
    pthread_mutex_unlock(&c->mu);
}

static inline void chain_cb(void *user, const px_stage_event *ev) {
    chain_link *l = user;
    chain *c = l->c;
    switch (ev->kind) {
    case PX_STAGE_OUT_FORWARD:
    case PX_STAGE_OUT_RELEASE:
        if (l->index + 1 >= c->k) {
            pthread_mutex_lock(&c->mu);
            c->contract_errors++;
            pthread_mutex_unlock(&c->mu);
        } else {
            chain_push(c, l->index + 1, &ev->item);
        }
        if (ev->kind == PX_STAGE_OUT_RELEASE) {
            pthread_mutex_lock(&c->mu);
            c->n_released_out++;
            pthread_mutex_unlock(&c->mu);
        }
        break;
    case PX_STAGE_OUT_TOKEN: {
        bool abort_now = chain_record_token(c, ev);
        px_stage_item next = px_stage_token_item(ev);
        px_stage_item rel = {.kind = PX_STAGE_RELEASE, .request_id = ev->request_id, .propagate = true, .more = ev->more};
        chain_push(c, 0, ev->token.finish == PX_FINISH_NONE ? &next : &rel);
        if (abort_now) { /* the scheduler's abort races with the token the last stage already sent on */
            rel.more = false;
            chain_push(c, 0, &rel);
        }
        break;
    }
    case PX_STAGE_OUT_ERROR: chain_record_error(c, ev); break;
    }
}

/* Splits n_layers into k slices as evenly as possible. */
static inline int chain_open(chain *c, const char *dir, int k, int n_layers, const px_engine_options *opt,
                             bool threaded) {
    memset(c, 0, sizeof *c);
    c->k = k;
    c->threaded = threaded;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    for (int i = 0; i < k; i++) {
        px_load_options lo = {.start = n_layers * i / k, .end = n_layers * (i + 1) / k, .dtype = -1};
        c->models[i] = px_model_load(dir, &lo);
        c->links[i] = (chain_link){c, i};
        c->stages[i] = c->models[i] ? px_stage_create(c->models[i], opt, chain_cb, &c->links[i]) : NULL;
        if (!c->stages[i]) return fprintf(stderr, "chain: stage %d: %s\n", i, px_error_get()), -1;
    }
    for (int i = 0; threaded && i < k; i++)
        if (px_stage_start(c->stages[i])) return -1;
    return 0;
}

static inline void chain_close(chain *c) {
    for (int i = 0; i < c->k; i++) px_stage_free(c->stages[i]);
    for (int i = 0; i < c->k; i++) px_model_free(c->models[i]);
    free(c->reqs);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
}

static inline void chain_reset_requests(chain *c, int n) {
    pthread_mutex_lock(&c->mu);
    free(c->reqs);
    c->reqs = px_calloc((size_t)n, sizeof *c->reqs);
    c->n_reqs = n;
    c->n_done = 0;
    c->id_base = c->next_id_base;
    c->next_id_base += (uint64_t)n;
    pthread_mutex_unlock(&c->mu);
}

/* The scheduler's FORWARD of request i's prompt into stage 0. */
static inline int chain_submit(chain *c, int i, const int32_t *prompt, int n, const px_sampling *s) {
    uint64_t id = c->id_base + (uint64_t)i + 1;
    chain_req *r = chain_req_of(c, id);
    r->next_pos = n;
    px_stage_item it = {.kind = PX_STAGE_FORWARD, .request_id = id, .pos = 0, .n = n, .tokens = prompt,
                        .sample = true, .sampling = s};
    return px_stage_push(c->stages[0], &it);
}

/* Steps every stage in turn until nothing moves (stepped chains). */
static inline void chain_drain(chain *c) {
    for (int idle_rounds = 0; idle_rounds < 2;) {
        int moved = 0;
        for (int i = 0; i < c->k; i++) moved += px_stage_step(c->stages[i]);
        idle_rounds = moved ? 0 : idle_rounds + 1;
    }
}

/* Waits (threaded) or steps (stepped) until every request is done; false on a 60 s timeout. */
static inline bool chain_wait_all(chain *c) {
    if (!c->threaded) {
        chain_drain(c);
        return c->n_done == c->n_reqs;
    }
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 60;
    pthread_mutex_lock(&c->mu);
    int rc = 0;
    while (c->n_done < c->n_reqs && rc != ETIMEDOUT) rc = pthread_cond_timedwait(&c->cv, &c->mu, &deadline);
    bool ok = c->n_done == c->n_reqs;
    pthread_mutex_unlock(&c->mu);
    return ok;
}

/* True once every stage is idle and holds no request and no KV block
 * (releases travel asynchronously). */
static inline bool chain_wait_empty(chain *c) {
    for (int tries = 0; tries < 2000; tries++) {
        if (!c->threaded) chain_drain(c);
        bool empty = true;
        for (int i = 0; i < c->k; i++) {
            px_stage_stats_t s;
            px_stage_stats(c->stages[i], &s);
            empty = empty && s.requests == 0 && s.kv_blocks_used == 0 && s.pending_positions == 0 && s.idle;
        }
        if (empty) return true;
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return false;
}

/* ---- the single-node engine, for comparison ---- */

typedef struct {
    const int32_t *prompt;
    int n_prompt;
    px_sampling s;
} req_spec;

/* Runs every spec through the engine on the whole model (all at once) and
 * records their events into out[i]. */
static inline int engine_expect(px_model *full, const req_spec *specs, int n, collector *out) {
    px_engine_options o;
    px_engine_options_defaults(&o);
    o.n_threads = 1;
    o.kv_cache_bytes = 8 << 20;
    px_engine *e = px_engine_create(full, &o);
    if (!e || px_engine_start(e)) return fprintf(stderr, "engine: %s\n", px_error_get()), -1;
    for (int i = 0; i < n; i++) {
        collector_init(&out[i]);
        if (!harness_submit(e, &out[i], specs[i].prompt, specs[i].n_prompt, &specs[i].s))
            return fprintf(stderr, "engine submit: %s\n", px_error_get()), -1;
    }
    for (int i = 0; i < n; i++) collector_wait(&out[i]);
    px_engine_free(e);
    return 0;
}

#endif
