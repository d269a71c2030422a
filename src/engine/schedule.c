/* schedule.c - one continuous-batching step: what runs, and what follows.
 *
 * px_engine_plan_step() fills the batch under two budgets, max_batch_size
 * sequences and max_tokens_per_batch tokens:
 *   1. running requests, oldest first, each with its next chunk: first
 *      every decode (one token), then the chunks (up to chunked_prefill_size)
 *      of those still (re)computing a prompt, so a long prompt never delays
 *      the next token of requests already generating. A request that cannot
 *      get the KV blocks for its chunk preempts the newest running request
 *      not yet in the step (at worst itself) until it can: preempted requests
 *      free their blocks and go back to the front of the queue.
 *   2. unless something was preempted, waiting requests in arrival order:
 *      the longest chain of cached prefix blocks is reused (at most up to the
 *      last token, whose logits are needed), then the first chunk of the rest
 *      is scheduled if its blocks can be had; otherwise the queue waits.
 * px_engine_sample_rows() samples every logit row in parallel over the pool,
 * outside the lock (only the executor touches a request's tokens and
 * generator). px_engine_finish_step() then advances each request by its
 * chunk, offers newly filled blocks to the prefix cache, appends the sampled
 * tokens and decides stops (EOS / stop ids, max_tokens, context).
 * Events are queued here and delivered by the executor outside the lock.
 */
#include "engine_internal.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- events and retirement ---- */

static px_pending_event *new_event(px_engine *e, const px_request *r, int32_t token, px_finish_reason why) {
    if (e->n_events == e->cap_events) {
        e->cap_events = e->cap_events ? 2 * e->cap_events : 64;
        e->events = px_realloc(e->events, (size_t)e->cap_events * sizeof *e->events);
    }
    px_pending_event *pe = &e->events[e->n_events++];
    memset(pe, 0, sizeof *pe);
    pe->cb = r->cb;
    pe->user = r->user;
    pe->ev.request_id = r->id;
    pe->ev.token = token;
    pe->ev.finish = why;
    pe->ev.prompt_tokens = r->n_prompt;
    pe->ev.cached_tokens = r->cached_tokens;
    pe->ev.completion_tokens = r->n_tokens - r->n_prompt;
    return pe;
}

static void release_blocks(px_engine *e, px_request *r) {
    px_kvpool_release_table(e->mem.blocks, r->blocks, &r->n_blocks); /* tail blocks age first */
    r->n_computed = r->n_registered = 0;
}

/* Takes r off its list, frees its blocks and schedules its memory for release. */
static void retire(px_engine *e, px_request *r) {
    px_req_list_remove(r->running ? &e->running : &e->waiting, r);
    release_blocks(e, r);
    e->totals.requests_finished++;
    if (e->n_finished == e->cap_finished) {
        e->cap_finished = e->cap_finished ? 2 * e->cap_finished : 64;
        e->finished = px_realloc(e->finished, (size_t)e->cap_finished * sizeof *e->finished);
    }
    e->finished[e->n_finished++] = r;
}

void px_engine_finish_request(px_engine *e, px_request *r, px_finish_reason why, const char *error) {
    new_event(e, r, -1, why)->ev.error = error;
    retire(e, r);
}

void px_engine_handle_aborts(px_engine *e) {
    px_req_list *lists[2] = {&e->running, &e->waiting};
    for (int l = 0; l < 2; l++)
        for (px_request *r = lists[l]->head, *next; r; r = next) {
            next = r->next;
            if (r->aborted) px_engine_finish_request(e, r, PX_FINISH_ABORT, NULL);
        }
}

/* ---- blocks of one request ---- */

static void ensure_hashes(px_engine *e, px_request *r, int n_full) {
    const int bs = e->opt.block_size;
    for (int i = r->n_hashed; i < n_full; i++)
        px_block_hash_of(i ? &r->hashes[i - 1] : NULL, r->tokens + (size_t)i * bs, bs, &r->hashes[i]);
    if (n_full > r->n_hashed) r->n_hashed = n_full;
}

static bool ensure_blocks(px_engine *e, px_request *r, int n_positions) {
    return px_kvpool_grow(e->mem.blocks, r->blocks, &r->n_blocks, n_positions);
}

/* Reuses the longest cached chain of full blocks, leaving at least one token to compute. */
static void prefix_lookup(px_engine *e, px_request *r) {
    if (e->opt.disable_prefix_cache) return;
    const int bs = e->opt.block_size, limit = (r->n_tokens - 1) / bs;
    ensure_hashes(e, r, limit);
    for (int i = 0; i < limit; i++) {
        int b = px_kvpool_lookup(e->mem.blocks, &r->hashes[i], i ? &r->hashes[i - 1] : NULL, r->tokens + (size_t)i * bs);
        if (b < 0) break;
        r->blocks[r->n_blocks++] = b;
    }
    r->n_computed = r->n_registered = r->n_blocks * bs;
}

static void register_full_blocks(px_engine *e, px_request *r) {
    if (e->opt.disable_prefix_cache) return;
    const int bs = e->opt.block_size, n_full = r->n_computed / bs;
    ensure_hashes(e, r, n_full);
    for (int i = r->n_registered; i < n_full; i++)
        px_kvpool_register(e->mem.blocks, r->blocks[i], &r->hashes[i], i ? &r->hashes[i - 1] : NULL,
                           r->tokens + (size_t)i * bs);
    if (n_full > r->n_registered) r->n_registered = n_full;
}

static void preempt(px_engine *e, px_request *r) {
    release_blocks(e, r);
    px_req_list_remove(&e->running, r);
    r->running = false;
    px_req_list_push_front(&e->waiting, r);
    e->totals.preemptions_total++;
    px_log_debug("engine: preempted request %llu (%d tokens to recompute)", (unsigned long long)r->id, r->n_tokens);
}

/* ---- building the batch ---- */

static void add_to_step(px_engine *e, px_request *r, int chunk) {
    int si = e->n_step++;
    e->step_reqs[si] = r;
    e->b_seqs[si] = (px_seq_blocks){r->blocks, r->n_blocks};
    r->chunk = chunk;
    r->in_step = true;
    for (int j = 0; j < chunk; j++) {
        int t = e->n_batch_tokens++;
        e->b_tokens[t] = r->tokens[r->n_computed + j];
        e->b_pos[t] = r->n_computed + j;
        e->b_seq[t] = si;
    }
    r->logit_row = -1;
    if (r->n_computed + chunk == r->n_tokens) {
        r->logit_row = e->n_rows;
        e->row_reqs[e->n_rows] = r;
        e->b_rows[e->n_rows++] = e->n_batch_tokens - 1;
    }
}

static int chunk_for(const px_engine *e, const px_request *r, int tok_budget) {
    return PX_MIN(PX_MIN(r->n_tokens - r->n_computed, e->opt.chunked_prefill_size), tok_budget);
}

/* The newest running request not already in this step (at worst r itself). */
static px_request *pick_victim(px_engine *e) {
    for (px_request *v = e->running.tail; v; v = v->prev)
        if (!v->in_step) return v;
    return NULL;
}

/* Schedules r's next chunk, preempting newer requests for blocks as needed.
 * Returns false when r itself had to be preempted. */
static bool schedule_one(px_engine *e, px_request *r, int *tok_budget, bool *preempted) {
    int chunk = chunk_for(e, r, *tok_budget);
    while (!ensure_blocks(e, r, r->n_computed + chunk)) {
        px_request *victim = pick_victim(e); /* never NULL: r itself qualifies */
        preempt(e, victim);
        *preempted = true;
        if (victim == r) return false;
    }
    add_to_step(e, r, chunk);
    *tok_budget -= chunk;
    return true;
}

/* Decodes first (one token each, oldest first), then the chunks of running
 * requests still (re)computing their prompt. Returns true when something was
 * preempted. */
static bool schedule_running(px_engine *e, int *tok_budget) {
    bool preempted = false;
    for (int pass = 0; pass < 2; pass++)
        for (px_request *r = e->running.head; r; r = r->next) {
            if (e->n_step == e->opt.max_batch_size || *tok_budget == 0) return preempted;
            bool decode = r->n_tokens - r->n_computed == 1;
            if (r->in_step || decode != (pass == 0)) continue;
            if (!schedule_one(e, r, tok_budget, &preempted)) break; /* out of blocks: this pass is over */
        }
    return preempted;
}

static void admit(px_engine *e, px_request *r, int chunk) {
    if (!r->admitted_once) {
        r->admitted_once = true;
        r->cached_tokens = r->n_computed;
        e->totals.prefix_lookups_tokens += (uint64_t)r->n_prompt;
        e->totals.prefix_hit_tokens += (uint64_t)r->n_computed;
        e->totals.prompt_tokens_total += (uint64_t)r->n_prompt;
    }
    px_req_list_remove(&e->waiting, r);
    px_req_list_push_back(&e->running, r);
    r->running = true;
    add_to_step(e, r, chunk);
}

static void admit_waiting(px_engine *e, int *tok_budget) {
    while (e->waiting.head && e->running.n < e->opt.max_batch_size && e->n_step < e->opt.max_batch_size &&
           *tok_budget > 0) {
        px_request *r = e->waiting.head;
        if (r->n_blocks == 0) prefix_lookup(e, r);
        int chunk = chunk_for(e, r, *tok_budget);
        if (!ensure_blocks(e, r, r->n_computed + chunk)) {
            release_blocks(e, r);
            if (e->running.n > 0) break; /* wait for blocks to come back */
            snprintf(e->error, sizeof e->error, "the KV cache (%d blocks) cannot hold this request",
                     px_kvpool_count(e->mem.blocks).total);
            px_engine_finish_request(e, r, PX_FINISH_ERROR, e->error);
            continue;
        }
        admit(e, r, chunk);
        *tok_budget -= chunk;
    }
}

void px_engine_plan_step(px_engine *e) {
    e->n_step = e->n_batch_tokens = e->n_rows = 0;
    int tok_budget = e->opt.max_tokens_per_batch;
    if (!schedule_running(e, &tok_budget)) admit_waiting(e, &tok_budget);
}

/* ---- after the forward pass ---- */

/* Appends the token sampled for r (by px_engine_sample_rows) and decides its stop. */
static void take_sample(px_engine *e, px_request *r, const px_sample_result *res) {
    px_sample_result sr = *res;
    r->tokens[r->n_tokens++] = sr.token;
    e->totals.generated_tokens_total++;
    px_finish_reason why = PX_FINISH_NONE;
    if (px_sampling_is_stop(&r->sc.s, e->cfg, sr.token)) why = PX_FINISH_STOP;
    else if (r->n_tokens >= r->cap_tokens) why = PX_FINISH_LENGTH; /* max_tokens or the context */
    px_token_event *ev = &new_event(e, r, sr.token, why)->ev;
    ev->logprob = sr.logprob;
    ev->n_top = sr.n_top;
    memcpy(ev->top_ids, sr.top_ids, (size_t)sr.n_top * sizeof *sr.top_ids);
    memcpy(ev->top_logprobs, sr.top_logprobs, (size_t)sr.n_top * sizeof *sr.top_logprobs);
    if (why != PX_FINISH_NONE) retire(e, r);
}

static void sample_range(void *arg, int64_t start, int64_t end, int thread) {
    px_engine *e = arg;
    for (int64_t i = start; i < end; i++) {
        px_request *r = e->row_reqs[i];
        px_sampler_sample(e->samplers[thread], &r->sc.s, e->logits + (size_t)i * (size_t)e->cfg->vocab, r->tokens,
                          r->n_prompt, r->n_tokens, &r->rng, &e->results[i]);
    }
}

void px_engine_sample_rows(px_engine *e) {
    if (e->n_rows > 0) px_pool_run(e->pool, e->n_rows, 1, sample_range, e);
}

void px_engine_finish_step(px_engine *e, int forward_rc) {
    for (int si = 0; si < e->n_step; si++) {
        px_request *r = e->step_reqs[si];
        r->in_step = false;
        if (forward_rc) {
            px_engine_finish_request(e, r, PX_FINISH_ERROR, e->error);
            continue;
        }
        r->n_computed += r->chunk;
        register_full_blocks(e, r);
        if (r->aborted) px_engine_finish_request(e, r, PX_FINISH_ABORT, NULL);
        else if (r->logit_row >= 0) take_sample(e, r, &e->results[r->logit_row]);
    }
    e->n_step = 0;
}
