/* kvpool.h - the engine's KV block allocator and prefix cache (internal to
 * the engine module; the KV tensors themselves are a px_kv_cache).
 *
 * Every physical block has a reference count. A block with count 0 is either
 * plain free, or "cached": it still holds the keys/values of a full block of
 * tokens and is findable by that block's hash until it is evicted. Cached
 * blocks wait in an LRU list and are evicted (oldest first) only when
 * px_kvpool_alloc() finds no plain free block.
 *
 * A full block is identified by a 128-bit BLAKE2b hash (libsodium
 * crypto_generichash) of (parent block's hash, the block's token ids), so a
 * hash names a whole prefix, not just one block. On lookup the stored parent
 * hash and token ids are compared as well, so even a hash collision can never
 * hand out the wrong keys and values.
 *
 * Threading: none; the engine calls it under its own lock.
 */
#ifndef PX_KVPOOL_H
#define PX_KVPOOL_H

#include "px_base.h"

typedef struct {
    uint64_t lo, hi;
} px_block_hash;

typedef struct px_kvpool px_kvpool;

px_kvpool *px_kvpool_create(int n_blocks, int block_size);
void px_kvpool_free(px_kvpool *p);

/* The hash of a full block of block_size tokens whose prefix is `parent`
 * (NULL for the first block of a sequence). */
void px_block_hash_of(const px_block_hash *parent, const int32_t *tokens, int block_size, px_block_hash *out);

/* Takes a block with reference count 1: a plain free one, else the least
 * recently used cached one (dropping its hash). -1 when every block is in use. */
int px_kvpool_alloc(px_kvpool *p);
/* Drops one reference; at 0 the block becomes cached (if registered) or free. */
void px_kvpool_release(px_kvpool *p, int block);
/* Finds the cached block holding exactly (parent, tokens) with hash h and
 * takes a reference to it; -1 when there is none. */
int px_kvpool_lookup(px_kvpool *p, const px_block_hash *h, const px_block_hash *parent, const int32_t *tokens);
/* Makes a full, in-use block findable under h. Does nothing when the block is
 * already registered or another block already holds that hash. */
void px_kvpool_register(px_kvpool *p, int block, const px_block_hash *h, const px_block_hash *parent,
                        const int32_t *tokens);

/* A sequence's block table: grows table[0, *n) with fresh blocks until it
 * covers n_positions positions. False when the pool ran out (the table
 * keeps the blocks it got; release them or try again later). */
bool px_kvpool_grow(px_kvpool *p, int32_t *table, int *n, int n_positions);
/* Releases every block of a table, last to first (so the tail of a cached
 * chain is evicted before its head), and sets *n to 0. */
void px_kvpool_release_table(px_kvpool *p, const int32_t *table, int *n);

typedef struct {
    int total;  /* blocks in the pool */
    int used;   /* reference count > 0 */
    int cached; /* count 0 but holding a registered prefix block */
} px_kvpool_counts;

px_kvpool_counts px_kvpool_count(const px_kvpool *p);
int px_kvpool_ref(const px_kvpool *p, int block); /* the reference count (tests) */

#endif
