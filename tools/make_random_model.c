/* make_random_model.c - test tooling: writes a random-weight transformer in the
 * shape of a real model, as a Hugging Face directory (config.json +
 * safetensors, optionally sharded) and/or as a GGUF file that llama.cpp loads,
 * both holding exactly the same weight values.
 *
 *   make_random_model --shape qwen3-0.6b --hf-out DIR --gguf-out FILE.gguf
 *   make_random_model --shape tiny-llama --hf-out DIR --hf-dtype f32 --shards 3
 *   make_random_model --arch qwen3 --hidden 256 --layers 4 ... (explicit dims)
 *
 * Values: every tensor draws from its own stream, a xoshiro256** generator
 * seeded (through splitmix64) with the global seed mixed with the FNV-1a hash
 * of the tensor's Hugging Face name, so the values of a tensor do not depend
 * on which other tensors exist or on the sharding. Normals come from the
 * Marsaglia polar method in double precision.
 *   - matrices, embeddings, lm_head and biases: N(0, std^2), std = 0.02 for
 *     the full-size shapes, 0.2 for the tiny ones (--std overrides)
 *   - RMSNorm weights (input/post-attention/final norm, Qwen3 q_norm/k_norm):
 *     1.0 + N(0, norm_std^2), norm_std = 0.1 by default (--norm-std 0 gives
 *     exactly 1.0). The noise makes a forward pass that skips or misplaces a
 *     norm weight visible in the logits.
 * Each value is rounded once to the Hugging Face dtype (--hf-dtype, default
 * bf16, round to nearest even); the GGUF stores that rounded value in F32,
 * which is exact for bf16 and f16.
 *
 * GGUF conventions (those of llama.cpp's convert_hf_to_gguf.py, which we
 * follow, not copy):
 *   - ggml lists dimensions innermost first: an HF weight [out, in] is
 *     ne = {in, out} with the same bytes.
 *   - Llama/Mistral: HF q_proj/k_proj rows are in the rotate_half (NeoX)
 *     layout, llama.cpp's "llama" architecture rotates adjacent pairs, so the
 *     rows of each head are permuted: GGUF row 2j+s of a head is HF row
 *     s*head_dim/2 + j. Qwen2/Qwen3 use NeoX rope in llama.cpp: no permutation.
 *   - Llama-3 rope scaling is a "rope_freqs.weight" tensor [head_dim/2] of
 *     per-frequency divisors (1, factor, or the smooth blend in between).
 *   - The vocabulary is "no_vocab" with <arch>.vocab_size: llama.cpp then
 *     creates vocab_size dummy tokens; the oracle feeds token ids directly.
 *     llama-server needs a real one (it detokenizes every token):
 *     --gguf-tokenizer DIR writes the byte-level BPE vocabulary of
 *     DIR/tokenizer.json as llama.cpp's "gpt2" model (tokens by id, padded
 *     to vocab_size with "[PADn]" unused tokens; added tokens are control
 *     tokens when "special", else user-defined; merges as "a b" strings;
 *     special ids and chat template from DIR/tokenizer_config.json).
 *   - --gguf-dtype f16 stores 2-D weights as F16 (1-D norms stay F32), the
 *     value rounded from the HF value: identical to it with --hf-dtype f16.
 */
#include "px_base.h"
#include "tensor.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ------------------------------------------------------------------ PRNG */

typedef struct {
    uint64_t s[4];
    bool has_spare;
    double spare;
} px_rng;

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t fnv1a64(const char *s) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
    return h;
}

static void rng_seed(px_rng *r, uint64_t seed, const char *name) {
    uint64_t x = seed ^ fnv1a64(name);
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
    r->has_spare = false;
    r->spare = 0.0;
}

static inline uint64_t rotl64(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static inline uint64_t rng_next(px_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl64(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl64(s[3], 45);
    return result;
}

/* uniform in (-1, 1) */
static inline double rng_sym(px_rng *r) { return (double)(int64_t)rng_next(r) * 0x1p-63; }

/* standard normal, Marsaglia polar method */
static inline double rng_normal(px_rng *r) {
    if (r->has_spare) {
        r->has_spare = false;
        return r->spare;
    }
    double u, v, q;
    do {
        u = rng_sym(r);
        v = rng_sym(r);
        q = u * u + v * v;
    } while (q >= 1.0 || q == 0.0);
    double m = sqrt(-2.0 * log(q) / q);
    r->spare = v * m;
    r->has_spare = true;
    return u * m;
}

/* ---------------------------------------------------------------- shapes */

typedef enum { ARCH_LLAMA, ARCH_QWEN2, ARCH_QWEN3, ARCH_MISTRAL } arch_t;

typedef struct {
    const char *name;
    arch_t arch;
    int hidden, layers, heads, kv_heads, head_dim, inter, vocab, max_pos;
    double rope_theta, eps;
    bool tied;
    bool llama3_scaling;
    double rope_factor, low_freq, high_freq;
    int orig_max_pos;
    int bos, eos;
    double std; /* default std of matrices, embeddings and biases */
} shape_t;

static const shape_t shapes[] = {
    {"qwen3-0.6b", ARCH_QWEN3, 1024, 28, 16, 8, 128, 3072, 151936, 40960, 1000000.0, 1e-6, true,
     false, 0, 0, 0, 0, 151643, 151645, 0.02},
    {"llama-3.2-1b", ARCH_LLAMA, 2048, 16, 32, 8, 64, 8192, 128256, 131072, 500000.0, 1e-5, true,
     true, 32.0, 1.0, 4.0, 8192, 128000, 128001, 0.02},
    /* tiny shapes for fast tests; head_dim != hidden/heads where the arch allows it.
     * Their std is 0.2: with std 0.02 a tied tiny model only repeats its last
     * input token, which makes greedy continuations a weak test. */
    {"tiny-qwen3", ARCH_QWEN3, 64, 2, 4, 2, 32, 128, 300, 4096, 1000000.0, 1e-6, true,
     false, 0, 0, 0, 0, 1, 2, 0.2},
    /* llama3 scaling with a short original context, so positions ~100 feel it */
    {"tiny-llama", ARCH_LLAMA, 128, 3, 4, 2, 32, 256, 320, 2048, 500000.0, 1e-5, false,
     true, 8.0, 1.0, 4.0, 64, 1, 2, 0.2},
    {"tiny-qwen2", ARCH_QWEN2, 96, 2, 6, 2, 16, 192, 300, 4096, 1000000.0, 1e-6, true,
     false, 0, 0, 0, 0, 1, 2, 0.2},
    {"tiny-mistral", ARCH_MISTRAL, 128, 2, 8, 4, 16, 224, 300, 4096, 1000000.0, 1e-5, false,
     false, 0, 0, 0, 0, 1, 2, 0.2},
};

static const char *arch_hf_name(arch_t a) {
    switch (a) {
    case ARCH_LLAMA: return "LlamaForCausalLM";
    case ARCH_QWEN2: return "Qwen2ForCausalLM";
    case ARCH_QWEN3: return "Qwen3ForCausalLM";
    case ARCH_MISTRAL: return "MistralForCausalLM";
    }
    return "?";
}
static const char *arch_model_type(arch_t a) {
    switch (a) {
    case ARCH_LLAMA: return "llama";
    case ARCH_QWEN2: return "qwen2";
    case ARCH_QWEN3: return "qwen3";
    case ARCH_MISTRAL: return "mistral";
    }
    return "?";
}
/* llama.cpp's architecture name: Mistral runs as "llama" there */
static const char *arch_gguf_name(arch_t a) {
    switch (a) {
    case ARCH_LLAMA:
    case ARCH_MISTRAL: return "llama";
    case ARCH_QWEN2: return "qwen2";
    case ARCH_QWEN3: return "qwen3";
    }
    return "?";
}
static bool arch_permutes_qk(arch_t a) { return a == ARCH_LLAMA || a == ARCH_MISTRAL; }

/* --------------------------------------------------------------- tensors */

typedef enum { KIND_WEIGHT, KIND_NORM, KIND_ROPE_FREQS } tensor_kind;

typedef struct {
    char hf_name[96];   /* "" for GGUF-only tensors */
    char gguf_name[64];
    int64_t rows, cols; /* HF shape [rows, cols]; cols == 0 means 1-D [rows] */
    tensor_kind kind;
    int permute_heads;  /* > 0: permute rows per head for llama.cpp's rope */
    int shard;          /* index of the safetensors file */
    uint64_t st_offset; /* offset in its safetensors data section */
    uint64_t gguf_offset;
} tensor_t;

typedef struct {
    tensor_t *v;
    int n, cap;
} tensor_list;

static tensor_t *add_tensor(tensor_list *l, const char *hf, const char *gguf, int64_t rows, int64_t cols,
                            tensor_kind kind) {
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->v = px_realloc(l->v, (size_t)l->cap * sizeof(tensor_t));
    }
    tensor_t *t = &l->v[l->n++];
    memset(t, 0, sizeof(*t));
    snprintf(t->hf_name, sizeof(t->hf_name), "%s", hf);
    snprintf(t->gguf_name, sizeof(t->gguf_name), "%s", gguf);
    t->rows = rows;
    t->cols = cols;
    t->kind = kind;
    return t;
}

static int64_t tensor_numel(const tensor_t *t) { return t->cols ? t->rows * t->cols : t->rows; }

static void build_tensors(const shape_t *s, tensor_list *l) {
    char hf[96], gg[64];
    int64_t q_dim = (int64_t)s->heads * s->head_dim, kv_dim = (int64_t)s->kv_heads * s->head_dim;
    bool perm = arch_permutes_qk(s->arch);
    add_tensor(l, "model.embed_tokens.weight", "token_embd.weight", s->vocab, s->hidden, KIND_WEIGHT);
    for (int i = 0; i < s->layers; i++) {
#define T(hfsuf, ggsuf, r, c, k)                                   \
    (snprintf(hf, sizeof(hf), "model.layers.%d.%s", i, hfsuf),     \
     snprintf(gg, sizeof(gg), "blk.%d.%s", i, ggsuf), add_tensor(l, hf, gg, r, c, k))
        T("input_layernorm.weight", "attn_norm.weight", s->hidden, 0, KIND_NORM);
        T("self_attn.q_proj.weight", "attn_q.weight", q_dim, s->hidden, KIND_WEIGHT)->permute_heads =
            perm ? s->heads : 0;
        T("self_attn.k_proj.weight", "attn_k.weight", kv_dim, s->hidden, KIND_WEIGHT)->permute_heads =
            perm ? s->kv_heads : 0;
        T("self_attn.v_proj.weight", "attn_v.weight", kv_dim, s->hidden, KIND_WEIGHT);
        if (s->arch == ARCH_QWEN2) {
            T("self_attn.q_proj.bias", "attn_q.bias", q_dim, 0, KIND_WEIGHT);
            T("self_attn.k_proj.bias", "attn_k.bias", kv_dim, 0, KIND_WEIGHT);
            T("self_attn.v_proj.bias", "attn_v.bias", kv_dim, 0, KIND_WEIGHT);
        }
        T("self_attn.o_proj.weight", "attn_output.weight", s->hidden, q_dim, KIND_WEIGHT);
        if (s->arch == ARCH_QWEN3) {
            T("self_attn.q_norm.weight", "attn_q_norm.weight", s->head_dim, 0, KIND_NORM);
            T("self_attn.k_norm.weight", "attn_k_norm.weight", s->head_dim, 0, KIND_NORM);
        }
        T("post_attention_layernorm.weight", "ffn_norm.weight", s->hidden, 0, KIND_NORM);
        T("mlp.gate_proj.weight", "ffn_gate.weight", s->inter, s->hidden, KIND_WEIGHT);
        T("mlp.up_proj.weight", "ffn_up.weight", s->inter, s->hidden, KIND_WEIGHT);
        T("mlp.down_proj.weight", "ffn_down.weight", s->hidden, s->inter, KIND_WEIGHT);
#undef T
    }
    add_tensor(l, "model.norm.weight", "output_norm.weight", s->hidden, 0, KIND_NORM);
    if (!s->tied) add_tensor(l, "lm_head.weight", "output.weight", s->vocab, s->hidden, KIND_WEIGHT);
    if (s->llama3_scaling && arch_permutes_qk(s->arch)) /* llama.cpp arch "llama" */
        add_tensor(l, "", "rope_freqs.weight", s->head_dim / 2, 0, KIND_ROPE_FREQS);
}

/* llama.cpp's per-frequency divisors for Llama-3 rope scaling (what HF's
 * _compute_llama3_parameters does to inv_freq, expressed as a divisor). */
static void llama3_rope_factors(const shape_t *s, float *out) {
    int half = s->head_dim / 2;
    double low_wavelen = s->orig_max_pos / s->low_freq, high_wavelen = s->orig_max_pos / s->high_freq;
    for (int i = 0; i < half; i++) {
        double freq = 1.0 / pow(s->rope_theta, (2.0 * i) / s->head_dim);
        double wavelen = 2.0 * M_PI / freq;
        double f;
        if (wavelen < high_wavelen) f = 1.0;
        else if (wavelen > low_wavelen) f = s->rope_factor;
        else {
            double smooth = (s->orig_max_pos / wavelen - s->low_freq) / (s->high_freq - s->low_freq);
            f = 1.0 / ((1.0 - smooth) / s->rope_factor + smooth);
        }
        out[i] = (float)f;
    }
}

/* ---------------------------------------------------------------- output */

typedef struct {
    double t0, last;
    uint64_t done, total;
    int last_pct;
    bool quiet;
} progress_t;

static void progress_add(progress_t *p, uint64_t bytes) {
    p->done += bytes;
    if (p->quiet || p->total < (64u << 20)) return; /* small models: no progress lines */
    double now = px_time_now();
    int pct = (int)(100.0 * (double)p->done / (double)p->total);
    if (pct / 10 != p->last_pct / 10 || now - p->last > 5.0 || p->done == p->total) {
        fprintf(stderr, "make_random_model: %3d%% (%.2f of %.2f GB written, %.1f s)\n", pct,
                (double)p->done / 1e9, (double)p->total / 1e9, now - p->t0);
        p->last_pct = pct;
        p->last = now;
    }
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("make_random_model: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

typedef struct {
    FILE *f;
    char path[4096];
} out_file;

static void out_open(out_file *o, const char *path) {
    snprintf(o->path, sizeof(o->path), "%s", path);
    o->f = fopen(path, "wb");
    if (!o->f) die("cannot create %s: %s", path, strerror(errno));
    setvbuf(o->f, NULL, _IOFBF, 8 << 20);
}
static void out_write(out_file *o, const void *p, size_t n) {
    if (n && fwrite(p, 1, n, o->f) != n) die("write to %s failed: %s", o->path, strerror(errno));
}
static void out_close(out_file *o) {
    if (o->f && fclose(o->f) != 0) die("closing %s failed: %s", o->path, strerror(errno));
    o->f = NULL;
}
static void out_zeros(out_file *o, size_t n) {
    static const char z[64];
    while (n) {
        size_t k = n < sizeof(z) ? n : sizeof(z);
        out_write(o, z, k);
        n -= k;
    }
}

/* ---- GGUF ---- */
enum { GGUF_I32 = 5, GGUF_U32 = 4, GGUF_F32 = 6, GGUF_BOOL = 7, GGUF_STRING = 8, GGUF_ARRAY = 9 };
#define GGUF_ALIGN 32

static void gguf_str(out_file *o, const char *s) {
    uint64_t n = strlen(s);
    out_write(o, &n, 8);
    out_write(o, s, n);
}
static uint64_t gguf_n_kv; /* key-value pairs written so far */

static void gguf_kv_u32(out_file *o, const char *k, uint32_t v) {
    uint32_t t = GGUF_U32;
    gguf_n_kv++;
    gguf_str(o, k);
    out_write(o, &t, 4);
    out_write(o, &v, 4);
}
static void gguf_kv_f32(out_file *o, const char *k, float v) {
    uint32_t t = GGUF_F32;
    gguf_n_kv++;
    gguf_str(o, k);
    out_write(o, &t, 4);
    out_write(o, &v, 4);
}
static void gguf_kv_str(out_file *o, const char *k, const char *v) {
    uint32_t t = GGUF_STRING;
    gguf_n_kv++;
    gguf_str(o, k);
    out_write(o, &t, 4);
    gguf_str(o, v);
}

static void gguf_kv_bool(out_file *o, const char *k, bool v) {
    uint32_t t = GGUF_BOOL;
    uint8_t b = v;
    gguf_n_kv++;
    gguf_str(o, k);
    out_write(o, &t, 4);
    out_write(o, &b, 1);
}
static void gguf_kv_arr_head(out_file *o, const char *k, uint32_t elem_type, uint64_t n) {
    uint32_t t = GGUF_ARRAY;
    gguf_n_kv++;
    gguf_str(o, k);
    out_write(o, &t, 4);
    out_write(o, &elem_type, 4);
    out_write(o, &n, 8);
}

static uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

/* ---- GGUF vocabulary (--gguf-tokenizer) ---- */
enum { TOK_NORMAL = 1, TOK_CONTROL = 3, TOK_USER_DEFINED = 4, TOK_UNUSED = 5 }; /* llama_token_type */

typedef struct {
    char **tokens;  /* [vocab], by id */
    int32_t *types; /* [vocab] */
    char **merges;
    int n_merges;
    char *chat_template; /* NULL when tokenizer_config.json has none */
    int bos, eos, pad;   /* -1: not set */
    bool add_bos;
} gguf_vocab;

static cJSON *read_json(const char *path) {
    size_t n = 0;
    char *text = px_read_file(path, &n);
    if (!text) die("cannot read %s", path);
    cJSON *j = cJSON_ParseWithLength(text, n);
    free(text);
    if (!j) die("%s is not valid JSON", path);
    return j;
}

static int vocab_id_of(const gguf_vocab *v, int n_vocab, const cJSON *tok) {
    const char *name = cJSON_IsString(tok) ? tok->valuestring : NULL;
    if (cJSON_IsObject(tok)) { /* {"content": "<|im_end|>", ...} */
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(tok, "content");
        name = cJSON_IsString(c) ? c->valuestring : NULL;
    }
    for (int i = 0; name && i < n_vocab; i++)
        if (v->tokens[i] && !strcmp(v->tokens[i], name)) return i;
    return -1;
}

/* Reads DIR/tokenizer.json (byte-level BPE only) and DIR/tokenizer_config.json. */
static void vocab_load(gguf_vocab *v, const char *dir, const shape_t *s) {
    char path[4096];
    snprintf(path, sizeof(path), "%s/tokenizer.json", dir);
    cJSON *tj = read_json(path);
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(tj, "model");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(model, "type");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (!cJSON_IsString(type) || strcmp(type->valuestring, "BPE") || !cJSON_IsObject(vocab) || !cJSON_IsArray(merges))
        die("%s: only byte-level BPE tokenizers (model.type BPE with vocab and merges) can go into the GGUF", path);
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(model, "byte_fallback")))
        die("%s: a byte-fallback (SentencePiece-style) BPE is not supported by --gguf-tokenizer", path);
    memset(v, 0, sizeof(*v));
    v->tokens = px_calloc((size_t)s->vocab, sizeof(char *));
    v->types = px_calloc((size_t)s->vocab, sizeof(int32_t));
    const cJSON *e;
    cJSON_ArrayForEach(e, vocab) {
        if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble >= s->vocab)
            die("%s: token '%s' has id outside the model's vocabulary of %d", path, e->string, s->vocab);
        int id = (int)e->valuedouble;
        free(v->tokens[id]);
        v->tokens[id] = px_strdup(e->string);
        v->types[id] = TOK_NORMAL;
    }
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(tj, "added_tokens")) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id"), *c = cJSON_GetObjectItemCaseSensitive(e, "content");
        if (!cJSON_IsNumber(id) || !cJSON_IsString(c) || id->valuedouble < 0 || id->valuedouble >= s->vocab)
            die("%s: an added token has no id/content or an id outside the vocabulary", path);
        int i = (int)id->valuedouble;
        free(v->tokens[i]);
        v->tokens[i] = px_strdup(c->valuestring);
        v->types[i] = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "special")) ? TOK_CONTROL : TOK_USER_DEFINED;
    }
    for (int i = 0; i < s->vocab; i++)
        if (!v->tokens[i]) {
            char pad[32];
            snprintf(pad, sizeof(pad), "[PAD%d]", i);
            v->tokens[i] = px_strdup(pad);
            v->types[i] = TOK_UNUSED;
        }
    v->merges = px_calloc((size_t)cJSON_GetArraySize(merges) + 1, sizeof(char *));
    cJSON_ArrayForEach(e, merges) {
        const cJSON *a = cJSON_GetArrayItem(e, 0), *b = cJSON_GetArrayItem(e, 1);
        if (cJSON_IsString(e)) v->merges[v->n_merges++] = px_strdup(e->valuestring); /* "a b" */
        else if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2 && cJSON_IsString(a) && cJSON_IsString(b)) {
            size_t n = strlen(a->valuestring) + strlen(b->valuestring) + 2; /* ["a", "b"] */
            char *m = px_malloc(n);
            snprintf(m, n, "%s %s", a->valuestring, b->valuestring);
            v->merges[v->n_merges++] = m;
        } else die("%s: merge %d is neither \"a b\" nor [\"a\", \"b\"]", path, v->n_merges);
    }
    cJSON_Delete(tj);

    v->bos = s->bos, v->eos = s->eos, v->pad = -1;
    snprintf(path, sizeof(path), "%s/tokenizer_config.json", dir);
    FILE *f = fopen(path, "rb");
    if (f) {
        fclose(f);
        cJSON *cfg = read_json(path);
        const cJSON *ct = cJSON_GetObjectItemCaseSensitive(cfg, "chat_template");
        if (cJSON_IsString(ct)) v->chat_template = px_strdup(ct->valuestring);
        v->add_bos = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cfg, "add_bos_token"));
        int id;
        if ((id = vocab_id_of(v, s->vocab, cJSON_GetObjectItemCaseSensitive(cfg, "bos_token"))) >= 0) v->bos = id;
        if ((id = vocab_id_of(v, s->vocab, cJSON_GetObjectItemCaseSensitive(cfg, "eos_token"))) >= 0) v->eos = id;
        if ((id = vocab_id_of(v, s->vocab, cJSON_GetObjectItemCaseSensitive(cfg, "pad_token"))) >= 0) v->pad = id;
        cJSON_Delete(cfg);
    }
}

static void vocab_free(gguf_vocab *v, int n_vocab) {
    for (int i = 0; v->tokens && i < n_vocab; i++) free(v->tokens[i]);
    for (int i = 0; i < v->n_merges; i++) free(v->merges[i]);
    free(v->tokens);
    free(v->types);
    free(v->merges);
    free(v->chat_template);
}

static void gguf_write_vocab(out_file *o, const gguf_vocab *v, const shape_t *s) {
    gguf_kv_str(o, "tokenizer.ggml.model", "gpt2");
    /* the pre-tokenizer regex llama.cpp applies: Qwen2/3's, or Llama-3's */
    gguf_kv_str(o, "tokenizer.ggml.pre", s->arch == ARCH_QWEN2 || s->arch == ARCH_QWEN3 ? "qwen2" : "llama-bpe");
    gguf_kv_arr_head(o, "tokenizer.ggml.tokens", GGUF_STRING, (uint64_t)s->vocab);
    for (int i = 0; i < s->vocab; i++) gguf_str(o, v->tokens[i]);
    gguf_kv_arr_head(o, "tokenizer.ggml.token_type", GGUF_I32, (uint64_t)s->vocab);
    out_write(o, v->types, (size_t)s->vocab * sizeof(int32_t));
    gguf_kv_arr_head(o, "tokenizer.ggml.merges", GGUF_STRING, (uint64_t)v->n_merges);
    for (int i = 0; i < v->n_merges; i++) gguf_str(o, v->merges[i]);
    if (v->bos >= 0) gguf_kv_u32(o, "tokenizer.ggml.bos_token_id", (uint32_t)v->bos);
    if (v->eos >= 0) gguf_kv_u32(o, "tokenizer.ggml.eos_token_id", (uint32_t)v->eos);
    if (v->pad >= 0) gguf_kv_u32(o, "tokenizer.ggml.padding_token_id", (uint32_t)v->pad);
    gguf_kv_bool(o, "tokenizer.ggml.add_bos_token", v->add_bos);
    if (v->chat_template) gguf_kv_str(o, "tokenizer.chat_template", v->chat_template);
}

/* GGUF element size of a tensor: F16 for matrices when asked, else F32. */
static bool gguf_is_f16(const tensor_t *t, bool f16) { return f16 && t->cols > 0; }
static uint64_t gguf_bytes(const tensor_t *t, bool f16) {
    return (uint64_t)tensor_numel(t) * (gguf_is_f16(t, f16) ? 2 : 4);
}

/* Writes the GGUF header, metadata and tensor infos; assigns gguf_offset. */
static void gguf_write_header(out_file *o, const shape_t *s, tensor_list *l, const char *shape_name,
                              const gguf_vocab *vocab, bool f16) {
    char k[128];
    const char *a = arch_gguf_name(s->arch);
    uint64_t off = 0;
    for (int i = 0; i < l->n; i++) {
        l->v[i].gguf_offset = off;
        off = align_up(off + gguf_bytes(&l->v[i], f16), GGUF_ALIGN);
    }
    uint32_t version = 3;
    uint64_t n_tensors = (uint64_t)l->n, n_kv = 0;
    out_write(o, "GGUF", 4);
    out_write(o, &version, 4);
    out_write(o, &n_tensors, 8);
    out_write(o, &n_kv, 8); /* patched below once the pairs are counted */
    gguf_n_kv = 0;
    char name[128];
    snprintf(name, sizeof(name), "parallax random %s", shape_name);
    gguf_kv_str(o, "general.architecture", a);
    gguf_kv_str(o, "general.name", name);
    gguf_kv_u32(o, "general.alignment", GGUF_ALIGN);
    gguf_kv_u32(o, "general.file_type", f16 ? 1 : 0); /* all F32, or mostly F16 */
#define KU(suf, v) (snprintf(k, sizeof(k), "%s." suf, a), gguf_kv_u32(o, k, (uint32_t)(v)))
#define KF(suf, v) (snprintf(k, sizeof(k), "%s." suf, a), gguf_kv_f32(o, k, (float)(v)))
    KU("vocab_size", s->vocab);
    KU("context_length", s->max_pos);
    KU("embedding_length", s->hidden);
    KU("block_count", s->layers);
    KU("feed_forward_length", s->inter);
    KU("attention.head_count", s->heads);
    KU("attention.head_count_kv", s->kv_heads);
    KU("attention.key_length", s->head_dim);
    KU("attention.value_length", s->head_dim);
    KU("rope.dimension_count", s->head_dim);
    KF("rope.freq_base", s->rope_theta);
    KF("attention.layer_norm_rms_epsilon", s->eps);
#undef KU
#undef KF
    if (vocab) gguf_write_vocab(o, vocab, s);
    else gguf_kv_str(o, "tokenizer.ggml.model", "no_vocab");
    if (fflush(o->f) != 0 || fseek(o->f, 16, SEEK_SET) != 0) die("seek in %s failed", o->path);
    out_write(o, &gguf_n_kv, 8);
    if (fseek(o->f, 0, SEEK_END) != 0) die("seek in %s failed", o->path);
    for (int i = 0; i < l->n; i++) {
        const tensor_t *t = &l->v[i];
        gguf_str(o, t->gguf_name);
        uint32_t n_dims = t->cols ? 2 : 1, type = gguf_is_f16(t, f16) ? 1 : 0; /* GGML_TYPE_F16 : _F32 */
        out_write(o, &n_dims, 4);
        uint64_t ne[2] = {t->cols ? (uint64_t)t->cols : (uint64_t)t->rows, (uint64_t)t->rows};
        out_write(o, ne, 8 * n_dims);
        out_write(o, &type, 4);
        out_write(o, &t->gguf_offset, 8);
    }
    long pos = ftell(o->f);
    if (pos < 0) die("ftell on %s failed", o->path);
    out_zeros(o, align_up((uint64_t)pos, GGUF_ALIGN) - (uint64_t)pos);
}

/* ---- safetensors ---- */
static const char *st_dtype_name(px_dtype d) {
    return d == PX_DTYPE_F32 ? "F32" : d == PX_DTYPE_F16 ? "F16" : "BF16";
}

static void shard_file_name(char *buf, size_t n, int shard, int n_shards) {
    if (n_shards == 1) snprintf(buf, n, "model.safetensors");
    else snprintf(buf, n, "model-%05d-of-%05d.safetensors", shard + 1, n_shards);
}

/* Writes the 8-byte length + JSON header of shard `shard`. */
static void st_write_header(out_file *o, const tensor_list *l, int shard, px_dtype dt, uint64_t seed) {
    cJSON *root = cJSON_CreateObject();
    cJSON *meta = cJSON_AddObjectToObject(root, "__metadata__");
    char seedbuf[32];
    snprintf(seedbuf, sizeof(seedbuf), "%llu", (unsigned long long)seed);
    cJSON_AddStringToObject(meta, "format", "pt");
    cJSON_AddStringToObject(meta, "generator", "parallax tools/make_random_model");
    cJSON_AddStringToObject(meta, "seed", seedbuf);
    size_t esz = px_dtype_size(dt);
    for (int i = 0; i < l->n; i++) {
        const tensor_t *t = &l->v[i];
        if (!t->hf_name[0] || t->shard != shard) continue;
        cJSON *e = cJSON_AddObjectToObject(root, t->hf_name);
        cJSON_AddStringToObject(e, "dtype", st_dtype_name(dt));
        cJSON *shp = cJSON_AddArrayToObject(e, "shape");
        cJSON_AddItemToArray(shp, cJSON_CreateNumber((double)t->rows));
        if (t->cols) cJSON_AddItemToArray(shp, cJSON_CreateNumber((double)t->cols));
        cJSON *offs = cJSON_AddArrayToObject(e, "data_offsets");
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)t->st_offset));
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)(t->st_offset + (uint64_t)tensor_numel(t) * esz)));
    }
    char *json = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    uint64_t len = strlen(json), padded = align_up(8 + len, 8) - 8;
    out_write(o, &padded, 8);
    out_write(o, json, len);
    for (uint64_t i = len; i < padded; i++) out_write(o, " ", 1);
    free(json);
}

static void write_json_file(const char *path, cJSON *root) {
    char *s = cJSON_Print(root);
    out_file o;
    out_open(&o, path);
    out_write(&o, s, strlen(s));
    out_write(&o, "\n", 1);
    out_close(&o);
    free(s);
}

static void write_config(const char *dir, const shape_t *s, px_dtype dt) {
    cJSON *c = cJSON_CreateObject();
    cJSON *archs = cJSON_AddArrayToObject(c, "architectures");
    cJSON_AddItemToArray(archs, cJSON_CreateString(arch_hf_name(s->arch)));
    cJSON_AddStringToObject(c, "model_type", arch_model_type(s->arch));
    cJSON_AddNumberToObject(c, "hidden_size", s->hidden);
    cJSON_AddNumberToObject(c, "intermediate_size", s->inter);
    cJSON_AddNumberToObject(c, "num_hidden_layers", s->layers);
    cJSON_AddNumberToObject(c, "num_attention_heads", s->heads);
    cJSON_AddNumberToObject(c, "num_key_value_heads", s->kv_heads);
    cJSON_AddNumberToObject(c, "head_dim", s->head_dim);
    cJSON_AddNumberToObject(c, "vocab_size", s->vocab);
    cJSON_AddNumberToObject(c, "max_position_embeddings", s->max_pos);
    cJSON_AddNumberToObject(c, "rms_norm_eps", s->eps);
    cJSON_AddNumberToObject(c, "rope_theta", s->rope_theta);
    if (s->llama3_scaling) {
        cJSON *r = cJSON_AddObjectToObject(c, "rope_scaling");
        cJSON_AddStringToObject(r, "rope_type", "llama3");
        cJSON_AddNumberToObject(r, "factor", s->rope_factor);
        cJSON_AddNumberToObject(r, "low_freq_factor", s->low_freq);
        cJSON_AddNumberToObject(r, "high_freq_factor", s->high_freq);
        cJSON_AddNumberToObject(r, "original_max_position_embeddings", s->orig_max_pos);
    } else {
        cJSON_AddNullToObject(c, "rope_scaling");
    }
    cJSON_AddBoolToObject(c, "tie_word_embeddings", s->tied);
    cJSON_AddStringToObject(c, "hidden_act", "silu");
    if (s->arch == ARCH_LLAMA || s->arch == ARCH_QWEN3) cJSON_AddBoolToObject(c, "attention_bias", false);
    if (s->arch == ARCH_LLAMA) cJSON_AddBoolToObject(c, "mlp_bias", false);
    if (s->arch != ARCH_LLAMA) {
        cJSON_AddNullToObject(c, "sliding_window");
        if (s->arch != ARCH_MISTRAL) {
            cJSON_AddBoolToObject(c, "use_sliding_window", false);
            cJSON_AddNumberToObject(c, "max_window_layers", s->layers);
        }
    }
    cJSON_AddNumberToObject(c, "bos_token_id", s->bos);
    cJSON_AddNumberToObject(c, "eos_token_id", s->eos);
    cJSON_AddStringToObject(c, "torch_dtype", dt == PX_DTYPE_F32 ? "float32" : dt == PX_DTYPE_F16 ? "float16" : "bfloat16");
    cJSON_AddStringToObject(c, "transformers_version", "4.51.0");
    char path[4096];
    snprintf(path, sizeof(path), "%s/config.json", dir);
    write_json_file(path, c);
    cJSON_Delete(c);
}

static void write_index(const char *dir, const tensor_list *l, int n_shards, uint64_t total) {
    cJSON *root = cJSON_CreateObject();
    cJSON *meta = cJSON_AddObjectToObject(root, "metadata");
    cJSON_AddNumberToObject(meta, "total_size", (double)total);
    cJSON *wm = cJSON_AddObjectToObject(root, "weight_map");
    for (int i = 0; i < l->n; i++) {
        if (!l->v[i].hf_name[0]) continue;
        char fn[64];
        shard_file_name(fn, sizeof(fn), l->v[i].shard, n_shards);
        cJSON_AddStringToObject(wm, l->v[i].hf_name, fn);
    }
    char path[4096];
    snprintf(path, sizeof(path), "%s/model.safetensors.index.json", dir);
    write_json_file(path, root);
    cJSON_Delete(root);
}

/* ------------------------------------------------------------------ main */

static void usage(FILE *f) {
    fputs("usage: make_random_model (--shape NAME | --arch ARCH) [dims] [--hf-out DIR] [--gguf-out FILE]\n"
          "  --shape      qwen3-0.6b | llama-3.2-1b | tiny-qwen3 | tiny-llama | tiny-qwen2 | tiny-mistral\n"
          "  --arch       llama | qwen2 | qwen3 | mistral (starts from the matching tiny shape)\n"
          "  dims         --hidden N --layers N --heads N --kv-heads N --head-dim N --intermediate N\n"
          "               --vocab N --max-pos N --rope-theta F --rms-eps F --tied | --untied\n"
          "               --llama3-scaling FACTOR,LOW,HIGH,ORIG | --no-rope-scaling\n"
          "  --hf-out DIR         write config.json + safetensors into DIR (created)\n"
          "  --hf-dtype D         bf16 (default) | f16 | f32\n"
          "  --shards N           split the safetensors into N files + model.safetensors.index.json\n"
          "  --gguf-out FILE      write a GGUF (all F32) for llama.cpp\n"
          "  --gguf-dtype D       f32 (default) | f16 (matrices F16, norms F32)\n"
          "  --gguf-tokenizer DIR put DIR/tokenizer.json (byte-level BPE) into the GGUF as its\n"
          "                       vocabulary (default: no vocabulary; llama-server needs one)\n"
          "  --seed S             PRNG seed (default 1234)\n"
          "  --std F              std of matrices/biases (default 0.02; tiny shapes 0.2)\n"
          "  --norm-std F         norm weights are 1 + N(0, F^2) (default 0.1; 0 gives exactly 1)\n"
          "  --quiet              no progress output\n",
          f);
}

static long parse_long(const char *flag, const char *v) {
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || *end || end == v || x <= 0) die("%s: not a positive integer: '%s'", flag, v);
    return x;
}
static double parse_double(const char *flag, const char *v) {
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || *end || end == v) die("%s: not a number: '%s'", flag, v);
    return x;
}

int main(int argc, char **argv) {
    shape_t s;
    bool have_shape = false;
    const char *shape_name = NULL, *hf_out = NULL, *gguf_out = NULL, *gguf_tokenizer = NULL;
    bool gguf_f16 = false;
    px_dtype hf_dtype = PX_DTYPE_BF16;
    int n_shards = 1;
    uint64_t seed = 1234;
    double std = -1, norm_std = 0.1;
    bool quiet = false;

    /* first pass: the base shape, so explicit dims can override it in any order */
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--shape") || !strcmp(argv[i], "--arch")) {
            if (i + 1 >= argc) die("%s needs a value", argv[i]);
            const char *v = argv[i + 1];
            const shape_t *found = NULL;
            for (size_t k = 0; k < PX_ARRAY_LEN(shapes); k++) {
                if (!strcmp(argv[i], "--shape") && !strcmp(shapes[k].name, v)) found = &shapes[k];
                if (!strcmp(argv[i], "--arch") && !strncmp(shapes[k].name, "tiny-", 5) &&
                    !strcmp(shapes[k].name + 5, v))
                    found = &shapes[k];
            }
            if (!found) die("unknown %s '%s' (see --help)", argv[i], v);
            s = *found;
            shape_name = v;
            have_shape = true;
        }
    }
    if (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        usage(stdout);
        return 0;
    }
    if (!have_shape) {
        usage(stderr);
        die("give --shape or --arch");
    }
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        bool needs_value = strcmp(f, "--tied") && strcmp(f, "--untied") && strcmp(f, "--quiet") &&
                           strcmp(f, "--no-rope-scaling");
        const char *v = NULL;
        if (needs_value) {
            if (i + 1 >= argc) die("%s needs a value", f);
            v = argv[++i];
        }
        if (!strcmp(f, "--shape") || !strcmp(f, "--arch")) continue;
        else if (!strcmp(f, "--hidden")) s.hidden = (int)parse_long(f, v);
        else if (!strcmp(f, "--layers")) s.layers = (int)parse_long(f, v);
        else if (!strcmp(f, "--heads")) s.heads = (int)parse_long(f, v);
        else if (!strcmp(f, "--kv-heads")) s.kv_heads = (int)parse_long(f, v);
        else if (!strcmp(f, "--head-dim")) s.head_dim = (int)parse_long(f, v);
        else if (!strcmp(f, "--intermediate")) s.inter = (int)parse_long(f, v);
        else if (!strcmp(f, "--vocab")) s.vocab = (int)parse_long(f, v);
        else if (!strcmp(f, "--max-pos")) s.max_pos = (int)parse_long(f, v);
        else if (!strcmp(f, "--rope-theta")) s.rope_theta = parse_double(f, v);
        else if (!strcmp(f, "--rms-eps")) s.eps = parse_double(f, v);
        else if (!strcmp(f, "--tied")) s.tied = true;
        else if (!strcmp(f, "--untied")) s.tied = false;
        else if (!strcmp(f, "--no-rope-scaling")) s.llama3_scaling = false;
        else if (!strcmp(f, "--llama3-scaling")) {
            if (sscanf(v, "%lf,%lf,%lf,%d", &s.rope_factor, &s.low_freq, &s.high_freq, &s.orig_max_pos) != 4)
                die("--llama3-scaling wants FACTOR,LOW,HIGH,ORIG, got '%s'", v);
            s.llama3_scaling = true;
        } else if (!strcmp(f, "--hf-out")) hf_out = v;
        else if (!strcmp(f, "--gguf-out")) gguf_out = v;
        else if (!strcmp(f, "--gguf-tokenizer")) gguf_tokenizer = v;
        else if (!strcmp(f, "--gguf-dtype")) {
            if (strcmp(v, "f32") && strcmp(v, "f16")) die("--gguf-dtype: '%s' is not f32 or f16", v);
            gguf_f16 = !strcmp(v, "f16");
        }
        else if (!strcmp(f, "--hf-dtype")) {
            int d = px_dtype_parse(v);
            if (d < 0) die("--hf-dtype: unknown dtype '%s' (bf16, f16, f32)", v);
            hf_dtype = (px_dtype)d;
        } else if (!strcmp(f, "--shards")) n_shards = (int)parse_long(f, v);
        else if (!strcmp(f, "--seed")) seed = strtoull(v, NULL, 10);
        else if (!strcmp(f, "--std")) std = parse_double(f, v);
        else if (!strcmp(f, "--norm-std")) norm_std = parse_double(f, v);
        else if (!strcmp(f, "--quiet")) quiet = true;
        else {
            usage(stderr);
            die("unknown flag '%s'", f);
        }
    }
    if (!hf_out && !gguf_out) die("nothing to do: give --hf-out and/or --gguf-out");
    if (std < 0) std = s.std;
    if (s.heads % s.kv_heads) die("--heads %d is not a multiple of --kv-heads %d", s.heads, s.kv_heads);
    if (s.head_dim % 2) die("--head-dim %d must be even", s.head_dim);
    if (s.arch == ARCH_QWEN2 && s.heads * s.head_dim != s.hidden)
        die("qwen2 needs heads * head_dim == hidden (llama.cpp's qwen2 assumes it)");
    if (s.llama3_scaling && !arch_permutes_qk(s.arch))
        die("llama3 rope scaling is only written for llama/mistral shapes");

    tensor_list tl = {0};
    build_tensors(&s, &tl);

    /* safetensors layout: shards split by bytes at tensor boundaries */
    size_t esz = px_dtype_size(hf_dtype);
    uint64_t hf_total = 0;
    for (int i = 0; i < tl.n; i++)
        if (tl.v[i].hf_name[0]) hf_total += (uint64_t)tensor_numel(&tl.v[i]) * esz;
    int n_hf = 0;
    for (int i = 0; i < tl.n; i++) n_hf += tl.v[i].hf_name[0] != 0;
    if (n_shards > n_hf) die("--shards %d: only %d tensors", n_shards, n_hf);
    {
        uint64_t acc = 0, off = 0;
        int shard = 0, left = n_hf;
        for (int i = 0; i < tl.n; i++) {
            tensor_t *t = &tl.v[i];
            if (!t->hf_name[0]) continue;
            uint64_t sz = (uint64_t)tensor_numel(t) * esz;
            /* move to the next shard once this one holds its share, keeping
             * at least one tensor for each remaining shard */
            if (shard < n_shards - 1 && off > 0 &&
                (acc + sz / 2 > hf_total * (uint64_t)(shard + 1) / (uint64_t)n_shards ||
                 left <= n_shards - 1 - shard)) {
                shard++;
                off = 0;
            }
            t->shard = shard;
            t->st_offset = off;
            off += sz;
            acc += sz;
            left--;
        }
        if (shard != n_shards - 1) die("could not split into %d shards", n_shards);
    }
    uint64_t gguf_total = 0;
    for (int i = 0; i < tl.n; i++) gguf_total += gguf_bytes(&tl.v[i], gguf_f16);

    progress_t prog = {.t0 = px_time_now(), .quiet = quiet, .last_pct = -10};
    prog.last = prog.t0;
    prog.total = (hf_out ? hf_total : 0) + (gguf_out ? gguf_total : 0);
    if (!quiet)
        fprintf(stderr, "make_random_model: %s (%s), %d tensors, seed %llu: HF %s %.2f GB%s%s, GGUF %s %.2f GB%s%s\n",
                shape_name, arch_hf_name(s.arch), tl.n, (unsigned long long)seed, px_dtype_name(hf_dtype),
                (double)hf_total / 1e9, hf_out ? " -> " : " (skipped)", hf_out ? hf_out : "", gguf_f16 ? "F16" : "F32",
                (double)gguf_total / 1e9, gguf_out ? " -> " : " (skipped)", gguf_out ? gguf_out : "");

    out_file gg = {0}, st = {0};
    char gguf_tmp[4096];
    if (gguf_out) {
        snprintf(gguf_tmp, sizeof(gguf_tmp), "%s.tmp", gguf_out);
        out_open(&gg, gguf_tmp);
        gguf_vocab vocab;
        if (gguf_tokenizer) vocab_load(&vocab, gguf_tokenizer, &s);
        gguf_write_header(&gg, &s, &tl, shape_name, gguf_tokenizer ? &vocab : NULL, gguf_f16);
        if (gguf_tokenizer) vocab_free(&vocab, s.vocab);
    }
    if (hf_out) {
        if (mkdir(hf_out, 0777) != 0 && errno != EEXIST) die("cannot create %s: %s", hf_out, strerror(errno));
        /* stale files from an earlier run with another sharding would confuse a loader */
        DIR *d = opendir(hf_out);
        if (!d) die("cannot read %s: %s", hf_out, strerror(errno));
        for (struct dirent *e; (e = readdir(d));) {
            size_t n = strlen(e->d_name);
            bool weights = n > 12 && !strncmp(e->d_name, "model", 5) && !strcmp(e->d_name + n - 12, ".safetensors");
            if (weights || !strcmp(e->d_name, "model.safetensors.index.json")) {
                char p[4096];
                snprintf(p, sizeof(p), "%s/%s", hf_out, e->d_name);
                if (remove(p) != 0) die("cannot remove stale %s: %s", p, strerror(errno));
            }
        }
        closedir(d);
        write_config(hf_out, &s, hf_dtype);
        if (n_shards > 1) write_index(hf_out, &tl, n_shards, hf_total);
    }

    int cur_shard = -1;
    int64_t chunk_cap = 0;
    float *vals = NULL, *perm = NULL;
    void *hfbuf = NULL, *hfbuf2 = NULL;
    for (int i = 0; i < tl.n; i++) {
        tensor_t *t = &tl.v[i];
        if (hf_out && t->hf_name[0] && t->shard != cur_shard) {
            out_close(&st);
            cur_shard = t->shard;
            char fn[64], p[4096];
            shard_file_name(fn, sizeof(fn), cur_shard, n_shards);
            snprintf(p, sizeof(p), "%s/%s", hf_out, fn);
            out_open(&st, p);
            st_write_header(&st, &tl, cur_shard, hf_dtype, seed);
        }
        int64_t cols = t->cols ? t->cols : 1, rows = t->rows;
        /* rows per chunk: whole tensor when its rows must be permuted per head */
        int64_t chunk_rows = t->permute_heads ? rows : PX_MAX(1, (int64_t)(1 << 22) / cols);
        if (chunk_rows > rows) chunk_rows = rows;
        if (chunk_rows * cols > chunk_cap) {
            chunk_cap = chunk_rows * cols;
            vals = px_realloc(vals, (size_t)chunk_cap * sizeof(float));
            perm = px_realloc(perm, (size_t)chunk_cap * sizeof(float));
            hfbuf = px_realloc(hfbuf, (size_t)chunk_cap * 4);
            hfbuf2 = px_realloc(hfbuf2, (size_t)chunk_cap * 2);
        }
        px_rng rng;
        rng_seed(&rng, seed, t->hf_name[0] ? t->hf_name : t->gguf_name);
        for (int64_t r0 = 0; r0 < rows; r0 += chunk_rows) {
            int64_t nr = PX_MIN(chunk_rows, rows - r0), n = nr * cols;
            if (t->kind == KIND_ROPE_FREQS) {
                llama3_rope_factors(&s, vals);
            } else {
                double base = t->kind == KIND_NORM ? 1.0 : 0.0, sd = t->kind == KIND_NORM ? norm_std : std;
                for (int64_t j = 0; j < n; j++) {
                    float x = (float)(base + sd * rng_normal(&rng));
                    /* round once to the HF dtype; the GGUF gets the same value */
                    if (hf_dtype == PX_DTYPE_BF16) {
                        uint16_t h = px_f32_to_bf16(x);
                        ((uint16_t *)hfbuf)[j] = h;
                        vals[j] = px_bf16_to_f32(h);
                    } else if (hf_dtype == PX_DTYPE_F16) {
                        uint16_t h = px_f32_to_f16(x);
                        ((uint16_t *)hfbuf)[j] = h;
                        vals[j] = px_f16_to_f32(h);
                    } else {
                        ((float *)hfbuf)[j] = x;
                        vals[j] = x;
                    }
                }
            }
            if (hf_out && t->hf_name[0]) {
                out_write(&st, hfbuf, (size_t)n * esz);
                progress_add(&prog, (uint64_t)n * esz);
            }
            if (gguf_out) {
                const float *src = vals;
                if (t->permute_heads) {
                    int64_t hd = rows / t->permute_heads, half = hd / 2;
                    for (int64_t h = 0; h < t->permute_heads; h++)
                        for (int64_t j = 0; j < half; j++)
                            for (int sgn = 0; sgn < 2; sgn++)
                                memcpy(perm + (h * hd + 2 * j + sgn) * cols, vals + (h * hd + sgn * half + j) * cols,
                                       (size_t)cols * sizeof(float));
                    src = perm;
                }
                if (gguf_is_f16(t, gguf_f16)) {
                    uint16_t *h = hfbuf2;
                    for (int64_t j = 0; j < n; j++) h[j] = px_f32_to_f16(src[j]);
                    out_write(&gg, h, (size_t)n * 2);
                    progress_add(&prog, (uint64_t)n * 2);
                } else {
                    out_write(&gg, src, (size_t)n * sizeof(float));
                    progress_add(&prog, (uint64_t)n * sizeof(float));
                }
            }
        }
        if (gguf_out) {
            uint64_t sz = gguf_bytes(t, gguf_f16);
            out_zeros(&gg, align_up(sz, GGUF_ALIGN) - sz);
        }
    }
    out_close(&st);
    if (gguf_out) {
        out_close(&gg);
        if (rename(gguf_tmp, gguf_out) != 0) die("rename %s -> %s: %s", gguf_tmp, gguf_out, strerror(errno));
    }
    free(vals);
    free(perm);
    free(hfbuf);
    free(hfbuf2);
    free(tl.v);
    if (!quiet) fprintf(stderr, "make_random_model: done in %.1f s\n", px_time_now() - prog.t0);
    return 0;
}
