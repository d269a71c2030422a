/* node.c - the node model: what a model costs per layer, how many layers a
 * node holds (after a KV-cache reserve), how fast it runs one layer (the
 * roofline until it reports a measured EWMA), how many requests it takes,
 * and RTT lookups with a symmetric fallback. Also the module's defaults. */
#include "cluster_internal.h"
#include <string.h>

void px_cluster_params_default(px_cluster_params *p) {
    memset(p, 0, sizeof *p);
    p->strategy = PX_ALLOC_AUTO;
    p->objective = PX_OBJECTIVE_LATENCY_AWARE;
    p->alpha = 2.0;
    p->kv_reserve = 0.25;
    p->unknown_rtt = PX_RTT_UNREACHABLE;
    p->planning_rtt = 0.005;
    p->dp_max_nodes = 32;
    p->dp_budget = 5000;
    p->region_aware = true;
    p->place_leftovers = true;
    p->default_max_load = 16;
    p->context_tokens = 4096;
    p->rebalance_cv = 0.25;
    p->heartbeat_timeout = 10.0;
    p->ewma_weight = 0.3;
}

static bool dims_are_valid(const px_model_dims *d) {
    return d->hidden > 0 && d->intermediate > 0 && d->n_heads > 0 && d->n_kv_heads > 0 && d->vocab > 0 &&
           d->n_layers > 0 && d->n_layers <= PX_CLUSTER_MAX_LAYERS && d->bytes_per_weight > 0;
}

int px_model_cost_from_dims(const px_model_dims *d, px_model_cost *out) {
    if (!dims_are_valid(d)) {
        px_error_set("model dims: hidden, intermediate, heads, kv heads, vocab, bytes per weight must be "
                     "positive and layers in 1..%d", PX_CLUSTER_MAX_LAYERS);
        return -1;
    }
    double head_dim = d->head_dim > 0 ? d->head_dim : (double)d->hidden / d->n_heads;
    double h = d->hidden, q_dim = d->n_heads * head_dim, kv_dim = d->n_kv_heads * head_dim;
    double attn = h * q_dim + 2.0 * h * kv_dim + q_dim * h;
    double mlp = 3.0 * h * d->intermediate;
    double norms = 2.0 * h;
    double params = attn + mlp + norms;
    double kv_value = d->kv_bytes_per_value > 0 ? d->kv_bytes_per_value : 4.0;
    memset(out, 0, sizeof *out);
    out->n_layers = d->n_layers;
    out->layer_bytes = (uint64_t)(params * d->bytes_per_weight + 0.5);
    out->layer_flops = 2.0 * params + (d->context_tokens > 0 ? 4.0 * q_dim * d->context_tokens : 0.0);
    out->embed_bytes = (uint64_t)((double)d->vocab * h * d->bytes_per_weight + 0.5);
    out->lm_head_bytes = out->embed_bytes + (uint64_t)(h * 4.0); /* + final norm (f32) */
    out->tied = d->tied;
    out->kv_bytes_per_token = (uint64_t)(2.0 * kv_dim * kv_value + 0.5);
    return 0;
}

void px_node_info_init(px_node_info *n, const char *id) {
    memset(n, 0, sizeof *n);
    if (id) snprintf(n->id, sizeof n->id, "%s", id);
    n->manual_start = n->manual_end = -1;
}

static int layers_in(double bytes, const px_model_cost *m) {
    if (bytes <= 0 || m->layer_bytes == 0) return bytes > 0 ? m->n_layers : 0;
    double layers = floor(bytes / (double)m->layer_bytes);
    return layers > m->n_layers ? m->n_layers : (int)layers;
}

void px_node_layer_capacity(const px_node_info *n, const px_model_cost *m, double kv_reserve,
                            px_layer_capacity *out) {
    double usable = (double)n->memory_bytes * (1.0 - kv_reserve);
    double embed = (double)m->embed_bytes, head = (double)m->lm_head_bytes;
    out->mid = layers_in(usable, m);
    out->first = layers_in(usable - embed, m);
    out->last = layers_in(usable - head, m);
    out->both = layers_in(usable - embed - (m->tied ? 0.0 : head), m);
    if (m->tied && m->lm_head_bytes > m->embed_bytes) /* the final norm still counts */
        out->both = layers_in(usable - head, m);
}

int px_layer_capacity_at(const px_layer_capacity *c, int start, int end, int n_layers) {
    bool first = start == 0, last = end == n_layers;
    if (first && last) return c->both;
    if (first) return c->first;
    if (last) return c->last;
    return c->mid;
}

double px_node_roofline_latency(const px_node_info *n, const px_model_cost *m) {
    double compute = n->flops > 0 ? m->layer_flops / n->flops : 0.0;
    double memory = n->bandwidth > 0 ? (double)m->layer_bytes / n->bandwidth : 0.0;
    if (n->flops <= 0 && n->bandwidth <= 0) return 1.0;
    double t = PX_MAX(compute, memory);
    return t > 0 ? t : 1e-9;
}

double px_node_layer_latency(const px_node_info *n, const px_model_cost *m) {
    return n->layer_latency > 0 ? n->layer_latency : px_node_roofline_latency(n, m);
}

double px_ewma_update(double current, double sample, double weight) {
    if (current <= 0) return sample;
    return weight * sample + (1.0 - weight) * current;
}

static double slice_weight_bytes(const px_model_cost *m, int start, int end) {
    double bytes = (double)(end - start) * (double)m->layer_bytes;
    bool first = start == 0, last = end == m->n_layers;
    if (first) bytes += (double)m->embed_bytes;
    if (last && !(first && m->tied)) bytes += (double)m->lm_head_bytes;
    return bytes;
}

int px_node_max_load(const px_node_info *n, const px_model_cost *m, int start, int end, int context_tokens,
                     int default_max_load) {
    if (n->max_load > 0) return n->max_load;
    int layers = end - start;
    if (layers <= 0 || m->kv_bytes_per_token == 0 || context_tokens <= 0) return PX_MAX(default_max_load, 1);
    double budget = (double)n->memory_bytes - slice_weight_bytes(m, start, end);
    double per_request = (double)layers * (double)m->kv_bytes_per_token * context_tokens;
    double requests = floor(budget / per_request);
    if (requests < 1) return 1;
    return requests > 1e6 ? 1000000 : (int)requests;
}

static bool rtt_is_known(double v) { return !isnan(v) && v >= 0; }

double px_rtt_lookup(const double *rtt, int n, int i, int j, double unknown) {
    if (i == j) return 0.0;
    if (!rtt) return unknown;
    double v = rtt[(size_t)i * n + j];
    if (rtt_is_known(v)) return v;
    v = rtt[(size_t)j * n + i];
    return rtt_is_known(v) ? v : unknown;
}

int px_stage_need(const px_model_cost *m) {
    uint64_t lb = m->layer_bytes ? m->layer_bytes : 1;
    uint64_t e = (m->embed_bytes + lb - 1) / lb, h = (m->lm_head_bytes + lb - 1) / lb;
    return m->n_layers + (int)e + (int)h;
}

int px_stage_units(const px_layer_capacity *cap, int n_layers, int need) {
    if (cap->both >= n_layers) return need;
    return PX_MIN(cap->mid, need);
}
