/* test_engine_sampler.c - unit tests of the sampler (src/engine/sampler.c):
 * greedy and its tie rule, temperature (empirical frequencies against the
 * softmax), top_k (with ties), top_p (small and large vocabularies, against a
 * brute-force nucleus), min_p, repetition / presence / frequency penalties
 * and logit_bias (read back from the processed logits), seeds, logprobs
 * (normalised, sorted, matching the chosen token) and parameter validation. */
#include "px_test.h"
#include "sampler.h"
#include <stdlib.h>
#include <string.h>

static px_sampling params(float temperature) {
    px_sampling s;
    px_sampling_defaults(&s);
    s.temperature = temperature;
    return s;
}

/* Draws n tokens from the same logits with one generator; counts[id]++. */
static void histogram(px_sampler *sm, const px_sampling *s, const float *logits, int vocab, int n, uint64_t seed,
                      int *counts) {
    float *work = malloc((size_t)vocab * sizeof *work);
    uint64_t rng = px_rng_init(seed);
    memset(counts, 0, (size_t)vocab * sizeof *counts);
    for (int i = 0; i < n; i++) {
        memcpy(work, logits, (size_t)vocab * sizeof *work);
        px_sample_result r;
        px_sampler_sample(sm, s, work, NULL, 0, 0, &rng, &r);
        counts[r.token]++;
    }
    free(work);
}

static void test_greedy(void) {
    px_sampler *sm = px_sampler_create(5);
    float l[5] = {1, 3, 0, 3, -1};
    px_sampling s = params(0);
    uint64_t rng = 1, before = rng;
    px_sample_result r;
    px_sampler_sample(sm, &s, l, NULL, 0, 0, &rng, &r);
    CHECK(r.token == 1);      /* ties -> lowest id */
    CHECK(rng == before);     /* greedy draws nothing */
    s.temperature = 1e-7f;    /* tiny temperatures are greedy too, not an overflow */
    px_sampler_sample(sm, &s, l, NULL, 0, 0, &rng, &r);
    CHECK(r.token == 1);
    px_sampler_free(sm);
}

static void test_temperature(void) {
    const int V = 4, N = 40000;
    px_sampler *sm = px_sampler_create(V);
    float l[4] = {0, 1, 2, 0.5f};
    int counts[4];
    for (int ti = 0; ti < 2; ti++) {
        float T = ti ? 0.5f : 1.0f;
        px_sampling s = params(T);
        histogram(sm, &s, l, V, N, 7, counts);
        double z = 0, p[4];
        for (int i = 0; i < V; i++) z += p[i] = exp(l[i] / T);
        for (int i = 0; i < V; i++) {
            double f = (double)counts[i] / N;
            CHECK_MSG(fabs(f - p[i] / z) < 0.01, "T=%g id %d: frequency %.4f, softmax %.4f", T, i, f, p[i] / z);
        }
    }
    px_sampler_free(sm);
}

static void test_top_k(void) {
    px_sampler *sm = px_sampler_create(6);
    float l[6] = {1, 5, 5, 5, 4.9f, 0};
    int counts[6];
    px_sampling s = params(1);
    s.top_k = 2; /* three tied at 5: the two lowest ids win */
    histogram(sm, &s, l, 6, 4000, 3, counts);
    CHECK(counts[1] > 1700 && counts[2] > 1700 && counts[1] + counts[2] == 4000);
    s.top_k = 1; /* top_k 1 is greedy */
    histogram(sm, &s, l, 6, 100, 3, counts);
    CHECK(counts[1] == 100);
    s.top_k = 100; /* larger than the vocabulary: off */
    histogram(sm, &s, l, 6, 4000, 3, counts);
    CHECK(counts[0] > 0 && counts[4] > 0);
    px_sampler_free(sm);
}

static void test_top_p_small(void) {
    px_sampler *sm = px_sampler_create(4);
    float l[4] = {logf(0.15f), logf(0.5f), logf(0.05f), logf(0.3f)};
    int counts[4];
    px_sampling s = params(1);
    s.top_p = 0.7f; /* 0.5 + 0.3 reaches it: {1, 3} */
    histogram(sm, &s, l, 4, 8000, 5, counts);
    CHECK(counts[0] == 0 && counts[2] == 0 && counts[1] > 0 && counts[3] > 0);
    CHECK(fabs((double)counts[1] / 8000 - 0.5 / 0.8) < 0.02);
    s.top_p = 0.9f; /* {1, 3, 0} */
    histogram(sm, &s, l, 4, 8000, 5, counts);
    CHECK(counts[2] == 0 && counts[0] > 0);
    s.top_p = 0.01f; /* only the most likely */
    histogram(sm, &s, l, 4, 200, 5, counts);
    CHECK(counts[1] == 200);
    s.top_p = 0.9f, s.top_k = 2; /* renormalised over the top 2: 0.5/0.8 then 0.3/0.8 -> both needed */
    histogram(sm, &s, l, 4, 4000, 5, counts);
    CHECK(counts[0] == 0 && counts[2] == 0 && counts[3] > 0);
    s.top_p = 0.6f; /* 0.5/0.8 = 0.625 >= 0.6: just id 1 */
    histogram(sm, &s, l, 4, 300, 5, counts);
    CHECK(counts[1] == 300);
    px_sampler_free(sm);
}

static int cmp_desc(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x < y) - (x > y);
}

/* A large vocabulary exercises the thresholded partial sort. */
static void test_top_p_large(void) {
    const int V = 50000;
    px_sampler *sm = px_sampler_create(V);
    float *l = malloc(V * sizeof *l);
    uint64_t x = 11;
    for (int i = 0; i < V; i++) l[i] = (float)(px_rng_uniform(&x) * 12.0);
    /* brute force: sort probabilities, take the nucleus for p = 0.5 */
    double z = 0, *p = malloc(V * sizeof *p);
    for (int i = 0; i < V; i++) z += p[i] = exp(l[i] - 12.0);
    double *sorted = malloc(V * sizeof *sorted);
    memcpy(sorted, p, V * sizeof *p);
    qsort(sorted, V, sizeof *sorted, cmp_desc);
    double acc = 0, cutoff = 0;
    for (int i = 0; i < V; i++)
        if ((acc += sorted[i]) >= 0.5 * z) { cutoff = sorted[i]; break; }
    int *counts = malloc(V * sizeof *counts), outside = 0, drawn = 0;
    px_sampling s = params(1);
    s.top_p = 0.5f;
    histogram(sm, &s, l, V, 1000, 9, counts);
    for (int i = 0; i < V; i++) {
        if (counts[i] && p[i] < cutoff * (1 - 1e-6)) outside++;
        drawn += counts[i] > 0;
    }
    CHECK_MSG(outside == 0, "top_p on %d tokens drew %d tokens outside the nucleus", V, outside);
    CHECK(drawn > 100); /* the nucleus is wide here */
    free(l), free(p), free(sorted), free(counts);
    px_sampler_free(sm);
}

static void test_min_p(void) {
    px_sampler *sm = px_sampler_create(4);
    float l[4] = {logf(0.5f), logf(0.3f), logf(0.15f), logf(0.05f)};
    int counts[4];
    px_sampling s = params(1);
    s.min_p = 0.2f; /* keep p >= 0.1 */
    histogram(sm, &s, l, 4, 8000, 13, counts);
    CHECK(counts[3] == 0 && counts[2] > 0);
    CHECK(fabs((double)counts[2] / 8000 - 0.15 / 0.95) < 0.02);
    s.min_p = 0.5f; /* keep p >= 0.25 */
    histogram(sm, &s, l, 4, 8000, 13, counts);
    CHECK(counts[2] == 0 && counts[3] == 0 && counts[1] > 0);
    s.min_p = 1.0f; /* only the top */
    histogram(sm, &s, l, 4, 100, 13, counts);
    CHECK(counts[0] == 100);
    px_sampler_free(sm);
}

static void test_penalties_and_bias(void) {
    px_sampler *sm = px_sampler_create(5);
    px_sampling s = params(0);
    uint64_t rng = 1;
    px_sample_result r;
    int32_t seq[] = {0, 3, 1, 1, 2}; /* prompt {0, 3}, generated {1, 1, 2} */
    float l[5] = {2, -2, 1, 4, 0.5f};
    s.repetition_penalty = 2;
    px_sampler_sample(sm, &s, l, seq, 2, 5, &rng, &r);
    CHECK(l[0] == 1 && l[1] == -4 && l[2] == 0.5f && l[3] == 2 && l[4] == 0.5f); /* HF: / if > 0, * if < 0 */
    CHECK(r.token == 3);
    float m[5] = {2, -2, 1, 4, 0.5f};
    s = params(0);
    s.presence_penalty = 0.25f, s.frequency_penalty = 0.5f; /* generated only: 1 twice, 2 once */
    px_sampler_sample(sm, &s, m, seq, 2, 5, &rng, &r);
    CHECK(m[0] == 2 && m[1] == -3.25f && m[2] == 0.25f && m[3] == 4 && m[4] == 0.5f);
    float n[5] = {2, -2, 1, 4, 0.5f};
    int32_t ids[2] = {4, 3};
    float vals[2] = {10, -1};
    s = params(0);
    s.n_logit_bias = 2, s.logit_bias_ids = ids, s.logit_bias_values = vals;
    px_sampler_sample(sm, &s, n, seq, 2, 5, &rng, &r);
    CHECK(n[4] == 10.5f && n[3] == 3 && r.token == 4);
    px_sampler_free(sm);
}

static void test_seed(void) {
    const int V = 64;
    px_sampler *sm = px_sampler_create(V);
    float l[64], w[64];
    for (int i = 0; i < V; i++) l[i] = sinf((float)i);
    px_sampling s = params(1.2f);
    s.top_p = 0.9f;
    int32_t a[50], b[50], c[50];
    uint64_t ra = px_rng_init(5), rb = px_rng_init(5), rc = px_rng_init(6);
    px_sample_result r;
    int diff = 0;
    for (int i = 0; i < 50; i++) {
        memcpy(w, l, sizeof l), px_sampler_sample(sm, &s, w, NULL, 0, 0, &ra, &r), a[i] = r.token;
        memcpy(w, l, sizeof l), px_sampler_sample(sm, &s, w, NULL, 0, 0, &rb, &r), b[i] = r.token;
        memcpy(w, l, sizeof l), px_sampler_sample(sm, &s, w, NULL, 0, 0, &rc, &r), c[i] = r.token;
        diff += a[i] != c[i];
    }
    CHECK(memcmp(a, b, sizeof a) == 0);
    CHECK(diff > 10);
    px_sampler_free(sm);
}

static void test_logprobs(void) {
    const int V = 20;
    px_sampler *sm = px_sampler_create(V);
    float l[20];
    for (int i = 0; i < V; i++) l[i] = (float)((i * 7) % 5) * 0.7f - 1; /* with ties */
    px_sampling s = params(0.8f);
    s.top_logprobs = PX_MAX_TOP_LOGPROBS;
    uint64_t rng = 3;
    px_sample_result r;
    px_sampler_sample(sm, &s, l, NULL, 0, 0, &rng, &r);
    CHECK(r.n_top == V);
    double sum = 0;
    bool sorted = true, has_token = false;
    for (int i = 0; i < r.n_top; i++) {
        sum += exp(r.top_logprobs[i]);
        if (i && (r.top_logprobs[i] > r.top_logprobs[i - 1] ||
                  (r.top_logprobs[i] == r.top_logprobs[i - 1] && r.top_ids[i] < r.top_ids[i - 1])))
            sorted = false;
        if (r.top_ids[i] == r.token) has_token = r.top_logprobs[i] == r.logprob;
    }
    CHECK_MSG(fabs(sum - 1) < 1e-5, "probabilities of all %d tokens sum to %.8f", V, sum);
    CHECK(sorted && has_token);
    /* logprobs are taken at temperature 1 whatever the sampling temperature */
    double z = 0;
    for (int i = 0; i < V; i++) z += exp(l[i]);
    CHECK(fabs(r.logprob - (l[r.token] - log(z))) < 1e-5);
    s.top_logprobs = 0; /* logprob of the token only */
    px_sampler_sample(sm, &s, l, NULL, 0, 0, &rng, &r);
    CHECK(r.n_top == 0 && r.logprob < 0);
    s.top_logprobs = -1;
    px_sampler_sample(sm, &s, l, NULL, 0, 0, &rng, &r);
    CHECK(r.n_top == 0 && r.logprob == 0);
    px_sampler_free(sm);
}

static void test_validate(void) {
    px_sampling s = params(1);
    CHECK(px_sampling_validate(&s, 10) == 0);
    s.top_p = 0;
    CHECK(px_sampling_validate(&s, 10) == -1 && strstr(px_error_get(), "top_p"));
    s = params(1), s.min_p = 1.5f;
    CHECK(px_sampling_validate(&s, 10) == -1 && strstr(px_error_get(), "min_p"));
    s = params(1), s.top_k = -1;
    CHECK(px_sampling_validate(&s, 10) == -1 && strstr(px_error_get(), "top_k"));
    s = params(1), s.repetition_penalty = 0;
    CHECK(px_sampling_validate(&s, 10) == -1 && strstr(px_error_get(), "repetition_penalty"));
    s = params(1), s.top_logprobs = 21;
    CHECK(px_sampling_validate(&s, 10) == -1 && strstr(px_error_get(), "top_logprobs"));
    s = params(NAN);
    CHECK(px_sampling_validate(&s, 10) == -1 && strstr(px_error_get(), "temperature"));
    int32_t bad = 10;
    s = params(1), s.n_stop_ids = 1, s.stop_ids = &bad;
    CHECK(px_sampling_validate(&s, 10) == -1 && strstr(px_error_get(), "stop"));
    s = params(1), s.presence_penalty = INFINITY;
    CHECK(px_sampling_validate(&s, 10) == -1 && strstr(px_error_get(), "presence"));
}

int main(void) {
    test_greedy();
    test_temperature();
    test_top_k();
    test_top_p_small();
    test_top_p_large();
    test_min_p();
    test_penalties_and_bias();
    test_seed();
    test_logprobs();
    test_validate();
    return px_test_finish();
}
