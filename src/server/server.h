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
typedef struct {
    void *ctx;
    uint64_t (*submit)(void *ctx, const int32_t *prompt, int n_prompt, const px_sampling *s, px_token_callback cb,
                       void *user);
    void (*abort)(void *ctx, uint64_t request_id);
    void (*stats)(void *ctx, px_engine_stats_t *out);
    char *(*status_json)(void *ctx);
    char *(*metrics_text)(void *ctx);
} px_server_backend;

px_server *px_server_create_backend(const px_server_backend *backend, const px_tokenizer *tok, int context_length,
                                    const px_server_options *opt);
/* Binds and starts serving; 0 or -1 + error (e.g. the port is taken). */
int px_server_start(px_server *s);
int px_server_port(const px_server *s);
/* Stops accepting, aborts requests in flight and waits for their threads. */
void px_server_stop(px_server *s);
void px_server_free(px_server *s);

#endif
