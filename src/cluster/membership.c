/* membership.c - the cluster as an event-driven state machine.
 *
 * Each node lives in a slot: STANDBY (no slice), SERVING (a slice), or GONE
 * (left or timed out; the slot may be reused by a later join). Events:
 *
 *   join       manual slice: taken as given. Otherwise the most needed window
 *              that lines up with existing stage boundaries (place.c) when a
 *              full chain exists or the window completes one; else standby.
 *              Then: no full chain -> phase 1 over everyone; full chain and
 *              standby nodes that could form a pipeline -> phase 1 over the
 *              standby nodes only (existing slices untouched).
 *   leave      drop the slice; no full chain left -> phase 1 over everyone;
 *              imbalance (CV of per-layer hosting power) above rebalance_cv ->
 *              phase 1 over everyone, applied only when it lowers the CV.
 *   heartbeat  last_seen, load, and the per-layer latency EWMA.
 *   tick       every node silent for longer than heartbeat_timeout leaves.
 *   rebalance  phase 1 over everyone, applied.
 *
 * Every event appends the slice changes it caused to the caller's list. The
 * router over SERVING slices is rebuilt lazily after a change. */
#include "cluster_internal.h"
#include <stdlib.h>
#include <string.h>

typedef struct {
    px_node_info info; /* info.layer_latency: EWMA; info.load: current load */
    px_node_state state;
    int start, end;
    double last_seen;
    bool manual;
} member;

struct px_cluster {
    px_model_cost cost;
    px_cluster_params p;
    member *m;
    int n, cap;
    double *rtt; /* cap x cap */
    px_router *router;
    int router_slices;
    int *router_slot;
    bool router_dirty;
};

/* ---------------- change lists ---------------- */

void px_change_list_free(px_change_list *l) {
    free(l->items);
    memset(l, 0, sizeof *l);
}

static void list_reset(px_change_list *l) {
    if (!l) return;
    l->n = 0;
    l->reallocated = false;
}

static void list_add(px_change_list *l, const member *m, int slot, px_change_kind kind, int old_start, int old_end) {
    if (!l) return;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 8;
        l->items = px_realloc(l->items, (size_t)l->cap * sizeof *l->items);
    }
    px_slice_change *c = &l->items[l->n++];
    memset(c, 0, sizeof *c);
    snprintf(c->node_id, sizeof c->node_id, "%s", m->info.id);
    c->node = slot;
    c->kind = kind;
    c->old_start = old_start;
    c->old_end = old_end;
    c->new_start = m->state == PX_NODE_SERVING ? m->start : -1;
    c->new_end = m->state == PX_NODE_SERVING ? m->end : -1;
}

/* ---------------- slots ---------------- */

px_cluster *px_cluster_create(const px_model_cost *cost, const px_cluster_params *p) {
    if (cost->n_layers < 1 || cost->n_layers > PX_CLUSTER_MAX_LAYERS || cost->layer_bytes == 0) {
        px_error_set("cluster: model cost needs 1..%d layers and layer bytes > 0", PX_CLUSTER_MAX_LAYERS);
        return NULL;
    }
    px_cluster *c = px_calloc(1, sizeof *c);
    c->cost = *cost;
    if (p) c->p = *p;
    else px_cluster_params_default(&c->p);
    c->router_dirty = true;
    return c;
}

void px_cluster_destroy(px_cluster *c) {
    if (!c) return;
    px_router_destroy(c->router);
    free(c->router_slot);
    free(c->m);
    free(c->rtt);
    free(c);
}

static void grow_slots(px_cluster *c) {
    int cap = c->cap ? 2 * c->cap : 16;
    c->m = px_realloc(c->m, (size_t)cap * sizeof *c->m);
    double *rtt = px_malloc((size_t)cap * cap * sizeof *rtt);
    for (size_t i = 0; i < (size_t)cap * cap; i++) rtt[i] = NAN;
    for (int i = 0; i < c->cap; i++) memcpy(rtt + (size_t)i * cap, c->rtt + (size_t)i * c->cap, (size_t)c->cap * sizeof *rtt);
    free(c->rtt);
    c->rtt = rtt;
    c->cap = cap;
}

static void forget_rtts(px_cluster *c, int slot) {
    for (int j = 0; j < c->cap; j++) c->rtt[(size_t)slot * c->cap + j] = c->rtt[(size_t)j * c->cap + slot] = NAN;
}

static int take_slot(px_cluster *c) {
    for (int i = 0; i < c->n; i++)
        if (c->m[i].state == PX_NODE_GONE) return i;
    if (c->n == c->cap) grow_slots(c);
    return c->n++;
}

int px_cluster_find(const px_cluster *c, const char *id) {
    for (int i = 0; i < c->n; i++)
        if (c->m[i].state != PX_NODE_GONE && !strcmp(c->m[i].info.id, id)) return i;
    return -1;
}

int px_cluster_slot_count(const px_cluster *c) { return c->n; }

static double latency_of(const px_cluster *c, const member *m) { return px_node_layer_latency(&m->info, &c->cost); }

/* ---------------- slices ---------------- */

static void set_slice(px_cluster *c, int slot, int start, int end, px_change_list *out) {
    member *m = &c->m[slot];
    int old_start = m->state == PX_NODE_SERVING ? m->start : -1, old_end = m->state == PX_NODE_SERVING ? m->end : -1;
    if (old_start == start && old_end == end) return;
    m->start = start;
    m->end = end;
    m->state = start >= 0 ? PX_NODE_SERVING : PX_NODE_STANDBY;
    c->router_dirty = true;
    px_change_kind kind = old_start < 0 ? PX_CHANGE_ASSIGN : (start < 0 ? PX_CHANGE_RELEASE : PX_CHANGE_MOVE);
    list_add(out, m, slot, kind, old_start, old_end);
}

static int serving_spans(const px_cluster *c, px_span *spans) {
    int n = 0;
    for (int i = 0; i < c->n; i++)
        if (c->m[i].state == PX_NODE_SERVING)
            spans[n++] = (px_span){c->m[i].start, c->m[i].end, 1.0 / latency_of(c, &c->m[i])};
    return n;
}

bool px_cluster_has_full_pipeline(const px_cluster *c) {
    px_span *spans = px_malloc((size_t)(c->n + 1) * sizeof *spans);
    bool ok = px_spans_chain(spans, serving_spans(c, spans), c->cost.n_layers);
    free(spans);
    return ok;
}

double px_cluster_imbalance(const px_cluster *c) {
    px_span *spans = px_malloc((size_t)(c->n + 1) * sizeof *spans);
    double *hosting = px_malloc((size_t)c->cost.n_layers * sizeof *hosting);
    px_hosting_power(spans, serving_spans(c, spans), c->cost.n_layers, hosting);
    double cv = px_hosting_cv(hosting, c->cost.n_layers);
    free(spans);
    free(hosting);
    return cv;
}

/* ---------------- phase 1 over a subset ---------------- */

typedef struct {
    int *slot;
    int n;
    px_node_info *info;
    double *rtt;
    px_allocation alloc;
} subset_plan;

static bool slot_is_in(const px_cluster *c, int i, bool standby_only) {
    const member *m = &c->m[i];
    if (m->state == PX_NODE_GONE) return false;
    return standby_only ? m->state == PX_NODE_STANDBY && !m->manual : true;
}

static void collect_subset(const px_cluster *c, bool standby_only, subset_plan *s) {
    s->slot = px_malloc((size_t)(c->n + 1) * sizeof *s->slot);
    s->info = px_malloc((size_t)(c->n + 1) * sizeof *s->info);
    s->n = 0;
    for (int i = 0; i < c->n; i++)
        if (slot_is_in(c, i, standby_only)) {
            s->info[s->n] = c->m[i].info;
            if (c->m[i].manual) s->info[s->n].manual_start = c->m[i].start, s->info[s->n].manual_end = c->m[i].end;
            s->slot[s->n++] = i;
        }
    s->rtt = px_malloc((size_t)s->n * s->n * sizeof *s->rtt + 1);
    for (int a = 0; a < s->n; a++)
        for (int b = 0; b < s->n; b++) s->rtt[(size_t)a * s->n + b] = c->rtt[(size_t)s->slot[a] * c->cap + s->slot[b]];
}

static int plan_subset(const px_cluster *c, bool standby_only, subset_plan *s) {
    memset(s, 0, sizeof *s);
    collect_subset(c, standby_only, s);
    px_cluster_params p = c->p;
    if (standby_only) p.place_leftovers = false;
    return px_alloc_plan(s->info, s->n, &c->cost, s->rtt, &p, &s->alloc);
}

static void free_subset(subset_plan *s) {
    free(s->slot);
    free(s->info);
    free(s->rtt);
    px_allocation_free(&s->alloc);
}

static void apply_subset(px_cluster *c, const subset_plan *s, bool standby_only, px_change_list *out) {
    for (int j = 0; j < s->n; j++) {
        int slot = s->slot[j];
        if (c->m[slot].manual) continue;
        if (standby_only && s->alloc.start[j] < 0) continue;
        set_slice(c, slot, s->alloc.start[j], s->alloc.end[j], out);
    }
    if (out) out->reallocated = true;
}

/* Phase 1 over everyone, applied when it forms a pipeline. */
static bool reallocate_everyone(px_cluster *c, px_change_list *out) {
    subset_plan s;
    bool ok = plan_subset(c, false, &s) == 0;
    if (ok) apply_subset(c, &s, false, out);
    free_subset(&s);
    return ok;
}

static double planned_cv(const px_cluster *c, const subset_plan *s) {
    px_span *spans = px_malloc((size_t)(s->n + 1) * sizeof *spans);
    double *hosting = px_malloc((size_t)c->cost.n_layers * sizeof *hosting);
    int n = 0;
    for (int j = 0; j < s->n; j++)
        if (s->alloc.start[j] >= 0)
            spans[n++] = (px_span){s->alloc.start[j], s->alloc.end[j], 1.0 / latency_of(c, &c->m[s->slot[j]])};
    px_hosting_power(spans, n, c->cost.n_layers, hosting);
    double cv = px_hosting_cv(hosting, c->cost.n_layers);
    free(spans);
    free(hosting);
    return cv;
}

static void rebalance_if_it_helps(px_cluster *c, px_change_list *out) {
    double current = px_cluster_imbalance(c);
    if (!(current > c->p.rebalance_cv)) return;
    subset_plan s;
    if (plan_subset(c, false, &s) == 0 && planned_cv(c, &s) < current - 1e-9) apply_subset(c, &s, false, out);
    free_subset(&s);
}

static void form_pipelines_from_standby(px_cluster *c, px_change_list *out) {
    subset_plan s;
    if (plan_subset(c, true, &s) == 0 && s.alloc.n_pipelines > 0) apply_subset(c, &s, true, out);
    free_subset(&s);
}

/* ---------------- events ---------------- */

static bool window_completes_chain(const px_cluster *c, px_span *spans, int n_spans, int start, int end) {
    spans[n_spans] = (px_span){start, end, 1};
    return px_spans_chain(spans, n_spans + 1, c->cost.n_layers);
}

/* The most needed aligned window, when useful now; false leaves it on standby. */
static bool place_newcomer(px_cluster *c, int slot, px_change_list *out) {
    member *m = &c->m[slot];
    px_span *spans = px_malloc((size_t)(c->n + 2) * sizeof *spans);
    double *hosting = px_malloc((size_t)c->cost.n_layers * sizeof *hosting);
    int n = serving_spans(c, spans), start, end;
    px_layer_capacity cap;
    px_node_layer_capacity(&m->info, &c->cost, c->p.kv_reserve, &cap);
    px_hosting_power(spans, n, c->cost.n_layers, hosting);
    bool chained = px_spans_chain(spans, n, c->cost.n_layers);
    bool placed = px_best_window(spans, n, c->cost.n_layers, hosting, &cap, &start, &end) &&
                  (chained || window_completes_chain(c, spans, n, start, end));
    if (placed) set_slice(c, slot, start, end, out);
    free(spans);
    free(hosting);
    return placed;
}

static int check_manual(const px_cluster *c, const px_node_info *info) {
    bool has = info->manual_start >= 0 || info->manual_end >= 0;
    if (!has) return 0;
    if (info->manual_start < 0 || info->manual_start >= info->manual_end || info->manual_end > c->cost.n_layers) {
        px_error_set("node %s: manual slice [%d, %d) is not inside [0, %d)", info->id, info->manual_start,
                     info->manual_end, c->cost.n_layers);
        return -1;
    }
    return 1;
}

static void remove_member(px_cluster *c, int slot, px_change_list *out) {
    member *m = &c->m[slot];
    int old_start = m->state == PX_NODE_SERVING ? m->start : -1, old_end = m->state == PX_NODE_SERVING ? m->end : -1;
    m->state = PX_NODE_GONE;
    m->start = m->end = -1;
    forget_rtts(c, slot);
    c->router_dirty = true;
    list_add(out, m, slot, PX_CHANGE_DROP, old_start, old_end);
}

static void settle_after_leave(px_cluster *c, px_change_list *out) {
    if (!px_cluster_has_full_pipeline(c)) reallocate_everyone(c, out);
    else rebalance_if_it_helps(c, out);
}

int px_cluster_join(px_cluster *c, const px_node_info *info, double now, px_change_list *out) {
    list_reset(out);
    if (!info->id[0]) {
        px_error_set("join: a node needs an id");
        return -1;
    }
    int manual = check_manual(c, info);
    if (manual < 0) return -1;
    int old = px_cluster_find(c, info->id);
    if (old >= 0) {
        remove_member(c, old, out);
        settle_after_leave(c, out);
    }
    int slot = take_slot(c);
    member *m = &c->m[slot];
    memset(m, 0, sizeof *m);
    m->info = *info;
    m->state = PX_NODE_STANDBY;
    m->start = m->end = -1;
    m->last_seen = now;
    m->manual = manual > 0;
    forget_rtts(c, slot);
    if (m->manual) set_slice(c, slot, info->manual_start, info->manual_end, out);
    else place_newcomer(c, slot, out);
    if (!px_cluster_has_full_pipeline(c)) reallocate_everyone(c, out);
    else form_pipelines_from_standby(c, out);
    return 0;
}

static int leave_slot(px_cluster *c, int slot, px_change_list *out) {
    remove_member(c, slot, out);
    settle_after_leave(c, out);
    return 0;
}

int px_cluster_leave(px_cluster *c, const char *id, px_change_list *out) {
    list_reset(out);
    int slot = px_cluster_find(c, id);
    if (slot < 0) {
        px_error_set("leave: no node '%s' in the cluster", id);
        return -1;
    }
    return leave_slot(c, slot, out);
}

int px_cluster_heartbeat(px_cluster *c, const char *id, double now, const px_heartbeat *hb) {
    int slot = px_cluster_find(c, id);
    if (slot < 0) {
        px_error_set("heartbeat: no node '%s' in the cluster", id);
        return -1;
    }
    member *m = &c->m[slot];
    m->last_seen = now;
    if (hb && hb->load >= 0) m->info.load = hb->load;
    if (hb && hb->layer_latency > 0)
        m->info.layer_latency = px_ewma_update(m->info.layer_latency, hb->layer_latency, c->p.ewma_weight);
    return 0;
}

int px_cluster_tick(px_cluster *c, double now, px_change_list *out) {
    list_reset(out);
    for (int i = 0; i < c->n; i++)
        if (c->m[i].state != PX_NODE_GONE && now - c->m[i].last_seen > c->p.heartbeat_timeout) leave_slot(c, i, out);
    return 0;
}

int px_cluster_rebalance(px_cluster *c, px_change_list *out) {
    list_reset(out);
    if (!reallocate_everyone(c, out)) return -1;
    return 0;
}

int px_cluster_set_rtt(px_cluster *c, const char *from, const char *to, double seconds) {
    int a = px_cluster_find(c, from), b = px_cluster_find(c, to);
    if (a < 0 || b < 0) {
        px_error_set("rtt: no node '%s' in the cluster", a < 0 ? from : to);
        return -1;
    }
    c->rtt[(size_t)a * c->cap + b] = seconds;
    c->router_dirty = true;
    return 0;
}

/* ---------------- routing ---------------- */

static int rebuild_router(px_cluster *c) {
    px_router_destroy(c->router);
    c->router = NULL;
    free(c->router_slot);
    c->router_slot = px_malloc((size_t)(c->n + 1) * sizeof *c->router_slot);
    px_route_slice *slices = px_malloc((size_t)(c->n + 1) * sizeof *slices);
    int n = 0;
    for (int i = 0; i < c->n; i++)
        if (c->m[i].state == PX_NODE_SERVING) {
            const member *m = &c->m[i];
            slices[n] = (px_route_slice){.node = i, .start = m->start, .end = m->end};
            slices[n].max_load = px_node_max_load(&m->info, &c->cost, m->start, m->end, c->p.context_tokens,
                                                  c->p.default_max_load);
            c->router_slot[n++] = i;
        }
    c->router = px_router_create(slices, n, c->cost.n_layers, c->rtt, c->cap, c->p.unknown_rtt);
    c->router_slices = n;
    free(slices);
    c->router_dirty = c->router == NULL;
    return c->router ? 0 : -1;
}

static void refresh_router_state(px_cluster *c) {
    for (int k = 0; k < c->router_slices; k++) {
        const member *m = &c->m[c->router_slot[k]];
        px_router_set_load(c->router, k, m->info.load);
        px_router_set_latency(c->router, k, latency_of(c, m));
    }
}

int px_cluster_route(px_cluster *c, px_route *out) {
    if (c->router_dirty && rebuild_router(c) < 0) return -1;
    refresh_router_state(c);
    return px_router_find(c->router, out);
}

static void add_load(px_cluster *c, const px_route *r, int delta) {
    for (int k = 0; k < r->n_stages; k++) {
        int slot = r->node[k];
        if (slot < 0 || slot >= c->n || c->m[slot].state == PX_NODE_GONE) continue;
        c->m[slot].info.load = PX_MAX(0, c->m[slot].info.load + delta);
    }
}

void px_cluster_route_acquire(px_cluster *c, const px_route *r) { add_load(c, r, +1); }
void px_cluster_route_release(px_cluster *c, const px_route *r) { add_load(c, r, -1); }

int px_cluster_node_status(const px_cluster *c, int slot, px_node_status *out) {
    if (slot < 0 || slot >= c->n) {
        px_error_set("cluster: no slot %d", slot);
        return -1;
    }
    const member *m = &c->m[slot];
    out->id = m->info.id;
    out->state = m->state;
    out->start = m->state == PX_NODE_SERVING ? m->start : -1;
    out->end = m->state == PX_NODE_SERVING ? m->end : -1;
    out->layer_latency = latency_of(c, m);
    out->load = m->info.load;
    out->max_load = out->start >= 0 ? px_node_max_load(&m->info, &c->cost, m->start, m->end, c->p.context_tokens,
                                                       c->p.default_max_load)
                                    : m->info.max_load;
    out->last_seen = m->last_seen;
    out->manual = m->manual;
    px_node_layer_capacity(&m->info, &c->cost, c->p.kv_reserve, &out->capacity);
    return 0;
}
