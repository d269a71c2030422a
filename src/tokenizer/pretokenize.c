/* pretokenize.c - tokenizer.json pre-tokenizers: Split (regex or literal,
 * all five delimiter behaviours, invert), ByteLevel (optional prefix space and
 * GPT-2 regex), Metaspace (▁ replacement, prepend scheme, split), Digits,
 * Whitespace, WhitespaceSplit and Sequence.
 *
 * Pre-tokenization turns a list of pieces (spans over one text buffer) into a
 * finer list. Splitting never copies text: new spans point into the same
 * buffer. Only Metaspace and ByteLevel's prefix space rewrite the text. The
 * splitting follows `tokenizers`' NormalizedString::split: a piece is cut into
 * alternating match / non-match runs, the behaviour decides which runs merge
 * or vanish, and empty pieces are dropped. ByteLevel's byte-to-unicode
 * mapping itself is not done here: the BPE model works on raw bytes.
 */
#include "tok_internal.h"

#include <stdlib.h>
#include <string.h>

#define GPT2_REGEX "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"

static bool parse_one(const cJSON *j, tk_pre *p, bool *byte_level);

static bool parse_behavior(const cJSON *j, tk_pre *p) {
    const char *b = tk_json_str(j, "behavior");
    static const char *const names[] = {"Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous"};
    for (int i = 0; b && i < 5; i++)
        if (!strcmp(b, names[i])) {
            p->behavior = (tk_split_behavior)i;
            return true;
        }
    px_error_set("pre_tokenizer Split: unknown behavior '%s'", b ? b : "(missing)");
    return false;
}

static bool parse_split(const cJSON *j, tk_pre *p) {
    const cJSON *pat = cJSON_GetObjectItemCaseSensitive(j, "pattern");
    const char *s = tk_json_str(pat, "String"), *r = tk_json_str(pat, "Regex");
    p->kind = PRE_SPLIT;
    p->invert = tk_json_bool(j, "invert", false);
    if (!parse_behavior(j, p)) return false;
    if (r) return tk_regex_compile(&p->re, r, strlen(r), "pre_tokenizer Split");
    if (!s || !*s) {
        px_error_set("pre_tokenizer Split: 'pattern' has neither a non-empty 'String' nor 'Regex'");
        return false;
    }
    size_t qlen;
    char *q = tk_regex_quote(s, strlen(s), &qlen);
    bool ok = tk_regex_compile(&p->re, q, qlen, "pre_tokenizer Split");
    free(q);
    return ok;
}

static bool parse_metaspace(const cJSON *j, tk_pre *p) {
    const char *r = tk_json_str(j, "replacement");
    uint32_t cp;
    p->kind = PRE_METASPACE;
    if (!r) r = "\xE2\x96\x81";
    p->repl_len = strlen(r);
    if (p->repl_len > 4 || tk_utf8_decode(r, p->repl_len, &cp) != p->repl_len) {
        px_error_set("pre_tokenizer Metaspace: 'replacement' must be one character");
        return false;
    }
    memcpy(p->repl, r, p->repl_len);
    const char *scheme = tk_json_str(j, "prepend_scheme");
    if (scheme) p->prepend = !strcmp(scheme, "first") ? PREPEND_FIRST : !strcmp(scheme, "never") ? PREPEND_NEVER : PREPEND_ALWAYS;
    else p->prepend = tk_json_bool(j, "add_prefix_space", true) ? PREPEND_ALWAYS : PREPEND_NEVER;
    p->split = tk_json_bool(j, "split", true);
    return true;
}

static bool parse_builtin_split(tk_pre *p, const char *regex, tk_split_behavior b, const char *what) {
    p->kind = PRE_SPLIT;
    p->behavior = b;
    return tk_regex_compile(&p->re, regex, strlen(regex), what);
}

static bool parse_seq(const cJSON *j, tk_pre *p, bool *byte_level) {
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(j, "pretokenizers");
    if (!cJSON_IsArray(arr)) {
        px_error_set("pre_tokenizer Sequence: 'pretokenizers' is not an array");
        return false;
    }
    p->kind = PRE_SEQ;
    p->n_items = cJSON_GetArraySize(arr);
    p->items = px_calloc((size_t)p->n_items + 1, sizeof *p->items);
    int i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, arr) {
        if (*byte_level) {
            px_error_set("pre_tokenizer Sequence: ByteLevel must be the last pre-tokenizer");
            return false;
        }
        if (!parse_one(it, &p->items[i++], byte_level)) return false;
    }
    return true;
}

static bool parse_one(const cJSON *j, tk_pre *p, bool *byte_level) {
    const char *type = tk_json_str(j, "type");
    memset(p, 0, sizeof *p);
    if (!type) {
        px_error_set("pre_tokenizer without a 'type'");
        return false;
    }
    if (!strcmp(type, "Sequence")) return parse_seq(j, p, byte_level);
    if (!strcmp(type, "Split")) return parse_split(j, p);
    if (!strcmp(type, "Metaspace")) return parse_metaspace(j, p);
    if (!strcmp(type, "ByteLevel")) {
        p->kind = PRE_BYTELEVEL;
        p->add_prefix_space = tk_json_bool(j, "add_prefix_space", true);
        p->use_regex = tk_json_bool(j, "use_regex", true);
        *byte_level = true;
        return !p->use_regex || tk_regex_compile(&p->re, GPT2_REGEX, strlen(GPT2_REGEX), "pre_tokenizer ByteLevel");
    }
    if (!strcmp(type, "Digits"))
        return parse_builtin_split(p, "\\p{N}", tk_json_bool(j, "individual_digits", false) ? SPLIT_ISOLATED : SPLIT_CONTIGUOUS,
                                   "pre_tokenizer Digits");
    if (!strcmp(type, "Whitespace"))
        return parse_builtin_split(p, "\\w+|[^\\w\\s]+", SPLIT_REMOVED, "pre_tokenizer Whitespace") &&
               ((p->invert = true), true);
    if (!strcmp(type, "WhitespaceSplit")) return parse_builtin_split(p, "\\s+", SPLIT_REMOVED, "pre_tokenizer WhitespaceSplit");
    px_error_set("pre_tokenizer type '%s' is not supported", type);
    return false;
}

bool tk_pre_parse(const cJSON *j, tk_pre *out, bool *byte_level) { return parse_one(j, out, byte_level); }

void tk_pre_free(tk_pre *p) {
    if (!p) return;
    for (int i = 0; i < p->n_items; i++) tk_pre_free(&p->items[i]);
    free(p->items);
    tk_regex_free(&p->re);
}

/* ---- splitting ---- */

typedef struct {
    size_t a, b;
    bool match;
} run;
typedef struct {
    run *v;
    size_t n, cap;
} runs;

static void runs_push(runs *r, size_t a, size_t b, bool match) {
    if (a == b) return;
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 32;
        r->v = px_realloc(r->v, r->cap * sizeof *r->v);
    }
    r->v[r->n++] = (run){a, b, match};
}

/* Cuts text[a, b) into match / non-match runs of re. */
static void find_runs(const tk_regex *re, pcre2_match_data *md, const char *text, size_t a, size_t b, bool invert,
                      runs *r) {
    size_t prev = 0, ms, me, n = b - a;
    r->n = 0;
    while (prev < n && tk_regex_next(re, md, text + a, n, prev, &ms, &me)) {
        runs_push(r, a + prev, a + ms, invert);
        runs_push(r, a + ms, a + me, !invert);
        prev = me;
    }
    runs_push(r, a + prev, b, invert);
}

/* Cuts text[a, b) at every occurrence of the literal lit (Metaspace split). */
static void find_literal_runs(const char *lit, size_t len, const char *text, size_t a, size_t b, runs *r) {
    size_t i = a;
    r->n = 0;
    while (i < b) {
        const char *hit = memmem(text + i, b - i, lit, len);
        if (!hit) break;
        size_t h = (size_t)(hit - text);
        runs_push(r, i, h, false);
        runs_push(r, h, h + len, true);
        i = h + len;
    }
    runs_push(r, i, b, false);
}

/* Applies a delimiter behaviour to runs, appending the resulting spans. */
static void emit_runs(const runs *r, tk_split_behavior beh, bool first, tk_span **out, size_t *n, size_t *cap) {
    size_t start = *n;
    bool prev_match = false;
    for (size_t i = 0; i < r->n; i++) {
        const run *x = &r->v[i];
        bool merge = false;
        if (beh == SPLIT_REMOVED && x->match) continue;
        if (beh == SPLIT_CONTIGUOUS) merge = x->match == prev_match && *n > start;
        if (beh == SPLIT_MERGED_PREV) merge = x->match && !prev_match && *n > start;
        prev_match = x->match;
        if (merge) {
            (*out)[*n - 1].len = x->b - (*out)[*n - 1].off;
            continue;
        }
        if (*n == *cap) {
            *cap = *cap ? *cap * 2 : 64;
            *out = px_realloc(*out, *cap * sizeof **out);
        }
        (*out)[(*n)++] = (tk_span){x->a, x->b - x->a, first && i == 0};
    }
}

/* MergedWithNext is easiest right to left; do it on a reversed copy. */
static void emit_merged_next(const runs *r, bool first, tk_span **out, size_t *n, size_t *cap) {
    size_t start = *n;
    bool next_match = false;
    for (size_t k = r->n; k-- > 0;) {
        const run *x = &r->v[k];
        if (x->match && !next_match && *n > start) {
            (*out)[*n - 1].len += (*out)[*n - 1].off - x->a;
            (*out)[*n - 1].off = x->a;
        } else {
            if (*n == *cap) {
                *cap = *cap ? *cap * 2 : 64;
                *out = px_realloc(*out, *cap * sizeof **out);
            }
            (*out)[(*n)++] = (tk_span){x->a, x->b - x->a, false};
        }
        next_match = x->match;
    }
    for (size_t i = start, j = *n - 1; i < j && *n > start; i++, j--) {
        tk_span t = (*out)[i];
        (*out)[i] = (*out)[j];
        (*out)[j] = t;
    }
    if (*n > start && r->n && (*out)[start].off == r->v[0].a) (*out)[start].first = first;
}

typedef struct {
    runs r;
    tk_span *spans;
    size_t n, cap;
    pcre2_match_data *md;
} scratch;

static void split_pieces(const tk_pre *pre, tk_pieces *p, scratch *sc) {
    sc->n = 0;
    for (size_t i = 0; i < p->n; i++) {
        tk_span s = p->v[i];
        if (pre->kind == PRE_METASPACE) find_literal_runs(pre->repl, pre->repl_len, p->text.p, s.off, s.off + s.len, &sc->r);
        else find_runs(&pre->re, sc->md, p->text.p, s.off, s.off + s.len, pre->invert, &sc->r);
        tk_split_behavior beh = pre->kind == PRE_METASPACE ? SPLIT_MERGED_NEXT : pre->kind == PRE_BYTELEVEL ? SPLIT_ISOLATED : pre->behavior;
        if (beh == SPLIT_MERGED_NEXT) emit_merged_next(&sc->r, s.first, &sc->spans, &sc->n, &sc->cap);
        else emit_runs(&sc->r, beh, s.first, &sc->spans, &sc->n, &sc->cap);
    }
    tk_span *old = p->v;
    size_t old_cap = p->cap;
    p->v = sc->spans;
    p->n = sc->n;
    p->cap = sc->cap;
    sc->spans = old;
    sc->cap = old_cap;
}

/* Rewrites every piece's text (Metaspace replacement, ByteLevel prefix space). */
static void rewrite_pieces(const tk_pre *pre, tk_pieces *p) {
    tk_pieces out = {0};
    for (size_t i = 0; i < p->n; i++) {
        const char *s = p->text.p + p->v[i].off;
        size_t len = p->v[i].len, off = out.text.n;
        if (pre->kind == PRE_BYTELEVEL) {
            if (pre->add_prefix_space && (len == 0 || s[0] != ' ')) tk_buf_putc(&out.text, ' ');
            tk_buf_put(&out.text, s, len);
        } else {
            /* tokenizers replaces ' ' first, then prepends unless the piece now starts with the replacement */
            bool starts = (len && s[0] == ' ') || (len >= pre->repl_len && !memcmp(s, pre->repl, pre->repl_len));
            if (!starts && (pre->prepend == PREPEND_ALWAYS || (pre->prepend == PREPEND_FIRST && p->v[i].first)))
                tk_buf_put(&out.text, pre->repl, pre->repl_len);
            for (size_t k = 0; k < len; k++) {
                if (s[k] == ' ') tk_buf_put(&out.text, pre->repl, pre->repl_len);
                else tk_buf_putc(&out.text, s[k]);
            }
        }
        tk_pieces_add(&out, off, out.text.n - off, p->v[i].first);
    }
    tk_pieces_free(p);
    *p = out;
}

static void apply(const tk_pre *pre, tk_pieces *p, scratch *sc) {
    switch (pre->kind) {
    case PRE_SEQ:
        for (int i = 0; i < pre->n_items; i++) apply(&pre->items[i], p, sc);
        return;
    case PRE_BYTELEVEL:
        if (pre->add_prefix_space) rewrite_pieces(pre, p);
        if (pre->use_regex) split_pieces(pre, p, sc);
        return;
    case PRE_METASPACE:
        rewrite_pieces(pre, p);
        if (pre->split) split_pieces(pre, p, sc);
        return;
    default: split_pieces(pre, p, sc);
    }
}

void tk_pre_apply(const tk_pre *pre, tk_pieces *p, pcre2_match_data *md) {
    scratch sc = {.md = md};
    apply(pre, p, &sc);
    free(sc.r.v);
    free(sc.spans);
}
