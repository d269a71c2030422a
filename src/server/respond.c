/* respond.c - OpenAI response JSON for a job: the non-stream body of
 * chat.completion / text_completion, and SSE events of
 * chat.completion.chunk / text_completion chunks:
 *
 *   chat: a first chunk with delta {role:"assistant", content:""}, then one
 *   chunk per pump with the new content / reasoning_content (and logprobs),
 *   then a chunk with an empty delta and finish_reason, then (with
 *   stream_options.include_usage) a chunk with "choices": [] and usage, then
 *   "data: [DONE]". Completions the same with "text". An engine failure
 *   after the stream started becomes a data: {"error": ...} event before
 *   [DONE].
 *
 * Logprob token strings are the single-token decodes (special tokens shown),
 * made valid UTF-8; "bytes" are the bytes of that string. */
#include "server_internal.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

const char *px_server_finish_reason(px_end end) {
    switch (end) {
    case PX_END_STOP: return "stop";
    case PX_END_LENGTH: return "length";
    case PX_END_NONE: return NULL;
    default: return "abort";
    }
}

/* ---- pieces ---- */

static cJSON *usage_json(const px_server_job *j) {
    cJSON *u = cJSON_CreateObject();
    cJSON_AddNumberToObject(u, "prompt_tokens", j->prompt_tokens);
    cJSON_AddNumberToObject(u, "completion_tokens", j->completion_tokens);
    cJSON_AddNumberToObject(u, "total_tokens", j->prompt_tokens + j->completion_tokens);
    cJSON *d = cJSON_AddObjectToObject(u, "prompt_tokens_details");
    cJSON_AddNumberToObject(d, "cached_tokens", j->cached_tokens);
    return u;
}

static cJSON *envelope(const px_server_job *j, const char *object) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", j->id);
    cJSON_AddStringToObject(o, "object", object);
    cJSON_AddNumberToObject(o, "created", (double)j->created);
    cJSON_AddStringToObject(o, "model", j->cfg.model_name);
    return o;
}

static void add_string_n(cJSON *o, const char *key, const char *s, size_t n) {
    px_sbuf clean = {0};
    px_server_utf8_sanitize(s ? s : "", s ? n : 0, &clean);
    cJSON_AddStringToObject(o, key, clean.data ? clean.data : "");
    px_sbuf_free(&clean);
}

/* The token's text (new, valid UTF-8). */
static char *token_text(const px_server_job *j, int32_t id) {
    size_t n = 0;
    char *raw = px_tokenizer_decode(j->cfg.tok, &id, 1, 0, &n);
    px_sbuf clean = {0};
    px_server_utf8_sanitize(raw ? raw : "", raw ? n : 0, &clean);
    free(raw);
    return px_sbuf_take(&clean);
}

static cJSON *chat_token(const px_server_job *j, int32_t id, float lp) {
    cJSON *t = cJSON_CreateObject(), *bytes = cJSON_CreateArray();
    char *s = token_text(j, id);
    cJSON_AddStringToObject(t, "token", s);
    cJSON_AddNumberToObject(t, "logprob", lp);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) cJSON_AddItemToArray(bytes, cJSON_CreateNumber(*p));
    cJSON_AddItemToObject(t, "bytes", bytes);
    free(s);
    return t;
}

static cJSON *chat_logprobs(const px_server_job *j, const px_delta *d) {
    cJSON *o = cJSON_CreateObject(), *content = cJSON_AddArrayToObject(o, "content");
    for (int i = 0; i < d->n_lp; i++) {
        const px_lp_entry *e = &d->lp[i];
        cJSON *t = chat_token(j, e->token, e->logprob), *top = cJSON_AddArrayToObject(t, "top_logprobs");
        for (int k = 0; k < e->n_top; k++) cJSON_AddItemToArray(top, chat_token(j, e->top_ids[k], e->top_logprobs[k]));
        cJSON_AddItemToArray(content, t);
    }
    return o;
}

static cJSON *completion_logprobs(const px_server_job *j, const px_delta *d) {
    cJSON *o = cJSON_CreateObject(), *tokens = cJSON_AddArrayToObject(o, "tokens");
    cJSON *lps = cJSON_AddArrayToObject(o, "token_logprobs"), *tops = cJSON_AddArrayToObject(o, "top_logprobs");
    cJSON *offs = cJSON_AddArrayToObject(o, "text_offset");
    for (int i = 0; i < d->n_lp; i++) {
        const px_lp_entry *e = &d->lp[i];
        char *s = token_text(j, e->token);
        cJSON_AddItemToArray(tokens, cJSON_CreateString(s));
        free(s);
        cJSON_AddItemToArray(lps, cJSON_CreateNumber(e->logprob));
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)e->text_offset));
        cJSON *top = cJSON_CreateObject();
        for (int k = 0; k < e->n_top; k++) {
            char *ts = token_text(j, e->top_ids[k]);
            if (!cJSON_GetObjectItemCaseSensitive(top, ts)) cJSON_AddNumberToObject(top, ts, e->top_logprobs[k]);
            free(ts);
        }
        cJSON_AddItemToArray(tops, top);
    }
    return o;
}

static void add_logprobs(cJSON *choice, const px_server_job *j, const px_delta *d) {
    if (j->p.logprobs < 0) cJSON_AddNullToObject(choice, "logprobs");
    else if (j->p.kind == PX_API_CHAT) cJSON_AddItemToObject(choice, "logprobs", chat_logprobs(j, d));
    else cJSON_AddItemToObject(choice, "logprobs", completion_logprobs(j, d));
}

static void add_finish(cJSON *choice, px_end end) {
    const char *r = px_server_finish_reason(end);
    if (r) cJSON_AddStringToObject(choice, "finish_reason", r);
    else cJSON_AddNullToObject(choice, "finish_reason");
}

static char *print_free(cJSON *o) {
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

/* ---- non-stream ---- */

char *px_server_final_json(px_server_job *j) {
    bool chat = j->p.kind == PX_API_CHAT;
    cJSON *o = envelope(j, chat ? "chat.completion" : "text_completion");
    cJSON *choices = cJSON_AddArrayToObject(o, "choices"), *c = cJSON_CreateObject();
    cJSON_AddNumberToObject(c, "index", 0);
    const px_delta *t = &j->total;
    if (chat) {
        cJSON *m = cJSON_AddObjectToObject(c, "message");
        cJSON_AddStringToObject(m, "role", "assistant");
        add_string_n(m, "content", t->content.data, t->content.len);
        if (t->reasoning.len) add_string_n(m, "reasoning_content", t->reasoning.data, t->reasoning.len);
    } else add_string_n(c, "text", t->content.data, t->content.len);
    add_logprobs(c, j, t);
    add_finish(c, j->end);
    cJSON_AddItemToArray(choices, c);
    cJSON_AddItemToObject(o, "usage", usage_json(j));
    return print_free(o);
}

/* ---- stream ---- */

static void emit(px_server_job *j, cJSON *o) {
    char *s = print_free(o);
    px_sbuf_adds(&j->out, "data: ");
    px_sbuf_adds(&j->out, s);
    px_sbuf_adds(&j->out, "\n\n");
    free(s);
}

static cJSON *chunk(px_server_job *j, const px_delta *d, px_end end, bool role) {
    bool chat = j->p.kind == PX_API_CHAT;
    cJSON *o = envelope(j, chat ? "chat.completion.chunk" : "text_completion");
    cJSON *choices = cJSON_AddArrayToObject(o, "choices"), *c = cJSON_CreateObject();
    cJSON_AddNumberToObject(c, "index", 0);
    if (chat) {
        cJSON *delta = cJSON_AddObjectToObject(c, "delta");
        if (role) cJSON_AddStringToObject(delta, "role", "assistant");
        if (role || d->content.len) add_string_n(delta, "content", d->content.data, d->content.len);
        if (d->reasoning.len) add_string_n(delta, "reasoning_content", d->reasoning.data, d->reasoning.len);
    } else add_string_n(c, "text", d->content.data, d->content.len);
    if (d->n_lp || j->p.logprobs < 0) add_logprobs(c, j, d);
    else cJSON_AddNullToObject(c, "logprobs");
    add_finish(c, end);
    cJSON_AddItemToArray(choices, c);
    if (j->p.include_usage) cJSON_AddNullToObject(o, "usage");
    return o;
}

static void emit_end(px_server_job *j) {
    static const px_delta empty;
    if (j->end == PX_END_ERROR || j->end == PX_END_ABORT) {
        px_server_error e;
        if (j->end == PX_END_ERROR) px_server_fail(&e, 500, NULL, "engine_error", "generation failed: %s", j->engine_error ? j->engine_error : "unknown error");
        else px_server_fail(&e, 503, NULL, "aborted", "the request was aborted by the server");
        char *s = px_server_error_json(&e);
        px_sbuf_printf(&j->out, "data: %s\n\n", s);
        free(s);
    } else emit(j, chunk(j, &empty, j->end, false));
    if (j->p.include_usage) {
        cJSON *o = envelope(j, j->p.kind == PX_API_CHAT ? "chat.completion.chunk" : "text_completion");
        cJSON_AddArrayToObject(o, "choices");
        cJSON_AddItemToObject(o, "usage", usage_json(j));
        emit(j, o);
    }
    px_sbuf_adds(&j->out, "data: [DONE]\n\n");
    j->sent_done = true;
}

void px_server_sse_emit(px_server_job *j) {
    px_delta *d = &j->delta;
    if (!j->sent_start && j->p.kind == PX_API_CHAT) {
        static const px_delta empty;
        emit(j, chunk(j, &empty, PX_END_NONE, true));
    }
    j->sent_start = true;
    if (d->content.len || d->reasoning.len || d->n_lp) emit(j, chunk(j, d, PX_END_NONE, false));
    px_delta_clear(d);
    if (j->end != PX_END_NONE && !j->sent_done) emit_end(j);
}
