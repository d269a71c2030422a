/* test_engine_kvpool.c - unit tests of the KV block pool and prefix cache
 * (src/engine/kvpool.c): allocation until exhaustion, reference counts,
 * registration and lookup (with the parent hash and tokens verified), LRU
 * eviction order, and a randomized run against a brute-force model that
 * exercises the hash table's backward-shift deletion. */
#include "kvpool.h"
#include "px_test.h"
#include <string.h>

#define BS 4

static void tokens_of(int seed, int32_t *t) {
    for (int i = 0; i < BS; i++) t[i] = seed * 31 + i;
}

static void test_alloc_release(void) {
    px_kvpool *p = px_kvpool_create(5, BS);
    int got[5];
    for (int i = 0; i < 5; i++) got[i] = px_kvpool_alloc(p);
    CHECK(got[0] == 0 && got[4] == 4); /* lowest ids first */
    CHECK(px_kvpool_alloc(p) == -1);
    px_kvpool_counts c = px_kvpool_count(p);
    CHECK(c.total == 5 && c.used == 5 && c.cached == 0);
    px_kvpool_release(p, got[2]);
    CHECK(px_kvpool_alloc(p) == got[2]);
    for (int i = 0; i < 5; i++) px_kvpool_release(p, got[i]);
    c = px_kvpool_count(p);
    CHECK(c.used == 0 && c.cached == 0);
    px_kvpool_free(p);
}

static void test_register_lookup(void) {
    px_kvpool *p = px_kvpool_create(4, BS);
    int32_t t0[BS], t1[BS], other[BS];
    tokens_of(1, t0), tokens_of(2, t1), tokens_of(3, other);
    px_block_hash h0, h1, h1_wrong_parent;
    px_block_hash_of(NULL, t0, BS, &h0);
    px_block_hash_of(&h0, t1, BS, &h1);
    px_block_hash_of(NULL, t1, BS, &h1_wrong_parent);
    CHECK(h1.lo != h1_wrong_parent.lo || h1.hi != h1_wrong_parent.hi); /* the parent is part of the hash */
    int b0 = px_kvpool_alloc(p), b1 = px_kvpool_alloc(p);
    px_kvpool_register(p, b0, &h0, NULL, t0);
    px_kvpool_register(p, b1, &h1, &h0, t1);
    /* shared while in use */
    CHECK(px_kvpool_lookup(p, &h0, NULL, t0) == b0 && px_kvpool_ref(p, b0) == 2);
    px_kvpool_release(p, b0);
    /* verification: same hash, other tokens or parent -> not found */
    CHECK(px_kvpool_lookup(p, &h1, &h0, other) == -1);
    CHECK(px_kvpool_lookup(p, &h1, NULL, t1) == -1);
    /* a second block with the same content is not registered twice */
    int dup = px_kvpool_alloc(p);
    px_kvpool_register(p, dup, &h0, NULL, t0);
    px_kvpool_release(p, dup);
    CHECK(px_kvpool_count(p).cached == 0); /* dup went back plain free */
    /* released registered blocks stay findable as cached */
    px_kvpool_release(p, b1);
    px_kvpool_release(p, b0);
    px_kvpool_counts c = px_kvpool_count(p);
    CHECK(c.used == 0 && c.cached == 2);
    CHECK(px_kvpool_lookup(p, &h1, &h0, t1) == b1 && px_kvpool_count(p).cached == 1 && px_kvpool_count(p).used == 1);
    px_kvpool_release(p, b1);
    px_kvpool_free(p);
}

static void test_lru(void) {
    px_kvpool *p = px_kvpool_create(3, BS);
    int32_t t[3][BS];
    px_block_hash h[3];
    int b[3];
    for (int i = 0; i < 3; i++) {
        tokens_of(10 + i, t[i]);
        px_block_hash_of(NULL, t[i], BS, &h[i]);
        b[i] = px_kvpool_alloc(p);
        px_kvpool_register(p, b[i], &h[i], NULL, t[i]);
    }
    px_kvpool_release(p, b[1]); /* LRU order: 1, 2, 0 */
    px_kvpool_release(p, b[2]);
    px_kvpool_release(p, b[0]);
    int n1 = px_kvpool_alloc(p); /* evicts 1 */
    CHECK(n1 == b[1]);
    CHECK(px_kvpool_lookup(p, &h[1], NULL, t[1]) == -1);
    CHECK(px_kvpool_lookup(p, &h[2], NULL, t[2]) == b[2]); /* touch 2: order now 0 */
    int n2 = px_kvpool_alloc(p); /* evicts 0 */
    CHECK(n2 == b[0] && px_kvpool_lookup(p, &h[0], NULL, t[0]) == -1);
    CHECK(px_kvpool_alloc(p) == -1);
    px_kvpool_release(p, n1), px_kvpool_release(p, n2), px_kvpool_release(p, b[2]);
    px_kvpool_counts c = px_kvpool_count(p);
    CHECK(c.used == 0 && c.cached == 1);
    px_kvpool_free(p);
}

/* Random operations against a model: which content each block holds. */
static void test_random(void) {
    enum { N = 64, CONTENTS = 200, STEPS = 200000 };
    px_kvpool *p = px_kvpool_create(N, BS);
    int ref[N] = {0}, holds[N]; /* holds: registered content id or -1 */
    int where[CONTENTS];        /* block holding the content, or -1 */
    for (int i = 0; i < N; i++) holds[i] = -1;
    for (int i = 0; i < CONTENTS; i++) where[i] = -1;
    int32_t t[CONTENTS][BS];
    px_block_hash h[CONTENTS];
    for (int i = 0; i < CONTENTS; i++) tokens_of(100 + i, t[i]), px_block_hash_of(NULL, t[i], BS, &h[i]);
    uint64_t x = 1;
    int errors = 0;
    for (int step = 0; step < STEPS && !errors; step++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        int op = (int)(x >> 60) % 3, arg = (int)((x >> 20) % CONTENTS), blk = (int)((x >> 40) % N);
        if (op == 0) { /* lookup: found exactly when the model says the content is held */
            int b = px_kvpool_lookup(p, &h[arg], NULL, t[arg]);
            errors += b != where[arg];
            if (b >= 0) ref[b]++;
        } else if (op == 1) { /* alloc (may evict) and register */
            int b = px_kvpool_alloc(p);
            if (b < 0) {
                for (int i = 0; i < N; i++) errors += ref[i] == 0;
                continue;
            }
            errors += ref[b] != 0;
            if (holds[b] >= 0) where[holds[b]] = -1, holds[b] = -1;
            ref[b] = 1;
            if (where[arg] < 0) {
                px_kvpool_register(p, b, &h[arg], NULL, t[arg]);
                holds[b] = arg, where[arg] = b;
            }
        } else if (ref[blk] > 0) {
            px_kvpool_release(p, blk);
            ref[blk]--;
        }
    }
    CHECK_MSG(errors == 0, "random pool operations disagree with the model (%d errors)", errors);
    int used = 0;
    for (int i = 0; i < N; i++) {
        used += ref[i] > 0;
        while (ref[i]-- > 0) px_kvpool_release(p, i);
    }
    CHECK(used > 0 && px_kvpool_count(p).used == 0);
    px_kvpool_free(p);
}

int main(void) {
    test_alloc_release();
    test_register_lookup();
    test_lru();
    test_random();
    return px_test_finish();
}
