/* model.h - the model module: Hugging Face model directories and the
 * transformer forward pass over a layer slice.
 *
 *   px_model_config_load()  reads config.json (+ generation_config.json).
 *   px_model_load()         maps the tensors of layers [start, end) from
 *                           model.safetensors or the sharded index (plus the
 *                           embedding when start == 0, final norm and lm_head
 *                           when end == n_layers); files are mmap'd per tensor,
 *                           and converted only when --dtype asks for another type.
 *   px_model_forward()      runs a batch of tokens from any number of sequences
 *                           through the slice: hidden states (or token ids on the
 *                           first slice) in, hidden states (or logits on the last
 *                           slice) out, reading and writing a paged KV cache.
 *
 * Ownership: a px_model owns its mappings and converted buffers; the pool and
 * KV cache passed in are borrowed. Threading: one forward at a time per model.
 */
#ifndef PX_MODEL_H
#define PX_MODEL_H

#include "px_base.h"
#include "tensor.h"

typedef enum { PX_ARCH_LLAMA, PX_ARCH_QWEN2, PX_ARCH_QWEN3, PX_ARCH_MISTRAL } px_arch;
typedef enum { PX_ROPE_SCALING_NONE, PX_ROPE_SCALING_LLAMA3, PX_ROPE_SCALING_LINEAR } px_rope_scaling;

#define PX_MAX_EOS 8

typedef struct {
    px_arch arch;
    char arch_name[64];        /* "LlamaForCausalLM", ... */
    int hidden;                /* hidden_size */
    int intermediate;          /* intermediate_size */
    int n_layers;              /* num_hidden_layers */
    int n_heads;               /* num_attention_heads */
    int n_kv_heads;            /* num_key_value_heads */
    int head_dim;              /* head_dim, or hidden / n_heads */
    int vocab;                 /* vocab_size */
    int max_pos;               /* max_position_embeddings */
    float norm_eps;            /* rms_norm_eps */
    double rope_theta;
    px_rope_scaling rope_scaling;
    double rope_factor, rope_low_freq_factor, rope_high_freq_factor;
    int rope_original_max_pos;
    bool tie_embeddings;
    bool qkv_bias;             /* Qwen2, or attention_bias */
    bool qk_norm;              /* Qwen3: RMSNorm over each head of q and k */
    int sliding_window;        /* 0: full attention */
    int sliding_window_from;   /* first layer that uses the window */
    px_dtype stored_dtype;     /* torch_dtype */
    int bos_id;                /* -1 if none */
    int eos_ids[PX_MAX_EOS];
    int n_eos;
} px_model_config;

/* Reads DIR/config.json (and DIR/generation_config.json when present). */
int px_model_config_load(const char *dir, px_model_config *cfg);

typedef struct {
    int start, end;    /* layer slice [start, end); end <= 0 means n_layers */
    int dtype;         /* weight dtype; -1 keeps each tensor as stored */
    /* Optional: called from the loading thread with the bytes (as stored in
     * the files) of the slice's tensors mapped or converted so far and their
     * total: once with done = 0, after every tensor, and done = total at the
     * end of a successful load. */
    void (*progress)(void *user, uint64_t done, uint64_t total);
    void *progress_user;
} px_load_options;

typedef struct px_model px_model;

px_model *px_model_load(const char *dir, const px_load_options *opt);
void px_model_free(px_model *m);
const px_model_config *px_model_config_of(const px_model *m);
int px_model_start(const px_model *m);
int px_model_end(const px_model *m);
bool px_model_is_first(const px_model *m); /* start == 0: takes token ids */
bool px_model_is_last(const px_model *m);  /* end == n_layers: gives logits */
size_t px_model_weight_bytes(const px_model *m);
/* Bytes of weights one decode step reads: all of them, less the embedding
 * when it is not also the lm_head (a lookup reads one row). */
size_t px_model_bytes_per_token(const px_model *m);

/* ---- safetensors: the tensor index of a model directory ----
 * px_st_open() reads the headers of DIR/model.safetensors, or of every shard
 * named by DIR/model.safetensors.index.json, validating each entry (dtype,
 * shape, offsets inside the file). px_st_map() maps one tensor's bytes. */
typedef struct {
    char *name;
    int dtype;          /* px_dtype, or -1 for a dtype we do not compute with */
    char dtype_name[16];
    int n_dims;
    int64_t shape[8];
    uint64_t offset;    /* absolute offset of the data in its file */
    uint64_t nbytes;
    int file;           /* index into the file list */
} px_st_tensor;

typedef struct px_safetensors px_safetensors;

/* A read-only mapping of one tensor; release with px_st_unmap(). */
typedef struct {
    void *base;
    size_t length;
    const void *data;
} px_st_mapping;

px_safetensors *px_st_open(const char *dir);
void px_st_close(px_safetensors *st);
int px_st_count(const px_safetensors *st);
const px_st_tensor *px_st_at(const px_safetensors *st, int i);
const px_st_tensor *px_st_find(const px_safetensors *st, const char *name);
const char *px_st_file_path(const px_safetensors *st, int file);
int px_st_map(const px_safetensors *st, const px_st_tensor *t, px_st_mapping *out);
void px_st_unmap(px_st_mapping *m);

/* ---- KV cache: a pool of fixed-size blocks shared by all sequences ----
 * Layout: k, v = [n_blocks][n_layers][block_size][kv_dim] of dtype (f32, the
 * default when the struct is zero-initialized, or f16), where n_layers is
 * the number of layers in the slice. A sequence owns a block table: position
 * p lives in block table[p / block_size] at slot p % block_size. */
typedef struct {
    int n_layers, kv_dim, block_size, n_blocks;
    void *k, *v;
    px_dtype dtype;
} px_kv_cache;

px_kv_cache *px_kv_cache_create(int n_layers, int kv_dim, int block_size, int n_blocks);
px_kv_cache *px_kv_cache_create_typed(int n_layers, int kv_dim, int block_size, int n_blocks, px_dtype dtype);
void px_kv_cache_free(px_kv_cache *kv);

typedef struct {
    const int32_t *blocks; /* physical block ids, one per block_size positions */
    int n_blocks;
} px_seq_blocks;

/* A batch of n_tokens tokens drawn from n_seqs sequences. Token i belongs to
 * sequence seq[i] at position pos[i]; all earlier positions of that sequence
 * must already be in the cache (or earlier in this batch). */
typedef struct {
    int n_tokens;
    const int32_t *tokens;     /* [n_tokens] token ids (first slice only) */
    const int32_t *pos;        /* [n_tokens] */
    const int32_t *seq;        /* [n_tokens] index into seqs */
    int n_seqs;
    const px_seq_blocks *seqs; /* [n_seqs] */
    int n_logits;              /* last slice: rows of logits wanted */
    const int32_t *logit_rows; /* [n_logits] token indices whose logits are computed */
} px_batch;

/* hidden_in: [n_tokens, hidden] f32 (NULL on the first slice, which embeds
 * batch->tokens). out: [n_tokens, hidden] on a middle slice, [n_logits, vocab]
 * on the last. Returns 0, or -1 with px_error_get() on invalid input. */
int px_model_forward(px_model *m, px_pool *pool, px_kv_cache *kv, const px_batch *batch,
                     const float *hidden_in, float *out);

#endif
