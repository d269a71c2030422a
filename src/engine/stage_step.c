/* stage_step.c - one continuous-batching step of a pipeline stage.
 *
 * stage_run_step() is entered with the lock held:
 *   1. drop released requests (blocks back to the pool, OUT_RELEASE when
 *      asked to propagate; memory freed after the next delivery) and free
 *      retired token arrays (no step is in flight now); then hold the step
 *      while a burst of items is still arriving (`more`, at most
 *      PX_STAGE_BURST_WAIT_MS) or, on a first stage with a pipeline depth,
 *      while that many micro-batches are out (each expires after 3 x the
 *      measured round trip), so arrivals join one step;
 *   2. plan: up to max_batch_size requests (on a first stage with a depth
 *      of k, at most a k-th of the live requests: k equal micro-batches) and
 *      max_tokens_per_batch positions, first every request with exactly one pending position
 *      (decodes), then chunks (<= chunked_prefill_size) of the others, in
 *      list order; token ids and positions are copied into the batch, and
 *      hidden rows are recorded as spans of the requests' nodes (fully
 *      taken nodes are unlinked);
 *   3. without the lock: copy the spans into the batch input, run
 *      px_model_forward(), and on the last stage sample every row whose
 *      chunk ends a sample item (in parallel over the pool);
 *   4. with the lock again: advance each request, queue OUT_FORWARD (the
 *      chunk's rows of the output, for the next stage) or, on the last
 *      stage, OUT_TOKEN with its stop decision (EOS / stop ids, max_tokens,
 *      context); finished requests are dropped; served requests move to the
 *      back of the list so the next step starts with the others; a first
 *      stage records the requests it sent on for sampling as a micro-batch
 *      out, until each is back (its token or its release).
 * A failed forward pass (which validates the batch) fails every request of
 * the step with OUT_ERROR; the stage itself keeps running.
 */
#include "stage_internal.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- micro-batches in flight (first stage of a longer pipeline) ---- */

#define FLIGHT_FIRST_EXPIRY 1.0 /* seconds, before any round trip was measured */
#define FLIGHT_MIN_EXPIRY 0.02
#define FLIGHT_MAX_EXPIRY 2.0

static double flight_expiry(const px_stage *st) {
    if (st->rtt_ema <= 0) return FLIGHT_FIRST_EXPIRY;
    return PX_MAX(FLIGHT_MIN_EXPIRY, PX_MIN(FLIGHT_MAX_EXPIRY, 3 * st->rtt_ema));
}

void stage_flight_return(px_stage *st, stage_req *r) {
    if (r->flight < 0) return;
    stage_flight *f = &st->flights[r->flight];
    r->flight = -1;
    if (f->outstanding > 0 && --f->outstanding == 0) {
        double rtt = px_time_now() - f->t_emit;
        st->rtt_ema = st->rtt_ema > 0 ? 0.8 * st->rtt_ema + 0.2 * rtt : rtt;
        pthread_cond_signal(&st->wake);
    }
}

/* Micro-batches still out and not yet expired; *earliest_expiry gets the first expiry among them. */
int stage_flights_active(px_stage *st, double now, double *earliest_expiry) {
    const double expiry = flight_expiry(st);
    int n = 0;
    *earliest_expiry = 0;
    for (int i = 0; i < STAGE_MAX_FLIGHTS; i++) {
        const stage_flight *f = &st->flights[i];
        if (f->outstanding == 0 || now - f->t_emit >= expiry) continue;
        n++;
        if (*earliest_expiry == 0 || f->t_emit + expiry < *earliest_expiry) *earliest_expiry = f->t_emit + expiry;
    }
    return n;
}

/* After a step of the first stage: the requests it sent out for sampling form one flight. */
static void start_flight(px_stage *st) {
    int n = 0;
    for (int si = 0; si < st->n_step; si++) n += st->step[si]->step_sample && !st->step[si]->released;
    if (n == 0) return;
    int slot = -1;
    for (int i = 0; i < STAGE_MAX_FLIGHTS && slot < 0; i++)
        if (st->flights[i].outstanding == 0) slot = i;
    if (slot < 0) return; /* too many out: these are simply not tracked */
    st->flights[slot] = (stage_flight){n, px_time_now()};
    for (int si = 0; si < st->n_step; si++)
        if (st->step[si]->step_sample && !st->step[si]->released) st->step[si]->flight = slot;
}

/* True while the next step should wait: a burst of items is still arriving
 * (at most PX_STAGE_BURST_WAIT_MS), or on a first stage with a depth,
 * `depth` micro-batches are out (new work waits to join the next one that
 * returns). Sets wait_until. */
static bool hold_step(px_stage *st) {
    const double now = px_time_now(), burst_end = st->burst_since + PX_STAGE_BURST_WAIT_MS * 1e-3;
    st->wait_until = 0;
    if (st->burst_open && now < burst_end) return st->wait_until = burst_end, true;
    if (!st->first || st->last || st->depth <= 0) return false;
    double earliest;
    if (stage_flights_active(st, now, &earliest) < st->depth) return false;
    st->wait_until = earliest;
    return true;
}

/* ---- dropping ---- */

static void bury(px_stage *st, stage_req *r) {
    if (st->n_graveyard == st->cap_graveyard) {
        st->cap_graveyard = st->cap_graveyard ? 2 * st->cap_graveyard : 16;
        st->graveyard = px_realloc(st->graveyard, (size_t)st->cap_graveyard * sizeof *st->graveyard);
    }
    st->graveyard[st->n_graveyard++] = r;
}

static void drop(px_stage *st, stage_req *r) {
    stage_flight_return(st, r);
    stage_list_remove(&st->live, r);
    px_kvpool_release_table(st->mem.blocks, r->blocks, &r->n_blocks);
    st->pending_positions -= r->n_recv - r->n_computed;
    if (r->propagate && !st->last) {
        pending_event *pe = stage_queue_event(st, PX_STAGE_OUT_RELEASE, r->id);
        pe->ev.item = (px_stage_item){.kind = PX_STAGE_RELEASE, .request_id = r->id, .propagate = true};
    }
    bury(st, r);
}

void stage_drop_released(px_stage *st) {
    for (stage_req *r = st->live.head, *next; r; r = next) {
        next = r->next;
        if (r->released && !r->in_step) drop(st, r);
    }
}

/* ---- planning ---- */

/* Records the hidden rows of r's next `chunk` positions as spans, unlinking
 * the nodes this step takes completely. */
static void take_hidden(px_stage *st, stage_req *r, int chunk, int dst_row) {
    while (chunk > 0) {
        hidden_node *h = r->h_head;
        int take = PX_MIN(chunk, h->n - h->used);
        st->spans[st->n_spans++] = (hidden_span){h->rows + (size_t)h->used * (size_t)st->hidden, take, dst_row};
        h->used += take;
        dst_row += take;
        chunk -= take;
        if (h->used == h->n) {
            r->h_head = h->next;
            if (!r->h_head) r->h_tail = NULL;
            h->next = st->consumed;
            st->consumed = h;
        }
    }
}

static void add_to_step(px_stage *st, stage_req *r, int chunk) {
    int si = st->n_step++;
    st->step[si] = r;
    st->b_seqs[si] = (px_seq_blocks){r->blocks, r->n_blocks};
    r->in_step = true;
    r->chunk = chunk;
    r->t0 = st->n_batch;
    for (int j = 0; j < chunk; j++) {
        int t = st->n_batch++;
        st->b_tokens[t] = r->tokens[r->n_computed + j];
        st->b_pos[t] = r->n_computed + j;
        st->b_seq[t] = si;
    }
    r->step_sample = r->sample_pending && r->n_computed + chunk == r->n_recv;
    r->row = -1;
    if (st->last && r->step_sample) {
        r->row = st->n_rows;
        r->step_tokens = r->tokens;
        st->row_reqs[st->n_rows] = r;
        st->b_rows[st->n_rows++] = st->n_batch - 1;
    }
    if (!st->first) take_hidden(st, r, chunk, r->t0);
}

/* Most requests one step may take: max_batch_size, and on a first stage with
 * a pipeline depth k, a k-th of the live requests (rounded up), so that the
 * running set splits into k micro-batches of equal size that keep the k
 * stages busy at once. Without this split, requests that start together stay
 * one micro-batch for ever and the stages take turns: each waits while the
 * others work, and the pipeline is no faster than one node. */
static int step_request_cap(const px_stage *st) {
    int cap = st->opt.max_batch_size;
    if (!st->first || st->last || st->depth <= 1) return cap;
    int live = 0;
    for (const stage_req *r = st->live.head; r; r = r->next) live += !r->released;
    return PX_MAX(1, PX_MIN(cap, (live + st->depth - 1) / st->depth));
}

static void plan(px_stage *st) {
    st->n_step = st->n_batch = st->n_rows = st->n_spans = 0;
    int budget = st->opt.max_tokens_per_batch;
    const int max_requests = step_request_cap(st);
    for (int pass = 0; pass < 2; pass++)
        for (stage_req *r = st->live.head; r; r = r->next) {
            if (st->n_step == max_requests || budget == 0) return;
            int pending = r->n_recv - r->n_computed;
            if (pending <= 0 || r->in_step || r->released || (pending == 1) != (pass == 0)) continue;
            int chunk = PX_MIN(PX_MIN(pending, st->opt.chunked_prefill_size), budget);
            add_to_step(st, r, chunk);
            budget -= chunk;
        }
}

/* ---- the forward pass and sampling (without the lock) ---- */

static void gather_hidden(px_stage *st) {
    const size_t H = (size_t)st->hidden;
    for (int i = 0; i < st->n_spans; i++) {
        const hidden_span *s = &st->spans[i];
        memcpy(st->b_hidden + (size_t)s->dst_row * H, s->src, (size_t)s->rows * H * sizeof(float));
    }
    for (hidden_node *h = st->consumed, *next; h; h = next) {
        next = h->next;
        free(h);
    }
    st->consumed = NULL;
}

static void sample_range(void *arg, int64_t start, int64_t end, int thread) {
    px_stage *st = arg;
    for (int64_t i = start; i < end; i++) {
        stage_req *r = st->row_reqs[i];
        int n_seq = r->n_computed + r->chunk; /* the sequence so far, ending at the sampled row */
        if (r->n_sampled == 0) px_rng_skip(&r->sc.s, &r->rng, n_seq - r->n_prompt); /* generated before a re-prefill */
        px_sampler_sample(st->samplers[thread], &r->sc.s, st->b_out + (size_t)i * (size_t)st->cfg->vocab,
                          r->step_tokens, r->n_prompt, n_seq, &r->rng, &st->results[i]);
        r->n_sampled++;
    }
}

static int run_forward(px_stage *st) {
    int32_t dummy_row = 0; /* the last slice wants >= 1 logit row even when no chunk is sampled */
    px_batch b = {.n_tokens = st->n_batch, .tokens = st->b_tokens, .pos = st->b_pos, .seq = st->b_seq,
                  .n_seqs = st->n_step, .seqs = st->b_seqs, .n_logits = st->n_rows ? st->n_rows : 1,
                  .logit_rows = st->n_rows ? st->b_rows : &dummy_row};
    int rc = px_model_forward(st->model, st->pool, &st->mem.kv, &b, st->first ? NULL : st->b_hidden, st->b_out);
    if (rc) snprintf(st->step_error, sizeof st->step_error, "forward pass failed: %s", px_error_get());
    else if (st->last && st->n_rows) px_pool_run(st->pool, st->n_rows, 1, sample_range, st);
    return rc;
}

/* ---- after the step (with the lock) ---- */

static void emit_forward(px_stage *st, stage_req *r) {
    int pos = r->n_computed - r->chunk;
    pending_event *pe = stage_queue_event(st, PX_STAGE_OUT_FORWARD, r->id);
    pe->ev.item = (px_stage_item){.kind = PX_STAGE_FORWARD, .request_id = r->id, .pos = pos, .n = r->chunk,
                                  .tokens = st->b_tokens + r->t0,
                                  .hidden = st->b_out + (size_t)r->t0 * (size_t)st->hidden,
                                  .n_hidden = (int64_t)r->chunk * st->hidden, .sample = r->step_sample,
                                  .sampling = pos == 0 ? &r->sc.s : NULL, .n_prompt = pos == 0 ? r->n_prompt : 0};
}

static void emit_token(px_stage *st, stage_req *r, const px_sample_result *res) {
    const int q = r->n_computed; /* the position the new token takes */
    px_finish_reason why = PX_FINISH_NONE;
    if (px_sampling_is_stop(&r->sc.s, st->cfg, res->token)) why = PX_FINISH_STOP;
    else if (q + 1 >= r->cap_positions) why = PX_FINISH_LENGTH;
    pending_event *pe = stage_queue_event(st, PX_STAGE_OUT_TOKEN, r->id);
    pe->ev.token_pos = q;
    px_token_event *ev = &pe->ev.token;
    ev->request_id = r->id;
    ev->token = res->token;
    ev->logprob = res->logprob;
    ev->n_top = res->n_top;
    memcpy(ev->top_ids, res->top_ids, (size_t)res->n_top * sizeof *res->top_ids);
    memcpy(ev->top_logprobs, res->top_logprobs, (size_t)res->n_top * sizeof *res->top_logprobs);
    ev->finish = why;
    ev->prompt_tokens = r->n_prompt;
    ev->completion_tokens = q + 1 - r->n_prompt;
    st->totals.tokens_sampled++;
    if (why != PX_FINISH_NONE) {
        st->totals.requests_finished++;
        stage_mark_released(st, r, false);
    }
}

static void finish_step(px_stage *st, int rc) {
    for (int si = 0; si < st->n_step; si++) {
        stage_req *r = st->step[si];
        r->in_step = false;
        r->n_computed += r->chunk;
        st->pending_positions -= r->chunk;
        st->totals.positions_total += (uint64_t)r->chunk;
        if (r->step_sample) r->sample_pending = false;
        if (r->released) continue;
        if (rc) stage_fail(st, r, r->id, st->step_error);
        else if (!st->last) emit_forward(st, r);
        else if (r->row >= 0) emit_token(st, r, &st->results[r->row]);
        if (!r->released) { /* round robin: served requests go behind the others */
            stage_list_remove(&st->live, r);
            stage_list_push_back(&st->live, r);
        }
    }
    if (!rc && st->first && !st->last) start_flight(st);
    st->n_step = 0;
    stage_drop_released(st);
}

int stage_run_step(px_stage *st) {
    stage_drop_released(st);
    for (int i = 0; i < st->n_retired; i++) free(st->retired[i]);
    st->n_retired = 0;
    if (hold_step(st)) return 0;
    plan(st);
    if (st->n_step == 0) return 0;
    const int positions = st->n_batch;
    pthread_mutex_unlock(&st->mu);
    double t0 = px_time_now();
    if (!st->first) gather_hidden(st);
    int rc = run_forward(st);
    double busy = px_time_now() - t0;
    pthread_mutex_lock(&st->mu);
    st->totals.busy_seconds += busy;
    st->totals.steps_total++;
    finish_step(st, rc);
    return positions;
}
