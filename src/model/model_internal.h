/* model_internal.h - the px_model struct, shared by load.c and forward.c only. */
#ifndef PX_MODEL_INTERNAL_H
#define PX_MODEL_INTERNAL_H
#include "model.h"

typedef struct {
    const float *attn_norm, *ffn_norm; /* [hidden] */
    const float *q_norm, *k_norm;      /* [head_dim], Qwen3 only */
    px_weight wq, wk, wv, wo;          /* [n_heads*hd, hidden] [kv_dim, hidden] x2 [hidden, n_heads*hd] */
    const float *bq, *bk, *bv;         /* biases, Qwen2 only */
    px_weight w_gate, w_up, w_down;    /* [inter, hidden] x2, [hidden, inter] */
    int window;                        /* sliding window of this layer, 0 = none */
} px_layer;

typedef struct {
    float *x, *xb, *q, *k, *v, *att, *gate, *rows, *scores;
    float *rope;              /* [T, head_dim]: cos, sin of each token's angles */
    void *tiles;              /* [T] attention tiles (forward.c) */
    int n_tiles;
    int64_t tokens_cap, rows_cap, scores_cap;
} px_scratch;

struct px_model {
    px_model_config cfg;
    int start, end;
    px_layer *layers;          /* [end - start] */
    px_weight embed;           /* [vocab, hidden], first slice only */
    px_weight lm_head;         /* [vocab, hidden], last slice only */
    const float *final_norm;   /* [hidden], last slice only */
    float *inv_freq;           /* [head_dim / 2], RoPE frequencies after scaling */
    px_st_mapping *mappings;   /* kept mapped for the model's lifetime */
    int n_mappings;
    void **owned;              /* converted copies */
    int n_owned;
    size_t weight_bytes;
    px_scratch scratch;
};

#endif
