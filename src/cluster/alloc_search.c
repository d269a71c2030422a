/* alloc_search.c - s*(k): the fewest stages that realise k full pipelines.
 *
 * Capacities are integers in layer units (px_stage_units), sorted largest
 * first. Replacing a node by a larger unused one never breaks a pipeline, so
 * some optimal choice of s nodes is always the s largest: s*(k) is the least
 * s such that the s largest capacities split into k groups each reaching
 * `need`. That is a bin-covering feasibility test, answered two ways:
 *
 *   exact   depth-first search placing items (largest first) into bins,
 *           with the state (item, sorted open residuals) so that bins with
 *           equal residuals are tried once; among bins an item completes only
 *           the largest residual is tried (it dominates the others); pruning
 *           when the items left cannot fill the residuals or fewer items than
 *           open bins remain; failed states memoised in a hash set; a step
 *           budget shared by the whole table turns a hopeless search into
 *           "unknown" (the best answer found so far is kept). s is scanned
 *           downwards from the greedy answer to a lower bound (the fewest
 *           largest capacities whose sum reaches k * need, and s*(k-1) + 1);
 *           the first infeasible s proves the one above it minimal.
 *   greedy  every item goes to the bin with the largest residual (which both
 *           closes a bin with least waste and spreads partial fills), largest
 *           items first; s is the number of items used when the last bin closes.
 *
 * Both return a witness: the bin of each of the s items. */
#include "cluster_internal.h"
#include "alloc_search.h"
#include <stdlib.h>
#include <string.h>

/* ---------------- greedy ---------------- */

typedef struct {
    int residual, bin;
} open_bin;

static void heap_push(open_bin *h, int *n, open_bin b) {
    int i = (*n)++;
    while (i > 0) {
        int parent = (i - 1) / 2;
        if (h[parent].residual > b.residual || (h[parent].residual == b.residual && h[parent].bin < b.bin)) break;
        h[i] = h[parent];
        i = parent;
    }
    h[i] = b;
}

static bool heap_before(open_bin a, open_bin b) {
    return a.residual > b.residual || (a.residual == b.residual && a.bin < b.bin);
}

static open_bin heap_pop(open_bin *h, int *n) {
    open_bin top = h[0], last = h[--(*n)];
    int i = 0;
    for (;;) {
        int child = 2 * i + 1;
        if (child >= *n) break;
        if (child + 1 < *n && heap_before(h[child + 1], h[child])) child++;
        if (!heap_before(h[child], last)) break;
        h[i] = h[child];
        i = child;
    }
    if (*n > 0) h[i] = last;
    return top;
}

int px_search_greedy(const int *v, int n, int need, int k, int *bin_of) {
    if (k <= 0) return 0;
    if (k > n) return -1;
    open_bin *heap = px_malloc((size_t)k * sizeof *heap);
    int open = 0, used = 0;
    for (int b = 0; b < k; b++) heap_push(heap, &open, (open_bin){need, b});
    for (int i = 0; i < n; i++) bin_of[i] = -1;
    while (open > 0 && used < n) {
        open_bin b = heap_pop(heap, &open);
        bin_of[used] = b.bin;
        b.residual -= v[used++];
        if (b.residual > 0) heap_push(heap, &open, b);
    }
    free(heap);
    return open == 0 ? used : -1;
}

/* ---------------- exact ---------------- */

typedef struct {
    const int *v;
    int s, k, need;
    long budget, steps;
    bool aborted;
    const long *suffix;     /* suffix[i] = v[i] + ... + v[s-1] */
    uint16_t *keys;         /* arena: (k + 1) values per stored state */
    size_t n_keys, keys_cap;
    uint32_t *table;        /* open addressing: key index + 1, 0 = empty */
    size_t table_cap;
    int *work;              /* (s + 1) * k residual arrays, one per depth */
    int *choice;            /* residual value each item went into */
} search;

static uint64_t state_hash(int i, const int *res, int k) {
    uint64_t h = 1469598103934665603ull ^ (uint64_t)i;
    for (int b = 0; b < k; b++) {
        h ^= (uint64_t)res[b];
        h *= 1099511628211ull;
    }
    return h ^ (h >> 29);
}

static bool state_equals(const search *S, uint32_t key, int i, const int *res) {
    const uint16_t *stored = S->keys + (size_t)key * (S->k + 1);
    if (stored[0] != (uint16_t)i) return false;
    for (int b = 0; b < S->k; b++)
        if (stored[b + 1] != (uint16_t)res[b]) return false;
    return true;
}

static bool state_failed_before(const search *S, int i, const int *res) {
    if (!S->table_cap) return false;
    size_t mask = S->table_cap - 1, slot = state_hash(i, res, S->k) & mask;
    while (S->table[slot]) {
        if (state_equals(S, S->table[slot] - 1, i, res)) return true;
        slot = (slot + 1) & mask;
    }
    return false;
}

static void table_insert(search *S, uint32_t key, uint64_t hash) {
    size_t mask = S->table_cap - 1, slot = hash & mask;
    while (S->table[slot]) slot = (slot + 1) & mask;
    S->table[slot] = key + 1;
}

static void grow_table(search *S) {
    size_t cap = S->table_cap ? S->table_cap * 2 : 1024;
    free(S->table);
    S->table = px_calloc(cap, sizeof *S->table);
    S->table_cap = cap;
    int *res = px_malloc((size_t)S->k * sizeof *res);
    for (size_t key = 0; key < S->n_keys; key++) {
        const uint16_t *stored = S->keys + key * (S->k + 1);
        for (int b = 0; b < S->k; b++) res[b] = stored[b + 1];
        table_insert(S, (uint32_t)key, state_hash(stored[0], res, S->k));
    }
    free(res);
}

static void remember_failure(search *S, int i, const int *res) {
    if (S->n_keys + 1 > S->table_cap / 2) grow_table(S);
    if (S->n_keys == S->keys_cap) {
        S->keys_cap = S->keys_cap ? S->keys_cap * 2 : 256;
        S->keys = px_realloc(S->keys, S->keys_cap * (S->k + 1) * sizeof *S->keys);
    }
    uint16_t *stored = S->keys + S->n_keys * (S->k + 1);
    stored[0] = (uint16_t)i;
    for (int b = 0; b < S->k; b++) stored[b + 1] = (uint16_t)res[b];
    table_insert(S, (uint32_t)S->n_keys, state_hash(i, res, S->k));
    S->n_keys++;
}

/* res is sorted descending; replaces res[at] by value and restores order. */
static void replace_sorted(int *res, int k, int at, int value) {
    while (at + 1 < k && res[at + 1] > value) {
        res[at] = res[at + 1];
        at++;
    }
    res[at] = value;
}

static bool place_items_from(search *S, int i, const int *res);

static bool try_bin(search *S, int i, const int *res, int at) {
    int *next = S->work + (size_t)(i + 1) * S->k;
    memcpy(next, res, (size_t)S->k * sizeof *next);
    int value = res[at] - S->v[i];
    replace_sorted(next, S->k, at, value > 0 ? value : 0);
    S->choice[i] = res[at];
    return place_items_from(S, i + 1, next);
}

static bool search_is_hopeless(search *S, int i, const int *res, long open_sum, int open_bins) {
    if (i >= S->s || S->suffix[i] < open_sum || open_bins > S->s - i) return true;
    if (++S->steps > S->budget) {
        S->aborted = true;
        return true;
    }
    return state_failed_before(S, i, res);
}

static bool place_items_from(search *S, int i, const int *res) {
    long open_sum = 0;
    int open_bins = 0;
    for (int b = 0; b < S->k && res[b] > 0; b++) open_sum += res[b], open_bins++;
    if (open_bins == 0) {
        for (int j = i; j < S->s; j++) S->choice[j] = 0;
        return true;
    }
    if (search_is_hopeless(S, i, res, open_sum, open_bins)) return false;
    int v = S->v[i];
    /* the largest residual this item closes (dominates closing smaller ones) */
    for (int b = 0; b < open_bins; b++)
        if (res[b] <= v) {
            if (try_bin(S, i, res, b)) return true;
            if (S->aborted) return false;
            break;
        }
    /* partial fills, tightest distinct residual first */
    for (int b = open_bins - 1; b >= 0; b--) {
        if (res[b] <= v || (b + 1 < open_bins && res[b + 1] == res[b])) continue;
        if (try_bin(S, i, res, b)) return true;
        if (S->aborted) return false;
    }
    remember_failure(S, i, res);
    return false;
}

static void replay_witness(const search *S, int *bin_of) {
    int *residual = px_malloc((size_t)S->k * sizeof *residual);
    for (int b = 0; b < S->k; b++) residual[b] = S->need;
    for (int i = 0; i < S->s; i++) {
        bin_of[i] = -1;
        if (S->choice[i] <= 0) continue;
        for (int b = 0; b < S->k; b++)
            if (residual[b] == S->choice[i]) {
                bin_of[i] = b;
                residual[b] = PX_MAX(0, residual[b] - S->v[i]);
                break;
            }
    }
    free(residual);
}

/* 1 feasible (witness in bin_of), 0 infeasible, -1 budget ran out; the
 * steps taken are subtracted from *budget_left. */
static int top_items_can_cover(const int *v, int s, int need, int k, long *budget_left, int *bin_of) {
    search S = {.v = v, .s = s, .k = k, .need = need, .budget = *budget_left};
    long *suffix = px_malloc((size_t)(s + 1) * sizeof *suffix);
    suffix[s] = 0;
    for (int i = s - 1; i >= 0; i--) suffix[i] = suffix[i + 1] + v[i];
    S.suffix = suffix;
    S.work = px_malloc((size_t)(s + 1) * k * sizeof *S.work);
    S.choice = px_calloc((size_t)s + 1, sizeof *S.choice);
    for (int b = 0; b < k; b++) S.work[b] = need;
    bool ok = place_items_from(&S, 0, S.work);
    if (ok && bin_of) replay_witness(&S, bin_of);
    free(suffix);
    free(S.work);
    free(S.choice);
    free(S.keys);
    free(S.table);
    *budget_left -= S.steps;
    return ok ? 1 : (S.aborted ? -1 : 0);
}

/* Upper bound on how many bins the items v[0..s) (descending, capped at
 * need) can cover: items equal to need close a bin alone; every other bin
 * takes two items whose sum reaches need (at most the maximum number of such
 * disjoint pairs, found by pairing the largest with the smallest that works)
 * or at least three items; and no more bins than the sum allows. */
static int cover_upper_bound(const int *v, int s, int need) {
    int full = 0;
    while (full < s && v[full] >= need) full++;
    long rest = 0;
    for (int i = full; i < s; i++) rest += v[i];
    int pairs = 0;
    for (int i = full, j = s - 1; i < j; j--)
        if (v[i] + v[j] >= need) pairs++, i++;
    long by_count = pairs + (s - full - 2 * pairs) / 3, by_sum = rest / need;
    return full + (int)PX_MIN(by_count, by_sum);
}

int px_search_lower_bound(const int *v, int n, int need, int k) {
    long want = (long)k * need, sum = 0;
    for (int s = 0; s < n; s++) {
        sum += v[s];
        if (sum >= want && s + 1 >= k && cover_upper_bound(v, s + 1, need) >= k) return s + 1;
    }
    return -1;
}

int px_search_exact(const int *v, int n, int need, int k, int lower, long *budget_left, int *bin_of, bool *exact) {
    *exact = true;
    if (k <= 0) return 0;
    int lb = px_search_lower_bound(v, n, need, k);
    if (lb < 0) return -1;
    lb = PX_MAX(lb, lower);
    int best = px_search_greedy(v, n, need, k, bin_of); /* -1 when greedy found none */
    int *trial = px_malloc((size_t)n * sizeof *trial);
    /* downwards from greedy's count: feasible answers come fast, and usually
       one infeasibility proof (at s* - 1) settles it */
    for (int s = (best > 0 ? best : n + 1) - 1; s >= lb; s--) {
        int r = *budget_left > 0 ? top_items_can_cover(v, s, need, k, budget_left, trial) : -1;
        if (r < 0) *exact = false;
        if (r <= 0) break;
        best = s;
        for (int i = 0; i < n; i++) bin_of[i] = i < s ? trial[i] : -1;
    }
    free(trial);
    return best;
}

static int compare_desc(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x < y) - (x > y);
}

int px_alloc_stage_table(const int *caps, int n, int need, px_alloc_strategy strategy, long budget, int *stages_out,
                         int max_k, bool *exact) {
    int *v = px_malloc((size_t)(n ? n : 1) * sizeof *v);
    long total = 0;
    for (int i = 0; i < n; i++) {
        v[i] = PX_MAX(0, PX_MIN(caps[i], need));
        total += v[i];
    }
    qsort(v, (size_t)n, sizeof *v, compare_desc);
    int k_max = need > 0 ? (int)PX_MIN(total / need, (long)n) : 0;
    int *bin_of = px_malloc((size_t)(n ? n : 1) * sizeof *bin_of);
    *exact = strategy != PX_ALLOC_GREEDY;
    int proven = 0; /* s*(k-1) when proven: s*(k) >= s*(k-1) + 1 */
    long budget_left = budget;
    for (int k = 0; k <= max_k; k++) {
        int s = -1;
        bool ex = true;
        if (k == 0) s = 0;
        else if (k <= k_max && strategy == PX_ALLOC_GREEDY) s = px_search_greedy(v, n, need, k, bin_of);
        else if (k <= k_max) s = px_search_exact(v, n, need, k, proven + 1, &budget_left, bin_of, &ex);
        if (strategy != PX_ALLOC_GREEDY) *exact = *exact && ex;
        stages_out[k] = s;
        proven = ex && s > 0 ? s : 0;
    }
    free(v);
    free(bin_of);
    return k_max;
}
