/* kvmem.h - the KV memory of an engine or a pipeline stage (internal to the
 * engine module): option defaults and checks, pool sizing, the mapped K/V
 * tensors and the block allocator, shared by engine.c and stage.c.
 *
 * px_engine_resolve_options() turns "0 = default" options into checked
 * values. px_kv_memory_init() sizes the pool for the model's layer slice
 * (kv_cache_bytes, or kv_cache_fraction of MemAvailable, capped at what
 * USEFUL_CONTEXTS_PER_SLOT x max_batch_size full contexts could use), maps K
 * and V anonymously (pages are committed only when first written) and
 * creates the block allocator. Threading: none; the owner serialises.
 */
#ifndef PX_KVMEM_H
#define PX_KVMEM_H

#include "engine.h"
#include "kvpool.h"

typedef struct {
    px_kv_cache kv;     /* the tensors, in the model's layout */
    size_t bytes_each;  /* size of the K and of the V mapping */
    px_kvpool *blocks;  /* reference counts, free list, prefix cache */
    int ctx_limit;      /* min(model context, tokens the pool holds) */
} px_kv_memory;

/* Copies `in` (NULL: all defaults) into `out` with every 0 replaced by its
 * default; -1 + px_error when a value is out of range. */
int px_engine_resolve_options(const px_engine_options *in, px_engine_options *out);

/* `who` prefixes error messages ("engine", "stage"). opt must be resolved. */
int px_kv_memory_init(px_kv_memory *m, const px_model *model, const px_engine_options *opt, const char *who);
void px_kv_memory_free(px_kv_memory *m);

#endif
