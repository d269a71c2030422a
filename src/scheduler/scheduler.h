/* scheduler.h - the live scheduler of a cluster (`parallax run`): membership
 * over the network, the two-phase scheduler of src/cluster/ driving real
 * slices, and a generation backend for the HTTP server whose requests run
 * through the workers' pipeline.
 *
 *   px_sched_create()   reads the model's config, loads (or creates) the
 *                       cluster keys in the state dir, binds the CURVE
 *                       cluster port, starts the scheduler thread and the
 *                       LAN beacon.
 *   px_sched_backend()  submit/abort/stats (the engine's contract) plus
 *                       /cluster/status and per-node /metrics for
 *                       px_server_create_backend().
 *
 * Membership: a Join becomes px_cluster_join(); the slice changes it returns
 * become Assign messages; a worker serves once it answered Ready for its
 * newest Assign. Heartbeats feed load, latency and RTTs; silence longer than
 * dead_after (or a Leave, or a connection the transport reports gone) is a
 * leave, whose slice changes are applied the same way.
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
    const char *model_dir;     /* local model directory (config.json) */
    const char *model_ref;     /* what workers load: a path or a hub repo id (default model_dir) */
    const char *revision;      /* hub revision for a repo id (NULL: main) */
    const char *model_name;    /* served name (status) */
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

px_sched *px_sched_create(const px_sched_options *o);
void px_sched_free(px_sched *s);    /* stops the thread; requests in flight get ABORT */

int px_sched_port(const px_sched *s);
const char *px_sched_token(const px_sched *s);    /* the join token */
int px_sched_context_length(const px_sched *s);
int px_sched_n_layers(const px_sched *s);
/* Joined workers >= min_workers and a whole chain of ready slices exists. */
bool px_sched_available(px_sched *s);
/* Blocks until available or timeout (seconds; <= 0 forever) or *stop. */
bool px_sched_wait_available(px_sched *s, double timeout, volatile bool *stop);
px_server_backend px_sched_backend(px_sched *s);
/* GET /cluster/status body (a new JSON string). */
char *px_sched_status_json(px_sched *s);

#endif
