/* relay.c - the worker's data path between the network and its stage.
 *
 * In (network thread): a Forward is checked against this worker (it must be
 * the route's stage at that hop, the first stage gets token ids only, later
 * stages hidden rows of the model's width), its activations are converted
 * from the wire dtype to f32, its route is remembered, and it is pushed into
 * the stage. The stage validates the rest; a refused item fails its request
 * with an OUT_ERROR event, which reaches the scheduler below.
 *
 * Out (the stage's executor thread, px_worker_on_stage_event):
 *   OUT_FORWARD  hidden rows -> wire dtype -> Forward to the next hop
 *   OUT_RELEASE  -> Release to the next hop
 *   OUT_TOKEN    -> Token to the scheduler, and unless it was the last one,
 *                   the token back into the first stage as the next decode
 *                   step (pushed straight into our own stage when we are the
 *                   first stage too); after the last token a propagating
 *                   Release goes to the first stage, which passes it down
 *   OUT_ERROR    -> Token{finish ERROR} to the scheduler, which re-routes
 * Messages are packed here and queued in the outbox; the network thread
 * sends them (it owns the sockets). */
#include "worker_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static px_dtype wire_to_px(int d) {
    return d == PARALLAX__DTYPE__F16 ? PX_DTYPE_F16 : d == PARALLAX__DTYPE__BF16 ? PX_DTYPE_BF16 : PX_DTYPE_F32;
}

void px_worker_fail_request(px_worker *w, uint64_t req, uint32_t epoch, const char *fmt, ...) {
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    Parallax__Token t;
    parallax__token__init(&t);
    t.req = req, t.epoch = epoch, t.token = -1, t.finish = PARALLAX__FINISH__ERROR, t.error = text;
    Parallax__Envelope env;
    px_net_env(&env, w->id, PARALLAX__ENVELOPE__BODY_TOKEN, &t);
    px_worker_queue(w, PX_WORKER_SCHED, &env, NULL, 0, false);
    px_log_debug("worker: request %llu failed here: %s", (unsigned long long)req, text);
}

/* ---- in ---- */

void px_worker_on_forward(px_worker *w, const Parallax__Forward *f, const void *act, size_t act_len) {
    if (!w->stage) {
        px_worker_fail_request(w, f->req, f->epoch, "%s is not serving (no slice loaded)", w->id);
        return;
    }
    if (strcmp(f->route[f->hop], w->id)) {
        px_worker_fail_request(w, f->req, f->epoch, "hop %u is %s, but it reached %s", f->hop, f->route[f->hop], w->id);
        return;
    }
    bool first = w->start == 0;
    if ((f->hop == 0) != first) {
        px_worker_fail_request(w, f->req, f->epoch, "hop %u reached %s, which holds layers [%d, %d)", f->hop, w->id,
                               w->start, w->end);
        return;
    }
    int n = (int)f->n_tokens;
    const float *hidden = NULL;
    int64_t n_hidden = 0;
    if (!first) {
        if ((int)f->hidden != w->hidden) {
            px_worker_fail_request(w, f->req, f->epoch, "activations of width %u; the model's hidden size is %d",
                                   f->hidden, w->hidden);
            return;
        }
        size_t count = (size_t)n * (size_t)w->hidden;
        if (count > w->hbuf_cap) {
            free(w->hbuf);
            w->hbuf_cap = count;
            w->hbuf = px_malloc(count * sizeof(float));
        }
        px_convert(w->hbuf, PX_DTYPE_F32, act, wire_to_px(f->dtype), count);
        hidden = w->hbuf;
        n_hidden = (int64_t)count;
        atomic_fetch_add(&w->bytes_in, act_len);
    }
    atomic_fetch_add(&w->items_in, 1);
    px_routes_put(w->routes, f->req, f->epoch, f->route, (int)f->n_route, (int)f->hop);
    px_sampling s;
    px_stage_item it = {.kind = PX_STAGE_FORWARD, .request_id = f->req, .pos = (int32_t)f->pos, .n = n,
                        .tokens = f->tokens, .hidden = hidden, .n_hidden = n_hidden, .sample = f->sample,
                        .more = f->more};
    if (first && f->start && f->n_route > 1 && w->pipeline_depth != (int)f->n_route) {
        /* as many micro-batches in flight as the pipeline has stages keeps every stage busy */
        w->pipeline_depth = (int)f->n_route;
        px_stage_set_pipeline_depth(w->stage, w->pipeline_depth);
    }
    if (f->start) {
        px_net_sampling_from_wire(f->sampling, &s);
        it.sampling = &s;
        it.n_prompt = (int32_t)f->n_prompt;
    }
    if (px_stage_push(w->stage, &it)) /* the stage fails the request with OUT_ERROR */
        px_log_debug("worker: request %llu refused: %s", (unsigned long long)f->req, px_error_get());
}

void px_worker_on_release(px_worker *w, const Parallax__Release *r) {
    bool last = w->end == w->n_layers;
    if (!r->propagate || last || !w->stage) px_routes_drop(w->routes, r->req);
    if (!w->stage) return;
    px_stage_item it = {.kind = PX_STAGE_RELEASE, .request_id = r->req, .propagate = r->propagate && !last,
                        .more = r->more};
    px_stage_push(w->stage, &it);
}

/* ---- out ---- */

static void send_forward(px_worker *w, const px_stage_item *item, char **route, int n_route, int hop, uint32_t epoch) {
    Parallax__Forward f;
    Parallax__Sampling sw;
    parallax__forward__init(&f);
    f.req = item->request_id, f.epoch = epoch, f.route = route, f.n_route = (size_t)n_route, f.hop = (uint32_t)hop;
    f.pos = (uint32_t)item->pos, f.n_tokens = (size_t)item->n, f.tokens = (int32_t *)item->tokens;
    f.sample = item->sample;
    f.more = item->more;
    if (item->pos == 0 && item->sampling) {
        f.start = true;
        px_net_sampling_to_wire(item->sampling, &sw);
        f.sampling = &sw;
        f.n_prompt = (uint32_t)(item->n_prompt ? item->n_prompt : item->n);
    }
    void *act = NULL;
    size_t bytes = 0;
    if (hop > 0) { /* hidden rows for a later stage */
        px_dtype d = wire_to_px(w->wire_dtype);
        size_t count = (size_t)item->n * (size_t)w->hidden;
        if (item->n_hidden != (int64_t)count) {
            px_worker_fail_request(w, item->request_id, epoch, "the stage emitted %lld floats for %d rows",
                                   (long long)item->n_hidden, item->n);
            return;
        }
        bytes = count * px_dtype_size(d);
        act = px_malloc(bytes);
        px_convert(act, d, item->hidden, PX_DTYPE_F32, count);
        f.dtype = (Parallax__Dtype)w->wire_dtype;
        f.hidden = (uint32_t)w->hidden;
        atomic_fetch_add(&w->bytes_out, bytes);
    }
    Parallax__Envelope env;
    px_net_env(&env, w->id, PARALLAX__ENVELOPE__BODY_FORWARD, &f);
    px_worker_queue(w, route[hop], &env, act, bytes, true);
}

static void send_release(px_worker *w, const char *to, uint64_t req, uint32_t epoch, bool propagate, bool more) {
    Parallax__Release r;
    parallax__release__init(&r);
    r.req = req, r.epoch = epoch, r.propagate = propagate, r.more = more;
    Parallax__Envelope env;
    px_net_env(&env, w->id, PARALLAX__ENVELOPE__BODY_RELEASE, &r);
    px_worker_queue(w, to, &env, NULL, 0, false);
}

static void on_token(px_worker *w, const px_stage_event *ev, char **route, int n_route, uint32_t epoch) {
    const px_token_event *te = &ev->token;
    Parallax__Token t;
    parallax__token__init(&t);
    t.req = ev->request_id, t.epoch = epoch, t.pos = (uint32_t)ev->token_pos, t.token = te->token;
    t.logprob = te->logprob;
    t.n_top_ids = t.n_top_logprobs = (size_t)te->n_top;
    t.top_ids = (int32_t *)te->top_ids;
    t.top_logprobs = (float *)te->top_logprobs;
    t.finish = te->finish == PX_FINISH_STOP     ? PARALLAX__FINISH__STOP
               : te->finish == PX_FINISH_LENGTH ? PARALLAX__FINISH__LENGTH
                                                : PARALLAX__FINISH__NONE;
    t.prompt_tokens = (uint32_t)PX_MAX(te->prompt_tokens, 0);
    Parallax__Envelope env;
    px_net_env(&env, w->id, PARALLAX__ENVELOPE__BODY_TOKEN, &t);
    px_worker_queue(w, PX_WORKER_SCHED, &env, NULL, 0, false);
    bool self_first = !strcmp(route[0], w->id);
    if (te->finish == PX_FINISH_NONE) {
        px_stage_item next = px_stage_token_item(ev);
        if (self_first) {
            if (px_stage_push(w->stage, &next))
                px_log_debug("worker: next step of %llu refused: %s", (unsigned long long)ev->request_id, px_error_get());
        } else send_forward(w, &next, route, n_route, 0, epoch);
    } else {
        if (!self_first) send_release(w, route[0], ev->request_id, epoch, true, ev->more);
        else { /* closes its micro-batch on this (first) stage at once */
            px_stage_item rel = {.kind = PX_STAGE_RELEASE, .request_id = ev->request_id, .more = ev->more};
            px_stage_push(w->stage, &rel);
        }
        px_routes_drop(w->routes, ev->request_id);
    }
}

void px_worker_on_stage_event(void *user, const px_stage_event *ev) {
    px_worker *w = user;
    char **route = NULL;
    int hop = 0;
    uint32_t epoch = 0;
    int n = px_routes_get(w->routes, ev->request_id, &route, &hop, &epoch);
    switch (ev->kind) {
    case PX_STAGE_OUT_FORWARD:
        if (n < 0 || hop + 1 >= n)
            px_worker_fail_request(w, ev->request_id, epoch, "%s has no next stage for this request", w->id);
        else send_forward(w, &ev->item, route, n, hop + 1, epoch);
        break;
    case PX_STAGE_OUT_RELEASE:
        if (n >= 0 && hop + 1 < n) send_release(w, route[hop + 1], ev->request_id, epoch, ev->item.propagate, ev->more);
        px_routes_drop(w->routes, ev->request_id);
        break;
    case PX_STAGE_OUT_TOKEN:
        if (n < 0) px_worker_fail_request(w, ev->request_id, epoch, "%s lost the route of this request", w->id);
        else on_token(w, ev, route, n, epoch);
        break;
    case PX_STAGE_OUT_ERROR:
        px_worker_fail_request(w, ev->request_id, epoch, "%s: %s", w->id, ev->error ? ev->error : "stage error");
        px_routes_drop(w->routes, ev->request_id);
        break;
    }
    px_routes_list_free(route, n);
}
