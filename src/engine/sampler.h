/* sampler.h - turning one row of logits into the next token (engine module).
 *
 * px_sampler_sample() applies, in this order:
 *   1. logit_bias (added to the logits),
 *   2. repetition_penalty over every distinct token of prompt + generated
 *      (Hugging Face: a positive logit is divided by it, a negative one multiplied),
 *   3. presence and frequency penalties over the generated tokens (OpenAI:
 *      logit -= frequency * count + presence * (count > 0)),
 *   4. logprobs: the log-softmax of these logits at temperature 1, before any
 *      temperature/top-k/top-p/min-p (what OpenAI's API reports),
 *   5. the choice: temperature 0 (or below 1e-5) takes the argmax (ties ->
 *      lowest id);
 *      otherwise logits / temperature, keep the top_k largest, then the
 *      smallest set whose probability (renormalised over the top-k) reaches
 *      top_p, then those with probability >= min_p * the largest, and draw
 *      one from what is left with the request's own generator.
 *
 * The generator (splitmix64) belongs to the request and advances exactly once
 * per sampled token at temperature > 0, so a seed fixes the output whatever
 * else shares the batch. Everything is computed in a fixed order, so the same
 * logits always give the same token.
 *
 * A px_sampler holds vocabulary-sized scratch buffers; use one per thread.
 */
#ifndef PX_SAMPLER_H
#define PX_SAMPLER_H

#include "engine.h"

typedef struct px_sampler px_sampler;

typedef struct {
    int32_t token;
    float logprob; /* of token (when top_logprobs >= 0) */
    int n_top;
    int32_t top_ids[PX_MAX_TOP_LOGPROBS];
    float top_logprobs[PX_MAX_TOP_LOGPROBS]; /* descending; ties -> lower id first */
} px_sample_result;

px_sampler *px_sampler_create(int vocab);
void px_sampler_free(px_sampler *s);

/* Checks a request's parameters against the vocabulary: 0, or -1 + px_error. */
int px_sampling_validate(const px_sampling *p, int vocab);

/* The generator state for a seed. */
uint64_t px_rng_init(uint64_t seed);
/* A uniform double in [0, 1), advancing the state. */
double px_rng_uniform(uint64_t *state);

/* A request's own copy of its sampling parameters: s's arrays point into
 * the copies below (shared by the engine and pipeline stages). */
typedef struct {
    px_sampling s;
    int32_t *bias_ids, *stop_ids;
    float *bias_values;
} px_sampling_copy;

void px_sampling_copy_init(px_sampling_copy *c, const px_sampling *src);
void px_sampling_copy_free(px_sampling_copy *c);

/* True for an EOS id of cfg (unless p->ignore_eos) or one of p->stop_ids. */
bool px_sampling_is_stop(const px_sampling *p, const px_model_config *cfg, int32_t token);

/* Advances rng as n samples with p would (one draw per sample at
 * temperature > 0, none when greedy): after a failover re-prefill, the
 * tokens generated before continue with the same generator state. */
void px_rng_skip(const px_sampling *p, uint64_t *rng, int n);

/* Samples from logits[vocab] (modified in place). tokens[0, n_tokens) is the
 * sequence so far, of which the first n_prompt are the prompt. */
void px_sampler_sample(px_sampler *s, const px_sampling *p, float *logits, const int32_t *tokens, int n_prompt,
                       int n_tokens, uint64_t *rng, px_sample_result *out);

#endif
