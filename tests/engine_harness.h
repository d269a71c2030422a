/* engine_harness.h - helpers for the engine tests: a collector that records
 * the events of one request (thread-safe, with a wait for its final event)
 * and the reference prompts of the aidreams-260k model.
 *
 * The collector also checks the event contract: ids match, no event after
 * the final one, completion_tokens counts up by one per token. */
#ifndef PX_ENGINE_HARNESS_H
#define PX_ENGINE_HARNESS_H

#include "engine.h"
#include "px_test.h"
#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define HARNESS_MAX_TOKENS 256

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t id;
    int32_t tokens[HARNESS_MAX_TOKENS];
    float logprobs[HARNESS_MAX_TOKENS];
    int n;
    int n_events, n_after_final, contract_errors;
    bool done;
    px_finish_reason finish;
    int prompt_tokens, cached_tokens, completion_tokens, last_n_top;
    float last_top_sum; /* sum of exp(top_logprobs) of the last token event */
    uint64_t abort_after; /* > 0: abort from the callback after this many tokens */
    px_engine *engine;
} collector;

static inline void collector_init(collector *c) {
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
}

static inline void collector_destroy(collector *c) {
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
}

static inline void collector_cb(void *user, const px_token_event *ev) {
    collector *c = user;
    pthread_mutex_lock(&c->mu);
    c->n_events++;
    if (c->done) c->n_after_final++;
    if (c->id && ev->request_id != c->id) c->contract_errors++;
    if (ev->token >= 0) {
        if (c->n < HARNESS_MAX_TOKENS) c->tokens[c->n] = ev->token, c->logprobs[c->n] = ev->logprob;
        c->n++;
        if (ev->completion_tokens != c->n) c->contract_errors++;
        c->last_n_top = ev->n_top;
        c->last_top_sum = 0;
        for (int i = 0; i < ev->n_top; i++) c->last_top_sum += expf(ev->top_logprobs[i]);
    }
    c->prompt_tokens = ev->prompt_tokens;
    c->cached_tokens = ev->cached_tokens;
    c->completion_tokens = ev->completion_tokens;
    bool abort_now = c->abort_after && (uint64_t)c->n == c->abort_after && ev->finish == PX_FINISH_NONE;
    if (ev->finish != PX_FINISH_NONE) {
        c->done = true;
        c->finish = ev->finish;
        pthread_cond_broadcast(&c->cv);
    }
    pthread_mutex_unlock(&c->mu);
    if (abort_now) px_engine_abort(c->engine, ev->request_id); /* allowed from a callback */
}

static inline void collector_wait(collector *c) {
    pthread_mutex_lock(&c->mu);
    while (!c->done) pthread_cond_wait(&c->cv, &c->mu);
    pthread_mutex_unlock(&c->mu);
}

/* Submits and records the id under the collector's lock (events may already be flowing). */
static inline uint64_t harness_submit(px_engine *e, collector *c, const int32_t *prompt, int n, const px_sampling *s) {
    pthread_mutex_lock(&c->mu);
    c->engine = e;
    c->id = px_engine_submit(e, prompt, n, s, collector_cb, c);
    pthread_mutex_unlock(&c->mu);
    return c->id;
}

/* ---- aidreams references ---- */

#define N_REF 5
#define REF_GEN 32

typedef struct {
    int32_t prompt[128];
    int n_prompt;
    int32_t generated[REF_GEN];
} ref_case;

static inline int harness_load_refs(const char *model_dir, ref_case *refs) {
    char path[4096];
    snprintf(path, sizeof path, "%s/reference/greedy_32.json", model_dir);
    char *text = px_read_file(path, NULL);
    if (!text) return fprintf(stderr, "%s\n", px_error_get()), -1;
    cJSON *root = cJSON_Parse(text);
    free(text);
    const cJSON *results = cJSON_GetObjectItem(root, "results");
    int ok = cJSON_GetArraySize(results) == N_REF;
    for (int i = 0; ok && i < N_REF; i++) {
        const cJSON *r = cJSON_GetArrayItem(results, i), *it;
        refs[i].n_prompt = 0;
        cJSON_ArrayForEach(it, cJSON_GetObjectItem(r, "prompt_ids")) if (refs[i].n_prompt < 128)
            refs[i].prompt[refs[i].n_prompt++] = it->valueint;
        int n = 0;
        cJSON_ArrayForEach(it, cJSON_GetObjectItem(r, "generated_ids")) if (n < REF_GEN) refs[i].generated[n++] = it->valueint;
        ok = n == REF_GEN;
    }
    cJSON_Delete(root);
    return ok ? 0 : -1;
}

#endif
