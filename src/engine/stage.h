/* stage.h - a pipeline stage: the executor a worker runs on its layer slice.
 *
 * A model's layers are split into contiguous slices [start, end) that run as
 * a pipeline across workers. Each worker loads its slice (px_model_load with
 * start/end) and wraps it in a px_stage. The stage knows nothing about the
 * network: the caller (the net layer, or a test) PUSHES work items in and
 * RECEIVES outgoing events through one callback.
 *
 *   first stage  [0, a):  items carry token ids; it embeds them
 *   middle stage [a, b):  items carry hidden states [n, hidden] f32
 *   last stage   [b, L):  items carry hidden states; it samples tokens
 *   (a single stage [0, L) is first and last at once)
 *
 * The data path of a request (the "ring"):
 *
 *   scheduler --FORWARD(prompt, sampling, sample=true)--> stage 0
 *   stage i   --OUT_FORWARD(hidden states)--> caller pushes it into stage i+1
 *   last      --OUT_TOKEN(token, pos, finish)--> caller sends it to the
 *             scheduler and, while finish == PX_FINISH_NONE, pushes
 *             px_stage_token_item(ev) into stage 0 (the next decode step);
 *             when finish != NONE, pushes RELEASE(propagate) into stage 0,
 *             which frees the request and passes OUT_RELEASE down the chain.
 *
 * Work items (px_stage_item), kind FORWARD: positions [pos, pos + n) of a
 * request. Every stage needs `tokens` (the token ids of those positions: the
 * first stage embeds them, the last one applies repetition penalties with
 * them, all keep them so a later prefix cache can hash them). Stages after
 * the first also need `hidden` = [n, hidden_size] f32 rows, n_hidden = n *
 * hidden_size floats. The first item of a request (pos == 0) also carries its
 * sampling parameters and n_prompt; stages pass both down with their own
 * first output item, and only the last stage uses them. `sample` on the item
 * whose last position is the newest token asks the last stage to sample the
 * next token from that row; a stage that cuts an item into chunks sets it on
 * the final chunk only. Items of one request must arrive in order: pos of
 * each item equals the number of positions received so far, and after a
 * `sample` item no further item is accepted until that item has been fully
 * computed on this stage (in the ring the next item is the sampled token,
 * which can only exist after that).
 *
 * Kind RELEASE drops all state of one request (finish, abort, stop string,
 * failover: the scheduler re-prefills it elsewhere from prompt + generated
 * tokens, under a NEW request id). With `propagate`, a stage that is not the
 * last emits OUT_RELEASE so the caller can pass it down the chain (do this
 * for releases entering at stage 0; send non-propagating releases when
 * telling each surviving stage directly). RELEASE_ALL drops every request.
 * Releasing an unknown id is not an error (it is only remembered).
 *
 * Request ids are never reused. A stage remembers the last
 * PX_STAGE_RELEASED_MEMORY released or finished ids and silently drops
 * FORWARD items that still arrive for them (stats.items_dropped); those were
 * in flight when the request ended. This is why a failover re-prefill needs a
 * fresh id.
 *
 * KV blocks: a request's blocks are allocated when its positions arrive (the
 * first item allocates, later items extend) and freed when it is released,
 * finishes (last stage) or fails. Prefix caching is not used by stages (all
 * stages of a pipeline would have to agree on what is cached).
 *
 * Validation: px_stage_push() checks everything before using it (kind, id,
 * n and pos against the context, token ids against the vocabulary, hidden
 * size, position continuity, sampling parameters, n_prompt, free KV blocks)
 * and returns -1 with px_error_get() naming the problem. A refused FORWARD
 * item also fails its request: its state (if any) is dropped and an
 * OUT_ERROR event follows for its id, so the scheduler learns about failures
 * on every stage through the same path. Nothing a peer sends can crash a
 * stage or make it read out of bounds.
 *
 * Bursts: a step's outputs are delivered as a burst of events, each with
 * `more` set except the last for its peer. Pass it on in the pushed item
 * (OUT_FORWARD's item already has it; px_stage_token_item() copies it; set
 * it on the RELEASE you push for a final token, and on the wire): the
 * receiving stage then waits for the whole burst before its next step, so
 * the requests of one micro-batch stay together down the pipeline instead
 * of splitting into a step for the first item and another for the rest.
 *
 * Batching: the executor runs continuous batching over everything that has
 * arrived: each step takes up to max_batch_size requests and
 * max_tokens_per_batch positions, single-position items (decodes) first, then
 * chunks of at most chunked_prefill_size positions of longer items, in
 * round-robin order (requests served in a step move behind the others). So
 * concurrent requests overlap in the pipeline: while stage 2 computes request
 * A, stage 1 already computes request B. Rows are computed independently
 * (see docs/DESIGN.md, determinism), so a chain of stages gives bit-identical
 * logits, hence identical greedy/seeded tokens, to the single-node engine.
 *
 * Options: px_engine_options, with the same meaning and defaults as for the
 * engine (n_threads, kv_cache_bytes / kv_cache_fraction, block_size,
 * max_batch_size, max_tokens_per_batch, chunked_prefill_size);
 * disable_prefix_cache is implied.
 *
 * Threading and ownership:
 *   - px_stage_create() borrows the model (free the stage first) and starts
 *     no thread. Either call px_stage_start() once (an executor thread owns
 *     the stepping), or drive it yourself with px_stage_step() from one thread.
 *   - px_stage_push() and px_stage_stats() may be called from any thread,
 *     including from inside the callback (of this stage or another).
 *     push copies everything it keeps (tokens, hidden rows, sampling arrays);
 *     the item's buffers are borrowed for the call only.
 *   - The callback runs on the executor thread (or inside px_stage_step()),
 *     one event at a time, never under the stage's lock. The event and
 *     everything it points to (item.tokens, item.hidden, item.sampling,
 *     error) are valid during the callback only: send or copy them there.
 *     Keep it quick (encode and send, or push into another stage).
 *   - px_stage_free() stops the executor and drops every request without
 *     delivering further events (the scheduler re-routes them).
 *
 * Reloading another slice (membership rebalancing): px_stage_free(st);
 * px_model_free(m); m = px_model_load(dir, &(px_load_options){new_start,
 * new_end}); st = px_stage_create(m, ...); px_stage_start(st). Requests that
 * were live on the old stage are gone; the scheduler re-prefills them.
 */
#ifndef PX_STAGE_H
#define PX_STAGE_H

#include "engine.h"

#define PX_STAGE_RELEASED_MEMORY 4096
#define PX_STAGE_BURST_WAIT_MS 2

typedef enum {
    PX_STAGE_FORWARD = 1,     /* positions of a request to run through the slice */
    PX_STAGE_RELEASE = 2,     /* drop all state of request_id */
    PX_STAGE_RELEASE_ALL = 3, /* drop every request (scheduler restart, rebalancing) */
} px_stage_kind;

typedef struct {
    px_stage_kind kind;
    uint64_t request_id;         /* != 0; chosen by the scheduler, never reused */
    /* FORWARD */
    int32_t pos;                 /* first position; = positions of this request received so far */
    int32_t n;                   /* positions [pos, pos + n), n >= 1 */
    const int32_t *tokens;       /* [n] token ids (every stage) */
    const float *hidden;         /* [n, hidden_size] f32 (stages after the first; ignored on the first) */
    int64_t n_hidden;            /* floats in hidden: must be n * hidden_size where hidden is needed */
    bool sample;                 /* the last stage samples the next token from position pos + n - 1 */
    const px_sampling *sampling; /* required when pos == 0, ignored otherwise; copied */
    int32_t n_prompt;            /* when pos == 0: positions [0, n_prompt) are the prompt, later ones were
                                    generated before (failover re-prefill); 0 means n */
    /* RELEASE, RELEASE_ALL */
    bool propagate;              /* emit OUT_RELEASE for the next stage (not on the last stage) */
    /* any kind */
    bool more;                   /* the sender pushes another item right after this one (the rest of
                                    one step's output): the stage plans its next step only after the
                                    burst's last item (at most PX_STAGE_BURST_WAIT_MS later) */
} px_stage_item;

typedef enum {
    PX_STAGE_OUT_FORWARD = 1, /* `item`: hidden states for the next stage (push it there as is) */
    PX_STAGE_OUT_RELEASE = 2, /* `item`: a RELEASE / RELEASE_ALL to pass to the next stage */
    PX_STAGE_OUT_TOKEN = 3,   /* last stage: `token`, the sampled token at position token_pos */
    PX_STAGE_OUT_ERROR = 4,   /* request_id failed on this stage and its state is gone; `error` says why */
} px_stage_out_kind;

typedef struct {
    px_stage_out_kind kind;
    uint64_t request_id;
    px_stage_item item;   /* OUT_FORWARD, OUT_RELEASE */
    px_token_event token; /* OUT_TOKEN: as the engine's events (token >= 0; finish NONE, STOP or LENGTH;
                             logprobs when asked for; cached_tokens is 0) */
    int32_t token_pos;    /* OUT_TOKEN: the position the sampled token takes in the sequence */
    const char *error;    /* OUT_ERROR */
    bool more;            /* another event for the same peer follows in this burst (after OUT_FORWARD /
                             OUT_RELEASE: another of those two; after OUT_TOKEN: another OUT_TOKEN);
                             item.more is set to it, and px_stage_token_item() copies it */
} px_stage_event;

typedef void (*px_stage_callback)(void *user, const px_stage_event *ev);

typedef struct {
    int layer_start, layer_end, n_layers; /* the slice, of n_layers */
    bool first, last;
    int requests;          /* live requests */
    int pending_positions; /* received, not yet computed */
    int kv_blocks_total, kv_blocks_used, block_size;
    int context_length;    /* min(model context, tokens this stage's KV pool holds) */
    uint64_t items_in;      /* FORWARD items accepted */
    uint64_t items_refused; /* items px_stage_push() refused */
    uint64_t items_dropped; /* FORWARD items for released/finished requests, dropped silently */
    uint64_t requests_failed, requests_released, requests_finished;
    uint64_t steps_total, positions_total, tokens_sampled;
    double busy_seconds;    /* time in the forward pass and sampling (per-layer latency = busy / positions / layers) */
    bool idle;              /* nothing pending, no step running, no event queued or being delivered */
    int pipeline_depth;     /* as set by px_stage_set_pipeline_depth() */
    int micro_batches_out;  /* first stage: micro-batches sent for sampling whose tokens are not all back */
} px_stage_stats_t;

typedef struct px_stage px_stage;

/* NULL + px_error on invalid options or when the KV memory cannot be had. */
px_stage *px_stage_create(px_model *model, const px_engine_options *opt, px_stage_callback cb, void *user);
/* Starts the executor thread. */
int px_stage_start(px_stage *st);
/* Queues an item (see the rules above): 0 accepted (or silently dropped for
 * a released id), -1 refused with px_error_get(). */
int px_stage_push(px_stage *st, const px_stage_item *item);
/* Without px_stage_start(): runs one step on the calling thread and delivers
 * its events (and any queued error/release events). Returns the positions
 * computed (0: nothing to do), or -1 when the executor thread owns the stage. */
int px_stage_step(px_stage *st);
void px_stage_stats(px_stage *st, px_stage_stats_t *out);
/* Stops the executor and frees everything; no events are delivered. */
void px_stage_free(px_stage *st);

/* First stage of a pipeline of `depth` stages (ignored on other stages; 0,
 * the default, means no limit; may be changed at any time). Each step of the
 * first stage that sends requests on for sampling forms a micro-batch that
 * is "out" until every one of its requests has come back (its next token, or
 * its release). While `depth` micro-batches are out, the first stage starts
 * no step: what arrives meanwhile (tokens of other micro-batches, new
 * prompts) waits and joins the next step. Without the limit, requests that
 * arrive a little apart (prompts pushed one by one) stay split into many
 * small micro-batches for ever, and every stage runs one step per group per
 * token; with depth = number of stages, k micro-batches keep the k stages
 * busy with batches as large as possible. A step takes at most a depth-th of
 * the live requests (rounded up), so requests that start together split into
 * `depth` equal micro-batches instead of one that the stages pass along while
 * the others idle. A micro-batch stops counting after
 * 3 x the measured round trip (at least 20 ms, at most 2 s; 1 s before the
 * first measurement), so a lost token (a dead worker) delays the others only
 * that long. For the accounting to be exact, push the RELEASE of a finished
 * request into stage 0 promptly, as the ring does. */
void px_stage_set_pipeline_depth(px_stage *st, int depth);

/* The item that feeds a sampled token back into stage 0 (the next decode
 * step): FORWARD of ev->token.token at ev->token_pos with sample = true.
 * It points into ev: push it during the callback. */
px_stage_item px_stage_token_item(const px_stage_event *ev);

#endif
