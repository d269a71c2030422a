/* bpe.c - the BPE model: turning one pre-tokenized word into token ids, and
 * loading the merge table.
 *
 * A word starts as one symbol per unit: a raw byte for byte-level models, a
 * UTF-8 character otherwise (with byte fallback to <0xXX> tokens or the unk
 * token, fused when fuse_unk). Merges then apply lowest rank first, leftmost
 * first among equal ranks, using a binary min-heap of candidate pairs and a
 * doubly linked list of symbols, so a word of n units costs O(n log n). The
 * heap discipline (stale entries skipped unless the pair at that position
 * still merges into the same token) is the one `tokenizers` uses, so even
 * unusual merge tables give identical results. The merge table maps a pair
 * of ids to (rank, merged id) in one hash lookup. Short words are cached per
 * thread (see the word cache below).
 */
#include "tok_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct tk_sym {
    int32_t id, prev, next;
    uint32_t len; /* bytes covered; 0 = merged into its left neighbour */
};
struct tk_merge {
    int32_t rank, pos, id;
};

/* ---- the ByteLevel alphabet ---- */

static bool printable_byte(unsigned b) { return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174; }

uint32_t tk_byte_to_char(uint8_t b) {
    if (printable_byte(b)) return b;
    uint32_t n = 0;
    for (unsigned i = 0; i < b; i++) n += !printable_byte(i);
    return 256 + n;
}

static int16_t char_table[324];
static pthread_once_t char_table_once = PTHREAD_ONCE_INIT;

static void char_table_init(void) {
    for (int i = 0; i < 324; i++) char_table[i] = -1;
    for (int b = 0; b < 256; b++) char_table[tk_byte_to_char((uint8_t)b)] = (int16_t)b;
}

int tk_char_to_byte(uint32_t cp) {
    pthread_once(&char_table_once, char_table_init);
    return cp < 324 ? char_table[cp] : -1;
}

bool tk_bytelevel_decode(const char *s, size_t n, tk_buf *out) {
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t k = tk_utf8_decode(s + i, n - i, &cp);
        int b = k ? tk_char_to_byte(cp) : -1;
        if (b < 0) return false;
        tk_buf_putc(out, (char)b);
        i += k;
    }
    return true;
}

/* ---- the heap ---- */

static bool merge_less(const struct tk_merge *a, const struct tk_merge *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static void heap_push(tk_bpe_scratch *sc, size_t *n, struct tk_merge m) {
    if (*n == sc->heap_cap) {
        sc->heap_cap = sc->heap_cap ? sc->heap_cap * 2 : 64;
        sc->heap = px_realloc(sc->heap, sc->heap_cap * sizeof *sc->heap);
    }
    size_t i = (*n)++;
    while (i > 0 && merge_less(&m, &sc->heap[(i - 1) / 2])) {
        sc->heap[i] = sc->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    sc->heap[i] = m;
}

static struct tk_merge heap_pop(tk_bpe_scratch *sc, size_t *n) {
    struct tk_merge top = sc->heap[0], last = sc->heap[--*n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && merge_less(&sc->heap[c + 1], &sc->heap[c])) c++;
        if (!merge_less(&sc->heap[c], &last)) break;
        sc->heap[i] = sc->heap[c];
        i = c;
    }
    if (*n) sc->heap[i] = last;
    return top;
}

/* ---- initial symbols ---- */

typedef struct {
    tk_bpe_scratch *sc;
    size_t n;
    int32_t unk_len; /* pending unk run (fuse_unk), 0 when none */
} symbols;

static void sym_add(symbols *w, int32_t id, uint32_t len) {
    if (w->n == w->sc->sym_cap) {
        w->sc->sym_cap = w->sc->sym_cap ? w->sc->sym_cap * 2 : 64;
        w->sc->sym = px_realloc(w->sc->sym, w->sc->sym_cap * sizeof *w->sc->sym);
    }
    w->sc->sym[w->n] = (struct tk_sym){id, (int32_t)w->n - 1, (int32_t)w->n + 1, len};
    w->n++;
}

static void flush_unk(const px_tokenizer *tok, symbols *w) {
    if (w->unk_len) sym_add(w, tok->unk_id, (uint32_t)w->unk_len);
    w->unk_len = 0;
}

/* A unit that is not in the vocabulary: byte fallback, else unk, else dropped. */
static void add_unknown(const px_tokenizer *tok, symbols *w, const char *s, size_t len) {
    if (tok->byte_fallback) {
        bool all = true;
        for (size_t i = 0; i < len; i++) all = all && tok->byte_ids[(unsigned char)s[i]] >= 0;
        if (all) {
            flush_unk(tok, w);
            for (size_t i = 0; i < len; i++) sym_add(w, tok->byte_ids[(unsigned char)s[i]], 1);
            return;
        }
    }
    if (tok->unk_id < 0) return;
    if (w->unk_len && !tok->fuse_unk) flush_unk(tok, w);
    w->unk_len += (int32_t)len;
}

static int32_t lookup_unit(const px_tokenizer *tok, const char *s, size_t len, bool first, bool last, tk_buf *key) {
    if ((first || !tok->cont_prefix_len) && (!last || !tok->eow_suffix_len)) return tk_strmap_get(&tok->vocab, s, len);
    key->n = 0;
    if (!first) tk_buf_put(key, tok->cont_prefix, tok->cont_prefix_len);
    tk_buf_put(key, s, len);
    if (last) tk_buf_put(key, tok->eow_suffix, tok->eow_suffix_len);
    return tk_strmap_get(&tok->vocab, key->p, key->n);
}

static void initial_symbols(const px_tokenizer *tok, symbols *w, const char *s, size_t n) {
    tk_buf key = {0};
    bool plain = !tok->cont_prefix_len && !tok->eow_suffix_len;
    for (size_t i = 0; i < n;) {
        size_t len = 1;
        if (!tok->byte_level) {
            uint32_t cp;
            len = tk_utf8_decode(s + i, n - i, &cp);
            if (!len) len = 1;
        }
        int32_t id = tok->byte_level && plain ? tok->byte_ids[(unsigned char)s[i]]
                                              : lookup_unit(tok, s + i, len, i == 0, i + len == n, &key);
        if (id >= 0) {
            flush_unk(tok, w);
            sym_add(w, id, (uint32_t)len);
        } else add_unknown(tok, w, s + i, len);
        i += len;
    }
    flush_unk(tok, w);
    tk_buf_free(&key);
    if (w->n) w->sc->sym[w->n - 1].next = -1;
}

/* ---- merging ---- */

static void push_pair(const px_tokenizer *tok, tk_bpe_scratch *sc, size_t *hn, int32_t pos) {
    const struct tk_sym *a = &sc->sym[pos];
    if (a->next < 0) return;
    const tk_pairslot *m = tk_pairmap_get(&tok->merges, a->id, sc->sym[a->next].id);
    if (m) heap_push(sc, hn, (struct tk_merge){m->rank, pos, m->id});
}

static void merge_all(const px_tokenizer *tok, tk_bpe_scratch *sc, size_t n) {
    size_t hn = 0;
    for (size_t i = 0; i + 1 < n; i++) push_pair(tok, sc, &hn, (int32_t)i);
    while (hn) {
        struct tk_merge top = heap_pop(sc, &hn);
        struct tk_sym *a = &sc->sym[top.pos];
        if (!a->len || a->next < 0) continue;
        struct tk_sym *b = &sc->sym[a->next];
        const tk_pairslot *m = tk_pairmap_get(&tok->merges, a->id, b->id);
        if (!m || m->id != top.id) continue; /* stale entry */
        a->id = top.id;
        a->len += b->len;
        b->len = 0;
        a->next = b->next;
        if (a->next >= 0) sc->sym[a->next].prev = top.pos;
        if (a->prev >= 0) push_pair(tok, sc, &hn, a->prev);
        push_pair(tok, sc, &hn, top.pos);
    }
}

/* ---- word cache ----
 * Natural text repeats words, so each thread keeps a direct-mapped cache of
 * short words and their ids. Entries carry the tokenizer's serial number, so
 * tokenizers never see each other's entries; being per thread, the cache
 * needs no locks. It is freed when the thread exits. */
#define CACHE_SLOTS 4096
#define CACHE_KEY 22
#define CACHE_IDS 8
typedef struct {
    uint64_t hash;
    uint32_t serial;
    uint8_t key_len, n_ids;
    char key[CACHE_KEY];
    int32_t ids[CACHE_IDS];
} cache_slot;
static pthread_key_t cache_key;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;
static _Thread_local cache_slot *tl_cache;

static void cache_key_init(void) { pthread_key_create(&cache_key, free); }

static cache_slot *cache_slot_for(uint64_t h) {
    if (!tl_cache) {
        pthread_once(&cache_once, cache_key_init);
        tl_cache = px_calloc(CACHE_SLOTS, sizeof *tl_cache);
        pthread_setspecific(cache_key, tl_cache);
    }
    return &tl_cache[h & (CACHE_SLOTS - 1)];
}

static bool cache_hit(const cache_slot *c, uint32_t serial, const char *s, size_t n, uint64_t h) {
    return c->serial == serial && c->hash == h && c->key_len == n && !memcmp(c->key, s, n);
}

static void merge_word(const px_tokenizer *tok, tk_bpe_scratch *sc, const char *s, size_t n, tk_ids *out) {
    symbols w = {.sc = sc};
    initial_symbols(tok, &w, s, n);
    if (w.n > 1) merge_all(tok, sc, w.n);
    for (int32_t i = w.n ? 0 : -1; i >= 0; i = sc->sym[i].next) tk_ids_push(out, sc->sym[i].id);
}

void tk_bpe_word(const px_tokenizer *tok, tk_bpe_scratch *sc, const char *s, size_t n, tk_ids *out) {
    if (!n) return;
    if (tok->ignore_merges) {
        int32_t id = tk_strmap_get(&tok->vocab, s, n);
        if (id >= 0) {
            tk_ids_push(out, id);
            return;
        }
    }
    if (n > CACHE_KEY) {
        merge_word(tok, sc, s, n, out);
        return;
    }
    uint64_t h = tk_hash(s, n);
    cache_slot *c = cache_slot_for(h);
    if (cache_hit(c, tok->serial, s, n, h)) {
        tk_ids_append(out, c->ids, c->n_ids);
        return;
    }
    size_t first = out->n;
    merge_word(tok, sc, s, n, out);
    if (out->n - first > CACHE_IDS) return;
    *c = (cache_slot){.hash = h, .serial = tok->serial, .key_len = (uint8_t)n, .n_ids = (uint8_t)(out->n - first)};
    memcpy(c->key, s, n);
    if (out->n > first) memcpy(c->ids, out->v + first, (out->n - first) * sizeof *out->v);
}

void tk_bpe_scratch_free(tk_bpe_scratch *sc) {
    free(sc->sym);
    free(sc->heap);
    memset(sc, 0, sizeof *sc);
}

/* ---- loading merges ---- */

/* Looks a merge part up in the model's key space. */
static int32_t part_id(const px_tokenizer *tok, const char *s, size_t n, tk_buf *tmp) {
    if (!tok->byte_level) return tk_strmap_get(&tok->vocab, s, n);
    tmp->n = 0;
    if (!tk_bytelevel_decode(s, n, tmp)) return -1;
    return tk_strmap_get(&tok->vocab, tmp->p, tmp->n);
}

/* Splits one merge entry ("a b" or ["a", "b"]) into its two parts. */
static bool merge_parts(const cJSON *m, const char **a, size_t *alen, const char **b, size_t *blen) {
    if (cJSON_IsString(m)) {
        const char *s = m->valuestring, *sp = strchr(s, ' ');
        if (!sp || strchr(sp + 1, ' ')) return false;
        *a = s, *alen = (size_t)(sp - s), *b = sp + 1, *blen = strlen(sp + 1);
        return true;
    }
    if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 && cJSON_IsString(m->child) && cJSON_IsString(m->child->next)) {
        *a = m->child->valuestring, *alen = strlen(*a);
        *b = m->child->next->valuestring, *blen = strlen(*b);
        return true;
    }
    return false;
}

static bool add_merge(px_tokenizer *tok, const cJSON *m, int32_t rank, tk_buf *tmp, tk_buf *joined) {
    const char *a, *b;
    size_t alen, blen;
    if (!merge_parts(m, &a, &alen, &b, &blen)) {
        px_error_set("%s: model.merges[%d] is neither \"a b\" nor [\"a\", \"b\"]", tok->source, rank);
        return false;
    }
    int32_t ia = part_id(tok, a, alen, tmp), ib = part_id(tok, b, blen, tmp);
    size_t skip = tok->cont_prefix_len && blen >= tok->cont_prefix_len ? tok->cont_prefix_len : 0;
    joined->n = 0;
    tk_buf_put(joined, a, alen);
    tk_buf_put(joined, b + skip, blen - skip);
    int32_t id = part_id(tok, joined->p, joined->n, tmp);
    if (ia < 0 || ib < 0 || id < 0) {
        px_error_set("%s: model.merges[%d] ('%.*s' + '%.*s') uses a token that is not in the vocab", tok->source, rank,
                     (int)alen, a, (int)blen, b);
        return false;
    }
    tk_pairmap_put(&tok->merges, ia, ib, rank, id);
    return true;
}

bool tk_bpe_load_merges(px_tokenizer *tok, const cJSON *merges) {
    if (merges && !cJSON_IsArray(merges)) {
        px_error_set("%s: model.merges is not an array", tok->source);
        return false;
    }
    tk_buf tmp = {0}, joined = {0};
    tk_pairmap_init(&tok->merges, merges ? (size_t)cJSON_GetArraySize(merges) : 0);
    int32_t rank = 0;
    const cJSON *m;
    bool ok = true;
    cJSON_ArrayForEach(m, merges) {
        if (!(ok = add_merge(tok, m, rank++, &tmp, &joined))) break;
    }
    tk_buf_free(&tmp);
    tk_buf_free(&joined);
    return ok;
}
