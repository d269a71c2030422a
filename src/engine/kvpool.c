/* kvpool.c - KV block reference counts, free stack, LRU of cached prefix
 * blocks and the hash table that finds them (see kvpool.h).
 *
 * Data: per block a reference count, its LRU links, and when registered its
 * hash, parent hash and token ids. Plain free blocks sit on a stack (lowest
 * ids on top, so a lightly used pool touches little memory). The hash table
 * is open addressing with linear probing over block ids, at most half full
 * (capacity >= 2 * blocks), with backward-shift deletion so no tombstones
 * build up.
 */
#include "kvpool.h"
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int32_t ref;
    int32_t prev, next; /* LRU links while cached */
    bool registered;
    int32_t slot;       /* index in the hash table while registered */
    px_block_hash hash, parent;
} block_meta;

struct px_kvpool {
    int n_blocks, block_size;
    block_meta *meta;
    int32_t *tokens;         /* [n_blocks][block_size] of registered blocks */
    int32_t *free_stack;
    int n_free;
    int32_t lru_head, lru_tail; /* oldest, newest */
    int n_used, n_cached;
    int32_t *table;          /* block id or -1 */
    uint64_t mask;
};

px_kvpool *px_kvpool_create(int n_blocks, int block_size) {
    if (sodium_init() < 0) px_log_warn("kvpool: libsodium failed to initialise; using its portable hash code");
    px_kvpool *p = px_calloc(1, sizeof *p);
    p->n_blocks = n_blocks;
    p->block_size = block_size;
    p->meta = px_calloc((size_t)n_blocks, sizeof *p->meta);
    p->tokens = px_malloc((size_t)n_blocks * (size_t)block_size * sizeof *p->tokens);
    p->free_stack = px_malloc((size_t)n_blocks * sizeof *p->free_stack);
    for (int i = 0; i < n_blocks; i++) p->free_stack[i] = n_blocks - 1 - i;
    p->n_free = n_blocks;
    p->lru_head = p->lru_tail = -1;
    uint64_t cap = 16;
    while (cap < 2 * (uint64_t)n_blocks) cap *= 2;
    p->table = px_malloc(cap * sizeof *p->table);
    memset(p->table, 0xff, cap * sizeof *p->table);
    p->mask = cap - 1;
    return p;
}

void px_kvpool_free(px_kvpool *p) {
    if (!p) return;
    free(p->meta);
    free(p->tokens);
    free(p->free_stack);
    free(p->table);
    free(p);
}

void px_block_hash_of(const px_block_hash *parent, const int32_t *tokens, int block_size, px_block_hash *out) {
    static const px_block_hash root = {0, 0};
    unsigned char digest[16];
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, sizeof digest);
    crypto_generichash_update(&st, (const unsigned char *)(parent ? parent : &root), sizeof root);
    crypto_generichash_update(&st, (const unsigned char *)tokens, (size_t)block_size * sizeof *tokens);
    crypto_generichash_final(&st, digest, sizeof digest);
    memcpy(&out->lo, digest, 8);
    memcpy(&out->hi, digest + 8, 8);
}

static bool hash_eq(const px_block_hash *a, const px_block_hash *b) { return a->lo == b->lo && a->hi == b->hi; }

/* ---- LRU list of cached blocks ---- */

static void lru_push_newest(px_kvpool *p, int b) {
    p->meta[b].prev = p->lru_tail;
    p->meta[b].next = -1;
    if (p->lru_tail >= 0) p->meta[p->lru_tail].next = b;
    else p->lru_head = b;
    p->lru_tail = b;
    p->n_cached++;
}

static void lru_remove(px_kvpool *p, int b) {
    block_meta *m = &p->meta[b];
    if (m->prev >= 0) p->meta[m->prev].next = m->next;
    else p->lru_head = m->next;
    if (m->next >= 0) p->meta[m->next].prev = m->prev;
    else p->lru_tail = m->prev;
    m->prev = m->next = -1;
    p->n_cached--;
}

/* ---- hash table ---- */

static uint64_t home_slot(const px_kvpool *p, const px_block_hash *h) { return h->lo & p->mask; }

static int64_t table_find(const px_kvpool *p, const px_block_hash *h) {
    for (uint64_t i = home_slot(p, h);; i = (i + 1) & p->mask) {
        int32_t b = p->table[i];
        if (b < 0) return -1;
        if (hash_eq(&p->meta[b].hash, h)) return (int64_t)i;
    }
}

static void table_insert(px_kvpool *p, int block) {
    uint64_t i = home_slot(p, &p->meta[block].hash);
    while (p->table[i] >= 0) i = (i + 1) & p->mask;
    p->table[i] = block;
    p->meta[block].slot = (int32_t)i;
}

/* Backward-shift deletion: later entries of the probe run move into the hole
 * when their home slot does not lie cyclically in (hole, j]. */
static void table_delete(px_kvpool *p, uint64_t hole) {
    for (uint64_t j = (hole + 1) & p->mask; p->table[j] >= 0; j = (j + 1) & p->mask) {
        uint64_t home = home_slot(p, &p->meta[p->table[j]].hash);
        bool stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (stays) continue;
        p->table[hole] = p->table[j];
        p->meta[p->table[hole]].slot = (int32_t)hole;
        hole = j;
    }
    p->table[hole] = -1;
}

static void unregister(px_kvpool *p, int b) {
    table_delete(p, (uint64_t)p->meta[b].slot);
    p->meta[b].registered = false;
    p->meta[b].slot = -1;
}

/* ---- the public operations ---- */

int px_kvpool_alloc(px_kvpool *p) {
    int b;
    if (p->n_free > 0) {
        b = p->free_stack[--p->n_free];
    } else if (p->lru_head >= 0) {
        b = p->lru_head;
        lru_remove(p, b);
        unregister(p, b);
    } else {
        return -1;
    }
    p->meta[b].ref = 1;
    p->n_used++;
    return b;
}

void px_kvpool_release(px_kvpool *p, int block) {
    block_meta *m = &p->meta[block];
    if (m->ref <= 0) {
        px_log(PX_LOG_ERROR, "kvpool: block %d released more often than taken", block);
        return;
    }
    if (--m->ref > 0) return;
    p->n_used--;
    if (m->registered) lru_push_newest(p, block);
    else p->free_stack[p->n_free++] = block;
}

int px_kvpool_lookup(px_kvpool *p, const px_block_hash *h, const px_block_hash *parent, const int32_t *tokens) {
    int64_t slot = table_find(p, h);
    if (slot < 0) return -1;
    int b = p->table[slot];
    block_meta *m = &p->meta[b];
    static const px_block_hash root = {0, 0};
    if (!hash_eq(&m->parent, parent ? parent : &root) ||
        memcmp(p->tokens + (size_t)b * (size_t)p->block_size, tokens, (size_t)p->block_size * sizeof *tokens))
        return -1; /* a 128-bit collision: never share the wrong block */
    if (m->ref == 0) {
        lru_remove(p, b);
        p->n_used++;
    }
    m->ref++;
    return b;
}

void px_kvpool_register(px_kvpool *p, int block, const px_block_hash *h, const px_block_hash *parent,
                        const int32_t *tokens) {
    block_meta *m = &p->meta[block];
    if (m->registered || m->ref <= 0 || table_find(p, h) >= 0) return;
    static const px_block_hash root = {0, 0};
    m->hash = *h;
    m->parent = parent ? *parent : root;
    memcpy(p->tokens + (size_t)block * (size_t)p->block_size, tokens, (size_t)p->block_size * sizeof *tokens);
    m->registered = true;
    table_insert(p, block);
}

px_kvpool_counts px_kvpool_count(const px_kvpool *p) {
    return (px_kvpool_counts){.total = p->n_blocks, .used = p->n_used, .cached = p->n_cached};
}

int px_kvpool_ref(const px_kvpool *p, int block) { return p->meta[block].ref; }

/* ---- block tables ---- */

bool px_kvpool_grow(px_kvpool *p, int32_t *table, int *n, int n_positions) {
    const int need = (int)(((int64_t)n_positions + p->block_size - 1) / p->block_size);
    while (*n < need) {
        int b = px_kvpool_alloc(p);
        if (b < 0) return false;
        table[(*n)++] = b;
    }
    return true;
}

void px_kvpool_release_table(px_kvpool *p, const int32_t *table, int *n) {
    for (int i = *n - 1; i >= 0; i--) px_kvpool_release(p, table[i]);
    *n = 0;
}
