/* sampler.c - logit processing and token choice (see sampler.h for the order
 * of operations and their semantics).
 *
 * Filtering works on a candidate array of (scaled logit, id) pairs:
 *   - top_k: a heap (k <= 1024) or a quickselect puts the k best (larger
 *     logit, then lower id) first, which are then sorted;
 *   - top_p: on the sorted top-k a scan; on a whole vocabulary a quickselect
 *     weighted by probability mass finds the nucleus without sorting it;
 *   - min_p: a threshold on the scaled logit (max + ln(min_p)).
 * The draw walks the kept candidates in a fixed order, accumulating
 * exp(x - max) in double, and picks the first whose running sum passes
 * u * total.
 */
#include "sampler.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Below this temperature, logits / temperature could overflow: greedy instead. */
#define PX_GREEDY_BELOW 1e-5f
/* top_k up to this uses a heap, larger ones a quickselect */
#define HEAP_TOP_K_MAX 1024

typedef struct {
    float x;
    int32_t id;
} cand;

struct px_sampler {
    int vocab;
    int32_t *counts; /* [vocab], all zero between calls */
    float *logprobs; /* [vocab] */
    float *weights;  /* [vocab] exp(x - max) of the kept candidates */
    cand *cand;      /* [vocab] */
};

px_sampler *px_sampler_create(int vocab) {
    px_sampler *s = px_calloc(1, sizeof *s);
    s->vocab = vocab;
    s->counts = px_calloc((size_t)vocab, sizeof *s->counts);
    s->logprobs = px_malloc((size_t)vocab * sizeof *s->logprobs);
    s->weights = px_malloc((size_t)vocab * sizeof *s->weights);
    s->cand = px_malloc((size_t)vocab * sizeof *s->cand);
    return s;
}

void px_sampler_free(px_sampler *s) {
    if (!s) return;
    free(s->counts);
    free(s->logprobs);
    free(s->weights);
    free(s->cand);
    free(s);
}

/* ---- validation ---- */

static int check_ids(const char *what, const int32_t *ids, int n, int vocab) {
    if (n < 0 || (n > 0 && !ids)) return px_error_set("%s: %d ids but no array", what, n), -1;
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= vocab)
            return px_error_set("%s: token id %d is outside the vocabulary [0, %d)", what, ids[i], vocab), -1;
    return 0;
}

int px_sampling_validate(const px_sampling *p, int vocab) {
    if (!(p->temperature >= 0) || !isfinite(p->temperature))
        return px_error_set("temperature must be a finite number >= 0 (got %g)", p->temperature), -1;
    if (p->top_k < 0) return px_error_set("top_k must be >= 0 (got %d)", p->top_k), -1;
    if (!(p->top_p > 0 && p->top_p <= 1)) return px_error_set("top_p must be in (0, 1] (got %g)", p->top_p), -1;
    if (!(p->min_p >= 0 && p->min_p <= 1)) return px_error_set("min_p must be in [0, 1] (got %g)", p->min_p), -1;
    if (!(p->repetition_penalty > 0) || !isfinite(p->repetition_penalty))
        return px_error_set("repetition_penalty must be a finite number > 0 (got %g)", p->repetition_penalty), -1;
    if (!isfinite(p->presence_penalty) || !isfinite(p->frequency_penalty))
        return px_error_set("presence_penalty and frequency_penalty must be finite"), -1;
    if (p->top_logprobs < -1 || p->top_logprobs > PX_MAX_TOP_LOGPROBS)
        return px_error_set("top_logprobs must be in [0, %d] (got %d)", PX_MAX_TOP_LOGPROBS, p->top_logprobs), -1;
    if (p->max_tokens < 1) return px_error_set("max_tokens must be >= 1 (got %d)", p->max_tokens), -1;
    if (check_ids("logit_bias", p->logit_bias_ids, p->n_logit_bias, vocab)) return -1;
    if (p->n_logit_bias > 0 && !p->logit_bias_values) return px_error_set("logit_bias: no values"), -1;
    for (int i = 0; i < p->n_logit_bias; i++)
        if (!isfinite(p->logit_bias_values[i])) return px_error_set("logit_bias: values must be finite"), -1;
    return check_ids("stop token ids", p->stop_ids, p->n_stop_ids, vocab);
}

/* ---- the generator: splitmix64 ---- */

uint64_t px_rng_init(uint64_t seed) { return seed; }

double px_rng_uniform(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

/* ---- logit processors ---- */

static void apply_logit_bias(const px_sampling *p, float *logits) {
    for (int i = 0; i < p->n_logit_bias; i++) logits[p->logit_bias_ids[i]] += p->logit_bias_values[i];
}

/* Hugging Face semantics, once per distinct token of prompt + generated. */
static void apply_repetition(px_sampler *s, float pen, float *logits, const int32_t *tokens, int n) {
    if (pen == 1.0f) return;
    for (int i = 0; i < n; i++) {
        int32_t t = tokens[i];
        if (s->counts[t]) continue;
        s->counts[t] = 1;
        logits[t] = logits[t] > 0 ? logits[t] / pen : logits[t] * pen;
    }
    for (int i = 0; i < n; i++) s->counts[tokens[i]] = 0;
}

/* OpenAI semantics over the generated tokens. */
static void apply_presence_frequency(px_sampler *s, const px_sampling *p, float *logits, const int32_t *gen, int n) {
    if (p->presence_penalty == 0 && p->frequency_penalty == 0) return;
    for (int i = 0; i < n; i++) s->counts[gen[i]]++;
    for (int i = 0; i < n; i++) {
        int32_t t = gen[i];
        if (!s->counts[t]) continue;
        logits[t] -= p->frequency_penalty * (float)s->counts[t] + p->presence_penalty;
        s->counts[t] = 0;
    }
}

/* ---- logprobs ---- */

static void log_softmax(const float *x, int n, float *out) {
    float m = x[0];
    for (int i = 1; i < n; i++) m = x[i] > m ? x[i] : m;
    double sum = 0;
    for (int i = 0; i < n; i++) sum += expf(x[i] - m);
    float lse = (float)(m + log(sum));
    for (int i = 0; i < n; i++) out[i] = x[i] - lse;
}

/* The n largest of lp[vocab], descending, ties to the lower id. */
static void top_n(const float *lp, int vocab, int n, int32_t *ids, float *vals) {
    int have = 0;
    for (int i = 0; i < vocab; i++) {
        if (have == n && !(lp[i] > vals[n - 1])) continue;
        int j = have < n ? have++ : n - 1;
        for (; j > 0 && lp[i] > vals[j - 1]; j--) ids[j] = ids[j - 1], vals[j] = vals[j - 1];
        ids[j] = i;
        vals[j] = lp[i];
    }
}

/* ---- candidates ---- */

static bool better(cand a, cand b) { return a.x > b.x || (a.x == b.x && a.id < b.id); }

static int cand_cmp(const void *pa, const void *pb) {
    cand a = *(const cand *)pa, b = *(const cand *)pb;
    return better(a, b) ? -1 : better(b, a) ? 1 : 0;
}

static void swap_cand(cand *a, cand *b) {
    cand t = *a;
    *a = *b;
    *b = t;
}

/* Quickselect: afterwards c[0, k) are the k best of c[0, n). */
static void select_best(cand *c, int n, int k) {
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2; /* median of three as the pivot */
        if (better(c[mid], c[lo])) swap_cand(&c[mid], &c[lo]);
        if (better(c[hi], c[lo])) swap_cand(&c[hi], &c[lo]);
        if (better(c[hi], c[mid])) swap_cand(&c[hi], &c[mid]);
        cand pivot = c[mid];
        int i = lo, j = hi;
        while (i <= j) {
            while (better(c[i], pivot)) i++;
            while (better(pivot, c[j])) j--;
            if (i <= j) swap_cand(&c[i++], &c[j--]);
        }
        if (k - 1 <= j) hi = j;
        else if (k - 1 >= i) lo = i;
        else break;
    }
}

/* Small k: a min-heap (worst kept candidate on top) over one pass, which
 * rejects almost every candidate with one comparison. Afterwards c[0, k) are
 * the k best, in heap order. */
static void sift_down(cand *h, int k, int i) {
    for (;;) {
        int l = 2 * i + 1, r = l + 1, w = i;
        if (l < k && better(h[w], h[l])) w = l;
        if (r < k && better(h[w], h[r])) w = r;
        if (w == i) return;
        swap_cand(&h[i], &h[w]);
        i = w;
    }
}

static void heap_best(cand *c, int n, int k) {
    for (int i = k / 2 - 1; i >= 0; i--) sift_down(c, k, i);
    for (int i = k; i < n; i++)
        if (better(c[i], c[0])) {
            swap_cand(&c[0], &c[i]);
            sift_down(c, k, 0);
        }
}

/* Moves the candidates with x >= t to the front (keeping their order); returns how many. */
static int partition_at_least(cand *c, int n, float t) {
    int k = 0;
    for (int i = 0; i < n; i++)
        if (c[i].x >= t) swap_cand(&c[k++], &c[i]);
    return k;
}

/* Length of the shortest sorted prefix of c[0, n) whose mass reaches target. */
static int prefix_reaching(const cand *c, int n, float m, double target) {
    double acc = 0;
    for (int i = 0; i < n; i++)
        if ((acc += expf(c[i].x - m)) >= target) return i + 1;
    return -1;
}

/* Lomuto partition of c[lo, hi) around its median-of-three: returns p with
 * c[lo, p) better than c[p] and c[p + 1, hi) worse (the order is strict). */
static int partition_pivot(cand *c, int lo, int hi) {
    int mid = lo + (hi - lo) / 2, last = hi - 1;
    if (better(c[mid], c[lo])) swap_cand(&c[mid], &c[lo]);
    if (better(c[last], c[lo])) swap_cand(&c[last], &c[lo]);
    if (better(c[mid], c[last])) swap_cand(&c[mid], &c[last]); /* the median is now at last */
    int p = lo;
    for (int j = lo; j < last; j++)
        if (better(c[j], c[last])) swap_cand(&c[p++], &c[j]);
    swap_cand(&c[p], &c[last]);
    return p;
}

static double mass(const cand *c, int lo, int hi, float m) {
    double z = 0;
    for (int i = lo; i < hi; i++) z += expf(c[i].x - m);
    return z;
}

/* top_p: rearranges c[0, n) so that the nucleus - the fewest best candidates
 * whose mass reaches top_p of the total - comes first, and returns its size.
 * Sorted input: a scan. Otherwise a quickselect weighted by mass: expected
 * O(n), and only the last small range is sorted. */
static int nucleus(cand *c, int n, bool sorted, float m, float top_p) {
    double target = top_p * mass(c, 0, n, m), acc = 0; /* acc: mass of c[0, lo), all inside */
    int lo = 0, hi = n;
    while (!sorted && hi - lo > 32) {
        int p = partition_pivot(c, lo, hi);
        double up = mass(c, lo, p, m), piv = expf(c[p].x - m);
        if (acc + up >= target) hi = p;
        else if (acc + up + piv >= target) return p + 1;
        else acc += up + piv, lo = p + 1;
    }
    if (!sorted) qsort(c + lo, (size_t)(hi - lo), sizeof *c, cand_cmp);
    int len = prefix_reaching(c + lo, hi - lo, m, target - acc);
    return len > 0 ? lo + len : hi;
}

/* min_p: keeps x >= min_x (a prefix when sorted, order kept otherwise). */
static int cut_min_p(cand *c, int n, bool sorted, float min_x) {
    if (sorted) {
        int k = 0;
        while (k < n && c[k].x >= min_x) k++;
        return k;
    }
    return partition_at_least(c, n, min_x);
}

static int32_t draw(px_sampler *s, const cand *c, int n, float m, uint64_t *rng) {
    float *w = s->weights;
    double total = 0;
    for (int i = 0; i < n; i++) total += w[i] = expf(c[i].x - m);
    double r = px_rng_uniform(rng) * total, acc = 0;
    for (int i = 0; i < n; i++)
        if ((acc += w[i]) > r) return c[i].id;
    return c[n - 1].id;
}

static int32_t sample_tempered(px_sampler *s, const px_sampling *p, const float *logits, uint64_t *rng) {
    const int V = s->vocab;
    cand *c = s->cand;
    float m = -INFINITY;
    for (int i = 0; i < V; i++) {
        c[i] = (cand){logits[i] / p->temperature, i};
        m = c[i].x > m ? c[i].x : m;
    }
    float min_x = p->min_p > 0 ? m + logf(p->min_p) : -INFINITY;
    int n = V;
    bool sorted = false;
    if (p->top_k > 0 && p->top_k < V) {
        if (p->top_k <= HEAP_TOP_K_MAX) heap_best(c, V, p->top_k);
        else select_best(c, V, p->top_k);
        n = p->top_k;
        qsort(c, (size_t)n, sizeof *c, cand_cmp);
        sorted = true;
    }
    if (p->top_p < 1) {
        n = nucleus(c, n, sorted, m, p->top_p); /* sorted stays as it was: the nucleus is a prefix either way */
    }
    if (p->min_p > 0) n = cut_min_p(c, n, sorted, min_x);
    return draw(s, c, n, m, rng);
}

/* ---- the whole pipeline ---- */

void px_sampler_sample(px_sampler *s, const px_sampling *p, float *logits, const int32_t *tokens, int n_prompt,
                       int n_tokens, uint64_t *rng, px_sample_result *out) {
    apply_logit_bias(p, logits);
    apply_repetition(s, p->repetition_penalty, logits, tokens, n_tokens);
    apply_presence_frequency(s, p, logits, tokens + n_prompt, n_tokens - n_prompt);
    out->n_top = 0;
    out->logprob = 0;
    if (p->top_logprobs >= 0) {
        log_softmax(logits, s->vocab, s->logprobs);
        out->n_top = PX_MIN(p->top_logprobs, s->vocab);
        top_n(s->logprobs, s->vocab, out->n_top, out->top_ids, out->top_logprobs);
    }
    if (p->temperature < PX_GREEDY_BELOW) out->token = (int32_t)px_argmax(logits, s->vocab);
    else out->token = sample_tempered(s, p, logits, rng);
    if (p->top_logprobs >= 0) out->logprob = s->logprobs[out->token];
}

void px_sampling_defaults(px_sampling *s) {
    *s = (px_sampling){.temperature = 1.0f, .top_k = 0, .top_p = 1.0f, .min_p = 0.0f, .repetition_penalty = 1.0f,
                       .top_logprobs = -1, .max_tokens = 16};
}

/* ---- request copies, stops, generator skips ---- */

static void *dup_array(const void *src, int n, size_t size) {
    if (n <= 0 || !src) return NULL;
    return memcpy(px_malloc((size_t)n * size), src, (size_t)n * size);
}

void px_sampling_copy_init(px_sampling_copy *c, const px_sampling *src) {
    c->s = *src;
    c->bias_ids = dup_array(src->logit_bias_ids, src->n_logit_bias, sizeof(int32_t));
    c->bias_values = dup_array(src->logit_bias_values, src->n_logit_bias, sizeof(float));
    c->stop_ids = dup_array(src->stop_ids, src->n_stop_ids, sizeof(int32_t));
    c->s.logit_bias_ids = c->bias_ids;
    c->s.logit_bias_values = c->bias_values;
    c->s.stop_ids = c->stop_ids;
}

void px_sampling_copy_free(px_sampling_copy *c) {
    free(c->bias_ids);
    free(c->bias_values);
    free(c->stop_ids);
    c->bias_ids = c->stop_ids = NULL;
    c->bias_values = NULL;
}

bool px_sampling_is_stop(const px_sampling *p, const px_model_config *cfg, int32_t token) {
    if (!p->ignore_eos)
        for (int i = 0; i < cfg->n_eos; i++)
            if (cfg->eos_ids[i] == token) return true;
    for (int i = 0; i < p->n_stop_ids; i++)
        if (p->stop_ids[i] == token) return true;
    return false;
}

void px_rng_skip(const px_sampling *p, uint64_t *rng, int n) {
    if (p->temperature < PX_GREEDY_BELOW) return;
    for (int i = 0; i < n; i++) px_rng_uniform(rng);
}
