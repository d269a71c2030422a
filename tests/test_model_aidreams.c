/* test_model_aidreams.c - our forward pass against llama.cpp's reference
 * outputs for the real tiny model ../shared/models/aidreams-260k:
 *   - final-position logits of 5 prompts within max-abs 1e-4 (f32),
 *   - 32 greedy tokens identical,
 *   - the same when the 5 prompts run together as one multi-sequence batch,
 *     when a prompt is prefilled in small chunks, when the layers run as two
 *     chained slices [0,k) + [k,L), and with 1 vs 2 threads (bit-identical).
 *   - quantized on load to q8_0: the reference greedy ids except at the two
 *     near-ties the model's README documents (prompt 2 step 2, prompt 4 step
 *     18: a quantized run may take the other token there and continue
 *     differently); chained slices and 1 vs 2 threads still bit-identical.
 *   - with an f16 KV cache: every greedy id identical.
 *   - the loading progress callback: from 0 up to the slice's tensor bytes.
 * usage: test_model_aidreams MODEL_DIR */
#include "model.h"
#include "px_test.h"
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#define N_PROMPTS 5
#define N_GEN 32
#define BLOCK 16

typedef struct {
    int32_t prompt[128];
    int n_prompt;
    int32_t generated[N_GEN];
} reference;

static const char *model_dir;
static int slice_dtype = -1;                 /* weight dtype of the chained-slice test */
static px_dtype kv_dtype = PX_DTYPE_F32;     /* KV cache dtype of cache_init */
static reference refs[N_PROMPTS];
static float ref_logits[N_PROMPTS][512];

static int read_ids(const cJSON *arr, int32_t *out, int max) {
    int n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, arr) if (n < max) out[n++] = it->valueint;
    return n;
}

static void load_references(void) {
    char path[4096];
    snprintf(path, sizeof path, "%s/reference/greedy_32.json", model_dir);
    char *text = px_read_file(path, NULL);
    if (!text) { fprintf(stderr, "%s\n", px_error_get()); exit(1); }
    cJSON *root = cJSON_Parse(text);
    free(text);
    const cJSON *results = cJSON_GetObjectItem(root, "results");
    CHECK(cJSON_GetArraySize(results) == N_PROMPTS);
    for (int i = 0; i < N_PROMPTS; i++) {
        const cJSON *r = cJSON_GetArrayItem(results, i);
        refs[i].n_prompt = read_ids(cJSON_GetObjectItem(r, "prompt_ids"), refs[i].prompt, 128);
        CHECK(read_ids(cJSON_GetObjectItem(r, "generated_ids"), refs[i].generated, N_GEN) == N_GEN);
    }
    cJSON_Delete(root);
    snprintf(path, sizeof path, "%s/reference/final_logits.f32", model_dir);
    size_t len;
    char *raw = px_read_file(path, &len);
    CHECK(raw && len == sizeof ref_logits);
    if (raw) memcpy(ref_logits, raw, sizeof ref_logits);
    free(raw);
}

/* One sequence per prompt, each with its own contiguous range of blocks. */
typedef struct {
    px_kv_cache *kv;
    px_seq_blocks seqs[N_PROMPTS];
    int32_t blocks[N_PROMPTS][128 / BLOCK];
} cache;

static void cache_init(cache *c, const px_model *m) {
    const px_model_config *cfg = px_model_config_of(m);
    int per_seq = 128 / BLOCK;
    c->kv = px_kv_cache_create_typed(px_model_end(m) - px_model_start(m), cfg->n_kv_heads * cfg->head_dim, BLOCK,
                                     N_PROMPTS * per_seq, kv_dtype);
    for (int s = 0; s < N_PROMPTS; s++) {
        /* interleave blocks of different sequences so paging is exercised */
        for (int b = 0; b < per_seq; b++) c->blocks[s][b] = b * N_PROMPTS + (N_PROMPTS - 1 - s);
        c->seqs[s] = (px_seq_blocks){c->blocks[s], per_seq};
    }
}

/* Runs tokens of one sequence at positions [start, start+n) in chunks; logits of the last token. */
static int run_seq(px_model *m, px_pool *pool, cache *c, int s, const int32_t *tokens, int n, int start, int chunk,
                   float *logits) {
    int32_t pos[128], seq[128];
    for (int off = 0; off < n; off += chunk) {
        int len = PX_MIN(chunk, n - off);
        for (int i = 0; i < len; i++) pos[i] = start + off + i, seq[i] = s;
        int32_t last = len - 1;
        px_batch b = {.n_tokens = len, .tokens = tokens + off, .pos = pos, .seq = seq, .n_seqs = N_PROMPTS,
                      .seqs = c->seqs, .n_logits = 1, .logit_rows = &last};
        if (px_model_forward(m, pool, c->kv, &b, NULL, logits)) return -1;
    }
    return 0;
}

static float max_abs_diff(const float *a, const float *b, int n) {
    float d = 0;
    for (int i = 0; i < n; i++) d = fmaxf(d, fabsf(a[i] - b[i]));
    return d;
}

static void test_each_prompt_alone(px_model *m, px_pool *pool, int chunk) {
    cache c;
    cache_init(&c, m);
    float logits[512];
    for (int p = 0; p < N_PROMPTS; p++) {
        CHECK(run_seq(m, pool, &c, p, refs[p].prompt, refs[p].n_prompt, 0, chunk, logits) == 0);
        float d = max_abs_diff(logits, ref_logits[p], 512);
        CHECK_MSG(d <= 1e-4f, "prompt %d chunk %d: final logits differ by %g", p, chunk, d);
        int pos = refs[p].n_prompt, ok = 1;
        for (int g = 0; g < N_GEN; g++) {
            int32_t tok = (int32_t)px_argmax(logits, 512);
            if (tok != refs[p].generated[g]) {
                fprintf(stderr, "prompt %d step %d: got %d want %d\n", p, g, tok, refs[p].generated[g]);
                ok = 0;
                break;
            }
            if (g + 1 < N_GEN && run_seq(m, pool, &c, p, &tok, 1, pos++, 1, logits)) ok = 0;
        }
        CHECK_MSG(ok, "prompt %d chunk %d: greedy continuation differs", p, chunk);
    }
    px_kv_cache_free(c.kv);
}

/* All prompts in one prefill batch, then all sequences decoded together. */
static void test_batched(px_model *m, px_pool *pool) {
    cache c;
    cache_init(&c, m);
    int32_t tokens[640], pos[640], seq[640], last[N_PROMPTS];
    int n = 0;
    for (int p = 0; p < N_PROMPTS; p++) {
        for (int i = 0; i < refs[p].n_prompt; i++) tokens[n] = refs[p].prompt[i], pos[n] = i, seq[n++] = p;
        last[p] = n - 1;
    }
    float logits[N_PROMPTS][512];
    px_batch b = {.n_tokens = n, .tokens = tokens, .pos = pos, .seq = seq, .n_seqs = N_PROMPTS, .seqs = c.seqs,
                  .n_logits = N_PROMPTS, .logit_rows = last};
    CHECK(px_model_forward(m, pool, c.kv, &b, NULL, &logits[0][0]) == 0);
    for (int p = 0; p < N_PROMPTS; p++) {
        float d = max_abs_diff(logits[p], ref_logits[p], 512);
        CHECK_MSG(d <= 1e-4f, "batched prompt %d: final logits differ by %g", p, d);
    }
    int mismatches = 0;
    for (int g = 0; g < N_GEN; g++) {
        for (int p = 0; p < N_PROMPTS; p++) {
            tokens[p] = (int32_t)px_argmax(logits[p], 512);
            mismatches += tokens[p] != refs[p].generated[g];
            pos[p] = refs[p].n_prompt + g, seq[p] = p, last[p] = p;
        }
        b = (px_batch){.n_tokens = N_PROMPTS, .tokens = tokens, .pos = pos, .seq = seq, .n_seqs = N_PROMPTS,
                       .seqs = c.seqs, .n_logits = N_PROMPTS, .logit_rows = last};
        CHECK(px_model_forward(m, pool, c.kv, &b, NULL, &logits[0][0]) == 0);
    }
    CHECK_MSG(mismatches == 0, "batched decode: %d tokens differ from the reference", mismatches);
    px_kv_cache_free(c.kv);
}

/* [0,k) then [k,L) gives bit-identical logits to the whole model. */
static void test_chained_slices(px_model *full, px_pool *pool) {
    const px_model_config *cfg = px_model_config_of(full);
    const reference *r = &refs[1];
    cache cf;
    cache_init(&cf, full);
    float want[512];
    CHECK(run_seq(full, pool, &cf, 0, r->prompt, r->n_prompt, 0, 128, want) == 0);
    for (int k = 1; k < cfg->n_layers; k++) {
        px_load_options o1 = {.start = 0, .end = k, .dtype = slice_dtype};
        px_load_options o2 = {.start = k, .end = cfg->n_layers, .dtype = slice_dtype};
        px_model *a = px_model_load(model_dir, &o1), *b = px_model_load(model_dir, &o2);
        CHECK(a && b && px_model_is_first(a) && !px_model_is_last(a) && !px_model_is_first(b) && px_model_is_last(b));
        if (!a || !b) return;
        cache ca, cb;
        cache_init(&ca, a);
        cache_init(&cb, b);
        int32_t pos[128], seq[128] = {0}, last = r->n_prompt - 1;
        for (int i = 0; i < r->n_prompt; i++) pos[i] = i;
        float *hidden = px_malloc((size_t)r->n_prompt * cfg->hidden * sizeof(float)), got[512];
        px_batch b1 = {.n_tokens = r->n_prompt, .tokens = r->prompt, .pos = pos, .seq = seq, .n_seqs = 1,
                       .seqs = ca.seqs, .n_logits = 1, .logit_rows = &last};
        CHECK(px_model_forward(a, pool, ca.kv, &b1, NULL, hidden) == 0);
        b1.seqs = cb.seqs;
        b1.tokens = NULL;
        CHECK(px_model_forward(b, pool, cb.kv, &b1, hidden, got) == 0);
        CHECK_MSG(memcmp(got, want, sizeof got) == 0, "slices [0,%d)+[%d,%d) differ from the full model", k, k,
                  cfg->n_layers);
        free(hidden);
        px_kv_cache_free(ca.kv);
        px_kv_cache_free(cb.kv);
        px_model_free(a);
        px_model_free(b);
    }
    px_kv_cache_free(cf.kv);
}

/* The loading progress callback: starts at 0, grows, ends at the total;
 * the slices' totals add up to the whole model's (the embedding counted
 * once per slice that needs it: it is tied, so [k,L) reads it as lm_head). */
typedef struct {
    int calls;
    uint64_t last, total;
    bool monotonic, same_total;
} progress_log;

static void on_progress(void *user, uint64_t done, uint64_t total) {
    progress_log *p = user;
    if (!p->calls) p->total = total, p->monotonic = p->same_total = true;
    if (p->calls && done < p->last) p->monotonic = false;
    if (total != p->total || done > total) p->same_total = false;
    p->last = done;
    p->calls++;
}

static void test_load_progress(void) {
    progress_log whole = {0}, a = {0}, b = {0};
    px_model *m = px_model_load(model_dir, &(px_load_options){.dtype = -1, .progress = on_progress, .progress_user = &whole});
    CHECK(m != NULL);
    int L = m ? px_model_config_of(m)->n_layers : 0;
    CHECK_MSG(whole.calls > 3 && whole.monotonic && whole.same_total && whole.last == whole.total && whole.total > 0,
              "progress: %d calls, last %llu of %llu", whole.calls, (unsigned long long)whole.last,
              (unsigned long long)whole.total);
    /* the whole model's tensors: its file less the header */
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", model_dir);
    FILE *f = fopen(path, "rb");
    long file = -1;
    if (f && !fseek(f, 0, SEEK_END)) file = ftell(f);
    if (f) fclose(f);
    CHECK_MSG(file > 0 && whole.total <= (uint64_t)file && whole.total > (uint64_t)file * 9 / 10,
              "progress total %llu vs file %ld", (unsigned long long)whole.total, file);
    px_model *s1 = px_model_load(model_dir, &(px_load_options){.start = 0, .end = 1, .dtype = -1, .progress = on_progress,
                                                               .progress_user = &a});
    px_model *s2 = px_model_load(model_dir, &(px_load_options){.start = 1, .end = L, .dtype = -1, .progress = on_progress,
                                                               .progress_user = &b});
    CHECK(s1 && s2 && a.last == a.total && b.last == b.total && a.total < whole.total && b.total < whole.total);
    CHECK_MSG(a.total + b.total > whole.total, "slices %llu + %llu vs whole %llu (the tied embedding read twice)",
              (unsigned long long)a.total, (unsigned long long)b.total, (unsigned long long)whole.total);
    px_model_free(s1);
    px_model_free(s2);
    px_model_free(m);
}

static void test_thread_count_independent(px_model *m) {
    float l1[512], l2[512];
    px_pool *p1 = px_pool_create(1), *p2 = px_pool_create(2);
    cache c1, c2;
    cache_init(&c1, m);
    cache_init(&c2, m);
    CHECK(run_seq(m, p1, &c1, 0, refs[2].prompt, refs[2].n_prompt, 0, 128, l1) == 0);
    CHECK(run_seq(m, p2, &c2, 0, refs[2].prompt, refs[2].n_prompt, 0, 128, l2) == 0);
    CHECK_MSG(memcmp(l1, l2, sizeof l1) == 0, "1 and 2 threads give different logits");
    px_kv_cache_free(c1.kv);
    px_kv_cache_free(c2.kv);
    px_pool_destroy(p1);
    px_pool_destroy(p2);
}

/* A bad batch is refused with an error, never read out of bounds. */
static void test_bad_batches(px_model *m, px_pool *pool) {
    cache c;
    cache_init(&c, m);
    float logits[512];
    int32_t tok = 600, pos = 0, seq = 0, last = 0;
    px_batch b = {.n_tokens = 1, .tokens = &tok, .pos = &pos, .seq = &seq, .n_seqs = 1, .seqs = c.seqs,
                  .n_logits = 1, .logit_rows = &last};
    CHECK(px_model_forward(m, pool, c.kv, &b, NULL, logits) == -1 && strstr(px_error_get(), "vocabulary"));
    tok = 5, pos = 128;
    CHECK(px_model_forward(m, pool, c.kv, &b, NULL, logits) == -1 && strstr(px_error_get(), "position"));
    pos = 0, seq = 3;
    CHECK(px_model_forward(m, pool, c.kv, &b, NULL, logits) == -1 && strstr(px_error_get(), "sequence"));
    seq = 0, last = 1;
    CHECK(px_model_forward(m, pool, c.kv, &b, NULL, logits) == -1 && strstr(px_error_get(), "logit row"));
    px_kv_cache_free(c.kv);
}

/* greedy continuation of every prompt; returns the first step that differs
 * from the reference in *first_diff (N_GEN when none) */
static void greedy_all(px_model *m, px_pool *pool, int first_diff[N_PROMPTS]) {
    cache c;
    cache_init(&c, m);
    float logits[512];
    for (int p = 0; p < N_PROMPTS; p++) {
        first_diff[p] = N_GEN;
        CHECK(run_seq(m, pool, &c, p, refs[p].prompt, refs[p].n_prompt, 0, 128, logits) == 0);
        int pos = refs[p].n_prompt;
        for (int g = 0; g < N_GEN; g++) {
            int32_t tok = (int32_t)px_argmax(logits, 512);
            if (tok != refs[p].generated[g]) {
                first_diff[p] = g;
                break;
            }
            if (g + 1 < N_GEN) CHECK(run_seq(m, pool, &c, p, &tok, 1, pos++, 1, logits) == 0);
        }
    }
    px_kv_cache_free(c.kv);
}

static void test_q8_0(px_pool *pool) {
    px_load_options o = {.dtype = PX_DTYPE_Q8_0};
    px_model *q = px_model_load(model_dir, &o);
    CHECK(q != NULL);
    if (!q) return;
    int diff[N_PROMPTS];
    greedy_all(q, pool, diff);
    for (int p = 0; p < N_PROMPTS; p++) {
        bool near_tie = (p == 2 && diff[p] == 2) || (p == 4 && diff[p] == 18);
        CHECK_MSG(diff[p] == N_GEN || near_tie, "q8_0: prompt %d departs from the reference at step %d", p, diff[p]);
        if (diff[p] < N_GEN) printf("q8_0: prompt %d takes the other token at the near-tie, step %d\n", p, diff[p]);
    }
    test_thread_count_independent(q);
    slice_dtype = PX_DTYPE_Q8_0;
    test_chained_slices(q, pool);
    slice_dtype = -1;
    px_model_free(q);
}

static void test_f16_kv(px_model *m, px_pool *pool) {
    kv_dtype = PX_DTYPE_F16;
    int diff[N_PROMPTS];
    greedy_all(m, pool, diff);
    for (int p = 0; p < N_PROMPTS; p++)
        CHECK_MSG(diff[p] == N_GEN, "f16 KV cache: prompt %d departs from the reference at step %d", p, diff[p]);
    kv_dtype = PX_DTYPE_F32;
}

int main(int argc, char **argv) {
    if (argc < 2) return fprintf(stderr, "usage: %s MODEL_DIR\n", argv[0]), 2;
    model_dir = argv[1];
    load_references();
    px_model *m = px_model_load(model_dir, NULL);
    if (!m) return fprintf(stderr, "%s\n", px_error_get()), 1;
    px_pool *pool = px_pool_create(2);
    test_each_prompt_alone(m, pool, 128);
    test_each_prompt_alone(m, pool, 3);
    test_batched(m, pool);
    test_chained_slices(m, pool);
    test_thread_count_independent(m);
    test_bad_batches(m, pool);
    test_q8_0(pool);
    test_f16_kv(m, pool);
    test_load_progress();
    /* converted on load: f32 -> f16 / bf16 still runs and stays close */
    for (int dt = PX_DTYPE_F16; dt <= PX_DTYPE_BF16; dt++) {
        px_load_options o = {.dtype = dt};
        px_model *q = px_model_load(model_dir, &o);
        CHECK(q != NULL);
        cache c;
        cache_init(&c, q);
        float logits[512];
        CHECK(run_seq(q, pool, &c, 0, refs[0].prompt, refs[0].n_prompt, 0, 128, logits) == 0);
        float d = max_abs_diff(logits, ref_logits[0], 512);
        CHECK_MSG(d < (dt == PX_DTYPE_F16 ? 0.02f : 0.2f), "%s weights: logits differ by %g", px_dtype_name(dt), d);
        CHECK(px_argmax(logits, 512) == refs[0].generated[0]);
        px_kv_cache_free(c.kv);
        px_model_free(q);
    }
    px_pool_destroy(pool);
    px_model_free(m);
    return px_test_finish();
}
