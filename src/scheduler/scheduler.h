/* scheduler.h - the live scheduler of a cluster (`parallax run`): membership
 * over the network, the two-phase scheduler of src/cluster/ driving real
 * slices, and a generation backend for the HTTP server whose requests run
 * through the workers' pipeline.
 *
 *   px_sched_create()   loads (or creates) the cluster keys in the state dir,
 *                       binds the CURVE cluster port, starts the scheduler
 *                       thread and the LAN beacon. No model yet: state
 *                       "setup" (workers that join stand by).
 *   px_sched_setup()    chooses the model (what `-m` and the web UI's Setup,
 *                       POST /cluster/setup, do): its config, tokenizer and
 *                       chat template are loaded here, the server attached
 *                       with px_sched_attach_server() speaks for it, and
 *                       every worker is told to load its slice of it.
 *   px_sched_backend()  submit/abort/stats (the engine's contract) plus
 *                       /cluster/status, per-node /metrics and the Setup /
 *                       Join routes (/cluster/models, /cluster/setup,
 *                       /cluster/join) for px_server_create_backend().
 *
 * Membership: a Join becomes px_cluster_join(); the slice changes it returns
 * become Assign messages; a worker serves once it answered Ready for its
 * newest Assign. Heartbeats feed load, latency, RTTs and loading progress;
 * silence longer than dead_after (or a Leave, or a connection the transport
 * reports gone) is a leave, whose slice changes are applied the same way.
 * A new model rebuilds the membership over the same workers (phase 1 over
 * all of them) and each gets a JoinReply naming the model, then its Assign.
 *
 * Requests: the scheduler keeps every request's prompt and generated tokens.
 * A request is routed (phase 2 over ready workers) under a fresh attempt id;
 * tokens are accepted only from the current attempt and only at the next
 * position, so nothing is duplicated or lost. When a worker on its route
 * dies or changes slice, the attempt is released and the request re-routed
 * and re-prefilled from prompt + generated tokens: the client's stream
 * pauses, it does not fail. docs/cluster-live.md has the details. */
#ifndef PX_SCHEDULER_H
#define PX_SCHEDULER_H

#include "server.h"
#include <stdbool.h>
#include <stdint.h>

typedef struct {
    const char *served_name;   /* the id clients use for any model; NULL: the model's (repo id or directory name) */
    const char *revision;      /* hub revision of a repo id given to px_sched_setup (NULL: main) */
    const char *const *model_dirs; /* --model-dir: Setup offers these directories and the models one level down */
    int n_model_dirs;
    const char *join_address;  /* host workers use to reach the cluster port, for the join command (NULL: this host's name) */
    const char *host;          /* address of the cluster port (default "0.0.0.0") */
    int port;                  /* cluster port (default 7000; -1: any free port) */
    const char *state_dir;     /* NULL: px_net_default_state_dir() */
    int wire_dtype;            /* Parallax__Dtype of activations between stages (default BF16) */
    int weight_dtype;          /* px_dtype for the workers' weights; -1 as stored */
    int heartbeat_ms;          /* default 500 */
    double dead_after;         /* seconds of silence before a worker counts as dead (default 3) */
    bool beacon;               /* publish the LAN beacon (default off here; the CLI turns it on) */
    int beacon_port;           /* 0: PX_BEACON_PORT */
    int min_workers;           /* workers that must have joined before the cluster counts as available */
    int64_t worker_kv_bytes;   /* KV cache per worker; 0: the worker's default */
    int context_length;        /* 0: the model's max_position_embeddings */
    double route_timeout;      /* seconds a request may wait for a pipeline (default 300) */
    int max_retries;           /* re-routes of one request before it fails (default 8) */
} px_sched_options;

typedef struct px_sched px_sched;

#define PX_SCHED_MAX_NODES 64 /* the most nodes Setup may ask to wait for */

px_sched *px_sched_create(const px_sched_options *o);
void px_sched_free(px_sched *s);    /* stops the thread; requests in flight get ABORT */

/* The server whose model follows the scheduler's (px_server_set_model);
 * attach it before it serves, free it before the scheduler. */
void px_sched_attach_server(px_sched *s, px_server *srv);

/* Chooses the model: `model` is a directory with config.json (e.g. the path
 * of a model px_sched_models_json lists) or a Hugging Face repo id (configs
 * + tokenizer fetched here or found in the cache; workers fetch the weights). Loads
 * its config, tokenizer and chat template, makes it the attached server's
 * model, waits for `nodes` workers (1..PX_SCHED_MAX_NODES; 0 keeps the
 * number) and assigns every worker a slice of it. The same model again
 * only changes the node count. A different model is taken only while no
 * request is in flight. Returns 0, or an HTTP status with px_error_get():
 * 400 (bad nodes, a directory that is no usable model), 404 (no such
 * model), 409 (requests in flight). */
int px_sched_setup(px_sched *s, const char *model, int nodes);

/* GET /cluster/models: {"object": "list", "data": [candidate...]} (new string). */
char *px_sched_models_json(px_sched *s);

int px_sched_port(const px_sched *s);
const char *px_sched_token(const px_sched *s);    /* the join token */
/* "parallax join -s ADDRESS:PORT --token TOKEN" (new string). */
char *px_sched_join_command(const px_sched *s);
bool px_sched_has_model(px_sched *s);
int px_sched_context_length(px_sched *s);  /* 0 without a model */
int px_sched_n_layers(px_sched *s);        /* 0 without a model */
/* The served model's name and where it came from (new strings; NULL without a model). */
char *px_sched_model_name(px_sched *s);
char *px_sched_model_dir(px_sched *s);
/* Joined workers >= min_workers and a whole chain of ready slices exists. */
bool px_sched_available(px_sched *s);
/* Blocks until available or timeout (seconds; <= 0 forever) or *stop. */
bool px_sched_wait_available(px_sched *s, double timeout, volatile bool *stop);
px_server_backend px_sched_backend(px_sched *s);
/* GET /cluster/status body (a new JSON string). */
char *px_sched_status_json(px_sched *s);

#endif
