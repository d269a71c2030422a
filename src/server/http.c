/* http.c - the libmicrohttpd side of the server: one thread per connection
 * (so a connection's thread may wait for its tokens), routing, request
 * bodies, API keys, JSON and SSE responses.
 *
 * A request arrives in several access-handler calls: the first one sees the
 * headers (a body announced larger than 4x the limit is refused at once with
 * 413 and the connection closed), the middle ones the body pieces (kept up to
 * the limit, then counted and dropped so the client still reads a clean 413),
 * the last one routes. A non-stream generation pumps its job right in the
 * handler and answers when it ends; a stream answers at once with a
 * callback response whose reader pumps the job and hands out SSE text. When
 * the client disappears the pump notices (socket hang-up), or the
 * request-completed callback does: either way the engine request is aborted.
 *
 * The model (tokenizer, name, context) can change at run time: a generation
 * copies it under model_mu and holds it until its job ends; the change
 * (px_server_set_model) waits for a moment with no generation. Without one
 * /v1 answers 503. Other /cluster/ paths go to the backend's route hook
 * with what we know of the client: loopback (address and Host header), same
 * origin, API key; those answers carry no CORS header.
 */
#include "server_internal.h"
#include "web.h"

#include <cjson/cJSON.h>
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PUMP_SLICE_MS 100
#define MAX_DISCARD ((size_t)64 << 20) /* a body larger than this closes the connection */

typedef struct {
    px_sbuf body;
    size_t seen;     /* body bytes received, kept or not */
    bool too_large;
    double t_start;
    px_server_job *job;
} http_ctx;

/* ---- responses ---- */

static void add_common_headers(struct MHD_Response *r, const char *type) {
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, "Access-Control-Allow-Origin", "*");
}

/* Queues body (malloc'd, taken over) with the status; cors: readable by
 * pages of any origin (the API), else only by the page itself. */
static enum MHD_Result send_body_cors(px_server *s, struct MHD_Connection *c, px_endpoint ep, unsigned status,
                                      const char *type, char *body, bool cors) {
    size_t len = strlen(body);
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!r) return free(body), MHD_NO;
    if (cors) add_common_headers(r, type);
    else {
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
        MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
        MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    }
    if (status == 401) MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    enum MHD_Result rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    px_server_metrics_request(s->metrics, ep, (int)status);
    return rc;
}

static enum MHD_Result send_body(px_server *s, struct MHD_Connection *c, px_endpoint ep, unsigned status,
                                 const char *type, char *body) {
    return send_body_cors(s, c, ep, status, type, body, true);
}

static enum MHD_Result send_json(px_server *s, struct MHD_Connection *c, px_endpoint ep, unsigned status, cJSON *o) {
    char *body = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return send_body(s, c, ep, status, "application/json", body);
}

static enum MHD_Result send_error(px_server *s, struct MHD_Connection *c, px_endpoint ep, const px_server_error *e) {
    return send_body(s, c, ep, (unsigned)e->status, "application/json", px_server_error_json(e));
}

static enum MHD_Result fail(px_server *s, struct MHD_Connection *c, px_endpoint ep, int status, const char *code,
                            const char *msg) {
    px_server_error e;
    px_server_fail(&e, status, NULL, code, "%s", msg);
    return send_error(s, c, ep, &e);
}

/* ---- simple endpoints ---- */

static enum MHD_Result handle_health(px_server *s, struct MHD_Connection *c) {
    cJSON *o = cJSON_CreateObject();
    bool stopping = atomic_load(&s->stopping);
    cJSON_AddStringToObject(o, "status", stopping ? "stopping" : "ok");
    return send_json(s, c, PX_EP_HEALTH, stopping ? 503 : 200, o);
}

static enum MHD_Result handle_metrics(px_server *s, struct MHD_Connection *c) {
    px_engine_stats_t es;
    s->backend.stats(s->backend.ctx, &es);
    px_sbuf out = {0};
    px_server_metrics_request(s->metrics, PX_EP_METRICS, 200); /* counted before rendering: it shows itself */
    px_server_metrics_render(s->metrics, &es, atomic_load(&s->in_flight), &out);
    char *extra = s->backend.metrics_text ? s->backend.metrics_text(s->backend.ctx) : NULL;
    if (extra) px_sbuf_adds(&out, extra);
    free(extra);
    size_t len = out.len;
    struct MHD_Response *r = MHD_create_response_from_buffer(len, px_sbuf_take(&out), MHD_RESPMEM_MUST_FREE);
    if (!r) return MHD_NO;
    add_common_headers(r, "text/plain; version=0.0.4; charset=utf-8");
    enum MHD_Result rc = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return rc;
}

static cJSON *model_object(const px_server *s, const px_server_config *cfg) {
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "id", cfg->model_name);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", (double)s->created);
    cJSON_AddStringToObject(m, "owned_by", "parallax");
    cJSON_AddNumberToObject(m, "max_model_len", cfg->context_length);
    return m;
}

static enum MHD_Result no_model(px_server *s, struct MHD_Connection *c, px_endpoint ep) {
    return fail(s, c, ep, 503, "model_not_chosen",
                "no model is chosen yet: choose one on this server's Setup page (/#/setup) or with POST /cluster/setup");
}

static enum MHD_Result handle_models(px_server *s, struct MHD_Connection *c, const char *id) {
    px_server_config cfg;
    if (!px_server_model_acquire(s, &cfg)) return no_model(s, c, PX_EP_MODELS);
    enum MHD_Result rc;
    if (id) {
        if (strcmp(id, cfg.model_name)) rc = fail(s, c, PX_EP_MODELS, 404, "model_not_found", "no such model");
        else rc = send_json(s, c, PX_EP_MODELS, 200, model_object(s, &cfg));
    } else {
        cJSON *o = cJSON_CreateObject(), *data;
        cJSON_AddStringToObject(o, "object", "list");
        data = cJSON_AddArrayToObject(o, "data");
        cJSON_AddItemToArray(data, model_object(s, &cfg));
        rc = send_json(s, c, PX_EP_MODELS, 200, o);
    }
    px_server_model_release(s);
    return rc;
}

/* ---- cluster status (a backend that describes a cluster) ---- */

static enum MHD_Result handle_cluster_status(px_server *s, struct MHD_Connection *c) {
    char *json = s->backend.status_json(s->backend.ctx);
    if (!json) return fail(s, c, PX_EP_OTHER, 500, "status_unavailable", "no cluster status");
    return send_body(s, c, PX_EP_OTHER, 200, "application/json", json);
}

/* NDJSON: one snapshot at once, then one a second until the client leaves
 * or the server stops. */
typedef struct {
    px_server *s;
    px_sbuf out;
    size_t pos;
    double next;
} status_stream;

static ssize_t status_read(void *cls, uint64_t at, char *buf, size_t max) {
    status_stream *st = cls;
    (void)at;
    while (st->pos == st->out.len) {
        if (atomic_load(&st->s->stopping)) return MHD_CONTENT_READER_END_OF_STREAM;
        double now = px_time_now();
        if (now < st->next) {
            double wait = PX_MIN(st->next - now, 0.1);
            struct timespec ts = {0, (long)(wait * 1e9)};
            nanosleep(&ts, NULL);
            continue;
        }
        st->next = (st->next ? st->next : now) + 1.0;
        st->out.len = st->pos = 0;
        char *json = st->s->backend.status_json(st->s->backend.ctx);
        if (!json) return MHD_CONTENT_READER_END_WITH_ERROR;
        px_sbuf_adds(&st->out, json);
        px_sbuf_adds(&st->out, "\n");
        free(json);
    }
    size_t n = PX_MIN(max, st->out.len - st->pos);
    memcpy(buf, st->out.data + st->pos, n);
    st->pos += n;
    return (ssize_t)n;
}

static void status_free(void *cls) {
    status_stream *st = cls;
    px_sbuf_free(&st->out);
    free(st);
}

static enum MHD_Result handle_cluster_stream(px_server *s, struct MHD_Connection *c) {
    status_stream *st = px_calloc(1, sizeof *st);
    st->s = s;
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, status_read, st, status_free);
    if (!r) return status_free(st), MHD_NO;
    add_common_headers(r, "application/x-ndjson");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(r, "X-Accel-Buffering", "no");
    enum MHD_Result rc = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    px_server_metrics_request(s->metrics, PX_EP_OTHER, 200);
    return rc;
}

/* ---- generation ---- */

static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max) {
    px_server_job *j = cls;
    (void)pos;
    while (j->out_pos == j->out.len) {
        if (j->sent_done) return MHD_CONTENT_READER_END_OF_STREAM;
        j->out.len = j->out_pos = 0;
        if (j->sent_start && px_server_job_pump(j, PUMP_SLICE_MS) < 0) return MHD_CONTENT_READER_END_WITH_ERROR;
        px_server_sse_emit(j);
    }
    size_t n = PX_MIN(max, j->out.len - j->out_pos);
    memcpy(buf, j->out.data + j->out_pos, n);
    j->out_pos += n;
    return (ssize_t)n;
}

static void sse_free(void *cls) { px_server_job_unref(cls); }

static enum MHD_Result start_stream(px_server *s, struct MHD_Connection *c, px_endpoint ep, px_server_job *j) {
    px_server_job_ref(j);
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, sse_read, j, sse_free);
    if (!r) return px_server_job_unref(j), MHD_NO;
    add_common_headers(r, "text/event-stream; charset=utf-8");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(r, "X-Accel-Buffering", "no");
    enum MHD_Result rc = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    px_server_metrics_request(s->metrics, ep, 200);
    return rc;
}

static enum MHD_Result finish_blocking(px_server *s, struct MHD_Connection *c, px_endpoint ep, px_server_job *j) {
    while (j->end == PX_END_NONE) {
        int r = px_server_job_pump(j, PUMP_SLICE_MS);
        px_delta_append(&j->total, &j->delta);
        px_delta_clear(&j->delta);
        if (r < 0) break;
    }
    if (j->gone) return MHD_NO; /* nobody to answer: close */
    if (j->end == PX_END_ERROR) {
        px_server_error e;
        px_server_fail(&e, 500, NULL, "engine_error", "generation failed: %s", j->engine_error ? j->engine_error : "unknown error");
        return send_error(s, c, ep, &e);
    }
    if (j->end == PX_END_ABORT) return fail(s, c, ep, 503, "aborted", "the request was aborted by the server");
    return send_body(s, c, ep, 200, "application/json", px_server_final_json(j));
}

static int client_fd(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    return ci ? ci->connect_fd : -1;
}

static enum MHD_Result handle_generate(px_server *s, struct MHD_Connection *c, http_ctx *ctx, px_endpoint ep) {
    px_server_error e;
    if (ctx->too_large) {
        px_server_fail(&e, 413, NULL, "request_too_large", "the request body has %zu bytes; the limit is %zu",
                       ctx->seen, s->max_body);
        return send_error(s, c, ep, &e);
    }
    if (atomic_load(&s->stopping)) return fail(s, c, ep, 503, "shutting_down", "the server is shutting down");
    const char *body = ctx->body.data ? ctx->body.data : "";
    if (!px_server_utf8_valid(body, ctx->body.len))
        return fail(s, c, ep, 400, "invalid_utf8", "the request body is not valid UTF-8");
    px_server_config cfg;
    if (!px_server_model_acquire(s, &cfg)) return no_model(s, c, ep);
    px_server_params p;
    if (px_server_parse_request(&cfg, ep == PX_EP_CHAT ? PX_API_CHAT : PX_API_COMPLETIONS, body, ctx->body.len, &p, &e)) {
        px_server_model_release(s);
        return send_error(s, c, ep, &e);
    }
    if (atomic_load(&s->in_flight) >= s->max_requests) {
        px_server_params_free(&p);
        px_server_model_release(s);
        return fail(s, c, ep, 429, "too_many_requests", "too many requests in flight; retry later");
    }
    bool stream = p.stream;
    ctx->job = px_server_job_new(s, &cfg, &p, client_fd(c), ctx->t_start); /* takes the model use */
    if (px_server_job_submit(ctx->job, &e)) return send_error(s, c, ep, &e);
    return stream ? start_stream(s, c, ep, ctx->job) : finish_blocking(s, c, ep, ctx->job);
}

/* ---- routing ---- */

static bool authorized(const px_server *s, struct MHD_Connection *c) {
    if (!s->api_key) return true;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncasecmp(h, "Bearer ", 7)) return false;
    h += 7;
    size_t n = strlen(h), k = strlen(s->api_key);
    unsigned diff = (unsigned)(n != k);
    for (size_t i = 0; i < n; i++) diff |= (unsigned char)h[i] ^ (unsigned char)s->api_key[i % (k ? k : 1)];
    return diff == 0;
}

/* ---- who is asking (backend routes) ---- */

static bool addr_is_loopback(const struct sockaddr *sa) {
    if (!sa) return false;
    if (sa->sa_family == AF_INET) return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->sa_family != AF_INET6) return false;
    const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
    if (IN6_IS_ADDR_LOOPBACK(a)) return true;
    return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
}

/* "localhost", "127.x.y.z" or "[::1]", with or without ":PORT". */
static bool host_is_loopback(const char *host) {
    if (!host || !*host) return false;
    char h[256];
    size_t n = strlen(host);
    if (n >= sizeof h) return false;
    memcpy(h, host, n + 1);
    if (h[0] == '[') return !strncmp(h, "[::1]", 5) && (!h[5] || h[5] == ':');
    char *colon = strchr(h, ':');
    if (colon) *colon = 0;
    if (!strcasecmp(h, "localhost")) return true;
    struct in_addr a;
    return inet_pton(AF_INET, h, &a) == 1 && (ntohl(a.s_addr) >> 24) == 127;
}

/* No Origin header (not sent by a page of another site), or
 * "http(s)://" + the Host header. */
static bool same_origin(struct MHD_Connection *c) {
    const char *origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
    if (!origin) return true;
    const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
    if (!host) return false;
    const char *rest = !strncmp(origin, "http://", 7) ? origin + 7 : !strncmp(origin, "https://", 8) ? origin + 8 : NULL;
    return rest && !strcasecmp(rest, host);
}

static bool authorized(const px_server *s, struct MHD_Connection *c);

static enum MHD_Result handle_backend_route(px_server *s, struct MHD_Connection *c, http_ctx *ctx, const char *url,
                                            const char *method) {
    if (ctx->too_large) return fail(s, c, PX_EP_OTHER, 413, "request_too_large", "the request body is too large");
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    px_server_call call = {
        .method = method,
        .path = url,
        .body = ctx->body.data ? ctx->body.data : "",
        .body_len = ctx->body.len,
        .loopback = ci && addr_is_loopback(ci->client_addr) &&
                    host_is_loopback(MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST)),
        .same_origin = same_origin(c),
        .api_key_set = s->api_key != NULL,
        .api_key_ok = s->api_key && authorized(s, c),
    };
    char *json = NULL;
    int status = s->backend.route(s->backend.ctx, &call, &json);
    if (!status) {
        free(json);
        return fail(s, c, PX_EP_OTHER, 404, "not_found", "unknown route (see docs/server.md)");
    }
    if (!json) json = px_server_error_body(500, "internal_error", "the route gave no answer");
    return send_body_cors(s, c, PX_EP_OTHER, (unsigned)status, "application/json", json, false);
}

/* The API path without an optional "/v1" prefix, or NULL. */
static const char *api_path(const char *url) {
    if (!strncmp(url, "/v1/", 4)) return url + 3;
    return url;
}

static px_endpoint classify(const char *path) {
    if (!strcmp(path, "/chat/completions")) return PX_EP_CHAT;
    if (!strcmp(path, "/completions")) return PX_EP_COMPLETIONS;
    if (!strcmp(path, "/models") || !strncmp(path, "/models/", 8)) return PX_EP_MODELS;
    if (!strcmp(path, "/health")) return PX_EP_HEALTH;
    if (!strcmp(path, "/metrics")) return PX_EP_METRICS;
    return PX_EP_OTHER;
}

static enum MHD_Result preflight(px_server *s, struct MHD_Connection *c) {
    struct MHD_Response *r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Access-Control-Allow-Origin", "*");
    MHD_add_response_header(r, "Access-Control-Allow-Methods", "GET, POST, OPTIONS");
    MHD_add_response_header(r, "Access-Control-Allow-Headers", "Authorization, Content-Type");
    enum MHD_Result rc = MHD_queue_response(c, 204, r);
    MHD_destroy_response(r);
    px_server_metrics_request(s->metrics, PX_EP_OTHER, 204);
    return rc;
}

static enum MHD_Result route(px_server *s, struct MHD_Connection *c, http_ctx *ctx, const char *url, const char *method) {
    if (!strcmp(method, "OPTIONS")) return preflight(s, c);
    const char *path = api_path(url);
    px_endpoint ep = classify(path);
    bool get = !strcmp(method, "GET") || !strcmp(method, "HEAD"), post = !strcmp(method, "POST");
    const px_web_asset *asset = ep == PX_EP_OTHER ? px_web_find(url) : NULL; /* the web UI (web.c) */
    if (asset) return get ? px_server_web_send(s, c, asset) : fail(s, c, ep, 405, "method_not_allowed", "use GET");
    if (s->backend.status_json && (!strcmp(url, "/cluster/status") || !strcmp(url, "/cluster/status/stream"))) {
        if (!get) return fail(s, c, ep, 405, "method_not_allowed", "use GET");
        return url[15] ? handle_cluster_stream(s, c) : handle_cluster_status(s, c);
    }
    if (s->backend.route && !strncmp(url, "/cluster/", 9)) return handle_backend_route(s, c, ctx, url, method);
    if (ep == PX_EP_OTHER) return fail(s, c, ep, 404, "not_found", "unknown route (see docs/server.md)");
    if (ep == PX_EP_HEALTH) return get ? handle_health(s, c) : fail(s, c, ep, 405, "method_not_allowed", "use GET");
    if (ep == PX_EP_METRICS) return get ? handle_metrics(s, c) : fail(s, c, ep, 405, "method_not_allowed", "use GET");
    if (!authorized(s, c)) return fail(s, c, ep, 401, "invalid_api_key", "Incorrect API key provided.");
    if (ep == PX_EP_MODELS) {
        if (!get) return fail(s, c, ep, 405, "method_not_allowed", "use GET");
        return handle_models(s, c, path[7] == '/' ? path + 8 : NULL);
    }
    if (!post) return fail(s, c, ep, 405, "method_not_allowed", "use POST");
    return handle_generate(s, c, ctx, ep);
}

/* ---- libmicrohttpd callbacks ---- */

static enum MHD_Result first_call(px_server *s, struct MHD_Connection *c, void **req_cls) {
    http_ctx *ctx = px_calloc(1, sizeof *ctx);
    ctx->t_start = px_time_now();
    *req_cls = ctx;
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl && strtoull(cl, NULL, 10) > 4 * (unsigned long long)s->max_body) {
        ctx->too_large = true;
        ctx->seen = (size_t)strtoull(cl, NULL, 10);
        return fail(s, c, PX_EP_OTHER, 413, "request_too_large", "the request body is too large");
    }
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **req_cls) {
    px_server *s = cls;
    http_ctx *ctx = *req_cls;
    (void)version;
    if (!ctx) return first_call(s, c, req_cls);
    if (*upload_size) {
        ctx->seen += *upload_size;
        if (ctx->seen > s->max_body) ctx->too_large = true;
        else px_sbuf_add(&ctx->body, upload, *upload_size);
        *upload_size = 0;
        return ctx->seen > MAX_DISCARD ? MHD_NO : MHD_YES;
    }
    return route(s, c, ctx, url, method);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **req_cls, enum MHD_RequestTerminationCode toe) {
    http_ctx *ctx = *req_cls;
    (void)cls, (void)c, (void)toe;
    if (!ctx) return;
    if (ctx->job) {
        px_server_job_cancel(ctx->job); /* no-op when it ended normally */
        px_server_job_unref(ctx->job);
    }
    px_sbuf_free(&ctx->body);
    free(ctx);
    *req_cls = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
    char line[512];
    (void)cls;
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n && line[n - 1] == '\n') line[--n] = 0;
    px_log_debug("http: %s", line);
}

/* ---- the server object ---- */

static uint64_t engine_submit(void *ctx, const int32_t *prompt, int n_prompt, const px_sampling *sp,
                              px_token_callback cb, void *user) {
    return px_engine_submit(ctx, prompt, n_prompt, sp, cb, user);
}
static void engine_abort(void *ctx, uint64_t id) { px_engine_abort(ctx, id); }
static void engine_stats(void *ctx, px_engine_stats_t *out) { px_engine_stats(ctx, out); }

px_server *px_server_create(px_engine *engine, const px_tokenizer *tok, int context_length,
                            const px_server_options *opt) {
    px_server_backend b = {.ctx = engine, .submit = engine_submit, .abort = engine_abort, .stats = engine_stats};
    return px_server_create_backend(&b, tok, context_length, opt);
}

px_server *px_server_create_backend(const px_server_backend *backend, const px_tokenizer *tok, int context_length,
                                    const px_server_options *opt) {
    px_server_options o = opt ? *opt : (px_server_options){0};
    px_server *s = px_calloc(1, sizeof *s);
    s->backend = *backend;
    s->host = px_strdup(o.host ? o.host : "127.0.0.1");
    s->port = o.port ? o.port : 3000;
    if (o.port < 0) s->port = 0;
    s->api_key = o.api_key && *o.api_key ? px_strdup(o.api_key) : NULL;
    s->model_name = px_strdup(o.model_name ? o.model_name : "default");
    s->max_body = o.max_body_bytes ? o.max_body_bytes : (size_t)4 << 20;
    s->max_connections = o.max_connections > 0 ? o.max_connections : 512;
    s->max_requests = o.max_requests > 0 ? o.max_requests : 1024;
    s->created = (long)time(NULL);
    s->max_tokens_opt = o.max_tokens_limit;
    pthread_mutex_init(&s->model_mu, NULL);
    if (tok) px_server_set_model(s, &(px_server_model){.tok = tok, .context_length = context_length}, NULL, NULL);
    s->metrics = px_server_metrics_new();
    return s;
}

/* ---- the model ---- */

bool px_server_model_acquire(px_server *s, px_server_config *cfg) {
    pthread_mutex_lock(&s->model_mu);
    bool ok = s->cfg.tok != NULL;
    if (ok) {
        *cfg = s->cfg;
        s->model_users++;
    }
    pthread_mutex_unlock(&s->model_mu);
    return ok;
}

void px_server_model_release(px_server *s) {
    pthread_mutex_lock(&s->model_mu);
    s->model_users--;
    pthread_mutex_unlock(&s->model_mu);
}

static void drop_model(px_server *s) {
    if (s->model.release) s->model.release(s->model.owner);
    if (s->cfg.model_name != s->model_name) free((char *)s->cfg.model_name);
    memset(&s->model, 0, sizeof s->model);
    memset(&s->cfg, 0, sizeof s->cfg);
}

int px_server_set_model(px_server *s, const px_server_model *m, int (*commit)(void *user), void *user) {
    pthread_mutex_lock(&s->model_mu);
    if (s->model_users > 0) {
        pthread_mutex_unlock(&s->model_mu);
        return 1;
    }
    int rc = commit ? commit(user) : 0;
    if (!rc) {
        drop_model(s);
        if (m && m->tok) {
            s->model = *m;
            s->model.name = NULL;
            int ctx = m->context_length;
            s->cfg = (px_server_config){m->tok, m->name ? px_strdup(m->name) : s->model_name, ctx,
                                        s->max_tokens_opt > 0 ? PX_MIN(s->max_tokens_opt, ctx) : ctx};
        }
    }
    pthread_mutex_unlock(&s->model_mu);
    return rc;
}

static int resolve(const px_server *s, struct sockaddr_storage *ss, bool *v6) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *res;
    char port[16];
    snprintf(port, sizeof port, "%d", s->port);
    int rc = getaddrinfo(s->host, port, &hints, &res);
    if (rc) return px_error_set("server: --host %s: %s", s->host, gai_strerror(rc)), -1;
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *v6 = res->ai_family == AF_INET6;
    freeaddrinfo(res);
    return 0;
}

int px_server_start(px_server *s) {
    struct sockaddr_storage ss;
    bool v6;
    if (resolve(s, &ss, &v6)) return -1;
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ERROR_LOG;
    if (v6) flags |= MHD_USE_IPv6;
    s->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s,
                                 MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                                 MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                                 MHD_OPTION_CONNECTION_LIMIT, (unsigned)s->max_connections,
                                 MHD_OPTION_CONNECTION_TIMEOUT, 600u,
                                 MHD_OPTION_LISTEN_BACKLOG_SIZE, 256u,
                                 MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
                                 MHD_OPTION_END);
    if (!s->daemon) return px_error_set("server: cannot listen on %s:%d (in use, or not an address of this host)", s->host, s->port), -1;
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    if (di) s->port = di->port;
    return 0;
}

int px_server_port(const px_server *s) { return s->port; }

void px_server_stop(px_server *s) {
    if (!s || !s->daemon) return;
    atomic_store(&s->stopping, true);
    MHD_stop_daemon(s->daemon); /* waits for every connection thread; pumps see `stopping` */
    s->daemon = NULL;
}

void px_server_free(px_server *s) {
    if (!s) return;
    px_server_stop(s);
    /* jobs whose final backend event is still on its way hold the server:
     * the backend (still running) delivers it shortly after the aborts */
    for (int i = 0; i < 10000 && atomic_load(&s->in_flight) > 0; i++) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    if (atomic_load(&s->in_flight) > 0) {
        px_log_warn("server: %d requests still held by the backend after 10 s; not freeing the server",
                    atomic_load(&s->in_flight));
        return;
    }
    px_server_metrics_free(s->metrics);
    drop_model(s);
    pthread_mutex_destroy(&s->model_mu);
    free(s->host);
    free(s->api_key);
    free(s->model_name);
    free(s);
}
