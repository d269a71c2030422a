/* server.h - the HTTP front of a node: an OpenAI-compatible API over one
 * engine (libmicrohttpd, one thread per connection).
 *
 *   POST /v1/chat/completions   chat template -> engine; stream (SSE) or not
 *   POST /v1/completions        raw prompt (text or token ids) -> engine
 *   GET  /v1/models[/ID]        the served model
 *   GET  /health                200 {"status":"ok"} while serving, 503 while stopping
 *   GET  /metrics               Prometheus text (requests, tokens, TTFT and
 *                               inter-token histograms, queue, KV blocks, prefix hits)
 *   GET  /cluster/status[/stream]  with a backend that describes a cluster
 *   other /cluster/ paths       the backend's route hook (parallax run: the
 *                               Setup and Join endpoints)
 *
 * The model can change at run time (px_server_set_model; parallax run's
 * Setup): each generation holds the model it started with, and a change
 * happens only while none is in flight. Without a model /v1 answers 503
 * (code model_not_chosen).
 *
 * The server tokenizes, applies stop strings to the detokenized text (text
 * that might begin a stop string is held back, never streamed past it), splits
 * Qwen3-style <think>...</think> into reasoning_content, and aborts the engine
 * request when the client goes away. docs/server.md describes the API.
 *
 * Ownership: the server borrows the engine and tokenizer; stop (or free) the
 * server before freeing them. Threads: create/start/stop/free from one thread.
 */
#ifndef PX_SERVER_H
#define PX_SERVER_H

#include "engine.h"
#include "tokenizer.h"
#include <stdbool.h>
#include <stddef.h>

typedef struct {
    const char *host;        /* address to bind (default "127.0.0.1"; "0.0.0.0" or "::" for all) */
    int port;                /* default 3000; 0 picks a free port (see px_server_port) */
    const char *api_key;     /* non-NULL: the /v1 routes need "Authorization: Bearer KEY" */
    const char *model_name;  /* the id clients use (default "default") */
    size_t max_body_bytes;   /* larger request bodies get 413 (default 4 MiB) */
    int max_connections;     /* concurrent connections (default 512) */
    int max_requests;        /* generations in flight before 429 (default 1024) */
    int max_tokens_limit;    /* largest max_tokens accepted (default: the context length) */
} px_server_options;

typedef struct px_server px_server;

/* context_length: the longest prompt + completion (the model's or engine's). */
px_server *px_server_create(px_engine *engine, const px_tokenizer *tok, int context_length,
                            const px_server_options *opt);

/* What generates behind the API. px_server_create() uses the local engine;
 * `parallax run` puts the cluster's scheduler here instead (requests go into
 * the pipeline). submit/abort/stats follow px_engine_submit/abort/stats
 * exactly (same events, same threading rules: the callback must be quick).
 * Optional (NULL: absent): status_json answers GET /cluster/status (a new
 * JSON string) and, once a second, GET /cluster/status/stream (NDJSON);
 * metrics_text appends Prometheus text to /metrics (a new string). */
/* A request to a backend route (px_server_backend.route), with what the
 * server knows about who sent it. */
typedef struct {
    const char *method;       /* "GET", "POST", ... */
    const char *path;         /* the URL path, e.g. "/cluster/setup" */
    const char *body;         /* the request body, NUL-terminated ("" when none) */
    size_t body_len;
    bool loopback;            /* the client connected from 127.0.0.0/8 or ::1, and the Host
                                 header names a loopback host (no DNS-rebinding name) */
    bool same_origin;         /* no Origin header, or one naming the Host: not a page of another site */
    bool api_key_set;         /* the server runs with an API key */
    bool api_key_ok;          /* the request carried it (Authorization: Bearer KEY) */
} px_server_call;

typedef struct {
    void *ctx;
    uint64_t (*submit)(void *ctx, const int32_t *prompt, int n_prompt, const px_sampling *s, px_token_callback cb,
                       void *user);
    void (*abort)(void *ctx, uint64_t request_id);
    void (*stats)(void *ctx, px_engine_stats_t *out);
    char *(*status_json)(void *ctx);
    char *(*metrics_text)(void *ctx);
    /* Optional: other paths under /cluster/. Returns the HTTP status and sets
     * *json to a new body (px_server_error_body() for a status >= 400), or
     * returns 0 for a path it does not know (the server answers 404). Called
     * on the connection's thread; it may block (e.g. while a model loads).
     * These answers carry no CORS header: only the page itself reads them. */
    int (*route)(void *ctx, const px_server_call *call, char **json);
} px_server_backend;

/* tok may be NULL: no model yet (/v1 answers 503 until px_server_set_model). */
px_server *px_server_create_backend(const px_server_backend *backend, const px_tokenizer *tok, int context_length,
                                    const px_server_options *opt);

/* A model the API speaks for: its tokenizer (with the chat template), the
 * id clients use (NULL: px_server_options.model_name) and the context
 * length. When release is set, the server calls release(owner) once it no
 * longer needs tok (the model was replaced, or the server is freed). */
typedef struct {
    const px_tokenizer *tok;
    const char *name;
    int context_length;
    void (*release)(void *owner);
    void *owner;
} px_server_model;

/* Makes *m the model (copied; m NULL or m->tok NULL: no model). Only while no
 * generation is in flight: no new one starts until this returns. commit
 * (optional) runs first, under that lock; a non-zero result cancels the
 * change. Returns 0 (changed: the server owns m), 1 (generations in flight:
 * nothing changed) or commit's result. Unless 0, the caller keeps m. */
int px_server_set_model(px_server *s, const px_server_model *m, int (*commit)(void *user), void *user);

/* {"error": {"message", "type" (from the status), "param": null, "code"}}
 * as the API writes it (a new string). */
char *px_server_error_body(int status, const char *code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Binds and starts serving; 0 or -1 + error (e.g. the port is taken). */
int px_server_start(px_server *s);
int px_server_port(const px_server *s);
/* Stops accepting, aborts requests in flight and waits for their threads. */
void px_server_stop(px_server *s);
void px_server_free(px_server *s);

#endif
