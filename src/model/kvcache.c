/* kvcache.c - the block pool behind every sequence's keys and values.
 * The serving engine hands out blocks and keeps block tables; the forward
 * pass only reads and writes through them (see px_kv_cache in model.h). */
#include "model.h"
#include <stdlib.h>

px_kv_cache *px_kv_cache_create(int n_layers, int kv_dim, int block_size, int n_blocks) {
    return px_kv_cache_create_typed(n_layers, kv_dim, block_size, n_blocks, PX_DTYPE_F32);
}

px_kv_cache *px_kv_cache_create_typed(int n_layers, int kv_dim, int block_size, int n_blocks, px_dtype dtype) {
    px_kv_cache *kv = px_calloc(1, sizeof *kv);
    kv->dtype = dtype;
    kv->n_layers = n_layers;
    kv->kv_dim = kv_dim;
    kv->block_size = block_size;
    kv->n_blocks = n_blocks;
    size_t n = (size_t)n_blocks * (size_t)n_layers * (size_t)block_size * (size_t)kv_dim;
    kv->k = px_aligned_alloc(n * px_dtype_size(dtype));
    kv->v = px_aligned_alloc(n * px_dtype_size(dtype));
    return kv;
}

void px_kv_cache_free(px_kv_cache *kv) {
    if (!kv) return;
    px_aligned_free(kv->k);
    px_aligned_free(kv->v);
    free(kv);
}
