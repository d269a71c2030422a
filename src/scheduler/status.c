/* status.c - what the scheduler tells operators and the web UI.
 *
 * GET /cluster/status (and once a second on /cluster/status/stream):
 *   {"model", "model_path" (null while none is chosen), "state": "setup"
 *    (no model yet) | "waiting" | "available", "workers", "workers_needed",
 *    "n_layers", "context_length", "model_bytes" (weights the model needs:
 *    its files, or estimated from config.json), "model_bytes_estimated",
 *    "cluster_port", "wire_dtype", "uptime_s",
 *    "nodes": [{"id", "hostname", "region", "state": "joining"|"loading"|
 *               "serving"|"standby", "start", "end", "manual", "cores",
 *               "memory_bytes", "bandwidth", "flops", "load", "max_load",
 *               "inflight", "layer_latency_ms", "busy_ratio",
 *               "kv_blocks_total", "kv_blocks_used", "bytes_in", "bytes_out",
 *               "positions", "steps", "last_seen_s", "rtt_ms": {"peer": ms},
 *               "load_done", "load_total" (bytes of its slice loaded, from
 *               its heartbeats), "progress" (load_done / load_total while it
 *               loads, 1 once it serves, null when unknown)}],
 *    "pipelines": [[{"node", "start", "end"}, ...], ...]   (chains of ready
 *               slices from layer 0 to L, at most 32, depth-first),
 *    "requests": {"running", "waiting", "finished", "failed", "reroutes",
 *                 "tokens"}}
 * The join token is a secret: it is never here (GET /cluster/join, setup.c).
 * /metrics gets per-node and per-hop lines (labels node, from/to):
 *   parallax_node_ready, _load, _inflight, _layer_latency_seconds,
 *   _busy_seconds_total, _idle_ratio, _positions_total, _steps_total,
 *   _activation_bytes_in_total / _out_total, _bytes_per_position,
 *   _kv_blocks_used; parallax_hop_rtt_seconds{from,to};
 *   parallax_cluster_workers, _available, _reroutes_total, _failed_total. */
#include "px_base.h"
#include "sched_internal.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *dtype_name(int d) { return d == 0 ? "f32" : d == 1 ? "f16" : "bf16"; }

static double busy_ratio(const sworker *w, double now) {
    double wall = now - w->first_hb_at;
    return w->first_hb_at > 0 && wall > 0.5 ? PX_MIN(1.0, (w->busy_seconds - w->first_hb_busy) / wall) : 0;
}

static cJSON *node_json(px_sched *s, int i, double now) {
    const sworker *w = &s->workers[i];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", w->id);
    cJSON_AddStringToObject(o, "hostname", w->hostname);
    cJSON_AddStringToObject(o, "region", w->region);
    cJSON_AddStringToObject(o, "state", w->start < 0 ? (w->ready ? "standby" : "joining") : w->ready ? "serving" : "loading");
    cJSON_AddNumberToObject(o, "start", w->start);
    cJSON_AddNumberToObject(o, "end", w->end);
    cJSON_AddBoolToObject(o, "manual", w->manual);
    cJSON_AddNumberToObject(o, "cores", w->cores);
    cJSON_AddNumberToObject(o, "memory_bytes", (double)w->memory_bytes);
    cJSON_AddNumberToObject(o, "bandwidth", w->bandwidth);
    cJSON_AddNumberToObject(o, "flops", w->flops);
    px_node_status st;
    int max_load = 0;
    double lat = w->layer_latency;
    if (!px_cluster_node_status(s->cluster, i, &st)) max_load = st.max_load, lat = st.layer_latency;
    cJSON_AddNumberToObject(o, "load", w->load);
    cJSON_AddNumberToObject(o, "max_load", max_load);
    cJSON_AddNumberToObject(o, "inflight", w->inflight);
    cJSON_AddNumberToObject(o, "layer_latency_ms", lat * 1e3);
    cJSON_AddNumberToObject(o, "busy_ratio", busy_ratio(w, now));
    cJSON_AddNumberToObject(o, "kv_blocks_total", w->kv_blocks_total);
    cJSON_AddNumberToObject(o, "kv_blocks_used", w->kv_blocks_used);
    cJSON_AddNumberToObject(o, "bytes_in", (double)w->bytes_in);
    cJSON_AddNumberToObject(o, "bytes_out", (double)w->bytes_out);
    cJSON_AddNumberToObject(o, "positions", (double)w->positions);
    cJSON_AddNumberToObject(o, "steps", (double)w->steps);
    cJSON_AddNumberToObject(o, "last_seen_s", now - w->last_seen);
    cJSON_AddNumberToObject(o, "load_done", (double)w->load_done);
    cJSON_AddNumberToObject(o, "load_total", (double)w->load_total);
    if (w->start >= 0 && w->ready) cJSON_AddNumberToObject(o, "progress", 1);
    else if (w->start >= 0 && w->load_total) cJSON_AddNumberToObject(o, "progress", (double)w->load_done / (double)w->load_total);
    else cJSON_AddNullToObject(o, "progress");
    cJSON *rtt = cJSON_AddObjectToObject(o, "rtt_ms");
    for (int j = 0; j < s->cap_workers; j++) {
        double v = s->rtt[i * s->cap_workers + j];
        if (j != i && s->workers[j].used && isfinite(v)) cJSON_AddNumberToObject(rtt, s->workers[j].id, v * 1e3);
    }
    return o;
}

/* Depth-first enumeration of chains of ready slices from layer 0 to L. */
static void chains(px_sched *s, int layer, int *path, int depth, cJSON *out) {
    if (cJSON_GetArraySize(out) >= 32 || depth >= PX_NET_MAX_ROUTE) return;
    if (layer == s->cfg.n_layers) {
        cJSON *p = cJSON_CreateArray();
        for (int k = 0; k < depth; k++) {
            cJSON *st = cJSON_CreateObject();
            const sworker *w = &s->workers[path[k]];
            cJSON_AddStringToObject(st, "node", w->id);
            cJSON_AddNumberToObject(st, "start", w->start);
            cJSON_AddNumberToObject(st, "end", w->end);
            cJSON_AddItemToArray(p, st);
        }
        cJSON_AddItemToArray(out, p);
        return;
    }
    for (int i = 0; i < s->cap_workers; i++) {
        const sworker *w = &s->workers[i];
        if (!w->used || !w->ready || w->start != layer || w->end <= layer) continue;
        path[depth] = i;
        chains(s, w->end, path, depth + 1, out);
    }
}

char *px_sched_status_json(px_sched *s) {
    double now = px_time_now();
    pthread_mutex_lock(&s->mu);
    cJSON *o = cJSON_CreateObject();
    if (s->has_model) {
        cJSON_AddStringToObject(o, "model", s->model_name);
        cJSON_AddStringToObject(o, "model_path", s->model_ref);
    } else {
        cJSON_AddNullToObject(o, "model");
        cJSON_AddNullToObject(o, "model_path");
    }
    bool avail = px_sched_available_locked(s);
    cJSON_AddStringToObject(o, "state", !s->has_model ? "setup" : avail ? "available" : "waiting");
    int n = 0;
    for (int i = 0; i < s->cap_workers; i++) n += s->workers[i].used;
    cJSON_AddNumberToObject(o, "workers", n);
    cJSON_AddNumberToObject(o, "workers_needed", PX_MAX(s->opt.min_workers, 1));
    cJSON_AddNumberToObject(o, "n_layers", s->has_model ? s->cfg.n_layers : 0);
    cJSON_AddNumberToObject(o, "context_length", s->has_model ? s->context_length : 0);
    if (s->has_model) {
        cJSON_AddNumberToObject(o, "model_bytes", (double)s->model_bytes);
        cJSON_AddBoolToObject(o, "model_bytes_estimated", s->model_bytes_estimated);
    } else cJSON_AddNullToObject(o, "model_bytes");
    cJSON_AddNumberToObject(o, "cluster_port", px_sock_port(s->sock));
    cJSON_AddStringToObject(o, "wire_dtype", dtype_name(s->opt.wire_dtype));
    cJSON_AddNumberToObject(o, "uptime_s", now - s->started);
    cJSON *nodes = cJSON_AddArrayToObject(o, "nodes");
    for (int i = 0; i < s->cap_workers; i++)
        if (s->workers[i].used) cJSON_AddItemToArray(nodes, node_json(s, i, now));
    cJSON *pipes = cJSON_AddArrayToObject(o, "pipelines");
    int path[PX_NET_MAX_ROUTE];
    if (s->has_model) chains(s, 0, path, 0, pipes);
    cJSON *rq = cJSON_AddObjectToObject(o, "requests");
    cJSON_AddNumberToObject(rq, "running", s->running);
    cJSON_AddNumberToObject(rq, "waiting", s->waiting);
    cJSON_AddNumberToObject(rq, "finished", (double)s->finished);
    cJSON_AddNumberToObject(rq, "failed", (double)s->failed);
    cJSON_AddNumberToObject(rq, "reroutes", (double)s->reroutes);
    cJSON_AddNumberToObject(rq, "tokens", (double)s->tokens_out);
    pthread_mutex_unlock(&s->mu);
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

/* ---- /metrics ---- */

typedef struct {
    char *data;
    size_t len, cap;
} mbuf;

static void mprintf(mbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void mprintf(mbuf *b, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->data ? b->data + b->len : NULL, b->data ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) return;
        if (b->data && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        b->cap = (b->cap + (size_t)n + 1) * 2;
        b->data = px_realloc(b->data, b->cap);
    }
}

static void family(mbuf *b, const char *name, const char *type, const char *help) {
    mprintf(b, "# HELP parallax_%s %s\n# TYPE parallax_%s %s\n", name, help, name, type);
}

char *px_sched_metrics_text(void *ctx) {
    px_sched *s = ctx;
    double now = px_time_now();
    mbuf b = {0};
    pthread_mutex_lock(&s->mu);
    int n = 0;
    for (int i = 0; i < s->cap_workers; i++) n += s->workers[i].used;
    family(&b, "cluster_workers", "gauge", "workers joined");
    mprintf(&b, "parallax_cluster_workers %d\n", n);
    family(&b, "cluster_available", "gauge", "1 when a whole pipeline is loaded");
    mprintf(&b, "parallax_cluster_available %d\n", px_sched_available_locked(s) ? 1 : 0);
    family(&b, "cluster_reroutes_total", "counter", "requests re-routed after a worker failed or changed slice");
    mprintf(&b, "parallax_cluster_reroutes_total %llu\n", (unsigned long long)s->reroutes);
    family(&b, "cluster_failed_total", "counter", "requests that failed in the cluster");
    mprintf(&b, "parallax_cluster_failed_total %llu\n", (unsigned long long)s->failed);
#define PER_NODE(name, type, help, fmt, expr)                                             \
    family(&b, name, type, help);                                                         \
    for (int i = 0; i < s->cap_workers; i++) {                                            \
        const sworker *w = &s->workers[i];                                                \
        if (w->used) mprintf(&b, "parallax_" name "{node=\"%s\"} " fmt "\n", w->id, expr); \
    }
    PER_NODE("node_ready", "gauge", "1 when the node serves its assigned slice", "%d", w->ready ? 1 : 0)
    PER_NODE("node_layers", "gauge", "layers in the node's slice", "%d", w->start >= 0 ? w->end - w->start : 0)
    PER_NODE("node_load", "gauge", "requests holding state on the node (its heartbeat)", "%d", w->load)
    PER_NODE("node_inflight", "gauge", "request attempts the scheduler routed through the node", "%d", w->inflight)
    PER_NODE("node_layer_latency_seconds", "gauge", "measured seconds per layer per position", "%.9f", w->layer_latency)
    PER_NODE("node_busy_seconds_total", "counter", "time the node spent computing", "%.6f", w->busy_seconds)
    PER_NODE("node_idle_ratio", "gauge", "share of wall time the node's stage was idle since it joined", "%.4f",
             w->first_hb_at > 0 ? 1.0 - busy_ratio(w, now) : 1.0)
    PER_NODE("node_positions_total", "counter", "token positions computed", "%llu", (unsigned long long)w->positions)
    PER_NODE("node_steps_total", "counter", "forward steps run (positions / steps = mean micro-batch size)", "%llu",
             (unsigned long long)w->steps)
    PER_NODE("node_activation_bytes_in_total", "counter", "activation bytes received", "%llu",
             (unsigned long long)w->bytes_in)
    PER_NODE("node_activation_bytes_out_total", "counter", "activation bytes sent to the next stage", "%llu",
             (unsigned long long)w->bytes_out)
    PER_NODE("node_bytes_per_position", "gauge", "activation bytes sent per computed position", "%.1f",
             w->positions ? (double)w->bytes_out / (double)w->positions : 0.0)
    PER_NODE("node_kv_blocks_used", "gauge", "KV blocks in use on the node", "%d", w->kv_blocks_used)
#undef PER_NODE
    family(&b, "hop_rtt_seconds", "gauge", "measured round-trip time between two workers (ping over the data socket)");
    for (int i = 0; i < s->cap_workers; i++)
        for (int j = 0; j < s->cap_workers; j++) {
            double v = s->rtt[i * s->cap_workers + j];
            if (i != j && s->workers[i].used && s->workers[j].used && isfinite(v))
                mprintf(&b, "parallax_hop_rtt_seconds{from=\"%s\",to=\"%s\"} %.6f\n", s->workers[i].id, s->workers[j].id, v);
        }
    pthread_mutex_unlock(&s->mu);
    return b.data;
}
