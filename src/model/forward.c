/* forward.c - the transformer forward pass over one layer slice.
 *
 * Read it top to bottom: px_model_forward() checks the batch, embeds tokens
 * (first slice) or takes the previous slice's hidden states, runs each decoder
 * layer (attention block, then MLP block, each pre-normed with a residual),
 * and on the last slice applies the final norm and the lm_head to the rows
 * whose logits were asked for. Shapes are in the comments; T = tokens in the
 * batch, H = hidden, hd = head_dim, nh/nkv = query/kv heads, I = intermediate.
 *
 * Attention reads keys and values from the paged KV cache (f32 or f16): each
 * token first writes its k/v at (its sequence's block for pos, slot), then
 * attends over positions [max(0, pos - window + 1), pos] of its own sequence.
 * Because all writes of a layer happen before its reads, a prefill chunk is
 * causal within itself and over everything cached before it. The work is cut
 * into tiles of up to ATT_TILE consecutive tokens of one sequence times one
 * kv head (all the query heads that share it), so px_attention reads each key
 * and value row once per tile.
 *
 * The matmuls sharing an input run as one pool job: q, k and v together, and
 * gate and up together with the SwiGLU applied as their tiles come out.
 */
#include "model_internal.h"
#include <math.h>
#include <string.h>

#define ATT_TILE 8 /* tokens per attention tile */

typedef struct {
    int32_t t0, n; /* tokens [t0, t0 + n) of the batch, all of one sequence */
} att_tile;

/* ---- scratch buffers, grown to the largest batch seen ---- */

static void grow(float **buf, int64_t n) {
    px_aligned_free(*buf);
    *buf = px_aligned_alloc((size_t)n * sizeof(float));
}

static void reserve_scratch(px_model *m, int64_t tokens, int64_t rows, int64_t scores) {
    const px_model_config *c = &m->cfg;
    px_scratch *s = &m->scratch;
    if (tokens > s->tokens_cap) {
        s->tokens_cap = tokens;
        grow(&s->rope, tokens * c->head_dim);
        s->tiles = px_realloc(s->tiles, (size_t)tokens * sizeof(att_tile));
        grow(&s->x, tokens * c->hidden);
        grow(&s->xb, tokens * PX_MAX(c->hidden, c->n_heads * c->head_dim));
        grow(&s->q, tokens * c->n_heads * c->head_dim);
        grow(&s->k, tokens * c->n_kv_heads * c->head_dim);
        grow(&s->v, tokens * c->n_kv_heads * c->head_dim);
        grow(&s->att, tokens * c->n_heads * c->head_dim);
        grow(&s->gate, tokens * c->intermediate);
    }
    if (rows > s->rows_cap) {
        s->rows_cap = rows;
        grow(&s->rows, rows * c->hidden);
    }
    if (scores > s->scores_cap) {
        s->scores_cap = scores;
        grow(&s->scores, scores);
    }
}

/* ---- batch validation: nothing the caller sends can make us read out of bounds ---- */

static int check_batch(const px_model *m, const px_kv_cache *kv, const px_batch *b, const float *hidden_in) {
    const px_model_config *c = &m->cfg;
    int kv_dim = c->n_kv_heads * c->head_dim;
    if (b->n_tokens <= 0 || b->n_seqs <= 0 || !b->pos || !b->seq || !b->seqs)
        return px_error_set("batch: empty or missing pos/seq arrays"), -1;
    if (kv->dtype != PX_DTYPE_F32 && kv->dtype != PX_DTYPE_F16)
        return px_error_set("batch: KV cache dtype %s (supported: f32, f16)", px_dtype_name(kv->dtype)), -1;
    if (kv->n_layers != m->end - m->start || kv->kv_dim != kv_dim || kv->block_size <= 0)
        return px_error_set("batch: KV cache shape (%d layers, kv_dim %d) does not match the slice (%d layers, kv_dim %d)",
                            kv->n_layers, kv->kv_dim, m->end - m->start, kv_dim), -1;
    if (m->start == 0 && !b->tokens) return px_error_set("batch: the first slice needs token ids"), -1;
    if (m->start != 0 && !hidden_in) return px_error_set("batch: a slice starting at layer %d needs hidden states", m->start), -1;
    for (int i = 0; i < b->n_tokens; i++) {
        if (m->start == 0 && (b->tokens[i] < 0 || b->tokens[i] >= c->vocab))
            return px_error_set("batch: token %d is %d, outside the vocabulary [0, %d)", i, b->tokens[i], c->vocab), -1;
        if (b->seq[i] < 0 || b->seq[i] >= b->n_seqs)
            return px_error_set("batch: token %d names sequence %d of %d", i, b->seq[i], b->n_seqs), -1;
        const px_seq_blocks *s = &b->seqs[b->seq[i]];
        if (b->pos[i] < 0 || b->pos[i] >= s->n_blocks * kv->block_size)
            return px_error_set("batch: token %d has position %d beyond its %d cache blocks", i, b->pos[i], s->n_blocks), -1;
    }
    for (int i = 0; i < b->n_seqs; i++)
        for (int j = 0; j < b->seqs[i].n_blocks; j++)
            if (b->seqs[i].blocks[j] < 0 || b->seqs[i].blocks[j] >= kv->n_blocks)
                return px_error_set("batch: sequence %d uses block %d of %d", i, b->seqs[i].blocks[j], kv->n_blocks), -1;
    if (m->end == c->n_layers) {
        if (b->n_logits <= 0 || !b->logit_rows) return px_error_set("batch: the last slice needs logit rows"), -1;
        for (int i = 0; i < b->n_logits; i++)
            if (b->logit_rows[i] < 0 || b->logit_rows[i] >= b->n_tokens)
                return px_error_set("batch: logit row %d is %d, outside [0, %d)", i, b->logit_rows[i], b->n_tokens), -1;
    }
    return 0;
}

/* ---- the KV cache address of (sequence, position) in a layer ---- */

static size_t kv_offset(const px_kv_cache *kv, const px_seq_blocks *s, int layer, int pos) {
    size_t block = (size_t)s->blocks[pos / kv->block_size];
    return ((block * (size_t)kv->n_layers + (size_t)layer) * (size_t)kv->block_size + (size_t)(pos % kv->block_size)) *
           (size_t)kv->kv_dim;
}

/* ---- attention: one (tile of tokens, kv head) pair per work item ---- */

typedef struct {
    const px_model *m;
    const px_kv_cache *kv;
    const px_batch *b;
    int layer;   /* index within the slice */
    int window;  /* 0: full */
    const float *q; /* [T, nh*hd] */
    float *out;     /* [T, nh*hd] */
    const att_tile *tiles;
    float *scores;  /* [threads][scores_stride] */
    int64_t scores_stride;
} attention_job;

static void attend_tile(const attention_job *job, const att_tile *tile, int kvh, float *scores) {
    const px_model_config *c = &job->m->cfg;
    const px_kv_cache *kv = job->kv;
    const int hd = c->head_dim, group = c->n_heads / c->n_kv_heads;
    const px_seq_blocks *s = &job->b->seqs[job->b->seq[tile->t0]];
    const size_t esz = px_dtype_size(kv->dtype), layer_off = (size_t)job->layer * kv->block_size * kv->kv_dim * esz;
    px_kv_view view = {.k = (const char *)kv->k + layer_off, .v = (const char *)kv->v + layer_off, .dtype = kv->dtype,
                       .blocks = s->blocks, .block_size = kv->block_size,
                       .block_stride = (int64_t)kv->n_layers * kv->block_size * kv->kv_dim, .row_stride = kv->kv_dim};
    float *out[ATT_TILE * 64];
    const float *q[ATT_TILE * 64];
    int32_t first[ATT_TILE * 64], last[ATT_TILE * 64];
    int n = 0;
    for (int t = tile->t0; t < tile->t0 + tile->n; t++) {
        const int pos = job->b->pos[t];
        for (int h = kvh * group; h < (kvh + 1) * group; h++) {
            q[n] = job->q + ((int64_t)t * c->n_heads + h) * hd;
            out[n] = job->out + ((int64_t)t * c->n_heads + h) * hd;
            first[n] = job->window > 0 ? PX_MAX(0, pos - job->window + 1) : 0;
            last[n++] = pos;
        }
    }
    px_attention(out, q, first, last, n, hd, 1.0f / sqrtf((float)hd), &view, kvh, scores);
}

static void attention_range(void *arg, int64_t start, int64_t end, int thread) {
    const attention_job *job = arg;
    int nkv = job->m->cfg.n_kv_heads;
    float *scores = job->scores + (int64_t)thread * job->scores_stride;
    for (int64_t i = start; i < end; i++) attend_tile(job, &job->tiles[i / nkv], (int)(i % nkv), scores);
}

/* Cuts the batch into runs of up to ATT_TILE consecutive tokens of one sequence. */
static int make_tiles(const px_batch *b, att_tile *tiles) {
    int n = 0;
    for (int t = 0; t < b->n_tokens; t++) {
        if (n > 0 && tiles[n - 1].n < ATT_TILE && b->seq[t] == b->seq[tiles[n - 1].t0 + tiles[n - 1].n - 1])
            tiles[n - 1].n++;
        else
            tiles[n++] = (att_tile){t, 1};
    }
    return n;
}

/* ---- one decoder layer ---- */

static void write_kv(px_kv_cache *kv, const px_batch *b, int layer, const float *k, const float *v) {
    const size_t esz = px_dtype_size(kv->dtype);
    for (int t = 0; t < b->n_tokens; t++) {
        size_t off = kv_offset(kv, &b->seqs[b->seq[t]], layer, b->pos[t]) * esz;
        const float *kt = k + (int64_t)t * kv->kv_dim, *vt = v + (int64_t)t * kv->kv_dim;
        px_convert((char *)kv->k + off, kv->dtype, kt, PX_DTYPE_F32, (size_t)kv->kv_dim);
        px_convert((char *)kv->v + off, kv->dtype, vt, PX_DTYPE_F32, (size_t)kv->kv_dim);
    }
}

static void attention_block(px_model *m, px_pool *pool, px_kv_cache *kv, const px_batch *b, int li) {
    const px_model_config *c = &m->cfg;
    const px_layer *L = &m->layers[li];
    px_scratch *s = &m->scratch;
    const int T = b->n_tokens, hd = c->head_dim;
    px_rmsnorm(s->xb, s->x, L->attn_norm, T, c->hidden, c->norm_eps); /* xb [T, H] */
    px_matmul_out qkv[3] = {{s->q, &L->wq, L->bq}, {s->k, &L->wk, L->bk}, {s->v, &L->wv, L->bv}};
    px_matmul_multi(pool, s->xb, T, qkv, 3);                             /* q [T, nh*hd], k, v [T, nkv*hd] */
    if (c->qk_norm) {                                                    /* Qwen3: per-head RMSNorm */
        px_rmsnorm(s->q, s->q, L->q_norm, (int64_t)T * c->n_heads, hd, c->norm_eps);
        px_rmsnorm(s->k, s->k, L->k_norm, (int64_t)T * c->n_kv_heads, hd, c->norm_eps);
    }
    for (int t = 0; t < T; t++) {                                        /* angles: once per token, in embed */
        px_rope_neox_cs(s->q + (int64_t)t * c->n_heads * hd, c->n_heads, hd, s->rope + (int64_t)t * hd);
        px_rope_neox_cs(s->k + (int64_t)t * c->n_kv_heads * hd, c->n_kv_heads, hd, s->rope + (int64_t)t * hd);
    }
    write_kv(kv, b, li, s->k, s->v);
    attention_job job = {.m = m, .kv = kv, .b = b, .layer = li, .window = L->window, .q = s->q, .out = s->att,
                         .tiles = s->tiles, .scores = s->scores, .scores_stride = s->scores_cap / px_pool_size(pool)};
    px_pool_run(pool, (int64_t)s->n_tiles * c->n_kv_heads, 1, attention_range, &job); /* att [T, nh*hd] */
    px_matmul(pool, s->xb, s->att, T, &L->wo, NULL);                      /* xb [T, H] */
    for (int64_t i = 0; i < (int64_t)T * c->hidden; i++) s->x[i] += s->xb[i];
}

static void mlp_block(px_model *m, px_pool *pool, int T, int li) {
    const px_model_config *c = &m->cfg;
    const px_layer *L = &m->layers[li];
    px_scratch *s = &m->scratch;
    px_rmsnorm(s->xb, s->x, L->ffn_norm, T, c->hidden, c->norm_eps); /* xb [T, H] */
    px_matmul_swiglu(pool, s->gate, s->xb, T, &L->w_gate, &L->w_up);    /* gate [T, I] = silu(xb gate^T) * xb up^T */
    px_matmul(pool, s->xb, s->gate, T, &L->w_down, NULL);               /* xb [T, H] */
    for (int64_t i = 0; i < (int64_t)T * c->hidden; i++) s->x[i] += s->xb[i];
}

/* ---- embedding in, logits out ---- */

static void embed_tokens(px_model *m, const px_batch *b) {
    for (int t = 0; t < b->n_tokens; t++)
        px_weight_row_to_f32(m->scratch.x + (int64_t)t * m->cfg.hidden, &m->embed, b->tokens[t]);
}

static void compute_logits(px_model *m, px_pool *pool, const px_batch *b, float *logits) {
    const int H = m->cfg.hidden;
    for (int i = 0; i < b->n_logits; i++) /* rows [n_logits, H] */
        memcpy(m->scratch.rows + (int64_t)i * H, m->scratch.x + (int64_t)b->logit_rows[i] * H, (size_t)H * sizeof(float));
    px_rmsnorm(m->scratch.rows, m->scratch.rows, m->final_norm, b->n_logits, H, m->cfg.norm_eps);
    px_matmul(pool, logits, m->scratch.rows, b->n_logits, &m->lm_head, NULL); /* logits [n_logits, vocab] */
}

static int max_span(const px_batch *b) {
    int span = 1;
    for (int t = 0; t < b->n_tokens; t++) span = PX_MAX(span, b->pos[t] + 1);
    return span;
}

int px_model_forward(px_model *m, px_pool *pool, px_kv_cache *kv, const px_batch *b, const float *hidden_in,
                     float *out) {
    if (check_batch(m, kv, b, hidden_in)) return -1;
    const int T = b->n_tokens, H = m->cfg.hidden, hd = m->cfg.head_dim;
    const int64_t per_thread = (int64_t)ATT_TILE * (m->cfg.n_heads / m->cfg.n_kv_heads) * max_span(b);
    reserve_scratch(m, T, PX_MAX(b->n_logits, 1), per_thread * px_pool_size(pool));
    px_scratch *s = &m->scratch;
    if (m->start == 0) embed_tokens(m, b);                                         /* x [T, H] */
    else memcpy(s->x, hidden_in, (size_t)T * H * sizeof(float));
    for (int t = 0; t < T; t++) px_rope_angles(s->rope + (int64_t)t * hd, hd, b->pos[t], m->inv_freq);
    s->n_tiles = make_tiles(b, s->tiles);
    for (int li = 0; li < m->end - m->start; li++) {
        attention_block(m, pool, kv, b, li);
        mlp_block(m, pool, T, li);
    }
    if (m->end == m->cfg.n_layers) compute_logits(m, pool, b, out);
    else memcpy(out, m->scratch.x, (size_t)T * H * sizeof(float));
    return 0;
}
