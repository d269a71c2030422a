/* normalize.c - tokenizer.json normalizers: NFC/NFD/NFKC/NFKD (utf8proc),
 * Lowercase, Prepend, Replace (literal or regex), Strip and Sequence.
 *
 * A normalizer maps one text segment (the text between added tokens) to a new
 * string. NFC has a fast path: characters that can neither change nor combine
 * under NFC are copied as they are; only the regions around the others go
 * through utf8proc (see nfc() below).
 */
#include "tok_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

static bool parse_one(const cJSON *j, tk_norm *n);

static bool parse_seq(const cJSON *j, tk_norm *n) {
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(j, "normalizers");
    if (!cJSON_IsArray(arr)) {
        px_error_set("normalizer Sequence: 'normalizers' is not an array");
        return false;
    }
    n->kind = NORM_SEQ;
    n->n_items = cJSON_GetArraySize(arr);
    n->items = px_calloc((size_t)n->n_items + 1, sizeof *n->items);
    int i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, arr) if (!parse_one(it, &n->items[i++])) return false;
    return true;
}

/* Reads {"String": "..."} or {"Regex": "..."} patterns (Replace, Split). */
static bool parse_pattern(const cJSON *j, char **lit, size_t *lit_len, tk_regex *re, const char *what) {
    const cJSON *pat = cJSON_GetObjectItemCaseSensitive(j, "pattern");
    const char *s = tk_json_str(pat, "String"), *r = tk_json_str(pat, "Regex");
    if (s) {
        *lit = px_strdup(s);
        *lit_len = strlen(s);
        return true;
    }
    if (r) return tk_regex_compile(re, r, strlen(r), what);
    px_error_set("%s: 'pattern' has neither 'String' nor 'Regex'", what);
    return false;
}

static bool parse_one(const cJSON *j, tk_norm *n) {
    const char *type = tk_json_str(j, "type");
    memset(n, 0, sizeof *n);
    if (!type) {
        px_error_set("normalizer without a 'type'");
        return false;
    }
    static const char *const unicode[] = {"NFC", "NFD", "NFKC", "NFKD"};
    for (int i = 0; i < 4; i++)
        if (!strcmp(type, unicode[i])) {
            n->kind = (tk_norm_kind)(NORM_NFC + i);
            return true;
        }
    if (!strcmp(type, "Lowercase")) {
        n->kind = NORM_LOWER;
        return true;
    }
    if (!strcmp(type, "Sequence")) return parse_seq(j, n);
    if (!strcmp(type, "Prepend")) {
        const char *p = tk_json_str(j, "prepend");
        if (!p) {
            px_error_set("normalizer Prepend: 'prepend' is not a string");
            return false;
        }
        n->kind = NORM_PREPEND;
        n->a = px_strdup(p);
        n->alen = strlen(p);
        return true;
    }
    if (!strcmp(type, "Replace")) {
        const char *c = tk_json_str(j, "content");
        if (!c) {
            px_error_set("normalizer Replace: 'content' is not a string");
            return false;
        }
        n->kind = NORM_REPLACE;
        n->b = px_strdup(c);
        n->blen = strlen(c);
        return parse_pattern(j, &n->a, &n->alen, &n->re, "normalizer Replace");
    }
    if (!strcmp(type, "Strip")) {
        n->kind = NORM_STRIP;
        n->left = tk_json_bool(j, "strip_left", false);
        n->right = tk_json_bool(j, "strip_right", false);
        return true;
    }
    px_error_set("normalizer type '%s' is not supported", type);
    return false;
}

bool tk_norm_parse(const cJSON *j, tk_norm *out) { return parse_one(j, out); }

void tk_norm_free(tk_norm *n) {
    if (!n) return;
    for (int i = 0; i < n->n_items; i++) tk_norm_free(&n->items[i]);
    free(n->items);
    free(n->a);
    free(n->b);
    tk_regex_free(&n->re);
}

/* ---- applying ---- */

/* ---- NFC fast path ----
 * A character is "inert" under NFC when it is a starter (combining class 0),
 * NFC leaves it unchanged, and it is never the second element of a canonical
 * composition; then NFC(text) = NFC(part before it) + NFC(part from it on).
 * Most text consists of inert characters only (ASCII, precomposed Latin,
 * Cyrillic, CJK, ...), so only the few regions around other characters go
 * through utf8proc. The table covers the BMP and planes 1-2; beyond that
 * nothing is treated as inert. */
#define NFC_TABLE_END 0x30000
static uint8_t nfc_inert_bits[NFC_TABLE_END / 8];
static pthread_once_t nfc_once = PTHREAD_ONCE_INIT;

static void mark(uint8_t *bits, uint32_t c, bool on) {
    if (c >= NFC_TABLE_END) return;
    if (on) bits[c >> 3] |= (uint8_t)(1u << (c & 7));
    else bits[c >> 3] &= (uint8_t)~(1u << (c & 7));
}

static void nfc_table_init(void) {
    for (uint32_t c = 0; c < NFC_TABLE_END; c++) {
        const utf8proc_property_t *p = utf8proc_get_property((utf8proc_int32_t)c);
        mark(nfc_inert_bits, c, p->combining_class == 0 && p->category != UTF8PROC_CATEGORY_CN);
    }
    for (uint32_t c = 0; c < NFC_TABLE_END; c++) {
        const utf8proc_property_t *p = utf8proc_get_property((utf8proc_int32_t)c);
        if (p->decomp_seqindex == UINT16_MAX || p->decomp_type != 0) continue; /* no canonical decomposition */
        utf8proc_int32_t d[8];
        int last = 0;
        utf8proc_ssize_t n = utf8proc_decompose_char((utf8proc_int32_t)c, d, 8, UTF8PROC_DECOMPOSE, &last);
        for (utf8proc_ssize_t i = 1; i < n && i < 8; i++) mark(nfc_inert_bits, (uint32_t)d[i], false);
        utf8proc_uint8_t *one = NULL;
        char enc[4];
        size_t len = tk_utf8_encode(c, enc);
        utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)enc, (utf8proc_ssize_t)len, &one,
                                          (utf8proc_option_t)(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
        if (r != (utf8proc_ssize_t)len || memcmp(one, enc, len)) mark(nfc_inert_bits, c, false);
        free(one);
    }
    for (uint32_t c = 0x1161; c <= 0x11C2; c++) mark(nfc_inert_bits, c, false); /* Hangul V and T jamo compose algorithmically */
}

static bool nfc_inert(uint32_t c) {
    return c < 0x80 || (c < NFC_TABLE_END && (nfc_inert_bits[c >> 3] >> (c & 7) & 1));
}

static void nfc_region(const char *s, size_t n, tk_buf *out) {
    utf8proc_uint8_t *dst = NULL;
    utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &dst,
                                      (utf8proc_option_t)(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
    if (r < 0) tk_buf_put(out, s, n); /* cannot happen for validated input */
    else tk_buf_put(out, dst, (size_t)r);
    free(dst);
}

/* NFC that sends only the regions around non-inert characters to utf8proc. */
static void nfc(const char *s, size_t n, tk_buf *out) {
    pthread_once(&nfc_once, nfc_table_init);
    size_t copied = 0, starter = 0; /* starter: start of the last inert character */
    for (size_t i = 0; i < n;) {
        uint32_t cp = (unsigned char)s[i];
        size_t k = cp < 0x80 ? 1 : tk_utf8_decode(s + i, n - i, &cp);
        if (!k) k = 1;
        if (nfc_inert(cp)) {
            starter = i;
            i += k;
            continue;
        }
        size_t end = i + k; /* the region runs to the next inert character */
        while (end < n) {
            uint32_t c2 = (unsigned char)s[end];
            size_t k2 = c2 < 0x80 ? 1 : tk_utf8_decode(s + end, n - end, &c2);
            if (nfc_inert(c2)) break;
            end += k2 ? k2 : 1;
        }
        size_t from = PX_MAX(starter, copied);
        tk_buf_put(out, s + copied, from - copied);
        nfc_region(s + from, end - from, out);
        copied = starter = i = end;
    }
    tk_buf_put(out, s + copied, n - copied);
}

static void unicode_normalize(tk_norm_kind kind, const char *s, size_t n, tk_buf *out) {
    if (kind == NORM_NFC) {
        nfc(s, n, out);
        return;
    }
    static const int opts[] = {UTF8PROC_COMPOSE, UTF8PROC_DECOMPOSE, UTF8PROC_COMPOSE | UTF8PROC_COMPAT,
                               UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT};
    utf8proc_uint8_t *dst = NULL;
    utf8proc_ssize_t r = n ? utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &dst,
                                          (utf8proc_option_t)(UTF8PROC_STABLE | opts[kind - NORM_NFC]))
                           : 0;
    if (r < 0) tk_buf_put(out, s, n); /* cannot happen for validated input */
    else tk_buf_put(out, dst, (size_t)r);
    free(dst);
}

static void lowercase(const char *s, size_t n, tk_buf *out) {
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t k = tk_utf8_decode(s + i, n - i, &cp);
        if (!k) {
            tk_buf_putc(out, s[i++]);
            continue;
        }
        char enc[4];
        tk_buf_put(out, enc, tk_utf8_encode((uint32_t)utf8proc_tolower((utf8proc_int32_t)cp), enc));
        i += k;
    }
}

static void replace_literal(const tk_norm *nm, const char *s, size_t n, tk_buf *out) {
    size_t i = 0;
    while (i < n) {
        const char *hit = nm->alen && nm->alen <= n - i ? memmem(s + i, n - i, nm->a, nm->alen) : NULL;
        if (!hit) break;
        tk_buf_put(out, s + i, (size_t)(hit - (s + i)));
        tk_buf_put(out, nm->b, nm->blen);
        i = (size_t)(hit - s) + nm->alen;
    }
    tk_buf_put(out, s + i, n - i);
}

static void replace_regex(const tk_norm *nm, const char *s, size_t n, tk_buf *out) {
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(nm->re.code, NULL);
    size_t i = 0, ms, me;
    while (tk_regex_next(&nm->re, md, s, n, i, &ms, &me)) {
        tk_buf_put(out, s + i, ms - i);
        tk_buf_put(out, nm->b, nm->blen);
        i = me;
    }
    tk_buf_put(out, s + i, n - i);
    pcre2_match_data_free(md);
}

static bool is_space_cp(uint32_t c) {
    return (c >= 9 && c <= 13) || c == ' ' || c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
           c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

static void strip(const tk_norm *nm, const char *s, size_t n, tk_buf *out) {
    size_t a = 0, b = n;
    uint32_t cp;
    size_t k;
    while (nm->left && a < b && (k = tk_utf8_decode(s + a, b - a, &cp)) && is_space_cp(cp)) a += k;
    while (nm->right && b > a) {
        size_t st = b - 1;
        while (st > a && ((unsigned char)s[st] & 0xC0) == 0x80) st--;
        if (!tk_utf8_decode(s + st, b - st, &cp) || !is_space_cp(cp)) break;
        b = st;
    }
    tk_buf_put(out, s + a, b - a);
}

void tk_norm_apply(const tk_norm *nm, const char *s, size_t n, tk_buf *out) {
    out->n = 0;
    switch (nm->kind) {
    case NORM_NFC:
    case NORM_NFD:
    case NORM_NFKC:
    case NORM_NFKD: unicode_normalize(nm->kind, s, n, out); return;
    case NORM_LOWER: lowercase(s, n, out); return;
    case NORM_PREPEND:
        if (n) tk_buf_put(out, nm->a, nm->alen);
        tk_buf_put(out, s, n);
        return;
    case NORM_REPLACE:
        if (nm->re.code) replace_regex(nm, s, n, out);
        else replace_literal(nm, s, n, out);
        return;
    case NORM_STRIP: strip(nm, s, n, out); return;
    case NORM_SEQ: break;
    }
    tk_buf tmp = {0};
    tk_buf_put(out, s, n);
    for (int i = 0; i < nm->n_items; i++) {
        tk_norm_apply(&nm->items[i], out->p ? out->p : "", out->n, &tmp);
        tk_buf swap = *out;
        *out = tmp;
        tmp = swap;
    }
    tk_buf_free(&tmp);
}
