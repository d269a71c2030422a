/* stage_internal.h - the private state of a pipeline stage, shared by
 * stage.c (API, executor loop, event delivery), stage_push.c (validating and
 * queueing items) and stage_step.c (one continuous-batching step).
 *
 * A request (stage_req) holds every token id received (tokens[0, n_recv)),
 * how many positions have keys/values in the KV cache (n_computed), its
 * block table, and on stages after the first the hidden-state rows received
 * but not yet computed, as a FIFO of nodes (one per pushed item; a step takes
 * rows from the head, possibly part of a node).
 *
 * Locking: everything here is guarded by `mu`, except what the executor uses
 * while the forward pass runs without the lock: the step arrays, the spans
 * and consumed nodes it copies hidden rows from, and (last stage) the
 * snapshot of each sampled request's token array and its generator. Pushes
 * only append (tokens, blocks, nodes) and never free or move what a step
 * reads: a token array that must grow is replaced and the old one retired
 * until no step is in flight; requests are freed only by the executor
 * (released ones are unlinked after their step, then kept in the graveyard
 * until the events that point into them have been delivered).
 */
#ifndef PX_STAGE_INTERNAL_H
#define PX_STAGE_INTERNAL_H

#include "kvmem.h"
#include "sampler.h"
#include "stage.h"
#include <pthread.h>

typedef struct hidden_node {
    struct hidden_node *next;
    int n, used;  /* rows held, rows already taken by steps */
    float rows[]; /* [n, hidden] */
} hidden_node;

/* A micro-batch the first stage emitted with sample items, until every
 * request of it has come back (its next token, or its release). */
#define STAGE_MAX_FLIGHTS 64
typedef struct {
    int outstanding; /* requests not back yet; 0: slot free */
    double t_emit;
} stage_flight;

typedef struct stage_req {
    uint64_t id;
    struct stage_req *prev, *next;
    int32_t *tokens; /* [cap_tokens]; [0, n_recv) valid */
    int cap_tokens;
    int n_recv, n_computed;
    int n_prompt;
    int cap_positions;    /* last stage: LENGTH when the sequence reaches it (min(context, prompt + max_tokens)) */
    int32_t *blocks;      /* [ceil(ctx_limit / block_size)] */
    int n_blocks;
    px_sampling_copy sc;
    uint64_t rng;
    int n_sampled;
    bool sample_pending;  /* the newest item asked for a sample; no item is accepted until it is computed */
    bool released;        /* to be dropped by the executor (released, failed or finished) */
    bool propagate;       /* emit OUT_RELEASE when dropped */
    bool in_step;
    int flight;           /* first stage: the micro-batch it is out with, or -1 */
    hidden_node *h_head, *h_tail;
    /* this step */
    int chunk, t0, row;   /* positions taken, first batch row, logit row (-1: none) */
    bool step_sample;     /* this chunk ends the sample item */
    const int32_t *step_tokens; /* last stage: the token array as it was when the step was planned */
} stage_req;

typedef struct {
    stage_req *head, *tail;
    int n;
} stage_req_list;

typedef struct {
    px_stage_event ev;
    char error[256];
} pending_event;

typedef struct {
    pending_event *v;
    int n, cap;
} event_queue;

typedef struct {
    const float *src;
    int rows, dst_row;
} hidden_span;

struct px_stage {
    px_model *model;
    const px_model_config *cfg;
    px_engine_options opt;
    bool first, last;
    int hidden;
    px_kv_memory mem;
    px_pool *pool;
    px_sampler **samplers; /* last stage: one per pool thread */
    px_stage_callback cb;
    void *user;

    pthread_mutex_t mu;
    pthread_cond_t wake;
    pthread_t thread;
    bool started, stopping, stepping, delivering_now;
    stage_req_list live;
    uint64_t remembered[PX_STAGE_RELEASED_MEMORY]; /* released/finished ids, a ring */
    int n_remembered, next_remembered;
    event_queue outbox, delivering;
    void **retired; /* replaced token arrays */
    int n_retired, cap_retired;
    stage_req **graveyard;
    int n_graveyard, cap_graveyard;
    int pending_positions;
    int depth;                 /* first stage: most micro-batches out at once (0: no limit) */
    stage_flight flights[STAGE_MAX_FLIGHTS];
    double rtt_ema;            /* seconds from emitting a micro-batch to its last return; 0: none seen */
    double wait_until;         /* > 0: the executor may sleep until then (a flight expires, a burst times out) */
    bool burst_open;           /* the last item pushed had `more` set */
    double burst_since;        /* when the open burst began */
    px_stage_stats_t totals; /* counters; gauges are filled in by px_stage_stats() */

    /* one step (executor only) */
    stage_req **step;
    int n_step, n_batch, n_rows;
    int32_t *b_tokens, *b_pos, *b_seq, *b_rows;
    px_seq_blocks *b_seqs;
    hidden_span *spans;
    int n_spans;
    hidden_node *consumed;
    float *b_hidden; /* [max_tokens_per_batch, hidden] (not on the first stage) */
    float *b_out;    /* [max_tokens_per_batch, hidden], or last stage [max_batch_size, vocab] */
    stage_req **row_reqs;
    px_sample_result *results;
    char step_error[256];
};

/* stage.c, under mu */
void stage_list_push_back(stage_req_list *l, stage_req *r);
void stage_list_remove(stage_req_list *l, stage_req *r);
pending_event *stage_queue_event(px_stage *st, px_stage_out_kind kind, uint64_t request_id);
void stage_remember(px_stage *st, uint64_t id);
bool stage_remembered(const px_stage *st, uint64_t id);
void stage_mark_released(px_stage *st, stage_req *r, bool propagate);
void stage_fail(px_stage *st, stage_req *r, uint64_t id, const char *msg);

/* stage_push.c, under mu */
int stage_push_locked(px_stage *st, const px_stage_item *it);

/* stage_step.c: flights (under mu) */
void stage_flight_return(px_stage *st, stage_req *r);
int stage_flights_active(px_stage *st, double now, double *earliest_expiry);

/* stage_step.c: called and returns with mu held; releases it around the forward pass */
int stage_run_step(px_stage *st);
void stage_drop_released(px_stage *st);
void stage_req_free(stage_req *r);

#endif
