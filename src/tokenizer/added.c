/* added.c - matching added tokens (special tokens like <|im_start|> and
 * non-special ones like <think>) inside text, before the model sees it.
 *
 * The tokens live in a byte trie. Scanning the text left to right, the first
 * position where some token matches wins, and there the longest token wins
 * (leftmost-longest, as `tokenizers`' Aho-Corasick matcher). A match that is
 * then rejected (a special token while special tokens are split as text, or a
 * single_word token glued to a word) still consumes its text, as there.
 * lstrip / rstrip widen a match over neighbouring whitespace. A 256-bit map
 * of first bytes makes positions that cannot start a token cost one test.
 */
#include "tok_internal.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

static int32_t trie_node(tk_trie *t, unsigned char byte) {
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 64;
        t->nodes = px_realloc(t->nodes, t->cap * sizeof *t->nodes);
    }
    t->nodes[t->n] = (tk_trie_node){-1, -1, -1, byte};
    return (int32_t)t->n++;
}

static int32_t trie_child(tk_trie *t, int32_t node, unsigned char byte, bool create) {
    int32_t c = t->nodes[node].child;
    for (; c >= 0; c = t->nodes[c].sibling)
        if (t->nodes[c].byte == byte) return c;
    if (!create) return -1;
    c = trie_node(t, byte);
    t->nodes[c].sibling = t->nodes[node].child;
    t->nodes[node].child = c;
    return c;
}

static void trie_add(tk_trie *t, const char *s, size_t len, int32_t token) {
    int32_t node = 0;
    for (size_t i = 0; i < len; i++) node = trie_child(t, node, (unsigned char)s[i], true);
    if (t->nodes[node].token < 0) t->nodes[node].token = token;
    t->first[(unsigned char)s[0] >> 3] |= (uint8_t)(1u << ((unsigned char)s[0] & 7));
}

void tk_trie_build(tk_trie *t, const tk_added *added, size_t n, bool normalized) {
    memset(t, 0, sizeof *t);
    trie_node(t, 0);
    for (size_t i = 0; i < n; i++)
        if (added[i].normalized == normalized && added[i].len) trie_add(t, added[i].content, added[i].len, (int32_t)i);
}

void tk_trie_free(tk_trie *t) {
    free(t->nodes);
    memset(t, 0, sizeof *t);
}

void tk_segs_push(tk_segs *s, int32_t id, size_t off, size_t len) {
    if (id < 0 && !len) return;
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 16;
        s->v = px_realloc(s->v, s->cap * sizeof *s->v);
    }
    s->v[s->n++] = (tk_seg){id, off, len};
}

/* Longest token starting at s[i]; returns its index in added[] or -1. */
static int32_t longest_match(const tk_trie *t, const char *s, size_t n, size_t i, size_t *end) {
    int32_t node = 0, best = -1;
    for (size_t k = i; k < n; k++) {
        node = trie_child((tk_trie *)t, node, (unsigned char)s[k], false);
        if (node < 0) break;
        if (t->nodes[node].token >= 0) {
            best = t->nodes[node].token;
            *end = k + 1;
        }
    }
    return best;
}

static bool is_space(const char *s, size_t n, size_t *len) {
    uint32_t cp;
    *len = tk_utf8_decode(s, n, &cp);
    return *len && ((cp >= 9 && cp <= 13) || cp == ' ' || cp == 0x85 ||
                    utf8proc_category((utf8proc_int32_t)cp) == UTF8PROC_CATEGORY_ZS || cp == 0x2028 || cp == 0x2029);
}

static bool is_word_char(uint32_t cp) {
    utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
    return cp == '_' || (c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO) ||
           (c >= UTF8PROC_CATEGORY_ND && c <= UTF8PROC_CATEGORY_NO);
}

/* Whether the character ending at s[end) / starting at s[start] is a word character. */
static bool word_before(const char *s, size_t end) {
    if (!end) return false;
    size_t st = end - 1;
    while (st > 0 && ((unsigned char)s[st] & 0xC0) == 0x80) st--;
    uint32_t cp;
    return tk_utf8_decode(s + st, end - st, &cp) && is_word_char(cp);
}

static bool word_after(const char *s, size_t n, size_t start) {
    uint32_t cp;
    return start < n && tk_utf8_decode(s + start, n - start, &cp) && is_word_char(cp);
}

/* Start of the whitespace run that ends at s[end), not before floor. */
static size_t space_start(const char *s, size_t floor, size_t end) {
    size_t i = end;
    while (i > floor) {
        size_t st = i - 1, len;
        while (st > floor && ((unsigned char)s[st] & 0xC0) == 0x80) st--;
        if (!is_space(s + st, i - st, &len)) break;
        i = st;
    }
    return i;
}

static size_t space_end(const char *s, size_t n, size_t start) {
    size_t len;
    while (start < n && is_space(s + start, n - start, &len)) start += len;
    return start;
}

void tk_split_added(const px_tokenizer *tok, const tk_trie *t, const char *s, size_t n, bool skip_special,
                    tk_segs *out) {
    size_t text_start = 0, i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        size_t end = 0;
        int32_t k = t->first[c >> 3] & (1u << (c & 7)) ? longest_match(t, s, n, i, &end) : -1;
        if (k < 0) {
            i++;
            continue;
        }
        const tk_added *a = &tok->added[k];
        bool reject = (skip_special && a->special) ||
                      (a->single_word && (word_before(s, i) || word_after(s, n, end)));
        if (reject) {
            i = end;
            continue;
        }
        size_t start = a->lstrip ? space_start(s, text_start, i) : i;
        size_t stop = a->rstrip ? space_end(s, n, end) : end;
        tk_segs_push(out, -1, text_start, start - text_start);
        tk_segs_push(out, a->id, start, stop - start);
        text_start = i = stop;
    }
    tk_segs_push(out, -1, text_start, n - text_start);
}
