/* cmd_generate.c - `parallax generate`: load a model on this machine and
 * continue a prompt. The prompt is prefilled in chunks, then one token is
 * decoded at a time: greedy at --temp 0 (ties to the lowest id), otherwise
 * sampled from softmax(logits / temp) with a seeded generator. */
#include "cli.h"
#include "model.h"
#include "tokenizer.h"
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PREFILL_CHUNK 512
#define KV_BLOCK 16

typedef struct {
    const char *model_dir, *prompt, *logits_out;
    int32_t *ids;
    int n_ids;
    long n_predict, threads, seed;
    double temp;
    int dtype, kv_dtype;
    bool print_ids, ignore_eos;
} generate_args;

static void print_help(void) {
    printf("usage: parallax generate -m MODEL_DIR (-p TEXT | --ids 1,2,3) [options]\n"
           "  -m, --model DIR      Hugging Face model directory (config.json + safetensors)\n"
           "  -p, --prompt TEXT    prompt text (needs the model's tokenizer.json)\n"
           "      --ids LIST       prompt as comma-separated token ids\n"
           "  -n, --n-predict N    tokens to generate (default 32)\n"
           "      --temp T         sampling temperature; 0 = greedy (default 0.8)\n"
           "      --seed S         random seed (default: from the clock)\n"
           "      --dtype D        weight dtype: f32, f16, bf16, q8_0, q4_0 (default: as stored)\n"
           "      --kv-dtype D     KV cache dtype: f32 or f16 (default f32)\n"
           "  -t, --threads N      threads (default: all CPUs)\n"
           "      --ignore-eos     keep generating after an end-of-sequence token\n"
           "      --print-ids      also print a last line with the generated ids\n"
           "      --logits-out F   write the logits of the last prompt position (raw f32)\n");
}

static int parse_args(int argc, char **argv, generate_args *a) {
    *a = (generate_args){.n_predict = 32, .temp = 0.8, .seed = -1, .dtype = -1, .kv_dtype = PX_DTYPE_F32, .threads = 0};
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i], *v;
        if (!strcmp(f, "-h") || !strcmp(f, "--help")) return print_help(), 1;
        if (!strcmp(f, "--print-ids")) { a->print_ids = true; continue; }
        if (!strcmp(f, "--ignore-eos")) { a->ignore_eos = true; continue; }
        if (!(v = px_flag_value(argc, argv, &i))) return 2;
        double d;
        if (!strcmp(f, "-m") || !strcmp(f, "--model")) a->model_dir = v;
        else if (!strcmp(f, "-p") || !strcmp(f, "--prompt")) a->prompt = v;
        else if (!strcmp(f, "--logits-out")) a->logits_out = v;
        else if (!strcmp(f, "--ids")) { free(a->ids); if (!px_flag_int_list(f, v, &a->ids, &a->n_ids)) return 2; }
        else if (!strcmp(f, "-n") || !strcmp(f, "--n-predict")) { if (!px_flag_int(f, v, 0, 1 << 24, &a->n_predict)) return 2; }
        else if (!strcmp(f, "-t") || !strcmp(f, "--threads")) { if (!px_flag_int(f, v, 1, 1024, &a->threads)) return 2; }
        else if (!strcmp(f, "--seed")) { if (!px_flag_int(f, v, 0, INT32_MAX, &a->seed)) return 2; }
        else if (!strcmp(f, "--temp")) { if (!px_flag_float(f, v, 0, 100, &d)) return 2; a->temp = d; }
        else if (!strcmp(f, "--kv-dtype")) {
            a->kv_dtype = px_dtype_parse(v);
            if (a->kv_dtype != PX_DTYPE_F32 && a->kv_dtype != PX_DTYPE_F16)
                return px_usage_error("--kv-dtype: '%s' is not a KV cache dtype (f32, f16)", v);
        } else if (!strcmp(f, "--dtype")) {
            if ((a->dtype = px_dtype_parse(v)) < 0) return px_usage_error("--dtype: unknown dtype '%s' (f32, f16, bf16, q8_0, q4_0)", v);
        } else return px_usage_error("generate: unknown flag '%s' (see parallax generate --help)", f);
    }
    if (!a->model_dir) return px_usage_error("generate: -m MODEL_DIR is required");
    if (!a->ids && !a->prompt) return px_usage_error("generate: give a prompt with -p TEXT or --ids LIST");
    if (a->ids && a->prompt) return px_usage_error("generate: give either -p or --ids, not both");
    return 0;
}

/* ---- sampling ---- */

static uint64_t rng_next(uint64_t *s) { /* splitmix64 */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int32_t sample_token(float *logits, int vocab, double temp, uint64_t *rng) {
    if (temp <= 0) return (int32_t)px_argmax(logits, vocab);
    for (int i = 0; i < vocab; i++) logits[i] = (float)(logits[i] / temp);
    px_softmax(logits, vocab);
    double r = (double)(rng_next(rng) >> 11) * (1.0 / 9007199254740992.0), acc = 0;
    for (int i = 0; i < vocab; i++)
        if ((acc += logits[i]) > r) return i;
    return vocab - 1;
}

static bool is_eos(const px_model_config *c, int32_t id) {
    for (int i = 0; i < c->n_eos; i++)
        if (c->eos_ids[i] == id) return true;
    return false;
}

/* ---- the generation loop ---- */

typedef struct {
    px_tokenizer *tok;          /* NULL when the model has no tokenizer.json: ids are printed */
    px_tokenizer_stream *text;
    px_model *model;
    px_pool *pool;
    px_kv_cache *kv;
    px_seq_blocks seq;
    float *logits;
} session;

/* Runs tokens [0, n) at positions start.. through the model; logits of the last one. */
static int run_tokens(session *s, const int32_t *tokens, int n, int start) {
    int32_t *pos = px_malloc((size_t)n * sizeof *pos), *seq = px_calloc((size_t)n, sizeof *seq);
    int rc = 0;
    for (int off = 0; off < n && !rc; off += PREFILL_CHUNK) {
        int len = PX_MIN(PREFILL_CHUNK, n - off);
        for (int i = 0; i < len; i++) pos[i] = start + off + i;
        int32_t last = len - 1;
        px_batch b = {.n_tokens = len, .tokens = tokens + off, .pos = pos, .seq = seq, .n_seqs = 1,
                      .seqs = &s->seq, .n_logits = 1, .logit_rows = &last};
        rc = px_model_forward(s->model, s->pool, s->kv, &b, NULL, s->logits);
    }
    free(pos);
    free(seq);
    return rc;
}

static int write_logits(const char *path, const float *logits, int vocab) {
    if (px_write_file(path, logits, sizeof(float) * (size_t)vocab) == 0) return 0;
    return px_error_set("--logits-out: cannot write %s", px_error_get()), -1;
}

/* Prints a token as soon as it makes complete text (or its id without a tokenizer). */
static void print_token(session *s, int32_t tok, bool first) {
    size_t len = 0;
    const char *text = s->text ? px_tokenizer_stream_feed(s->text, tok, &len) : NULL;
    if (text) fwrite(text, 1, len, stdout);
    else printf("%s%" PRId32, first ? "" : " ", tok);
    fflush(stdout);
}

static void finish_text(session *s) {
    size_t len = 0;
    const char *text = s->text ? px_tokenizer_stream_finish(s->text, &len) : NULL;
    if (text) fwrite(text, 1, len, stdout);
    printf("\n");
}

static int generate(const generate_args *a, session *s, int32_t *out, int *n_out) {
    const px_model_config *c = px_model_config_of(s->model);
    uint64_t rng = a->seed >= 0 ? (uint64_t)a->seed : (uint64_t)time(NULL);
    double t0 = px_time_now();
    if (run_tokens(s, a->ids, a->n_ids, 0)) return -1;
    double t1 = px_time_now();
    if (a->logits_out && write_logits(a->logits_out, s->logits, c->vocab)) return -1;
    int n = 0, pos = a->n_ids;
    while (n < a->n_predict && pos < c->max_pos) {
        int32_t tok = sample_token(s->logits, c->vocab, a->temp, &rng);
        out[n++] = tok;
        print_token(s, tok, n == 1);
        if (!a->ignore_eos && is_eos(c, tok)) break;
        if (n == a->n_predict || pos + 1 > c->max_pos) break;
        if (run_tokens(s, &tok, 1, pos++)) return -1;
    }
    finish_text(s);
    double t2 = px_time_now();
    if (n < a->n_predict && pos >= c->max_pos) px_log_warn("stopped at the model's context length (%d)", c->max_pos);
    px_log_info("prompt %d tokens in %.3f s (%.1f tok/s), generated %d tokens in %.3f s (%.1f tok/s)", a->n_ids,
                t1 - t0, a->n_ids / (t1 - t0), n, t2 - t1, n > 1 ? (n - 1) / (t2 - t1) : 0.0);
    *n_out = n;
    return 0;
}

static void print_id_line(const int32_t *ids, int n) {
    for (int i = 0; i < n; i++) printf("%s%" PRId32, i ? "," : "", ids[i]);
    printf("\n");
}

static bool file_exists(const char *dir, const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (f) fclose(f);
    return f != NULL;
}

/* Prints the prompt as text; running it through the stream decoder first makes
 * the continuation's leading-space rules those of the full text. */
static int echo_prompt(const generate_args *a, session *s) {
    for (int i = 0; i < a->n_ids; i++) {
        size_t len = 0;
        const char *text = px_tokenizer_stream_feed(s->text, a->ids[i], &len);
        if (!text) {
            fprintf(stderr, "parallax: --ids: %s\n", px_error_get());
            return -1;
        }
        fwrite(text, 1, len, stdout);
    }
    return 0;
}

/* Loads the tokenizer when the model has one (required for -p) and encodes the prompt. */
static int load_tokenizer(generate_args *a, session *s) {
    if (!a->prompt && !file_exists(a->model_dir, "tokenizer.json")) return 0;
    if (!(s->tok = px_tokenizer_load(a->model_dir))) {
        fprintf(stderr, "parallax: %s\n", px_error_get());
        return -1;
    }
    s->text = px_tokenizer_stream_new(s->tok, PX_TOK_SKIP_SPECIAL);
    if (!a->prompt) return echo_prompt(a, s);
    size_t n = 0;
    int32_t *ids = px_tokenizer_encode(s->tok, a->prompt, strlen(a->prompt), PX_TOK_ADD_SPECIAL, &n);
    if (!ids) {
        fprintf(stderr, "parallax: -p: %s\n", px_error_get());
        return -1;
    }
    if (n == 0) {
        free(ids);
        fprintf(stderr, "parallax: -p: the prompt encodes to no tokens\n");
        return -1;
    }
    a->ids = ids;
    a->n_ids = (int)n;
    return echo_prompt(a, s);
}

int px_cmd_generate(int argc, char **argv) {
    generate_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc) return free(a.ids), rc == 1 ? 0 : rc;
    px_load_options opt = {.start = 0, .end = 0, .dtype = a.dtype};
    session s = {0};
    s.model = px_model_load(a.model_dir, &opt);
    if (!s.model) {
        fprintf(stderr, "parallax: %s\n", px_error_get());
        return free(a.ids), 1;
    }
    const px_model_config *c = px_model_config_of(s.model);
    if (load_tokenizer(&a, &s)) {
        px_model_free(s.model);
        px_tokenizer_stream_free(s.text);
        px_tokenizer_free(s.tok);
        return free(a.ids), 1;
    }
    if (a.n_ids > c->max_pos) {
        fprintf(stderr, "parallax: %s: prompt has %d tokens, more than the model's context (%d)\n", a.prompt ? "-p" : "--ids",
                a.n_ids, c->max_pos);
        px_model_free(s.model);
        px_tokenizer_stream_free(s.text);
        px_tokenizer_free(s.tok);
        return free(a.ids), 1;
    }
    int ctx = (int)PX_MIN((long)c->max_pos, a.n_ids + a.n_predict);
    int n_blocks = (ctx + KV_BLOCK - 1) / KV_BLOCK;
    int32_t *blocks = px_malloc((size_t)n_blocks * sizeof *blocks), *out = px_malloc((size_t)(a.n_predict + 1) * 4);
    for (int i = 0; i < n_blocks; i++) blocks[i] = i;
    s.seq = (px_seq_blocks){blocks, n_blocks};
    s.kv = px_kv_cache_create_typed(c->n_layers, c->n_kv_heads * c->head_dim, KV_BLOCK, n_blocks, (px_dtype)a.kv_dtype);
    s.pool = px_pool_create((int)a.threads);
    s.logits = px_malloc((size_t)c->vocab * sizeof(float));
    int n_out = 0;
    rc = generate(&a, &s, out, &n_out);
    if (rc) fprintf(stderr, "parallax: %s\n", px_error_get());
    else if (a.print_ids) print_id_line(out, n_out);
    free(s.logits);
    px_pool_destroy(s.pool);
    px_kv_cache_free(s.kv);
    px_model_free(s.model);
    px_tokenizer_stream_free(s.text);
    px_tokenizer_free(s.tok);
    free(blocks);
    free(out);
    free(a.ids);
    return rc ? 1 : 0;
}
