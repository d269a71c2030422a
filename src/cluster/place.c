/* place.c - where an extra node should go, and how well layers are hosted.
 *
 * Hosting power of a layer is the sum of the speeds (layers per second, the
 * inverse of the per-layer latency) of the nodes serving it; its coefficient
 * of variation across layers is the imbalance measure. A new or leftover node
 * is only useful on a window of layers whose ends line up with existing stage
 * boundaries (otherwise no chain can pass through it), so the candidates are
 * start in {0} + {span ends} and end in {L} + {span starts}; for each start the
 * longest fitting end dominates, since every layer adds need. Need of a layer
 * is 1 / hosting, and uncovered layers outrank everything. */
#include "cluster_internal.h"
#include <stdlib.h>
#include <string.h>

void px_hosting_power(const px_span *spans, int n, int n_layers, double *hosting) {
    for (int l = 0; l < n_layers; l++) hosting[l] = 0;
    for (int i = 0; i < n; i++)
        for (int l = PX_MAX(spans[i].start, 0); l < spans[i].end && l < n_layers; l++) hosting[l] += spans[i].speed;
}

double px_hosting_cv(const double *hosting, int n_layers) {
    double sum = 0, sq = 0;
    for (int l = 0; l < n_layers; l++) {
        if (!(hosting[l] > 0)) return INFINITY;
        sum += hosting[l];
    }
    double mean = sum / n_layers;
    for (int l = 0; l < n_layers; l++) sq += (hosting[l] - mean) * (hosting[l] - mean);
    return sqrt(sq / n_layers) / mean;
}

static int compare_span_start(const void *a, const void *b) {
    const px_span *x = a, *y = b;
    return (x->start > y->start) - (x->start < y->start);
}

bool px_spans_chain(const px_span *spans, int n, int n_layers) {
    px_span *sorted = px_malloc((size_t)(n ? n : 1) * sizeof *sorted);
    if (n > 0) memcpy(sorted, spans, (size_t)n * sizeof *sorted);
    qsort(sorted, (size_t)n, sizeof *sorted, compare_span_start);
    bool *reach = px_calloc((size_t)n_layers + 1, sizeof *reach);
    reach[0] = true;
    for (int i = 0; i < n; i++) {
        const px_span *s = &sorted[i];
        if (s->start >= 0 && s->end <= n_layers && s->start < s->end && reach[s->start]) reach[s->end] = true;
    }
    bool ok = reach[n_layers];
    free(reach);
    free(sorted);
    return ok;
}

static int compare_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

static int sort_unique(int *v, int n) {
    qsort(v, (size_t)n, sizeof *v, compare_int);
    int m = 0;
    for (int i = 0; i < n; i++)
        if (m == 0 || v[m - 1] != v[i]) v[m++] = v[i];
    return m;
}

/* Largest value in sorted v[0..n) that is <= limit, or -1. */
static int largest_at_most(const int *v, int n, int limit) {
    int lo = 0, hi = n - 1, best = -1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (v[mid] <= limit) best = v[mid], lo = mid + 1;
        else hi = mid - 1;
    }
    return best;
}

typedef struct {
    int start, end, uncovered;
    double need;
} window;

static bool window_is_better(const window *a, const window *b) {
    if (b->start < 0) return true;
    if (a->uncovered != b->uncovered) return a->uncovered > b->uncovered;
    double scale = PX_MAX(fabs(a->need), fabs(b->need));
    if (fabs(a->need - b->need) > 1e-9 * scale) return a->need > b->need;
    if (a->end - a->start != b->end - b->start) return a->end - a->start > b->end - b->start;
    return a->start < b->start;
}

typedef struct {
    double *need;
    int *uncovered;
} need_prefix;

static need_prefix prefix_need(const double *hosting, int n_layers) {
    need_prefix p = {px_malloc((size_t)(n_layers + 1) * sizeof(double)),
                     px_malloc((size_t)(n_layers + 1) * sizeof(int))};
    p.need[0] = 0;
    p.uncovered[0] = 0;
    for (int l = 0; l < n_layers; l++) {
        bool hosted = hosting[l] > 0;
        p.need[l + 1] = p.need[l] + (hosted ? 1.0 / hosting[l] : 0.0);
        p.uncovered[l + 1] = p.uncovered[l] + (hosted ? 0 : 1);
    }
    return p;
}

static void consider(window *best, const need_prefix *p, int start, int end) {
    window w = {start, end, p->uncovered[end] - p->uncovered[start], p->need[end] - p->need[start]};
    if (window_is_better(&w, best)) *best = w;
}

bool px_best_window(const px_span *spans, int n, int n_layers, const double *hosting,
                    const px_layer_capacity *cap, int *start, int *end) {
    int *starts = px_malloc((size_t)(n + 1) * sizeof *starts), *ends = px_malloc((size_t)(n + 1) * sizeof *ends);
    int ns = 0, ne = 0;
    starts[ns++] = 0;
    for (int i = 0; i < n; i++) {
        if (spans[i].end > 0 && spans[i].end < n_layers) starts[ns++] = spans[i].end;
        if (spans[i].start > 0 && spans[i].start < n_layers) ends[ne++] = spans[i].start;
    }
    ns = sort_unique(starts, ns);
    ne = sort_unique(ends, ne);
    need_prefix p = prefix_need(hosting, n_layers);
    window best = {-1, -1, 0, 0};
    for (int i = 0; i < ns; i++) {
        int s = starts[i];
        if (n_layers - s <= px_layer_capacity_at(cap, s, n_layers, n_layers)) consider(&best, &p, s, n_layers);
        int room = s == 0 ? cap->first : cap->mid;
        int e = largest_at_most(ends, ne, s + room);
        if (e > s) consider(&best, &p, s, e);
    }
    free(starts);
    free(ends);
    free(p.need);
    free(p.uncovered);
    if (best.start < 0) return false;
    *start = best.start;
    *end = best.end;
    return true;
}
