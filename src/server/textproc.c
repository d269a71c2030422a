/* textproc.c - what happens to generated text between the detokenizer and
 * the client, identically for streamed and non-streamed responses (so the
 * stream's deltas always concatenate to the non-stream text):
 *
 * 1. Stop strings. New text joins a hold buffer. If a stop string occurs in
 *    it, the text before the earliest occurrence passes and generation ends.
 *    Otherwise everything passes except the longest tail that is a proper
 *    prefix of some stop string: that tail could still become a stop string,
 *    so it is never sent before the next text decides.
 * 2. Reasoning (Qwen3-style). In state START the output may open with
 *    "<think>" (after whitespace): text is held until that is decided. In
 *    state IN, text up to "</think>" is reasoning (a tail that could begin
 *    "</think>" is held); after it, text is content. Whitespace at the start
 *    of the reasoning and of the content after "</think>" is dropped. */
#include "server_internal.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define OPEN_TAG "<think>"
#define CLOSE_TAG "</think>"

void px_textproc_init(px_textproc *tp, char **stop, int n_stop, px_think_state think) {
    *tp = (px_textproc){.stop = stop, .n_stop = n_stop, .think = think};
}

void px_textproc_free(px_textproc *tp) {
    px_sbuf_free(&tp->hold);
    px_sbuf_free(&tp->thold);
}

/* Drops the first n bytes of b. */
static void sbuf_consume(px_sbuf *b, size_t n) {
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->data[b->len] = 0;
}

/* Length of the longest tail of s that is a proper prefix of tag. */
static size_t partial_tail(const char *s, size_t n, const char *tag, size_t tag_len) {
    for (size_t k = PX_MIN(n, tag_len - 1); k > 0; k--)
        if (!memcmp(s + n - k, tag, k)) return k;
    return 0;
}

/* Appends text, dropping leading whitespace until something else was added. */
static void add_trimmed(px_sbuf *out, bool *started, const char *s, size_t n) {
    while (!*started && n && isspace((unsigned char)*s)) s++, n--;
    if (n) *started = true, px_sbuf_add(out, s, n);
}

/* ---- stage 2: reasoning split ---- */

static void route(px_textproc *tp, const char *s, size_t n, px_sbuf *reasoning, px_sbuf *content);

static void route_start(px_textproc *tp, px_sbuf *reasoning, px_sbuf *content) {
    size_t ws = 0, olen = strlen(OPEN_TAG);
    while (ws < tp->thold.len && isspace((unsigned char)tp->thold.data[ws])) ws++;
    size_t rest = tp->thold.len - ws;
    if (rest >= olen && !memcmp(tp->thold.data + ws, OPEN_TAG, olen)) {
        tp->think = PX_THINK_IN;
        sbuf_consume(&tp->thold, ws + olen);
        size_t n = tp->thold.len;
        char *left = px_sbuf_take(&tp->thold);
        route(tp, left, n, reasoning, content);
        free(left);
    } else if (rest < olen && !memcmp(tp->thold.data + ws, OPEN_TAG, rest)) {
        return; /* may still become <think> */
    } else {
        tp->think = PX_THINK_OFF;
        add_trimmed(content, &tp->content_started, tp->thold.data, tp->thold.len);
        tp->thold.len = 0;
    }
}

static void route_in(px_textproc *tp, px_sbuf *reasoning, px_sbuf *content) {
    size_t clen = strlen(CLOSE_TAG);
    char *hit = tp->thold.len ? memmem(tp->thold.data, tp->thold.len, CLOSE_TAG, clen) : NULL;
    if (hit) {
        size_t pos = (size_t)(hit - tp->thold.data);
        add_trimmed(reasoning, &tp->reasoning_started, tp->thold.data, pos);
        tp->think = PX_THINK_DONE;
        tp->content_started = false;
        sbuf_consume(&tp->thold, pos + clen);
        add_trimmed(content, &tp->content_started, tp->thold.data, tp->thold.len);
        tp->thold.len = 0;
        return;
    }
    size_t keep = partial_tail(tp->thold.data, tp->thold.len, CLOSE_TAG, clen);
    add_trimmed(reasoning, &tp->reasoning_started, tp->thold.data, tp->thold.len - keep);
    sbuf_consume(&tp->thold, tp->thold.len - keep);
}

static void route(px_textproc *tp, const char *s, size_t n, px_sbuf *reasoning, px_sbuf *content) {
    if (tp->think == PX_THINK_OFF || tp->think == PX_THINK_DONE) {
        if (tp->think == PX_THINK_DONE) add_trimmed(content, &tp->content_started, s, n);
        else tp->content_started = true, px_sbuf_add(content, s, n);
        return;
    }
    px_sbuf_add(&tp->thold, s, n);
    if (tp->think == PX_THINK_START) route_start(tp, reasoning, content);
    else route_in(tp, reasoning, content);
}

/* ---- stage 1: stop strings ---- */

bool px_textproc_feed(px_textproc *tp, const char *text, size_t len, px_sbuf *reasoning, px_sbuf *content) {
    if (tp->stopped) return true;
    if (!tp->n_stop) return route(tp, text, len, reasoning, content), false;
    px_sbuf_add(&tp->hold, text, len);
    const char *h = tp->hold.data;
    size_t n = tp->hold.len, best = n + 1, keep = 0;
    for (int i = 0; i < tp->n_stop; i++) {
        size_t sl = strlen(tp->stop[i]);
        const char *hit = memmem(h, n, tp->stop[i], sl);
        if (hit && (size_t)(hit - h) < best) best = (size_t)(hit - h);
        keep = PX_MAX(keep, partial_tail(h, n, tp->stop[i], sl));
    }
    if (best <= n) {
        route(tp, h, best, reasoning, content);
        tp->hold.len = 0;
        tp->stopped = true;
        return true;
    }
    route(tp, h, n - keep, reasoning, content);
    sbuf_consume(&tp->hold, n - keep);
    return false;
}

void px_textproc_flush(px_textproc *tp, px_sbuf *reasoning, px_sbuf *content) {
    if (!tp->stopped && tp->hold.len) {
        size_t n = tp->hold.len;
        char *left = px_sbuf_take(&tp->hold);
        route(tp, left, n, reasoning, content);
        free(left);
    }
    if (!tp->thold.len) return;
    if (tp->think == PX_THINK_IN) add_trimmed(reasoning, &tp->reasoning_started, tp->thold.data, tp->thold.len);
    else add_trimmed(content, &tp->content_started, tp->thold.data, tp->thold.len);
    tp->thold.len = 0;
}
