/* sched_internal.h - how the parts of the scheduler meet:
 *
 *   sched.c     create/free, the scheduler thread's loop, membership (Join,
 *               Ready, Heartbeat, Leave, timeouts -> px_cluster -> Assign),
 *               Peers broadcasts
 *   requests.c  the backend (submit/abort/stats), the request table,
 *               routing, Tokens, failover
 *   status.c    /cluster/status JSON and the per-node /metrics text
 *   setup.c     choosing the model (px_sched_setup), the candidates Setup
 *               lists, and the /cluster/models, /cluster/setup and
 *               /cluster/join routes with their access rules
 *
 * Locking: `mu` guards all state below. The scheduler thread holds it while
 * it handles a batch of messages and commands; HTTP threads take it for
 * status and stats. submit/abort only queue a command (cmd_mu) and wake the
 * thread. Events for the server are collected under `mu` and delivered
 * after it is released, so a server callback never runs under our lock. */
#ifndef PX_SCHED_INTERNAL_H
#define PX_SCHED_INTERNAL_H

#include "cluster.h"
#include "engine.h"
#include "model.h"
#include "net.h"
#include "scheduler.h"

#include <pthread.h>
#include <stdatomic.h>

#define PX_SCHED_ID "scheduler"

/* ---- a small u64 -> pointer map (open addressing, tombstones) ---- */

typedef struct {
    uint64_t *keys; /* 0: empty, UINT64_MAX: deleted */
    void **vals;
    int cap, count, used;
} px_u64map;

void px_u64map_put(px_u64map *m, uint64_t k, void *v);
void *px_u64map_get(const px_u64map *m, uint64_t k);
void px_u64map_del(px_u64map *m, uint64_t k);
void px_u64map_free(px_u64map *m);

/* ---- workers (indexed by px_cluster slot) ---- */

typedef struct {
    bool used;
    char id[PX_NET_ID_MAX];
    char hostname[64], region[64];
    char endpoint[256];
    uint8_t key[PX_NET_KEY_BYTES];
    int cores;
    uint64_t memory_bytes;
    double bandwidth, flops;
    bool manual;                 /* the slice below was the worker's own choice */
    int manual_start, manual_end; /* the worker's --start-layer/--end-layer (-1: none) */
    int start, end;              /* assigned slice; -1 when standing by */
    uint32_t generation;         /* of the newest Assign */
    bool ready;                  /* answered Ready for `generation` with a loaded slice */
    double joined_at, last_seen, ready_at;
    /* from heartbeats */
    int load;
    double layer_latency, busy_seconds;
    uint64_t positions, bytes_in, bytes_out, items_in, steps;
    int kv_blocks_total, kv_blocks_used;
    uint64_t kv_tokens;
    uint64_t load_done, load_total; /* loading progress of its slice (heartbeats) */
    double first_hb_at, first_hb_busy; /* for the busy ratio */
    int inflight;                /* attempts routed through it */
    int64_t kv_reserved;         /* KV positions those attempts may grow to (see attempt_kv_need) */
} sworker;

/* ---- requests ---- */

typedef enum { RQ_PENDING, RQ_RUNNING } rq_state;

typedef struct sreq {
    uint64_t id;                 /* the backend's request id */
    uint64_t attempt;            /* current attempt id on the wire (0: none) */
    uint32_t n_attempts;
    rq_state state;
    int32_t *tokens;             /* prompt, then generated */
    int n_prompt, n_gen, cap;
    px_sampling s;               /* arrays below owned */
    int32_t *bias_ids, *stop_ids;
    float *bias_values;
    px_token_callback cb;
    void *user;
    int route[PX_NET_MAX_ROUTE]; /* slots */
    int n_route;
    int64_t kv_need;             /* KV positions reserved on each stage of the current attempt */
    double t_submit, t_pending;
    struct sreq *next;           /* pending list / command queue */
} sreq;

typedef enum { CMD_SUBMIT, CMD_ABORT } cmd_kind;

typedef struct cmd {
    struct cmd *next;
    cmd_kind kind;
    uint64_t id;
    sreq *req;
} cmd;

typedef struct {
    px_token_callback cb;
    void *user;
    px_token_event ev;
    char error[256];
} pending_cb;

/* A model being chosen (setup.c): everything is loaded and checked before
 * the scheduler switches to it. */
typedef struct {
    char *dir;                   /* local directory: config.json, tokenizer */
    char *ref;                   /* what workers load: a path or a hub repo id */
    char *revision;              /* hub revision of a repo id (NULL: main) */
    char *name;                  /* the id clients use */
    px_model_config cfg;
    px_model_cost cost;
    int context_length;
    uint64_t bytes;              /* weights in the files (or estimated from config.json) */
    bool bytes_estimated;
    px_cluster *cluster;         /* membership for it (empty) */
} sched_model;

struct px_sched {
    px_sched_options opt;
    /* the model: has_model false in the "setup" state (cfg zeroed, the
     * cluster a stand-in in which every worker stands by) */
    bool has_model;
    char *model_dir, *model_ref, *revision, *model_name, *state_dir, *host;
    px_model_config cfg;
    px_model_cost cost;
    int context_length;
    uint64_t model_bytes;
    bool model_bytes_estimated;
    char *served_name, *join_address, **model_dirs;
    int n_model_dirs;
    px_server *server;           /* attached: its model follows ours */
    pthread_mutex_t setup_mu;    /* one px_sched_setup at a time */
    px_cluster_params cparams;
    px_net_keys keys;
    char *token;
    px_net *net;
    px_sock *sock;
    px_beacon *beacon;
    pthread_t thread;
    atomic_bool stop;
    int wake_fd;
    double started;

    pthread_mutex_t mu;          /* everything below */
    pthread_cond_t changed;      /* availability may have changed */
    px_cluster *cluster;
    sworker *workers;
    int cap_workers;
    double *rtt;                 /* [cap_workers x cap_workers] seconds, NAN unknown */
    px_u64map reqs, attempts;
    sreq *pending;
    uint64_t next_attempt;
    int running, waiting;
    uint64_t finished, reroutes, failed, tokens_out;
    bool was_available;
    pending_cb *cbs;
    int n_cbs, cap_cbs;
#define PX_SCHED_UNKNOWN_SLOTS 64
    double unknown_reply[PX_SCHED_UNKNOWN_SLOTS]; /* when "join again" went to a node id (hashed) */

    pthread_mutex_t cmd_mu;
    cmd *cmd_head, *cmd_tail;
    atomic_uint_fast64_t next_id;
};

/* sched.c */
bool px_sched_has_chain_locked(px_sched *s);
/* Switches to m (under mu, no request in flight): takes m's strings and
 * cluster, rebuilds the membership over every worker (phase 1), sends each
 * a JoinReply naming the model and its Assign. */
void px_sched_use_model_locked(px_sched *s, sched_model *m);
void px_sched_remove_worker(px_sched *s, int slot, const char *why);
int px_sched_send(px_sched *s, int slot, Parallax__Envelope__BodyCase kind, void *body);
bool px_sched_available_locked(px_sched *s);

/* requests.c */
void px_sched_handle_cmds(px_sched *s);
void px_sched_on_token(px_sched *s, int slot, const Parallax__Token *t);
/* Re-routes every request whose route passes through slot. */
void px_sched_failover_slot(px_sched *s, int slot, const char *why);
void px_sched_dispatch(px_sched *s);
void px_sched_expire(px_sched *s, double now);
void px_sched_abort_all(px_sched *s, const char *why);
void px_sched_deliver(px_sched *s); /* call without mu held */
void px_sched_stats(void *ctx, px_engine_stats_t *out);
uint64_t px_sched_submit(void *ctx, const int32_t *prompt, int n_prompt, const px_sampling *sp, px_token_callback cb,
                         void *user);
void px_sched_abort(void *ctx, uint64_t id);

/* status.c */
char *px_sched_metrics_text(void *ctx);

/* setup.c */
int px_sched_route(void *ctx, const px_server_call *call, char **json);

#endif
