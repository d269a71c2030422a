/* engine_internal.h - the engine's private state, shared by engine.c (API,
 * executor thread, KV memory) and schedule.c (building and finishing a step).
 *
 * A request's sequence is tokens[0, n_tokens): the prompt, then every token
 * sampled so far. n_computed of them have keys/values in the KV cache (through
 * its block table); a step computes the next chunk, and when a chunk reaches
 * n_tokens the last row's logits are sampled and the new token appended.
 * Preemption just drops the blocks and sets n_computed to 0: the request is
 * then recomputed from its tokens (prompt + generated) like a longer prompt.
 *
 * Lists: `waiting` (FIFO; preempted requests go back to its front) holds no
 * KV blocks; `running` is in admission order, so its tail is the newest.
 * Everything here is guarded by `mu`, except what the executor uses during
 * the forward pass and sampling (tokens, generator, blocks of requests in the
 * step), which only the executor ever changes.
 */
#ifndef PX_ENGINE_INTERNAL_H
#define PX_ENGINE_INTERNAL_H

#include "engine.h"
#include "kvmem.h"
#include "sampler.h"
#include <pthread.h>

typedef struct px_request px_request;

struct px_request {
    uint64_t id;
    px_request *prev, *next;
    bool running;
    bool aborted;
    int32_t *tokens;
    int n_tokens, n_prompt, cap_tokens;
    int n_computed;
    int32_t *blocks; /* physical block ids; capacity covers the context limit */
    int n_blocks;
    px_block_hash *hashes; /* chain hash of each full block, computed lazily */
    int n_hashed;          /* hashes[0, n_hashed) are valid */
    int n_registered;      /* blocks[0, n_registered) were offered to the prefix cache */
    int cached_tokens;     /* prefix-cache hit of the first admission */
    bool admitted_once;
    px_sampling_copy sc; /* the request's own copy of its sampling parameters */
    uint64_t rng;
    px_token_callback cb;
    void *user;
    /* this step */
    bool in_step;
    int chunk;     /* tokens scheduled */
    int logit_row; /* row in the logits, or -1 */
};

typedef struct {
    px_request *head, *tail;
    int n;
} px_req_list;

/* An event waiting to be delivered outside the lock. */
typedef struct {
    px_token_event ev;
    px_token_callback cb;
    void *user;
} px_pending_event;

struct px_engine {
    px_model *model;
    const px_model_config *cfg;
    px_engine_options opt;
    px_pool *pool;
    px_kv_memory mem; /* K/V tensors, block allocator, ctx_limit = min(model context, tokens the pool holds) */
    px_sampler **samplers; /* one per pool thread */

    pthread_mutex_t mu;
    pthread_cond_t wake;
    pthread_t thread;
    bool started, stopping;
    px_req_list waiting, running;
    uint64_t next_id;
    px_engine_stats_t totals; /* counters; the gauges are filled in by px_engine_stats() */

    /* one step's batch (executor only) */
    px_request **step_reqs;
    int n_step;
    int32_t *b_tokens, *b_pos, *b_seq, *b_rows;
    px_seq_blocks *b_seqs;
    int n_batch_tokens, n_rows;
    float *logits; /* [max_batch_size, vocab] */
    px_request **row_reqs;     /* [max_batch_size] the request of each logit row */
    px_sample_result *results; /* [max_batch_size] the token sampled from each row */

    /* events and finished requests of the step (executor only) */
    px_pending_event *events;
    int n_events, cap_events;
    px_request **finished;
    int n_finished, cap_finished;
    char error[512];
};

/* list helpers (engine.c) */
void px_req_list_push_back(px_req_list *l, px_request *r);
void px_req_list_push_front(px_req_list *l, px_request *r);
void px_req_list_remove(px_req_list *l, px_request *r);

/* schedule.c: under mu */
void px_engine_handle_aborts(px_engine *e);
void px_engine_plan_step(px_engine *e);  /* fills step_reqs and the batch arrays */
void px_engine_sample_rows(px_engine *e); /* executor, without the lock */
void px_engine_finish_step(px_engine *e, int forward_rc);
void px_engine_finish_request(px_engine *e, px_request *r, px_finish_reason why, const char *error);

#endif
