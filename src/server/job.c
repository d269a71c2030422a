/* job.c - one generation request between the HTTP thread and the engine.
 *
 * The engine's callback (executor thread) only copies each event into the
 * job's queue under its mutex and signals; all the slow work - detokenizing,
 * stop strings, reasoning split, logprob strings, JSON - happens on the
 * connection's thread in px_server_job_pump(), which waits on the condition
 * variable in short slices and between them polls the client's socket for a
 * hang-up (POLLRDHUP), so a vanished client aborts its request even while
 * nothing is being written to it. The detokenizer is first fed the prompt
 * (output discarded), so generated text is decoded in context: a
 * SentencePiece continuation keeps its leading space.
 *
 * Lifetime: reference counted. The HTTP request context holds one reference,
 * the engine one from submit until its final event, an SSE response one until
 * libmicrohttpd frees it. The last unref frees the job; server in-flight count
 * and the end-of-request metrics are settled when the HTTP side sets j->end.
 * The backend's final event may drop the last reference after the HTTP side
 * is done (even during shutdown): the model use and the in-flight count go
 * down as the very last steps of job_free, and px_server_free() waits for
 * the count to reach 0. A job keeps the model (tokenizer, name) it started
 * with: the server changes its model only while no job holds one. */
#include "server_internal.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- deltas ---- */

void px_delta_clear(px_delta *d) {
    d->content.len = d->reasoning.len = 0;
    if (d->content.data) d->content.data[0] = 0;
    if (d->reasoning.data) d->reasoning.data[0] = 0;
    d->n_lp = 0;
}

static px_lp_entry *delta_add_lp(px_delta *d) {
    if (d->n_lp == d->cap_lp) {
        d->cap_lp = d->cap_lp ? 2 * d->cap_lp : 16;
        d->lp = px_realloc(d->lp, (size_t)d->cap_lp * sizeof *d->lp);
    }
    return &d->lp[d->n_lp++];
}

void px_delta_append(px_delta *dst, const px_delta *src) {
    px_sbuf_add(&dst->content, src->content.data, src->content.len);
    px_sbuf_add(&dst->reasoning, src->reasoning.data, src->reasoning.len);
    for (int i = 0; i < src->n_lp; i++) *delta_add_lp(dst) = src->lp[i];
}

void px_delta_free(px_delta *d) {
    px_sbuf_free(&d->content);
    px_sbuf_free(&d->reasoning);
    free(d->lp);
    memset(d, 0, sizeof *d);
}

/* ---- lifetime ---- */

px_server_job *px_server_job_new(px_server *srv, const px_server_config *cfg, px_server_params *p, int fd,
                                 double t_start) {
    px_server_job *j = px_calloc(1, sizeof *j);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&j->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&j->mu, NULL);
    j->refs = 1;
    j->srv = srv;
    j->cfg = *cfg;
    j->p = *p;
    memset(p, 0, sizeof *p);
    j->fd = fd;
    j->t_start = t_start;
    j->created = (long)time(NULL);
    j->prompt_tokens = j->p.n_prompt;
    px_server_make_id(j->p.kind == PX_API_CHAT ? "chatcmpl" : "cmpl", j->id, sizeof j->id);
    j->detok = px_tokenizer_stream_new(cfg->tok, PX_TOK_SKIP_SPECIAL);
    for (int i = 0; i < j->p.n_prompt; i++) /* context: a continuation keeps its leading space */
        px_tokenizer_stream_feed(j->detok, j->p.prompt[i], NULL);
    px_textproc_init(&j->tp, j->p.stop, j->p.n_stop, j->p.think);
    atomic_fetch_add(&srv->in_flight, 1);
    return j;
}

void px_server_job_ref(px_server_job *j) {
    pthread_mutex_lock(&j->mu);
    j->refs++;
    pthread_mutex_unlock(&j->mu);
}

static void job_free(px_server_job *j) {
    px_server *srv = j->srv;
    px_tokenizer_stream_free(j->detok);
    px_textproc_free(&j->tp);
    px_server_params_free(&j->p);
    px_delta_free(&j->delta);
    px_delta_free(&j->total);
    px_sbuf_free(&j->out);
    free(j->q);
    free(j->q_time);
    free(j->engine_error);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
    free(j);
    /* last: the model may change once no job uses it, and px_server_free()
     * waits for in_flight == 0, so the server (and the tokenizer the
     * detokenizer used) outlive every job */
    px_server_model_release(srv);
    atomic_fetch_sub(&srv->in_flight, 1);
}

void px_server_job_unref(px_server_job *j) {
    pthread_mutex_lock(&j->mu);
    int left = --j->refs;
    pthread_mutex_unlock(&j->mu);
    if (!left) job_free(j);
}

/* ---- the engine side ---- */

static void on_engine_event(void *user, const px_token_event *ev) {
    px_server_job *j = user;
    double now = px_time_now();
    pthread_mutex_lock(&j->mu);
    /* A request can end before px_engine_submit() has returned; holding its
     * final event until then keeps the engine from freeing the request while
     * submit may still read it (the engine frees requests after callbacks). */
    while (ev->finish != PX_FINISH_NONE && !j->engine_id) pthread_cond_wait(&j->cv, &j->mu);
    if (j->q_len == j->q_cap) {
        j->q_cap = j->q_cap ? 2 * j->q_cap : 16;
        j->q = px_realloc(j->q, (size_t)j->q_cap * sizeof *j->q);
        j->q_time = px_realloc(j->q_time, (size_t)j->q_cap * sizeof *j->q_time);
    }
    j->q[j->q_len] = *ev;
    j->q[j->q_len].error = NULL; /* the engine's string dies with the callback */
    j->q_time[j->q_len++] = now;
    if (ev->finish != PX_FINISH_NONE) {
        j->engine_done = true;
        if (ev->error && !j->engine_error) j->engine_error = px_strdup(ev->error);
    }
    pthread_cond_signal(&j->cv);
    pthread_mutex_unlock(&j->mu);
    if (ev->finish != PX_FINISH_NONE) px_server_job_unref(j);
}

int px_server_job_submit(px_server_job *j, px_server_error *e) {
    px_server_job_ref(j); /* the engine's reference, dropped with its final event */
    const px_server_backend *be = &j->srv->backend;
    uint64_t id = be->submit(be->ctx, j->p.prompt, j->p.n_prompt, &j->p.sampling, on_engine_event, j);
    if (!id) {
        px_server_job_unref(j);
        j->end = PX_END_ERROR;
        return px_server_fail(e, 503, NULL, "engine_unavailable", "the engine did not accept the request: %s", px_error_get());
    }
    pthread_mutex_lock(&j->mu);
    j->engine_id = id;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    if (j->p.echo && j->p.echo_text) px_sbuf_adds(&j->delta.content, j->p.echo_text);
    return 0;
}

void px_server_job_abort(px_server_job *j) {
    pthread_mutex_lock(&j->mu);
    uint64_t id = j->engine_done ? 0 : j->engine_id;
    pthread_mutex_unlock(&j->mu);
    if (id) j->srv->backend.abort(j->srv->backend.ctx, id);
}

/* ---- the HTTP side ---- */

static const char *end_name(px_end end) {
    switch (end) {
    case PX_END_STOP: return "stop";
    case PX_END_LENGTH: return "length";
    case PX_END_ABORT: return "abort";
    default: return "error";
    }
}

static void set_end(px_server_job *j, px_end end) {
    if (j->end != PX_END_NONE) return;
    j->end = end;
    px_server_metrics_done(j->srv->metrics, end_name(end), px_time_now() - j->t_start, j->prompt_tokens,
                           j->completion_tokens, j->cached_tokens);
}

/* Sanitized text through the stop/reasoning stages into the delta. */
static bool feed_text(px_server_job *j, const char *text, size_t n) {
    if (!n) return false;
    px_sbuf clean = {0};
    px_server_utf8_sanitize(text, n, &clean);
    j->text_len += clean.len;
    bool stopped = px_textproc_feed(&j->tp, clean.data, clean.len, &j->delta.reasoning, &j->delta.content);
    px_sbuf_free(&clean);
    return stopped;
}

static void record_logprobs(px_server_job *j, const px_token_event *ev) {
    if (j->p.logprobs < 0) return;
    px_lp_entry *e = delta_add_lp(&j->delta);
    e->token = ev->token;
    e->logprob = ev->logprob;
    e->n_top = PX_MIN(ev->n_top, j->p.logprobs);
    memcpy(e->top_ids, ev->top_ids, sizeof e->top_ids);
    memcpy(e->top_logprobs, ev->top_logprobs, sizeof e->top_logprobs);
    e->text_offset = j->text_len;
}

static void on_token(px_server_job *j, const px_token_event *ev, double t) {
    j->completion_tokens++;
    if (j->completion_tokens == 1) {
        j->t_first = t;
        px_server_metrics_ttft(j->srv->metrics, t - j->t_start);
    } else px_server_metrics_itl(j->srv->metrics, t - j->t_last);
    j->t_last = t;
    record_logprobs(j, ev);
    size_t n = 0;
    const char *text = px_tokenizer_stream_feed(j->detok, ev->token, &n);
    if (text && feed_text(j, text, n)) {
        px_server_job_abort(j); /* a stop string: the engine need not go on */
        set_end(j, PX_END_STOP);
    }
}

static void on_finish(px_server_job *j, const px_token_event *ev) {
    size_t n = 0;
    const char *rest = px_tokenizer_stream_finish(j->detok, &n);
    if (rest && feed_text(j, rest, n)) return set_end(j, PX_END_STOP);
    px_textproc_flush(&j->tp, &j->delta.reasoning, &j->delta.content);
    switch (ev->finish) {
    case PX_FINISH_STOP: set_end(j, PX_END_STOP); break;
    case PX_FINISH_LENGTH: set_end(j, PX_END_LENGTH); break;
    case PX_FINISH_ABORT: set_end(j, PX_END_ABORT); break;
    default: set_end(j, PX_END_ERROR); break;
    }
}

static void process_event(px_server_job *j, const px_token_event *ev, double t) {
    if (j->end != PX_END_NONE) return; /* tokens after a stop string */
    if (ev->prompt_tokens > 0) j->prompt_tokens = ev->prompt_tokens;
    if (ev->cached_tokens > j->cached_tokens) j->cached_tokens = ev->cached_tokens;
    if (ev->token >= 0) on_token(j, ev, t);
    if (ev->finish != PX_FINISH_NONE && j->end == PX_END_NONE) on_finish(j, ev);
}

static bool client_gone(const px_server_job *j) {
    if (j->fd < 0) return false;
    struct pollfd pfd = {.fd = j->fd, .events = POLLRDHUP};
    return poll(&pfd, 1, 0) > 0 && (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

/* Waits for events and moves them out of the queue (*n of them). */
static int take_events(px_server_job *j, int timeout_ms, px_token_event **evs, double **times) {
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_sec += timeout_ms / 1000;
    dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) dl.tv_sec++, dl.tv_nsec -= 1000000000L;
    pthread_mutex_lock(&j->mu);
    while (!j->q_len && pthread_cond_timedwait(&j->cv, &j->mu, &dl) != ETIMEDOUT) {}
    int n = j->q_len;
    *evs = j->q;
    *times = j->q_time;
    j->q = NULL, j->q_time = NULL, j->q_len = j->q_cap = 0;
    pthread_mutex_unlock(&j->mu);
    return n;
}

void px_server_job_cancel(px_server_job *j) {
    if (j->end != PX_END_NONE) return;
    j->gone = true;
    px_server_job_abort(j);
    set_end(j, PX_END_ABORT);
}

int px_server_job_pump(px_server_job *j, int timeout_ms) {
    if (j->end != PX_END_NONE) return 1;
    px_token_event *evs;
    double *times;
    int n = take_events(j, timeout_ms, &evs, &times);
    for (int i = 0; i < n; i++) process_event(j, &evs[i], times[i]);
    free(evs);
    free(times);
    if (j->end == PX_END_NONE && (client_gone(j) || atomic_load(&j->srv->stopping))) {
        px_server_job_cancel(j);
        return -1;
    }
    return n > 0 || j->end != PX_END_NONE || j->delta.content.len ? 1 : 0;
}
