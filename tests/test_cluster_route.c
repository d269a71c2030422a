/* test_cluster_route.c - phase 2: whole-model node vs a faster partial chain,
 * unknown RTT (no route, or the stated default), symmetric RTT fallback, load
 * inflation and nodes at max load, two heads x two tails giving disjoint
 * chains, the tie rule, and random slice DAGs against brute force. */
#include "cluster_fixtures.h"
#include "px_test.h"
#include <stdlib.h>
#include <string.h>

static px_route route;

static int find_route(const px_route_slice *s, int n, int L, const double *rtt, int n_nodes, double unknown) {
    px_router *r = px_router_create(s, n, L, rtt, n_nodes, unknown);
    if (!r) return -2;
    int rc = px_router_find(r, &route);
    px_router_destroy(r);
    return rc;
}

static px_route_slice slice(int node, int start, int end, double latency) {
    return (px_route_slice){node, start, end, latency, 0, 8};
}

static void whole_model_node_wins_when_rtt_is_high(void) {
    /* W: 36 layers at 1 ms = 36 ms; P1+P2: 36 layers at 0.5 ms = 18 ms + one hop */
    px_route_slice s[3] = {slice(0, 0, 36, 0.001), slice(1, 0, 18, 0.0005), slice(2, 18, 36, 0.0005)};
    double rtt[9];
    fx_rtt_unknown(rtt, 3);
    fx_rtt_set(rtt, 3, 1, 2, 0.030);
    CHECK(find_route(s, 3, 36, rtt, 3, PX_RTT_UNREACHABLE) == 0);
    CHECK(route.n_stages == 1 && route.node[0] == 0 && fabs(route.cost - 0.036) < 1e-12);
    fx_rtt_set(rtt, 3, 1, 2, 0.010);
    CHECK(find_route(s, 3, 36, rtt, 3, PX_RTT_UNREACHABLE) == 0);
    CHECK(route.n_stages == 2 && route.node[0] == 1 && route.node[1] == 2 && fabs(route.cost - 0.028) < 1e-12);
}

static void unknown_rtt_means_no_route(void) {
    px_route_slice s[2] = {slice(0, 0, 18, 0.001), slice(1, 18, 36, 0.001)};
    double rtt[4];
    fx_rtt_unknown(rtt, 2);
    CHECK(find_route(s, 2, 36, rtt, 2, PX_RTT_UNREACHABLE) == -1);
    CHECK(strstr(px_error_get(), "unknown RTT") != NULL);
    CHECK(find_route(s, 2, 36, NULL, 2, PX_RTT_UNREACHABLE) == -1);
    /* a stated default for unmeasured pairs makes it routable at that price */
    CHECK(find_route(s, 2, 36, rtt, 2, 0.005) == 0 && fabs(route.cost - 0.041) < 1e-12);
    /* one direction measured: the other falls back to it */
    rtt[1 * 2 + 0] = 0.002;
    CHECK(px_rtt_lookup(rtt, 2, 0, 1, PX_RTT_UNREACHABLE) == 0.002);
    CHECK(find_route(s, 2, 36, rtt, 2, PX_RTT_UNREACHABLE) == 0 && fabs(route.cost - 0.038) < 1e-12);
    /* an uncovered layer is a different message */
    px_route_slice gap[2] = {slice(0, 0, 18, 0.001), slice(1, 19, 36, 0.001)};
    CHECK(find_route(gap, 2, 36, rtt, 2, 0.0) == -1 && strstr(px_error_get(), "no chain") != NULL);
    CHECK(find_route(NULL, 0, 36, NULL, 0, 0.0) == -1);
}

static void load_inflates_and_full_nodes_are_skipped(void) {
    px_route_slice s[3] = {slice(0, 0, 36, 0.001), slice(1, 0, 18, 0.001), slice(2, 18, 36, 0.001)};
    double rtt[9];
    fx_rtt_unknown(rtt, 3);
    fx_rtt_set(rtt, 3, 1, 2, 0.5); /* a terrible hop */
    s[0].load = 4;                 /* half loaded: 36 ms * 1.5 */
    CHECK(px_route_stage_cost(&s[0]) == 0.001 * 36 * 1.5);
    CHECK(find_route(s, 3, 36, rtt, 3, PX_RTT_UNREACHABLE) == 0 && route.node[0] == 0);
    CHECK(fabs(route.cost - 0.054) < 1e-12);
    s[0].load = 8; /* at max load: skipped, the slow chain is the only one */
    CHECK(find_route(s, 3, 36, rtt, 3, PX_RTT_UNREACHABLE) == 0 && route.n_stages == 2);
    s[2].load = 9;
    CHECK(find_route(s, 3, 36, rtt, 3, PX_RTT_UNREACHABLE) == -1 && strstr(px_error_get(), "max load") != NULL);
    /* max_load <= 0: no cap and no inflation */
    s[0].max_load = 0;
    CHECK(px_route_stage_cost(&s[0]) == 0.001 * 36);
    CHECK(find_route(s, 3, 36, rtt, 3, PX_RTT_UNREACHABLE) == 0 && route.node[0] == 0);
}

static void two_heads_two_tails_give_disjoint_chains(void) {
    px_route_slice s[4] = {slice(0, 0, 18, 0.001), slice(1, 0, 18, 0.001), slice(2, 18, 36, 0.001),
                           slice(3, 18, 36, 0.001)};
    for (int i = 0; i < 4; i++) s[i].max_load = 4;
    double rtt[16];
    fx_rtt_unknown(rtt, 4);
    for (int h = 0; h < 2; h++)
        for (int t = 2; t < 4; t++) fx_rtt_set(rtt, 4, h, t, 0.002);
    px_router *r = px_router_create(s, 4, 36, rtt, 4, PX_RTT_UNREACHABLE);
    int used[4] = {0};
    for (int q = 0; q < 2; q++) {
        CHECK(px_router_find(r, &route) == 0 && route.n_stages == 2);
        for (int k = 0; k < route.n_stages; k++) {
            used[route.slice[k]]++;
            s[route.slice[k]].load++;
            px_router_set_load(r, route.slice[k], s[route.slice[k]].load);
        }
    }
    CHECK(used[0] == 1 && used[1] == 1 && used[2] == 1 && used[3] == 1);
    px_router_destroy(r);
}

static void ties_are_broken_by_stages_then_lowest_index_from_the_tail(void) {
    /* equal cost 2 ms: [0,2) whole on node 3 vs two one-layer stages with a free hop */
    px_route_slice s[5] = {slice(0, 1, 2, 0.001), slice(1, 0, 1, 0.001), slice(2, 0, 1, 0.001),
                           slice(3, 0, 2, 0.001), slice(4, 1, 2, 0.001)};
    double rtt[25];
    for (int i = 0; i < 25; i++) rtt[i] = 0;
    CHECK(find_route(s, 5, 2, rtt, 5, PX_RTT_UNREACHABLE) == 0);
    CHECK(route.n_stages == 1 && route.slice[0] == 3); /* fewer stages first */
    s[3].layer_latency = 0.0015;                       /* now the chains are cheaper: 4 equal ones */
    CHECK(find_route(s, 5, 2, rtt, 5, PX_RTT_UNREACHABLE) == 0);
    CHECK(route.n_stages == 2 && route.slice[1] == 0 && route.slice[0] == 1); /* lowest tail, then lowest head */
    s[0].load = s[0].max_load;                                                 /* tail 0 full: tail 4 */
    CHECK(find_route(s, 5, 2, rtt, 5, PX_RTT_UNREACHABLE) == 0 && route.slice[1] == 4 && route.slice[0] == 1);
}

/* ---------------- brute force ---------------- */

typedef struct {
    double cost;
    int n, idx[16];
} chain;

static bool chain_is_better(const chain *a, const chain *b) {
    if (b->n == 0) return true;
    if (a->cost != b->cost) return a->cost < b->cost;
    if (a->n != b->n) return a->n < b->n;
    for (int k = a->n - 1; k >= 0; k--)
        if (a->idx[k] != b->idx[k]) return a->idx[k] < b->idx[k];
    return false;
}

static void extend(const px_route_slice *s, int n, int L, const double *rtt, int n_nodes, chain *cur, chain *best) {
    const px_route_slice *last = &s[cur->idx[cur->n - 1]];
    if (last->end == L) {
        if (chain_is_better(cur, best)) *best = *cur;
        return;
    }
    for (int j = 0; j < n; j++) {
        if (s[j].start != last->end || (s[j].max_load > 0 && s[j].load >= s[j].max_load)) continue;
        double hop = px_rtt_lookup(rtt, n_nodes, last->node, s[j].node, PX_RTT_UNREACHABLE);
        if (!isfinite(hop) || last->node == s[j].node) continue;
        chain next = *cur;
        next.cost = cur->cost + hop + px_route_stage_cost(&s[j]);
        next.idx[next.n++] = j;
        extend(s, n, L, rtt, n_nodes, &next, best);
    }
}

static chain brute_route(const px_route_slice *s, int n, int L, const double *rtt, int n_nodes) {
    chain best = {0};
    for (int i = 0; i < n; i++) {
        if (s[i].start != 0 || (s[i].max_load > 0 && s[i].load >= s[i].max_load)) continue;
        chain cur = {px_route_stage_cost(&s[i]), 1, {i}};
        extend(s, n, L, rtt, n_nodes, &cur, &best);
    }
    return best;
}

static void random_dags_match_brute_force(void) {
    int found = 0, none = 0;
    for (int t = 0; t < 3000; t++) {
        int L = fx_between(2, 12), n = fx_between(1, 10), n_nodes = n;
        int cuts[4] = {0, fx_between(1, L - 1), fx_between(1, L - 1), L};
        px_route_slice s[10];
        for (int i = 0; i < n; i++) {
            int a = fx_between(0, 3), b = fx_between(0, 3);
            if (cuts[a] == cuts[b]) a = 0, b = 3;
            int lo = cuts[a] < cuts[b] ? cuts[a] : cuts[b], hi = cuts[a] < cuts[b] ? cuts[b] : cuts[a];
            s[i] = (px_route_slice){i, lo, hi, fx_between(1, 4) / 1024.0, fx_between(0, 4), 4};
        }
        double rtt[100];
        fx_rtt_unknown(rtt, n_nodes);
        for (int i = 0; i < n_nodes; i++)
            for (int j = 0; j < n_nodes; j++)
                if (i != j && fx_between(0, 4)) rtt[i * n_nodes + j] = fx_between(0, 3) / 512.0;
        chain want = brute_route(s, n, L, rtt, n_nodes);
        int rc = find_route(s, n, L, rtt, n_nodes, PX_RTT_UNREACHABLE);
        bool ok = (rc == 0) == (want.n > 0);
        if (ok && rc == 0) {
            ok = route.cost == want.cost && route.n_stages == want.n;
            for (int k = 0; ok && k < want.n; k++) ok = route.slice[k] == want.idx[k] && route.node[k] == s[want.idx[k]].node;
        }
        found += rc == 0;
        none += rc != 0;
        CHECK_MSG(ok, "case %d: rc %d, %d stages cost %g vs brute %d stages cost %g", t, rc, route.n_stages,
                  route.cost, want.n, want.cost);
        if (!ok) break;
    }
    printf("random DAGs: %d routed, %d without a route\n", found, none);
    CHECK(found > 500 && none > 100);
}

static void bad_slices_are_refused(void) {
    px_route_slice s[1] = {slice(0, 3, 3, 0.001)};
    CHECK(px_router_create(s, 1, 10, NULL, 1, 0) == NULL && strstr(px_error_get(), "slice 0"));
    s[0].end = 11;
    CHECK(px_router_create(s, 1, 10, NULL, 1, 0) == NULL);
}

int main(void) {
    whole_model_node_wins_when_rtt_is_high();
    unknown_rtt_means_no_route();
    load_inflates_and_full_nodes_are_skipped();
    two_heads_two_tails_give_disjoint_chains();
    ties_are_broken_by_stages_then_lowest_index_from_the_tail();
    random_dags_match_brute_force();
    bad_slices_are_refused();
    return px_test_finish();
}
