/* engine.h - the serving engine of one node: requests in, tokens out.
 *
 * An engine owns a model (or, later, a layer slice of one), a paged KV cache
 * with prefix caching, and an executor thread that runs continuous batching:
 * every step mixes one decode token of each running request with prefill
 * chunks of waiting ones, under max_batch_size requests and
 * max_tokens_per_batch tokens, then samples each finished row.
 *
 *   px_engine_create()   loads nothing itself: it takes a loaded px_model.
 *   px_engine_start()    starts the executor thread.
 *   px_engine_submit()   queues a request; its callback receives every
 *                        sampled token and, last, one event with a finish
 *                        reason. Returns the request id (> 0), or 0 + error.
 *   px_engine_abort()    cancels a request (client disconnect, stop string):
 *                        its blocks are freed and its callback gets a final
 *                        PX_FINISH_ABORT event unless it already finished.
 *   px_engine_stats()    a consistent snapshot for /metrics and /health.
 *
 * Events: one per sampled token (token >= 0, finish NONE), the last one with
 * its finish reason: STOP and LENGTH carry the final token; ABORT and ERROR
 * carry token -1 (and `error` for ERROR, valid during the callback only).
 * logprob/top_logprobs are the
 * log-softmax of the logits after logit_bias and the repetition/presence/
 * frequency penalties, at temperature 1, before top-k/top-p/min-p.
 *
 * Threading: submit, abort and stats may be called from any thread. Callbacks
 * run on the executor thread, must be quick and must not call back into the
 * engine except px_engine_abort(). After the final event of a request its
 * callback is never called again. A request can run, and even finish, before
 * px_engine_submit() returns its id: callbacks identify it by ev->request_id
 * and `user`. Ownership: the engine borrows the model
 * (free the engine first), copies the prompt and sampling parameters.
 *
 * Added after the first version of this interface (nothing renamed):
 * px_engine_options_defaults() (and "0 = default" for every option),
 * px_engine_stats_t.preemptions_total / steps_total, and the precise meaning
 * of context_length and of token -1 events above. See docs/engine.md.
 */
#ifndef PX_ENGINE_H
#define PX_ENGINE_H

#include "model.h"

typedef struct {
    int n_threads;               /* compute threads; <= 0: all CPUs */
    int64_t kv_cache_bytes;      /* > 0: bytes for K+V blocks */
    double kv_cache_fraction;    /* used when kv_cache_bytes == 0: share of free memory (default 0.3) */
    int block_size;              /* tokens per KV block (default 16) */
    int max_batch_size;          /* requests per step (default 32) */
    int max_tokens_per_batch;    /* tokens per step (default 2048) */
    int chunked_prefill_size;    /* largest prefill chunk of one request per step (default 512) */
    bool disable_prefix_cache;
} px_engine_options;

/* Fills the defaults above. A zero field in the options given to
 * px_engine_create() also means "the default" (NULL options: all defaults). */
void px_engine_options_defaults(px_engine_options *o);

#define PX_MAX_TOP_LOGPROBS 20

typedef struct {
    float temperature;           /* 0 (or < 1e-5): greedy (ties -> lowest id) */
    int top_k;                   /* 0: off */
    float top_p;                 /* 1: off */
    float min_p;                 /* 0: off */
    float repetition_penalty;    /* 1: off (applied to prompt + generated tokens) */
    float presence_penalty, frequency_penalty; /* 0: off (generated tokens) */
    uint64_t seed;               /* per-request generator: same seed => same output, whatever the batch */
    bool has_seed;               /* false: seeded from the clock */
    int top_logprobs;            /* -1: no logprobs; 0..PX_MAX_TOP_LOGPROBS */
    int n_logit_bias;
    const int32_t *logit_bias_ids;
    const float *logit_bias_values;
    int max_tokens;              /* generated tokens; the context length also bounds it */
    bool ignore_eos;
    int n_stop_ids;              /* extra stop token ids */
    const int32_t *stop_ids;
} px_sampling;

void px_sampling_defaults(px_sampling *s); /* temperature 1, everything else off, max_tokens 16 */

typedef enum {
    PX_FINISH_NONE = 0,   /* a token, more to come */
    PX_FINISH_STOP,       /* EOS or a stop id (the token is included) */
    PX_FINISH_LENGTH,     /* max_tokens or the context length */
    PX_FINISH_ABORT,      /* px_engine_abort() */
    PX_FINISH_ERROR,      /* the engine failed (message in `error`) */
} px_finish_reason;

typedef struct {
    uint64_t request_id;
    int32_t token;               /* -1 on an event without a token (abort, error) */
    float logprob;               /* of `token`, when logprobs were asked for */
    int n_top;
    int32_t top_ids[PX_MAX_TOP_LOGPROBS];
    float top_logprobs[PX_MAX_TOP_LOGPROBS];
    px_finish_reason finish;
    int prompt_tokens, cached_tokens, completion_tokens;
    const char *error;
} px_token_event;

typedef void (*px_token_callback)(void *user, const px_token_event *ev);

typedef struct {
    int running, waiting;
    int kv_blocks_total, kv_blocks_used, kv_blocks_cached; /* cached: free but holding a reusable prefix */
    uint64_t prefix_lookups_tokens, prefix_hit_tokens;
    uint64_t requests_finished, prompt_tokens_total, generated_tokens_total;
    int block_size, context_length; /* context_length: min(model context, tokens the KV pool holds);
                                       a prompt must be shorter than it */
    uint64_t preemptions_total, steps_total; /* added by the engine: requests preempted, forward passes run */
} px_engine_stats_t;

typedef struct px_engine px_engine;

px_engine *px_engine_create(px_model *model, const px_engine_options *opt);
int px_engine_start(px_engine *e);
void px_engine_free(px_engine *e); /* stops the executor; pending requests get PX_FINISH_ABORT */
uint64_t px_engine_submit(px_engine *e, const int32_t *prompt, int n_prompt, const px_sampling *s,
                          px_token_callback cb, void *user);
void px_engine_abort(px_engine *e, uint64_t request_id);
void px_engine_stats(px_engine *e, px_engine_stats_t *out);

#endif
