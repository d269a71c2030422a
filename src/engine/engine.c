/* engine.c - the engine's public API and executor thread.
 *
 * px_engine_create() resolves the options and sets up the KV memory
 * (kvmem.c: sized from bytes or a share of MemAvailable, mapped
 * anonymously, shared with pipeline stages), and prepares per-step
 * buffers. The executor thread loops:
 * take aborts, plan a step (schedule.c), run px_model_forward() and sample
 * every logit row (in parallel over the pool) without the lock, finish the
 * step under the lock, then deliver the step's events with the lock
 * released, so callbacks may call px_engine_abort(). It sleeps on a condition
 * variable when there is nothing to run.
 */
#include "engine_internal.h"
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- lists ---- */

void px_req_list_push_back(px_req_list *l, px_request *r) {
    r->next = NULL;
    r->prev = l->tail;
    if (l->tail) l->tail->next = r;
    else l->head = r;
    l->tail = r;
    l->n++;
}

void px_req_list_push_front(px_req_list *l, px_request *r) {
    r->prev = NULL;
    r->next = l->head;
    if (l->head) l->head->prev = r;
    else l->tail = r;
    l->head = r;
    l->n++;
}

void px_req_list_remove(px_req_list *l, px_request *r) {
    if (r->prev) r->prev->next = r->next;
    else l->head = r->next;
    if (r->next) r->next->prev = r->prev;
    else l->tail = r->prev;
    r->prev = r->next = NULL;
    l->n--;
}

/* ---- per-step buffers ---- */

static void alloc_step_buffers(px_engine *e) {
    const int T = e->opt.max_tokens_per_batch, S = e->opt.max_batch_size;
    e->step_reqs = px_calloc((size_t)S, sizeof *e->step_reqs);
    e->b_seqs = px_calloc((size_t)S, sizeof *e->b_seqs);
    e->b_rows = px_calloc((size_t)S, sizeof *e->b_rows);
    e->b_tokens = px_calloc((size_t)T, sizeof *e->b_tokens);
    e->b_pos = px_calloc((size_t)T, sizeof *e->b_pos);
    e->b_seq = px_calloc((size_t)T, sizeof *e->b_seq);
    e->logits = px_malloc((size_t)S * (size_t)e->cfg->vocab * sizeof *e->logits);
    e->row_reqs = px_calloc((size_t)S, sizeof *e->row_reqs);
    e->results = px_calloc((size_t)S, sizeof *e->results);
}

px_engine *px_engine_create(px_model *model, const px_engine_options *opt) {
    if (!model) return px_error_set("engine: no model"), NULL;
    if (!px_model_is_first(model) || !px_model_is_last(model))
        return px_error_set("engine: needs the whole model; got layers [%d, %d) of %d", px_model_start(model),
                            px_model_end(model), px_model_config_of(model)->n_layers), NULL;
    if (sodium_init() < 0) return px_error_set("engine: libsodium failed to initialise"), NULL;
    px_engine *e = px_calloc(1, sizeof *e);
    e->model = model;
    e->cfg = px_model_config_of(model);
    if (px_engine_resolve_options(opt, &e->opt) || px_kv_memory_init(&e->mem, model, &e->opt, "engine"))
        return free(e), NULL;
    e->pool = px_pool_create(e->opt.n_threads);
    e->samplers = px_calloc((size_t)px_pool_size(e->pool), sizeof *e->samplers);
    for (int i = 0; i < px_pool_size(e->pool); i++) e->samplers[i] = px_sampler_create(e->cfg->vocab);
    alloc_step_buffers(e);
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->wake, NULL);
    px_log_info("engine: KV cache %d blocks of %d tokens (%.1f MiB), context %d, batch %d seqs / %d tokens",
                e->mem.kv.n_blocks, e->opt.block_size, 2.0 * (double)e->mem.bytes_each / (1 << 20), e->mem.ctx_limit,
                e->opt.max_batch_size, e->opt.max_tokens_per_batch);
    return e;
}

/* ---- requests ---- */

static void request_free(px_request *r) {
    if (!r) return;
    free(r->tokens);
    free(r->blocks);
    free(r->hashes);
    px_sampling_copy_free(&r->sc);
    free(r);
}

static px_request *request_new(px_engine *e, const int32_t *prompt, int n_prompt, const px_sampling *s) {
    px_request *r = px_calloc(1, sizeof *r);
    r->n_prompt = r->n_tokens = n_prompt;
    r->cap_tokens = (int)PX_MIN((int64_t)e->mem.ctx_limit, (int64_t)n_prompt + s->max_tokens);
    r->tokens = px_malloc((size_t)r->cap_tokens * sizeof *r->tokens);
    memcpy(r->tokens, prompt, (size_t)n_prompt * sizeof *prompt);
    int max_blocks = (r->cap_tokens + e->opt.block_size - 1) / e->opt.block_size;
    r->blocks = px_malloc((size_t)max_blocks * sizeof *r->blocks);
    r->hashes = px_malloc((size_t)max_blocks * sizeof *r->hashes);
    px_sampling_copy_init(&r->sc, s);
    return r;
}

static int validate_prompt(const px_engine *e, const int32_t *prompt, int n_prompt) {
    if (!prompt || n_prompt <= 0) return px_error_set("the prompt is empty"), -1;
    if (n_prompt >= e->mem.ctx_limit)
        return px_error_set("the prompt has %d tokens; the context holds %d (prompt and at least one generated token)",
                            n_prompt, e->mem.ctx_limit), -1;
    for (int i = 0; i < n_prompt; i++)
        if (prompt[i] < 0 || prompt[i] >= e->cfg->vocab)
            return px_error_set("prompt token %d is %d, outside the vocabulary [0, %d)", i, prompt[i], e->cfg->vocab), -1;
    return 0;
}

static uint64_t clock_seed(uint64_t id) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ((uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec) ^ (id * 0x9e3779b97f4a7c15ull);
}

uint64_t px_engine_submit(px_engine *e, const int32_t *prompt, int n_prompt, const px_sampling *s,
                          px_token_callback cb, void *user) {
    if (!e || !s || !cb) return px_error_set("px_engine_submit: missing engine, sampling or callback"), 0;
    if (validate_prompt(e, prompt, n_prompt) || px_sampling_validate(s, e->cfg->vocab)) return 0;
    px_request *r = request_new(e, prompt, n_prompt, s);
    r->cb = cb;
    r->user = user;
    pthread_mutex_lock(&e->mu);
    if (e->stopping) {
        pthread_mutex_unlock(&e->mu);
        request_free(r);
        return px_error_set("the engine is shutting down"), 0;
    }
    uint64_t id = r->id = ++e->next_id;
    r->rng = px_rng_init(s->has_seed ? s->seed : clock_seed(id));
    px_req_list_push_back(&e->waiting, r);
    pthread_cond_signal(&e->wake);
    pthread_mutex_unlock(&e->mu);
    return id; /* r may already be finished and freed by the executor here */
}

void px_engine_abort(px_engine *e, uint64_t request_id) {
    if (!e) return;
    pthread_mutex_lock(&e->mu);
    px_req_list *lists[2] = {&e->running, &e->waiting};
    for (int l = 0; l < 2; l++)
        for (px_request *r = lists[l]->head; r; r = r->next)
            if (r->id == request_id) {
                r->aborted = true;
                pthread_cond_signal(&e->wake);
            }
    pthread_mutex_unlock(&e->mu);
}

void px_engine_stats(px_engine *e, px_engine_stats_t *out) {
    pthread_mutex_lock(&e->mu);
    *out = e->totals;
    px_kvpool_counts c = px_kvpool_count(e->mem.blocks);
    out->running = e->running.n;
    out->waiting = e->waiting.n;
    out->kv_blocks_total = c.total;
    out->kv_blocks_used = c.used;
    out->kv_blocks_cached = c.cached;
    out->block_size = e->opt.block_size;
    out->context_length = e->mem.ctx_limit;
    pthread_mutex_unlock(&e->mu);
}

/* ---- the executor ---- */

/* Delivers the queued events with the lock released, then frees finished requests. */
static void deliver_events(px_engine *e) {
    pthread_mutex_unlock(&e->mu);
    for (int i = 0; i < e->n_events; i++) e->events[i].cb(e->events[i].user, &e->events[i].ev);
    for (int i = 0; i < e->n_finished; i++) request_free(e->finished[i]);
    e->n_events = e->n_finished = 0;
    pthread_mutex_lock(&e->mu);
}

static int run_forward(px_engine *e) {
    int32_t dummy_row = 0; /* the model wants >= 1 logit row even when no chunk ends a sequence */
    px_batch b = {.n_tokens = e->n_batch_tokens, .tokens = e->b_tokens, .pos = e->b_pos, .seq = e->b_seq,
                  .n_seqs = e->n_step, .seqs = e->b_seqs, .n_logits = e->n_rows ? e->n_rows : 1,
                  .logit_rows = e->n_rows ? e->b_rows : &dummy_row};
    int rc = px_model_forward(e->model, e->pool, &e->mem.kv, &b, NULL, e->logits);
    if (rc) {
        snprintf(e->error, sizeof e->error, "forward pass failed: %s", px_error_get());
        px_log(PX_LOG_ERROR, "engine: %s", e->error);
    }
    return rc;
}

static void *executor_main(void *arg) {
    px_engine *e = arg;
    pthread_mutex_lock(&e->mu);
    while (!e->stopping) {
        px_engine_handle_aborts(e);
        px_engine_plan_step(e);
        if (e->n_step == 0) {
            if (e->n_events) deliver_events(e);
            else pthread_cond_wait(&e->wake, &e->mu);
            continue;
        }
        pthread_mutex_unlock(&e->mu);
        int rc = run_forward(e);
        if (!rc) px_engine_sample_rows(e);
        pthread_mutex_lock(&e->mu);
        e->totals.steps_total++;
        px_engine_finish_step(e, rc);
        deliver_events(e);
    }
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

int px_engine_start(px_engine *e) {
    if (e->started) return px_error_set("engine: already started"), -1;
    if (pthread_create(&e->thread, NULL, executor_main, e)) return px_error_set("engine: cannot start the executor thread"), -1;
    e->started = true;
    return 0;
}

void px_engine_free(px_engine *e) {
    if (!e) return;
    pthread_mutex_lock(&e->mu);
    e->stopping = true;
    pthread_cond_broadcast(&e->wake);
    pthread_mutex_unlock(&e->mu);
    if (e->started) pthread_join(e->thread, NULL);
    pthread_mutex_lock(&e->mu);
    while (e->running.head) px_engine_finish_request(e, e->running.head, PX_FINISH_ABORT, NULL);
    while (e->waiting.head) px_engine_finish_request(e, e->waiting.head, PX_FINISH_ABORT, NULL);
    deliver_events(e);
    pthread_mutex_unlock(&e->mu);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->wake);
    px_kv_memory_free(&e->mem);
    for (int i = 0; i < px_pool_size(e->pool); i++) px_sampler_free(e->samplers[i]);
    free(e->samplers);
    px_pool_destroy(e->pool);
    free(e->step_reqs);
    free(e->b_seqs);
    free(e->b_rows);
    free(e->b_tokens);
    free(e->b_pos);
    free(e->b_seq);
    free(e->logits);
    free(e->row_reqs);
    free(e->results);
    free(e->events);
    free(e->finished);
    free(e);
}
