/* stage.c - a pipeline stage's API, executor loop and event delivery (see
 * stage.h for the contract, stage_internal.h for the state and locking).
 *
 * px_stage_create() resolves the options like the engine does, sets up the
 * KV memory of the slice (kvmem.c) and the per-step buffers. The executor
 * (a thread after px_stage_start(), or the caller of px_stage_step()) loops:
 * run one step under the lock except for the forward pass (stage_step.c),
 * then deliver the queued events with the lock released, so callbacks may
 * push into any stage, this one included; then free the requests dropped
 * before that delivery. Before delivery each event gets `more` when another
 * event for the same peer follows (a burst). With nothing to run it sleeps
 * on a condition variable (on the monotonic clock, with a deadline while a
 * burst or a micro-batch is pending). Pushes (stage_push.c) take the lock
 * briefly and wake the executor.
 */
#include "stage_internal.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- request lists ---- */

void stage_list_push_back(stage_req_list *l, stage_req *r) {
    r->next = NULL;
    r->prev = l->tail;
    if (l->tail) l->tail->next = r;
    else l->head = r;
    l->tail = r;
    l->n++;
}

void stage_list_remove(stage_req_list *l, stage_req *r) {
    if (r->prev) r->prev->next = r->next;
    else l->head = r->next;
    if (r->next) r->next->prev = r->prev;
    else l->tail = r->prev;
    r->prev = r->next = NULL;
    l->n--;
}

/* ---- events, remembered ids, dropping ---- */

pending_event *stage_queue_event(px_stage *st, px_stage_out_kind kind, uint64_t request_id) {
    event_queue *q = &st->outbox;
    if (q->n == q->cap) {
        q->cap = q->cap ? 2 * q->cap : 64;
        q->v = px_realloc(q->v, (size_t)q->cap * sizeof *q->v);
    }
    pending_event *pe = &q->v[q->n++];
    memset(&pe->ev, 0, sizeof pe->ev);
    pe->error[0] = 0;
    pe->ev.kind = kind;
    pe->ev.request_id = request_id;
    return pe;
}

void stage_remember(px_stage *st, uint64_t id) {
    st->remembered[st->next_remembered] = id;
    st->next_remembered = (st->next_remembered + 1) % PX_STAGE_RELEASED_MEMORY;
    if (st->n_remembered < PX_STAGE_RELEASED_MEMORY) st->n_remembered++;
}

bool stage_remembered(const px_stage *st, uint64_t id) {
    for (int i = 0; i < st->n_remembered; i++)
        if (st->remembered[i] == id) return true;
    return false;
}

void stage_mark_released(px_stage *st, stage_req *r, bool propagate) {
    if (!r->released) stage_remember(st, r->id);
    r->released = true;
    r->propagate = r->propagate || propagate;
    pthread_cond_signal(&st->wake);
}

/* Queues OUT_ERROR for id and drops r (when there is one). */
void stage_fail(px_stage *st, stage_req *r, uint64_t id, const char *msg) {
    pending_event *pe = stage_queue_event(st, PX_STAGE_OUT_ERROR, id);
    snprintf(pe->error, sizeof pe->error, "%s", msg);
    px_log_warn("stage [%d, %d): request %llu failed: %s", px_model_start(st->model), px_model_end(st->model),
                (unsigned long long)id, msg);
    if (r && !r->released) {
        st->totals.requests_failed++;
        stage_mark_released(st, r, false);
    } else if (!r) {
        st->totals.requests_failed++;
        stage_remember(st, id); /* items still in flight for it are dropped quietly */
    }
    pthread_cond_signal(&st->wake);
}

/* Sets `more` on each event that another event for the same peer follows. */
static void mark_bursts(event_queue *q) {
    bool forward_after = false, token_after = false;
    for (int i = q->n - 1; i >= 0; i--) {
        px_stage_event *ev = &q->v[i].ev;
        bool downstream = ev->kind == PX_STAGE_OUT_FORWARD || ev->kind == PX_STAGE_OUT_RELEASE;
        ev->more = downstream ? forward_after : ev->kind == PX_STAGE_OUT_TOKEN ? token_after : false;
        if (downstream) ev->item.more = ev->more;
        forward_after = forward_after || downstream;
        token_after = token_after || ev->kind == PX_STAGE_OUT_TOKEN;
    }
}

/* Delivers the queued events with the lock released, then frees the
 * requests dropped before them (events may point into those). */
static void deliver(px_stage *st) {
    if (st->outbox.n == 0 && st->n_graveyard == 0) return;
    event_queue q = st->outbox;
    st->outbox = st->delivering;
    st->outbox.n = 0;
    int n_dead = st->n_graveyard;
    stage_req **dead = st->graveyard;
    st->graveyard = NULL;
    st->n_graveyard = st->cap_graveyard = 0;
    st->delivering_now = true;
    mark_bursts(&q);
    pthread_mutex_unlock(&st->mu);
    for (int i = 0; i < q.n; i++) {
        if (q.v[i].ev.kind == PX_STAGE_OUT_ERROR) q.v[i].ev.error = q.v[i].error;
        st->cb(st->user, &q.v[i].ev);
    }
    for (int i = 0; i < n_dead; i++) stage_req_free(dead[i]);
    free(dead);
    pthread_mutex_lock(&st->mu);
    st->delivering_now = false;
    q.n = 0;
    st->delivering = q;
}

/* ---- creation ---- */

static void alloc_step_buffers(px_stage *st) {
    const int T = st->opt.max_tokens_per_batch, S = st->opt.max_batch_size, H = st->hidden;
    st->step = px_calloc((size_t)S, sizeof *st->step);
    st->b_seqs = px_calloc((size_t)S, sizeof *st->b_seqs);
    st->b_rows = px_calloc((size_t)S, sizeof *st->b_rows);
    st->row_reqs = px_calloc((size_t)S, sizeof *st->row_reqs);
    st->results = px_calloc((size_t)S, sizeof *st->results);
    st->b_tokens = px_calloc((size_t)T, sizeof *st->b_tokens);
    st->b_pos = px_calloc((size_t)T, sizeof *st->b_pos);
    st->b_seq = px_calloc((size_t)T, sizeof *st->b_seq);
    st->spans = px_calloc((size_t)T, sizeof *st->spans);
    if (!st->first) st->b_hidden = px_malloc((size_t)T * (size_t)H * sizeof(float));
    size_t out = st->last ? (size_t)S * (size_t)st->cfg->vocab : (size_t)T * (size_t)H;
    st->b_out = px_malloc(out * sizeof(float));
}

px_stage *px_stage_create(px_model *model, const px_engine_options *opt, px_stage_callback cb, void *user) {
    if (!model || !cb) return px_error_set("stage: missing model or callback"), NULL;
    px_stage *st = px_calloc(1, sizeof *st);
    st->model = model;
    st->cfg = px_model_config_of(model);
    st->first = px_model_is_first(model);
    st->last = px_model_is_last(model);
    st->hidden = st->cfg->hidden;
    st->cb = cb;
    st->user = user;
    if (px_engine_resolve_options(opt, &st->opt) || px_kv_memory_init(&st->mem, model, &st->opt, "stage"))
        return free(st), NULL;
    st->opt.disable_prefix_cache = true;
    st->pool = px_pool_create(st->opt.n_threads);
    if (st->last) {
        st->samplers = px_calloc((size_t)px_pool_size(st->pool), sizeof *st->samplers);
        for (int i = 0; i < px_pool_size(st->pool); i++) st->samplers[i] = px_sampler_create(st->cfg->vocab);
    }
    alloc_step_buffers(st);
    pthread_mutex_init(&st->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* wait_until is px_time_now() time */
    pthread_cond_init(&st->wake, &ca);
    pthread_condattr_destroy(&ca);
    px_log_info("stage: layers [%d, %d) of %d%s%s, KV cache %d blocks of %d tokens (%.1f MiB), context %d",
                px_model_start(model), px_model_end(model), st->cfg->n_layers, st->first ? ", first" : "",
                st->last ? ", last" : "", st->mem.kv.n_blocks, st->opt.block_size,
                2.0 * (double)st->mem.bytes_each / (1 << 20), st->mem.ctx_limit);
    return st;
}

/* ---- the executor ---- */

/* Sleeps until a push wakes it, or until an in-flight micro-batch expires. */
static void wait_for_work(px_stage *st) {
    if (st->wait_until <= 0) {
        pthread_cond_wait(&st->wake, &st->mu);
        return;
    }
    struct timespec ts;
    double t = st->wait_until;
    ts.tv_sec = (time_t)t;
    ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
    pthread_cond_timedwait(&st->wake, &st->mu, &ts);
}

static void *executor_main(void *arg) {
    px_stage *st = arg;
    pthread_mutex_lock(&st->mu);
    while (!st->stopping) {
        int n = stage_run_step(st);
        if (st->outbox.n || st->n_graveyard) deliver(st);
        else if (n == 0 && !st->stopping) wait_for_work(st);
    }
    pthread_mutex_unlock(&st->mu);
    return NULL;
}

int px_stage_start(px_stage *st) {
    if (!st) return px_error_set("stage: NULL"), -1;
    pthread_mutex_lock(&st->mu);
    bool busy = st->started || st->stepping;
    if (!busy) st->started = true;
    pthread_mutex_unlock(&st->mu);
    if (busy) return px_error_set("stage: already started or being stepped"), -1;
    if (pthread_create(&st->thread, NULL, executor_main, st)) {
        st->started = false;
        return px_error_set("stage: cannot start the executor thread"), -1;
    }
    return 0;
}

int px_stage_step(px_stage *st) {
    pthread_mutex_lock(&st->mu);
    if (st->started || st->stepping) {
        pthread_mutex_unlock(&st->mu);
        return px_error_set("stage: px_stage_step() while the executor thread (or another step) runs it"), -1;
    }
    st->stepping = true;
    int n = stage_run_step(st);
    deliver(st);
    st->stepping = false;
    pthread_mutex_unlock(&st->mu);
    return n;
}

int px_stage_push(px_stage *st, const px_stage_item *it) {
    if (!st || !it) return px_error_set("stage: push of a NULL item"), -1;
    pthread_mutex_lock(&st->mu);
    int rc = stage_push_locked(st, it);
    pthread_mutex_unlock(&st->mu);
    return rc;
}

void px_stage_stats(px_stage *st, px_stage_stats_t *out) {
    pthread_mutex_lock(&st->mu);
    *out = st->totals;
    px_kvpool_counts c = px_kvpool_count(st->mem.blocks);
    out->layer_start = px_model_start(st->model);
    out->layer_end = px_model_end(st->model);
    out->n_layers = st->cfg->n_layers;
    out->first = st->first;
    out->last = st->last;
    out->requests = st->live.n;
    out->pending_positions = st->pending_positions;
    out->kv_blocks_total = c.total;
    out->kv_blocks_used = c.used;
    out->block_size = st->opt.block_size;
    out->context_length = st->mem.ctx_limit;
    double earliest;
    out->micro_batches_out = st->first && !st->last ? stage_flights_active(st, px_time_now(), &earliest) : 0;
    out->pipeline_depth = st->depth;
    out->idle = st->pending_positions == 0 && st->n_step == 0 && st->outbox.n == 0 && !st->delivering_now;
    pthread_mutex_unlock(&st->mu);
}

void px_stage_set_pipeline_depth(px_stage *st, int depth) {
    pthread_mutex_lock(&st->mu);
    st->depth = depth > 0 ? depth : 0;
    pthread_cond_signal(&st->wake);
    pthread_mutex_unlock(&st->mu);
}

px_stage_item px_stage_token_item(const px_stage_event *ev) {
    return (px_stage_item){.kind = PX_STAGE_FORWARD, .request_id = ev->request_id, .pos = ev->token_pos, .n = 1,
                           .tokens = &ev->token.token, .sample = true, .more = ev->more};
}

/* ---- teardown ---- */

static void free_requests(px_stage *st) {
    while (st->live.head) {
        stage_req *r = st->live.head;
        stage_list_remove(&st->live, r);
        px_kvpool_release_table(st->mem.blocks, r->blocks, &r->n_blocks);
        stage_req_free(r);
    }
    for (int i = 0; i < st->n_graveyard; i++) stage_req_free(st->graveyard[i]);
    for (int i = 0; i < st->n_retired; i++) free(st->retired[i]);
    free(st->graveyard);
    free(st->retired);
}

static void free_step_buffers(px_stage *st) {
    free(st->step);
    free(st->b_seqs);
    free(st->b_rows);
    free(st->row_reqs);
    free(st->results);
    free(st->b_tokens);
    free(st->b_pos);
    free(st->b_seq);
    free(st->spans);
    free(st->b_hidden);
    free(st->b_out);
    free(st->outbox.v);
    free(st->delivering.v);
}

void px_stage_free(px_stage *st) {
    if (!st) return;
    pthread_mutex_lock(&st->mu);
    st->stopping = true;
    pthread_cond_broadcast(&st->wake);
    pthread_mutex_unlock(&st->mu);
    if (st->started) pthread_join(st->thread, NULL);
    free_requests(st);
    free_step_buffers(st);
    if (st->samplers)
        for (int i = 0; i < px_pool_size(st->pool); i++) px_sampler_free(st->samplers[i]);
    free(st->samplers);
    px_pool_destroy(st->pool);
    px_kv_memory_free(&st->mem);
    pthread_mutex_destroy(&st->mu);
    pthread_cond_destroy(&st->wake);
    free(st);
}
