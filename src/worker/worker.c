/* worker.c - `parallax join`: the worker's network thread.
 *
 * Start: parse the join token, find the scheduler (-s or the LAN beacon),
 * bind a CURVE data socket for peers (its own fresh keypair; its public key
 * goes to the scheduler in Join, which hands it to the peers in Peers),
 * connect to the scheduler and send Join (again every 3 s until answered).
 * A refused handshake (wrong join secret) or an Error of code VERSION ends
 * the worker with a clear message.
 *
 * Loop (zmq_poll over the scheduler socket, the data socket, one DEALER per
 * peer and the outbox eventfd; timers for heartbeats, pings, join retries):
 *   JoinReply  remember model, wire dtype, heartbeat period; a model ""
 *              means none is chosen yet (stand by); another model than
 *              before starts a new model epoch (the held slice is stale)
 *   Assign     (re)load the slice on a loader thread; the old stage is freed
 *              first (its requests are re-routed by the scheduler); a newer
 *              Assign while loading is applied when the load ends; the same
 *              slice of the same model again only bumps the generation.
 *              Ready answers. Heartbeats carry the load's progress.
 *   Peers      open/close DEALERs to the other workers' data sockets
 *   Forward / Release   the data path (relay.c)
 *   Ping       answered with Pong; our own pings measure RTTs to peers
 *   Error      VERSION: fatal. REFUSED "join again": the scheduler forgot us
 *              (it restarted, or timed us out): join again, keep the slice.
 * Heartbeats carry the stage's load, the per-layer latency measured since
 * the last heartbeat (busy seconds / positions / layers), traffic counters
 * and the peer RTTs. On stop: Leave, then close (with a short linger so it
 * is delivered). */
#include "hub.h"
#include "px_base.h"
#include "worker_internal.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define JOIN_RETRY_S 3.0
#define PING_EVERY_S 1.0

void px_worker_options_defaults(px_worker_options *o) {
    memset(o, 0, sizeof *o);
    o->manual_start = o->manual_end = -1;
}

/* ---- outbox ---- */

void px_worker_outbox_push(px_worker *w, out_msg *m) {
    pthread_mutex_lock(&w->out_mu);
    if (w->out_tail) w->out_tail->next = m;
    else w->out_head = m;
    w->out_tail = m;
    pthread_mutex_unlock(&w->out_mu);
    uint64_t one = 1;
    if (write(w->wake_fd, &one, sizeof one) < 0) {}
}

void px_worker_queue(px_worker *w, const char *to, Parallax__Envelope *env, void *act, size_t act_len, bool act_take) {
    out_msg *m = px_calloc(1, sizeof *m);
    m->kind = OUT_SEND;
    snprintf(m->to, sizeof m->to, "%s", to);
    m->hdr_len = px_net_pack(env, &m->hdr);
    if (act_len) {
        if (act_take) m->act = act;
        else {
            m->act = px_malloc(act_len);
            memcpy(m->act, act, act_len);
        }
        m->act_len = act_len;
    } else if (act_take) free(act);
    px_worker_outbox_push(w, m);
}

static void out_free(out_msg *m) {
    free(m->hdr);
    free(m->act);
    free(m->error);
    free(m->model_dir);
    free(m);
}

/* ---- small helpers ---- */

static void send_env(px_worker *w, Parallax__Envelope__BodyCase kind, void *body) {
    Parallax__Envelope env;
    px_net_env(&env, w->id, kind, body);
    if (px_net_send(w->sched, NULL, &env, NULL, 0)) px_log_debug("worker: %s", px_error_get());
}

static px_peer *find_peer(px_worker *w, const char *id) {
    for (int i = 0; i < w->n_peers; i++)
        if (!strcmp(w->peers[i].id, id)) return &w->peers[i];
    return NULL;
}

/* "HOST:PORT" or "tcp://HOST:PORT" -> "tcp://HOST:PORT". */
static int normalise_endpoint(const char *in, char *out, size_t cap) {
    const char *s = !strncmp(in, "tcp://", 6) ? in + 6 : in;
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s || !colon[1]) return px_error_set("-s %s: expected HOST:PORT", in), -1;
    snprintf(out, cap, "tcp://%s", s);
    return 0;
}

/* The local address this machine uses to reach endpoint's host (what peers
 * on the same network can reach us at). */
static int local_address_towards(const char *endpoint, char *out, size_t cap) {
    char host[256];
    const char *s = endpoint + 6, *colon = strrchr(s, ':');
    size_t n = PX_MIN((size_t)(colon - s), sizeof host - 1);
    memcpy(host, s, n);
    host[n] = 0;
    if (host[0] == '[') { /* [v6] */
        memmove(host, host + 1, strlen(host));
        host[strcspn(host, "]")] = 0;
    }
    struct addrinfo hints = {.ai_socktype = SOCK_DGRAM}, *res;
    if (getaddrinfo(host, "9", &hints, &res)) return px_error_set("cannot resolve %s", host), -1;
    int fd = socket(res->ai_family, SOCK_DGRAM, 0), rc = -1;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (fd >= 0 && !connect(fd, res->ai_addr, res->ai_addrlen) && !getsockname(fd, (struct sockaddr *)&ss, &sl)) {
        void *a = ss.ss_family == AF_INET6 ? (void *)&((struct sockaddr_in6 *)&ss)->sin6_addr
                                           : (void *)&((struct sockaddr_in *)&ss)->sin_addr;
        char ip[INET6_ADDRSTRLEN];
        if (inet_ntop(ss.ss_family, a, ip, sizeof ip)) {
            snprintf(out, cap, ss.ss_family == AF_INET6 ? "[%s]" : "%s", ip);
            rc = 0;
        }
    }
    if (fd >= 0) close(fd);
    freeaddrinfo(res);
    if (rc) px_error_set("cannot find the local address towards %s", host);
    return rc;
}

static void default_id(const char *hostname, char *out) {
    char h[40];
    size_t n = 0;
    for (const char *p = hostname; *p && n < sizeof h - 1; p++)
        h[n++] = isalnum((unsigned char)*p) || *p == '-' || *p == '.' ? *p : '-';
    h[n] = 0;
    unsigned r = (unsigned)getpid() ^ (unsigned)(px_time_now() * 1e6);
    snprintf(out, PX_NET_ID_MAX, "%s-%04x", n ? h : "worker", r & 0xffff);
}

/* ---- join ---- */

static void send_join(px_worker *w) {
    Parallax__Join j;
    Parallax__Hardware hw;
    parallax__join__init(&j);
    parallax__hardware__init(&hw);
    hw.cores = (uint32_t)w->hw.cores;
    hw.memory_bytes = w->opt.memory_bytes ? w->opt.memory_bytes : w->hw.memory_bytes;
    hw.bandwidth = w->hw.bandwidth, hw.flops = w->hw.flops;
    hw.hostname = w->hw.hostname;
    j.hw = &hw;
    j.region = (char *)(w->opt.region ? w->opt.region : "");
    j.data_endpoint = w->data_endpoint;
    j.data_key.data = w->data_pub, j.data_key.len = PX_NET_KEY_BYTES;
    if (w->opt.manual_start >= 0) j.manual = true, j.manual_start = w->opt.manual_start, j.manual_end = w->opt.manual_end;
    j.threads = (uint32_t)PX_MAX(w->opt.threads, 0);
    j.max_batch = (uint32_t)PX_MAX(w->opt.max_batch, 0);
    send_env(w, PARALLAX__ENVELOPE__BODY_JOIN, &j);
    w->join_sent = px_time_now();
}

static bool str_differs(const char *a, const char *b) { return strcmp(a ? a : "", b ? b : ""); }

/* The model settings of a JoinReply. The first one, or one that names
 * another model than before (the scheduler's Setup chose or switched it),
 * starts a new model epoch: the slice held so far is of the old model, and
 * the next Assign loads the new one. -m (opt.model) says where the model
 * the scheduler first named is on this machine. */
static int on_join_reply(px_worker *w, const Parallax__JoinReply *r) {
    if (!r->accepted) return px_error_set("the scheduler refused this worker: %s", r->reason), -1;
    const char *rev = *r->revision ? r->revision : NULL;
    int dtype = r->weight_dtype ? (int)r->weight_dtype - 1 : -1;
    bool changed = !w->sched_model || str_differs(w->sched_model, r->model) || str_differs(w->revision, rev) ||
                   w->weight_dtype != dtype || w->kv_cache_bytes != r->kv_cache_bytes;
    if (changed) {
        if (w->sched_model && *r->model)
            px_log_info("the scheduler now serves %s: the next slice is loaded from it", r->model);
        free(w->sched_model);
        w->sched_model = px_strdup(r->model);
        if (*r->model && !w->first_model) w->first_model = px_strdup(r->model);
        bool pinned = w->opt.model && w->first_model && !strcmp(w->first_model, r->model);
        free(w->model_ref);
        free(w->revision);
        free(w->model_dir);
        w->model_ref = px_strdup(pinned ? w->opt.model : r->model);
        w->revision = rev ? px_strdup(rev) : NULL;
        w->model_dir = NULL;
        w->weight_dtype = dtype;
        w->kv_cache_bytes = r->kv_cache_bytes;
        w->model_epoch++;
    }
    w->n_layers = (int)r->n_layers;
    w->wire_dtype = (int)r->wire_dtype;
    w->heartbeat_ms = (int)r->heartbeat_ms;
    if (!w->joined) {
        if (*r->model)
            px_log_info("joined the cluster at %s as %s (model %s, %d layers, activations %s on the wire)",
                        w->sched_endpoint, w->id, w->model_ref, w->n_layers, px_dtype_name((px_dtype)w->wire_dtype));
        else
            px_log_info("joined the cluster at %s as %s; waiting for the scheduler to choose a model (its Setup page)",
                        w->sched_endpoint, w->id);
    }
    w->joined = true;
    w->next_heartbeat = px_time_now();
    return 0;
}

/* ---- slices ---- */

/* What a loader thread needs, copied: the network thread may take a new
 * JoinReply (another model) while it runs. */
typedef struct {
    px_worker *w;
    uint32_t generation, model_epoch;
    int start, end;
    char *model_ref, *revision, *model_dir; /* model_dir: NULL until resolved */
    int weight_dtype;
    uint64_t kv_cache_bytes;
} load_job;

static void load_job_free(load_job *j) {
    free(j->model_ref);
    free(j->revision);
    free(j->model_dir);
    free(j);
}

/* The scheduler's model path may not exist here. When it is a snapshot in a
 * Hugging Face cache (.../models--ORG--NAME/snapshots/COMMIT), the same repo
 * and commit are looked up in this machine's cache (or downloaded). */
static char *resolve_model(const load_job *job) {
    const char *ref = job->model_ref;
    struct stat st;
    px_hub_options ho = {.revision = job->revision, .progress = true};
    if (ref[0] != '/' || stat(ref, &st) == 0) return px_hub_model_dir(ref, &ho);
    const char *m = strstr(ref, "/models--"), *snap = m ? strstr(m, "/snapshots/") : NULL;
    if (!m || !snap || snap - m <= 9) return px_error_set("model %s: no such directory on this worker (use -m)", ref), NULL;
    char repo[512], rev[128];
    snprintf(repo, sizeof repo, "%.*s", (int)(snap - m - 9), m + 9);
    char *sep = strstr(repo, "--");
    if (!sep) return px_error_set("model %s: no such directory on this worker (use -m)", ref), NULL;
    memmove(sep + 1, sep + 2, strlen(sep + 2) + 1);
    *sep = '/';
    snprintf(rev, sizeof rev, "%.*s", (int)strcspn(snap + 11, "/"), snap + 11);
    px_log_info("model %s is not on this machine: using %s at %s from the Hugging Face cache or hub", ref, repo, rev);
    ho.revision = rev;
    return px_hub_model_dir(repo, &ho);
}

/* px_model_load's progress (loader thread): published for heartbeats. */
static void on_load_progress(void *user, uint64_t done, uint64_t total) {
    px_worker *w = user;
    atomic_store(&w->load_total, total);
    atomic_store(&w->load_done, done);
    if (w->opt.load_delay_ms > 0 && done < total) usleep((useconds_t)w->opt.load_delay_ms * 1000);
}

static void *loader_main(void *arg) {
    load_job *job = arg;
    px_worker *w = job->w;
    out_msg *m = px_calloc(1, sizeof *m);
    m->kind = OUT_LOADED;
    m->generation = job->generation, m->start = job->start, m->end = job->end;
    m->model_epoch = job->model_epoch;
    double t0 = px_time_now();
    if (!job->model_dir) job->model_dir = resolve_model(job);
    if (!job->model_dir) m->error = px_strdup(px_error_get());
    else {
        px_load_options lo = {.start = job->start, .end = job->end, .dtype = job->weight_dtype,
                              .progress = on_load_progress, .progress_user = w};
        m->model = px_model_load(job->model_dir, &lo);
        if (m->model) {
            px_engine_options eo;
            px_engine_options_defaults(&eo);
            eo.n_threads = w->opt.threads;
            if (w->opt.max_batch > 0) eo.max_batch_size = w->opt.max_batch;
            if (w->opt.kv_cache_bytes > 0) eo.kv_cache_bytes = w->opt.kv_cache_bytes;
            else if (job->kv_cache_bytes) eo.kv_cache_bytes = (int64_t)job->kv_cache_bytes;
            if (w->opt.kv_fraction > 0) eo.kv_cache_fraction = w->opt.kv_fraction;
            m->stage = px_stage_create(m->model, &eo, px_worker_on_stage_event, w);
        }
        if (!m->stage) {
            m->error = px_strdup(px_error_get());
            px_model_free(m->model);
            m->model = NULL;
        }
    }
    m->load_seconds = px_time_now() - t0;
    m->model_dir = job->model_dir;
    job->model_dir = NULL;
    load_job_free(job);
    px_worker_outbox_push(w, m);
    return NULL;
}

static void send_ready(px_worker *w, uint32_t generation, bool ok, const char *error, double secs) {
    Parallax__Ready r;
    parallax__ready__init(&r);
    r.generation = generation, r.ok = ok, r.error = (char *)(error ? error : "");
    r.start = w->stage ? w->start : -1, r.end = w->stage ? w->end : -1;
    r.load_seconds = secs;
    if (w->stage) {
        px_stage_stats_t st;
        px_stage_stats(w->stage, &st);
        r.kv_tokens = (uint64_t)st.kv_blocks_total * (uint64_t)st.block_size;
    }
    send_env(w, PARALLAX__ENVELOPE__BODY_READY, &r);
}

static void drop_stage(px_worker *w) {
    if (!w->stage) return;
    px_stage_free(w->stage); /* stops the executor: no callback runs after this */
    px_model_free(w->model);
    w->stage = NULL, w->model = NULL;
    px_routes_clear(w->routes);
}

/* Works towards the newest Assign. */
static void apply_assign(px_worker *w) {
    if (w->loading) return; /* applied when the load in progress ends */
    if (!w->want_serve) {
        if (w->stage) px_log_info("standing by (slice [%d, %d) released)", w->start, w->end);
        drop_stage(w);
        w->generation = w->want_generation;
        send_ready(w, w->generation, true, NULL, 0);
        return;
    }
    if (w->stage && w->stage_epoch == w->model_epoch && w->start == w->want_start && w->end == w->want_end) {
        w->generation = w->want_generation;
        send_ready(w, w->generation, true, NULL, 0);
        return;
    }
    drop_stage(w);
    load_job *job = px_calloc(1, sizeof *job);
    *job = (load_job){.w = w, .generation = w->want_generation, .model_epoch = w->model_epoch, .start = w->want_start,
                      .end = w->want_end, .model_ref = px_strdup(w->model_ref),
                      .revision = w->revision ? px_strdup(w->revision) : NULL,
                      .model_dir = w->model_dir ? px_strdup(w->model_dir) : NULL, .weight_dtype = w->weight_dtype,
                      .kv_cache_bytes = w->kv_cache_bytes};
    px_log_info("loading layers [%d, %d) of %s", job->start, job->end, w->model_ref);
    atomic_store(&w->load_done, 0);
    atomic_store(&w->load_total, 0);
    w->load_generation = job->generation;
    w->loading = true;
    if (pthread_create(&w->loader, NULL, loader_main, job)) {
        load_job_free(job);
        w->loading = false;
        send_ready(w, w->want_generation, false, "cannot start a loader thread", 0);
        return;
    }
    w->loader_running = true;
}

/* Returns -1 (fatal) when the slice could not be loaded. */
static int on_loaded(px_worker *w, out_msg *m) {
    pthread_join(w->loader, NULL);
    w->loader_running = false;
    w->loading = false;
    bool current_model = m->model_epoch == w->model_epoch;
    if (current_model && !w->model_dir && m->model_dir) { /* found once, kept for the next slices */
        w->model_dir = m->model_dir;
        m->model_dir = NULL;
    }
    free(m->model_dir);
    m->model_dir = NULL;
    if (m->error && current_model) {
        send_ready(w, m->generation, false, m->error, m->load_seconds);
        return px_error_set("cannot load layers [%d, %d): %s", m->start, m->end, m->error), -1;
    }
    if (m->error || !current_model || m->generation != w->want_generation || !w->want_serve ||
        m->start != w->want_start || m->end != w->want_end) {
        if (m->error) px_log_warn("a load of the previous model failed (%s); it is no longer wanted", m->error);
        px_stage_free(m->stage); /* superseded while loading */
        px_model_free(m->model);
        apply_assign(w);
        return 0;
    }
    w->model = m->model, w->stage = m->stage;
    w->stage_epoch = m->model_epoch;
    w->pipeline_depth = 0;
    w->start = m->start, w->end = m->end;
    const px_model_config *cfg = px_model_config_of(w->model);
    w->hidden = cfg->hidden, w->vocab = cfg->vocab;
    w->last_busy = 0, w->last_positions = 0;
    if (px_stage_start(w->stage)) {
        send_ready(w, m->generation, false, px_error_get(), m->load_seconds);
        return -1;
    }
    w->generation = m->generation;
    px_log_info("serving layers [%d, %d) (loaded in %.2f s)", w->start, w->end, m->load_seconds);
    send_ready(w, w->generation, true, NULL, m->load_seconds);
    return 0;
}

/* ---- peers ---- */

static void on_peers(px_worker *w, const Parallax__Peers *p) {
    px_peer *next = px_calloc(p->n_peers + 1, sizeof *next);
    int n = 0;
    for (size_t i = 0; i < p->n_peers; i++) {
        const Parallax__Peer *q = p->peers[i];
        if (!strcmp(q->id, w->id)) continue;
        px_peer *old = find_peer(w, q->id), *np = &next[n++];
        if (old && !strcmp(old->endpoint, q->endpoint) && !memcmp(old->key, q->key.data, PX_NET_KEY_BYTES)) {
            *np = *old;
            old->sock = NULL; /* moved */
            continue;
        }
        memset(np, 0, sizeof *np);
        snprintf(np->id, sizeof np->id, "%s", q->id);
        snprintf(np->endpoint, sizeof np->endpoint, "%s", q->endpoint);
        memcpy(np->key, q->key.data, PX_NET_KEY_BYTES);
        np->rtt = -1;
        if (!(np->sock = px_net_connect(w->net, np->endpoint, np->key, w->id)))
            px_log_warn("worker: peer %s: %s", np->id, px_error_get());
    }
    for (int i = 0; i < w->n_peers; i++) px_sock_close(w->peers[i].sock);
    free(w->peers);
    w->peers = next;
    w->n_peers = n;
}

static void send_pings(px_worker *w, double now) {
    for (int i = 0; i < w->n_peers; i++) {
        px_peer *p = &w->peers[i];
        if (!p->sock) continue;
        Parallax__Ping ping;
        parallax__ping__init(&ping);
        ping.nonce = ++p->ping_nonce, ping.sent = now;
        Parallax__Envelope env;
        px_net_env(&env, w->id, PARALLAX__ENVELOPE__BODY_PING, &ping);
        px_net_send(p->sock, NULL, &env, NULL, 0);
    }
}

static void send_heartbeat(px_worker *w) {
    Parallax__Heartbeat h;
    parallax__heartbeat__init(&h);
    h.generation = w->generation;
    if (w->stage) {
        px_stage_stats_t st;
        px_stage_stats(w->stage, &st);
        h.load = (uint32_t)st.requests;
        h.steps = st.steps_total;
        h.busy_seconds = st.busy_seconds;
        h.positions = st.positions_total;
        h.kv_blocks_total = (uint32_t)st.kv_blocks_total, h.kv_blocks_used = (uint32_t)st.kv_blocks_used;
        h.kv_free_tokens = (uint64_t)(st.kv_blocks_total - st.kv_blocks_used) * (uint64_t)st.block_size;
        uint64_t dp = st.positions_total - w->last_positions;
        double db = st.busy_seconds - w->last_busy;
        int layers = PX_MAX(w->end - w->start, 1);
        if (dp > 0 && db > 0) w->layer_latency = db / (double)dp / layers;
        w->last_positions = st.positions_total, w->last_busy = st.busy_seconds;
        h.layer_latency = w->layer_latency;
    }
    h.bytes_in = atomic_load(&w->bytes_in), h.bytes_out = atomic_load(&w->bytes_out);
    h.items_in = atomic_load(&w->items_in);
    h.load_total = atomic_load(&w->load_total);
    h.load_done = PX_MIN((uint64_t)atomic_load(&w->load_done), h.load_total); /* two atomics: read apart */
    h.load_generation = w->load_generation;
    Parallax__PeerRtt *rt = px_calloc((size_t)w->n_peers + 1, sizeof *rt), **rp = px_calloc((size_t)w->n_peers + 1, sizeof *rp);
    for (int i = 0; i < w->n_peers; i++) {
        if (w->peers[i].rtt < 0) continue;
        parallax__peer_rtt__init(&rt[h.n_rtts]);
        rt[h.n_rtts].peer = w->peers[i].id;
        rt[h.n_rtts].seconds = w->peers[i].rtt;
        rp[h.n_rtts] = &rt[h.n_rtts];
        h.n_rtts++;
    }
    h.rtts = rp;
    send_env(w, PARALLAX__ENVELOPE__BODY_HEARTBEAT, &h);
    free(rt);
    free(rp);
}

/* ---- messages ---- */

/* Returns -1 on a fatal condition. */
static int on_sched_msg(px_worker *w, px_msg *m) {
    Parallax__Envelope *e = m->env;
    w->last_sched_msg = px_time_now();
    switch (e->body_case) {
    case PARALLAX__ENVELOPE__BODY_JOIN_REPLY: return on_join_reply(w, e->join_reply);
    case PARALLAX__ENVELOPE__BODY_ASSIGN:
        if (e->assign->generation < w->want_generation && w->joined) break; /* stale */
        w->want_generation = e->assign->generation;
        w->want_serve = e->assign->serve;
        w->want_start = e->assign->start, w->want_end = e->assign->end;
        if (w->want_serve && (w->want_end > w->n_layers || !w->n_layers)) {
            px_log_warn("worker: assign [%d, %d) outside the model's %d layers", w->want_start, w->want_end, w->n_layers);
            break;
        }
        apply_assign(w);
        break;
    case PARALLAX__ENVELOPE__BODY_PEERS: on_peers(w, e->peers); break;
    case PARALLAX__ENVELOPE__BODY_FORWARD: px_worker_on_forward(w, e->forward, m->act, m->act_len); break;
    case PARALLAX__ENVELOPE__BODY_RELEASE: px_worker_on_release(w, e->release); break;
    case PARALLAX__ENVELOPE__BODY_PING: {
        Parallax__Pong pong;
        parallax__pong__init(&pong);
        pong.nonce = e->ping->nonce, pong.sent = e->ping->sent;
        send_env(w, PARALLAX__ENVELOPE__BODY_PONG, &pong);
        break;
    }
    case PARALLAX__ENVELOPE__BODY_ERROR:
        if (e->error->code == PARALLAX__ERROR_CODE__VERSION)
            return px_error_set("the scheduler speaks protocol version %u, this worker version %d: run the same "
                                "Parallax build on every node (%s)",
                                e->error->version, PX_NET_PROTOCOL_VERSION, e->error->message), -1;
        if (e->error->code == PARALLAX__ERROR_CODE__REFUSED && strstr(e->error->message, "join again")) {
            if (w->joined) {
                /* it re-routed whatever we held: drop it all, keep the slice loaded */
                px_log_warn("the scheduler does not know this worker any more: joining again");
                if (w->stage) {
                    px_stage_item all = {.kind = PX_STAGE_RELEASE_ALL};
                    px_stage_push(w->stage, &all);
                }
                px_routes_clear(w->routes);
                w->joined = false;
                w->want_generation = 0;
                send_join(w);
            } else if (px_time_now() - w->join_sent > JOIN_RETRY_S) send_join(w); /* one Join per retry period */
            break;
        }
        if (e->error->code == PARALLAX__ERROR_CODE__REFUSED && !w->joined)
            return px_error_set("the scheduler refused this worker: %s", e->error->message), -1;
        px_log_warn("scheduler: %s", e->error->message);
        break;
    default: px_log_debug("worker: unexpected %s from the scheduler", px_net_body_name(e)); break;
    }
    return 0;
}

static void on_data_msg(px_worker *w, px_msg *m) {
    Parallax__Envelope *e = m->env;
    switch (e->body_case) {
    case PARALLAX__ENVELOPE__BODY_FORWARD: px_worker_on_forward(w, e->forward, m->act, m->act_len); break;
    case PARALLAX__ENVELOPE__BODY_RELEASE: px_worker_on_release(w, e->release); break;
    case PARALLAX__ENVELOPE__BODY_PING: {
        Parallax__Pong pong;
        parallax__pong__init(&pong);
        pong.nonce = e->ping->nonce, pong.sent = e->ping->sent;
        Parallax__Envelope env;
        px_net_env(&env, w->id, PARALLAX__ENVELOPE__BODY_PONG, &pong);
        px_net_send(w->data, m->peer, &env, NULL, 0);
        break;
    }
    case PARALLAX__ENVELOPE__BODY_ERROR: px_log_warn("peer %s: %s", m->peer, e->error->message); break;
    default: px_log_debug("worker: unexpected %s from %s", px_net_body_name(e), m->peer); break;
    }
}

static void on_peer_msg(px_peer *p, px_msg *m) {
    Parallax__Envelope *e = m->env;
    if (e->body_case == PARALLAX__ENVELOPE__BODY_PONG && e->pong->nonce == p->ping_nonce) {
        double rtt = px_time_now() - e->pong->sent;
        p->rtt = p->rtt < 0 ? rtt : 0.7 * p->rtt + 0.3 * rtt;
    } else if (e->body_case == PARALLAX__ENVELOPE__BODY_ERROR) px_log_warn("peer %s: %s", p->id, e->error->message);
}

/* Sends everything in the outbox. Returns -1 on a fatal load failure. */
static int drain_outbox(px_worker *w) {
    uint64_t v;
    if (read(w->wake_fd, &v, sizeof v) < 0) {}
    pthread_mutex_lock(&w->out_mu);
    out_msg *m = w->out_head;
    w->out_head = w->out_tail = NULL;
    pthread_mutex_unlock(&w->out_mu);
    int rc = 0;
    while (m) {
        out_msg *next = m->next;
        if (m->kind == OUT_LOADED) {
            if (on_loaded(w, m) && !rc) rc = -1;
        } else if (!strcmp(m->to, PX_WORKER_SCHED)) {
            if (px_net_send_raw(w->sched, NULL, m->hdr, m->hdr_len, m->act, m->act_len))
                px_log_debug("worker: %s", px_error_get());
        } else {
            px_peer *p = find_peer(w, m->to);
            if (!p || !p->sock || px_net_send_raw(p->sock, NULL, m->hdr, m->hdr_len, m->act, m->act_len)) {
                /* the next stage is unknown or unreachable: the request cannot go on here */
                Parallax__Envelope *e = parallax__envelope__unpack(NULL, m->hdr_len, m->hdr);
                if (e && e->body_case == PARALLAX__ENVELOPE__BODY_FORWARD)
                    px_worker_fail_request(w, e->forward->req, e->forward->epoch, "%s cannot reach %s", w->id, m->to);
                if (e) parallax__envelope__free_unpacked(e, NULL);
            }
        }
        out_free(m);
        m = next;
    }
    return rc;
}

/* ---- setup and loop ---- */

static int find_scheduler(px_worker *w) {
    const char *s = w->opt.scheduler;
    if (s && *s && strcmp(s, "auto")) return normalise_endpoint(s, w->sched_endpoint, sizeof w->sched_endpoint);
    px_log_info("looking for the scheduler on the LAN (UDP beacon port %d)",
                w->opt.beacon_port > 0 ? w->opt.beacon_port : PX_BEACON_PORT);
    double deadline = w->opt.join_timeout > 0 ? px_time_now() + w->opt.join_timeout : 0;
    while (!atomic_load(w->stop)) {
        if (!px_beacon_find(w->opt.beacon_port, w->keys.cluster_public, 2000, w->sched_endpoint,
                            sizeof w->sched_endpoint, NULL)) {
            px_log_info("found the scheduler at %s", w->sched_endpoint);
            return 0;
        }
        if (deadline && px_time_now() > deadline) return -1;
    }
    return px_error_set("stopped"), -1;
}

static int setup(px_worker *w) {
    if (!w->opt.token || !*w->opt.token)
        return px_error_set("a join token is needed (--token, or $PARALLAX_JOIN_TOKEN): parallax run prints it"), -1;
    if (px_net_token_parse(w->opt.token, &w->keys)) return -1;
    px_worker_probe(w->opt.threads, !w->opt.skip_probe, &w->hw);
    if (w->opt.node_id) {
        if (!px_net_id_valid(w->opt.node_id))
            return px_error_set("--node-id '%s': use 1-63 characters of A-Z a-z 0-9 . _ : @ -", w->opt.node_id), -1;
        snprintf(w->id, sizeof w->id, "%s", w->opt.node_id);
    } else default_id(w->hw.hostname, w->id);
    if (find_scheduler(w)) return -1;
    if (!(w->net = px_net_new(&w->keys))) return -1;
    px_net_set_self(w->net, w->id);
    px_net_keypair(w->data_pub, w->data_sec);
    char bind_ep[64], host[256];
    snprintf(bind_ep, sizeof bind_ep, "tcp://*:%d", w->opt.data_port > 0 ? w->opt.data_port : 0);
    if (!(w->data = px_net_bind(w->net, bind_ep, w->data_pub, w->data_sec))) return -1;
    const char *adv = w->opt.advertise, *colon = adv ? strrchr(adv, ':') : NULL;
    bool adv_port = colon && colon[1] && strspn(colon + 1, "0123456789") == strlen(colon + 1) &&
                    (adv[0] == '[' || strchr(adv, ':') == colon); /* HOST:PORT or [V6]:PORT, not a bare IPv6 */
    if (adv_port) snprintf(w->data_endpoint, sizeof w->data_endpoint, "tcp://%s", adv); /* e.g. a port forward */
    else {
        if (adv) snprintf(host, sizeof host, strchr(adv, ':') && adv[0] != '[' ? "[%s]" : "%s", adv);
        else if (local_address_towards(w->sched_endpoint, host, sizeof host)) return -1;
        snprintf(w->data_endpoint, sizeof w->data_endpoint, "tcp://%s:%d", host, px_sock_port(w->data));
    }
    if (!(w->sched = px_net_connect(w->net, w->sched_endpoint, w->keys.cluster_public, w->id))) return -1;
    w->routes = px_routes_new();
    pthread_mutex_init(&w->out_mu, NULL);
    w->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->wake_fd < 0) return px_error_set("eventfd: %s", strerror(errno)), -1;
    px_log_info("worker %s: %d cores, %.1f GB, %.1f GB/s, %.1f GFLOP/s; data socket %s", w->id, w->hw.cores,
                (double)(w->opt.memory_bytes ? w->opt.memory_bytes : w->hw.memory_bytes) / 1e9, w->hw.bandwidth / 1e9,
                w->hw.flops / 1e9, w->data_endpoint);
    send_join(w);
    return 0;
}

static int check_handshake(px_worker *w, double started) {
    px_sock_events ev;
    px_sock_poll_events(w->sched, &ev);
    if (w->joined) return 0;
    if (ev.auth_failed)
        return px_error_set("the scheduler at %s refused this worker's credentials: the join token's secret is wrong "
                            "(copy the token parallax run printed)",
                            w->sched_endpoint), -1;
    if (ev.protocol_failed >= 3 && !ev.handshakes_ok)
        return px_error_set("the CURVE handshake with %s failed %d times: the join token's cluster key does not match "
                            "this scheduler",
                            w->sched_endpoint, ev.protocol_failed), -1;
    if (w->opt.join_timeout > 0 && px_time_now() - started > w->opt.join_timeout)
        return px_error_set("no answer from a scheduler at %s within %.0f s", w->sched_endpoint, w->opt.join_timeout), -1;
    return 0;
}

static int loop(px_worker *w) {
    double started = px_time_now();
    int rc = 0;
    while (!rc && !atomic_load(w->stop)) {
        int np = 3 + w->n_peers;
        zmq_pollitem_t *items = px_calloc((size_t)np, sizeof *items);
        items[0] = (zmq_pollitem_t){.socket = px_sock_handle(w->sched), .events = ZMQ_POLLIN};
        items[1] = (zmq_pollitem_t){.socket = px_sock_handle(w->data), .events = ZMQ_POLLIN};
        items[2] = (zmq_pollitem_t){.fd = w->wake_fd, .events = ZMQ_POLLIN};
        np = 3;
        for (int i = 0; i < w->n_peers; i++)
            if (w->peers[i].sock)
                items[np++] = (zmq_pollitem_t){.socket = px_sock_handle(w->peers[i].sock), .events = ZMQ_POLLIN};
        int n = zmq_poll(items, np, 50);
        if (n < 0 && zmq_errno() != EINTR) {
            free(items);
            return px_error_set("poll: %s", zmq_strerror(zmq_errno())), -1;
        }
        px_msg m;
        for (int k = 0; k < 64 && px_net_recv(w->sched, &m, 0) != 0; k++) {
            if (!m.env) { /* refused (logged by the peer via Error) */
                px_log_warn("worker: %s", px_error_get());
                continue;
            }
            if (on_sched_msg(w, &m)) rc = -1;
            px_msg_free(&m);
            if (rc) break;
        }
        for (int k = 0; !rc && k < 256; k++) {
            int r = px_net_recv(w->data, &m, 0);
            if (r == 0) break;
            if (r < 0) {
                px_log_warn("worker: %s", px_error_get());
                continue;
            }
            on_data_msg(w, &m);
            px_msg_free(&m);
        }
        for (int i = 0; !rc && i < w->n_peers; i++) {
            px_peer *p = &w->peers[i];
            while (p->sock && px_net_recv(p->sock, &m, 0) > 0) {
                on_peer_msg(p, &m);
                px_msg_free(&m);
            }
        }
        free(items);
        if (!rc && drain_outbox(w)) rc = -1;
        double now = px_time_now();
        if (!rc && check_handshake(w, started)) rc = -1;
        if (!rc && !w->joined && now - w->join_sent > JOIN_RETRY_S) send_join(w);
        if (!rc && w->joined && now >= w->next_heartbeat) {
            send_heartbeat(w);
            w->next_heartbeat = now + w->heartbeat_ms / 1000.0;
        }
        if (!rc && now >= w->next_ping) {
            send_pings(w, now);
            w->next_ping = now + PING_EVERY_S;
        }
    }
    return rc;
}

static void teardown(px_worker *w) {
    if (w->sched && w->joined) {
        Parallax__Leave lv;
        parallax__leave__init(&lv);
        lv.reason = "shutting down";
        send_env(w, PARALLAX__ENVELOPE__BODY_LEAVE, &lv);
        px_sock_set_linger(w->sched, 500);
    }
    if (w->loader_running) pthread_join(w->loader, NULL);
    if (w->wake_fd > 0) {
        /* a finished load may sit in the outbox */
        for (out_msg *m = w->out_head, *next; m; m = next) {
            next = m->next;
            if (m->kind == OUT_LOADED && m->stage) {
                px_stage_free(m->stage);
                px_model_free(m->model);
            }
            out_free(m);
        }
        w->out_head = w->out_tail = NULL;
    }
    drop_stage(w);
    for (int i = 0; i < w->n_peers; i++) px_sock_close(w->peers[i].sock);
    free(w->peers);
    px_sock_close(w->data);
    px_sock_close(w->sched);
    px_net_free(w->net);
    px_routes_free(w->routes);
    if (w->wake_fd > 0) {
        close(w->wake_fd);
        pthread_mutex_destroy(&w->out_mu);
    }
    free(w->hbuf);
    free(w->model_ref);
    free(w->revision);
    free(w->model_dir);
    free(w->sched_model);
    free(w->first_model);
}

int px_worker_run(const px_worker_options *o, atomic_bool *stop) {
    px_worker *w = px_calloc(1, sizeof *w);
    w->opt = *o;
    w->stop = stop;
    w->heartbeat_ms = 500;
    int rc = setup(w);
    if (!rc) rc = loop(w);
    char err[1024];
    snprintf(err, sizeof err, "%s", px_error_get());
    teardown(w);
    free(w);
    if (rc) px_error_set("%s", err);
    return rc;
}
