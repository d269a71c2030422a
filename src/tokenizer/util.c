/* util.c - small building blocks of the tokenizer module: growable byte and
 * id buffers, UTF-8 decoding/validation (strict: no surrogates, no overlongs),
 * lossy UTF-8 repair, open-addressing hash maps (string -> id for the
 * vocabulary, id pair -> merge for BPE) and a thin PCRE2 wrapper.
 *
 * Hash maps use linear probing over a power-of-two table kept at most half
 * full; keys of the string map live in one arena buffer.
 */
#include "tok_internal.h"

#include <stdlib.h>
#include <string.h>

/* ---- buffers ---- */

void tk_buf_reserve(tk_buf *b, size_t extra) {
    if (b->n + extra + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->n + extra + 1) cap *= 2;
    b->p = px_realloc(b->p, cap);
    b->cap = cap;
}

void tk_buf_put(tk_buf *b, const void *s, size_t n) {
    if (!n) return;
    tk_buf_reserve(b, n);
    memcpy(b->p + b->n, s, n);
    b->n += n;
}

void tk_buf_putc(tk_buf *b, char c) {
    tk_buf_reserve(b, 1);
    b->p[b->n++] = c;
}

void tk_buf_puts(tk_buf *b, const char *s) { tk_buf_put(b, s, strlen(s)); }

void tk_buf_free(tk_buf *b) {
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}

char *tk_buf_detach(tk_buf *b, size_t *len_out) {
    tk_buf_reserve(b, 0);
    b->p[b->n] = 0;
    char *p = b->p;
    if (len_out) *len_out = b->n;
    b->p = NULL;
    b->n = b->cap = 0;
    return p;
}

void tk_ids_push(tk_ids *a, int32_t id) {
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 64;
        a->v = px_realloc(a->v, a->cap * sizeof *a->v);
    }
    a->v[a->n++] = id;
}

void tk_ids_append(tk_ids *a, const int32_t *ids, size_t n) {
    for (size_t i = 0; i < n; i++) tk_ids_push(a, ids[i]);
}

/* ---- UTF-8 ---- */

size_t tk_utf8_decode(const char *s, size_t n, uint32_t *cp) {
    const unsigned char *u = (const unsigned char *)s;
    if (n == 0) return 0;
    if (u[0] < 0x80) {
        *cp = u[0];
        return 1;
    }
    size_t len;
    uint32_t c, min;
    if ((u[0] & 0xE0) == 0xC0) len = 2, c = u[0] & 0x1F, min = 0x80;
    else if ((u[0] & 0xF0) == 0xE0) len = 3, c = u[0] & 0x0F, min = 0x800;
    else if ((u[0] & 0xF8) == 0xF0) len = 4, c = u[0] & 0x07, min = 0x10000;
    else return 0;
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((u[i] & 0xC0) != 0x80) return 0;
        c = (c << 6) | (u[i] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return 0;
    *cp = c;
    return len;
}

size_t tk_utf8_encode(uint32_t cp, char out[4]) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

size_t tk_utf8_check(const char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        if ((unsigned char)s[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        size_t k = tk_utf8_decode(s + i, n - i, &cp);
        if (!k) return i;
        i += k;
    }
    return n;
}

/* Length of the maximal prefix of s that could start a valid sequence
 * (Unicode's "maximal subpart"), at least 1. */
static size_t maximal_subpart(const unsigned char *u, size_t n) {
    unsigned char lo = 0x80, hi = 0xBF;
    size_t len;
    if (u[0] >= 0xC2 && u[0] <= 0xDF) len = 2;
    else if (u[0] >= 0xE0 && u[0] <= 0xEF) {
        len = 3;
        if (u[0] == 0xE0) lo = 0xA0;
        if (u[0] == 0xED) hi = 0x9F;
    } else if (u[0] >= 0xF0 && u[0] <= 0xF4) {
        len = 4;
        if (u[0] == 0xF0) lo = 0x90;
        if (u[0] == 0xF4) hi = 0x8F;
    } else return 1;
    size_t i = 1;
    for (; i < len && i < n; i++) {
        unsigned char a = i == 1 ? lo : 0x80, b = i == 1 ? hi : 0xBF;
        if (u[i] < a || u[i] > b) break;
    }
    return i;
}

void tk_utf8_lossy(tk_buf *out, const char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        size_t ok = tk_utf8_check(s + i, n - i);
        tk_buf_put(out, s + i, ok);
        i += ok;
        if (i >= n) break;
        tk_buf_put(out, "\xEF\xBF\xBD", 3);
        i += maximal_subpart((const unsigned char *)s + i, n - i);
    }
}

size_t tk_utf8_incomplete_tail(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    for (size_t back = 1; back <= 3 && back <= n; back++) {
        unsigned char c = u[n - back];
        if ((c & 0xC0) == 0x80) continue; /* continuation byte: look further back */
        if (c < 0xC2 || c > 0xF4) return 0;
        size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
        if (back >= need) return 0; /* complete (or invalid, which is not "unfinished") */
        return maximal_subpart(u + n - back, back) == back ? back : 0;
    }
    return 0;
}

/* ---- hashing ---- */

uint64_t tk_hash(const void *p, size_t n) {
    /* FNV-1a over 8-byte words, then a final avalanche (splitmix64). */
    const unsigned char *s = p;
    uint64_t h = 0xcbf29ce484222325ULL ^ n;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        h = (h ^ w) * 0x100000001b3ULL;
        h ^= h >> 29;
    }
    for (; i < n; i++) h = (h ^ s[i]) * 0x100000001b3ULL;
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebULL;
    h ^= h >> 31;
    return h;
}

static size_t table_size(size_t expected) {
    size_t cap = 16;
    while (cap < expected * 2 + 2) cap *= 2;
    return cap;
}

/* ---- string -> id ---- */

void tk_strmap_init(tk_strmap *m, size_t expected) {
    memset(m, 0, sizeof *m);
    m->cap = table_size(expected);
    m->slots = px_malloc(m->cap * sizeof *m->slots);
    for (size_t i = 0; i < m->cap; i++) m->slots[i].val = -1;
}

static void strmap_grow(tk_strmap *m) {
    tk_strslot *old = m->slots;
    size_t old_cap = m->cap;
    m->cap *= 2;
    m->slots = px_malloc(m->cap * sizeof *m->slots);
    for (size_t i = 0; i < m->cap; i++) m->slots[i].val = -1;
    for (size_t i = 0; i < old_cap; i++) {
        if (old[i].val < 0) continue;
        size_t j = old[i].hash & (m->cap - 1);
        while (m->slots[j].val >= 0) j = (j + 1) & (m->cap - 1);
        m->slots[j] = old[i];
    }
    free(old);
}

static size_t strmap_find(const tk_strmap *m, const char *k, size_t n, uint64_t h) {
    size_t j = h & (m->cap - 1);
    for (;;) {
        const tk_strslot *s = &m->slots[j];
        if (s->val < 0) return j;
        if (s->hash == h && s->len == n && !memcmp(m->keys.p + s->off, k, n)) return j;
        j = (j + 1) & (m->cap - 1);
    }
}

bool tk_strmap_put(tk_strmap *m, const char *k, size_t n, int32_t v) {
    if ((m->count + 1) * 2 > m->cap) strmap_grow(m);
    uint64_t h = tk_hash(k, n);
    size_t j = strmap_find(m, k, n, h);
    if (m->slots[j].val >= 0) return false;
    m->slots[j] = (tk_strslot){.hash = h, .off = (uint32_t)m->keys.n, .len = (uint32_t)n, .val = v};
    tk_buf_put(&m->keys, k, n);
    m->count++;
    return true;
}

int32_t tk_strmap_get(const tk_strmap *m, const char *k, size_t n) {
    if (!m->slots) return -1;
    return m->slots[strmap_find(m, k, n, tk_hash(k, n))].val;
}

void tk_strmap_free(tk_strmap *m) {
    free(m->slots);
    tk_buf_free(&m->keys);
    memset(m, 0, sizeof *m);
}

/* ---- (id, id) -> merge ---- */

static uint64_t pair_key(int32_t a, int32_t b) { return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b; }

static size_t pair_slot(uint64_t key, size_t cap) {
    uint64_t h = key * 0x9E3779B97F4A7C15ULL;
    return (size_t)(h >> 20) & (cap - 1);
}

void tk_pairmap_init(tk_pairmap *m, size_t expected) {
    m->cap = table_size(expected);
    m->count = 0;
    m->slots = px_malloc(m->cap * sizeof *m->slots);
    for (size_t i = 0; i < m->cap; i++) m->slots[i].key = UINT64_MAX;
}

bool tk_pairmap_put(tk_pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t id) {
    if ((m->count + 1) * 2 > m->cap) {
        tk_pairmap bigger;
        tk_pairmap_init(&bigger, m->cap);
        for (size_t i = 0; i < m->cap; i++)
            if (m->slots[i].key != UINT64_MAX)
                tk_pairmap_put(&bigger, (int32_t)(m->slots[i].key >> 32), (int32_t)(uint32_t)m->slots[i].key,
                               m->slots[i].rank, m->slots[i].id);
        free(m->slots);
        *m = bigger;
    }
    uint64_t key = pair_key(a, b);
    size_t j = pair_slot(key, m->cap);
    while (m->slots[j].key != UINT64_MAX) {
        if (m->slots[j].key == key) { /* a later duplicate wins, as in tokenizers' HashMap */
            m->slots[j].rank = rank;
            m->slots[j].id = id;
            return false;
        }
        j = (j + 1) & (m->cap - 1);
    }
    m->slots[j] = (tk_pairslot){key, rank, id};
    m->count++;
    return true;
}

const tk_pairslot *tk_pairmap_get(const tk_pairmap *m, int32_t a, int32_t b) {
    if (!m->slots) return NULL;
    uint64_t key = pair_key(a, b);
    size_t j = pair_slot(key, m->cap);
    while (m->slots[j].key != UINT64_MAX) {
        if (m->slots[j].key == key) return &m->slots[j];
        j = (j + 1) & (m->cap - 1);
    }
    return NULL;
}

void tk_pairmap_free(tk_pairmap *m) {
    free(m->slots);
    memset(m, 0, sizeof *m);
}

/* ---- pieces ---- */

void tk_pieces_add(tk_pieces *p, size_t off, size_t len, bool first) {
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 16;
        p->v = px_realloc(p->v, p->cap * sizeof *p->v);
    }
    p->v[p->n++] = (tk_span){off, len, first};
}

void tk_pieces_add_text(tk_pieces *p, const char *s, size_t len, bool first) {
    size_t off = p->text.n;
    tk_buf_put(&p->text, s, len);
    tk_pieces_add(p, off, len, first);
}

void tk_pieces_clear(tk_pieces *p) {
    p->text.n = 0;
    p->n = 0;
}

void tk_pieces_free(tk_pieces *p) {
    tk_buf_free(&p->text);
    free(p->v);
    memset(p, 0, sizeof *p);
}

/* ---- regex ---- */

/* Unicode's White_Space, which Oniguruma (tokenizers' regex engine) uses for
 * \s; PCRE2's \s also matches U+180E, so \s and \S are spelled out. */
#define WHITE_SPACE "\\t-\\r\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}"

static char *rewrite_spaces(const char *p, size_t n, size_t *len_out) {
    tk_buf b = {0};
    bool in_class = false;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\\' && i + 1 < n) {
            char e = p[i + 1];
            if (e == 's') tk_buf_puts(&b, in_class ? WHITE_SPACE : "[" WHITE_SPACE "]");
            else if (e == 'S' && !in_class) tk_buf_puts(&b, "[^" WHITE_SPACE "]");
            else tk_buf_put(&b, p + i, 2);
            i++;
            continue;
        }
        if (p[i] == '[' && !in_class) {
            in_class = true;
            tk_buf_putc(&b, p[i]);
            if (i + 1 < n && p[i + 1] == '^') tk_buf_putc(&b, p[++i]);
            if (i + 1 < n && p[i + 1] == ']') tk_buf_putc(&b, p[++i]); /* a literal ] first in a class */
            continue;
        }
        if (p[i] == '[' && in_class && i + 1 < n && p[i + 1] == ':') { /* [:alpha:] inside a class */
            const char *end = memmem(p + i, n - i, ":]", 2);
            size_t k = end ? (size_t)(end - p) + 2 : n;
            tk_buf_put(&b, p + i, k - i);
            i = k - 1;
            continue;
        }
        if (p[i] == ']' && in_class) in_class = false;
        tk_buf_putc(&b, p[i]);
    }
    return tk_buf_detach(&b, len_out);
}

bool tk_regex_compile(tk_regex *re, const char *pattern_in, size_t len_in, const char *what) {
    int err;
    PCRE2_SIZE off;
    size_t len;
    char *pattern = rewrite_spaces(pattern_in, len_in, &len);
    re->code = pcre2_compile((PCRE2_SPTR)pattern, len, PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK, &err, &off, NULL);
    free(pattern);
    if (!re->code) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        px_error_set("%s: regex '%.*s' does not compile: %s", what, (int)PX_MIN(len_in, 200), pattern_in, (char *)msg);
        return false;
    }
    re->jit = pcre2_jit_compile(re->code, PCRE2_JIT_COMPLETE) == 0;
    return true;
}

bool tk_regex_next(const tk_regex *re, pcre2_match_data *md, const char *s, size_t n, size_t start,
                   size_t *mstart, size_t *mend) {
    while (start <= n) {
        int rc = re->jit ? pcre2_jit_match(re->code, (PCRE2_SPTR)s, n, start, 0, md, NULL) : PCRE2_ERROR_JIT_STACKLIMIT;
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT) /* very long runs: the interpreter keeps its state on the heap */
            rc = pcre2_match(re->code, (PCRE2_SPTR)s, n, start, PCRE2_NO_UTF_CHECK, md, NULL);
        if (rc < 0) {
            if (rc != PCRE2_ERROR_NOMATCH) px_log_warn("tokenizer: regex match failed (%d) on %zu bytes", rc, n);
            return false;
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        if (ov[1] > ov[0]) {
            *mstart = ov[0];
            *mend = ov[1];
            return true;
        }
        /* empty match: move on by one character */
        start = ov[0] + 1;
        while (start < n && ((unsigned char)s[start] & 0xC0) == 0x80) start++;
    }
    return false;
}

void tk_regex_free(tk_regex *re) {
    if (re->code) pcre2_code_free(re->code);
    re->code = NULL;
}

char *tk_regex_quote(const char *s, size_t n, size_t *len_out) {
    tk_buf b = {0};
    for (size_t i = 0; i < n; i++) {
        if (strchr("\\^$.|?*+()[]{}-/#", s[i]) && s[i]) tk_buf_putc(&b, '\\');
        tk_buf_putc(&b, s[i]);
    }
    return tk_buf_detach(&b, len_out);
}
