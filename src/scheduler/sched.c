/* sched.c - the scheduler process's thread: membership and the loop.
 *
 * One thread owns the cluster socket (a CURVE ROUTER; every worker's DEALER
 * connects with its node id as routing id). Each turn it waits up to 20 ms
 * for a message or a command, then under `mu`: takes the HTTP threads'
 * commands (submit, abort), handles up to 256 messages, and every 100 ms
 * times out silent workers, expires requests that waited too long and
 * re-dispatches pending requests; then it delivers the collected token
 * events with `mu` released.
 *
 * Membership, per message:
 *   Join       px_cluster_join() (manual slices kept as given) -> JoinReply,
 *              then the returned slice changes, then Peers to everyone
 *   Ready      the worker loaded the slice of its newest Assign: routable
 *   Heartbeat  px_cluster_heartbeat() (load, latency EWMA) and RTTs
 *   Leave, silence > dead_after, a send the transport refuses (the peer's
 *              connection is gone: kill -9 is noticed at once),
 *   a failed Ready   -> px_cluster_leave() + its changes
 * A slice change (ASSIGN, MOVE, RELEASE) bumps the worker's generation and
 * sends Assign; the worker is not routable until it answers Ready for that
 * generation. Requests routed through a worker that dies or changes slice
 * are re-routed (requests.c). A message from a node we do not know (it was
 * timed out, or we restarted) is answered "join again".
 *
 * Without a model (state "setup") the membership is a stand-in whose one
 * layer fits no node: workers join, heartbeat and stand by (JoinReply with
 * model ""); a worker's own slice is remembered for later. When a model is
 * chosen (setup.c) px_sched_use_model_locked() joins every worker into a
 * new membership for it, runs phase 1 once over all of them and sends each
 * a JoinReply naming the model, then its Assign. */
#include "px_base.h"
#include "sched_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* ---- u64 map ---- */

#define MAP_DEL UINT64_MAX

static void map_grow(px_u64map *m) {
    px_u64map n = {.cap = m->cap ? m->cap * 2 : 64};
    if (m->count * 4 < m->cap) n.cap = m->cap; /* mostly tombstones: rehash in place */
    n.keys = px_calloc((size_t)n.cap, sizeof *n.keys);
    n.vals = px_calloc((size_t)n.cap, sizeof *n.vals);
    for (int i = 0; i < m->cap; i++)
        if (m->keys[i] && m->keys[i] != MAP_DEL) px_u64map_put(&n, m->keys[i], m->vals[i]);
    free(m->keys);
    free(m->vals);
    *m = n;
}

void px_u64map_put(px_u64map *m, uint64_t k, void *v) {
    if ((m->used + 1) * 2 > m->cap) map_grow(m);
    unsigned mask = (unsigned)m->cap - 1, i = (unsigned)(k * 0x9e3779b97f4a7c15ull >> 32) & mask;
    int tomb = -1;
    while (m->keys[i]) {
        if (m->keys[i] == k) {
            m->vals[i] = v;
            return;
        }
        if (m->keys[i] == MAP_DEL && tomb < 0) tomb = (int)i;
        i = (i + 1) & mask;
    }
    if (tomb >= 0) i = (unsigned)tomb;
    else m->used++;
    m->keys[i] = k;
    m->vals[i] = v;
    m->count++;
}

static int map_find(const px_u64map *m, uint64_t k) {
    if (!m->cap) return -1;
    unsigned mask = (unsigned)m->cap - 1, i = (unsigned)(k * 0x9e3779b97f4a7c15ull >> 32) & mask;
    while (m->keys[i]) {
        if (m->keys[i] == k) return (int)i;
        i = (i + 1) & mask;
    }
    return -1;
}

void *px_u64map_get(const px_u64map *m, uint64_t k) {
    int i = map_find(m, k);
    return i < 0 ? NULL : m->vals[i];
}

void px_u64map_del(px_u64map *m, uint64_t k) {
    int i = map_find(m, k);
    if (i < 0) return;
    m->keys[i] = MAP_DEL;
    m->vals[i] = NULL;
    m->count--;
}

void px_u64map_free(px_u64map *m) {
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

/* ---- workers ---- */

static void ensure_slots(px_sched *s, int n) {
    if (n <= s->cap_workers) return;
    int cap = PX_MAX(n, s->cap_workers * 2);
    sworker *w = px_calloc((size_t)cap, sizeof *w);
    double *rtt = px_malloc((size_t)cap * (size_t)cap * sizeof *rtt);
    for (int i = 0; i < cap * cap; i++) rtt[i] = NAN;
    for (int i = 0; i < s->cap_workers; i++) {
        w[i] = s->workers[i];
        for (int j = 0; j < s->cap_workers; j++) rtt[i * cap + j] = s->rtt[i * s->cap_workers + j];
    }
    free(s->workers);
    free(s->rtt);
    s->workers = w;
    s->rtt = rtt;
    s->cap_workers = cap;
}

static int find_worker(px_sched *s, const char *id) {
    int slot = px_cluster_find(s->cluster, id);
    return slot >= 0 && slot < s->cap_workers && s->workers[slot].used ? slot : -1;
}

int px_sched_send(px_sched *s, int slot, Parallax__Envelope__BodyCase kind, void *body) {
    Parallax__Envelope env;
    px_net_env(&env, PX_SCHED_ID, kind, body);
    return px_net_send(s->sock, s->workers[slot].id, &env, NULL, 0);
}

static void broadcast_peers(px_sched *s) {
    int n = px_cluster_slot_count(s->cluster);
    Parallax__Peer *p = px_calloc((size_t)n + 1, sizeof *p), **pp = px_calloc((size_t)n + 1, sizeof *pp);
    Parallax__Peers peers;
    parallax__peers__init(&peers);
    for (int i = 0; i < n && i < s->cap_workers; i++) {
        if (!s->workers[i].used) continue;
        Parallax__Peer *q = &p[peers.n_peers];
        parallax__peer__init(q);
        q->id = s->workers[i].id;
        q->endpoint = s->workers[i].endpoint;
        q->key.data = s->workers[i].key, q->key.len = PX_NET_KEY_BYTES;
        pp[peers.n_peers++] = q;
    }
    peers.peers = pp;
    for (int i = 0; i < n && i < s->cap_workers; i++)
        if (s->workers[i].used) px_sched_send(s, i, PARALLAX__ENVELOPE__BODY_PEERS, &peers); /* a gone peer is noticed elsewhere */
    free(p);
    free(pp);
}

static void send_assign(px_sched *s, int slot) {
    sworker *w = &s->workers[slot];
    Parallax__Assign a;
    parallax__assign__init(&a);
    a.serve = w->start >= 0;
    a.start = w->start, a.end = w->end;
    a.generation = ++w->generation;
    w->ready = false;
    if (px_sched_send(s, slot, PARALLAX__ENVELOPE__BODY_ASSIGN, &a)) px_log_debug("scheduler: %s", px_error_get());
    if (a.serve) px_log_info("scheduler: %s gets layers [%d, %d)", w->id, w->start, w->end);
    else px_log_info("scheduler: %s stands by", w->id);
}

/* Applies the slice changes px_cluster returned. Workers that were removed
 * are already marked unused. */
static void apply_changes(px_sched *s, const px_change_list *l) {
    for (int i = 0; i < l->n; i++) {
        const px_slice_change *c = &l->items[i];
        if (c->node < 0 || c->node >= s->cap_workers) continue;
        sworker *w = &s->workers[c->node];
        if (c->kind == PX_CHANGE_DROP) continue; /* the caller handles the dead node */
        if (!w->used) continue;
        if (c->kind != PX_CHANGE_ASSIGN) px_sched_failover_slot(s, c->node, "its slice changed");
        w->start = c->kind == PX_CHANGE_RELEASE ? -1 : c->new_start;
        w->end = c->kind == PX_CHANGE_RELEASE ? -1 : c->new_end;
        send_assign(s, c->node);
    }
}

void px_sched_remove_worker(px_sched *s, int slot, const char *why) {
    if (slot < 0 || slot >= s->cap_workers || !s->workers[slot].used) return;
    sworker *w = &s->workers[slot];
    char id[PX_NET_ID_MAX];
    snprintf(id, sizeof id, "%s", w->id);
    px_log_warn("scheduler: worker %s removed: %s", id, why);
    w->used = false;
    w->ready = false;
    px_sched_failover_slot(s, slot, why);
    px_change_list l = {0};
    if (px_cluster_leave(s->cluster, id, &l)) px_log_warn("scheduler: leave %s: %s", id, px_error_get());
    apply_changes(s, &l);
    px_change_list_free(&l);
    for (int i = 0; i < s->cap_workers; i++) s->rtt[slot * s->cap_workers + i] = s->rtt[i * s->cap_workers + slot] = NAN;
    broadcast_peers(s);
    pthread_cond_broadcast(&s->changed);
}

/* ---- messages ---- */

static void refuse_join(px_sched *s, const char *peer, const char *fmt, const char *detail) {
    char reason[512];
    snprintf(reason, sizeof reason, fmt, detail);
    Parallax__JoinReply r;
    parallax__join_reply__init(&r);
    r.reason = reason;
    Parallax__Envelope env;
    px_net_env(&env, PX_SCHED_ID, PARALLAX__ENVELOPE__BODY_JOIN_REPLY, &r);
    px_net_send(s->sock, peer, &env, NULL, 0);
    px_log_warn("scheduler: refused worker %s: %s", peer, reason);
}

static void send_join_reply(px_sched *s, int slot) {
    Parallax__JoinReply r;
    parallax__join_reply__init(&r);
    r.accepted = true;
    r.model = s->has_model ? s->model_ref : ""; /* none yet: stand by until setup */
    r.revision = (char *)(s->has_model && s->revision ? s->revision : "");
    r.n_layers = s->has_model ? (uint32_t)s->cfg.n_layers : 0;
    r.wire_dtype = (uint32_t)s->opt.wire_dtype;
    r.heartbeat_ms = (uint32_t)s->opt.heartbeat_ms;
    r.weight_dtype = s->opt.weight_dtype >= 0 ? (uint32_t)s->opt.weight_dtype + 1 : 0;
    r.kv_cache_bytes = (uint64_t)PX_MAX(s->opt.worker_kv_bytes, 0);
    px_sched_send(s, slot, PARALLAX__ENVELOPE__BODY_JOIN_REPLY, &r);
}

static void on_join(px_sched *s, const char *peer, const Parallax__Join *j) {
    double now = px_time_now();
    if (j->manual && s->has_model && j->manual_end > s->cfg.n_layers)
        return refuse_join(s, peer, "manual slice beyond the model's layers (%s)", s->model_name);
    int old = find_worker(s, peer);
    if (old >= 0 && !memcmp(s->workers[old].key, j->data_key.data, PX_NET_KEY_BYTES) &&
        !strcmp(s->workers[old].endpoint, j->data_endpoint)) {
        /* the same process again (a retry that crossed our reply): answer, change nothing */
        s->workers[old].last_seen = now;
        send_join_reply(s, old);
        return;
    }
    if (old >= 0) px_sched_remove_worker(s, old, "restarted (joined again)");
    px_node_info info;
    px_node_info_init(&info, peer);
    snprintf(info.region, sizeof info.region, "%s", j->region);
    info.cores = (int)j->hw->cores;
    info.gpu = j->hw->gpu;
    info.memory_bytes = j->hw->memory_bytes;
    info.bandwidth = j->hw->bandwidth;
    info.flops = j->hw->flops;
    /* without a model the slice is kept for later (setup.c checks it against the chosen model) */
    if (j->manual && s->has_model) info.manual_start = j->manual_start, info.manual_end = j->manual_end;
    px_change_list l = {0};
    if (px_cluster_join(s->cluster, &info, now, &l)) {
        px_change_list_free(&l);
        return refuse_join(s, peer, "%s", px_error_get());
    }
    int slot = px_cluster_find(s->cluster, peer);
    ensure_slots(s, slot + 1);
    sworker *w = &s->workers[slot];
    memset(w, 0, sizeof *w);
    w->used = true;
    snprintf(w->id, sizeof w->id, "%s", peer);
    snprintf(w->hostname, sizeof w->hostname, "%s", j->hw->hostname);
    snprintf(w->region, sizeof w->region, "%s", j->region);
    snprintf(w->endpoint, sizeof w->endpoint, "%s", j->data_endpoint);
    memcpy(w->key, j->data_key.data, PX_NET_KEY_BYTES);
    w->cores = (int)j->hw->cores, w->memory_bytes = j->hw->memory_bytes;
    w->bandwidth = j->hw->bandwidth, w->flops = j->hw->flops, w->manual = j->manual && s->has_model;
    w->manual_start = j->manual ? j->manual_start : -1, w->manual_end = j->manual ? j->manual_end : -1;
    w->start = w->end = -1;
    w->joined_at = w->last_seen = now;
    for (int i = 0; i < s->cap_workers; i++) s->rtt[slot * s->cap_workers + i] = s->rtt[i * s->cap_workers + slot] = NAN;

    send_join_reply(s, slot);
    px_log_info("scheduler: worker %s joined (%s, %d cores, %.1f GB%s)", peer, w->hostname, w->cores,
                (double)w->memory_bytes / 1e9, j->manual ? ", manual slice" : "");
    broadcast_peers(s);
    apply_changes(s, &l);
    /* a newcomer the allocation left out still needs an answer: stand by */
    if (w->generation == 0) send_assign(s, slot);
    px_change_list_free(&l);
}

static void on_ready(px_sched *s, int slot, const Parallax__Ready *r) {
    sworker *w = &s->workers[slot];
    if (r->generation != w->generation) return; /* answers an older Assign */
    if (!r->ok) {
        char why[600];
        snprintf(why, sizeof why, "could not load its slice: %s", r->error);
        px_sched_remove_worker(s, slot, why);
        return;
    }
    if (w->start >= 0 && (r->start != w->start || r->end != w->end)) return;
    w->ready = true;
    w->ready_at = px_time_now();
    w->kv_tokens = r->kv_tokens;
    if (w->start >= 0)
        px_log_info("scheduler: %s serves layers [%d, %d) (loaded in %.2f s)", w->id, w->start, w->end, r->load_seconds);
    pthread_cond_broadcast(&s->changed);
}

static void on_heartbeat(px_sched *s, int slot, const Parallax__Heartbeat *h) {
    sworker *w = &s->workers[slot];
    double now = px_time_now();
    px_heartbeat hb = {.load = (int)h->load, .layer_latency = h->layer_latency};
    px_cluster_heartbeat(s->cluster, w->id, now, &hb);
    w->load = (int)h->load;
    if (h->layer_latency > 0) w->layer_latency = h->layer_latency;
    if (!w->first_hb_at) w->first_hb_at = now, w->first_hb_busy = h->busy_seconds;
    w->busy_seconds = h->busy_seconds;
    w->positions = h->positions, w->steps = h->steps;
    w->bytes_in = h->bytes_in, w->bytes_out = h->bytes_out, w->items_in = h->items_in;
    w->kv_blocks_total = (int)h->kv_blocks_total, w->kv_blocks_used = (int)h->kv_blocks_used;
    if (h->load_generation == w->generation) w->load_done = h->load_done, w->load_total = h->load_total;
    else w->load_done = w->load_total = 0; /* a load for an older Assign (or none yet) */
    for (size_t i = 0; i < h->n_rtts; i++) {
        int peer = find_worker(s, h->rtts[i]->peer);
        if (peer < 0) continue;
        s->rtt[slot * s->cap_workers + peer] = h->rtts[i]->seconds;
        px_cluster_set_rtt(s->cluster, w->id, h->rtts[i]->peer, h->rtts[i]->seconds);
    }
}

static void on_message(px_sched *s, px_msg *m) {
    Parallax__Envelope *e = m->env;
    if (strcmp(e->sender, m->peer)) {
        px_net_send_error(s->sock, m->peer, PX_SCHED_ID, PARALLAX__ERROR_CODE__INVALID,
                          "sender '%s' does not match the connection's node id '%s'", e->sender, m->peer);
        return;
    }
    if (e->body_case == PARALLAX__ENVELOPE__BODY_JOIN) return on_join(s, m->peer, e->join);
    int slot = find_worker(s, m->peer);
    if (slot < 0) {
        if (e->body_case == PARALLAX__ENVELOPE__BODY_LEAVE || e->body_case == PARALLAX__ENVELOPE__BODY_ERROR) return;
        /* at most one answer per node and second: a node back from a pause has a backlog of messages */
        uint64_t hsh = 1469598103934665603ull;
        for (const char *c = m->peer; *c; c++) hsh = (hsh ^ (uint8_t)*c) * 1099511628211ull;
        double *last = &s->unknown_reply[hsh % PX_SCHED_UNKNOWN_SLOTS], now = px_time_now();
        if (now - *last < 1.0) return;
        *last = now;
        px_net_send_error(s->sock, m->peer, PX_SCHED_ID, PARALLAX__ERROR_CODE__REFUSED,
                          "unknown node %s: join again", m->peer);
        return;
    }
    s->workers[slot].last_seen = px_time_now();
    switch (e->body_case) {
    case PARALLAX__ENVELOPE__BODY_READY: on_ready(s, slot, e->ready); break;
    case PARALLAX__ENVELOPE__BODY_HEARTBEAT: on_heartbeat(s, slot, e->heartbeat); break;
    case PARALLAX__ENVELOPE__BODY_TOKEN: px_sched_on_token(s, slot, e->token); break;
    case PARALLAX__ENVELOPE__BODY_LEAVE: px_sched_remove_worker(s, slot, "it left"); break;
    case PARALLAX__ENVELOPE__BODY_PING: {
        Parallax__Pong p;
        parallax__pong__init(&p);
        p.nonce = e->ping->nonce, p.sent = e->ping->sent;
        px_sched_send(s, slot, PARALLAX__ENVELOPE__BODY_PONG, &p);
        break;
    }
    case PARALLAX__ENVELOPE__BODY_PONG: break;
    case PARALLAX__ENVELOPE__BODY_ERROR: px_log_warn("scheduler: %s says: %s", m->peer, e->error->message); break;
    default: px_log_debug("scheduler: unexpected %s from %s", px_net_body_name(e), m->peer); break;
    }
}

/* A ping to every worker: the ROUTER refuses a send to a routing id whose
 * connection closed (a killed process's socket is closed by the kernel at
 * once), so a dead worker is found within one tick, not after dead_after. */
static void probe_workers(px_sched *s, double now) {
    for (int i = 0; i < s->cap_workers; i++) {
        if (!s->workers[i].used) continue;
        Parallax__Ping p;
        parallax__ping__init(&p);
        p.sent = now;
        if (px_sched_send(s, i, PARALLAX__ENVELOPE__BODY_PING, &p) && px_net_send_peer_gone() &&
            now - s->workers[i].joined_at > 1.0) /* a fresh joiner's connection may still be settling */
            px_sched_remove_worker(s, i, "its connection closed");
    }
}

static void check_timeouts(px_sched *s, double now) {
    for (int i = 0; i < s->cap_workers; i++) {
        sworker *w = &s->workers[i];
        if (!w->used || now - w->last_seen <= s->opt.dead_after) continue;
        char why[128];
        snprintf(why, sizeof why, "silent for %.1f s", now - w->last_seen);
        px_sched_remove_worker(s, i, why);
    }
}

bool px_sched_has_chain_locked(px_sched *s) {
    if (!s->has_model) return false;
    /* reachable[l]: some chain of ready slices covers [0, l) */
    int L = s->cfg.n_layers;
    bool *reach = px_calloc((size_t)L + 1, 1);
    reach[0] = true;
    for (int l = 0; l < L; l++) {
        if (!reach[l]) continue;
        for (int i = 0; i < s->cap_workers; i++) {
            const sworker *w = &s->workers[i];
            if (w->used && w->ready && w->start == l && w->end > l) reach[w->end] = true;
        }
    }
    bool ok = reach[L];
    free(reach);
    return ok;
}

bool px_sched_available_locked(px_sched *s) {
    int n = 0;
    for (int i = 0; i < s->cap_workers; i++) n += s->workers[i].used;
    return n >= PX_MAX(s->opt.min_workers, 1) && px_sched_has_chain_locked(s);
}

static void *sched_main(void *arg) {
    px_sched *s = arg;
    double next_tick = 0;
    while (!atomic_load(&s->stop)) {
        zmq_pollitem_t items[2] = {{.socket = px_sock_handle(s->sock), .events = ZMQ_POLLIN},
                                   {.fd = s->wake_fd, .events = ZMQ_POLLIN}};
        zmq_poll(items, 2, 20);
        uint64_t v;
        if (read(s->wake_fd, &v, sizeof v) < 0) {}
        pthread_mutex_lock(&s->mu);
        px_sched_handle_cmds(s);
        px_msg m;
        for (int k = 0; k < 256; k++) {
            int r = px_net_recv(s->sock, &m, 0);
            if (r == 0) break;
            if (r < 0) {
                px_log_warn("scheduler: %s", px_error_get());
                continue;
            }
            on_message(s, &m);
            px_msg_free(&m);
        }
        double now = px_time_now();
        if (now >= next_tick) {
            next_tick = now + 0.1;
            probe_workers(s, now);
            check_timeouts(s, now);
            px_sched_expire(s, now);
            px_sock_poll_events(s->sock, NULL);
        }
        px_sched_dispatch(s);
        bool avail = px_sched_available_locked(s);
        if (avail != s->was_available) {
            s->was_available = avail;
            if (avail) px_log_info("scheduler: the cluster is available (a whole pipeline is loaded)");
            else px_log_warn("scheduler: no whole pipeline is loaded; requests wait");
            pthread_cond_broadcast(&s->changed);
        }
        pthread_mutex_unlock(&s->mu);
        px_sched_deliver(s);
    }
    return NULL;
}

/* ---- create / free ---- */

/* The membership of a scheduler without a model: one layer no node can
 * hold, so every worker that joins stands by until a model is chosen. */
static px_cluster *standby_cluster(const px_cluster_params *cp) {
    px_model_cost none = {.n_layers = 1, .layer_bytes = (uint64_t)1 << 62};
    return px_cluster_create(&none, cp);
}

px_sched *px_sched_create(const px_sched_options *o) {
    px_sched *s = px_calloc(1, sizeof *s);
    s->opt = *o;
    if (!s->opt.heartbeat_ms) s->opt.heartbeat_ms = 500;
    if (s->opt.dead_after <= 0) s->opt.dead_after = 3.0;
    if (s->opt.route_timeout <= 0) s->opt.route_timeout = 300;
    if (s->opt.max_retries <= 0) s->opt.max_retries = 8;
    if (s->opt.min_workers < 1) s->opt.min_workers = 1;
    if (!px_net_dtype_size(s->opt.wire_dtype)) s->opt.wire_dtype = PARALLAX__DTYPE__BF16;
    s->served_name = o->served_name ? px_strdup(o->served_name) : NULL;
    s->revision = o->revision ? px_strdup(o->revision) : NULL;
    s->host = px_strdup(o->host ? o->host : "0.0.0.0");
    s->state_dir = o->state_dir ? px_strdup(o->state_dir) : px_net_default_state_dir();
    if (o->join_address) s->join_address = px_strdup(o->join_address);
    else {
        char h[256];
        s->join_address = px_strdup(gethostname(h, sizeof h) ? "127.0.0.1" : h);
    }
    s->n_model_dirs = PX_MAX(o->n_model_dirs, 0);
    s->model_dirs = px_calloc((size_t)s->n_model_dirs + 1, sizeof *s->model_dirs);
    for (int i = 0; i < s->n_model_dirs; i++) s->model_dirs[i] = px_strdup(o->model_dirs[i]);
    s->opt.served_name = s->opt.revision = s->opt.join_address = NULL, s->opt.model_dirs = NULL; /* use the copies */
    s->wake_fd = -1;
    s->started = px_time_now();
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->changed, NULL);
    pthread_mutex_init(&s->cmd_mu, NULL);
    pthread_mutex_init(&s->setup_mu, NULL);
    atomic_store(&s->next_id, 1);
    s->next_attempt = 1;
    px_cluster_params_default(&s->cparams);
    s->cparams.heartbeat_timeout = s->opt.dead_after * 10; /* our own timeouts act first */
    s->cparams.unknown_rtt = 0.005;                         /* a newcomer is routable before its RTTs are measured */
    if (!(s->cluster = standby_cluster(&s->cparams))) goto fail;
    if (px_net_state_load(s->state_dir, &s->keys)) goto fail;
    s->token = px_net_token_format(&s->keys);
    if (!(s->net = px_net_new(&s->keys))) goto fail;
    px_net_set_self(s->net, PX_SCHED_ID);
    char ep[300];
    int port = o->port < 0 ? 0 : o->port ? o->port : 7000;
    snprintf(ep, sizeof ep, strchr(s->host, ':') ? "tcp://[%s]:%d" : "tcp://%s:%d", s->host, port);
    if (!(s->sock = px_net_bind(s->net, ep, s->keys.cluster_public, s->keys.cluster_secret))) goto fail;
    if (o->beacon && !(s->beacon = px_beacon_publish(o->beacon_port, px_sock_port(s->sock), s->keys.cluster_public, 1000)))
        px_log_warn("scheduler: no LAN beacon (%s); workers need -s HOST:PORT", px_error_get());
    s->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (s->wake_fd < 0) {
        px_error_set("eventfd: %s", strerror(errno));
        goto fail;
    }
    if (pthread_create(&s->thread, NULL, sched_main, s)) {
        px_error_set("cannot start the scheduler thread");
        close(s->wake_fd);
        s->wake_fd = -1;
        goto fail;
    }
    return s;
fail: {
    char err[1024];
    snprintf(err, sizeof err, "%s", px_error_get());
    px_sched_free(s);
    px_error_set("%s", err);
    return NULL;
}
}

/* ---- a new model over the same workers ---- */

static void reset_worker_for_model(sworker *w) {
    w->start = w->end = -1;
    w->ready = false;
    w->manual = false;
    w->load = w->inflight = 0;
    w->kv_reserved = 0;
    w->layer_latency = w->busy_seconds = 0;
    w->positions = w->bytes_in = w->bytes_out = w->items_in = w->steps = 0;
    w->kv_blocks_total = w->kv_blocks_used = 0;
    w->kv_tokens = w->load_done = w->load_total = 0;
    w->first_hb_at = w->first_hb_busy = 0;
    w->ready_at = 0;
}

void px_sched_use_model_locked(px_sched *s, sched_model *m) {
    px_sched_abort_all(s, "the model changed"); /* none expected: setup checks first */
    free(s->model_dir), free(s->model_ref), free(s->revision), free(s->model_name);
    s->model_dir = m->dir, s->model_ref = m->ref, s->revision = m->revision, s->model_name = m->name;
    m->dir = m->ref = m->revision = m->name = NULL;
    s->cfg = m->cfg, s->cost = m->cost, s->context_length = m->context_length;
    s->model_bytes = m->bytes, s->model_bytes_estimated = m->bytes_estimated;
    s->has_model = true;

    /* every worker joins the new membership (generations keep counting: a
     * worker ignores an Assign older than the newest it saw) */
    sworker *old = s->workers;
    double *old_rtt = s->rtt;
    int n_old = s->cap_workers, *slot_of = px_calloc((size_t)n_old + 1, sizeof *slot_of);
    s->workers = NULL, s->rtt = NULL, s->cap_workers = 0;
    px_cluster_destroy(s->cluster);
    s->cluster = m->cluster;
    m->cluster = NULL;
    double now = px_time_now();
    for (int i = 0; i < n_old; i++) {
        slot_of[i] = -1;
        sworker *o = &old[i];
        if (!o->used) continue;
        px_node_info info;
        px_node_info_init(&info, o->id);
        snprintf(info.region, sizeof info.region, "%s", o->region);
        info.cores = o->cores, info.memory_bytes = o->memory_bytes, info.bandwidth = o->bandwidth, info.flops = o->flops;
        bool manual = o->manual_start >= 0 && o->manual_end <= s->cfg.n_layers;
        if (manual) info.manual_start = o->manual_start, info.manual_end = o->manual_end;
        else if (o->manual_start >= 0)
            px_log_warn("scheduler: %s asked for layers [%d, %d); %s has %d: the scheduler places it", o->id,
                        o->manual_start, o->manual_end, s->model_name, s->cfg.n_layers);
        px_change_list l = {0};
        int rc = px_cluster_join(s->cluster, &info, now, &l);
        if (rc && manual) { /* a slice that does not fit with the others: place it */
            info.manual_start = info.manual_end = -1, manual = false;
            rc = px_cluster_join(s->cluster, &info, now, &l);
        }
        px_change_list_free(&l);
        if (rc) {
            px_log_warn("scheduler: %s cannot join for %s: %s", o->id, s->model_name, px_error_get());
            px_net_send_error(s->sock, o->id, PX_SCHED_ID, PARALLAX__ERROR_CODE__REFUSED, "unknown node %s: join again",
                              o->id);
            continue;
        }
        int slot = px_cluster_find(s->cluster, o->id);
        ensure_slots(s, slot + 1);
        s->workers[slot] = *o;
        reset_worker_for_model(&s->workers[slot]);
        s->workers[slot].manual = manual;
        slot_of[i] = slot;
    }
    for (int i = 0; i < n_old; i++)
        for (int j = 0; j < n_old; j++) {
            double v = old_rtt ? old_rtt[i * n_old + j] : NAN;
            if (i == j || slot_of[i] < 0 || slot_of[j] < 0 || !isfinite(v)) continue;
            s->rtt[slot_of[i] * s->cap_workers + slot_of[j]] = v;
            px_cluster_set_rtt(s->cluster, old[i].id, old[j].id, v);
        }
    free(old);
    free(old_rtt);
    free(slot_of);
    /* one phase 1 over everyone, then each worker hears the model and its slice once */
    px_change_list l = {0};
    if (px_cluster_rebalance(s->cluster, &l)) px_log_warn("scheduler: %s", px_error_get());
    px_change_list_free(&l);
    for (int i = 0; i < s->cap_workers; i++) {
        sworker *w = &s->workers[i];
        if (!w->used) continue;
        px_node_status st;
        if (!px_cluster_node_status(s->cluster, i, &st) && st.state == PX_NODE_SERVING) w->start = st.start, w->end = st.end;
        send_join_reply(s, i);
        send_assign(s, i);
    }
    broadcast_peers(s);
    s->was_available = false;
    px_log_info("scheduler: now serving %s as '%s' (%d layers)", s->model_ref, s->model_name, s->cfg.n_layers);
    pthread_cond_broadcast(&s->changed);
}

void px_sched_free(px_sched *s) {
    if (!s) return;
    if (s->wake_fd >= 0) {
        atomic_store(&s->stop, true);
        pthread_join(s->thread, NULL);
        close(s->wake_fd);
    }
    pthread_mutex_lock(&s->mu);
    px_sched_handle_cmds(s);
    px_sched_abort_all(s, "the scheduler stops");
    pthread_mutex_unlock(&s->mu);
    px_sched_deliver(s);
    px_beacon_stop(s->beacon);
    px_sock_close(s->sock);
    px_net_free(s->net);
    px_cluster_destroy(s->cluster);
    for (int i = 0; i < s->n_model_dirs; i++) free(s->model_dirs[i]);
    free(s->model_dirs);
    free(s->served_name);
    free(s->join_address);
    px_u64map_free(&s->reqs);
    px_u64map_free(&s->attempts);
    free(s->workers);
    free(s->rtt);
    free(s->cbs);
    free(s->token);
    free(s->model_dir);
    free(s->model_ref);
    free(s->revision);
    free(s->model_name);
    free(s->host);
    free(s->state_dir);
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->cmd_mu);
    pthread_mutex_destroy(&s->setup_mu);
    pthread_cond_destroy(&s->changed);
    free(s);
}

int px_sched_port(const px_sched *s) { return px_sock_port(s->sock); }
const char *px_sched_token(const px_sched *s) { return s->token; }

char *px_sched_join_command(const px_sched *s) {
    const char *a = s->join_address;
    bool v6 = strchr(a, ':') && a[0] != '[';
    size_t n = strlen(a) + strlen(s->token) + 64;
    char *cmd = px_malloc(n);
    snprintf(cmd, n, "parallax join -s %s%s%s:%d --token %s", v6 ? "[" : "", a, v6 ? "]" : "", px_sched_port(s), s->token);
    return cmd;
}

#define LOCKED(type, expr)            \
    do {                              \
        pthread_mutex_lock(&s->mu);   \
        type v_ = (expr);             \
        pthread_mutex_unlock(&s->mu); \
        return v_;                    \
    } while (0)

bool px_sched_has_model(px_sched *s) { LOCKED(bool, s->has_model); }
int px_sched_context_length(px_sched *s) { LOCKED(int, s->has_model ? s->context_length : 0); }
int px_sched_n_layers(px_sched *s) { LOCKED(int, s->has_model ? s->cfg.n_layers : 0); }
char *px_sched_model_name(px_sched *s) { LOCKED(char *, s->has_model ? px_strdup(s->model_name) : NULL); }
char *px_sched_model_dir(px_sched *s) { LOCKED(char *, s->has_model ? px_strdup(s->model_dir) : NULL); }
#undef LOCKED

bool px_sched_available(px_sched *s) {
    pthread_mutex_lock(&s->mu);
    bool a = px_sched_available_locked(s);
    pthread_mutex_unlock(&s->mu);
    return a;
}

bool px_sched_wait_available(px_sched *s, double timeout, volatile bool *stop) {
    double deadline = timeout > 0 ? px_time_now() + timeout : 0;
    pthread_mutex_lock(&s->mu);
    while (!px_sched_available_locked(s) && !(stop && *stop) && !(deadline && px_time_now() > deadline)) {
        pthread_mutex_unlock(&s->mu);
        usleep(50000);
        pthread_mutex_lock(&s->mu);
    }
    bool a = px_sched_available_locked(s);
    pthread_mutex_unlock(&s->mu);
    return a;
}

static char *status_json(void *ctx) { return px_sched_status_json(ctx); }

px_server_backend px_sched_backend(px_sched *s) {
    return (px_server_backend){.ctx = s,
                               .submit = px_sched_submit,
                               .abort = px_sched_abort,
                               .stats = px_sched_stats,
                               .status_json = status_json,
                               .metrics_text = px_sched_metrics_text,
                               .route = px_sched_route};
}
