/* metrics.c - the server's counters and latency histograms, rendered in the
 * Prometheus text format (version 0.0.4) together with a snapshot of the
 * engine's state. One mutex guards everything: updates are a few adds per
 * token, far below the cost of producing that token.
 *
 * Histograms are cumulative on output (le buckets), stored per bucket. */
#include "server_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double TTFT_BUCKETS[] = {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5,
                                      0.75,  1,     2.5,  5,    7.5,  10,   20,   40,   80};
static const double ITL_BUCKETS[] = {0.001, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05,
                                     0.075, 0.1,    0.15,  0.2,  0.3,   0.4,  0.5,   0.75, 1,    2.5};
static const double E2E_BUCKETS[] = {0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 60, 120, 300, 600};

#define MAX_BUCKETS 24
static const int STATUS_CODES[] = {200, 204, 400, 401, 404, 405, 413, 429, 500, 503};
#define N_STATUS ((int)PX_ARRAY_LEN(STATUS_CODES) + 1) /* + "other" */
static const char *ENDPOINTS[PX_EP_COUNT] = {"chat_completions", "completions", "models", "health", "metrics", "other"};
static const char *REASONS[] = {"stop", "length", "abort", "error"};
#define N_REASONS ((int)PX_ARRAY_LEN(REASONS))

typedef struct {
    const double *bounds;
    int n;
    uint64_t counts[MAX_BUCKETS + 1];
    double sum;
    uint64_t total;
} histogram;

struct px_server_metrics {
    pthread_mutex_t mu;
    uint64_t requests[PX_EP_COUNT][N_STATUS];
    uint64_t finished[N_REASONS];
    uint64_t prompt_tokens, generation_tokens, cached_tokens;
    histogram ttft, itl, e2e;
};

static void hist_init(histogram *h, const double *bounds, int n) {
    memset(h, 0, sizeof *h);
    h->bounds = bounds;
    h->n = n;
}

static void hist_add(histogram *h, double v) {
    int i = 0;
    while (i < h->n && v > h->bounds[i]) i++;
    h->counts[i]++;
    h->sum += v;
    h->total++;
}

px_server_metrics *px_server_metrics_new(void) {
    px_server_metrics *m = px_calloc(1, sizeof *m);
    pthread_mutex_init(&m->mu, NULL);
    hist_init(&m->ttft, TTFT_BUCKETS, (int)PX_ARRAY_LEN(TTFT_BUCKETS));
    hist_init(&m->itl, ITL_BUCKETS, (int)PX_ARRAY_LEN(ITL_BUCKETS));
    hist_init(&m->e2e, E2E_BUCKETS, (int)PX_ARRAY_LEN(E2E_BUCKETS));
    return m;
}

void px_server_metrics_free(px_server_metrics *m) {
    if (!m) return;
    pthread_mutex_destroy(&m->mu);
    free(m);
}

static int status_index(int status) {
    for (int i = 0; i < (int)PX_ARRAY_LEN(STATUS_CODES); i++)
        if (STATUS_CODES[i] == status) return i;
    return N_STATUS - 1;
}

void px_server_metrics_request(px_server_metrics *m, px_endpoint ep, int status) {
    pthread_mutex_lock(&m->mu);
    m->requests[ep][status_index(status)]++;
    pthread_mutex_unlock(&m->mu);
}

void px_server_metrics_ttft(px_server_metrics *m, double seconds) {
    pthread_mutex_lock(&m->mu);
    hist_add(&m->ttft, seconds);
    pthread_mutex_unlock(&m->mu);
}

void px_server_metrics_itl(px_server_metrics *m, double seconds) {
    pthread_mutex_lock(&m->mu);
    hist_add(&m->itl, seconds);
    pthread_mutex_unlock(&m->mu);
}

void px_server_metrics_done(px_server_metrics *m, const char *reason, double e2e_seconds, int prompt_tokens,
                            int completion_tokens, int cached_tokens) {
    pthread_mutex_lock(&m->mu);
    for (int i = 0; i < N_REASONS; i++)
        if (!strcmp(reason, REASONS[i])) m->finished[i]++;
    hist_add(&m->e2e, e2e_seconds);
    m->prompt_tokens += (uint64_t)PX_MAX(prompt_tokens, 0);
    m->generation_tokens += (uint64_t)PX_MAX(completion_tokens, 0);
    m->cached_tokens += (uint64_t)PX_MAX(cached_tokens, 0);
    pthread_mutex_unlock(&m->mu);
}

/* ---- rendering ---- */

static void header(px_sbuf *o, const char *name, const char *type, const char *help) {
    px_sbuf_printf(o, "# HELP parallax_%s %s\n# TYPE parallax_%s %s\n", name, help, name, type);
}

static void hist_render(px_sbuf *o, const char *name, const char *help, const histogram *h) {
    header(o, name, "histogram", help);
    uint64_t cum = 0;
    for (int i = 0; i < h->n; i++) {
        cum += h->counts[i];
        px_sbuf_printf(o, "parallax_%s_bucket{le=\"%g\"} %llu\n", name, h->bounds[i], (unsigned long long)cum);
    }
    px_sbuf_printf(o, "parallax_%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)h->total);
    px_sbuf_printf(o, "parallax_%s_sum %.6f\nparallax_%s_count %llu\n", name, h->sum, name, (unsigned long long)h->total);
}

static void render_requests(px_sbuf *o, const px_server_metrics *m) {
    header(o, "http_requests_total", "counter", "HTTP requests by endpoint and status code");
    for (int e = 0; e < PX_EP_COUNT; e++)
        for (int s = 0; s < N_STATUS; s++) {
            if (!m->requests[e][s]) continue;
            char code[8];
            if (s < N_STATUS - 1) snprintf(code, sizeof code, "%d", STATUS_CODES[s]);
            else snprintf(code, sizeof code, "other");
            px_sbuf_printf(o, "parallax_http_requests_total{endpoint=\"%s\",code=\"%s\"} %llu\n", ENDPOINTS[e], code,
                           (unsigned long long)m->requests[e][s]);
        }
    header(o, "requests_finished_total", "counter", "generation requests by how they ended");
    for (int i = 0; i < N_REASONS; i++)
        px_sbuf_printf(o, "parallax_requests_finished_total{reason=\"%s\"} %llu\n", REASONS[i],
                       (unsigned long long)m->finished[i]);
}

static void counter(px_sbuf *o, const char *name, const char *help, double v) {
    header(o, name, "counter", help);
    px_sbuf_printf(o, "parallax_%s %.17g\n", name, v);
}

static void gauge(px_sbuf *o, const char *name, const char *help, double v) {
    header(o, name, "gauge", help);
    px_sbuf_printf(o, "parallax_%s %.17g\n", name, v);
}

static void render_engine(px_sbuf *o, const px_engine_stats_t *es, int in_flight) {
    gauge(o, "requests_running", "requests the engine is generating for", es->running);
    gauge(o, "requests_waiting", "requests queued in the engine", es->waiting);
    gauge(o, "requests_in_flight", "generation requests the HTTP server holds", in_flight);
    gauge(o, "kv_blocks_total", "KV cache blocks in the pool", es->kv_blocks_total);
    gauge(o, "kv_blocks_used", "KV cache blocks held by requests", es->kv_blocks_used);
    gauge(o, "kv_blocks_free", "KV cache blocks not held by a request (cached prefixes included)",
          es->kv_blocks_total - es->kv_blocks_used);
    gauge(o, "kv_blocks_cached", "free KV blocks that hold a reusable prefix", es->kv_blocks_cached);
    gauge(o, "kv_block_size", "tokens per KV block", es->block_size);
    counter(o, "prefix_cache_queries_tokens_total", "prompt tokens looked up in the prefix cache",
            (double)es->prefix_lookups_tokens);
    counter(o, "prefix_cache_hits_tokens_total", "prompt tokens found in the prefix cache",
            (double)es->prefix_hit_tokens);
    counter(o, "engine_preemptions_total", "requests preempted for KV space (recomputed later)", (double)es->preemptions_total);
    counter(o, "engine_steps_total", "forward passes (batching steps) run", (double)es->steps_total);
    gauge(o, "prefix_cache_hit_rate", "prefix cache hits / lookups (tokens), since start",
          es->prefix_lookups_tokens ? (double)es->prefix_hit_tokens / (double)es->prefix_lookups_tokens : 0.0);
}

void px_server_metrics_render(px_server_metrics *m, const px_engine_stats_t *es, int in_flight, px_sbuf *out) {
    pthread_mutex_lock(&m->mu);
    render_requests(out, m);
    counter(out, "prompt_tokens_total", "prompt tokens of finished requests", (double)m->prompt_tokens);
    counter(out, "generation_tokens_total", "generated tokens of finished requests", (double)m->generation_tokens);
    counter(out, "cached_prompt_tokens_total", "prompt tokens served from the prefix cache", (double)m->cached_tokens);
    hist_render(out, "time_to_first_token_seconds", "time from request arrival to its first token", &m->ttft);
    hist_render(out, "inter_token_latency_seconds", "time between consecutive tokens of a request", &m->itl);
    hist_render(out, "e2e_request_latency_seconds", "time from request arrival to its end", &m->e2e);
    pthread_mutex_unlock(&m->mu);
    render_engine(out, es, in_flight);
}
