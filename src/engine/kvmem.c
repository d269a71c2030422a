/* kvmem.c - options and KV memory shared by the engine and pipeline stages
 * (see kvmem.h). The pool is sized in whole blocks of block_size tokens,
 * each holding K and V for every layer of the model's slice, so a slice of
 * L/k layers fits k times as many blocks in the same bytes.
 */
#include "kvmem.h"
#include <inttypes.h>
#include <stdio.h>
#include <sys/mman.h>

#define DEFAULT_KV_FRACTION 0.3
#define USEFUL_CONTEXTS_PER_SLOT 4

void px_engine_options_defaults(px_engine_options *o) {
    *o = (px_engine_options){.n_threads = 0, .kv_cache_bytes = 0, .kv_cache_fraction = DEFAULT_KV_FRACTION,
                             .block_size = 16, .max_batch_size = 32, .max_tokens_per_batch = 2048,
                             .chunked_prefill_size = 512, .disable_prefix_cache = false};
}

static int resolve_int(const char *name, int v, int def, int lo, int hi, int *out) {
    if (v == 0) v = def;
    if (v < lo || v > hi) return px_error_set("engine: %s must be in [%d, %d] (got %d)", name, lo, hi, v), -1;
    *out = v;
    return 0;
}

int px_engine_resolve_options(const px_engine_options *in, px_engine_options *o) {
    px_engine_options d;
    px_engine_options_defaults(&d);
    if (!in) return *o = d, 0;
    *o = *in;
    if (o->kv_cache_bytes < 0) return px_error_set("engine: kv_cache_bytes must be >= 0"), -1;
    if (o->kv_cache_fraction == 0) o->kv_cache_fraction = d.kv_cache_fraction;
    if (!(o->kv_cache_fraction > 0 && o->kv_cache_fraction <= 1))
        return px_error_set("engine: kv_cache_fraction must be in (0, 1] (got %g)", o->kv_cache_fraction), -1;
    if (o->n_threads < 0) o->n_threads = 0;
    if (resolve_int("block_size", o->block_size, d.block_size, 1, 4096, &o->block_size) ||
        resolve_int("max_batch_size", o->max_batch_size, d.max_batch_size, 1, 1 << 16, &o->max_batch_size) ||
        resolve_int("max_tokens_per_batch", o->max_tokens_per_batch, d.max_tokens_per_batch, 1, 1 << 20,
                    &o->max_tokens_per_batch) ||
        resolve_int("chunked_prefill_size", o->chunked_prefill_size, d.chunked_prefill_size, 1, 1 << 20,
                    &o->chunked_prefill_size))
        return -1;
    return 0;
}

/* MemAvailable from /proc/meminfo in bytes; 0 when unknown. */
static int64_t mem_available(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return 0;
    char line[256];
    long long kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %lld kB", &kb) == 1) break;
    fclose(f);
    return (int64_t)kb * 1024;
}

static int size_pool(const px_model *model, const px_engine_options *o, const char *who, int64_t *n_blocks_out) {
    const px_model_config *c = px_model_config_of(model);
    const int64_t layers = px_model_end(model) - px_model_start(model), kv_dim = (int64_t)c->n_kv_heads * c->head_dim;
    const int64_t block_bytes = 2 * layers * o->block_size * kv_dim * (int64_t)sizeof(float);
    int64_t budget = o->kv_cache_bytes;
    if (budget == 0) {
        int64_t avail = mem_available();
        if (avail <= 0) return px_error_set("%s: cannot read MemAvailable from /proc/meminfo; give kv_cache_bytes", who), -1;
        budget = (int64_t)(o->kv_cache_fraction * (double)avail);
    }
    int64_t per_ctx = (c->max_pos + o->block_size - 1) / o->block_size;
    int64_t useful = (int64_t)USEFUL_CONTEXTS_PER_SLOT * o->max_batch_size * per_ctx;
    int64_t n = PX_MIN(budget / block_bytes, PX_MIN(useful, (int64_t)(INT32_MAX / 2)));
    if (n * o->block_size < 2)
        return px_error_set("%s: a KV cache of %" PRId64 " bytes holds less than 2 tokens (a block of %d tokens is %" PRId64
                            " bytes)", who, budget, o->block_size, block_bytes), -1;
    *n_blocks_out = n;
    return 0;
}

static int map_tensors(px_kv_memory *m, const px_model *model, int block_size, int64_t n_blocks, const char *who) {
    const px_model_config *c = px_model_config_of(model);
    m->kv = (px_kv_cache){.n_layers = px_model_end(model) - px_model_start(model), .kv_dim = c->n_kv_heads * c->head_dim,
                          .block_size = block_size, .n_blocks = (int)n_blocks};
    m->bytes_each = (size_t)n_blocks * (size_t)m->kv.n_layers * (size_t)block_size * (size_t)m->kv.kv_dim * sizeof(float);
    void *k = mmap(NULL, m->bytes_each, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    void *v = mmap(NULL, m->bytes_each, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (k == MAP_FAILED || v == MAP_FAILED) {
        if (k != MAP_FAILED) munmap(k, m->bytes_each);
        if (v != MAP_FAILED) munmap(v, m->bytes_each);
        return px_error_set("%s: cannot map 2 x %zu bytes for the KV cache", who, m->bytes_each), -1;
    }
    m->kv.k = k;
    m->kv.v = v;
    return 0;
}

int px_kv_memory_init(px_kv_memory *m, const px_model *model, const px_engine_options *opt, const char *who) {
    *m = (px_kv_memory){0};
    int64_t n_blocks = 0;
    if (size_pool(model, opt, who, &n_blocks) || map_tensors(m, model, opt->block_size, n_blocks, who)) return -1;
    m->ctx_limit = (int)PX_MIN((int64_t)px_model_config_of(model)->max_pos, n_blocks * opt->block_size);
    m->blocks = px_kvpool_create((int)n_blocks, opt->block_size);
    return 0;
}

void px_kv_memory_free(px_kv_memory *m) {
    if (m->kv.k) munmap(m->kv.k, m->bytes_each);
    if (m->kv.v) munmap(m->kv.v, m->bytes_each);
    px_kvpool_free(m->blocks);
    *m = (px_kv_memory){0};
}
