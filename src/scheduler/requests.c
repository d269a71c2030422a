/* requests.c - generation requests through the pipeline.
 *
 * Backend (HTTP threads): submit validates the prompt and the sampling
 * parameters like the engine does (so a bad request is refused at once and
 * never bounces between workers), copies them into a request record and
 * queues a command; abort queues a command. Both wake the scheduler thread.
 *
 * Scheduler thread (under mu):
 *   dispatch  each pending request is routed by phase 2 (px_router over the
 *             slices of ready workers; load = attempts in flight on each,
 *             RTTs as measured, 5 ms until measured) and sent, under a new
 *             attempt id, as one Forward{start} to the first stage carrying
 *             prompt + every token generated so far (n_prompt marks the
 *             prompt, so penalties and max_tokens stay those of the request).
 *             No route: it waits (until route_timeout).
 *   token     accepted only from the request's current attempt and only at
 *             the next position (n_prompt + n_gen): a token of an abandoned
 *             attempt or a duplicate is dropped, so the client sees each
 *             token exactly once. Each accepted token becomes an engine-style
 *             event; a final one ends the request (Release to its stages).
 *   failure   a Token{ERROR} from a stage, a worker that died or changed its
 *             slice: the attempt is released on the stages still alive and
 *             the request goes back to pending with everything it generated;
 *             after max_retries it fails with an error event.
 * Events are queued and delivered after mu is released (px_sched_deliver). */
#include "px_base.h"
#include "sched_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- events ---- */

static void queue_event(px_sched *s, sreq *r, int32_t token, px_finish_reason finish, const char *error,
                        const Parallax__Token *t) {
    if (s->n_cbs == s->cap_cbs) {
        s->cap_cbs = s->cap_cbs ? 2 * s->cap_cbs : 64;
        s->cbs = px_realloc(s->cbs, (size_t)s->cap_cbs * sizeof *s->cbs);
    }
    pending_cb *c = &s->cbs[s->n_cbs++];
    memset(c, 0, sizeof *c);
    c->cb = r->cb, c->user = r->user;
    c->ev.request_id = r->id;
    c->ev.token = token;
    c->ev.finish = finish;
    c->ev.prompt_tokens = r->n_prompt;
    c->ev.completion_tokens = r->n_gen;
    if (t) {
        c->ev.logprob = t->logprob;
        c->ev.n_top = (int)PX_MIN(t->n_top_ids, (size_t)PX_MAX_TOP_LOGPROBS);
        for (int i = 0; i < c->ev.n_top; i++) c->ev.top_ids[i] = t->top_ids[i], c->ev.top_logprobs[i] = t->top_logprobs[i];
    }
    if (error) snprintf(c->error, sizeof c->error, "%s", error);
}

void px_sched_deliver(px_sched *s) {
    pthread_mutex_lock(&s->mu);
    pending_cb *cbs = s->cbs;
    int n = s->n_cbs;
    s->cbs = NULL, s->n_cbs = s->cap_cbs = 0;
    pthread_mutex_unlock(&s->mu);
    for (int i = 0; i < n; i++) {
        if (cbs[i].error[0]) cbs[i].ev.error = cbs[i].error;
        cbs[i].cb(cbs[i].user, &cbs[i].ev);
    }
    free(cbs);
}

/* ---- records ---- */

static void req_free(sreq *r) {
    free(r->tokens);
    free(r->bias_ids);
    free(r->bias_values);
    free(r->stop_ids);
    free(r);
}

static void pending_remove(px_sched *s, sreq *r) {
    for (sreq **p = &s->pending; *p; p = &(*p)->next)
        if (*p == r) {
            *p = r->next;
            r->next = NULL;
            return;
        }
}

static void pending_add(px_sched *s, sreq *r) {
    r->state = RQ_PENDING;
    r->t_pending = px_time_now();
    r->next = NULL;
    sreq **p = &s->pending;
    while (*p) p = &(*p)->next;
    *p = r; /* arrival order */
}

static void send_release(px_sched *s, int slot, uint64_t attempt) {
    if (slot < 0 || slot >= s->cap_workers || !s->workers[slot].used) return;
    Parallax__Release rel;
    parallax__release__init(&rel);
    rel.req = attempt;
    px_sched_send(s, slot, PARALLAX__ENVELOPE__BODY_RELEASE, &rel);
}

/* Ends the current attempt: stages drop it, loads go down. */
static void end_attempt(px_sched *s, sreq *r, bool release) {
    if (!r->attempt) return;
    for (int i = 0; i < r->n_route; i++) {
        int slot = r->route[i];
        if (slot >= 0 && slot < s->cap_workers && s->workers[slot].inflight > 0) {
            s->workers[slot].inflight--;
            s->workers[slot].kv_reserved = PX_MAX(0, s->workers[slot].kv_reserved - r->kv_need);
        }
        if (release) send_release(s, slot, r->attempt);
    }
    px_u64map_del(&s->attempts, r->attempt);
    r->attempt = 0;
    r->n_route = 0;
    s->running--;
}

/* The request is over (its final event is queued by the caller). */
static void finish_request(px_sched *s, sreq *r, bool release) {
    if (r->state == RQ_RUNNING) end_attempt(s, r, release);
    else {
        pending_remove(s, r);
        s->waiting--;
    }
    px_u64map_del(&s->reqs, r->id);
    req_free(r);
}

static void fail_request(px_sched *s, sreq *r, const char *why) {
    px_log_warn("scheduler: request %llu failed: %s", (unsigned long long)r->id, why);
    s->failed++;
    queue_event(s, r, -1, PX_FINISH_ERROR, why, NULL);
    finish_request(s, r, true);
}

static void reroute(px_sched *s, sreq *r, const char *why) {
    if (r->state != RQ_RUNNING) return;
    end_attempt(s, r, true);
    s->reroutes++;
    if (r->n_attempts > (uint32_t)s->opt.max_retries) { /* no attempt, not pending: just drop it */
        char msg[600];
        snprintf(msg, sizeof msg, "gave up after %u attempts (last: %s)", r->n_attempts, why);
        px_log_warn("scheduler: request %llu failed: %s", (unsigned long long)r->id, msg);
        s->failed++;
        queue_event(s, r, -1, PX_FINISH_ERROR, msg, NULL);
        px_u64map_del(&s->reqs, r->id);
        req_free(r);
        return;
    }
    px_log_info("scheduler: request %llu re-routed (%s); %d generated tokens kept", (unsigned long long)r->id, why,
                r->n_gen);
    pending_add(s, r);
    s->waiting++;
}

void px_sched_failover_slot(px_sched *s, int slot, const char *why) {
    char msg[300];
    snprintf(msg, sizeof msg, "%s: %s", slot < s->cap_workers ? s->workers[slot].id : "?", why);
    for (int i = 0; i < s->reqs.cap; i++) {
        if (!s->reqs.keys[i] || s->reqs.keys[i] == UINT64_MAX) continue;
        sreq *r = s->reqs.vals[i];
        if (r->state != RQ_RUNNING) continue;
        for (int k = 0; k < r->n_route; k++)
            if (r->route[k] == slot) {
                reroute(s, r, msg);
                break;
            }
    }
}

void px_sched_abort_all(px_sched *s, const char *why) {
    for (int i = 0; i < s->reqs.cap; i++) {
        if (!s->reqs.keys[i] || s->reqs.keys[i] == UINT64_MAX) continue;
        sreq *r = s->reqs.vals[i];
        queue_event(s, r, -1, PX_FINISH_ABORT, why, NULL);
        finish_request(s, r, true);
    }
}

/* ---- routing ---- */

/* KV positions an attempt of r can reach: what it holds now plus what it may
 * still generate (max_tokens, else up to the context), rounded up to whole
 * blocks of the engine's default size. */
#define KV_BLOCK_TOKENS 16
static int64_t attempt_kv_need(const px_sched *s, const sreq *r) {
    int64_t have = (int64_t)r->n_prompt + r->n_gen, ctx = PX_MAX(s->context_length, 1);
    int64_t more = r->s.max_tokens > 0 ? (int64_t)r->s.max_tokens - r->n_gen : ctx;
    int64_t need = PX_MIN(ctx, have + PX_MAX(more, 1));
    return (need + KV_BLOCK_TOKENS - 1) / KV_BLOCK_TOKENS * KV_BLOCK_TOKENS;
}

/* How many requests a worker may hold (for the router: full when load >=
 * max_load). With its KV size known: the ones it holds, plus as many more
 * requests needing `need` positions as fit in what they have not reserved;
 * an idle worker always takes one (if it cannot hold it, its stage says so). */
static int worker_max_load(const sworker *w, int from_cluster, int64_t need) {
    if (!w->kv_tokens) return from_cluster;
    int64_t room = (int64_t)w->kv_tokens - w->kv_reserved;
    int64_t more = room > 0 ? room / PX_MAX(need, 1) : 0;
    if (w->inflight == 0) more = PX_MAX(more, 1);
    return (int)PX_MIN((int64_t)w->inflight + more, INT32_MAX / 2);
}

static int route_request(px_sched *s, int64_t need, px_route *out) {
    if (!s->has_model) return -1;
    int n_slots = s->cap_workers, n = 0;
    px_route_slice *sl = px_calloc((size_t)n_slots + 1, sizeof *sl);
    for (int i = 0; i < n_slots; i++) {
        const sworker *w = &s->workers[i];
        if (!w->used || !w->ready || w->start < 0) continue;
        px_node_status st;
        double lat = 1e-3;
        int max_load = 0;
        if (!px_cluster_node_status(s->cluster, i, &st)) lat = st.layer_latency, max_load = st.max_load;
        max_load = worker_max_load(w, max_load, need); /* its real KV cache, once it reported it */
        sl[n++] = (px_route_slice){.node = i, .start = w->start, .end = w->end, .layer_latency = lat > 0 ? lat : 1e-3,
                                   .load = w->inflight, .max_load = max_load};
    }
    int rc = -1;
    if (n) {
        px_router *r = px_router_create(sl, n, s->cfg.n_layers, s->rtt, n_slots, 0.005);
        if (r) {
            rc = px_router_find(r, out);
            if (!rc)
                for (int k = 0; k < out->n_stages; k++) out->node[k] = sl[out->slice[k]].node;
            px_router_destroy(r);
        }
    }
    free(sl);
    return rc;
}

/* Routes r and starts a new attempt (not sent yet). 0, or 1 when no route exists now. */
static int begin_attempt(px_sched *s, sreq *r) {
    px_route route;
    const int64_t need = attempt_kv_need(s, r);
    if (route_request(s, need, &route)) return 1;
    r->attempt = s->next_attempt++;
    r->n_attempts++;
    r->n_route = route.n_stages;
    r->kv_need = need;
    for (int k = 0; k < route.n_stages; k++) {
        r->route[k] = route.node[k];
        s->workers[route.node[k]].inflight++;
        s->workers[route.node[k]].kv_reserved += need;
    }
    px_u64map_put(&s->attempts, r->attempt, r);
    r->state = RQ_RUNNING;
    s->running++;
    return 0;
}

static void requeue_front(px_sched *s, sreq *r) {
    r->state = RQ_PENDING;
    r->t_pending = px_time_now();
    r->next = s->pending;
    s->pending = r;
    s->waiting++;
}

/* Sends the Forward{start} of an attempt begun above; `more`: another one
 * for the same first stage follows at once (one burst: the stage plans one
 * step for all of them). Returns 0 sent, 1 the first stage's queue is full
 * (back to pending; stop dispatching this turn), -1 its connection is gone
 * (it was removed; back to pending), 2 the attempt no longer exists. */
static int send_attempt(px_sched *s, uint64_t attempt, bool more) {
    sreq *r = px_u64map_get(&s->attempts, attempt);
    if (!r || r->state != RQ_RUNNING || r->attempt != attempt) return 2;
    char *ids[PX_NET_MAX_ROUTE];
    for (int k = 0; k < r->n_route; k++) ids[k] = s->workers[r->route[k]].id;
    Parallax__Forward f;
    Parallax__Sampling sw;
    parallax__forward__init(&f);
    px_net_sampling_to_wire(&r->s, &sw);
    f.req = r->attempt, f.epoch = r->n_attempts, f.route = ids, f.n_route = (size_t)r->n_route, f.hop = 0;
    f.pos = 0, f.tokens = r->tokens, f.n_tokens = (size_t)(r->n_prompt + r->n_gen);
    f.start = true, f.n_prompt = (uint32_t)r->n_prompt, f.total = (uint32_t)(r->n_prompt + r->n_gen);
    f.sampling = &sw, f.sample = true, f.more = more;
    int first = r->route[0];
    if (px_sched_send(s, first, PARALLAX__ENVELOPE__BODY_FORWARD, &f)) {
        bool gone = px_net_send_peer_gone();
        char why[400];
        snprintf(why, sizeof why, "unreachable (%s)", px_error_get());
        end_attempt(s, r, false);
        requeue_front(s, r);
        if (!gone) return 1;
        px_sched_remove_worker(s, first, why);
        return -1;
    }
    if (r->n_attempts > 1)
        px_log_info("scheduler: request %llu attempt %u: %d-stage route from %s", (unsigned long long)r->id,
                    r->n_attempts, r->n_route, ids[0]);
    return 0;
}

/* Starts pending requests in arrival order while routes exist. Forwards to
 * the same first stage that go out in one turn form one burst. */
void px_sched_dispatch(px_sched *s) {
    uint64_t held = 0;
    int held_first = -1;
    for (int guard = 0; s->pending && guard < 1 << 16; guard++) {
        sreq *r = s->pending;
        s->pending = r->next;
        r->next = NULL;
        s->waiting--;
        if (begin_attempt(s, r)) {
            requeue_front(s, r);
            break; /* no route for anyone now */
        }
        int first = r->route[0];
        uint64_t mine = r->attempt;
        if (held) {
            int rc = send_attempt(s, held, held_first == first);
            /* sending can remove a worker and re-route (or even drop) this request: look it up again */
            r = px_u64map_get(&s->attempts, mine);
            if (rc == 1) { /* a full queue: this one waits behind the held one for the next turn */
                if (r) {
                    end_attempt(s, r, false);
                    r->state = RQ_PENDING;
                    r->t_pending = px_time_now();
                    if (s->pending) r->next = s->pending->next, s->pending->next = r;
                    else s->pending = r;
                    s->waiting++;
                }
                held = 0;
                break;
            }
        }
        held = r ? mine : 0, held_first = first;
    }
    if (held) send_attempt(s, held, false);
}

void px_sched_expire(px_sched *s, double now) {
    for (sreq *r = s->pending, *next; r; r = next) {
        next = r->next;
        if (now - r->t_pending <= s->opt.route_timeout) continue;
        char why[200];
        snprintf(why, sizeof why, "no pipeline of workers was available for %.0f s", now - r->t_pending);
        fail_request(s, r, why);
    }
}

/* ---- tokens ---- */

static px_finish_reason finish_of(Parallax__Finish f) {
    switch (f) {
    case PARALLAX__FINISH__STOP: return PX_FINISH_STOP;
    case PARALLAX__FINISH__LENGTH: return PX_FINISH_LENGTH;
    case PARALLAX__FINISH__ABORT: return PX_FINISH_ABORT;
    case PARALLAX__FINISH__ERROR: return PX_FINISH_ERROR;
    default: return PX_FINISH_NONE;
    }
}

void px_sched_on_token(px_sched *s, int slot, const Parallax__Token *t) {
    sreq *r = px_u64map_get(&s->attempts, t->req);
    if (!r) return; /* an abandoned attempt */
    if (t->finish == PARALLAX__FINISH__ERROR || t->finish == PARALLAX__FINISH__ABORT) {
        char why[700];
        snprintf(why, sizeof why, "%s reported: %s", s->workers[slot].id, *t->error ? t->error : "aborted");
        reroute(s, r, why);
        return;
    }
    uint32_t want = (uint32_t)(r->n_prompt + r->n_gen);
    if (t->pos != want) {
        px_log_debug("scheduler: request %llu: token at position %u dropped (expected %u)", (unsigned long long)r->id,
                     t->pos, want);
        return;
    }
    if (r->n_prompt + r->n_gen + 1 > r->cap) {
        r->cap = 2 * (r->n_prompt + r->n_gen + 1);
        r->tokens = px_realloc(r->tokens, (size_t)r->cap * sizeof *r->tokens);
    }
    r->tokens[r->n_prompt + r->n_gen++] = t->token;
    s->tokens_out++;
    px_finish_reason fin = finish_of(t->finish);
    queue_event(s, r, t->token, fin, NULL, t);
    if (fin != PX_FINISH_NONE) {
        s->finished++;
        finish_request(s, r, true);
    }
}

/* ---- the backend ---- */

static int validate(const px_sched *s, const int32_t *prompt, int n, const px_sampling *p) {
    int V = s->cfg.vocab;
    if (!s->has_model) return px_error_set("no model is chosen yet"), -1;
    if (!prompt || n < 1) return px_error_set("empty prompt"), -1;
    if (n >= s->context_length)
        return px_error_set("prompt of %d tokens; the context holds %d", n, s->context_length), -1;
    for (int i = 0; i < n; i++)
        if (prompt[i] < 0 || prompt[i] >= V) return px_error_set("prompt token %d is outside the vocabulary", prompt[i]), -1;
    if (!(p->temperature >= 0) || !isfinite(p->temperature)) return px_error_set("temperature %g", p->temperature), -1;
    if (!(p->top_p > 0 && p->top_p <= 1)) return px_error_set("top_p %g", p->top_p), -1;
    if (!(p->min_p >= 0 && p->min_p <= 1)) return px_error_set("min_p %g", p->min_p), -1;
    if (p->top_k < 0) return px_error_set("top_k %d", p->top_k), -1;
    if (!(p->repetition_penalty > 0) || !isfinite(p->repetition_penalty))
        return px_error_set("repetition_penalty %g", p->repetition_penalty), -1;
    if (!isfinite(p->presence_penalty) || !isfinite(p->frequency_penalty)) return px_error_set("penalties must be finite"), -1;
    if (p->top_logprobs < -1 || p->top_logprobs > PX_MAX_TOP_LOGPROBS) return px_error_set("top_logprobs %d", p->top_logprobs), -1;
    if (p->max_tokens < 1) return px_error_set("max_tokens %d", p->max_tokens), -1;
    if (p->n_logit_bias < 0 || p->n_logit_bias > PX_NET_MAX_LOGIT_BIAS) return px_error_set("too many logit_bias entries"), -1;
    for (int i = 0; i < p->n_logit_bias; i++)
        if (p->logit_bias_ids[i] < 0 || p->logit_bias_ids[i] >= V || !isfinite(p->logit_bias_values[i]))
            return px_error_set("logit_bias entry %d", i), -1;
    if (p->n_stop_ids < 0 || p->n_stop_ids > PX_NET_MAX_STOP_IDS) return px_error_set("too many stop ids"), -1;
    for (int i = 0; i < p->n_stop_ids; i++)
        if (p->stop_ids[i] < 0 || p->stop_ids[i] >= V) return px_error_set("stop id %d outside the vocabulary", p->stop_ids[i]), -1;
    return 0;
}

static void wake(px_sched *s) {
    uint64_t one = 1;
    if (write(s->wake_fd, &one, sizeof one) < 0) {}
}

static void push_cmd(px_sched *s, cmd *c) {
    pthread_mutex_lock(&s->cmd_mu);
    if (s->cmd_tail) s->cmd_tail->next = c;
    else s->cmd_head = c;
    s->cmd_tail = c;
    pthread_mutex_unlock(&s->cmd_mu);
    wake(s);
}

uint64_t px_sched_submit(void *ctx, const int32_t *prompt, int n_prompt, const px_sampling *sp, px_token_callback cb,
                         void *user) {
    px_sched *s = ctx;
    if (!sp || !cb) return px_error_set("submit: missing sampling or callback"), 0;
    if (atomic_load(&s->stop)) return px_error_set("the scheduler is shutting down"), 0;
    if (validate(s, prompt, n_prompt, sp)) return 0;
    sreq *r = px_calloc(1, sizeof *r);
    r->id = atomic_fetch_add(&s->next_id, 1);
    r->cap = n_prompt + PX_MIN(sp->max_tokens, 256) + 1;
    r->tokens = px_malloc((size_t)r->cap * sizeof *r->tokens);
    memcpy(r->tokens, prompt, (size_t)n_prompt * sizeof *prompt);
    r->n_prompt = n_prompt;
    r->s = *sp;
    if (sp->n_logit_bias) {
        r->bias_ids = px_malloc((size_t)sp->n_logit_bias * sizeof *r->bias_ids);
        r->bias_values = px_malloc((size_t)sp->n_logit_bias * sizeof *r->bias_values);
        memcpy(r->bias_ids, sp->logit_bias_ids, (size_t)sp->n_logit_bias * sizeof *r->bias_ids);
        memcpy(r->bias_values, sp->logit_bias_values, (size_t)sp->n_logit_bias * sizeof *r->bias_values);
    }
    if (sp->n_stop_ids) {
        r->stop_ids = px_malloc((size_t)sp->n_stop_ids * sizeof *r->stop_ids);
        memcpy(r->stop_ids, sp->stop_ids, (size_t)sp->n_stop_ids * sizeof *r->stop_ids);
    }
    r->s.logit_bias_ids = r->bias_ids, r->s.logit_bias_values = r->bias_values, r->s.stop_ids = r->stop_ids;
    if (!r->s.has_seed) { /* a seed now, so a re-routed request keeps its random stream */
        r->s.has_seed = true;
        r->s.seed = (uint64_t)(px_time_now() * 1e9) ^ (r->id * 0x9e3779b97f4a7c15ull);
    }
    r->cb = cb, r->user = user;
    r->t_submit = px_time_now();
    uint64_t id = r->id;
    cmd *c = px_calloc(1, sizeof *c);
    c->kind = CMD_SUBMIT, c->id = id, c->req = r;
    push_cmd(s, c); /* r may be gone by the time this returns: use the id saved above */
    return id;
}

void px_sched_abort(void *ctx, uint64_t id) {
    px_sched *s = ctx;
    cmd *c = px_calloc(1, sizeof *c);
    c->kind = CMD_ABORT, c->id = id;
    push_cmd(s, c);
}

void px_sched_handle_cmds(px_sched *s) {
    pthread_mutex_lock(&s->cmd_mu);
    cmd *c = s->cmd_head;
    s->cmd_head = s->cmd_tail = NULL;
    pthread_mutex_unlock(&s->cmd_mu);
    while (c) {
        cmd *next = c->next;
        if (c->kind == CMD_SUBMIT) {
            px_u64map_put(&s->reqs, c->req->id, c->req);
            pending_add(s, c->req);
            s->waiting++;
        } else {
            sreq *r = px_u64map_get(&s->reqs, c->id);
            if (r) {
                queue_event(s, r, -1, PX_FINISH_ABORT, NULL, NULL);
                finish_request(s, r, true);
            }
        }
        free(c);
        c = next;
    }
}

void px_sched_stats(void *ctx, px_engine_stats_t *out) {
    px_sched *s = ctx;
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&s->mu);
    out->running = s->running;
    out->waiting = s->waiting;
    out->requests_finished = s->finished;
    out->generated_tokens_total = s->tokens_out;
    out->context_length = s->context_length;
    for (int i = 0; i < s->cap_workers; i++) {
        const sworker *w = &s->workers[i];
        if (!w->used) continue;
        out->kv_blocks_total += w->kv_blocks_total;
        out->kv_blocks_used += w->kv_blocks_used;
        out->steps_total += w->steps;
    }
    out->block_size = 16;
    pthread_mutex_unlock(&s->mu);
}
