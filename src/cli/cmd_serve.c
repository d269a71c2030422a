/* cmd_serve.c - `parallax serve`: the single-machine server. Resolves the
 * model (a local directory, or a Hugging Face repo id downloaded into the HF
 * cache by px_hub), loads tokenizer and model, starts the engine's executor
 * and the HTTP server, then waits for SIGINT/SIGTERM and shuts down in order
 * (HTTP first, so requests in flight are aborted, then engine, then model).
 * The signals are blocked before any thread starts, so only sigwait() here
 * ever sees them. */
#include "cli.h"
#include "engine.h"
#include "hub.h"
#include "model.h"
#include "server.h"
#include "tokenizer.h"

#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *model, *host, *api_key, *name, *revision;
    long port, threads, max_batch, max_tokens_batch, chunk, block_size, max_body, max_requests;
    int dtype;
    int64_t kv_bytes;
    double kv_fraction;
    bool no_prefix_cache;
} serve_args;

static void print_help(void) {
    printf("usage: parallax serve -m MODEL [options]\n"
           "  -m, --model MODEL               a Hugging Face model directory, or a repo id (Qwen/Qwen3-0.6B)\n"
           "                                  downloaded into the HF cache ($HF_HOME, $HF_ENDPOINT, $HF_TOKEN)\n"
           "      --revision REV              hub branch, tag or commit (default main)\n"
           "      --host ADDR                 address to listen on (default 127.0.0.1)\n"
           "      --port N                    port (default 3000; 0 picks a free one)\n"
           "      --dtype D                   weight dtype: f32, f16, bf16, q8_0, q4_0 (default: as stored)\n"
           "  -t, --threads N                 compute threads (default: all CPUs)\n"
           "      --kv-cache-memory M         KV cache: bytes (4G, 512M, 1073741824) or a fraction\n"
           "                                  of free memory (0.3, the default)\n"
           "      --max-batch-size B          requests per step (default 32)\n"
           "      --max-num-tokens-per-batch T  tokens per step (default 2048)\n"
           "      --chunked-prefill-size C    largest prefill chunk per request and step (default 512)\n"
           "      --block-size N              tokens per KV block (default 16)\n"
           "      --disable-prefix-cache      do not reuse KV blocks across requests\n"
           "      --api-key KEY               require 'Authorization: Bearer KEY' on /v1 (also $PARALLAX_API_KEY)\n"
           "      --served-model-name NAME    the model id clients use (default: repo id or directory name)\n"
           "      --max-body-bytes N          largest request body (default 4194304)\n"
           "      --max-requests N            generations in flight before new ones get 429 (default 1024)\n"
           "Endpoints: POST /v1/chat/completions, POST /v1/completions, GET /v1/models, /health, /metrics\n"
           "(docs/server.md).\n");
}

static int parse_int_flag(const char *f, const char *v, serve_args *a) {
    struct { const char *name; long *out; long lo, hi; } ints[] = {
        {"--port", &a->port, 0, 65535}, {"-t", &a->threads, 1, 1024}, {"--threads", &a->threads, 1, 1024},
        {"--max-batch-size", &a->max_batch, 1, 65536}, {"--max-num-tokens-per-batch", &a->max_tokens_batch, 1, 1 << 20},
        {"--chunked-prefill-size", &a->chunk, 1, 1 << 20}, {"--block-size", &a->block_size, 1, 4096},
        {"--max-body-bytes", &a->max_body, 1024, 1L << 30}, {"--max-requests", &a->max_requests, 1, 1 << 20}};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        if (!strcmp(f, ints[i].name)) return px_flag_int(f, v, ints[i].lo, ints[i].hi, ints[i].out) ? 0 : 2;
    return -1;
}

static int parse_flag(const char *f, const char *v, serve_args *a) {
    int rc = parse_int_flag(f, v, a);
    if (rc >= 0) return rc;
    if (!strcmp(f, "-m") || !strcmp(f, "--model")) a->model = v;
    else if (!strcmp(f, "--host")) a->host = v;
    else if (!strcmp(f, "--api-key")) a->api_key = v;
    else if (!strcmp(f, "--served-model-name")) a->name = v;
    else if (!strcmp(f, "--revision")) a->revision = v;
    else if (!strcmp(f, "--kv-cache-memory")) return px_flag_memory("--kv-cache-memory", v, &a->kv_bytes, &a->kv_fraction) ? 0 : 2;
    else if (!strcmp(f, "--dtype")) {
        if ((a->dtype = px_dtype_parse(v)) < 0) return px_usage_error("--dtype: unknown dtype '%s' (f32, f16, bf16, q8_0, q4_0)", v);
    } else return px_usage_error("serve: unknown flag '%s' (see parallax serve --help)", f);
    return 0;
}

static int parse_args(int argc, char **argv, serve_args *a) {
    *a = (serve_args){.host = "127.0.0.1", .port = 3000, .dtype = -1, .api_key = getenv("PARALLAX_API_KEY")};
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i], *v;
        if (!strcmp(f, "-h") || !strcmp(f, "--help")) return print_help(), 1;
        if (!strcmp(f, "--disable-prefix-cache")) { a->no_prefix_cache = true; continue; }
        if (!(v = px_flag_value(argc, argv, &i))) return 2;
        int rc = parse_flag(f, v, a);
        if (rc) return rc;
    }
    if (!a->model) return px_usage_error("serve: -m MODEL is required (a directory or a Hugging Face repo id)");
    return 0;
}

/* The default model id: the repo id, or the directory's last component. */
static char *default_name(const char *model) {
    char *s = px_strdup(model);
    size_t n = strlen(s);
    while (n > 1 && s[n - 1] == '/') s[--n] = 0;
    if (px_hub_is_repo_id(s)) return s;
    const char *slash = strrchr(s, '/');
    char *name = px_strdup(slash ? slash + 1 : s);
    free(s);
    return name;
}

typedef struct {
    px_tokenizer *tok;
    px_model *model;
    px_engine *engine;
    px_server *server;
} serve_state;

static void teardown(serve_state *st) {
    px_server_free(st->server);
    px_engine_free(st->engine);
    px_model_free(st->model);
    px_tokenizer_free(st->tok);
}

static int start_all(const serve_args *a, const char *dir, const char *name, serve_state *st) {
    if (!(st->tok = px_tokenizer_load(dir))) return -1;
    px_load_options lo = {.start = 0, .end = 0, .dtype = a->dtype};
    if (!(st->model = px_model_load(dir, &lo))) return -1;
    px_engine_options eo;
    px_engine_options_defaults(&eo);
    eo.n_threads = (int)a->threads;
    if (a->kv_bytes) eo.kv_cache_bytes = a->kv_bytes;
    if (a->kv_fraction > 0) eo.kv_cache_fraction = a->kv_fraction;
    if (a->block_size) eo.block_size = (int)a->block_size;
    if (a->max_batch) eo.max_batch_size = (int)a->max_batch;
    if (a->max_tokens_batch) eo.max_tokens_per_batch = (int)a->max_tokens_batch;
    if (a->chunk) eo.chunked_prefill_size = (int)a->chunk;
    eo.disable_prefix_cache = a->no_prefix_cache;
    if (!(st->engine = px_engine_create(st->model, &eo)) || px_engine_start(st->engine)) return -1;
    px_engine_stats_t es;
    px_engine_stats(st->engine, &es);
    px_server_options so = {.host = a->host, .port = a->port ? (int)a->port : -1, .api_key = a->api_key,
                            .model_name = name, .max_body_bytes = (size_t)a->max_body, .max_requests = (int)a->max_requests};
    if (!(st->server = px_server_create(st->engine, st->tok, es.context_length, &so))) return -1;
    if (px_server_start(st->server)) return -1;
    px_log_info("serving %s as '%s' on http://%s%s%s:%d (OpenAI API under /v1; context %d tokens, %d KV blocks)", dir,
                name, strchr(a->host, ':') ? "[" : "", a->host, strchr(a->host, ':') ? "]" : "",
                px_server_port(st->server), es.context_length, es.kv_blocks_total);
    return 0;
}

int px_cmd_serve(int argc, char **argv) {
    serve_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc) return rc == 1 ? 0 : rc;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* before any thread starts: they inherit the mask */
    signal(SIGPIPE, SIG_IGN);
    px_hub_options ho = {.revision = a.revision, .progress = true};
    char *dir = px_hub_model_dir(a.model, &ho), *name = a.name ? px_strdup(a.name) : default_name(a.model);
    serve_state st = {0};
    if (!dir || start_all(&a, dir, name, &st)) {
        fprintf(stderr, "parallax: %s\n", px_error_get());
        teardown(&st);
        free(dir);
        free(name);
        return 1;
    }
    int sig = 0;
    sigwait(&set, &sig);
    px_log_info("%s: shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
    teardown(&st);
    free(dir);
    free(name);
    return 0;
}
