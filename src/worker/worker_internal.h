/* worker_internal.h - how the parts of the worker meet:
 *
 *   worker.c   the network thread: joining, control messages (Assign, Peers,
 *              Release, Error), heartbeats, pings, the outbox, slice loading
 *   relay.c    the data path: a received Forward -> px_stage_push(); the
 *              stage's events (executor thread) -> packed messages in the
 *              outbox, or straight back into the stage
 *   routes.c   request id -> its route and our hop in it (both threads)
 *   hw.c       the hardware probe
 *
 * Threads: the network thread owns every socket; the stage's executor
 * thread only packs messages and queues them in the outbox (mutex + eventfd
 * wake-up); a loader thread loads a slice (from copies of the model settings
 * it was given, so a JoinReply may change them meanwhile) and hands the new
 * stage over through the outbox too; it publishes its progress in two atomics
 * that heartbeats read. The stage pointer changes only on the network
 * thread, while no executor runs (px_stage_free stops it first). */
#ifndef PX_WORKER_INTERNAL_H
#define PX_WORKER_INTERNAL_H

#include "model.h"
#include "net.h"
#include "stage.h"
#include "tensor.h"
#include "worker.h"

#include <pthread.h>

#define PX_WORKER_SCHED "scheduler" /* the scheduler's node id */
#define PX_ROUTES_FIRST (-1000)      /* px_routes_peer(): the route's first stage */

/* ---- routes.c ---- */

typedef struct px_routes px_routes;
px_routes *px_routes_new(void);
void px_routes_free(px_routes *r);
/* Records (or refreshes) the route of request req and our hop in it. */
void px_routes_put(px_routes *r, uint64_t req, uint32_t epoch, char *const *route, int n_route, int hop);
/* Copies the node id at hop + delta of req's route into out; false when
 * unknown (or past the end). *epoch gets the attempt number. */
bool px_routes_peer(px_routes *r, uint64_t req, int delta, char out[PX_NET_ID_MAX], uint32_t *epoch);
/* The whole route (strings copied into a new array; free with px_routes_list_free). */
int px_routes_get(px_routes *r, uint64_t req, char ***route, int *hop, uint32_t *epoch);
void px_routes_list_free(char **route, int n);
void px_routes_drop(px_routes *r, uint64_t req);
void px_routes_clear(px_routes *r);
int px_routes_count(px_routes *r);

/* ---- the outbox (worker.c) ---- */

typedef enum { OUT_SEND, OUT_LOADED } out_kind;

typedef struct out_msg {
    struct out_msg *next;
    out_kind kind;
    char to[PX_NET_ID_MAX];   /* PX_WORKER_SCHED or a peer id */
    uint8_t *hdr, *act;
    size_t hdr_len, act_len;
    /* OUT_LOADED */
    px_model *model;
    px_stage *stage;
    uint32_t generation;
    int start, end;
    double load_seconds;
    char *error;
    char *model_dir;             /* where the model was found (the loader resolved it) */
    uint32_t model_epoch;        /* of the model it loaded */
} out_msg;

/* ---- the worker ---- */

typedef struct {
    char id[PX_NET_ID_MAX];
    char endpoint[256];
    uint8_t key[PX_NET_KEY_BYTES];
    px_sock *sock;
    double rtt;            /* seconds; < 0 unknown */
    double ping_sent;
    uint64_t ping_nonce;
} px_peer;

typedef struct px_worker {
    px_worker_options opt;
    char id[PX_NET_ID_MAX];
    atomic_bool *stop;
    px_worker_hw hw;
    px_net_keys keys;
    px_net *net;
    px_sock *sched, *data;
    char sched_endpoint[256], data_endpoint[300];
    uint8_t data_pub[PX_NET_KEY_BYTES], data_sec[PX_NET_KEY_BYTES];
    /* from JoinReply */
    bool joined;
    char *model_ref, *revision, *model_dir; /* model_dir: NULL until a load resolved it */
    char *sched_model, *first_model;        /* the scheduler's model argument; the first non-empty one */
    uint32_t model_epoch;                   /* bumped whenever the scheduler names another model */
    int n_layers, wire_dtype, weight_dtype, heartbeat_ms;
    uint64_t kv_cache_bytes;
    /* the slice */
    px_model *model;
    px_stage *stage;            /* NULL while not serving */
    int start, end, hidden, vocab;
    int pipeline_depth;         /* set on the first stage: stages of the routes it heads */
    uint32_t generation;        /* of the slice held (or being loaded) */
    uint32_t stage_epoch;       /* model_epoch of the model the stage runs */
    atomic_uint_fast64_t load_done, load_total; /* progress of the current load (loader thread writes) */
    uint32_t load_generation;   /* the Assign generation of the current (or last) load */
    bool loading;
    pthread_t loader;
    bool loader_running;
    uint32_t want_generation;   /* newest Assign */
    int want_start, want_end;
    bool want_serve;
    /* peers */
    px_peer *peers;
    int n_peers;
    /* data path */
    px_routes *routes;
    float *hbuf;                /* f32 rows of a received Forward */
    size_t hbuf_cap;
    /* outbox */
    pthread_mutex_t out_mu;
    out_msg *out_head, *out_tail;
    int wake_fd;                /* eventfd */
    /* counters (atomic: the executor adds too) */
    atomic_uint_fast64_t bytes_in, bytes_out, items_in;
    double last_busy;
    uint64_t last_positions;
    double layer_latency;
    /* timers */
    double next_heartbeat, next_ping, join_sent, last_sched_msg;
} px_worker;

void px_worker_outbox_push(px_worker *w, out_msg *m);
/* Packs env into a new outbox message addressed to `to` (activations copied
 * from act unless act_take is set: then act is taken over). */
void px_worker_queue(px_worker *w, const char *to, Parallax__Envelope *env, void *act, size_t act_len, bool act_take);

/* ---- relay.c ---- */

/* The stage callback (executor thread). */
void px_worker_on_stage_event(void *user, const px_stage_event *ev);
/* A Forward arrived (network thread). */
void px_worker_on_forward(px_worker *w, const Parallax__Forward *f, const void *act, size_t act_len);
/* A Release arrived (network thread). */
void px_worker_on_release(px_worker *w, const Parallax__Release *r);
/* Tells the scheduler that request req failed here. */
void px_worker_fail_request(px_worker *w, uint64_t req, uint32_t epoch, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
