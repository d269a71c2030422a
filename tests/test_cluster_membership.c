/* test_cluster_membership.c - the membership state machine: bootstrap on
 * standby until a pipeline forms, joins that replicate the lightest layers or
 * wait, a leave that uncovers layers (full re-allocation with coverage), every
 * node leaving and rejoining in turn without losing the full pipeline,
 * imbalance-driven rebalancing only when it helps, heartbeat timeouts, the
 * latency EWMA, manual slices, and routing with load accounting. */
#include "cluster_fixtures.h"
#include "px_test.h"
#include <stdlib.h>
#include <string.h>

static px_change_list changes;

static px_cluster *new_cluster(int n_layers) {
    px_model_cost m = fx_model(n_layers);
    px_cluster_params p;
    px_cluster_params_default(&p);
    return px_cluster_create(&m, &p);
}

static int join(px_cluster *c, const char *id, int layers, double speed, double now) {
    px_node_info n = fx_node(id, layers, speed);
    return px_cluster_join(c, &n, now, &changes);
}

static px_node_status status_of(const px_cluster *c, const char *id) {
    px_node_status s = {0};
    s.start = s.end = -1;
    s.state = PX_NODE_GONE;
    int slot = px_cluster_find(c, id);
    if (slot >= 0) px_cluster_node_status(c, slot, &s);
    return s;
}

static const px_slice_change *change_for(const char *id) {
    for (int i = 0; i < changes.n; i++)
        if (!strcmp(changes.items[i].node_id, id)) return &changes.items[i];
    return NULL;
}

/* Every serving (non-manual) slice inside [0, L) and within its node's
 * capacity at its position. */
static bool slices_fit(const px_cluster *c, int n_layers) {
    bool ok = true;
    for (int i = 0; i < px_cluster_slot_count(c); i++) {
        px_node_status s;
        px_cluster_node_status(c, i, &s);
        if (s.state != PX_NODE_SERVING || s.manual) continue;
        ok = ok && s.start >= 0 && s.start < s.end && s.end <= n_layers;
        ok = ok && s.end - s.start <= px_layer_capacity_at(&s.capacity, s.start, s.end, n_layers);
    }
    return ok;
}

static void bootstrap_waits_on_standby_until_a_pipeline_forms(void) {
    px_cluster *c = new_cluster(36);
    CHECK(join(c, "a", 15, 10, 0) == 0 && changes.n == 0 && status_of(c, "a").state == PX_NODE_STANDBY);
    CHECK(join(c, "b", 15, 10, 0) == 0 && changes.n == 0 && !px_cluster_has_full_pipeline(c));
    CHECK(join(c, "c", 15, 10, 0) == 0 && changes.n == 3 && changes.reallocated);
    CHECK(px_cluster_has_full_pipeline(c));
    for (int i = 0; i < changes.n; i++)
        CHECK(changes.items[i].kind == PX_CHANGE_ASSIGN && changes.items[i].new_end - changes.items[i].new_start == 12);
    /* the fourth replicates the lightest layers: all equal, so the first window */
    CHECK(join(c, "d", 15, 10, 0) == 0 && changes.n == 1 && !changes.reallocated);
    CHECK(changes.items[0].kind == PX_CHANGE_ASSIGN && changes.items[0].new_start == 0 && changes.items[0].new_end == 12);
    /* the fifth and sixth take the now lighter windows */
    CHECK(join(c, "e", 15, 10, 0) == 0 && changes.n == 1 && changes.items[0].new_start == 12);
    CHECK(join(c, "f", 15, 10, 0) == 0 && changes.n == 1 && changes.items[0].new_start == 24);
    CHECK(px_cluster_imbalance(c) < 1e-12);
    /* a node too small for any aligned window waits */
    CHECK(join(c, "tiny", 5, 10, 0) == 0 && changes.n == 0 && status_of(c, "tiny").state == PX_NODE_STANDBY);
    /* a whole-model node replicates everything */
    CHECK(join(c, "whole", 40, 10, 0) == 0 && changes.n == 1 && changes.items[0].new_start == 0 &&
          changes.items[0].new_end == 36);
    CHECK(slices_fit(c, 36));
    px_cluster_destroy(c);
}

static void standby_nodes_that_can_form_a_pipeline_do(void) {
    px_cluster *c = new_cluster(36);
    join(c, "w", 40, 10, 0); /* one whole-model node: full pipeline, no inner boundary */
    CHECK(px_cluster_has_full_pipeline(c));
    CHECK(join(c, "s1", 20, 10, 0) == 0 && changes.n == 0); /* no window fits 20 of [0, 36) */
    CHECK(join(c, "s2", 20, 10, 0) == 0 && changes.n == 2); /* s1 + s2 form a second pipeline */
    CHECK(status_of(c, "s1").state == PX_NODE_SERVING && status_of(c, "s2").state == PX_NODE_SERVING);
    CHECK(status_of(c, "w").start == 0 && status_of(c, "w").end == 36); /* existing slices untouched */
    px_cluster_destroy(c);
}

static void a_leave_that_uncovers_layers_reallocates_everything(void) {
    px_cluster *c = new_cluster(36);
    const char *ids[4] = {"a", "b", "c", "d"};
    for (int i = 0; i < 4; i++) join(c, ids[i], 15, 10, 0);
    /* pipeline a,b,c at 12/12/12; d replicates [0, 12) */
    CHECK(status_of(c, "d").start == 0 && status_of(c, "d").end == 12);
    const char *last = NULL;
    for (int i = 0; i < 4; i++)
        if (status_of(c, ids[i]).start == 24) last = ids[i];
    CHECK(last != NULL);
    CHECK(px_cluster_leave(c, last, &changes) == 0 && changes.reallocated);
    CHECK(changes.items[0].kind == PX_CHANGE_DROP && changes.items[0].old_start == 24);
    CHECK(px_cluster_has_full_pipeline(c));
    int covered[36] = {0};
    for (int i = 0; i < 4; i++) {
        px_node_status s = status_of(c, ids[i]);
        for (int l = s.start; s.start >= 0 && l < s.end; l++) covered[l]++;
    }
    for (int l = 0; l < 36; l++) CHECK(covered[l] == 1);
    /* leaving an unknown id is an error */
    CHECK(px_cluster_leave(c, "nobody", &changes) < 0 && strstr(px_error_get(), "nobody"));
    px_cluster_destroy(c);
}

static void leave_and_rejoin_in_turn_keeps_a_full_pipeline(int n, const int *layers, const double *speeds, int L) {
    px_cluster *c = new_cluster(L);
    char ids[16][8];
    for (int i = 0; i < n; i++) {
        snprintf(ids[i], sizeof ids[i], "n%d", i);
        join(c, ids[i], layers[i], speeds[i], 0);
    }
    CHECK(px_cluster_has_full_pipeline(c));
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < n; i++) {
            CHECK(px_cluster_leave(c, ids[i], &changes) == 0);
            CHECK_MSG(px_cluster_has_full_pipeline(c), "after %s left (round %d)", ids[i], round);
            CHECK(join(c, ids[i], layers[i], speeds[i], 0) == 0);
            CHECK_MSG(px_cluster_has_full_pipeline(c), "after %s rejoined (round %d)", ids[i], round);
            CHECK(slices_fit(c, L));
        }
    px_cluster_destroy(c);
}

static void every_node_leaving_and_rejoining_keeps_service(void) {
    int equal[6] = {15, 15, 15, 15, 15, 15};
    double same[6] = {10, 10, 10, 10, 10, 10};
    leave_and_rejoin_in_turn_keeps_a_full_pipeline(6, equal, same, 36);
    int mixed[7] = {40, 30, 20, 20, 12, 36, 10};
    double speeds[7] = {50, 20, 10, 10, 5, 30, 2};
    leave_and_rejoin_in_turn_keeps_a_full_pipeline(7, mixed, speeds, 36);
    int tight[4] = {15, 15, 15, 15}; /* one pipeline + one spare: any single leave is absorbed */
    leave_and_rejoin_in_turn_keeps_a_full_pipeline(4, tight, same, 36);
}

static void imbalance_rebalances_only_when_it_helps(void) {
    /* two equal pipelines; one node leaves: layers keep a host, the imbalance
       is over the threshold, but a fresh plan is no better: nothing moves */
    px_cluster *c = new_cluster(36);
    const char *ids[6] = {"a", "b", "c", "d", "e", "f"};
    for (int i = 0; i < 6; i++) join(c, ids[i], 15, 10, 0);
    CHECK(px_cluster_leave(c, "f", &changes) == 0);
    CHECK(px_cluster_imbalance(c) > 0.25);
    CHECK(changes.n == 1 && changes.items[0].kind == PX_CHANGE_DROP && !changes.reallocated);
    px_cluster_destroy(c);
    /* a whole-model node w, then b + cc as a pipeline of two halves, then d on
       [0, 18) and a fast e on [18, 36) as replicas. d leaving leaves hosting
       power 20 on the first half and 120 on the second (CV 0.71); a fresh plan
       puts the fast node on the first half and both slow halves on the second
       (CV 0.57), so it is applied */
    c = new_cluster(36);
    join(c, "w", 40, 10, 0);
    join(c, "b", 18, 10, 0);
    join(c, "cc", 18, 10, 0);
    join(c, "d", 18, 10, 0);
    join(c, "e", 18, 100, 0);
    CHECK(status_of(c, "d").start == 0 && status_of(c, "e").start == 18);
    CHECK(px_cluster_leave(c, "d", &changes) == 0 && changes.reallocated);
    CHECK(px_cluster_has_full_pipeline(c));
    CHECK(status_of(c, "e").start == 0 && status_of(c, "e").end == 18);
    CHECK_MSG(fabs(px_cluster_imbalance(c) - 4.0 / 7.0) < 1e-9, "cv %g", px_cluster_imbalance(c));
    px_cluster_destroy(c);
}

static void heartbeats_keep_nodes_and_silence_drops_them(void) {
    px_cluster *c = new_cluster(36);
    for (int i = 0; i < 4; i++) {
        char id[8];
        snprintf(id, sizeof id, "h%d", i);
        join(c, id, 15, 10, 0);
    }
    px_heartbeat hb = {.load = 3, .layer_latency = 0};
    for (double t = 1; t <= 30; t += 1)
        for (int i = 0; i < 3; i++) {
            char id[8];
            snprintf(id, sizeof id, "h%d", i);
            CHECK(px_cluster_heartbeat(c, id, t, &hb) == 0);
        }
    CHECK(px_cluster_tick(c, 5, &changes) == 0 && changes.n == 0);
    CHECK(px_cluster_tick(c, 10.5, &changes) == 0 && changes.n >= 1);
    CHECK(!strcmp(changes.items[0].node_id, "h3") && changes.items[0].kind == PX_CHANGE_DROP);
    CHECK(status_of(c, "h3").state == PX_NODE_GONE && status_of(c, "h0").load == 3);
    CHECK(px_cluster_heartbeat(c, "h3", 11, &hb) < 0);
    CHECK(px_cluster_has_full_pipeline(c));
    /* the freed slot is reused by the next join */
    int before = px_cluster_slot_count(c);
    join(c, "h4", 15, 10, 31);
    CHECK(px_cluster_slot_count(c) == before);
    px_cluster_destroy(c);
}

static void measured_latency_replaces_the_roofline(void) {
    px_cluster *c = new_cluster(36);
    join(c, "x", 40, 100, 0); /* roofline: 1 GB / 100 GB/s = 10 ms */
    CHECK(fabs(status_of(c, "x").layer_latency - 0.01) < 1e-12);
    px_heartbeat hb = {.load = -1, .layer_latency = 0.02};
    px_cluster_heartbeat(c, "x", 1, &hb);
    CHECK(fabs(status_of(c, "x").layer_latency - 0.02) < 1e-12); /* first sample taken as is */
    hb.layer_latency = 0.03;
    px_cluster_heartbeat(c, "x", 2, &hb);
    CHECK(fabs(status_of(c, "x").layer_latency - (0.3 * 0.03 + 0.7 * 0.02)) < 1e-12);
    CHECK(px_ewma_update(0, 5, 0.3) == 5 && fabs(px_ewma_update(1, 2, 0.25) - 1.25) < 1e-12);
    px_route r;
    CHECK(px_cluster_route(c, &r) == 0 && fabs(r.cost - 36 * 0.023) < 1e-12);
    px_cluster_destroy(c);
}

static void manual_slices_are_respected(void) {
    px_cluster *c = new_cluster(36);
    px_node_info m1 = fx_node("m1", 30, 10), m2 = fx_node("m2", 30, 10);
    m1.manual_start = 0, m1.manual_end = 20;
    m2.manual_start = 20, m2.manual_end = 36;
    CHECK(px_cluster_join(c, &m1, 0, &changes) == 0 && changes.n == 1 && changes.items[0].new_end == 20);
    CHECK(px_cluster_join(c, &m2, 0, &changes) == 0 && px_cluster_has_full_pipeline(c));
    for (int i = 0; i < 3; i++) {
        char id[8];
        snprintf(id, sizeof id, "a%d", i);
        join(c, id, 15, 10, 0);
    }
    CHECK(px_cluster_rebalance(c, &changes) == 0 && changes.reallocated);
    CHECK(change_for("m1") == NULL && change_for("m2") == NULL);
    CHECK(status_of(c, "m1").start == 0 && status_of(c, "m1").end == 20 && status_of(c, "m1").manual);
    CHECK(status_of(c, "m2").start == 20 && status_of(c, "m2").end == 36);
    m1.manual_end = 37;
    strcpy(m1.id, "bad");
    CHECK(px_cluster_join(c, &m1, 0, &changes) < 0 && strstr(px_error_get(), "manual slice"));
    px_cluster_destroy(c);
}

static void rejoining_with_the_same_id_replaces_the_node(void) {
    px_cluster *c = new_cluster(36);
    join(c, "w", 40, 10, 0);
    CHECK(join(c, "w", 40, 20, 5) == 0);
    CHECK(changes.n == 2 && changes.items[0].kind == PX_CHANGE_DROP && changes.items[1].kind == PX_CHANGE_ASSIGN);
    CHECK(fabs(status_of(c, "w").layer_latency - 0.05) < 1e-12);
    px_cluster_destroy(c);
}

static void routing_counts_load_and_respects_rtt(void) {
    px_cluster *c = new_cluster(36);
    const char *ids[6] = {"a", "b", "c", "d", "e", "f"};
    for (int i = 0; i < 6; i++) join(c, ids[i], 15, 10, 0);
    px_route r;
    CHECK(px_cluster_route(c, &r) < 0); /* no RTT measured yet: no route */
    for (int i = 0; i < 6; i++)
        for (int j = 0; j < 6; j++)
            if (i != j) px_cluster_set_rtt(c, ids[i], ids[j], 0.001);
    CHECK(px_cluster_route(c, &r) == 0 && r.n_stages == 3);
    px_cluster_route_acquire(c, &r);
    px_route second;
    CHECK(px_cluster_route(c, &second) == 0);
    for (int k = 0; k < 3; k++) CHECK(second.node[k] != r.node[k]); /* the other replica of every stage */
    px_node_status s;
    px_cluster_node_status(c, r.node[0], &s);
    CHECK(s.load == 1 && s.max_load == 16);
    px_cluster_route_release(c, &r);
    px_cluster_node_status(c, r.node[0], &s);
    CHECK(s.load == 0);
    CHECK(px_cluster_set_rtt(c, "a", "zz", 0.1) < 0);
    px_cluster_destroy(c);
}

/* Random joins, leaves and timeouts. After every event: applying the
 * returned changes to a mirror reproduces every node's slice; slices fit; a
 * full chain exists whenever phase 1 over the live nodes could form one
 * (the converse need not hold: joins can chain onto manual slices in ways
 * phase 1's leftover placement does not search). */
typedef struct {
    px_node_info info;
    bool live;
    int start, end;
    double last_seen;
} mirror_node;

static void apply_changes(mirror_node *m, int n) {
    for (int i = 0; i < changes.n; i++) {
        const px_slice_change *ch = &changes.items[i];
        for (int j = 0; j < n; j++) {
            if (strcmp(m[j].info.id, ch->node_id)) continue;
            if (ch->kind == PX_CHANGE_DROP) m[j].live = false, m[j].start = m[j].end = -1;
            else m[j].start = ch->new_start, m[j].end = ch->new_end;
        }
    }
}

static bool mirror_matches(const px_cluster *c, const mirror_node *m, int n) {
    bool ok = true;
    for (int j = 0; j < n; j++) {
        px_node_status s = status_of(c, m[j].info.id);
        if (!m[j].live) ok = ok && s.state == PX_NODE_GONE;
        else ok = ok && s.state != PX_NODE_GONE && s.start == m[j].start && s.end == m[j].end;
    }
    return ok;
}

static bool phase1_can_serve(const mirror_node *m, int n, int L) {
    px_node_info live[32];
    int k = 0;
    for (int j = 0; j < n; j++)
        if (m[j].live) live[k++] = m[j].info;
    px_model_cost cost = fx_model(L);
    px_cluster_params p;
    px_cluster_params_default(&p);
    px_allocation a;
    if (px_alloc_plan(live, k, &cost, NULL, &p, &a) < 0) return false;
    px_allocation_free(&a);
    return true;
}

static void random_event_sequences_keep_invariants(void) {
    int events = 0, served = 0;
    for (int run = 0; run < 300; run++) {
        int L = fx_between(8, 40), n = fx_between(3, 12);
        px_cluster *c = new_cluster(L);
        mirror_node m[12];
        for (int j = 0; j < n; j++) {
            char id[8];
            snprintf(id, sizeof id, "r%d", j);
            m[j] = (mirror_node){fx_node(id, fx_between(1, L + 2), fx_between(1, 50)), false, -1, -1, 0};
            if (j == n - 1 && fx_between(0, 3) == 0) m[j].info.manual_start = 0, m[j].info.manual_end = L / 2;
        }
        double now = 0;
        for (int e = 0; e < 60; e++, events++) {
            now += 1;
            int j = fx_between(0, n - 1), what = fx_between(0, 9);
            if (!m[j].live) {
                CHECK(px_cluster_join(c, &m[j].info, now, &changes) == 0);
                m[j].live = true, m[j].start = m[j].end = -1, m[j].last_seen = now;
            } else if (what < 4) {
                CHECK(px_cluster_leave(c, m[j].info.id, &changes) == 0);
            } else {
                for (int i = 0; i < n; i++)
                    if (m[i].live && (i != j || what >= 8)) {
                        px_cluster_heartbeat(c, m[i].info.id, now, &(px_heartbeat){.load = -1});
                        m[i].last_seen = now;
                    }
                CHECK(px_cluster_tick(c, now + 9.5, &changes) == 0); /* j (silent >= 10.5 s) times out unless what >= 8 */
                if (what >= 8) CHECK(changes.n == 0);
            }
            apply_changes(m, n);
            bool mirrored = mirror_matches(c, m, n), fit = slices_fit(c, L);
            bool full = px_cluster_has_full_pipeline(c), can = phase1_can_serve(m, n, L);
            bool ok = mirrored && fit && (full || !can);
            served += full;
            CHECK_MSG(ok, "run %d event %d: mirrored %d, fit %d, full %d, phase 1 can serve %d", run, e, mirrored, fit,
                      full, can);
            if (!ok) {
                for (int i = 0; i < n; i++) {
                    px_node_status st = status_of(c, m[i].info.id);
                    fprintf(stderr, "  %s live %d cap %d/%d/%d/%d manual [%d,%d) slice [%d,%d) state %d\n",
                            m[i].info.id, m[i].live, st.capacity.mid, st.capacity.first, st.capacity.last,
                            st.capacity.both, m[i].info.manual_start, m[i].info.manual_end, st.start, st.end, st.state);
                }
                fprintf(stderr, "  L %d, event kind %d on r%d\n", L, what, j);
                break;
            }
        }
        px_cluster_destroy(c);
    }
    printf("random events: %d, a full pipeline after %d of them\n", events, served);
}

int main(void) {
    bootstrap_waits_on_standby_until_a_pipeline_forms();
    standby_nodes_that_can_form_a_pipeline_do();
    a_leave_that_uncovers_layers_reallocates_everything();
    every_node_leaving_and_rejoining_keeps_service();
    imbalance_rebalances_only_when_it_helps();
    heartbeats_keep_nodes_and_silence_drops_them();
    measured_latency_replaces_the_roofline();
    manual_slices_are_respected();
    rejoining_with_the_same_id_replaces_the_node();
    routing_counts_load_and_respects_rtt();
    random_event_sequences_keep_invariants();
    px_change_list_free(&changes);
    return px_test_finish();
}
