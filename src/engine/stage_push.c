/* stage_push.c - validating and queueing the items pushed into a stage
 * (under the stage's lock; see stage.h for the rules).
 *
 * A FORWARD item is checked in this order: its id (released or finished ids
 * are dropped quietly), its shape (n and pos against the context, token ids
 * against the vocabulary, the hidden-state size), its place in the request
 * (the next position, no sample still pending; or, for a new request,
 * position 0 with valid sampling parameters and n_prompt), then the KV
 * blocks for its positions. Only then is anything copied: token ids into
 * the request's array (grown by replacement, the old array retired while a
 * step may read it), hidden rows into a new node at the tail of its FIFO.
 * A refusal returns -1 with the reason in px_error_get() and fails the
 * request (OUT_ERROR, state dropped).
 */
#include "stage_internal.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static stage_req *find_live(px_stage *st, uint64_t id) {
    for (stage_req *r = st->live.head; r; r = r->next)
        if (r->id == id) return r;
    return NULL;
}

/* Refuses the item: px_error for the caller, OUT_ERROR + drop for the request. */
__attribute__((format(printf, 4, 5))) static int refuse(px_stage *st, const px_stage_item *it, stage_req *r,
                                                         const char *fmt, ...) {
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    px_error_set("stage: request %llu: %s", (unsigned long long)it->request_id, msg);
    st->totals.items_refused++;
    if (it->kind == PX_STAGE_FORWARD && it->request_id != 0) stage_fail(st, r, it->request_id, msg);
    return -1;
}

/* ---- shape and order ---- */

static int check_shape(px_stage *st, const px_stage_item *it, stage_req *r) {
    const int ctx = st->mem.ctx_limit;
    if (it->n < 1 || it->n > ctx) return refuse(st, it, r, "an item of %d positions (must be 1..%d)", it->n, ctx);
    if (it->pos < 0 || (int64_t)it->pos + it->n > ctx)
        return refuse(st, it, r, "positions [%d, %lld) are outside the context of %d", it->pos,
                      (long long)it->pos + it->n, ctx);
    if (!it->tokens) return refuse(st, it, r, "no token ids");
    for (int i = 0; i < it->n; i++)
        if (it->tokens[i] < 0 || it->tokens[i] >= st->cfg->vocab)
            return refuse(st, it, r, "token %d is %d, outside the vocabulary [0, %d)", i, it->tokens[i], st->cfg->vocab);
    if (!st->first && (!it->hidden || it->n_hidden != (int64_t)it->n * st->hidden))
        return refuse(st, it, r, "%s hidden states: %lld floats for %d positions of %d (stage starts at layer %d)",
                      it->hidden ? "wrong size of" : "no", (long long)it->n_hidden, it->n, st->hidden,
                      px_model_start(st->model));
    return 0;
}

static int check_order(px_stage *st, const px_stage_item *it, stage_req *r) {
    if (r && it->pos != r->n_recv)
        return refuse(st, it, r, "item at position %d, expected %d", it->pos, r->n_recv);
    if (r && r->sample_pending)
        return refuse(st, it, r, "item at position %d before the sampled item ending at %d was computed", it->pos,
                      r->n_recv - 1);
    if (!r && it->pos != 0) return refuse(st, it, r, "unknown request (first item at position %d, not 0)", it->pos);
    if (r) return 0;
    if (!it->sampling) return refuse(st, it, r, "the first item carries no sampling parameters");
    if (px_sampling_validate(it->sampling, st->cfg->vocab)) return refuse(st, it, r, "sampling: %s", px_error_get());
    int n_prompt = it->n_prompt ? it->n_prompt : it->n;
    if (n_prompt < 1 || n_prompt >= st->mem.ctx_limit)
        return refuse(st, it, r, "n_prompt %d must be in [1, %d)", n_prompt, st->mem.ctx_limit);
    return 0;
}

/* ---- request state ---- */

static stage_req *request_new(px_stage *st, const px_stage_item *it) {
    stage_req *r = px_calloc(1, sizeof *r);
    r->id = it->request_id;
    r->n_prompt = it->n_prompt ? it->n_prompt : it->n;
    r->cap_positions = (int)PX_MIN((int64_t)st->mem.ctx_limit, (int64_t)r->n_prompt + it->sampling->max_tokens);
    r->blocks = px_malloc((size_t)((st->mem.ctx_limit + st->opt.block_size - 1) / st->opt.block_size) * sizeof *r->blocks);
    px_sampling_copy_init(&r->sc, it->sampling);
    uint64_t seed = it->sampling->has_seed ? it->sampling->seed : (uint64_t)(px_time_now() * 1e9) ^ (r->id * 0x9e3779b97f4a7c15ull);
    r->rng = px_rng_init(seed);
    r->row = -1;
    r->flight = -1;
    return r;
}

void stage_req_free(stage_req *r) {
    if (!r) return;
    for (hidden_node *h = r->h_head, *next; h; h = next) {
        next = h->next;
        free(h);
    }
    px_sampling_copy_free(&r->sc);
    free(r->tokens);
    free(r->blocks);
    free(r);
}

static void retire(px_stage *st, void *p) {
    if (!p) return;
    if (st->n_retired == st->cap_retired) {
        st->cap_retired = st->cap_retired ? 2 * st->cap_retired : 16;
        st->retired = px_realloc(st->retired, (size_t)st->cap_retired * sizeof *st->retired);
    }
    st->retired[st->n_retired++] = p;
}

static void append_tokens(px_stage *st, stage_req *r, const int32_t *tokens, int n) {
    if (r->n_recv + n > r->cap_tokens) {
        int cap = PX_MAX(PX_MAX(2 * r->cap_tokens, r->n_recv + n), 64);
        int32_t *grown = px_malloc((size_t)cap * sizeof *grown);
        if (r->n_recv) memcpy(grown, r->tokens, (size_t)r->n_recv * sizeof *grown);
        retire(st, r->tokens); /* a step in flight may still read the old array */
        r->tokens = grown;
        r->cap_tokens = cap;
    }
    memcpy(r->tokens + r->n_recv, tokens, (size_t)n * sizeof *tokens);
}

static void append_hidden(px_stage *st, stage_req *r, const float *hidden, int n) {
    size_t bytes = (size_t)n * (size_t)st->hidden * sizeof(float);
    hidden_node *h = px_malloc(sizeof *h + bytes);
    h->next = NULL;
    h->n = n;
    h->used = 0;
    memcpy(h->rows, hidden, bytes);
    if (r->h_tail) r->h_tail->next = h;
    else r->h_head = h;
    r->h_tail = h;
}

/* ---- the kinds ---- */

static int push_forward(px_stage *st, const px_stage_item *it) {
    stage_req *r = find_live(st, it->request_id);
    if ((r && r->released) || (!r && stage_remembered(st, it->request_id))) {
        st->totals.items_dropped++; /* in flight when its request ended */
        return 0;
    }
    if (r) stage_flight_return(st, r); /* the first stage sees its token come back */
    if (check_shape(st, it, r) || check_order(st, it, r)) return -1;
    int n_prompt = r ? r->n_prompt : (it->n_prompt ? it->n_prompt : it->n);
    if (it->sample && (int64_t)it->pos + it->n < n_prompt)
        return refuse(st, it, r, "sample asked at position %d, inside the prompt of %d", it->pos + it->n - 1, n_prompt);
    bool fresh = r == NULL;
    if (fresh) r = request_new(st, it);
    if (!px_kvpool_grow(st->mem.blocks, r->blocks, &r->n_blocks, it->pos + it->n)) {
        px_kvpool_counts c = px_kvpool_count(st->mem.blocks);
        if (fresh) { /* not linked yet: give back what it got */
            px_kvpool_release_table(st->mem.blocks, r->blocks, &r->n_blocks);
            stage_req_free(r);
            r = NULL;
        }
        return refuse(st, it, r, "out of KV cache blocks (%d of %d in use, %d tokens each)", c.used, c.total,
                      st->opt.block_size);
    }
    append_tokens(st, r, it->tokens, it->n);
    if (!st->first) append_hidden(st, r, it->hidden, it->n);
    r->n_recv += it->n;
    r->sample_pending = it->sample;
    st->pending_positions += it->n;
    st->totals.items_in++;
    if (fresh) stage_list_push_back(&st->live, r);
    pthread_cond_signal(&st->wake);
    return 0;
}

static void queue_release_out(px_stage *st, const px_stage_item *it) {
    if (st->last || !it->propagate) return;
    pending_event *pe = stage_queue_event(st, PX_STAGE_OUT_RELEASE, it->request_id);
    pe->ev.item = (px_stage_item){.kind = it->kind, .request_id = it->request_id, .propagate = true};
    pthread_cond_signal(&st->wake);
}

static int push_release(px_stage *st, const px_stage_item *it) {
    if (it->request_id == 0) return refuse(st, it, NULL, "RELEASE needs a request id");
    stage_req *r = find_live(st, it->request_id);
    if (r && !r->released) {
        st->totals.requests_released++;
        stage_mark_released(st, r, it->propagate); /* OUT_RELEASE follows when the executor drops it */
        return 0;
    }
    if (!r && !stage_remembered(st, it->request_id)) stage_remember(st, it->request_id);
    if (r) r->propagate = r->propagate || it->propagate;
    else queue_release_out(st, it);
    return 0;
}

static int push_release_all(px_stage *st, const px_stage_item *it) {
    for (stage_req *r = st->live.head; r; r = r->next)
        if (!r->released) {
            st->totals.requests_released++;
            stage_mark_released(st, r, false);
        }
    queue_release_out(st, it);
    return 0;
}

/* Bursts: while items with `more` keep coming, the executor holds its next step. */
static void track_burst(px_stage *st, bool more) {
    if (more && !st->burst_open) st->burst_since = px_time_now();
    st->burst_open = more;
    if (!more) pthread_cond_signal(&st->wake);
}

int stage_push_locked(px_stage *st, const px_stage_item *it) {
    if (st->stopping) return px_error_set("stage: shutting down"), st->totals.items_refused++, -1;
    track_burst(st, it->more);
    switch (it->kind) {
    case PX_STAGE_FORWARD:
        if (it->request_id == 0) return refuse(st, it, NULL, "FORWARD needs a request id");
        return push_forward(st, it);
    case PX_STAGE_RELEASE: return push_release(st, it);
    case PX_STAGE_RELEASE_ALL: return push_release_all(st, it);
    }
    px_error_set("stage: unknown item kind %d", (int)it->kind);
    st->totals.items_refused++;
    return -1;
}
