/* alloc.c - phase 1: which nodes form how many pipelines, and which layers
 * each stage holds.
 *
 *  1. Node model: per node its capacities (px_node_layer_capacity), per-layer
 *     latency and speed (1 / latency), and unit capacity for the stage search.
 *     Nodes with a manual slice keep it and are not allocated.
 *  2. Groups: with region_aware, every region whose nodes can host a whole
 *     pipeline is its own group; the remaining nodes form one pool. Otherwise
 *     one group. Pipelines never span groups.
 *  3. Per group, s*(k) for every feasible k (alloc_search.c; exact search up to
 *     dp_max_nodes nodes under AUTO, greedy above). Groups combine by a
 *     min-plus convolution: S(K) = min over k_1 + ... + k_G = K of sum s*_g(k_g).
 *  4. Choose K maximising Z(K) = K^alpha / (T_comp + (S(K)/K) * RTT_avg), with
 *     T_comp = L * (unit-weighted mean per-layer latency of the allocatable
 *     nodes) and RTT_avg the mean known RTT between nodes of the same group
 *     (every pair up to 256 nodes a group, a fixed sample of partners above;
 *     planning_rtt when none is known). Ties: fewer stages, then smaller K.
 *     A single greedy group skips k whose Z cannot win even at its lower
 *     bound on stages.
 *  5. Each pipeline: stages in capacity order (or, when that leaves a stage
 *     empty, the best first/last pair by embedding and lm_head room at the ends);
 *     layers by water-filling over position capacities and speeds, with a
 *     one-layer floor per stage when plain water-filling would leave one empty
 *     (every node the search picked is needed for capacity).
 *     In small groups a spare node joins the pipeline whose modelled latency
 *     it lowers by >= 5% (the stage search alone would leave a fast small
 *     node out while a slow big one carries many layers).
 *  6. Leftover nodes (largest first) replicate the most needed window of their
 *     group's layers (place.c), or stay on standby. With no pipeline, the plan
 *     still succeeds when manual slices and replicas chain from 0 to L. */
#include "cluster_internal.h"
#include "alloc_search.h"
#include <stdlib.h>
#include <string.h>

typedef struct {
    int *members; /* node indices, units desc, speed desc, index asc */
    int *units;   /* their unit capacities, same order */
    int n, k_max;
    int *stages;  /* [0..k_max]: s*(k) or -1 */
    int *lower;   /* the lower bound each exact search started from */
    bool exact, greedy;
    int chosen_k, n_pipelines;
} group;

typedef struct {
    const px_node_info *nodes;
    int n, L, need;
    const px_model_cost *cost;
    const double *rtt;
    const px_cluster_params *p;
    px_layer_capacity *cap;
    double *latency, *speed;
    int *units, *group_of;
    bool *eligible;
    group *groups;
    int n_groups;
    px_allocation *out;
    int stages_cap;
    long budget_left; /* exact-search steps left for the whole plan */
} planner;

/* ---------------- setup ---------------- */

static int check_cost(const px_model_cost *m) {
    if (m->n_layers < 1 || m->n_layers > PX_CLUSTER_MAX_LAYERS || m->layer_bytes == 0) {
        px_error_set("model cost: layers must be in 1..%d and layer bytes > 0", PX_CLUSTER_MAX_LAYERS);
        return -1;
    }
    if (px_stage_need(m) > 60000) {
        px_error_set("model cost: embedding + lm_head are more than 60000 layers' worth of bytes");
        return -1;
    }
    return 0;
}

static bool has_manual_slice(const px_node_info *n) { return n->manual_start >= 0 || n->manual_end >= 0; }

static int take_manual_slice(planner *P, int i) {
    const px_node_info *nd = &P->nodes[i];
    if (nd->manual_start < 0 || nd->manual_end > P->L || nd->manual_start >= nd->manual_end) {
        px_error_set("node %s: manual slice [%d, %d) is not inside [0, %d)", nd->id, nd->manual_start,
                     nd->manual_end, P->L);
        return -1;
    }
    P->out->start[i] = nd->manual_start;
    P->out->end[i] = nd->manual_end;
    P->out->role[i] = PX_SLICE_MANUAL;
    return 0;
}

static int describe_nodes(planner *P) {
    int n = P->n;
    P->cap = px_calloc((size_t)n + 1, sizeof *P->cap);
    P->latency = px_calloc((size_t)n + 1, sizeof *P->latency);
    P->speed = px_calloc((size_t)n + 1, sizeof *P->speed);
    P->units = px_calloc((size_t)n + 1, sizeof *P->units);
    P->group_of = px_calloc((size_t)n + 1, sizeof *P->group_of);
    P->eligible = px_calloc((size_t)n + 1, sizeof *P->eligible);
    for (int i = 0; i < n; i++) {
        px_node_layer_capacity(&P->nodes[i], P->cost, P->p->kv_reserve, &P->cap[i]);
        P->latency[i] = px_node_layer_latency(&P->nodes[i], P->cost);
        P->speed[i] = 1.0 / P->latency[i];
        P->units[i] = px_stage_units(&P->cap[i], P->L, P->need);
        P->group_of[i] = -1;
        if (has_manual_slice(&P->nodes[i])) {
            if (take_manual_slice(P, i) < 0) return -1;
        } else {
            P->eligible[i] = P->units[i] > 0;
        }
    }
    return 0;
}

/* ---------------- groups ---------------- */

static int region_index(const px_node_info *nodes, const int *first_of_region, int n_regions, const char *region) {
    for (int r = 0; r < n_regions; r++)
        if (!strcmp(nodes[first_of_region[r]].region, region)) return r;
    return -1;
}

/* region_of[i] for eligible nodes; returns the number of regions. */
static int label_regions(const planner *P, int *region_of, int *first_of_region) {
    int n_regions = 0;
    for (int i = 0; i < P->n; i++) {
        region_of[i] = -1;
        if (!P->eligible[i]) continue;
        int r = P->p->region_aware ? region_index(P->nodes, first_of_region, n_regions, P->nodes[i].region) : 0;
        if (r < 0 || n_regions == 0) {
            r = n_regions++;
            first_of_region[r] = i;
        }
        region_of[i] = r;
    }
    return n_regions;
}

static void form_groups(planner *P) {
    int *region_of = px_malloc((size_t)(P->n + 1) * sizeof *region_of);
    int *first = px_malloc((size_t)(P->n + 1) * sizeof *first);
    int n_regions = label_regions(P, region_of, first);
    long *units = px_calloc((size_t)n_regions + 1, sizeof *units);
    for (int i = 0; i < P->n; i++)
        if (region_of[i] >= 0) units[region_of[i]] += P->units[i];
    int *group_of_region = px_malloc((size_t)(n_regions + 1) * sizeof *group_of_region);
    int n_groups = 0, pool = -1;
    for (int r = 0; r < n_regions; r++) {
        if (units[r] >= P->need || n_regions == 1) group_of_region[r] = n_groups++;
        else {
            if (pool < 0) pool = n_groups++;
            group_of_region[r] = pool;
        }
    }
    for (int i = 0; i < P->n; i++)
        if (region_of[i] >= 0) P->group_of[i] = group_of_region[region_of[i]];
    P->n_groups = n_groups;
    P->groups = px_calloc((size_t)n_groups + 1, sizeof *P->groups);
    free(region_of);
    free(first);
    free(units);
    free(group_of_region);
}

static _Thread_local const planner *sort_ctx;

static int compare_members(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    const planner *P = sort_ctx;
    if (P->units[x] != P->units[y]) return P->units[x] > P->units[y] ? -1 : 1;
    int ends_x = P->cap[x].first + P->cap[x].last, ends_y = P->cap[y].first + P->cap[y].last;
    if (ends_x != ends_y) return ends_x > ends_y ? -1 : 1; /* more room for embedding / lm_head */
    if (P->speed[x] != P->speed[y]) return P->speed[x] > P->speed[y] ? -1 : 1;
    return (x > y) - (x < y);
}

static void sort_by_capacity(const planner *P, int *members, int n) {
    sort_ctx = P; /* qsort has no context argument: a thread-local one */
    qsort(members, (size_t)n, sizeof *members, compare_members);
    sort_ctx = NULL;
}

static bool group_uses_greedy(const planner *P, const group *g) {
    if (P->p->strategy == PX_ALLOC_GREEDY) return true;
    if (P->p->strategy == PX_ALLOC_DP) return false;
    return g->n > P->p->dp_max_nodes;
}

/* Greedy counts for every k, except that with a single group, k whose Z
 * could not beat the best found even at its lower bound on stages (sum of
 * the largest capacities) are skipped (-2): Z only falls as stages grow.
 * k is walked downwards because Z mostly grows with k. */
static void tabulate_greedy(const planner *P, group *g, int *bin_of) {
    bool prune = P->n_groups == 1;
    double best_z = -1;
    long sum = 0;
    int s_lb = 0;
    for (int i = 0; i < g->n; i++) sum += g->units[i];
    s_lb = g->n;
    for (int k = g->k_max; k >= 1; k--) {
        while (s_lb > k && sum - g->units[s_lb - 1] >= (long)k * P->need) sum -= g->units[--s_lb];
        double z_bound = px_alloc_objective_value(k, s_lb, P->out->t_comp, P->out->rtt_avg, P->p);
        if (prune && z_bound < best_z) {
            g->stages[k] = -2;
            continue;
        }
        g->stages[k] = px_search_greedy(g->units, g->n, P->need, k, bin_of);
        if (g->stages[k] > 0)
            best_z = PX_MAX(best_z, px_alloc_objective_value(k, g->stages[k], P->out->t_comp, P->out->rtt_avg, P->p));
    }
}

static void tabulate_exact(planner *P, group *g, int *bin_of) {
    int proven = 0;
    for (int k = 1; k <= g->k_max; k++) {
        bool ex;
        g->lower[k] = proven + 1;
        g->stages[k] = px_search_exact(g->units, g->n, P->need, k, g->lower[k], &P->budget_left, bin_of, &ex);
        g->exact = g->exact && ex;
        proven = ex && g->stages[k] > 0 ? g->stages[k] : 0;
    }
}

static void tabulate_group(planner *P, group *g) {
    long total = 0;
    for (int i = 0; i < g->n; i++) total += g->units[i];
    g->k_max = (int)PX_MIN(total / P->need, (long)g->n);
    g->stages = px_malloc((size_t)(g->k_max + 1) * sizeof *g->stages);
    g->lower = px_calloc((size_t)g->k_max + 1, sizeof *g->lower);
    g->greedy = group_uses_greedy(P, g);
    g->exact = !g->greedy;
    int *bin_of = px_malloc((size_t)(g->n + 1) * sizeof *bin_of);
    g->stages[0] = 0;
    if (g->greedy) tabulate_greedy(P, g, bin_of);
    else tabulate_exact(P, g, bin_of);
    free(bin_of);
}

static void build_groups(planner *P) {
    form_groups(P);
    for (int gi = 0; gi < P->n_groups; gi++) {
        group *g = &P->groups[gi];
        g->members = px_malloc((size_t)(P->n + 1) * sizeof *g->members);
        for (int i = 0; i < P->n; i++)
            if (P->group_of[i] == gi) g->members[g->n++] = i;
        sort_by_capacity(P, g->members, g->n);
        g->units = px_malloc((size_t)(g->n + 1) * sizeof *g->units);
        for (int i = 0; i < g->n; i++) g->units[i] = P->units[g->members[i]];
    }
}

/* ---------------- objective ---------------- */

double px_alloc_objective_value(int k, int s, double t_comp, double rtt_avg, const px_cluster_params *p) {
    if (k <= 0 || s <= 0) return 0;
    double concurrency = pow((double)k, p->alpha);
    if (p->objective == PX_OBJECTIVE_PUBLISHED) return concurrency / s;
    double latency = t_comp + ((double)s / k) * rtt_avg;
    return latency > 0 ? concurrency / latency : concurrency / 1e-12;
}

static double compute_t_comp(const planner *P) {
    double weighted = 0, units = 0;
    for (int i = 0; i < P->n; i++)
        if (P->eligible[i]) weighted += P->units[i] * P->latency[i], units += P->units[i];
    return units > 0 ? P->L * weighted / units : 0;
}

static double compute_rtt_avg(const planner *P) {
    double sum = 0;
    long count = 0;
    int n_rtt = P->rtt ? P->n : 0;
    for (int gi = 0; gi < P->n_groups && n_rtt; gi++) {
        const group *g = &P->groups[gi];
        int stride = g->n > 256 ? g->n / 128 : 1; /* big groups: a fixed sample of partners */
        for (int a = 0; a < g->n; a++)
            for (int b = a + 1; b < g->n; b += stride) {
                double r = px_rtt_lookup(P->rtt, P->n, g->members[a], g->members[b], P->p->unknown_rtt);
                if (isfinite(r)) sum += r, count++;
            }
    }
    if (!count && isfinite(P->p->unknown_rtt) && P->p->unknown_rtt >= 0 && P->n > 1) return P->p->unknown_rtt;
    return count ? sum / count : P->p->planning_rtt;
}

/* ---------------- choosing K ---------------- */

typedef struct {
    int k_total;
    int *best;   /* [0..k_total] min stages, -1 = impossible */
    int *from;   /* [n_groups][k_total + 1]: k of group g in the best split of K over groups 0..g */
} combination;

static combination combine_groups(const planner *P) {
    combination c = {0};
    for (int g = 0; g < P->n_groups; g++) c.k_total += P->groups[g].k_max;
    int width = c.k_total + 1;
    c.best = px_malloc((size_t)width * sizeof *c.best);
    c.from = px_malloc((size_t)(P->n_groups ? P->n_groups : 1) * width * sizeof *c.from);
    int *next = px_malloc((size_t)width * sizeof *next);
    for (int K = 0; K < width; K++) c.best[K] = K == 0 ? 0 : -1;
    int reach = 0;
    for (int gi = 0; gi < P->n_groups; gi++) {
        const group *g = &P->groups[gi];
        int *from = c.from + (size_t)gi * width;
        for (int K = 0; K < width; K++) next[K] = -1, from[K] = 0;
        for (int K = 0; K <= reach; K++) {
            if (c.best[K] < 0) continue;
            for (int k = 0; k <= g->k_max; k++) {
                if (g->stages[k] < 0) continue;
                int s = c.best[K] + g->stages[k];
                if (next[K + k] < 0 || s < next[K + k]) next[K + k] = s, from[K + k] = k;
            }
        }
        reach += g->k_max;
        memcpy(c.best, next, (size_t)width * sizeof *next);
    }
    free(next);
    return c;
}

static bool choice_is_better(double z, int s, int k, double best_z, int best_s, int best_k) {
    if (best_k <= 0) return true;
    if (z != best_z) return z > best_z;
    if (s != best_s) return s < best_s;
    return k < best_k;
}

static void choose_k(planner *P, const combination *c) {
    px_allocation *out = P->out;
    out->options = px_calloc((size_t)c->k_total + 1, sizeof *out->options);
    bool exact = true;
    for (int g = 0; g < P->n_groups; g++) exact = exact && P->groups[g].exact;
    out->exact = exact;
    for (int K = 1; K <= c->k_total; K++) {
        if (c->best[K] < 0) continue;
        double z = px_alloc_objective_value(K, c->best[K], out->t_comp, out->rtt_avg, P->p);
        out->options[out->n_options++] = (px_alloc_option){K, c->best[K], z, exact};
        if (choice_is_better(z, c->best[K], K, out->z, out->s, out->k)) out->k = K, out->s = c->best[K], out->z = z;
    }
    int width = c->k_total + 1, K = out->k;
    for (int gi = P->n_groups - 1; gi >= 0; gi--) {
        int k = K > 0 ? c->from[(size_t)gi * width + K] : 0;
        P->groups[gi].chosen_k = k;
        K -= k;
    }
}

/* ---------------- pipelines ---------------- */

static int position_capacity(const planner *P, int node, int pos, int n) {
    const px_layer_capacity *c = &P->cap[node];
    if (n == 1) return c->both;
    if (pos == 0) return c->first;
    if (pos == n - 1) return c->last;
    return c->mid;
}

static void push_stage(planner *P, int node, int start, int end) {
    px_allocation *out = P->out;
    int used = out->pipeline_offset[out->n_pipelines + 1];
    if (used == P->stages_cap) {
        P->stages_cap = P->stages_cap ? 2 * P->stages_cap : 16;
        out->stages = px_realloc(out->stages, (size_t)P->stages_cap * sizeof *out->stages);
    }
    out->stages[used] = (px_stage){node, start, end};
    out->pipeline_offset[out->n_pipelines + 1] = used + 1;
    out->start[node] = start;
    out->end[node] = end;
    out->role[node] = PX_SLICE_PIPELINE;
}

/* How good node a first and node b last is: both able to hold a layer
 * there, then the least capacity lost to the embedding and lm_head. */
static long end_pair_score(const planner *P, int a, int b) {
    const px_layer_capacity *ca = &P->cap[a], *cb = &P->cap[b];
    long usable = (ca->first >= 1) + (cb->last >= 1);
    long lost = (ca->mid - ca->first) + (cb->mid - cb->last);
    return usable * 1000000L - lost;
}

/* Stage order with the best (first, last) pair at the ends, the others in
 * capacity order between them. */
static void order_for_positions(const planner *P, int *members, int n) {
    if (n < 2) return;
    int best_a = 0, best_b = 1;
    for (int a = 0; a < n; a++)
        for (int b = 0; b < n; b++)
            if (a != b && end_pair_score(P, members[a], members[b]) >
                              end_pair_score(P, members[best_a], members[best_b]))
                best_a = a, best_b = b;
    int first = members[best_a], last = members[best_b], m = 1;
    int *order = px_malloc((size_t)n * sizeof *order);
    for (int i = 0; i < n; i++)
        if (i != best_a && i != best_b) order[m++] = members[i];
    order[0] = first;
    order[n - 1] = last;
    memcpy(members, order, (size_t)n * sizeof *order);
    free(order);
}

/* Water-filling in the current order; when a stage would get no layer, again
 * with one layer reserved for every stage. True when every stage has >= 1. */
static bool split_layers(const planner *P, const int *members, int n, int *caps, double *speeds, int *counts) {
    bool room = n <= P->L;
    for (int i = 0; i < n; i++) {
        caps[i] = position_capacity(P, members[i], i, n);
        speeds[i] = P->speed[members[i]];
        room = room && caps[i] >= 1;
    }
    bool ok = px_alloc_water_fill(n, caps, speeds, P->L, counts) == 0;
    for (int i = 0; ok && i < n; i++) ok = counts[i] > 0;
    if (ok || !room) return ok;
    for (int i = 0; i < n; i++) caps[i]--;
    if (px_alloc_water_fill(n, caps, speeds, P->L - n, counts) < 0) return false;
    for (int i = 0; i < n; i++) counts[i]++;
    return true;
}

static void emit_pipeline(planner *P, const int *members, int n, const int *counts) {
    px_allocation *out = P->out;
    out->pipeline_offset[out->n_pipelines + 1] = out->pipeline_offset[out->n_pipelines];
    for (int i = 0, start = 0; i < n; start += counts[i], i++) push_stage(P, members[i], start, start + counts[i]);
    out->n_pipelines++;
}

/* Lays members (capacity order) out as one pipeline: water-filling in
 * capacity order (the first stage also holds the embedding, the last the
 * lm_head), else in position order, each with a one-layer floor when a stage
 * would be empty; when neither works, stages without a layer are dropped and
 * it tries again. Returns the number of stages, or -1. */
static int lay_out_pipeline(planner *P, int *members, int n) {
    int *caps = px_malloc((size_t)(n + 1) * sizeof *caps), *counts = px_malloc((size_t)(n + 1) * sizeof *counts);
    double *speeds = px_malloc((size_t)(n + 1) * sizeof *speeds);
    int result = -1;
    while (n > 0) {
        if (split_layers(P, members, n, caps, speeds, counts)) break;
        order_for_positions(P, members, n);
        if (split_layers(P, members, n, caps, speeds, counts)) break;
        if (px_alloc_water_fill(n, caps, speeds, P->L, counts) < 0) {
            n = 0;
            break;
        }
        int kept = 0;
        for (int i = 0; i < n; i++)
            if (counts[i] > 0) members[kept++] = members[i];
        n = kept;
    }
    if (n > 0) {
        emit_pipeline(P, members, n, counts);
        result = n;
    }
    free(caps);
    free(counts);
    free(speeds);
    return result;
}

/* ---------------- spare nodes that speed a pipeline up ----------------
 * The stage search minimises stages, so a fast node with little memory can
 * be left out while a slow one carries many layers. In groups of up to
 * PX_ENRICH_MAX_NODES nodes, each node outside the pipelines (fastest first)
 * joins the pipeline whose modelled per-token latency (sum of layers x
 * latency + the RTT of every hop, after water-filling; an unknown RTT makes
 * it unusable) it lowers most, when that is by at least 5% and the slowest
 * stage does not get slower. */
#define PX_ENRICH_MAX_NODES 64

typedef struct {
    double latency, bottleneck;
} pipeline_speed;

/* RTT of one hop: the measured one (unknown: unreachable) when there is a
 * matrix, RTT_avg when there is none. */
static double hop_rtt(const planner *P, int a, int b) {
    if (!P->rtt) return P->out->rtt_avg;
    return px_rtt_lookup(P->rtt, P->n, a, b, P->p->unknown_rtt);
}

static pipeline_speed estimate_pipeline(const planner *P, const int *members, int n) {
    pipeline_speed out = {INFINITY, INFINITY};
    int *m = px_malloc((size_t)(n + 1) * sizeof *m), *caps = px_malloc((size_t)(n + 1) * sizeof *caps);
    int *counts = px_malloc((size_t)(n + 1) * sizeof *counts);
    double *speeds = px_malloc((size_t)(n + 1) * sizeof *speeds);
    memcpy(m, members, (size_t)n * sizeof *m);
    sort_by_capacity(P, m, n);
    bool ok = split_layers(P, m, n, caps, speeds, counts);
    if (!ok) order_for_positions(P, m, n), ok = split_layers(P, m, n, caps, speeds, counts);
    if (ok) {
        out.latency = 0, out.bottleneck = 0;
        for (int i = 0; i < n; i++) {
            double t = counts[i] * P->latency[m[i]];
            out.latency += t + (i > 0 ? hop_rtt(P, m[i - 1], m[i]) : 0);
            out.bottleneck = PX_MAX(out.bottleneck, t);
        }
    }
    free(m);
    free(caps);
    free(counts);
    free(speeds);
    return out;
}

typedef struct {
    int *members, n;
    pipeline_speed speed;
} bin_plan;

/* Gain in latency from adding node x to bin b, or 0 when not worth it. */
static double gain_from_adding(const planner *P, bin_plan *b, int x) {
    if (!isfinite(b->speed.latency)) return 0;
    b->members[b->n] = x;
    pipeline_speed with = estimate_pipeline(P, b->members, b->n + 1);
    bool better = with.latency < 0.95 * b->speed.latency && with.bottleneck <= b->speed.bottleneck * (1 + 1e-12);
    return better ? b->speed.latency - with.latency : 0;
}

static void enrich_bins(const planner *P, bin_plan *bins, int k, const int *spare, int n_spare, bool *used) {
    for (int j = 0; j < n_spare; j++) {
        int x = spare[j], best = -1;
        double best_gain = 0;
        for (int b = 0; b < k; b++) {
            double gain = gain_from_adding(P, &bins[b], x);
            if (gain > best_gain) best_gain = gain, best = b;
        }
        if (best < 0) continue;
        bins[best].members[bins[best].n++] = x;
        bins[best].speed = estimate_pipeline(P, bins[best].members, bins[best].n);
        used[j] = true;
    }
}

/* Nodes of g outside every bin, fastest first. */
static int spare_nodes(const planner *P, const group *g, const int *bin_of, int *spare) {
    int n = 0;
    for (int i = 0; i < g->n; i++) {
        if (bin_of[i] >= 0) continue;
        int x = g->members[i], at = n++;
        while (at > 0 && P->speed[spare[at - 1]] < P->speed[x]) spare[at] = spare[at - 1], at--;
        spare[at] = x;
    }
    return n;
}

static void find_witness(const planner *P, const group *g, int *bin_of) {
    if (g->greedy) {
        px_search_greedy(g->units, g->n, P->need, g->chosen_k, bin_of);
        return;
    }
    bool exact;
    long budget_left = P->p->dp_budget; /* enough to find the witness the table found */
    px_search_exact(g->units, g->n, P->need, g->chosen_k, g->lower[g->chosen_k], &budget_left, bin_of, &exact);
}

static void build_group_pipelines(planner *P, group *g) {
    if (g->chosen_k <= 0) return;
    int *bin_of = px_malloc((size_t)(g->n + 1) * sizeof *bin_of);
    find_witness(P, g, bin_of);
    bin_plan *bins = px_calloc((size_t)g->chosen_k, sizeof *bins);
    for (int b = 0; b < g->chosen_k; b++) {
        bins[b].members = px_malloc((size_t)(g->n + 1) * sizeof *bins[b].members);
        for (int i = 0; i < g->n; i++)
            if (bin_of[i] == b) bins[b].members[bins[b].n++] = g->members[i];
    }
    if (g->n <= PX_ENRICH_MAX_NODES) {
        int *spare = px_malloc((size_t)(g->n + 1) * sizeof *spare);
        int n_spare = spare_nodes(P, g, bin_of, spare);
        bool *used = px_calloc((size_t)n_spare + 1, sizeof *used);
        for (int b = 0; b < g->chosen_k; b++) bins[b].speed = estimate_pipeline(P, bins[b].members, bins[b].n);
        enrich_bins(P, bins, g->chosen_k, spare, n_spare, used);
        free(spare);
        free(used);
    }
    for (int b = 0; b < g->chosen_k; b++) {
        sort_by_capacity(P, bins[b].members, bins[b].n);
        if (lay_out_pipeline(P, bins[b].members, bins[b].n) > 0) g->n_pipelines++;
        else px_log_debug("cluster: pipeline %d of a group could not be laid out: %s", b, px_error_get());
        free(bins[b].members);
    }
    free(bins);
    free(bin_of);
}

/* ---------------- fallback: one pipeline from exact position capacities ----------------
 * The stage search counts the embedding and lm_head as whole layers, which
 * can miss a pipeline by a rounding when the end nodes have spare bytes.
 * When it found none, this builds one directly: the best (first, last) pair
 * among the nodes with the most room at each end, then the largest others
 * until the layers fit. */

static int end_room(const planner *P, int node, bool first) { return first ? P->cap[node].first : P->cap[node].last; }

/* Up to max nodes with the most room at one end (>= 1 layer), most first. */
static int top_by_end_room(const planner *P, const int *pool, int n, bool first, int *out, int max) {
    int m = 0;
    for (int i = 0; i < n; i++) {
        int room = end_room(P, pool[i], first);
        if (room < 1 || (m == max && room <= end_room(P, out[m - 1], first))) continue;
        int at = m < max ? m++ : max - 1;
        while (at > 0 && end_room(P, out[at - 1], first) < room) out[at] = out[at - 1], at--;
        out[at] = pool[i];
    }
    return m;
}

/* Middle nodes (pool in capacity order) needed after ends a and b, or -1. */
static int middles_needed(const planner *P, const int *pool, int n, int a, int b, int *middle) {
    int remaining = P->L - P->cap[a].first - P->cap[b].last, m = 0;
    for (int i = 0; i < n && remaining > 0; i++) {
        if (pool[i] == a || pool[i] == b || P->cap[pool[i]].mid < 1) continue;
        if (middle) middle[m] = pool[i];
        m++;
        remaining -= P->cap[pool[i]].mid;
    }
    return remaining > 0 || m + 2 > P->L ? -1 : m;
}

static void form_one_pipeline_directly(planner *P) {
    int *pool = px_malloc((size_t)(P->n + 1) * sizeof *pool), n = 0;
    for (int i = 0; i < P->n; i++)
        if (P->eligible[i]) pool[n++] = i;
    sort_by_capacity(P, pool, n);
    int firsts[8], lasts[8], best_a = -1, best_b = -1, best_m = 0;
    int nf = top_by_end_room(P, pool, n, true, firsts, 8), nl = top_by_end_room(P, pool, n, false, lasts, 8);
    for (int i = 0; i < nf; i++)
        for (int j = 0; j < nl; j++) {
            if (firsts[i] == lasts[j]) continue;
            int m = middles_needed(P, pool, n, firsts[i], lasts[j], NULL);
            if (m >= 0 && (best_a < 0 || m < best_m)) best_a = firsts[i], best_b = lasts[j], best_m = m;
        }
    if (best_a >= 0) {
        int *members = px_malloc((size_t)(best_m + 2) * sizeof *members);
        members[0] = best_a;
        middles_needed(P, pool, n, best_a, best_b, members + 1);
        members[best_m + 1] = best_b;
        if (lay_out_pipeline(P, members, best_m + 2) > 0) {
            px_allocation *out = P->out;
            out->k = 1;
            out->s = out->pipeline_offset[1];
            out->z = px_alloc_objective_value(1, out->s, out->t_comp, out->rtt_avg, P->p);
            out->options = px_realloc(out->options, sizeof *out->options);
            out->options[0] = (px_alloc_option){1, out->s, out->z, false};
            out->n_options = 1;
            out->exact = false;
        }
        free(members);
    }
    free(pool);
}

/* k, s and z are the search's choice; when a pipeline could not be laid
 * out they follow what was built. (Spare nodes that joined pipelines add
 * stages beyond s: pipeline_offset[n_pipelines] counts them.) */
static void record_what_was_built(planner *P) {
    px_allocation *out = P->out;
    if (out->n_pipelines == out->k) return;
    out->k = out->n_pipelines;
    out->s = out->pipeline_offset[out->n_pipelines];
    out->z = px_alloc_objective_value(out->k, out->s, out->t_comp, out->rtt_avg, P->p);
}

/* ---------------- leftovers ---------------- */

/* Spans a leftover of group gi sees: manual slices, plus its own group's
 * slices when that group has pipelines, else every slice. */
static int gather_spans(const planner *P, int gi, px_span *spans) {
    bool own = gi >= 0 && P->groups[gi].n_pipelines > 0;
    int n = 0;
    for (int i = 0; i < P->n; i++) {
        if (P->out->start[i] < 0) continue;
        bool manual = P->out->role[i] == PX_SLICE_MANUAL;
        if (own && !manual && P->group_of[i] != gi) continue;
        spans[n++] = (px_span){P->out->start[i], P->out->end[i], P->speed[i]};
    }
    return n;
}

static void place_leftovers(planner *P) {
    int *order = px_malloc((size_t)(P->n + 1) * sizeof *order), n_left = 0;
    for (int i = 0; i < P->n; i++)
        if (P->eligible[i] && P->out->start[i] < 0) order[n_left++] = i;
    sort_by_capacity(P, order, n_left);
    px_span *spans = px_malloc((size_t)(P->n + 1) * sizeof *spans);
    double *hosting = px_malloc((size_t)P->L * sizeof *hosting);
    for (int j = 0; j < n_left; j++) {
        int i = order[j], start, end;
        int n_spans = gather_spans(P, P->group_of[i], spans);
        if (!n_spans) continue;
        px_hosting_power(spans, n_spans, P->L, hosting);
        if (!px_best_window(spans, n_spans, P->L, hosting, &P->cap[i], &start, &end)) continue;
        P->out->start[i] = start;
        P->out->end[i] = end;
        P->out->role[i] = PX_SLICE_REPLICA;
    }
    free(order);
    free(spans);
    free(hosting);
}

/* ---------------- failure ---------------- */

/* Whether the slices so far (manual ones, replicas) chain from 0 to L. */
static bool slices_chain(const planner *P) {
    px_span *spans = px_malloc((size_t)(P->n + 1) * sizeof *spans);
    int n = 0;
    for (int i = 0; i < P->n; i++)
        if (P->out->start[i] >= 0) spans[n++] = (px_span){P->out->start[i], P->out->end[i], 1};
    bool ok = n > 0 && px_spans_chain(spans, n, P->L);
    free(spans);
    return ok;
}

static void explain_no_pipeline(const planner *P) {
    const px_model_cost *m = P->cost;
    double required = (double)m->n_layers * m->layer_bytes + m->embed_bytes + (m->tied ? 0 : m->lm_head_bytes);
    double available = 0;
    long units = 0;
    int nodes = 0;
    for (int i = 0; i < P->n; i++)
        if (!has_manual_slice(&P->nodes[i]))
            available += (double)P->nodes[i].memory_bytes * (1 - P->p->kv_reserve), units += P->units[i], nodes++;
    if (available < required)
        px_error_set("the model does not fit: %d layers + embedding + lm_head need %.0f bytes, the %d nodes offer "
                     "%.0f after the %.0f%% KV reserve: %.0f bytes short",
                     m->n_layers, required, nodes, available, 100 * P->p->kv_reserve, required - available);
    else if (units < P->need)
        px_error_set("the model does not fit: the %d nodes hold %ld layer-sized pieces in whole layers, a pipeline "
                     "needs %d (%d layers + embedding + lm_head): %.0f bytes short",
                     nodes, units, P->need, m->n_layers, (double)(P->need - units) * m->layer_bytes);
    else
        px_error_set("the model does not fit: too few nodes can hold the embedding (%llu bytes) or the lm_head "
                     "(%llu bytes) next to a layer to start and end a pipeline",
                     (unsigned long long)m->embed_bytes, (unsigned long long)m->lm_head_bytes);
}

/* ---------------- entry ---------------- */

static void free_planner(planner *P) {
    for (int g = 0; g < P->n_groups; g++) {
        free(P->groups[g].members);
        free(P->groups[g].units);
        free(P->groups[g].stages);
        free(P->groups[g].lower);
    }
    free(P->groups);
    free(P->cap);
    free(P->latency);
    free(P->speed);
    free(P->units);
    free(P->group_of);
    free(P->eligible);
}

static void init_output(px_allocation *out, int n, int L) {
    memset(out, 0, sizeof *out);
    out->n_nodes = n;
    out->n_layers = L;
    out->start = px_malloc((size_t)(n + 1) * sizeof *out->start);
    out->end = px_malloc((size_t)(n + 1) * sizeof *out->end);
    out->role = px_calloc((size_t)n + 1, sizeof *out->role);
    out->pipeline_offset = px_calloc((size_t)n + 2, sizeof *out->pipeline_offset);
    for (int i = 0; i < n; i++) out->start[i] = out->end[i] = -1;
}

int px_alloc_plan(const px_node_info *nodes, int n, const px_model_cost *cost, const double *rtt,
                  const px_cluster_params *p, px_allocation *out) {
    if (check_cost(cost) < 0) return -1;
    if (n < 0) n = 0;
    planner P = {.nodes = nodes, .n = n, .L = cost->n_layers, .need = px_stage_need(cost), .cost = cost,
                 .rtt = rtt, .p = p, .out = out, .budget_left = p->dp_budget};
    init_output(out, n, cost->n_layers);
    int rc = describe_nodes(&P);
    if (rc == 0) {
        build_groups(&P);
        out->n_groups = P.n_groups;
        out->t_comp = compute_t_comp(&P);
        out->rtt_avg = compute_rtt_avg(&P);
        out->used = PX_ALLOC_DP;
        for (int g = 0; g < P.n_groups; g++) {
            tabulate_group(&P, &P.groups[g]);
            if (P.groups[g].greedy) out->used = PX_ALLOC_GREEDY;
        }
        combination c = combine_groups(&P);
        choose_k(&P, &c);
        free(c.best);
        free(c.from);
        for (int g = 0; g < P.n_groups; g++) build_group_pipelines(&P, &P.groups[g]);
        if (out->n_pipelines == 0) form_one_pipeline_directly(&P);
        record_what_was_built(&P);
        if (p->place_leftovers) place_leftovers(&P);
        if (out->n_pipelines == 0 && !slices_chain(&P)) {
            explain_no_pipeline(&P);
            rc = -1;
        }
    }
    free_planner(&P);
    if (rc < 0) px_allocation_free(out);
    return rc;
}

void px_allocation_free(px_allocation *a) {
    if (!a) return;
    free(a->start);
    free(a->end);
    free(a->role);
    free(a->pipeline_offset);
    free(a->stages);
    free(a->options);
    memset(a, 0, sizeof *a);
}
