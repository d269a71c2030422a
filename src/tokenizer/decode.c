/* decode.c - ids back to text: the tokenizer.json decoder chain (ByteLevel,
 * Replace, ByteFallback, Fuse, Strip, Metaspace, Sequence) followed by
 * transformers' clean_up_tokenization_spaces when the config asks for it.
 *
 * Like `tokenizers`, decoding maps ids to their token strings (added tokens
 * to their content, special ones dropped when asked) and passes that list of
 * strings through each decoder in turn; some decoders work per token, others
 * (ByteLevel, Fuse) join the list into one string. Invalid UTF-8 becomes
 * U+FFFD exactly where `tokenizers` puts it: ByteLevel replaces maximal
 * invalid subparts, ByteFallback turns a whole invalid run of <0xXX> tokens
 * into one U+FFFD per byte. In stream mode (used by the incremental
 * detokenizer, stream.c) a trailing unfinished UTF-8 character is left out
 * instead and reported, so the caller waits for the next token.
 */
#include "tok_internal.h"

#include <stdlib.h>
#include <string.h>

static bool parse_one(const cJSON *j, tk_dec *d);

static bool parse_seq(const cJSON *j, tk_dec *d) {
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(j, "decoders");
    if (!cJSON_IsArray(arr)) {
        px_error_set("decoder Sequence: 'decoders' is not an array");
        return false;
    }
    d->kind = DEC_SEQ;
    d->n_items = cJSON_GetArraySize(arr);
    d->items = px_calloc((size_t)d->n_items + 1, sizeof *d->items);
    int i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, arr) if (!parse_one(it, &d->items[i++])) return false;
    return true;
}

static bool parse_replace(const cJSON *j, tk_dec *d) {
    const char *pat = tk_json_str(cJSON_GetObjectItemCaseSensitive(j, "pattern"), "String");
    const char *content = tk_json_str(j, "content");
    if (!pat || !*pat || !content) {
        px_error_set("decoder Replace: only a non-empty 'String' pattern and a 'content' string are supported");
        return false;
    }
    d->kind = DEC_REPLACE;
    d->pat = px_strdup(pat);
    d->plen = strlen(pat);
    d->content = px_strdup(content);
    d->clen = strlen(content);
    return true;
}

static bool parse_strip(const cJSON *j, tk_dec *d) {
    const char *c = tk_json_str(j, "content");
    const cJSON *start = cJSON_GetObjectItemCaseSensitive(j, "start"), *stop = cJSON_GetObjectItemCaseSensitive(j, "stop");
    d->kind = DEC_STRIP;
    if (!c || tk_utf8_decode(c, strlen(c), &d->strip_cp) != strlen(c) || !cJSON_IsNumber(start) || !cJSON_IsNumber(stop)) {
        px_error_set("decoder Strip: needs one 'content' character and numeric 'start' and 'stop'");
        return false;
    }
    d->start = start->valueint;
    d->stop = stop->valueint;
    return true;
}

static bool parse_metaspace(const cJSON *j, tk_dec *d) {
    const char *r = tk_json_str(j, "replacement");
    if (!r) r = "\xE2\x96\x81";
    d->kind = DEC_METASPACE;
    d->pat = px_strdup(r);
    d->plen = strlen(r);
    const char *scheme = tk_json_str(j, "prepend_scheme");
    d->prefix = scheme ? strcmp(scheme, "never") != 0 : tk_json_bool(j, "add_prefix_space", true);
    return true;
}

static bool parse_one(const cJSON *j, tk_dec *d) {
    const char *type = tk_json_str(j, "type");
    memset(d, 0, sizeof *d);
    if (!type) {
        px_error_set("decoder without a 'type'");
        return false;
    }
    if (!strcmp(type, "Sequence")) return parse_seq(j, d);
    if (!strcmp(type, "Replace")) return parse_replace(j, d);
    if (!strcmp(type, "Strip")) return parse_strip(j, d);
    if (!strcmp(type, "Metaspace")) return parse_metaspace(j, d);
    if (!strcmp(type, "ByteLevel")) d->kind = DEC_BYTELEVEL;
    else if (!strcmp(type, "ByteFallback")) d->kind = DEC_BYTEFALLBACK;
    else if (!strcmp(type, "Fuse")) d->kind = DEC_FUSE;
    else {
        px_error_set("decoder type '%s' is not supported", type);
        return false;
    }
    return true;
}

bool tk_dec_parse(const cJSON *j, tk_dec *out) { return parse_one(j, out); }

void tk_dec_free(tk_dec *d) {
    if (!d) return;
    for (int i = 0; i < d->n_items; i++) tk_dec_free(&d->items[i]);
    free(d->items);
    free(d->pat);
    free(d->content);
}

/* ---- the chain ---- */

typedef struct {
    tk_pieces *cur;
    bool stream, incomplete;
} chain;

#define TOK(pc, i) ((pc)->text.p + (pc)->v[i].off)

static void fuse_all(tk_pieces *p) {
    tk_pieces out = {0};
    for (size_t i = 0; i < p->n; i++) tk_buf_put(&out.text, TOK(p, i), p->v[i].len);
    tk_pieces_add(&out, 0, out.text.n, true);
    tk_pieces_free(p);
    *p = out;
}

static void do_bytelevel(chain *c) {
    tk_pieces *p = c->cur;
    tk_buf raw = {0}, out = {0};
    for (size_t i = 0; i < p->n; i++) {
        size_t mark = raw.n;
        if (!tk_bytelevel_decode(TOK(p, i), p->v[i].len, &raw)) { /* not ByteLevel text: keep as is */
            raw.n = mark;
            tk_buf_put(&raw, TOK(p, i), p->v[i].len);
        }
    }
    size_t keep = raw.n;
    if (c->stream) {
        size_t tail = tk_utf8_incomplete_tail(raw.p, raw.n);
        c->incomplete |= tail > 0;
        keep -= tail;
    }
    tk_utf8_lossy(&out, raw.p, keep);
    tk_pieces_clear(p);
    tk_pieces_add_text(p, out.p ? out.p : "", out.n, true);
    tk_buf_free(&raw);
    tk_buf_free(&out);
}

static int byte_token(const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef0123456789ABCDEF";
    if (n != 6 || memcmp(s, "<0x", 3) || s[5] != '>') return -1;
    const char *h = memchr(hex, s[3], 32), *l = memchr(hex, s[4], 32);
    if (!h || !l || !s[3] || !s[4]) return -1;
    return (int)((h - hex) % 16 * 16 + (l - hex) % 16);
}

/* Emits one finished run of <0xXX> bytes the way tokenizers does. */
static void flush_run(chain *c, tk_pieces *out, tk_buf *run, bool at_end) {
    if (!run->n) return;
    size_t keep = run->n;
    if (c->stream && at_end) {
        size_t tail = tk_utf8_incomplete_tail(run->p, run->n);
        c->incomplete |= tail > 0;
        keep -= tail;
    }
    if (tk_utf8_check(run->p, keep) == keep) tk_pieces_add_text(out, run->p, keep, false);
    else
        for (size_t i = 0; i < keep; i++) tk_pieces_add_text(out, "\xEF\xBF\xBD", 3, false);
    run->n = 0;
}

static void do_bytefallback(chain *c) {
    tk_pieces *p = c->cur, out = {0};
    tk_buf run = {0};
    for (size_t i = 0; i < p->n; i++) {
        int b = byte_token(TOK(p, i), p->v[i].len);
        if (b >= 0) {
            tk_buf_putc(&run, (char)b);
            continue;
        }
        flush_run(c, &out, &run, false);
        tk_pieces_add_text(&out, TOK(p, i), p->v[i].len, false);
    }
    flush_run(c, &out, &run, true);
    tk_buf_free(&run);
    tk_pieces_free(p);
    *p = out;
}

/* Appends s with every occurrence of pat replaced by with. */
static void replace_into(tk_buf *out, const char *s, size_t n, const char *pat, size_t plen, const char *with,
                         size_t wlen) {
    size_t k = 0;
    while (k < n) {
        const char *hit = plen <= n - k ? memmem(s + k, n - k, pat, plen) : NULL;
        if (!hit) break;
        tk_buf_put(out, s + k, (size_t)(hit - s) - k);
        tk_buf_put(out, with, wlen);
        k = (size_t)(hit - s) + plen;
    }
    tk_buf_put(out, s + k, n - k);
}

static void do_replace(tk_pieces *p, const char *pat, size_t plen, const char *with, size_t wlen) {
    tk_pieces out = {0};
    for (size_t i = 0; i < p->n; i++) {
        size_t off = out.text.n;
        replace_into(&out.text, TOK(p, i), p->v[i].len, pat, plen, with, wlen);
        tk_pieces_add(&out, off, out.text.n - off, false);
    }
    tk_pieces_free(p);
    *p = out;
}

static void do_strip(tk_pieces *p, const tk_dec *d) {
    char enc[4];
    size_t clen = tk_utf8_encode(d->strip_cp, enc);
    for (size_t i = 0; i < p->n; i++) {
        tk_span *s = &p->v[i];
        for (int k = 0; k < d->start && s->len >= clen && !memcmp(p->text.p + s->off, enc, clen); k++)
            s->off += clen, s->len -= clen;
        for (int k = 0; k < d->stop && s->len >= clen && !memcmp(p->text.p + s->off + s->len - clen, enc, clen); k++)
            s->len -= clen;
    }
}

/* Replacement -> space; tokenizers drops every replacement of the first token. */
static void do_metaspace(tk_pieces *p, const tk_dec *d) {
    tk_pieces out = {0};
    for (size_t i = 0; i < p->n; i++) {
        size_t off = out.text.n;
        bool drop = i == 0 && d->prefix;
        replace_into(&out.text, TOK(p, i), p->v[i].len, d->pat, d->plen, " ", drop ? 0 : 1);
        tk_pieces_add(&out, off, out.text.n - off, false);
    }
    tk_pieces_free(p);
    *p = out;
}

static void run_dec(chain *c, const tk_dec *d) {
    switch (d->kind) {
    case DEC_SEQ:
        for (int i = 0; i < d->n_items; i++) run_dec(c, &d->items[i]);
        break;
    case DEC_BYTELEVEL: do_bytelevel(c); break;
    case DEC_BYTEFALLBACK: do_bytefallback(c); break;
    case DEC_FUSE: fuse_all(c->cur); break;
    case DEC_REPLACE: do_replace(c->cur, d->pat, d->plen, d->content, d->clen); break;
    case DEC_STRIP: do_strip(c->cur, d); break;
    case DEC_METASPACE: do_metaspace(c->cur, d); break;
    }
}

void tk_decode_ids(const px_tokenizer *tok, const int32_t *ids, size_t n, bool skip_special, bool stream,
                   tk_buf *out, bool *incomplete) {
    tk_pieces p = {0};
    for (size_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (skip_special && (tok->id_flags[id] & TK_ID_SPECIAL)) continue;
        tk_pieces_add_text(&p, tok->pieces[id] ? tok->pieces[id] : "", tok->piece_len[id], false);
    }
    chain c = {&p, stream, false};
    if (tok->has_decoder) run_dec(&c, tok->dec);
    for (size_t i = 0; i < p.n; i++) {
        if (!tok->has_decoder && i) tk_buf_putc(out, ' ');
        tk_buf_put(out, TOK(&p, i), p.v[i].len);
    }
    if (incomplete) *incomplete = c.incomplete;
    tk_pieces_free(&p);
}

/* transformers' clean_up_tokenization: the replacements in its order. */
void tk_cleanup_spaces(const char *s, size_t n, tk_buf *out) {
    static const char *const from[] = {" .", " ?", " !", " ,", " ' ", " n't", " 'm", " 's", " 've", " 're"};
    static const char *const to[] = {".", "?", "!", ",", "'", "n't", "'m", "'s", "'ve", "'re"};
    tk_pieces p = {0};
    tk_pieces_add_text(&p, s, n, true);
    for (size_t i = 0; i < PX_ARRAY_LEN(from); i++) do_replace(&p, from[i], strlen(from[i]), to[i], strlen(to[i]));
    tk_buf_put(out, TOK(&p, 0), p.v[0].len);
    tk_pieces_free(&p);
}
