/* sampling.c - a request's sampling parameters on the wire and back: the
 * scheduler sends them with a request's first Forward, the first stage
 * reads them (the arrays point into the message: no copies). */
#include "engine.h"
#include "net.h"

void px_net_sampling_to_wire(const px_sampling *s, Parallax__Sampling *out) {
    parallax__sampling__init(out);
    out->temperature = s->temperature;
    out->top_k = s->top_k;
    out->top_p = s->top_p;
    out->min_p = s->min_p;
    out->repetition_penalty = s->repetition_penalty;
    out->presence_penalty = s->presence_penalty;
    out->frequency_penalty = s->frequency_penalty;
    out->seed = s->seed;
    out->has_seed = s->has_seed;
    out->top_logprobs = s->top_logprobs;
    out->n_logit_bias_ids = out->n_logit_bias_values = (size_t)s->n_logit_bias;
    out->logit_bias_ids = (int32_t *)s->logit_bias_ids;
    out->logit_bias_values = (float *)s->logit_bias_values;
    out->max_tokens = s->max_tokens;
    out->ignore_eos = s->ignore_eos;
    out->n_stop_ids = (size_t)s->n_stop_ids;
    out->stop_ids = (int32_t *)s->stop_ids;
}

void px_net_sampling_from_wire(const Parallax__Sampling *in, px_sampling *s) {
    px_sampling_defaults(s);
    s->temperature = in->temperature;
    s->top_k = in->top_k;
    s->top_p = in->top_p;
    s->min_p = in->min_p;
    s->repetition_penalty = in->repetition_penalty;
    s->presence_penalty = in->presence_penalty;
    s->frequency_penalty = in->frequency_penalty;
    s->seed = in->seed;
    s->has_seed = in->has_seed;
    s->top_logprobs = in->top_logprobs;
    s->n_logit_bias = (int)in->n_logit_bias_ids;
    s->logit_bias_ids = in->logit_bias_ids;
    s->logit_bias_values = in->logit_bias_values;
    s->max_tokens = in->max_tokens;
    s->ignore_eos = in->ignore_eos;
    s->n_stop_ids = (int)in->n_stop_ids;
    s->stop_ids = in->stop_ids;
}
