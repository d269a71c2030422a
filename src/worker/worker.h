/* worker.h - the worker process of a cluster (`parallax join`): it joins a
 * scheduler, loads the layer slice the scheduler assigns, and runs it as a
 * pipeline stage (src/engine/stage.h) over the network (src/net/net.h).
 *
 *   join       probe the hardware (cores, memory, measured bandwidth and
 *              matmul speed), find the scheduler (-s HOST:PORT, or the LAN
 *              beacon), connect over CURVE with the join token, bind a data
 *              socket for peers and send Join.
 *   assign     load only the tensors of [start, end) of the model (found at
 *              the path the scheduler names, in the HF cache, or downloaded),
 *              start a stage on it, answer Ready. A later Assign swaps the
 *              slice without restarting the process; a later JoinReply that
 *              names another model (the scheduler's Setup switched it) makes
 *              the next Assign load that model. Heartbeats report the bytes
 *              loaded so far while a slice loads.
 *   data path  Forward items go into the stage; its outputs go to the next
 *              stage of the request's route (hidden states in the wire
 *              dtype), and from the last stage the sampled token goes to the
 *              scheduler and back to the first stage for the next step.
 *   liveness   heartbeats with load, measured per-layer latency, traffic
 *              counters and the RTTs it measures to its peers (Ping/Pong).
 *              A scheduler that forgot us (restart, timeout) is re-joined.
 *
 * docs/cluster-live.md describes the protocol between the processes. */
#ifndef PX_WORKER_H
#define PX_WORKER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct {
    const char *scheduler;    /* "HOST:PORT" or "tcp://HOST:PORT"; NULL or "auto": LAN beacon */
    const char *token;        /* join token (px1_...) */
    const char *node_id;      /* NULL: HOSTNAME-XXXX */
    const char *model;        /* NULL: what the scheduler names; else a local directory or repo id */
    const char *advertise;    /* host peers reach us at; NULL: our address towards the scheduler */
    const char *region;       /* NULL: "" */
    int data_port;            /* 0: any free port */
    int beacon_port;          /* 0: PX_BEACON_PORT */
    int threads;              /* compute threads; <= 0: all CPUs */
    int max_batch;            /* requests per step; 0: the engine's default */
    int64_t kv_cache_bytes;   /* 0: kv_fraction of free memory */
    double kv_fraction;       /* 0: the engine's default */
    uint64_t memory_bytes;    /* reported memory; 0: MemAvailable */
    int manual_start, manual_end; /* a fixed slice; -1 when none */
    bool skip_probe;          /* report no measured speed (tests: deterministic, fast start) */
    double join_timeout;      /* seconds to wait for the first JoinReply; <= 0: forever */
    int load_delay_ms;        /* tests: sleep this long after each tensor loaded, so loading
                                 progress can be watched (cmd_join: $PARALLAX_TEST_LOAD_DELAY_MS) */
} px_worker_options;

void px_worker_options_defaults(px_worker_options *o);

/* Runs until *stop becomes true (then leaves the cluster cleanly) or a fatal
 * error (refused credentials, protocol version mismatch, a model that cannot
 * be loaded). Returns 0, or -1 with px_error_get(). */
int px_worker_run(const px_worker_options *o, atomic_bool *stop);

/* Hardware of this machine: cores, memory available, measured memory
 * bandwidth (bytes/s) and f32 matmul speed (FLOP/s) with `threads` threads. */
typedef struct {
    int cores;
    uint64_t memory_bytes;
    double bandwidth, flops;
    char hostname[64];
} px_worker_hw;
void px_worker_probe(int threads, bool measure, px_worker_hw *out);

#endif
