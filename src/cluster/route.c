/* route.c - phase 2: the cheapest chain of slices for one request.
 *
 * Slices form a DAG: an edge j -> i when slice j ends where slice i starts and
 * the RTT between their nodes is known (finite). A chain from a slice that
 * starts at 0 to one that ends at L serves the whole model; its cost per token
 * is the sum of stage costs (per-layer latency * layers * (1 + load/max_load))
 * plus the RTT of every hop. Slices sorted by start are a topological order,
 * so one pass computes best[i] = stage(i) + min over predecessors j of
 * (best[j] + rtt(j, i)). Ties: lower cost, then fewer stages, then the lower
 * predecessor (or tail) index: chains compare from the last stage backwards.
 * Slices at max load are skipped. Building the router (edges, order) is done
 * once per allocation; a find is O(slices + edges) with no allocation. */
#include "cluster_internal.h"
#include <stdlib.h>
#include <string.h>

struct px_router {
    int n_slices, n_layers;
    px_route_slice *slices;
    int *order;        /* slice indices by start, then index */
    int *pred_offset;  /* CSR over slice index: predecessors */
    int *pred;
    double *pred_rtt;
    double *best;
    int *hops, *from;
};

double px_route_stage_cost(const px_route_slice *s) {
    double base = s->layer_latency * (s->end - s->start);
    if (s->max_load <= 0) return base;
    return base * (1.0 + (double)s->load / s->max_load);
}

static bool slice_is_full(const px_route_slice *s) { return s->max_load > 0 && s->load >= s->max_load; }

/* Counting sort by start; index order is kept within one start. */
static void sort_by_start(px_router *r) {
    int *o = r->order;
    int *count = px_calloc((size_t)r->n_layers + 2, sizeof *count);
    for (int i = 0; i < r->n_slices; i++) count[r->slices[i].start + 1]++;
    for (int l = 0; l <= r->n_layers; l++) count[l + 1] += count[l];
    for (int i = 0; i < r->n_slices; i++) o[count[r->slices[i].start]++] = i;
    free(count);
}

static bool slice_is_valid(const px_route_slice *s, int n_layers) {
    return s->start >= 0 && s->start < s->end && s->end <= n_layers;
}

/* Predecessor lists: slices bucketed by end, kept in index order. */
static void link_predecessors(px_router *r, const double *rtt, int n_nodes, double unknown) {
    int n = r->n_slices, L = r->n_layers;
    int *by_end_offset = px_calloc((size_t)L + 2, sizeof *by_end_offset);
    int *by_end = px_malloc((size_t)(n + 1) * sizeof *by_end);
    for (int j = 0; j < n; j++) by_end_offset[r->slices[j].end + 1]++;
    for (int l = 0; l <= L; l++) by_end_offset[l + 1] += by_end_offset[l];
    int *fill = px_malloc((size_t)(L + 2) * sizeof *fill);
    memcpy(fill, by_end_offset, (size_t)(L + 2) * sizeof *fill);
    for (int j = 0; j < n; j++) by_end[fill[r->slices[j].end]++] = j;
    long edges = 0;
    for (int i = 0; i < n; i++) {
        int s = r->slices[i].start;
        if (s > 0) edges += by_end_offset[s + 1] - by_end_offset[s];
    }
    r->pred = px_malloc((size_t)(edges + 1) * sizeof *r->pred);
    r->pred_rtt = px_malloc((size_t)(edges + 1) * sizeof *r->pred_rtt);
    r->pred_offset = px_malloc((size_t)(n + 1) * sizeof *r->pred_offset);
    long e = 0;
    for (int i = 0; i < n; i++) {
        r->pred_offset[i] = (int)e;
        int s = r->slices[i].start;
        if (s == 0) continue;
        for (int k = by_end_offset[s]; k < by_end_offset[s + 1]; k++) {
            int j = by_end[k];
            int a = r->slices[j].node, b = r->slices[i].node;
            bool in_matrix = a >= 0 && b >= 0 && a < n_nodes && b < n_nodes;
            double t = in_matrix ? px_rtt_lookup(rtt, n_nodes, a, b, unknown) : (a == b ? 0 : unknown);
            if (!isfinite(t) || a == b) continue; /* unknown RTT: no edge; a node never follows itself */
            r->pred[e] = j;
            r->pred_rtt[e++] = t;
        }
    }
    r->pred_offset[n] = (int)e;
    free(by_end_offset);
    free(by_end);
    free(fill);
}

px_router *px_router_create(const px_route_slice *slices, int n_slices, int n_layers, const double *rtt,
                            int n_nodes, double unknown_rtt) {
    if (n_layers < 1 || n_layers > PX_CLUSTER_MAX_LAYERS || n_slices < 0) {
        px_error_set("router: layers must be in 1..%d", PX_CLUSTER_MAX_LAYERS);
        return NULL;
    }
    for (int i = 0; i < n_slices; i++)
        if (!slice_is_valid(&slices[i], n_layers)) {
            px_error_set("router: slice %d [%d, %d) is not inside [0, %d)", i, slices[i].start, slices[i].end, n_layers);
            return NULL;
        }
    px_router *r = px_calloc(1, sizeof *r);
    size_t n = (size_t)n_slices + 1;
    r->n_slices = n_slices;
    r->n_layers = n_layers;
    r->slices = px_malloc(n * sizeof *r->slices);
    if (n_slices > 0) memcpy(r->slices, slices, (size_t)n_slices * sizeof *slices);
    r->order = px_malloc(n * sizeof *r->order);
    r->best = px_malloc(n * sizeof *r->best);
    r->hops = px_malloc(n * sizeof *r->hops);
    r->from = px_malloc(n * sizeof *r->from);
    sort_by_start(r);
    link_predecessors(r, rtt, n_nodes, unknown_rtt);
    return r;
}

void px_router_destroy(px_router *r) {
    if (!r) return;
    free(r->slices);
    free(r->order);
    free(r->pred_offset);
    free(r->pred);
    free(r->pred_rtt);
    free(r->best);
    free(r->hops);
    free(r->from);
    free(r);
}

void px_router_set_load(px_router *r, int slice, int load) {
    if (slice >= 0 && slice < r->n_slices) r->slices[slice].load = load;
}

void px_router_set_latency(px_router *r, int slice, double layer_latency) {
    if (slice >= 0 && slice < r->n_slices) r->slices[slice].layer_latency = layer_latency;
}

static bool is_cheaper(double cost, int hops, double best, int best_hops) {
    if (cost != best) return cost < best;
    return hops < best_hops;
}

static void relax_slice(px_router *r, int i) {
    const px_route_slice *s = &r->slices[i];
    r->best[i] = INFINITY;
    r->hops[i] = 0;
    r->from[i] = -1;
    if (slice_is_full(s)) return;
    double stage = px_route_stage_cost(s);
    if (s->start == 0) {
        r->best[i] = stage;
        r->hops[i] = 1;
        return;
    }
    for (int e = r->pred_offset[i]; e < r->pred_offset[i + 1]; e++) {
        int j = r->pred[e];
        if (!isfinite(r->best[j])) continue;
        double cost = r->best[j] + r->pred_rtt[e] + stage;
        if (r->from[i] < 0 || is_cheaper(cost, r->hops[j] + 1, r->best[i], r->hops[i])) {
            r->best[i] = cost;
            r->hops[i] = r->hops[j] + 1;
            r->from[i] = j;
        }
    }
}

static int cheapest_tail(const px_router *r) {
    int tail = -1;
    for (int i = 0; i < r->n_slices; i++) {
        if (r->slices[i].end != r->n_layers || !isfinite(r->best[i])) continue;
        if (tail < 0 || is_cheaper(r->best[i], r->hops[i], r->best[tail], r->hops[tail])) tail = i;
    }
    return tail;
}

static bool layers_are_chained(const px_router *r) {
    px_span *spans = px_malloc((size_t)(r->n_slices + 1) * sizeof *spans);
    for (int i = 0; i < r->n_slices; i++) spans[i] = (px_span){r->slices[i].start, r->slices[i].end, 1};
    bool ok = px_spans_chain(spans, r->n_slices, r->n_layers);
    free(spans);
    return ok;
}

int px_router_find(px_router *r, px_route *out) {
    /* order[] lists starts ascending, so every predecessor (smaller start) is done first;
       equal starts never depend on each other */
    for (int k = 0; k < r->n_slices; k++) relax_slice(r, r->order[k]);
    int tail = cheapest_tail(r);
    out->n_stages = 0;
    out->cost = INFINITY;
    if (tail < 0) {
        if (!layers_are_chained(r)) px_error_set("no route: no chain of slices covers layers [0, %d)", r->n_layers);
        else px_error_set("no route: every chain over [0, %d) passes a node at max load or a hop with unknown RTT",
                          r->n_layers);
        return -1;
    }
    int n = r->hops[tail];
    out->n_stages = n;
    out->cost = r->best[tail];
    for (int i = tail, at = n - 1; i >= 0; i = r->from[i], at--) {
        out->slice[at] = i;
        out->node[at] = r->slices[i].node;
    }
    return 0;
}
