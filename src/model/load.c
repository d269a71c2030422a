/* load.c - loading a layer slice [start, end) of a Hugging Face model.
 *
 * For each tensor the slice needs we look it up in the safetensors index,
 * check its shape against config.json, and map it. A weight whose stored
 * dtype is the one asked for (and is suitably aligned) is used straight from
 * the mapping; otherwise it is converted into an owned buffer and the mapping
 * is dropped ("quantize on load": --dtype q8_0/q4_0 packs any f32/f16/bf16
 * checkpoint into the quantized layout here). 1-D tensors (norms, biases)
 * are always held as f32.
 */
#include "model_internal.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    px_model *m;
    px_safetensors *st;
    const char *dir;
    int dtype; /* -1: as stored */
    px_pool *pool; /* quantizing on load uses every core */
    void (*progress)(void *user, uint64_t done, uint64_t total);
    void *progress_user;
    uint64_t done, total; /* bytes of the slice's tensors in the files */
} loader;

static void keep_mapping(px_model *m, px_st_mapping map) {
    m->mappings = px_realloc(m->mappings, (size_t)(m->n_mappings + 1) * sizeof *m->mappings);
    m->mappings[m->n_mappings++] = map;
}

static void *keep_owned(px_model *m, size_t bytes) {
    void *p = px_aligned_alloc(bytes);
    m->owned = px_realloc(m->owned, (size_t)(m->n_owned + 1) * sizeof *m->owned);
    m->owned[m->n_owned++] = p;
    return p;
}

static const px_st_tensor *find_checked(loader *ld, const char *name, int n_dims, int64_t d0, int64_t d1) {
    const px_st_tensor *t = px_st_find(ld->st, name);
    if (!t) {
        px_error_set("%s: tensor \"%s\" not found in the model files", ld->dir, name);
        return NULL;
    }
    bool ok = t->n_dims == n_dims && t->shape[0] == d0 && (n_dims == 1 || t->shape[1] == d1);
    if (!ok) {
        char got[128] = "", want[64];
        for (int i = 0; i < t->n_dims; i++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", i ? ", " : "", (long long)t->shape[i]);
        if (n_dims == 1) snprintf(want, sizeof want, "%lld", (long long)d0);
        else snprintf(want, sizeof want, "%lld, %lld", (long long)d0, (long long)d1);
        px_error_set("%s: tensor \"%s\" has shape [%s], expected [%s] from config.json",
                     px_st_file_path(ld->st, t->file), name, got, want);
        return NULL;
    }
    if (t->dtype < 0) {
        px_error_set("%s: tensor \"%s\" has dtype %s (supported: F32, F16, BF16)", px_st_file_path(ld->st, t->file),
                     name, t->dtype_name);
        return NULL;
    }
    return t;
}

/* Maps tensor t ([rows, cols]; cols = 1 for a vector) and returns its data as
 * `want` dtype: the mapping itself when it already is and no panels are
 * asked for, else a converted copy (quantized types are packed into their
 * group layout here, float matrices of the matmuls into panels). */
static const void *data_as(loader *ld, const px_st_tensor *t, px_dtype want, int64_t rows, int64_t cols, bool panels) {
    px_st_mapping map;
    if (px_st_map(ld->st, t, &map)) return NULL;
    if (ld->progress) {
        ld->done = PX_MIN(ld->done + t->nbytes, ld->total);
        ld->progress(ld->progress_user, ld->done, ld->total);
    }
    panels = panels && !px_dtype_is_quantized(want);
    size_t bytes = panels ? px_weight_panel_bytes(want, rows, cols) : px_weight_bytes(want, rows, cols);
    ld->m->weight_bytes += bytes;
    bool aligned = !px_dtype_is_quantized(want) && ((uintptr_t)map.data % px_dtype_size(want)) == 0;
    if ((px_dtype)t->dtype == want && aligned && !panels) {
        keep_mapping(ld->m, map);
        return map.data;
    }
    void *copy = keep_owned(ld->m, bytes);
    if (!ld->pool) ld->pool = px_pool_create(0);
    if (panels) px_weight_pack_panels(ld->pool, copy, want, map.data, (px_dtype)t->dtype, rows, cols);
    else px_weight_pack(ld->pool, copy, want, map.data, (px_dtype)t->dtype, rows, cols);
    px_st_unmap(&map);
    return copy;
}

/* A matrix; `matmul`: it feeds px_matmul (float ones then go into panels), else
 * it is only looked up by row (an embedding that is not also the lm_head). */
static int load_weight(loader *ld, px_weight *w, const char *name, int64_t rows, int64_t cols, bool matmul) {
    const px_st_tensor *t = find_checked(ld, name, 2, rows, cols);
    if (!t) return -1;
    px_dtype want = ld->dtype < 0 ? (px_dtype)t->dtype : (px_dtype)ld->dtype;
    w->data = data_as(ld, t, want, rows, cols, matmul);
    w->panels = matmul && !px_dtype_is_quantized(want);
    w->dtype = want;
    w->rows = rows;
    w->cols = cols;
    return w->data ? 0 : -1;
}

static int load_vector(loader *ld, const float **out, const char *name, int64_t n) {
    const px_st_tensor *t = find_checked(ld, name, 1, n, 0);
    if (!t) return -1;
    *out = data_as(ld, t, PX_DTYPE_F32, n, 1, false);
    return *out ? 0 : -1;
}

static int load_layer(loader *ld, int layer, px_layer *L) {
    const px_model_config *c = &ld->m->cfg;
    const int64_t h = c->hidden, qd = (int64_t)c->n_heads * c->head_dim, kvd = (int64_t)c->n_kv_heads * c->head_dim;
    char n[256];
#define NAME(suffix) (snprintf(n, sizeof n, "model.layers.%d.%s", layer, suffix), n)
    if (load_vector(ld, &L->attn_norm, NAME("input_layernorm.weight"), h) ||
        load_vector(ld, &L->ffn_norm, NAME("post_attention_layernorm.weight"), h) ||
        load_weight(ld, &L->wq, NAME("self_attn.q_proj.weight"), qd, h, true) ||
        load_weight(ld, &L->wk, NAME("self_attn.k_proj.weight"), kvd, h, true) ||
        load_weight(ld, &L->wv, NAME("self_attn.v_proj.weight"), kvd, h, true) ||
        load_weight(ld, &L->wo, NAME("self_attn.o_proj.weight"), h, qd, true) ||
        load_weight(ld, &L->w_gate, NAME("mlp.gate_proj.weight"), c->intermediate, h, true) ||
        load_weight(ld, &L->w_up, NAME("mlp.up_proj.weight"), c->intermediate, h, true) ||
        load_weight(ld, &L->w_down, NAME("mlp.down_proj.weight"), h, c->intermediate, true))
        return -1;
    if (c->qkv_bias && (load_vector(ld, &L->bq, NAME("self_attn.q_proj.bias"), qd) ||
                        load_vector(ld, &L->bk, NAME("self_attn.k_proj.bias"), kvd) ||
                        load_vector(ld, &L->bv, NAME("self_attn.v_proj.bias"), kvd)))
        return -1;
    if (c->qk_norm && (load_vector(ld, &L->q_norm, NAME("self_attn.q_norm.weight"), c->head_dim) ||
                       load_vector(ld, &L->k_norm, NAME("self_attn.k_norm.weight"), c->head_dim)))
        return -1;
#undef NAME
    L->window = (c->sliding_window > 0 && layer >= c->sliding_window_from) ? c->sliding_window : 0;
    return 0;
}

/* RoPE inverse frequencies, with Llama-3 / linear scaling applied (as HF does). */
static float *rope_inv_freq(const px_model_config *c) {
    int half = c->head_dim / 2;
    float *f = px_malloc((size_t)half * sizeof *f);
    for (int i = 0; i < half; i++) {
        double inv = 1.0 / pow(c->rope_theta, (double)(2 * i) / c->head_dim);
        if (c->rope_scaling == PX_ROPE_SCALING_LINEAR) {
            inv /= c->rope_factor;
        } else if (c->rope_scaling == PX_ROPE_SCALING_LLAMA3) {
            double old = c->rope_original_max_pos, wavelen = 2 * M_PI / inv;
            double low_wavelen = old / c->rope_low_freq_factor, high_wavelen = old / c->rope_high_freq_factor;
            if (wavelen > low_wavelen) {
                inv /= c->rope_factor;
            } else if (wavelen >= high_wavelen) {
                double smooth = (old / wavelen - c->rope_low_freq_factor) /
                                (c->rope_high_freq_factor - c->rope_low_freq_factor);
                inv = (1 - smooth) * inv / c->rope_factor + smooth * inv;
            }
        }
        f[i] = (float)inv;
    }
    return f;
}

static void show_progress(int done, int total) {
    if (!isatty(2)) return;
    fprintf(stderr, "\rparallax: loading weights %3d%% (%d/%d layers)", 100 * done / total, done, total);
    if (done == total) fputc('\n', stderr);
}

/* Bytes of the tensors in the files that a slice [start, end) reads. */
static uint64_t slice_file_bytes(const px_safetensors *st, const px_model *m) {
    const px_model_config *c = &m->cfg;
    bool last = m->end == c->n_layers;
    uint64_t total = 0;
    for (int i = 0; i < px_st_count(st); i++) {
        const px_st_tensor *t = px_st_at(st, i);
        int layer;
        bool need = false;
        if (sscanf(t->name, "model.layers.%d.", &layer) == 1) need = layer >= m->start && layer < m->end;
        else if (!strcmp(t->name, "model.embed_tokens.weight")) need = m->start == 0 || (last && c->tie_embeddings);
        else if (!strcmp(t->name, "model.norm.weight") || !strcmp(t->name, "lm_head.weight")) need = last;
        if (need) total += t->nbytes;
    }
    return total;
}

static int load_slice(loader *ld) {
    px_model *m = ld->m;
    const px_model_config *c = &m->cfg;
    bool embed_is_head = c->tie_embeddings && m->end == c->n_layers;
    if (m->start == 0 && load_weight(ld, &m->embed, "model.embed_tokens.weight", c->vocab, c->hidden, embed_is_head))
        return -1;
    int n = m->end - m->start;
    m->layers = px_calloc((size_t)n, sizeof *m->layers);
    for (int i = 0; i < n; i++) {
        if (load_layer(ld, m->start + i, &m->layers[i])) return -1;
        show_progress(i + 1, n);
    }
    if (m->end == c->n_layers) {
        if (load_vector(ld, &m->final_norm, "model.norm.weight", c->hidden)) return -1;
        const char *head = c->tie_embeddings ? "model.embed_tokens.weight" : "lm_head.weight";
        if (m->start == 0 && c->tie_embeddings) m->lm_head = m->embed;
        else if (load_weight(ld, &m->lm_head, head, c->vocab, c->hidden, true)) return -1;
    }
    return 0;
}

px_model *px_model_load(const char *dir, const px_load_options *opt) {
    px_model *m = px_calloc(1, sizeof *m);
    if (px_model_config_load(dir, &m->cfg)) goto fail;
    m->start = opt ? opt->start : 0;
    m->end = opt && opt->end > 0 ? opt->end : m->cfg.n_layers;
    if (m->start < 0 || m->start >= m->end || m->end > m->cfg.n_layers) {
        px_error_set("%s: layer range [%d, %d) is out of bounds for a model with %d layers", dir, m->start, m->end,
                     m->cfg.n_layers);
        goto fail;
    }
    loader ld = {.m = m, .dir = dir, .dtype = opt ? opt->dtype : -1, .progress = opt ? opt->progress : NULL,
                 .progress_user = opt ? opt->progress_user : NULL};
    if (ld.dtype >= PX_DTYPE_COUNT) {
        px_error_set("invalid weight dtype %d", ld.dtype);
        goto fail;
    }
    if (!(ld.st = px_st_open(dir))) goto fail;
    if (ld.progress) {
        ld.total = slice_file_bytes(ld.st, m);
        ld.progress(ld.progress_user, 0, ld.total);
    }
    int rc = load_slice(&ld);
    if (!rc && ld.progress) ld.progress(ld.progress_user, ld.total, ld.total);
    px_pool_destroy(ld.pool);
    px_st_close(ld.st); /* mappings stay valid after the file is closed */
    if (rc) goto fail;
    m->inv_freq = rope_inv_freq(&m->cfg);
    return m;
fail:
    px_model_free(m);
    return NULL;
}

void px_model_free(px_model *m) {
    if (!m) return;
    for (int i = 0; i < m->n_mappings; i++) px_st_unmap(&m->mappings[i]);
    for (int i = 0; i < m->n_owned; i++) px_aligned_free(m->owned[i]);
    px_scratch *s = &m->scratch;
    float *bufs[] = {s->x, s->xb, s->q, s->k, s->v, s->att, s->gate, s->rows, s->scores, s->rope};
    for (size_t i = 0; i < PX_ARRAY_LEN(bufs); i++) px_aligned_free(bufs[i]);
    free(s->tiles);
    free(m->mappings);
    free(m->owned);
    free(m->layers);
    free(m->inv_freq);
    free(m);
}

const px_model_config *px_model_config_of(const px_model *m) { return &m->cfg; }
int px_model_start(const px_model *m) { return m->start; }
int px_model_end(const px_model *m) { return m->end; }
bool px_model_is_first(const px_model *m) { return m->start == 0; }
bool px_model_is_last(const px_model *m) { return m->end == m->cfg.n_layers; }
size_t px_model_weight_bytes(const px_model *m) { return m->weight_bytes; }
size_t px_model_bytes_per_token(const px_model *m) {
    bool separate_embed = m->start == 0 && !(m->end == m->cfg.n_layers && m->lm_head.data == m->embed.data);
    return m->weight_bytes - (separate_embed ? px_weight_bytes(m->embed.dtype, m->embed.rows, m->embed.cols) : 0);
}
